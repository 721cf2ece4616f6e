//! The raw scenario file: serde structs that mirror the YAML/JSON format 1:1.
//!
//! Stage 1 of loading. Every struct denies unknown fields and uses the camelCase names
//! of Kubernetes manifests; kube-proxy settings use `KubeProxyConfiguration` names and
//! sysctls their full Linux names. Units (durations, rates, sizes) are parsed here;
//! addresses, CIDRs, names and sysctl values are kept as written and checked in stage 2
//! (`Scenario::from_file`), which reports every problem at once. See
//! `docs/scenario-format.md` for each field.

use super::unit::{ByteSize, Rate};
use crate::time::SimDuration;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// The whole file (`version: 1`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScenarioFile {
    /// Format version; must be 1.
    pub version: u32,
    /// Scenario name (used in reports).
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Seed of every random stream.
    #[serde(default)]
    pub seed: u64,
    /// Simulated time to run.
    pub duration: SimDuration,
    /// Time-series resolution (default 1s).
    #[serde(default)]
    pub sample_interval: Option<SimDuration>,
    /// Kernel profile name: `"6.18"`, `"5.4"`, `"4.19"`.
    pub kernel: KernelName,
    /// Pod network plugin (default `flannel-vxlan`).
    #[serde(default)]
    pub cni: Cni,
    /// Pod address space (default `10.244.0.0/16`).
    #[serde(default, rename = "clusterCIDR")]
    pub cluster_cidr: Option<String>,
    /// Service address space (default `10.96.0.0/12`).
    #[serde(default, rename = "serviceCIDR")]
    pub service_cidr: Option<String>,
    /// Node address space for nodes without `ip` (default `192.168.0.0/24`).
    #[serde(default, rename = "nodeCIDR")]
    pub node_cidr: Option<String>,
    /// kube-proxy configuration.
    #[serde(default)]
    pub kube_proxy: KubeProxySpec,
    /// Node CPU cost model.
    #[serde(default)]
    pub cost: CostSpec,
    /// The simulated nodes.
    pub nodes: Vec<NodeSpec>,
    /// Services with simulated backends.
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    /// Services that only load the rule tables.
    #[serde(default)]
    pub background_services: Option<BackgroundServicesSpec>,
    /// Cluster DNS settings.
    #[serde(default)]
    pub dns: DnsSpec,
    /// Client workloads.
    #[serde(default)]
    pub workloads: Vec<WorkloadSpec>,
    /// Named override sets for `k8s-netsim compare`.
    #[serde(default)]
    pub variants: Vec<VariantSpec>,
    /// Counters observed on a real node (`k8s-netsim import`), which the report sets
    /// next to the simulated ones.
    #[serde(default)]
    pub baseline: Option<BaselineSpec>,
}

/// A kernel profile name. Accepts a string (`"5.4"`) or an unquoted number (`5.4`,
/// which YAML reads as a float; `5.10` would read as `5.1`, so quoting is advised).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelName(pub String);

