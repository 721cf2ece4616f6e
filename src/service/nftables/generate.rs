//! kube-proxy's `setupNFTables` and `syncProxyRules`: chain names, the fixed objects,
//! and the per-Service chains, sets and map elements.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use super::table::{
    BaseChain, ChainType, MapKey, NftAction, NftChainId, NftMapId, NftMatch, NftSetId, NftTable, NftVerdict,
    VmapKey,
};
use crate::netfilter::Hook;
use crate::packet::Cidr;
use crate::service::iptables::hash16;
use crate::service::proxy::ProxyDrop;
use crate::service::{Endpoint, ProxyConfig, ServicePort, TrafficPolicy, is_proxied};

/// The longest chain-name base kube-proxy builds (`chainNameBaseLengthMax` = 128 - 16).
const CHAIN_NAME_BASE_MAX: usize = 112;

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
// Long on purpose: syncProxyRules for each Service port in the order nft prints it
// (endpoint chains and affinity sets, map elements, internal then external traffic,
// the numgen dispatch); the parts share the Service's chain names and ready endpoints.
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
