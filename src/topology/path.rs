//! The hop-by-hop path of a packet, built from one [`Topology::route`] decision per
//! namespace.

use super::device::{Encap, NetnsKind};
use super::id::{DeviceId, NetnsId};
use super::{Arrival, Forwarding, LinkKind, NextHop, RouteDecision, Topology, Unreachable};
use crate::netfilter::Hook;
use std::fmt;
use std::net::Ipv4Addr;

/// More namespaces than any real path crosses: a guard against routing loops.
const MAX_HOPS: usize = 16;

const ORIGIN_HOOKS: &[Hook] = &[Hook::Output, Hook::Postrouting];
const ORIGIN_LOCAL_HOOKS: &[Hook] = &[Hook::Output, Hook::Postrouting, Hook::Prerouting, Hook::Input];
const FORWARD_HOOKS: &[Hook] = &[Hook::Prerouting, Hook::Forward, Hook::Postrouting];
const DELIVER_HOOKS: &[Hook] = &[Hook::Prerouting, Hook::Input];

/// Why a path could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The starting namespace id is not from this topology.
    #[error("unknown namespace {0}")]
    UnknownNetns(NetnsId),
    /// A namespace on the way had no way forward.
    #[error("{dst} is unreachable from namespace `{netns}` ({reason:?})")]
    Unreachable {
        /// The namespace where routing failed.
        netns: String,
        /// The destination.
        dst: Ipv4Addr,
        /// Why.
        reason: Unreachable,
    },
    /// The path crossed more than 16 namespaces.
    #[error("routing loop towards {dst} (more than 16 namespaces crossed)")]
    RoutingLoop {
        /// The destination.
        dst: Ipv4Addr,
    },
}

/// A device named for rendering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRef {
    /// Its id.
    pub id: DeviceId,
    /// Its name.
    pub name: String,
    /// Its MTU.
    pub mtu: u32,
}

/// What a namespace does with the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum HopRole {
    /// The packet is generated here and sent out.
    Origin,
    /// Generated here for a local address (loopback path).
    OriginLocal,
    /// Routed through (ip_forward).
    Forwarded,
    /// Forwarded by a bridge at layer 2.
    Bridged,
    /// Delivered to a local socket.
    Delivered,
}

/// One namespace crossed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// The namespace.
    pub netns: NetnsId,
    /// Its name.
    pub name: String,
    /// Host or pod.
    pub kind: NetnsKind,
    /// Name of the node it is on.
    pub node: String,
    /// What happens here.
    pub role: HopRole,
    /// Arrival device as iptables sees it (`-i`).
    pub in_dev: Option<DeviceRef>,
    /// Bridge port it arrived through, when `in_dev` is a bridge.
    pub in_port: Option<DeviceRef>,
    /// Output device as iptables sees it (`-o`).
    pub out_dev: Option<DeviceRef>,
    /// Bridge port (or BPF redirect target) it leaves through.
    pub egress_port: Option<DeviceRef>,
    /// Netfilter hooks run here, in order.
    pub hooks: &'static [Hook],
}

/// One link crossed between two hops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathLink {
    /// Veth, underlay or tunnel.
    pub kind: LinkKind,
    /// Sending device.
    pub from: DeviceRef,
    /// Receiving device.
    pub to: DeviceRef,
    /// Encapsulation. For VXLAN and IP-in-IP the outer packet itself runs OUTPUT and
    /// POSTROUTING on the sending host and PREROUTING and INPUT on the receiving host
    /// (the tunnel transmits with `ip_local_out`); the path lists only the inner
    /// packet's hooks.
    pub encap: Encap,
    /// The underlay device carrying the outer packet, for tunnels.
    pub underlay: Option<DeviceRef>,
    /// Largest inner packet the link carries.
    pub mtu: u32,
}

/// The path of a packet from a namespace to an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    /// The destination.
    pub dst: Ipv4Addr,
    /// Namespaces crossed, in order.
    pub hops: Vec<Hop>,
    /// Links crossed: `links[i]` joins `hops[i]` and `hops[i + 1]`; when
    /// [`Path::leaves_cluster`] is set there is no hop after the last link's
    /// sender and `links` has as many entries as `hops` minus one.
    pub links: Vec<PathLink>,
    /// Whether the packet leaves the modelled cluster (default route on `eth0`).
    pub leaves_cluster: bool,
    /// Smallest MTU of every device crossed (inner packet size limit).
    pub mtu: u32,
    /// Largest encapsulation overhead on the path.
    pub encap_bytes: u16,
}

impl Topology {
    fn dev_ref(&self, id: DeviceId) -> DeviceRef {
        let d = &self.devices[id.index()];
        DeviceRef {
            id,
            name: d.name.clone(),
            mtu: d.mtu,
        }
    }

