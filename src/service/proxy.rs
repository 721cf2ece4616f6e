//! The `proxy` module models the contract between a proxy data plane and the simulator:
//! what each mode decides for the first packet of a flow to a Service frontend, and what it
//! costs. It does not model any data plane itself (see the sibling modules).
//!
//! Every mode ([`IptablesProxy`] here, [`super::nftables::NftablesProxy`],
//! [`super::ipvs::IpvsProxy`], [`super::ebpf::EbpfProxy`]) implements [`ServiceProxy`]. The
//! shared types are [`FirstPacket`] (the decision) and [`LookupCost`] (the work, in units the
//! cost model prices: rules tested, hash lookups, scheduler operations).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::AddAssign;

use super::{ProxyConfig, ServicePort, TrafficPolicy, iptables};
use crate::netfilter::{
    AddrType, CtStateMatch, EvalContext, EvalState, Evaluation, FixedState, Hook, LocalAddrs, NatAction,
    Ruleset, TableKind, Verdict,
};
use crate::packet::{Packet, Proto, TcpFlags, Tuple};
use crate::rng::SimRng;
use crate::time::SimTime;

/// The proxy data plane (kube-proxy's `mode`, or Cilium's kube-proxy replacement).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum DataPlane {
    /// kube-proxy iptables mode.
    Iptables,
    /// kube-proxy IPVS mode.
    Ipvs,
    /// kube-proxy nftables mode.
    Nftables,
    /// Cilium's eBPF kube-proxy replacement (socket LB + BPF conntrack).
    Ebpf,
}

/// Work the kernel does for one packet in a proxy data plane, in the units the cost model
/// prices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct LookupCost {
    /// Rules (iptables or nftables) whose matches were tested.
    pub rules_evaluated: u32,
    /// Hash-table lookups or updates: ipset and nftables set/map lookups, the IPVS service
    /// and connection tables, BPF map operations.
    pub hash_lookups: u32,
    /// Scheduler steps choosing a backend: one per random draw or round-robin step, one per
    /// real server examined by IPVS `lc`.
    pub scheduler_ops: u32,
}

impl AddAssign for LookupCost {
    fn add_assign(&mut self, o: LookupCost) {
        self.rules_evaluated = self.rules_evaluated.saturating_add(o.rules_evaluated);
        self.hash_lookups = self.hash_lookups.saturating_add(o.hash_lookups);
        self.scheduler_ops = self.scheduler_ops.saturating_add(o.scheduler_ops);
    }
}

/// Where the flow's first packet enters the node's network stack, which selects the hooks it
/// traverses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FlowOrigin {
    /// From a pod (or from outside the node): PREROUTING, then FORWARD (INPUT for IPVS,
    /// whose virtual IPs are local), then POSTROUTING.
    #[default]
    Pod,
    /// From a host-network process: OUTPUT, then POSTROUTING.
    Host,
}

/// Why a data plane dropped a flow's first packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum ProxyDrop {
    /// `externalTrafficPolicy: Local` and no endpoint on this node.
    NoLocalEndpoints,
    /// The source is outside `loadBalancerSourceRanges`.
    SourceRange,
    /// Traffic to an unallocated address of the Service CIDR (nftables `cluster-ips-check`).
    UnallocatedClusterIp,
    /// IPVS dropped the first SYN of a connection reusing the tuple of an old IPVS connection
    /// that had to be rescheduled (kernel commit f719e3754ee2, kernels < 5.9 with
    /// `conn_reuse_mode` != 0). The client retransmits after its initial RTO.
    IpvsConnReuse,
    /// IPVS found a connection whose real server is gone (`expire_nodest_conn`): the
    /// connection is expired and the packet dropped.
    IpvsStaleBackend,
    /// Cilium "CT: Map insertion failed" (drop reason 155): the BPF CT map was full and
    /// nothing could be evicted.
    CtMapInsertFailed,
}

