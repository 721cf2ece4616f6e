//! The `ipvs` module models kube-proxy's IPVS mode (`pkg/proxy/ipvs/proxier.go`) and the
//! kernel's IPVS (`net/netfilter/ipvs/`): one virtual server per Service frontend (ClusterIP,
//! external and LoadBalancer IPs, a NodePort on each node address), one real server per ready
//! endpoint, the `rr`, `lc` and `sh` schedulers, the IPVS connection table with its
//! per-state TCP timeouts (`ip_vs_proto_tcp.c`), `conn_reuse_mode` and the first-SYN drop of
//! kernel commit f719e3754ee2, and the constant iptables ruleset with ipsets that kube-proxy
//! programs next to IPVS (`writeIptablesRules`).
//!
//! IPVS mode is deprecated: KEP-5495 logs a warning from v1.35, puts it behind the
//! `KubeProxyIPVS` feature gate in v1.37 and plans to disable the gate in v1.40.
//!
//! Modelled: virtual IPs bound to `kube-ipvs0` (local addresses, so ClusterIP traffic is
//! delivered locally and IPVS takes it at LOCAL_IN), `net.ipv4.vs.conntrack=1` (the flow still
//! gets an nf_conntrack entry; the caller's conntrack layer records the DNAT),
//! `expire_nodest_conn=1`, kube-proxy's `conn_reuse_mode` rule (0 on kernels 4.1..5.9, kernel
//! default 1 otherwise), `ipvsadm --set` timeout overrides, real-server removal. Not
//! modelled: persistence (ClientIP affinity templates), weights other than 1, the `wrr`,
//! `wlc`, `dh`, `sed`, `nq`, `mh` schedulers, LoadBalancer source ranges (their
//! `hash:ip,port,net` set), SCTP, IPv6, `strictARP`, graceful termination timers. See
//! `docs/model.md`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use super::proxy::{
    DataPlane, FirstPacket, FlowOrigin, FrontendKind, LookupCost, ModeNote, ProxyDrop, ProxyVerdict,
    ServiceProxy,
};
use super::{ProxyConfig, ServicePort, TrafficPolicy, external_backends, is_proxied, ready_backends};
use crate::netfilter::{
    AddrType, CtStateMatch, EvalContext, EvalState, Evaluation, FixedState, Hook, IpSet, IpSetEntry, IpSetId,
    IpSetKind, MarkOp, Match, NatAction, Rule, Ruleset, SetDirs, TableKind, Target, Verdict,
};
use crate::packet::{Cidr, Direction, Packet, Proto, TcpFlags, Tuple};
use crate::rng::SimRng;
use crate::time::{SimDuration, SimTime};

/// An IPVS scheduler (`ipvsadm -s`, kube-proxy `ipvs.scheduler`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scheduler {
    /// Round robin (`ip_vs_rr.c`): O(1) per connection.
    #[default]
    Rr,
    /// Least connections (`ip_vs_lc.c`): scans every real server, O(n), overhead
    /// `activeconns * 256 + inactconns`.
    Lc,
    /// Source hashing (`ip_vs_sh.c`): a 256-bucket table indexed by a hash of the client
    /// address, O(1).
    Sh,
}

/// IPVS connection timeouts (`tcp_timeouts` in `ip_vs_proto_tcp.c`, `udp_timeouts` in
/// `ip_vs_proto_udp.c`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpvsTimeouts {
    /// ESTABLISHED (900 s; `ipvsadm --set tcp`).
    pub tcp_established: SimDuration,
    /// SYN_SENT (120 s).
    pub tcp_syn_sent: SimDuration,
    /// SYN_RECV (60 s).
    pub tcp_syn_recv: SimDuration,
    /// FIN_WAIT (120 s; `ipvsadm --set tcpfin`).
    pub tcp_fin_wait: SimDuration,
    /// TIME_WAIT (120 s).
    pub tcp_time_wait: SimDuration,
    /// CLOSE (10 s).
    pub tcp_close: SimDuration,
    /// CLOSE_WAIT (60 s).
    pub tcp_close_wait: SimDuration,
    /// LAST_ACK (30 s).
    pub tcp_last_ack: SimDuration,
    /// LISTEN and SYNACK (120 s).
    pub tcp_other: SimDuration,
    /// UDP (300 s; `ipvsadm --set udp`).
    pub udp: SimDuration,
}

impl Default for IpvsTimeouts {
    /// The kernel defaults.
    fn default() -> Self {
        let s = SimDuration::from_secs;
        IpvsTimeouts {
            tcp_established: s(900),
            tcp_syn_sent: s(120),
            tcp_syn_recv: s(60),
            tcp_fin_wait: s(120),
            tcp_time_wait: s(120),
            tcp_close: s(10),
            tcp_close_wait: s(60),
            tcp_last_ack: s(30),
            tcp_other: s(120),
            udp: s(300),
        }
    }
}

impl IpvsTimeouts {
    /// `ipvsadm --set TCP TCPFIN UDP` (kube-proxy's `ipvs.tcpTimeout`, `tcpFinTimeout`,
    /// `udpTimeout`); a zero keeps the current value.
    #[must_use]
    pub fn with_set(mut self, tcp: SimDuration, tcp_fin: SimDuration, udp: SimDuration) -> IpvsTimeouts {
        if tcp > SimDuration::ZERO {
            self.tcp_established = tcp;
        }
        if tcp_fin > SimDuration::ZERO {
            self.tcp_fin_wait = tcp_fin;
        }
        if udp > SimDuration::ZERO {
            self.udp = udp;
        }
        self
    }

    fn of(&self, s: IpvsState) -> SimDuration {
        match s {
            IpvsState::Udp => self.udp,
            IpvsState::Tcp(t) => match t {
                TcpState::Established => self.tcp_established,
                TcpState::SynSent => self.tcp_syn_sent,
                TcpState::SynRecv => self.tcp_syn_recv,
                TcpState::FinWait => self.tcp_fin_wait,
                TcpState::TimeWait => self.tcp_time_wait,
                TcpState::Close => self.tcp_close,
                TcpState::CloseWait => self.tcp_close_wait,
                TcpState::LastAck => self.tcp_last_ack,
                // IP_VS_TCP_S_NONE has a 2 s timeout.
                TcpState::None => SimDuration::from_secs(2),
                TcpState::Listen | TcpState::SynAck => self.tcp_other,
            },
        }
    }
}

/// A Linux release, for the behaviour switches keyed to kernel versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelVersion {
    /// Major.
    pub major: u16,
    /// Minor.
    pub minor: u16,
}

impl KernelVersion {
    /// `major.minor`.
    #[must_use]
    pub const fn new(major: u16, minor: u16) -> KernelVersion {
        KernelVersion { major, minor }
    }

    /// Parses `"6.18"`, `"5.4.0-150-generic"` and the like.
    #[must_use]
    pub fn parse(text: &str) -> Option<KernelVersion> {
        let mut it = text.split(|c: char| !c.is_ascii_digit());
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        Some(KernelVersion { major, minor })
    }
}

