//! [`NftablesProxy`]: a first packet walked through the table's base chains, with
//! jump, goto and return, affinity sets and the rules and lookups counted.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use super::generate::{NftablesConfig, generate};
use super::print::{chain_type, hook_name};
use super::table::{
    BaseChain, MapKey, NftAction, NftChainId, NftMatch, NftRule, NftTable, NftVerdict, VmapKey,
};
use crate::netfilter::Hook;
use crate::packet::{Proto, Tuple};
use crate::rng::SimRng;
use crate::service::ServicePort;
use crate::service::proxy::{
    BaseChains, DataPlane, FirstPacket, FlowOrigin, LookupCost, ModeNote, ProxyDrop, ProxyVerdict,
    ServiceProxy,
};
use crate::time::{SimDuration, SimTime};

/// The deepest jump stack nftables accepts (`NFT_JUMP_STACK_SIZE`).
const JUMP_STACK: usize = 16;

/// The packet fields nft rules read.
#[derive(Clone, Copy, Debug)]
struct NftPacket {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: Proto,
    dport: u16,
    mark: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HookVerdict {
    Accept,
    Drop(ProxyDrop),
    Reject,
}

#[derive(Clone, Copy, Debug, Default)]
struct NatOut {
    dnat: Option<SocketAddrV4>,
    masquerade: bool,
}

/// One chain a first packet went through ([`NftablesProxy::first_packet_explained`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftChainStep {
    /// Chain name.
    pub chain: String,
    /// Its hook registration, for a base chain.
    pub base: Option<BaseChain>,
    /// Rules tested in this visit.
    pub tested: u32,
    /// The rule that matched (1-based position, as `nft list` prints it), if any.
    pub matched: Option<(usize, String)>,
}

impl NftChainStep {
    /// `type hook` of a base chain (`nat output`), else the chain's name.
    #[must_use]
    pub fn label(&self) -> String {
        match self.base {
            Some(b) => format!(
                "{} (type {} hook {})",
                self.chain,
                chain_type(b.kind),
                hook_name(b.hook)
            ),
            None => self.chain.clone(),
        }
    }
}

/// kube-proxy's nftables mode behind the [`ServiceProxy`] contract: the generated table,
/// the contents of its dynamic affinity sets, and the node's local addresses
/// (`fib saddr type local`).
#[derive(Debug)]
pub struct NftablesProxy {
    table: NftTable,
    /// Per set: address -> expiry (dynamic sets only).
    pub(super) affinity: Vec<BTreeMap<Ipv4Addr, SimTime>>,
    /// Base chains per hook (index `Hook as usize` in `Hook::ALL` order), by priority.
    hooks: [Vec<NftChainId>; 5],
    node_ips: Vec<Ipv4Addr>,
}

fn hook_index(h: Hook) -> usize {
    match h {
        Hook::Prerouting => 0,
        Hook::Input => 1,
        Hook::Forward => 2,
        Hook::Output => 3,
        Hook::Postrouting => 4,
    }
}

impl NftablesProxy {
    /// Generates the table for `services` ([`generate`]).
    #[must_use]
    pub fn new(services: &[ServicePort], cfg: &NftablesConfig) -> NftablesProxy {
        let table = generate(services, cfg);
        let mut hooks: [Vec<(i32, NftChainId)>; 5] = Default::default();
        for (i, c) in table.chains.iter().enumerate() {
            if let Some(b) = c.base {
                #[allow(clippy::cast_possible_truncation)]
                hooks[hook_index(b.hook)].push((b.priority, NftChainId(i as u32)));
            }
        }
        let hooks = hooks.map(|mut v| {
            v.sort_unstable();
            v.into_iter().map(|(_, c)| c).collect()
        });
        NftablesProxy {
            affinity: vec![BTreeMap::new(); table.sets.len()],
            table,
            hooks,
            node_ips: cfg.proxy.node_ips.clone(),
        }
    }

    /// The table.
    #[must_use]
    pub fn table(&self) -> &NftTable {
        &self.table
    }

    fn matches(&self, r: &NftRule, p: &NftPacket, now: SimTime, cost: &mut LookupCost) -> bool {
        r.matches.iter().all(|m| match m {
            NftMatch::Daddr(a) => p.dst == *a,
            NftMatch::Saddr(a) => p.src == *a,
            NftMatch::SaddrPrefix { cidr, negated } => cidr.contains(p.src) != *negated,
            NftMatch::SaddrAnon { cidrs, negated } => {
                cost.hash_lookups += 1;
                cidrs.iter().any(|c| c.contains(p.src)) != *negated
            }
            NftMatch::DaddrAnon { cidrs } => {
                cost.hash_lookups += 1;
                cidrs.iter().any(|c| c.contains(p.dst))
            }
            NftMatch::DaddrInSet(s) | NftMatch::SaddrInSet(s) => {
                cost.hash_lookups += 1;
                let addr = if matches!(m, NftMatch::DaddrInSet(_)) {
                    p.dst
                } else {
                    p.src
                };
                let set = &self.table.sets[s.0 as usize];
                if set.timeout.is_some() {
                    self.affinity[s.0 as usize]
                        .get(&addr)
                        .is_some_and(|exp| *exp > now)
                } else {
                    set.index.contains(&addr)
                }
            }
            NftMatch::FibSaddrLocal => {
                cost.hash_lookups += 1;
                p.src.is_loopback() || self.node_ips.contains(&p.src)
            }
            // Every packet evaluated here is a connection's first.
            NftMatch::CtStateNew => true,
            NftMatch::MarkUnset(m) => p.mark & m == 0,
        })
    }

