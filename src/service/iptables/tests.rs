use std::net::Ipv4Addr;

use super::*;
use crate::netfilter::export::{to_iptables_save, to_restore_payload};
use crate::netfilter::import::parse;
use crate::service::synthetic_cluster_ip;
use crate::time::SimDuration;

const OVERALL: &str = include_str!("../../netfilter/testdata/overall-multi-service.iptables-save");
const THREE: &str = include_str!("../../netfilter/testdata/three-endpoint-clusterip.iptables-save");

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn ep(addr: &str, node: &str) -> Endpoint {
    Endpoint {
        ip: ip(addr),
        port: 80,
        node: node.to_string(),
        ready: true,
    }
}

fn test_config() -> ProxyConfig {
    ProxyConfig {
        cluster_cidr: "10.0.0.0/8".parse().unwrap(),
        random_fully: false,
        node_name: "test-node".to_string(),
        node_ips: vec![ip("192.168.0.2")],
        ..ProxyConfig::default()
    }
}

/// The restore payload without the comment lines for the built-in chain jumps.
fn payload(rs: &Ruleset) -> String {
    to_restore_payload(rs)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The six Services of kube-proxy's `TestOverallIPTablesRules`.
fn overall_services() -> Vec<ServicePort> {
    let mut s1 = ServicePort::cluster_ip("ns1", "svc1", "p80", ip("172.30.0.41"), 80);
    s1.endpoints = vec![ep("10.180.0.1", "other")];
    let mut s2 = ServicePort::cluster_ip("ns2", "svc2", "p80", ip("172.30.0.42"), 80);
    s2.endpoints = vec![ep("10.180.0.2", "other")];
    s2.node_port = Some(3001);
    s2.external_ips = vec![ip("192.168.99.22")];
    s2.load_balancer_ips = vec![ip("1.2.3.4")];
    s2.external_traffic_policy = TrafficPolicy::Local;
    s2.health_check_node_port = Some(30000);
    let mut s3 = ServicePort::cluster_ip("ns3", "svc3", "p80", ip("172.30.0.43"), 80);
    s3.endpoints = vec![ep("10.180.0.3", "other")];
    s3.node_port = Some(3003);
    let mut s4 = ServicePort::cluster_ip("ns4", "svc4", "p80", ip("172.30.0.44"), 80);
    s4.endpoints = vec![ep("10.180.0.4", "other"), ep("10.180.0.5", "other")];
    s4.external_ips = vec![ip("192.168.99.33")];
    let mut s5 = ServicePort::cluster_ip("ns5", "svc5", "p80", ip("172.30.0.45"), 80);
    s5.endpoints = vec![ep("10.180.0.3", "other")];
    s5.node_port = Some(3002);
    s5.load_balancer_ips = vec![ip("5.6.7.8")];
    s5.lb_source_ranges = vec!["203.0.113.0/25".parse().unwrap()];
    s5.session_affinity = Some(SimDuration::from_secs(10800));
    let s6 = ServicePort::cluster_ip("ns6", "svc6", "p80", ip("172.30.0.46"), 80);
    // Given out of order: the generator sorts by name.
    vec![s6, s5, s4, s3, s2, s1]
}

#[test]
fn chain_names_match_kube_proxy() {
    let s1 = ServicePort::cluster_ip("ns1", "svc1", "p80", ip("172.30.0.41"), 80);
    assert_eq!(port_proto_hash(&s1), "XPGD46QRK7WJZT7O");
    let svc = ServicePort::cluster_ip("ns1", "svc1", "", ip("172.30.1.1"), 80);
    assert_eq!(port_proto_hash(&svc), "AQI2S6QIMU7PVVRP");
    let names: Vec<String> = ["10.0.1.1", "10.0.1.2", "10.0.1.3"]
        .iter()
        .map(|a| endpoint_chain_name(&svc, &ep(a, "n")))
        .collect();
    assert_eq!(
        names,
        [
            "KUBE-SEP-3JOIVZTXZZRGORX4",
            "KUBE-SEP-IO5XOSKPAXIFQXAJ",
            "KUBE-SEP-XGJFVO3L2O5SRFNT"
        ]
    );
}

#[test]
fn overall_fixture_is_reproduced_exactly() {
    let rs = generate(&overall_services(), &test_config());
    assert_eq!(payload(&rs), OVERALL);
}

#[test]
fn three_endpoint_fixture_is_reproduced_exactly() {
    let mut svc = ServicePort::cluster_ip("ns1", "svc1", "", ip("172.30.1.1"), 80);
    svc.endpoints = vec![ep("10.0.1.1", "a"), ep("10.0.1.2", "b"), ep("10.0.1.3", "c")];
    let cfg = ProxyConfig {
        nfacct: false,
        ..test_config()
    };
    let rs = generate(&[svc], &cfg);
    assert_eq!(payload(&rs), THREE);
}

#[test]
fn builtin_jumps_follow_prepend_order_and_round_trip() {
    let cfg = ProxyConfig::default();
    let rs = generate(&synthetic_cluster_ip(2, 2, true), &cfg);
    let text = to_iptables_save(&rs);
    assert!(text.contains(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-NODEPORTS - [0:0]\n"
    ));
    assert!(text.contains(
        "-A INPUT -j KUBE-FIREWALL\n\
         -A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n\
         -A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS\n\
         -A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES\n"
    ));
    assert!(
        text.contains("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n")
    );
    assert!(text.contains("-j MASQUERADE --random-fully\n"));
    assert_eq!(parse(&text).unwrap(), rs);
    let restore = to_restore_payload(&rs);
    assert!(
        restore.contains(
            "# -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
        )
    );
    assert!(!restore.contains(":PREROUTING"));
}

/// Services as kube-proxy's `generateServiceEndpoints` builds them.
fn number_test_services(services: usize, eps: usize, lb: bool) -> Vec<ServicePort> {
    (0..services)
        .map(|i| {
            #[allow(clippy::cast_possible_truncation)]
            let i16 = i as u16;
            #[allow(clippy::cast_possible_truncation)]
            let cip = Ipv4Addr::from(u32::from(ip("10.0.0.1")) + i as u32);
            let mut s = ServicePort::cluster_ip("namespace", &format!("svc{i}"), "8080", cip, 80 + i16);
            s.endpoints = (0..eps)
                .map(|j| {
                    #[allow(clippy::cast_possible_truncation)]
                    let a = Ipv4Addr::from(u32::from(ip("172.16.0.1")) + j as u32);
                    Endpoint {
                        ip: a,
                        port: 8080,
                        node: String::new(),
                        ready: true,
                    }
                })
                .collect();
            if lb {
                s.external_ips = vec![ip("1.2.3.4")];
                s.lb_source_ranges = vec!["1.2.3.4/28".parse().unwrap()];
                s.load_balancer_ips = vec![ip("1.2.3.4")];
                s.node_port = Some(30000 + i16);
                s.health_check_node_port = Some(32000 + i16);
            }
            s
        })
        .collect()
}

#[test]
fn rule_counts_match_kube_proxy_number_test() {
    // docs/kube-proxy.md §Rule counts (TestNumberIptablesRules): nat = 5 + 2S + 3E for
    // ClusterIP. That test's proxier has no localhost NodePorts (no KUBE-FIREWALL rule, no
    // 127/8 variants).
    let cfg = ProxyConfig {
        localhost_nodeports: false,
        cluster_cidr: "10.0.0.0/8".parse().unwrap(),
        ..ProxyConfig::default()
    };
    // (services, endpoints each, LoadBalancer, filter rules, nat rules)
    let table: &[(usize, usize, bool, usize, usize)] = &[
        (0, 0, false, 3, 5),
        (1, 0, false, 4, 5),
        (1, 1, false, 3, 10),
        (1, 2, false, 3, 13),
        (1, 10, false, 3, 37),
        (10, 0, false, 13, 5),
        (10, 1, false, 3, 55),
        (10, 2, false, 3, 85),
        (10, 10, false, 3, 325),
        (0, 0, true, 3, 5),
        (1, 0, true, 7, 5),
        (10, 0, true, 43, 5),
        // LoadBalancer with endpoints: kube-proxy's table has 16 / 19 / 43 / 115 / 145 / 385
        // (5 + 8S + 3E); the current proxier.go writes 9 nat rules per such Service (see
        // docs/model.md), so these rows are 5 + 9S + 3E.
        (1, 1, true, 4, 17),
        (1, 2, true, 4, 20),
        (1, 10, true, 4, 44),
        (10, 1, true, 13, 125),
        (10, 2, true, 13, 155),
        (10, 10, true, 13, 395),
    ];
    for &(s, e, lb, filter, nat) in table {
        let rs = generate(&number_test_services(s, e, lb), &cfg);
        let got = (
            rs.table(TableKind::Filter).user_rule_count(),
            rs.table(TableKind::Nat).user_rule_count(),
        );
        assert_eq!(got, (filter, nat), "{s} services x {e} endpoints, lb={lb}");
        if !lb && e > 0 {
            assert_eq!(rs.table(TableKind::Nat).user_chain_count(), 4 + s + s * e);
        }
    }
}

#[test]
fn large_clusters_drop_per_endpoint_comments() {
    let rs = generate(&synthetic_cluster_ip(101, 10, false), &ProxyConfig::default());
    let text = to_restore_payload(&rs);
    assert!(!text.contains(" -> "));
    assert!(text.contains("-A KUBE-SERVICES -m comment --comment \"default/svc-00000:http cluster IP\""));
    let small = to_restore_payload(&generate(
        &synthetic_cluster_ip(2, 2, false),
        &ProxyConfig::default(),
    ));
    assert!(small.contains("\"default/svc-00000:http -> 10.244.0.1:8080\""));
}

#[test]
fn shuffled_order_is_seeded_and_keeps_the_nodeport_jump_last() {
    let svcs = synthetic_cluster_ip(20, 1, false);
    let cfg = ProxyConfig::default();
    let a = generate_with(&svcs, &cfg, ServiceOrder::Shuffled { seed: 7 });
    let b = generate_with(&svcs, &cfg, ServiceOrder::Shuffled { seed: 7 });
    let c = generate(&svcs, &cfg);
    assert_eq!(to_iptables_save(&a), to_iptables_save(&b));
    assert_ne!(to_iptables_save(&a), to_iptables_save(&c));
    let nat = a.table(TableKind::Nat);
    let chain = nat.chain(nat.chain_id("KUBE-SERVICES").unwrap());
    let last = chain.rules().last().unwrap();
    assert_eq!(last.target, Target::Jump(nat.chain_id("KUBE-NODEPORTS").unwrap()));
}
