//! Evaluation of one table at one hook, following `ipt_do_table`
//! (`net/ipv4/netfilter/ip_tables.c`).
//!
//! Two evaluators give identical results (verdict, mark, NAT action, `notrack`,
//! `rules_evaluated`, RNG draws, match state): [`Ruleset::evaluate_reference`] tests every
//! rule in turn, [`Ruleset::evaluate`] skips runs of simple rules with a hash probe and adds
//! the number of rules the linear scan would have tested.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::packet::{Mark, Packet, Proto};
use crate::rng::SimRng;
use crate::time::{SimDuration, SimTime};

use super::hook::{Hook, TableKind};
use super::rule::{
    ChainId, CtStateMatch, Match, MatchModule, NatRange, Policy, PortRange, RecentMode, Rule, Target,
};
use super::ruleset::Ruleset;

/// Entries per `recent` list before the least recently updated one is evicted (`xt_recent`
/// module parameter `ip_list_tot`, default 100).
pub const RECENT_LIST_CAPACITY: usize = 100;

/// Rules visited before a traversal is abandoned as looping (a table that passes
/// [`Ruleset::check_loops`] never gets near this).
pub const MAX_RULES_VISITED: u32 = 50_000_000;

/// Tells the `addrtype` match which addresses are local to the namespace
/// (`RTN_LOCAL` in the local routing table).
pub trait AddrType {
    /// Whether `addr` is a local address.
    fn is_local(&self, addr: Ipv4Addr) -> bool;
}

impl<F: Fn(Ipv4Addr) -> bool> AddrType for F {
    fn is_local(&self, addr: Ipv4Addr) -> bool {
        self(addr)
    }
}

/// A fixed list of local addresses; `127.0.0.0/8` is always local (the kernel's local table
/// holds the whole loopback prefix).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalAddrs(pub Vec<Ipv4Addr>);

impl AddrType for LocalAddrs {
    fn is_local(&self, addr: Ipv4Addr) -> bool {
        addr.is_loopback() || self.0.contains(&addr)
    }
}

/// What matches need from outside the ruleset.
#[derive(Clone, Copy)]
pub struct EvalContext<'a> {
    /// The packet's conntrack state and NAT status (for `-m conntrack --ctstate`).
    pub ct: CtStateMatch,
    /// Which addresses are local (for `-m addrtype`).
    pub local: &'a dyn AddrType,
    /// Input interface (`-i`), if any at this hook.
    pub in_iface: Option<&'a str>,
    /// Output interface (`-o`), if known at this hook.
    pub out_iface: Option<&'a str>,
    /// Current simulated time (for `-m recent`).
    pub now: SimTime,
}

