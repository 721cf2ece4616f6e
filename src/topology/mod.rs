//! The `topology` module models the network graph of a Kubernetes cluster as the
//! data path sees it: nodes with a host network namespace (node IP on `eth0`), pod
//! namespaces joined to it by veth pairs, the CNI's bridge or routed attachment, its
//! tunnel devices, per-namespace routing tables with longest-prefix match, and the
//! local addresses that decide local delivery.
//!
//! What is modelled:
//! - Four CNI layouts ([`CniFlavour`]): flannel-vxlan (`cni0` bridge, `flannel.1`
//!   VXLAN, +50 B), calico-ipip (`/32` route per pod to its `cali*` veth, `tunl0`,
//!   +20 B), calico-bgp (same, routed via the peer node IP), cilium-native
//!   (`cilium_host`, routed via the peer node IP). MTU per device; the path MTU is
//!   the smallest MTU crossed.
//! - [`Topology::route`]: one routing decision in one namespace (local table first,
//!   then the main table by longest prefix, then neighbour resolution: bridge FDB,
//!   VXLAN FDB, underlay). The datapath layer calls it once per namespace, with the
//!   post-DNAT destination after nat PREROUTING.
//! - [`Topology::path`]: the whole hop sequence with the netfilter hooks run in each
//!   namespace, built on `route`.
//! - br_netfilter: with `bridge-nf-call-iptables=1` (the default, kube-proxy needs
//!   it) same-bridge pod-to-pod traffic runs PREROUTING, FORWARD and POSTROUTING in
//!   the host namespace, with `-i cni0`; with 0 it runs no IP hooks there.
//!
//! What is not modelled: ARP/neighbour timing and failures other than "no such
//! address", policy routing (`ip rule`), multipath and route metrics, IPv6, reverse
//! path filtering, ICMP errors (an unreachable destination is a [`RouteDecision`],
//! not a packet), hairpin mode, and the outer (encapsulated) packet's own hooks,
//! which [`PathLink::encap`] flags for the caller. See `docs/model.md`.
//!
//! The graph is a petgraph `StableGraph` (namespaces and one underlay "fabric" vertex
//! as nodes, veth pairs and underlay attachments as edges) behind typed ids; no
//! petgraph type appears in the public API.

mod builder;
mod device;
mod id;
mod path;
mod route;
#[cfg(test)]
mod tests;

pub use builder::{CALICO_POD_GATEWAY, NODELOCAL_DNS_ADDR, TopologyBuilder, TopologyError};
pub use device::{CniFlavour, Device, DeviceKind, Encap, Netns, NetnsKind};
pub use id::{DeviceId, LinkId, NetnsId, NodeId};
pub use path::{DeviceRef, Hop, HopRole, Path, PathError, PathLink};
pub use route::{Route, RouteKind, RouteTable};

use crate::packet::Cidr;
use petgraph::stable_graph::{NodeIndex, StableGraph};
use petgraph::visit::EdgeRef;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// A vertex of the internal graph.
#[derive(Clone, Debug)]
pub(crate) enum Vertex {
    Netns(Box<Netns>),
    /// The underlay L2 network all nodes' `eth0` attach to.
    Fabric,
}

/// What kind of link a packet crosses between two namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum LinkKind {
    /// A veth pair (pod `eth0` to host side).
    Veth,
    /// The underlay network between nodes' `eth0`s, unencapsulated.
    Underlay,
    /// A VXLAN tunnel between two `flannel.1` devices, over the underlay.
    Vxlan,
    /// An IP-in-IP tunnel between two `tunl0` devices, over the underlay.
    Ipip,
}

impl LinkKind {
    /// Lowercase name for rendering.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Veth => "veth",
            LinkKind::Underlay => "underlay",
            LinkKind::Vxlan => "vxlan",
            LinkKind::Ipip => "ipip",
        }
    }
}

/// An edge of the internal graph.
#[derive(Clone, Debug)]
pub(crate) struct Link {
    pub(crate) kind: LinkKind,
    pub(crate) ends: [DeviceId; 2],
}

