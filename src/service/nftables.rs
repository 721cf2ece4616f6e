//! The `nftables` module models kube-proxy's nftables mode (`pkg/proxy/nftables/proxier.go`,
//! `syncProxyRules` and `setupNFTables`): the private `ip kube-proxy` table with its base
//! chains, the `services` dispatch chain (`ip daddr . meta l4proto . th dport vmap
//! @service-ips`), the `service-ips`, `service-nodeports`, `no-endpoint-*`, `firewall-ips`
//! verdict maps and `cluster-ips`/`nodeport-ips` sets, per-Service chains choosing an
//! endpoint with `numgen random mod N vmap`, per-endpoint chains with `dnat to`, and the
//! masquerade chains.
//!
//! The table is a structured value ([`NftTable`]) printable as an `nft` transaction (the
//! format of kube-proxy's `TestOverallNFTablesRules`, [`NftTable::to_transaction`]) and as
//! `nft list ruleset` output ([`NftTable::to_nft_text`]). [`NftablesProxy`] evaluates it for
//! a first packet, walking the base chains of each hook in priority order with nft's jump,
//! goto and return semantics, and counts rules tested and set/map lookups.
//!
//! Modelled: ClusterIP, external IPs, LoadBalancer IPs with source ranges, NodePorts on the
//! node addresses, `externalTrafficPolicy: Local` (local-policy chain, short-circuit rules),
//! ClientIP affinity (dynamic sets with timeout), Services without endpoints (reject/drop
//! via the `no-endpoint-*` maps), unallocated ClusterIPs (`cluster-ips-check`),
//! `--masquerade-all`. Not modelled: IPv6 (`ip6 kube-proxy`), `internalTrafficPolicy`,
//! terminating endpoints, partial syncs and stale-chain flushing, the 127.0.0.1 NodePort
//! (nftables mode never accepts it), SCTP. See `docs/model.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};

use super::iptables::hash16;
use super::proxy::{
    BaseChains, DataPlane, FirstPacket, FlowOrigin, LookupCost, ModeNote, ProxyDrop, ProxyVerdict,
    ServiceProxy,
};
use super::{Endpoint, ProxyConfig, ServicePort, TrafficPolicy, is_proxied};
use crate::netfilter::{FixedState, Hook};
use crate::packet::{Cidr, Proto, Tuple};
use crate::rng::SimRng;
use crate::time::{SimDuration, SimTime};

/// The longest chain-name base kube-proxy builds (`chainNameBaseLengthMax` = 128 - 16).
const CHAIN_NAME_BASE_MAX: usize = 112;
/// The deepest jump stack nftables accepts (`NFT_JUMP_STACK_SIZE`).
const JUMP_STACK: usize = 16;

/// Index of a chain in its [`NftTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NftChainId(u32);

/// Index of a set in its [`NftTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NftSetId(u32);

/// Index of a verdict map in its [`NftTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NftMapId(u32);

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
    name: String,
    base: Option<BaseChain>,
    comment: Option<String>,
    rules: Vec<NftRule>,
    drop_reason: Option<ProxyDrop>,
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
    name: String,
    comment: Option<String>,
    timeout: Option<SimDuration>,
    elements: Vec<Ipv4Addr>,
    index: hashbrown::HashSet<Ipv4Addr, FixedState>,
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
    name: String,
    key: VmapKey,
    comment: String,
    elements: Vec<NftElement>,
    index: hashbrown::HashMap<MapKey, usize, FixedState>,
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

    fn get(&self, key: &MapKey) -> Option<&NftElement> {
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
    chains: Vec<NftChain>,
    sets: Vec<NftSet>,
    maps: Vec<NftMap>,
}

