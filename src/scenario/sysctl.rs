//! The sysctls a scenario may set, their types, and how a node's effective values are
//! computed: kernel defaults for the profile and node shape, then kube-proxy's
//! conntrack sizing, then the scenario's explicit settings, each value remembering
//! which of the three set it ([`Provenance`]).

use super::file::{KubeProxyConntrackSpec, ProxyMode, SysctlValue};
use super::unit::{ByteSize, PortRange};
use crate::kernel::{KernelProfile, Sysctls};
use crate::time::SimDuration;
use std::collections::BTreeMap;

/// Who decided a sysctl's effective value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Provenance {
    /// The kernel's default for the profile and the node's memory.
    KernelDefault,
    /// kube-proxy's conntrack configuration (`KubeProxyConntrackConfiguration`).
    KubeProxy,
    /// The scenario's `sysctl` block (or a `--set` override of it).
    Scenario,
}

/// A node's effective sysctls and where each came from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NodeSysctls {
    /// The effective values.
    pub values: Sysctls,
    provenance: BTreeMap<&'static str, Provenance>,
}

impl NodeSysctls {
    /// Who set the sysctl `name` (full Linux name), or `None` for an unknown name.
    #[must_use]
    pub fn provenance(&self, name: &str) -> Option<Provenance> {
        self.provenance.get(name).copied()
    }

    /// Every known sysctl with its effective value (as `sysctl -n` prints it) and
    /// provenance, sorted by name.
    #[must_use]
    pub fn entries(&self) -> Vec<(&'static str, String, Provenance)> {
        KNOWN
            .iter()
            .map(|k| {
                let p = self.provenance(k.name).unwrap_or(Provenance::KernelDefault);
                (k.name, k.slot.render(&self.values), p)
            })
            .collect()
    }

    fn set_by(&mut self, name: &'static str, p: Provenance) {
        self.provenance.insert(name, p);
    }
}

type Acc<T> = fn(&mut Sysctls) -> &mut T;

/// The storage and type of a known sysctl.
#[derive(Clone, Copy)]
enum Slot {
    Count {
        acc: Acc<u32>,
        min: u32,
        max: u32,
    },
    Small {
        acc: Acc<u8>,
        min: u8,
        max: u8,
    },
    Bool(Acc<bool>),
    /// Linux takes seconds.
    Seconds(Acc<SimDuration>),
    /// Linux takes milliseconds.
    Millis(Acc<SimDuration>),
    Ports(Acc<(u16, u16)>),
}

impl Slot {
    fn describe(self) -> String {
        match self {
            Slot::Count { min, max, .. } => format!("an integer in {min}..={max}"),
            Slot::Small { min, max, .. } => format!("an integer in {min}..={max}"),
            Slot::Bool(_) => "0, 1, true or false".into(),
            Slot::Seconds(_) => "seconds (an integer) or a duration such as \"120s\"".into(),
            Slot::Millis(_) => "milliseconds (an integer) or a duration such as \"1s\"".into(),
            Slot::Ports(_) => "two ports such as \"32768 60999\"".into(),
        }
    }

    fn assign(self, s: &mut Sysctls, v: &SysctlValue) -> Result<(), String> {
        let bad = || format!("`{v}` is not {}", self.describe());
        match (self, v) {
            (Slot::Count { acc, min, max }, SysctlValue::Int(n)) => {
                let n = u32::try_from(*n)
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(bad)?;
                *acc(s) = n;
            }
            (Slot::Small { acc, min, max }, SysctlValue::Int(n)) => {
                let n = u8::try_from(*n)
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(bad)?;
                *acc(s) = n;
            }
            (Slot::Bool(acc), SysctlValue::Int(n @ (0 | 1))) => *acc(s) = *n == 1,
            (Slot::Bool(acc), SysctlValue::Bool(b)) => *acc(s) = *b,
            (Slot::Seconds(acc), SysctlValue::Int(n)) => {
                *acc(s) = SimDuration::from_secs(u64::try_from(*n).map_err(|_| bad())?);
            }
            (Slot::Millis(acc), SysctlValue::Int(n)) => {
                *acc(s) = SimDuration::from_millis(u64::try_from(*n).map_err(|_| bad())?);
            }
            (Slot::Seconds(acc) | Slot::Millis(acc), SysctlValue::Text(t)) => {
                *acc(s) = SimDuration::parse(t)?;
            }
            (Slot::Ports(acc), SysctlValue::Text(t)) => {
                let r = PortRange::parse(t)?;
                *acc(s) = (r.low, r.high);
            }
            _ => return Err(bad()),
        }
        Ok(())
    }

