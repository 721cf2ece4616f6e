//! The `sim` module replays a scenario: it builds the nodes (topology, kube-proxy rules,
//! conntrack tables, pods with sockets, listeners and resolvers), drives clients,
//! servers, DNS and every packet through the data path on the discrete-event
//! [`engine`](crate::engine), and turns the result into a [`Report`] and a
//! [`TimeSeries`].
//!
//! What is modelled, per connection: the client's `connect()` (ephemeral port, SYN
//! retransmission schedule of the kernel profile), the SYN through each node's host
//! namespace as two events (allocation, rules and NAT at the start of its CPU time;
//! confirm at the end), the server's listener (accept queue, silent SYN drops), its
//! workers and service time, the request and response, and the FIN exchange that leaves
//! conntrack in TIME_WAIT, all through conntrack on every node crossed. DNS lookups
//! follow glibc (search path, parallel A/AAAA from one socket, 5 s tries) against
//! CoreDNS pods with a capacity, through the kube-dns ClusterIP.
//!
//! Not modelled (see `docs/model.md`): TCP data transfer beyond one request and one
//! response segment, retransmission of lost data segments (an attempt whose data
//! packet is lost times out), TCP congestion, NIC queues, interrupts.

mod model;
mod nodelocal;
mod trace;
mod world;

pub use trace::trace;
pub use world::proxy_mode_name;

use crate::datapath::ProxyImpl;
use crate::engine::Engine;
use crate::report::{
    CpuReport, DnsReport, EbpfReport, EngineReport, IpvsReport, LatencyReport, LookupReport, LookupTotals,
    NftablesReport, NodeConntrack, NodeReport, Onsets, ProxyReport, Report, RequestReport, RulesReport,
    SCHEMA_VERSION, SocketReport, TimeSeries, Verdict, WorkloadReport,
};
use crate::scenario::{Provenance, Scenario};
use crate::service::proxy::{DataPlane, LookupCost};
use crate::time::{SimDuration, SimTime};
use model::NodeSim;

/// Why a scenario cannot be simulated (the scenario itself was valid).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A feature the scenario asks for is not modelled yet.
    #[error("not supported yet: {what}")]
    Unsupported {
        /// What.
        what: String,
    },
    /// The topology could not be built.
    #[error("topology: {0}")]
    Topology(String),
    /// A configuration value the model cannot use.
    #[error("configuration: {0}")]
    Config(String),
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The report.
    pub report: Report,
    /// One row per sample interval.
    pub timeseries: TimeSeries,
}

/// Runs a scenario to its end. `progress` is called with the simulated time about
/// every simulated second (for progress bars); it must not affect the run.
///
/// # Errors
/// [`SimError`] when the scenario asks for something the model does not support.
pub fn run(scenario: &Scenario, progress: &mut dyn FnMut(SimTime, SimTime)) -> Result<Outcome, SimError> {
    let world = world::World::build(scenario)?;
    let horizon = SimTime::ZERO + scenario.duration;
    let sim = NodeSim::new(scenario.clone(), world);
    let mut engine = Engine::new(sim);
    prime(&mut engine);
    let summary = engine.run_until_with(horizon, SimDuration::from_secs(1), |_, now| {
        progress(now, horizon)
    });
    let events = summary.events;
    let sim = engine.into_model();
    Ok(collect(sim, events))
}

fn prime(engine: &mut Engine<NodeSim>) {
    for delay in engine.model().timer_delays() {
        if let Ok(lane) = engine.add_lane() {
            engine.model_mut().add_lane(delay, lane);
        }
    }
    // The model schedules its own first events through the engine.
    let mut first: Vec<(SimTime, model::Event)> = Vec::new();
    engine.model_mut().initial_events(&mut first);
    for (t, ev) in first {
        let _ = engine.schedule(t, ev);
    }
}

