//! The table as a value: chains, rules, sets and verdict maps with typed ids, built
//! by the generator and read by the printers and the evaluator.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::netfilter::{FixedState, Hook};
use crate::packet::{Cidr, Proto};
use crate::service::proxy::ProxyDrop;
use crate::time::SimDuration;

/// Index of a chain in its [`NftTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NftChainId(pub(super) u32);

/// Index of a set in its [`NftTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NftSetId(pub(super) u32);

/// Index of a verdict map in its [`NftTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NftMapId(pub(super) u32);

/// `type filter` or `type nat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChainType {
    /// `type filter`.
    Filter,
    /// `type nat`.
    Nat,
}

/// A base chain's hook registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BaseChain {
    /// Chain type.
    pub kind: ChainType,
    /// Netfilter hook.
    pub hook: Hook,
    /// Priority (iptables' nat is -100 / +100, filter 0).
    pub priority: i32,
}

/// A verdict (in a rule or a verdict-map element).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NftVerdict {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `reject`.
    Reject,
    /// `return`.
    Return,
    /// `jump CHAIN`.
    Jump(NftChainId),
    /// `goto CHAIN`.
    Goto(NftChainId),
}

/// A test in a rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NftMatch {
    /// `ip daddr ADDR`.
    Daddr(Ipv4Addr),
    /// `ip saddr ADDR`.
    Saddr(Ipv4Addr),
    /// `ip saddr [!=] PREFIX` (the local-traffic detector).
    SaddrPrefix {
        /// The pod CIDR.
        cidr: Cidr,
        /// `!=`.
        negated: bool,
    },
    /// `ip saddr [!=] { P, ... }` (an anonymous interval set).
    SaddrAnon {
        /// The prefixes.
        cidrs: Vec<Cidr>,
        /// `!=`.
        negated: bool,
    },
    /// `ip daddr { P, ... }`.
    DaddrAnon {
        /// The prefixes.
        cidrs: Vec<Cidr>,
    },
    /// `ip daddr @SET`.
    DaddrInSet(NftSetId),
    /// `ip saddr @SET`.
    SaddrInSet(NftSetId),
    /// `fib saddr type local`.
    FibSaddrLocal,
    /// `ct state new`.
    CtStateNew,
    /// `mark and MASK == 0`.
    MarkUnset(u32),
}

/// The key a verdict-map lookup builds from the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VmapKey {
    /// `ip daddr . meta l4proto . th dport`.
    DaddrProtoPort,
    /// `meta l4proto . th dport`.
    ProtoPort,
}

/// What a rule does once its tests pass.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NftAction {
    /// A verdict.
    Verdict(NftVerdict),
    /// `KEY vmap @MAP`: a hash lookup; a miss continues with the next rule.
    Vmap {
        /// Key shape.
        key: VmapKey,
        /// The map.
        map: NftMapId,
    },
    /// `numgen random mod N vmap { 0 : goto C0 , ... }`.
    NumgenVmap(Vec<NftChainId>),
    /// `update @SET { ip saddr }` (refreshes the element's timeout; continues).
    UpdateSet(NftSetId),
    /// `mark set mark or M` (continues).
    MarkOr(u32),
    /// `mark set mark xor M` (continues).
    MarkXor(u32),
    /// `masquerade [fully-random]` (terminal).
    Masquerade {
        /// `fully-random`.
        fully_random: bool,
    },
    /// `meta l4proto P dnat to ADDR:PORT` (terminal).
    Dnat {
        /// The protocol tested.
        proto: Proto,
        /// The new destination.
        to: SocketAddrV4,
    },
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NftRule {
    /// Tests, all of which must pass.
    pub matches: Vec<NftMatch>,
    /// The action.
    pub action: NftAction,
    /// `comment "..."`.
    pub comment: Option<String>,
}

/// A chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftChain {
    pub(super) name: String,
    pub(super) base: Option<BaseChain>,
    pub(super) comment: Option<String>,
    pub(super) rules: Vec<NftRule>,
    pub(super) drop_reason: Option<ProxyDrop>,
}

impl NftChain {
    /// The chain's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The hook registration of a base chain.
    #[must_use]
    pub fn base(&self) -> Option<BaseChain> {
        self.base
    }

    /// The rules.
    #[must_use]
    pub fn rules(&self) -> &[NftRule] {
        &self.rules
    }
}

/// A set of IPv4 addresses (`type ipv4_addr`), static or dynamic with a timeout.
#[derive(Clone, Debug)]
pub struct NftSet {
    pub(super) name: String,
    pub(super) comment: Option<String>,
    pub(super) timeout: Option<SimDuration>,
    pub(super) elements: Vec<Ipv4Addr>,
    pub(super) index: hashbrown::HashSet<Ipv4Addr, FixedState>,
}

impl NftSet {
    /// The set's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Static elements, in insertion order.
    #[must_use]
    pub fn elements(&self) -> &[Ipv4Addr] {
        &self.elements
    }

    /// The timeout of a dynamic (`flags dynamic,timeout`) set.
    #[must_use]
    pub fn timeout(&self) -> Option<SimDuration> {
        self.timeout
    }
}

