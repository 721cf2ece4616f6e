//! [`TopologyBuilder`]: declare nodes and pods, then `build()` lays out devices and
//! routes the way each CNI plugin does.

use super::device::{CniFlavour, Device, DeviceKind, Netns, NetnsKind};
use super::id::{DeviceId, LinkId, NetnsId, NodeId};
use super::route::{Route, RouteKind, RouteTable};
use super::{ClusterNode, Link, LinkKind, Topology, Vertex};
use crate::packet::Cidr;
use petgraph::stable_graph::{NodeIndex, StableGraph};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// The NodeLocal DNSCache listen address (KEP-1024), bound to the `nodelocaldns`
/// dummy device on every node when enabled.
pub const NODELOCAL_DNS_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 20, 10);

/// The link-local gateway Calico points every pod's default route at; the host
/// side `cali*` veth answers ARP for it (`proxy_arp`).
pub const CALICO_POD_GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// Smallest MTU IPv4 requires every link to carry (RFC 791).
const MIN_IPV4_MTU: u32 = 576;

/// Why a topology declaration is invalid. Messages name the offending node, pod or
/// address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// A node or pod name is empty.
    #[error("a node or pod has an empty name")]
    EmptyName,
    /// Two namespaces (nodes or pods) share a name.
    #[error("name `{name}` is used twice (node and pod names share one namespace)")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// Two nodes or pods share an IP address.
    #[error("address {ip} is used by both `{first}` and `{second}`")]
    DuplicateIp {
        /// The address.
        ip: Ipv4Addr,
        /// The first owner declared.
        first: String,
        /// The second owner declared.
        second: String,
    },
    /// A pod was added to a node id that this builder did not hand out.
    #[error("pod `{pod}` is attached to unknown node {node}")]
    UnknownNode {
        /// The pod.
        pod: String,
        /// The id given.
        node: NodeId,
    },
    /// A pod's IP lies outside its node's pod CIDR.
    #[error("pod `{pod}` has address {ip} outside node `{node}` pod CIDR {cidr}")]
    PodIpOutsideNodeCidr {
        /// The pod.
        pod: String,
        /// Its address.
        ip: Ipv4Addr,
        /// The node.
        node: String,
        /// The node's pod CIDR.
        cidr: Cidr,
    },
    /// A pod's IP is one the CNI keeps for itself (network address, gateway,
    /// broadcast).
    #[error("pod `{pod}` has address {ip}, which {cni} reserves in {cidr}")]
    PodIpReserved {
        /// The pod.
        pod: String,
        /// Its address.
        ip: Ipv4Addr,
        /// The node's pod CIDR.
        cidr: Cidr,
        /// The CNI flavour.
        cni: CniFlavour,
    },
    /// Two nodes' pod CIDRs overlap.
    #[error("pod CIDRs of nodes `{first}` ({first_cidr}) and `{second}` ({second_cidr}) overlap")]
    OverlappingPodCidrs {
        /// First node.
        first: String,
        /// Its CIDR.
        first_cidr: Cidr,
        /// Second node.
        second: String,
        /// Its CIDR.
        second_cidr: Cidr,
    },
    /// A node IP lies inside some node's pod CIDR.
    #[error("node `{node}` address {ip} lies inside the pod CIDR {cidr} of node `{owner}`")]
    NodeIpInPodCidr {
        /// The node.
        node: String,
        /// Its address.
        ip: Ipv4Addr,
        /// The CIDR it falls in.
        cidr: Cidr,
        /// The node owning that CIDR.
        owner: String,
    },
    /// A pod CIDR too small to hold the CNI's reserved addresses and a pod.
    #[error("node `{node}` pod CIDR {cidr} is smaller than a /30")]
    PodCidrTooSmall {
        /// The node.
        node: String,
        /// Its CIDR.
        cidr: Cidr,
    },
    /// The underlay MTU leaves less than 576 bytes for pod packets.
    #[error(
        "underlay MTU {mtu} is too small for {cni}: pods need at least 576 bytes after {encap} bytes of encapsulation"
    )]
    MtuTooSmall {
        /// The underlay MTU given.
        mtu: u32,
        /// The CNI flavour.
        cni: CniFlavour,
        /// Its encapsulation overhead.
        encap: u16,
    },
}

