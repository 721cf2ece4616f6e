//! Building the simulated world from a validated scenario: topology, per-node rulesets
//! and conntrack tables, pods with their sockets, listeners and resolvers.

use super::SimError;
use super::cpu::NodeCpus;
use crate::conntrack::{ConntrackTable, CtConfig, NetnsConfig};
use crate::datapath::NetnsPath;
use crate::dns::{ResolvConf, Zone};
use crate::netfilter::Ruleset;
use crate::packet::Proto;
use crate::rng::SimRng;
use crate::scenario::{Cni, IpvsScheduler, ProxyMode, Scenario, ServiceType, WorkloadTarget};
use crate::service::ebpf::{CtMapSizes, DYNAMIC_SIZE_RATIO, EbpfConfig, EbpfProxy};
use crate::service::ipvs::{IpvsConfig, IpvsProxy, KernelVersion, Scheduler};
use crate::service::nftables::{NftablesConfig, NftablesProxy};
use crate::service::node::{NodeProxy, ProxyImpl};
use crate::service::proxy::LookupCost;
use crate::service::{self, Endpoint as SvcEndpoint, ProxyConfig, ServicePort as SvcPort};
use crate::socket::{Listener, SocketConfig, SocketTable};
use crate::time::SimTime;
use crate::topology::{CniFlavour, NetnsId, Topology, TopologyBuilder};
use std::net::{Ipv4Addr, SocketAddrV4};

/// One simulated node: its CPUs, conntrack table and host namespace datapath.
#[derive(Debug)]
pub(super) struct Node {
    pub(super) name: String,
    pub(super) ct: ConntrackTable,
    pub(super) host: NetnsPath,
    /// Its CPUs' bookings.
    pub(super) cpu: NodeCpus,
    /// Busy nanoseconds, cumulative.
    pub(super) busy_ns: u128,
    /// Of which evaluating rules.
    pub(super) rules_ns: u128,
    /// Rules evaluated by packets that created an entry, and how many such packets.
    pub(super) rules_new: u64,
    pub(super) new_packets: u64,
    /// Proxy data-plane work of packets that created an entry, and of all packets.
    pub(super) proxy_new: crate::report::LookupTotals,
    pub(super) proxy_all: crate::report::LookupTotals,
    /// Highest proxy connection-table size seen (IPVS connections, BPF CT entries).
    pub(super) proxy_peak: u64,
    /// When Cilium's next CT GC pass runs (`conntrack-gc-interval`, dynamic).
    pub(super) bpf_gc_next: SimTime,
    pub(super) cpus: u32,
}

impl Node {
    /// Samples the proxy's connection-table size (running due IPVS timers and BPF CT GC
    /// passes first).
    pub(super) fn sample_proxy(&mut self, now: SimTime) {
        let Some(np) = self.host.proxy.as_mut() else {
            return;
        };
        let size = match &mut np.imp {
            ProxyImpl::Ipvs(p) => {
                p.expire(now);
                p.connections()
            }
            ProxyImpl::Ebpf(p) => {
                if now >= self.bpf_gc_next {
                    self.bpf_gc_next = p.gc(now).next_at;
                }
                p.ct_tcp().len() + p.ct_any().len()
            }
            ProxyImpl::Nftables(_) => 0,
        };
        self.proxy_peak = self.proxy_peak.max(size as u64);
    }
}

/// What a pod is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PodRole {
    /// A client pod of workload `wl`.
    Client { wl: u16 },
    /// A backend of scenario service `svc`.
    Server { svc: u16 },
}

/// One pod.
#[derive(Debug)]
pub(super) struct Pod {
    pub(super) netns: NetnsId,
    pub(super) node: u16,
    pub(super) ip: Ipv4Addr,
    pub(super) role: PodRole,
    pub(super) sockets: SocketTable,
    /// Listener of a server pod (one per service port; the first is used).
    pub(super) listener: Option<Listener>,
    /// Resolver configuration of a client pod.
    pub(super) resolv: Option<ResolvConf>,
}

/// The static part of the world.
#[derive(Debug)]
pub(super) struct World {
    pub(super) topo: Topology,
    pub(super) nodes: Vec<Node>,
    pub(super) pods: Vec<Pod>,
    /// Topology namespace index → host node index.
    pub(super) host_of_netns: Vec<Option<u16>>,
    /// Topology namespace index → pod index.
    pub(super) pod_of_netns: Vec<Option<u32>>,
    /// Per workload: its client pods.
    pub(super) wl_pods: Vec<Vec<u32>>,
    /// Per workload: where requests go (address and port as the client dials them).
    pub(super) wl_target: Vec<SocketAddrV4>,
    /// The cluster DNS zone.
    pub(super) zone: Zone,
    /// Per node: (nat rules, filter rules).
    pub(super) nat_rules: Vec<(u64, u64)>,
    /// The kube-dns ClusterIP (NodeLocal DNSCache's upstream).
    pub(super) kube_dns: Ipv4Addr,
}

