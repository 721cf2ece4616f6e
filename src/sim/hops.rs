//! The hop loop: a packet goes from namespace to namespace until it is delivered,
//! dropped, or (in the simulation) suspended to wait for a CPU or its conntrack
//! confirm. The simulation and `k8s-netsim trace` walk packets with this one loop;
//! what happens inside a node's host namespace is theirs to say ([`Hops::host`]).
//!
//! Pod namespaces have no rules and no conntrack in the model: a packet there is only
//! routed. A packet that crosses more than [`MAX_HOPS`] namespaces is in a routing
//! loop and is dropped as such; one routed out of the modelled cluster is dropped as
//! having left it.

use super::world::World;
use crate::datapath::{DropReason, Entry};
use crate::packet::Packet;
use crate::time::{SimDuration, SimTime};
use crate::topology::{DeviceId, Forwarding, NetnsId, NextHop, RouteDecision, Topology};

/// More namespaces than any real path crosses: a guard against routing loops.
pub(super) const MAX_HOPS: u8 = 16;

/// One-way latency between two nodes on the underlay (documented constant; see
/// `docs/model.md`).
pub(super) const NODE_LINK_LATENCY: SimDuration = SimDuration::from_micros(50);

/// A namespace a packet enters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Hop {
    /// The namespace.
    pub(super) netns: NetnsId,
    /// The device it arrives on (`None`: it is generated in this namespace).
    pub(super) in_dev: Option<DeviceId>,
    /// Namespaces crossed before this one.
    pub(super) crossed: u8,
}

impl Hop {
    /// A packet generated in `netns`.
    pub(super) fn origin(netns: NetnsId) -> Hop {
        Hop {
            netns,
            in_dev: None,
            crossed: 0,
        }
    }

    /// Where the packet enters the datapath of this namespace: OUTPUT for a packet of a
    /// local socket, PREROUTING with `-i` for one that arrives.
    pub(super) fn entry(self, topo: &Topology) -> Entry<'_> {
        match self.in_dev.and_then(|d| topo.device(d)) {
            None => Entry::LocalOut,
            Some(dev) => Entry::Received { in_dev: dev.name() },
        }
    }

    /// The next namespace after this one sends the packet out per `decision`, and
    /// whether it is on another node.
    ///
    /// # Errors
    /// [`DropReason::LeftCluster`] when the packet leaves the modelled cluster,
    /// [`DropReason::RoutingLoop`] past [`MAX_HOPS`] namespaces.
    pub(super) fn onward(self, topo: &Topology, decision: &Forwarding) -> Result<(Hop, bool), DropReason> {
        match decision.next {
            NextHop::Netns { netns, in_dev, .. } => {
                let crossed = self.crossed + 1;
                if crossed >= MAX_HOPS {
                    return Err(DropReason::RoutingLoop);
                }
                let other_node = topo.node_of(self.netns) != topo.node_of(netns);
                Ok((
                    Hop {
                        netns,
                        in_dev: Some(in_dev),
                        crossed,
                    },
                    other_node,
                ))
            }
            NextHop::External => Err(DropReason::LeftCluster),
        }
    }
}

/// What a host namespace did with a packet.
#[derive(Debug)]
pub(super) enum Step<S> {
    /// Sent out per `decision`, at `t`, as `pkt`.
    Forward {
        pkt: Packet,
        t: SimTime,
        decision: Forwarding,
    },
    /// Delivered to a local socket at `t`.
    Delivered { pkt: Packet, t: SimTime },
    /// Dropped on `node` (`None`: outside any node's host namespace).
    Dropped { node: Option<u16>, reason: DropReason },
    /// The walk stops here and resumes later (simulation only).
    Suspend(S),
}

/// How a walk ended.
#[derive(Debug)]
pub(super) enum Walked<S> {
    /// Delivered in namespace `netns` at `t` as `pkt`.
    Delivered { netns: NetnsId, pkt: Packet, t: SimTime },
    /// Dropped.
    Dropped { node: Option<u16>, reason: DropReason },
    /// Suspended (simulation only).
    Suspended(S),
}

/// Whoever walks packets: says what host namespaces do, and may watch the rest.
pub(super) trait Hops {
    /// What a suspended walk carries.
    type Suspend;
    /// The world walked through.
    fn world(&self) -> &World;
    /// Processes `pkt` entering node `node`'s host namespace at `hop`, at `t`.
    fn host(&mut self, node: u16, hop: Hop, pkt: Packet, t: SimTime) -> Step<Self::Suspend>;
    /// The packet enters `hop` (for observers).
    fn entered(&mut self, _hop: Hop, _pkt: &Packet) {}
    /// A pod namespace routed the packet (for observers).
    fn routed(&mut self, _decision: &RouteDecision) {}
    /// The packet leaves a namespace per `decision` (for observers).
    fn leaves(&mut self, _decision: &Forwarding) {}
}

/// Walks `pkt` from `hop` at `t` until it is delivered, dropped or suspended.
pub(super) fn walk<H: Hops>(h: &mut H, mut hop: Hop, mut pkt: Packet, mut t: SimTime) -> Walked<H::Suspend> {
    loop {
        h.entered(hop, &pkt);
        let host = h.world().host_of(hop.netns);
        let step = match host {
            Some(node) => h.host(node, hop, pkt, t),
            None => {
                let decision = h.world().topo.route(hop.netns, pkt.tuple.dst);
                h.routed(&decision);
                match decision {
                    RouteDecision::Local { .. } => Step::Delivered { pkt, t },
                    RouteDecision::Forward(decision) => Step::Forward { pkt, t, decision },
                    RouteDecision::Unreachable(_) => Step::Dropped {
                        node: None,
                        reason: DropReason::NoRoute,
                    },
                }
            }
        };
        let decision = match step {
            Step::Forward {
                pkt: p,
                t: at,
                decision,
            } => {
                pkt = p;
                t = at;
                decision
            }
            Step::Delivered { pkt, t } => {
                return Walked::Delivered {
                    netns: hop.netns,
                    pkt,
                    t,
                };
            }
            Step::Dropped { node, reason } => return Walked::Dropped { node, reason },
            Step::Suspend(s) => return Walked::Suspended(s),
        };
        h.leaves(&decision);
        match hop.onward(&h.world().topo, &decision) {
            Ok((next, other_node)) => {
                if other_node {
                    t += NODE_LINK_LATENCY;
                }
                hop = next;
            }
            Err(reason) => return Walked::Dropped { node: None, reason },
        }
    }
}