    /// Runs one base chain (`nft_do_chain`): jump pushes a return frame, goto does not,
    /// falling off a regular chain returns, falling off the base chain accepts.
    #[allow(clippy::too_many_arguments)]
    fn run_chain<W: FnMut(NftChainId, usize, bool)>(
        &mut self,
        start: NftChainId,
        p: &mut NftPacket,
        rng: &mut SimRng,
        now: SimTime,
        cost: &mut LookupCost,
        out: &mut NatOut,
        watch: &mut W,
    ) -> HookVerdict {
        let mut stack = [(NftChainId(0), 0usize); JUMP_STACK];
        let mut depth = 0;
        let (mut chain, mut pos) = (start, 0usize);
        loop {
            let c = &self.table.chains[chain.0 as usize];
            let Some(rule) = c.rules.get(pos) else {
                if depth == 0 {
                    return HookVerdict::Accept;
                }
                depth -= 1;
                (chain, pos) = stack[depth];
                continue;
            };
            pos += 1;
            cost.rules_evaluated += 1;
            let matched = self.matches(rule, p, now, cost);
            watch(chain, pos - 1, matched);
            if !matched {
                continue;
            }
            let rule_drop = c.drop_reason.unwrap_or(ProxyDrop::NoLocalEndpoints);
            let (verdict, drop_reason) = match &rule.action {
                NftAction::Verdict(v) => (*v, rule_drop),
                NftAction::Vmap { key, map } => {
                    cost.hash_lookups += 1;
                    let k = match key {
                        VmapKey::DaddrProtoPort => MapKey::AddrProtoPort(p.dst, p.proto, p.dport),
                        VmapKey::ProtoPort => MapKey::ProtoPort(p.proto, p.dport),
                    };
                    match self.table.maps[map.0 as usize].get(&k) {
                        // Only the no-endpoint maps hold `drop` (Local policy, no local
                        // endpoint).
                        Some(e) => (e.verdict, ProxyDrop::NoLocalEndpoints),
                        None => continue,
                    }
                }
                NftAction::NumgenVmap(targets) => {
                    cost.scheduler_ops += 1;
                    cost.hash_lookups += 1;
                    #[allow(clippy::cast_possible_truncation)]
                    let i = rng.below(targets.len() as u64) as usize;
                    match targets.get(i) {
                        Some(c) => (NftVerdict::Goto(*c), rule_drop),
                        None => continue,
                    }
                }
                NftAction::UpdateSet(s) => {
                    cost.hash_lookups += 1;
                    let to = self.table.sets[s.0 as usize].timeout.unwrap_or(SimDuration::ZERO);
                    self.affinity[s.0 as usize].insert(p.src, now + to);
                    continue;
                }
                NftAction::MarkOr(m) => {
                    p.mark |= m;
                    continue;
                }
                NftAction::MarkXor(m) => {
                    p.mark ^= m;
                    continue;
                }
                NftAction::Masquerade { .. } => {
                    out.masquerade = true;
                    return HookVerdict::Accept;
                }
                NftAction::Dnat { to, .. } => {
                    out.dnat = Some(*to);
                    return HookVerdict::Accept;
                }
            };
            match verdict {
                NftVerdict::Accept => return HookVerdict::Accept,
                NftVerdict::Drop => return HookVerdict::Drop(drop_reason),
                NftVerdict::Reject => return HookVerdict::Reject,
                NftVerdict::Return => {
                    if depth == 0 {
                        return HookVerdict::Accept;
                    }
                    depth -= 1;
                    (chain, pos) = stack[depth];
                }
                NftVerdict::Jump(to) => {
                    if depth == JUMP_STACK {
                        // The kernel refuses such a ruleset at load time.
                        return HookVerdict::Drop(rule_drop);
                    }
                    stack[depth] = (chain, pos);
                    depth += 1;
                    (chain, pos) = (to, 0);
                }
                NftVerdict::Goto(to) => (chain, pos) = (to, 0),
            }
        }
    }

