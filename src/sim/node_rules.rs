//! What kube-proxy (in the scenario's mode) and NodeLocal DNSCache's agent program on
//! each node: the iptables ruleset, the nftables table, IPVS virtual servers or Cilium's
//! maps, and their listings for `k8s-netsim rules`.

use super::SimError;
use crate::netfilter::Ruleset;
use crate::packet::Proto;
use crate::rng::SimRng;
use crate::scenario::{IpvsScheduler, ProxyMode, Scenario, ServiceType};
use crate::service::ebpf::{CtMapSizes, DYNAMIC_SIZE_RATIO, EbpfConfig, EbpfProxy};
use crate::service::ipvs::{IpvsConfig, IpvsProxy, KernelVersion, Scheduler};
use crate::service::nftables::{NftablesConfig, NftablesProxy};
use crate::service::node::{NodeProxy, ProxyImpl};
use crate::service::proxy::LookupCost;
use crate::service::{self, Endpoint as SvcEndpoint, ProxyConfig, ServicePort as SvcPort};

/// The kube-proxy view of the scenario's Services (plus background Services).
pub(super) fn service_ports(sc: &Scenario) -> Vec<SvcPort> {
    let mut out = Vec::new();
    for s in &sc.services {
        if s.service_type == ServiceType::Headless {
            continue;
        }
        let Some(ip) = s.cluster_ip else { continue };
        for (i, p) in s.ports.iter().enumerate() {
            let mut sp = SvcPort::cluster_ip(
                &s.namespace,
                &s.name,
                p.name.as_deref().unwrap_or(if i == 0 { "" } else { "p" }),
                ip,
                p.port,
            );
            sp.protocol = p.protocol;
            sp.node_port = p.node_port;
            sp.endpoints = s
                .endpoints
                .iter()
                .map(|e| SvcEndpoint {
                    ip: e.ip,
                    port: p.target_port,
                    node: sc.nodes[e.node.0 as usize].name.clone(),
                    ready: true,
                })
                .collect();
            out.push(sp);
        }
    }
    add_dns_tcp_port(sc, &mut out);
    for (i, b) in sc.background_services.iter().enumerate() {
        let mut sp = SvcPort::cluster_ip("background", &format!("bg-{i:05}"), "http", b.cluster_ip, b.port);
        sp.endpoints = b
            .endpoints
            .iter()
            .map(|ip| SvcEndpoint {
                ip: *ip,
                port: 8080,
                node: "elsewhere".into(),
                ready: true,
            })
            .collect();
        out.push(sp);
    }
    out
}

/// kube-proxy's shared settings on `node`.
fn proxy_config(sc: &Scenario, node: usize) -> ProxyConfig {
    let n = &sc.nodes[node];
    ProxyConfig {
        cluster_cidr: sc.cluster_cidr,
        masquerade_bit: sc.kube_proxy.masquerade_bit,
        random_fully: sc.kube_proxy.random_fully,
        node_name: n.name.clone(),
        node_ips: vec![n.ip],
        masquerade_all: sc.kube_proxy.masquerade_all,
        ..ProxyConfig::default()
    }
}

/// The iptables ruleset on `node` for this scenario: kube-proxy's rules in iptables mode;
/// none in nftables and IPVS mode (their rules live in the node's [`NodeProxy`]); Cilium's
/// raw-table NOTRACK rules for pod traffic in eBPF mode with `kubeProxy.ebpf.notrack`.
///
/// # Errors
/// [`SimError::GeneratedRules`] if a generated ruleset does not parse (a bug).
pub(super) fn node_ruleset(sc: &Scenario, node: usize) -> Result<Ruleset, SimError> {
    match sc.kube_proxy.mode {
        ProxyMode::Iptables => {
            if let Some(rs) = own_ruleset(sc, node)? {
                return Ok(rs);
            }
        }
        ProxyMode::Nftables | ProxyMode::Ipvs => return Ok(Ruleset::new()),
        ProxyMode::Ebpf => {
            if !sc.kube_proxy.ebpf.notrack {
                return Ok(Ruleset::new());
            }
            // cilium `pkg/datapath/iptables` (`installNoConntrackIptablesRules`):
            // CILIUM_PRE_raw / CILIUM_OUTPUT_raw `-j CT --notrack` for the pod CIDR, both
            // directions.
            let c = sc.cluster_cidr;
            let text = format!(
                "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:CILIUM_PRE_raw - [0:0]\n:CILIUM_OUTPUT_raw - [0:0]\n\
                 -A PREROUTING -m comment --comment \"cilium-feeder: CILIUM_PRE_raw\" -j CILIUM_PRE_raw\n\
                 -A OUTPUT -m comment --comment \"cilium-feeder: CILIUM_OUTPUT_raw\" -j CILIUM_OUTPUT_raw\n\
                 -A CILIUM_PRE_raw -s {c} -m comment --comment \"cilium: NOTRACK for pod traffic\" -j CT --notrack\n\
                 -A CILIUM_PRE_raw -d {c} -m comment --comment \"cilium: NOTRACK for pod traffic\" -j CT --notrack\n\
                 -A CILIUM_OUTPUT_raw -s {c} -m comment --comment \"cilium: NOTRACK for pod traffic\" -j CT --notrack\n\
                 -A CILIUM_OUTPUT_raw -d {c} -m comment --comment \"cilium: NOTRACK for pod traffic\" -j CT --notrack\n\
                 COMMIT\n"
            );
            return crate::netfilter::import::parse(&text).map_err(|source| SimError::GeneratedRules {
                what: "cilium NOTRACK",
                source,
            });
        }
    }
    let cfg = proxy_config(sc, node);
    // kube-proxy writes KUBE-SERVICES in Go map order: arbitrary, fixed per sync. A
    // seeded shuffle puts a Service at a random position, as on a real node.
    Ok(service::iptables::generate_with(
        &service_ports(sc),
        &cfg,
        service::iptables::ServiceOrder::Shuffled {
            seed: sc.seed ^ (node as u64).wrapping_mul(0x9e37_79b9),
        },
    ))
}