/// The kernel from which kube-proxy may set `conn_reuse_mode`
/// (`IPVSConnReuseModeMinSupportedKernelVersion`).
pub const CONN_REUSE_MIN_KERNEL: KernelVersion = KernelVersion::new(4, 1);
/// The kernel with the two IPVS fixes that make `conn_reuse_mode=1` safe
/// (`IPVSConnReuseModeFixedKernelVersion`, k/k #93297).
pub const CONN_REUSE_FIXED_KERNEL: KernelVersion = KernelVersion::new(5, 9);

/// IPVS-mode settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpvsConfig {
    /// The shared kube-proxy settings; `node_ips` are the NodePort addresses.
    pub proxy: ProxyConfig,
    /// Scheduler of every virtual server.
    pub scheduler: Scheduler,
    /// Connection timeouts.
    pub timeouts: IpvsTimeouts,
    /// The node's kernel.
    pub kernel: KernelVersion,
    /// `net.ipv4.vs.conn_reuse_mode` (0, 1 or 2).
    pub conn_reuse_mode: u8,
    /// `net.ipv4.vs.conntrack` (kube-proxy sets 1).
    pub conntrack: bool,
    /// `net.ipv4.vs.expire_nodest_conn` (kube-proxy sets 1).
    pub expire_nodest_conn: bool,
}

impl IpvsConfig {
    /// The sysctls kube-proxy leaves on a node with `kernel` (`NewProxier`): `conntrack=1`,
    /// `expire_nodest_conn=1`, and `conn_reuse_mode=0` on 4.1 <= kernel < 5.9 (left at the
    /// kernel default 1 otherwise).
    #[must_use]
    pub fn new(proxy: ProxyConfig, kernel: KernelVersion) -> IpvsConfig {
        let reuse = if kernel >= CONN_REUSE_MIN_KERNEL && kernel < CONN_REUSE_FIXED_KERNEL {
            0
        } else {
            1
        };
        IpvsConfig {
            proxy,
            scheduler: Scheduler::Rr,
            timeouts: IpvsTimeouts::default(),
            kernel,
            conn_reuse_mode: reuse,
            conntrack: true,
            expire_nodest_conn: true,
        }
    }
}

impl Default for IpvsConfig {
    /// kube-proxy defaults on Linux 6.18.
    fn default() -> Self {
        IpvsConfig::new(ProxyConfig::default(), KernelVersion::new(6, 18))
    }
}

/// IPVS TCP connection states (`IP_VS_TCP_S_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// NONE.
    None,
    /// ESTABLISHED.
    Established,
    /// SYN_SENT.
    SynSent,
    /// SYN_RECV.
    SynRecv,
    /// FIN_WAIT.
    FinWait,
    /// TIME_WAIT.
    TimeWait,
    /// CLOSE.
    Close,
    /// CLOSE_WAIT.
    CloseWait,
    /// LAST_ACK.
    LastAck,
    /// LISTEN.
    Listen,
    /// SYNACK.
    SynAck,
}

/// The state of an IPVS connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpvsState {
    /// A TCP connection.
    Tcp(TcpState),
    /// A UDP "connection" (one timeout, refreshed by every packet).
    Udp,
}

/// `tcp_states[]` of `ip_vs_proto_tcp.c` (NAT mode: INPUT for client packets, OUTPUT for
/// server packets), rows syn, fin, ack, rst; columns in `IP_VS_TCP_S_*` order.
fn tcp_transition(state: TcpState, dir: Direction, flags: TcpFlags) -> TcpState {
    use TcpState::{
        Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
        None as NO, SynAck as SA, SynRecv as SR, SynSent as SS, TimeWait as TW,
    };
    const INPUT: [[TcpState; 11]; 4] = [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ];
    const OUTPUT: [[TcpState; 11]; 4] = [
        [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ];
    // tcp_state_idx: RST, then SYN, then FIN, then ACK; none of them: no change.
    let row = if flags.contains(TcpFlags::RST) {
        3
    } else if flags.contains(TcpFlags::SYN) {
        0
    } else if flags.contains(TcpFlags::FIN) {
        1
    } else if flags.contains(TcpFlags::ACK) {
        2
    } else {
        return state;
    };
    let col = match state {
        NO => 0,
        ES => 1,
        SS => 2,
        SR => 3,
        FW => 4,
        TW => 5,
        CL => 6,
        CW => 7,
        LA => 8,
        LI => 9,
        SA => 10,
    };
    match dir {
        Direction::Original => INPUT[row][col],
        Direction::Reply => OUTPUT[row][col],
    }
}

/// One real server of a virtual server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RealServer {
    /// Endpoint address.
    pub addr: SocketAddrV4,
    /// Weight (1; 0 once removed: kept so connections can still name it).
    pub weight: u32,
    /// Connections in ESTABLISHED (`activeconns`).
    pub active: u32,
    /// Other connections (`inactconns`).
    pub inactive: u32,
}

/// One virtual server (`ipvsadm -A`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualServer {
    /// Address (a VIP on `kube-ipvs0`, or a node address for NodePorts).
    pub addr: Ipv4Addr,
    /// Protocol.
    pub proto: Proto,
    /// Port.
    pub port: u16,
    /// What kind of frontend it is.
    pub kind: FrontendKind,
    /// Index of the Service port in the slice given to [`IpvsProxy::new`].
    pub service: usize,
    /// An external frontend of a Service with `externalTrafficPolicy: Local`.
    pub external_local: bool,
    dests: Vec<RealServer>,
    rr_next: usize,
    sh_table: Vec<u16>,
}

impl VirtualServer {
    /// The real servers.
    #[must_use]
    pub fn real_servers(&self) -> &[RealServer] {
        &self.dests
    }
}

/// `IP_VS_SH_TAB_BITS`: 256 buckets.
const SH_BITS: u32 = 8;
const NO_DEST: u16 = u16::MAX;

/// `ip_vs_sh_reassign` with all weights 1: bucket `i` goes to the `i mod n`-th available
/// real server.
fn sh_reassign(dests: &[RealServer]) -> Vec<u16> {
    let avail: Vec<u16> = dests
        .iter()
        .enumerate()
        .filter(|(_, d)| d.weight > 0)
        .filter_map(|(i, _)| u16::try_from(i).ok())
        .collect();
    (0..1usize << SH_BITS)
        .map(|i| {
            if avail.is_empty() {
                NO_DEST
            } else {
                avail[i % avail.len()]
            }
        })
        .collect()
}

/// `ip_vs_sh_hashkey` without port hashing: `hash_32(ntohl(addr), 8)`.
fn sh_bucket(addr: Ipv4Addr) -> usize {
    (u32::from(addr).wrapping_mul(0x61C8_8647) >> (32 - SH_BITS)) as usize
}

