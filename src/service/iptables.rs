//! kube-proxy's iptables mode: the `filter` and `nat` tables `syncProxyRules`
//! (`pkg/proxy/iptables/proxier.go`) writes for a set of Service ports, plus the jump rules
//! from the built-in chains (`iptablesJumpChains`, installed with `iptables -I`).
//!
//! Output order follows kube-proxy's own test normalisation (`TestOverallIPTablesRules`):
//! `KUBE-NODEPORTS` and `KUBE-SERVICES` first, the other chains sorted by name, Services
//! sorted by `ns/name:port`. Real kube-proxy iterates a Go map, so its order of Service rules
//! inside `KUBE-SERVICES` is arbitrary; [`ServiceOrder::Shuffled`] models that.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use sha2::{Digest, Sha256};

use super::{Endpoint, ProxyConfig, ServicePort, TrafficPolicy};
use crate::netfilter::{
    AddrTypeTest, ChainId, CtStateMatch, FixedState, Hook, MarkOp, Match, MatchModule, PortRange, RecentMode,
    Rule, Ruleset, TableKind, Target,
};
use crate::packet::{Cidr, Proto};

/// The order of Services in the generated chains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServiceOrder {
    /// Sorted by `ns/name:port` (deterministic; what kube-proxy's tests compare against).
    #[default]
    ByName,
    /// A seeded shuffle, standing in for Go's map iteration order.
    Shuffled {
        /// Seed of the shuffle.
        seed: u64,
    },
}

const KUBE_SERVICES: &str = "KUBE-SERVICES";
const KUBE_EXTERNAL_SERVICES: &str = "KUBE-EXTERNAL-SERVICES";
const KUBE_NODEPORTS: &str = "KUBE-NODEPORTS";
const KUBE_POSTROUTING: &str = "KUBE-POSTROUTING";
const KUBE_MARK_MASQ: &str = "KUBE-MARK-MASQ";
const KUBE_FORWARD: &str = "KUBE-FORWARD";
const KUBE_PROXY_FIREWALL: &str = "KUBE-PROXY-FIREWALL";
const KUBE_FIREWALL: &str = "KUBE-FIREWALL";

/// nfacct counter names kube-proxy uses (`pkg/proxy/metrics`).
const NFACCT_INVALID: &str = "ct_state_invalid_dropped_pkts";
const NFACCT_LOCALHOST_NP: &str = "localhost_nps_accepted_pkts";

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A seeded 64-bit key for `name` (FNV-1a folded into [`crate::rng::splitmix64`]).
fn order_key(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    crate::rng::splitmix64(h)
}

/// The first 16 characters of `base32(sha256(text))` (kube-proxy's `portProtoHash`).
#[must_use]
pub fn hash16(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    // 16 base32 characters = 80 bits = the first 10 bytes.
    let mut bits: u128 = 0;
    for b in &digest[..10] {
        bits = (bits << 8) | u128::from(*b);
    }
    (0..16)
        .map(|i| {
            let shift = 80 - 5 * (i + 1);
            char::from(BASE32[((bits >> shift) & 0x1f) as usize])
        })
        .collect()
}

/// `KUBE-SVC-`/`KUBE-SVL-`/`KUBE-EXT-`/`KUBE-FW-` suffix of a Service port
/// (`servicePortPolicyClusterChain` and friends).
#[must_use]
pub fn port_proto_hash(sp: &ServicePort) -> String {
    hash16(&format!("{}{}", sp.name_string(), sp.protocol.as_str()))
}

/// The `KUBE-SEP-` chain of one endpoint (`servicePortEndpointChainName`).
#[must_use]
pub fn endpoint_chain_name(sp: &ServicePort, ep: &Endpoint) -> String {
    format!(
        "KUBE-SEP-{}",
        hash16(&format!(
            "{}{}{}:{}",
            sp.name_string(),
            sp.protocol.as_str(),
            ep.ip,
            ep.port
        ))
    )
}

