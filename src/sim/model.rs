//! The node simulation as an engine [`Model`]: clients, servers, DNS and packets
//! walking the data path.
//!
//! Granularity: every packet that can create a conntrack entry (a SYN, a DNS query) is
//! simulated with two events per host namespace it crosses — the start of its
//! processing on a CPU (allocation, rules, NAT) and the end (confirm) — so insertion
//! races arise from concurrency, as in the kernel. Packets of existing connections
//! (SYN-ACK, ACK, request, response, FIN exchange) are walked through every namespace
//! inside one event, each hop at its own computed time, charging CPU time the same way.

use super::nodelocal::{self, Cached, NodeLocal};
use super::world::{PodRole, World};
use crate::datapath::{Confirmed, DropReason, Entry, FirstHalf, HalfVerdict, ProxyImpl, Quiet};
use crate::dns::{Action, Lookup, LookupResult, QType, QueryId, Rcode};
use crate::engine::{Context, Model};
use crate::packet::{Packet, Proto, TcpFlags, Tuple};
use crate::report::{Histogram, Sample};
use crate::rng::SimRng;
use crate::scenario::{Closer, ConnectionMode, DnsMode, Scenario, ServiceTime};
use crate::service::proxy::ProxyVerdict;
use crate::socket::{AbortReason, AckOutcome, CloseRole, SynOutcome};
use crate::time::{SimDuration, SimTime};
use crate::topology::{NetnsId, NextHop, RouteDecision};
use crate::traffic::{Arrivals, RatePoint, RateProfile};
use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};

/// One-way latency between two nodes on the underlay (documented constant; see
/// `docs/model.md`).
pub(super) const NODE_LINK_LATENCY: SimDuration = SimDuration::from_micros(50);

/// Events of the node simulation. Order of variants is irrelevant: the engine orders
/// by (time, sequence).
#[derive(Clone, Copy, Debug)]
pub(super) enum Event {
    /// Next request of a workload.
    Arrival { wl: u16 },
    /// A deferred packet starts its processing on a node CPU.
    HopStart { inflight: u32, waited: bool },
    /// A new-entry packet's processing ends: conntrack confirm.
    Confirm { inflight: u32 },
    /// A packet reached the namespace it was going to.
    Deliver { purpose: Purpose, pkt: Packet },
    /// A SYN retransmission timer of a connection.
    SynTimer { flow: u32, epoch: u32 },
    /// The deadline of a request attempt.
    Deadline { req: u32, epoch: u32 },
    /// Start the next attempt of a request after its backoff.
    Retry { req: u32, epoch: u32 },
    /// A server worker finished a request.
    ServerDone { flow: u32, epoch: u32, server: u32 },
    /// A DNS lookup's try deadline.
    DnsTimer { lookup: u32, epoch: u32 },
    /// A CoreDNS pod answers a query.
    DnsAnswer {
        dns_pod: u32,
        lookup: u32,
        query: u32,
        epoch: u32,
        qtype: QType,
        tuple: Tuple,
        /// The NodeLocal DNSCache forward this answers (`u32::MAX`: a pod's query).
        fwd: u32,
    },
    /// A NodeLocal DNSCache upstream connection's timer: SYN retransmission while
    /// connecting, read timeout while a query is out, idle expiry otherwise.
    UpTimer { conn: u32, epoch: u32 },
    /// The conntrack gc worker of a node.
    Gc { node: u16 },
    /// Record one time-series row.
    Sample,
}

/// Why a packet is travelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Purpose {
    /// A connection's SYN.
    Syn { flow: u32, epoch: u32 },
    /// The SYN-ACK answer.
    SynAck { flow: u32, epoch: u32 },
    /// The handshake ACK carrying the request (or a request on a pooled connection).
    Request { flow: u32, epoch: u32 },
    /// The response.
    Response { flow: u32, epoch: u32 },
    /// A DNS query.
    DnsQuery {
        lookup: u32,
        query: u32,
        epoch: u32,
        qtype: QType,
    },
    /// A DNS answer.
    DnsReply {
        lookup: u32,
        query: u32,
        epoch: u32,
        rcode: Rcode,
        records: u16,
        /// First A record (after CoreDNS `loadbalance` shuffled them), `0.0.0.0` if none.
        first: Ipv4Addr,
    },
    /// NodeLocal DNSCache → kube-dns: the upstream connection's SYN.
    UpSyn { conn: u32, epoch: u32 },
    /// Its SYN-ACK.
    UpSynAck { conn: u32, epoch: u32 },
    /// A forwarded query on an upstream connection.
    UpQuery { conn: u32, epoch: u32, fwd: u32 },
    /// CoreDNS's answer to a forwarded query.
    UpReply {
        conn: u32,
        epoch: u32,
        fwd: u32,
        rcode: Rcode,
        records: u16,
        first: Ipv4Addr,
    },
    /// A packet whose arrival needs no action (teardown segments).
    Silent,
}

/// A packet being processed in windowed mode.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    pkt: Packet,
    at: NetnsId,
    in_dev: Option<crate::topology::DeviceId>,
    purpose: Purpose,
    node: u16,
    cpu: u16,
    half: Option<FirstHalf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlowState {
    Connecting,
    Established,
}

/// One TCP connection from a client pod.
#[derive(Clone, Copy, Debug)]
struct Flow {
    epoch: u32,
    pod: u32,
    tuple: Tuple,
    isn: u32,
    state: FlowState,
    syn_timer: Option<crate::socket::SynTimer>,
    /// The request using it now.
    req: Option<u32>,
    server_pod: Option<u32>,
    /// The client's address and port as the server saw them in the SYN (after any SNAT
    /// on the way): where the server's own segments (FIN, ACK) go.
    peer: Option<SocketAddrV4>,
    requests: u32,
    idle_since: SimTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReqState {
    WaitDns,
    WaitConn,
    Connecting,
    Sent,
    Backoff,
    Done,
}

#[derive(Clone, Copy, Debug)]
struct Request {
    wl: u16,
    pod: u32,
    started: SimTime,
    attempt: u32,
    epoch: u32,
    state: ReqState,
    flow: Option<u32>,
    /// Address resolved for this request (per-request DNS, headless targets).
    addr: Option<Ipv4Addr>,
}

/// State of a NodeLocal DNSCache upstream connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UpState {
    Connecting,
    /// A query is out (one at a time per connection, as CoreDNS `forward`).
    Busy,
    Idle,
}

/// A NodeLocal DNSCache upstream connection (TCP with `force_tcp`, else a UDP socket).
#[derive(Clone, Copy, Debug)]
struct UpConn {
    epoch: u32,
    node: u16,
    tuple: Tuple,
    isn: u32,
    state: UpState,
    syn_timer: Option<crate::socket::SynTimer>,
    /// The forward it carries (connecting or busy).
    fwd: Option<u32>,
    /// The CoreDNS pod and port that answered the SYN, and the agent's address and port
    /// as that pod saw them (after the MASQUERADE kube-proxy marks host traffic for).
    server: Option<(u32, u16, SocketAddrV4)>,
}

/// A query NodeLocal DNSCache forwards upstream for a pod.
#[derive(Clone, Debug)]
struct Fwd {
    node: u16,
    lookup: u32,
    query: u32,
    epoch: u32,
    qtype: QType,
    name: std::sync::Arc<str>,
    /// The pod's query tuple, reversed: the answer's tuple.
    reply: Tuple,
    /// The upstream connection carrying it.
    conn: u32,
}

/// Per client pod dynamic state.
#[derive(Debug, Default)]
struct ClientState {
    dns_valid_until: Option<SimTime>,
    /// First address of the pod's cached answer (headless targets).
    dns_addr: Option<Ipv4Addr>,
    lookup: Option<u32>,
    dns_waiters: Vec<u32>,
    idle: Vec<u32>,
    open: u32,
    conn_waiters: VecDeque<u32>,
}

/// Per server pod dynamic state.
#[derive(Debug, Default)]
struct ServerState {
    busy: u32,
    queue: VecDeque<u32>,
    /// CoreDNS: when the pod is next free.
    dns_free: SimTime,
    /// CoreDNS: queries received.
    dns_queries: u64,
}

struct LookupSlot {
    epoch: u32,
    pod: u32,
    lookup: Lookup,
    /// Source ports of the lookup's sockets (slot → port).
    ports: Vec<(u32, u16)>,
    /// Queries sent: id and name asked.
    queries: Vec<(QueryId, std::sync::Arc<str>)>,
    timer_at: Option<SimTime>,
    had_timeout: bool,
    /// The request a per-request lookup resolves for (`None`: the pod's cache).
    owner: Option<u32>,
    /// The owner's attempt epoch when the lookup started.
    owner_epoch: u32,
    /// First A record per answered name.
    firsts: Vec<(std::sync::Arc<str>, Ipv4Addr)>,
}

impl std::fmt::Debug for LookupSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupSlot")
            .field("epoch", &self.epoch)
            .field("pod", &self.pod)
            .finish_non_exhaustive()
    }
}

/// Slab with free list and generations.
#[derive(Debug)]
struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Slab<T> {
    fn new() -> Slab<T> {
        Slab {
            items: Vec::new(),
            free: Vec::new(),
        }
    }
    fn insert(&mut self, v: T) -> u32 {
        if let Some(i) = self.free.pop() {
            self.items[i as usize] = Some(v);
            i
        } else {
            self.items.push(Some(v));
            u32::try_from(self.items.len() - 1).unwrap_or(u32::MAX)
        }
    }
    fn get(&self, i: u32) -> Option<&T> {
        self.items.get(i as usize).and_then(Option::as_ref)
    }
    fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.items.get_mut(i as usize).and_then(Option::as_mut)
    }
    fn remove(&mut self, i: u32) -> Option<T> {
        let v = self.items.get_mut(i as usize).and_then(Option::take);
        if v.is_some() {
            self.free.push(i);
        }
        v
    }
    fn live(&self) -> usize {
        self.items.len() - self.free.len()
    }
}

/// Counters the report is built from.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) sent: u64,
    pub(super) ok: u64,
    pub(super) failed: u64,
    pub(super) timeouts: u64,
    pub(super) retries: u64,
    pub(super) new_connections: u64,
    pub(super) failures_by_cause: BTreeMap<String, u64>,
    pub(super) dns_queries: u64,
    pub(super) coredns_queries: u64,
    /// Of which over TCP (NodeLocal DNSCache upstream).
    pub(super) coredns_tcp_queries: u64,
    pub(super) lookups_with_timeout: u64,
    pub(super) lookups_failed: u64,
    pub(super) syn_retransmits: Vec<u64>,
    /// Causes of conntrack drops at confirm (insert_failed) by kind, per node.
    pub(super) insert_failed_causes: Vec<BTreeMap<&'static str, u64>>,
    /// Packets lost on the path, by node (`u16::MAX`: in a pod), kind and reason.
    pub(super) packet_drops: BTreeMap<(u16, &'static str, DropReason), u64>,
}