impl<'de> Deserialize<'de> for KernelName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = KernelName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a kernel version string such as \"5.4\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<KernelName, E> {
                Ok(KernelName(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<KernelName, E> {
                Ok(KernelName(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<KernelName, E> {
                Ok(KernelName(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<KernelName, E> {
                Ok(KernelName(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The pod network plugin and its data-plane mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cni {
    /// Flannel with VXLAN encapsulation.
    #[default]
    FlannelVxlan,
    /// Calico with IP-in-IP encapsulation.
    CalicoIpip,
    /// Calico with BGP-routed pod addresses (no encapsulation).
    CalicoBgp,
    /// Cilium with native routing.
    CiliumNative,
}

/// kube-proxy's data plane (`KubeProxyConfiguration.mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    /// iptables chains with `-m statistic` endpoint selection.
    #[default]
    Iptables,
    /// IPVS virtual servers.
    Ipvs,
    /// nftables maps.
    Nftables,
    /// An eBPF replacement of kube-proxy (Cilium); kube-proxy itself does not run.
    Ebpf,
}

/// `KubeProxyConfiguration` fields the model uses.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubeProxySpec {
    /// Data plane.
    #[serde(default)]
    pub mode: ProxyMode,
    /// SNAT every Service packet (`--masquerade-all`).
    #[serde(default)]
    pub masquerade_all: Option<bool>,
    /// Bit of the fwmark used to flag packets for SNAT (default 14).
    #[serde(default)]
    pub masquerade_bit: Option<u32>,
    /// MASQUERADE with `--random-fully` (default true: kube-proxy uses it when the
    /// iptables binary supports it).
    #[serde(default)]
    pub random_fully: Option<bool>,
    /// Conntrack sysctls kube-proxy writes.
    #[serde(default)]
    pub conntrack: KubeProxyConntrackSpec,
    /// IPVS settings (used with `mode: ipvs`).
    #[serde(default)]
    pub ipvs: IpvsSpec,
    /// Cilium kube-proxy replacement settings (used with `mode: ebpf`).
    #[serde(default)]
    pub ebpf: EbpfSpec,
}

/// Cilium agent settings of the eBPF data plane (cilium-agent flag names in camelCase).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EbpfSpec {
    /// `installNoConntrackIptablesRules`: raw-table NOTRACK for pod traffic, so the host's
    /// nf_conntrack no longer tracks it (default false).
    #[serde(default)]
    pub notrack: Option<bool>,
    /// `bpf-ct-global-tcp-max` (default: sized from node memory with
    /// `bpf-map-dynamic-size-ratio` 0.0025).
    #[serde(default)]
    pub ct_global_tcp_max: Option<u32>,
    /// `bpf-ct-global-any-max` (default: sized from node memory).
    #[serde(default)]
    pub ct_global_any_max: Option<u32>,
}

/// `KubeProxyConntrackConfiguration` (k/k `pkg/proxy/apis/config/types.go`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubeProxyConntrackSpec {
    /// Entries per CPU (default 32768; 0 leaves `nf_conntrack_max` alone).
    #[serde(default)]
    pub max_per_core: Option<u32>,
    /// Floor of the computed max (default 131072).
    #[serde(default)]
    pub min: Option<u32>,
    /// `nf_conntrack_tcp_timeout_established` (default 24h; 0s leaves it alone).
    #[serde(default)]
    pub tcp_established_timeout: Option<SimDuration>,
    /// `nf_conntrack_tcp_timeout_close_wait` (default 1h; 0s leaves it alone).
    #[serde(default)]
    pub tcp_close_wait_timeout: Option<SimDuration>,
    /// Sets `nf_conntrack_tcp_be_liberal` to 1 when true (default false).
    #[serde(default)]
    pub tcp_be_liberal: Option<bool>,
    /// `nf_conntrack_udp_timeout` (default 0s = keep the kernel value).
    #[serde(default)]
    pub udp_timeout: Option<SimDuration>,
    /// `nf_conntrack_udp_timeout_stream` (default 0s = keep the kernel value).
    #[serde(default)]
    pub udp_stream_timeout: Option<SimDuration>,
}

/// `KubeProxyIPVSConfiguration` fields.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IpvsSpec {
    /// Scheduler (default `rr`).
    #[serde(default)]
    pub scheduler: Option<IpvsScheduler>,
    /// `net.ipv4.vs.conn_reuse_mode` as left on the node (0, 1 or 2; default: what
    /// kube-proxy sets, 0 on 4.1 <= kernel < 5.9 and the kernel default 1 otherwise).
    #[serde(default)]
    pub conn_reuse_mode: Option<u8>,
}

/// IPVS schedulers (`ipvsadm -s`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IpvsScheduler {
    /// Round robin.
    #[default]
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connections.
    Lc,
    /// Weighted least connections.
    Wlc,
    /// Locality-based least connections.
    Lblc,
    /// Locality-based least connections with replication.
    Lblcr,
    /// Source hashing.
    Sh,
    /// Destination hashing.
    Dh,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Maglev hashing.
    Mh,
}

/// Node CPU cost model constants (softirq work per packet, rule, conntrack operation).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CostSpec {
    /// Fixed cost per packet through the stack.
    #[serde(default)]
    pub per_packet: Option<SimDuration>,
    /// Cost per iptables rule traversed.
    #[serde(default)]
    pub per_rule: Option<SimDuration>,
    /// Cost per conntrack hash lookup.
    #[serde(default)]
    pub per_conntrack_lookup: Option<SimDuration>,
    /// Cost per conntrack entry allocation and insert.
    #[serde(default)]
    pub per_conntrack_insert: Option<SimDuration>,
    /// Cost per hash-table lookup or update of a proxy data plane (ipset, nftables map,
    /// IPVS service/connection table, BPF map).
    #[serde(default)]
    pub per_hash_lookup: Option<SimDuration>,
    /// Cost per scheduler step choosing a backend (numgen, IPVS scheduler, socket LB pick).
    #[serde(default)]
    pub per_scheduler_op: Option<SimDuration>,
}

/// A simulated node.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeSpec {
    /// Node name, unique.
    pub name: String,
    /// Online CPUs (kube-proxy sizes conntrack by this).
    pub cpus: u32,
    /// RAM (the kernel sizes conntrack by this).
    pub memory: ByteSize,
    /// Node address (default: allocated from `nodeCIDR`).
    #[serde(default)]
    pub ip: Option<String>,
    /// Pod address block (default: the next free /24 of `clusterCIDR`).
    #[serde(default, rename = "podCIDR")]
    pub pod_cidr: Option<String>,
    /// Sysctls under their full Linux names; checked in stage 2.
    #[serde(default)]
    pub sysctl: BTreeMap<String, SysctlValue>,
    /// Rules appended to this node's ruleset, one iptables-save rule each (CNI SNAT,
    /// NOTRACK, custom DROPs).
    #[serde(default)]
    pub extra_rules: Vec<ExtraRuleSpec>,
    /// The node's own `iptables-save` dump: in iptables mode it replaces the rules
    /// kube-proxy would program from `services`.
    #[serde(default)]
    pub iptables_save: Option<String>,
    /// The node's conntrack table at time 0: the gc worker's phase and a warm start.
    #[serde(default)]
    pub conntrack: Option<NodeConntrackSpec>,
}

/// One rule appended to a node's ruleset.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtraRuleSpec {
    /// `raw`, `mangle`, `nat` or `filter`.
    pub table: String,
    /// A built-in chain (`POSTROUTING`) or a user chain (created when new).
    pub chain: String,
    /// The rule's options as `iptables-save` writes them after `-A CHAIN`
    /// (`-d 10.0.0.1/32 -p tcp -j SNAT --to-source 192.168.0.10:40000-40063`).
    pub rule: String,
}

/// A node's conntrack table at time 0.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeConntrackSpec {
    /// When the gc worker first runs (default 0s): the kernel's worker is global and
    /// started at boot, so its phase against a test is arbitrary.
    #[serde(default)]
    pub gc_phase: Option<SimDuration>,
    /// Entries already in the table at time 0 (from `conntrack -L`).
    #[serde(default)]
    pub warm_start: Vec<WarmGroupSpec>,
}

/// `count` entries of one kind already in the table, their remaining timeouts spread
/// evenly over `expiresIn`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WarmGroupSpec {
    /// `tcp`, `udp` or `icmp`.
    pub protocol: String,
    /// TCP state as `conntrack -L` prints it (`ESTABLISHED`, `TIME_WAIT`, ...); TCP only.
    #[serde(default)]
    pub state: Option<String>,
    /// `[ASSURED]` (default false).
    #[serde(default)]
    pub assured: bool,
    /// Number of entries.
    pub count: u32,
    /// Remaining timeout: one duration, or `[shortest, longest]`.
    pub expires_in: Vec<SimDuration>,
}