/// The ruleset of a node of a scenario, in iptables-save format.
///
/// # Errors
/// [`SimError`] for unknown nodes or unsupported modes.
pub fn node_rules(scenario: &Scenario, node: &str) -> Result<String, SimError> {
    let idx = scenario
        .nodes
        .iter()
        .position(|n| n.name == node)
        .ok_or_else(|| SimError::Config(format!("no node named `{node}` in {}", scenario.file)))?;
    let rs = world::with_node_local_dns_rules(scenario, world::node_ruleset(scenario, idx)?)?;
    let mut out = String::new();
    if rs.table(crate::netfilter::TableKind::Raw).rule_count()
        + rs.table(crate::netfilter::TableKind::Nat).rule_count()
        + rs.table(crate::netfilter::TableKind::Filter).rule_count()
        > 0
    {
        out.push_str(&crate::netfilter::export::to_iptables_save(&rs));
    }
    match world::node_proxy(scenario, idx)?.map(|p| p.imp) {
        None => {}
        Some(ProxyImpl::Nftables(p)) => out.push_str(&p.table().to_nft_text()),
        Some(ProxyImpl::Ipvs(p)) => {
            out.push_str(&crate::netfilter::export::to_iptables_save(p.ruleset()));
            out.push_str(&ipvsadm_list(&p));
        }
        Some(ProxyImpl::Ebpf(p)) => {
            let o = p.objects();
            out.push_str(&format!(
                "# cilium kube-proxy replacement: no per-Service rules\n# lb4 services: {} frontends, {} service-map entries, {} backends, {} rev-NAT entries\n# CT maps: tcp {} entries, any {} entries (LRU)\n",
                o.frontends,
                o.service_entries,
                o.backends,
                o.rev_nat,
                p.ct_tcp().capacity(),
                p.ct_any().capacity()
            ));
        }
    }
    Ok(out)
}

