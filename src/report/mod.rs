//! The `report` module turns a finished simulation into what an operator reads: the
//! verdict, per-node conntrack counters with their onset times, latency percentiles,
//! request outcomes, DNS load, the time series ([`TimeSeries`]), and what is derived
//! from it: the alert replay ([`alerts`]), who fills the table ([`census`]), Prometheus
//! metrics ([`metrics`]), SVG charts ([`chart`]) and one HTML page ([`html`]).
//!
//! The types are plain data (`Serialize`); the run's text summary lives in the binary.
//! The JSON schema is versioned ([`SCHEMA_VERSION`]) and documented in
//! `docs/report-format.md`. No wall-clock value ever enters a report, so the same
//! scenario and seed give byte-identical output.

pub mod alerts;
pub mod census;
pub mod chart;
mod histogram;
pub mod html;
pub mod metrics;
mod run;
mod timeseries;

pub use histogram::Histogram;
pub use run::{
    CensusBy, RunReport, census_chart, count_chart, counters_chart, latency_chart, requests_chart,
    success_pct,
};
pub use timeseries::{LATENCY_BUCKETS_S, LatencyBuckets, Sample, TimeSeries, csv_header, csv_row};

use serde::Serialize;

/// Version of the JSON report schema (`docs/report-format.md`).
pub const SCHEMA_VERSION: u32 = 1;

/// The ten `conntrack -S` counters, summed over CPUs (docs/kernel-semantics.md §Counters): the
/// conntrack module's own counter type.
pub type ConntrackCounters = crate::conntrack::CtStats;

/// The whole report of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Scenario name.
    pub scenario: String,
    /// Seed used.
    pub seed: u64,
    /// Kernel profile name.
    pub kernel: String,
    /// kube-proxy mode.
    pub proxy_mode: String,
    /// Simulated duration in seconds.
    pub duration_s: f64,
    /// The one-line verdict and what it is based on.
    pub verdict: Verdict,
    /// Per-node results, in scenario order.
    pub nodes: Vec<NodeReport>,
    /// Latency as the callers saw it: every request that finished, an answered one at
    /// its answer and a failed one when it finally failed (its last deadline or error).
    pub users: UsersView,
    /// Request latency percentiles in milliseconds of the *answered* requests only (from
    /// first attempt to response, including DNS, connect, retries): a survivors'
    /// statistic, blind to the requests that failed.
    pub latency_ms: LatencyReport,
    /// Request outcomes.
    pub requests: RequestReport,
    /// DNS load.
    pub dns: DnsReport,
    /// Per-workload results.
    pub workloads: Vec<WorkloadReport>,
    /// Engine statistics (simulated, deterministic).
    pub engine: EngineReport,
    /// What the simulation assumed because the scenario left it out (an implicit
    /// kube-dns Service); absent when nothing was.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The counters observed on a real node next to the simulated ones (only when the
    /// scenario has a `baseline`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineReport>,
}

/// Observed (a real node's evidence) against simulated conntrack counters.
#[derive(Clone, Debug, Serialize)]
pub struct BaselineReport {
    /// The node compared.
    pub node: String,
    /// Where the observed counters come from.
    pub source: String,
    /// The span the observed counters cover, in seconds (`None`: since they started).
    pub window_s: Option<f64>,
    /// One row per observed counter, in `conntrack -S` order, `count` last.
    pub rows: Vec<BaselineRow>,
}

/// One counter, observed and simulated.
#[derive(Clone, Debug, Serialize)]
pub struct BaselineRow {
    /// `conntrack -S` name (`count` = `nf_conntrack_count` at the end).
    pub counter: String,
    /// On the real node.
    pub observed: u64,
    /// In the simulation (`None` for a counter the model does not produce, `ignore`).
    pub simulated: Option<u64>,
}