impl ProxyDrop {
    /// A short operator-facing description (the kernel's or Cilium's wording).
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            ProxyDrop::NoLocalEndpoints => "proxy: no local endpoints (externalTrafficPolicy: Local)",
            ProxyDrop::SourceRange => "proxy: source outside loadBalancerSourceRanges",
            ProxyDrop::UnallocatedClusterIp => "proxy: unallocated ClusterIP (cluster-ips-check)",
            ProxyDrop::IpvsConnReuse => "IPVS: first SYN dropped on connection reuse (conn_reuse_mode)",
            ProxyDrop::IpvsStaleBackend => "IPVS: connection to a removed real server (expire_nodest_conn)",
            ProxyDrop::CtMapInsertFailed => "CT: Map insertion failed",
        }
    }
}

/// What the data plane does with the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ProxyVerdict {
    /// Translated to [`FirstPacket::backend`].
    Translate,
    /// Not addressed to a frontend this data plane handles: continues unchanged.
    NotService,
    /// A Service without endpoints: rejected (TCP RST or ICMP port unreachable).
    Reject,
    /// Dropped silently.
    Drop(ProxyDrop),
}

/// Mode-specific facts about a first packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ModeNote {
    /// Nothing beyond the common fields.
    #[default]
    None,
    /// IPVS.
    Ipvs {
        /// An existing IPVS connection with this client tuple was found.
        reused_connection: bool,
        /// The first SYN is dropped (`IpvsConnReuse` / `IpvsStaleBackend`): the client pays
        /// one SYN retransmission timeout.
        drop_first_syn: bool,
    },
    /// nftables.
    Nftables {
        /// The base chains the packet went through.
        base_chains: BaseChains,
    },
    /// Cilium eBPF.
    Ebpf {
        /// A live (unexpired) BPF CT entry was evicted by the LRU to make room.
        evicted_live_flow: bool,
        /// Whether the host's nf_conntrack still tracks the flow (false with Cilium's
        /// NOTRACK rules, `installNoConntrackIptablesRules`).
        netfilter_tracks: bool,
    },
}

/// A set of nftables base chains, by type and hook (`type nat hook output`): which ones a
/// first packet went through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct BaseChains(u16);

impl BaseChains {
    fn bit(kind: super::nftables::ChainType, hook: Hook) -> u16 {
        let k = match kind {
            super::nftables::ChainType::Filter => 0,
            super::nftables::ChainType::Nat => 5,
        };
        let h = match hook {
            Hook::Prerouting => 0,
            Hook::Input => 1,
            Hook::Forward => 2,
            Hook::Output => 3,
            Hook::Postrouting => 4,
        };
        1 << (k + h)
    }

    /// Adds `type kind hook hook`.
    pub fn insert(&mut self, kind: super::nftables::ChainType, hook: Hook) {
        self.0 |= Self::bit(kind, hook);
    }

    /// Whether a chain of `type kind hook hook` ran.
    #[must_use]
    pub fn contains(self, kind: super::nftables::ChainType, hook: Hook) -> bool {
        self.0 & Self::bit(kind, hook) != 0
    }
}

impl std::fmt::Display for BaseChains {
    /// `filter output, nat output, nat postrouting` (in hook order, filter first).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use super::nftables::ChainType;
        let mut first = true;
        for hook in [
            Hook::Prerouting,
            Hook::Input,
            Hook::Forward,
            Hook::Output,
            Hook::Postrouting,
        ] {
            for (kind, name) in [(ChainType::Filter, "filter"), (ChainType::Nat, "nat")] {
                if self.contains(kind, hook) {
                    if !first {
                        f.write_str(", ")?;
                    }
                    first = false;
                    write!(f, "{name} {}", hook.chain_name().to_lowercase())?;
                }
            }
        }
        Ok(())
    }
}

/// What a proxy data plane decides for the first packet of a flow to a Service frontend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct FirstPacket {
    /// The chosen backend (set iff `verdict` is [`ProxyVerdict::Translate`]).
    pub backend: Option<SocketAddrV4>,
    /// The decision.
    pub verdict: ProxyVerdict,
    /// Whether the flow is source-NATed at POSTROUTING (kube-proxy's masquerade mark, IPVS
    /// hairpin `KUBE-LOOP-BACK`).
    pub masquerade: bool,
    /// The work done.
    pub cost: LookupCost,
    /// Mode-specific facts.
    pub note: ModeNote,
}

impl FirstPacket {
    /// A packet the data plane does not touch.
    #[must_use]
    pub fn not_service(cost: LookupCost) -> FirstPacket {
        FirstPacket {
            backend: None,
            verdict: ProxyVerdict::NotService,
            masquerade: false,
            cost,
            note: ModeNote::None,
        }
    }
}