#[derive(Clone, Debug)]
struct NodeSpec {
    name: String,
    ip: Ipv4Addr,
    pod_cidr: Cidr,
    host: NetnsId,
}

#[derive(Clone, Debug)]
struct PodSpec {
    node: NodeId,
    name: String,
    ip: Ipv4Addr,
    netns: NetnsId,
}

/// Declares a cluster's nodes and pods; [`TopologyBuilder::build`] validates the
/// declaration and lays out namespaces, devices and routes for the CNI flavour.
///
/// ```
/// use k8s_netsim::topology::{CniFlavour, TopologyBuilder};
/// let mut b = TopologyBuilder::new(CniFlavour::FlannelVxlan);
/// let a = b.add_node("node-a", "10.0.0.1".parse().unwrap(), "10.244.0.0/24".parse().unwrap());
/// let pod = b.add_pod(a, "web-0", "10.244.0.5".parse().unwrap());
/// let topo = b.build().unwrap();
/// assert_eq!(topo.pod_by_ip("10.244.0.5".parse().unwrap()), Some(pod));
/// ```
#[derive(Debug)]
pub struct TopologyBuilder {
    cni: CniFlavour,
    graph: StableGraph<Vertex, Link, petgraph::Undirected, u32>,
    fabric: NodeIndex<u32>,
    nodes: Vec<NodeSpec>,
    pods: Vec<PodSpec>,
    underlay_mtu: u32,
    bridge_nf_call_iptables: bool,
    default_gateway: Option<Ipv4Addr>,
    default_route: bool,
    ipvs_addrs: Option<BTreeSet<Ipv4Addr>>,
    nodelocaldns: Vec<Ipv4Addr>,
}

impl TopologyBuilder {
    /// A builder for a cluster using `cni`, with a 1500-byte underlay, br_netfilter's
    /// `bridge-nf-call-iptables=1` (kube-proxy requires it), an on-link default route
    /// on every node's `eth0`, no `kube-ipvs0` and no NodeLocal DNSCache.
    #[must_use]
    pub fn new(cni: CniFlavour) -> TopologyBuilder {
        let mut graph = StableGraph::default();
        let fabric = graph.add_node(Vertex::Fabric);
        TopologyBuilder {
            cni,
            graph,
            fabric,
            nodes: Vec::new(),
            pods: Vec::new(),
            underlay_mtu: 1500,
            bridge_nf_call_iptables: true,
            default_gateway: None,
            default_route: true,
            ipvs_addrs: None,
            nodelocaldns: Vec::new(),
        }
    }

    /// The underlay (`eth0`) MTU; pod MTUs follow from it (`mtu - encap`).
    #[must_use]
    pub fn with_underlay_mtu(mut self, mtu: u32) -> TopologyBuilder {
        self.underlay_mtu = mtu;
        self
    }

    /// `net.bridge.bridge-nf-call-iptables` on every node: whether bridged
    /// (same-node, same-bridge) pod-to-pod traffic runs the host's iptables hooks.
    #[must_use]
    pub fn with_bridge_nf_call_iptables(mut self, on: bool) -> TopologyBuilder {
        self.bridge_nf_call_iptables = on;
        self
    }

    /// Every node's default route goes via `gateway` on `eth0` (otherwise on-link).
    #[must_use]
    pub fn with_default_gateway(mut self, gateway: Ipv4Addr) -> TopologyBuilder {
        self.default_gateway = Some(gateway);
        self
    }

    /// Whether nodes have a default route at all; without one, destinations outside
    /// the cluster are unreachable instead of leaving through `eth0`.
    #[must_use]
    pub fn with_default_route(mut self, on: bool) -> TopologyBuilder {
        self.default_route = on;
        self
    }

    /// Adds the IPVS dummy device `kube-ipvs0` on every node, holding `addrs`
    /// (kube-proxy in IPVS mode binds every Service ClusterIP there, which makes them
    /// local addresses: `addrtype LOCAL`, INPUT instead of FORWARD).
    #[must_use]
    pub fn with_kube_ipvs0(mut self, addrs: impl IntoIterator<Item = Ipv4Addr>) -> TopologyBuilder {
        self.ipvs_addrs = Some(addrs.into_iter().collect());
        self
    }

