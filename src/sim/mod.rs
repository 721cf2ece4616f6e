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
//!
//! # Rooms
//!
//! | module | owns |
//! |---|---|
//! | `world` | the static system built from the scenario: topology, nodes, pods |
//! | `node_rules` | what kube-proxy and NodeLocal DNSCache program on each node |
//! | `model` | `NodeSim`, the engine's model: its state and the dispatch of each event |
//! | `event`, `slab` | the events and the typed handles they carry |
//! | `hops` | the hop loop shared with `trace` |
//! | `path` | sending a packet: its walk, windowed processing and confirm |
//! | `cpu` | which CPU processes a packet, when, and its booking |
//! | `client` | requests, attempts, deadlines, retries, connections and pools |
//! | `server` | listeners and workers of backend pods |
//! | `resolver`, `coredns`, `nodelocal` | the pods' resolvers, CoreDNS pods, NodeLocal DNSCache |
//! | `observe` | counters, onsets, the table at an onset, the time series, the callers' view |
//! | `census` | who fills each table: periodic and onset census snapshots |
//! | `collect`, `verdict` | the report of a finished run |
//! | `trace` | `k8s-netsim trace` |

mod census;
mod client;
mod collect;
mod coredns;
mod cpu;
mod error;
mod event;
mod hops;
mod model;
mod node_rules;
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
pub use node_rules::{ipvsadm_list, node_rules, proxy_mode_name};
pub use trace::trace;

use crate::engine::Engine;
use crate::report::{Report, TimeSeries};
use crate::scenario::Scenario;
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
