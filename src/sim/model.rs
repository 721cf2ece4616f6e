//! The node simulation as an engine [`Model`]: the state of the whole simulated system
//! and the dispatch of each event to the room that handles it.
//!
//! Granularity: every packet that can create a conntrack entry (a SYN, a DNS query) is
//! simulated with two events per host namespace it crosses: the start of its
//! processing on a CPU (allocation, rules, NAT) and the end (confirm), so insertion
//! races arise from concurrency, as in the kernel. Packets of existing connections
//! (SYN-ACK, ACK, request, response, FIN exchange) are walked through every namespace
//! inside one event, each hop at its own computed time, charging CPU time the same way.

use super::client::{ClientState, Flow, Request};
use super::event::{Event, Purpose, QueryOf};
use super::nodelocal::{Fwd, NodeLocal, UpConn};
use super::observe::{NodeOnsets, SampleBase, Tally, UsersTally, WorkloadTally};
use super::path::InFlight;
use super::resolver::LookupSlot;
use super::server::ServerState;
use super::slab::{FlightId, FlowId, FwdId, LookupId, ReqId, Slab, UpConnId};
use super::world::World;
use crate::engine::{Context, Model};
use crate::packet::Packet;
use crate::report::{Histogram, Sample};
use crate::rng::SimRng;
use crate::scenario::Scenario;
use crate::time::{SimDuration, SimTime};
use crate::traffic::{Arrivals, RatePoint, RateProfile};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Schedules `ev` at `at`. Every caller computes `at` from the current time forward
/// (or clamps it with `max(now)`), so the engine's only refusal, a time in the past,
/// cannot happen.
pub(super) fn schedule(cx: &mut Context<'_, Event>, at: SimTime, ev: Event) {
    let scheduled = cx.schedule_at(at, ev);
    debug_assert!(
        scheduled.is_ok(),
        "invariant: events are scheduled at or after now"
    );
}

/// Which of a CPU's engine lanes an event goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CpuLane {
    /// Packets waiting to start on the CPU ([`Event::HopStart`]).
    Start = 0,
    /// Their conntrack confirms ([`Event::Confirm`]).
    Confirm = 1,
    /// Packets this CPU processed last, delivered to a local socket
    /// ([`Event::Deliver`]).
    Deliver = 2,
    /// Packets this CPU sent to another node, arriving after the link
    /// ([`Event::HopStart`] on the wire).
    Link = 3,
    /// Packets that came back to their booked slot and wait once more, for the
    /// new-entry packet before them to finish ([`Event::HopStart`]).
    Rewait = 4,
}

/// Lanes per CPU ([`CpuLane`]).
pub(super) const CPU_LANES: usize = 5;

/// The traffic process of a workload's `arrivals`.
fn arrival_process(a: crate::scenario::ArrivalProcess) -> crate::traffic::Process {
    match a {
        crate::scenario::ArrivalProcess::Poisson => crate::traffic::Process::Poisson,
        crate::scenario::ArrivalProcess::Paced => crate::traffic::Process::Paced,
        crate::scenario::ArrivalProcess::Bursts { size } => crate::traffic::Process::Bursts { size },
    }
}

