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
//! | `race` | whether a parallel A/AAAA pair races (the measured race model), the census of clashes by kind |
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
mod race;
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
use crate::report::{Report, Sample, TimeSeries};
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
    /// When the run was stopped early by [`run_until_decided`]'s question (the report
    /// then covers the run up to this time only: its `duration_s`, means per second and
    /// CPU shares are over this time); `None` for a run to its end.
    pub stopped_at: Option<SimTime>,
}

/// A running simulation's counters that only ever grow, read at the end of each
/// simulated second by [`run_until_decided`].
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    sim: &'a NodeSim,
    now: SimTime,
}

impl Progress<'_> {
    /// The simulated time reached.
    #[must_use]
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// The nodes' names, in scenario order.
    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.sim.world.nodes.iter().map(|n| n.name.as_str())
    }

    /// Node `node`'s `conntrack -S` counters so far (host namespace, summed over CPUs:
    /// what the report's `conntrack.stats` will say if the run stops now).
    #[must_use]
    pub fn conntrack_stats(&self, node: usize) -> Option<crate::conntrack::CtStats> {
        self.sim.world.nodes.get(node).map(|n| n.ct.stats_sum(0))
    }

    /// Requests that failed after all retries so far.
    #[must_use]
    pub fn failed(&self) -> u64 {
        self.sim.tally.failed
    }

    /// Attempts that hit the per-request timeout so far.
    #[must_use]
    pub fn timeouts(&self) -> u64 {
        self.sim.tally.timeouts
    }
}

/// Runs a scenario to its end. `progress` is called with the simulated time about
/// every simulated second (for progress bars); it must not affect the run.
///
/// # Errors
/// [`SimError`] when the scenario asks for something the model does not support.
pub fn run(scenario: &Scenario, progress: &mut dyn FnMut(SimTime, SimTime)) -> Result<Outcome, SimError> {
    let mut samples = Vec::new();
    let mut out = run_with(scenario, progress, &mut |s| samples.push(s))?;
    out.timeseries.samples = samples;
    Ok(out)
}

/// Runs a scenario to its end like [`run`], handing each time-series row to `sink` as
/// soon as the simulated second it falls in is done, instead of keeping it: the
/// outcome's time series has no rows, and the run's memory does not grow with its
/// length. The report is the same as [`run`]'s.
///
/// # Errors
/// As [`run`].
pub fn run_with(
    scenario: &Scenario,
    progress: &mut dyn FnMut(SimTime, SimTime),
    sink: &mut dyn FnMut(Sample),
) -> Result<Outcome, SimError> {
    run_engine(scenario, CpuLanes::On, progress, sink, &mut |_| false)
}

/// Runs a scenario like [`run_with`] (each time-series row goes to `sink`) but asks
/// `decided` at the end of every simulated second and stops the run the first time it
/// says yes; the
/// outcome's [`Outcome::stopped_at`] says when. The run up to the stop is the same as
/// the whole run's first part: nothing that changes the simulation looks ahead to the
/// scenario's end (arrivals, timers and samples are scheduled from the current time;
/// only the spacing of the periodic census snapshots, which read the tables and change
/// nothing, follows the run's length). So a question about counters that only grow
/// gets the same answer from the stopped run as from the whole one: `plan` uses it for
/// probes whose condition is already met.
///
/// # Errors
/// As [`run`].
pub fn run_until_decided(
    scenario: &Scenario,
    sink: &mut dyn FnMut(Sample),
    decided: &mut dyn FnMut(&Progress<'_>) -> bool,
) -> Result<Outcome, SimError> {
    run_engine(scenario, CpuLanes::On, &mut |_, _| {}, sink, decided)
}

/// Whether packets queued for a CPU wait on engine lanes (speed only; the tests compare).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CpuLanes {
    On,
    #[cfg(test)]
    Off,
}