#[derive(Clone, Copy, Debug)]
struct IpvsConn {
    vs: u32,
    dest: u32,
    state: IpvsState,
    expires: SimTime,
    timer: u64,
}

/// IPVS counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct IpvsStats {
    /// Connections created.
    pub conns_created: u64,
    /// Connections expired by their timer.
    pub conns_expired: u64,
    /// First SYNs dropped by the conn-reuse path (f719e3754ee2).
    pub conn_reuse_drops: u64,
    /// Connections rescheduled without a drop (conn_reuse_mode on a fixed kernel).
    pub conn_reuse_rescheduled: u64,
    /// New connections sent to an old connection's real server (conn_reuse_mode=0).
    pub conn_reused: u64,
    /// Packets dropped because the connection's real server was removed.
    pub stale_backend_drops: u64,
}

/// What a later packet found in the IPVS connection table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpvsPacket {
    /// The real server the connection is bound to (`None`: no IPVS connection).
    pub backend: Option<SocketAddrV4>,
    /// The connection's state after this packet.
    pub state: Option<IpvsState>,
    /// The work done (one connection-table lookup).
    pub cost: LookupCost,
}

const KUBE_SERVICES: &str = "KUBE-SERVICES";
const KUBE_POSTROUTING: &str = "KUBE-POSTROUTING";
const KUBE_NODE_PORT: &str = "KUBE-NODE-PORT";
const KUBE_LOAD_BALANCER: &str = "KUBE-LOAD-BALANCER";
const KUBE_MARK_MASQ: &str = "KUBE-MARK-MASQ";
const KUBE_FORWARD: &str = "KUBE-FORWARD";
const KUBE_PROXY_FIREWALL: &str = "KUBE-PROXY-FIREWALL";
const KUBE_SOURCE_RANGES_FIREWALL: &str = "KUBE-SOURCE-RANGES-FIREWALL";
const KUBE_IPVS_FILTER: &str = "KUBE-IPVS-FILTER";
const KUBE_IPVS_OUT_FILTER: &str = "KUBE-IPVS-OUT-FILTER";

/// The ipsets kube-proxy's IPVS mode uses (`ipsetInfo`), minus the LoadBalancer
/// source-range sets.
const SETS: [(&str, IpSetKind); 14] = [
    ("KUBE-LOOP-BACK", IpSetKind::HashIpPortIp),
    ("KUBE-CLUSTER-IP", IpSetKind::HashIpPort),
    ("KUBE-EXTERNAL-IP", IpSetKind::HashIpPort),
    ("KUBE-EXTERNAL-IP-LOCAL", IpSetKind::HashIpPort),
    ("KUBE-LOAD-BALANCER", IpSetKind::HashIpPort),
    ("KUBE-LOAD-BALANCER-FW", IpSetKind::HashIpPort),
    ("KUBE-LOAD-BALANCER-LOCAL", IpSetKind::HashIpPort),
    ("KUBE-LOAD-BALANCER-SOURCE-IP", IpSetKind::HashIpPortIp),
    ("KUBE-NODE-PORT-TCP", IpSetKind::BitmapPort),
    ("KUBE-NODE-PORT-LOCAL-TCP", IpSetKind::BitmapPort),
    ("KUBE-NODE-PORT-UDP", IpSetKind::BitmapPort),
    ("KUBE-NODE-PORT-LOCAL-UDP", IpSetKind::BitmapPort),
    ("KUBE-HEALTH-CHECK-NODE-PORT", IpSetKind::BitmapPort),
    ("KUBE-IPVS-IPS", IpSetKind::HashIp),
];

fn set_entries(services: &[ServicePort], cfg: &ProxyConfig) -> BTreeMap<&'static str, Vec<IpSetEntry>> {
    let mut m: BTreeMap<&'static str, Vec<IpSetEntry>> = SETS.iter().map(|(n, _)| (*n, Vec::new())).collect();
    let mut add = |set: &'static str, e: IpSetEntry| m.entry(set).or_default().push(e);
    for sp in services.iter().filter(|s| is_proxied(s)) {
        let p = sp.protocol;
        let local = sp.external_traffic_policy == TrafficPolicy::Local;
        add("KUBE-CLUSTER-IP", IpSetEntry::IpPort(sp.cluster_ip, p, sp.port));
        add("KUBE-IPVS-IPS", IpSetEntry::Ip(sp.cluster_ip));
        for ep in sp.endpoints.iter().filter(|e| e.ready && e.node == cfg.node_name) {
            add("KUBE-LOOP-BACK", IpSetEntry::IpPortIp(ep.ip, p, ep.port, ep.ip));
        }
        for ip in &sp.external_ips {
            add("KUBE-EXTERNAL-IP", IpSetEntry::IpPort(*ip, p, sp.port));
            if local {
                add("KUBE-EXTERNAL-IP-LOCAL", IpSetEntry::IpPort(*ip, p, sp.port));
            }
            add("KUBE-IPVS-IPS", IpSetEntry::Ip(*ip));
        }
        for ip in &sp.load_balancer_ips {
            add("KUBE-LOAD-BALANCER", IpSetEntry::IpPort(*ip, p, sp.port));
            if local {
                add("KUBE-LOAD-BALANCER-LOCAL", IpSetEntry::IpPort(*ip, p, sp.port));
            }
            add("KUBE-IPVS-IPS", IpSetEntry::Ip(*ip));
        }
        if let Some(np) = sp.node_port {
            let (all, loc) = match p {
                Proto::Udp => ("KUBE-NODE-PORT-UDP", "KUBE-NODE-PORT-LOCAL-UDP"),
                _ => ("KUBE-NODE-PORT-TCP", "KUBE-NODE-PORT-LOCAL-TCP"),
            };
            add(all, IpSetEntry::Port(np));
            if local {
                add(loc, IpSetEntry::Port(np));
            }
        }
        if let (Some(hc), true) = (sp.health_check_node_port, local) {
            add("KUBE-HEALTH-CHECK-NODE-PORT", IpSetEntry::Port(hc));
        }
    }
    m
}