impl BaselineReport {
    /// The rows of `baseline` against node `conntrack`'s simulated counters.
    #[must_use]
    pub fn compare(
        baseline: &crate::scenario::Baseline,
        node: &str,
        conntrack: &NodeConntrack,
    ) -> BaselineReport {
        let o = &baseline.counters;
        let s = &conntrack.stats;
        let pairs: [(&str, Option<u64>, Option<u64>); 12] = [
            ("found", o.found, Some(s.found)),
            ("invalid", o.invalid, Some(s.invalid)),
            ("ignore", o.ignore, None),
            ("insert", o.insert, Some(s.insert)),
            ("insert_failed", o.insert_failed, Some(s.insert_failed)),
            ("drop", o.drop, Some(s.drop)),
            ("early_drop", o.early_drop, Some(s.early_drop)),
            ("error", o.error, Some(s.error)),
            ("search_restart", o.search_restart, Some(s.search_restart)),
            ("clash_resolve", o.clash_resolve, Some(s.clash_resolve)),
            ("chaintoolong", o.chaintoolong, Some(s.chaintoolong)),
            ("count", o.count, Some(conntrack.count_end)),
        ];
        BaselineReport {
            node: node.to_string(),
            source: baseline.source.clone(),
            window_s: baseline.window.map(crate::time::SimDuration::as_secs_f64),
            rows: pairs
                .into_iter()
                .filter_map(|(name, observed, simulated)| {
                    observed.map(|observed| BaselineRow {
                        counter: name.to_string(),
                        observed,
                        simulated,
                    })
                })
                .collect(),
        }
    }
}

/// What went wrong first, if anything.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// `drop`, `insert_failed`, `early_drop` or `none`.
    pub kind: String,
    /// Node where it happened first.
    pub node: Option<String>,
    /// Simulated time of the first increment, seconds.
    pub at_s: Option<f64>,
    /// Human sentence, e.g. `drop starts at t=4.370s on node-a (nf_conntrack_count 131072/131072)`.
    pub text: String,
    /// Why, in the kernel's terms.
    pub cause: String,
    /// The failures users felt, by request attempts affected, largest first; each with its
    /// onset. Empty when no request attempt failed.
    pub failures: Vec<FailureCause>,
}

/// One cause of failed request attempts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailureCause {
    /// `conntrack drops`, `DNS timeouts`, `CPU saturation`, `listen-queue overflows`,
    /// `EADDRNOTAVAIL`, `no endpoints` or `other`.
    pub cause: String,
    /// Request attempts it failed. A timed-out attempt counts under the loss that held it
    /// up (a packet of its connection, or of a pooled connection it waited for, dropped
    /// by conntrack, a full listen queue or another drop); with no loss behind it, under
    /// CPU saturation when a node was saturated, else `other`. The causes' attempts sum
    /// to the failed attempts.
    pub attempts: u64,
    /// When it first happened, seconds.
    pub onset_s: Option<f64>,
    /// What the numbers behind it are.
    pub detail: String,
}

/// Per-node results.
#[derive(Clone, Debug, Serialize)]
pub struct NodeReport {
    /// Node name.
    pub name: String,
    /// CPUs doing packet processing.
    pub cpus: u32,
    /// Conntrack table of the host namespace.
    pub conntrack: NodeConntrack,
    /// Simulated time (s) at which each counter first rose; `null` if never.
    pub onset_s: Onsets,
    /// Packet-processing CPU use.
    pub cpu: CpuReport,
    /// The requests of the client pods on this node, as their callers saw them.
    pub clients: ClientsView,
    /// Netfilter rule counts and evaluation cost.
    pub rules: RulesReport,
    /// Socket-layer counters of the pods on this node.
    pub sockets: SocketReport,
    /// Packets lost in this node's host namespace, by packet kind and reason
    /// (`SYN: conntrack table full (drop)`).
    pub packet_drops: std::collections::BTreeMap<String, u64>,
    /// The proxy data plane's work when it is not kube-proxy's iptables rules (absent in
    /// iptables mode, whose work is in `rules`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyReport>,
}

/// What a node's proxy data plane (nftables, IPVS, eBPF) did.
#[derive(Clone, Debug, Serialize)]
pub struct ProxyReport {
    /// `nftables`, `ipvs` or `ebpf`.
    pub data_plane: String,
    /// Mean work per packet that created a conntrack entry (a new connection).
    pub per_new_connection: LookupReport,
    /// Work over all packets, totals.
    pub total: LookupTotals,
    /// Socket-LB work at `connect()` (eBPF), totals.
    pub at_connect: LookupTotals,
    /// IPVS figures (`mode: ipvs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipvs: Option<IpvsReport>,
    /// nftables table size (`mode: nftables`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nftables: Option<NftablesReport>,
    /// BPF CT map figures (`mode: ebpf`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebpf: Option<EbpfReport>,
}

