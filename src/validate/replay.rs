//! The replay drivers: a node's conntrack table driven packet by packet at recorded
//! times (the oracle's `nso-rtr`, docs/oracle.md "Topology"), with the gc worker run at
//! the times it asks for, and a TCP client model for the `tcp-storm` experiments.

use super::ValidateError;
use super::trace::Experiment;
use crate::conntrack::{
    ConfirmOutcome, ConnId, ConntrackTable, CtConfig, CtDrop, CtLookup, CtStats, DstNat, NetnsConfig, SrcNat,
};
use crate::kernel::{CtTimeouts, KernelProfile, Sysctls};
use crate::packet::{Direction, Packet, Proto, TcpFlags, Tuple};
use crate::rng::SimRng;
use crate::time::{SimDuration, SimTime};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// `nso-cli`'s address.
pub(crate) const CLI: Ipv4Addr = Ipv4Addr::new(10, 10, 1, 2);
/// `nso-rtr`'s address on the server side (SNAT source in e and j).
pub(crate) const RTR: Ipv4Addr = Ipv4Addr::new(10, 10, 2, 1);
/// The backend `nso-srv`.
pub(crate) const SRV: Ipv4Addr = Ipv4Addr::new(10, 10, 2, 2);
/// The second backend address of `nso-srv` (d).
pub(crate) const SRV2: Ipv4Addr = Ipv4Addr::new(10, 10, 2, 3);
/// The Service VIP.
pub(crate) const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

/// Seconds (as recorded) to simulated time.
pub(crate) fn at(s: f64) -> SimTime {
    SimTime::from_nanos((s.max(0.0) * 1e9).round() as u64)
}

fn model_err(e: impl std::fmt::Display) -> ValidateError {
    ValidateError::Model(e.to_string())
}

/// What became of a packet at a node's conntrack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// The packet passed and belongs to this entry, seen in this direction.
    Tracked(ConnId, Direction),
    /// Conntrack dropped it.
    Dropped(CtDrop),
    /// It passed untracked (invalid, or no conntrack in the namespace).
    Untracked,
}

/// The first half of a new flow's path: allocated and NATed, not yet confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Begun {
    /// Unconfirmed entry waiting for [`Node::finish`].
    Pending(ConnId),
    /// The packet's fate is already known (existing entry, drop, untracked).
    Done(Sent),
}

/// The NAT a namespace applies to the first packet of a flow, or `None` when the
/// namespace has no nat table (then no NAT binding is set up at all).
pub(crate) type Nat = Option<(DstNat, SrcNat)>;

/// One conntrack table (all namespaces of the testbed) plus its gc worker schedule.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) ct: ConntrackTable,
    gc_next: SimTime,
    rng: SimRng,
}

impl Node {
    /// [`Node::new`] with the table of `param` in `exp` as recorded: its
    /// `nf_conntrack_max`, `nf_conntrack_buckets` and the kernel's HZ.
    pub(crate) fn recorded(
        exp: &Experiment,
        param: &str,
        profile: KernelProfile,
        seed: u64,
    ) -> Result<Node, ValidateError> {
        Node::new(
            exp.num(param, "nf_conntrack_max")? as u32,
            exp.num(param, "nf_conntrack_buckets")? as u32,
            exp.hz(),
            profile,
            seed,
        )
    }

    /// A table with the recorded max and buckets, 2 CPUs, `hz`, the given profile. The
    /// gc worker's first run is at t = 0 (the kernel's phase is unknown;
    /// docs/kernel-semantics.md §Expired entries leave in steps).
    pub(crate) fn new(
        max: u32,
        buckets: u32,
        hz: u32,
        profile: KernelProfile,
        seed: u64,
    ) -> Result<Node, ValidateError> {
        let sysctls = Sysctls {
            nf_conntrack_max: max,
            nf_conntrack_buckets: buckets,
            ..Sysctls::default()
        };
        let mut cfg = CtConfig::new(&sysctls, profile, 2);
        cfg.hz = hz;
        let ct = ConntrackTable::new(cfg, SimRng::stream(seed, "validate-conntrack")).map_err(model_err)?;
        Ok(Node {
            ct,
            gc_next: SimTime::ZERO,
            rng: SimRng::stream(seed, "validate-nat"),
        })
    }