/// The iptables rules and ipsets kube-proxy's IPVS mode programs (`writeIptablesRules`,
/// `createAndLinkKubeChain`): a constant number of rules whatever the number of Services,
/// matching ipsets instead of per-Service rules.
#[must_use]
#[allow(clippy::too_many_lines)]
pub fn iptables_rules(services: &[ServicePort], cfg: &ProxyConfig) -> Ruleset {
    let mut rs = Ruleset::new();
    let (f, n) = (TableKind::Filter, TableKind::Nat);
    rs.use_table(f);
    rs.use_table(n);
    let entries = set_entries(services, cfg);
    let mut ids: BTreeMap<&str, (IpSetId, bool)> = BTreeMap::new();
    for (name, kind) in SETS {
        let mut set = IpSet::new(name, kind);
        let list = entries.get(name).map(Vec::as_slice).unwrap_or_default();
        for e in list {
            let _ = set.insert(*e);
        }
        let empty = set.is_empty();
        if let Ok(id) = rs.add_ipset(set) {
            ids.insert(name, (id, empty));
        }
    }
    let nat_chains = [
        KUBE_SERVICES,
        KUBE_POSTROUTING,
        KUBE_NODE_PORT,
        KUBE_LOAD_BALANCER,
        KUBE_MARK_MASQ,
    ];
    let filter_chains = [
        KUBE_FORWARD,
        KUBE_NODE_PORT,
        KUBE_PROXY_FIREWALL,
        KUBE_SOURCE_RANGES_FIREWALL,
        KUBE_IPVS_FILTER,
        KUBE_IPVS_OUT_FILTER,
    ];
    for c in nat_chains {
        let _ = rs.add_chain(n, c);
    }
    for c in filter_chains {
        let _ = rs.add_chain(f, c);
    }
    let mark = cfg.masquerade_mark();
    let dirs = |d: &[bool]| SetDirs::new(d).unwrap_or(SetDirs::DST);
    let dst2 = dirs(&[false, false]);
    let dst1 = SetDirs::DST;
    let set = |name: &str, d: SetDirs| {
        ids.get(name).map(|(id, _)| Match::Set {
            set: *id,
            dirs: d,
            negated: false,
        })
    };
    let non_empty = |name: &str| ids.get(name).is_some_and(|(_, empty)| !empty);
    let push = |rs: &mut Ruleset, table: TableKind, chain: &str, r: Rule| {
        if let Some(id) = rs.chain_id(table, chain) {
            let _ = rs.append_rule(table, id, r);
        }
    };
    let jump = |rs: &Ruleset, table: TableKind, chain: &str| {
        rs.chain_id(table, chain).map_or(Target::Return, Target::Jump)
    };
    let with_set = |r: Rule, m: Option<Match>| match m {
        Some(m) => r.with(m),
        None => r,
    };
    let loopback = Cidr::new(Ipv4Addr::new(127, 0, 0, 0), 8).unwrap_or(Cidr::ANY);

    // KUBE-SERVICES.
    push(
        &mut rs,
        n,
        KUBE_SERVICES,
        Rule::new(Target::Return).with(Match::Source {
            cidr: loopback,
            negated: false,
        }),
    );
    if non_empty("KUBE-LOAD-BALANCER") {
        let t = jump(&rs, n, KUBE_LOAD_BALANCER);
        let r = Rule::new(t).with_comment("Kubernetes service lb portal");
        push(
            &mut rs,
            n,
            KUBE_SERVICES,
            with_set(r, set("KUBE-LOAD-BALANCER", dst2)),
        );
    }
    if non_empty("KUBE-CLUSTER-IP") {
        let t = jump(&rs, n, KUBE_MARK_MASQ);
        let mut r = with_set(
            Rule::new(t).with_comment("Kubernetes service cluster ip + port for masquerade purpose"),
            set("KUBE-CLUSTER-IP", dst2),
        );
        if !cfg.masquerade_all {
            r = r.with(Match::Source {
                cidr: cfg.cluster_cidr,
                negated: true,
            });
        }
        push(&mut rs, n, KUBE_SERVICES, r);
    }
    let external_accept = |rs: &mut Ruleset, name: &str, comment: &str| {
        let base = |t| with_set(Rule::new(t).with_comment(comment), set(name, dst2));
        // `-m physdev ! --physdev-is-in` is not modelled: only the addrtype test is kept.
        let r = base(Target::Accept).with(Match::AddrType {
            src: Some(crate::netfilter::AddrTypeTest { negated: true }),
            dst: None,
        });
        push(rs, n, KUBE_SERVICES, r);
        let r = base(Target::Accept).with(Match::AddrType {
            src: None,
            dst: Some(crate::netfilter::AddrTypeTest { negated: false }),
        });
        push(rs, n, KUBE_SERVICES, r);
    };
    if non_empty("KUBE-EXTERNAL-IP") {
        let c = "Kubernetes service external ip + port for masquerade and filter purpose";
        let t = jump(&rs, n, KUBE_MARK_MASQ);
        push(
            &mut rs,
            n,
            KUBE_SERVICES,
            with_set(Rule::new(t).with_comment(c), set("KUBE-EXTERNAL-IP", dst2)),
        );
        external_accept(&mut rs, "KUBE-EXTERNAL-IP", c);
    }
    if non_empty("KUBE-EXTERNAL-IP-LOCAL") {
        external_accept(
            &mut rs,
            "KUBE-EXTERNAL-IP-LOCAL",
            "Kubernetes service external ip + port with externalTrafficPolicy=local",
        );
    }
    let t = jump(&rs, n, KUBE_NODE_PORT);
    push(
        &mut rs,
        n,
        KUBE_SERVICES,
        Rule::new(t).with(Match::AddrType {
            src: None,
            dst: Some(crate::netfilter::AddrTypeTest { negated: false }),
        }),
    );
    for name in ["KUBE-CLUSTER-IP", "KUBE-LOAD-BALANCER"] {
        if non_empty(name) {
            push(
                &mut rs,
                n,
                KUBE_SERVICES,
                with_set(Rule::new(Target::Accept), set(name, dst2)),
            );
        }
    }
    // KUBE-LOAD-BALANCER.
    if non_empty("KUBE-LOAD-BALANCER-LOCAL") {
        let r = Rule::new(Target::Return)
            .with_comment("Kubernetes service load balancer ip + port with externalTrafficPolicy=local");
        push(
            &mut rs,
            n,
            KUBE_LOAD_BALANCER,
            with_set(r, set("KUBE-LOAD-BALANCER-LOCAL", dst2)),
        );
    }
    let t = jump(&rs, n, KUBE_MARK_MASQ);
    push(&mut rs, n, KUBE_LOAD_BALANCER, Rule::new(t));
    // KUBE-NODE-PORT (nat): local sets RETURN before the masquerading ones.
    for (proto, loc, all) in [
        (Proto::Tcp, "KUBE-NODE-PORT-LOCAL-TCP", "KUBE-NODE-PORT-TCP"),
        (Proto::Udp, "KUBE-NODE-PORT-LOCAL-UDP", "KUBE-NODE-PORT-UDP"),
    ] {
        let proto_rule = |t, c: &str| {
            Rule::new(t)
                .with(Match::Protocol {
                    proto,
                    negated: false,
                })
                .with_comment(c)
        };
        if non_empty(loc) {
            let r = proto_rule(
                Target::Return,
                "Kubernetes nodeport TCP port with externalTrafficPolicy=local",
            );
            push(&mut rs, n, KUBE_NODE_PORT, with_set(r, set(loc, dst1)));
        }
        if non_empty(all) {
            let t = jump(&rs, n, KUBE_MARK_MASQ);
            let r = proto_rule(t, "Kubernetes nodeport TCP port for masquerade purpose");
            push(&mut rs, n, KUBE_NODE_PORT, with_set(r, set(all, dst1)));
        }
    }
    // KUBE-POSTROUTING: hairpin first (ipsetWithIptablesChain runs before the mark rules).
    if non_empty("KUBE-LOOP-BACK") {
        let r = Rule::new(Target::Masquerade {
            ports: None,
            random: false,
            random_fully: false,
        })
        .with_comment("Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose");
        push(
            &mut rs,
            n,
            KUBE_POSTROUTING,
            with_set(r, set("KUBE-LOOP-BACK", dirs(&[false, false, true]))),
        );
    }
    push(
        &mut rs,
        n,
        KUBE_POSTROUTING,
        Rule::new(Target::Return).with(Match::Mark {
            value: mark,
            mask: mark,
            negated: true,
        }),
    );
    push(
        &mut rs,
        n,
        KUBE_POSTROUTING,
        Rule::new(Target::Mark(MarkOp::Xor(mark))),
    );
    push(
        &mut rs,
        n,
        KUBE_POSTROUTING,
        Rule::new(Target::Masquerade {
            ports: None,
            random: false,
            random_fully: cfg.random_fully,
        })
        .with_comment("kubernetes service traffic requiring SNAT"),
    );
    push(
        &mut rs,
        n,
        KUBE_MARK_MASQ,
        Rule::new(Target::Mark(MarkOp::Or(mark))),
    );

    // filter.
    push(&mut rs, f, KUBE_SOURCE_RANGES_FIREWALL, Rule::new(Target::Drop));
    push(
        &mut rs,
        f,
        KUBE_FORWARD,
        Rule::new(Target::Accept)
            .with_comment("kubernetes forwarding rules")
            .with(Match::Mark {
                value: mark,
                mask: mark,
                negated: false,
            }),
    );
    push(
        &mut rs,
        f,
        KUBE_FORWARD,
        Rule::new(Target::Accept)
            .with_comment("kubernetes forwarding conntrack rule")
            .with(Match::Conntrack {
                states: CtStateMatch::RELATED.union(CtStateMatch::ESTABLISHED),
                negated: false,
            }),
    );
    push(
        &mut rs,
        f,
        KUBE_NODE_PORT,
        with_set(
            Rule::new(Target::Accept).with_comment("Kubernetes health check node port"),
            set("KUBE-HEALTH-CHECK-NODE-PORT", dst1),
        ),
    );
    for (name, d) in [
        ("KUBE-LOAD-BALANCER", dst2),
        ("KUBE-CLUSTER-IP", dst2),
        ("KUBE-EXTERNAL-IP", dst2),
        ("KUBE-EXTERNAL-IP-LOCAL", dst2),
        ("KUBE-HEALTH-CHECK-NODE-PORT", dst1),
    ] {
        push(
            &mut rs,
            f,
            KUBE_IPVS_FILTER,
            with_set(Rule::new(Target::Return), set(name, d)),
        );
    }
    push(
        &mut rs,
        f,
        KUBE_IPVS_FILTER,
        with_set(
            Rule::new(Target::Reject).with(Match::Conntrack {
                states: CtStateMatch::NEW,
                negated: false,
            }),
            set("KUBE-IPVS-IPS", dst1),
        ),
    );

    // Jumps from the built-in chains, each prepended (`EnsureRule(Prepend)`).
    for (table, hook, to, comment) in [
        (n, Hook::Output, KUBE_SERVICES, "kubernetes service portals"),
        (n, Hook::Prerouting, KUBE_SERVICES, "kubernetes service portals"),
        (
            n,
            Hook::Postrouting,
            KUBE_POSTROUTING,
            "kubernetes postrouting rules",
        ),
        (f, Hook::Forward, KUBE_FORWARD, "kubernetes forwarding rules"),
        (f, Hook::Input, KUBE_NODE_PORT, "kubernetes health check rules"),
        (f, Hook::Input, KUBE_PROXY_FIREWALL, "kube-proxy firewall rules"),
        (f, Hook::Forward, KUBE_PROXY_FIREWALL, "kube-proxy firewall rules"),
        (f, Hook::Input, KUBE_IPVS_FILTER, "kubernetes ipvs access filter"),
        (
            f,
            Hook::Output,
            KUBE_IPVS_OUT_FILTER,
            "kubernetes ipvs access filter",
        ),
    ] {
        let (Some(src), Some(dst)) = (rs.table(table).builtin(hook), rs.chain_id(table, to)) else {
            continue;
        };
        let _ = rs.insert_rule(table, src, 0, Rule::new(Target::Jump(dst)).with_comment(comment));
    }
    rs
}

