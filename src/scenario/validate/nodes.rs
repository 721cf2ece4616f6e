//! `nodes`: names, sizes, addresses, podCIDRs, sysctls, extra rules, `iptablesSave`, the
//! conntrack start; nodes by name, for every other part's references (and `baseline`).

use super::Checker;
use super::addresses::{next_free_pod_block, overlaps, size_of};
use crate::kernel::KernelProfile;
use crate::packet::{Cidr, Proto};
use crate::scenario::error::{FieldPath, PathSegment, Pending, ProblemKind};
use crate::scenario::file;
use crate::scenario::sysctl::effective_sysctls;
use crate::scenario::{KubeProxyConfig, NodeConfig, NodeId};
use crate::time::SimDuration;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// Nodes by name, for the references of endpoints and workloads.
pub(super) struct NodeLookup<'a> {
    nodes: &'a [NodeConfig],
    index: BTreeMap<&'a str, usize>,
}

impl<'a> NodeLookup<'a> {
    pub(super) fn new(nodes: &'a [NodeConfig]) -> NodeLookup<'a> {
        // Reversed, so the first of two nodes with one name wins.
        let index = nodes
            .iter()
            .enumerate()
            .rev()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        NodeLookup { nodes, index }
    }

    pub(super) fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Every node name, for messages.
    pub(super) fn names(&self) -> String {
        let v: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        v.join(", ")
    }
}

/// `nodes`: names, sizes, addresses (explicit ones first, so allocation skips them),
/// podCIDRs and effective sysctls.
pub(super) fn check_nodes(
    c: &mut Checker,
    specs: &[file::NodeSpec],
    kernel: KernelProfile,
    kube_proxy: &KubeProxyConfig,
    cluster_cidr: Cidr,
    node_cidr: Cidr,
) -> Vec<NodeConfig> {
    if specs.is_empty() {
        c.value(fp!("nodes"), "at least one node is required");
    }
    let mut names = BTreeSet::new();
    let (explicit_ip, mut used_ips) = explicit_node_ips(c, specs);
    let mut pod_cidrs = explicit_pod_cidrs(c, specs, cluster_cidr);
    let mut next_ip = 10u64;
    let mut next_block = 0u32;
    let mut out = Vec::new();
    for (i, n) in specs.iter().enumerate() {
        if n.name.trim().is_empty() {
            c.value(fp!("nodes", i, "name"), "name is empty");
        }
        if !names.insert(n.name.clone()) {
            c.bad(
                ProblemKind::Duplicate,
                fp!("nodes", i, "name"),
                format!("node `{}` is declared twice", n.name),
            );
        }
        if !(1..=4096).contains(&n.cpus) {
            c.value(
                fp!("nodes", i, "cpus"),
                format!("cpus {} is not in 1..=4096", n.cpus),
            );
        }
        if n.memory.as_bytes() < 64 << 20 {
            c.value(
                fp!("nodes", i, "memory"),
                format!("memory {} is below 64Mi", n.memory),
            );
        }
        let ip = explicit_ip.get(i).copied().flatten().unwrap_or_else(|| {
            while next_ip + 1 < size_of(node_cidr) {
                let cand = node_cidr
                    .nth(u32::try_from(next_ip).unwrap_or(0))
                    .unwrap_or(Ipv4Addr::UNSPECIFIED);
                next_ip += 1;
                if used_ips.insert(cand) {
                    return cand;
                }
            }
            c.bad(
                ProblemKind::Exhausted,
                fp!("nodes", i, "ip"),
                "nodeCIDR has no address left",
            );
            Ipv4Addr::UNSPECIFIED
        });
        let pod_cidr = match pod_cidrs.iter().find(|(j, _)| *j == i) {
            Some((_, p)) => *p,
            None => {
                let p = next_free_pod_block(cluster_cidr, &pod_cidrs, &mut next_block).unwrap_or_else(|| {
                    c.bad(
                        ProblemKind::Exhausted,
                        fp!("nodes", i, "podCIDR"),
                        "clusterCIDR has no free /24 left for this node",
                    );
                    Cidr::ANY
                });
                pod_cidrs.push((i, p));
                p
            }
        };
        // More entries than there are known names means some are unknown; say so once
        // rather than once per entry (each with a "did you mean" search).
        let known = crate::scenario::sysctl::known_sysctl_names().len();
        let none = BTreeMap::new();
        let explicit = if n.sysctl.len() > known {
            c.bad(
                ProblemKind::UnknownSysctl,
                fp!("nodes", i, "sysctl"),
                format!(
                    "{} sysctls set, but the model knows only {known} (see docs/scenario-format.md)",
                    n.sysctl.len()
                ),
            );
            &none
        } else {
            &n.sysctl
        };
        let (sysctls, problems) = effective_sysctls(
            kernel,
            n.memory,
            n.cpus,
            kube_proxy.mode,
            &kube_proxy.conntrack,
            explicit,
        );
        for (name, unknown, message) in problems {
            let field = fp!("nodes", i, "sysctl", name);
            if unknown {
                c.problems.push(Pending {
                    kind: ProblemKind::UnknownSysctl,
                    field,
                    at_key: true,
                    message,
                });
            } else {
                c.value(field, message);
            }
        }
        out.push(NodeConfig {
            id: NodeId(u32::try_from(i).unwrap_or(u32::MAX)),
            name: n.name.clone(),
            cpus: n.cpus,
            memory: n.memory,
            ip,
            pod_cidr,
            sysctls,
            extra_rules: check_extra_rules(c, i, &n.extra_rules),
            iptables_save: check_iptables_save(c, i, n.iptables_save.as_deref(), kube_proxy.mode),
            conntrack_start: check_conntrack_start(c, i, n.conntrack.as_ref()),
        });
    }
    out
}

/// The nodes' explicit addresses (by node), and the set of addresses taken; reports
/// unparsable and duplicate ones.
fn explicit_node_ips(
    c: &mut Checker,
    specs: &[file::NodeSpec],
) -> (Vec<Option<Ipv4Addr>>, BTreeSet<Ipv4Addr>) {
    let mut used_ips = BTreeSet::new();
    let explicit_ip = specs
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let ip = n.ip.as_deref().and_then(|t| c.ip(t, fp!("nodes", i, "ip")))?;
            if !used_ips.insert(ip) {
                c.bad(
                    ProblemKind::Duplicate,
                    fp!("nodes", i, "ip"),
                    format!("node address {ip} is used twice"),
                );
            }
            Some(ip)
        })
        .collect();
    (explicit_ip, used_ips)
}

