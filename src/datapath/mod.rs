//! The `datapath` module walks one packet through one network namespace's netfilter
//! hooks, in the kernel's priority order, with conntrack and NAT in between:
//!
//! ```text
//! PREROUTING:  raw (-300) → conntrack in (-200) → mangle (-150) → nat DNAT (-100)
//! routing decision on the (possibly DNATed) destination
//! FORWARD:     mangle → filter               | INPUT: mangle → filter → nat (+100) → confirm
//! POSTROUTING: mangle → nat SNAT (+100) → confirm (INT_MAX)
//! ```
//!
//! Processing is split in two halves because the kernel's insertion races live between
//! them: [`NetnsPath::first_half`] runs everything up to (not including) the confirm and
//! leaves a new entry *unconfirmed* (counted, invisible to lookups, NAT chosen);
//! [`NetnsPath::confirm`] inserts it. The caller (the simulation) puts the CPU time of
//! the packet between the two, so two packets processed concurrently on different
//! CPUs can clash exactly as in `__nf_conntrack_confirm`.
//!
//! What is modelled: the `raw`, `mangle`, `nat` and `filter` tables at every hook; the
//! nat table consulted only for packets that create an entry, later packets following
//! the stored binding (`nf_nat_packet`); the null DNAT and SNAT bindings every new flow
//! gets; MASQUERADE to the output device's address; NOTRACK. Not modelled: the
//! `security` table, policy routing, `rp_filter`, ICMP errors generated on the path,
//! fragmentation, bridge-level (`ebtables`) hooks. See `docs/model.md`.

use crate::conntrack::{
    ConfirmOutcome, ConnId, ConntrackTable, CtDrop, CtInfo, CtLookup, DstNat, NatRange as CtNatRange, SrcNat,
    TrackVerdict,
};
use crate::netfilter::{
    CtStateMatch, EvalContext, EvalState, Evaluation, Hook, LocalAddrs, NatAction, Ruleset, TableKind, Trace,
    Verdict,
};
use crate::packet::{Direction, Packet, Proto};
use crate::rng::SimRng;
use crate::service::ebpf::EbpfProxy;
use crate::service::ipvs::IpvsProxy;
use crate::service::nftables::NftablesProxy;
use crate::service::proxy::{DataPlane, FlowOrigin, LookupCost, ProxyDrop, ProxyVerdict, ServiceProxy};
use crate::time::SimTime;
use crate::topology::{NetnsId, RouteDecision, Topology};
use std::net::Ipv4Addr;

/// Why the datapath dropped a packet. Every drop is counted somewhere; this says where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum DropReason {
    /// Conntrack could not allocate an entry: the namespace is at `nf_conntrack_max` and
    /// `early_drop` found nothing evictable (`drop` += 1).
    ConntrackTableFull,
    /// An unresolvable clash at confirm (`insert_failed` += 1, `drop` += 1).
    ConntrackInsertFailed,
    /// A hash chain exceeded its random limit at confirm (`chaintoolong`,
    /// `insert_failed`).
    ConntrackChainTooLong,
    /// A table's verdict was DROP (a rule or the chain policy).
    Filtered {
        /// The table.
        table: TableKind,
        /// The hook.
        hook: Hook,
    },
    /// A table's verdict was REJECT.
    Rejected {
        /// The table.
        table: TableKind,
        /// The hook.
        hook: Hook,
    },
    /// No route to the destination.
    NoRoute,
    /// The packet crossed more namespaces than any real path does: a routing loop.
    RoutingLoop,
    /// Routed out of the modelled cluster (the default route): nothing modelled receives
    /// it.
    LeftCluster,
    /// The node's proxy data plane (nftables, IPVS, eBPF) dropped the packet.
    Proxy(ProxyDrop),
    /// The node's proxy data plane rejected the packet (a Service without endpoints).
    ProxyRejected,
}

impl DropReason {
    /// A short operator-facing description.
    #[must_use]
    pub fn describe(self) -> String {
        match self {
            DropReason::ConntrackTableFull => "conntrack table full (drop)".into(),
            DropReason::ConntrackInsertFailed => "conntrack clash at confirm (insert_failed + drop)".into(),
            DropReason::ConntrackChainTooLong => "conntrack chain too long (chaintoolong)".into(),
            DropReason::Filtered { table, hook } => format!("{table} {hook} DROP"),
            DropReason::Rejected { table, hook } => format!("{table} {hook} REJECT"),
            DropReason::NoRoute => "no route".into(),
            DropReason::RoutingLoop => "routing loop".into(),
            DropReason::LeftCluster => "left the modelled cluster".into(),
            DropReason::Proxy(d) => d.describe().into(),
            DropReason::ProxyRejected => "proxy: Service without endpoints (reject)".into(),
        }
    }

