//! Kernel behaviour profiles and the sysctls a node exposes.
//!
//! The `kernel` module says *which* Linux behaviour the model follows. A
//! [`KernelProfile`] is a set of behaviour switches keyed to the kernel release in
//! which the behaviour changed (see `docs/model.md`, "Kernel profiles", for the list and
//! sources). [`Sysctls`] carries the tunables under their Linux names, with the
//! defaults measured on a fresh 6.18 VM (docs/kernel-semantics.md §Measurements on 6.18).

use crate::time::SimDuration;
use std::fmt;

/// The kernel behaviour the model follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct KernelProfile {
    /// Release name as shown to users (`"6.18"`, `"5.4"`, `"4.19"`).
    pub name: &'static str,
    /// `tcp_syn_linear_timeouts` (6.5+, default 4): the first N SYN RTOs stay at the
    /// initial RTO and N is added to the retry budget. 0 = pure exponential backoff.
    pub syn_linear_timeouts: u8,
    /// UDP clash resolution by merging identical entries (`__nf_ct_resolve_clash`,
    /// commit 71d8c47fc653 and the 4.19/5.0 race fixes ed07d9a021df, 4e35c1cb9460).
    pub udp_clash_merge: bool,
    /// Reply-only insertion of a UDP entry whose ORIGINAL tuple clashed with a
    /// different NAT binding (`nf_ct_resolve_clash_harder`, 6a757c07e51f, 5.6 cycle).
    pub udp_clash_reply_only: bool,
    /// SNAT port search may evict a colliding SNATed TCP entry in TIME_WAIT/CLOSE in
    /// the last 32 probes of a round (F. Westphal, 2023, 6.5+).
    pub snat_evict_time_wait: bool,
    /// Without `--random`, SNAT port search on old kernels starts at a per-protocol
    /// shared offset (the "rover") instead of a random offset.
    pub nat_sequential_rover: bool,
    /// `nf_conntrack_max` default when the module loads without `hashsize`: `true` =
    /// equal to the bucket count (5.15+ "sanitize table size default settings"),
    /// `false` = 4 × buckets (older kernels).
    pub max_equals_buckets: bool,
    /// The adaptive gc interval (5.15+, mean remaining lifetime clamped to 1..60 s).
    /// Older kernels scan 1/64 of the table every ≤ 5 s (`GC_INTERVAL`); modelled as
    /// a fixed 5 s cadence over the whole table.
    pub gc_adaptive: bool,
    /// `tcp_tw_reuse` default (2 since 5.3-ish "loopback only"; before: 0).
    pub tcp_tw_reuse_default: u8,
}

impl KernelProfile {
    /// Linux 6.18: the kernel the rules of docs/kernel-semantics.md were verified on.
    pub const LINUX_6_18: KernelProfile = KernelProfile {
        name: "6.18",
        syn_linear_timeouts: 4,
        udp_clash_merge: true,
        udp_clash_reply_only: true,
        snat_evict_time_wait: true,
        nat_sequential_rover: false,
        max_equals_buckets: true,
        gc_adaptive: true,
        tcp_tw_reuse_default: 2,
    };

    /// Linux 5.4 (Ubuntu 20.04, many managed node images of the incident's era):
    /// A/AAAA races with different DNAT backends are unresolved (reply-only clash
    /// insertion came in 5.6); exponential SYN backoff; max = 4 × buckets.
    pub const LINUX_5_4: KernelProfile = KernelProfile {
        name: "5.4",
        syn_linear_timeouts: 0,
        udp_clash_merge: true,
        udp_clash_reply_only: false,
        snat_evict_time_wait: false,
        nat_sequential_rover: false,
        max_equals_buckets: false,
        gc_adaptive: false,
        tcp_tw_reuse_default: 2,
    };

    /// Linux 4.19: as 5.4 but before the 5.0 fix for "race 2"; the SNAT search still
    /// used the shared per-protocol rover, so concurrent SNATs pick the same port
    /// (the XING race) unless `--random-fully`.
    pub const LINUX_4_19: KernelProfile = KernelProfile {
        name: "4.19",
        syn_linear_timeouts: 0,
        udp_clash_merge: true,
        udp_clash_reply_only: false,
        snat_evict_time_wait: false,
        nat_sequential_rover: true,
        max_equals_buckets: false,
        gc_adaptive: false,
        tcp_tw_reuse_default: 0,
    };