/// Local addresses of an IPVS node: its own addresses plus every address bound to
/// `kube-ipvs0`.
#[derive(Clone, Debug, Default)]
struct IpvsLocal {
    node: Vec<Ipv4Addr>,
    bound: hashbrown::HashSet<Ipv4Addr, FixedState>,
}

impl AddrType for IpvsLocal {
    fn is_local(&self, addr: Ipv4Addr) -> bool {
        addr.is_loopback() || self.node.contains(&addr) || self.bound.contains(&addr)
    }
}

/// A class of first packets that the iptables rules treat alike before IPVS (the rules match
/// ipsets, so every Service of a frontend kind takes the same path).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct PreKey {
    host: bool,
    kind: Option<u8>,
    ext_local: bool,
    src_in_cluster: bool,
    src_local: bool,
    /// The destination is local (a node address or bound to `kube-ipvs0`): INPUT, not
    /// FORWARD.
    dst_local: bool,
}

#[derive(Clone, Copy, Debug)]
struct PreCost {
    cost: LookupCost,
    verdict: Verdict,
    mark: u32,
}

/// A class of packets leaving towards the real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct PostKey {
    host: bool,
    marked: bool,
    hairpin: bool,
}

#[derive(Clone, Copy, Debug)]
struct PostCost {
    cost: LookupCost,
    masquerade: bool,
}

/// kube-proxy's IPVS mode on one node: virtual servers, the connection table and the iptables
/// rules around them.
#[derive(Debug)]
pub struct IpvsProxy {
    cfg: IpvsConfig,
    rules: Ruleset,
    eval: EvalState,
    local: IpvsLocal,
    vs: Vec<VirtualServer>,
    vs_index: hashbrown::HashMap<(Ipv4Addr, Proto, u16), u32, FixedState>,
    conns: hashbrown::HashMap<Tuple, IpvsConn, FixedState>,
    timers: BTreeMap<(SimTime, u64), Tuple>,
    seq: u64,
    pre_paths: BTreeMap<PreKey, PreCost>,
    post_paths: BTreeMap<PostKey, PostCost>,
    loop_back: Option<IpSetId>,
    stats: IpvsStats,
}

fn kind_code(k: FrontendKind) -> u8 {
    match k {
        FrontendKind::ClusterIp => 0,
        FrontendKind::ExternalIp => 1,
        FrontendKind::LoadBalancer => 2,
        FrontendKind::NodePort => 3,
    }
}

