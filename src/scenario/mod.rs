//! The `scenario` module models what a platform engineer declares about a cluster and
//! its traffic: nodes and their sysctls, kube-proxy's configuration, Services and their
//! backends, client workloads, DNS, and named variants, loaded from a YAML (or JSON)
//! file in two stages.
//!
//! Stage 1 ([`mod@file`]) deserializes the text into raw serde structs that mirror the
//! format 1:1 (`deny_unknown_fields`, units parsed). Stage 2 checks everything else and
//! builds the validated [`Scenario`]: names resolved to ids, addresses allocated
//! deterministically, CIDRs parsed, references checked, and each node's effective
//! sysctls computed with their [`Provenance`]. Stage 2 reports **every** problem it
//! finds, each located by file, line, column and field path ([`ScenarioError`]).
//! `--set` [`Override`]s are applied to the value tree before stage 1.
//!
//! Not modelled here: anything about running the simulation. The format reference is
//! `docs/scenario-format.md`; simplifications are listed in `docs/model.md`.

pub mod budget;
pub mod file;

mod error;
mod load;
mod overrides;
mod source;
mod sysctl;
mod unit;
mod validate;

pub use error::{FieldPath, Origin, PathSegment, Problem, ProblemKind, ScenarioError};
pub use file::{
    BaselineCounters, Closer, Cni, ConnectionMode, DnsMode, IpvsScheduler, ProxyMode, ServerBehavior,
    ServiceType,
};
pub use overrides::{Override, OverrideError};
pub use source::{MAX_ALIAS_EXPANSION, MAX_DEPTH, MAX_FILE_BYTES, MAX_YAML_VALUES};
pub use sysctl::{
    KubeProxyConntrack, NodeSysctls, Provenance, check_sysctl_text, kernel_default_sysctls,
    known_sysctl_names,
};
pub use unit::{ByteSize, PortRange, Rate};
pub use validate::{MAX_CLUSTER_NODES, MAX_PODS, MAX_SERVICES};