/// The whole simulated system.
pub(super) struct NodeSim {
    pub(super) world: World,
    pub(super) sc: Scenario,
    pub(super) inflight: Slab<InFlight, FlightId>,
    pub(super) flows: Slab<Flow, FlowId>,
    pub(super) reqs: Slab<Request, ReqId>,
    pub(super) lookups: Slab<LookupSlot, LookupId>,
    pub(super) upconns: Slab<UpConn, UpConnId>,
    pub(super) fwds: Slab<Fwd, FwdId>,
    /// Per node: its NodeLocal DNSCache agent (empty when disabled).
    pub(super) nodelocal: Vec<NodeLocal>,
    /// Per workload: whether it targets a headless Service (dials the resolved pod).
    pub(super) wl_headless: Vec<bool>,
    pub(super) clients: Vec<ClientState>,
    pub(super) servers: Vec<ServerState>,
    pub(super) arrivals: Vec<Arrivals>,
    pub(super) wl_next_pod: Vec<usize>,
    pub(super) rng_arrival: Vec<SimRng>,
    pub(super) rng_path: SimRng,
    pub(super) rng_server: SimRng,
    pub(super) rng_client: SimRng,
    /// The insertion race model and the clash census.
    pub(super) races: super::race::Races,
    pub(super) horizon: SimTime,
    pub(super) tally: Tally,
    pub(super) latency: Histogram,
    pub(super) wl_latency: Vec<Histogram>,
    pub(super) wl_tally: Vec<WorkloadTally>,
    pub(super) interval_latency: Histogram,
    /// Every finished request, failures included (the callers' view).
    pub(super) users: UsersTally,
    /// Addresses to pods and Services for the census (built at the first snapshot).
    pub(super) census_ix: Option<Box<super::census::CensusIndex>>,
    /// Onset snapshots waiting for the next sample row.
    pub(super) census_pending: Vec<crate::report::census::CensusSnapshot>,
    pub(super) onsets: Vec<NodeOnsets>,
    /// Rows taken since `sim::run_with` last handed them to its sink.
    pub(super) samples: Vec<Sample>,
    /// Per node, the highest CPU use of any sample interval (percent).
    pub(super) cpu_peak_pct: Vec<f64>,
    pub(super) last_busy: Vec<u128>,
    /// Totals at the previous sample (the next row reports the difference).
    pub(super) last_counts: SampleBase,
    pub(super) coredns_peak_per_interval: u64,
    /// Engine lanes for constant-delay timers, by delay (nanoseconds).
    pub(super) lanes: Vec<(u64, crate::engine::LaneId)>,
    /// Engine lanes for SYN retransmission timers, by the timeout they were armed with
    /// (nanoseconds): the timer wheel's rounding keeps one timeout's expiries in the
    /// order they were armed.
    pub(super) syn_lanes: Vec<(u64, crate::engine::LaneId)>,
    /// Per node and CPU, the engine lanes of packets waiting for that CPU, of their
    /// confirms, and of the packets it delivers or puts on the wire ([`CpuLane`]): each
    /// CPU serves its queue in order, so their due times rarely go back, and the heap
    /// stays small however long the queue grows.
    pub(super) cpu_lanes: Vec<Vec<[crate::engine::LaneId; CPU_LANES]>>,
    /// Events handled, by kind ([`Event::KINDS`]).
    pub(super) events_by_kind: [u64; Event::KINDS.len()],
}

impl std::fmt::Debug for NodeSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSim")
            .field("requests_live", &self.reqs.live())
            .finish_non_exhaustive()
    }
}