/// The rules kube-proxy programs for `services`, sorted by name.
#[must_use]
pub fn generate(services: &[ServicePort], cfg: &ProxyConfig) -> Ruleset {
    generate_with(services, cfg, ServiceOrder::ByName)
}

struct Plan<'a> {
    sp: &'a ServicePort,
    name: String,
    proto: Proto,
    module: MatchModule,
    svc: String,
    svl: String,
    ext: String,
    fw: String,
    cluster_eps: Vec<(&'a Endpoint, String)>,
    local_eps: Vec<(&'a Endpoint, String)>,
    has_endpoints: bool,
    has_external: bool,
    ext_local: bool,
    uses_local_chain: bool,
    uses_ext_chain: bool,
    uses_fw: bool,
}

fn plan<'a>(sp: &'a ServicePort, cfg: &ProxyConfig) -> Option<Plan<'a>> {
    let module = match sp.protocol {
        Proto::Tcp => MatchModule::Tcp,
        Proto::Udp => MatchModule::Udp,
        Proto::Icmp => return None,
    };
    let hash = port_proto_hash(sp);
    let ready: Vec<(&Endpoint, String)> = sp
        .endpoints
        .iter()
        .filter(|e| e.ready)
        .map(|e| (e, endpoint_chain_name(sp, e)))
        .collect();
    let local_eps: Vec<(&Endpoint, String)> = ready
        .iter()
        .filter(|(e, _)| e.node == cfg.node_name)
        .cloned()
        .collect();
    let has_endpoints = !ready.is_empty();
    let ext_local = sp.external_traffic_policy == TrafficPolicy::Local && sp.is_externally_accessible();
    Some(Plan {
        name: sp.name_string(),
        proto: sp.protocol,
        module,
        svc: format!("KUBE-SVC-{hash}"),
        svl: format!("KUBE-SVL-{hash}"),
        ext: format!("KUBE-EXT-{hash}"),
        fw: format!("KUBE-FW-{hash}"),
        has_endpoints,
        has_external: has_endpoints && (!ext_local || !local_eps.is_empty()),
        ext_local,
        uses_local_chain: ext_local && !local_eps.is_empty(),
        uses_ext_chain: has_endpoints && sp.is_externally_accessible(),
        uses_fw: has_endpoints && !sp.load_balancer_ips.is_empty() && !sp.lb_source_ranges.is_empty(),
        cluster_eps: ready,
        local_eps,
        sp,
    })
}

type NameIndex<'n> = hashbrown::HashMap<&'n str, ChainId, FixedState>;

/// Rule-building shorthands, with a hashed name index (the ruleset's own name lookup is a
/// BTreeMap, too slow for a million lookups at 30k Services).
struct B<'a, 'n> {
    rs: &'a mut Ruleset,
    nat: NameIndex<'n>,
    filter: NameIndex<'n>,
}

impl B<'_, '_> {
    fn id(&self, table: TableKind, name: &str) -> ChainId {
        let cached = match table {
            TableKind::Nat => self.nat.get(name),
            TableKind::Filter => self.filter.get(name),
            _ => None,
        };
        cached.copied().unwrap_or_else(|| {
            self.rs
                .chain_id(table, name)
                .expect("invariant: every chain is created before rules refer to it")
        })
    }

    fn push(&mut self, table: TableKind, chain: &str, rule: Rule) {
        let id = self.id(table, chain);
        let r = self.rs.append_rule(table, id, rule);
        debug_assert!(r.is_ok(), "{r:?}");
    }

    fn jump(&self, table: TableKind, chain: &str) -> Target {
        Target::Jump(self.id(table, chain))
    }
}

fn rule(comment: Option<&str>) -> Rule {
    let r = Rule::new(Target::None);
    match comment {
        Some(c) => r.with_comment(c),
        None => r,
    }
}

