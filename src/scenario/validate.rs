//! Stage 2: checks a parsed [`ScenarioFile`] and builds the [`Scenario`], collecting
//! every problem instead of stopping at the first.
//!
//! One function per part of the file, called in this order: the top level
//! ([`check_top_level`]), `kubeProxy`, `cost`, `nodes`, `services`, `dns`, `workloads`,
//! `backgroundServices`, `variants`. Addresses are allocated in declaration order (nodes,
//! then Service endpoints, then workload pods, then background Services) from one
//! [`Addresses`] state, so the same file always gives the same addresses. A variant is
//! checked here for its own declaration only; checking it against the base (the whole
//! pipeline again, with its overrides) is the loader's job.

use super::error::{FieldPath, PathSegment, Pending, ProblemKind};
use super::file::{self, ProtocolSpec, ScenarioFile, ServiceTimeSpec};
use super::overrides::Override;
use super::source::SourceMap;
use super::sysctl::{KubeProxyConntrack, effective_sysctls};
use super::{
    BackgroundService, ConnectionConfig, CostModel, DnsConfig, EbpfSettings, Endpoint, KubeProxyConfig,
    NodeConfig, NodeId, NodeLocalDnsCache, RateStep, RetryPolicy, Scenario, ServerConfig, ServiceConfig,
    ServiceId, ServicePort, ServiceTime, ServiceType, Variant, WorkloadConfig, WorkloadDns, WorkloadId,
    WorkloadTarget,
};
use super::{ConnectionMode, DnsMode};
use crate::conntrack::ThreadPlacement;
use crate::kernel::KernelProfile;
use crate::packet::{Cidr, Proto};
use crate::time::SimDuration;
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};

macro_rules! fp {
    ($($s:expr),* $(,)?) => { FieldPath(vec![$(PathSegment::from($s)),*]) };
}

/// Collects problems.
#[derive(Default)]
struct Checker {
    problems: Vec<Pending>,
}

impl Checker {
    fn bad(&mut self, kind: ProblemKind, field: FieldPath, message: impl Into<String>) {
        self.problems.push(Pending::new(kind, field, message));
    }

    fn value(&mut self, field: FieldPath, message: impl Into<String>) {
        self.bad(ProblemKind::BadValue, field, message);
    }

    /// Parses a CIDR, or reports it and returns `fallback` so checking goes on.
    fn cidr(&mut self, text: Option<&str>, fallback: &str, field: FieldPath) -> Cidr {
        let fb = fallback.parse().unwrap_or(Cidr::ANY);
        match text {
            None => fb,
            Some(t) => t.parse().unwrap_or_else(|e| {
                self.value(field, format!("{e}"));
                fb
            }),
        }
    }

    fn ip(&mut self, text: &str, field: FieldPath) -> Option<Ipv4Addr> {
        match text.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.value(field, format!("`{text}` is not an IPv4 address"));
                None
            }
        }
    }
}

/// The number of addresses in `c`.
fn size_of(c: Cidr) -> u64 {
    1u64 << (32 - u32::from(c.len()))
}

/// Whether two prefixes share an address.
fn overlaps(a: Cidr, b: Cidr) -> bool {
    a.contains(b.addr()) || b.contains(a.addr())
}

/// Hands out pod addresses from each node's pod CIDR: `.0` is the network, `.1` the
/// bridge/gateway (flannel's `cni0`), the last address the broadcast.
struct PodPool {
    next: Vec<u64>,
    exhausted: BTreeSet<usize>,
    /// Addresses given explicitly (`endpoints[].ips`): allocation skips them.
    pinned: BTreeSet<Ipv4Addr>,
    /// Of those, the ones already given to an endpoint.
    pinned_used: BTreeSet<Ipv4Addr>,
}

impl PodPool {
    fn take(&mut self, node: usize, cidr: Cidr) -> Option<Ipv4Addr> {
        let n = self.next.get_mut(node)?;
        loop {
            if *n + 1 >= size_of(cidr) {
                return None;
            }
            let ip = cidr.nth(u32::try_from(*n).ok()?)?;
            *n += 1;
            if !self.pinned.contains(&ip) {
                return Some(ip);
            }
        }
    }
}

/// The address state shared by the parts of the file that place things in the
/// cluster (Services, workloads, background Services), handed out in declaration
/// order: pod addresses per node, ClusterIPs from `serviceCIDR`, node ports from 30000.
struct Addresses<'a> {
    nodes: &'a [NodeConfig],
    pods: PodPool,
    service_cidr: Cidr,
    used_service_ips: BTreeSet<Ipv4Addr>,
    next_service_ip: u64,
    used_node_ports: BTreeSet<u16>,
    next_node_port: u16,
}

impl<'a> Addresses<'a> {
    fn new(nodes: &'a [NodeConfig], service_cidr: Cidr) -> Addresses<'a> {
        Addresses {
            nodes,
            pods: PodPool {
                next: vec![2; nodes.len()],
                exhausted: BTreeSet::new(),
                pinned: BTreeSet::new(),
                pinned_used: BTreeSet::new(),
            },
            service_cidr,
            used_service_ips: BTreeSet::new(),
            next_service_ip: 2,
            used_node_ports: BTreeSet::new(),
            next_node_port: 30_000,
        }
    }

    /// Claims the explicit ClusterIPs and node ports first, so allocation skips them,
    /// and reports the ones used twice.
    fn reserve_explicit(&mut self, c: &mut Checker, services: &[file::ServiceSpec]) {
        for (i, s) in services.iter().enumerate() {
            if let Some(t) = s.cluster_ip.as_deref()
                && s.service_type != ServiceType::Headless
                && let Ok(ip) = t.parse::<Ipv4Addr>()
                && !self.used_service_ips.insert(ip)
            {
                c.bad(
                    ProblemKind::Duplicate,
                    fp!("services", i, "clusterIP"),
                    format!("clusterIP {ip} is used twice"),
                );
            }
            for (j, p) in s.ports.iter().enumerate() {
                if let Some(np) = p.node_port
                    && !self.used_node_ports.insert(np)
                {
                    c.bad(
                        ProblemKind::Duplicate,
                        fp!("services", i, "ports", j, "nodePort"),
                        format!("nodePort {np} is used twice"),
                    );
                }
            }
        }
    }

    /// The next pod address on `node`. A full podCIDR is reported once per node (at
    /// `field`); then `0.0.0.0` stands in so checking goes on.
    fn pod(&mut self, c: &mut Checker, node: usize, field: FieldPath) -> Ipv4Addr {
        let cidr = self.nodes[node].pod_cidr;
        self.pods.take(node, cidr).unwrap_or_else(|| {
            if self.pods.exhausted.insert(node) {
                c.bad(
                    ProblemKind::Exhausted,
                    field,
                    format!(
                        "node `{}` has no pod address left in its podCIDR {}/{} ({} pods fit)",
                        self.nodes[node].name,
                        cidr.addr(),
                        cidr.len(),
                        size_of(cidr).saturating_sub(3)
                    ),
                );
            }
            Ipv4Addr::UNSPECIFIED
        })
    }

    /// The next free ClusterIP (from `.2` of `serviceCIDR`), or `None` when it is full.
    fn service_ip(&mut self) -> Option<Ipv4Addr> {
        while self.next_service_ip + 1 < size_of(self.service_cidr) {
            let ip = self.service_cidr.nth(u32::try_from(self.next_service_ip).ok()?)?;
            self.next_service_ip += 1;
            if self.used_service_ips.insert(ip) {
                return Some(ip);
            }
        }
        None
    }

    /// The next free node port from 30000 (32767 once the range is used up).
    fn node_port(&mut self) -> u16 {
        while self.used_node_ports.contains(&self.next_node_port) && self.next_node_port < 32_767 {
            self.next_node_port += 1;
        }
        self.used_node_ports.insert(self.next_node_port);
        self.next_node_port
    }
}

/// Nodes by name, for the references of endpoints and workloads.
struct NodeLookup<'a> {
    nodes: &'a [NodeConfig],
    index: BTreeMap<&'a str, usize>,
}

