//! The first half of a packet's way through one namespace, one step per hook:
//! tc ingress, raw, conntrack in, mangle, nat (DNAT) at the first hook, the routing
//! decision, then INPUT (local delivery) or FORWARD/OUTPUT, and POSTROUTING up to (not
//! including) the confirm.
//!
//! A step either lets the packet go on or stops it ([`Stop`]); a stop frees the
//! packet's unconfirmed conntrack entry, as the kernel frees it with the skb.

use super::{CtStep, DropReason, Entry, FirstHalf, HalfVerdict, NetnsPath, PathObserver, table_index};
use crate::conntrack::{
    ConntrackTable, CtDrop, CtInfo, CtLookup, DstNat, NatRange as CtNatRange, SrcNat, TrackVerdict,
};
use crate::netfilter::{CtStateMatch, EvalContext, Evaluation, Hook, NatAction, TableKind, Verdict};
use crate::packet::{Direction, Packet};
use crate::rng::SimRng;
use crate::service::node::NodeProxy;
use crate::service::proxy::{FlowOrigin, LookupCost, ModeNote, ProxyVerdict};
use crate::time::SimTime;
use crate::topology::{Forwarding, RouteDecision, Topology};

/// Why the first half stopped early.
pub(super) struct Stop(DropReason);

/// One packet's first half in progress.
pub(super) struct HalfWalk<'a, O> {
    pub(super) path: &'a mut NetnsPath,
    pub(super) ct: &'a mut ConntrackTable,
    pub(super) topo: &'a Topology,
    pub(super) pkt: Packet,
    pub(super) cpu: u16,
    pub(super) rng: &'a mut SimRng,
    pub(super) now: SimTime,
    pub(super) obs: &'a mut O,
    /// The hook the packet enters at: PREROUTING (received) or OUTPUT (local).
    hook: Hook,
    in_dev: Option<&'a str>,
    rules: u32,
    proxy: LookupCost,
    step: CtStep,
    ctinfo: Option<CtInfo>,
    dnat: bool,
    snat: bool,
    /// The node's data plane asked for masquerade at POSTROUTING.
    proxy_masq: bool,
}

/// Where the routing decision sends the packet.
enum Routed {
    /// To a local socket (INPUT follows PREROUTING).
    LocalIn,
    /// Generated here for a local address: nothing more runs before the confirm.
    LocalOut,
    /// Out of a device.
    Out(Forwarding),
}

