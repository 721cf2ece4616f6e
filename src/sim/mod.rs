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

mod client;
mod collect;
mod coredns;
mod cpu;
mod error;
mod event;
mod hops;
mod model;
mod nodelocal;
mod observe;
mod path;
mod resolver;
mod server;
mod slab;
mod trace;
mod verdict;
mod world;

pub use error::SimError;
pub use trace::trace;
pub use world::proxy_mode_name;

use crate::engine::Engine;
use crate::report::{Report, TimeSeries};
use crate::scenario::Scenario;
use crate::service::node::ProxyImpl;
use crate::time::{SimDuration, SimTime};
use model::NodeSim;

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
    Ok(collect::collect(sim, events))
}

fn prime(engine: &mut Engine<NodeSim>) {
    for delay in engine.model().timer_delays() {
        if let Ok(lane) = engine.add_lane() {
            engine.model_mut().add_lane(delay, lane);
        }
    }
    // The model schedules its own first events through the engine.
    let mut first: Vec<(SimTime, event::Event)> = Vec::new();
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
        .ok_or_else(|| SimError::UnknownName {
            flag: "--node",
            message: format!("no node named `{node}` in {}", scenario.file),
        })?;
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