    /// Whether conntrack itself dropped the packet.
    #[must_use]
    pub fn is_conntrack(self) -> bool {
        matches!(
            self,
            DropReason::ConntrackTableFull
                | DropReason::ConntrackInsertFailed
                | DropReason::ConntrackChainTooLong
        )
    }
}

/// Where a packet enters a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry<'a> {
    /// Arrives on a device (PREROUTING first); `in_dev` is the name `-i` sees.
    Received {
        /// Input device name.
        in_dev: &'a str,
    },
    /// Generated by a local socket (OUTPUT first).
    LocalOut,
}

/// The conntrack side of a packet after the first half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtStep {
    /// No conntrack in this namespace, or NOTRACK.
    Untracked,
    /// Conntrack judged the packet invalid; it continues untracked.
    Invalid,
    /// A packet of a confirmed entry.
    Existing {
        /// The entry.
        id: ConnId,
        /// Direction of the packet.
        dir: Direction,
    },
    /// A new, still unconfirmed entry: [`NetnsPath::confirm`] must follow (or
    /// [`NetnsPath::abort`] if the packet is dropped elsewhere).
    New {
        /// The entry.
        id: ConnId,
    },
}

/// How the first half ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HalfVerdict {
    /// Routed out of the namespace; `out_dev` is the output device name index into the
    /// topology (use [`Topology::device`]).
    Forward {
        /// The routing decision taken.
        decision: crate::topology::Forwarding,
    },
    /// Delivered to a local socket (after INPUT).
    Local,
    /// Dropped.
    Dropped(DropReason),
}

/// The result of [`NetnsPath::first_half`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirstHalf {
    /// The packet as it leaves (or is delivered): NAT applied, mark set.
    pub pkt: Packet,
    /// Conntrack's view.
    pub ct: CtStep,
    /// How it ended.
    pub verdict: HalfVerdict,
    /// Rules the kernel evaluated in this namespace for this packet, all tables.
    pub rules_evaluated: u32,
    /// Whether this packet created a conntrack entry (it walked the nat table).
    pub new_entry: bool,
    /// Work of the node's proxy data plane for this packet (nftables, IPVS, eBPF; zero in
    /// iptables mode, whose rules are in `rules_evaluated`). Its `rules_evaluated` are also
    /// counted in [`FirstHalf::rules_evaluated`].
    pub proxy: LookupCost,
}

/// The result of [`NetnsPath::confirm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confirmed {
    /// Inserted (or nothing to insert); the packet continues.
    Pass {
        /// The entry the packet now belongs to (the winner after a clash merge).
        id: Option<ConnId>,
        /// Whether a clash was resolved on the way (`clash_resolve`).
        clash_resolved: bool,
    },
    /// Dropped at confirm.
    Dropped(DropReason),
}