/// The nodes' explicit podCIDRs as (node, CIDR); reports unparsable ones, ones
/// outside `cluster`, too small or overlapping an earlier one.
fn explicit_pod_cidrs(c: &mut Checker, specs: &[file::NodeSpec], cluster: Cidr) -> Vec<(usize, Cidr)> {
    let mut pod_cidrs: Vec<(usize, Cidr)> = Vec::new();
    for (i, n) in specs.iter().enumerate() {
        let Some(t) = n.pod_cidr.as_deref() else { continue };
        let Ok(p) = t.parse::<Cidr>() else {
            c.value(fp!("nodes", i, "podCIDR"), format!("invalid CIDR `{t}`"));
            continue;
        };
        if !cluster.contains(p.addr()) || p.len() < cluster.len() {
            c.value(
                fp!("nodes", i, "podCIDR"),
                format!(
                    "podCIDR {t} is outside clusterCIDR {}/{}",
                    cluster.addr(),
                    cluster.len()
                ),
            );
        }
        if p.len() > 30 {
            c.value(
                fp!("nodes", i, "podCIDR"),
                format!("podCIDR {t} is too small for pods (at most /30)"),
            );
        }
        if let Some((j, _)) = pod_cidrs.iter().find(|(_, q)| overlaps(p, *q)) {
            c.bad(
                ProblemKind::Duplicate,
                fp!("nodes", i, "podCIDR"),
                format!("podCIDR {t} overlaps nodes[{j}].podCIDR"),
            );
        }
        pod_cidrs.push((i, p));
    }
    pod_cidrs
}

/// `nodes[i].extraRules`: each rule must parse as `iptables-restore` input for its
/// table and chain (the importer's message names what it does not understand).
fn check_extra_rules(
    c: &mut Checker,
    i: usize,
    specs: &[file::ExtraRuleSpec],
) -> Vec<crate::scenario::ExtraRule> {
    use crate::netfilter::{Ruleset, TableKind, import};
    let mut out = Vec::new();
    let mut rs = Ruleset::new();
    for (j, r) in specs.iter().enumerate() {
        let Some(table) = TableKind::parse(r.table.trim()) else {
            c.value(
                fp!("nodes", i, "extraRules", j, "table"),
                format!("unknown table `{}` (raw, mangle, nat or filter)", r.table),
            );
            continue;
        };
        let chain = r.chain.trim().to_string();
        if chain.is_empty() || chain.contains(char::is_whitespace) {
            c.value(
                fp!("nodes", i, "extraRules", j, "chain"),
                format!("`{}` is not a chain name", r.chain),
            );
            continue;
        }
        if r.rule.contains('\n') {
            c.value(
                fp!("nodes", i, "extraRules", j, "rule"),
                "one rule per entry (the text has a line break)",
            );
            continue;
        }
        let rule = crate::scenario::ExtraRule {
            table,
            chain,
            rule: r.rule.trim().to_string(),
        };
        let declare = rs.chain_id(table, &rule.chain).is_none()
            && crate::netfilter::Hook::from_chain_name(&rule.chain).is_none();
        match import::parse_into(rs.clone(), &rule.to_restore_text(declare)) {
            Ok(next) => {
                rs = next;
                out.push(rule);
            }
            Err(e) => c.value(
                fp!("nodes", i, "extraRules", j, "rule"),
                format!("`-A {} {}`: {}", rule.chain, rule.rule, e.message),
            ),
        }
    }
    out
}