/// The node's own `iptables-save` dump (`nodes[].iptablesSave`, iptables mode only),
/// which stands for the rules kube-proxy would generate.
///
/// # Errors
/// [`SimError::GeneratedRules`] if the dump does not parse (validation checked it).
fn own_ruleset(sc: &Scenario, node: usize) -> Result<Option<Ruleset>, SimError> {
    let Some(text) = sc.nodes[node].iptables_save.as_deref() else {
        return Ok(None);
    };
    crate::netfilter::import::parse(text)
        .map(Some)
        .map_err(|source| SimError::GeneratedRules {
            what: "nodes[].iptablesSave",
            source,
        })
}

/// `rs` with the node's `extraRules` appended in order (a user chain the ruleset does
/// not have yet is created).
///
/// # Errors
/// [`SimError::GeneratedRules`] if a rule does not parse (validation checked each).
pub(super) fn with_extra_rules(sc: &Scenario, node: usize, mut rs: Ruleset) -> Result<Ruleset, SimError> {
    for r in &sc.nodes[node].extra_rules {
        let declare = rs.chain_id(r.table, &r.chain).is_none()
            && crate::netfilter::Hook::from_chain_name(&r.chain).is_none();
        rs = crate::netfilter::import::parse_into(rs, &r.to_restore_text(declare)).map_err(|source| {
            SimError::GeneratedRules {
                what: "nodes[].extraRules",
                source,
            }
        })?;
    }
    Ok(rs)
}

/// The kube-dns Service's `dns-tcp` port: a real kube-dns Service always declares TCP
/// 53 next to UDP 53 (CoreDNS manifests); scenarios often list only UDP. NodeLocal
/// DNSCache forwards over TCP (`force_tcp`), so its upstream port must exist.
fn add_dns_tcp_port(sc: &Scenario, out: &mut Vec<SvcPort>) {
    let Some(cache) = sc.dns.node_local_cache else {
        return;
    };
    if !cache.force_tcp {
        return;
    }
    let Some(s) = sc.dns.service.and_then(|id| sc.services.get(id.0 as usize)) else {
        return;
    };
    let Some(udp) = out
        .iter()
        .find(|p| p.namespace == s.namespace && p.name == s.name && p.port == 53)
        .cloned()
    else {
        return;
    };
    if out
        .iter()
        .any(|p| p.namespace == s.namespace && p.name == s.name && p.port == 53 && p.protocol == Proto::Tcp)
    {
        return;
    }
    let mut tcp = udp;
    tcp.port_name = "dns-tcp".into();
    tcp.protocol = Proto::Tcp;
    out.push(tcp);
}