impl IpvsProxy {
    /// Virtual servers, real servers and iptables rules for `services`.
    #[must_use]
    pub fn new(services: &[ServicePort], cfg: &IpvsConfig) -> IpvsProxy {
        let mut p = IpvsProxy {
            rules: iptables_rules(services, &cfg.proxy),
            cfg: cfg.clone(),
            eval: EvalState::new(),
            local: IpvsLocal {
                node: cfg.proxy.node_ips.clone(),
                bound: hashbrown::HashSet::default(),
            },
            vs: Vec::new(),
            vs_index: hashbrown::HashMap::default(),
            conns: hashbrown::HashMap::default(),
            timers: BTreeMap::new(),
            seq: 0,
            pre_paths: BTreeMap::new(),
            post_paths: BTreeMap::new(),
            loop_back: None,
            stats: IpvsStats::default(),
        };
        for (i, sp) in services.iter().enumerate() {
            if !is_proxied(sp) {
                continue;
            }
            let cluster: Vec<SocketAddrV4> = ready_backends(sp).collect();
            let external = external_backends(sp, &cfg.proxy.node_name);
            p.add_vs(sp.cluster_ip, sp, i, FrontendKind::ClusterIp, &cluster);
            p.local.bound.insert(sp.cluster_ip);
            for ip in &sp.external_ips {
                p.add_vs(*ip, sp, i, FrontendKind::ExternalIp, &external);
                p.local.bound.insert(*ip);
            }
            for ip in &sp.load_balancer_ips {
                p.add_vs(*ip, sp, i, FrontendKind::LoadBalancer, &external);
                p.local.bound.insert(*ip);
            }
            if let Some(np) = sp.node_port {
                let mut np_sp = sp.clone();
                np_sp.port = np;
                for ip in &cfg.proxy.node_ips {
                    p.add_vs(*ip, &np_sp, i, FrontendKind::NodePort, &external);
                }
            }
        }
        p.loop_back = p.rules.ipset_id("KUBE-LOOP-BACK");
        p
    }

    fn add_vs(
        &mut self,
        addr: Ipv4Addr,
        sp: &ServicePort,
        service: usize,
        kind: FrontendKind,
        eps: &[SocketAddrV4],
    ) {
        let key = (addr, sp.protocol, sp.port);
        if self.vs_index.contains_key(&key) {
            return;
        }
        let dests: Vec<RealServer> = eps
            .iter()
            .map(|a| RealServer {
                addr: *a,
                weight: 1,
                active: 0,
                inactive: 0,
            })
            .collect();
        #[allow(clippy::cast_possible_truncation)]
        self.vs_index.insert(key, self.vs.len() as u32);
        self.vs.push(VirtualServer {
            addr,
            proto: sp.protocol,
            port: sp.port,
            kind,
            service,
            external_local: kind != FrontendKind::ClusterIp
                && sp.external_traffic_policy == TrafficPolicy::Local,
            sh_table: sh_reassign(&dests),
            dests,
            rr_next: 0,
        });
    }

    /// The iptables rules and ipsets.
    #[must_use]
    pub fn ruleset(&self) -> &Ruleset {
        &self.rules
    }

    /// The virtual servers.
    #[must_use]
    pub fn virtual_servers(&self) -> &[VirtualServer] {
        &self.vs
    }

    /// Addresses bound to `kube-ipvs0` (distinct ClusterIPs, external and LoadBalancer IPs).
    #[must_use]
    pub fn bound_addresses(&self) -> usize {
        self.local.bound.len()
    }

    /// Connections in the IPVS table (including ones whose timer is due but has not run:
    /// call [`IpvsProxy::expire`] first).
    #[must_use]
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> IpvsStats {
        self.stats
    }

    /// The config.
    #[must_use]
    pub fn config(&self) -> &IpvsConfig {
        &self.cfg
    }

    /// Removes `backend` from every virtual server (kube-proxy deleting a real server after
    /// its endpoint went away). Connections bound to it stay until they expire.
    pub fn remove_backend(&mut self, backend: SocketAddrV4) {
        for vs in &mut self.vs {
            let mut changed = false;
            for d in &mut vs.dests {
                if d.addr == backend && d.weight > 0 {
                    d.weight = 0;
                    changed = true;
                }
            }
            if changed {
                vs.sh_table = sh_reassign(&vs.dests);
            }
        }
    }

    /// Runs the connection timers due at `now` (`ip_vs_conn_expire`); returns how many
    /// connections expired.
    pub fn expire(&mut self, now: SimTime) -> usize {
        let mut n = 0;
        while let Some((&(at, seq), _)) = self.timers.first_key_value() {
            if at > now {
                break;
            }
            let Some(((_, _), tuple)) = self.timers.pop_first() else {
                break;
            };
            if self.conns.get(&tuple).is_some_and(|c| c.timer == seq) {
                self.drop_conn(&tuple);
                self.stats.conns_expired += 1;
                n += 1;
            }
        }
        n
    }

    fn drop_conn(&mut self, tuple: &Tuple) {
        if let Some(c) = self.conns.remove(tuple) {
            self.timers.remove(&(c.expires, c.timer));
            if let Some(d) = self
                .vs
                .get_mut(c.vs as usize)
                .and_then(|v| v.dests.get_mut(c.dest as usize))
            {
                if c.state == IpvsState::Tcp(TcpState::Established) {
                    d.active = d.active.saturating_sub(1);
                } else {
                    d.inactive = d.inactive.saturating_sub(1);
                }
            }
        }
    }

    /// Moves a connection to `state` and restarts its timer (`set_tcp_state`: the
    /// active/inactive counters follow ESTABLISHED).
    fn set_state(&mut self, tuple: Tuple, state: IpvsState, now: SimTime) {
        self.seq += 1;
        let seq = self.seq;
        let to = self.cfg.timeouts.of(state);
        let Some(c) = self.conns.get_mut(&tuple) else {
            return;
        };
        let was_active = c.state == IpvsState::Tcp(TcpState::Established);
        let is_active = state == IpvsState::Tcp(TcpState::Established);
        self.timers.remove(&(c.expires, c.timer));
        c.state = state;
        c.expires = now + to;
        c.timer = seq;
        self.timers.insert((c.expires, seq), tuple);
        let dest = self
            .vs
            .get_mut(c.vs as usize)
            .and_then(|v| v.dests.get_mut(c.dest as usize));
        if let (true, Some(d)) = (was_active != is_active, dest) {
            if is_active {
                d.active += 1;
                d.inactive = d.inactive.saturating_sub(1);
            } else {
                d.inactive += 1;
                d.active = d.active.saturating_sub(1);
            }
        }
    }