/// `ipvsadm -Ln`-like listing of the virtual servers.
#[must_use]
pub fn ipvsadm_list(p: &crate::service::ipvs::IpvsProxy) -> String {
    use std::fmt::Write as _;
    let mut s = String::from(
        "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    );
    let sched = match p.config().scheduler {
        crate::service::ipvs::Scheduler::Rr => "rr",
        crate::service::ipvs::Scheduler::Lc => "lc",
        crate::service::ipvs::Scheduler::Sh => "sh",
    };
    for vs in p.virtual_servers() {
        let proto = match vs.proto {
            crate::packet::Proto::Udp => "UDP",
            _ => "TCP",
        };
        let _ = writeln!(s, "{proto}  {}:{} {sched}", vs.addr, vs.port);
        for rs in vs.real_servers() {
            let _ = writeln!(
                s,
                "  -> {:<28} Masq    {:<6} {:<10} {}",
                rs.addr.to_string(),
                rs.weight,
                rs.active,
                rs.inactive
            );
        }
    }
    s
}

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

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[allow(clippy::cast_precision_loss, clippy::too_many_lines)]
fn collect(sim: NodeSim, events: u64) -> Outcome {
    let sc = sim.scenario().clone();
    let duration = sc.duration;
    let mut nodes = Vec::new();
    for (i, n) in sim.world.nodes.iter().enumerate() {
        let stats = n.ct.stats_sum(0);
        let o = &sim.onsets[i];
        let cfg = n.ct.config();
        let provenance = sc.nodes[i].sysctls.provenance("net.netfilter.nf_conntrack_max");
        let cap = u128::from(duration.as_nanos()) * u128::from(n.cpus.max(1));
        let peak = sim
            .samples
            .iter()
            .filter_map(|s| s.cpu_pct.get(i).copied())
            .fold(0.0_f64, f64::max);
        nodes.push(NodeReport {
            name: n.name.clone(),
            cpus: n.cpus,
            conntrack: NodeConntrack {
                max: u64::from(cfg.max),
                max_source: match provenance {
                    Some(Provenance::KubeProxy) => {
                        "kube-proxy (max(conntrack.maxPerCore x CPUs, conntrack.min))"
                    }
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
            rules: RulesReport {
                nat_rules: sim.world.nat_rules[i].0,
                filter_rules: sim.world.nat_rules[i].1,
                mean_per_new_connection: if n.new_packets == 0 {
                    0.0
                } else {
                    round3(n.rules_new as f64 / n.new_packets as f64)
                },
            },
            sockets: socket_report(&sim, i),
            packet_drops: sim
                .tally
                .packet_drops
                .iter()
                .filter(|((node, ..), _)| usize::from(*node) == i)
                .map(|((_, what, reason), v)| (format!("{what}: {}", reason.describe()), *v))
                .collect(),
            proxy: proxy_report(n),
        });
    }
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
            let (sent, ok, failed, timeouts, retries) = sim.wl_tally[i];
            WorkloadReport {
                name: w.name.clone(),
                latency_ms: LatencyReport::from_histogram(&sim.wl_latency[i]),
                requests: RequestReport {
                    sent,
                    ok,
                    failed,
                    timeouts,
                    retries,
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
        engine: EngineReport { events },
    };
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
    Outcome { report, timeseries }
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

/// The first thing that went wrong, and why, in the kernel's terms.
fn verdict(sim: &NodeSim, nodes: &[NodeReport]) -> Verdict {
    // Earliest onset across nodes and counters. On a tie insert_failed wins: a clash at
    // confirm raises insert_failed and drop together, and the clash is the cause.
    let mut best: Option<(SimTime, usize, &'static str, u32)> = None;
    for (i, o) in sim.onsets.iter().enumerate() {
        for (kind, v) in [
            ("insert_failed", o.insert_failed),
            ("drop", o.drop),
            ("early_drop", o.early_drop),
        ] {
            if let Some((t, count)) = v
                && best.is_none_or(|(bt, ..)| t < bt)
            {
                best = Some((t, i, kind, count));
            }
        }
    }
    let Some((t, i, kind, count)) = best else {
        return Verdict {
            kind: "none".into(),
            node: None,
            at_s: None,
            text: "no conntrack drop, insert_failed or early_drop on any node".into(),
            cause: String::new(),
        };
    };
    let n = &nodes[i];
    let max = n.conntrack.max;
    let text = format!(
        "{kind} starts at t={:.3}s on {} (nf_conntrack_count {count}/{max})",
        t.as_secs_f64(),
        n.name
    );
    let cause = match kind {
        "drop" => {
            if u64::from(count) + 1 >= max {
                let census = sim.onsets[i].table_at_drop.clone().unwrap_or_default();
                let top: Vec<String> = census
                    .by_state
                    .iter()
                    .rev()
                    .map(|(s, c)| format!("{s} {c}"))
                    .take(4)
                    .collect();
                format!(
                    "table full: nf_conntrack_count reached nf_conntrack_max ({max}, from {}) and early_drop found no \
                     non-ASSURED entry in the 8 buckets it scans, so the new flow's packet was dropped (drop, not \
                     insert_failed); {} of {} entries were ASSURED [{}]",
                    n.conntrack.max_source,
                    census.assured,
                    census.total,
                    top.join(", ")
                )
            } else {
                "packets dropped at confirm after an unresolvable clash (insert_failed + drop)".into()
            }
        }
        "insert_failed" => {
            let causes: Vec<String> = sim.tally.insert_failed_causes[i]
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            format!(
                "insertion clash at confirm, not a full table (count {count} of {max}): {}",
                if causes.is_empty() {
                    "clash resolved (counted as insert_failed on this kernel)".into()
                } else {
                    causes.join("; ")
                }
            )
        }
        _ => {
            "the table was at nf_conntrack_max and new flows evicted non-ASSURED entries (early_drop)".into()
        }
    };
    Verdict {
        kind: kind.into(),
        node: Some(n.name.clone()),
        at_s: Some(round3(t.as_secs_f64())),
        text,
        cause,
    }
}