/// Counters observed on a real node, named as `conntrack -S` prints them.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BaselineSpec {
    /// The node they were observed on.
    pub node: String,
    /// Where they come from (free text: the evidence file and line).
    #[serde(default)]
    pub source: Option<String>,
    /// The span they were counted over (`k8s-netsim import` of a bundle with two
    /// snapshots); absent: since the counters started.
    #[serde(default)]
    pub window: Option<SimDuration>,
    /// The counters, summed over CPUs.
    pub counters: BaselineCounters,
}

/// The summed `conntrack -S` counters plus the entry count (`nf_conntrack_count`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
#[allow(missing_docs)]
pub struct BaselineCounters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insert: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insert_failed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_drop: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_restart: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clash_resolve: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chaintoolong: Option<u64>,
}

/// A sysctl value as written: an integer, a boolean or a string (`"120s"`,
/// `"32768 60999"`). Its type is checked against the sysctl's in stage 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SysctlValue {
    /// An integer (`131072`).
    Int(i64),
    /// A boolean (`true`).
    Bool(bool),
    /// Any string (`"120s"`, `"32768 60999"`).
    Text(String),
}

impl fmt::Display for SysctlValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SysctlValue::Int(v) => write!(f, "{v}"),
            SysctlValue::Bool(v) => write!(f, "{v}"),
            SysctlValue::Text(v) => write!(f, "{v}"),
        }
    }
}