/// `-m PROTO -p PROTO`.
fn proto_match(r: Rule, p: &Plan<'_>) -> Rule {
    r.with(Match::Module(p.module)).with(Match::Protocol {
        proto: p.proto,
        negated: false,
    })
}

fn dst(r: Rule, ip: Ipv4Addr) -> Rule {
    r.with(Match::Destination {
        cidr: Cidr::host(ip),
        negated: false,
    })
}

fn dst_cidr(r: Rule, cidr: Cidr, negated: bool) -> Rule {
    r.with(Match::Destination { cidr, negated })
}

fn src(r: Rule, cidr: Cidr, negated: bool) -> Rule {
    r.with(Match::Source { cidr, negated })
}

fn dport(r: Rule, port: u16) -> Rule {
    r.with(Match::DestinationPort {
        ports: PortRange::single(port),
        negated: false,
    })
}

fn target(mut r: Rule, t: Target) -> Rule {
    r.target = t;
    r
}

fn loopback() -> Cidr {
    Cidr::new(Ipv4Addr::new(127, 0, 0, 0), 8).unwrap_or(Cidr::ANY)
}

fn ctstate(r: Rule, states: CtStateMatch, negated: bool) -> Rule {
    r.with(Match::Conntrack { states, negated })
}

fn dst_local(r: Rule) -> Rule {
    r.with(Match::AddrType {
        src: None,
        dst: Some(AddrTypeTest { negated: false }),
    })
}

fn src_local(r: Rule) -> Rule {
    r.with(Match::AddrType {
        src: Some(AddrTypeTest { negated: false }),
        dst: None,
    })
}