    /// Adds the `nodelocaldns` dummy device with [`NODELOCAL_DNS_ADDR`] on every node.
    #[must_use]
    pub fn with_nodelocaldns(self, on: bool) -> TopologyBuilder {
        let addrs = if on { vec![NODELOCAL_DNS_ADDR] } else { Vec::new() };
        self.with_nodelocaldns_addrs(addrs)
    }

    /// Adds the `nodelocaldns` dummy device with `addrs` (the cache's listen addresses,
    /// node-cache `-localip`) on every node; an empty list adds no device.
    #[must_use]
    pub fn with_nodelocaldns_addrs(mut self, addrs: Vec<Ipv4Addr>) -> TopologyBuilder {
        self.nodelocaldns = addrs;
        self
    }

    /// Declares a node with its IP on the underlay and its pod CIDR.
    pub fn add_node(&mut self, name: &str, node_ip: Ipv4Addr, pod_cidr: Cidr) -> NodeId {
        let id = NodeId(u32::try_from(self.nodes.len()).unwrap_or(u32::MAX));
        let host = self
            .graph
            .add_node(Vertex::Netns(Box::new(empty_netns(name, NetnsKind::Host, id))));
        self.nodes.push(NodeSpec {
            name: name.to_string(),
            ip: node_ip,
            pod_cidr,
            host: NetnsId(host.index() as u32),
        });
        id
    }

    /// Declares a pod (its own network namespace) on `node` with address `ip`.
    /// Problems (unknown node, address outside the node's pod CIDR) are reported by
    /// [`TopologyBuilder::build`].
    pub fn add_pod(&mut self, node: NodeId, name: &str, ip: Ipv4Addr) -> NetnsId {
        let v = self
            .graph
            .add_node(Vertex::Netns(Box::new(empty_netns(name, NetnsKind::Pod, node))));
        let netns = NetnsId(v.index() as u32);
        self.pods.push(PodSpec {
            node,
            name: name.to_string(),
            ip,
            netns,
        });
        netns
    }

    fn validate(&self) -> Result<(), TopologyError> {
        let encap = self.cni.encap_bytes();
        if self.underlay_mtu < MIN_IPV4_MTU + u32::from(encap) {
            return Err(TopologyError::MtuTooSmall {
                mtu: self.underlay_mtu,
                cni: self.cni,
                encap,
            });
        }
        let mut names = BTreeSet::new();
        let all_names = self
            .nodes
            .iter()
            .map(|n| &n.name)
            .chain(self.pods.iter().map(|p| &p.name));
        for name in all_names {
            if name.is_empty() {
                return Err(TopologyError::EmptyName);
            }
            if !names.insert(name.as_str()) {
                return Err(TopologyError::DuplicateName { name: name.clone() });
            }
        }
        let mut ips: BTreeMap<Ipv4Addr, &str> = BTreeMap::new();
        fn claim<'a>(
            ips: &mut BTreeMap<Ipv4Addr, &'a str>,
            ip: Ipv4Addr,
            who: &'a str,
        ) -> Result<(), TopologyError> {
            match ips.insert(ip, who) {
                Some(first) => Err(TopologyError::DuplicateIp {
                    ip,
                    first: first.to_string(),
                    second: who.to_string(),
                }),
                None => Ok(()),
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            claim(&mut ips, n.ip, &n.name)?;
            if n.pod_cidr.len() > 30 {
                return Err(TopologyError::PodCidrTooSmall {
                    node: n.name.clone(),
                    cidr: n.pod_cidr,
                });
            }
            for m in &self.nodes[..i] {
                if m.pod_cidr.contains(n.pod_cidr.addr()) || n.pod_cidr.contains(m.pod_cidr.addr()) {
                    return Err(TopologyError::OverlappingPodCidrs {
                        first: m.name.clone(),
                        first_cidr: m.pod_cidr,
                        second: n.name.clone(),
                        second_cidr: n.pod_cidr,
                    });
                }
            }
        }
        for n in &self.nodes {
            if let Some(owner) = self.nodes.iter().find(|m| m.pod_cidr.contains(n.ip)) {
                return Err(TopologyError::NodeIpInPodCidr {
                    node: n.name.clone(),
                    ip: n.ip,
                    cidr: owner.pod_cidr,
                    owner: owner.name.clone(),
                });
            }
        }
        for p in &self.pods {
            let Some(node) = self.nodes.get(p.node.index()) else {
                return Err(TopologyError::UnknownNode {
                    pod: p.name.clone(),
                    node: p.node,
                });
            };
            if !node.pod_cidr.contains(p.ip) {
                return Err(TopologyError::PodIpOutsideNodeCidr {
                    pod: p.name.clone(),
                    ip: p.ip,
                    node: node.name.clone(),
                    cidr: node.pod_cidr,
                });
            }
            if reserved_addrs(self.cni, node.pod_cidr).contains(&p.ip) {
                return Err(TopologyError::PodIpReserved {
                    pod: p.name.clone(),
                    ip: p.ip,
                    cidr: node.pod_cidr,
                    cni: self.cni,
                });
            }
            claim(&mut ips, p.ip, &p.name)?;
        }
        Ok(())
    }