/// NodeLocal DNSCache's own rules, as node-cache installs them on every node
/// (k8s.io/dns `cmd/node-cache/app/cache_app.go`, `initIptables`, each rule
/// `EnsureRule(Prepend, ...)`): NOTRACK in the raw table for traffic to and from the
/// listen address on port 53 (PREROUTING and OUTPUT) and for the health (8080) and
/// ready (8181) probes, plus filter-table ACCEPTs for the untracked traffic. Pod
/// queries to the cache therefore create no conntrack entry (docs/kernel-semantics.md
/// §Kubernetes nodes).
///
/// # Errors
/// [`SimError::GeneratedRules`] if the generated rules do not parse (a bug).
pub(super) fn with_node_local_dns_rules(sc: &Scenario, rs: Ruleset) -> Result<Ruleset, SimError> {
    let Some(cache) = sc.dns.node_local_cache else {
        return Ok(rs);
    };
    let ip = cache.address;
    let skip = "\"NodeLocal DNS Cache: skip conntrack\"";
    let allow = "\"NodeLocal DNS Cache: allow DNS traffic\"";
    // Prepend order: the last rule node-cache ensures ends up first.
    let mut raw = Vec::new();
    let mut filter = Vec::new();
    for (chain, spec, comment, target, table) in [
        (
            "PREROUTING",
            format!("-p tcp -d {ip}/32 --dport 53"),
            skip,
            "NOTRACK",
            0,
        ),
        (
            "PREROUTING",
            format!("-p udp -d {ip}/32 --dport 53"),
            skip,
            "NOTRACK",
            0,
        ),
        (
            "INPUT",
            format!("-p tcp -d {ip}/32 --dport 53"),
            allow,
            "ACCEPT",
            1,
        ),
        (
            "INPUT",
            format!("-p udp -d {ip}/32 --dport 53"),
            allow,
            "ACCEPT",
            1,
        ),
        (
            "OUTPUT",
            format!("-p tcp -s {ip}/32 --sport 53"),
            skip,
            "NOTRACK",
            0,
        ),
        (
            "OUTPUT",
            format!("-p udp -s {ip}/32 --sport 53"),
            skip,
            "NOTRACK",
            0,
        ),
        (
            "OUTPUT",
            format!("-p tcp -s {ip}/32 --sport 53"),
            allow,
            "ACCEPT",
            1,
        ),
        (
            "OUTPUT",
            format!("-p udp -s {ip}/32 --sport 53"),
            allow,
            "ACCEPT",
            1,
        ),
        (
            "OUTPUT",
            format!("-p tcp -d {ip}/32 --dport 53"),
            skip,
            "NOTRACK",
            0,
        ),
        (
            "OUTPUT",
            format!("-p udp -d {ip}/32 --dport 53"),
            skip,
            "NOTRACK",
            0,
        ),
        (
            "OUTPUT",
            format!("-p tcp -d {ip}/32 --dport 8080"),
            skip,
            "NOTRACK",
            0,
        ),
        (
            "OUTPUT",
            format!("-p tcp -s {ip}/32 --sport 8080"),
            skip,
            "NOTRACK",
            0,
        ),
        (
            "OUTPUT",
            format!("-p tcp -d {ip}/32 --dport 8181"),
            skip,
            "NOTRACK",
            0,
        ),
        (
            "OUTPUT",
            format!("-p tcp -s {ip}/32 --sport 8181"),
            skip,
            "NOTRACK",
            0,
        ),
    ] {
        let line = format!("-A {chain} {spec} -m comment --comment {comment} -j {target}");
        if table == 0 {
            raw.push(line)
        } else {
            filter.push(line)
        }
    }
    raw.reverse();
    filter.reverse();
    let text = format!(
        "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{}\nCOMMIT\n*filter\n{}\nCOMMIT\n",
        raw.join("\n"),
        filter.join("\n")
    );
    crate::netfilter::import::parse_into(rs, &text).map_err(|source| SimError::GeneratedRules {
        what: "NodeLocal DNSCache",
        source,
    })
}

/// The node's proxy data plane for the scenario's mode (`None` in iptables mode, whose
/// rules are the node's ruleset).
///
/// # Errors
/// [`SimError::Unsupported`] for IPVS schedulers the library does not model.
pub(super) fn node_proxy(sc: &Scenario, node: usize) -> Result<Option<NodeProxy>, SimError> {
    let n = &sc.nodes[node];
    let cfg = proxy_config(sc, node);
    let services = service_ports(sc);
    let imp = match sc.kube_proxy.mode {
        ProxyMode::Iptables => return Ok(None),
        ProxyMode::Nftables => ProxyImpl::Nftables(Box::new(NftablesProxy::new(
            &services,
            &NftablesConfig {
                proxy: cfg,
                service_cidrs: vec![sc.service_cidr],
            },
        ))),
        ProxyMode::Ipvs => {
            let kernel = KernelVersion::parse(sc.kernel.name).unwrap_or(KernelVersion::new(6, 18));
            let mut c = IpvsConfig::new(cfg, kernel);
            c.scheduler = match sc.kube_proxy.ipvs_scheduler {
                IpvsScheduler::Rr => Scheduler::Rr,
                IpvsScheduler::Lc => Scheduler::Lc,
                IpvsScheduler::Sh => Scheduler::Sh,
                other => {
                    return Err(SimError::Unsupported {
                        what: format!("kubeProxy.ipvs.scheduler `{other:?}` (rr, lc and sh are modelled)"),
                    });
                }
            };
            if let Some(m) = sc.kube_proxy.ipvs_conn_reuse_mode {
                c.conn_reuse_mode = m;
            }
            ProxyImpl::Ipvs(Box::new(IpvsProxy::new(&services, &c)))
        }
        ProxyMode::Ebpf => {
            let e = sc.kube_proxy.ebpf;
            let dynamic = CtMapSizes::dynamic(n.memory.as_bytes(), DYNAMIC_SIZE_RATIO);
            let cfg = EbpfConfig {
                node_name: n.name.clone(),
                node_ips: vec![n.ip],
                ct_sizes: CtMapSizes {
                    tcp: e.ct_global_tcp_max.unwrap_or(dynamic.tcp),
                    any: e.ct_global_any_max.unwrap_or(dynamic.any),
                },
                notrack: e.notrack,
                ..EbpfConfig::default()
            };
            ProxyImpl::Ebpf(Box::new(EbpfProxy::new(&services, &cfg)))
        }
    };
    // nftables mode always masquerades fully-random (see `service::nftables`).
    let random_fully = sc.kube_proxy.random_fully || matches!(imp, ProxyImpl::Nftables(_));
    Ok(Some(NodeProxy {
        imp,
        random_fully,
        rng: SimRng::stream(sc.seed, &format!("proxy/{}", n.name)),
        connect_cost: LookupCost::default(),
    }))
}