impl std::fmt::Debug for EvalContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvalContext")
            .field("ct", &self.ct)
            .field("in_iface", &self.in_iface)
            .field("out_iface", &self.out_iface)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl<'a> EvalContext<'a> {
    /// A context with no interfaces.
    #[must_use]
    pub fn new(ct: CtStateMatch, local: &'a dyn AddrType, now: SimTime) -> EvalContext<'a> {
        EvalContext {
            ct,
            local,
            in_iface: None,
            out_iface: None,
            now,
        }
    }
}

/// An nfacct counter's value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NfacctCounter {
    /// Packets counted.
    pub packets: u64,
    /// Bytes counted.
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct RecentList {
    /// Source address -> (last seen, update sequence for LRU eviction).
    entries: BTreeMap<Ipv4Addr, (SimTime, u64)>,
    seq: u64,
}

impl RecentList {
    fn update(&mut self, addr: Ipv4Addr, now: SimTime) {
        self.seq += 1;
        if !self.entries.contains_key(&addr) && self.entries.len() >= RECENT_LIST_CAPACITY {
            // recent_entry_init: evict the head of the LRU list.
            if let Some(oldest) = self.entries.iter().min_by_key(|(_, (_, s))| *s).map(|(a, _)| *a) {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(addr, (now, self.seq));
    }
}

/// Mutable state of matches: `recent` lists, nfacct counters, and the traversal stack
/// (kept here so that evaluation does not allocate once warmed up).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EvalState {
    stack: Vec<(ChainId, u32)>,
    recent: Vec<RecentList>,
    nfacct: Vec<NfacctCounter>,
}

impl EvalState {
    /// Empty state.
    #[must_use]
    pub fn new() -> EvalState {
        EvalState::default()
    }

    /// The value of an nfacct counter (zero if never hit).
    #[must_use]
    pub fn nfacct(&self, id: super::rule::NfacctId) -> NfacctCounter {
        self.nfacct.get(id.0 as usize).copied().unwrap_or_default()
    }

    /// When `addr` was last recorded in a `recent` list.
    #[must_use]
    pub fn recent_seen(&self, id: super::rule::RecentId, addr: Ipv4Addr) -> Option<SimTime> {
        self.recent
            .get(id.0 as usize)
            .and_then(|l| l.entries.get(&addr))
            .map(|(t, _)| *t)
    }

    fn recent_mut(&mut self, i: usize) -> &mut RecentList {
        if self.recent.len() <= i {
            self.recent.resize_with(i + 1, RecentList::default);
        }
        &mut self.recent[i]
    }

    fn nfacct_mut(&mut self, i: usize) -> &mut NfacctCounter {
        if self.nfacct.len() <= i {
            self.nfacct.resize(i + 1, NfacctCounter::default());
        }
        &mut self.nfacct[i]
    }
}

/// The verdict of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Verdict {
    /// Continue to the next hook step.
    Accept,
    /// Silently dropped.
    Drop,
    /// Dropped with an answer (TCP RST or ICMP port unreachable).
    Reject,
}

/// A NAT binding requested by a nat-table target; the conntrack layer applies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatAction {
    /// `DNAT --to-destination addr[:port]`.
    Dnat {
        /// New destination address.
        addr: Ipv4Addr,
        /// New destination port, if given.
        port: Option<u16>,
    },
    /// `SNAT --to-source range`.
    Snat {
        /// The range.
        range: NatRange,
    },
    /// `MASQUERADE`: SNAT to the outgoing interface's address.
    Masquerade {
        /// `--to-ports`.
        ports: Option<PortRange>,
        /// `--random`.
        random: bool,
        /// `--random-fully`.
        random_fully: bool,
    },
}

/// A rule position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RulePos {
    /// The chain.
    pub chain: ChainId,
    /// The rule's index in the chain.
    pub index: u32,
}

/// The result of running one table at one hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evaluation {
    /// The verdict (the built-in chain's policy when the packet fell through).
    pub verdict: Verdict,
    /// The packet mark after every `MARK` target that ran.
    pub mark: Mark,
    /// The NAT binding requested, if a NAT target matched.
    pub nat: Option<NatAction>,
    /// Whether `NOTRACK` / `CT --notrack` ran.
    pub notrack: bool,
    /// Rules whose matches the kernel tests on this traversal (every rule visited in every
    /// chain traversed; hidden chain-tail entries are not counted).
    pub rules_evaluated: u32,
    /// The rule that decided the verdict; `None` when the policy decided.
    pub decided_by: Option<RulePos>,
    /// True when the traversal was abandoned after [`MAX_RULES_VISITED`] (a looping table);
    /// the verdict is then `Drop`.
    pub aborted: bool,
}

/// One step of a traced evaluation: a rule tested, and whether every match passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceStep {
    /// The chain.
    pub chain: ChainId,
    /// The rule index.
    pub rule: u32,
    /// Whether the rule matched.
    pub matched: bool,
}

/// The steps of a traced evaluation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    /// Steps in order.
    pub steps: Vec<TraceStep>,
}