    /// Picks a real server of virtual server `vs` (`ip_vs_schedule`).
    fn schedule(&mut self, vs: usize, client: Ipv4Addr, cost: &mut LookupCost) -> Option<u32> {
        let sched = self.cfg.scheduler;
        let v = self.vs.get_mut(vs)?;
        let n = v.dests.len();
        match sched {
            Scheduler::Rr => {
                for k in 0..n {
                    cost.scheduler_ops += 1;
                    let i = (v.rr_next + k) % n;
                    if v.dests[i].weight > 0 {
                        v.rr_next = (i + 1) % n;
                        return u32::try_from(i).ok();
                    }
                }
                None
            }
            Scheduler::Lc => {
                let mut best: Option<(u64, usize)> = None;
                for (i, d) in v.dests.iter().enumerate() {
                    cost.scheduler_ops += 1;
                    if d.weight == 0 {
                        continue;
                    }
                    let overhead = (u64::from(d.active) << 8) + u64::from(d.inactive);
                    if best.is_none_or(|(b, _)| overhead < b) {
                        best = Some((overhead, i));
                    }
                }
                best.and_then(|(_, i)| u32::try_from(i).ok())
            }
            Scheduler::Sh => {
                cost.scheduler_ops += 1;
                let d = v.sh_table.get(sh_bucket(client)).copied().unwrap_or(NO_DEST);
                (d != NO_DEST).then_some(u32::from(d))
            }
        }
    }

    /// The iptables rules before IPVS (nat PREROUTING and filter INPUT, FORWARD for
    /// non-local destinations, or nat and filter OUTPUT), traced once per class to count
    /// set lookups.
    fn pre_path(&mut self, key: PreKey, tuple: Tuple, rng: &mut SimRng, now: SimTime) -> PreCost {
        if let Some(p) = self.pre_paths.get(&key) {
            return *p;
        }
        let mut pkt = Packet::new(tuple, TcpFlags::SYN);
        let cx = EvalContext::new(CtStateMatch::NEW, &self.local, now);
        let hooks = if key.host {
            [(TableKind::Nat, Hook::Output), (TableKind::Filter, Hook::Output)]
        } else if key.dst_local {
            [
                (TableKind::Nat, Hook::Prerouting),
                (TableKind::Filter, Hook::Input),
            ]
        } else {
            [
                (TableKind::Nat, Hook::Prerouting),
                (TableKind::Filter, Hook::Forward),
            ]
        };
        let mut p = PreCost {
            cost: LookupCost::default(),
            verdict: Verdict::Accept,
            mark: 0,
        };
        for (table, hook) in hooks {
            let (ev, trace) = self
                .rules
                .evaluate_traced(table, hook, &pkt, &cx, &mut self.eval, rng);
            p.cost += self.trace_cost(table, &ev, &trace);
            pkt.mark = ev.mark;
            p.mark = ev.mark.0;
            if ev.verdict != Verdict::Accept {
                p.verdict = ev.verdict;
                break;
            }
        }
        self.pre_paths.insert(key, p);
        p
    }

    /// After IPVS the packet leaves towards the real server through LOCAL_OUT (filter
    /// OUTPUT, for forwarded traffic) and POSTROUTING (`ip_vs_nat_xmit`).
    fn post_path(
        &mut self,
        key: PostKey,
        tuple: Tuple,
        backend: SocketAddrV4,
        rng: &mut SimRng,
        now: SimTime,
    ) -> PostCost {
        if let Some(p) = self.post_paths.get(&key) {
            return *p;
        }
        let mut pkt = Packet::new(tuple, TcpFlags::SYN);
        pkt.tuple.dst = *backend.ip();
        pkt.tuple.dport = backend.port();
        if key.marked {
            pkt.mark.0 = self.cfg.proxy.masquerade_mark();
        }
        let cx = EvalContext::new(CtStateMatch::NEW.union(CtStateMatch::DNAT), &self.local, now);
        let mut p = PostCost {
            cost: LookupCost::default(),
            masquerade: false,
        };
        if !key.host {
            let (ev, trace) =
                self.rules
                    .evaluate_traced(TableKind::Filter, Hook::Output, &pkt, &cx, &mut self.eval, rng);
            p.cost += self.trace_cost(TableKind::Filter, &ev, &trace);
        }
        let (ev, trace) =
            self.rules
                .evaluate_traced(TableKind::Nat, Hook::Postrouting, &pkt, &cx, &mut self.eval, rng);
        p.cost += self.trace_cost(TableKind::Nat, &ev, &trace);
        p.masquerade = matches!(ev.nat, Some(NatAction::Masquerade { .. }));
        self.post_paths.insert(key, p);
        p
    }

    /// Rules tested, and one hash lookup per tested rule that carries an ipset match.
    fn trace_cost(&self, table: TableKind, ev: &Evaluation, trace: &crate::netfilter::Trace) -> LookupCost {
        let t = self.rules.table(table);
        let sets = trace
            .steps
            .iter()
            .filter(|s| {
                t.try_chain(s.chain)
                    .and_then(|c| c.rules().get(s.rule as usize))
                    .is_some_and(|r| r.matches.iter().any(|m| matches!(m, Match::Set { .. })))
            })
            .count();
        LookupCost {
            rules_evaluated: ev.rules_evaluated,
            hash_lookups: u32::try_from(sets).unwrap_or(u32::MAX),
            scheduler_ops: 0,
        }
    }