    /// Every profile, newest first.
    pub const ALL: [KernelProfile; 3] = [Self::LINUX_6_18, Self::LINUX_5_4, Self::LINUX_4_19];

    /// The profile named `name` (`"6.18"`, `"5.4"`, `"4.19"`).
    #[must_use]
    pub fn by_name(name: &str) -> Option<KernelProfile> {
        Self::ALL.into_iter().find(|p| p.name == name)
    }

    /// The SYN transmission times of `connect()` relative to the first SYN, and the
    /// time `connect()` fails with ETIMEDOUT, for `tcp_syn_retries` retries
    /// (`tcp_retransmit_timer`, `inet_csk_rto_backoff`, `tcp_syn_linear_timeouts`).
    ///
    /// 6.5+ with retries 6: SYNs at 0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67 s, failure at
    /// 131 s. Older: 0, 1, 3, 7, 15, 31, 63 s, failure at 127 s.
    #[must_use]
    pub fn syn_schedule(&self, syn_retries: u8) -> (Vec<SimDuration>, SimDuration) {
        let linear = u32::from(self.syn_linear_timeouts);
        let retries = u32::from(syn_retries) + linear;
        let rto_max = 120u64;
        let mut sends = Vec::with_capacity(retries as usize + 1);
        let mut t = 0u64;
        let mut rto = 1u64;
        sends.push(SimDuration::ZERO);
        for k in 1..=retries {
            t += rto;
            sends.push(SimDuration::from_secs(t));
            // `icsk_retransmits <= tcp_syn_linear_timeouts` keeps the RTO unchanged.
            if k > linear {
                rto = (rto * 2).min(rto_max);
            }
        }
        let fail = t + rto;
        (sends, SimDuration::from_secs(fail))
    }
}

impl fmt::Display for KernelProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Per-namespace and global sysctls that shape the data path, under their Linux names.
/// `Default` is a fresh 6.18 VM with 24 GiB RAM (the baseline of docs/kernel-semantics.md
/// §Measurements on 6.18).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Sysctls {
    /// `net.netfilter.nf_conntrack_max` (global; compared with each namespace's count).
    pub nf_conntrack_max: u32,
    /// `net.netfilter.nf_conntrack_buckets` (global hash size).
    pub nf_conntrack_buckets: u32,
    /// Conntrack timeouts (`net.netfilter.nf_conntrack_*_timeout*`).
    pub ct_timeouts: CtTimeouts,
    /// `net.netfilter.nf_conntrack_tcp_loose`.
    pub nf_conntrack_tcp_loose: bool,
    /// `net.netfilter.nf_conntrack_tcp_be_liberal`.
    pub nf_conntrack_tcp_be_liberal: bool,
    /// `net.ipv4.ip_local_port_range` (inclusive).
    pub ip_local_port_range: (u16, u16),
    /// `net.ipv4.tcp_tw_reuse` (0, 1 or 2).
    pub tcp_tw_reuse: u8,
    /// `net.ipv4.tcp_tw_reuse_delay` (6.x; milliseconds in Linux).
    pub tcp_tw_reuse_delay: SimDuration,
    /// `net.ipv4.tcp_syn_retries`.
    pub tcp_syn_retries: u8,
    /// `net.ipv4.tcp_max_tw_buckets`.
    pub tcp_max_tw_buckets: u32,
    /// `net.core.somaxconn`.
    pub somaxconn: u32,
    /// `net.ipv4.tcp_max_syn_backlog`.
    pub tcp_max_syn_backlog: u32,
    /// `net.ipv4.tcp_syncookies`.
    pub tcp_syncookies: u8,
    /// `net.ipv4.tcp_fin_timeout`.
    pub tcp_fin_timeout: SimDuration,
}