/// A proxy data plane built from a set of Service ports.
pub trait ServiceProxy {
    /// Which data plane this is.
    fn data_plane(&self) -> DataPlane;

    /// The decision and cost for the first packet of `tuple` (a new connection from a pod,
    /// [`FlowOrigin::Pod`]). Modes with per-flow state (IPVS connection table, BPF CT map)
    /// record the flow.
    fn first_packet(&mut self, tuple: Tuple, rng: &mut SimRng, now: SimTime) -> FirstPacket;
}

/// Whether a Service port is handled by a data plane (kube-proxy programs TCP and UDP; SCTP
/// and ICMP are not modelled).
#[must_use]
pub fn is_proxied(sp: &ServicePort) -> bool {
    matches!(sp.protocol, Proto::Tcp | Proto::Udp)
}

/// The ready endpoints of `sp` as backends, in endpoint order (kube-proxy's
/// `CategorizeEndpoints` "cluster" set, without topology).
pub fn ready_backends(sp: &ServicePort) -> impl Iterator<Item = SocketAddrV4> + '_ {
    sp.endpoints
        .iter()
        .filter(|e| e.ready)
        .map(|e| SocketAddrV4::new(e.ip, e.port))
}

/// The backends external traffic (NodePort, external and LoadBalancer IPs) may reach: all
/// ready endpoints, or only those on `node` with `externalTrafficPolicy: Local`.
#[must_use]
pub fn external_backends(sp: &ServicePort, node: &str) -> Vec<SocketAddrV4> {
    sp.endpoints
        .iter()
        .filter(|e| e.ready && (sp.external_traffic_policy == TrafficPolicy::Cluster || e.node == node))
        .map(|e| SocketAddrV4::new(e.ip, e.port))
        .collect()
}

/// The kind of address a frontend listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrontendKind {
    /// `spec.clusterIP`.
    ClusterIp,
    /// `spec.externalIPs`.
    ExternalIp,
    /// `status.loadBalancer.ingress`.
    LoadBalancer,
    /// A NodePort on a node address.
    NodePort,
}

/// A lookup-only index from `(address, protocol, port)` to the Service port it belongs to
/// (hashbrown with the fixed hasher: never iterated).
#[derive(Clone, Debug, Default)]
pub struct FrontendIndex {
    vips: hashbrown::HashMap<(Ipv4Addr, Proto, u16), (usize, FrontendKind), FixedState>,
    node_ports: hashbrown::HashMap<(Proto, u16), usize, FixedState>,
    node_ips: Vec<Ipv4Addr>,
}

impl FrontendIndex {
    /// Indexes every frontend of `services` (later duplicates lose, as a second Service
    /// cannot own the same IP:port).
    #[must_use]
    pub fn new(services: &[ServicePort], node_ips: &[Ipv4Addr]) -> FrontendIndex {
        let mut ix = FrontendIndex {
            node_ips: node_ips.to_vec(),
            ..FrontendIndex::default()
        };
        for (i, sp) in services.iter().enumerate() {
            if !is_proxied(sp) {
                continue;
            }
            let mut add = |ip: Ipv4Addr, kind| {
                ix.vips.entry((ip, sp.protocol, sp.port)).or_insert((i, kind));
            };
            add(sp.cluster_ip, FrontendKind::ClusterIp);
            for ip in &sp.external_ips {
                add(*ip, FrontendKind::ExternalIp);
            }
            for ip in &sp.load_balancer_ips {
                add(*ip, FrontendKind::LoadBalancer);
            }
            if let Some(np) = sp.node_port {
                ix.node_ports.entry((sp.protocol, np)).or_insert(i);
            }
        }
        ix
    }

    /// The Service port (index into the slice given to [`FrontendIndex::new`]) and frontend
    /// kind that `tuple`'s destination addresses, if any.
    #[must_use]
    pub fn lookup(&self, tuple: &Tuple) -> Option<(usize, FrontendKind)> {
        if let Some(hit) = self.vips.get(&(tuple.dst, tuple.proto, tuple.dport)) {
            return Some(*hit);
        }
        if self.node_ips.contains(&tuple.dst) {
            return self
                .node_ports
                .get(&(tuple.proto, tuple.dport))
                .map(|i| (*i, FrontendKind::NodePort));
        }
        None
    }
}

