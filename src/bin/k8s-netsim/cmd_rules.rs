//! `k8s-netsim rules --mode iptables --services N --endpoints M [--nodeport]`: print the
//! rules kube-proxy's iptables mode programs for a synthetic cluster.

use k8s_netsim::netfilter::export::to_restore_payload;
use k8s_netsim::service::iptables::generate;
use k8s_netsim::service::{ProxyConfig, synthetic_cluster_ip};

/// kube-proxy's `iptables-restore` payload (`*filter` then `*nat`) for `services` synthetic
/// ClusterIP Services with `endpoints` endpoints each (NodePorts with `nodeport`), under
/// kube-proxy's default settings.
///
/// The jump rules kube-proxy installs separately with `iptables -I` (PREROUTING, OUTPUT,
/// POSTROUTING, INPUT, FORWARD -> KUBE-*) are printed as `# -A ...` comment lines at the top
/// of each table, so the `-A` lines are exactly kube-proxy's rule count
/// (`TestNumberIptablesRules`: 325 nat rules for 10 x 10) and the output still imports.
pub(crate) fn synthetic(services: usize, endpoints: usize, nodeport: bool) -> String {
    let svcs = synthetic_cluster_ip(services, endpoints, nodeport);
    to_restore_payload(&generate(&svcs, &ProxyConfig::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_by_ten_has_kube_proxys_325_nat_rules() {
        let text = synthetic(10, 10, false);
        let nat = text.split("*nat\n").nth(1).unwrap();
        assert!(text.starts_with("*filter\n"));
        assert_eq!(nat.lines().filter(|l| l.starts_with("-A ")).count(), 325);
        assert_eq!(nat.lines().filter(|l| l.starts_with("# -A ")).count(), 3);
    }
}