    /// The first packet of `tuple` entering at `origin`. `old_ct_alive` says whether the
    /// nf_conntrack entry of an older connection with the same tuple is still confirmed
    /// (`ip_vs_conn_uses_old_conntrack`); it only matters when an IPVS connection with this
    /// tuple still exists.
    #[allow(clippy::too_many_lines)]
    pub fn first_packet_with(
        &mut self,
        origin: FlowOrigin,
        tuple: Tuple,
        old_ct_alive: bool,
        rng: &mut SimRng,
        now: SimTime,
    ) -> FirstPacket {
        self.expire(now);
        let vs_id = self.vs_index.get(&(tuple.dst, tuple.proto, tuple.dport)).copied();
        let (kind, ext_local) = match vs_id.and_then(|i| self.vs.get(i as usize)) {
            Some(v) => (Some(kind_code(v.kind)), v.external_local),
            None => (None, false),
        };
        let host = origin == FlowOrigin::Host;
        let key = PreKey {
            host,
            kind,
            ext_local,
            src_in_cluster: self.cfg.proxy.cluster_cidr.contains(tuple.src),
            src_local: self.local.is_local(tuple.src),
            dst_local: self.local.is_local(tuple.dst),
        };
        let pre = self.pre_path(key, tuple, rng, now);
        let mut cost = pre.cost;
        let note = |reused, drop| ModeNote::Ipvs {
            reused_connection: reused,
            drop_first_syn: drop,
        };
        let blocked = match pre.verdict {
            Verdict::Accept => None,
            Verdict::Reject => Some(ProxyVerdict::Reject),
            Verdict::Drop => Some(ProxyVerdict::Drop(ProxyDrop::NoLocalEndpoints)),
        };
        if let Some(verdict) = blocked {
            return FirstPacket {
                verdict,
                ..FirstPacket::not_service(cost)
            };
        }
        let Some(vs) = vs_id else {
            cost.hash_lookups += 1; // ip_vs_service_find
            let verdict = match pre.verdict {
                Verdict::Accept => ProxyVerdict::NotService,
                Verdict::Reject => ProxyVerdict::Reject,
                Verdict::Drop => ProxyVerdict::Drop(ProxyDrop::NoLocalEndpoints),
            };
            return FirstPacket {
                verdict,
                ..FirstPacket::not_service(cost)
            };
        };
        let vs = vs as usize;
        let mut ipvs_cost = LookupCost {
            // ip_vs_service_find + ip_vs_conn_in_get.
            hash_lookups: 2,
            ..LookupCost::default()
        };
        let is_syn = tuple.proto == Proto::Tcp;
        let mut reused = false;
        let mut dest: Option<u32> = None;
        if let Some(c) = self.conns.get(&tuple).copied() {
            reused = true;
            let expected = matches!(c.state, IpvsState::Tcp(TcpState::TimeWait | TcpState::Close));
            let dest_gone = self
                .vs
                .get(c.vs as usize)
                .and_then(|v| v.dests.get(c.dest as usize))
                .is_none_or(|d| d.weight == 0);
            let reuse_mode = self.cfg.conn_reuse_mode != 0;
            let fixed = self.cfg.kernel >= CONN_REUSE_FIXED_KERNEL;
            if is_syn && reuse_mode && (expected || (dest_gone && self.cfg.expire_nodest_conn)) {
                // ip_vs_in: reschedule. Before 5.9 a confirmed old conntrack entry makes IPVS
                // drop this SYN (f719e3754ee2); the retransmission finds no IPVS connection.
                let old_ct = self.cfg.conntrack && old_ct_alive;
                self.drop_conn(&tuple);
                if old_ct && !fixed {
                    self.stats.conn_reuse_drops += 1;
                    cost += ipvs_cost;
                    return FirstPacket {
                        backend: None,
                        verdict: ProxyVerdict::Drop(ProxyDrop::IpvsConnReuse),
                        masquerade: false,
                        cost,
                        note: note(true, true),
                    };
                }
                self.stats.conn_reuse_rescheduled += 1;
            } else if dest_gone {
                // The real server is gone: expire_nodest_conn expires the connection and
                // drops the packet; without it the packet is dropped too.
                self.drop_conn(&tuple);
                self.stats.stale_backend_drops += 1;
                cost += ipvs_cost;
                return FirstPacket {
                    backend: None,
                    verdict: ProxyVerdict::Drop(ProxyDrop::IpvsStaleBackend),
                    masquerade: false,
                    cost,
                    note: note(true, true),
                };
            } else {
                // conn_reuse_mode=0 (or a connection not in TIME_WAIT/CLOSE): the new
                // connection follows the old one to its real server.
                self.stats.conn_reused += 1;
                dest = Some(c.dest);
            }
        }
        let dest = match dest {
            Some(d) => d,
            None => {
                let Some(d) = self.schedule(vs, tuple.src, &mut ipvs_cost) else {
                    // No real server: ip_vs_leave answers ICMP port unreachable.
                    cost += ipvs_cost;
                    return FirstPacket {
                        verdict: ProxyVerdict::Reject,
                        ..FirstPacket::not_service(cost)
                    };
                };
                self.seq += 1;
                ipvs_cost.hash_lookups += 1; // ip_vs_conn_hash
                let initial = if tuple.proto == Proto::Tcp {
                    IpvsState::Tcp(TcpState::None)
                } else {
                    IpvsState::Udp
                };
                #[allow(clippy::cast_possible_truncation)]
                self.conns.insert(
                    tuple,
                    IpvsConn {
                        vs: vs as u32,
                        dest: d,
                        state: initial,
                        expires: now,
                        timer: 0,
                    },
                );
                if let Some(rs) = self.vs[vs].dests.get_mut(d as usize) {
                    rs.inactive += 1;
                }
                self.stats.conns_created += 1;
                d
            }
        };
        let backend = self.vs[vs].dests.get(dest as usize).map(|d| d.addr);
        let state = match self.conns.get(&tuple).map(|c| c.state) {
            Some(IpvsState::Tcp(s)) => IpvsState::Tcp(tcp_transition(s, Direction::Original, TcpFlags::SYN)),
            _ => IpvsState::Udp,
        };
        self.set_state(tuple, state, now);
        cost += ipvs_cost;
        let Some(b) = backend else {
            return FirstPacket::not_service(cost);
        };
        let hairpin = *b.ip() == tuple.src
            && self
                .loop_back
                .and_then(|id| self.rules.ipset(id))
                .is_some_and(|s| {
                    s.contains(&IpSetEntry::IpPortIp(*b.ip(), tuple.proto, b.port(), tuple.src))
                });
        let post_key = PostKey {
            host,
            marked: pre.mark & self.cfg.proxy.masquerade_mark() != 0,
            hairpin,
        };
        let post = self.post_path(post_key, tuple, b, rng, now);
        cost += post.cost;
        FirstPacket {
            backend,
            verdict: ProxyVerdict::Translate,
            masquerade: post.masquerade,
            cost,
            note: note(reused, false),
        }
    }

    /// A later packet of an IPVS connection. `client_tuple` is the connection's original
    /// tuple (client -> virtual address), `dir` the packet's direction; TCP flags drive the
    /// state table and every packet restarts the timer.
    pub fn packet(
        &mut self,
        client_tuple: Tuple,
        dir: Direction,
        flags: TcpFlags,
        now: SimTime,
    ) -> IpvsPacket {
        self.expire(now);
        let cost = LookupCost {
            hash_lookups: 1,
            ..LookupCost::default()
        };
        let Some(c) = self.conns.get(&client_tuple).copied() else {
            return IpvsPacket {
                backend: None,
                state: None,
                cost,
            };
        };
        let state = match c.state {
            IpvsState::Tcp(s) => IpvsState::Tcp(tcp_transition(s, dir, flags)),
            IpvsState::Udp => IpvsState::Udp,
        };
        self.set_state(client_tuple, state, now);
        IpvsPacket {
            backend: self
                .vs
                .get(c.vs as usize)
                .and_then(|v| v.dests.get(c.dest as usize))
                .map(|d| d.addr),
            state: Some(state),
            cost,
        }
    }
}

impl ServiceProxy for IpvsProxy {
    fn data_plane(&self) -> DataPlane {
        DataPlane::Ipvs
    }

    /// As [`IpvsProxy::first_packet_with`] from a pod, assuming an old connection's
    /// nf_conntrack entry lives as long as its IPVS connection (both time out after 120 s in
    /// TIME_WAIT).
    fn first_packet(&mut self, tuple: Tuple, rng: &mut SimRng, now: SimTime) -> FirstPacket {
        self.first_packet_with(FlowOrigin::Pod, tuple, true, rng, now)
    }
}

#[cfg(test)]
mod tests;
