//! The packet path: a packet sent from a namespace walks the [hop loop](super::hops)
//! through the nodes' host namespaces, each charging the packet's CPU time on one of
//! its CPUs ([`cpu`](super::cpu)), and is delivered, dropped or suspended.
//!
//! A packet that can create a conntrack entry (a SYN, a DNS query) is walked
//! *windowed*: in each host namespace its processing starts with an event on a free
//! CPU (allocation, rules, NAT) and ends with another (confirm), so two such packets
//! processed concurrently on different CPUs race as in `__nf_conntrack_confirm`.
//! Packets of existing connections are walked inline, each hop at its computed time.

use super::cpu::{Admission, Booking, PacketCost};
use super::event::{Event, Purpose};
use super::hops::{self, Hop, Hops, NODE_LINK_LATENCY, Step, Walked};
use super::model::{CpuLane, NodeSim, schedule};
use super::observe::Loss;
use super::slab::FlightId;
use super::world::World;
use crate::datapath::{Confirmed, CtStep, DropReason, FirstHalf, HalfVerdict, Quiet};
use crate::engine::Context;
use crate::packet::{Packet, Proto, Tuple};
use crate::service::node::ProxyImpl;
use crate::service::proxy::ProxyVerdict;
use crate::time::SimTime;
use crate::topology::NetnsId;
use std::net::{Ipv4Addr, SocketAddrV4};

/// A packet whose walk is suspended.
#[derive(Clone, Copy, Debug)]
pub(super) enum InFlight {
    /// It waits to enter (or to start on a CPU in) `hop`.
    Waiting {
        pkt: Packet,
        hop: Hop,
        purpose: Purpose,
        /// The CPU it must use there (its sender's, or the one it was queued on).
        cpu: Option<u16>,
    },
    /// Its first half ran on `node`'s `cpu`; its new conntrack entry awaits confirm.
    Confirming {
        hop: Hop,
        purpose: Purpose,
        node: u16,
        cpu: u16,
        half: FirstHalf,
    },
}

/// Why and until when a windowed walk stopped.
#[derive(Clone, Copy, Debug)]
pub(super) enum Pause {
    /// Waiting to start at `at`; `reserved`: a CPU slot was booked for it there.
    /// `queued`: the node and CPU whose queue it waits in, and which of its lanes
    /// (`None`: it is still on the wire).
    Start {
        at: SimTime,
        flight: InFlight,
        reserved: bool,
        queued: Option<(u16, u16, CpuLane)>,
    },
    /// Waiting for its confirm at `at`.
    Confirm { at: SimTime, flight: InFlight },
}

/// One packet's walk as the simulation runs it.
struct PacketWalk<'a> {
    sim: &'a mut NodeSim,
    now: SimTime,
    purpose: Purpose,
    windowed: bool,
    /// The CPU the first host namespace must use.
    cpu: Option<u16>,
    /// Whether the first host namespace booked a slot for this packet.
    reserved: bool,
    /// The node and CPU that processed the packet last (where its next event is
    /// queued when it is on the wire or delivered).
    last_cpu: Option<(u16, u16)>,
}

impl Hops for PacketWalk<'_> {
    type Suspend = Pause;

    fn world(&self) -> &World {
        &self.sim.world
    }

    fn host(&mut self, node: u16, hop: Hop, pkt: Packet, t: SimTime) -> Step<Pause> {
        let n = usize::from(node);
        let cpu = self.sim.world.nodes[n].cpu.pick(&pkt.tuple, self.cpu.take());
        let reserved = std::mem::take(&mut self.reserved);
        let start = if self.windowed {
            if t > self.now {
                // Arrives in the future (link latency): walk on when it arrives.
                let flight = InFlight::Waiting {
                    pkt,
                    hop,
                    purpose: self.purpose,
                    cpu: Some(cpu),
                };
                return Step::Suspend(Pause::Start {
                    at: t,
                    flight,
                    reserved: false,
                    queued: None,
                });
            }
            match self.sim.world.nodes[n].cpu.admit(cpu, self.now, reserved) {
                Admission::Start => self.now,
                Admission::Wait { at, reserved: booked } => {
                    let flight = InFlight::Waiting {
                        pkt,
                        hop,
                        purpose: self.purpose,
                        cpu: Some(cpu),
                    };
                    let lane = if reserved { CpuLane::Rewait } else { CpuLane::Start };
                    return Step::Suspend(Pause::Start {
                        at,
                        flight,
                        reserved: booked,
                        queued: Some((node, cpu, lane)),
                    });
                }
            }
        } else {
            self.sim.world.nodes[n].cpu.inline_start(cpu, t)
        };
        let sim = &mut *self.sim;
        let world = &mut sim.world;
        let node_ref = &mut world.nodes[n];
        let half = node_ref.host.first_half(
            &mut node_ref.ct,
            &world.topo,
            hop.entry(&world.topo),
            pkt,
            cpu,
            &mut sim.rng_path,
            start,
            &mut Quiet,
        );
        let booking = if self.windowed {
            Booking::Windowed {
                new_entry: half.new_entry,
            }
        } else {
            Booking::Inline
        };
        let end = start + sim.charge(n, cpu, start, self.now, &half, booking);
        sim.note_onsets(n, end, &half);
        self.last_cpu = Some((node, cpu));
        if half.new_entry {
            if self.windowed {
                let flight = InFlight::Confirming {
                    hop,
                    purpose: self.purpose,
                    node,
                    cpu,
                    half,
                };
                return Step::Suspend(Pause::Confirm { at: end, flight });
            }
            if let Some(reason) = sim.confirm(n, &half, cpu, end) {
                return Step::Dropped {
                    node: Some(node),
                    reason,
                };
            }
        }
        match half.verdict {
            HalfVerdict::Dropped(reason) => Step::Dropped {
                node: Some(node),
                reason,
            },
            HalfVerdict::Local => Step::Delivered {
                pkt: half.pkt,
                t: end,
            },
            HalfVerdict::Forward { decision } => Step::Forward {
                pkt: half.pkt,
                t: end,
                decision,
            },
        }
    }
}