    /// Moves the gc worker's first run to `first` (its phase: the real worker has run
    /// since boot, so where its passes fall in an experiment is unknown).
    pub(crate) fn start_gc_at(&mut self, first: SimTime) {
        self.gc_next = first;
    }

    /// Turns conntrack on in `ns` with these timeouts.
    pub(crate) fn enable(&mut self, ns: u16, timeouts: CtTimeouts) {
        let mut cfg = NetnsConfig::enabled(&Sysctls::default());
        cfg.timeouts = timeouts;
        self.ct.set_netns(ns, cfg);
    }

    /// Runs the gc worker at every time it asked for up to `now`.
    pub(crate) fn advance(&mut self, now: SimTime) {
        while self.gc_next <= now {
            let next = self.ct.gc_step(self.gc_next);
            self.gc_next = next.max(self.gc_next + SimDuration::from_nanos(1));
        }
    }

    /// `nf_conntrack_count` of `ns`.
    pub(crate) fn count(&self, ns: u16) -> f64 {
        f64::from(self.ct.count(ns))
    }

    /// `conntrack -S` of `ns`, summed over CPUs.
    pub(crate) fn stats(&self, ns: u16) -> CtStats {
        self.ct.stats_sum(ns)
    }

    /// The first hook and the nat chains for `pkt` (`nf_conntrack_in`, then
    /// `nf_nat_setup_info` DST and SRC while unconfirmed).
    pub(crate) fn begin(
        &mut self,
        ns: u16,
        cpu: u16,
        pkt: &Packet,
        nat: Nat,
        now: SimTime,
    ) -> Result<Begun, ValidateError> {
        self.advance(now);
        let r = self.ct.lookup_or_alloc(ns, cpu, pkt, now).map_err(model_err)?;
        match r {
            CtLookup::Existing { id, dir, .. } => {
                let v = self.ct.packet(id, dir, cpu, pkt, now).map_err(model_err)?;
                Ok(Begun::Done(match v {
                    crate::conntrack::TrackVerdict::Invalid => Sent::Untracked,
                    _ => Sent::Tracked(id, dir),
                }))
            }
            CtLookup::New { id } => {
                if let Some((dnat, snat)) = nat {
                    self.ct.apply_dst_nat(id, cpu, dnat, now).map_err(model_err)?;
                    self.ct
                        .apply_src_nat(id, cpu, snat, &mut self.rng, now)
                        .map_err(model_err)?;
                }
                Ok(Begun::Pending(id))
            }
            CtLookup::Dropped(d) => Ok(Begun::Done(Sent::Dropped(d))),
            CtLookup::Invalid | CtLookup::Untracked => Ok(Begun::Done(Sent::Untracked)),
        }
    }

    /// The last hook for a pending entry (`__nf_conntrack_confirm`).
    pub(crate) fn finish(&mut self, id: ConnId, cpu: u16, now: SimTime) -> Result<Sent, ValidateError> {
        self.advance(now);
        Ok(match self.ct.confirm(id, cpu, now).map_err(model_err)? {
            ConfirmOutcome::Inserted(id) | ConfirmOutcome::ClashReplyOnly(id) => {
                Sent::Tracked(id, Direction::Original)
            }
            ConfirmOutcome::ClashMerged { winner } => Sent::Tracked(winner, Direction::Original),
            ConfirmOutcome::Dropped(d) => Sent::Dropped(d),
        })
    }

    /// A packet through the whole path without interleaving.
    pub(crate) fn send(
        &mut self,
        ns: u16,
        cpu: u16,
        pkt: &Packet,
        nat: Nat,
        now: SimTime,
    ) -> Result<Sent, ValidateError> {
        match self.begin(ns, cpu, pkt, nat, now)? {
            Begun::Pending(id) => self.finish(id, cpu, now),
            Begun::Done(s) => Ok(s),
        }
    }

    /// A packet of an established flow (`tuple` as on the wire); NAT is never set up
    /// for it (if its entry vanished it is picked up with null bindings).
    pub(crate) fn segment(
        &mut self,
        ns: u16,
        tuple: Tuple,
        flags: TcpFlags,
        seq: u32,
        payload: u16,
        now: SimTime,
    ) -> Result<Sent, ValidateError> {
        let pkt = Packet {
            seq,
            len: 40 + payload,
            ..Packet::new(tuple, flags)
        };
        self.send(ns, 0, &pkt, Some((DstNat::Null, SrcNat::Null)), now)
    }
}

