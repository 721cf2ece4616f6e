//! Who fills each node's table: census snapshots ([`CensusSnapshot`]) for the report,
//! periodic (at most [`PERIODIC_SNAPSHOTS`] per node over a run) and at each node's first
//! `drop`, `insert_failed` and `early_drop`.
//!
//! A snapshot walks the host namespace's entries once and counts them per tuple class
//! with small integer keys (who opened the flow, where it goes, state, ASSURED); the
//! class names are built once per class, not per entry.

use super::model::NodeSim;
use super::world::PodRole;
use crate::packet::Proto;
use crate::report::census::{
    CensusSnapshot, CensusTrigger, FlowDestination, FlowSource, FlowState, NodeCensus, OnsetCounter,
    TupleClass,
};
use crate::time::SimTime;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// At most this many periodic snapshots per node over a run (the sample rows between
/// them carry none): a snapshot walks the whole table.
pub(super) const PERIODIC_SNAPSHOTS: u64 = 60;

/// Who opened a flow, as a compact key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Workload(u16),
    ServicePod(u16),
    Host,
    Unattributed,
}

/// Where a flow goes: (scenario Service, Service port), or elsewhere.
type Destination = Option<(u16, u16)>;

/// Addresses to the pods and Services they belong to, built once.
#[derive(Debug, Default)]
pub(super) struct CensusIndex {
    sources: BTreeMap<Ipv4Addr, Source>,
    /// (address, port the flow was addressed to) → (Service, Service port).
    destinations: BTreeMap<(Ipv4Addr, u16), (u16, u16)>,
}

impl NodeSim {
    fn census_index(&self) -> CensusIndex {
        let mut ix = CensusIndex::default();
        for p in &self.world.pods {
            let src = match p.role {
                PodRole::Client { wl } => Source::Workload(wl),
                PodRole::Server { svc } => Source::ServicePod(svc),
            };
            ix.sources.insert(p.ip, src);
        }
        for n in &self.sc.nodes {
            ix.sources.insert(n.ip, Source::Host);
        }
        for (k, s) in self.sc.services.iter().enumerate() {
            let svc = u16::try_from(k).unwrap_or(u16::MAX);
            for port in &s.ports {
                if let Some(vip) = s.cluster_ip {
                    ix.destinations.insert((vip, port.port), (svc, port.port));
                }
                // A backend on its target port: a headless Service's clients dial it, and
                // a node that forwards an already-DNATed flow to it sees this address.
                for e in &s.endpoints {
                    ix.destinations.insert((e.ip, port.target_port), (svc, port.port));
                }
            }
        }
        ix
    }

    /// Node `n`'s table now, by tuple class.
    pub(super) fn take_census(&mut self, n: usize) -> NodeCensus {
        if self.census_ix.is_none() {
            self.census_ix = Some(Box::new(self.census_index()));
        }
        let Some(ix) = self.census_ix.as_deref() else {
            return NodeCensus::default();
        };
        let ct = &self.world.nodes[n].ct;
        let mut counts: BTreeMap<(Source, Destination, FlowState, bool), u64> = BTreeMap::new();
        for id in ct.conn_ids() {
            let Some(c) = ct.conn(id) else { continue };
            if c.ns != 0 {
                continue;
            }
            let o = c.original;
            let src = ix.sources.get(&o.src).copied().unwrap_or(Source::Unattributed);
            let dst = ix.destinations.get(&(o.dst, o.dport)).copied();
            let state = FlowState {
                proto: o.proto,
                tcp: if o.proto == Proto::Tcp { c.tcp_state } else { None },
            };
            *counts.entry((src, dst, state, c.assured)).or_default() += 1;
        }
        let classes: Vec<(TupleClass, u64)> = counts
            .into_iter()
            .map(|((src, dst, state, assured), k)| {
                let name = |i: u16| {
                    self.sc
                        .services
                        .get(usize::from(i))
                        .map_or_else(String::new, |s| s.name.clone())
                };
                let source = match src {
                    Source::Workload(w) => FlowSource::Workload(
                        self.sc
                            .workloads
                            .get(usize::from(w))
                            .map_or_else(String::new, |w| w.name.clone()),
                    ),
                    Source::ServicePod(s) => FlowSource::ServicePod(name(s)),
                    Source::Host => FlowSource::HostNetwork,
                    Source::Unattributed => FlowSource::Unattributed,
                };
                let destination = match dst {
                    Some((s, port)) => FlowDestination::Service { name: name(s), port },
                    None => FlowDestination::External,
                };
                let class = TupleClass {
                    source,
                    destination,
                    state,
                    assured,
                };
                (class, k)
            })
            .collect();
        NodeCensus::from_classes(classes.iter().map(|(c, k)| (c, *k)))
    }

    /// A snapshot of node `n` at the first rise of `counter`, for the next sample row.
    pub(super) fn onset_census(&mut self, n: usize, at: SimTime, counter: OnsetCounter) {
        let census = self.take_census(n);
        self.census_pending.push(CensusSnapshot {
            node: n,
            at_ns: at.as_nanos(),
            trigger: CensusTrigger::Onset(counter),
            census,
        });
    }

    /// The snapshots of this sample row: the onsets since the last row, and every
    /// node's table when this row is one of the periodic ones.
    pub(super) fn sample_census(&mut self, now: SimTime) -> Vec<CensusSnapshot> {
        let mut out = std::mem::take(&mut self.census_pending);
        let interval = self.sc.sample_interval.as_nanos().max(1);
        let rows = (self.sc.duration.as_nanos() / interval).max(1);
        let every = rows.div_ceil(PERIODIC_SNAPSHOTS).max(1);
        let row = now.as_nanos() / interval;
        if row.is_multiple_of(every) {
            for n in 0..self.world.nodes.len() {
                let census = self.take_census(n);
                out.push(CensusSnapshot {
                    node: n,
                    at_ns: now.as_nanos(),
                    trigger: CensusTrigger::Periodic,
                    census,
                });
            }
        }
        out
    }
}