impl Default for Sysctls {
    fn default() -> Sysctls {
        Sysctls {
            nf_conntrack_max: 262_144,
            nf_conntrack_buckets: 262_144,
            ct_timeouts: CtTimeouts::default(),
            nf_conntrack_tcp_loose: true,
            nf_conntrack_tcp_be_liberal: false,
            ip_local_port_range: (32_768, 60_999),
            tcp_tw_reuse: 2,
            tcp_tw_reuse_delay: SimDuration::from_millis(1_000),
            tcp_syn_retries: 6,
            tcp_max_tw_buckets: 131_072,
            somaxconn: 4_096,
            tcp_max_syn_backlog: 2_048,
            tcp_syncookies: 1,
            tcp_fin_timeout: SimDuration::from_secs(60),
        }
    }
}

/// Conntrack timeouts (`Documentation/networking/nf_conntrack-sysctl.rst`), kernel
/// defaults as verified on 6.18.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CtTimeouts {
    /// `nf_conntrack_tcp_timeout_syn_sent` (120 s).
    pub tcp_syn_sent: SimDuration,
    /// `nf_conntrack_tcp_timeout_syn_recv` (60 s).
    pub tcp_syn_recv: SimDuration,
    /// `nf_conntrack_tcp_timeout_established` (432,000 s; kube-proxy: 86,400 s).
    pub tcp_established: SimDuration,
    /// `nf_conntrack_tcp_timeout_fin_wait` (120 s).
    pub tcp_fin_wait: SimDuration,
    /// `nf_conntrack_tcp_timeout_close_wait` (60 s; kube-proxy: 3,600 s).
    pub tcp_close_wait: SimDuration,
    /// `nf_conntrack_tcp_timeout_last_ack` (30 s).
    pub tcp_last_ack: SimDuration,
    /// `nf_conntrack_tcp_timeout_time_wait` (120 s).
    pub tcp_time_wait: SimDuration,
    /// `nf_conntrack_tcp_timeout_close` (10 s).
    pub tcp_close: SimDuration,
    /// `nf_conntrack_tcp_timeout_max_retrans` (300 s).
    pub tcp_max_retrans: SimDuration,
    /// `nf_conntrack_tcp_timeout_unacknowledged` (300 s).
    pub tcp_unacknowledged: SimDuration,
    /// `nf_conntrack_udp_timeout` (30 s).
    pub udp: SimDuration,
    /// `nf_conntrack_udp_timeout_stream` (120 s).
    pub udp_stream: SimDuration,
    /// `nf_conntrack_icmp_timeout` (30 s).
    pub icmp: SimDuration,
    /// `nf_conntrack_generic_timeout` (600 s).
    pub generic: SimDuration,
}

impl Default for CtTimeouts {
    fn default() -> CtTimeouts {
        let s = SimDuration::from_secs;
        CtTimeouts {
            tcp_syn_sent: s(120),
            tcp_syn_recv: s(60),
            tcp_established: s(432_000),
            tcp_fin_wait: s(120),
            tcp_close_wait: s(60),
            tcp_last_ack: s(30),
            tcp_time_wait: s(120),
            tcp_close: s(10),
            tcp_max_retrans: s(300),
            tcp_unacknowledged: s(300),
            udp: s(30),
            udp_stream: s(120),
            icmp: s(30),
            generic: s(600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(v: &[SimDuration]) -> Vec<u64> {
        v.iter().map(|d| d.as_secs()).collect()
    }

    /// docs/kernel-semantics.md §SYN retransmission: 6.5+ linear SYN backoff.
    #[test]
    fn syn_schedule_6_18_is_linear_then_exponential() {
        let (sends, fail) = KernelProfile::LINUX_6_18.syn_schedule(6);
        assert_eq!(secs(&sends), vec![0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67]);
        assert_eq!(fail.as_secs(), 131);
    }

    /// docs/kernel-semantics.md §SYN retransmission: pre-6.5 exponential SYN backoff.
    #[test]
    fn syn_schedule_old_kernels_is_exponential() {
        let (sends, fail) = KernelProfile::LINUX_5_4.syn_schedule(6);
        assert_eq!(secs(&sends), vec![0, 1, 3, 7, 15, 31, 63]);
        assert_eq!(fail.as_secs(), 127);
    }

    #[test]
    fn profiles_by_name() {
        assert_eq!(KernelProfile::by_name("5.4"), Some(KernelProfile::LINUX_5_4));
        assert_eq!(KernelProfile::by_name("3.10"), None);
    }
}
