//! The `service` module models Kubernetes Services as kube-proxy sees them (one
//! [`ServicePort`] per Service port, with its endpoints) and the rules kube-proxy programs
//! for them. [`iptables`] generates the `nat` and `filter` tables of iptables mode exactly as
//! `pkg/proxy/iptables/proxier.go` (`syncProxyRules`) writes them.
//!
//! Modelled: ClusterIP, NodePort, external IPs, LoadBalancer IPs with source ranges,
//! `externalTrafficPolicy: Local`, ClientIP session affinity, health-check NodePorts,
//! endpoints without readiness (excluded), localhost NodePorts, nfacct counters,
//! `--random-fully`, and "large cluster mode" (no per-endpoint comments above 1000
//! endpoints). Not modelled: IPv6, `internalTrafficPolicy: Local`, terminating endpoints
//! (serving-but-terminating fallback), topology hints, `nodePortAddresses` other than "all",
//! partial syncs and the sync loop itself.
//!
//! # Proxy data planes and the integration contract
//!
//! Besides iptables, three more data planes are modelled: [`nftables`] (kube-proxy's
//! nftables mode), [`ipvs`] (kube-proxy's IPVS mode, deprecated by KEP-5495) and [`ebpf`]
//! (Cilium's kube-proxy replacement). Each is a struct built from `&[ServicePort]` plus a
//! config and implements [`ServiceProxy`] (module [`proxy`]); [`IptablesProxy`] wraps the
//! iptables generator behind the same contract.
//!
//! For the first packet of a flow to a Service frontend the simulator calls
//! `first_packet(tuple, rng, now)` (or the mode's `first_packet_from(origin, ..)`) and gets
//! a [`FirstPacket`]: the chosen backend (DNAT target), a [`ProxyVerdict`] (translate, not a
//! Service, reject, or drop with a [`ProxyDrop`] reason), whether the flow is masqueraded at
//! POSTROUTING, the [`LookupCost`] (rules tested, hash lookups, scheduler operations) and a
//! mode-specific [`ModeNote`]. Later packets of a translated flow follow conntrack's stored
//! NAT binding and cost no proxy work, except in modes with their own per-flow state:
//! [`ipvs::IpvsProxy::packet`] (IPVS connection table) and [`ebpf::EbpfProxy::packet`] (BPF
//! CT map). Where each mode sits in the hook order (IPVS at LOCAL_IN with the virtual IPs on
//! `kube-ipvs0`, nftables as base chains at the iptables priorities, eBPF at `connect()`
//! before any packet exists) is described in `docs/model.md`.

pub mod ebpf;
pub mod iptables;
pub mod ipvs;
pub mod nftables;
pub mod node;
pub mod proxy;

pub use proxy::{
    DataPlane, FirstPacket, FlowOrigin, FrontendIndex, FrontendKind, IptablesProxy, LookupCost, ModeNote,
    ProxyDrop, ProxyVerdict, ServiceProxy, external_backends, is_proxied, ready_backends,
};

use std::net::Ipv4Addr;

use crate::packet::{Cidr, Proto};
use crate::time::SimDuration;

/// `externalTrafficPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TrafficPolicy {
    /// Any ready endpoint in the cluster; source NATed.
    #[default]
    Cluster,
    /// Only endpoints on this node; source IP preserved.
    Local,
}

/// One backend of a Service port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Pod IP.
    pub ip: Ipv4Addr,
    /// Target port.
    pub port: u16,
    /// The node the pod runs on.
    pub node: String,
    /// Ready (only ready endpoints receive traffic here).
    pub ready: bool,
}

/// One port of one Service, with everything kube-proxy needs to program it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// Namespace.
    pub namespace: String,
    /// Service name.
    pub name: String,
    /// Port name (may be empty).
    pub port_name: String,
    /// Protocol.
    pub protocol: Proto,
    /// Cluster IP.
    pub cluster_ip: Ipv4Addr,
    /// Service port.
    pub port: u16,
    /// NodePort, if any.
    pub node_port: Option<u16>,
    /// `spec.externalIPs`.
    pub external_ips: Vec<Ipv4Addr>,
    /// `status.loadBalancer.ingress[].ip`.
    pub load_balancer_ips: Vec<Ipv4Addr>,
    /// `spec.loadBalancerSourceRanges`.
    pub lb_source_ranges: Vec<Cidr>,
    /// `spec.externalTrafficPolicy`.
    pub external_traffic_policy: TrafficPolicy,
    /// ClientIP affinity timeout (`sessionAffinityConfig.clientIP.timeoutSeconds`), if on.
    pub session_affinity: Option<SimDuration>,
    /// `spec.healthCheckNodePort` (used when the policy is Local).
    pub health_check_node_port: Option<u16>,
    /// Endpoints.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// A ClusterIP TCP service port with no endpoints.
    #[must_use]
    pub fn cluster_ip(
        namespace: &str,
        name: &str,
        port_name: &str,
        cluster_ip: Ipv4Addr,
        port: u16,
    ) -> ServicePort {
        ServicePort {
            namespace: namespace.to_string(),
            name: name.to_string(),
            port_name: port_name.to_string(),
            protocol: Proto::Tcp,
            cluster_ip,
            port,
            node_port: None,
            external_ips: Vec::new(),
            load_balancer_ips: Vec::new(),
            lb_source_ranges: Vec::new(),
            external_traffic_policy: TrafficPolicy::Cluster,
            session_affinity: None,
            health_check_node_port: None,
            endpoints: Vec::new(),
        }
    }

    /// `ns/name:port` (or `ns/name` when the port is unnamed): kube-proxy's
    /// `ServicePortName.String()`, used in comments and chain-name hashes.
    #[must_use]
    pub fn name_string(&self) -> String {
        if self.port_name.is_empty() {
            format!("{}/{}", self.namespace, self.name)
        } else {
            format!("{}/{}:{}", self.namespace, self.name, self.port_name)
        }
    }

    /// Whether traffic can arrive from outside the cluster (`ExternallyAccessible`).
    #[must_use]
    pub fn is_externally_accessible(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty() || !self.load_balancer_ips.is_empty()
    }
}