/// The NAT kube-proxy gives a new datagram to `VIP:53`: DNAT to port 5353 of `SRV`, or
/// with two backends of `SRV` or `SRV2` as `-m statistic --mode random --probability 0.5`
/// picks (drawn from `stat`).
pub(crate) fn vip_dnat(backends: u32, stat: &mut SimRng) -> Nat {
    let addr = if backends == 2 && !stat.chance(0.5) {
        SRV2
    } else {
        SRV
    };
    Some((
        DstNat::To {
            addr,
            port: Some(5353),
        },
        SrcNat::Null,
    ))
}

/// A packet [`Node::begin`] left pending, finished on `cpu` at `t`; one it handled at
/// once, as it was.
pub(crate) fn finish_begun(node: &mut Node, b: Begun, cpu: u16, t: SimTime) -> Result<Sent, ValidateError> {
    match b {
        Begun::Pending(id) => node.finish(id, cpu, t),
        Begun::Done(s) => Ok(s),
    }
}

/// The backend echoes from the address it was DNATed to; does the answer come back
/// un-NATed to VIP:53?
pub(crate) fn answer_returns(node: &mut Node, s: Sent, port: u16, t: SimTime) -> Result<bool, ValidateError> {
    let Sent::Tracked(id, _) = s else { return Ok(false) };
    let Some(conn) = node.ct.conn(id) else {
        return Ok(false);
    };
    let reply = Packet {
        len: 60,
        ..Packet::new(conn.reply, TcpFlags::NONE)
    };
    if let Sent::Tracked(rid, Direction::Reply) =
        node.send(0, 0, &reply, Some((DstNat::Null, SrcNat::Null)), t)?
    {
        let back = node.ct.conn(rid).map(|c| c.translated(Direction::Reply));
        return Ok(back.is_some_and(|b| b.src == VIP && b.sport == 53 && b.dst == CLI && b.dport == port));
    }
    Ok(false)
}

/// The udp-flood tuple `i` (`netsim-oracle udp-flood`: sport = first + i / ndports,
/// dport = 9000 + i mod ndports), from `nso-cli` to the black hole `nso-srv`.
pub(crate) fn flood_tuple(i: u64, sport_first: u16, ndports: u64) -> Tuple {
    let sport = u64::from(sport_first) + i / ndports;
    let dport = 9000 + i % ndports;
    Tuple::new(Proto::Udp, CLI, sport as u16, SRV, dport as u16)
}

/// Who sends the first FIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closer {
    /// The server answers and closes at once (a, c, i).
    Server,
    /// The client closes after the answer (e, j), or at the release step if held.
    Client,
}

/// When a connection starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// At this recorded time.
    At(SimTime),
    /// 1 µs after the previous connection of the list ended (`try:N` steps).
    AfterPrevious,
}

/// One `connect()` of a tcp-storm replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TcpSpec {
    pub(crate) start: Start,
    /// The client's local port (recorded for successful connections).
    pub(crate) port: u16,
    /// Connect timeout of the tool.
    pub(crate) timeout: SimDuration,
    /// Kept open until a release event (`hold:K`).
    pub(crate) hold: bool,
}

/// The result of one replayed connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TcpResult {
    /// Connected (a SYN got through).
    pub(crate) ok: bool,
    /// When the attempt started.
    pub(crate) started: Option<SimTime>,
    /// When it connected.
    pub(crate) connected: Option<SimTime>,
}

/// A sample of the table at a recorded sample time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Sample {
    pub(crate) t: f64,
    pub(crate) count: f64,
    pub(crate) stats: CtStats,
    pub(crate) ok: u64,
    pub(crate) fail: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Syn { c: usize, k: usize },
    Failed { c: usize },
    Close { c: usize, step: u8 },
    Release,
    List,
    Sample(usize),
}

/// Round-trip steps of the exchange inside one connection (the testbed's veths).
const HOP: SimDuration = SimDuration::from_micros(40);
/// The client closes this long after its connect returned (request + answer).
const EXCHANGE: SimDuration = SimDuration::from_micros(250);

