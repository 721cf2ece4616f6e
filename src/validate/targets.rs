//! Published targets checked through the scenario layer: table sizing (V20, V21).

use super::check::{Tolerance as T, Unit as U};
use super::{Rows, ValidateError};
use crate::kernel::{CtTimeouts, KernelProfile};
use crate::scenario::{ByteSize, Scenario, kernel_default_sysctls};

/// V20: kernel defaults (`nf_conntrack_init_start`, nf_conntrack-sysctl.rst).
pub(crate) fn v20() -> Rows {
    let mut rows = Rows::new("V20", "nf_conntrack-sysctl.rst; nf_conntrack_init_start; 6.18 VM");
    // (RAM GiB, buckets): above 4 GiB the kernel caps at 262,144 (verified on the
    // 24 GiB VM); between 1 and 4 GiB `nf_conntrack_init_start` sets 65,536.
    for (gib, buckets) in [(2u64, 65_536.0), (8, 262_144.0), (24, 262_144.0), (64, 262_144.0)] {
        let s = kernel_default_sysctls(KernelProfile::LINUX_6_18, ByteSize::from_gib(gib));
        rows.cmp(&format!("V20/{gib}GiB/buckets"), &format!("nf_conntrack_buckets, {gib} GiB, 6.18"), U::Count, buckets, f64::from(s.nf_conntrack_buckets), T::Abs(0.0));
        rows.cmp(&format!("V20/{gib}GiB/max"), &format!("nf_conntrack_max = buckets, {gib} GiB, 6.18"), U::Count, buckets, f64::from(s.nf_conntrack_max), T::Abs(0.0));
    }
    let old = kernel_default_sysctls(KernelProfile::LINUX_5_4, ByteSize::from_gib(24));
    rows.cmp("V20/24GiB/max-5.4", "nf_conntrack_max = 4 × buckets before 5.15 (24 GiB, 5.4)", U::Count, 4.0 * 262_144.0, f64::from(old.nf_conntrack_max), T::Abs(0.0));
    let t = CtTimeouts::default();
    let published: [(u64, u64); 14] = [
        (t.tcp_syn_sent.as_secs(), 120),
        (t.tcp_syn_recv.as_secs(), 60),
        (t.tcp_established.as_secs(), 432_000),
        (t.tcp_fin_wait.as_secs(), 120),
        (t.tcp_close_wait.as_secs(), 60),
        (t.tcp_last_ack.as_secs(), 30),
        (t.tcp_time_wait.as_secs(), 120),
        (t.tcp_close.as_secs(), 10),
        (t.tcp_max_retrans.as_secs(), 300),
        (t.tcp_unacknowledged.as_secs(), 300),
        (t.udp.as_secs(), 30),
        (t.udp_stream.as_secs(), 120),
        (t.icmp.as_secs(), 30),
        (t.generic.as_secs(), 600),
    ];
    let same = published.iter().filter(|(m, p)| m == p).count();
    rows.cmp("V20/timeouts", "default timeouts equal to the published 14", U::Count, 14.0, same as f64, T::Abs(0.0));
    rows
}

/// A scenario with one node per CPU count, for kube-proxy's sizing.
fn v21_scenario(cpus: &[u32]) -> String {
    let mut y = String::from("version: 1\nname: v21-sizing\nduration: 1s\nkernel: \"6.18\"\nnodes:\n");
    for c in cpus {
        y.push_str(&format!("  - {{name: n{c}, cpus: {c}, memory: 64Gi}}\n"));
    }
    y
}

/// V21: kube-proxy's conntrack settings from the node shape.
pub(crate) fn v21() -> Result<Rows, ValidateError> {
    let mut rows = Rows::new("V21", "kube-proxy defaults (pkg/proxy/apis/config/v1alpha1, pkg/proxy/conntrack)");
    let cpus = [1u32, 2, 4, 8, 16, 32, 64];
    let text = v21_scenario(&cpus);
    let sc = Scenario::from_bytes("v21-sizing (built in)", text.as_bytes(), &[]).map_err(|e| ValidateError::Scenario {
        file: "v21-sizing (built in)".to_owned(),
        what: e.to_string(),
    })?;
    for (c, node) in cpus.iter().zip(&sc.nodes) {
        let published = f64::from((32_768 * c).max(131_072));
        let v = &node.sysctls.values;
        rows.cmp(&format!("V21/{c}cpu/max"), &format!("nf_conntrack_max, {c} vCPU"), U::Count, published, f64::from(v.nf_conntrack_max), T::Abs(0.0));
        rows.cmp(
            &format!("V21/{c}cpu/buckets"),
            &format!("nf_conntrack_buckets ≥ max / 4 (hashsize raised), {c} vCPU"),
            U::Count,
            (published / 4.0).max(262_144.0),
            f64::from(v.nf_conntrack_buckets),
            T::Abs(0.0),
        );
    }
    if let Some(node) = sc.nodes.first() {
        let t = node.sysctls.values.ct_timeouts;
        rows.cmp("V21/established", "nf_conntrack_tcp_timeout_established (24 h)", U::Seconds, 86_400.0, t.tcp_established.as_secs_f64(), T::Abs(0.0));
        rows.cmp("V21/close-wait", "nf_conntrack_tcp_timeout_close_wait (1 h)", U::Seconds, 3_600.0, t.tcp_close_wait.as_secs_f64(), T::Abs(0.0));
    }
    Ok(rows)
}