/// `nodes[i].iptablesSave`: the dump must parse completely (`k8s-netsim import` leaves
/// the rules the model does not implement out, listed in comments).
fn check_iptables_save(
    c: &mut Checker,
    i: usize,
    text: Option<&str>,
    mode: crate::scenario::ProxyMode,
) -> Option<String> {
    let text = text?;
    if mode != crate::scenario::ProxyMode::Iptables {
        c.value(
            fp!("nodes", i, "iptablesSave"),
            "iptablesSave stands for kube-proxy's iptables-mode rules: it needs kubeProxy.mode: iptables (other rules go in extraRules)",
        );
        return None;
    }
    match crate::netfilter::import::parse(text) {
        Ok(_) => Some(text.to_string()),
        Err(e) => {
            c.value(
                fp!("nodes", i, "iptablesSave"),
                format!("line {} of the dump, column {}: {}", e.line, e.column, e.message),
            );
            None
        }
    }
}

/// `nodes[i].conntrack`: the gc phase and the warm-start groups.
fn check_conntrack_start(
    c: &mut Checker,
    i: usize,
    spec: Option<&file::NodeConntrackSpec>,
) -> crate::scenario::ConntrackStart {
    let Some(spec) = spec else {
        return crate::scenario::ConntrackStart::default();
    };
    let gc_phase = spec.gc_phase.unwrap_or(SimDuration::ZERO);
    if gc_phase > SimDuration::from_secs(300) {
        c.value(
            fp!("nodes", i, "conntrack", "gcPhase"),
            format!("gcPhase {gc_phase} is longer than the gc worker's longest interval (300s)"),
        );
    }
    let mut warm_start = Vec::new();
    for (j, g) in spec.warm_start.iter().enumerate() {
        let at = |k: &str| fp!("nodes", i, "conntrack", "warmStart", j, k);
        let protocol = match g.protocol.to_ascii_lowercase().as_str() {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "icmp" => Proto::Icmp,
            other => {
                c.value(
                    at("protocol"),
                    format!("unknown protocol `{other}` (tcp, udp or icmp)"),
                );
                continue;
            }
        };
        let state = match (&g.state, protocol) {
            (None, Proto::Tcp) => {
                c.value(
                    at("state"),
                    "a TCP group needs its state (ESTABLISHED, TIME_WAIT, ...)",
                );
                continue;
            }
            (None, _) => None,
            (Some(_), Proto::Udp | Proto::Icmp) => {
                c.value(at("state"), "only TCP entries have a state");
                continue;
            }
            (Some(name), Proto::Tcp) => match crate::conntrack::CtState::from_name(name) {
                Some(s) => Some(s),
                None => {
                    c.value(
                        at("state"),
                        format!(
                            "unknown TCP state `{name}` (SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE)"
                        ),
                    );
                    continue;
                }
            },
        };
        let (shortest, longest) = match g.expires_in.as_slice() {
            [one] => (*one, *one),
            [lo, hi] if lo <= hi => (*lo, *hi),
            [lo, hi] => {
                c.value(at("expiresIn"), format!("[{lo}, {hi}]: the shortest comes first"));
                continue;
            }
            _ => {
                c.value(at("expiresIn"), "one duration or [shortest, longest]");
                continue;
            }
        };
        if g.count == 0 {
            c.value(at("count"), "count must be at least 1");
        }
        warm_start.push(crate::scenario::WarmGroup {
            protocol,
            state,
            assured: g.assured,
            count: g.count,
            shortest,
            longest,
        });
    }
    let total: u64 = warm_start.iter().map(|g| u64::from(g.count)).sum();
    if total > 16_000_000 {
        c.value(
            fp!("nodes", i, "conntrack", "warmStart"),
            format!("{total} warm entries; at most 16,000,000 (the largest nf_conntrack_max in practice)"),
        );
    }
    crate::scenario::ConntrackStart { gc_phase, warm_start }
}

/// `baseline`: the node must exist.
pub(super) fn check_baseline(
    c: &mut Checker,
    spec: Option<&file::BaselineSpec>,
    nodes: &NodeLookup<'_>,
) -> Option<crate::scenario::Baseline> {
    let b = spec?;
    let Some(node) = nodes.find(&b.node) else {
        c.bad(
            ProblemKind::UnknownReference,
            fp!("baseline", "node"),
            format!("unknown node `{}` (nodes: {})", b.node, nodes.names()),
        );
        return None;
    };
    if b.window == Some(SimDuration::ZERO) {
        c.value(fp!("baseline", "window"), "window must be above 0s");
    }
    Some(crate::scenario::Baseline {
        node: NodeId(u32::try_from(node).unwrap_or(u32::MAX)),
        source: b.source.clone().unwrap_or_default(),
        window: b.window,
        counters: b.counters.clone(),
    })
}
