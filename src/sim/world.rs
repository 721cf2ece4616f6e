//! Building the simulated world from a validated scenario: topology, per-node rulesets
//! and conntrack tables, pods with their sockets, listeners and resolvers.

use super::SimError;
use super::cpu::NodeCpus;
use super::node_rules::{node_proxy, node_ruleset, with_extra_rules, with_node_local_dns_rules};
use crate::conntrack::{ConntrackTable, CtConfig, NetnsConfig};
use crate::datapath::NetnsPath;
use crate::dns::{ResolvConf, Zone};
use crate::rng::SimRng;
use crate::scenario::{Cni, Scenario, ServiceType, WorkloadTarget};
use crate::service::node::ProxyImpl;
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
        let (specs, wl_pods) = pod_specs(sc);
        let pod_netns: Vec<NetnsId> = specs
            .iter()
            .map(|p| tb.add_pod(node_ids[p.node], &p.name, p.ip))
            .collect();
        let topo = tb.build().map_err(SimError::Topology)?;

        let mut host_of_netns = Vec::new();
        let mut nodes = Vec::with_capacity(sc.nodes.len());
        let mut nat_rules = Vec::new();
        for (i, id) in node_ids.iter().enumerate() {
            let host = topo.host_netns(*id).ok_or_else(|| {
                SimError::Internal(format!("node {} has no host namespace", sc.nodes[i].name))
            })?;
            let node = build_node(sc, i, &topo, host)?;
            // IPVS mode: kube-proxy's constant iptables rules live with the IPVS model.
            let rules_of = |t| match node.host.proxy.as_ref().map(|p| &p.imp) {
                Some(ProxyImpl::Ipvs(p)) => p.ruleset().table(t).rule_count() as u64,
                _ => node.host.rule_count(t) as u64,
            };
            nat_rules.push((
                rules_of(crate::netfilter::TableKind::Nat),
                rules_of(crate::netfilter::TableKind::Filter),
            ));
            set_at(
                &mut host_of_netns,
                host.index(),
                u16::try_from(i).unwrap_or(u16::MAX),
            );
            nodes.push(node);
        }

        let zone = cluster_zone(sc);
        let kube_dns = sc
            .dns
            .service
            .and_then(|id| sc.services.get(id.0 as usize))
            .and_then(|s| s.cluster_ip)
            .unwrap_or(Ipv4Addr::new(10, 96, 0, 10));
        // With NodeLocal DNSCache kubelet's `--cluster-dns` is the cache's link-local
        // address (KEP-1024), so pods' resolv.conf names it.
        let nameserver = sc.dns.node_local_cache.map_or(kube_dns, |c| c.address);

        let mut pods = Vec::with_capacity(specs.len());
        let mut pod_of_netns = Vec::new();
        for (pi, (spec, netns)) in specs.iter().zip(&pod_netns).enumerate() {
            pods.push(build_pod(sc, spec, *netns, nameserver)?);
            set_at(
                &mut pod_of_netns,
                netns.index(),
                u32::try_from(pi).unwrap_or(u32::MAX),
            );
        }
        let n = host_of_netns.len().max(pod_of_netns.len());
        host_of_netns.resize(n, None);
        pod_of_netns.resize(n, None);

        Ok(World {
            topo,
            nodes,
            pods,
            host_of_netns,
            pod_of_netns,
            wl_pods,
            wl_target: workload_targets(sc),
            zone,
            nat_rules,
            kube_dns,
        })
    }
}

/// `v[idx] = Some(value)`, growing `v` as needed.
fn set_at<T: Copy>(v: &mut Vec<Option<T>>, idx: usize, value: T) {
    if v.len() <= idx {
        v.resize(idx + 1, None);
    }
    v[idx] = Some(value);
}

/// A pod to create.
struct PodSpec {
    name: String,
    node: usize,
    ip: Ipv4Addr,
    role: PodRole,
}

/// The scenario's pods, Service endpoints first, then workload pods; and each
/// workload's pods (indices into the first list).
fn pod_specs(sc: &Scenario) -> (Vec<PodSpec>, Vec<Vec<u32>>) {
    let mut specs = Vec::new();
    for (si, s) in sc.services.iter().enumerate() {
        for (k, e) in s.endpoints.iter().enumerate() {
            specs.push(PodSpec {
                name: format!("{}-{k}", s.name),
                node: e.node.0 as usize,
                ip: e.ip,
                role: PodRole::Server {
                    svc: u16::try_from(si).unwrap_or(u16::MAX),
                },
            });
        }
    }
    let mut wl_pods = vec![Vec::new(); sc.workloads.len()];
    for (wi, w) in sc.workloads.iter().enumerate() {
        for (k, ip) in w.pods.iter().enumerate() {
            wl_pods[wi].push(u32::try_from(specs.len()).unwrap_or(u32::MAX));
            specs.push(PodSpec {
                name: format!("{}-{k}", w.name),
                node: w.pod_node(k).0 as usize,
                ip: *ip,
                role: PodRole::Client {
                    wl: u16::try_from(wi).unwrap_or(u16::MAX),
                },
            });
        }
    }
    (specs, wl_pods)
}