    fn hop(&self, netns: NetnsId, role: HopRole, hooks: &'static [Hook]) -> Hop {
        let ns = self.netns(netns);
        Hop {
            netns,
            name: ns.map(|n| n.name.clone()).unwrap_or_default(),
            kind: ns.map_or(NetnsKind::Pod, |n| n.kind),
            node: ns
                .and_then(|n| self.node_name(n.node))
                .unwrap_or_default()
                .to_string(),
            role,
            in_dev: None,
            in_port: None,
            out_dev: None,
            egress_port: None,
            hooks,
        }
    }

    fn unreachable(&self, netns: NetnsId, dst: Ipv4Addr, reason: Unreachable) -> PathError {
        PathError::Unreachable {
            netns: self.netns(netns).map(|n| n.name.clone()).unwrap_or_default(),
            dst,
            reason,
        }
    }

    /// The link crossed by a forwarding decision towards `in_dev`.
    fn link_for(&self, fwd: &Forwarding, in_dev: DeviceId, in_port: Option<DeviceId>) -> PathLink {
        let out = &self.devices[fwd.out_dev.index()];
        let (kind, from, to) = match fwd.encap {
            Encap::Vxlan => (LinkKind::Vxlan, fwd.out_dev, in_dev),
            Encap::Ipip => (LinkKind::Ipip, fwd.out_dev, in_dev),
            Encap::None => match out.kind {
                super::DeviceKind::Ethernet => (LinkKind::Underlay, fwd.out_dev, in_dev),
                _ => (
                    LinkKind::Veth,
                    fwd.egress_port.unwrap_or(fwd.out_dev),
                    in_port.unwrap_or(in_dev),
                ),
            },
        };
        let from = self.dev_ref(from);
        let to = self.dev_ref(to);
        PathLink {
            kind,
            mtu: from.mtu.min(to.mtu),
            from,
            to,
            encap: fwd.encap,
            underlay: fwd.underlay_dev.map(|d| self.dev_ref(d)),
        }
    }

    /// The hop sequence of a packet generated in `from` for `dst`, with the netfilter
    /// hooks run in each namespace, the links crossed, the path MTU and the
    /// encapsulation. Built from one [`Topology::route`] call per namespace with an
    /// unchanged destination (no NAT on the way; the datapath layer calls `route`
    /// itself when DNAT changes the destination).
    ///
    /// # Errors
    /// [`PathError::Unreachable`] when some namespace has no way forward,
    /// [`PathError::UnknownNetns`] for an id from another topology,
    /// [`PathError::RoutingLoop`] past 16 namespaces.
    pub fn path(&self, from: NetnsId, dst: Ipv4Addr) -> Result<Path, PathError> {
        if self.netns(from).is_none() {
            return Err(PathError::UnknownNetns(from));
        }
        let mut hops = Vec::new();
        let mut links = Vec::new();
        let mut fwd = match self.route(from, dst) {
            RouteDecision::Local { dev } => {
                let mut hop = self.hop(from, HopRole::OriginLocal, ORIGIN_LOCAL_HOOKS);
                hop.out_dev = Some(self.dev_ref(dev));
                hops.push(hop);
                return Ok(finish(dst, hops, links, false));
            }
            RouteDecision::Unreachable(r) => return Err(self.unreachable(from, dst, r)),
            RouteDecision::Forward(f) => {
                let mut hop = self.hop(from, HopRole::Origin, ORIGIN_HOOKS);
                hop.out_dev = Some(self.dev_ref(f.out_dev));
                hop.egress_port = f.egress_port.map(|d| self.dev_ref(d));
                hops.push(hop);
                f
            }
        };
        loop {
            if hops.len() > MAX_HOPS {
                return Err(PathError::RoutingLoop { dst });
            }
            let NextHop::Netns {
                netns,
                in_dev,
                in_port,
                arrival,
            } = fwd.next
            else {
                return Ok(finish(dst, hops, links, true));
            };
            links.push(self.link_for(&fwd, in_dev, in_port));
            let (here, here_in, here_port) = match arrival {
                Arrival::Routed => (netns, in_dev, in_port),
                Arrival::Bridged {
                    bridge,
                    out_port,
                    to,
                    to_dev,
                } => {
                    let hooks: &'static [Hook] = if self.bridge_nf_call_iptables {
                        FORWARD_HOOKS
                    } else {
                        &[]
                    };
                    let mut hop = self.hop(netns, HopRole::Bridged, hooks);
                    hop.in_dev = Some(self.dev_ref(bridge));
                    hop.in_port = in_port.map(|d| self.dev_ref(d));
                    hop.out_dev = Some(self.dev_ref(bridge));
                    hop.egress_port = Some(self.dev_ref(out_port));
                    hops.push(hop);
                    let from = self.dev_ref(out_port);
                    let to_ref = self.dev_ref(to_dev);
                    links.push(PathLink {
                        kind: LinkKind::Veth,
                        mtu: from.mtu.min(to_ref.mtu),
                        from,
                        to: to_ref,
                        encap: Encap::None,
                        underlay: None,
                    });
                    (to, to_dev, None)
                }
            };
            match self.route(here, dst) {
                RouteDecision::Local { .. } => {
                    let mut hop = self.hop(here, HopRole::Delivered, DELIVER_HOOKS);
                    hop.in_dev = Some(self.dev_ref(here_in));
                    hop.in_port = here_port.map(|d| self.dev_ref(d));
                    hops.push(hop);
                    return Ok(finish(dst, hops, links, false));
                }
                RouteDecision::Unreachable(r) => return Err(self.unreachable(here, dst, r)),
                RouteDecision::Forward(f) => {
                    let mut hop = self.hop(here, HopRole::Forwarded, FORWARD_HOOKS);
                    hop.in_dev = Some(self.dev_ref(here_in));
                    hop.in_port = here_port.map(|d| self.dev_ref(d));
                    hop.out_dev = Some(self.dev_ref(f.out_dev));
                    hop.egress_port = f.egress_port.map(|d| self.dev_ref(d));
                    hops.push(hop);
                    fwd = f;
                }
            }
        }
    }
}