/// kube-proxy's iptables mode behind the [`ServiceProxy`] contract: the generated
/// [`Ruleset`] evaluated at the hooks a first packet traverses.
#[derive(Debug)]
pub struct IptablesProxy {
    rules: Ruleset,
    state: EvalState,
    local: LocalAddrs,
}

impl IptablesProxy {
    /// Generates kube-proxy's rules for `services` ([`iptables::generate`]).
    #[must_use]
    pub fn new(services: &[ServicePort], cfg: &ProxyConfig) -> IptablesProxy {
        IptablesProxy::from_ruleset(iptables::generate(services, cfg), cfg)
    }

    /// Wraps an already generated ruleset (for example one in shuffled Service order).
    #[must_use]
    pub fn from_ruleset(rules: Ruleset, cfg: &ProxyConfig) -> IptablesProxy {
        IptablesProxy {
            rules,
            state: EvalState::new(),
            local: LocalAddrs(cfg.node_ips.clone()),
        }
    }

    /// The ruleset.
    #[must_use]
    pub fn ruleset(&self) -> &Ruleset {
        &self.rules
    }

    /// The first packet of `tuple` entering at `origin`: nat PREROUTING (OUTPUT), filter
    /// FORWARD (OUTPUT), nat POSTROUTING, each with conntrack state NEW.
    pub fn first_packet_from(
        &mut self,
        origin: FlowOrigin,
        tuple: Tuple,
        rng: &mut SimRng,
        now: SimTime,
    ) -> FirstPacket {
        let flags = if tuple.proto == Proto::Tcp {
            TcpFlags::SYN
        } else {
            TcpFlags::NONE
        };
        let mut pkt = Packet::new(tuple, flags);
        let (nat_hook, filter_hook) = match origin {
            FlowOrigin::Pod => (Hook::Prerouting, Hook::Forward),
            FlowOrigin::Host => (Hook::Output, Hook::Output),
        };
        let mut cost = LookupCost::default();
        let cx = EvalContext::new(CtStateMatch::NEW, &self.local, now);
        let nat = self
            .rules
            .evaluate(TableKind::Nat, nat_hook, &pkt, &cx, &mut self.state, rng);
        cost.rules_evaluated += nat.rules_evaluated;
        pkt.mark = nat.mark;
        let mut backend = None;
        if let Some(NatAction::Dnat { addr, port }) = nat.nat {
            pkt.tuple.dst = addr;
            pkt.tuple.dport = port.unwrap_or(pkt.tuple.dport);
            backend = Some(SocketAddrV4::new(addr, pkt.tuple.dport));
        }
        let ct = if backend.is_some() {
            CtStateMatch::NEW.union(CtStateMatch::DNAT)
        } else {
            CtStateMatch::NEW
        };
        let cx = EvalContext::new(ct, &self.local, now);
        // Routing: a destination that is (still) a local address goes to INPUT.
        let filter_hook = if filter_hook == Hook::Forward && self.local.is_local(pkt.tuple.dst) {
            Hook::Input
        } else {
            filter_hook
        };
        let filter = self
            .rules
            .evaluate(TableKind::Filter, filter_hook, &pkt, &cx, &mut self.state, rng);
        cost.rules_evaluated += filter.rules_evaluated;
        pkt.mark = filter.mark;
        if let Some(v) = blocked(&nat).or(blocked(&filter)) {
            return FirstPacket {
                backend: None,
                verdict: v,
                masquerade: false,
                cost,
                note: ModeNote::None,
            };
        }
        let post = self
            .rules
            .evaluate(TableKind::Nat, Hook::Postrouting, &pkt, &cx, &mut self.state, rng);
        cost.rules_evaluated += post.rules_evaluated;
        let masquerade = matches!(post.nat, Some(NatAction::Masquerade { .. }));
        FirstPacket {
            backend,
            verdict: if backend.is_some() {
                ProxyVerdict::Translate
            } else {
                ProxyVerdict::NotService
            },
            masquerade,
            cost,
            note: ModeNote::None,
        }
    }
}