/// Receives what happens in a namespace, for `k8s-netsim trace`.
pub trait PathObserver {
    /// Whether tables should be evaluated with the tracing interpreter.
    const TRACING: bool;
    /// A table ran.
    fn table(&mut self, hook: Hook, table: TableKind, ev: &Evaluation, trace: Option<&Trace>);
    /// Conntrack or routing did something worth saying.
    /// `text` is only formatted by observers that keep it: the simulation's [`Quiet`]
    /// observer costs nothing per packet.
    fn note(&mut self, hook: Hook, text: std::fmt::Arguments<'_>);
}

/// An observer that records nothing (the simulation's hot path).
#[derive(Clone, Copy, Debug, Default)]
pub struct Quiet;

impl PathObserver for Quiet {
    const TRACING: bool = false;
    fn table(&mut self, _: Hook, _: TableKind, _: &Evaluation, _: Option<&Trace>) {}
    fn note(&mut self, _: Hook, _: std::fmt::Arguments<'_>) {}
}

/// A proxy data plane that is not kube-proxy's iptables rules (those live in the
/// namespace's [`Ruleset`]).
#[derive(Debug)]
pub enum ProxyImpl {
    /// kube-proxy's nftables table (its base chains sit at the iptables nat/filter
    /// priorities): consulted for the first packet of every flow at nat PREROUTING.
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

/// The node's Service data plane, for namespaces whose Service translation is not done by
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

/// One network namespace as the datapath sees it: its ruleset, match state, local
/// addresses and conntrack namespace id.
#[derive(Debug)]
pub struct NetnsPath {
    /// The namespace in the topology.
    pub netns: NetnsId,
    /// Conntrack namespace id in the node's [`ConntrackTable`].
    pub ct_ns: u16,
    /// The iptables ruleset.
    pub ruleset: Ruleset,
    /// Mutable match state (`recent`, nfacct).
    pub eval: EvalState,
    /// Local addresses (for `addrtype`).
    pub local: LocalAddrs,
    /// The Service data plane when it is not (only) the iptables ruleset.
    pub proxy: Option<NodeProxy>,
    /// Per (table) whether it has any rule or non-ACCEPT policy; empty tables are
    /// skipped without cost, as the kernel never registers their hooks.
    active: [bool; 4],
}

fn table_index(t: TableKind) -> usize {
    match t {
        TableKind::Raw => 0,
        TableKind::Mangle => 1,
        TableKind::Nat => 2,
        TableKind::Filter => 3,
    }
}

fn ctstate_of(step: CtStep, ctinfo: Option<CtInfo>, dnat: bool, snat: bool) -> CtStateMatch {
    let base = match step {
        CtStep::Untracked => CtStateMatch::UNTRACKED,
        CtStep::Invalid => CtStateMatch::INVALID,
        CtStep::New { .. } => CtStateMatch::NEW,
        CtStep::Existing { .. } => match ctinfo {
            Some(CtInfo::New) => CtStateMatch::NEW,
            _ => CtStateMatch::ESTABLISHED,
        },
    };
    let mut s = base;
    if dnat {
        s = s.union(CtStateMatch::DNAT);
    }
    if snat {
        s = s.union(CtStateMatch::SNAT);
    }
    s
}

impl NetnsPath {
    /// A namespace with `ruleset`.
    #[must_use]
    pub fn new(netns: NetnsId, ct_ns: u16, ruleset: Ruleset, local: Vec<Ipv4Addr>) -> NetnsPath {
        let mut active = [false; 4];
        for t in TableKind::ALL {
            let table = ruleset.table(t);
            active[table_index(t)] = table.rule_count() > 0
                || t.hooks().iter().any(|h| {
                    table
                        .builtin(*h)
                        .and_then(|c| table.chain(c).policy())
                        .is_some_and(|p| p != crate::netfilter::Policy::Accept)
                });
        }
        NetnsPath {
            netns,
            ct_ns,
            ruleset,
            eval: EvalState::new(),
            local: LocalAddrs(local),
            proxy: None,
            active,
        }
    }

    /// Attaches the node's proxy data plane.
    #[must_use]
    pub fn with_proxy(mut self, proxy: NodeProxy) -> NetnsPath {
        self.proxy = Some(proxy);
        self
    }

    /// Rules in `table`.
    #[must_use]
    pub fn rule_count(&self, table: TableKind) -> usize {
        self.ruleset.table(table).rule_count()
    }

    #[allow(clippy::too_many_arguments)]
    fn run_table<O: PathObserver>(
        &mut self,
        table: TableKind,
        hook: Hook,
        pkt: &mut Packet,
        ct: CtStateMatch,
        in_dev: Option<&str>,
        out_dev: Option<&str>,
        rng: &mut SimRng,
        now: SimTime,
        obs: &mut O,
    ) -> Evaluation {
        let mut cx = EvalContext::new(ct, &self.local, now);
        cx.in_iface = in_dev;
        cx.out_iface = out_dev;
        let ev = if O::TRACING {
            let (ev, trace) = self
                .ruleset
                .evaluate_traced(table, hook, pkt, &cx, &mut self.eval, rng);
            obs.table(hook, table, &ev, Some(&trace));
            ev
        } else {
            self.ruleset.evaluate(table, hook, pkt, &cx, &mut self.eval, rng)
        };
        pkt.mark = ev.mark;
        ev
    }