fn cni_flavour(c: Cni) -> CniFlavour {
    match c {
        Cni::FlannelVxlan => CniFlavour::FlannelVxlan,
        Cni::CalicoIpip => CniFlavour::CalicoIpip,
        Cni::CalicoBgp => CniFlavour::CalicoBgp,
        Cni::CiliumNative => CniFlavour::CiliumNative,
    }
}

/// The kube-proxy view of the scenario's Services (plus background Services).
fn service_ports(sc: &Scenario) -> Vec<SvcPort> {
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
        ProxyMode::Iptables => {}
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
/// queries to the cache therefore create no conntrack entry (kernel-semantics.md §7).
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

impl World {
    /// The node whose host namespace `netns` is (`None` for a pod namespace).
    pub(super) fn host_of(&self, netns: NetnsId) -> Option<u16> {
        self.host_of_netns.get(netns.index()).copied().flatten()
    }

    /// Builds the world.
    pub(super) fn build(sc: &Scenario) -> Result<World, SimError> {
        let mut tb = TopologyBuilder::new(cni_flavour(sc.cni))
            .with_nodelocaldns_addrs(sc.dns.node_local_cache.iter().map(|c| c.address).collect());
        let node_ids: Vec<_> = sc
            .nodes
            .iter()
            .map(|n| tb.add_node(&n.name, n.ip, n.pod_cidr))
            .collect();
        // Pods: service endpoints first, then workload pods.
        let mut pod_specs: Vec<(String, usize, Ipv4Addr, PodRole)> = Vec::new();
        for (si, s) in sc.services.iter().enumerate() {
            for (k, e) in s.endpoints.iter().enumerate() {
                #[allow(clippy::cast_possible_truncation)]
                pod_specs.push((
                    format!("{}-{k}", s.name),
                    e.node.0 as usize,
                    e.ip,
                    PodRole::Server { svc: si as u16 },
                ));
            }
        }
        let mut wl_pods = vec![Vec::new(); sc.workloads.len()];
        for (wi, w) in sc.workloads.iter().enumerate() {
            for (k, ip) in w.pods.iter().enumerate() {
                wl_pods[wi].push(u32::try_from(pod_specs.len()).unwrap_or(u32::MAX));
                #[allow(clippy::cast_possible_truncation)]
                pod_specs.push((
                    format!("{}-{k}", w.name),
                    w.node.0 as usize,
                    *ip,
                    PodRole::Client { wl: wi as u16 },
                ));
            }
        }
        let pod_netns: Vec<NetnsId> = pod_specs
            .iter()
            .map(|(name, node, ip, _)| tb.add_pod(node_ids[*node], name, *ip))
            .collect();
        let topo = tb.build().map_err(SimError::Topology)?;

        let mut host_of_netns = Vec::new();
        let mut nodes = Vec::with_capacity(sc.nodes.len());
        let mut nat_rules = Vec::new();
        for (i, n) in sc.nodes.iter().enumerate() {
            let ruleset = with_node_local_dns_rules(sc, node_ruleset(sc, i)?)?;
            let host = topo
                .host_netns(node_ids[i])
                .ok_or_else(|| SimError::Internal(format!("node {} has no host namespace", n.name)))?;
            let cpus = u16::try_from(n.cpus.clamp(1, 1024)).unwrap_or(1);
            let cfg = CtConfig::new(&n.sysctls.values, sc.kernel, cpus);
            let mut ct = ConntrackTable::new(cfg, SimRng::stream(sc.seed, &format!("conntrack/{}", n.name)))
                .map_err(|source| SimError::Conntrack {
                    node: n.name.clone(),
                    source,
                })?;
            ct.set_netns(0, NetnsConfig::enabled(&n.sysctls.values).as_init());
            let local: Vec<Ipv4Addr> = topo.local_addrs(host).collect();
            let mut path = NetnsPath::new(host, 0, ruleset, local);
            if let Some(p) = node_proxy(sc, i)? {
                path = path.with_proxy(p);
            }
            // IPVS mode: kube-proxy's constant iptables rules live with the IPVS model.
            let rules_of = |t| match path.proxy.as_ref().map(|p| &p.imp) {
                Some(ProxyImpl::Ipvs(p)) => p.ruleset().table(t).rule_count() as u64,
                _ => path.rule_count(t) as u64,
            };
            nat_rules.push((
                rules_of(crate::netfilter::TableKind::Nat),
                rules_of(crate::netfilter::TableKind::Filter),
            ));
            let idx = host.index();
            if host_of_netns.len() <= idx {
                host_of_netns.resize(idx + 1, None);
            }
            host_of_netns[idx] = Some(u16::try_from(i).unwrap_or(u16::MAX));
            nodes.push(Node {
                name: n.name.clone(),
                ct,
                host: path,
                cpu: NodeCpus::new(cpus, sc.cost.per_packet),
                busy_ns: 0,
                rules_ns: 0,
                rules_new: 0,
                new_packets: 0,
                proxy_new: crate::report::LookupTotals::default(),
                proxy_all: crate::report::LookupTotals::default(),
                proxy_peak: 0,
                bpf_gc_next: SimTime::ZERO + crate::service::ebpf::GcSchedule::default().interval,
                cpus: u32::from(cpus),
            });
        }

        // The cluster DNS zone and the nameserver pods resolve against.
        let mut zone = Zone::new(&sc.dns.cluster_domain);
        for s in &sc.services {
            match (s.service_type, s.cluster_ip) {
                (ServiceType::Headless, _) => {
                    zone.add_headless_service(
                        &s.namespace,
                        &s.name,
                        s.endpoints.iter().map(|e| e.ip).collect(),
                    );
                }
                (_, Some(ip)) => {
                    zone.add_service(&s.namespace, &s.name, ip);
                }
                _ => {}
            }
        }
        let kube_dns = sc
            .dns
            .service
            .and_then(|id| sc.services.get(id.0 as usize))
            .and_then(|s| s.cluster_ip)
            .unwrap_or(Ipv4Addr::new(10, 96, 0, 10));
        // With NodeLocal DNSCache kubelet's `--cluster-dns` is the cache's link-local
        // address (KEP-1024), so pods' resolv.conf names it.
        let nameserver = sc.dns.node_local_cache.map_or(kube_dns, |c| c.address);

        let mut pods = Vec::with_capacity(pod_specs.len());
        let mut pod_of_netns = Vec::new();
        for (pi, ((name, node, ip, role), netns)) in pod_specs.iter().zip(&pod_netns).enumerate() {
            let sys = &sc.nodes[*node].sysctls.values;
            let scfg = SocketConfig::from_sysctls(sys).map_err(|source| SimError::Socket {
                pod: name.clone(),
                source,
            })?;
            let sockets = SocketTable::new(scfg.clone(), SimRng::stream(sc.seed, &format!("socket/{name}")));
            let (listener, resolv) = match role {
                PodRole::Server { svc } => {
                    let s = &sc.services[usize::from(*svc)];
                    let port = s.ports.first().map_or(80, |p| p.target_port);
                    let backlog = s.server.effective_backlog(sys.somaxconn);
                    (
                        Some(Listener::new(SocketAddrV4::new(*ip, port), backlog, &scfg)),
                        None,
                    )
                }
                PodRole::Client { wl } => {
                    let w = &sc.workloads[usize::from(*wl)];
                    let mut rc = ResolvConf::kubernetes(&w.namespace, &sc.dns.cluster_domain, nameserver);
                    rc.ndots = sc.dns.ndots;
                    rc.single_request_reopen = w.dns.single_request_reopen;
                    if !w.dns.parallel_aaaa {
                        rc.single_request = true;
                    }
                    (None, Some(rc))
                }
            };
            let idx = netns.index();
            if pod_of_netns.len() <= idx {
                pod_of_netns.resize(idx + 1, None);
            }
            pod_of_netns[idx] = Some(u32::try_from(pi).unwrap_or(u32::MAX));
            pods.push(Pod {
                netns: *netns,
                node: u16::try_from(*node).unwrap_or(u16::MAX),
                ip: *ip,
                role: *role,
                sockets,
                listener,
                resolv,
            });
        }
        let n = host_of_netns.len().max(pod_of_netns.len());
        host_of_netns.resize(n, None);
        pod_of_netns.resize(n, None);

        let wl_target = sc
            .workloads
            .iter()
            .map(|w| match w.target {
                WorkloadTarget::Address(a) => a,
                WorkloadTarget::Service { service, port } => {
                    let s = &sc.services[service.0 as usize];
                    let p = &s.ports[port];
                    match (s.service_type, s.cluster_ip) {
                        // Headless: clients dial a pod address; chosen per connection.
                        (ServiceType::Headless, _) | (_, None) => SocketAddrV4::new(
                            s.endpoints.first().map_or(Ipv4Addr::UNSPECIFIED, |e| e.ip),
                            p.target_port,
                        ),
                        (_, Some(ip)) => SocketAddrV4::new(ip, p.port),
                    }
                }
            })
            .collect();

        Ok(World {
            topo,
            nodes,
            pods,
            host_of_netns,
            pod_of_netns,
            wl_pods,
            wl_target,
            zone,
            nat_rules,
            kube_dns,
        })
    }
}