fn run_engine(
    scenario: &Scenario,
    cpu_lanes: CpuLanes,
    progress: &mut dyn FnMut(SimTime, SimTime),
    sink: &mut dyn FnMut(Sample),
    decided: &mut dyn FnMut(&Progress<'_>) -> bool,
) -> Result<Outcome, SimError> {
    let world = world::World::build(scenario)?;
    let horizon = SimTime::ZERO + scenario.duration;
    let sim = NodeSim::new(scenario.clone(), world);
    let mut engine = Engine::new(sim);
    prime(&mut engine, cpu_lanes);
    let step = SimDuration::from_secs(1).as_nanos();
    let mut events = 0;
    let mut at = 0u64;
    let mut stopped_at = None;
    loop {
        let next = at.saturating_add(step).min(horizon.as_nanos());
        let part = engine.run_until(SimTime::from_nanos(next));
        events += part.events;
        for row in engine.model_mut().samples.drain(..) {
            sink(row);
        }
        if part.halted || next >= horizon.as_nanos() {
            break;
        }
        let now = SimTime::from_nanos(next);
        if decided(&Progress {
            sim: engine.model(),
            now,
        }) {
            stopped_at = Some(now);
            break;
        }
        progress(SimTime::from_nanos(next), horizon);
        at = next;
    }
    let sim = engine.into_model();
    let end = stopped_at.unwrap_or(horizon);
    let mut out = collect::collect(sim, events, end - SimTime::ZERO);
    out.stopped_at = stopped_at;
    Ok(out)
}

fn prime(engine: &mut Engine<NodeSim>, cpu_lanes: CpuLanes) {
    for delay in engine.model().timer_delays() {
        if let Ok(lane) = engine.add_lane() {
            engine.model_mut().add_lane(delay, lane);
        }
    }
    for timeout in engine.model().syn_timeouts() {
        if let Ok(lane) = engine.add_lane() {
            engine.model_mut().add_syn_lane(timeout, lane);
        }
    }
    let cpus: Vec<u32> = match cpu_lanes {
        CpuLanes::On => engine.model().world.nodes.iter().map(|n| n.cpus).collect(),
        #[cfg(test)]
        CpuLanes::Off => Vec::new(),
    };
    'nodes: for (node, n) in cpus.into_iter().enumerate() {
        for _ in 0..n {
            let lanes: Result<Vec<_>, _> = (0..model::CPU_LANES).map(|_| engine.add_lane()).collect();
            // Out of lanes: the remaining CPUs' events use the heap (same order).
            let Some(lanes) = lanes.ok().and_then(|l| <[_; model::CPU_LANES]>::try_from(l).ok()) else {
                break 'nodes;
            };
            engine.model_mut().add_cpu_lanes(node, lanes);
        }
    }
    // The model schedules its own first events through the engine.
    let mut first: Vec<(SimTime, event::Event)> = Vec::new();
    engine.model_mut().initial_events(&mut first);
    for (t, ev) in first {
        let _ = engine.schedule(t, ev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Override;

    /// The per-CPU lanes hold packets waiting for a CPU in FIFO order instead of the
    /// heap; the engine's `(time, seq)` order makes that a change of speed only. A
    /// storm whose CPUs queue packets must give the same report with and without them.
    #[test]
    fn cpu_lanes_change_speed_not_answers() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/flash-sale.yaml");
        let sets = [Override::parse("duration=6s").unwrap()];
        let sc = Scenario::load(path, &sets).unwrap();
        let run = |lanes| run_engine(&sc, lanes, &mut |_, _| {}, &mut |_| {}, &mut |_| false).unwrap();
        let with = run(CpuLanes::On);
        let drops: u64 = with.report.nodes.iter().map(|n| n.conntrack.stats.drop).sum();
        assert!(
            drops > 0,
            "the storm reaches the full table and CPUs queue packets"
        );
        let json = |o: &Outcome| serde_json::to_string(&o.report).unwrap();
        assert_eq!(json(&with), json(&run(CpuLanes::Off)));
    }

    /// Nothing that changes the simulation looks ahead to the scenario's end: a run
    /// stopped at 5 s has the same counters, onsets, requests and time series (the CSV
    /// columns; the census snapshots' spacing follows the run's length) as a run of
    /// 5 s, which is what lets `plan` stop a probe whose condition holds for good.
    #[test]
    fn a_stopped_run_is_the_first_part_of_the_whole_run() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/flash-sale.yaml");
        let load = |d: &str| {
            let sets = [
                Override::parse(&format!("duration={d}")).unwrap(),
                Override::parse("backgroundServices.count=100").unwrap(),
            ];
            Scenario::load(path, &sets).unwrap()
        };
        let five = SimTime::ZERO + SimDuration::from_secs(5);
        let mut rows = Vec::new();
        let mut stopped =
            run_until_decided(&load("9s"), &mut |r| rows.push(r), &mut |p| p.now() >= five).unwrap();
        stopped.timeseries.samples = rows;
        assert_eq!(stopped.stopped_at, Some(five));
        let whole = run(&load("5s"), &mut |_, _| {}).unwrap();
        assert_eq!(whole.stopped_at, None);
        for (a, b) in stopped.report.nodes.iter().zip(&whole.report.nodes) {
            assert_eq!(json(&a.conntrack), json(&b.conntrack));
            assert_eq!(json(&a.onset_s), json(&b.onset_s));
        }
        assert!(
            stopped.report.nodes.iter().any(|n| n.conntrack.stats.drop > 0),
            "the storm reaches the full table within 5 s"
        );
        assert_eq!(json(&stopped.report.requests), json(&whole.report.requests));
        assert_eq!(json(&stopped.report.latency_ms), json(&whole.report.latency_ms));
        assert_eq!(stopped.report.duration_s, 5.0);
        for (a, b) in stopped.report.nodes.iter().zip(&whole.report.nodes) {
            assert_eq!(json(&a.cpu), json(&b.cpu), "CPU shares over the 5 s run");
        }
        assert_eq!(json(&stopped.report.dns), json(&whole.report.dns));
        assert_eq!(stopped.timeseries.to_csv(), whole.timeseries.to_csv());
    }

    fn json<T: serde::Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap()
    }
}