impl Trace {
    /// Rules tested per chain.
    #[must_use]
    pub fn per_chain_counts(&self) -> BTreeMap<ChainId, u32> {
        let mut m = BTreeMap::new();
        for s in &self.steps {
            *m.entry(s.chain).or_insert(0) += 1;
        }
        m
    }
}

trait Tracer {
    const FAST: bool;
    fn step(&mut self, chain: ChainId, rule: u32, matched: bool);
}

struct Fast;
impl Tracer for Fast {
    const FAST: bool = true;
    fn step(&mut self, _: ChainId, _: u32, _: bool) {}
}

struct Plain;
impl Tracer for Plain {
    const FAST: bool = false;
    fn step(&mut self, _: ChainId, _: u32, _: bool) {}
}

impl Tracer for Trace {
    const FAST: bool = false;
    fn step(&mut self, chain: ChainId, rule: u32, matched: bool) {
        self.steps.push(TraceStep { chain, rule, matched });
    }
}

impl Ruleset {
    /// Runs `table`'s chain at `hook` for `pkt` (fast path: indexed runs of simple rules).
    /// Allocation-free once `state` has grown to the ruleset's size.
    pub fn evaluate(
        &self,
        table: TableKind,
        hook: Hook,
        pkt: &Packet,
        cx: &EvalContext<'_>,
        state: &mut EvalState,
        rng: &mut SimRng,
    ) -> Evaluation {
        self.run(table, hook, pkt, cx, state, rng, &mut Fast)
    }

    /// The reference interpreter: tests every rule in turn. Same results as
    /// [`Ruleset::evaluate`].
    pub fn evaluate_reference(
        &self,
        table: TableKind,
        hook: Hook,
        pkt: &Packet,
        cx: &EvalContext<'_>,
        state: &mut EvalState,
        rng: &mut SimRng,
    ) -> Evaluation {
        self.run(table, hook, pkt, cx, state, rng, &mut Plain)
    }

    /// The reference interpreter, also returning every rule tested (for `k8s-netsim trace`).
    pub fn evaluate_traced(
        &self,
        table: TableKind,
        hook: Hook,
        pkt: &Packet,
        cx: &EvalContext<'_>,
        state: &mut EvalState,
        rng: &mut SimRng,
    ) -> (Evaluation, Trace) {
        let mut trace = Trace::default();
        let ev = self.run(table, hook, pkt, cx, state, rng, &mut trace);
        (ev, trace)
    }