use crate::conntrack::ThreadPlacement;
use crate::kernel::KernelProfile;
use crate::packet::{Cidr, Proto};
use crate::time::{SimDuration, SimTime};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Index of a node in [`Scenario::nodes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct NodeId(pub u32);

/// Index of a Service in [`Scenario::services`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ServiceId(pub u32);

/// Index of a workload in [`Scenario::workloads`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct WorkloadId(pub u32);

/// A validated scenario: every reference resolved, every address allocated.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// The file as the user named it (used in messages and reports).
    pub file: String,
    /// Scenario name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Seed of every random stream.
    pub seed: u64,
    /// Simulated time to run.
    pub duration: SimDuration,
    /// Time-series resolution.
    pub sample_interval: SimDuration,
    /// Kernel behaviour profile.
    pub kernel: KernelProfile,
    /// Pod network plugin.
    pub cni: Cni,
    /// Pod address space.
    pub cluster_cidr: Cidr,
    /// Service address space.
    pub service_cidr: Cidr,
    /// kube-proxy configuration.
    pub kube_proxy: KubeProxyConfig,
    /// Node CPU cost model.
    pub cost: CostModel,
    /// Nodes, indexed by [`NodeId`].
    pub nodes: Vec<NodeConfig>,
    /// Services with simulated backends, indexed by [`ServiceId`].
    pub services: Vec<ServiceConfig>,
    /// Services that only load the rule tables, with allocated addresses.
    pub background_services: Vec<BackgroundService>,
    /// Cluster DNS.
    pub dns: DnsConfig,
    /// Client workloads, indexed by [`WorkloadId`].
    pub workloads: Vec<WorkloadConfig>,
    /// Named override sets for `compare`.
    pub variants: Vec<Variant>,
    /// Counters observed on a real node, set next to the simulated ones in the report.
    pub baseline: Option<Baseline>,
    /// What was added because the scenario left it out, in words (an implicit kube-dns
    /// Service); the report states it.
    pub implicit_kube_dns: Option<String>,
    /// The value tree after overrides, kept to derive variants.
    raw: serde_norway::Value,
    /// Positions of the original text, kept to locate a variant's problems.
    map: source::SourceMap,
}

/// kube-proxy's configuration (`KubeProxyConfiguration` names).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KubeProxyConfig {
    /// Data plane.
    pub mode: ProxyMode,
    /// SNAT every Service packet.
    pub masquerade_all: bool,
    /// fwmark bit that flags packets for SNAT (`0x4000` for bit 14).
    pub masquerade_bit: u8,
    /// MASQUERADE with `--random-fully`.
    pub random_fully: bool,
    /// Conntrack sysctls kube-proxy writes (already folded into each node's sysctls).
    pub conntrack: KubeProxyConntrack,
    /// IPVS scheduler (used with `mode: ipvs`).
    pub ipvs_scheduler: IpvsScheduler,
    /// `net.ipv4.vs.conn_reuse_mode` when the scenario sets it (`kubeProxy.ipvs.connReuseMode`);
    /// `None`: what kube-proxy sets for the kernel.
    pub ipvs_conn_reuse_mode: Option<u8>,
    /// Cilium settings (used with `mode: ebpf`).
    pub ebpf: EbpfSettings,
}

/// Cilium kube-proxy replacement settings (`kubeProxy.ebpf`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EbpfSettings {
    /// `installNoConntrackIptablesRules`: pod traffic is NOTRACKed in the raw table.
    pub notrack: bool,
    /// `bpf-ct-global-tcp-max`; `None`: sized from node memory.
    pub ct_global_tcp_max: Option<u32>,
    /// `bpf-ct-global-any-max`; `None`: sized from node memory.
    pub ct_global_any_max: Option<u32>,
}

/// Node CPU cost constants (softirq work).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CostModel {
    /// Fixed cost per packet through the stack.
    pub per_packet: SimDuration,
    /// Cost per iptables rule traversed (docs/validation-targets.md §Per-rule cost, from §V23).
    pub per_rule: SimDuration,
    /// Cost per conntrack hash lookup.
    pub per_conntrack_lookup: SimDuration,
    /// Cost per conntrack allocation and insert.
    pub per_conntrack_insert: SimDuration,
    /// Cost per hash-table lookup or update of a proxy data plane (ipset, nftables
    /// verdict map, IPVS service and connection tables, BPF maps).
    pub per_hash_lookup: SimDuration,
    /// Cost per scheduler step choosing a backend (nftables `numgen`, IPVS scheduler,
    /// Cilium backend pick).
    pub per_scheduler_op: SimDuration,
}

impl Default for CostModel {
    fn default() -> CostModel {
        CostModel {
            per_packet: SimDuration::from_nanos(1_500),
            per_rule: SimDuration::from_nanos(13),
            per_conntrack_lookup: SimDuration::from_nanos(150),
            per_conntrack_insert: SimDuration::from_nanos(400),
            per_hash_lookup: SimDuration::from_nanos(60),
            per_scheduler_op: SimDuration::from_nanos(30),
        }
    }
}

/// A node.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NodeConfig {
    /// Its index.
    pub id: NodeId,
    /// Node name.
    pub name: String,
    /// Online CPUs.
    pub cpus: u32,
    /// RAM.
    pub memory: ByteSize,
    /// Node address.
    pub ip: Ipv4Addr,
    /// Pod address block.
    pub pod_cidr: Cidr,
    /// Effective sysctls with provenance.
    pub sysctls: NodeSysctls,
    /// Rules appended to the node's ruleset, in order.
    pub extra_rules: Vec<ExtraRule>,
    /// The node's own `iptables-save` dump (checked to parse); in iptables mode it
    /// replaces the rules kube-proxy would program.
    pub iptables_save: Option<String>,
    /// The conntrack table at time 0.
    pub conntrack_start: ConntrackStart,
}

/// One rule appended to a node's ruleset (`nodes[].extraRules`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ExtraRule {
    /// The table.
    pub table: crate::netfilter::TableKind,
    /// The chain (built-in, or a user chain created when new).
    pub chain: String,
    /// The options after `-A CHAIN`.
    pub rule: String,
}

impl ExtraRule {
    /// The rule as `iptables-restore` input for its table; `declare` adds the user
    /// chain's `:NAME - [0:0]` line (for a chain the ruleset does not have yet).
    #[must_use]
    pub fn to_restore_text(&self, declare: bool) -> String {
        let decl = if declare {
            format!(":{} - [0:0]\n", self.chain)
        } else {
            String::new()
        };
        format!("*{}\n{decl}-A {} {}\nCOMMIT\n", self.table, self.chain, self.rule)
    }
}

/// The conntrack table of a node at time 0 (`nodes[].conntrack`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConntrackStart {
    /// When the gc worker first runs.
    pub gc_phase: SimDuration,
    /// Entries in the table at time 0.
    pub warm_start: Vec<WarmGroup>,
}

/// `count` entries of one kind in the table at time 0, their remaining timeouts spread
/// evenly from `shortest` to `longest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WarmGroup {
    /// Protocol.
    pub protocol: Proto,
    /// TCP state (TCP only).
    #[serde(serialize_with = "ser_ct_state")]
    pub state: Option<crate::conntrack::CtState>,
    /// `[ASSURED]`.
    pub assured: bool,
    /// Entries.
    pub count: u32,
    /// Shortest remaining timeout.
    pub shortest: SimDuration,
    /// Longest remaining timeout.
    pub longest: SimDuration,
}

impl WarmGroup {
    /// The remaining timeout of entry `k` of the group: evenly spaced from `shortest` to
    /// `longest` (both included when the group has two or more entries).
    #[must_use]
    pub fn expires_in(&self, k: u32) -> SimDuration {
        if self.count <= 1 || self.longest <= self.shortest {
            return self.shortest;
        }
        let span = u128::from((self.longest - self.shortest).as_nanos());
        let step = span * u128::from(k) / u128::from(self.count - 1);
        self.shortest + SimDuration::from_nanos(u64::try_from(step).unwrap_or(u64::MAX))
    }
}

#[allow(clippy::ref_option)]
fn ser_ct_state<S: serde::Serializer>(
    s: &Option<crate::conntrack::CtState>,
    ser: S,
) -> Result<S::Ok, S::Error> {
    match s {
        Some(st) => ser.serialize_some(st.as_str()),
        None => ser.serialize_none(),
    }
}

/// Counters observed on a real node (`baseline`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Baseline {
    /// The node they were observed on.
    pub node: NodeId,
    /// Where they come from.
    pub source: String,
    /// The span they were counted over (`None`: since the counters started).
    pub window: Option<SimDuration>,
    /// The counters.
    pub counters: BaselineCounters,
}