/// A tcp-storm replay: connections through namespace `ns` of `node` to `dst`, with the
/// SYN retransmission schedule of `profile`, sampled at `sample_times`.
#[derive(Debug)]
pub(crate) struct TcpStorm {
    pub(crate) dst: (Ipv4Addr, u16),
    pub(crate) nat: Nat,
    pub(crate) closer: Closer,
    pub(crate) specs: Vec<TcpSpec>,
    pub(crate) releases: Vec<SimTime>,
    pub(crate) listings: Vec<SimTime>,
    pub(crate) sample_times: Vec<f64>,
    pub(crate) syn_schedule: Vec<SimDuration>,
}

/// What a storm replay produced.
#[derive(Debug, Default)]
pub(crate) struct StormRun {
    pub(crate) results: Vec<TcpResult>,
    pub(crate) samples: Vec<Sample>,
    /// Count just before and just after each listing.
    pub(crate) listing_counts: Vec<(f64, f64)>,
}

struct ConnState {
    start: SimTime,
    isn: u32,
    srv_isn: u32,
    id: Option<ConnId>,
    decided: bool,
}

impl TcpStorm {
    /// A storm with the 6.18 default SYN schedule (`tcp_syn_retries` 6).
    pub(crate) fn new(dst: (Ipv4Addr, u16), nat: Nat, closer: Closer, specs: Vec<TcpSpec>) -> TcpStorm {
        TcpStorm {
            dst,
            nat,
            closer,
            specs,
            releases: Vec::new(),
            listings: Vec::new(),
            sample_times: Vec::new(),
            syn_schedule: KernelProfile::LINUX_6_18.syn_schedule(6).0,
        }
    }

    /// Replays the storm on `node`, namespace `ns`; ISNs come from `seed`.
    #[allow(clippy::too_many_lines)]
    pub(crate) fn run(&self, node: &mut Node, ns: u16, seed: u64) -> Result<StormRun, ValidateError> {
        let mut rng = SimRng::stream(seed, "validate-isn");
        let mut q: BTreeMap<(SimTime, u64), Ev> = BTreeMap::new();
        let mut seq = 0u64;
        let mut push = |q: &mut BTreeMap<(SimTime, u64), Ev>, t: SimTime, ev: Ev| {
            q.insert((t, seq), ev);
            seq += 1;
        };
        let mut conns: Vec<ConnState> = Vec::with_capacity(self.specs.len());
        for _ in &self.specs {
            conns.push(ConnState {
                start: SimTime::ZERO,
                isn: rng.next_u32(),
                srv_isn: rng.next_u32(),
                id: None,
                decided: false,
            });
        }
        for (c, s) in self.specs.iter().enumerate() {
            if let Start::At(t) = s.start {
                push(&mut q, t, Ev::Syn { c, k: 0 });
            }
        }
        for &t in &self.releases {
            push(&mut q, t, Ev::Release);
        }
        for &t in &self.listings {
            push(&mut q, t, Ev::List);
        }
        for (i, &t) in self.sample_times.iter().enumerate() {
            push(&mut q, at(t), Ev::Sample(i));
        }
        let mut out = StormRun {
            results: vec![TcpResult::default(); self.specs.len()],
            samples: Vec::with_capacity(self.sample_times.len()),
            listing_counts: Vec::new(),
        };
        let (mut ok, mut fail) = (0u64, 0u64);
        while let Some(((now, _), ev)) = q.pop_first() {
            node.advance(now);
            match ev {
                Ev::Syn { c, k } => {
                    if conns[c].decided {
                        continue;
                    }
                    let spec = self.specs[c];
                    if k == 0 {
                        conns[c].start = now;
                        out.results[c].started = Some(now);
                    }
                    let start = conns[c].start;
                    let orig = Tuple::new(Proto::Tcp, CLI, spec.port, self.dst.0, self.dst.1);
                    let syn = Packet {
                        seq: conns[c].isn,
                        len: 40,
                        ..Packet::new(orig, TcpFlags::SYN)
                    };
                    match node.send(ns, 0, &syn, self.nat, now)? {
                        Sent::Tracked(id, _) => {
                            conns[c].decided = true;
                            conns[c].id = Some(id);
                            ok += 1;
                            out.results[c].ok = true;
                            out.results[c].connected = Some(now + HOP);
                            self.exchange(node, ns, &conns[c], id, now)?;
                            let end = now + EXCHANGE;
                            if self.closer == Closer::Client && !spec.hold {
                                push(&mut q, end, Ev::Close { c, step: 0 });
                            }
                            if let Some(n) = self.next_sequential(c) {
                                push(&mut q, end + SimDuration::from_micros(1), Ev::Syn { c: n, k: 0 });
                            }
                        }
                        Sent::Dropped(_) | Sent::Untracked => {
                            let next = self.syn_schedule.get(k + 1).copied();
                            match next {
                                Some(d) if d < spec.timeout => {
                                    push(&mut q, start + d, Ev::Syn { c, k: k + 1 })
                                }
                                _ => {
                                    conns[c].decided = true;
                                    push(&mut q, start + spec.timeout, Ev::Failed { c });
                                }
                            }
                        }
                    }
                }
                Ev::Failed { c } => {
                    fail += 1;
                    if let Some(n) = self.next_sequential(c) {
                        push(&mut q, now + SimDuration::from_micros(1), Ev::Syn { c: n, k: 0 });
                    }
                }
                Ev::Close { c, step } => {
                    let Some(id) = conns[c].id else { continue };
                    let Some(conn) = node.ct.conn(id) else { continue };
                    let (o, r) = (conn.original, conn.reply);
                    let (isn, sisn) = (conns[c].isn, conns[c].srv_isn);
                    // Client-first close: FIN, ACK, FIN, ACK (tcp_conntracks).
                    let (tuple, flags, s) = match step {
                        0 => (o, TcpFlags::FIN_ACK, isn.wrapping_add(17)),
                        1 => (r, TcpFlags::ACK, sisn.wrapping_add(17)),
                        2 => (r, TcpFlags::FIN_ACK, sisn.wrapping_add(17)),
                        _ => (o, TcpFlags::ACK, isn.wrapping_add(18)),
                    };
                    node.segment(ns, tuple, flags, s, 0, now)?;
                    if step < 3 {
                        push(&mut q, now + HOP, Ev::Close { c, step: step + 1 });
                    }
                }
                Ev::Release => {
                    for (c, s) in self.specs.iter().enumerate() {
                        if s.hold && conns[c].id.is_some() {
                            push(&mut q, now, Ev::Close { c, step: 0 });
                        }
                    }
                }
                Ev::List => {
                    let before = node.count(ns);
                    let _ = node.ct.list(ns, now);
                    out.listing_counts.push((before, node.count(ns)));
                }
                Ev::Sample(i) => out.samples.push(Sample {
                    t: self.sample_times[i],
                    count: node.count(ns),
                    stats: node.stats(ns),
                    ok,
                    fail,
                }),
            }
        }
        Ok(out)
    }