impl NodeSim {
    /// Charges a packet's CPU time on node `n`'s `cpu`; returns the processing time.
    fn charge(
        &mut self,
        n: usize,
        cpu: u16,
        start: SimTime,
        now: SimTime,
        half: &FirstHalf,
        booking: Booking,
    ) -> crate::time::SimDuration {
        let cost = PacketCost::of(
            &self.sc.cost,
            half.rules_evaluated,
            half.proxy.hash_lookups,
            half.proxy.scheduler_ops,
            half.new_entry,
        );
        let node = &mut self.world.nodes[n];
        node.cpu.book(cpu, start, now, cost.total, booking);
        node.busy_ns += u128::from(cost.total.as_nanos());
        node.rules_ns += u128::from(cost.lookups.as_nanos());
        node.proxy_all += half.proxy;
        if half.new_entry {
            node.rules_new += u64::from(half.rules_evaluated);
            node.new_packets += 1;
            node.proxy_new += half.proxy;
        }
        cost.total
    }

    /// Confirms the new entry of `half` on node `n` at `at` (`nf_confirm`); returns why
    /// the packet was dropped there, if it was.
    fn confirm(&mut self, n: usize, half: &FirstHalf, cpu: u16, at: SimTime) -> Option<DropReason> {
        let node = &mut self.world.nodes[n];
        let loser = match half.ct {
            CtStep::New { id } => node.ct.conn(id),
            _ => None,
        };
        let c = node.host.confirm(&mut node.ct, half, cpu, at, &mut Quiet);
        self.note_clash_kind(n, loser.as_ref(), c);
        match c {
            Confirmed::Dropped(reason) => {
                self.note_confirm_drop(n, at, reason, &half.pkt);
                Some(reason)
            }
            Confirmed::Pass { .. } => {
                self.note_clash(n, at, c);
                None
            }
        }
    }