impl<'a, O: PathObserver> HalfWalk<'a, O> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        path: &'a mut NetnsPath,
        ct: &'a mut ConntrackTable,
        topo: &'a Topology,
        entry: Entry<'a>,
        pkt: Packet,
        cpu: u16,
        rng: &'a mut SimRng,
        now: SimTime,
        obs: &'a mut O,
    ) -> Self {
        let (hook, in_dev) = match entry {
            Entry::Received { in_dev } => (Hook::Prerouting, Some(in_dev)),
            Entry::LocalOut => (Hook::Output, None),
        };
        HalfWalk {
            path,
            ct,
            topo,
            pkt,
            cpu,
            rng,
            now,
            obs,
            hook,
            in_dev,
            rules: 0,
            proxy: LookupCost::default(),
            step: CtStep::Untracked,
            ctinfo: None,
            dnat: false,
            snat: false,
            proxy_masq: false,
        }
    }

    /// Runs every step; the result says how the packet left (or that it stopped).
    pub(super) fn run(mut self) -> FirstHalf {
        match self.steps() {
            Ok(verdict) => self.finish(verdict),
            Err(Stop(reason)) => {
                if let CtStep::New { id } = self.step {
                    let aborted = self.ct.abort(id);
                    debug_assert!(aborted.is_ok(), "invariant: the packet's own unconfirmed entry");
                }
                self.finish(HalfVerdict::Dropped(reason))
            }
        }
    }

    fn finish(self, verdict: HalfVerdict) -> FirstHalf {
        let dropped = matches!(verdict, HalfVerdict::Dropped(_));
        FirstHalf {
            pkt: self.pkt,
            ct: self.step,
            verdict,
            rules_evaluated: self.rules,
            new_entry: !dropped && matches!(self.step, CtStep::New { .. }),
            proxy: self.proxy,
        }
    }

    fn steps(&mut self) -> Result<HalfVerdict, Stop> {
        if self.hook == Hook::Prerouting {
            self.tc_ingress()?;
        }
        let notrack = self.raw()?;
        self.conntrack_in(notrack)?;
        if self.path.active[table_index(TableKind::Mangle)] {
            self.table(TableKind::Mangle, self.hook, None)?;
        }
        self.dnat()?;
        match self.route()? {
            Routed::LocalIn => {
                self.input()?;
                Ok(HalfVerdict::Local)
            }
            Routed::LocalOut => {
                self.filter_output(None)?;
                self.postrouting(None)?;
                Ok(HalfVerdict::Local)
            }
            Routed::Out(decision) => {
                let out = self
                    .topo
                    .device(decision.out_dev)
                    .map(crate::topology::Device::name);
                if self.hook == Hook::Prerouting {
                    self.forward(out)?;
                } else {
                    self.filter_output(out)?;
                }
                self.postrouting(Some(decision))?;
                Ok(HalfVerdict::Forward { decision })
            }
        }
    }

    /// The conntrack state the ruleset's `-m conntrack` matches see now.
    fn ctstate(&self) -> CtStateMatch {
        let base = match self.step {
            CtStep::Untracked => CtStateMatch::UNTRACKED,
            CtStep::Invalid => CtStateMatch::INVALID,
            CtStep::New { .. } => CtStateMatch::NEW,
            CtStep::Existing { .. } => match self.ctinfo {
                Some(CtInfo::New) => CtStateMatch::NEW,
                _ => CtStateMatch::ESTABLISHED,
            },
        };
        let mut s = base;
        if self.dnat {
            s = s.union(CtStateMatch::DNAT);
        }
        if self.snat {
            s = s.union(CtStateMatch::SNAT);
        }
        s
    }

    /// Runs one table at `hook` and counts its rules; a DROP or REJECT verdict stops the
    /// packet.
    fn table(&mut self, table: TableKind, hook: Hook, out_dev: Option<&str>) -> Result<Evaluation, Stop> {
        let cts = if table == TableKind::Raw {
            CtStateMatch::EMPTY
        } else {
            self.ctstate()
        };
        let in_dev = if hook == Hook::Postrouting {
            None
        } else {
            self.in_dev
        };
        let mut cx = EvalContext::new(cts, &self.path.local, self.now);
        cx.in_iface = in_dev;
        cx.out_iface = out_dev;
        let ev = if O::TRACING {
            let (ev, trace) =
                self.path
                    .ruleset
                    .evaluate_traced(table, hook, &self.pkt, &cx, &mut self.path.eval, self.rng);
            self.obs.table(hook, table, &ev, Some(&trace));
            ev
        } else {
            self.path
                .ruleset
                .evaluate(table, hook, &self.pkt, &cx, &mut self.path.eval, self.rng)
        };
        self.pkt.mark = ev.mark;
        self.rules += ev.rules_evaluated;
        match ev.verdict {
            Verdict::Accept => Ok(ev),
            Verdict::Drop => Err(Stop(DropReason::Filtered { table, hook })),
            Verdict::Reject => Err(Stop(DropReason::Rejected { table, hook })),
        }
    }

    /// tc ingress: the node's data plane sees the received packet before netfilter.
    fn tc_ingress(&mut self) -> Result<(), Stop> {
        let Some(np) = self.path.proxy.as_mut() else {
            return Ok(());
        };
        let ing = np.imp.hooks().at_ingress(&mut self.pkt, self.now);
        self.proxy += ing.cost;
        if let Some((from, to)) = ing.translated {
            self.obs.note(
                self.hook,
                format_args!("bpf: service {from} -> backend {to} (no nf_conntrack NAT)"),
            );
        }
        match ing.stop {
            None => Ok(()),
            Some(v) => {
                let reason = proxy_drop_reason(v);
                if let DropReason::Proxy(d) = reason {
                    self.obs
                        .note(self.hook, format_args!("bpf: {} (drop reason 155)", d.describe()));
                }
                Err(Stop(reason))
            }
        }
    }

    /// raw: NOTRACK decides whether conntrack sees the packet.
    fn raw(&mut self) -> Result<bool, Stop> {
        if !self.path.active[table_index(TableKind::Raw)] {
            return Ok(false);
        }
        Ok(self.table(TableKind::Raw, self.hook, None)?.notrack)
    }

    /// conntrack in (priority -200): the packet's entry, a new unconfirmed one, or none.
    fn conntrack_in(&mut self, notrack: bool) -> Result<(), Stop> {
        if notrack {
            self.obs
                .note(self.hook, format_args!("raw NOTRACK: packet is untracked"));
            return Ok(());
        }
        let looked = self
            .ct
            .lookup_or_alloc(self.path.ct_ns, self.cpu, &self.pkt, self.now);
        let looked = match looked {
            Ok(l) => l,
            Err(e) => {
                debug_assert!(false, "invariant: the datapath's CPU exists ({e})");
                return Ok(());
            }
        };
        match looked {
            CtLookup::Existing { id, dir, ctinfo } => self.existing(id, dir, ctinfo),
            CtLookup::New { id } => {
                self.step = CtStep::New { id };
                self.obs.note(
                    self.hook,
                    format_args!("conntrack: new unconfirmed entry {id} (counted from now)"),
                );
            }
            CtLookup::Dropped(d) => {
                self.obs
                    .note(self.hook, format_args!("conntrack: packet dropped ({d:?})"));
                return Err(Stop(ct_drop_reason(d)));
            }
            CtLookup::Invalid => self.step = CtStep::Invalid,
            CtLookup::Untracked => {}
        }
        Ok(())
    }

    /// A packet of an existing entry: the tracker judges it, the stored DNAT applies.
    fn existing(&mut self, id: crate::conntrack::ConnId, dir: Direction, info: CtInfo) {
        let verdict = self
            .ct
            .packet(id, dir, self.cpu, &self.pkt, self.now)
            .unwrap_or(TrackVerdict::Invalid);
        if verdict == TrackVerdict::Invalid {
            self.step = CtStep::Invalid;
            self.obs.note(
                self.hook,
                format_args!("conntrack: {id} judged the packet INVALID"),
            );
            return;
        }
        self.step = CtStep::Existing { id, dir };
        self.ctinfo = Some(info);
        let Some(c) = self.ct.conn(id) else { return };
        self.dnat = c.dst_nat;
        self.snat = c.src_nat;
        if c.dst_nat
            && let Some(np) = self.path.proxy.as_mut()
        {
            self.proxy += np
                .imp
                .hooks()
                .translated_packet(c.original, dir, self.pkt.flags, self.now);
        }
        // nf_nat_packet: the DST manip of the stored binding applies here.
        let t = c.translated(dir);
        self.pkt.tuple.dst = t.dst;
        self.pkt.tuple.dport = t.dport;
        self.obs.note(
            self.hook,
            format_args!(
                "conntrack: existing entry {id} ({dir:?}, {}); stored NAT applied, nat table skipped",
                c.tcp_state.map_or("udp", |s| s.as_str())
            ),
        );
    }

    /// nat (DNAT) at the first hook, for a packet creating an entry: the ruleset's nat
    /// table, then the node's data plane (nftables `nat-prerouting`/`nat-output`, IPVS),
    /// both at dstnat priority.
    fn dnat(&mut self) -> Result<(), Stop> {
        let CtStep::New { id } = self.step else {
            return Ok(());
        };
        let mut nat = DstNat::Null;
        if self.path.active[table_index(TableKind::Nat)] {
            let ev = self.table(TableKind::Nat, self.hook, None)?;
            if let Some(NatAction::Dnat { addr, port }) = ev.nat {
                nat = DstNat::To { addr, port };
            }
        }
        if nat == DstNat::Null
            && let Some(np) = self.path.proxy.as_mut()
        {
            let origin = if self.hook == Hook::Output {
                FlowOrigin::Host
            } else {
                FlowOrigin::Pod
            };
            let NodeProxy { imp, rng, .. } = np;
            if let Some(fp) = imp.hooks().first_packet_at(origin, self.pkt.tuple, rng, self.now) {
                if let ModeNote::Nftables { base_chains } = fp.note {
                    self.obs.note(
                        self.hook,
                        format_args!("nftables: base chains run: {base_chains}"),
                    );
                }
                self.rules += fp.cost.rules_evaluated;
                self.proxy += fp.cost;
                match fp.verdict {
                    ProxyVerdict::Translate => {
                        if let Some(b) = fp.backend {
                            nat = DstNat::To {
                                addr: *b.ip(),
                                port: Some(b.port()),
                            };
                        }
                        self.proxy_masq = fp.masquerade;
                    }
                    ProxyVerdict::NotService => {}
                    v @ (ProxyVerdict::Reject | ProxyVerdict::Drop(_)) => {
                        let r = proxy_drop_reason(v);
                        self.obs.note(self.hook, format_args!("proxy: {}", r.describe()));
                        return Err(Stop(r));
                    }
                }
            }
        }
        match self.ct.apply_dst_nat(id, self.cpu, nat, self.now) {
            Ok(t) => {
                if t.dst != self.pkt.tuple.dst || t.dport != self.pkt.tuple.dport {
                    self.dnat = true;
                    self.obs.note(
                        self.hook,
                        format_args!(
                            "nat: DNAT {}:{} -> {}:{}",
                            self.pkt.tuple.dst, self.pkt.tuple.dport, t.dst, t.dport
                        ),
                    );
                }
                self.pkt.tuple = t;
            }
            Err(e) => debug_assert!(false, "invariant: the packet's own unconfirmed entry ({e})"),
        }
        Ok(())
    }

    /// The routing decision on the (possibly DNATed) destination.
    fn route(&mut self) -> Result<Routed, Stop> {
        match self.topo.route(self.path.netns, self.pkt.tuple.dst) {
            RouteDecision::Local { .. } if self.hook == Hook::Prerouting => Ok(Routed::LocalIn),
            RouteDecision::Local { .. } => Ok(Routed::LocalOut),
            RouteDecision::Forward(f) => {
                if let Some(name) = self.topo.device(f.out_dev).map(crate::topology::Device::name) {
                    self.obs.note(
                        self.hook,
                        format_args!("routing: {} via {name}", self.pkt.tuple.dst),
                    );
                }
                Ok(Routed::Out(f))
            }
            RouteDecision::Unreachable(u) => {
                self.obs.note(
                    self.hook,
                    format_args!("routing: {} unreachable ({u:?})", self.pkt.tuple.dst),
                );
                Err(Stop(DropReason::NoRoute))
            }
        }
    }

    /// INPUT: mangle, filter, then for a new entry nat (SNAT at +100) and its null SRC
    /// binding; the confirm follows at INPUT.
    fn input(&mut self) -> Result<(), Stop> {
        for table in [TableKind::Mangle, TableKind::Filter] {
            if self.path.active[table_index(table)] {
                self.table(table, Hook::Input, None)?;
            }
        }
        if let CtStep::New { id } = self.step {
            if self.path.active[table_index(TableKind::Nat)] {
                self.table(TableKind::Nat, Hook::Input, None)?;
            }
            match self
                .ct
                .apply_src_nat(id, self.cpu, SrcNat::Null, self.rng, self.now)
            {
                Ok(t) => self.pkt.tuple = t,
                Err(e) => debug_assert!(false, "invariant: the packet's own unconfirmed entry ({e})"),
            }
        }
        Ok(())
    }

    /// FORWARD: mangle and filter of a routed packet.
    fn forward(&mut self, out_dev: Option<&str>) -> Result<(), Stop> {
        for table in [TableKind::Mangle, TableKind::Filter] {
            if self.path.active[table_index(table)] {
                self.table(table, Hook::Forward, out_dev)?;
            }
        }
        Ok(())
    }

    /// OUTPUT's filter table for a locally generated packet.
    fn filter_output(&mut self, out_dev: Option<&str>) -> Result<(), Stop> {
        if self.path.active[table_index(TableKind::Filter)] {
            self.table(TableKind::Filter, Hook::Output, out_dev)?;
        }
        Ok(())
    }

    /// POSTROUTING: mangle, then nat for a new entry (SNAT/MASQUERADE or the data
    /// plane's masquerade, else the null binding); later packets follow the stored SRC
    /// manip.
    fn postrouting(&mut self, decision: Option<Forwarding>) -> Result<(), Stop> {
        let out_dev = decision
            .and_then(|f| self.topo.device(f.out_dev))
            .map(crate::topology::Device::name);
        if self.path.active[table_index(TableKind::Mangle)] {
            self.table(TableKind::Mangle, Hook::Postrouting, out_dev)?;
        }
        match self.step {
            CtStep::New { id } => {
                let out_addr = decision.and_then(|f| f.src).unwrap_or(self.pkt.tuple.src);
                let mut nat = SrcNat::Null;
                if self.path.active[table_index(TableKind::Nat)] {
                    let ev = self.table(TableKind::Nat, Hook::Postrouting, out_dev)?;
                    nat = src_nat_of(ev.nat, out_addr);
                }
                if nat == SrcNat::Null && self.proxy_masq {
                    // The data plane's masquerade (nftables `masquerading` chain, IPVS
                    // KUBE-POSTROUTING on the mark): to the output device's address.
                    let random_fully = self.path.proxy.as_ref().is_some_and(|p| p.random_fully);
                    nat = SrcNat::Masquerade {
                        addr: out_addr,
                        ports: None,
                        random: false,
                        random_fully,
                    };
                }
                match self.ct.apply_src_nat(id, self.cpu, nat, self.rng, self.now) {
                    Ok(t) => {
                        if t.src != self.pkt.tuple.src || t.sport != self.pkt.tuple.sport {
                            self.obs.note(
                                Hook::Postrouting,
                                format_args!(
                                    "nat: SNAT {}:{} -> {}:{}",
                                    self.pkt.tuple.src, self.pkt.tuple.sport, t.src, t.sport
                                ),
                            );
                        }
                        self.pkt.tuple = t;
                    }
                    Err(e) => debug_assert!(false, "invariant: the packet's own unconfirmed entry ({e})"),
                }
            }
            CtStep::Existing { id, dir } => {
                if let Some(c) = self.ct.conn(id) {
                    let t = c.translated(dir);
                    self.pkt.tuple.src = t.src;
                    self.pkt.tuple.sport = t.sport;
                }
            }
            CtStep::Untracked | CtStep::Invalid => {}
        }
        Ok(())
    }
}

/// The SRC manip a nat POSTROUTING verdict asks for (`out_addr`: MASQUERADE's address).
fn src_nat_of(action: Option<NatAction>, out_addr: std::net::Ipv4Addr) -> SrcNat {
    match action {
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
    }
}

/// The drop reason of a data plane's refusal.
fn proxy_drop_reason(v: ProxyVerdict) -> DropReason {
    match v {
        ProxyVerdict::Drop(d) => DropReason::Proxy(d),
        ProxyVerdict::Reject | ProxyVerdict::Translate | ProxyVerdict::NotService => {
            DropReason::ProxyRejected
        }
    }
}

pub(super) fn ct_drop_reason(d: CtDrop) -> DropReason {
    match d {
        CtDrop::TableFull => DropReason::ConntrackTableFull,
        CtDrop::InsertFailed => DropReason::ConntrackInsertFailed,
        CtDrop::ChainTooLong => DropReason::ConntrackChainTooLong,
    }
}