/// Node `i`: its conntrack table, its host namespace's rules and data plane, its CPUs.
fn build_node(sc: &Scenario, i: usize, topo: &Topology, host: NetnsId) -> Result<Node, SimError> {
    let n = &sc.nodes[i];
    let ruleset = with_extra_rules(sc, i, with_node_local_dns_rules(sc, node_ruleset(sc, i)?)?)?;
    let cpus = u16::try_from(n.cpus.clamp(1, 1024)).unwrap_or(1);
    let cfg = CtConfig::new(&n.sysctls.values, sc.kernel, cpus);
    let mut ct = ConntrackTable::new(cfg, SimRng::stream(sc.seed, &format!("conntrack/{}", n.name)))
        .map_err(|source| SimError::Conntrack {
            node: n.name.clone(),
            source,
        })?;
    ct.set_netns(0, NetnsConfig::enabled(&n.sysctls.values).as_init());
    warm_start(&mut ct, n)?;
    let local: Vec<Ipv4Addr> = topo.local_addrs(host).collect();
    let mut path = NetnsPath::new(host, 0, ruleset, local);
    if let Some(p) = node_proxy(sc, i)? {
        path = path.with_proxy(p);
    }
    Ok(Node {
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
    })
}

/// Puts the node's warm-start entries (`nodes[].conntrack.warmStart`) into its table
/// at time 0. Their tuples are synthetic, from 198.18.0.0/15 (the benchmarking range,
/// RFC 2544), so they occupy the table, age, expire and can be early-dropped like the
/// real node's entries, but never match a simulated flow.
fn warm_start(ct: &mut ConntrackTable, n: &crate::scenario::NodeConfig) -> Result<(), SimError> {
    use crate::conntrack::{WarmEntry, WarmOutcome};
    use crate::packet::{Proto, Tuple};
    let mut k: u32 = 0;
    for g in &n.conntrack_start.warm_start {
        for j in 0..g.count {
            // 28,000 source ports per source address; 2^17 addresses in the range.
            let src = Ipv4Addr::from(0xc612_0000u32 | ((k / 28_000) & 0x1_ffff));
            let sport = u16::try_from(32_768 + k % 28_000).unwrap_or(u16::MAX);
            let dport = match g.protocol {
                Proto::Udp => 53,
                _ => 80,
            };
            let tuple = Tuple::new(g.protocol, src, sport, Ipv4Addr::new(198, 19, 255, 254), dport);
            let entry = WarmEntry {
                tuple,
                tcp_state: g.state,
                assured: g.assured,
                expires_in: g.expires_in(j),
            };
            let outcome = ct
                .insert_warm(0, &entry, SimTime::ZERO)
                .map_err(|source| SimError::Conntrack {
                    node: n.name.clone(),
                    source,
                })?;
            debug_assert_eq!(
                outcome,
                WarmOutcome::Inserted,
                "invariant: synthetic tuples are unique"
            );
            k = k.wrapping_add(1);
        }
    }
    Ok(())
}

/// The cluster DNS zone: every Service's name, a headless Service's pod addresses.
fn cluster_zone(sc: &Scenario) -> Zone {
    let mut zone = Zone::new(&sc.dns.cluster_domain);
    for s in &sc.services {
        match (s.service_type, s.cluster_ip) {
            (ServiceType::Headless, _) => {
                zone.add_headless_service(&s.namespace, &s.name, s.endpoints.iter().map(|e| e.ip).collect());
            }
            (_, Some(ip)) => {
                zone.add_service(&s.namespace, &s.name, ip);
            }
            _ => {}
        }
    }
    zone
}

/// A pod: its sockets, and a server's listener or a client's resolver configuration
/// (naming `nameserver`).
fn build_pod(sc: &Scenario, spec: &PodSpec, netns: NetnsId, nameserver: Ipv4Addr) -> Result<Pod, SimError> {
    let sys = &sc.nodes[spec.node].sysctls.values;
    let scfg = SocketConfig::from_sysctls(sys).map_err(|source| SimError::Socket {
        pod: spec.name.clone(),
        source,
    })?;
    let sockets = SocketTable::new(
        scfg.clone(),
        SimRng::stream(sc.seed, &format!("socket/{}", spec.name)),
    );
    let (listener, resolv) = match spec.role {
        PodRole::Server { svc } => {
            let s = &sc.services[usize::from(svc)];
            let port = s.ports.first().map_or(80, |p| p.target_port);
            let backlog = s.server.effective_backlog(sys.somaxconn);
            (
                Some(Listener::new(SocketAddrV4::new(spec.ip, port), backlog, &scfg)),
                None,
            )
        }
        PodRole::Client { wl } => {
            let w = &sc.workloads[usize::from(wl)];
            let mut rc = ResolvConf::kubernetes(&w.namespace, &sc.dns.cluster_domain, nameserver);
            rc.ndots = sc.dns.ndots;
            rc.single_request_reopen = w.dns.single_request_reopen;
            if !w.dns.parallel_aaaa {
                rc.single_request = true;
            }
            (None, Some(rc))
        }
    };
    Ok(Pod {
        netns,
        node: u16::try_from(spec.node).unwrap_or(u16::MAX),
        ip: spec.ip,
        role: spec.role,
        sockets,
        listener,
        resolv,
    })
}

/// Where each workload's requests go, as its clients dial them.
fn workload_targets(sc: &Scenario) -> Vec<SocketAddrV4> {
    sc.workloads
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
        .collect()
}