#[derive(Clone, Debug)]
pub(crate) struct ClusterNode {
    pub(crate) name: String,
    pub(crate) ip: Ipv4Addr,
    pub(crate) pod_cidr: Cidr,
    pub(crate) host: NetnsId,
    pub(crate) eth0: DeviceId,
    pub(crate) tunnel: Option<DeviceId>,
    /// `cni0` (flannel) or `cilium_host` (cilium).
    pub(crate) pod_gateway_dev: Option<DeviceId>,
    pub(crate) pods: Vec<NetnsId>,
}

/// Why a routing decision found no way forward (the kernel would answer with an
/// ICMP error or drop silently).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Unreachable {
    /// No route matched (`fib_lookup` returned `-ENETUNREACH`).
    NoRoute,
    /// A blackhole route matched (`RTN_BLACKHOLE`), e.g. Calico's route for its own
    /// block when no pod has the address.
    Blackhole,
    /// The next hop is on-link but nothing owns that address (ARP fails,
    /// `EHOSTUNREACH` after the neighbour timeout).
    NoNeighbour,
}

/// How a packet is processed when it arrives in the next namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Arrival {
    /// Up the IP stack: PREROUTING, then a routing decision in that namespace.
    Routed,
    /// Forwarded at layer 2 by a bridge without an IP routing decision (the frame
    /// was addressed to another port's MAC). With `bridge-nf-call-iptables=1` the
    /// IPv4 PREROUTING, FORWARD and POSTROUTING hooks still run, with `in_dev` the
    /// bridge.
    Bridged {
        /// The bridge (`cni0`).
        bridge: DeviceId,
        /// The port the frame leaves through.
        out_port: DeviceId,
        /// The namespace behind that port.
        to: NetnsId,
        /// The device the frame arrives on there.
        to_dev: DeviceId,
    },
}

/// Where a forwarded packet goes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum NextHop {
    /// Another modelled namespace.
    Netns {
        /// The namespace.
        netns: NetnsId,
        /// The device the IP stack sees the packet arrive on (`-i`): the bridge for a
        /// bridge port, the tunnel device for encapsulated traffic.
        in_dev: DeviceId,
        /// The bridge port it physically arrived through (`-m physdev
        /// --physdev-in`), when `in_dev` is a bridge.
        in_port: Option<DeviceId>,
        /// Routed or bridged.
        arrival: Arrival,
    },
    /// Leaves the modelled cluster through the default route.
    External,
}

/// A forwarding decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Forwarding {
    /// Output device as the IP stack sees it (`-o`).
    pub out_dev: DeviceId,
    /// The device the packet finally leaves through when `out_dev` is a bridge (the
    /// port) or `cilium_host` (the endpoint's `lxc*` veth, by BPF redirect).
    pub egress_port: Option<DeviceId>,
    /// The gateway, or `None` when the destination is on-link.
    pub via: Option<Ipv4Addr>,
    /// Source address for locally generated packets and MASQUERADE: the route's
    /// `src`, else the primary address of `out_dev`, else of the namespace.
    pub src: Option<Ipv4Addr>,
    /// Encapsulation applied on the way out.
    pub encap: Encap,
    /// For encapsulated traffic, the underlay device carrying the outer packet.
    pub underlay_dev: Option<DeviceId>,
    /// Where the packet goes.
    pub next: NextHop,
}

/// The outcome of one routing decision in one namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum RouteDecision {
    /// The destination is a local address (`RTN_LOCAL`): INPUT follows PREROUTING.
    Local {
        /// The device holding the address (`lo` for `127.0.0.0/8`).
        dev: DeviceId,
    },
    /// Forward (or, for locally generated packets, send) out of a device.
    Forward(Forwarding),
    /// No way forward.
    Unreachable(Unreachable),
}

