//! A node's Service data plane as the packet path sees it: the points where the
//! datapath hands a packet to nftables, IPVS or Cilium ([`ProxyHooks`]), and the
//! per-node wrapper ([`NodeProxy`]) that holds whichever one the node runs.
//!
//! kube-proxy's iptables mode has no hooks here: its rules are the namespace's
//! ruleset, evaluated table by table. Each other mode implements only the points it
//! uses:
//!
//! | point | nftables | IPVS | Cilium eBPF |
//! |---|---|---|---|
//! | [`at_ingress`](ProxyHooks::at_ingress): tc ingress, before netfilter | | | per-packet LB of frontends, BPF CT map |
//! | [`first_packet_at`](ProxyHooks::first_packet_at): nat at dstnat priority, first packet | `nat-prerouting` / `nat-output` | `ip_vs_in` / `ip_vs_local_request4` | (translated at `connect()`) |
//! | [`translated_packet`](ProxyHooks::translated_packet): later packets of a flow it translated | | connection timer | |

use super::ebpf::EbpfProxy;
use super::ipvs::IpvsProxy;
use super::nftables::NftablesProxy;
use super::proxy::{DataPlane, FirstPacket, FlowOrigin, LookupCost, ProxyDrop, ProxyVerdict};
use crate::packet::{Direction, Packet, Proto, TcpFlags, Tuple};
use crate::rng::SimRng;
use crate::time::SimTime;
use std::net::SocketAddrV4;

/// What a data plane did with a packet at tc ingress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ingress {
    /// The work done.
    pub cost: LookupCost,
    /// A frontend translated to a backend (the packet's destination was rewritten).
    pub translated: Option<(SocketAddrV4, SocketAddrV4)>,
    /// The packet ends here: [`ProxyVerdict::Reject`] or [`ProxyVerdict::Drop`].
    pub stop: Option<ProxyVerdict>,
}

/// The points of the packet path where a node's Service data plane acts. Every method
/// has a do-nothing default: a data plane implements the points it uses.
pub trait ProxyHooks {
    /// A TCP or UDP packet received by the node, before netfilter (tc ingress). It may
    /// rewrite the packet's destination.
    fn at_ingress(&mut self, pkt: &mut Packet, now: SimTime) -> Ingress {
        let _ = (pkt, now);
        Ingress::default()
    }

    /// The first packet of a new conntrack entry at the nat hook (dstnat priority) of
    /// `origin`: whether and where it is translated. `None`: this data plane does not
    /// decide here.
    fn first_packet_at(
        &mut self,
        origin: FlowOrigin,
        tuple: Tuple,
        rng: &mut SimRng,
        now: SimTime,
    ) -> Option<FirstPacket> {
        let _ = (origin, tuple, rng, now);
        None
    }

    /// A later packet of a flow whose destination this data plane translated;
    /// `original` is the flow's original tuple, `dir` the packet's direction.
    fn translated_packet(
        &mut self,
        original: Tuple,
        dir: Direction,
        flags: TcpFlags,
        now: SimTime,
    ) -> LookupCost {
        let _ = (original, dir, flags, now);
        LookupCost::default()
    }
}

impl ProxyHooks for NftablesProxy {
    /// kube-proxy's `nat-prerouting` (received) or `nat-output` (local) chains and the
    /// filter base chains of the flow's hooks.
    fn first_packet_at(
        &mut self,
        origin: FlowOrigin,
        tuple: Tuple,
        rng: &mut SimRng,
        now: SimTime,
    ) -> Option<FirstPacket> {
        Some(self.first_packet_from(origin, tuple, rng, now))
    }
}

impl ProxyHooks for IpvsProxy {
    /// `ip_vs_in` (received; the virtual IPs are local) or `ip_vs_local_request4`
    /// (locally generated).
    fn first_packet_at(
        &mut self,
        origin: FlowOrigin,
        tuple: Tuple,
        rng: &mut SimRng,
        now: SimTime,
    ) -> Option<FirstPacket> {
        Some(self.first_packet_with(origin, tuple, true, rng, now))
    }

    /// `ip_vs_in` / `ip_vs_out` find the connection and restart its timer.
    fn translated_packet(
        &mut self,
        original: Tuple,
        dir: Direction,
        flags: TcpFlags,
        now: SimTime,
    ) -> LookupCost {
        self.packet(original, dir, flags, now).cost
    }
}