/// A Service with simulated backends.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ServiceConfig {
    /// Its index.
    pub id: ServiceId,
    /// Service name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Service type.
    pub service_type: ServiceType,
    /// Virtual IP (`None` for Headless).
    pub cluster_ip: Option<Ipv4Addr>,
    /// Ports.
    pub ports: Vec<ServicePort>,
    /// One entry per backend pod, in declaration order.
    pub endpoints: Vec<Endpoint>,
    /// Backend behaviour.
    pub server: ServerConfig,
}

/// A Service port.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ServicePort {
    /// Port name.
    pub name: Option<String>,
    /// Service port.
    pub port: u16,
    /// Backend port.
    pub target_port: u16,
    /// Protocol.
    pub protocol: Proto,
    /// Node port (NodePort Services).
    pub node_port: Option<u16>,
}

/// One backend pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Endpoint {
    /// Node it runs on.
    pub node: NodeId,
    /// Pod address (from the node's pod CIDR).
    pub ip: Ipv4Addr,
}

/// How backend pods serve requests.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ServerConfig {
    /// Service-time distribution.
    pub service_time: ServiceTime,
    /// Requests served in parallel per pod.
    pub concurrency: u32,
    /// `listen()` backlog argument; `None` = `net.core.somaxconn` (as Go's `net.Listen`).
    pub backlog: Option<u32>,
    /// Rate cap per pod (requests beyond it queue).
    pub capacity: Option<Rate>,
    /// How the pods treat connections.
    pub behavior: ServerBehavior,
}