impl NodeSim {
    pub(super) fn new(sc: Scenario, world: World) -> NodeSim {
        let horizon = SimTime::ZERO + sc.duration;
        let arrivals = sc
            .workloads
            .iter()
            .map(|w| {
                let mut pts = vec![RatePoint {
                    at: SimTime::ZERO,
                    milli_per_sec: w.rate.as_milli_per_sec(),
                    ramp: SimDuration::ZERO,
                }];
                for s in &w.rate_profile {
                    pts.push(RatePoint {
                        at: SimTime::ZERO + s.at,
                        milli_per_sec: s.rate.as_milli_per_sec(),
                        ramp: s.ramp,
                    });
                }
                Arrivals::with_process(RateProfile::from_points(pts), arrival_process(w.arrivals))
            })
            .collect();
        let rng_arrival = sc
            .workloads
            .iter()
            .map(|w| SimRng::stream(sc.seed, &format!("arrivals/{}", w.name)))
            .collect();
        let n_nodes = world.nodes.len();
        let n_pods = world.pods.len();
        let n_wl = sc.workloads.len();
        let nodelocal = match sc.dns.node_local_cache {
            Some(cfg) => sc
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    let host = world
                        .topo
                        .host_netns(crate::topology::NodeId(u32::try_from(i).unwrap_or(u32::MAX)))?;
                    let scfg =
                        crate::socket::SocketConfig::from_sysctls(&n.sysctls.values).unwrap_or_default();
                    let sockets = crate::socket::SocketTable::new(
                        scfg,
                        SimRng::stream(sc.seed, &format!("nodelocal/{}", n.name)),
                    );
                    Some(NodeLocal::new(&cfg, host, n.ip, sockets))
                })
                .collect(),
            None => Vec::new(),
        };
        let wl_headless = sc
            .workloads
            .iter()
            .map(|w| match w.target {
                crate::scenario::WorkloadTarget::Service { service, .. } => sc
                    .services
                    .get(service.0 as usize)
                    .is_some_and(|s| s.service_type == crate::scenario::ServiceType::Headless),
                crate::scenario::WorkloadTarget::Address(_) => false,
            })
            .collect();
        NodeSim {
            upconns: Slab::new(),
            fwds: Slab::new(),
            nodelocal,
            wl_headless,
            inflight: Slab::new(),
            flows: Slab::new(),
            reqs: Slab::new(),
            lookups: Slab::new(),
            clients: (0..n_pods).map(|_| ClientState::default()).collect(),
            servers: (0..n_pods).map(|_| ServerState::default()).collect(),
            arrivals,
            wl_next_pod: vec![0; n_wl],
            rng_arrival,
            rng_path: SimRng::stream(sc.seed, "datapath"),
            rng_server: SimRng::stream(sc.seed, "servers"),
            rng_client: SimRng::stream(sc.seed, "clients"),
            races: super::race::Races::new(sc.seed, n_nodes),
            horizon,
            tally: Tally {
                syn_retransmits: vec![0; n_nodes],
                insert_failed_causes: vec![BTreeMap::new(); n_nodes],
                ..Tally::default()
            },
            latency: Histogram::new(),
            wl_latency: (0..n_wl).map(|_| Histogram::new()).collect(),
            wl_tally: vec![WorkloadTally::default(); n_wl],
            interval_latency: Histogram::new(),
            users: UsersTally::new(n_wl, n_nodes),
            census_ix: None,
            census_pending: Vec::new(),
            onsets: vec![NodeOnsets::default(); n_nodes],
            samples: Vec::new(),
            cpu_peak_pct: vec![0.0; n_nodes],
            last_busy: vec![0; n_nodes],
            last_counts: SampleBase::default(),
            coredns_peak_per_interval: 0,
            lanes: Vec::new(),
            syn_lanes: Vec::new(),
            cpu_lanes: Vec::new(),
            events_by_kind: [0; Event::KINDS.len()],
            world,
            sc,
        }
    }

    /// The first events: each workload's first arrival, the gc workers, sampling.
    pub(super) fn initial_events(&mut self, out: &mut Vec<(SimTime, Event)>) {
        for wl in 0..self.sc.workloads.len() {
            let wl16 = u16::try_from(wl).unwrap_or(u16::MAX);
            if let Some(t) =
                self.arrivals[wl].next_after(SimTime::ZERO, self.horizon, &mut self.rng_arrival[wl])
            {
                out.push((t, Event::Arrival { wl: wl16 }));
            }
        }
        for n in 0..self.world.nodes.len() {
            out.push((
                SimTime::ZERO + self.sc.nodes[n].conntrack_start.gc_phase,
                Event::Gc {
                    node: u16::try_from(n).unwrap_or(u16::MAX),
                },
            ));
        }
        out.push((SimTime::ZERO + self.sc.sample_interval, Event::Sample));
    }

    /// Delays of the timers this scenario uses many of: per-request deadlines, retry
    /// backoffs, SYN retransmission intervals, resolver tries. Each gets an engine lane
    /// (a FIFO: same delay means due in scheduling order), which keeps the heap small.
    pub(super) fn timer_delays(&self) -> Vec<u64> {
        let mut d: Vec<u64> = Vec::new();
        for w in &self.sc.workloads {
            d.push(w.timeout.as_nanos());
            d.push(w.retries.backoff.as_nanos());
        }
        d.extend(self.syn_timeouts());
        d.push(SimDuration::from_secs(5).as_nanos());
        d.sort_unstable();
        d.dedup();
        d.retain(|x| *x > 0);
        d.truncate(crate::engine::MAX_LANES);
        d
    }

    /// The timeouts SYN retransmission timers are armed with in this scenario.
    pub(super) fn syn_timeouts(&self) -> Vec<u64> {
        let mut d: Vec<u64> = Vec::new();
        for n in &self.sc.nodes {
            let (sends, fail) = self.sc.kernel.syn_schedule(n.sysctls.values.tcp_syn_retries);
            for pair in sends.windows(2) {
                d.push((pair[1] - pair[0]).as_nanos());
            }
            if let Some(last) = sends.last() {
                d.push((fail - *last).as_nanos());
            }
        }
        d.sort_unstable();
        d.dedup();
        d
    }

    /// Registers the lane created for SYN timers armed with `timeout`.
    pub(super) fn add_syn_lane(&mut self, timeout: u64, lane: crate::engine::LaneId) {
        self.syn_lanes.push((timeout, lane));
    }

    /// Schedules a SYN timer armed with `rto` to fire at `at`, on its lane if it has one.
    pub(super) fn schedule_syn_timer(
        &self,
        cx: &mut Context<'_, Event>,
        rto: SimDuration,
        at: SimTime,
        ev: Event,
    ) {
        match self.syn_lanes.iter().find(|(d, _)| *d == rto.as_nanos()) {
            Some((_, lane)) => {
                cx.schedule_lane_at(*lane, at, ev);
            }
            None => schedule(cx, at.max(cx.now()), ev),
        }
    }

    /// Registers the lanes of one CPU (created in node order, then CPU order).
    pub(super) fn add_cpu_lanes(&mut self, node: usize, lanes: [crate::engine::LaneId; CPU_LANES]) {
        if self.cpu_lanes.len() <= node {
            self.cpu_lanes.resize_with(node + 1, Vec::new);
        }
        self.cpu_lanes[node].push(lanes);
    }

    /// The lane of `node`'s `cpu` for `which` events, if it has one.
    #[inline]
    pub(super) fn cpu_lane(&self, node: u16, cpu: u16, which: CpuLane) -> Option<crate::engine::LaneId> {
        let lanes = self.cpu_lanes.get(usize::from(node))?.get(usize::from(cpu))?;
        Some(lanes[which as usize])
    }

    /// Registers the lane created for `delay`.
    pub(super) fn add_lane(&mut self, delay: u64, lane: crate::engine::LaneId) {
        self.lanes.push((delay, lane));
    }

    /// Schedules `ev` after `delay`, on its lane if it has one.
    pub(super) fn schedule_timer(&self, cx: &mut Context<'_, Event>, delay: SimDuration, ev: Event) {
        match self.lanes.iter().find(|(d, _)| *d == delay.as_nanos()) {
            Some((_, lane)) => {
                cx.schedule_lane(*lane, delay, ev);
            }
            None => {
                cx.schedule_after(delay, ev);
            }
        }
    }

    /// Requests still in flight.
    pub(super) fn in_flight(&self) -> usize {
        self.reqs.live()
    }

    pub(super) fn scenario(&self) -> &Scenario {
        &self.sc
    }

    /// A packet reached the namespace it was going to: the room that waits for it acts.
    pub(super) fn on_deliver(&mut self, cx: &mut Context<'_, Event>, purpose: Purpose, pkt: Packet) {
        match purpose {
            Purpose::Syn { flow } => self.server_syn(cx, flow, pkt),
            Purpose::SynAck { flow } => self.client_syn_ack(cx, flow),
            Purpose::Request { flow } => self.server_request(cx, flow, pkt),
            Purpose::Response { flow } => self.client_response(cx, flow),
            Purpose::DnsQuery { lookup, query, qtype } => {
                if self.pod_at(pkt.tuple.dst).is_some() {
                    self.coredns_receive(cx, pkt, QueryOf::Lookup { lookup, query }, qtype);
                } else {
                    self.nodelocal_receive(cx, pkt, lookup, query, qtype);
                }
            }
            Purpose::DnsReply {
                lookup,
                query,
                answer,
            } => self.dns_answer_arrived(cx, lookup, query, answer),
            Purpose::UpSyn { conn, turn } => self.upstream_syn_arrived(cx, conn, turn, pkt),
            Purpose::UpSynAck { conn, turn } => self.upstream_syn_ack_arrived(cx, conn, turn),
            Purpose::UpQuery { conn, turn, fwd } => self.upstream_query_arrived(cx, conn, turn, fwd, pkt),
            Purpose::UpReply {
                conn,
                turn,
                fwd,
                answer,
            } => self.upstream_answer(cx, conn, turn, fwd, answer),
            Purpose::Reset { flow } => self.client_reset(cx, flow),
            Purpose::Silent => {}
        }
    }

    pub(super) fn pod_at(&self, ip: Ipv4Addr) -> Option<u32> {
        let netns = self.world.topo.pod_by_ip(ip)?;
        self.world.pod_of_netns.get(netns.index()).copied().flatten()
    }

    pub(super) fn on_gc(&mut self, cx: &mut Context<'_, Event>, node: u16) {
        let now = cx.now();
        let next = self.world.nodes[usize::from(node)].ct.gc_step(now);
        if next <= self.horizon {
            schedule(
                cx,
                next.max(now + SimDuration::from_millis(1)),
                Event::Gc { node },
            );
        }
    }
}