    #[allow(clippy::too_many_arguments, clippy::too_many_lines)]
    fn run<T: Tracer>(
        &self,
        table: TableKind,
        hook: Hook,
        pkt: &Packet,
        cx: &EvalContext<'_>,
        state: &mut EvalState,
        rng: &mut SimRng,
        tracer: &mut T,
    ) -> Evaluation {
        let t = self.table(table);
        let mut ev = Evaluation {
            verdict: Verdict::Accept,
            mark: pkt.mark,
            nat: None,
            notrack: false,
            rules_evaluated: 0,
            decided_by: None,
            aborted: false,
        };
        let Some(base) = t.builtin(hook) else {
            return ev;
        };
        let policy = match t.chain(base).policy() {
            Some(Policy::Drop) => Verdict::Drop,
            _ => Verdict::Accept,
        };
        state.stack.clear();
        let mut mark = pkt.mark.0;
        let mut chain = base;
        let mut pos: u32 = 0;
        loop {
            if ev.rules_evaluated > MAX_RULES_VISITED {
                ev.verdict = Verdict::Drop;
                ev.aborted = true;
                break;
            }
            let c = t.chain(chain);
            let rules = c.rules();
            if pos as usize >= rules.len() {
                // Falling off a user chain is its hidden RETURN entry; off the base chain,
                // the policy entry.
                match state.stack.pop() {
                    Some((ch, p)) => {
                        chain = ch;
                        pos = p;
                        continue;
                    }
                    None => {
                        ev.verdict = policy;
                        break;
                    }
                }
            }
            if T::FAST {
                if let Some(scan) = c.index.scan(pos, &pkt.tuple) {
                    ev.rules_evaluated += scan.tested;
                    match scan.hit {
                        None => {
                            pos = scan.end;
                            continue;
                        }
                        Some(hit) => pos = hit,
                    }
                } else {
                    ev.rules_evaluated += 1;
                    if !rule_matches(self, &rules[pos as usize], pkt, mark, cx, state, rng) {
                        pos += 1;
                        continue;
                    }
                }
            } else {
                ev.rules_evaluated += 1;
                let m = rule_matches(self, &rules[pos as usize], pkt, mark, cx, state, rng);
                tracer.step(chain, pos, m);
                if !m {
                    pos += 1;
                    continue;
                }
            }
            let here = RulePos { chain, index: pos };
            match rules[pos as usize].target {
                Target::None => pos += 1,
                Target::Mark(op) => {
                    mark = op.apply(mark);
                    pos += 1;
                }
                Target::Notrack | Target::CtNotrack => {
                    ev.notrack = true;
                    pos += 1;
                }
                Target::Accept => {
                    ev.decided_by = Some(here);
                    break;
                }
                Target::Drop => {
                    ev.verdict = Verdict::Drop;
                    ev.decided_by = Some(here);
                    break;
                }
                Target::Reject => {
                    ev.verdict = Verdict::Reject;
                    ev.decided_by = Some(here);
                    break;
                }
                Target::Return => match state.stack.pop() {
                    Some((ch, p)) => {
                        chain = ch;
                        pos = p;
                    }
                    None => {
                        ev.verdict = policy;
                        break;
                    }
                },
                Target::Jump(id) => {
                    state.stack.push((chain, pos + 1));
                    chain = id;
                    pos = 0;
                }
                Target::Goto(id) => {
                    chain = id;
                    pos = 0;
                }
                Target::Dnat { addr, port } => {
                    ev.nat = Some(NatAction::Dnat { addr, port });
                    ev.decided_by = Some(here);
                    break;
                }
                Target::Snat(range) => {
                    ev.nat = Some(NatAction::Snat { range });
                    ev.decided_by = Some(here);
                    break;
                }
                Target::Masquerade {
                    ports,
                    random,
                    random_fully,
                } => {
                    ev.nat = Some(NatAction::Masquerade {
                        ports,
                        random,
                        random_fully,
                    });
                    ev.decided_by = Some(here);
                    break;
                }
            }
        }
        ev.mark = Mark(mark);
        ev
    }
}

