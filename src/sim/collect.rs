//! The report of a finished run: per-node conntrack, CPU, rules, sockets and proxy
//! sections, requests, latency, DNS and workloads, built from the simulation's state.

use super::Outcome;
use super::event::Event;
use super::model::NodeSim;
use super::node_rules::proxy_mode_name;
use super::verdict::verdict;
use super::world::{self, PodRole};
use crate::report::{
    ClashReport, ClientsView, CpuReport, DnsReport, EbpfReport, EngineReport, IpvsReport, LatencyReport,
    LookupReport, LookupTotals, NftablesReport, NodeConntrack, NodeReport, Onsets, ProxyReport, Report,
    RequestReport, RulesReport, SCHEMA_VERSION, SocketReport, TimeSeries, UsersView, WorkloadReport,
};
use crate::scenario::Provenance;
use crate::service::node::ProxyImpl;
use crate::service::proxy::{DataPlane, LookupCost};
use crate::time::{SimDuration, SimTime};
use std::collections::BTreeMap;

fn totals(c: LookupCost) -> LookupTotals {
    LookupTotals {
        rules_evaluated: u64::from(c.rules_evaluated),
        hash_lookups: u64::from(c.hash_lookups),
        scheduler_ops: u64::from(c.scheduler_ops),
    }
}

/// The proxy section of a node's report (`None` in iptables mode).
#[allow(clippy::cast_precision_loss)]
fn proxy_report(n: &world::Node) -> Option<ProxyReport> {
    let np = n.host.proxy.as_ref()?;
    let per = |x: u64| {
        if n.new_packets == 0 {
            0.0
        } else {
            round3(x as f64 / n.new_packets as f64)
        }
    };
    let mut r = ProxyReport {
        data_plane: match np.data_plane() {
            DataPlane::Iptables => "iptables",
            DataPlane::Nftables => "nftables",
            DataPlane::Ipvs => "ipvs",
            DataPlane::Ebpf => "ebpf",
        }
        .into(),
        per_new_connection: LookupReport {
            rules_evaluated: per(n.proxy_new.rules_evaluated),
            hash_lookups: per(n.proxy_new.hash_lookups),
            scheduler_ops: per(n.proxy_new.scheduler_ops),
        },
        total: n.proxy_all,
        at_connect: totals(np.connect_cost),
        ipvs: None,
        nftables: None,
        ebpf: None,
    };
    match &np.imp {
        ProxyImpl::Ipvs(p) => {
            let s = p.stats();
            r.ipvs = Some(IpvsReport {
                virtual_servers: p.virtual_servers().len() as u64,
                conn_reuse_mode: p.config().conn_reuse_mode,
                connections_peak: n.proxy_peak.max(p.connections() as u64),
                connections_end: p.connections() as u64,
                conns_created: s.conns_created,
                conns_expired: s.conns_expired,
                conn_reuse_drops: s.conn_reuse_drops,
                conn_reuse_rescheduled: s.conn_reuse_rescheduled,
                conn_reused: s.conn_reused,
            });
        }
        ProxyImpl::Nftables(p) => {
            let c = p.table().counts();
            r.nftables = Some(NftablesReport {
                chains: c.chains as u64,
                rules: c.rules as u64,
                map_elements: c.map_elements as u64,
                set_elements: c.set_elements as u64,
            });
        }
        ProxyImpl::Ebpf(p) => {
            let (t, a) = (p.ct_tcp(), p.ct_any());
            let (st, sa) = (t.stats(), a.stats());
            let end = (t.len() + a.len()) as u64;
            r.ebpf = Some(EbpfReport {
                ct_tcp_size: t.capacity() as u64,
                ct_any_size: a.capacity() as u64,
                ct_peak: n.proxy_peak.max(end),
                ct_end: end,
                inserted: st.inserted + sa.inserted,
                evicted_live: st.evicted_live + sa.evicted_live,
                insert_failed: st.insert_failed + sa.insert_failed,
                gc_deleted: st.gc_deleted + sa.gc_deleted,
                notrack: n
                    .host
                    .ruleset
                    .table(crate::netfilter::TableKind::Raw)
                    .rule_count()
                    > 0,
            });
        }
    }
    Some(r)
}

#[allow(clippy::cast_precision_loss)]
fn secs(t: SimTime) -> f64 {
    t.as_secs_f64()
}