/// A validated cluster network: build it with [`TopologyBuilder`].
#[derive(Clone, Debug)]
pub struct Topology {
    pub(crate) cni: CniFlavour,
    pub(crate) graph: StableGraph<Vertex, Link, petgraph::Undirected, u32>,
    pub(crate) devices: Vec<Device>,
    pub(crate) nodes: Vec<ClusterNode>,
    pub(crate) by_name: BTreeMap<String, NetnsId>,
    pub(crate) pods_by_ip: BTreeMap<Ipv4Addr, NetnsId>,
    /// Node IP -> node (the underlay neighbour table).
    pub(crate) underlay: BTreeMap<Ipv4Addr, NodeId>,
    /// `flannel.1` address -> node (flannel's VXLAN FDB + ARP entries).
    pub(crate) vteps: BTreeMap<Ipv4Addr, NodeId>,
    pub(crate) bridge_nf_call_iptables: bool,
    pub(crate) underlay_mtu: u32,
}

impl Topology {
    /// The CNI flavour.
    #[must_use]
    pub fn cni(&self) -> CniFlavour {
        self.cni
    }

    /// `net.bridge.bridge-nf-call-iptables` on the nodes.
    #[must_use]
    pub fn bridge_nf_call_iptables(&self) -> bool {
        self.bridge_nf_call_iptables
    }

    /// The underlay MTU.
    #[must_use]
    pub fn underlay_mtu(&self) -> u32 {
        self.underlay_mtu
    }

    /// A namespace by id.
    #[must_use]
    pub fn netns(&self, id: NetnsId) -> Option<&Netns> {
        match self.graph.node_weight(NodeIndex::new(id.index())) {
            Some(Vertex::Netns(ns)) => Some(ns),
            _ => None,
        }
    }

    /// A device by id.
    #[must_use]
    pub fn device(&self, id: DeviceId) -> Option<&Device> {
        self.devices.get(id.index())
    }

    /// A device by name inside a namespace.
    #[must_use]
    pub fn device_by_name(&self, netns: NetnsId, name: &str) -> Option<DeviceId> {
        let ns = self.netns(netns)?;
        ns.devices
            .iter()
            .copied()
            .find(|d| self.devices[d.index()].name == name)
    }

    /// The namespace called `name` (a node name gives its host namespace).
    #[must_use]
    pub fn netns_by_name(&self, name: &str) -> Option<NetnsId> {
        self.by_name.get(name).copied()
    }

    /// The pod namespace owning `ip`.
    #[must_use]
    pub fn pod_by_ip(&self, ip: Ipv4Addr) -> Option<NetnsId> {
        self.pods_by_ip.get(&ip).copied()
    }

    /// The node a namespace is on.
    #[must_use]
    pub fn node_of(&self, netns: NetnsId) -> Option<NodeId> {
        self.netns(netns).map(|ns| ns.node)
    }

    /// A node's host namespace.
    #[must_use]
    pub fn host_netns(&self, node: NodeId) -> Option<NetnsId> {
        self.nodes.get(node.index()).map(|n| n.host)
    }