/// The mode's name as written in scenario files.
pub fn proxy_mode_name(m: ProxyMode) -> &'static str {
    match m {
        ProxyMode::Iptables => "iptables",
        ProxyMode::Ipvs => "ipvs",
        ProxyMode::Nftables => "nftables",
        ProxyMode::Ebpf => "ebpf",
    }
}

/// The ruleset of a node of a scenario, in iptables-save format.
///
/// # Errors
/// [`SimError`] for unknown nodes or unsupported modes.
pub fn node_rules(scenario: &Scenario, node: &str) -> Result<String, SimError> {
    let idx = scenario
        .nodes
        .iter()
        .position(|n| n.name == node)
        .ok_or_else(|| SimError::UnknownName {
            flag: "--node",
            message: format!("no node named `{node}` in {}", scenario.file),
        })?;
    let rs = with_extra_rules(
        scenario,
        idx,
        with_node_local_dns_rules(scenario, node_ruleset(scenario, idx)?)?,
    )?;
    let mut out = String::new();
    if rs.table(crate::netfilter::TableKind::Raw).rule_count()
        + rs.table(crate::netfilter::TableKind::Nat).rule_count()
        + rs.table(crate::netfilter::TableKind::Filter).rule_count()
        > 0
    {
        out.push_str(&crate::netfilter::export::to_iptables_save(&rs));
    }
    match node_proxy(scenario, idx)?.map(|p| p.imp) {
        None => {}
        Some(ProxyImpl::Nftables(p)) => out.push_str(&p.table().to_nft_text()),
        Some(ProxyImpl::Ipvs(p)) => {
            out.push_str(&crate::netfilter::export::to_iptables_save(p.ruleset()));
            out.push_str(&ipvsadm_list(&p));
        }
        Some(ProxyImpl::Ebpf(p)) => {
            let o = p.objects();
            out.push_str(&format!(
                "# cilium kube-proxy replacement: no per-Service rules\n# lb4 services: {} frontends, {} service-map entries, {} backends, {} rev-NAT entries\n# CT maps: tcp {} entries, any {} entries (LRU)\n",
                o.frontends,
                o.service_entries,
                o.backends,
                o.rev_nat,
                p.ct_tcp().capacity(),
                p.ct_any().capacity()
            ));
        }
    }
    Ok(out)
}

/// `ipvsadm -Ln`-like listing of the virtual servers.
#[must_use]
pub fn ipvsadm_list(p: &crate::service::ipvs::IpvsProxy) -> String {
    use std::fmt::Write as _;
    let mut s = String::from(
        "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    );
    let sched = match p.config().scheduler {
        crate::service::ipvs::Scheduler::Rr => "rr",
        crate::service::ipvs::Scheduler::Lc => "lc",
        crate::service::ipvs::Scheduler::Sh => "sh",
    };
    for vs in p.virtual_servers() {
        let proto = match vs.proto {
            crate::packet::Proto::Udp => "UDP",
            _ => "TCP",
        };
        let _ = writeln!(s, "{proto}  {}:{} {sched}", vs.addr, vs.port);
        for rs in vs.real_servers() {
            let _ = writeln!(
                s,
                "  -> {:<28} Masq    {:<6} {:<10} {}",
                rs.addr.to_string(),
                rs.weight,
                rs.active,
                rs.inactive
            );
        }
    }
    s
}