pub(super) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The report and time series of a finished run, which simulated `duration` (the
/// scenario's, or less when the run was stopped early): the report's `duration_s` and
/// its means per second and CPU shares are over that time.
#[allow(clippy::cast_precision_loss)]
pub(super) fn collect(sim: NodeSim, events: u64, duration: SimDuration) -> Outcome {
    let sc = sim.scenario().clone();
    let nodes: Vec<NodeReport> = (0..sim.world.nodes.len())
        .map(|i| node_report(&sim, i, duration))
        .collect();
    let verdict = verdict(&sim, &nodes);
    let t = &sim.tally;
    let mut failures = t.failures_by_cause.clone();
    for (i, causes) in t.insert_failed_causes.iter().enumerate() {
        for (k, v) in causes {
            failures.insert(format!("{} insert_failed: {k}", sim.world.nodes[i].name), *v);
        }
    }
    let requests = RequestReport {
        sent: t.sent,
        ok: t.ok,
        failed: t.failed,
        timeouts: t.timeouts,
        retries: t.retries,
        new_connections: t.new_connections,
        in_flight_at_end: sim.in_flight() as u64,
        failures_by_cause: failures,
    };
    let interval_s = sc.sample_interval.as_secs_f64();
    let workloads = sc
        .workloads
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let t = sim.wl_tally[i];
            WorkloadReport {
                name: w.name.clone(),
                users: UsersView::new(&sim.users.wl_all[i], t.ok),
                latency_ms: LatencyReport::from_histogram(&sim.wl_latency[i]),
                requests: RequestReport {
                    sent: t.sent,
                    ok: t.ok,
                    failed: t.failed,
                    timeouts: t.timeouts,
                    retries: t.retries,
                    ..RequestReport::default()
                },
            }
        })
        .collect();
    let report = Report {
        schema_version: SCHEMA_VERSION,
        scenario: sc.name.clone(),
        seed: sc.seed,
        kernel: sc.kernel.name.to_string(),
        proxy_mode: proxy_mode_name(sc.kube_proxy.mode).to_string(),
        duration_s: duration.as_secs_f64(),
        verdict,
        nodes,
        users: UsersView::new(&sim.users.all, t.ok),
        latency_ms: LatencyReport::from_histogram(&sim.latency),
        requests,
        dns: DnsReport {
            queries: t.dns_queries,
            coredns_qps_peak: if interval_s > 0.0 {
                round3(sim.coredns_peak_per_interval as f64 / interval_s)
            } else {
                0.0
            },
            lookups_with_timeout: t.lookups_with_timeout,
            lookups_failed: t.lookups_failed,
            pairs_raced: sim.races.pairs_raced,
            coredns_queries: t.coredns_queries,
            coredns_qps_mean: if duration.as_nanos() == 0 {
                0.0
            } else {
                round3(t.coredns_queries as f64 / duration.as_secs_f64())
            },
            coredns_queries_by_pod: sim.coredns_by_pod(),
            node_local: sim.node_local_report(),
        },
        workloads,
        notes: sc.implicit_kube_dns.clone().into_iter().collect(),
        engine: EngineReport {
            events,
            events_by_kind: Event::KINDS
                .iter()
                .zip(sim.events_by_kind)
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| ((*k).to_string(), n))
                .collect(),
        },
        baseline: None,
    };
    let report = with_baseline(report, &sc);
    let timeseries = TimeSeries {
        nodes: sim.world.nodes.iter().map(|n| n.name.clone()).collect(),
        max: sim
            .world
            .nodes
            .iter()
            .map(|n| u64::from(n.ct.config().max))
            .collect(),
        samples: sim.samples.clone(),
    };
    Outcome {
        report,
        timeseries,
        stopped_at: None,
    }
}

/// The report with the scenario's `baseline` set next to the simulated counters of
/// its node.
fn with_baseline(mut report: Report, sc: &crate::scenario::Scenario) -> Report {
    if let Some(b) = &sc.baseline
        && let Some(n) = report.nodes.get(b.node.0 as usize)
    {
        report.baseline = Some(crate::report::BaselineReport::compare(b, &n.name, &n.conntrack));
    }
    report
}