    /// Sends a packet from namespace `from` (a pod, or a host for the NodeLocal DNSCache
    /// agent) at `at`, scheduling whatever follows. `windowed`: the packet may create a
    /// conntrack entry (see the module docs); `cpu`: the sender's CPU, if pinned.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send(
        &mut self,
        cx: &mut Context<'_, Event>,
        from: NetnsId,
        pkt: Packet,
        at: SimTime,
        purpose: Purpose,
        windowed: bool,
        cpu: Option<u16>,
    ) {
        self.walk_from(
            cx,
            Hop::origin(from),
            pkt,
            at,
            purpose,
            windowed,
            cpu,
            false,
            None,
        );
    }

    /// Walks `pkt` from `hop` at `t` and schedules what follows. `sender`: the node
    /// and CPU that processed the packet before `hop`, if any.
    #[allow(clippy::too_many_arguments)]
    fn walk_from(
        &mut self,
        cx: &mut Context<'_, Event>,
        hop: Hop,
        pkt: Packet,
        t: SimTime,
        purpose: Purpose,
        windowed: bool,
        cpu: Option<u16>,
        reserved: bool,
        sender: Option<(u16, u16)>,
    ) {
        let now = cx.now();
        let mut w = PacketWalk {
            sim: self,
            now,
            purpose,
            windowed,
            cpu,
            reserved,
            last_cpu: sender,
        };
        let walked = hops::walk(&mut w, hop, pkt, t);
        let last_cpu = w.last_cpu;
        match walked {
            Walked::Delivered { pkt, t, .. } => {
                let ev = Event::Deliver { purpose, pkt };
                self.schedule_on(cx, last_cpu, CpuLane::Deliver, t.max(now), ev);
            }
            Walked::Dropped { node, reason } => self.on_dropped(node, reason, purpose),
            Walked::Suspended(Pause::Start {
                at,
                flight,
                reserved,
                queued,
            }) => {
                let flight = self.inflight.insert(flight);
                let ev = Event::HopStart {
                    flight,
                    waited: reserved,
                };
                match queued {
                    Some((node, cpu, lane)) => self.schedule_on(cx, Some((node, cpu)), lane, at.max(now), ev),
                    // On the wire: queued behind what its sender put there before.
                    None => self.schedule_on(cx, last_cpu, CpuLane::Link, at.max(now), ev),
                }
            }
            Walked::Suspended(Pause::Confirm { at, flight }) => {
                let lane = match flight {
                    InFlight::Confirming { node, cpu, .. } => self.cpu_lane(node, cpu, CpuLane::Confirm),
                    InFlight::Waiting { .. } => None,
                };
                let flight = self.inflight.insert(flight);
                let ev = Event::Confirm { flight };
                match lane {
                    Some(lane) => {
                        cx.schedule_lane_at(lane, at, ev);
                    }
                    None => schedule(cx, at.max(now), ev),
                }
            }
        }
    }

    /// Schedules `ev` at `at` (not before now) on `which` lane of `cpu` (a node and
    /// one of its CPUs), or in the heap when there is none: the same order either way.
    fn schedule_on(
        &self,
        cx: &mut Context<'_, Event>,
        cpu: Option<(u16, u16)>,
        which: CpuLane,
        at: SimTime,
        ev: Event,
    ) {
        match cpu.and_then(|(node, cpu)| self.cpu_lane(node, cpu, which)) {
            Some(lane) => {
                cx.schedule_lane_at(lane, at, ev);
            }
            None => schedule(cx, at, ev),
        }
    }

    /// Counts a packet lost on the path. Nothing else happens: TCP retransmits on its
    /// timer, the resolver on its try deadline, and the request deadline covers the rest.
    pub(super) fn on_dropped(&mut self, node: Option<u16>, reason: DropReason, purpose: Purpose) {
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
            Purpose::Reset { .. } => "RST",
            Purpose::Silent => "FIN/ACK",
        };
        *self.tally.packet_drops.entry((node, what, reason)).or_insert(0) += 1;
        match purpose {
            Purpose::Syn { flow }
            | Purpose::SynAck { flow }
            | Purpose::Request { flow }
            | Purpose::Response { flow }
            | Purpose::Reset { flow } => self.note_flow_loss(flow, Loss::of(reason)),
            _ => {}
        }
    }

    /// A suspended packet's time to start on its CPU (or to enter its namespace) came.
    pub(super) fn on_hop_start(&mut self, cx: &mut Context<'_, Event>, id: FlightId, reserved: bool) {
        let Some(InFlight::Waiting {
            pkt,
            hop,
            purpose,
            cpu,
        }) = self.inflight.remove(id)
        else {
            return;
        };
        let now = cx.now();
        self.walk_from(cx, hop, pkt, now, purpose, true, cpu, reserved, None);
    }

    /// A new-entry packet's processing ended: confirm its entry, then walk on.
    pub(super) fn on_confirm(&mut self, cx: &mut Context<'_, Event>, id: FlightId) {
        let now = cx.now();
        let Some(InFlight::Confirming {
            hop,
            purpose,
            node,
            cpu,
            half,
        }) = self.inflight.remove(id)
        else {
            return;
        };
        let n = usize::from(node);
        if let Some(reason) = self.confirm(n, &half, cpu, now) {
            self.on_dropped(Some(node), reason, purpose);
            return;
        }
        match half.verdict {
            HalfVerdict::Local => {
                let ev = Event::Deliver {
                    purpose,
                    pkt: half.pkt,
                };
                self.schedule_on(cx, Some((node, cpu)), CpuLane::Deliver, now, ev);
            }
            HalfVerdict::Forward { decision } => match hop.onward(&self.world.topo, &decision) {
                Ok((next, other_node)) => {
                    let t = if other_node { now + NODE_LINK_LATENCY } else { now };
                    self.walk_from(
                        cx,
                        next,
                        half.pkt,
                        t,
                        purpose,
                        true,
                        None,
                        false,
                        Some((node, cpu)),
                    );
                }
                Err(reason) => self.on_dropped(None, reason, purpose),
            },
            HalfVerdict::Dropped(reason) => self.on_dropped(Some(node), reason, purpose),
        }
    }

    /// Cilium's socket LB (`cil_sock4_connect`) on the client pod's node: the address the
    /// socket really connects to (`target` itself outside eBPF mode or for non-Services);
    /// `None` for a Service without backends (connect() fails with ECONNREFUSED). The
    /// lookup's CPU is charged to the node.
    pub(super) fn socket_lb(&mut self, pod: u32, target: SocketAddrV4) -> Option<SocketAddrV4> {
        let p = &self.world.pods[pod as usize];
        let (ip, node) = (p.ip, usize::from(p.node));
        self.socket_lb_on(node, ip, target, Proto::Tcp)
    }

    /// [`Self::socket_lb`] for a socket of `proto` bound to `ip` on `node` (a pod or the
    /// host namespace: Cilium's cgroup hooks cover both by default).
    pub(super) fn socket_lb_on(
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
}