impl<'a> NodeLookup<'a> {
    fn new(nodes: &'a [NodeConfig]) -> NodeLookup<'a> {
        // Reversed, so the first of two nodes with one name wins.
        let index = nodes
            .iter()
            .enumerate()
            .rev()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        NodeLookup { nodes, index }
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Every node name, for messages.
    fn names(&self) -> String {
        let v: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        v.join(", ")
    }
}

/// What stage 2 found.
pub(crate) struct Checked {
    /// The scenario, or the problems of every part of the file but `variants`.
    pub(crate) base: Result<Scenario, Vec<Pending>>,
    /// One entry per variant, in file order (the scenario's `variants` in the same order).
    pub(crate) variants: Vec<VariantCheck>,
}

/// A variant's own problems: a duplicate name, `set` lines that do not parse.
pub(crate) struct VariantCheck {
    pub(crate) problems: Vec<Pending>,
    /// Every `set` line parsed, so the variant can be checked against the base.
    pub(crate) parsed: bool,
}

/// Most nodes a scenario may declare: Kubernetes' own limit for one cluster.
pub const MAX_CLUSTER_NODES: usize = 5_000;
/// Most Services a scenario may declare, named and background together (ten times the
/// 10,000 Services per cluster Kubernetes is tested with).
pub const MAX_SERVICES: u64 = 100_000;
/// Most pod addresses a scenario may ask for: Service endpoints, workload pods and
/// background endpoints together (Kubernetes is tested with 150,000 pods per cluster).
pub const MAX_PODS: u64 = 1_000_000;

pub(crate) fn validate(file: &str, mut f: ScenarioFile, raw: Value, map: SourceMap) -> Checked {
    let mut c = Checker::default();
    // Counts first, by arithmetic: everything below allocates per node, per Service and
    // per pod, so a hostile count is refused before any of it.
    if !check_sizes(&mut c, &f) {
        return Checked {
            base: Err(c.problems),
            variants: check_variants(&f.variants).1,
        };
    }
    let top = check_top_level(&mut c, &f);
    let implicit_kube_dns = add_implicit_kube_dns(&mut f, top.service_cidr);
    let kube_proxy = check_kube_proxy(&mut c, &f.kube_proxy);
    let cost = cost_model(&f.cost);
    let nodes = check_nodes(
        &mut c,
        &f.nodes,
        top.kernel,
        &kube_proxy,
        top.cluster_cidr,
        top.node_cidr,
    );
    let lookup = NodeLookup::new(&nodes);
    let mut addresses = Addresses::new(&nodes, top.service_cidr);
    let services = check_services(&mut c, &f.services, &lookup, &mut addresses);
    let dns = check_dns(&mut c, &f.dns, &services, top.cluster_cidr, top.service_cidr);
    let workloads = check_workloads(
        &mut c,
        &f.workloads,
        &lookup,
        &services,
        dns.service,
        &mut addresses,
    );
    let background_services = check_background_services(
        &mut c,
        f.background_services.as_ref(),
        top.cluster_cidr,
        &mut addresses,
    );
    let (variants, variant_checks) = check_variants(&f.variants);
    let baseline = check_baseline(&mut c, f.baseline.as_ref(), &lookup);
    let base = if c.problems.is_empty() {
        Ok(Scenario {
            file: file.to_string(),
            name: f.name,
            description: f.description,
            seed: f.seed,
            duration: f.duration,
            sample_interval: top.sample_interval,
            kernel: top.kernel,
            cni: f.cni,
            cluster_cidr: top.cluster_cidr,
            service_cidr: top.service_cidr,
            kube_proxy,
            cost,
            nodes,
            services,
            background_services,
            dns,
            workloads,
            variants,
            baseline,
            implicit_kube_dns,
            raw,
            map,
        })
    } else {
        Err(c.problems)
    };
    Checked {
        base,
        variants: variant_checks,
    }
}

/// Refuses node, Service and pod counts over [`MAX_CLUSTER_NODES`], [`MAX_SERVICES`] and
/// [`MAX_PODS`], each at the field that asks for the most; true when all fit.
fn check_sizes(c: &mut Checker, f: &ScenarioFile) -> bool {
    let before = c.problems.len();
    if f.nodes.len() > MAX_CLUSTER_NODES {
        c.bad(
            ProblemKind::TooLarge,
            fp!("nodes"),
            format!(
                "{} nodes: a scenario holds at most {MAX_CLUSTER_NODES} (Kubernetes' limit for one cluster)",
                f.nodes.len()
            ),
        );
    }
    let background = f.background_services.as_ref();
    let named = f.services.len() as u64;
    let services = named.saturating_add(background.map_or(0, |b| u64::from(b.count)));
    if services > MAX_SERVICES {
        let field = match background {
            Some(b) if u64::from(b.count) >= named => fp!("backgroundServices", "count"),
            _ => fp!("services"),
        };
        c.bad(
            ProblemKind::TooLarge,
            field,
            format!(
                "{services} Services: a scenario holds at most {MAX_SERVICES}, named and background together"
            ),
        );
    }
    // (field, pods asked for there), in file order.
    let mut asks: Vec<(FieldPath, u64)> = Vec::new();
    for (i, s) in f.services.iter().enumerate() {
        for (j, e) in s.endpoints.iter().enumerate() {
            // `count`, or one pod per listed address (`ips`).
            let pods = e.count.map_or(e.ips.len() as u64, u64::from);
            asks.push((fp!("services", i, "endpoints", j, "count"), pods));
        }
    }
    for (i, w) in f.workloads.iter().enumerate() {
        asks.push((fp!("workloads", i, "pods"), u64::from(w.pods)));
    }
    if let Some(b) = background {
        let field = if b.endpoints_each >= b.count {
            fp!("backgroundServices", "endpointsEach")
        } else {
            fp!("backgroundServices", "count")
        };
        asks.push((field, u64::from(b.count) * u64::from(b.endpoints_each)));
    }
    let pods = asks.iter().fold(0u64, |acc, (_, n)| acc.saturating_add(*n));
    if pods > MAX_PODS
        && let Some((field, most)) = asks.iter().rev().max_by_key(|(_, n)| *n)
    {
        c.bad(
            ProblemKind::TooLarge,
            field.clone(),
            format!(
                "{most} pods asked for here, {pods} in all: a scenario holds at most {MAX_PODS} pod addresses (Service endpoints, workload pods and background endpoints together)"
            ),
        );
    }
    c.problems.len() == before
}

/// The cluster DNS Service kubeadm deploys, added when the scenario needs DNS (a workload
/// resolves names, or NodeLocal DNSCache is on) and declares no `kube-dns` in
/// `kube-system` nor another `dns.service`: the 10th address of the Service CIDR, port 53
/// over UDP and TCP, two CoreDNS replicas on the first node answering in 100 µs each.
/// Returns what was added, in words, for the report.
fn add_implicit_kube_dns(f: &mut ScenarioFile, service_cidr: Cidr) -> Option<String> {
    let declared = f
        .services
        .iter()
        .any(|s| s.name == "kube-dns" && s.namespace.as_deref() == Some("kube-system"));
    let needs = f.workloads.iter().any(|w| w.dns.mode != file::DnsMode::None)
        || f.dns.node_local_dns_cache.as_ref().is_some_and(|n| n.enabled);
    let first = f.nodes.first().map(|n| n.name.clone())?;
    if declared || f.dns.service.is_some() || !needs {
        return None;
    }
    let ip = service_cidr.nth(10)?;
    let port = |protocol| file::ServicePortSpec {
        name: Some(format!(
            "dns{}",
            if protocol == file::ProtocolSpec::Tcp {
                "-tcp"
            } else {
                ""
            }
        )),
        port: 53,
        target_port: None,
        protocol,
        node_port: None,
    };
    f.services.push(file::ServiceSpec {
        name: "kube-dns".into(),
        namespace: Some("kube-system".into()),
        service_type: file::ServiceType::ClusterIP,
        cluster_ip: Some(ip.to_string()),
        ports: vec![port(file::ProtocolSpec::Udp), port(file::ProtocolSpec::Tcp)],
        endpoints: vec![file::EndpointsSpec {
            node: first.clone(),
            count: Some(2),
            ips: Vec::new(),
        }],
        server: Some(file::ServerSpec {
            service_time: Some(file::ServiceTimeSpec::Constant {
                value: SimDuration::from_micros(100),
            }),
            concurrency: None,
            backlog: None,
            capacity: None,
            behavior: file::ServerBehavior::default(),
        }),
    });
    Some(format!(
        "the scenario declares no kube-dns Service: an implicit one was added (kube-system/kube-dns {ip}:53 UDP and TCP, 2 CoreDNS pods on {first}, 100us per query, no capacity limit); declare it under services to change it"
    ))
}

/// The top-level settings the other parts depend on.
struct TopLevel {
    sample_interval: SimDuration,
    kernel: KernelProfile,
    cluster_cidr: Cidr,
    service_cidr: Cidr,
    node_cidr: Cidr,
}

/// `name`, `duration`, `sampleInterval`, `kernel` and the three CIDRs.
fn check_top_level(c: &mut Checker, f: &ScenarioFile) -> TopLevel {
    if f.name.trim().is_empty() {
        c.value(fp!("name"), "name is empty");
    }
    if f.duration == SimDuration::ZERO {
        c.value(fp!("duration"), "duration must be above 0s");
    }
    let sample_interval = f.sample_interval.unwrap_or(SimDuration::from_secs(1));
    if sample_interval == SimDuration::ZERO {
        c.value(fp!("sampleInterval"), "sampleInterval must be above 0s");
    } else if sample_interval > f.duration && f.duration > SimDuration::ZERO {
        c.value(
            fp!("sampleInterval"),
            format!(
                "sampleInterval {sample_interval} is longer than the duration {}",
                f.duration
            ),
        );
    }
    let kernel = KernelProfile::by_name(f.kernel.0.trim()).unwrap_or_else(|| {
        let names: Vec<&str> = KernelProfile::ALL.iter().map(|p| p.name).collect();
        c.value(
            fp!("kernel"),
            format!(
                "unknown kernel `{}` (known: {}; quote it, e.g. kernel: \"5.4\")",
                f.kernel.0,
                names.join(", ")
            ),
        );
        KernelProfile::LINUX_6_18
    });
    let cluster_cidr = c.cidr(f.cluster_cidr.as_deref(), "10.244.0.0/16", fp!("clusterCIDR"));
    let service_cidr = c.cidr(f.service_cidr.as_deref(), "10.96.0.0/12", fp!("serviceCIDR"));
    let node_cidr = c.cidr(f.node_cidr.as_deref(), "192.168.0.0/24", fp!("nodeCIDR"));
    if overlaps(cluster_cidr, service_cidr) {
        c.value(
            fp!("serviceCIDR"),
            format!("serviceCIDR {service_cidr} overlaps clusterCIDR {cluster_cidr}"),
        );
    }
    TopLevel {
        sample_interval,
        kernel,
        cluster_cidr,
        service_cidr,
        node_cidr,
    }
}

/// `kubeProxy`.
fn check_kube_proxy(c: &mut Checker, kp: &file::KubeProxySpec) -> KubeProxyConfig {
    let masquerade_bit = kp.masquerade_bit.unwrap_or(14);
    if masquerade_bit > 31 {
        c.value(
            fp!("kubeProxy", "masqueradeBit"),
            format!("masqueradeBit {masquerade_bit} is not in 0..=31"),
        );
    }
    let kube_proxy = KubeProxyConfig {
        mode: kp.mode,
        masquerade_all: kp.masquerade_all.unwrap_or(false),
        masquerade_bit: u8::try_from(masquerade_bit.min(31)).unwrap_or(14),
        random_fully: kp.random_fully.unwrap_or(true),
        conntrack: KubeProxyConntrack::from_spec(&kp.conntrack),
        ipvs_scheduler: kp.ipvs.scheduler.unwrap_or_default(),
        ipvs_conn_reuse_mode: kp.ipvs.conn_reuse_mode,
        ebpf: EbpfSettings {
            notrack: kp.ebpf.notrack.unwrap_or(false),
            ct_global_tcp_max: kp.ebpf.ct_global_tcp_max,
            ct_global_any_max: kp.ebpf.ct_global_any_max,
        },
    };
    if let Some(m) = kp.ipvs.conn_reuse_mode
        && m > 2
    {
        c.value(
            fp!("kubeProxy", "ipvs", "connReuseMode"),
            format!("connReuseMode {m} is not 0, 1 or 2"),
        );
    }
    for (name, v) in [
        ("ctGlobalTcpMax", kp.ebpf.ct_global_tcp_max),
        ("ctGlobalAnyMax", kp.ebpf.ct_global_any_max),
    ] {
        if v == Some(0) {
            c.value(fp!("kubeProxy", "ebpf", name), format!("{name} must be above 0"));
        }
    }
    kube_proxy
}

/// `cost`: every constant has a default; none is checked.
fn cost_model(spec: &file::CostSpec) -> CostModel {
    let d = CostModel::default();
    CostModel {
        per_packet: spec.per_packet.unwrap_or(d.per_packet),
        per_rule: spec.per_rule.unwrap_or(d.per_rule),
        per_conntrack_lookup: spec.per_conntrack_lookup.unwrap_or(d.per_conntrack_lookup),
        per_conntrack_insert: spec.per_conntrack_insert.unwrap_or(d.per_conntrack_insert),
        per_hash_lookup: spec.per_hash_lookup.unwrap_or(d.per_hash_lookup),
        per_scheduler_op: spec.per_scheduler_op.unwrap_or(d.per_scheduler_op),
    }
}

/// `nodes`: names, sizes, addresses (explicit ones first, so allocation skips them),
/// podCIDRs and effective sysctls.
fn check_nodes(
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
        let known = super::sysctl::known_sysctl_names().len();
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

/// The next /24 of `cluster` from block `*next_block` on that no podCIDR in `taken`
/// touches (kube-controller-manager's `--node-cidr-mask-size` default 24).
fn next_free_pod_block(cluster: Cidr, taken: &[(usize, Cidr)], next_block: &mut u32) -> Option<Cidr> {
    let b = first_free_block(cluster, taken.iter().map(|(_, q)| *q), u64::from(*next_block))?;
    *next_block = u32::try_from(b + 1).unwrap_or(u32::MAX);
    block_cidr(cluster, b)
}

/// The index of the first /24 block of `cluster`, from block `from` on, that no CIDR of
/// `taken` touches. A taken range is jumped over at once, so the cost grows with the
/// number of taken ranges, not with the size of `cluster` (a `/1` has 8 million blocks).
fn first_free_block<I>(cluster: Cidr, taken: I, from: u64) -> Option<u64>
where
    I: Iterator<Item = Cidr> + Clone,
{
    if cluster.len() > 24 {
        return None;
    }
    let blocks = size_of(cluster) >> 8;
    let start = u64::from(u32::from(cluster.addr()));
    let mut b = from;
    while b < blocks {
        let lo = start + (b << 8);
        let hi = lo + 255;
        let hit = taken.clone().find_map(|q| {
            let qa = u64::from(u32::from(q.addr()));
            let qz = qa + size_of(q) - 1;
            (qa <= hi && qz >= lo).then_some(qz)
        });
        match hit {
            None => return Some(b),
            // The first block that starts after the taken range.
            Some(qz) => b = (qz + 1 - start).div_ceil(256).max(b + 1),
        }
    }
    None
}

/// Block `b` (a /24) of `cluster`.
fn block_cidr(cluster: Cidr, b: u64) -> Option<Cidr> {
    let base = cluster.nth(u32::try_from(b << 8).ok()?)?;
    Cidr::new(base, 24).ok()
}

/// `services`: explicit addresses first, then each Service in order.
fn check_services(
    c: &mut Checker,
    specs: &[file::ServiceSpec],
    nodes: &NodeLookup<'_>,
    addresses: &mut Addresses<'_>,
) -> Vec<ServiceConfig> {
    addresses.reserve_explicit(c, specs);
    reserve_pinned_endpoints(addresses, specs);
    let mut seen = BTreeSet::new();
    let mut services = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        services.push(check_service(c, i, s, &mut seen, nodes, addresses));
    }
    services
}

/// `services[i]`; `seen` holds the (namespace, name) pairs declared before it.
fn check_service(
    c: &mut Checker,
    i: usize,
    s: &file::ServiceSpec,
    seen: &mut BTreeSet<(String, String)>,
    nodes: &NodeLookup<'_>,
    addresses: &mut Addresses<'_>,
) -> ServiceConfig {
    let at = |k: &str| fp!("services", i, k);
    let namespace = s.namespace.clone().unwrap_or_else(|| "default".into());
    if s.name.trim().is_empty() {
        c.value(at("name"), "name is empty");
    }
    if !seen.insert((namespace.clone(), s.name.clone())) {
        c.bad(
            ProblemKind::Duplicate,
            at("name"),
            format!(
                "Service `{}` is declared twice in namespace `{namespace}`",
                s.name
            ),
        );
    }
    let cluster_ip = check_cluster_ip(c, i, s, addresses);
    if s.ports.is_empty() {
        c.value(at("ports"), "a Service needs at least one port");
    }
    let ports = check_service_ports(c, i, s, addresses);
    let mut endpoints = Vec::new();
    for (j, e) in s.endpoints.iter().enumerate() {
        let Some(node) = nodes.find(&e.node) else {
            c.bad(
                ProblemKind::UnknownReference,
                fp!("services", i, "endpoints", j, "node"),
                format!("unknown node `{}` (nodes: {})", e.node, nodes.names()),
            );
            continue;
        };
        for ip in endpoint_ips(c, i, j, e, node, addresses) {
            endpoints.push(Endpoint {
                node: NodeId(u32::try_from(node).unwrap_or(u32::MAX)),
                ip,
            });
        }
    }
    let server = check_server(c, s.server.as_ref(), i);
    ServiceConfig {
        id: ServiceId(u32::try_from(i).unwrap_or(u32::MAX)),
        name: s.name.clone(),
        namespace,
        service_type: s.service_type,
        cluster_ip,
        ports,
        endpoints,
        server,
    }
}

/// `services[i].clusterIP`: none for a Headless Service, the explicit one (inside
/// `serviceCIDR`), or the next free one.
fn check_cluster_ip(
    c: &mut Checker,
    i: usize,
    s: &file::ServiceSpec,
    addresses: &mut Addresses<'_>,
) -> Option<Ipv4Addr> {
    let at = || fp!("services", i, "clusterIP");
    match (s.service_type, s.cluster_ip.as_deref()) {
        (ServiceType::Headless, None | Some("None")) => None,
        (ServiceType::Headless, Some(t)) => {
            c.value(at(), format!("a Headless Service has no clusterIP (got `{t}`)"));
            None
        }
        (_, Some(t)) => c.ip(t, at()).inspect(|&ip| {
            let cidr = addresses.service_cidr;
            if !cidr.contains(ip) {
                c.value(
                    at(),
                    format!(
                        "clusterIP {ip} is outside serviceCIDR {}/{}",
                        cidr.addr(),
                        cidr.len()
                    ),
                );
            }
        }),
        (_, None) => {
            let ip = addresses.service_ip();
            if ip.is_none() {
                c.bad(ProblemKind::Exhausted, at(), "serviceCIDR has no address left");
            }
            ip
        }
    }
}

/// `services[i].ports`: numbers, protocols, names and node ports.
fn check_service_ports(
    c: &mut Checker,
    i: usize,
    s: &file::ServiceSpec,
    addresses: &mut Addresses<'_>,
) -> Vec<ServicePort> {
    let mut ports = Vec::new();
    let mut seen_ports = BTreeSet::new();
    for (j, p) in s.ports.iter().enumerate() {
        let pat = |k: &str| fp!("services", i, "ports", j, k);
        if p.port == 0 {
            c.value(pat("port"), "port 0 is not a port (1..65535)");
        }
        let target_port = p.target_port.unwrap_or(p.port);
        if target_port == 0 {
            c.value(pat("targetPort"), "targetPort 0 is not a port (1..65535)");
        }
        let protocol = match p.protocol {
            ProtocolSpec::Tcp => Proto::Tcp,
            ProtocolSpec::Udp => Proto::Udp,
        };
        if !seen_ports.insert((p.port, p.protocol == ProtocolSpec::Udp)) {
            c.bad(
                ProblemKind::Duplicate,
                pat("port"),
                format!("port {} is declared twice", p.port),
            );
        }
        if s.ports.len() > 1 && p.name.as_deref().is_none_or(str::is_empty) {
            c.value(pat("name"), "ports need names when a Service has more than one");
        }
        let node_port = match (s.service_type, p.node_port) {
            (ServiceType::NodePort, Some(np)) => {
                if !(30_000..=32_767).contains(&np) {
                    c.value(pat("nodePort"), format!("nodePort {np} is outside 30000-32767"));
                }
                Some(np)
            }
            (ServiceType::NodePort, None) => Some(addresses.node_port()),
            (_, Some(np)) => {
                c.value(
                    pat("nodePort"),
                    format!("nodePort {np} is set but the Service type is not NodePort"),
                );
                None
            }
            (_, None) => None,
        };
        ports.push(ServicePort {
            name: p.name.clone(),
            port: p.port,
            target_port,
            protocol,
            node_port,
        });
    }
    ports
}

/// `dns`: the cluster domain, `ndots`, the cluster DNS Service and NodeLocal DNSCache.
fn check_dns(
    c: &mut Checker,
    spec: &file::DnsSpec,
    services: &[ServiceConfig],
    cluster_cidr: Cidr,
    service_cidr: Cidr,
) -> DnsConfig {
    let cluster_domain = spec
        .cluster_domain
        .clone()
        .unwrap_or_else(|| "cluster.local".into());
    if cluster_domain.is_empty() || cluster_domain.starts_with('.') || cluster_domain.ends_with('.') {
        c.value(
            fp!("dns", "clusterDomain"),
            format!("`{cluster_domain}` is not a domain (e.g. cluster.local)"),
        );
    }
    let ndots = spec.ndots.unwrap_or(5);
    if ndots > 15 {
        c.value(
            fp!("dns", "ndots"),
            format!("ndots {ndots} is above 15 (glibc caps it at 15)"),
        );
    }
    let service = {
        let wanted = spec.service.as_deref().unwrap_or("kube-dns");
        let (name, ns) = wanted.split_once('.').unwrap_or((wanted, "kube-system"));
        let found = services
            .iter()
            .find(|s| s.name == name && s.namespace == ns)
            .map(|s| s.id);
        if found.is_none() && spec.service.is_some() {
            c.bad(
                ProblemKind::UnknownReference,
                fp!("dns", "service"),
                format!("unknown Service `{name}` in namespace `{ns}`"),
            );
        }
        found
    };
    let node_local_cache = spec
        .node_local_dns_cache
        .as_ref()
        .and_then(|n| check_node_local_cache(c, n, cluster_cidr, service_cidr));
    DnsConfig {
        cluster_domain,
        ndots,
        service,
        node_local_cache,
    }
}

/// `dns.nodeLocalDNSCache`; `None` when it is not enabled (its fields are checked anyway).
fn check_node_local_cache(
    c: &mut Checker,
    n: &file::NodeLocalDnsSpec,
    cluster_cidr: Cidr,
    service_cidr: Cidr,
) -> Option<NodeLocalDnsCache> {
    let address = n
        .address
        .as_deref()
        .and_then(|a| c.ip(a, fp!("dns", "nodeLocalDNSCache", "address")))
        .unwrap_or(Ipv4Addr::new(169, 254, 20, 10));
    // The agent listens on its own local address; the iptables-mode deployment that
    // also binds the kube-dns ClusterIP is not modelled (docs/model.md), and a pod,
    // Service or unspecified address would silently bypass or shadow the cache.
    if n.enabled
        && (address.is_unspecified()
            || address.is_broadcast()
            || cluster_cidr.contains(address)
            || service_cidr.contains(address))
    {
        c.value(
            fp!("dns", "nodeLocalDNSCache", "address"),
            format!(
                "address {address} must be a node-local address outside clusterCIDR {cluster_cidr} and serviceCIDR {service_cidr} (node-local-dns uses 169.254.20.10; listening on the kube-dns ClusterIP is not modelled)"
            ),
        );
    }
    let ttl = n.ttl.unwrap_or(SimDuration::from_secs(30));
    if ttl == SimDuration::ZERO {
        c.value(fp!("dns", "nodeLocalDNSCache", "ttl"), "ttl must be above 0s");
    }
    let capacity = n.capacity.unwrap_or(9_984);
    if capacity == 0 {
        c.value(
            fp!("dns", "nodeLocalDNSCache", "capacity"),
            "capacity must be above 0",
        );
    }
    let upstream_expire = n.upstream_expire.unwrap_or(SimDuration::from_secs(10));
    if upstream_expire == SimDuration::ZERO {
        c.value(
            fp!("dns", "nodeLocalDNSCache", "upstreamExpire"),
            "upstreamExpire must be above 0s",
        );
    }
    n.enabled.then_some(NodeLocalDnsCache {
        address,
        ttl,
        capacity,
        force_tcp: n.force_tcp.unwrap_or(true),
        upstream_expire,
    })
}

/// `workloads`, each in order.
fn check_workloads(
    c: &mut Checker,
    specs: &[file::WorkloadSpec],
    nodes: &NodeLookup<'_>,
    services: &[ServiceConfig],
    dns_service: Option<ServiceId>,
    addresses: &mut Addresses<'_>,
) -> Vec<WorkloadConfig> {
    let mut seen = BTreeSet::new();
    let mut workloads = Vec::new();
    for (i, w) in specs.iter().enumerate() {
        let at = |k: &str| fp!("workloads", i, k);
        let namespace = w.namespace.clone().unwrap_or_else(|| "default".into());
        if w.name.trim().is_empty() {
            c.value(at("name"), "name is empty");
        }
        if !seen.insert(w.name.clone()) {
            c.bad(
                ProblemKind::Duplicate,
                at("name"),
                format!("workload `{}` is declared twice", w.name),
            );
        }
        let names = w.node.names();
        if names.is_empty() {
            c.value(at("node"), "an empty list of nodes: name at least one");
        }
        let found: Vec<Option<usize>> = names.iter().map(|n| nodes.find(n)).collect();
        for (name, f) in names.iter().zip(&found) {
            if f.is_none() {
                c.bad(
                    ProblemKind::UnknownReference,
                    at("node"),
                    format!("unknown node `{name}` (nodes: {})", nodes.names()),
                );
            }
        }
        let pod_nodes: Vec<usize> = found.iter().flatten().copied().collect();
        let node = (pod_nodes.len() == names.len())
            .then(|| pod_nodes.first().copied())
            .flatten();
        if w.pods == 0 {
            c.value(at("pods"), "pods must be at least 1");
        }
        // Pod k on the (k mod n)-th node, its address from that node's podCIDR.
        let pod_ips: Vec<Ipv4Addr> = match node {
            Some(_) => (0..w.pods as usize)
                .map(|k| addresses.pod(c, pod_nodes[k % pod_nodes.len()], at("pods")))
                .collect(),
            None => Vec::new(),
        };
        let rate = match (w.rate, w.rate_profile.first()) {
            (Some(r), _) => r,
            (None, Some(first)) if first.at == SimDuration::ZERO => first.rate,
            (None, first) => {
                c.bad(
                    ProblemKind::MissingField,
                    at("rate"),
                    match first {
                        Some(f) => format!(
                            "missing: the rate before the first rateProfile step (at {}); give `rate`, or start rateProfile at 0s",
                            f.at
                        ),
                        None => "missing: give `rate` (such as 1k/s), or a rateProfile starting at 0s".to_owned(),
                    },
                );
                crate::scenario::Rate::from_milli_per_sec(0)
            }
        };
        let target = check_target(c, &w.target, &namespace, services, at("target"));
        let rate_profile = check_rate_profile(c, i, &w.rate_profile);
        let connection = check_connection(c, i, &w.connection);
        let timeout = w.timeout.unwrap_or(SimDuration::from_secs(1));
        if timeout == SimDuration::ZERO {
            c.value(at("timeout"), "timeout must be above 0s");
        }
        let dns = check_workload_dns(c, w, i, target, services, dns_service);
        workloads.push(WorkloadConfig {
            id: WorkloadId(u32::try_from(i).unwrap_or(u32::MAX)),
            name: w.name.clone(),
            namespace,
            node: NodeId(u32::try_from(node.unwrap_or(0)).unwrap_or(0)),
            nodes: pod_nodes
                .iter()
                .map(|n| NodeId(u32::try_from(*n).unwrap_or(0)))
                .collect(),
            pods: pod_ips,
            target: target.unwrap_or(WorkloadTarget::Address(SocketAddrV4::new(
                Ipv4Addr::UNSPECIFIED,
                0,
            ))),
            rate,
            rate_profile,
            connection,
            timeout,
            retries: RetryPolicy {
                max: w.retries.max,
                backoff: w.retries.backoff.unwrap_or(SimDuration::ZERO),
            },
            dns,
            arrivals: check_arrivals(c, i, w.arrivals.as_ref()),
            dns_only: check_dns_only(c, i, w),
        });
    }
    workloads
}

/// `workloads[i].rateProfile`: steps in time order, none starting inside the
/// previous step's ramp.
fn check_rate_profile(c: &mut Checker, i: usize, steps: &[file::RateStepSpec]) -> Vec<RateStep> {
    let mut rate_profile = Vec::new();
    let mut prev: Option<(SimDuration, SimDuration)> = None;
    for (j, s) in steps.iter().enumerate() {
        let ramp = s.ramp.unwrap_or(SimDuration::ZERO);
        if let Some((prev_at, prev_ramp)) = prev {
            if s.at <= prev_at {
                c.value(
                    fp!("workloads", i, "rateProfile", j, "at"),
                    format!("steps must be in time order: {} is not after {prev_at}", s.at),
                );
            } else if prev_at + prev_ramp > s.at {
                c.value(
                    fp!("workloads", i, "rateProfile", j, "at"),
                    format!(
                        "step at {} starts before the previous ramp ends at {}",
                        s.at,
                        prev_at + prev_ramp
                    ),
                );
            }
        }
        prev = Some((s.at, ramp));
        rate_profile.push(RateStep {
            at: s.at,
            rate: s.rate,
            ramp,
        });
    }
    rate_profile
}

/// `workloads[i].connection`.
fn check_connection(c: &mut Checker, i: usize, cn: &file::ConnectionSpec) -> ConnectionConfig {
    let pool_size = cn.pool_size.unwrap_or(10);
    if cn.mode == ConnectionMode::Pool && pool_size == 0 {
        c.value(
            fp!("workloads", i, "connection", "poolSize"),
            "poolSize must be at least 1",
        );
    }
    ConnectionConfig {
        mode: cn.mode,
        pool_size,
        max_requests_per_connection: cn.max_requests_per_connection.filter(|&m| m > 0),
        idle_timeout: cn.idle_timeout.unwrap_or(SimDuration::from_secs(90)),
        closer: cn.closer,
    }
}

/// `backgroundServices`: `count` ClusterIPs after every other Service's, and
/// `endpointsEach` endpoints each from the /24 blocks of `clusterCIDR` no node uses.
fn check_background_services(
    c: &mut Checker,
    spec: Option<&file::BackgroundServicesSpec>,
    cluster_cidr: Cidr,
    addresses: &mut Addresses<'_>,
) -> Vec<BackgroundService> {
    let mut background_services = Vec::new();
    let Some(b) = spec else {
        return background_services;
    };
    let mut blocks = free_pod_blocks(cluster_cidr, addresses.nodes);
    let mut block: Option<(Cidr, u32)> = None;
    let mut out_of_pods = false;
    for k in 0..b.count {
        let Some(cluster_ip) = addresses.service_ip() else {
            c.bad(
                ProblemKind::Exhausted,
                fp!("backgroundServices", "count"),
                format!(
                    "serviceCIDR has room for only {k} background Services, not {}",
                    b.count
                ),
            );
            break;
        };
        let mut endpoints = Vec::with_capacity(b.endpoints_each as usize);
        for _ in 0..b.endpoints_each {
            // .2 ..= .254 of each free /24.
            let ip = loop {
                match block {
                    Some((cidr, n)) if n < 255 => {
                        block = Some((cidr, n + 1));
                        break cidr.nth(n);
                    }
                    _ => match blocks.next() {
                        Some(cidr) => block = Some((cidr, 2)),
                        None => break None,
                    },
                }
            };
            match ip {
                Some(ip) => endpoints.push(ip),
                None => out_of_pods = true,
            }
        }
        if out_of_pods {
            c.bad(
                ProblemKind::Exhausted,
                fp!("backgroundServices", "endpointsEach"),
                format!(
                    "clusterCIDR has no room left for {} × {} background endpoints beside the nodes' podCIDRs",
                    b.count, b.endpoints_each
                ),
            );
            break;
        }
        background_services.push(BackgroundService {
            cluster_ip,
            port: 80,
            endpoints,
        });
    }
    background_services
}

/// `variants`: names and `set` lines; each variant's problems kept apart, for the
/// loader to report with the result of checking it against the base.
fn check_variants(specs: &[file::VariantSpec]) -> (Vec<Variant>, Vec<VariantCheck>) {
    let mut variants = Vec::new();
    let mut checks = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, v) in specs.iter().enumerate() {
        let mut c = Checker::default();
        if !seen.insert(v.name.clone()) {
            c.bad(
                ProblemKind::Duplicate,
                fp!("variants", i, "name"),
                format!("variant `{}` is declared twice", v.name),
            );
        }
        let mut overrides = Vec::new();
        for (j, text) in v.set.iter().enumerate() {
            match Override::parse(text) {
                Ok(o) => overrides.push(o),
                Err(e) => c.bad(
                    ProblemKind::BadOverride,
                    fp!("variants", i, "set", j),
                    e.to_string(),
                ),
            }
        }
        checks.push(VariantCheck {
            problems: c.problems,
            parsed: overrides.len() == v.set.len(),
        });
        variants.push(Variant {
            name: v.name.clone(),
            overrides,
        });
    }
    (variants, checks)
}

/// /24 blocks of `cluster` that no node's podCIDR touches (for background endpoints,
/// which live on nodes the scenario does not simulate).
fn free_pod_blocks(cluster: Cidr, nodes: &[NodeConfig]) -> impl Iterator<Item = Cidr> + '_ {
    let mut next = 0u64;
    std::iter::from_fn(move || {
        let b = first_free_block(cluster, nodes.iter().map(|n| n.pod_cidr), next)?;
        next = b + 1;
        block_cidr(cluster, b)
    })
}