    fn render(self, s: &Sysctls) -> String {
        let mut c = s.clone();
        match self {
            Slot::Count { acc, .. } => acc(&mut c).to_string(),
            Slot::Small { acc, .. } => acc(&mut c).to_string(),
            Slot::Bool(acc) => u8::from(*acc(&mut c)).to_string(),
            Slot::Seconds(acc) => acc(&mut c).as_secs().to_string(),
            Slot::Millis(acc) => acc(&mut c).as_millis().to_string(),
            Slot::Ports(acc) => {
                let (a, b) = *acc(&mut c);
                format!("{a}\t{b}")
            }
        }
    }
}

struct Known {
    name: &'static str,
    slot: Slot,
}

macro_rules! acc {
    ($t:ty, $s:ident => $($f:tt)+) => {{
        fn a($s: &mut Sysctls) -> &mut $t {
            &mut $($f)+
        }
        a
    }};
}

const I32_MAX: u32 = i32::MAX.unsigned_abs();

/// Every sysctl a scenario may set (`Sysctls` fields under their Linux names).
const KNOWN: &[Known] = &[
    Known {
        name: "net.core.somaxconn",
        slot: Slot::Count {
            acc: acc!(u32, s => s.somaxconn),
            min: 0,
            max: I32_MAX,
        },
    },
    Known {
        name: "net.ipv4.ip_local_port_range",
        slot: Slot::Ports(acc!((u16, u16), s => s.ip_local_port_range)),
    },
    Known {
        name: "net.ipv4.tcp_fin_timeout",
        slot: Slot::Seconds(acc!(SimDuration, s => s.tcp_fin_timeout)),
    },
    Known {
        name: "net.ipv4.tcp_max_syn_backlog",
        slot: Slot::Count {
            acc: acc!(u32, s => s.tcp_max_syn_backlog),
            min: 0,
            max: I32_MAX,
        },
    },
    Known {
        name: "net.ipv4.tcp_max_tw_buckets",
        slot: Slot::Count {
            acc: acc!(u32, s => s.tcp_max_tw_buckets),
            min: 0,
            max: I32_MAX,
        },
    },
    Known {
        name: "net.ipv4.tcp_syn_retries",
        slot: Slot::Small {
            acc: acc!(u8, s => s.tcp_syn_retries),
            min: 1,
            max: 127,
        },
    },
    Known {
        name: "net.ipv4.tcp_syncookies",
        slot: Slot::Small {
            acc: acc!(u8, s => s.tcp_syncookies),
            min: 0,
            max: 2,
        },
    },
    Known {
        name: "net.ipv4.tcp_tw_reuse",
        slot: Slot::Small {
            acc: acc!(u8, s => s.tcp_tw_reuse),
            min: 0,
            max: 2,
        },
    },
    Known {
        name: "net.ipv4.tcp_tw_reuse_delay",
        slot: Slot::Millis(acc!(SimDuration, s => s.tcp_tw_reuse_delay)),
    },
    Known {
        name: "net.netfilter.nf_conntrack_buckets",
        slot: Slot::Count {
            acc: acc!(u32, s => s.nf_conntrack_buckets),
            min: 1,
            max: 1 << 30,
        },
    },
    Known {
        name: "net.netfilter.nf_conntrack_generic_timeout",
        slot: Slot::Seconds(acc!(SimDuration, s => s.ct_timeouts.generic)),
    },
    Known {
        name: "net.netfilter.nf_conntrack_icmp_timeout",
        slot: Slot::Seconds(acc!(SimDuration, s => s.ct_timeouts.icmp)),
    },
    Known {
        name: "net.netfilter.nf_conntrack_max",
        slot: Slot::Count {
            acc: acc!(u32, s => s.nf_conntrack_max),
            min: 1,
            max: I32_MAX,
        },
    },
    Known {
        name: "net.netfilter.nf_conntrack_tcp_be_liberal",
        slot: Slot::Bool(acc!(bool, s => s.nf_conntrack_tcp_be_liberal)),
    },
    Known {
        name: "net.netfilter.nf_conntrack_tcp_loose",
        slot: Slot::Bool(acc!(bool, s => s.nf_conntrack_tcp_loose)),
    },
    Known {
        name: "net.netfilter.nf_conntrack_tcp_timeout_close",
        slot: Slot::Seconds(acc!(SimDuration, s => s.ct_timeouts.tcp_close)),
    },
    Known {
        name: "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
        slot: Slot::Seconds(acc!(SimDuration, s => s.ct_timeouts.tcp_close_wait)),
    },
    Known {
        name: "net.netfilter.nf_conntrack_tcp_timeout_established",
        slot: Slot::Seconds(acc!(SimDuration, s => s.ct_timeouts.tcp_established)),
    },
    Known {
        name: "net.netfilter.nf_conntrack_tcp_timeout_fin_wait",
        slot: Slot::Seconds(acc!(SimDuration, s => s.ct_timeouts.tcp_fin_wait)),
    },
    Known {
        name: "net.netfilter.nf_conntrack_tcp_timeout_last_ack",
        slot: Slot::Seconds(acc!(SimDuration, s => s.ct_timeouts.tcp_last_ack)),
    },
    Known {
        name: "net.netfilter.nf_conntrack_tcp_timeout_max_retrans",
        slot: Slot::Seconds(acc!(SimDuration, s => s.ct_timeouts.tcp_max_retrans)),
    },
    Known {
        name: "net.netfilter.nf_conntrack_tcp_timeout_syn_recv",
        slot: Slot::Seconds(acc!(SimDuration, s => s.ct_timeouts.tcp_syn_recv)),
    },
    Known {
        name: "net.netfilter.nf_conntrack_tcp_timeout_syn_sent",
        slot: Slot::Seconds(acc!(SimDuration, s => s.ct_timeouts.tcp_syn_sent)),
    },
    Known {
        name: "net.netfilter.nf_conntrack_tcp_timeout_time_wait",
        slot: Slot::Seconds(acc!(SimDuration, s => s.ct_timeouts.tcp_time_wait)),
    },
    Known {
        name: "net.netfilter.nf_conntrack_tcp_timeout_unacknowledged",
        slot: Slot::Seconds(acc!(SimDuration, s => s.ct_timeouts.tcp_unacknowledged)),
    },
    Known {
        name: "net.netfilter.nf_conntrack_udp_timeout",
        slot: Slot::Seconds(acc!(SimDuration, s => s.ct_timeouts.udp)),
    },
    Known {
        name: "net.netfilter.nf_conntrack_udp_timeout_stream",
        slot: Slot::Seconds(acc!(SimDuration, s => s.ct_timeouts.udp_stream)),
    },
];