    /// All nodes, in declaration order.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.nodes.len()).map(|i| NodeId(i as u32))
    }

    /// A node's name.
    #[must_use]
    pub fn node_name(&self, node: NodeId) -> Option<&str> {
        self.nodes.get(node.index()).map(|n| n.name.as_str())
    }

    /// A node's IP.
    #[must_use]
    pub fn node_ip(&self, node: NodeId) -> Option<Ipv4Addr> {
        self.nodes.get(node.index()).map(|n| n.ip)
    }

    /// A node's pod CIDR.
    #[must_use]
    pub fn pod_cidr(&self, node: NodeId) -> Option<Cidr> {
        self.nodes.get(node.index()).map(|n| n.pod_cidr)
    }

    /// The pods on a node, in declaration order.
    #[must_use]
    pub fn pods_on(&self, node: NodeId) -> &[NetnsId] {
        self.nodes.get(node.index()).map_or(&[], |n| n.pods.as_slice())
    }

    /// A namespace's local addresses (without `127.0.0.0/8`), ascending.
    pub fn local_addrs(&self, netns: NetnsId) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.netns(netns)
            .into_iter()
            .flat_map(|ns| ns.local.iter().copied())
    }

    /// Whether `ip` is local in `netns` (`-m addrtype --dst-type LOCAL`).
    #[must_use]
    pub fn is_local(&self, netns: NetnsId, ip: Ipv4Addr) -> bool {
        ip.is_loopback() || self.netns(netns).is_some_and(|ns| ns.local.contains(&ip))
    }

    /// The veth link a device belongs to, if it is a veth end.
    #[must_use]
    pub fn link_of(&self, dev: DeviceId) -> Option<LinkId> {
        let d = self.device(dev)?;
        self.graph
            .edges(NodeIndex::new(d.netns.index()))
            .find(|e| e.weight().kind == LinkKind::Veth && e.weight().ends.contains(&dev))
            .map(|e| LinkId::from_edge(e.id()))
    }

    /// Namespaces directly linked to `netns` by a veth pair, in link order.
    pub fn neighbours(&self, netns: NetnsId) -> impl Iterator<Item = NetnsId> + '_ {
        let me = NodeIndex::new(netns.index());
        self.graph
            .edges(me)
            .filter(|e| e.weight().kind == LinkKind::Veth)
            .map(move |e| if e.source() == me { e.target() } else { e.source() })
            .map(|v| NetnsId(v.index() as u32))
    }

    fn primary_addr(&self, dev: DeviceId) -> Option<Ipv4Addr> {
        self.devices
            .get(dev.index())
            .and_then(|d| d.addrs.first().copied())
    }

    /// One routing decision in `netns` for a packet to `dst`, as `ip_route_input` /
    /// `ip_route_output` would take it: the local table first (local addresses and
    /// `127.0.0.0/8`), then the main table by longest prefix (`fib_table_lookup`),
    /// then neighbour resolution of the next hop (bridge FDB, flannel's VXLAN FDB,
    /// the underlay). Allocation-free.
    ///
    /// Call it with the destination as currently written in the header: after nat
    /// PREROUTING/OUTPUT has applied DNAT, pass the translated address. An id from
    /// another topology gives [`Unreachable::NoRoute`].
    #[must_use]
    // Long on purpose: one match over the outgoing device's kind (loopback, veth, bridge,
    // cilium_host, ethernet, VXLAN/IPIP), each arm the forwarding that device does.
    pub fn route(&self, netns: NetnsId, dst: Ipv4Addr) -> RouteDecision {
        let Some(ns) = self.netns(netns) else {
            return RouteDecision::Unreachable(Unreachable::NoRoute);
        };
        if dst.is_loopback() {
            return RouteDecision::Local { dev: ns.lo };
        }
        if ns.local.contains(&dst) {
            let dev = ns
                .devices
                .iter()
                .copied()
                .find(|d| self.devices[d.index()].addrs.contains(&dst))
                .unwrap_or(ns.lo);
            return RouteDecision::Local { dev };
        }
        let Some(route) = ns.routes.lookup(dst) else {
            return RouteDecision::Unreachable(Unreachable::NoRoute);
        };
        if route.kind == RouteKind::Blackhole {
            return RouteDecision::Unreachable(Unreachable::Blackhole);
        }
        let out = route.dev;
        let Some(out_dev) = self.devices.get(out.index()) else {
            return RouteDecision::Unreachable(Unreachable::NoRoute);
        };
        let nh = route.via.unwrap_or(dst);
        let src = route
            .src
            .or_else(|| self.primary_addr(out))
            .or_else(|| ns.local.iter().next().copied());
        let mut fwd = Forwarding {
            out_dev: out,
            egress_port: None,
            via: route.via,
            src,
            encap: Encap::None,
            underlay_dev: None,
            next: NextHop::External,
        };
        let unreachable = RouteDecision::Unreachable(Unreachable::NoNeighbour);
        match out_dev.kind {
            DeviceKind::Loopback => return RouteDecision::Local { dev: out },
            DeviceKind::Dummy => return RouteDecision::Unreachable(Unreachable::Blackhole),
            DeviceKind::Veth => {
                let Some(peer) = out_dev.peer else {
                    return unreachable;
                };
                let peer_dev = &self.devices[peer.index()];
                let next_ns = peer_dev.netns;
                fwd.next = match peer_dev.master {
                    // The peer is a bridge port: the frame's destination MAC decides.
                    Some(bridge) => {
                        if self.is_local(next_ns, nh) {
                            NextHop::Netns {
                                netns: next_ns,
                                in_dev: bridge,
                                in_port: Some(peer),
                                arrival: Arrival::Routed,
                            }
                        } else if let Some((to, to_dev, out_port)) = self.bridge_port_for(bridge, nh) {
                            NextHop::Netns {
                                netns: next_ns,
                                in_dev: bridge,
                                in_port: Some(peer),
                                arrival: Arrival::Bridged {
                                    bridge,
                                    out_port,
                                    to,
                                    to_dev,
                                },
                            }
                        } else {
                            return unreachable;
                        }
                    }
                    // Routed attachment (calico proxy-ARP, cilium, pod side of a host route).
                    None => NextHop::Netns {
                        netns: next_ns,
                        in_dev: peer,
                        in_port: None,
                        arrival: Arrival::Routed,
                    },
                };
            }
            DeviceKind::Bridge => {
                let Some((to, to_dev, port)) = self.bridge_port_for(out, nh) else {
                    return unreachable;
                };
                fwd.egress_port = Some(port);
                fwd.next = NextHop::Netns {
                    netns: to,
                    in_dev: to_dev,
                    in_port: None,
                    arrival: Arrival::Routed,
                };
            }
            DeviceKind::CiliumHost => {
                // bpf_lxc endpoint lookup by destination, then redirect to its lxc.
                let Some(pod) = self.pod_by_ip(dst).filter(|p| self.node_of(*p) == Some(ns.node)) else {
                    return unreachable;
                };
                let Some((pod_eth0, lxc)) = self.pod_attachment(pod) else {
                    return unreachable;
                };
                fwd.egress_port = Some(lxc);
                fwd.next = NextHop::Netns {
                    netns: pod,
                    in_dev: pod_eth0,
                    in_port: None,
                    arrival: Arrival::Routed,
                };
            }
            DeviceKind::Ethernet => {
                if let Some(node) = self.underlay.get(&nh).map(|n| &self.nodes[n.index()]) {
                    fwd.next = NextHop::Netns {
                        netns: node.host,
                        in_dev: node.eth0,
                        in_port: None,
                        arrival: Arrival::Routed,
                    };
                }
            }
            DeviceKind::Vxlan | DeviceKind::Ipip => {
                let table = if out_dev.kind == DeviceKind::Vxlan {
                    &self.vteps
                } else {
                    &self.underlay
                };
                let Some(peer) = table.get(&nh).map(|n| &self.nodes[n.index()]) else {
                    return unreachable;
                };
                let Some(peer_tunnel) = peer.tunnel else {
                    return unreachable;
                };
                fwd.encap = if out_dev.kind == DeviceKind::Vxlan {
                    Encap::Vxlan
                } else {
                    Encap::Ipip
                };
                fwd.underlay_dev = self.nodes.get(ns.node.index()).map(|n| n.eth0);
                fwd.next = NextHop::Netns {
                    netns: peer.host,
                    in_dev: peer_tunnel,
                    in_port: None,
                    arrival: Arrival::Routed,
                };
            }
        }
        RouteDecision::Forward(fwd)
    }

    /// The pod behind `bridge` owning `ip`: (pod netns, pod eth0, host-side port).
    fn bridge_port_for(&self, bridge: DeviceId, ip: Ipv4Addr) -> Option<(NetnsId, DeviceId, DeviceId)> {
        let pod = self.pod_by_ip(ip)?;
        let (eth0, port) = self.pod_attachment(pod)?;
        (self.devices[port.index()].master == Some(bridge)).then_some((pod, eth0, port))
    }

    /// A pod's `eth0` and the host-side end of its veth.
    fn pod_attachment(&self, pod: NetnsId) -> Option<(DeviceId, DeviceId)> {
        let ns = self.netns(pod)?;
        ns.devices.iter().copied().find_map(|d| {
            let dev = &self.devices[d.index()];
            (dev.kind == DeviceKind::Veth)
                .then_some(())
                .and(dev.peer.map(|p| (d, p)))
        })
    }
}