fn check_server(c: &mut Checker, s: Option<&file::ServerSpec>, i: usize) -> ServerConfig {
    let Some(s) = s else {
        return ServerConfig {
            service_time: ServiceTime::Constant(SimDuration::from_millis(1)),
            concurrency: 64,
            backlog: None,
            capacity: None,
            behavior: super::ServerBehavior::Normal,
        };
    };
    let service_time = match &s.service_time {
        None => ServiceTime::Constant(SimDuration::from_millis(1)),
        Some(ServiceTimeSpec::Constant { value }) => ServiceTime::Constant(*value),
        Some(ServiceTimeSpec::Exponential { mean }) => ServiceTime::Exponential { mean: *mean },
        Some(ServiceTimeSpec::Lognormal { median, sigma }) => {
            if !sigma.is_finite() || !(0.0..=10.0).contains(sigma) {
                c.value(
                    fp!("services", i, "server", "serviceTime", "sigma"),
                    format!("sigma {sigma} is not in 0..=10"),
                );
            }
            ServiceTime::Lognormal {
                median: *median,
                sigma: *sigma,
            }
        }
    };
    let concurrency = s.concurrency.unwrap_or(64);
    if concurrency == 0 {
        c.value(
            fp!("services", i, "server", "concurrency"),
            "concurrency must be at least 1",
        );
    }
    if s.capacity.is_some_and(super::Rate::is_zero) {
        c.value(
            fp!("services", i, "server", "capacity"),
            "capacity must be above 0/s",
        );
    }
    ServerConfig {
        service_time,
        concurrency,
        backlog: s.backlog,
        capacity: s.capacity,
        behavior: s.behavior,
    }
}