impl Model for NodeSim {
    type Event = Event;

    fn handle(&mut self, ev: Event, cx: &mut Context<'_, Event>) {
        self.events_by_kind[ev.kind()] += 1;
        match ev {
            Event::Arrival { wl } => self.on_arrival(cx, wl),
            Event::HopStart { flight, waited } => self.on_hop_start(cx, flight, waited),
            Event::Confirm { flight } => self.on_confirm(cx, flight),
            Event::Deliver { purpose, pkt } => self.on_deliver(cx, purpose, pkt),
            Event::SynTimer { flow } => self.on_syn_timer(cx, flow),
            Event::Deadline { req, attempt } => self.on_deadline(cx, req, attempt),
            Event::Retry { req, attempt } => self.on_retry(cx, req, attempt),
            Event::ServerDone { flow, server } => self.on_server_done(cx, flow, server),
            Event::DnsTimer { lookup } => self.on_dns_timer(cx, lookup),
            Event::DnsAnswer {
                dns_pod,
                query,
                qtype,
                tuple,
            } => self.on_dns_answer(cx, dns_pod, query, qtype, tuple),
            Event::UpTimer { conn, turn } => self.on_up_timer(cx, conn, turn),
            Event::Gc { node } => self.on_gc(cx, node),
            Event::Sample => self.on_sample(cx),
        }
    }
}