/// The rules kube-proxy programs for `services`, in the given order.
#[must_use]
#[allow(clippy::too_many_lines)]
pub fn generate_with(services: &[ServicePort], cfg: &ProxyConfig, order: ServiceOrder) -> Ruleset {
    let mut ordered: Vec<&ServicePort> = services.iter().collect();
    match order {
        ServiceOrder::ByName => ordered.sort_by_cached_key(|s| s.name_string()),
        ServiceOrder::Shuffled { seed } => {
            // Each Service port gets a seeded random key from its own name, like a Go
            // map's per-key hash: adding or removing a Service does not move the others
            // relative to each other (a variant that adds kube-dns's TCP port must not
            // reshuffle every other Service).
            ordered.sort_by_cached_key(|s| {
                let name = s.name_string();
                (order_key(seed, &name), name)
            });
        }
    }
    let plans: Vec<Plan<'_>> = ordered.iter().filter_map(|s| plan(s, cfg)).collect();
    let total_endpoints: usize = services.iter().map(|s| s.endpoints.len()).sum();
    let large = total_endpoints > cfg.large_cluster_endpoints;
    let mark = cfg.masquerade_mark();
    let (f, n) = (TableKind::Filter, TableKind::Nat);

    let mut rs = Ruleset::new();
    rs.use_table(f);
    rs.use_table(n);
    // Chains: the top-level ones, then the rest sorted (kube-proxy's test normalisation).
    let mut filter_rest = vec![KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_PROXY_FIREWALL];
    if cfg.localhost_nodeports {
        filter_rest.push(KUBE_FIREWALL);
    }
    filter_rest.sort_unstable();
    let mut filter_ids = NameIndex::default();
    for c in [KUBE_NODEPORTS, KUBE_SERVICES].into_iter().chain(filter_rest) {
        if let Ok(id) = rs.add_chain(f, c) {
            filter_ids.insert(c, id);
        }
    }
    let mut nat_rest: BTreeSet<&str> = BTreeSet::from([KUBE_MARK_MASQ, KUBE_POSTROUTING]);
    for p in &plans {
        if !p.has_endpoints {
            continue;
        }
        nat_rest.insert(&p.svc);
        for (_, sep) in &p.cluster_eps {
            nat_rest.insert(sep);
        }
        if p.uses_local_chain {
            nat_rest.insert(&p.svl);
        }
        if p.uses_ext_chain {
            nat_rest.insert(&p.ext);
        }
        if p.uses_fw {
            nat_rest.insert(&p.fw);
        }
    }
    let mut nat_ids = NameIndex::default();
    for c in [KUBE_NODEPORTS, KUBE_SERVICES].into_iter().chain(nat_rest) {
        if let Ok(id) = rs.add_chain(n, c) {
            nat_ids.insert(c, id);
        }
    }
    if cfg.nfacct {
        // Registered first: the filter table (which uses it) prints before nat.
        let _ = rs.nfacct_counter(NFACCT_INVALID);
    }
    let mut b = B {
        rs: &mut rs,
        nat: nat_ids,
        filter: filter_ids,
    };

    // KUBE-POSTROUTING and KUBE-MARK-MASQ.
    b.push(
        n,
        KUBE_POSTROUTING,
        target(
            Rule::new(Target::None).with(Match::Mark {
                value: mark,
                mask: mark,
                negated: true,
            }),
            Target::Return,
        ),
    );
    b.push(n, KUBE_POSTROUTING, Rule::new(Target::Mark(MarkOp::Xor(mark))));
    b.push(
        n,
        KUBE_POSTROUTING,
        target(
            rule(Some("kubernetes service traffic requiring SNAT")),
            Target::Masquerade {
                ports: None,
                random: false,
                random_fully: cfg.random_fully,
            },
        ),
    );
    b.push(n, KUBE_MARK_MASQ, Rule::new(Target::Mark(MarkOp::Or(mark))));
    if cfg.localhost_nodeports {
        let r = rule(Some("block incoming localnet connections"));
        let r = src(dst_cidr(r, loopback(), false), loopback(), true);
        let r = ctstate(
            r,
            CtStateMatch::RELATED
                .union(CtStateMatch::ESTABLISHED)
                .union(CtStateMatch::DNAT),
            true,
        );
        b.push(f, KUBE_FIREWALL, target(r, Target::Drop));
    }

    for p in &plans {
        write_service(&mut b, p, cfg, large);
    }

    // The NodePort tail call; it must stay last in KUBE-SERVICES.
    let mut r = dst_local(rule(Some(
        "kubernetes service nodeports; NOTE: this must be the last rule in this chain",
    )));
    if !cfg.localhost_nodeports {
        r = dst_cidr(r, loopback(), true);
    }
    let t = b.jump(n, KUBE_NODEPORTS);
    b.push(n, KUBE_SERVICES, target(r, t));

    // KUBE-FORWARD.
    let mut r = ctstate(Rule::new(Target::None), CtStateMatch::INVALID, false);
    if cfg.nfacct {
        let c = b.rs.nfacct_counter(NFACCT_INVALID);
        r = r.with(Match::Nfacct { counter: c });
    }
    b.push(f, KUBE_FORWARD, target(r, Target::Drop));
    let r = rule(Some("kubernetes forwarding rules")).with(Match::Mark {
        value: mark,
        mask: mark,
        negated: false,
    });
    b.push(f, KUBE_FORWARD, target(r, Target::Accept));
    let r = ctstate(
        rule(Some("kubernetes forwarding conntrack rule")),
        CtStateMatch::RELATED.union(CtStateMatch::ESTABLISHED),
        false,
    );
    b.push(f, KUBE_FORWARD, target(r, Target::Accept));

    install_jumps(&mut b, cfg);
    rs
}