    /// Everything before the confirm: raw, conntrack, mangle, nat, routing, filter and
    /// the POSTROUTING nat for a packet entering this namespace.
    ///
    /// `cpu` attributes conntrack counters; `rng` feeds `-m statistic` and NAT port
    /// offsets. A new entry is left unconfirmed: call [`NetnsPath::confirm`] when the
    /// packet's processing ends.
    #[allow(clippy::too_many_arguments, clippy::too_many_lines)]
    pub fn first_half<O: PathObserver>(
        &mut self,
        ct: &mut ConntrackTable,
        topo: &Topology,
        entry: Entry<'_>,
        mut pkt: Packet,
        cpu: u16,
        rng: &mut SimRng,
        now: SimTime,
        obs: &mut O,
    ) -> FirstHalf {
        let mut rules = 0u32;
        let (first_hook, in_dev) = match entry {
            Entry::Received { in_dev } => (Hook::Prerouting, Some(in_dev)),
            Entry::LocalOut => (Hook::Output, None),
        };
        let mut pcost = LookupCost::default();
        let dropped = |pkt, ct, rules, reason, proxy| FirstHalf {
            pkt,
            ct,
            verdict: HalfVerdict::Dropped(reason),
            rules_evaluated: rules,
            new_entry: false,
            proxy,
        };

        // Cilium's bpf_lxc / bpf_host CT (`ct_lookup4`, `ct_create4`) runs at tc, before
        // netfilter: every TCP/UDP packet the node handles touches the BPF CT map.
        if let Some(NodeProxy {
            imp: ProxyImpl::Ebpf(ebpf),
            ..
        }) = &mut self.proxy
            && first_hook == Hook::Prerouting
            && matches!(pkt.tuple.proto, Proto::Tcp | Proto::Udp)
        {
            // Per-packet LB at tc (`lb4_lookup_service` in bpf_lxc) for a packet still
            // addressed to a frontend: traffic socket LB did not translate (the simulation
            // translates TCP at connect(); UDP DNS arrives here). The choice is a function
            // of the tuple, as Cilium keeps it in the flow's CT entry (`backend_id`).
            if ebpf.is_frontend(&pkt.tuple) {
                let mut flow_rng = SimRng::from_seed(tuple_seed(&pkt.tuple));
                let fp = ebpf.socket_connect(pkt.tuple, &mut flow_rng);
                pcost += fp.cost;
                match (fp.verdict, fp.backend) {
                    (ProxyVerdict::Translate, Some(b)) => {
                        obs.note(
                            first_hook,
                            format_args!(
                                "bpf: service {}:{} -> backend {b} (no nf_conntrack NAT)",
                                pkt.tuple.dst, pkt.tuple.dport
                            ),
                        );
                        pkt.tuple.dst = *b.ip();
                        pkt.tuple.dport = b.port();
                    }
                    (ProxyVerdict::Reject, _) => {
                        return dropped(pkt, CtStep::Untracked, 0, DropReason::ProxyRejected, pcost);
                    }
                    _ => {}
                }
            }
            let (key, dir) = ebpf.ct_key(pkt.tuple, now);
            let c = ebpf.packet(key, dir, pkt.flags, now);
            pcost += c.cost;
            if c.insert_failed {
                obs.note(
                    first_hook,
                    format_args!("bpf: CT: Map insertion failed (drop reason 155)"),
                );
                return dropped(
                    pkt,
                    CtStep::Untracked,
                    0,
                    DropReason::Proxy(ProxyDrop::CtMapInsertFailed),
                    pcost,
                );
            }
        }

        let mut step = CtStep::Untracked;
        // Runs one table, counts its rules and, on a DROP or REJECT verdict, frees the
        // packet's unconfirmed entry and ends the walk: the same at every hook.
        macro_rules! table {
            ($table:expr, $hook:expr, $cts:expr, $in:expr, $out:expr) => {{
                let ev = self.run_table($table, $hook, &mut pkt, $cts, $in, $out, rng, now, obs);
                rules += ev.rules_evaluated;
                if let Some(r) = verdict_drop(ev.verdict, $table, $hook) {
                    self.abort_step(ct, step);
                    return dropped(pkt, step, rules, r, pcost);
                }
                ev
            }};
        }

        // raw: NOTRACK decides whether conntrack sees the packet.
        let mut notrack = false;
        if self.active[0] {
            let ev = table!(TableKind::Raw, first_hook, CtStateMatch::EMPTY, in_dev, None);
            notrack = ev.notrack;
        }

        // conntrack in (-200).
        let mut ctinfo = None;
        let (mut dnat, mut snat) = (false, false);
        if notrack {
            obs.note(first_hook, format_args!("raw NOTRACK: packet is untracked"));
        } else {
            match ct.lookup_or_alloc(self.ct_ns, cpu, &pkt, now) {
                Ok(CtLookup::Existing {
                    id,
                    dir,
                    ctinfo: info,
                }) => {
                    let verdict = ct
                        .packet(id, dir, cpu, &pkt, now)
                        .unwrap_or(TrackVerdict::Invalid);
                    if verdict == TrackVerdict::Invalid {
                        step = CtStep::Invalid;
                        obs.note(
                            first_hook,
                            format_args!("conntrack: {id} judged the packet INVALID"),
                        );
                    } else {
                        step = CtStep::Existing { id, dir };
                        ctinfo = Some(info);
                        if let Some(c) = ct.conn(id) {
                            dnat = c.dst_nat;
                            snat = c.src_nat;
                            // IPVS (LOCAL_IN, `ip_vs_in` / `ip_vs_out`): a packet of a
                            // connection it translated finds it in its table and restarts
                            // its timer.
                            if let Some(NodeProxy {
                                imp: ProxyImpl::Ipvs(ipvs),
                                ..
                            }) = &mut self.proxy
                                && c.dst_nat
                            {
                                pcost += ipvs.packet(c.original, dir, pkt.flags, now).cost;
                            }
                            // nf_nat_packet: the DST manip of the stored binding applies here.
                            let t = c.translated(dir);
                            pkt.tuple.dst = t.dst;
                            pkt.tuple.dport = t.dport;
                            obs.note(
                                first_hook,
                                format_args!(
                                    "conntrack: existing entry {id} ({dir:?}, {}); stored NAT applied, nat table skipped",
                                    c.tcp_state.map_or("udp", |s| s.as_str())
                                ),
                            );
                        }
                    }
                }
                Ok(CtLookup::New { id }) => {
                    step = CtStep::New { id };
                    obs.note(
                        first_hook,
                        format_args!("conntrack: new unconfirmed entry {id} (counted from now)"),
                    );
                }
                Ok(CtLookup::Dropped(d)) => {
                    obs.note(first_hook, format_args!("conntrack: packet dropped ({d:?})"));
                    return dropped(pkt, CtStep::Untracked, rules, ct_drop_reason(d), pcost);
                }
                Ok(CtLookup::Invalid) => step = CtStep::Invalid,
                Ok(CtLookup::Untracked) | Err(_) => {}
            }
        }
        let new_entry = matches!(step, CtStep::New { .. });
        let mut cts = ctstate_of(step, ctinfo, dnat, snat);

        // mangle at the first hook.
        if self.active[1] {
            table!(TableKind::Mangle, first_hook, cts, in_dev, None);
        }

        // nat (DNAT) at the first hook: only for a packet creating an entry.
        let mut proxy_masq = false;
        if let CtStep::New { id } = step {
            let mut nat = DstNat::Null;
            if self.active[2] {
                let ev = table!(TableKind::Nat, first_hook, cts, in_dev, None);
                if let Some(NatAction::Dnat { addr, port }) = ev.nat {
                    nat = DstNat::To { addr, port };
                }
            }
            // nftables (its nat-prerouting / nat-output chains at priority dstnat, -100) or
            // IPVS (ip_vs_in at PREROUTING/LOCAL_IN, ip_vs_local_request4 at LOCAL_OUT)
            // decide the first packet of a flow, received or locally generated.
            if nat == DstNat::Null
                && let Some(np) = &mut self.proxy
            {
                let fp = match &mut np.imp {
                    ProxyImpl::Nftables(p) => Some(p.first_packet(pkt.tuple, &mut np.rng, now)),
                    ProxyImpl::Ipvs(p) => {
                        // ip_vs_local_request4 (LOCAL_OUT) for the host's own flows.
                        let origin = if first_hook == Hook::Output {
                            FlowOrigin::Host
                        } else {
                            FlowOrigin::Pod
                        };
                        Some(p.first_packet_with(origin, pkt.tuple, true, &mut np.rng, now))
                    }
                    ProxyImpl::Ebpf(_) => None,
                };
                if let Some(fp) = fp {
                    rules += fp.cost.rules_evaluated;
                    pcost += fp.cost;
                    let drop = match fp.verdict {
                        ProxyVerdict::Translate => {
                            if let Some(b) = fp.backend {
                                nat = DstNat::To {
                                    addr: *b.ip(),
                                    port: Some(b.port()),
                                };
                            }
                            proxy_masq = fp.masquerade;
                            None
                        }
                        ProxyVerdict::NotService => None,
                        ProxyVerdict::Reject => Some(DropReason::ProxyRejected),
                        ProxyVerdict::Drop(d) => Some(DropReason::Proxy(d)),
                    };
                    if let Some(r) = drop {
                        obs.note(first_hook, format_args!("proxy: {}", r.describe()));
                        self.abort_step(ct, step);
                        return dropped(pkt, step, rules, r, pcost);
                    }
                }
            }
            if let Ok(t) = ct.apply_dst_nat(id, cpu, nat, now) {
                if t.dst != pkt.tuple.dst || t.dport != pkt.tuple.dport {
                    dnat = true;
                    obs.note(
                        first_hook,
                        format_args!(
                            "nat: DNAT {}:{} -> {}:{}",
                            pkt.tuple.dst, pkt.tuple.dport, t.dst, t.dport
                        ),
                    );
                }
                pkt.tuple = t;
            }
            cts = ctstate_of(step, ctinfo, dnat, snat);
        }

        // Routing decision (after DNAT) — for locally generated packets too.
        let decision = topo.route(self.netns, pkt.tuple.dst);
        let local_in = matches!(decision, RouteDecision::Local { .. }) && first_hook == Hook::Prerouting;
        let (out_name, fwd) = match decision {
            RouteDecision::Local { .. } => (None, None),
            RouteDecision::Forward(f) => (topo.device(f.out_dev).map(crate::topology::Device::name), Some(f)),
            RouteDecision::Unreachable(u) => {
                obs.note(
                    first_hook,
                    format_args!("routing: {} unreachable ({u:?})", pkt.tuple.dst),
                );
                self.abort_step(ct, step);
                return dropped(pkt, step, rules, DropReason::NoRoute, pcost);
            }
        };
        if let Some(name) = out_name {
            obs.note(first_hook, format_args!("routing: {} via {name}", pkt.tuple.dst));
        }

        if local_in {
            // INPUT: mangle, filter, nat (SNAT at +100), then confirm at INPUT.
            for table in [TableKind::Mangle, TableKind::Filter] {
                if self.active[table_index(table)] {
                    table!(table, Hook::Input, cts, in_dev, None);
                }
            }
            if let CtStep::New { id } = step {
                if self.active[2] {
                    table!(TableKind::Nat, Hook::Input, cts, in_dev, None);
                }
                if let Ok(t) = ct.apply_src_nat(id, cpu, SrcNat::Null, rng, now) {
                    pkt.tuple = t;
                }
            }
            return FirstHalf {
                pkt,
                ct: step,
                verdict: HalfVerdict::Local,
                rules_evaluated: rules,
                new_entry,
                proxy: pcost,
            };
        }

        // FORWARD (received) or nothing more at OUTPUT (locally generated).
        let mid_hook = if first_hook == Hook::Prerouting {
            Hook::Forward
        } else {
            Hook::Output
        };
        let mid_tables: &[TableKind] = if first_hook == Hook::Prerouting {
            &[TableKind::Mangle, TableKind::Filter]
        } else {
            &[TableKind::Filter]
        };
        for &table in mid_tables {
            if self.active[table_index(table)] {
                table!(table, mid_hook, cts, in_dev, out_name);
            }
        }

        // POSTROUTING: mangle, nat (SNAT/MASQUERADE for new entries; stored SRC manip
        // for the rest).
        if self.active[1] {
            table!(TableKind::Mangle, Hook::Postrouting, cts, None, out_name);
        }
        match step {
            CtStep::New { id } => {
                let mut nat = SrcNat::Null;
                if self.active[2] {
                    let ev = table!(TableKind::Nat, Hook::Postrouting, cts, None, out_name);
                    let out_addr = fwd.and_then(|f| f.src).unwrap_or(pkt.tuple.src);
                    nat = match ev.nat {
                        Some(NatAction::Masquerade {
                            ports,
                            random,
                            random_fully,
                        }) => SrcNat::Masquerade {
                            addr: out_addr,
                            ports: ports.map(|p| (p.first, p.last)),
                            random,
                            random_fully,
                        },
                        Some(NatAction::Snat { range }) => SrcNat::Snat(CtNatRange {
                            min_addr: range.min_addr,
                            max_addr: range.max_addr,
                            ports: range.ports.map(|p| (p.first, p.last)),
                            random: range.random,
                            random_fully: range.random_fully,
                            persistent: range.persistent,
                        }),
                        _ => SrcNat::Null,
                    };
                }
                if nat == SrcNat::Null && proxy_masq {
                    // The proxy's masquerade (nftables `masquerading` chain, IPVS
                    // KUBE-POSTROUTING on the mark): to the output device's address.
                    let random_fully = self.proxy.as_ref().is_some_and(|p| p.random_fully);
                    nat = SrcNat::Masquerade {
                        addr: fwd.and_then(|f| f.src).unwrap_or(pkt.tuple.src),
                        ports: None,
                        random: false,
                        random_fully,
                    };
                }
                if let Ok(t) = ct.apply_src_nat(id, cpu, nat, rng, now) {
                    if t.src != pkt.tuple.src || t.sport != pkt.tuple.sport {
                        obs.note(
                            Hook::Postrouting,
                            format_args!(
                                "nat: SNAT {}:{} -> {}:{}",
                                pkt.tuple.src, pkt.tuple.sport, t.src, t.sport
                            ),
                        );
                    }
                    pkt.tuple = t;
                }
            }
            CtStep::Existing { id, dir } => {
                if let Some(c) = ct.conn(id) {
                    let t = c.translated(dir);
                    pkt.tuple.src = t.src;
                    pkt.tuple.sport = t.sport;
                }
            }
            CtStep::Untracked | CtStep::Invalid => {}
        }
        match fwd {
            Some(decision) => FirstHalf {
                pkt,
                ct: step,
                verdict: HalfVerdict::Forward { decision },
                rules_evaluated: rules,
                new_entry,
                proxy: pcost,
            },
            None => FirstHalf {
                pkt,
                ct: step,
                verdict: HalfVerdict::Local,
                rules_evaluated: rules,
                new_entry,
                proxy: pcost,
            },
        }
    }