    /// The first packet of `tuple` entering at `origin`: the base chains of PREROUTING,
    /// FORWARD (INPUT when the destination is still a node address after PREROUTING) and
    /// POSTROUTING ([`FlowOrigin::Pod`]) or OUTPUT and POSTROUTING ([`FlowOrigin::Host`]),
    /// each in priority order; DNAT rewrites the destination for the later hooks.
    pub fn first_packet_from(
        &mut self,
        origin: FlowOrigin,
        tuple: Tuple,
        rng: &mut SimRng,
        now: SimTime,
    ) -> FirstPacket {
        self.first_packet_watched(origin, tuple, rng, now, &mut |_, _, _| {})
    }

    /// [`NftablesProxy::first_packet_from`], with every rule tested, chain by chain
    /// (`nft monitor trace` in words): each step is a chain entered, the rules tested in
    /// it and the one that matched, rendered as `nft list` prints it.
    pub fn first_packet_explained(
        &mut self,
        origin: FlowOrigin,
        tuple: Tuple,
        rng: &mut SimRng,
        now: SimTime,
    ) -> (FirstPacket, Vec<NftChainStep>) {
        let mut raw: Vec<(NftChainId, u32, Option<usize>)> = Vec::new();
        let fp = self.first_packet_watched(origin, tuple, rng, now, &mut |c, rule, matched| match raw
            .last_mut()
        {
            Some(last) if last.0 == c && last.2.is_none() => {
                last.1 += 1;
                if matched {
                    last.2 = Some(rule);
                }
            }
            _ => raw.push((c, 1, matched.then_some(rule))),
        });
        let steps = raw
            .into_iter()
            .map(|(c, tested, matched)| {
                let chain = &self.table.chains[c.0 as usize];
                NftChainStep {
                    chain: chain.name.clone(),
                    base: chain.base,
                    tested,
                    matched: matched
                        .and_then(|r| chain.rules.get(r).map(|rule| (r + 1, self.table.rule_text(rule)))),
                }
            })
            .collect();
        (fp, steps)
    }

    fn first_packet_watched<W: FnMut(NftChainId, usize, bool)>(
        &mut self,
        origin: FlowOrigin,
        tuple: Tuple,
        rng: &mut SimRng,
        now: SimTime,
        watch: &mut W,
    ) -> FirstPacket {
        let mut ran = BaseChains::default();
        let hooks = match origin {
            FlowOrigin::Pod => [Hook::Prerouting, Hook::Forward, Hook::Postrouting],
            FlowOrigin::Host => [Hook::Output, Hook::Output, Hook::Postrouting],
        };
        let mut p = NftPacket {
            src: tuple.src,
            dst: tuple.dst,
            proto: tuple.proto,
            dport: tuple.dport,
            mark: 0,
        };
        let mut cost = LookupCost::default();
        let mut out = NatOut::default();
        for (step, hook) in hooks.into_iter().enumerate() {
            // OUTPUT runs once for host traffic (its filter and nat chains by priority).
            if step == 1 && origin == FlowOrigin::Host {
                continue;
            }
            // Routing: a destination that is (still) a local address goes to INPUT.
            let hook = if hook == Hook::Forward && (p.dst.is_loopback() || self.node_ips.contains(&p.dst)) {
                Hook::Input
            } else {
                hook
            };
            let n = self.hooks[hook_index(hook)].len();
            for i in 0..n {
                let chain = self.hooks[hook_index(hook)][i];
                if let Some(b) = self.table.chains[chain.0 as usize].base {
                    ran.insert(b.kind, b.hook);
                }
                let before = out.dnat;
                let v = self.run_chain(chain, &mut p, rng, now, &mut cost, &mut out, watch);
                if let (None, Some(to)) = (before, out.dnat) {
                    p.dst = *to.ip();
                    p.dport = to.port();
                }
                let verdict = match v {
                    HookVerdict::Accept => continue,
                    HookVerdict::Drop(r) => ProxyVerdict::Drop(r),
                    HookVerdict::Reject => ProxyVerdict::Reject,
                };
                return FirstPacket {
                    backend: None,
                    verdict,
                    masquerade: false,
                    cost,
                    note: ModeNote::Nftables { base_chains: ran },
                };
            }
        }
        FirstPacket {
            backend: out.dnat,
            verdict: if out.dnat.is_some() {
                ProxyVerdict::Translate
            } else {
                ProxyVerdict::NotService
            },
            masquerade: out.masquerade,
            cost,
            note: ModeNote::Nftables { base_chains: ran },
        }
    }
}

impl ServiceProxy for NftablesProxy {
    fn data_plane(&self) -> DataPlane {
        DataPlane::Nftables
    }

    fn first_packet(&mut self, tuple: Tuple, rng: &mut SimRng, now: SimTime) -> FirstPacket {
        self.first_packet_from(FlowOrigin::Pod, tuple, rng, now)
    }
}