impl NftTable {
    fn add_chain(&mut self, name: String, base: Option<BaseChain>) -> NftChainId {
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

    fn add_set(&mut self, name: String, comment: Option<&str>, timeout: Option<SimDuration>) -> NftSetId {
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

    fn add_map(&mut self, name: &str, key: VmapKey, comment: &str) -> NftMapId {
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

    fn rule(&mut self, chain: NftChainId, matches: Vec<NftMatch>, action: NftAction, comment: Option<&str>) {
        self.chains[chain.0 as usize].rules.push(NftRule {
            matches,
            action,
            comment: comment.map(str::to_string),
        });
    }

    fn set_elem(&mut self, set: NftSetId, addr: Ipv4Addr) {
        let s = &mut self.sets[set.0 as usize];
        if s.index.insert(addr) {
            s.elements.push(addr);
        }
    }

    /// `ensureElem`: a second element with the same key replaces the verdict.
    fn map_elem(&mut self, map: NftMapId, key: MapKey, verdict: NftVerdict, comment: Option<&str>) {
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

    fn chain_name(&self, id: NftChainId) -> &str {
        &self.chains[id.0 as usize].name
    }

    fn verdict_text(&self, v: NftVerdict) -> String {
        match v {
            NftVerdict::Accept => "accept".into(),
            NftVerdict::Drop => "drop".into(),
            NftVerdict::Reject => "reject".into(),
            NftVerdict::Return => "return".into(),
            NftVerdict::Jump(c) => format!("jump {}", self.chain_name(c)),
            NftVerdict::Goto(c) => format!("goto {}", self.chain_name(c)),
        }
    }

    fn rule_text(&self, r: &NftRule) -> String {
        let mut parts: Vec<String> = Vec::new();
        for m in &r.matches {
            parts.push(match m {
                NftMatch::Daddr(a) => format!("ip daddr {a}"),
                NftMatch::Saddr(a) => format!("ip saddr {a}"),
                NftMatch::SaddrPrefix { cidr, negated } => {
                    format!("ip saddr {}{cidr}", if *negated { "!= " } else { "" })
                }
                NftMatch::SaddrAnon { cidrs, negated } => {
                    format!(
                        "ip saddr {}{{ {} }}",
                        if *negated { "!= " } else { "" },
                        cidr_list(cidrs)
                    )
                }
                NftMatch::DaddrAnon { cidrs } => format!("ip daddr {{ {} }}", cidr_list(cidrs)),
                NftMatch::DaddrInSet(s) => format!("ip daddr @{}", self.sets[s.0 as usize].name),
                NftMatch::SaddrInSet(s) => format!("ip saddr @{}", self.sets[s.0 as usize].name),
                NftMatch::FibSaddrLocal => "fib saddr type local".into(),
                NftMatch::CtStateNew => "ct state new".into(),
                NftMatch::MarkUnset(m) => format!("mark and {m:#x} == 0"),
            });
        }
        parts.push(match &r.action {
            NftAction::Verdict(v) => self.verdict_text(*v),
            NftAction::Vmap { key, map } => format!(
                "{} vmap @{}",
                match key {
                    VmapKey::DaddrProtoPort => "ip daddr . meta l4proto . th dport",
                    VmapKey::ProtoPort => "meta l4proto . th dport",
                },
                self.maps[map.0 as usize].name
            ),
            NftAction::NumgenVmap(targets) => {
                let elems: Vec<String> = targets
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{i} : goto {}", self.chain_name(*c)))
                    .collect();
                format!(
                    "numgen random mod {} vmap {{ {} }}",
                    targets.len(),
                    elems.join(" , ")
                )
            }
            NftAction::UpdateSet(s) => format!("update @{} {{ ip saddr }}", self.sets[s.0 as usize].name),
            NftAction::MarkOr(m) => format!("mark set mark or {m:#x}"),
            NftAction::MarkXor(m) => format!("mark set mark xor {m:#x}"),
            NftAction::Masquerade { fully_random } => {
                if *fully_random {
                    "masquerade fully-random".into()
                } else {
                    "masquerade".into()
                }
            }
            NftAction::Dnat { proto, to } => format!("meta l4proto {proto} dnat to {to}"),
        });
        if let Some(c) = &r.comment {
            parts.push(format!("comment \"{c}\""));
        }
        parts.join(" ")
    }

    fn key_text(k: &MapKey) -> String {
        match k {
            MapKey::AddrProtoPort(a, p, port) => format!("{a} . {p} . {port}"),
            MapKey::ProtoPort(p, port) => format!("{p} . {port}"),
        }
    }

    fn element_text(&self, e: &NftElement) -> String {
        let comment = e
            .comment
            .as_ref()
            .map(|c| format!(" comment \"{c}\""))
            .unwrap_or_default();
        format!(
            "{}{comment} : {}",
            Self::key_text(&e.key),
            self.verdict_text(e.verdict)
        )
    }

    /// The table as an `nft -f` transaction, in the syntax of kube-proxy's
    /// `TestOverallNFTablesRules` expectations: table, sets, maps, chains, rules, elements.
    #[must_use]
    pub fn to_transaction(&self) -> String {
        let t = "ip kube-proxy";
        let mut out = format!("add table {t} {{ comment \"rules for kube-proxy\" ; }}\n");
        for s in &self.sets {
            let _ = write!(out, "add set {t} {} {{ type ipv4_addr ;", s.name);
            if let Some(to) = s.timeout {
                let _ = write!(out, " flags dynamic,timeout ; timeout {}s ;", to.as_secs());
            }
            if let Some(c) = &s.comment {
                let _ = write!(out, " comment \"{c}\" ;");
            }
            out.push_str(" }\n");
        }
        for m in &self.maps {
            let ty = match m.key {
                VmapKey::DaddrProtoPort => "ipv4_addr . inet_proto . inet_service",
                VmapKey::ProtoPort => "inet_proto . inet_service",
            };
            let _ = writeln!(
                out,
                "add map {t} {} {{ type {ty} : verdict ; comment \"{}\" ; }}",
                m.name, m.comment
            );
        }
        for c in &self.chains {
            let _ = write!(out, "add chain {t} {}", c.name);
            if let Some(b) = c.base {
                let _ = write!(
                    out,
                    " {{ type {} hook {} priority {} ; }}",
                    chain_type(b.kind),
                    hook_name(b.hook),
                    b.priority
                );
            } else if let Some(cm) = &c.comment {
                let _ = write!(out, " {{ comment \"{cm}\" ; }}");
            }
            out.push('\n');
        }
        for c in &self.chains {
            for r in &c.rules {
                let _ = writeln!(out, "add rule {t} {} {}", c.name, self.rule_text(r));
            }
        }
        for s in &self.sets {
            for e in &s.elements {
                let _ = writeln!(out, "add element {t} {} {{ {e} }}", s.name);
            }
        }
        for m in &self.maps {
            for e in &m.elements {
                let _ = writeln!(out, "add element {t} {} {{ {} }}", m.name, self.element_text(e));
            }
        }
        out
    }

    /// The table as `nft list ruleset` prints it.
    #[must_use]
    pub fn to_nft_text(&self) -> String {
        let mut out = String::from("table ip kube-proxy {\n\tcomment \"rules for kube-proxy\"\n");
        for s in &self.sets {
            let _ = write!(out, "\n\tset {} {{\n\t\ttype ipv4_addr\n", s.name);
            if let Some(to) = s.timeout {
                let _ = write!(out, "\t\tflags dynamic,timeout\n\t\ttimeout {}s\n", to.as_secs());
            }
            if let Some(c) = &s.comment {
                let _ = writeln!(out, "\t\tcomment \"{c}\"");
            }
            if !s.elements.is_empty() {
                let list: Vec<String> = s.elements.iter().map(ToString::to_string).collect();
                let _ = writeln!(out, "\t\telements = {{ {} }}", list.join(", "));
            }
            out.push_str("\t}\n");
        }
        for m in &self.maps {
            let ty = match m.key {
                VmapKey::DaddrProtoPort => "ipv4_addr . inet_proto . inet_service",
                VmapKey::ProtoPort => "inet_proto . inet_service",
            };
            let _ = write!(
                out,
                "\n\tmap {} {{\n\t\ttype {ty} : verdict\n\t\tcomment \"{}\"\n",
                m.name, m.comment
            );
            if !m.elements.is_empty() {
                let list: Vec<String> = m.elements.iter().map(|e| self.element_text(e)).collect();
                let _ = writeln!(out, "\t\telements = {{ {} }}", list.join(",\n\t\t\t     "));
            }
            out.push_str("\t}\n");
        }
        for c in &self.chains {
            let _ = writeln!(out, "\n\tchain {} {{", c.name);
            if let Some(b) = c.base {
                let _ = writeln!(
                    out,
                    "\t\ttype {} hook {} priority {}; policy accept;",
                    chain_type(b.kind),
                    hook_name(b.hook),
                    priority_name(b.hook, b.priority)
                );
            }
            if let Some(cm) = &c.comment {
                let _ = writeln!(out, "\t\tcomment \"{cm}\"");
            }
            for r in &c.rules {
                let _ = writeln!(out, "\t\t{}", self.rule_text(r));
            }
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
        out
    }
}

fn cidr_list(cidrs: &[Cidr]) -> String {
    cidrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn chain_type(k: ChainType) -> &'static str {
    match k {
        ChainType::Filter => "filter",
        ChainType::Nat => "nat",
    }
}

fn hook_name(h: Hook) -> &'static str {
    match h {
        Hook::Prerouting => "prerouting",
        Hook::Input => "input",
        Hook::Forward => "forward",
        Hook::Output => "output",
        Hook::Postrouting => "postrouting",
    }
}

/// How `nft list ruleset` (nftables 1.0.6, Debian 12) prints a base chain's priority: by
/// name where the name is valid for the hook (`filter` 0 on every hook, `dstnat` -100 on
/// prerouting, `srcnat` 100 on postrouting), as a plain number elsewhere. Before nftables
/// 1.0.9, `dstnat` on the output hook is refused (`invalid priority expression value in
/// this context`), which is why kube-proxy's library (knftables) writes every priority as
/// a number; the listing printed here loads with the older and the newer `nft -f`.
fn priority_name(hook: Hook, p: i32) -> String {
    match (hook, p) {
        (_, 0) => "filter".into(),
        (Hook::Prerouting, -100) => "dstnat".into(),
        (Hook::Prerouting, p) if (-150..-100).contains(&p) => format!("dstnat - {}", -100 - p),
        (Hook::Prerouting, p) if (-99..-50).contains(&p) => format!("dstnat + {}", p + 100),
        (Hook::Postrouting, 100) => "srcnat".into(),
        (_, p) => p.to_string(),
    }
}

/// kube-proxy's `hashAndTruncate`: the first 8 base32 characters of sha256(name), a dash, the
/// name, truncated to 112 characters with a trailing `...`.
#[must_use]
pub fn hash_and_truncate(name: &str) -> String {
    let mut s = format!("{}-{name}", &hash16(name)[..8]);
    if s.len() > CHAIN_NAME_BASE_MAX {
        let mut cut = CHAIN_NAME_BASE_MAX - 3;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// `servicePortChainNameBase`: `HASH-ns/name/proto/port`.
#[must_use]
pub fn service_chain_base(sp: &ServicePort) -> String {
    hash_and_truncate(&format!(
        "{}/{}/{}/{}",
        sp.namespace,
        sp.name,
        sp.protocol.as_str(),
        sp.port_name
    ))
}

/// `servicePortEndpointChainNameBase`: `HASH-ns/name/proto/port__ip/port`.
#[must_use]
pub fn endpoint_chain_base(sp: &ServicePort, ep: &Endpoint) -> String {
    hash_and_truncate(&format!(
        "{}/{}/{}/{}__{}/{}",
        sp.namespace,
        sp.name,
        sp.protocol.as_str(),
        sp.port_name,
        ep.ip,
        ep.port
    ))
}

/// Settings of the nftables generator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftablesConfig {
    /// The shared kube-proxy settings (pod CIDR, masquerade mark, node name and IPs, ...).
    /// `node_ips` are the NodePort addresses (`nodeport-ips`).
    pub proxy: ProxyConfig,
    /// `--service-cluster-ip-range` (kube-proxy learns it from ServiceCIDR objects);
    /// traffic to unallocated addresses in it is dropped. Empty: no such rule.
    pub service_cidrs: Vec<Cidr>,
}

impl Default for NftablesConfig {
    /// kube-proxy defaults, Service CIDR `10.96.0.0/12`.
    fn default() -> Self {
        NftablesConfig {
            proxy: ProxyConfig::default(),
            service_cidrs: vec![Cidr::new(Ipv4Addr::new(10, 96, 0, 0), 12).unwrap_or(Cidr::ANY)],
        }
    }
}

/// Handles of the fixed objects (`setupNFTables`).
#[derive(Clone, Copy, Debug)]
struct Base {
    cluster_ips: NftSetId,
    firewall_ips: NftMapId,
    no_endpoint_nodeports: NftMapId,
    no_endpoint_services: NftMapId,
    service_ips: NftMapId,
    service_nodeports: NftMapId,
    mark_for_masq: NftChainId,
    reject_chain: NftChainId,
}

// Long on purpose: the table's sets, maps and base chains declared one after another in
// the order they are printed.
fn setup(t: &mut NftTable, cfg: &NftablesConfig) -> Base {
    use NftAction as A;
    use NftMatch as M;
    let mark = cfg.proxy.masquerade_mark();
    let cluster_ips = t.add_set("cluster-ips".into(), Some("Active ClusterIPs"), None);
    let nodeport_ips = t.add_set(
        "nodeport-ips".into(),
        Some("IPs that accept NodePort traffic"),
        None,
    );
    let firewall_ips = t.add_map(
        "firewall-ips",
        VmapKey::DaddrProtoPort,
        "destinations that are subject to LoadBalancerSourceRanges",
    );
    let no_endpoint_nodeports = t.add_map(
        "no-endpoint-nodeports",
        VmapKey::ProtoPort,
        "vmap to drop or reject packets to service nodeports with no endpoints",
    );
    let no_endpoint_services = t.add_map(
        "no-endpoint-services",
        VmapKey::DaddrProtoPort,
        "vmap to drop or reject packets to services with no endpoints",
    );
    let service_ips = t.add_map(
        "service-ips",
        VmapKey::DaddrProtoPort,
        "ClusterIP, ExternalIP and LoadBalancer IP traffic",
    );
    let service_nodeports = t.add_map("service-nodeports", VmapKey::ProtoPort, "NodePort traffic");
    let base = |kind, hook, priority| Some(BaseChain { kind, hook, priority });
    let (f, n) = (ChainType::Filter, ChainType::Nat);
    let cluster_ips_check = t.add_chain("cluster-ips-check".into(), None);
    t.chains[cluster_ips_check.0 as usize].drop_reason = Some(ProxyDrop::UnallocatedClusterIp);
    let pre_dnat = t.add_chain(
        "filter-prerouting-pre-dnat".into(),
        base(f, Hook::Prerouting, -110),
    );
    let out_pre_dnat = t.add_chain("filter-output-pre-dnat".into(), base(f, Hook::Output, -110));
    let forward = t.add_chain("filter-forward".into(), base(f, Hook::Forward, 0));
    let input = t.add_chain("filter-input".into(), base(f, Hook::Input, 0));
    let output = t.add_chain("filter-output".into(), base(f, Hook::Output, 0));
    let firewall_check = t.add_chain("firewall-check".into(), None);
    let mark_for_masq = t.add_chain("mark-for-masquerade".into(), None);
    let masquerading = t.add_chain("masquerading".into(), None);
    let nat_output = t.add_chain("nat-output".into(), base(n, Hook::Output, -100));
    let nat_post = t.add_chain("nat-postrouting".into(), base(n, Hook::Postrouting, 100));
    let nat_pre = t.add_chain("nat-prerouting".into(), base(n, Hook::Prerouting, -100));
    let np_check = t.add_chain("nodeport-endpoints-check".into(), None);
    let reject_chain = t.add_chain("reject-chain".into(), None);
    t.chains[reject_chain.0 as usize].comment =
        Some("helper for @no-endpoint-services / @no-endpoint-nodeports".into());
    let services = t.add_chain("services".into(), None);
    let svc_check = t.add_chain("service-endpoints-check".into(), None);

    t.rule(
        cluster_ips_check,
        vec![M::DaddrInSet(cluster_ips)],
        A::Verdict(NftVerdict::Reject),
        Some("Reject traffic to invalid ports of ClusterIPs"),
    );
    if !cfg.service_cidrs.is_empty() {
        t.rule(
            cluster_ips_check,
            vec![M::DaddrAnon {
                cidrs: cfg.service_cidrs.clone(),
            }],
            A::Verdict(NftVerdict::Drop),
            Some("Drop traffic to unallocated ClusterIPs"),
        );
    }
    let jump_new = |t: &mut NftTable, from, to| {
        t.rule(from, vec![M::CtStateNew], A::Verdict(NftVerdict::Jump(to)), None)
    };
    jump_new(t, pre_dnat, firewall_check);
    jump_new(t, forward, svc_check);
    jump_new(t, forward, cluster_ips_check);
    jump_new(t, input, np_check);
    jump_new(t, input, svc_check);
    jump_new(t, output, svc_check);
    jump_new(t, out_pre_dnat, firewall_check);
    jump_new(t, output, cluster_ips_check);
    t.rule(
        firewall_check,
        vec![],
        A::Vmap {
            key: VmapKey::DaddrProtoPort,
            map: firewall_ips,
        },
        None,
    );
    t.rule(mark_for_masq, vec![], A::MarkOr(mark), None);
    t.rule(
        masquerading,
        vec![M::MarkUnset(mark)],
        A::Verdict(NftVerdict::Return),
        None,
    );
    t.rule(masquerading, vec![], A::MarkXor(mark), None);
    t.rule(
        masquerading,
        vec![],
        // kube-proxy's nftables proxier always writes `masquerade fully-random`
        // (pkg/proxy/nftables/proxier.go); `--random-fully` is an iptables-mode knob
        // that depends on the iptables binary.
        A::Masquerade { fully_random: true },
        None,
    );
    t.rule(nat_output, vec![], A::Verdict(NftVerdict::Jump(services)), None);
    t.rule(nat_post, vec![], A::Verdict(NftVerdict::Jump(masquerading)), None);
    t.rule(nat_pre, vec![], A::Verdict(NftVerdict::Jump(services)), None);
    t.rule(
        np_check,
        vec![M::DaddrInSet(nodeport_ips)],
        A::Vmap {
            key: VmapKey::ProtoPort,
            map: no_endpoint_nodeports,
        },
        None,
    );
    t.rule(reject_chain, vec![], A::Verdict(NftVerdict::Reject), None);
    t.rule(
        services,
        vec![],
        A::Vmap {
            key: VmapKey::DaddrProtoPort,
            map: service_ips,
        },
        None,
    );
    t.rule(
        services,
        vec![M::DaddrInSet(nodeport_ips)],
        A::Vmap {
            key: VmapKey::ProtoPort,
            map: service_nodeports,
        },
        None,
    );
    t.rule(
        svc_check,
        vec![],
        A::Vmap {
            key: VmapKey::DaddrProtoPort,
            map: no_endpoint_services,
        },
        None,
    );
    for ip in &cfg.proxy.node_ips {
        t.set_elem(nodeport_ips, *ip);
    }
    Base {
        cluster_ips,
        firewall_ips,
        no_endpoint_nodeports,
        no_endpoint_services,
        service_ips,
        service_nodeports,
        mark_for_masq,
        reject_chain,
    }
}

/// kube-proxy's nftables table for `services`, Services sorted by `ns/name:port` (kube-proxy
/// iterates a Go map; in nftables mode the order changes nothing but the printout).
#[must_use]
#[allow(clippy::too_many_lines)]
pub fn generate(services: &[ServicePort], cfg: &NftablesConfig) -> NftTable {
    use NftAction as A;
    use NftMatch as M;
    let mut t = NftTable {
        chains: Vec::new(),
        sets: Vec::new(),
        maps: Vec::new(),
    };
    let b = setup(&mut t, cfg);
    let mut ordered: Vec<&ServicePort> = services.iter().filter(|s| is_proxied(s)).collect();
    ordered.sort_by_cached_key(|s| s.name_string());
    let masq = NftAction::Verdict(NftVerdict::Jump(b.mark_for_masq));
    for sp in ordered {
        let name = sp.name_string();
        let proto = sp.protocol;
        let base = service_chain_base(sp);
        let ready: Vec<&Endpoint> = sp.endpoints.iter().filter(|e| e.ready).collect();
        let local: Vec<&Endpoint> = ready
            .iter()
            .copied()
            .filter(|e| e.node == cfg.proxy.node_name)
            .collect();
        let has_endpoints = !ready.is_empty();
        let ext_local = sp.external_traffic_policy == TrafficPolicy::Local;
        let has_external = has_endpoints && (!ext_local || !local.is_empty());
        let uses_local_chain = ext_local && sp.is_externally_accessible() && !local.is_empty();
        let uses_ext_chain = has_endpoints && sp.is_externally_accessible();
        let uses_fw = !sp.load_balancer_ips.is_empty() && !sp.lb_source_ranges.is_empty();
        let affinity = sp.session_affinity;

        // Endpoint chains (all ready endpoints are reachable with Cluster internal policy)
        // and their affinity sets.
        let mut ep_chain = BTreeMap::new();
        let mut ep_set = BTreeMap::new();
        let svc_chain = has_endpoints.then(|| t.add_chain(format!("service-{base}"), None));
        let local_chain = uses_local_chain.then(|| t.add_chain(format!("local-{base}"), None));
        let ext_chain = uses_ext_chain.then(|| t.add_chain(format!("external-{base}"), None));
        let fw_chain = uses_fw.then(|| t.add_chain(format!("firewall-{base}"), None));
        if let Some(fw) = fw_chain {
            t.chains[fw.0 as usize].drop_reason = Some(ProxyDrop::SourceRange);
        }
        for ep in &ready {
            let eb = endpoint_chain_base(sp, ep);
            ep_chain.insert((ep.ip, ep.port), t.add_chain(format!("endpoint-{eb}"), None));
            if let Some(to) = affinity {
                ep_set.insert(
                    (ep.ip, ep.port),
                    t.add_set(format!("affinity-{eb}"), None, Some(to)),
                );
            }
        }
        let ep_id = |e: &Endpoint| ep_chain.get(&(e.ip, e.port)).copied();

        // Elements.
        t.set_elem(b.cluster_ips, sp.cluster_ip);
        let reject = NftVerdict::Goto(b.reject_chain);
        let ext_filter = if has_endpoints { NftVerdict::Drop } else { reject };
        let vip_key = |ip| MapKey::AddrProtoPort(ip, proto, sp.port);
        match svc_chain {
            Some(c) => t.map_elem(b.service_ips, vip_key(sp.cluster_ip), NftVerdict::Goto(c), None),
            None => t.map_elem(
                b.no_endpoint_services,
                vip_key(sp.cluster_ip),
                reject,
                Some(&name),
            ),
        }
        for ip in &sp.external_ips {
            if let Some(e) = ext_chain {
                t.map_elem(b.service_ips, vip_key(*ip), NftVerdict::Goto(e), None);
            }
            if !has_external {
                t.map_elem(b.no_endpoint_services, vip_key(*ip), ext_filter, Some(&name));
            }
        }
        for ip in &sp.load_balancer_ips {
            if let Some(e) = ext_chain {
                t.map_elem(b.service_ips, vip_key(*ip), NftVerdict::Goto(e), None);
            }
            if let Some(fw) = fw_chain {
                t.map_elem(b.firewall_ips, vip_key(*ip), NftVerdict::Goto(fw), None);
            }
        }
        if !has_external {
            for ip in &sp.load_balancer_ips {
                t.map_elem(b.no_endpoint_services, vip_key(*ip), ext_filter, Some(&name));
            }
        }
        if let Some(np) = sp.node_port {
            if let Some(e) = ext_chain {
                t.map_elem(
                    b.service_nodeports,
                    MapKey::ProtoPort(proto, np),
                    NftVerdict::Goto(e),
                    None,
                );
            }
            if !has_external {
                t.map_elem(
                    b.no_endpoint_nodeports,
                    MapKey::ProtoPort(proto, np),
                    ext_filter,
                    Some(&name),
                );
            }
        }

        // Internal traffic: masquerade off-cluster sources.
        if let Some(c) = svc_chain {
            let m = if cfg.proxy.masquerade_all {
                vec![M::Daddr(sp.cluster_ip)]
            } else {
                vec![
                    M::Daddr(sp.cluster_ip),
                    M::SaddrPrefix {
                        cidr: cfg.proxy.cluster_cidr,
                        negated: true,
                    },
                ]
            };
            t.rule(c, m, masq.clone(), None);
        }
        // External traffic.
        if let (Some(e), Some(c)) = (ext_chain, svc_chain) {
            if ext_local {
                t.rule(
                    e,
                    vec![M::SaddrPrefix {
                        cidr: cfg.proxy.cluster_cidr,
                        negated: false,
                    }],
                    A::Verdict(NftVerdict::Goto(c)),
                    Some("short-circuit pod traffic"),
                );
                t.rule(
                    e,
                    vec![M::FibSaddrLocal],
                    masq.clone(),
                    Some("masquerade local traffic"),
                );
                t.rule(
                    e,
                    vec![M::FibSaddrLocal],
                    A::Verdict(NftVerdict::Goto(c)),
                    Some("short-circuit local traffic"),
                );
            } else {
                t.rule(e, vec![], masq.clone(), None);
            }
            if has_external {
                let policy = if ext_local { local_chain.unwrap_or(c) } else { c };
                t.rule(e, vec![], A::Verdict(NftVerdict::Goto(policy)), None);
            }
        }
        if let Some(fw) = fw_chain {
            let mut cidrs = sp.lb_source_ranges.clone();
            if cfg
                .proxy
                .node_ips
                .iter()
                .any(|ip| cidrs.iter().any(|r| r.contains(*ip)))
            {
                cidrs.extend(sp.load_balancer_ips.iter().map(|ip| Cidr::host(*ip)));
            }
            t.rule(
                fw,
                vec![M::SaddrAnon { cidrs, negated: true }],
                A::Verdict(NftVerdict::Drop),
                None,
            );
        }
        // writeServiceToEndpointRules: affinity checks, then one numgen rule.
        let to_endpoints = |t: &mut NftTable, chain: NftChainId, eps: &[&Endpoint]| {
            for ep in eps {
                if let (Some(s), Some(c)) = (ep_set.get(&(ep.ip, ep.port)), ep_id(ep)) {
                    t.rule(
                        chain,
                        vec![M::SaddrInSet(*s)],
                        A::Verdict(NftVerdict::Goto(c)),
                        None,
                    );
                }
            }
            let targets: Vec<NftChainId> = eps.iter().filter_map(|e| ep_id(e)).collect();
            t.rule(chain, vec![], A::NumgenVmap(targets), None);
        };
        if let Some(c) = svc_chain {
            to_endpoints(&mut t, c, &ready);
        }
        if let Some(l) = local_chain {
            to_endpoints(&mut t, l, &local);
        }
        for ep in &ready {
            let Some(c) = ep_id(ep) else { continue };
            t.rule(c, vec![M::Saddr(ep.ip)], masq.clone(), None);
            if let Some(s) = ep_set.get(&(ep.ip, ep.port)) {
                t.rule(c, vec![], A::UpdateSet(*s), None);
            }
            t.rule(
                c,
                vec![],
                A::Dnat {
                    proto,
                    to: SocketAddrV4::new(ep.ip, ep.port),
                },
                None,
            );
        }
    }
    t
}

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
    affinity: Vec<BTreeMap<Ipv4Addr, SimTime>>,
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

#[cfg(test)]
mod tests;