/// The names of every sysctl a scenario may set, sorted.
#[must_use]
pub fn known_sysctl_names() -> Vec<&'static str> {
    KNOWN.iter().map(|k| k.name).collect()
}

/// Whether `value`, written as a scenario's `sysctl` entry (an integer when it is a
/// number written without leading zeros, else a string), is one a scenario accepts for
/// `name` (`import` checks a node's values with it before carrying them over).
///
/// # Errors
/// An unknown name, or a value the sysctl does not take, worded as validation words it.
pub fn check_sysctl_text(name: &str, value: &str) -> Result<(), String> {
    let k = known(name).ok_or_else(|| unknown_sysctl_message(name))?;
    let v = match value.parse::<i64>() {
        Ok(n) if n >= 0 && n.to_string() == value => SysctlValue::Int(n),
        _ => SysctlValue::Text(value.to_string()),
    };
    k.slot.assign(&mut Sysctls::default(), &v)
}

fn known(name: &str) -> Option<&'static Known> {
    KNOWN.iter().find(|k| k.name == name)
}

/// Levenshtein distance, for "did you mean" hints on misspelt sysctl names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The message for an unknown sysctl name, with the closest known name when near.
pub(crate) fn unknown_sysctl_message(name: &str) -> String {
    // Far longer than any known name: no near miss, and quadratic to compare.
    if name.len() > 128 {
        let head: String = name.chars().take(64).collect();
        return format!(
            "unknown sysctl `{head}...` ({} bytes long); the model knows: {}",
            name.len(),
            known_sysctl_names().join(", ")
        );
    }
    let best = KNOWN.iter().map(|k| (edit_distance(name, k.name), k.name)).min();
    match best {
        Some((d, k)) if d <= 4 => format!("unknown sysctl `{name}` (did you mean `{k}`?)"),
        _ => format!(
            "unknown sysctl `{name}`; the model knows: {}",
            known_sysctl_names().join(", ")
        ),
    }
}