/// Resolves `service:port`, `service.namespace:port` or `ip:port`.
fn check_target(
    c: &mut Checker,
    text: &str,
    namespace: &str,
    services: &[ServiceConfig],
    field: FieldPath,
) -> Option<WorkloadTarget> {
    if let Ok(addr) = text.parse::<SocketAddrV4>() {
        return Some(WorkloadTarget::Address(addr));
    }
    let Some((name, port)) = text.rsplit_once(':') else {
        c.value(
            field,
            format!("target `{text}` needs a port (`service:port` or `ip:port`)"),
        );
        return None;
    };
    let (svc, ns) = name.split_once('.').unwrap_or((name, namespace));
    let Some(s) = services.iter().find(|s| s.name == svc && s.namespace == ns) else {
        let elsewhere: Vec<&str> = services
            .iter()
            .filter(|s| s.name == svc)
            .map(|s| s.namespace.as_str())
            .collect();
        let hint = if let Some(other) = elsewhere.first() {
            format!("; it exists in namespace `{other}`: write `{svc}.{other}:{port}`")
        } else {
            let all: Vec<String> = services
                .iter()
                .map(|s| format!("{}.{}", s.name, s.namespace))
                .collect();
            format!(
                " (Services: {})",
                if all.is_empty() {
                    "none".into()
                } else {
                    all.join(", ")
                }
            )
        };
        c.bad(
            ProblemKind::UnknownReference,
            field,
            format!("unknown Service `{svc}` in namespace `{ns}`{hint}"),
        );
        return None;
    };
    let found = match port.parse::<u16>() {
        Ok(n) => s.ports.iter().position(|p| p.port == n),
        Err(_) => s.ports.iter().position(|p| p.name.as_deref() == Some(port)),
    };
    let Some(idx) = found else {
        let ports: Vec<String> = s.ports.iter().map(|p| p.port.to_string()).collect();
        c.bad(
            ProblemKind::UnknownReference,
            field,
            format!(
                "Service `{svc}` has no port `{port}` (ports: {})",
                ports.join(", ")
            ),
        );
        return None;
    };
    Some(WorkloadTarget::Service {
        service: s.id,
        port: idx,
    })
}