/// The jump rules from built-in chains. kube-proxy prepends each (`EnsureRule(Prepend)`) in
/// `iptablesJumpChains` order, then kubelet's KUBE-FIREWALL jumps, so each built-in chain
/// ends up holding them in reverse list order.
fn install_jumps(b: &mut B<'_, '_>, cfg: &ProxyConfig) {
    const EXT: &str = "kubernetes externally-visible service portals";
    const SVC: &str = "kubernetes service portals";
    const FW: &str = "kubernetes load balancer firewall";
    let mut list: Vec<(TableKind, &str, Hook, Option<&str>, bool)> = vec![
        (
            TableKind::Filter,
            KUBE_EXTERNAL_SERVICES,
            Hook::Input,
            Some(EXT),
            true,
        ),
        (
            TableKind::Filter,
            KUBE_EXTERNAL_SERVICES,
            Hook::Forward,
            Some(EXT),
            true,
        ),
        (
            TableKind::Filter,
            KUBE_NODEPORTS,
            Hook::Input,
            Some("kubernetes health check service ports"),
            false,
        ),
        (TableKind::Filter, KUBE_SERVICES, Hook::Forward, Some(SVC), true),
        (TableKind::Filter, KUBE_SERVICES, Hook::Output, Some(SVC), true),
        (
            TableKind::Filter,
            KUBE_FORWARD,
            Hook::Forward,
            Some("kubernetes forwarding rules"),
            false,
        ),
        (
            TableKind::Filter,
            KUBE_PROXY_FIREWALL,
            Hook::Input,
            Some(FW),
            true,
        ),
        (
            TableKind::Filter,
            KUBE_PROXY_FIREWALL,
            Hook::Output,
            Some(FW),
            true,
        ),
        (
            TableKind::Filter,
            KUBE_PROXY_FIREWALL,
            Hook::Forward,
            Some(FW),
            true,
        ),
        (TableKind::Nat, KUBE_SERVICES, Hook::Output, Some(SVC), false),
        (TableKind::Nat, KUBE_SERVICES, Hook::Prerouting, Some(SVC), false),
        (
            TableKind::Nat,
            KUBE_POSTROUTING,
            Hook::Postrouting,
            Some("kubernetes postrouting rules"),
            false,
        ),
    ];
    if cfg.localhost_nodeports {
        list.push((TableKind::Filter, KUBE_FIREWALL, Hook::Input, None, false));
        list.push((TableKind::Filter, KUBE_FIREWALL, Hook::Output, None, false));
    }
    for (table, dst_chain, hook, comment, new_only) in list {
        let mut r = Rule::new(Target::None);
        if new_only {
            r = ctstate(r, CtStateMatch::NEW, false);
        }
        if let Some(c) = comment {
            r = r.with_comment(c);
        }
        r.target = b.jump(table, dst_chain);
        let Some(src_chain) = b.rs.table(table).builtin(hook) else {
            continue;
        };
        let res = b.rs.insert_rule(table, src_chain, 0, r);
        debug_assert!(res.is_ok());
    }
}