/// Onset bookkeeping per node.
#[derive(Clone, Debug, Default)]
pub(super) struct NodeOnsets {
    pub(super) drop: Option<(SimTime, u32)>,
    pub(super) insert_failed: Option<(SimTime, u32)>,
    pub(super) early_drop: Option<(SimTime, u32)>,
    pub(super) clash_resolve: Option<(SimTime, u32)>,
    pub(super) count_peak: u32,
    /// `conntrack -S` state breakdown when `drop` first rose: (state, assured) → count.
    pub(super) table_at_drop: Option<TableCensus>,
}

/// What filled the table.
#[derive(Clone, Debug, Default)]
pub(super) struct TableCensus {
    pub(super) total: u64,
    pub(super) assured: u64,
    pub(super) by_state: BTreeMap<&'static str, u64>,
}

/// The whole simulated system.
pub(super) struct NodeSim {
    pub(super) world: World,
    sc: Scenario,
    inflight: Slab<InFlight>,
    flows: Slab<Flow>,
    reqs: Slab<Request>,
    lookups: Slab<LookupSlot>,
    upconns: Slab<UpConn>,
    fwds: Slab<Fwd>,
    /// Per node: its NodeLocal DNSCache agent (empty when disabled).
    pub(super) nodelocal: Vec<NodeLocal>,
    /// Per workload: whether it targets a headless Service (dials the resolved pod).
    wl_headless: Vec<bool>,
    clients: Vec<ClientState>,
    servers: Vec<ServerState>,
    arrivals: Vec<Arrivals>,
    wl_next_pod: Vec<usize>,
    rng_arrival: Vec<SimRng>,
    rng_path: SimRng,
    rng_server: SimRng,
    rng_client: SimRng,
    horizon: SimTime,
    pub(super) tally: Tally,
    pub(super) latency: Histogram,
    pub(super) wl_latency: Vec<Histogram>,
    pub(super) wl_tally: Vec<(u64, u64, u64, u64, u64)>,
    interval_latency: Histogram,
    pub(super) onsets: Vec<NodeOnsets>,
    pub(super) samples: Vec<Sample>,
    last_busy: Vec<u128>,
    last_counts: (u64, u64, u64, u64, u64),
    pub(super) coredns_peak_per_interval: u64,
    /// Engine lanes for constant-delay timers, by delay (nanoseconds).
    lanes: Vec<(u64, crate::engine::LaneId)>,
    next_epoch: u32,
}

impl std::fmt::Debug for NodeSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSim")
            .field("requests_live", &self.reqs.live())
            .finish_non_exhaustive()
    }
}