    /// Validates the declaration and lays out the cluster.
    ///
    /// # Errors
    /// The first problem found, in declaration order: see [`TopologyError`].
    // Long on purpose: the layout's passes (node namespaces and devices, routes per CNI,
    // pods, the name index) share the growing device and address tables, and ids must
    // come out in declaration order.
    pub fn build(self) -> Result<Topology, TopologyError> {
        self.validate()?;
        let TopologyBuilder {
            cni,
            mut graph,
            fabric,
            nodes: node_specs,
            pods: pod_specs,
            underlay_mtu,
            bridge_nf_call_iptables,
            default_gateway,
            default_route,
            ipvs_addrs,
            nodelocaldns,
        } = self;
        let pod_mtu = cni.pod_mtu(underlay_mtu);
        let mut lay = Layout {
            graph: &mut graph,
            devices: Vec::new(),
        };
        let mut nodes = Vec::with_capacity(node_specs.len());
        let mut underlay = BTreeMap::new();
        let mut vteps = BTreeMap::new();

        for (i, spec) in node_specs.iter().enumerate() {
            let node = NodeId(i as u32);
            let host = spec.host;
            let p = spec.pod_cidr;
            let net_addr = p.addr();
            let gw = p.nth(1).unwrap_or(net_addr);
            let eth0 = lay.device(host, "eth0", DeviceKind::Ethernet, underlay_mtu, &[spec.ip]);
            lay.graph.add_edge(
                NodeIndex::new(host.index()),
                fabric,
                Link {
                    kind: LinkKind::Underlay,
                    ends: [eth0, eth0],
                },
            );
            underlay.insert(spec.ip, node);
            let mut tunnel = None;
            let mut pod_gateway_dev = None;
            match cni {
                CniFlavour::FlannelVxlan => {
                    let cni0 = lay.device(host, "cni0", DeviceKind::Bridge, pod_mtu, &[gw]);
                    let vx = lay.device(host, "flannel.1", DeviceKind::Vxlan, pod_mtu, &[net_addr]);
                    lay.route(host, Route::unicast(p, cni0, None, Some(gw)));
                    vteps.insert(net_addr, node);
                    tunnel = Some(vx);
                    pod_gateway_dev = Some(cni0);
                }
                CniFlavour::CalicoIpip | CniFlavour::CalicoBgp => {
                    let lo = lay.ns(host).lo;
                    lay.route(
                        host,
                        Route {
                            dst: p,
                            dev: lo,
                            via: None,
                            src: None,
                            kind: RouteKind::Blackhole,
                        },
                    );
                    if cni == CniFlavour::CalicoIpip {
                        tunnel = Some(lay.device(host, "tunl0", DeviceKind::Ipip, pod_mtu, &[net_addr]));
                    }
                }
                CniFlavour::CiliumNative => {
                    let ch = lay.device(host, "cilium_host", DeviceKind::CiliumHost, pod_mtu, &[gw]);
                    lay.route(host, Route::unicast(p, ch, Some(gw), Some(gw)));
                    pod_gateway_dev = Some(ch);
                }
            }
            if let Some(addrs) = &ipvs_addrs {
                let addrs: Vec<Ipv4Addr> = addrs.iter().copied().collect();
                lay.device(host, "kube-ipvs0", DeviceKind::Dummy, 1500, &addrs);
            }
            if !nodelocaldns.is_empty() {
                lay.device(host, "nodelocaldns", DeviceKind::Dummy, 1500, &nodelocaldns);
            }
            if default_route {
                lay.route(
                    host,
                    Route::unicast(Cidr::ANY, eth0, default_gateway, Some(spec.ip)),
                );
            }
            nodes.push(ClusterNode {
                name: spec.name.clone(),
                ip: spec.ip,
                pod_cidr: p,
                host,
                eth0,
                tunnel,
                pod_gateway_dev,
                pods: Vec::new(),
            });
        }

        // Routes to the other nodes' pod CIDRs, per CNI.
        for i in 0..nodes.len() {
            for j in 0..nodes.len() {
                if i == j {
                    continue;
                }
                let (host, here_eth0, here_tunnel) = (nodes[i].host, nodes[i].eth0, nodes[i].tunnel);
                let (peer_cidr, peer_ip) = (nodes[j].pod_cidr, nodes[j].ip);
                let route = match (cni, here_tunnel) {
                    // flannel: `<cidr> via <cidr>.0 dev flannel.1 onlink`
                    (CniFlavour::FlannelVxlan, Some(vx)) => {
                        Route::unicast(peer_cidr, vx, Some(peer_cidr.addr()), None)
                    }
                    // calico ipip: `<block> via <node ip> dev tunl0 proto bird onlink`
                    (CniFlavour::CalicoIpip, Some(t)) => Route::unicast(peer_cidr, t, Some(peer_ip), None),
                    _ => Route::unicast(peer_cidr, here_eth0, Some(peer_ip), None),
                };
                lay.route(host, route);
            }
        }

        let mut pods_by_ip = BTreeMap::new();
        for spec in &pod_specs {
            let node = &mut nodes[spec.node.index()];
            let pod = spec.netns;
            let p = node.pod_cidr;
            let gw = p.nth(1).unwrap_or(p.addr());
            let eth0 = lay.device(pod, "eth0", DeviceKind::Veth, pod_mtu, &[spec.ip]);
            let host_name = veth_name(cni, &spec.name);
            let host_end = lay.device(node.host, &host_name, DeviceKind::Veth, pod_mtu, &[]);
            lay.devices[eth0.index()].peer = Some(host_end);
            lay.devices[host_end.index()].peer = Some(eth0);
            lay.graph.add_edge(
                NodeIndex::new(pod.index()),
                NodeIndex::new(node.host.index()),
                Link {
                    kind: LinkKind::Veth,
                    ends: [eth0, host_end],
                },
            );
            match cni {
                CniFlavour::FlannelVxlan => {
                    lay.devices[host_end.index()].master = node.pod_gateway_dev;
                    lay.route(pod, Route::unicast(p, eth0, None, Some(spec.ip)));
                    lay.route(pod, Route::unicast(Cidr::ANY, eth0, Some(gw), None));
                }
                CniFlavour::CalicoIpip | CniFlavour::CalicoBgp => {
                    lay.route(
                        pod,
                        Route::unicast(Cidr::host(CALICO_POD_GATEWAY), eth0, None, None),
                    );
                    lay.route(
                        pod,
                        Route::unicast(Cidr::ANY, eth0, Some(CALICO_POD_GATEWAY), None),
                    );
                    lay.route(
                        node.host,
                        Route::unicast(Cidr::host(spec.ip), host_end, None, None),
                    );
                }
                CniFlavour::CiliumNative => {
                    lay.route(pod, Route::unicast(Cidr::host(gw), eth0, None, None));
                    lay.route(pod, Route::unicast(Cidr::ANY, eth0, Some(gw), None));
                }
            }
            node.pods.push(pod);
            pods_by_ip.insert(spec.ip, pod);
        }
        let devices = lay.devices;
        let mut by_name = BTreeMap::new();
        for n in &nodes {
            by_name.insert(n.name.clone(), n.host);
        }
        for p in &pod_specs {
            by_name.insert(p.name.clone(), p.netns);
        }
        Ok(Topology {
            cni,
            graph,
            devices,
            nodes,
            by_name,
            pods_by_ip,
            underlay,
            vteps,
            bridge_nf_call_iptables,
            underlay_mtu,
        })
    }
}