/// Mean lookup work.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct LookupReport {
    /// Rules (iptables or nftables) tested.
    pub rules_evaluated: f64,
    /// Hash-table lookups (ipset, nftables maps, IPVS tables, BPF maps).
    pub hash_lookups: f64,
    /// Backend-scheduler steps.
    pub scheduler_ops: f64,
}

/// Lookup work, totals.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct LookupTotals {
    /// Rules tested.
    pub rules_evaluated: u64,
    /// Hash-table lookups.
    pub hash_lookups: u64,
    /// Backend-scheduler steps.
    pub scheduler_ops: u64,
}

impl std::ops::AddAssign<crate::service::LookupCost> for LookupTotals {
    /// Adds one packet's work (64-bit totals: a long storm overflows 32 bits).
    fn add_assign(&mut self, c: crate::service::LookupCost) {
        self.rules_evaluated += u64::from(c.rules_evaluated);
        self.hash_lookups += u64::from(c.hash_lookups);
        self.scheduler_ops += u64::from(c.scheduler_ops);
    }
}

/// IPVS connection table and counters.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct IpvsReport {
    /// Virtual servers.
    pub virtual_servers: u64,
    /// `net.ipv4.vs.conn_reuse_mode` in effect.
    pub conn_reuse_mode: u8,
    /// Highest connection-table size seen at a sample.
    pub connections_peak: u64,
    /// Connections at the end.
    pub connections_end: u64,
    /// Connections created.
    pub conns_created: u64,
    /// Connections expired by their timer.
    pub conns_expired: u64,
    /// First SYNs dropped on connection reuse (kernel < 5.9, `conn_reuse_mode` != 0).
    pub conn_reuse_drops: u64,
    /// Reused tuples rescheduled to a new real server without a drop.
    pub conn_reuse_rescheduled: u64,
    /// New connections that followed an old connection to its real server
    /// (`conn_reuse_mode=0`).
    pub conn_reused: u64,
}

/// nftables table size.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct NftablesReport {
    /// Chains.
    pub chains: u64,
    /// Rules.
    pub rules: u64,
    /// Map elements (`service-ips`, `service-nodeports`, ...).
    pub map_elements: u64,
    /// Set elements (`cluster-ips`, ...).
    pub set_elements: u64,
}

/// Cilium's BPF CT maps.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct EbpfReport {
    /// `bpf-ct-global-tcp-max`.
    pub ct_tcp_size: u64,
    /// `bpf-ct-global-any-max`.
    pub ct_any_size: u64,
    /// Highest occupancy of both maps together seen at a sample.
    pub ct_peak: u64,
    /// Occupancy at the end.
    pub ct_end: u64,
    /// Entries created.
    pub inserted: u64,
    /// Live (unexpired) entries evicted by the LRU: flows that lost their state.
    pub evicted_live: u64,
    /// "CT: Map insertion failed" (drop reason 155).
    pub insert_failed: u64,
    /// Entries deleted by GC passes.
    pub gc_deleted: u64,
    /// Whether pod traffic is NOTRACKed in the host's raw table.
    pub notrack: bool,
}

/// Conntrack figures of one node.
#[derive(Clone, Debug, Serialize)]
pub struct NodeConntrack {
    /// `nf_conntrack_max`.
    pub max: u64,
    /// Where the max came from (`kernel default`, `kube-proxy`, `scenario`).
    pub max_source: String,
    /// `nf_conntrack_buckets`.
    pub buckets: u64,
    /// Highest `nf_conntrack_count` seen.
    pub count_peak: u64,
    /// `nf_conntrack_count` at the end.
    pub count_end: u64,
    /// Entries allocated over the run: packets that created a new (unconfirmed) entry,
    /// including those dropped before or at confirm. `conntrack -S` has no such counter
    /// (its `insert` stays 0 for packet-driven flows).
    pub entries_created: u64,
    /// The ten counters, summed over CPUs.
    pub stats: ConntrackCounters,
    /// "table full, dropping packet" lines the kernel would have printed (rate-limited).
    pub table_full_log_lines: u64,
    /// Entries at the end whose original tuple is UDP to port 53 (pod DNS through the
    /// kube-dns ClusterIP, or NodeLocal DNSCache forwarding over UDP).
    pub dns_udp_entries_end: u64,
    /// Entries at the end whose original tuple is TCP to port 53 (NodeLocal DNSCache's
    /// upstream connections).
    pub dns_tcp_entries_end: u64,
    /// Entries at the end with a destination NAT binding (Service DNAT).
    pub dnat_entries_end: u64,
    /// What clashed at confirm: one row per mechanism, whose `insert_failed` and
    /// `clash_resolve` sum to `stats`' (host namespace).
    pub clashes: Vec<ClashReport>,
}