fn mix(t: &Tuple) -> u64 {
    let mut h = u64::from(u32::from(t.src)) << 32 | u64::from(u32::from(t.dst));
    h ^= (u64::from(t.sport) << 16 | u64::from(t.dport)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

fn service_time(st: ServiceTime, rng: &mut SimRng) -> SimDuration {
    match st {
        ServiceTime::Constant(d) => d,
        ServiceTime::Exponential { mean } => SimDuration::from_nanos(rng.exp_nanos(mean.as_nanos().max(1))),
        ServiceTime::Lognormal { median, sigma } => {
            SimDuration::from_nanos(rng.lognormal_nanos(median.as_nanos().max(1), sigma))
        }
    }
}

/// The end of a walk through the data path.
enum WalkEnd {
    Delivered {
        at: SimTime,
        pkt: Packet,
    },
    Dropped {
        node: Option<u16>,
        reason: DropReason,
    },
    /// Windowed: processing starts later on a busy CPU.
    Defer {
        at: SimTime,
        flight: InFlight,
        waited: bool,
    },
    /// Windowed: a new entry awaits its confirm at `at`.
    Confirm {
        at: SimTime,
        flight: InFlight,
    },
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
                Arrivals::new(RateProfile::from_points(pts))
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
            horizon,
            tally: Tally {
                syn_retransmits: vec![0; n_nodes],
                insert_failed_causes: vec![BTreeMap::new(); n_nodes],
                ..Tally::default()
            },
            latency: Histogram::new(),
            wl_latency: (0..n_wl).map(|_| Histogram::new()).collect(),
            wl_tally: vec![(0, 0, 0, 0, 0); n_wl],
            interval_latency: Histogram::new(),
            onsets: vec![NodeOnsets::default(); n_nodes],
            samples: Vec::new(),
            last_busy: vec![0; n_nodes],
            last_counts: (0, 0, 0, 0, 0),
            coredns_peak_per_interval: 0,
            lanes: Vec::new(),
            next_epoch: 0,
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
                SimTime::ZERO,
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
        for n in &self.sc.nodes {
            let (sends, fail) = self.sc.kernel.syn_schedule(n.sysctls.values.tcp_syn_retries);
            for pair in sends.windows(2) {
                d.push((pair[1] - pair[0]).as_nanos());
            }
            if let Some(last) = sends.last() {
                d.push((fail - *last).as_nanos());
            }
        }
        d.push(SimDuration::from_secs(5).as_nanos());
        d.sort_unstable();
        d.dedup();
        d.retain(|x| *x > 0);
        d.truncate(crate::engine::MAX_LANES);
        d
    }

    /// Registers the lane created for `delay`.
    pub(super) fn add_lane(&mut self, delay: u64, lane: crate::engine::LaneId) {
        self.lanes.push((delay, lane));
    }

    /// Schedules `ev` after `delay`, on its lane if it has one.
    fn schedule_timer(&self, cx: &mut Context<'_, Event>, delay: SimDuration, ev: Event) {
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

    // ---------------------------------------------------------------------------------
    // The data path walk.

    fn cpu_for(&mut self, node: usize, pkt: &Packet, pinned: Option<u16>) -> u16 {
        let cpus = self.world.nodes[node].cpus.max(1);
        if let Some(c) = pinned {
            return c % u16::try_from(cpus).unwrap_or(1);
        }
        // RSS/RPS: the flow hash picks the CPU (both directions of a flow alike).
        let t = pkt.tuple;
        let key = if (t.src, t.sport) < (t.dst, t.dport) {
            t
        } else {
            t.reversed()
        };
        u16::try_from(mix(&key) % u64::from(cpus)).unwrap_or(0)
    }

    /// Walks a packet from namespace `at` (entered through `in_dev`) at time `t`.
    /// `windowed`: new conntrack entries are confirmed by a later event.
    #[allow(clippy::too_many_arguments)]
    fn walk(
        &mut self,
        mut at: NetnsId,
        mut in_dev: Option<crate::topology::DeviceId>,
        mut pkt: Packet,
        mut t: SimTime,
        now: SimTime,
        purpose: Purpose,
        windowed: bool,
        mut pinned_cpu: Option<u16>,
        mut waited: bool,
    ) -> WalkEnd {
        for _ in 0..16 {
            let host = self.world.host_of_netns.get(at.index()).copied().flatten();
            let decision = if let Some(node) = host {
                let n = usize::from(node);
                let cpu = self.cpu_for(n, &pkt, pinned_cpu);
                pinned_cpu = None;
                let c = usize::from(cpu);
                let start = if windowed {
                    let flight = InFlight {
                        pkt,
                        at,
                        in_dev,
                        purpose,
                        node,
                        cpu,
                        half: None,
                    };
                    if t > now {
                        // Arrives in the future (link latency): walk on when it arrives.
                        return WalkEnd::Defer {
                            at: t,
                            flight,
                            waited: false,
                        };
                    }
                    let nd = &mut self.world.nodes[n];
                    if waited {
                        // At its reserved slot; if the previous new-entry packet on this CPU
                        // took longer than its estimate it is still running: wait for it.
                        if nd.new_busy[c] > now {
                            return WalkEnd::Defer {
                                at: nd.new_busy[c],
                                flight,
                                waited: true,
                            };
                        }
                    } else if nd.cpu_free[c] > now || nd.new_busy[c] > now {
                        // The CPU is busy: reserve the next slot with the node's running
                        // estimate of a new-entry packet's cost, and start there.
                        let slot = nd.cpu_free[c].max(nd.new_busy[c]).max(now);
                        nd.cpu_free[c] = slot + nd.new_cost_estimate;
                        return WalkEnd::Defer {
                            at: slot,
                            flight,
                            waited: true,
                        };
                    }
                    waited = false;
                    now
                } else {
                    t.max(self.world.nodes[n].cpu_free[c])
                };
                let world = &mut self.world;
                let node_ref = &mut world.nodes[n];
                // A walk that starts in a host namespace (no input device) is a packet
                // of a host socket (the NodeLocal DNSCache agent): OUTPUT first.
                let entry = match in_dev {
                    None => Entry::LocalOut,
                    Some(d) => Entry::Received {
                        in_dev: world.topo.device(d).map_or("eth0", crate::topology::Device::name),
                    },
                };
                let half = node_ref.host.first_half(
                    &mut node_ref.ct,
                    &world.topo,
                    entry,
                    pkt,
                    cpu,
                    &mut self.rng_path,
                    start,
                    &mut Quiet,
                );
                let cost = self.charge(n, cpu, start, now, &half, windowed);
                let end = start + cost;
                self.note_onsets(n, end, &half);
                if half.new_entry {
                    if windowed {
                        let flight = InFlight {
                            pkt: half.pkt,
                            at,
                            in_dev,
                            purpose,
                            node,
                            cpu,
                            half: Some(half),
                        };
                        return WalkEnd::Confirm { at: end, flight };
                    }
                    let node_ref = &mut self.world.nodes[n];
                    let c = node_ref
                        .host
                        .confirm(&mut node_ref.ct, &half, cpu, end, &mut Quiet);
                    if let Confirmed::Dropped(reason) = c {
                        self.note_confirm_drop(n, end, reason, &half.pkt);
                        return WalkEnd::Dropped {
                            node: Some(node),
                            reason,
                        };
                    }
                    self.note_clash(n, end, c);
                }
                pkt = half.pkt;
                t = end;
                match half.verdict {
                    HalfVerdict::Dropped(reason) => {
                        return WalkEnd::Dropped {
                            node: Some(node),
                            reason,
                        };
                    }
                    HalfVerdict::Local => {
                        return WalkEnd::Delivered { at: t, pkt };
                    }
                    HalfVerdict::Forward { decision } => decision,
                }
            } else {
                match self.world.topo.route(at, pkt.tuple.dst) {
                    RouteDecision::Local { .. } => {
                        return WalkEnd::Delivered { at: t, pkt };
                    }
                    RouteDecision::Forward(f) => f,
                    RouteDecision::Unreachable(_) => {
                        return WalkEnd::Dropped {
                            node: None,
                            reason: DropReason::NoRoute,
                        };
                    }
                }
            };
            match decision.next {
                NextHop::Netns {
                    netns, in_dev: dev, ..
                } => {
                    let from_node = self.world.topo.node_of(at);
                    let to_node = self.world.topo.node_of(netns);
                    if from_node != to_node {
                        t += NODE_LINK_LATENCY;
                    }
                    at = netns;
                    in_dev = Some(dev);
                }
                NextHop::External => {
                    return WalkEnd::Dropped {
                        node: None,
                        reason: DropReason::NoRoute,
                    };
                }
            }
        }
        WalkEnd::Dropped {
            node: None,
            reason: DropReason::NoRoute,
        }
    }

    /// Charges a packet's CPU time on a node; returns the processing time.
    ///
    /// The per-CPU `cpu_free` is a work horizon: work is added at booking time (`now`),
    /// even for packets whose arrival `start` lies ahead (inline walks compute later hops
    /// in advance), so future bookings never leave the CPU looking busy while it idles.
    fn charge(
        &mut self,
        n: usize,
        cpu: u16,
        start: SimTime,
        now: SimTime,
        half: &FirstHalf,
        windowed: bool,
    ) -> SimDuration {
        let c = &self.sc.cost;
        // The data plane's lookups: rules (iptables or nftables) plus, outside iptables
        // mode, its hash lookups and scheduler steps (zero in iptables mode).
        let rules = c.per_rule.saturating_mul(u64::from(half.rules_evaluated))
            + c.per_hash_lookup
                .saturating_mul(u64::from(half.proxy.hash_lookups))
            + c.per_scheduler_op
                .saturating_mul(u64::from(half.proxy.scheduler_ops));
        let ct = if half.new_entry {
            c.per_conntrack_insert
        } else {
            c.per_conntrack_lookup
        };
        let cost = c.per_packet + rules + ct;
        let node = &mut self.world.nodes[n];
        let c = usize::from(cpu);
        if windowed {
            node.new_busy[c] = start + cost;
            // Running estimate of a new-entry packet's cost (for slot reservations).
            if half.new_entry {
                let est = node.new_cost_estimate.as_nanos();
                node.new_cost_estimate = SimDuration::from_nanos(est - est / 8 + cost.as_nanos() / 8);
            }
            node.cpu_free[c] = node.cpu_free[c].max(start + cost);
        } else {
            node.cpu_free[c] = node.cpu_free[c].max(now) + cost;
        }
        node.busy_ns += u128::from(cost.as_nanos());
        node.rules_ns += u128::from(rules.as_nanos());
        node.proxy_all += half.proxy;
        if half.new_entry {
            node.rules_new += u64::from(half.rules_evaluated);
            node.new_packets += 1;
            node.proxy_new += half.proxy;
        }
        cost
    }

    fn counters(&self, n: usize) -> crate::conntrack::CtStats {
        self.world.nodes[n].ct.stats_sum(0)
    }

    fn note_onsets(&mut self, n: usize, at: SimTime, half: &FirstHalf) {
        let count = self.world.nodes[n].ct.count(0);
        let o = &mut self.onsets[n];
        o.count_peak = o.count_peak.max(count);
        let max = self.world.nodes[n].ct.config().max;
        if let HalfVerdict::Dropped(DropReason::ConntrackTableFull) = half.verdict
            && o.drop.is_none()
        {
            o.drop = Some((at, count));
            let census = self.census(n, at);
            self.onsets[n].table_at_drop = Some(census);
        }
        // early_drop only happens when an allocation found the table at its max.
        if half.new_entry
            && self.onsets[n].early_drop.is_none()
            && count + 1 >= max
            && self.counters(n).early_drop > 0
        {
            self.onsets[n].early_drop = Some((at, count));
        }
    }

    fn census(&self, n: usize, now: SimTime) -> TableCensus {
        let ct = &self.world.nodes[n].ct;
        let mut c = TableCensus::default();
        for id in ct.conn_ids() {
            if let Some(conn) = ct.conn(id) {
                c.total += 1;
                if conn.assured {
                    c.assured += 1;
                }
                let expired = conn.expires.is_some_and(|e| e <= now);
                let state = match (conn.tcp_state, conn.original.proto, expired) {
                    (_, _, true) => "expired (not yet reaped)",
                    (Some(s), _, _) => s.as_str(),
                    (None, Proto::Udp, _) => "UDP",
                    (None, _, _) => "other",
                };
                *c.by_state.entry(state).or_insert(0) += 1;
            }
        }
        c
    }

    fn note_confirm_drop(&mut self, n: usize, at: SimTime, reason: DropReason, pkt: &Packet) {
        let count = self.world.nodes[n].ct.count(0);
        if matches!(
            reason,
            DropReason::ConntrackInsertFailed | DropReason::ConntrackChainTooLong
        ) {
            let cause = match (reason, pkt.tuple.proto) {
                (DropReason::ConntrackChainTooLong, _) => "hash chain too long",
                (_, Proto::Udp) => "UDP clash on confirm (parallel packets DNATed differently)",
                (_, Proto::Tcp) => "TCP clash on confirm (same tuple or NAT port taken)",
                _ => "clash on confirm",
            };
            *self.tally.insert_failed_causes[n].entry(cause).or_insert(0) += 1;
        }
        self.check_counter_onsets(n, at, count);
    }

    fn note_clash(&mut self, n: usize, at: SimTime, c: Confirmed) {
        if let Confirmed::Pass {
            clash_resolved: true, ..
        } = c
        {
            let count = self.world.nodes[n].ct.count(0);
            self.check_counter_onsets(n, at, count);
        }
    }

    fn check_counter_onsets(&mut self, n: usize, at: SimTime, count: u32) {
        let s = self.counters(n);
        let o = &mut self.onsets[n];
        if o.insert_failed.is_none() && s.insert_failed > 0 {
            o.insert_failed = Some((at, count));
        }
        if o.clash_resolve.is_none() && s.clash_resolve > 0 {
            o.clash_resolve = Some((at, count));
        }
        if o.drop.is_none() && s.drop > 0 {
            o.drop = Some((at, count));
        }
    }

    /// Sends a packet from pod namespace `from` at `now`, scheduling whatever follows.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        cx: &mut Context<'_, Event>,
        from: NetnsId,
        pkt: Packet,
        at: SimTime,
        purpose: Purpose,
        windowed: bool,
        pinned_cpu: Option<u16>,
    ) {
        let now = cx.now();
        let end = self.walk(from, None, pkt, at, now, purpose, windowed, pinned_cpu, false);
        self.finish_walk(cx, end, purpose);
    }

    fn finish_walk(&mut self, cx: &mut Context<'_, Event>, end: WalkEnd, purpose: Purpose) {
        let now = cx.now();
        match end {
            WalkEnd::Delivered { at, pkt } => {
                let _ = cx.schedule_at(at.max(now), Event::Deliver { purpose, pkt });
            }
            WalkEnd::Dropped { node, reason } => self.on_dropped(node, reason, purpose),
            WalkEnd::Defer { at, flight, waited } => {
                let id = self.inflight.insert(flight);
                let _ = cx.schedule_at(at.max(now), Event::HopStart { inflight: id, waited });
            }
            WalkEnd::Confirm { at, flight } => {
                let id = self.inflight.insert(flight);
                let _ = cx.schedule_at(at.max(now), Event::Confirm { inflight: id });
            }
        }
    }

    /// Counts a packet lost on the path. Nothing else happens: TCP retransmits on its
    /// timer, the resolver on its try deadline, and the request deadline covers the rest.
    fn on_dropped(&mut self, node: Option<u16>, reason: DropReason, purpose: Purpose) {
        let what = match purpose {
            Purpose::Syn { .. } => "SYN",
            Purpose::SynAck { .. } => "SYN-ACK",
            Purpose::Request { .. } => "request",
            Purpose::Response { .. } => "response",
            Purpose::DnsQuery { .. } => "DNS query",
            Purpose::DnsReply { .. } => "DNS answer",
            Purpose::UpSyn { .. } => "NodeLocal DNSCache upstream SYN",
            Purpose::UpSynAck { .. } => "NodeLocal DNSCache upstream SYN-ACK",
            Purpose::UpQuery { .. } => "NodeLocal DNSCache upstream query",
            Purpose::UpReply { .. } => "NodeLocal DNSCache upstream answer",
            Purpose::Silent => "FIN/ACK",
        };
        *self
            .tally
            .packet_drops
            .entry((node.unwrap_or(u16::MAX), what, reason))
            .or_insert(0) += 1;
    }

    // ---------------------------------------------------------------------------------
    // Clients.

    fn on_arrival(&mut self, cx: &mut Context<'_, Event>, wl: u16) {
        let now = cx.now();
        let w = usize::from(wl);
        if let Some(t) = self.arrivals[w].next_after(now, self.horizon, &mut self.rng_arrival[w]) {
            let _ = cx.schedule_at(t, Event::Arrival { wl });
        }
        let pods = &self.world.wl_pods[w];
        if pods.is_empty() {
            return;
        }
        let pod = pods[self.wl_next_pod[w] % pods.len()];
        self.wl_next_pod[w] = self.wl_next_pod[w].wrapping_add(1);
        self.tally.sent += 1;
        self.wl_tally[w].0 += 1;
        let req = self.reqs.insert(Request {
            wl,
            pod,
            started: now,
            attempt: 0,
            epoch: 0,
            state: ReqState::WaitDns,
            flow: None,
            addr: None,
        });
        self.start_attempt(cx, req);
    }

    fn start_attempt(&mut self, cx: &mut Context<'_, Event>, req: u32) {
        let now = cx.now();
        self.next_epoch = self.next_epoch.wrapping_add(1);
        let epoch = self.next_epoch;
        let Some(r) = self.reqs.get_mut(req) else { return };
        // Epochs are globally unique so a stale timer of a freed request slot can never
        // match the request that reuses the slot.
        r.epoch = epoch;
        r.attempt += 1;
        r.flow = None;
        let (epoch, wl, pod) = (r.epoch, usize::from(r.wl), r.pod);
        let timeout = self.sc.workloads[wl].timeout;
        self.schedule_timer(cx, timeout, Event::Deadline { req, epoch });
        // DNS first, if this workload resolves.
        let dns = &self.sc.workloads[wl].dns;
        let need_dns = match dns.mode {
            DnsMode::None => false,
            DnsMode::PerRequest => true,
            DnsMode::Cached => self.clients[pod as usize]
                .dns_valid_until
                .is_none_or(|t| t <= now),
        };
        if need_dns {
            if let Some(r) = self.reqs.get_mut(req) {
                r.state = ReqState::WaitDns;
            }
            if dns.mode == DnsMode::PerRequest {
                // Each request runs its own lookup (no client cache).
                self.start_lookup(cx, pod, Some(req));
            } else {
                self.clients[pod as usize].dns_waiters.push(req);
                if self.clients[pod as usize].lookup.is_none() {
                    self.start_lookup(cx, pod, None);
                }
            }
        } else {
            self.get_connection(cx, req);
        }
    }

    fn get_connection(&mut self, cx: &mut Context<'_, Event>, req: u32) {
        let now = cx.now();
        let Some(r) = self.reqs.get(req).copied() else {
            return;
        };
        let wl = usize::from(r.wl);
        let cfg = self.sc.workloads[wl].connection;
        if cfg.mode == ConnectionMode::Pool {
            // Reuse an idle pooled connection (LIFO), closing ones idle too long.
            while let Some(f) = self.clients[r.pod as usize].idle.pop() {
                let Some(flow) = self.flows.get(f).copied() else {
                    continue;
                };
                if now.saturating_since(flow.idle_since) > cfg.idle_timeout {
                    self.close_flow(cx, f, true);
                    continue;
                }
                self.send_request(cx, req, f);
                return;
            }
            let cs = &mut self.clients[r.pod as usize];
            if cs.open >= cfg.pool_size.max(1) {
                cs.conn_waiters.push_back(req);
                if let Some(rm) = self.reqs.get_mut(req) {
                    rm.state = ReqState::WaitConn;
                }
                return;
            }
        }
        self.open_connection(cx, req);
    }

    fn open_connection(&mut self, cx: &mut Context<'_, Event>, req: u32) {
        let now = cx.now();
        let Some(r) = self.reqs.get(req).copied() else {
            return;
        };
        let wl = usize::from(r.wl);
        let mut target = self.world.wl_target[wl];
        if self.wl_headless[wl] {
            // A headless Service: dial the pod address DNS gave (no VIP, no DNAT).
            let resolved = r.addr.or(self.clients[r.pod as usize].dns_addr);
            if let Some(ip) = resolved.filter(|ip| !ip.is_unspecified()) {
                target = SocketAddrV4::new(ip, target.port());
            }
        }
        if let Some(t) = self.socket_lb(r.pod, target) {
            target = t;
        } else {
            self.attempt_failed(cx, req, "ECONNREFUSED (Service without endpoints)");
            return;
        }
        let pod = &mut self.world.pods[r.pod as usize];
        let connected = match pod.sockets.connect(pod.ip, *target.ip(), target.port(), now) {
            Ok(c) => c,
            Err(_) => {
                self.attempt_failed(cx, req, "EADDRNOTAVAIL (no free ephemeral port)");
                return;
            }
        };
        let node = usize::from(pod.node);
        let netns = pod.netns;
        let sys = &self.sc.nodes[node].sysctls.values;
        let timer = crate::socket::SynTimer::start(&self.sc.kernel, sys.tcp_syn_retries, now);
        self.next_epoch = self.next_epoch.wrapping_add(1);
        let epoch = self.next_epoch;
        let flow = self.flows.insert(Flow {
            epoch,
            pod: r.pod,
            tuple: connected.tuple,
            isn: connected.isn,
            state: FlowState::Connecting,
            syn_timer: Some(timer),
            req: Some(req),
            server_pod: None,
            peer: None,
            requests: 0,
            idle_since: now,
        });
        self.clients[r.pod as usize].open += 1;
        if let Some(rm) = self.reqs.get_mut(req) {
            rm.state = ReqState::Connecting;
            rm.flow = Some(flow);
        }
        self.tally.new_connections += 1;
        self.schedule_timer(
            cx,
            timer.deadline().at().saturating_since(now),
            Event::SynTimer { flow, epoch },
        );
        let mut pkt = Packet::new(connected.tuple, TcpFlags::SYN);
        pkt.seq = connected.isn;
        self.send(cx, netns, pkt, now, Purpose::Syn { flow, epoch }, true, None);
    }

    /// Cilium's socket LB (`cil_sock4_connect`) on the client pod's node: the address the
    /// socket really connects to (`target` itself outside eBPF mode or for non-Services);
    /// `None` for a Service without backends (connect() fails with ECONNREFUSED). The
    /// lookup's CPU is charged to the node.
    fn socket_lb(&mut self, pod: u32, target: SocketAddrV4) -> Option<SocketAddrV4> {
        let p = &self.world.pods[pod as usize];
        let (ip, node) = (p.ip, usize::from(p.node));
        self.socket_lb_on(node, ip, target, Proto::Tcp)
    }

    /// [`Self::socket_lb`] for a socket of `proto` bound to `ip` on `node` (a pod or the
    /// host namespace: Cilium's cgroup hooks cover both by default).
    fn socket_lb_on(
        &mut self,
        node: usize,
        ip: Ipv4Addr,
        target: SocketAddrV4,
        proto: Proto,
    ) -> Option<SocketAddrV4> {
        let c = self.sc.cost;
        let nd = &mut self.world.nodes[node];
        let Some(np) = nd.host.proxy.as_mut() else {
            return Some(target);
        };
        let ProxyImpl::Ebpf(e) = &mut np.imp else {
            return Some(target);
        };
        let fp = e.socket_connect(Tuple::new(proto, ip, 0, *target.ip(), target.port()), &mut np.rng);
        np.connect_cost += fp.cost;
        let ns = c.per_hash_lookup.saturating_mul(u64::from(fp.cost.hash_lookups))
            + c.per_scheduler_op
                .saturating_mul(u64::from(fp.cost.scheduler_ops));
        nd.busy_ns += u128::from(ns.as_nanos());
        nd.rules_ns += u128::from(ns.as_nanos());
        match (fp.verdict, fp.backend) {
            (ProxyVerdict::Translate, Some(b)) => Some(b),
            (ProxyVerdict::Reject, _) => None,
            _ => Some(target),
        }
    }

    fn on_syn_timer(&mut self, cx: &mut Context<'_, Event>, flow: u32, epoch: u32) {
        let Some(f) = self.flows.get_mut(flow) else { return };
        if f.epoch != epoch || f.state != FlowState::Connecting {
            return;
        }
        let Some(mut timer) = f.syn_timer else { return };
        let next = timer.on_timer();
        f.syn_timer = Some(timer);
        let (tuple, isn, pod) = (f.tuple, f.isn, f.pod);
        match next {
            crate::socket::SynDeadline::Retransmit(t) => {
                self.schedule_timer(cx, t.saturating_since(cx.now()), Event::SynTimer { flow, epoch });
            }
            crate::socket::SynDeadline::TimedOut(_) => {
                // connect() fails with ETIMEDOUT after the last retransmission.
                if let Some(req) = f.req {
                    let p = &mut self.world.pods[pod as usize];
                    let _ = p.sockets.abort(tuple, AbortReason::TimedOut, cx.now());
                    self.drop_flow(flow);
                    self.attempt_failed(cx, req, "ETIMEDOUT (SYN retries exhausted)");
                }
                return;
            }
        }
        let node = usize::from(self.world.pods[pod as usize].node);
        self.tally.syn_retransmits[node] += 1;
        let netns = self.world.pods[pod as usize].netns;
        let mut pkt = Packet::new(tuple, TcpFlags::SYN);
        pkt.seq = isn;
        self.send(cx, netns, pkt, cx.now(), Purpose::Syn { flow, epoch }, true, None);
    }

    fn drop_flow(&mut self, flow: u32) {
        if let Some(f) = self.flows.remove(flow) {
            let cs = &mut self.clients[f.pod as usize];
            cs.open = cs.open.saturating_sub(1);
        }
    }

    fn attempt_failed(&mut self, cx: &mut Context<'_, Event>, req: u32, cause: &str) {
        let Some(r) = self.reqs.get_mut(req) else { return };
        if r.state == ReqState::Done || r.state == ReqState::Backoff {
            return;
        }
        *self.tally.failures_by_cause.entry(cause.to_string()).or_insert(0) += 1;
        let wl = usize::from(r.wl);
        let retries = self.sc.workloads[wl].retries;
        self.next_epoch = self.next_epoch.wrapping_add(1);
        r.epoch = self.next_epoch; // invalidates the attempt's deadline
        let retry_epoch = r.epoch;
        if r.attempt <= retries.max {
            r.state = ReqState::Backoff;
            self.tally.retries += 1;
            self.wl_tally[wl].4 += 1;
            self.schedule_timer(
                cx,
                retries.backoff,
                Event::Retry {
                    req,
                    epoch: retry_epoch,
                },
            );
        } else {
            r.state = ReqState::Done;
            self.tally.failed += 1;
            self.wl_tally[wl].2 += 1;
            self.reqs.remove(req);
        }
    }

    fn on_deadline(&mut self, cx: &mut Context<'_, Event>, req: u32, epoch: u32) {
        let now = cx.now();
        let Some(r) = self.reqs.get(req).copied() else {
            return;
        };
        if r.epoch != epoch || r.state == ReqState::Done || r.state == ReqState::Backoff {
            return;
        }
        self.tally.timeouts += 1;
        self.wl_tally[usize::from(r.wl)].3 += 1;
        let cause = match r.state {
            ReqState::WaitDns => "timeout waiting for DNS",
            ReqState::WaitConn => "timeout waiting for a pooled connection",
            ReqState::Connecting => "timeout in connect (SYN unanswered)",
            ReqState::Sent => "timeout waiting for the response",
            ReqState::Backoff | ReqState::Done => "timeout",
        };
        // Abandon whatever the attempt holds.
        match r.state {
            ReqState::WaitDns => {
                let cs = &mut self.clients[r.pod as usize];
                cs.dns_waiters.retain(|x| *x != req);
            }
            ReqState::WaitConn => {
                let cs = &mut self.clients[r.pod as usize];
                cs.conn_waiters.retain(|x| *x != req);
            }
            ReqState::Connecting | ReqState::Sent => {
                if let Some(f) = r.flow
                    && let Some(flow) = self.flows.get(f).copied()
                {
                    let p = &mut self.world.pods[flow.pod as usize];
                    if flow.state == FlowState::Connecting {
                        let _ = p.sockets.abort(flow.tuple, AbortReason::TimedOut, now);
                        self.drop_flow(f);
                    } else {
                        // The client gives up on the connection: close it (RST-free
                        // close; it leaves TIME_WAIT as an active close).
                        self.close_flow(cx, f, true);
                    }
                }
            }
            ReqState::Backoff | ReqState::Done => {}
        }
        self.attempt_failed(cx, req, cause);
    }

    fn send_request(&mut self, cx: &mut Context<'_, Event>, req: u32, flow: u32) {
        let now = cx.now();
        let Some(f) = self.flows.get_mut(flow) else { return };
        f.req = Some(req);
        let (epoch, tuple, pod) = (f.epoch, f.tuple, f.pod);
        if let Some(r) = self.reqs.get_mut(req) {
            r.state = ReqState::Sent;
            r.flow = Some(flow);
        }
        let netns = self.world.pods[pod as usize].netns;
        let pkt = Packet::new(tuple, TcpFlags::ACK.union(TcpFlags::PSH));
        self.send(cx, netns, pkt, now, Purpose::Request { flow, epoch }, false, None);
    }

    fn request_done(&mut self, cx: &mut Context<'_, Event>, flow: u32) {
        let now = cx.now();
        let Some(f) = self.flows.get_mut(flow) else { return };
        let Some(req) = f.req.take() else { return };
        f.requests += 1;
        f.idle_since = now;
        let requests = f.requests;
        if let Some(r) = self.reqs.remove(req) {
            let lat = now.saturating_since(r.started);
            self.latency.record(lat.as_nanos());
            self.interval_latency.record(lat.as_nanos());
            let wl = usize::from(r.wl);
            self.wl_latency[wl].record(lat.as_nanos());
            self.tally.ok += 1;
            self.wl_tally[wl].1 += 1;
            let cfg = self.sc.workloads[wl].connection;
            let keep = cfg.mode == ConnectionMode::Pool
                && cfg.max_requests_per_connection.is_none_or(|m| requests < m);
            if keep {
                let pod = r.pod as usize;
                if let Some(w) = self.clients[pod].conn_waiters.pop_front() {
                    self.send_request(cx, w, flow);
                } else {
                    self.clients[pod].idle.push(flow);
                }
            } else {
                self.close_flow(cx, flow, cfg.closer == Closer::Client);
            }
        }
    }

    /// Closes a connection: the FIN exchange through the data path, TIME_WAIT on the
    /// active closer, and hands the pool slot to a waiting request.
    fn close_flow(&mut self, cx: &mut Context<'_, Event>, flow: u32, client_first: bool) {
        let now = cx.now();
        let Some(f) = self.flows.remove(flow) else { return };
        let pod_idx = f.pod as usize;
        self.clients[pod_idx].open = self.clients[pod_idx].open.saturating_sub(1);
        self.clients[pod_idx].idle.retain(|x| *x != flow);
        let netns = self.world.pods[pod_idx].netns;
        let role = if client_first {
            CloseRole::ActiveCloser
        } else {
            CloseRole::PassiveCloser
        };
        let _ = self.world.pods[pod_idx]
            .sockets
            .close(f.tuple, role, f.isn.wrapping_add(1), now);
        if let Some(sp) = f.server_pod {
            // The server's socket for this connection.
            if let Some(server_tuple) = self.server_tuple(&f) {
                let srole = if client_first {
                    CloseRole::PassiveCloser
                } else {
                    CloseRole::ActiveCloser
                };
                let _ = self.world.pods[sp as usize]
                    .sockets
                    .close(server_tuple, srole, 1, now);
            }
        }
        if f.state == FlowState::Established {
            // FIN, FIN-ACK, ACK through conntrack (closer's FIN first).
            let fin = Packet::new(f.tuple, TcpFlags::FIN_ACK);
            if client_first {
                self.send(cx, netns, fin, now, Purpose::Silent, false, None);
                self.send_from_server(cx, &f, TcpFlags::FIN_ACK, now + SimDuration::from_micros(100));
                self.send(
                    cx,
                    netns,
                    Packet::new(f.tuple, TcpFlags::ACK),
                    now + SimDuration::from_micros(200),
                    Purpose::Silent,
                    false,
                    None,
                );
            } else {
                self.send_from_server(cx, &f, TcpFlags::FIN_ACK, now);
                self.send(
                    cx,
                    netns,
                    fin,
                    now + SimDuration::from_micros(100),
                    Purpose::Silent,
                    false,
                    None,
                );
                self.send_from_server(cx, &f, TcpFlags::ACK, now + SimDuration::from_micros(200));
            }
        }
        // A pool slot freed: open a connection for a waiting request.
        let wl = match self.world.pods[pod_idx].role {
            PodRole::Client { wl } => usize::from(wl),
            PodRole::Server { .. } => return,
        };
        if self.sc.workloads[wl].connection.mode == ConnectionMode::Pool
            && let Some(w) = self.clients[pod_idx].conn_waiters.pop_front()
        {
            self.open_connection(cx, w);
        }
    }

    /// The server-side view of a connection: (pod ip:port → client ip:port) — the
    /// client's source as the server sees it (after any SNAT).
    fn server_tuple(&self, f: &Flow) -> Option<Tuple> {
        let sp = f.server_pod?;
        let pod = &self.world.pods[sp as usize];
        let port = pod.listener.as_ref().map(|l| l.local().port())?;
        let (ip, cport) = f
            .peer
            .map_or((f.tuple.src, f.tuple.sport), |p| (*p.ip(), p.port()));
        Some(Tuple::new(Proto::Tcp, pod.ip, port, ip, cport))
    }

    fn send_from_server(&mut self, cx: &mut Context<'_, Event>, f: &Flow, flags: TcpFlags, at: SimTime) {
        let Some(t) = self.server_tuple(f) else { return };
        let Some(sp) = f.server_pod else { return };
        let netns = self.world.pods[sp as usize].netns;
        self.send(cx, netns, Packet::new(t, flags), at, Purpose::Silent, false, None);
    }

    // ---------------------------------------------------------------------------------
    // Deliveries.

    fn on_deliver(&mut self, cx: &mut Context<'_, Event>, purpose: Purpose, pkt: Packet) {
        let now = cx.now();
        match purpose {
            Purpose::Syn { flow, epoch } => {
                let Some(f) = self.flows.get(flow).copied() else {
                    return;
                };
                if f.epoch != epoch {
                    return;
                }
                let Some(sp) = self.pod_at(pkt.tuple.dst) else {
                    return;
                };
                let client = SocketAddrV4::new(pkt.tuple.src, pkt.tuple.sport);
                let pod = &mut self.world.pods[sp as usize];
                let Some(listener) = pod.listener.as_mut() else {
                    return;
                };
                let outcome = listener.on_syn(client, pod.sockets.stats_mut());
                match outcome {
                    SynOutcome::SynAck | SynOutcome::SynAckRetransmit | SynOutcome::SynCookie => {
                        if let Some(fm) = self.flows.get_mut(flow) {
                            fm.server_pod = Some(sp);
                            fm.peer = Some(client);
                        }
                        let reply = Packet::new(pkt.tuple.reversed(), TcpFlags::SYN_ACK);
                        let netns = self.world.pods[sp as usize].netns;
                        self.send(
                            cx,
                            netns,
                            reply,
                            now,
                            Purpose::SynAck { flow, epoch },
                            false,
                            None,
                        );
                    }
                    SynOutcome::Dropped => {}
                }
            }
            Purpose::SynAck { flow, epoch } => {
                let Some(f) = self.flows.get_mut(flow) else { return };
                if f.epoch != epoch || f.state != FlowState::Connecting {
                    return;
                }
                f.state = FlowState::Established;
                f.syn_timer = None;

                let req = f.req;
                if let Some(req) = req {
                    self.send_request(cx, req, flow);
                }
            }
            Purpose::Request { flow, epoch } => {
                let Some(f) = self.flows.get(flow).copied() else {
                    return;
                };
                if f.epoch != epoch {
                    return;
                }
                let Some(sp) = f.server_pod.or_else(|| self.pod_at(pkt.tuple.dst)) else {
                    return;
                };
                if f.requests == 0 {
                    // The handshake's ACK completes the connection on the server.
                    let client = SocketAddrV4::new(pkt.tuple.src, pkt.tuple.sport);
                    let pod = &mut self.world.pods[sp as usize];
                    if let Some(l) = pod.listener.as_mut() {
                        match l.on_ack(client, pod.sockets.stats_mut()) {
                            AckOutcome::Queued => {
                                let _ = l.accept();
                                let st = Tuple::new(
                                    Proto::Tcp,
                                    pkt.tuple.dst,
                                    pkt.tuple.dport,
                                    pkt.tuple.src,
                                    pkt.tuple.sport,
                                );
                                let _ = pod.sockets.insert_established(st, now);
                            }
                            AckOutcome::Overflow | AckOutcome::Reset => return,
                        }
                    }
                }
                self.server_enqueue(cx, sp, flow);
            }
            Purpose::Response { flow, epoch } => {
                let Some(f) = self.flows.get(flow).copied() else {
                    return;
                };
                if f.epoch != epoch {
                    return;
                }
                self.request_done(cx, flow);
            }
            Purpose::DnsQuery {
                lookup,
                query,
                epoch,
                qtype,
            } => {
                if self.pod_at(pkt.tuple.dst).is_some() {
                    self.coredns_receive(cx, pkt, lookup, query, epoch, qtype, u32::MAX);
                } else {
                    self.nodelocal_receive(cx, pkt, lookup, query, epoch, qtype);
                }
            }
            Purpose::DnsReply {
                lookup,
                query,
                epoch,
                rcode,
                records,
                first,
            } => {
                self.dns_answer_arrived(cx, lookup, query, epoch, rcode, records, first);
            }
            Purpose::UpSyn { conn, epoch } => {
                let Some(dp) = self.pod_at(pkt.tuple.dst) else {
                    return;
                };
                let Some(c) = self.upconns.get_mut(conn) else {
                    return;
                };
                if c.epoch != epoch || c.state != UpState::Connecting {
                    return;
                }
                c.server = Some((
                    dp,
                    pkt.tuple.dport,
                    SocketAddrV4::new(pkt.tuple.src, pkt.tuple.sport),
                ));
                let netns = self.world.pods[dp as usize].netns;
                let reply = Packet::new(pkt.tuple.reversed(), TcpFlags::SYN_ACK);
                self.send(
                    cx,
                    netns,
                    reply,
                    now,
                    Purpose::UpSynAck { conn, epoch },
                    false,
                    None,
                );
            }
            Purpose::UpSynAck { conn, epoch } => {
                let Some(c) = self.upconns.get_mut(conn) else {
                    return;
                };
                if c.epoch != epoch || c.state != UpState::Connecting {
                    return;
                }
                c.syn_timer = None;
                match c.fwd {
                    Some(f) => self.upstream_send(cx, conn, f),
                    None => self.upconn_idle(cx, conn),
                }
            }
            Purpose::UpQuery { conn, epoch, fwd } => {
                let Some(f) = self.fwds.get(fwd) else { return };
                let (lookup, query, fepoch, qtype) = (f.lookup, f.query, f.epoch, f.qtype);
                if self.upconns.get(conn).is_some_and(|c| c.epoch == epoch) {
                    self.coredns_receive(cx, pkt, lookup, query, fepoch, qtype, fwd);
                }
            }
            Purpose::UpReply {
                conn,
                epoch,
                fwd,
                rcode,
                records,
                first,
            } => {
                self.upstream_answer(
                    cx,
                    conn,
                    epoch,
                    fwd,
                    Cached {
                        rcode,
                        records,
                        first,
                    },
                );
            }
            Purpose::Silent => {}
        }
    }

    fn pod_at(&self, ip: Ipv4Addr) -> Option<u32> {
        let netns = self.world.topo.pod_by_ip(ip)?;
        self.world.pod_of_netns.get(netns.index()).copied().flatten()
    }

    fn server_enqueue(&mut self, cx: &mut Context<'_, Event>, sp: u32, flow: u32) {
        let svc = match self.world.pods[sp as usize].role {
            PodRole::Server { svc } => usize::from(svc),
            PodRole::Client { .. } => return,
        };
        let conc = self.sc.services[svc].server.concurrency.max(1);
        let s = &mut self.servers[sp as usize];
        if s.busy < conc {
            s.busy += 1;
            let d = service_time(self.sc.services[svc].server.service_time, &mut self.rng_server);
            let epoch = self.flows.get(flow).map_or(0, |f| f.epoch);
            let _ = cx.schedule_at(
                cx.now() + d,
                Event::ServerDone {
                    flow,
                    epoch,
                    server: sp,
                },
            );
        } else {
            s.queue.push_back(flow);
        }
    }

    fn on_server_done(&mut self, cx: &mut Context<'_, Event>, flow: u32, epoch: u32, sp: u32) {
        let now = cx.now();
        if let Some(f) = self.flows.get(flow).copied()
            && f.epoch == epoch
            && let Some(t) = self.server_tuple(&f)
        {
            let netns = self.world.pods[sp as usize].netns;
            let pkt = Packet::new(t, TcpFlags::ACK.union(TcpFlags::PSH));
            self.send(
                cx,
                netns,
                pkt,
                now,
                Purpose::Response { flow, epoch },
                false,
                None,
            );
        }
        // The worker takes the next queued request of this pod, if any.
        let svc = match self.world.pods[sp as usize].role {
            PodRole::Server { svc } => usize::from(svc),
            PodRole::Client { .. } => return,
        };
        let s = &mut self.servers[sp as usize];
        s.busy = s.busy.saturating_sub(1);
        while let Some(next) = self.servers[sp as usize].queue.pop_front() {
            if let Some(nf) = self.flows.get(next).copied() {
                self.servers[sp as usize].busy += 1;
                let d = service_time(self.sc.services[svc].server.service_time, &mut self.rng_server);
                let _ = cx.schedule_at(
                    now + d,
                    Event::ServerDone {
                        flow: next,
                        epoch: nf.epoch,
                        server: sp,
                    },
                );
                break;
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // DNS.

    /// Starts a lookup for `pod`: for one request (`owner`, per-request resolution) or
    /// for every request waiting on the pod's cache.
    fn start_lookup(&mut self, cx: &mut Context<'_, Event>, pod: u32, owner: Option<u32>) {
        let now = cx.now();
        let wl = match self.world.pods[pod as usize].role {
            PodRole::Client { wl } => usize::from(wl),
            PodRole::Server { .. } => return,
        };
        let name = self.sc.workloads[wl].dns.name.clone();
        let Some(conf) = self.world.pods[pod as usize].resolv.clone() else {
            return;
        };
        let Ok(lookup) = Lookup::new(&conf, &name, now) else {
            // An invalid name cannot be resolved: every waiter fails.
            let waiters = match owner {
                Some(r) => vec![r],
                None => std::mem::take(&mut self.clients[pod as usize].dns_waiters),
            };
            for r in waiters {
                self.attempt_failed(cx, r, "DNS: invalid name");
            }
            return;
        };
        self.next_epoch = self.next_epoch.wrapping_add(1);
        let id = self.lookups.insert(LookupSlot {
            epoch: self.next_epoch,
            pod,
            lookup,
            ports: Vec::new(),
            queries: Vec::new(),
            timer_at: None,
            had_timeout: false,
            owner,
            owner_epoch: owner.and_then(|r| self.reqs.get(r)).map_or(0, |r| r.epoch),
            firsts: Vec::new(),
        });
        if self.sc.workloads[wl].dns.mode == DnsMode::Cached {
            self.clients[pod as usize].lookup = Some(id);
        }
        self.drive_lookup(cx, id);
    }

    fn drive_lookup(&mut self, cx: &mut Context<'_, Event>, id: u32) {
        let now = cx.now();
        let mut sends = 0u32;
        loop {
            let Some(slot) = self.lookups.get_mut(id) else {
                return;
            };
            let action = slot.lookup.next_action(now);
            match action {
                Action::Send(q) => {
                    let pod = slot.pod;
                    let epoch = slot.epoch;
                    let port = match slot.ports.iter().find(|(s, _)| *s == q.socket.0) {
                        Some((_, p)) => *p,
                        None => {
                            let sys = &self.sc.nodes[usize::from(self.world.pods[pod as usize].node)]
                                .sysctls
                                .values;
                            let (lo, hi) = sys.ip_local_port_range;
                            let span = u64::from(hi.saturating_sub(lo)) + 1;
                            let p =
                                lo.saturating_add(u16::try_from(self.rng_client.below(span)).unwrap_or(0));
                            if let Some(slot) = self.lookups.get_mut(id) {
                                slot.ports.push((q.socket.0, p));
                            }
                            p
                        }
                    };
                    if let Some(slot) = self.lookups.get_mut(id) {
                        slot.queries.push((q.id, q.name.clone()));
                    }
                    let p = &self.world.pods[pod as usize];
                    let tuple = Tuple::new(Proto::Udp, p.ip, port, q.server, 53);
                    let netns = p.netns;
                    let wl = match p.role {
                        PodRole::Client { wl } => usize::from(wl),
                        PodRole::Server { .. } => 0,
                    };
                    let d = &self.sc.workloads[wl].dns;
                    // The second send of a parallel pair: from another thread (other CPU)
                    // or back to back on the same thread.
                    let (at, cpu) = if sends == 0 {
                        (now, None)
                    } else {
                        let gap = d.pair_gap.saturating_mul(u64::from(sends));
                        if d.resolver_threads >= 2 {
                            let cpus = self.world.nodes[usize::from(p.node)].cpus;
                            (
                                now + gap,
                                Some(u16::try_from(self.rng_client.below(u64::from(cpus))).unwrap_or(0)),
                            )
                        } else {
                            (now + gap, None)
                        }
                    };
                    let first_cpu = if sends == 0 && d.resolver_threads >= 2 {
                        let cpus = self.world.nodes[usize::from(p.node)].cpus;
                        Some(u16::try_from(self.rng_client.below(u64::from(cpus))).unwrap_or(0))
                    } else {
                        None
                    };
                    sends += 1;
                    self.tally.dns_queries += 1;
                    let purpose = Purpose::DnsQuery {
                        lookup: id,
                        query: q.id.get(),
                        epoch,
                        qtype: q.qtype,
                    };
                    let pkt = Packet::new(tuple, TcpFlags::NONE);
                    if at > now {
                        // Deferred second send: walk it when its time comes.
                        let flight = InFlight {
                            pkt,
                            at: netns,
                            in_dev: None,
                            purpose,
                            node: u16::MAX,
                            cpu: cpu.unwrap_or(u16::MAX),
                            half: None,
                        };
                        let iid = self.inflight.insert(flight);
                        let _ = cx.schedule_at(
                            at,
                            Event::HopStart {
                                inflight: iid,
                                waited: false,
                            },
                        );
                    } else {
                        self.send(cx, netns, pkt, at, purpose, true, first_cpu.or(cpu));
                    }
                }
                Action::Wait { until } => {
                    if slot.timer_at != Some(until) {
                        slot.timer_at = Some(until);
                        let epoch = slot.epoch;
                        let _ = cx.schedule_at(until.max(now), Event::DnsTimer { lookup: id, epoch });
                    }
                    return;
                }
                Action::Done(outcome) => {
                    let Some(slot) = self.lookups.remove(id) else {
                        return;
                    };
                    let pod = slot.pod as usize;
                    if slot.had_timeout || outcome.elapsed >= SimDuration::from_secs(5) {
                        self.tally.lookups_with_timeout += 1;
                    }
                    let ok = matches!(outcome.result, LookupResult::Resolved { .. });
                    let first = match &outcome.result {
                        LookupResult::Resolved { name } => {
                            slot.firsts.iter().rev().find(|(n, _)| n == name).map(|(_, a)| *a)
                        }
                        _ => None,
                    };
                    if !ok {
                        self.tally.lookups_failed += 1;
                    }
                    let wl = match self.world.pods[pod].role {
                        PodRole::Client { wl } => usize::from(wl),
                        PodRole::Server { .. } => return,
                    };
                    let cached = self.sc.workloads[wl].dns.mode == DnsMode::Cached;
                    if cached {
                        self.clients[pod].lookup = None;
                        if ok {
                            self.clients[pod].dns_valid_until = Some(now + self.sc.workloads[wl].dns.ttl);
                            self.clients[pod].dns_addr = first;
                        }
                    }
                    // A per-request lookup serves its own request, if that request still
                    // waits for it (it may have timed out and moved on).
                    let waiters: Vec<u32> = match slot.owner {
                        None => std::mem::take(&mut self.clients[pod].dns_waiters),
                        Some(r)
                            if self.reqs.get(r).is_some_and(|q| {
                                q.state == ReqState::WaitDns && q.epoch == slot.owner_epoch
                            }) =>
                        {
                            vec![r]
                        }
                        Some(_) => Vec::new(),
                    };
                    for r in waiters {
                        if ok {
                            if slot.owner.is_some()
                                && let Some(q) = self.reqs.get_mut(r)
                            {
                                q.addr = first;
                            }
                            self.get_connection(cx, r);
                        } else {
                            let cause = match outcome.result {
                                LookupResult::Timeout => "DNS: resolver timed out",
                                LookupResult::NxDomain => "DNS: NXDOMAIN",
                                _ => "DNS: lookup failed",
                            };
                            self.attempt_failed(cx, r, cause);
                        }
                    }
                    return;
                }
            }
        }
    }

    fn on_dns_timer(&mut self, cx: &mut Context<'_, Event>, lookup: u32, epoch: u32) {
        let Some(slot) = self.lookups.get_mut(lookup) else {
            return;
        };
        if slot.epoch != epoch {
            return;
        }
        if slot.timer_at.is_some_and(|t| t <= cx.now()) {
            slot.timer_at = None;
            slot.had_timeout = true;
        }
        self.drive_lookup(cx, lookup);
    }

    #[allow(clippy::too_many_arguments)]
    fn coredns_receive(
        &mut self,
        cx: &mut Context<'_, Event>,
        pkt: Packet,
        lookup: u32,
        query: u32,
        epoch: u32,
        qtype: QType,
        fwd: u32,
    ) {
        let now = cx.now();
        let Some(dp) = self.pod_at(pkt.tuple.dst) else {
            return;
        };
        self.tally.coredns_queries += 1;
        if fwd != u32::MAX {
            self.tally.coredns_tcp_queries += u64::from(pkt.tuple.proto == Proto::Tcp);
        }
        let svc = match self.world.pods[dp as usize].role {
            PodRole::Server { svc } => usize::from(svc),
            PodRole::Client { .. } => return,
        };
        let server = &self.sc.services[svc].server;
        // A CoreDNS pod serves queries one after another at its capacity.
        let per_query = server.capacity.map_or(SimDuration::ZERO, |c| {
            let milli = c.as_milli_per_sec().max(1);
            SimDuration::from_nanos(
                u64::try_from(1_000_000_000_000u128 / u128::from(milli)).unwrap_or(u64::MAX),
            )
        });
        let base = service_time(server.service_time, &mut self.rng_server);
        let st = &mut self.servers[dp as usize];
        st.dns_queries += 1;
        let start = now.max(st.dns_free);
        st.dns_free = start + per_query;
        let done = start + per_query.max(base);
        let _ = cx.schedule_at(
            done,
            Event::DnsAnswer {
                dns_pod: dp,
                lookup,
                query,
                epoch,
                qtype,
                tuple: pkt.tuple.reversed(),
                fwd,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn on_dns_answer(
        &mut self,
        cx: &mut Context<'_, Event>,
        dns_pod: u32,
        lookup: u32,
        query: u32,
        epoch: u32,
        qtype: QType,
        tuple: Tuple,
        fwd: u32,
    ) {
        let now = cx.now();
        // The name asked: the forward's, or the lookup's candidate.
        let name = if fwd == u32::MAX {
            match self.lookups.get(lookup) {
                Some(slot) if slot.epoch == epoch => slot
                    .queries
                    .iter()
                    .find(|(id, _)| id.get() == query)
                    .map(|(_, n)| n.clone()),
                _ => None,
            }
        } else {
            self.fwds.get(fwd).map(|f| f.name.clone())
        };
        let (rcode, records, first) = match name {
            Some(n) => {
                let a = self.world.zone.answer(&n, qtype);
                // CoreDNS `loadbalance` (default Corefile) shuffles the A records of
                // every answer; clients take the first one.
                let first = match (qtype, a.addrs.len()) {
                    (QType::A, k) if k > 0 => {
                        let i = usize::try_from(self.rng_server.below(k as u64)).unwrap_or(0);
                        a.addrs[i]
                    }
                    _ => Ipv4Addr::UNSPECIFIED,
                };
                let ans = a.to_answer();
                (ans.rcode, ans.records, first)
            }
            None => (Rcode::ServFail, 0, Ipv4Addr::UNSPECIFIED),
        };
        let netns = self.world.pods[dns_pod as usize].netns;
        let (pkt, purpose) = if fwd == u32::MAX {
            (
                Packet::new(tuple, TcpFlags::NONE),
                Purpose::DnsReply {
                    lookup,
                    query,
                    epoch,
                    rcode,
                    records,
                    first,
                },
            )
        } else {
            let Some(f) = self.fwds.get(fwd) else { return };
            let conn = f.conn;
            let Some(c) = self.upconns.get(conn) else { return };
            let flags = if tuple.proto == Proto::Tcp {
                TcpFlags::ACK.union(TcpFlags::PSH)
            } else {
                TcpFlags::NONE
            };
            (
                Packet::new(tuple, flags),
                Purpose::UpReply {
                    conn,
                    epoch: c.epoch,
                    fwd,
                    rcode,
                    records,
                    first,
                },
            )
        };
        self.send(cx, netns, pkt, now, purpose, false, None);
    }

    #[allow(clippy::too_many_arguments)]
    fn dns_answer_arrived(
        &mut self,
        cx: &mut Context<'_, Event>,
        lookup: u32,
        query: u32,
        epoch: u32,
        rcode: Rcode,
        records: u16,
        first: Ipv4Addr,
    ) {
        let now = cx.now();
        let Some(slot) = self.lookups.get_mut(lookup) else {
            return;
        };
        if slot.epoch != epoch {
            return;
        }
        let Some((qid, name)) = slot
            .queries
            .iter()
            .find(|(id, _)| id.get() == query)
            .map(|(id, n)| (*id, n.clone()))
        else {
            return;
        };
        if !first.is_unspecified() {
            slot.firsts.push((name, first));
        }
        let _ = slot
            .lookup
            .on_answer(qid, crate::dns::Answer { rcode, records }, now);
        self.drive_lookup(cx, lookup);
    }

    // ---------------------------------------------------------------------------------
    // NodeLocal DNSCache.

    /// A pod's query reached its node's cache agent (NOTRACK'ed: no conntrack entry).
    /// A live cached answer goes straight back; a miss is forwarded upstream.
    #[allow(clippy::too_many_arguments)]
    fn nodelocal_receive(
        &mut self,
        cx: &mut Context<'_, Event>,
        pkt: Packet,
        lookup: u32,
        query: u32,
        epoch: u32,
        qtype: QType,
    ) {
        let now = cx.now();
        let Some(pod) = self.pod_at(pkt.tuple.src) else {
            return;
        };
        let node = self.world.pods[pod as usize].node;
        let Some(name) = self
            .lookups
            .get(lookup)
            .filter(|s| s.epoch == epoch)
            .and_then(|s| s.queries.iter().find(|(id, _)| id.get() == query))
            .map(|(_, n)| n.clone())
        else {
            return;
        };
        let Some(nl) = self.nodelocal.get_mut(usize::from(node)) else {
            return;
        };
        if pkt.tuple.dst != nl.addr {
            return;
        }
        match nl.lookup(&name, qtype, now) {
            Some(c) => {
                let host = nl.host;
                let purpose = Purpose::DnsReply {
                    lookup,
                    query,
                    epoch,
                    rcode: c.rcode,
                    records: c.records,
                    first: c.first,
                };
                let reply = Packet::new(pkt.tuple.reversed(), TcpFlags::NONE);
                self.send(
                    cx,
                    host,
                    reply,
                    now + nodelocal::ANSWER_TIME,
                    purpose,
                    false,
                    None,
                );
            }
            None => {
                let fwd = self.fwds.insert(Fwd {
                    node,
                    lookup,
                    query,
                    epoch,
                    qtype,
                    name,
                    reply: pkt.tuple.reversed(),
                    conn: u32::MAX,
                });
                self.forward_upstream(cx, fwd);
            }
        }
    }

    /// Sends a forward on the most recently used idle upstream connection, or dials a
    /// new one (CoreDNS `forward`: one query at a time per cached connection).
    fn forward_upstream(&mut self, cx: &mut Context<'_, Event>, fwd: u32) {
        let now = cx.now();
        let Some(node) = self.fwds.get(fwd).map(|f| usize::from(f.node)) else {
            return;
        };
        self.nodelocal[node].stats.upstream_queries += 1;
        while let Some(conn) = self.nodelocal[node].idle.pop() {
            if self.upconns.get(conn).is_some_and(|c| c.state == UpState::Idle) {
                self.upstream_send(cx, conn, fwd);
                return;
            }
        }
        // In eBPF mode the cache's own connect() to the kube-dns ClusterIP goes through
        // Cilium's socket LB like a pod's (host namespace included by default).
        let (node_ip, force_tcp) = (self.nodelocal[node].node_ip, self.nodelocal[node].force_tcp);
        let proto = if force_tcp { Proto::Tcp } else { Proto::Udp };
        let Some(upstream) =
            self.socket_lb_on(node, node_ip, SocketAddrV4::new(self.world.kube_dns, 53), proto)
        else {
            self.nodelocal[node].stats.upstream_timeouts += 1;
            self.fwds.remove(fwd);
            return;
        };
        let (kube_dns, dns_port) = (*upstream.ip(), upstream.port());
        let nl = &mut self.nodelocal[node];
        let (tuple, isn) = if nl.force_tcp {
            match nl.sockets.connect(nl.node_ip, kube_dns, dns_port, now) {
                Ok(c) => (c.tuple, c.isn),
                Err(_) => {
                    // No local port: the forward fails; the pod's resolver retries.
                    nl.stats.upstream_timeouts += 1;
                    self.fwds.remove(fwd);
                    return;
                }
            }
        } else {
            let (lo, hi) = self.sc.nodes[node].sysctls.values.ip_local_port_range;
            let span = u64::from(hi.saturating_sub(lo)) + 1;
            let port = lo.saturating_add(u16::try_from(self.rng_client.below(span)).unwrap_or(0));
            (Tuple::new(Proto::Udp, nl.node_ip, port, kube_dns, dns_port), 0)
        };
        nl.stats.upstream_connections += 1;
        let host = nl.host;
        self.next_epoch = self.next_epoch.wrapping_add(1);
        let epoch = self.next_epoch;
        let tcp = tuple.proto == Proto::Tcp;
        let timer = tcp.then(|| {
            let sys = &self.sc.nodes[node].sysctls.values;
            crate::socket::SynTimer::start(&self.sc.kernel, sys.tcp_syn_retries, now)
        });
        let conn = self.upconns.insert(UpConn {
            epoch,
            node: u16::try_from(node).unwrap_or(u16::MAX),
            tuple,
            isn,
            state: if tcp { UpState::Connecting } else { UpState::Idle },
            syn_timer: timer,
            fwd: Some(fwd),
            server: None,
        });
        if let Some(f) = self.fwds.get_mut(fwd) {
            f.conn = conn;
        }
        match timer {
            Some(t) => {
                self.schedule_timer(
                    cx,
                    t.deadline().at().saturating_since(now),
                    Event::UpTimer { conn, epoch },
                );
                let mut pkt = Packet::new(tuple, TcpFlags::SYN);
                pkt.seq = isn;
                self.send(cx, host, pkt, now, Purpose::UpSyn { conn, epoch }, true, None);
            }
            None => self.upstream_send(cx, conn, fwd),
        }
    }

    /// Sends a forwarded query on an established upstream connection.
    fn upstream_send(&mut self, cx: &mut Context<'_, Event>, conn: u32, fwd: u32) {
        let now = cx.now();
        self.next_epoch = self.next_epoch.wrapping_add(1);
        let epoch = self.next_epoch;
        let Some(c) = self.upconns.get_mut(conn) else {
            return;
        };
        c.epoch = epoch;
        c.state = UpState::Busy;
        c.fwd = Some(fwd);
        let (tuple, node) = (c.tuple, usize::from(c.node));
        if let Some(f) = self.fwds.get_mut(fwd) {
            f.conn = conn;
        }
        self.schedule_timer(
            cx,
            nodelocal::UPSTREAM_READ_TIMEOUT,
            Event::UpTimer { conn, epoch },
        );
        let host = self.nodelocal[node].host;
        // UDP: every query may create (or refresh) an entry, so it takes the windowed path.
        let (flags, windowed) = if tuple.proto == Proto::Tcp {
            (TcpFlags::ACK.union(TcpFlags::PSH), false)
        } else {
            (TcpFlags::NONE, true)
        };
        let purpose = Purpose::UpQuery { conn, epoch, fwd };
        self.send(cx, host, Packet::new(tuple, flags), now, purpose, windowed, None);
    }

    /// CoreDNS answered a forward: cache it, answer the pod, free the connection.
    fn upstream_answer(&mut self, cx: &mut Context<'_, Event>, conn: u32, epoch: u32, fwd: u32, ans: Cached) {
        let now = cx.now();
        if !self
            .upconns
            .get(conn)
            .is_some_and(|c| c.epoch == epoch && c.state == UpState::Busy)
        {
            return;
        }
        let Some(f) = self.fwds.remove(fwd) else { return };
        let node = usize::from(f.node);
        self.nodelocal[node].store(&f.name, f.qtype, ans, now);
        let host = self.nodelocal[node].host;
        let purpose = Purpose::DnsReply {
            lookup: f.lookup,
            query: f.query,
            epoch: f.epoch,
            rcode: ans.rcode,
            records: ans.records,
            first: ans.first,
        };
        let reply = Packet::new(f.reply, TcpFlags::NONE);
        self.send(
            cx,
            host,
            reply,
            now + nodelocal::ANSWER_TIME,
            purpose,
            false,
            None,
        );
        self.upconn_idle(cx, conn);
    }

    /// Returns a connection to the agent's connection cache; it expires when idle for
    /// `upstreamExpire`.
    fn upconn_idle(&mut self, cx: &mut Context<'_, Event>, conn: u32) {
        self.next_epoch = self.next_epoch.wrapping_add(1);
        let epoch = self.next_epoch;
        let Some(c) = self.upconns.get_mut(conn) else {
            return;
        };
        c.epoch = epoch;
        c.state = UpState::Idle;
        c.fwd = None;
        let node = usize::from(c.node);
        self.nodelocal[node].idle.push(conn);
        let expire = self.nodelocal[node].expire;
        self.schedule_timer(cx, expire, Event::UpTimer { conn, epoch });
    }

    fn on_up_timer(&mut self, cx: &mut Context<'_, Event>, conn: u32, epoch: u32) {
        let now = cx.now();
        let Some(c) = self.upconns.get_mut(conn) else {
            return;
        };
        if c.epoch != epoch {
            return;
        }
        let node = usize::from(c.node);
        match c.state {
            UpState::Connecting => {
                let Some(mut timer) = c.syn_timer else { return };
                let next = timer.on_timer();
                c.syn_timer = Some(timer);
                let (tuple, isn) = (c.tuple, c.isn);
                match next {
                    crate::socket::SynDeadline::Retransmit(t) => {
                        self.schedule_timer(cx, t.saturating_since(now), Event::UpTimer { conn, epoch });
                        self.tally.syn_retransmits[node] += 1;
                        let mut pkt = Packet::new(tuple, TcpFlags::SYN);
                        pkt.seq = isn;
                        let host = self.nodelocal[node].host;
                        self.send(cx, host, pkt, now, Purpose::UpSyn { conn, epoch }, true, None);
                    }
                    crate::socket::SynDeadline::TimedOut(_) => {
                        self.nodelocal[node].stats.upstream_timeouts += 1;
                        self.close_upconn(cx, conn);
                    }
                }
            }
            UpState::Busy => {
                // No answer within the read timeout: the forward fails (the pod's
                // resolver retries on its own timer) and the connection is dropped.
                self.nodelocal[node].stats.upstream_timeouts += 1;
                self.close_upconn(cx, conn);
            }
            UpState::Idle => self.close_upconn(cx, conn),
        }
    }

    /// Closes an upstream connection: the agent is the active closer (TIME_WAIT on the
    /// node), the FIN exchange goes through conntrack. Its forward, if any, is dropped.
    fn close_upconn(&mut self, cx: &mut Context<'_, Event>, conn: u32) {
        let now = cx.now();
        let Some(c) = self.upconns.remove(conn) else {
            return;
        };
        if let Some(f) = c.fwd {
            self.fwds.remove(f);
        }
        let node = usize::from(c.node);
        self.nodelocal[node].idle.retain(|x| *x != conn);
        if c.tuple.proto != Proto::Tcp {
            return;
        }
        let host = self.nodelocal[node].host;
        if c.state == UpState::Connecting {
            let _ = self.nodelocal[node]
                .sockets
                .abort(c.tuple, AbortReason::TimedOut, now);
            return;
        }
        let _ =
            self.nodelocal[node]
                .sockets
                .close(c.tuple, CloseRole::ActiveCloser, c.isn.wrapping_add(1), now);
        self.send(
            cx,
            host,
            Packet::new(c.tuple, TcpFlags::FIN_ACK),
            now,
            Purpose::Silent,
            false,
            None,
        );
        if let Some((sp, port, peer)) = c.server {
            let st = Tuple::new(
                Proto::Tcp,
                self.world.pods[sp as usize].ip,
                port,
                *peer.ip(),
                peer.port(),
            );
            let netns = self.world.pods[sp as usize].netns;
            let at = now + SimDuration::from_micros(100);
            self.send(
                cx,
                netns,
                Packet::new(st, TcpFlags::FIN_ACK),
                at,
                Purpose::Silent,
                false,
                None,
            );
        }
        let at = now + SimDuration::from_micros(200);
        self.send(
            cx,
            host,
            Packet::new(c.tuple, TcpFlags::ACK),
            at,
            Purpose::Silent,
            false,
            None,
        );
    }

    // ---------------------------------------------------------------------------------
    // Windowed packet events.

    fn on_hop_start(&mut self, cx: &mut Context<'_, Event>, id: u32, waited: bool) {
        let Some(f) = self.inflight.remove(id) else { return };
        let pinned = if f.cpu == u16::MAX { None } else { Some(f.cpu) };
        let now = cx.now();
        let end = self.walk(f.at, f.in_dev, f.pkt, now, now, f.purpose, true, pinned, waited);
        self.finish_walk(cx, end, f.purpose);
    }

    fn on_confirm(&mut self, cx: &mut Context<'_, Event>, id: u32) {
        let now = cx.now();
        let Some(f) = self.inflight.remove(id) else { return };
        let Some(half) = f.half else { return };
        let n = usize::from(f.node);
        let node = &mut self.world.nodes[n];
        let c = node.host.confirm(&mut node.ct, &half, f.cpu, now, &mut Quiet);
        match c {
            Confirmed::Dropped(reason) => {
                self.note_confirm_drop(n, now, reason, &half.pkt);
                self.on_dropped(Some(f.node), reason, f.purpose);
            }
            Confirmed::Pass { .. } => {
                self.note_clash(n, now, c);
                match half.verdict {
                    HalfVerdict::Local => {
                        let _ = cx.schedule_at(
                            now,
                            Event::Deliver {
                                purpose: f.purpose,
                                pkt: half.pkt,
                            },
                        );
                    }
                    HalfVerdict::Forward { decision } => match decision.next {
                        NextHop::Netns { netns, in_dev, .. } => {
                            let mut t = now;
                            if self.world.topo.node_of(f.at) != self.world.topo.node_of(netns) {
                                t += NODE_LINK_LATENCY;
                            }
                            let end = self.walk(
                                netns,
                                Some(in_dev),
                                half.pkt,
                                t,
                                now,
                                f.purpose,
                                true,
                                None,
                                false,
                            );
                            self.finish_walk(cx, end, f.purpose);
                        }
                        NextHop::External => {}
                    },
                    HalfVerdict::Dropped(reason) => self.on_dropped(Some(f.node), reason, f.purpose),
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // Periodic work.

    fn on_gc(&mut self, cx: &mut Context<'_, Event>, node: u16) {
        let now = cx.now();
        let next = self.world.nodes[usize::from(node)].ct.gc_step(now);
        if next <= self.horizon {
            let _ = cx.schedule_at(next.max(now + SimDuration::from_millis(1)), Event::Gc { node });
        }
    }

    #[allow(clippy::cast_precision_loss)]
    fn on_sample(&mut self, cx: &mut Context<'_, Event>) {
        let now = cx.now();
        let interval = self.sc.sample_interval;
        let mut row = Sample {
            t_s: now.as_secs_f64(),
            ..Sample::default()
        };
        for n in &mut self.world.nodes {
            n.sample_proxy(now);
        }
        for (i, n) in self.world.nodes.iter().enumerate() {
            let count = n.ct.count(0);
            row.count.push(u64::from(count));
            self.onsets[i].count_peak = self.onsets[i].count_peak.max(count);
            row.counters.push(n.ct.stats_sum(0));
            let busy = n.busy_ns - self.last_busy[i];
            self.last_busy[i] = n.busy_ns;
            let cap = u128::from(interval.as_nanos()) * u128::from(n.cpus.max(1));
            row.cpu_pct.push(if cap == 0 {
                0.0
            } else {
                busy as f64 * 100.0 / cap as f64
            });
        }
        let (nc, ok, failed, q, _) = self.last_counts;
        row.new_connections = self.tally.new_connections - nc;
        row.ok = self.tally.ok - ok;
        row.failed = self.tally.failed - failed;
        row.coredns_queries = self.tally.coredns_queries - q;
        self.coredns_peak_per_interval = self.coredns_peak_per_interval.max(row.coredns_queries);
        self.last_counts = (
            self.tally.new_connections,
            self.tally.ok,
            self.tally.failed,
            self.tally.coredns_queries,
            0,
        );
        row.latency_p50_ms = self.interval_latency.quantile_ppm(500_000) as f64 / 1e6;
        row.latency_p99_ms = self.interval_latency.quantile_ppm(990_000) as f64 / 1e6;
        self.interval_latency.clear();
        self.samples.push(row);
        if now + interval <= self.horizon {
            let _ = cx.schedule_at(now + interval, Event::Sample);
        }
    }
}

impl Model for NodeSim {
    type Event = Event;

    fn handle(&mut self, ev: Event, cx: &mut Context<'_, Event>) {
        match ev {
            Event::Arrival { wl } => self.on_arrival(cx, wl),
            Event::HopStart { inflight, waited } => self.on_hop_start(cx, inflight, waited),
            Event::Confirm { inflight } => self.on_confirm(cx, inflight),
            Event::Deliver { purpose, pkt } => self.on_deliver(cx, purpose, pkt),
            Event::SynTimer { flow, epoch } => self.on_syn_timer(cx, flow, epoch),
            Event::Deadline { req, epoch } => self.on_deadline(cx, req, epoch),
            Event::Retry { req, epoch } => {
                if self
                    .reqs
                    .get(req)
                    .is_some_and(|r| r.state == ReqState::Backoff && r.epoch == epoch)
                {
                    self.start_attempt(cx, req);
                }
            }
            Event::ServerDone { flow, epoch, server } => self.on_server_done(cx, flow, epoch, server),
            Event::DnsTimer { lookup, epoch } => self.on_dns_timer(cx, lookup, epoch),
            Event::DnsAnswer {
                dns_pod,
                lookup,
                query,
                epoch,
                qtype,
                tuple,
                fwd,
            } => {
                self.on_dns_answer(cx, dns_pod, lookup, query, epoch, qtype, tuple, fwd);
            }
            Event::UpTimer { conn, epoch } => self.on_up_timer(cx, conn, epoch),
            Event::Gc { node } => self.on_gc(cx, node),
            Event::Sample => self.on_sample(cx),
        }
    }
}