    fn next_sequential(&self, c: usize) -> Option<usize> {
        let n = c + 1;
        (self.specs.get(n)?.start == Start::AfterPrevious).then_some(n)
    }

    /// The handshake, request and answer (and, server-first, the whole close) of a
    /// connection whose SYN got through at `t`.
    fn exchange(
        &self,
        node: &mut Node,
        ns: u16,
        st: &ConnState,
        id: ConnId,
        t: SimTime,
    ) -> Result<(), ValidateError> {
        let Some(conn) = node.ct.conn(id) else {
            return Ok(());
        };
        let (o, r) = (conn.original, conn.reply);
        let (i, s) = (st.isn, st.srv_isn);
        let mut steps: Vec<(Tuple, TcpFlags, u32, u16)> = vec![
            (r, TcpFlags::SYN_ACK, s, 0),
            (o, TcpFlags::ACK, i.wrapping_add(1), 0),
            (o, TcpFlags::ACK.union(TcpFlags::PSH), i.wrapping_add(1), 16),
            (r, TcpFlags::ACK.union(TcpFlags::PSH), s.wrapping_add(1), 16),
        ];
        match self.closer {
            Closer::Server => steps.extend([
                (r, TcpFlags::FIN_ACK, s.wrapping_add(17), 0),
                (o, TcpFlags::ACK, i.wrapping_add(17), 0),
                (o, TcpFlags::FIN_ACK, i.wrapping_add(17), 0),
                (r, TcpFlags::ACK, s.wrapping_add(18), 0),
            ]),
            Closer::Client => steps.push((o, TcpFlags::ACK, i.wrapping_add(17), 0)),
        }
        let mut now = t;
        for (tuple, flags, seq, payload) in steps {
            now += HOP;
            node.segment(ns, tuple, flags, seq, payload, now)?;
        }
        Ok(())
    }
}