fn check_workload_dns(
    c: &mut Checker,
    w: &file::WorkloadSpec,
    i: usize,
    target: Option<WorkloadTarget>,
    services: &[ServiceConfig],
    dns_service: Option<ServiceId>,
) -> WorkloadDns {
    let d = &w.dns;
    let target_service = match target {
        Some(WorkloadTarget::Service { service, .. }) => services.get(service.0 as usize),
        _ => None,
    };
    let name = d.name.clone().or_else(|| target_service.map(|s| s.name.clone()));
    if d.mode != DnsMode::None {
        if dns_service.is_none() {
            c.bad(
                ProblemKind::UnknownReference,
                fp!("workloads", i, "dns", "mode"),
                format!(
                    "dns mode `{}` needs the cluster DNS Service (`kube-dns` in `kube-system`) in services",
                    if d.mode == DnsMode::Cached {
                        "cached"
                    } else {
                        "perRequest"
                    }
                ),
            );
        }
        if name.is_none() {
            c.value(
                fp!("workloads", i, "dns", "name"),
                "a name to resolve is needed when the target is an address",
            );
        }
    } else if target_service.is_some_and(|s| s.service_type == ServiceType::Headless) {
        c.value(
            fp!("workloads", i, "dns", "mode"),
            "a Headless Service has no clusterIP; clients find its pods through DNS (set dns.mode)",
        );
    }
    let ttl = d.ttl.unwrap_or(SimDuration::from_secs(30));
    if d.mode == DnsMode::Cached && ttl == SimDuration::ZERO {
        c.value(
            fp!("workloads", i, "dns", "ttl"),
            "ttl must be above 0s when dns mode is cached",
        );
    }
    if d.resolver_threads.is_some() {
        c.value(
            fp!("workloads", i, "dns", "resolverThreads"),
            "resolverThreads was replaced by threadPlacement: write `threadPlacement: same` for one thread \
             (resolverThreads: 1, glibc and musl) or `threadPlacement: scheduler` for two threads the scheduler \
             places (resolverThreads: 2); `different` pins the two threads to two CPUs",
        );
    }
    let thread_placement = match d.thread_placement.as_deref() {
        None => ThreadPlacement::Same,
        Some(t) => ThreadPlacement::parse(t).unwrap_or_else(|| {
            c.value(
                fp!("workloads", i, "dns", "threadPlacement"),
                format!("threadPlacement must be same, different or scheduler, not `{t}`"),
            );
            ThreadPlacement::Same
        }),
    };
    WorkloadDns {
        thread_placement,
        pair_gap: d.pair_gap.unwrap_or(SimDuration::from_micros(2)),
        mode: d.mode,
        name: name.unwrap_or_default(),
        ttl,
        parallel_aaaa: d.parallel_aaaa.unwrap_or(true),
        single_request_reopen: d.single_request_reopen.unwrap_or(false),
    }
}