/// The TCP established-hash size the kernel picks for `memory`
/// (`alloc_large_system_hash("TCP established", .., scale 17, .., 512K max)` in
/// `tcp_init`): one bucket per 128 KiB of RAM, rounded up to a power of two.
fn tcp_ehash_entries(memory: ByteSize) -> u64 {
    (memory.as_bytes() >> 17)
        .max(1)
        .next_power_of_two()
        .clamp(1 << 10, 1 << 19)
}

/// The kernel's defaults for `kernel` on a node with `memory` of RAM.
///
/// Conntrack sizing follows `nf_conntrack_init_start` without the `hashsize` module
/// parameter: 5.15+ ("sanitize table size default settings") uses 262,144 buckets
/// above 4 GiB, 65,536 above 1 GiB, else RAM/128 KiB (at least 1,024), and
/// `nf_conntrack_max` = buckets; older kernels use 65,536 / 16,384 / RAM/128 KiB (at
/// least 32) and max = 4 × buckets. `somaxconn` is 128 before 5.4 (commit
/// 19f92a030ca6 raised `SOMAXCONN` to 4096). `tcp_max_tw_buckets` = ehash/2 and
/// `tcp_max_syn_backlog` = max(128, ehash/128) (`tcp_sk_init`).
#[must_use]
pub fn kernel_default_sysctls(kernel: KernelProfile, memory: ByteSize) -> Sysctls {
    let mem = memory.as_bytes();
    // One source of truth for the kernel's sizing rule (`nf_conntrack_init_start`).
    let (max, buckets) = crate::conntrack::default_sizing(mem, None, kernel);
    let ehash = tcp_ehash_entries(memory);
    let mut s = Sysctls {
        nf_conntrack_max: max,
        nf_conntrack_buckets: buckets,
        tcp_tw_reuse: kernel.tcp_tw_reuse_default,
        tcp_max_tw_buckets: u32::try_from(ehash / 2).unwrap_or(u32::MAX),
        tcp_max_syn_backlog: u32::try_from((ehash / 128).max(128)).unwrap_or(u32::MAX),
        ..Sysctls::default()
    };
    if kernel.name == KernelProfile::LINUX_4_19.name {
        s.somaxconn = 128;
    }
    s
}

/// kube-proxy's resolved conntrack settings (defaults from k/k
/// `pkg/proxy/apis/config/v1alpha1/defaults.go`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KubeProxyConntrack {
    /// Entries per CPU (0 = leave `nf_conntrack_max` alone).
    pub max_per_core: u32,
    /// Floor of the computed max.
    pub min: u32,
    /// `nf_conntrack_tcp_timeout_established` (zero = leave alone).
    pub tcp_established_timeout: SimDuration,
    /// `nf_conntrack_tcp_timeout_close_wait` (zero = leave alone).
    pub tcp_close_wait_timeout: SimDuration,
    /// Set `nf_conntrack_tcp_be_liberal` = 1.
    pub tcp_be_liberal: bool,
    /// `nf_conntrack_udp_timeout` (zero = leave alone).
    pub udp_timeout: SimDuration,
    /// `nf_conntrack_udp_timeout_stream` (zero = leave alone).
    pub udp_stream_timeout: SimDuration,
}