impl ProxyHooks for EbpfProxy {
    /// `bpf_lxc` / `bpf_host` at tc: a packet still addressed to a frontend (traffic
    /// socket LB did not translate, such as UDP DNS) gets per-packet LB
    /// (`lb4_lookup_service`), whose choice is a function of the tuple as Cilium keeps it
    /// in the flow's CT entry; then every TCP/UDP packet looks up or creates its BPF CT
    /// entry (`ct_lookup4`, `ct_create4`).
    fn at_ingress(&mut self, pkt: &mut Packet, now: SimTime) -> Ingress {
        let mut out = Ingress::default();
        if !matches!(pkt.tuple.proto, Proto::Tcp | Proto::Udp) {
            return out;
        }
        if self.is_frontend(&pkt.tuple) {
            let mut flow_rng = SimRng::from_seed(tuple_seed(&pkt.tuple));
            let fp = self.socket_connect(pkt.tuple, &mut flow_rng);
            out.cost += fp.cost;
            match (fp.verdict, fp.backend) {
                (ProxyVerdict::Translate, Some(b)) => {
                    out.translated = Some((SocketAddrV4::new(pkt.tuple.dst, pkt.tuple.dport), b));
                    pkt.tuple.dst = *b.ip();
                    pkt.tuple.dport = b.port();
                }
                (ProxyVerdict::Reject, _) => {
                    out.stop = Some(ProxyVerdict::Reject);
                    return out;
                }
                _ => {}
            }
        }
        let (key, dir) = self.ct_key(pkt.tuple, now);
        let c = self.packet(key, dir, pkt.flags, now);
        out.cost += c.cost;
        if c.insert_failed {
            out.stop = Some(ProxyVerdict::Drop(ProxyDrop::CtMapInsertFailed));
        }
        out
    }
}

/// A seed that is a function of the tuple alone (splitmix64 of its packed fields).
fn tuple_seed(t: &Tuple) -> u64 {
    crate::rng::splitmix64(
        (u64::from(u32::from(t.src)) << 32 | u64::from(u32::from(t.dst)))
            ^ (u64::from(t.sport) << 48 | u64::from(t.dport) << 32 | u64::from(t.proto.number())),
    )
}

/// The Service data plane a node runs when it is not (only) the iptables ruleset.
#[derive(Debug)]
pub enum ProxyImpl {
    /// kube-proxy's nftables table (its base chains sit at the iptables nat/filter
    /// priorities): consulted for the first packet of every flow.
    Nftables(Box<NftablesProxy>),
    /// kube-proxy's IPVS mode: the constant ipset-matched iptables rules and the virtual
    /// servers with their connection table. Consulted for a flow's first packet and, to
    /// drive the IPVS connection's state and timer, for every later packet of a flow it
    /// translated.
    Ipvs(Box<IpvsProxy>),
    /// Cilium's kube-proxy replacement: backends are chosen at `connect()` (socket LB, by
    /// the simulation), the BPF CT map sees every TCP/UDP packet the node handles.
    Ebpf(Box<EbpfProxy>),
}

impl ProxyImpl {
    /// The data plane's hook points.
    pub fn hooks(&mut self) -> &mut dyn ProxyHooks {
        match self {
            ProxyImpl::Nftables(p) => p.as_mut(),
            ProxyImpl::Ipvs(p) => p.as_mut(),
            ProxyImpl::Ebpf(p) => p.as_mut(),
        }
    }
}

/// A node's Service data plane, for namespaces whose Service translation is not done by
/// iptables rules.
#[derive(Debug)]
pub struct NodeProxy {
    /// The data plane.
    pub imp: ProxyImpl,
    /// MASQUERADE with `--random-fully` when the data plane asks for masquerade.
    pub random_fully: bool,
    /// The data plane's own random stream (`numgen`, schedulers, socket LB), so that the
    /// iptables path's stream is consumed exactly as without a proxy.
    pub rng: SimRng,
    /// Work done outside the packet path (socket LB at `connect()`), cumulative.
    pub connect_cost: LookupCost,
}

impl NodeProxy {
    /// Which data plane this is.
    #[must_use]
    pub fn data_plane(&self) -> DataPlane {
        match &self.imp {
            ProxyImpl::Nftables(_) => DataPlane::Nftables,
            ProxyImpl::Ipvs(_) => DataPlane::Ipvs,
            ProxyImpl::Ebpf(_) => DataPlane::Ebpf,
        }
    }
}