/// Node `i`'s section of the report.
#[allow(clippy::cast_precision_loss)]
fn node_report(sim: &NodeSim, i: usize, duration: SimDuration) -> NodeReport {
    let sc = sim.scenario();
    let n = &sim.world.nodes[i];
    let stats = n.ct.stats_sum(0);
    let o = &sim.onsets[i];
    let cfg = n.ct.config();
    let provenance = sc.nodes[i].sysctls.provenance("net.netfilter.nf_conntrack_max");
    let cap = u128::from(duration.as_nanos()) * u128::from(n.cpus.max(1));
    let peak = sim.cpu_peak_pct.get(i).copied().unwrap_or(0.0);
    NodeReport {
        name: n.name.clone(),
        cpus: n.cpus,
        conntrack: NodeConntrack {
            max: u64::from(cfg.max),
            max_source: match provenance {
                Some(Provenance::KubeProxy) => "kube-proxy (max(conntrack.maxPerCore x CPUs, conntrack.min))",
                Some(Provenance::Scenario) => "scenario sysctl",
                _ => "kernel default",
            }
            .to_string(),
            buckets: u64::from(cfg.buckets),
            count_peak: u64::from(o.count_peak),
            count_end: u64::from(n.ct.count(0)),
            entries_created: n.new_packets,
            stats,
            table_full_log_lines: n.ct.table_full_log().lines,
            dns_udp_entries_end: dns_entries(&n.ct, crate::packet::Proto::Udp),
            dns_tcp_entries_end: dns_entries(&n.ct, crate::packet::Proto::Tcp),
            dnat_entries_end: n
                .ct
                .conn_ids()
                .into_iter()
                .filter_map(|id| n.ct.conn(id))
                .filter(|c| c.dst_nat)
                .count() as u64,
            clashes: sim.races.clashes[i]
                .iter()
                .map(|(k, c)| ClashReport {
                    kind: *k,
                    mechanism: k.mechanism().into(),
                    insert_failed: c.insert_failed,
                    clash_resolve: c.clash_resolve,
                })
                .collect(),
        },
        onset_s: Onsets {
            drop: o.drop.map(|(t, _)| round3(secs(t))),
            insert_failed: o.insert_failed.map(|(t, _)| round3(secs(t))),
            early_drop: o.early_drop.map(|(t, _)| round3(secs(t))),
            clash_resolve: o.clash_resolve.map(|(t, _)| round3(secs(t))),
        },
        cpu: CpuReport {
            mean_pct: if cap == 0 {
                0.0
            } else {
                round3(n.busy_ns as f64 * 100.0 / cap as f64)
            },
            peak_pct: round3(peak.min(100.0)),
            peak_demand_pct: round3(peak),
            busy_core_s: round3(n.busy_ns as f64 / 1e9),
            rules_share_pct: if n.busy_ns == 0 {
                0.0
            } else {
                round3(n.rules_ns as f64 * 100.0 / n.busy_ns as f64)
            },
        },
        clients: {
            let c = sim.users.node[i];
            ClientsView {
                sent: c.sent,
                ok: c.ok,
                failed: c.failed,
                timeouts: c.timeouts,
                users: UsersView::new(&sim.users.node_all[i], c.ok),
                latency_ms: LatencyReport::from_histogram(&sim.users.node_ok[i]),
            }
        },
        rules: RulesReport {
            nat_rules: sim.world.nat_rules[i].0,
            filter_rules: sim.world.nat_rules[i].1,
            mean_per_new_connection: if n.new_packets == 0 {
                0.0
            } else {
                round3(n.rules_new as f64 / n.new_packets as f64)
            },
        },
        sockets: socket_report(sim, i),
        packet_drops: sim
            .tally
            .packet_drops
            .iter()
            .filter(|((node, ..), _)| node.is_some_and(|n| usize::from(n) == i))
            .map(|((_, what, reason), v)| (format!("{what}: {}", reason.describe()), *v))
            .collect(),
        proxy: proxy_report(n),
    }
}

/// Entries of the host namespace whose original tuple goes to port 53 over `proto`.
fn dns_entries(ct: &crate::conntrack::ConntrackTable, proto: crate::packet::Proto) -> u64 {
    ct.conn_ids()
        .into_iter()
        .filter_map(|id| ct.conn(id))
        .filter(|c| c.original.proto == proto && c.original.dport == 53)
        .count() as u64
}

fn socket_report(sim: &NodeSim, node: usize) -> SocketReport {
    let mut r = SocketReport {
        syn_retransmits: sim.tally.syn_retransmits[node],
        ..SocketReport::default()
    };
    for p in &sim.world.pods {
        if usize::from(p.node) != node {
            continue;
        }
        let s = p.sockets.stats();
        r.eaddrnotavail += s.connect_eaddrnotavail;
        r.etimedout += s.connect_etimedout;
        r.listen_overflows += s.listen_overflows;
        r.time_wait_overflow += s.time_wait_overflow;
    }
    r
}

impl NodeSim {
    /// Queries answered per CoreDNS pod (pods that answered at least one), by pod name.
    pub(super) fn coredns_by_pod(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (i, st) in self.servers.iter().enumerate() {
            if st.dns_queries == 0 {
                continue;
            }
            let name = match self.world.pods[i].role {
                PodRole::Server { svc } => {
                    let s = &self.sc.services[usize::from(svc)];
                    let k = self.world.pods[..i]
                        .iter()
                        .filter(|p| p.role == PodRole::Server { svc })
                        .count();
                    format!("{}-{k}", s.name)
                }
                PodRole::Client { .. } => continue,
            };
            out.insert(name, st.dns_queries);
        }
        out
    }

    /// NodeLocal DNSCache outcomes summed over nodes (`None` when disabled).
    pub(super) fn node_local_report(&self) -> Option<crate::report::NodeLocalDnsReport> {
        let first = self.nodelocal.first()?;
        let mut r = crate::report::NodeLocalDnsReport {
            upstream_protocol: if first.force_tcp { "tcp" } else { "udp" }.into(),
            ..Default::default()
        };
        for nl in &self.nodelocal {
            r.hits += nl.stats.hits;
            r.misses += nl.stats.misses;
            r.upstream_queries += nl.stats.upstream_queries;
            r.upstream_connections += nl.stats.upstream_connections;
            r.upstream_timeouts += nl.stats.upstream_timeouts;
            r.evictions += nl.evictions();
        }
        let seen = r.hits + r.misses;
        #[allow(clippy::cast_precision_loss)]
        if seen > 0 {
            r.hit_ratio = (r.hits as f64 * 1000.0 / seen as f64).round() / 1000.0;
        }
        Some(r)
    }
}