fn iface_matches(pattern: &str, name: Option<&str>) -> bool {
    let Some(name) = name else {
        // No interface at this hook: the kernel compares against an empty name.
        return pattern.is_empty() || pattern == "+";
    };
    match pattern.strip_suffix('+') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

fn ip_header_matches(m: &Match, pkt: &Packet, cx: &EvalContext<'_>) -> bool {
    let t = &pkt.tuple;
    match m {
        Match::Source { cidr, negated } => cidr.contains(t.src) != *negated,
        Match::Destination { cidr, negated } => cidr.contains(t.dst) != *negated,
        Match::Protocol { proto, negated } => (t.proto == *proto) != *negated,
        Match::InInterface { name, negated } => iface_matches(name, cx.in_iface) != *negated,
        Match::OutInterface { name, negated } => iface_matches(name, cx.out_iface) != *negated,
        _ => true,
    }
}

fn ports_match(rule: &Rule, pkt: &Packet) -> bool {
    let t = &pkt.tuple;
    if !matches!(t.proto, Proto::Tcp | Proto::Udp) {
        // tcp_mt / udp_mt see no ports on other protocols (the kernel requires -p anyway).
        return !rule
            .matches
            .iter()
            .any(|m| matches!(m, Match::SourcePort { .. } | Match::DestinationPort { .. }));
    }
    rule.matches.iter().all(|m| match m {
        Match::SourcePort { ports, negated } => ports.contains(t.sport) != *negated,
        Match::DestinationPort { ports, negated } => ports.contains(t.dport) != *negated,
        _ => true,
    })
}

/// Where the tcp/udp match sits among the extension matches: its `-m` marker, or the first
/// port option when the module was loaded implicitly by `-p`.
fn port_slot(rule: &Rule) -> Option<usize> {
    rule.matches.iter().position(|m| {
        matches!(
            m,
            Match::Module(MatchModule::Tcp | MatchModule::Udp)
                | Match::SourcePort { .. }
                | Match::DestinationPort { .. }
        )
    })
}

/// Tests one rule: IP header first (`ip_packet_match`), then extension matches in order,
/// stopping at the first that fails (`ipt_do_table`'s `xt_ematch_foreach`).
fn rule_matches(
    rs: &Ruleset,
    rule: &Rule,
    pkt: &Packet,
    mark: u32,
    cx: &EvalContext<'_>,
    state: &mut EvalState,
    rng: &mut SimRng,
) -> bool {
    if !rule.matches.iter().all(|m| ip_header_matches(m, pkt, cx)) {
        return false;
    }
    let slot = port_slot(rule);
    for (i, m) in rule.matches.iter().enumerate() {
        let ok = match m {
            Match::Source { .. }
            | Match::Destination { .. }
            | Match::Protocol { .. }
            | Match::InInterface { .. }
            | Match::OutInterface { .. }
            | Match::Module(MatchModule::Comment) => true,
            Match::Module(_) | Match::SourcePort { .. } | Match::DestinationPort { .. } => {
                slot != Some(i) || ports_match(rule, pkt)
            }
            Match::AddrType { src, dst } => {
                src.is_none_or(|a| cx.local.is_local(pkt.tuple.src) != a.negated)
                    && dst.is_none_or(|a| cx.local.is_local(pkt.tuple.dst) != a.negated)
            }
            Match::Mark { value, mask, negated } => ((mark & mask) == *value) != *negated,
            Match::Conntrack { states, negated } => states.intersects(cx.ct) != *negated,
            Match::Statistic { probability, .. } => rng.unit() < *probability,
            Match::Set { set, dirs, negated } => {
                // A set id from another ruleset never matches.
                rs.ipset(*set).is_some_and(|s| s.matches(&pkt.tuple, *dirs)) != *negated
            }
            Match::Recent {
                list,
                mode,
                seconds,
                reap,
            } => recent_match(state, list.0 as usize, *mode, *seconds, *reap, pkt, cx.now),
            Match::Nfacct { counter } => {
                let c = state.nfacct_mut(counter.0 as usize);
                c.packets += 1;
                c.bytes += u64::from(pkt.len);
                true
            }
        };
        if !ok {
            return false;
        }
    }
    true
}

/// `recent_mt` for `--rsource`.
fn recent_match(
    state: &mut EvalState,
    list: usize,
    mode: RecentMode,
    seconds: Option<u32>,
    reap: bool,
    pkt: &Packet,
    now: SimTime,
) -> bool {
    let addr = pkt.tuple.src;
    let l = state.recent_mut(list);
    if mode == RecentMode::Set {
        l.update(addr, now);
        return true;
    }
    let Some(&(seen, _)) = l.entries.get(&addr) else {
        return false;
    };
    let mut hit = true;
    if let Some(s) = seconds {
        let horizon = SimTime::from_nanos(
            now.as_nanos()
                .saturating_sub(SimDuration::from_secs(u64::from(s)).as_nanos()),
        );
        // A stamp counts unless time_after(horizon, stamp).
        hit = seen >= horizon;
        if reap && !hit {
            l.entries.remove(&addr);
        }
    }
    if mode == RecentMode::Update && hit {
        l.update(addr, now);
    }
    hit
}