impl ServerConfig {
    /// The accept-queue limit the kernel applies: `min(backlog, somaxconn)`
    /// (`__sys_listen`).
    #[must_use]
    pub fn effective_backlog(&self, somaxconn: u32) -> u32 {
        self.backlog.map_or(somaxconn, |b| b.min(somaxconn))
    }
}

/// A service-time distribution.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum ServiceTime {
    /// Always this long.
    Constant(SimDuration),
    /// Exponential with this mean.
    Exponential {
        /// The mean.
        mean: SimDuration,
    },
    /// Log-normal.
    Lognormal {
        /// Median (e^mu).
        median: SimDuration,
        /// Standard deviation of the underlying normal.
        sigma: f64,
    },
}

/// A Service that only loads the rule tables.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BackgroundService {
    /// Virtual IP.
    pub cluster_ip: Ipv4Addr,
    /// Port (TCP 80 → 8080).
    pub port: u16,
    /// Endpoint pod addresses (on unsimulated nodes).
    pub endpoints: Vec<Ipv4Addr>,
}

/// Cluster DNS.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DnsConfig {
    /// Cluster domain.
    pub cluster_domain: String,
    /// resolv.conf `ndots`.
    pub ndots: u8,
    /// The cluster DNS Service (`kube-dns` in `kube-system`) when declared.
    pub service: Option<ServiceId>,
    /// NodeLocal DNSCache when enabled.
    pub node_local_cache: Option<NodeLocalDnsCache>,
}

/// NodeLocal DNSCache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NodeLocalDnsCache {
    /// Listen address.
    pub address: Ipv4Addr,
    /// TTL cap.
    pub ttl: SimDuration,
    /// Cache entries (each of the success and denial caches, CoreDNS `cache`).
    pub capacity: u32,
    /// Misses go upstream over TCP (`forward . <kube-dns> { force_tcp }`, the
    /// reference Corefile); `false`: over UDP.
    pub force_tcp: bool,
    /// Idle upstream connections are closed after this (CoreDNS `forward` `expire`).
    pub upstream_expire: SimDuration,
}

/// A client workload.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WorkloadConfig {
    /// Its index.
    pub id: WorkloadId,
    /// Workload name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Node its pods run on.
    pub node: NodeId,
    /// Every node the pods are spread over (pod `k` on `nodes[k % nodes.len()]`); `node`
    /// is the first.
    pub nodes: Vec<NodeId>,
    /// Client pod addresses, one per pod.
    pub pods: Vec<Ipv4Addr>,
    /// Where requests go.
    pub target: WorkloadTarget,
    /// Base rate (before the first profile step).
    pub rate: Rate,
    /// Rate profile, sorted by time.
    pub rate_profile: Vec<RateStep>,
    /// Connection handling.
    pub connection: ConnectionConfig,
    /// Per-request deadline including connect.
    pub timeout: SimDuration,
    /// Retry policy.
    pub retries: RetryPolicy,
    /// Name resolution.
    pub dns: WorkloadDns,
    /// How requests arrive in time.
    pub arrivals: ArrivalProcess,
    /// Each request is one name lookup and nothing else.
    pub dns_only: bool,
}

/// The arrival process of a workload (`workloads[].arrivals`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub enum ArrivalProcess {
    /// Exponential gaps (open loop).
    #[default]
    Poisson,
    /// One request every 1/rate.
    Paced,
    /// `size` requests at one instant, bursts as a Poisson process of rate/size.
    Bursts {
        /// Requests per burst.
        size: u32,
    },
}