/// The clashes at confirm of one mechanism on one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClashReport {
    /// The mechanism (`udp-pair-different-backends`, `udp-pair-same-backend`,
    /// `snat-port-collision`, `tcp-tuple-reuse`, `hash-chain-too-long`).
    pub kind: crate::conntrack::ClashKind,
    /// One line on the mechanism.
    pub mechanism: String,
    /// `insert_failed` it raised.
    pub insert_failed: u64,
    /// `clash_resolve` it raised.
    pub clash_resolve: u64,
}

/// First-rise times of the counters that matter.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Onsets {
    /// `drop`.
    pub drop: Option<f64>,
    /// `insert_failed`.
    pub insert_failed: Option<f64>,
    /// `early_drop`.
    pub early_drop: Option<f64>,
    /// `clash_resolve`.
    pub clash_resolve: Option<f64>,
}

/// CPU use for packet processing.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct CpuReport {
    /// Mean utilisation over the run, percent of all CPUs.
    pub mean_pct: f64,
    /// Highest utilisation in any sample interval, percent of all CPUs (at most 100).
    pub peak_pct: f64,
    /// Highest packet-processing *demand* in any sample interval, percent of all CPUs:
    /// above 100 the node could not keep up and packets queued (softirq backlog).
    pub peak_demand_pct: f64,
    /// Busy time in core-seconds.
    pub busy_core_s: f64,
    /// Share of busy time spent evaluating rules, percent.
    pub rules_share_pct: f64,
}

/// Netfilter rules on the node.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RulesReport {
    /// Rules in the nat table.
    pub nat_rules: u64,
    /// Rules in the filter table.
    pub filter_rules: u64,
    /// Mean rules evaluated per new connection (all tables and hooks).
    pub mean_per_new_connection: f64,
}

/// Socket counters (nstat names).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct SocketReport {
    /// `connect()` failed with EADDRNOTAVAIL.
    pub eaddrnotavail: u64,
    /// `connect()` failed with ETIMEDOUT.
    pub etimedout: u64,
    /// SYNs dropped at a full accept queue.
    pub listen_overflows: u64,
    /// Closing sockets that skipped TIME_WAIT (`tcp_max_tw_buckets`).
    pub time_wait_overflow: u64,
    /// SYNs retransmitted by clients on this node.
    pub syn_retransmits: u64,
}

/// Latency percentiles, milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct LatencyReport {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl LatencyReport {
    /// Percentiles of a histogram of nanoseconds.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn from_histogram(h: &Histogram) -> LatencyReport {
        let ms = |ns: u64| ns as f64 / 1e6;
        LatencyReport {
            p50: ms(h.quantile_ppm(500_000)),
            p90: ms(h.quantile_ppm(900_000)),
            p99: ms(h.quantile_ppm(990_000)),
            p999: ms(h.quantile_ppm(999_000)),
            max: ms(h.max()),
            mean: ms(h.mean()),
        }
    }
}

/// Requests as their callers saw them: percentiles over every finished request, a failed
/// request counted at the time it finally failed (its last attempt's deadline, or the
/// error that ended it), next to the share that was answered.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct UsersView {
    /// Percentiles over all finished requests, milliseconds.
    pub latency_ms: LatencyReport,
    /// Requests that finished (answered + failed); requests still in flight at the end
    /// are not counted.
    pub finished: u64,
    /// Answered / finished, percent (100 when nothing finished).
    pub success_pct: f64,
}

impl UsersView {
    /// The view from a histogram of every finished request and the answered count.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn new(all: &Histogram, ok: u64) -> UsersView {
        let finished = all.count();
        UsersView {
            latency_ms: LatencyReport::from_histogram(all),
            finished,
            success_pct: if finished == 0 {
                100.0
            } else {
                (ok as f64 * 100_000.0 / finished as f64).round() / 1000.0
            },
        }
    }
}

