//! The top level (`name`, `duration`, `sampleInterval`, `kernel`, the CIDRs), `kubeProxy`
//! and `cost`.

use super::Checker;
use super::addresses::overlaps;
use crate::kernel::KernelProfile;
use crate::packet::Cidr;
use crate::scenario::error::{FieldPath, PathSegment};
use crate::scenario::file::{self, ScenarioFile};
use crate::scenario::sysctl::KubeProxyConntrack;
use crate::scenario::{CostModel, EbpfSettings, KubeProxyConfig};
use crate::time::SimDuration;

/// The top-level settings the other parts depend on.
pub(super) struct TopLevel {
    pub(super) sample_interval: SimDuration,
    pub(super) kernel: KernelProfile,
    pub(super) cluster_cidr: Cidr,
    pub(super) service_cidr: Cidr,
    pub(super) node_cidr: Cidr,
}

/// `name`, `duration`, `sampleInterval`, `kernel` and the three CIDRs.
pub(super) fn check_top_level(c: &mut Checker, f: &ScenarioFile) -> TopLevel {
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
pub(super) fn check_kube_proxy(c: &mut Checker, kp: &file::KubeProxySpec) -> KubeProxyConfig {
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
pub(super) fn cost_model(spec: &file::CostSpec) -> CostModel {
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

#[cfg(test)]
mod tests {
    use super::super::tests::BASE;
    use crate::scenario::Scenario;

    #[test]
    fn unknown_kernel_lists_profiles_and_suggests_quoting() {
        let e = Scenario::from_bytes("k.yaml", BASE.replace("\"6.18\"", "5.10").as_bytes(), &[]).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.contains("k.yaml:4:9: kernel: unknown kernel `5.1` (known: 6.18, 5.4, 4.19; quote it"),
            "{shown}"
        );
    }
}