/// Where a workload sends requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum WorkloadTarget {
    /// A declared Service and the index of one of its ports.
    Service {
        /// The Service.
        service: ServiceId,
        /// Index into its `ports`.
        port: usize,
    },
    /// A fixed address.
    Address(SocketAddrV4),
}

/// One rate-profile point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RateStep {
    /// When the ramp starts.
    pub at: SimDuration,
    /// Rate reached at `at + ramp`.
    pub rate: Rate,
    /// Linear ramp length (zero = a step).
    pub ramp: SimDuration,
}

/// Connection handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConnectionConfig {
    /// Short connections or a pool.
    pub mode: ConnectionMode,
    /// Pooled connections per pod.
    pub pool_size: u32,
    /// Requests per pooled connection before it closes (`None` = unlimited).
    pub max_requests_per_connection: Option<u32>,
    /// Idle pooled connections close after this.
    pub idle_timeout: SimDuration,
    /// Which side closes first (holds TIME_WAIT).
    pub closer: Closer,
}

/// Retry policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max: u32,
    /// Wait before each retry.
    pub backoff: SimDuration,
}

/// Name resolution of a workload.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WorkloadDns {
    /// When to resolve.
    pub mode: DnsMode,
    /// Name resolved through the search path.
    pub name: String,
    /// Client cache TTL (`cached`).
    pub ttl: SimDuration,
    /// A and AAAA in parallel from one socket (glibc default).
    pub parallel_aaaa: bool,
    /// resolv.conf `single-request-reopen`.
    pub single_request_reopen: bool,
    /// Where the threads sending a parallel A/AAAA pair sit (`dns.threadPlacement`).
    pub thread_placement: ThreadPlacement,
    /// Gap between the two sends of a pair.
    pub pair_gap: SimDuration,
}

/// A named set of overrides (`compare`).
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// Variant name.
    pub name: String,
    /// Overrides applied on top of the scenario.
    pub overrides: Vec<Override>,
}

impl WorkloadConfig {
    /// The node pod `k` runs on.
    #[must_use]
    pub fn pod_node(&self, k: usize) -> NodeId {
        self.nodes
            .get(k % self.nodes.len().max(1))
            .copied()
            .unwrap_or(self.node)
    }

    /// The offered rate at `now`: `rate` before the first profile step, then each step's
    /// rate, reached linearly over its `ramp` from the rate in force when it starts.
    #[must_use]
    pub fn rate_at(&self, now: SimTime) -> Rate {
        let t = SimDuration::from_nanos(now.as_nanos());
        let mut current = self.rate;
        for step in &self.rate_profile {
            if t < step.at {
                break;
            }
            let into = t - step.at;
            if step.ramp == SimDuration::ZERO || into >= step.ramp {
                current = step.rate;
            } else {
                // Integer interpolation: from + (to - from) * into / ramp.
                let from = i128::from(current.as_milli_per_sec());
                let to = i128::from(step.rate.as_milli_per_sec());
                let v = from + (to - from) * i128::from(into.as_nanos()) / i128::from(step.ramp.as_nanos());
                current = Rate::from_milli_per_sec(u64::try_from(v).unwrap_or(0));
            }
        }
        current
    }
}

impl Scenario {
    /// Loads and validates the scenario at `path` (YAML, or JSON for `.json`), applying
    /// `overrides` first.
    ///
    /// # Errors
    /// Every problem found, each with file, line, column and field (or the override
    /// responsible): unreadable, over [`MAX_FILE_BYTES`], not UTF-8, empty, bad syntax,
    /// alias bombs, unknown fields, bad units, unknown references, unknown sysctls.
    ///
    /// ```
    /// use k8s_netsim::scenario::{Override, Provenance, Scenario};
    /// let set = [Override::parse("workloads.0.rate=10k/s").unwrap()];
    /// let s = Scenario::load("scenarios/flash-sale.yaml", &set).unwrap();
    /// let node = &s.nodes[0].sysctls;
    /// assert_eq!(node.values.nf_conntrack_max, 131_072);
    /// assert_eq!(node.provenance("net.netfilter.nf_conntrack_max"), Some(Provenance::KubeProxy));
    /// ```
    pub fn load(
        path: impl AsRef<std::path::Path>,
        overrides: &[Override],
    ) -> Result<Scenario, ScenarioError> {
        load::load_path(path.as_ref(), overrides)
    }

