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

/// kube-proxy's nftables table (`nft list table ip kube-proxy` text) for the same synthetic
/// cluster.
pub(crate) fn synthetic_nftables(services: usize, endpoints: usize, nodeport: bool) -> String {
    let svcs = synthetic_cluster_ip(services, endpoints, nodeport);
    k8s_netsim::service::nftables::generate(&svcs, &k8s_netsim::service::nftables::NftablesConfig::default())
        .to_nft_text()
}

/// kube-proxy's IPVS mode for the same synthetic cluster: its constant iptables rules
/// (`iptables-save`) and the virtual servers (`ipvsadm -Ln`).
pub(crate) fn synthetic_ipvs(services: usize, endpoints: usize, nodeport: bool) -> String {
    let svcs = synthetic_cluster_ip(services, endpoints, nodeport);
    let p =
        k8s_netsim::service::ipvs::IpvsProxy::new(&svcs, &k8s_netsim::service::ipvs::IpvsConfig::default());
    let mut s = k8s_netsim::netfilter::export::to_iptables_save(p.ruleset());
    s.push_str(&k8s_netsim::sim::ipvsadm_list(&p));
    s
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

    #[test]
    fn ipvs_and_nftables_listings_show_every_service() {
        let ipvs = synthetic_ipvs(3, 2, false);
        assert_eq!(ipvs.lines().filter(|l| l.starts_with("TCP  ")).count(), 3);
        assert_eq!(
            ipvs.lines()
                .filter(|l| l.contains("-> ") && l.contains("Masq"))
                .count(),
            6
        );
        let nft = synthetic_nftables(3, 2, false);
        assert!(
            nft.starts_with("table ip kube-proxy"),
            "{}",
            &nft[..40.min(nft.len())]
        );
        assert_eq!(nft.matches("dnat to").count(), 6);
    }
}