fn empty_netns(name: &str, kind: NetnsKind, node: NodeId) -> Netns {
    Netns {
        name: name.to_string(),
        kind,
        node,
        devices: Vec::new(),
        routes: RouteTable::new(),
        local: BTreeSet::new(),
        lo: DeviceId(u32::MAX),
    }
}

/// Addresses of a node's pod CIDR that pods may not take.
fn reserved_addrs(cni: CniFlavour, cidr: Cidr) -> Vec<Ipv4Addr> {
    let size = 1u32 << (32 - u32::from(cidr.len()));
    let mut v = vec![cidr.addr()];
    match cni {
        // network (flannel.1), gateway (cni0), broadcast of the bridge subnet
        CniFlavour::FlannelVxlan => {
            v.extend(cidr.nth(1));
            v.extend(cidr.nth(size - 1));
        }
        // cilium_host takes the first host address
        CniFlavour::CiliumNative => v.extend(cidr.nth(1)),
        // tunl0 (ipip) takes the block's first address; kept reserved for bgp too
        CniFlavour::CalicoIpip | CniFlavour::CalicoBgp => {}
    }
    v
}

/// Deterministic host-side veth names: `veth` + 8 hex digits (bridge plugin style),
/// `cali` + 11 (Calico), `lxc` + 12 (Cilium), from an FNV-1a hash of the pod name
/// (the real plugins use random bytes or a SHA-1 of the workload id).
fn veth_name(cni: CniFlavour, pod: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in pod.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's output function, so names of similar pods differ in every digit
    h = crate::rng::mix64(h);
    let hex = format!("{h:016x}");
    match cni {
        CniFlavour::FlannelVxlan => format!("veth{}", &hex[..8]),
        CniFlavour::CalicoIpip | CniFlavour::CalicoBgp => format!("cali{}", &hex[..11]),
        CniFlavour::CiliumNative => format!("lxc{}", &hex[..12]),
    }
}