    /// Loads a scenario from bytes; `file` names it in messages and decides JSON
    /// (`.json`) or YAML.
    ///
    /// # Errors
    /// As [`Scenario::load`].
    pub fn from_bytes(file: &str, bytes: &[u8], overrides: &[Override]) -> Result<Scenario, ScenarioError> {
        load::load_bytes(file, bytes, overrides)
    }

    /// This scenario with the named variant's overrides applied on top.
    ///
    /// # Errors
    /// No variant of that name, or the variant's result does not validate.
    pub fn with_variant(&self, name: &str) -> Result<Scenario, ScenarioError> {
        load::with_variant(self, name)
    }

    /// This scenario with `overrides` applied on top of its value tree, validated again
    /// (`compare --variant`, `sweep` and `plan` derive their runs this way).
    ///
    /// # Errors
    /// An override that does not apply, or a result that does not validate; problems name
    /// the override responsible.
    pub fn with_overrides(&self, overrides: &[Override]) -> Result<Scenario, ScenarioError> {
        load::with_overrides(self, overrides)
    }

    /// The value at an override path (`workloads.0.rate`,
    /// `nodes.0.sysctl.net.netfilter.nf_conntrack_max`) as written in the file or set by
    /// an override, as YAML scalar text (`30k/s`, `524288`); `None` when the file does not
    /// set it or it is not a scalar. For sysctls the file leaves alone, read
    /// [`NodeSysctls::entries`] instead. (`plan` reads a field's current value this way.)
    #[must_use]
    pub fn value_at(&self, path: &str) -> Option<String> {
        let probe = Override::parse(&format!("{path}=0")).ok()?;
        let mut node = &self.raw;
        for key in probe.keys() {
            node = match node {
                serde_norway::Value::Sequence(seq) => seq.get(key.parse::<usize>().ok()?)?,
                serde_norway::Value::Mapping(map) => map.get(key.as_str())?,
                _ => return None,
            };
        }
        match node {
            serde_norway::Value::String(s) => Some(s.clone()),
            serde_norway::Value::Number(n) => Some(n.to_string()),
            serde_norway::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A SHA-256 (hex) of the scenario's value tree after overrides: two scenarios with
    /// the same fingerprint are the same input whatever their file names (`sweep --shard`
    /// and `merge` check shards against it).
    #[must_use]
    pub fn fingerprint(&self) -> String {
        use sha2::Digest as _;
        let text = serde_norway::to_string(&self.raw).unwrap_or_default();
        let digest = sha2::Sha256::digest(text.as_bytes());
        digest.iter().fold(String::with_capacity(64), |mut acc, b| {
            use std::fmt::Write as _;
            let _ = write!(acc, "{b:02x}");
            acc
        })
    }

    /// The node with id `id`.
    ///
    /// # Panics
    /// When `id` did not come from this scenario.
    #[must_use]
    pub fn node(&self, id: NodeId) -> &NodeConfig {
        &self.nodes[id.0 as usize]
    }

    /// The Service with id `id`.
    ///
    /// # Panics
    /// When `id` did not come from this scenario.
    #[must_use]
    pub fn service(&self, id: ServiceId) -> &ServiceConfig {
        &self.services[id.0 as usize]
    }

    /// The node named `name`.
    #[must_use]
    pub fn node_by_name(&self, name: &str) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.name == name)
    }
}