#[allow(clippy::too_many_lines)]
fn write_service(b: &mut B<'_, '_>, p: &Plan<'_>, cfg: &ProxyConfig, large: bool) {
    let (f, n) = (TableKind::Filter, TableKind::Nat);
    let sp = p.sp;
    let name = &p.name;
    let (int_filter, ext_filter) = if p.has_endpoints {
        (
            None,
            (!p.has_external).then(|| (Target::Drop, format!("{name} has no local endpoints"))),
        )
    } else {
        let c = format!("{name} has no endpoints");
        (Some((Target::Reject, c.clone())), Some((Target::Reject, c)))
    };
    let lb_chain = if p.uses_fw { &p.fw } else { &p.ext };
    let svc_port = |r: Rule, ip: Ipv4Addr| dport(dst(proto_match(r, p), ip), sp.port);

    // ClusterIP.
    match &int_filter {
        None => {
            let t = b.jump(n, &p.svc);
            let r = svc_port(rule(Some(&format!("{name} cluster IP"))), sp.cluster_ip);
            b.push(n, KUBE_SERVICES, target(r, t));
        }
        Some((t, c)) => {
            let r = svc_port(rule(Some(c)), sp.cluster_ip);
            b.push(f, KUBE_SERVICES, target(r, *t));
        }
    }
    // External IPs.
    for ip in &sp.external_ips {
        if p.has_endpoints {
            let t = b.jump(n, &p.ext);
            let r = svc_port(rule(Some(&format!("{name} external IP"))), *ip);
            b.push(n, KUBE_SERVICES, target(r, t));
        }
        if let Some((t, c)) = &ext_filter {
            b.push(
                f,
                KUBE_EXTERNAL_SERVICES,
                target(svc_port(rule(Some(c)), *ip), *t),
            );
        }
    }
    // Load-balancer IPs.
    for ip in &sp.load_balancer_ips {
        if p.has_endpoints {
            let t = b.jump(n, lb_chain);
            let r = svc_port(rule(Some(&format!("{name} loadbalancer IP"))), *ip);
            b.push(n, KUBE_SERVICES, target(r, t));
        }
        if p.uses_fw {
            let c = format!("{name} traffic not accepted by {}", p.fw);
            b.push(
                f,
                KUBE_PROXY_FIREWALL,
                target(svc_port(rule(Some(&c)), *ip), Target::Drop),
            );
        }
    }
    if let Some((t, c)) = &ext_filter {
        for ip in &sp.load_balancer_ips {
            b.push(
                f,
                KUBE_EXTERNAL_SERVICES,
                target(svc_port(rule(Some(c)), *ip), *t),
            );
        }
    }
    // NodePort.
    if let Some(np) = sp.node_port {
        if p.has_endpoints {
            let t = b.jump(n, &p.ext);
            if cfg.localhost_nodeports {
                let r = dst_cidr(proto_match(rule(Some(name)), p), loopback(), false);
                let mut r = dport(r, np);
                if cfg.nfacct {
                    let c = b.rs.nfacct_counter(NFACCT_LOCALHOST_NP);
                    r = r.with(Match::Nfacct { counter: c });
                }
                b.push(n, KUBE_NODEPORTS, target(r, t));
            }
            let r = dport(proto_match(rule(Some(name)), p), np);
            b.push(n, KUBE_NODEPORTS, target(r, t));
        }
        if let Some((t, c)) = &ext_filter {
            let r = dport(proto_match(dst_local(rule(Some(c))), p), np);
            b.push(f, KUBE_EXTERNAL_SERVICES, target(r, *t));
        }
    }
    // Health-check NodePort (Local policy only: `NeedsHealthCheck`).
    if let (Some(hc), true) = (sp.health_check_node_port, p.ext_local) {
        let r = rule(Some(&format!("{name} health check node port")))
            .with(Match::Module(MatchModule::Tcp))
            .with(Match::Protocol {
                proto: Proto::Tcp,
                negated: false,
            });
        b.push(f, KUBE_NODEPORTS, target(dport(r, hc), Target::Accept));
    }
    if !p.has_endpoints {
        return;
    }

    // KUBE-SVC: masquerade traffic to the cluster IP from outside the pod network.
    let r = svc_port(rule(Some(&format!("{name} cluster IP"))), sp.cluster_ip);
    let r = if cfg.masquerade_all {
        r
    } else {
        src(r, cfg.cluster_cidr, true)
    };
    let t = b.jump(n, KUBE_MARK_MASQ);
    b.push(n, &p.svc, target(r, t));

    // KUBE-EXT.
    if p.uses_ext_chain {
        let policy_chain = if p.ext_local { &p.svl } else { &p.svc };
        let masq = b.jump(n, KUBE_MARK_MASQ);
        let to_svc = b.jump(n, &p.svc);
        if p.ext_local {
            let r = src(
                rule(Some(&format!("pod traffic for {name} external destinations"))),
                cfg.cluster_cidr,
                false,
            );
            b.push(n, &p.ext, target(r, to_svc));
            let r = src_local(rule(Some(&format!(
                "masquerade LOCAL traffic for {name} external destinations"
            ))));
            b.push(n, &p.ext, target(r, masq));
            let r = src_local(rule(Some(&format!(
                "route LOCAL traffic for {name} external destinations"
            ))));
            b.push(n, &p.ext, target(r, to_svc));
        } else {
            let r = rule(Some(&format!(
                "masquerade traffic for {name} external destinations"
            )));
            b.push(n, &p.ext, target(r, masq));
        }
        if p.has_external {
            let t = b.jump(n, policy_chain);
            b.push(n, &p.ext, Rule::new(t));
        }
    }

    // KUBE-FW: allowed sources go on to KUBE-EXT; the rest fall through to the filter DROP.
    if p.uses_fw {
        let c = format!("{name} loadbalancer IP");
        let to_ext = b.jump(n, &p.ext);
        let mut allow_from_node = false;
        for range in &sp.lb_source_ranges {
            b.push(n, &p.fw, target(src(rule(Some(&c)), *range, false), to_ext));
            allow_from_node |= cfg.node_ips.iter().any(|ip| range.contains(*ip));
        }
        if allow_from_node {
            for ip in &sp.load_balancer_ips {
                b.push(
                    n,
                    &p.fw,
                    target(src(rule(Some(&c)), Cidr::host(*ip), false), to_ext),
                );
            }
        }
        let r = rule(Some(&format!(
            "other traffic to {name} will be dropped by KUBE-PROXY-FIREWALL"
        )));
        b.push(n, &p.fw, r);
    }

    write_endpoint_rules(b, p, &p.svc, &p.cluster_eps, large);
    if p.uses_local_chain {
        write_endpoint_rules(b, p, &p.svl, &p.local_eps, large);
    }

    // KUBE-SEP chains.
    for (ep, sep) in &p.cluster_eps {
        let comment = (!large).then_some(name.as_str());
        let masq = b.jump(n, KUBE_MARK_MASQ);
        b.push(n, sep, target(src(rule(comment), Cidr::host(ep.ip), false), masq));
        let mut r = rule(comment);
        if sp.session_affinity.is_some() {
            let list = b.rs.recent_list(sep);
            r = r.with(Match::Recent {
                list,
                mode: RecentMode::Set,
                seconds: None,
                reap: false,
            });
        }
        let r = proto_match(r, p);
        b.push(
            n,
            sep,
            target(
                r,
                Target::Dnat {
                    addr: ep.ip,
                    port: Some(ep.port),
                },
            ),
        );
    }
}