/// Build-time helper: creates devices and routes inside graph vertices.
struct Layout<'g> {
    graph: &'g mut StableGraph<Vertex, Link, petgraph::Undirected, u32>,
    devices: Vec<Device>,
}

impl Layout<'_> {
    fn ns(&mut self, id: NetnsId) -> &mut Netns {
        match self.graph.node_weight_mut(NodeIndex::new(id.index())) {
            Some(Vertex::Netns(ns)) => ns,
            _ => unreachable!("invariant: builder ids name namespace vertices"),
        }
    }

    fn device(
        &mut self,
        netns: NetnsId,
        name: &str,
        kind: DeviceKind,
        mtu: u32,
        addrs: &[Ipv4Addr],
    ) -> DeviceId {
        if self.ns(netns).lo.0 == u32::MAX {
            let lo = DeviceId(self.devices.len() as u32);
            self.devices.push(Device {
                name: "lo".to_string(),
                netns,
                kind: DeviceKind::Loopback,
                mtu: 65_536,
                addrs: vec![Ipv4Addr::LOCALHOST],
                peer: None,
                master: None,
            });
            let ns = self.ns(netns);
            ns.lo = lo;
            ns.devices.push(lo);
        }
        let id = DeviceId(self.devices.len() as u32);
        self.devices.push(Device {
            name: name.to_string(),
            netns,
            kind,
            mtu,
            addrs: addrs.to_vec(),
            peer: None,
            master: None,
        });
        let ns = self.ns(netns);
        ns.devices.push(id);
        ns.local.extend(addrs.iter().copied());
        id
    }

    fn route(&mut self, netns: NetnsId, route: Route) {
        self.ns(netns).routes.insert(route);
    }
}

// LinkId is part of the public vocabulary for veth pairs; keep the constructor here
// where edges are made.
impl LinkId {
    pub(crate) fn from_edge(e: petgraph::stable_graph::EdgeIndex<u32>) -> LinkId {
        LinkId(e.index() as u32)
    }
}