impl KubeProxyConntrack {
    pub(crate) fn from_spec(s: &KubeProxyConntrackSpec) -> KubeProxyConntrack {
        KubeProxyConntrack {
            max_per_core: s.max_per_core.unwrap_or(32_768),
            min: s.min.unwrap_or(131_072),
            tcp_established_timeout: s
                .tcp_established_timeout
                .unwrap_or(SimDuration::from_secs(86_400)),
            tcp_close_wait_timeout: s.tcp_close_wait_timeout.unwrap_or(SimDuration::from_secs(3_600)),
            tcp_be_liberal: s.tcp_be_liberal.unwrap_or(false),
            udp_timeout: s.udp_timeout.unwrap_or(SimDuration::ZERO),
            udp_stream_timeout: s.udp_stream_timeout.unwrap_or(SimDuration::ZERO),
        }
    }
}

/// A node's effective sysctls: kernel defaults → kube-proxy (unless `mode: ebpf`, where
/// kube-proxy does not run) → explicit settings.
///
/// kube-proxy (`pkg/proxy/conntrack/sysctls.go`, `realConntracker.SetMax`) writes
/// `nf_conntrack_max = max(maxPerCore × cpus, min)` when maxPerCore > 0, raises
/// `nf_conntrack_buckets` (hashsize) to max/4 when below it, and writes each non-zero
/// timeout.
///
/// # Errors
/// One `(sysctl name, message)` per explicit setting that is unknown or ill-typed.
pub(crate) fn effective_sysctls(
    kernel: KernelProfile,
    memory: ByteSize,
    cpus: u32,
    mode: ProxyMode,
    kp: &KubeProxyConntrack,
    explicit: &BTreeMap<String, SysctlValue>,
) -> (NodeSysctls, Vec<(String, bool, String)>) {
    let mut n = NodeSysctls {
        values: kernel_default_sysctls(kernel, memory),
        provenance: KNOWN
            .iter()
            .map(|k| (k.name, Provenance::KernelDefault))
            .collect(),
    };
    if mode != ProxyMode::Ebpf {
        let kpv = Provenance::KubeProxy;
        if kp.max_per_core > 0 {
            let max = u64::from(kp.max_per_core)
                .saturating_mul(u64::from(cpus))
                .max(u64::from(kp.min));
            n.values.nf_conntrack_max = u32::try_from(max).unwrap_or(u32::MAX);
            n.set_by("net.netfilter.nf_conntrack_max", kpv);
            let want_buckets = n.values.nf_conntrack_max / 4;
            if n.values.nf_conntrack_buckets < want_buckets {
                n.values.nf_conntrack_buckets = want_buckets;
                n.set_by("net.netfilter.nf_conntrack_buckets", kpv);
            }
        }
        let t = &mut n.values.ct_timeouts;
        let mut touched = Vec::new();
        for (value, slot, name) in [
            (
                kp.tcp_established_timeout,
                &mut t.tcp_established,
                "net.netfilter.nf_conntrack_tcp_timeout_established",
            ),
            (
                kp.tcp_close_wait_timeout,
                &mut t.tcp_close_wait,
                "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
            ),
            (
                kp.udp_timeout,
                &mut t.udp,
                "net.netfilter.nf_conntrack_udp_timeout",
            ),
            (
                kp.udp_stream_timeout,
                &mut t.udp_stream,
                "net.netfilter.nf_conntrack_udp_timeout_stream",
            ),
        ] {
            if value > SimDuration::ZERO {
                *slot = value;
                touched.push(name);
            }
        }
        if kp.tcp_be_liberal {
            n.values.nf_conntrack_tcp_be_liberal = true;
            touched.push("net.netfilter.nf_conntrack_tcp_be_liberal");
        }
        for name in touched {
            n.set_by(name, kpv);
        }
    }
    let mut problems = Vec::new();
    for (name, value) in explicit {
        match known(name) {
            None => problems.push((name.clone(), true, unknown_sysctl_message(name))),
            Some(k) => match k.slot.assign(&mut n.values, value) {
                Ok(()) => n.set_by(k.name, Provenance::Scenario),
                Err(msg) => problems.push((name.clone(), false, format!("{}: {msg}", k.name))),
            },
        }
    }
    (n, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kp_default() -> KubeProxyConntrack {
        KubeProxyConntrack::from_spec(&KubeProxyConntrackSpec::default())
    }

    /// docs/kernel-semantics.md §Sizing and docs/validation-targets.md §V21: 1-4 vCPU →
    /// 131,072; 8 → 262,144; 16 → 524,288.
    #[test]
    fn kube_proxy_sizes_conntrack_max_from_cpus_with_a_floor() {
        for (cpus, want) in [
            (1, 131_072),
            (4, 131_072),
            (8, 262_144),
            (16, 524_288),
            (32, 1_048_576),
        ] {
            let (n, p) = effective_sysctls(
                KernelProfile::LINUX_5_4,
                ByteSize::from_gib(16),
                cpus,
                ProxyMode::Iptables,
                &kp_default(),
                &BTreeMap::new(),
            );
            assert!(p.is_empty());
            assert_eq!(n.values.nf_conntrack_max, want, "{cpus} cpus");
            assert_eq!(
                n.provenance("net.netfilter.nf_conntrack_max"),
                Some(Provenance::KubeProxy)
            );
        }
    }

    /// docs/kernel-semantics.md §Sizing (hashsize >= max/4) and docs/kube-proxy.md §Conntrack
    /// settings (timeout overrides): kube-proxy raises hashsize to max/4 only when smaller.
    #[test]
    fn kube_proxy_raises_buckets_to_a_quarter_of_max_only_when_smaller() {
        let (n, _) = effective_sysctls(
            KernelProfile::LINUX_5_4,
            ByteSize::from_gib(16),
            64,
            ProxyMode::Iptables,
            &kp_default(),
            &BTreeMap::new(),
        );
        assert_eq!(n.values.nf_conntrack_max, 2_097_152);
        assert_eq!(n.values.nf_conntrack_buckets, 524_288);
        assert_eq!(
            n.provenance("net.netfilter.nf_conntrack_buckets"),
            Some(Provenance::KubeProxy)
        );
        let (n, _) = effective_sysctls(
            KernelProfile::LINUX_5_4,
            ByteSize::from_gib(16),
            4,
            ProxyMode::Iptables,
            &kp_default(),
            &BTreeMap::new(),
        );
        // 5.4 on 16 GiB: 65,536 buckets already ≥ 131,072 / 4.
        assert_eq!(n.values.nf_conntrack_buckets, 65_536);
        assert_eq!(
            n.provenance("net.netfilter.nf_conntrack_buckets"),
            Some(Provenance::KernelDefault)
        );
        assert_eq!(
            n.values.ct_timeouts.tcp_established,
            SimDuration::from_secs(86_400)
        );
        assert_eq!(n.values.ct_timeouts.tcp_close_wait, SimDuration::from_secs(3_600));
        assert_eq!(n.values.ct_timeouts.udp, SimDuration::from_secs(30));
    }

    /// docs/kernel-semantics.md §Sizing and docs/validation-targets.md §V20: defaults by kernel
    /// and RAM (buckets = max = 262,144 on >4 GiB 6.18 hosts).
    #[test]
    fn kernel_defaults_follow_nf_conntrack_init_start() {
        let new = kernel_default_sysctls(KernelProfile::LINUX_6_18, ByteSize::from_gib(24));
        assert_eq!(
            (new.nf_conntrack_buckets, new.nf_conntrack_max),
            (262_144, 262_144)
        );
        assert_eq!(
            (new.tcp_max_tw_buckets, new.tcp_max_syn_backlog),
            (131_072, 2_048)
        );
        let old = kernel_default_sysctls(KernelProfile::LINUX_5_4, ByteSize::from_gib(16));
        assert_eq!(
            (old.nf_conntrack_buckets, old.nf_conntrack_max),
            (65_536, 262_144)
        );
        let small = kernel_default_sysctls(KernelProfile::LINUX_6_18, ByteSize::from_gib(2));
        assert_eq!(
            (small.nf_conntrack_buckets, small.nf_conntrack_max),
            (65_536, 65_536)
        );
        assert_eq!(
            kernel_default_sysctls(KernelProfile::LINUX_4_19, ByteSize::from_gib(8)).somaxconn,
            128
        );
    }

    #[test]
    fn ebpf_mode_leaves_kernel_defaults() {
        let (n, _) = effective_sysctls(
            KernelProfile::LINUX_6_18,
            ByteSize::from_gib(24),
            4,
            ProxyMode::Ebpf,
            &kp_default(),
            &BTreeMap::new(),
        );
        assert_eq!(n.values.nf_conntrack_max, 262_144);
        assert_eq!(
            n.provenance("net.netfilter.nf_conntrack_max"),
            Some(Provenance::KernelDefault)
        );
    }

    #[test]
    fn explicit_sysctls_win_and_typos_are_named() {
        let mut explicit = BTreeMap::new();
        explicit.insert(
            "net.netfilter.nf_conntrack_max".to_string(),
            SysctlValue::Int(524_288),
        );
        explicit.insert(
            "net.netfilter.nf_conntrack_tcp_timeout_time_wait".to_string(),
            SysctlValue::Text("30s".into()),
        );
        explicit.insert(
            "net.ipv4.ip_local_port_range".to_string(),
            SysctlValue::Text("10240 65535".into()),
        );
        explicit.insert("net.netfilter.nf_conntrack_mx".to_string(), SysctlValue::Int(1));
        explicit.insert("net.ipv4.tcp_tw_reuse".to_string(), SysctlValue::Int(3));
        let (n, problems) = effective_sysctls(
            KernelProfile::LINUX_5_4,
            ByteSize::from_gib(16),
            4,
            ProxyMode::Iptables,
            &kp_default(),
            &explicit,
        );
        assert_eq!(n.values.nf_conntrack_max, 524_288);
        assert_eq!(
            n.provenance("net.netfilter.nf_conntrack_max"),
            Some(Provenance::Scenario)
        );
        assert_eq!(n.values.ct_timeouts.tcp_time_wait, SimDuration::from_secs(30));
        assert_eq!(n.values.ip_local_port_range, (10_240, 65_535));
        assert_eq!(problems.len(), 2);
        assert!(problems.iter().any(|(_, unknown, m)| *unknown
            && m.contains("`net.netfilter.nf_conntrack_mx`")
            && m.contains("did you mean `net.netfilter.nf_conntrack_max`")));
        assert!(
            problems
                .iter()
                .any(|(_, unknown, m)| !*unknown && m.contains("`3` is not an integer in 0..=2"))
        );
    }

    #[test]
    fn entries_render_like_sysctl_n() {
        let (n, _) = effective_sysctls(
            KernelProfile::LINUX_5_4,
            ByteSize::from_gib(16),
            4,
            ProxyMode::Iptables,
            &kp_default(),
            &BTreeMap::new(),
        );
        let e = n.entries();
        assert!(e.contains(&(
            "net.netfilter.nf_conntrack_max",
            "131072".into(),
            Provenance::KubeProxy
        )));
        assert!(e.contains(&(
            "net.ipv4.ip_local_port_range",
            "32768\t60999".into(),
            Provenance::KernelDefault
        )));
        assert!(e.windows(2).all(|w| w[0].0 < w[1].0), "sorted by name");
    }
}