/// A verdict-map key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapKey {
    /// `ADDR . PROTO . PORT`.
    AddrProtoPort(Ipv4Addr, Proto, u16),
    /// `PROTO . PORT`.
    ProtoPort(Proto, u16),
}

/// A verdict-map element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftElement {
    /// Key.
    pub key: MapKey,
    /// Verdict.
    pub verdict: NftVerdict,
    /// `comment "..."` on the element.
    pub comment: Option<String>,
}

/// A verdict map.
#[derive(Clone, Debug)]
pub struct NftMap {
    pub(super) name: String,
    pub(super) key: VmapKey,
    pub(super) comment: String,
    pub(super) elements: Vec<NftElement>,
    pub(super) index: hashbrown::HashMap<MapKey, usize, FixedState>,
}

impl NftMap {
    /// The map's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Elements in insertion order.
    #[must_use]
    pub fn elements(&self) -> &[NftElement] {
        &self.elements
    }

    pub(super) fn get(&self, key: &MapKey) -> Option<&NftElement> {
        self.index.get(key).map(|i| &self.elements[*i])
    }
}

/// Object counts of a table (what `nft list ruleset` would show).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NftCounts {
    /// Chains (base and regular).
    pub chains: usize,
    /// Rules.
    pub rules: usize,
    /// Named sets (including affinity sets).
    pub sets: usize,
    /// Verdict maps.
    pub maps: usize,
    /// Elements of static sets.
    pub set_elements: usize,
    /// Elements of verdict maps.
    pub map_elements: usize,
}

/// The `ip kube-proxy` table.
#[derive(Clone, Debug)]
pub struct NftTable {
    pub(super) chains: Vec<NftChain>,
    pub(super) sets: Vec<NftSet>,
    pub(super) maps: Vec<NftMap>,
}

impl NftTable {
    pub(super) fn add_chain(&mut self, name: String, base: Option<BaseChain>) -> NftChainId {
        #[allow(clippy::cast_possible_truncation)]
        let id = NftChainId(self.chains.len() as u32);
        self.chains.push(NftChain {
            name,
            base,
            comment: None,
            rules: Vec::new(),
            drop_reason: None,
        });
        id
    }

    pub(super) fn add_set(
        &mut self,
        name: String,
        comment: Option<&str>,
        timeout: Option<SimDuration>,
    ) -> NftSetId {
        #[allow(clippy::cast_possible_truncation)]
        let id = NftSetId(self.sets.len() as u32);
        self.sets.push(NftSet {
            name,
            comment: comment.map(str::to_string),
            timeout,
            elements: Vec::new(),
            index: hashbrown::HashSet::default(),
        });
        id
    }

    pub(super) fn add_map(&mut self, name: &str, key: VmapKey, comment: &str) -> NftMapId {
        #[allow(clippy::cast_possible_truncation)]
        let id = NftMapId(self.maps.len() as u32);
        self.maps.push(NftMap {
            name: name.to_string(),
            key,
            comment: comment.to_string(),
            elements: Vec::new(),
            index: hashbrown::HashMap::default(),
        });
        id
    }

    pub(super) fn rule(
        &mut self,
        chain: NftChainId,
        matches: Vec<NftMatch>,
        action: NftAction,
        comment: Option<&str>,
    ) {
        self.chains[chain.0 as usize].rules.push(NftRule {
            matches,
            action,
            comment: comment.map(str::to_string),
        });
    }

    pub(super) fn set_elem(&mut self, set: NftSetId, addr: Ipv4Addr) {
        let s = &mut self.sets[set.0 as usize];
        if s.index.insert(addr) {
            s.elements.push(addr);
        }
    }

    /// `ensureElem`: a second element with the same key replaces the verdict.
    pub(super) fn map_elem(
        &mut self,
        map: NftMapId,
        key: MapKey,
        verdict: NftVerdict,
        comment: Option<&str>,
    ) {
        let m = &mut self.maps[map.0 as usize];
        let e = NftElement {
            key,
            verdict,
            comment: comment.map(str::to_string),
        };
        match m.index.get(&key) {
            Some(i) => m.elements[*i] = e,
            None => {
                m.index.insert(key, m.elements.len());
                m.elements.push(e);
            }
        }
    }

    /// The chains, in creation order.
    #[must_use]
    pub fn chains(&self) -> &[NftChain] {
        &self.chains
    }

    /// The sets.
    #[must_use]
    pub fn sets(&self) -> &[NftSet] {
        &self.sets
    }

    /// The verdict maps.
    #[must_use]
    pub fn maps(&self) -> &[NftMap] {
        &self.maps
    }

    /// Object counts.
    #[must_use]
    pub fn counts(&self) -> NftCounts {
        NftCounts {
            chains: self.chains.len(),
            rules: self.chains.iter().map(|c| c.rules.len()).sum(),
            sets: self.sets.len(),
            maps: self.maps.len(),
            set_elements: self.sets.iter().map(|s| s.elements.len()).sum(),
            map_elements: self.maps.iter().map(|m| m.elements.len()).sum(),
        }
    }
}