impl<'de> Deserialize<'de> for SysctlValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SysctlValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer, a boolean or a string")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SysctlValue, E> {
                Ok(SysctlValue::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SysctlValue, E> {
                i64::try_from(v)
                    .map(SysctlValue::Int)
                    .map_err(|_| E::custom(format!("sysctl value {v} is too large")))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<SysctlValue, E> {
                Ok(SysctlValue::Bool(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SysctlValue, E> {
                Ok(SysctlValue::Text(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<SysctlValue, E> {
                Err(E::custom(format!(
                    "sysctl value {v} is fractional; sysctls take integers (or durations such as \"120s\")"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// A Service with simulated backends.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service name, unique within its namespace.
    pub name: String,
    /// Namespace (default `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Service type (default `ClusterIP`).
    #[serde(default, rename = "type")]
    pub service_type: ServiceType,
    /// Virtual IP (default: allocated from `serviceCIDR`); not allowed for Headless.
    #[serde(default, rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    /// Ports, at least one.
    pub ports: Vec<ServicePortSpec>,
    /// Backend pods per node.
    #[serde(default)]
    pub endpoints: Vec<EndpointsSpec>,
    /// Behaviour of the backend pods.
    #[serde(default)]
    pub server: Option<ServerSpec>,
}

/// `Service.spec.type` (Headless = `ClusterIP` with `clusterIP: None`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum ServiceType {
    /// A virtual IP DNATed by kube-proxy.
    #[default]
    ClusterIP,
    /// A ClusterIP plus a port on every node.
    NodePort,
    /// No virtual IP: DNS returns the pod addresses.
    Headless,
}

/// One Service port.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServicePortSpec {
    /// Port name (optional when there is one port).
    #[serde(default)]
    pub name: Option<String>,
    /// Service port.
    pub port: u16,
    /// Backend port (default: `port`).
    #[serde(default)]
    pub target_port: Option<u16>,
    /// Protocol (default TCP).
    #[serde(default)]
    pub protocol: ProtocolSpec,
    /// Node port (NodePort only; default allocated from 30000-32767).
    #[serde(default)]
    pub node_port: Option<u16>,
}

/// `ServicePort.protocol`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ProtocolSpec {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

/// `count` backend pods of a Service on node `node`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EndpointsSpec {
    /// Node name (must be in `nodes`).
    pub node: String,
    /// Number of ready pods (default: one per address in `ips`).
    #[serde(default)]
    pub count: Option<u32>,
    /// The pods' addresses, inside the node's podCIDR (default: allocated in order).
    #[serde(default)]
    pub ips: Vec<String>,
}

/// How backend pods serve requests.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerSpec {
    /// Time to serve one request.
    #[serde(default)]
    pub service_time: Option<ServiceTimeSpec>,
    /// Requests served in parallel per pod.
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// `listen()` backlog argument (capped by `net.core.somaxconn`; default somaxconn).
    #[serde(default)]
    pub backlog: Option<u32>,
    /// Requests per second one pod can serve (CoreDNS: about 850/s per pod).
    #[serde(default)]
    pub capacity: Option<Rate>,
    /// How the pods treat connections (default `normal`).
    #[serde(default)]
    pub behavior: ServerBehavior,
}

/// How backend pods treat connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ServerBehavior {
    /// Accept, serve, close as the workload's `closer` says.
    #[default]
    Normal,
    /// Drop every SYN (a black hole: the client retransmits until its deadline).
    Blackhole,
    /// Serve, but never close: a client that closes leaves the server's side in
    /// CLOSE_WAIT and the conntrack entry in CLOSE_WAIT for `tcp_timeout_close_wait`.
    NeverClose,
    /// Answer every SYN with an RST (nothing listens on the port).
    Reset,
}

/// A service-time distribution, tagged by `distribution`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "distribution", rename_all = "camelCase", deny_unknown_fields)]
pub enum ServiceTimeSpec {
    /// Always `value`.
    Constant {
        /// The service time.
        value: SimDuration,
    },
    /// Exponential with mean `mean`.
    Exponential {
        /// The mean.
        mean: SimDuration,
    },
    /// Log-normal with median `median` and shape `sigma`.
    Lognormal {
        /// The median (e^mu).
        median: SimDuration,
        /// The standard deviation of the underlying normal.
        sigma: f64,
    },
}

/// Services that exist only to load kube-proxy's rule tables.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackgroundServicesSpec {
    /// Number of Services.
    pub count: u32,
    /// Endpoints per Service.
    pub endpoints_each: u32,
}

/// Cluster DNS settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DnsSpec {
    /// Cluster domain (default `cluster.local`).
    #[serde(default)]
    pub cluster_domain: Option<String>,
    /// The `kube-dns` Service name (default `kube-dns` in `kube-system`).
    #[serde(default)]
    pub service: Option<String>,
    /// resolv.conf `ndots` (default 5, as kubelet writes).
    #[serde(default)]
    pub ndots: Option<u8>,
    /// NodeLocal DNSCache.
    #[serde(default, rename = "nodeLocalDNSCache")]
    pub node_local_dns_cache: Option<NodeLocalDnsSpec>,
}

/// NodeLocal DNSCache settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeLocalDnsSpec {
    /// Whether the cache runs on every node.
    #[serde(default)]
    pub enabled: bool,
    /// Link-local listen address (default 169.254.20.10).
    #[serde(default)]
    pub address: Option<String>,
    /// Cache TTL cap (default 30s).
    #[serde(default)]
    pub ttl: Option<SimDuration>,
    /// Cache entries (default 9984, CoreDNS `cache` plugin).
    #[serde(default)]
    pub capacity: Option<u32>,
    /// Forward misses over TCP (default true: `force_tcp` in node-local-dns's Corefile).
    #[serde(default)]
    pub force_tcp: Option<bool>,
    /// Idle upstream connection expiry (default 10s, CoreDNS `forward` `expire`).
    #[serde(default)]
    pub upstream_expire: Option<SimDuration>,
}

/// A client workload: `pods` pods on `node` sending requests to `target`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadSpec {
    /// Workload name, unique.
    pub name: String,
    /// Namespace (default `default`; sets the DNS search path).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Node the client pods run on, or a list of nodes they are spread over (pod `k`
    /// on the `k mod n`-th).
    pub node: NodeList,
    /// Number of client pods.
    pub pods: u32,
    /// `service:port` (a Service in `services`) or `ip:port`.
    pub target: String,
    /// Open-loop Poisson rate for the whole workload (optional when `rateProfile` starts
    /// at 0s).
    #[serde(default)]
    pub rate: Option<Rate>,
    /// Steps and ramps over time; overrides `rate` from the first step on.
    #[serde(default)]
    pub rate_profile: Vec<RateStepSpec>,
    /// Connection handling.
    #[serde(default)]
    pub connection: ConnectionSpec,
    /// Per-request deadline including connect (default 1s).
    #[serde(default)]
    pub timeout: Option<SimDuration>,
    /// Retries after a timeout or error.
    #[serde(default)]
    pub retries: RetrySpec,
    /// Name resolution before connecting.
    #[serde(default)]
    pub dns: WorkloadDnsSpec,
    /// How requests arrive in time (default Poisson).
    #[serde(default)]
    pub arrivals: Option<ArrivalsSpec>,
    /// Only resolve the target's name: each request is one lookup, no connection.
    #[serde(default)]
    pub dns_only: bool,
}

/// The arrival process of a workload, tagged by `process`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "process", rename_all = "camelCase", deny_unknown_fields)]
pub enum ArrivalsSpec {
    /// Independent exponential gaps (open-loop Poisson).
    Poisson {},
    /// Evenly spaced: one request every 1/rate.
    Paced {},
    /// Groups of `size` requests at one instant; the groups arrive as a Poisson
    /// process of rate/size.
    Bursts {
        /// Requests per burst (≥ 1).
        size: u32,
    },
}

/// A node name, or a list of node names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeList {
    /// `node: node-a`.
    One(String),
    /// `node: [node-a, node-b]`.
    Many(Vec<String>),
}

impl NodeList {
    /// The names, in order.
    #[must_use]
    pub fn names(&self) -> Vec<&str> {
        match self {
            NodeList::One(n) => vec![n.as_str()],
            NodeList::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

impl<'de> Deserialize<'de> for NodeList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = NodeList;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a node name or a list of node names")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<NodeList, E> {
                Ok(NodeList::One(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<NodeList, A::Error> {
                let mut v = Vec::new();
                while let Some(n) = seq.next_element::<String>()? {
                    v.push(n);
                }
                Ok(NodeList::Many(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// One point of a rate profile.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateStepSpec {
    /// When the step starts.
    pub at: SimDuration,
    /// The rate reached.
    pub rate: Rate,
    /// Linear ramp from the previous rate over this span (default: a step).
    #[serde(default)]
    pub ramp: Option<SimDuration>,
}

/// Connection handling of a workload.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectionSpec {
    /// `short` (one connection per request) or `pool` (keep-alive).
    #[serde(default)]
    pub mode: ConnectionMode,
    /// Connections per pod when pooled (default 10).
    #[serde(default)]
    pub pool_size: Option<u32>,
    /// Requests before a pooled connection is closed (default 0 = unlimited).
    #[serde(default)]
    pub max_requests_per_connection: Option<u32>,
    /// Idle pooled connections close after this (default 90s).
    #[serde(default)]
    pub idle_timeout: Option<SimDuration>,
    /// Which side closes first and so holds TIME_WAIT (default client).
    #[serde(default)]
    pub closer: Closer,
}

/// How a workload uses connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ConnectionMode {
    /// A new connection per request, closed after the response.
    #[default]
    Short,
    /// A keep-alive pool per pod.
    Pool,
}

/// Which side sends the first FIN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Closer {
    /// The client closes first and holds TIME_WAIT.
    #[default]
    Client,
    /// The server closes first and holds TIME_WAIT.
    Server,
}

/// Retry policy.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetrySpec {
    /// Retries after the first attempt (default 0).
    #[serde(default)]
    pub max: u32,
    /// Wait before each retry (default 0s).
    #[serde(default)]
    pub backoff: Option<SimDuration>,
}

/// Name resolution of a workload.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadDnsSpec {
    /// When to resolve (default `none`).
    #[serde(default)]
    pub mode: DnsMode,
    /// Name to resolve through the search path (default: the target Service's name).
    #[serde(default)]
    pub name: Option<String>,
    /// Client cache TTL when `cached` (default 30s).
    #[serde(default)]
    pub ttl: Option<SimDuration>,
    /// glibc sends A and AAAA in parallel from one socket (default true).
    #[serde(default, rename = "parallelAAAA")]
    pub parallel_aaaa: Option<bool>,
    /// resolv.conf `options single-request-reopen` (default false).
    #[serde(default)]
    pub single_request_reopen: Option<bool>,
    /// Where the threads that send a parallel A/AAAA pair sit: `same` (default: one
    /// thread sends both, as glibc's and musl's resolvers do; never races), `different`
    /// (two threads on two CPUs) or `scheduler` (two threads, CPUs drawn independently).
    #[serde(default)]
    pub thread_placement: Option<String>,
    /// Replaced by `threadPlacement`; kept only to refuse it with a message that says so.
    #[serde(default)]
    pub resolver_threads: Option<serde_norway::Value>,
    /// Gap between the two sends of a pair (default 2us).
    #[serde(default)]
    pub pair_gap: Option<SimDuration>,
}

/// When a workload resolves its target name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DnsMode {
    /// Before every request (no client cache, as glibc without nscd).
    PerRequest,
    /// Once per TTL per pod.
    Cached,
    /// Never: the target address is used directly.
    #[default]
    None,
}

/// A named set of `--set` overrides.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VariantSpec {
    /// Variant name, unique.
    pub name: String,
    /// Overrides in `--set` syntax (`workloads.0.connection.mode=pool`).
    pub set: Vec<String>,
}