fn blocked(ev: &Evaluation) -> Option<ProxyVerdict> {
    match ev.verdict {
        Verdict::Accept => None,
        Verdict::Reject => Some(ProxyVerdict::Reject),
        // iptables DROPs come from KUBE-EXTERNAL-SERVICES (Local policy, no local endpoint) or
        // KUBE-PROXY-FIREWALL (source ranges).
        Verdict::Drop => Some(ProxyVerdict::Drop(ProxyDrop::NoLocalEndpoints)),
    }
}

impl ServiceProxy for IptablesProxy {
    fn data_plane(&self) -> DataPlane {
        DataPlane::Iptables
    }

    fn first_packet(&mut self, tuple: Tuple, rng: &mut SimRng, now: SimTime) -> FirstPacket {
        self.first_packet_from(FlowOrigin::Pod, tuple, rng, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::synthetic_cluster_ip;

    #[test]
    fn iptables_proxy_translates_cluster_ip_and_counts_the_linear_scan() {
        let svcs = synthetic_cluster_ip(20, 3, false);
        let mut p = IptablesProxy::new(&svcs, &ProxyConfig::default());
        let mut rng = SimRng::from_seed(1);
        let pod = Ipv4Addr::new(10, 244, 9, 9);
        let first = p.first_packet(
            Tuple::new(Proto::Tcp, pod, 40_000, svcs[0].cluster_ip, 80),
            &mut rng,
            SimTime::ZERO,
        );
        let last = p.first_packet(
            Tuple::new(Proto::Tcp, pod, 40_001, svcs[19].cluster_ip, 80),
            &mut rng,
            SimTime::ZERO,
        );
        assert_eq!(first.verdict, ProxyVerdict::Translate);
        let b = first.backend.unwrap();
        assert!(ready_backends(&svcs[0]).any(|e| e == b));
        assert!(
            !first.masquerade,
            "pod-sourced ClusterIP traffic is not masqueraded"
        );
        // The 20th Service's rule sits 19 rules further down KUBE-SERVICES.
        assert!(last.cost.rules_evaluated >= first.cost.rules_evaluated + 19);
        let miss = p.first_packet(
            Tuple::new(Proto::Tcp, pod, 40_002, Ipv4Addr::new(8, 8, 8, 8), 443),
            &mut rng,
            SimTime::ZERO,
        );
        assert_eq!(miss.verdict, ProxyVerdict::NotService);
    }

    #[test]
    fn iptables_proxy_rejects_a_service_without_endpoints() {
        let mut svcs = synthetic_cluster_ip(2, 2, false);
        svcs[1].endpoints.clear();
        let mut p = IptablesProxy::new(&svcs, &ProxyConfig::default());
        let mut rng = SimRng::from_seed(1);
        let fp = p.first_packet(
            Tuple::new(
                Proto::Tcp,
                Ipv4Addr::new(10, 244, 9, 9),
                1000,
                svcs[1].cluster_ip,
                80,
            ),
            &mut rng,
            SimTime::ZERO,
        );
        assert_eq!(fp.verdict, ProxyVerdict::Reject);
        assert_eq!(fp.backend, None);
    }

    #[test]
    fn frontend_index_finds_node_ports_only_on_node_addresses() {
        let svcs = synthetic_cluster_ip(3, 1, true);
        let node = Ipv4Addr::new(192, 168, 0, 2);
        let ix = FrontendIndex::new(&svcs, &[node]);
        let c = Ipv4Addr::new(10, 244, 1, 1);
        let np = svcs[2].node_port.unwrap();
        assert_eq!(
            ix.lookup(&Tuple::new(Proto::Tcp, c, 1, node, np)),
            Some((2, FrontendKind::NodePort))
        );
        assert_eq!(
            ix.lookup(&Tuple::new(Proto::Tcp, c, 1, Ipv4Addr::new(1, 1, 1, 1), np)),
            None
        );
        assert_eq!(
            ix.lookup(&Tuple::new(Proto::Tcp, c, 1, svcs[1].cluster_ip, 80)),
            Some((1, FrontendKind::ClusterIp))
        );
        assert_eq!(
            ix.lookup(&Tuple::new(Proto::Udp, c, 1, svcs[1].cluster_ip, 80)),
            None
        );
    }
}