    /// Confirms a new entry left by [`NetnsPath::first_half`] (`nf_confirm` at the last
    /// hook). For packets that created no entry this is a no-op that passes.
    pub fn confirm<O: PathObserver>(
        &mut self,
        ct: &mut ConntrackTable,
        half: &FirstHalf,
        cpu: u16,
        now: SimTime,
        obs: &mut O,
    ) -> Confirmed {
        let hook = if matches!(half.verdict, HalfVerdict::Local) {
            Hook::Input
        } else {
            Hook::Postrouting
        };
        match half.ct {
            CtStep::New { id } => match ct.confirm(id, cpu, now) {
                Ok(ConfirmOutcome::Inserted(id)) => {
                    obs.note(
                        hook,
                        format_args!("conntrack: confirmed {id} (inserted under ORIGINAL and REPLY tuples)"),
                    );
                    Confirmed::Pass {
                        id: Some(id),
                        clash_resolved: false,
                    }
                }
                Ok(ConfirmOutcome::ClashMerged { winner }) => {
                    obs.note(
                        hook,
                        format_args!("conntrack: clash resolved by merging into {winner}"),
                    );
                    Confirmed::Pass {
                        id: Some(winner),
                        clash_resolved: true,
                    }
                }
                Ok(ConfirmOutcome::ClashReplyOnly(id)) => {
                    obs.note(
                        hook,
                        format_args!("conntrack: clash resolved, {id} inserted reply-only (1 s)"),
                    );
                    Confirmed::Pass {
                        id: Some(id),
                        clash_resolved: true,
                    }
                }
                Ok(ConfirmOutcome::Dropped(d)) => {
                    obs.note(
                        hook,
                        format_args!("conntrack: confirm failed ({d:?}), packet dropped"),
                    );
                    Confirmed::Dropped(ct_drop_reason(d))
                }
                Err(_) => Confirmed::Pass {
                    id: None,
                    clash_resolved: false,
                },
            },
            CtStep::Existing { id, .. } => Confirmed::Pass {
                id: Some(id),
                clash_resolved: false,
            },
            CtStep::Untracked | CtStep::Invalid => Confirmed::Pass {
                id: None,
                clash_resolved: false,
            },
        }
    }

