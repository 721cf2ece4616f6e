//! The packet path: one packet from namespace to namespace through the nodes' data
//! paths, with the CPU time each host namespace spends on it.

use super::event::{Event, Purpose};
use super::model::NodeSim;
use crate::datapath::{Confirmed, DropReason, Entry, FirstHalf, HalfVerdict, ProxyImpl, Quiet};
use crate::engine::Context;
use crate::packet::{Packet, Proto, Tuple};
use crate::service::proxy::ProxyVerdict;
use crate::time::{SimDuration, SimTime};
use crate::topology::{NetnsId, NextHop, RouteDecision};
use std::net::{Ipv4Addr, SocketAddrV4};

/// One-way latency between two nodes on the underlay (documented constant; see
/// `docs/model.md`).
pub(super) const NODE_LINK_LATENCY: SimDuration = SimDuration::from_micros(50);

/// A packet being processed in windowed mode.
#[derive(Clone, Copy, Debug)]
pub(super) struct InFlight {
    pub(super) pkt: Packet,
    pub(super) at: NetnsId,
    pub(super) in_dev: Option<crate::topology::DeviceId>,
    pub(super) purpose: Purpose,
    pub(super) node: u16,
    pub(super) cpu: u16,
    pub(super) half: Option<FirstHalf>,
}

fn mix(t: &Tuple) -> u64 {
    let mut h = u64::from(u32::from(t.src)) << 32 | u64::from(u32::from(t.dst));
    h ^= (u64::from(t.sport) << 16 | u64::from(t.dport)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

/// The end of a walk through the data path.
pub(super) enum WalkEnd {
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
    pub(super) fn cpu_for(&mut self, node: usize, pkt: &Packet, pinned: Option<u16>) -> u16 {
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
    pub(super) fn walk(
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
    pub(super) fn charge(
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

    /// Sends a packet from pod namespace `from` at `now`, scheduling whatever follows.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send(
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

    pub(super) fn finish_walk(&mut self, cx: &mut Context<'_, Event>, end: WalkEnd, purpose: Purpose) {
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
            Purpose::Silent => "FIN/ACK",
        };
        *self
            .tally
            .packet_drops
            .entry((node.unwrap_or(u16::MAX), what, reason))
            .or_insert(0) += 1;
    }

    pub(super) fn on_hop_start(&mut self, cx: &mut Context<'_, Event>, id: u32, waited: bool) {
        let Some(f) = self.inflight.remove(id) else { return };
        let pinned = if f.cpu == u16::MAX { None } else { Some(f.cpu) };
        let now = cx.now();
        let end = self.walk(f.at, f.in_dev, f.pkt, now, now, f.purpose, true, pinned, waited);
        self.finish_walk(cx, end, f.purpose);
    }

    pub(super) fn on_confirm(&mut self, cx: &mut Context<'_, Event>, id: u32) {
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