/// The requests of one node's client pods: outcomes, what their callers saw, and the
/// answered requests' latency.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ClientsView {
    /// Requests issued by client pods on the node (first attempts).
    pub sent: u64,
    /// Answered.
    pub ok: u64,
    /// Failed after all retries.
    pub failed: u64,
    /// Attempts that hit the per-request timeout.
    pub timeouts: u64,
    /// All finished requests, failures at their failure time.
    pub users: UsersView,
    /// Answered requests only (survivors).
    pub latency_ms: LatencyReport,
}

/// Request outcomes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RequestReport {
    /// Requests issued by clients (first attempts).
    pub sent: u64,
    /// Requests answered.
    pub ok: u64,
    /// Requests that failed after all retries.
    pub failed: u64,
    /// Attempts that hit the per-request timeout.
    pub timeouts: u64,
    /// Retries issued.
    pub retries: u64,
    /// New TCP connections opened (handshakes started).
    pub new_connections: u64,
    /// Requests still in flight when the run ended.
    pub in_flight_at_end: u64,
    /// Failed attempts by cause (`connect timeout`, `dns timeout`, `EADDRNOTAVAIL`, ...).
    pub failures_by_cause: std::collections::BTreeMap<String, u64>,
}

/// DNS load.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DnsReport {
    /// Queries sent by pods (A and AAAA count separately).
    pub queries: u64,
    /// Highest CoreDNS query rate over any sample interval (per second, all replicas).
    pub coredns_qps_peak: f64,
    /// Lookups that took at least one 5 s resolver timeout.
    pub lookups_with_timeout: u64,
    /// Lookups that failed entirely.
    pub lookups_failed: u64,
    /// Parallel A/AAAA pairs whose second query the race model sent into the first's
    /// conntrack window (`dns.threadPlacement`); a busy CPU can still keep one from
    /// clashing, and queries that conntrack does not track (NodeLocal DNSCache's NOTRACK)
    /// cannot clash.
    pub pairs_raced: u64,
    /// Queries that reached CoreDNS pods (all replicas, UDP and TCP).
    pub coredns_queries: u64,
    /// Mean CoreDNS query rate over the run (per second, all replicas).
    pub coredns_qps_mean: f64,
    /// Queries each CoreDNS pod answered, by pod (`<service>-<k>`), in pod order.
    pub coredns_queries_by_pod: std::collections::BTreeMap<String, u64>,
    /// NodeLocal DNSCache, when enabled (all nodes summed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_local: Option<NodeLocalDnsReport>,
}

/// NodeLocal DNSCache outcomes, summed over nodes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NodeLocalDnsReport {
    /// Pod queries answered from the cache (a live entry for the name and type).
    pub hits: u64,
    /// Pod queries not in the cache (forwarded upstream).
    pub misses: u64,
    /// hits / (hits + misses), 0 when no query reached the cache.
    pub hit_ratio: f64,
    /// Queries forwarded to kube-dns.
    pub upstream_queries: u64,
    /// Upstream connections opened (TCP with `forceTcp`, else UDP sockets).
    pub upstream_connections: u64,
    /// Forwards that got no answer (connect or read timeout).
    pub upstream_timeouts: u64,
    /// Live cache entries evicted because the cache was full.
    pub evictions: u64,
    /// The upstream protocol (`tcp` or `udp`).
    pub upstream_protocol: String,
}

/// Per-workload outcomes.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadReport {
    /// Workload name.
    pub name: String,
    /// Its requests as the callers saw them (failures counted at their failure time).
    pub users: UsersView,
    /// Latency of its answered requests only (survivors).
    pub latency_ms: LatencyReport,
    /// Its request outcomes.
    pub requests: RequestReport,
}

/// Engine statistics.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EngineReport {
    /// Events processed.
    pub events: u64,
    /// Of which, by kind (`arrival`, `hop_start`, `confirm`, `deliver`, `syn_timer`,
    /// `deadline`, `retry`, `server_done`, `dns_timer`, `dns_answer`, `upstream_timer`,
    /// `gc`, `sample`); kinds that never happened are left out.
    pub events_by_kind: std::collections::BTreeMap<String, u64>,
}