    /// Frees the unconfirmed entry of a packet dropped before its confirm.
    pub fn abort(&mut self, ct: &mut ConntrackTable, half: &FirstHalf) {
        self.abort_step(ct, half.ct);
    }

    fn abort_step(&mut self, ct: &mut ConntrackTable, step: CtStep) {
        if let CtStep::New { id } = step {
            let _ = ct.abort(id);
        }
    }
}

/// A seed that is a function of the tuple alone (splitmix64 of its fields).
fn tuple_seed(t: &crate::packet::Tuple) -> u64 {
    let mut x = (u64::from(u32::from(t.src)) << 32 | u64::from(u32::from(t.dst)))
        ^ (u64::from(t.sport) << 48 | u64::from(t.dport) << 32 | u64::from(t.proto.number()));
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn verdict_drop(v: Verdict, table: TableKind, hook: Hook) -> Option<DropReason> {
    match v {
        Verdict::Accept => None,
        Verdict::Drop => Some(DropReason::Filtered { table, hook }),
        Verdict::Reject => Some(DropReason::Rejected { table, hook }),
    }
}

fn ct_drop_reason(d: CtDrop) -> DropReason {
    match d {
        CtDrop::TableFull => DropReason::ConntrackTableFull,
        CtDrop::InsertFailed => DropReason::ConntrackInsertFailed,
        CtDrop::ChainTooLong => DropReason::ConntrackChainTooLong,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::{CtConfig, NetnsConfig};
    use crate::kernel::{KernelProfile, Sysctls};
    use crate::packet::{Cidr, Proto, TcpFlags, Tuple};
    use crate::topology::{CniFlavour, TopologyBuilder};
    use std::net::Ipv4Addr;

    /// Forwards a SYN between two pods of one node through a host namespace whose
    /// ruleset is `rules` (iptables-save text); returns the first half.
    fn forward_syn(rules: &str) -> (FirstHalf, ConntrackTable) {
        let mut tb = TopologyBuilder::new(CniFlavour::FlannelVxlan);
        let node = tb.add_node(
            "n",
            Ipv4Addr::new(192, 168, 0, 10),
            "10.244.1.0/24".parse::<Cidr>().unwrap(),
        );
        let a = tb.add_pod(node, "a", Ipv4Addr::new(10, 244, 1, 2));
        tb.add_pod(node, "b", Ipv4Addr::new(10, 244, 1, 3));
        let topo = tb.build().unwrap();
        let host = topo.host_netns(topo.node_of(a).unwrap()).unwrap();
        let sys = Sysctls::default();
        let mut ct = ConntrackTable::new(
            CtConfig::new(&sys, KernelProfile::LINUX_6_18, 1),
            SimRng::from_seed(1),
        )
        .unwrap();
        ct.set_netns(0, NetnsConfig::enabled(&sys).as_init());
        let mut path = NetnsPath::new(
            host,
            0,
            crate::netfilter::import::parse(rules).unwrap(),
            topo.local_addrs(host).collect(),
        );
        let t = Tuple::new(
            Proto::Tcp,
            Ipv4Addr::new(10, 244, 1, 2),
            40_000,
            Ipv4Addr::new(10, 244, 1, 3),
            80,
        );
        let half = path.first_half(
            &mut ct,
            &topo,
            Entry::Received { in_dev: "cni0" },
            Packet::new(t, TcpFlags::SYN),
            0,
            &mut SimRng::from_seed(2),
            SimTime::ZERO,
            &mut Quiet,
        );
        (half, ct)
    }

    #[test]
    fn a_new_forwarded_flow_is_allocated_and_left_unconfirmed() {
        let (half, ct) = forward_syn("*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n");
        assert!(half.new_entry);
        assert!(matches!(half.verdict, HalfVerdict::Forward { .. }));
        assert!(matches!(half.ct, CtStep::New { .. }));
        assert_eq!(
            ct.count(0),
            1,
            "unconfirmed entries count (kernel-semantics.md §9 item 1)"
        );
    }

    /// A DROP at any hook ends the packet and frees its unconfirmed entry, POSTROUTING
    /// included (mangle and nat there are consulted like every other table).
    #[test]
    fn drops_in_postrouting_tables_end_the_packet_and_free_the_entry() {
        for rules in [
            "*mangle\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j DROP\nCOMMIT\n",
            "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j DROP\nCOMMIT\n",
            "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j DROP\nCOMMIT\n",
        ] {
            let (half, ct) = forward_syn(rules);
            assert!(
                matches!(half.verdict, HalfVerdict::Dropped(DropReason::Filtered { .. })),
                "{rules}: {half:?}"
            );
            assert_eq!(
                ct.count(0),
                0,
                "{rules}: the unconfirmed entry is freed with the packet"
            );
            assert_eq!(half.rules_evaluated, 1);
        }
    }
}