/// kube-proxy settings that shape the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The pod CIDR of the local traffic detector (`--cluster-cidr`).
    pub cluster_cidr: Cidr,
    /// `--iptables-masquerade-bit` (default 14: mark `0x4000`).
    pub masquerade_bit: u8,
    /// Whether MASQUERADE gets `--random-fully` (iptables >= 1.6.2).
    pub random_fully: bool,
    /// This node's name (selects local endpoints).
    pub node_name: String,
    /// This node's IPs (a LoadBalancer source range containing one allows the LB IPs as
    /// sources).
    pub node_ips: Vec<Ipv4Addr>,
    /// `--iptables-localhost-nodeports` (default true): NodePorts on 127.0.0.1 and the
    /// KUBE-FIREWALL anti-martian rule.
    pub localhost_nodeports: bool,
    /// Whether the kernel supports nfacct, so kube-proxy adds its counters (v1.29+).
    pub nfacct: bool,
    /// `--masquerade-all`.
    pub masquerade_all: bool,
    /// Endpoints above which comments are left out of per-endpoint rules
    /// (`largeClusterEndpointsThreshold`, 1000).
    pub large_cluster_endpoints: usize,
}

impl Default for ProxyConfig {
    /// kube-proxy's defaults on a node called `node-0` with pod CIDR `10.244.0.0/16`.
    fn default() -> Self {
        ProxyConfig {
            cluster_cidr: Cidr::new(Ipv4Addr::new(10, 244, 0, 0), 16).unwrap_or(Cidr::ANY),
            masquerade_bit: 14,
            random_fully: true,
            node_name: "node-0".to_string(),
            node_ips: Vec::new(),
            localhost_nodeports: true,
            nfacct: true,
            masquerade_all: false,
            large_cluster_endpoints: 1000,
        }
    }
}

impl ProxyConfig {
    /// The masquerade mark (`1 << masquerade_bit`).
    #[must_use]
    pub fn masquerade_mark(&self) -> u32 {
        1u32.checked_shl(u32::from(self.masquerade_bit)).unwrap_or(0x4000)
    }
}

/// The kube-dns cluster IP, skipped by [`synthetic_cluster_ip`].
pub const KUBE_DNS_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

/// `services` ClusterIP TCP Services (`default/svc-00000:http`, port 80) with `endpoints`
/// ready endpoints each (target port 8080, nodes `node-0`, `node-1`, `node-2` in turn).
/// Cluster IPs are consecutive in 10.96.0.0/12 from 10.96.0.1, skipping kube-dns
/// (10.96.0.10); endpoint IPs are consecutive in 10.244.0.0/16 from 10.244.0.1, wrapping
/// after 65,534 (pods then back several Services). With `nodeport`, Service `i` gets NodePort
/// `30000 + i mod 2768` (the default range holds 2768 ports).
#[must_use]
pub fn synthetic_cluster_ip(services: usize, endpoints: usize, nodeport: bool) -> Vec<ServicePort> {
    let svc_block = Cidr::new(Ipv4Addr::new(10, 96, 0, 0), 12).unwrap_or(Cidr::ANY);
    let pod_block = Cidr::new(Ipv4Addr::new(10, 244, 0, 0), 16).unwrap_or(Cidr::ANY);
    let width = services.saturating_sub(1).to_string().len().max(5);
    let mut next_ip = 1u32;
    let mut next_ep = 0u64;
    let mut out = Vec::with_capacity(services);
    for i in 0..services {
        let mut ip = svc_block.nth(next_ip).unwrap_or(Ipv4Addr::UNSPECIFIED);
        if ip == KUBE_DNS_IP {
            next_ip += 1;
            ip = svc_block.nth(next_ip).unwrap_or(Ipv4Addr::UNSPECIFIED);
        }
        next_ip += 1;
        let mut sp = ServicePort::cluster_ip("default", &format!("svc-{i:0width$}"), "http", ip, 80);
        if nodeport {
            #[allow(clippy::cast_possible_truncation)]
            let np = 30_000 + (i % 2768) as u16;
            sp.node_port = Some(np);
        }
        for j in 0..endpoints {
            #[allow(clippy::cast_possible_truncation)]
            let n = (next_ep % 65_534) as u32 + 1;
            next_ep += 1;
            sp.endpoints.push(Endpoint {
                ip: pod_block.nth(n).unwrap_or(Ipv4Addr::UNSPECIFIED),
                port: 8080,
                node: format!("node-{}", j % 3),
                ready: true,
            });
        }
        out.push(sp);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_services_skip_kube_dns_and_network_address() {
        let s = synthetic_cluster_ip(12, 2, true);
        let ips: Vec<Ipv4Addr> = s.iter().map(|p| p.cluster_ip).collect();
        assert_eq!(ips[0], Ipv4Addr::new(10, 96, 0, 1));
        assert!(!ips.contains(&KUBE_DNS_IP));
        assert_eq!(ips[9], Ipv4Addr::new(10, 96, 0, 11));
        assert_eq!(s[3].endpoints[1].ip, Ipv4Addr::new(10, 244, 0, 8));
        assert_eq!(s[11].node_port, Some(30_011));
        assert_eq!(s[0].name_string(), "default/svc-00000:http");
        let mut sorted = s.clone();
        sorted.sort_by_key(ServicePort::name_string);
        assert_eq!(sorted, s);
    }
}