fn finish(dst: Ipv4Addr, hops: Vec<Hop>, links: Vec<PathLink>, leaves_cluster: bool) -> Path {
    let dev_mtus = hops.iter().flat_map(|h| {
        [&h.in_dev, &h.in_port, &h.out_dev, &h.egress_port]
            .into_iter()
            .flatten()
            .map(|d| d.mtu)
    });
    let mtu = links
        .iter()
        .map(|l| l.mtu)
        .chain(dev_mtus)
        .min()
        .unwrap_or(u32::MAX);
    let encap_bytes = links.iter().map(|l| l.encap.overhead_bytes()).max().unwrap_or(0);
    Path {
        dst,
        hops,
        links,
        leaves_cluster,
        mtu,
        encap_bytes,
    }
}

fn write_hooks(f: &mut fmt::Formatter<'_>, hooks: &[Hook]) -> fmt::Result {
    f.write_str("[")?;
    for (i, h) in hooks.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{h}")?;
    }
    f.write_str("]")
}

impl fmt::Display for Hop {
    /// `node-a host [PREROUTING, FORWARD, POSTROUTING] in cni0 (port veth1a2b3c4d) out flannel.1`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            NetnsKind::Pod => write!(f, "pod {} on {}", self.name, self.node)?,
            NetnsKind::Host => write!(f, "{} host", self.name)?,
        }
        if self.role == HopRole::Bridged {
            f.write_str(" (bridged)")?;
        }
        f.write_str(" ")?;
        if self.hooks.is_empty() {
            f.write_str("[no IP hooks: bridge-nf-call-iptables=0]")?;
        } else {
            write_hooks(f, self.hooks)?;
        }
        if let Some(d) = &self.in_dev {
            write!(f, " in {}", d.name)?;
            if let Some(p) = &self.in_port {
                write!(f, " (port {})", p.name)?;
            }
        }
        if let Some(d) = &self.out_dev {
            write!(f, " out {}", d.name)?;
            if let Some(p) = &self.egress_port {
                write!(f, " (port {})", p.name)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for PathLink {
    /// `-> vxlan flannel.1 -> flannel.1 (+50B over eth0, mtu 1450)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "-> {} {} -> {} (",
            self.kind.as_str(),
            self.from.name,
            self.to.name
        )?;
        if self.encap != Encap::None {
            write!(f, "+{}B", self.encap.overhead_bytes())?;
            if let Some(u) = &self.underlay {
                write!(f, " over {}", u.name)?;
            }
            f.write_str(", ")?;
        }
        write!(f, "mtu {})", self.mtu)
    }
}

impl fmt::Display for Path {
    /// One line per namespace, the link crossed indented between them, then a
    /// summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, hop) in self.hops.iter().enumerate() {
            writeln!(f, "{hop}")?;
            if let Some(link) = self.links.get(i) {
                writeln!(f, "  {link}")?;
            }
        }
        if self.leaves_cluster {
            let dev = self
                .hops
                .last()
                .and_then(|h| h.out_dev.as_ref())
                .map_or("eth0", |d| d.name.as_str());
            writeln!(f, "  -> leaves the cluster via {dev}")?;
        }
        write!(
            f,
            "to {}: path mtu {}, encapsulation {}B",
            self.dst, self.mtu, self.encap_bytes
        )
    }
}