// ----- sections for what real nodes do (nodes[].extraRules, iptablesSave, conntrack;
// endpoints[].ips; server.behavior; workloads[].arrivals, dnsOnly; baseline) -----

/// Claims every `endpoints[].ips` address before any pod address is allocated.
fn reserve_pinned_endpoints(addresses: &mut Addresses<'_>, specs: &[file::ServiceSpec]) {
    for s in specs {
        for e in &s.endpoints {
            for t in &e.ips {
                if let Ok(ip) = t.parse::<Ipv4Addr>() {
                    addresses.pods.pinned.insert(ip);
                }
            }
        }
    }
}

/// `services[i].endpoints[j]`: its `ips` (each inside the node's podCIDR, none used
/// twice) or `count` addresses allocated in order; both given must agree.
fn endpoint_ips(
    c: &mut Checker,
    i: usize,
    j: usize,
    e: &file::EndpointsSpec,
    node: usize,
    addresses: &mut Addresses<'_>,
) -> Vec<Ipv4Addr> {
    if e.ips.is_empty() {
        let Some(count) = e.count else {
            c.value(
                fp!("services", i, "endpoints", j, "count"),
                "give `count` or the pods' addresses in `ips`",
            );
            return Vec::new();
        };
        return (0..count)
            .map(|_| addresses.pod(c, node, fp!("services", i, "endpoints", j, "count")))
            .collect();
    }
    if let Some(count) = e.count
        && usize::try_from(count).ok() != Some(e.ips.len())
    {
        c.value(
            fp!("services", i, "endpoints", j, "count"),
            format!(
                "count {count} does not match the {} addresses in `ips`",
                e.ips.len()
            ),
        );
    }
    let cidr = addresses.nodes[node].pod_cidr;
    let mut out = Vec::new();
    for (k, t) in e.ips.iter().enumerate() {
        let field = fp!("services", i, "endpoints", j, "ips", k);
        let Some(ip) = c.ip(t, field.clone()) else {
            continue;
        };
        if !cidr.contains(ip) {
            c.value(
                field,
                format!(
                    "{ip} is outside node `{}`'s podCIDR {cidr}",
                    addresses.nodes[node].name
                ),
            );
            continue;
        }
        if !addresses.pods.pinned_used.insert(ip) {
            c.bad(
                ProblemKind::Duplicate,
                field,
                format!("pod address {ip} is used twice"),
            );
            continue;
        }
        out.push(ip);
    }
    out
}