/// `writeServiceToEndpointRules`: affinity checks first, then the probability cascade
/// 1/n, 1/(n-1), ..., unconditional.
fn write_endpoint_rules(
    b: &mut B<'_, '_>,
    p: &Plan<'_>,
    chain: &str,
    eps: &[(&Endpoint, String)],
    large: bool,
) {
    let n = TableKind::Nat;
    let comment = |ep: &Endpoint| (!large).then(|| format!("{} -> {}:{}", p.name, ep.ip, ep.port));
    if let Some(timeout) = p.sp.session_affinity {
        #[allow(clippy::cast_possible_truncation)]
        let secs = timeout.as_secs().min(u64::from(u32::MAX)) as u32;
        for (ep, sep) in eps {
            let list = b.rs.recent_list(sep);
            let r = rule(comment(ep).as_deref()).with(Match::Recent {
                list,
                mode: RecentMode::Rcheck,
                seconds: Some(secs.max(1)),
                reap: true,
            });
            let t = b.jump(n, sep);
            b.push(n, chain, target(r, t));
        }
    }
    let count = eps.len();
    for (i, (ep, sep)) in eps.iter().enumerate() {
        let mut r = rule(comment(ep).as_deref());
        if i + 1 < count {
            #[allow(clippy::cast_precision_loss)]
            let prob = 1.0 / (count - i) as f64;
            r = r.with(Match::statistic(prob));
        }
        let t = b.jump(n, sep);
        b.push(n, chain, target(r, t));
    }
}

#[cfg(test)]
mod tests;
