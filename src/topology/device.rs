//! Namespaces, devices and the CNI flavours that lay them out.

use super::id::{DeviceId, NetnsId, NodeId};
use super::route::RouteTable;
use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

/// How pods reach each other across nodes: the CNI plugin and its mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CniFlavour {
    /// Flannel with the VXLAN backend: pods on a `cni0` bridge, other nodes' pod CIDRs
    /// routed through `flannel.1` (VXLAN, 50 bytes of encapsulation, MTU 1450 on 1500).
    FlannelVxlan,
    /// Calico in IP-in-IP mode: a /32 route per local pod to its `cali*` veth (no
    /// bridge), other nodes' blocks through `tunl0` (20 bytes, MTU 1480 on 1500).
    CalicoIpip,
    /// Calico with plain BGP routing: like [`CniFlavour::CalicoIpip`] but other nodes'
    /// blocks are routed via the peer node IP on `eth0` (no encapsulation).
    CalicoBgp,
    /// Cilium in native-routing mode: local pods behind `cilium_host` (delivered to
    /// their `lxc*` veth by the BPF program), other nodes via their node IP on `eth0`.
    CiliumNative,
}

impl CniFlavour {
    /// Bytes of encapsulation added to pod traffic crossing nodes: VXLAN 50 (outer IP
    /// 20 + UDP 8 + VXLAN 8 + inner Ethernet 14), IP-in-IP 20, routed modes 0.
    #[must_use]
    pub fn encap_bytes(self) -> u16 {
        match self {
            CniFlavour::FlannelVxlan => 50,
            CniFlavour::CalicoIpip => 20,
            CniFlavour::CalicoBgp | CniFlavour::CiliumNative => 0,
        }
    }

    /// The pod-side MTU the CNI configures on an underlay of `underlay_mtu` bytes.
    #[must_use]
    pub fn pod_mtu(self, underlay_mtu: u32) -> u32 {
        underlay_mtu.saturating_sub(u32::from(self.encap_bytes()))
    }

    /// The name used in scenario files (`flannel-vxlan`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CniFlavour::FlannelVxlan => "flannel-vxlan",
            CniFlavour::CalicoIpip => "calico-ipip",
            CniFlavour::CalicoBgp => "calico-bgp",
            CniFlavour::CiliumNative => "cilium-native",
        }
    }
}

impl fmt::Display for CniFlavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Encapsulation applied when a packet leaves through a tunnel device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Encap {
    /// Sent as is.
    None,
    /// VXLAN (`drivers/net/vxlan`): UDP to port 8472 (flannel's default) on the peer
    /// node IP; the outer UDP source port is a hash of the inner flow.
    Vxlan,
    /// IP-in-IP (`net/ipv4/ipip.c`): outer IPv4 header, protocol 4.
    Ipip,
}

impl Encap {
    /// Bytes added on the wire.
    #[must_use]
    pub fn overhead_bytes(self) -> u16 {
        match self {
            Encap::None => 0,
            Encap::Vxlan => 50,
            Encap::Ipip => 20,
        }
    }
}

/// What kind of device this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum DeviceKind {
    /// `lo`.
    Loopback,
    /// The node's uplink (`eth0`) on the underlay network.
    Ethernet,
    /// One end of a veth pair.
    Veth,
    /// A Linux bridge (`cni0`).
    Bridge,
    /// A VXLAN device (`flannel.1`).
    Vxlan,
    /// An IP-in-IP tunnel device (`tunl0`).
    Ipip,
    /// Cilium's `cilium_host` (one end of the `cilium_host`/`cilium_net` pair).
    CiliumHost,
    /// A dummy device holding local addresses (`kube-ipvs0`, `nodelocaldns`).
    Dummy,
}

impl DeviceKind {
    /// Short lowercase name for rendering.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Loopback => "loopback",
            DeviceKind::Ethernet => "ethernet",
            DeviceKind::Veth => "veth",
            DeviceKind::Bridge => "bridge",
            DeviceKind::Vxlan => "vxlan",
            DeviceKind::Ipip => "ipip",
            DeviceKind::CiliumHost => "cilium_host",
            DeviceKind::Dummy => "dummy",
        }
    }
}

/// A network device inside one namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    pub(crate) name: String,
    pub(crate) netns: NetnsId,
    pub(crate) kind: DeviceKind,
    pub(crate) mtu: u32,
    pub(crate) addrs: Vec<Ipv4Addr>,
    /// The other end of a veth pair.
    pub(crate) peer: Option<DeviceId>,
    /// The bridge this device is a port of.
    pub(crate) master: Option<DeviceId>,
}

impl Device {
    /// Interface name (at most 15 bytes, as `IFNAMSIZ` requires).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The namespace the device lives in.
    #[must_use]
    pub fn netns(&self) -> NetnsId {
        self.netns
    }
    /// Device kind.
    #[must_use]
    pub fn kind(&self) -> DeviceKind {
        self.kind
    }
    /// MTU in bytes.
    #[must_use]
    pub fn mtu(&self) -> u32 {
        self.mtu
    }
    /// Addresses assigned to the device (first is primary).
    #[must_use]
    pub fn addrs(&self) -> &[Ipv4Addr] {
        &self.addrs
    }
    /// The other end of a veth pair.
    #[must_use]
    pub fn peer(&self) -> Option<DeviceId> {
        self.peer
    }
    /// The bridge this device is enslaved to (`ip link set dev X master cni0`).
    #[must_use]
    pub fn master(&self) -> Option<DeviceId> {
        self.master
    }
}

/// Whose namespace this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum NetnsKind {
    /// A node's host (root) namespace; hostNetwork pods live here too.
    Host,
    /// A pod's own namespace.
    Pod,
}

/// A network namespace: devices, a routing table, local addresses.
#[derive(Clone, Debug, PartialEq)]
pub struct Netns {
    pub(crate) name: String,
    pub(crate) kind: NetnsKind,
    pub(crate) node: NodeId,
    pub(crate) devices: Vec<DeviceId>,
    pub(crate) routes: RouteTable,
    pub(crate) local: BTreeSet<Ipv4Addr>,
    pub(crate) lo: DeviceId,
}

impl Netns {
    /// Name (the node name for a host namespace, the pod name for a pod).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Host or pod.
    #[must_use]
    pub fn kind(&self) -> NetnsKind {
        self.kind
    }
    /// The node the namespace is on.
    #[must_use]
    pub fn node(&self) -> NodeId {
        self.node
    }
    /// Devices in this namespace, in creation order (`lo` first).
    #[must_use]
    pub fn devices(&self) -> &[DeviceId] {
        &self.devices
    }
    /// The main routing table.
    #[must_use]
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }
    /// Local addresses (the kernel's `local` table, without `127.0.0.0/8`).
    pub fn local_addrs(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.local.iter().copied()
    }
    /// The namespace's loopback device.
    #[must_use]
    pub fn loopback(&self) -> DeviceId {
        self.lo
    }
}