/// `nodes[i].extraRules`: each rule must parse as `iptables-restore` input for its
/// table and chain (the importer's message names what it does not understand).
fn check_extra_rules(c: &mut Checker, i: usize, specs: &[file::ExtraRuleSpec]) -> Vec<super::ExtraRule> {
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
        let rule = super::ExtraRule {
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
    mode: super::ProxyMode,
) -> Option<String> {
    let text = text?;
    if mode != super::ProxyMode::Iptables {
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
) -> super::ConntrackStart {
    let Some(spec) = spec else {
        return super::ConntrackStart::default();
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
        warm_start.push(super::WarmGroup {
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
    super::ConntrackStart { gc_phase, warm_start }
}

/// `workloads[i].arrivals`.
fn check_arrivals(c: &mut Checker, i: usize, spec: Option<&file::ArrivalsSpec>) -> super::ArrivalProcess {
    match spec {
        None | Some(file::ArrivalsSpec::Poisson {}) => super::ArrivalProcess::Poisson,
        Some(file::ArrivalsSpec::Paced {}) => super::ArrivalProcess::Paced,
        Some(file::ArrivalsSpec::Bursts { size }) => {
            if *size == 0 || *size > 1_000_000 {
                c.value(
                    fp!("workloads", i, "arrivals", "size"),
                    format!("burst size {size} is not in 1..=1000000"),
                );
            }
            super::ArrivalProcess::Bursts { size: (*size).max(1) }
        }
    }
}

/// `workloads[i].dnsOnly`: needs a DNS mode that resolves on every request.
fn check_dns_only(c: &mut Checker, i: usize, w: &file::WorkloadSpec) -> bool {
    if w.dns_only && w.dns.mode != DnsMode::PerRequest {
        c.value(
            fp!("workloads", i, "dnsOnly"),
            "a DNS-only workload resolves on every request: set dns.mode: perRequest",
        );
    }
    if w.dns_only && w.connection.mode != ConnectionMode::Short {
        c.value(
            fp!("workloads", i, "dnsOnly"),
            "a DNS-only workload opens no connection: remove connection.mode: pool",
        );
    }
    w.dns_only
}

/// `baseline`: the node must exist.
fn check_baseline(
    c: &mut Checker,
    spec: Option<&file::BaselineSpec>,
    nodes: &NodeLookup<'_>,
) -> Option<super::Baseline> {
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
    Some(super::Baseline {
        node: NodeId(u32::try_from(node).unwrap_or(u32::MAX)),
        source: b.source.clone().unwrap_or_default(),
        window: b.window,
        counters: b.counters.clone(),
    })
}

#[cfg(test)]
mod tests {
    use crate::scenario::{ProblemKind, Rate, Scenario, ScenarioError, WorkloadTarget};
    use crate::time::SimTime;
    use std::net::Ipv4Addr;

    const BASE: &str = "version: 1\nname: t\nduration: 10s\nkernel: \"6.18\"\nnodes:\n  - {name: a, cpus: 2, memory: 4Gi}\n  - {name: b, cpus: 2, memory: 4Gi, ip: 192.168.0.10, podCIDR: 10.244.0.0/24}\n";

    fn load(extra: &str) -> Result<Scenario, ScenarioError> {
        Scenario::from_bytes("t.yaml", format!("{BASE}{extra}").as_bytes(), &[])
    }

    fn problems(extra: &str) -> Vec<(ProblemKind, String)> {
        load(extra)
            .unwrap_err()
            .problems()
            .iter()
            .map(|p| (p.kind, p.to_string()))
            .collect()
    }

    #[test]
    fn addresses_are_allocated_in_order_skipping_explicit_ones() {
        let s = load(
            "services:\n  - {name: x, ports: [{port: 80}], endpoints: [{node: b, count: 2}, {node: a, count: 1}]}\n  - {name: y, clusterIP: 10.96.0.2, ports: [{port: 80}]}\n",
        )
        .unwrap();
        // Node b claimed .10 and 10.244.0.0/24 explicitly; a gets the next free ones.
        assert_eq!(s.nodes[0].ip, Ipv4Addr::new(192, 168, 0, 11));
        assert_eq!(s.nodes[0].pod_cidr.to_string(), "10.244.1.0/24");
        assert_eq!(s.services[0].cluster_ip, Some(Ipv4Addr::new(10, 96, 0, 3)));
        let ips: Vec<Ipv4Addr> = s.services[0].endpoints.iter().map(|e| e.ip).collect();
        assert_eq!(
            ips,
            [
                Ipv4Addr::new(10, 244, 0, 2),
                Ipv4Addr::new(10, 244, 0, 3),
                Ipv4Addr::new(10, 244, 1, 2)
            ]
        );
        let again = load(
            "services:\n  - {name: x, ports: [{port: 80}], endpoints: [{node: b, count: 2}, {node: a, count: 1}]}\n  - {name: y, clusterIP: 10.96.0.2, ports: [{port: 80}]}\n",
        )
        .unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn rate_profile_steps_and_ramps_linearly() {
        let s = load(
            "services: [{name: x, ports: [{port: 80}]}]\nworkloads:\n  - {name: w, node: a, pods: 1, target: 'x:80', rate: 1k/s, rateProfile: [{at: 2s, rate: 2k/s}, {at: 4s, rate: 4k/s, ramp: 2s}]}\n",
        )
        .unwrap();
        let w = &s.workloads[0];
        let at = |ms| w.rate_at(SimTime::from_millis(ms));
        assert_eq!(at(0), Rate::per_sec(1_000));
        assert_eq!(at(2_000), Rate::per_sec(2_000));
        assert_eq!(at(5_000), Rate::per_sec(3_000));
        assert_eq!(at(6_000), Rate::per_sec(4_000));
        assert_eq!(at(60_000), Rate::per_sec(4_000));
        assert_eq!(
            w.target,
            WorkloadTarget::Service {
                service: s.services[0].id,
                port: 0
            }
        );
    }

    #[test]
    fn overlapping_ramps_and_unordered_steps_are_rejected() {
        let p = problems(
            "services: [{name: x, ports: [{port: 80}]}]\nworkloads:\n  - {name: w, node: a, pods: 1, target: 'x:80', rate: 1k/s, rateProfile: [{at: 2s, rate: 2k/s, ramp: 5s}, {at: 4s, rate: 4k/s}, {at: 3s, rate: 1k/s}]}\n",
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].1
                .contains("rateProfile[1].at: step at 4s starts before the previous ramp ends at 7s")
        );
        assert!(p[1].1.contains("rateProfile[2].at: steps must be in time order"));
    }

    #[test]
    fn headless_services_have_no_cluster_ip_and_need_dns() {
        let p = problems(
            "services:\n  - {name: h, type: Headless, clusterIP: 10.96.0.5, ports: [{port: 80}]}\n  - {name: g, type: Headless, ports: [{port: 80}]}\nworkloads:\n  - {name: w, node: a, pods: 1, target: 'g:80', rate: 1/s}\n",
        );
        assert!(
            p.iter()
                .any(|(_, m)| m.contains("services[0].clusterIP: a Headless Service has no clusterIP"))
        );
        assert!(
            p.iter()
                .any(|(_, m)| m.contains("workloads[0].dns.mode: a Headless Service"))
        );
    }

    #[test]
    fn node_ports_are_allocated_and_range_checked() {
        let s = load("services:\n  - {name: n, type: NodePort, ports: [{port: 80}]}\n").unwrap();
        assert_eq!(s.services[0].ports[0].node_port, Some(30_000));
        let p = problems("services:\n  - {name: n, type: NodePort, ports: [{port: 80, nodePort: 80}]}\n");
        assert!(p[0].1.contains("nodePort 80 is outside 30000-32767"), "{p:?}");
    }

    #[test]
    fn unknown_kernel_lists_profiles_and_suggests_quoting() {
        let e = Scenario::from_bytes("k.yaml", BASE.replace("\"6.18\"", "5.10").as_bytes(), &[]).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.contains("k.yaml:4:9: kernel: unknown kernel `5.1` (known: 6.18, 5.4, 4.19; quote it"),
            "{shown}"
        );
    }

    #[test]
    fn full_pod_cidr_is_reported_once_naming_the_node() {
        let text = BASE.replace("podCIDR: 10.244.0.0/24", "podCIDR: 10.244.0.0/30");
        let e = Scenario::from_bytes(
            "p.yaml",
            format!(
                "{text}services: [{{name: x, ports: [{{port: 80}}], endpoints: [{{node: b, count: 5}}]}}]\n"
            )
            .as_bytes(),
            &[],
        )
        .unwrap_err();
        assert_eq!(e.problems().len(), 1, "{e}");
        assert_eq!(e.problems()[0].kind, ProblemKind::Exhausted);
        assert!(
            e.to_string()
                .contains("node `b` has no pod address left in its podCIDR 10.244.0.0/30 (1 pods fit)"),
            "{e}"
        );
    }

    #[test]
    fn target_in_another_namespace_gets_a_hint() {
        let p = problems(
            "services: [{name: x, namespace: shop, ports: [{port: 80, name: http}]}]\nworkloads:\n  - {name: w, node: a, pods: 1, target: 'x:80', rate: 1/s}\n  - {name: v, namespace: shop, node: a, pods: 1, target: 'x:grpc', rate: 1/s}\n",
        );
        assert!(p[0].1.contains("write `x.shop:80`"), "{p:?}");
        assert!(
            p[1].1.contains("Service `x` has no port `grpc` (ports: 80)"),
            "{p:?}"
        );
    }

    #[test]
    fn invalid_variant_is_reported_at_its_set_list() {
        let p = problems(
            "services: [{name: x, ports: [{port: 80}]}]\nworkloads:\n  - {name: w, node: a, pods: 1, target: 'x:80', rate: 1/s}\nvariants:\n  - {name: v, set: ['workloads.0.connection.mode=poool']}\n  - {name: u, set: ['nope']}\n",
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().any(|(k, m)| *k == ProblemKind::BadOverride
            && m.contains(
                "variants[0].set: variant `v` does not validate: --set workloads.0.connection.mode=poool"
            )));
        assert!(
            p.iter()
                .any(|(_, m)| m.contains("variants[1].set[0]: --set nope: expected PATH=VALUE"))
        );
    }

    /// docs/kernel-semantics.md (accept queue): the queue is bounded by min(backlog, somaxconn).
    #[test]
    fn listen_backlog_is_capped_by_somaxconn() {
        let s = load("services: [{name: x, ports: [{port: 80}], server: {backlog: 511}}, {name: y, ports: [{port: 80}]}]\n")
            .unwrap();
        assert_eq!(s.services[0].server.effective_backlog(4_096), 511);
        assert_eq!(s.services[0].server.effective_backlog(128), 128);
        assert_eq!(s.services[1].server.effective_backlog(4_096), 4_096);
    }

    /// The second guard behind the source scan: serde_norway's own alias repetition
    /// limit (events × 100 jumps) turns a billion-laughs document into an error.
    #[test]
    fn serde_norway_repetition_limit_stops_alias_bombs() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let refs = vec![format!("*a{}", i - 1); 9].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let e = serde_norway::from_str::<serde_norway::Value>(&text).unwrap_err();
        assert!(e.to_string().contains("repetition limit exceeded"), "{e}");
    }
}
