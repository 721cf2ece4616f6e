use super::*;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::netfilter::Hook;
use crate::packet::{Cidr, Proto, Tuple};
use crate::rng::SimRng;
use crate::service::proxy::{FirstPacket, FlowOrigin, ModeNote, ProxyDrop, ProxyVerdict, ServiceProxy};
use crate::service::{Endpoint, ServicePort, TrafficPolicy};
use crate::service::{ProxyConfig, ready_backends, synthetic_cluster_ip};
use crate::time::{SimDuration, SimTime};

fn ep(ip: [u8; 4], node: &str) -> Endpoint {
    Endpoint {
        ip: Ipv4Addr::from(ip),
        port: 80,
        node: node.to_string(),
        ready: true,
    }
}

fn svc(ns: &str, name: &str, ip: [u8; 4]) -> ServicePort {
    ServicePort::cluster_ip(ns, name, "p80", Ipv4Addr::from(ip), 80)
}

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

/// The six Services of kube-proxy's `TestOverallNFTablesRules`
/// (`pkg/proxy/nftables/proxier_test.go`), with its fake proxier's settings.
fn overall() -> (Vec<ServicePort>, NftablesConfig) {
    let mut s1 = svc("ns1", "svc1", [172, 30, 0, 41]);
    s1.endpoints = vec![ep([10, 180, 0, 1], "")];
    let mut s2 = svc("ns2", "svc2", [172, 30, 0, 42]);
    s2.external_traffic_policy = TrafficPolicy::Local;
    s2.node_port = Some(3001);
    s2.load_balancer_ips = vec![Ipv4Addr::new(1, 2, 3, 4)];
    s2.external_ips = vec![Ipv4Addr::new(192, 168, 99, 22)];
    s2.health_check_node_port = Some(30000);
    s2.endpoints = vec![ep([10, 180, 0, 2], "")];
    let mut s3 = svc("ns3", "svc3", [172, 30, 0, 43]);
    s3.node_port = Some(3003);
    s3.endpoints = vec![ep([10, 180, 0, 3], "")];
    let mut s4 = svc("ns4", "svc4", [172, 30, 0, 44]);
    s4.external_ips = vec![Ipv4Addr::new(192, 168, 99, 33)];
    s4.endpoints = vec![ep([10, 180, 0, 4], ""), ep([10, 180, 0, 5], "test-node")];
    let mut s5 = svc("ns5", "svc5", [172, 30, 0, 45]);
    s5.node_port = Some(3002);
    s5.load_balancer_ips = vec![Ipv4Addr::new(5, 6, 7, 8)];
    s5.health_check_node_port = Some(30000);
    s5.lb_source_ranges = vec![cidr("203.0.113.0/25")];
    s5.session_affinity = Some(SimDuration::from_secs(10_800));
    s5.endpoints = vec![ep([10, 180, 0, 3], "")];
    let s6 = svc("ns6", "svc6", [172, 30, 0, 46]);
    let cfg = NftablesConfig {
        proxy: ProxyConfig {
            cluster_cidr: cidr("10.0.0.0/8"),
            node_name: "test-node".into(),
            node_ips: vec![Ipv4Addr::new(192, 168, 0, 2)],
            ..ProxyConfig::default()
        },
        service_cidrs: vec![cidr("172.30.0.0/16")],
    };
    (vec![s1, s2, s3, s4, s5, s6], cfg)
}

#[test]
fn chain_names_hash_like_kube_proxy() {
    // Names from TestOverallNFTablesRules' expected output.
    let (svcs, _) = overall();
    assert_eq!(service_chain_base(&svcs[0]), "ULMVA6XW-ns1/svc1/tcp/p80");
    assert_eq!(
        endpoint_chain_base(&svcs[0], &svcs[0].endpoints[0]),
        "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
    );
    assert_eq!(service_chain_base(&svcs[4]), "HVFWP5L3-ns5/svc5/tcp/p80");
    let long = "x".repeat(200);
    let h = hash_and_truncate(&long);
    assert_eq!(h.len(), 112);
    assert!(h.ends_with("..."));
}

#[test]
fn overall_rules_match_kube_proxy_test_structure() {
    let (svcs, cfg) = overall();
    let t = generate(&svcs, &cfg);
    let text = t.to_transaction();
    // Object totals of TestOverallNFTablesRules' expected transaction: 16 base chains + 16,
    // 23 base rules + 34, 2 sets + 1 affinity set, 5 maps, 24 elements.
    assert_eq!(
        t.counts(),
        NftCounts {
            chains: 32,
            rules: 57,
            sets: 3,
            maps: 5,
            set_elements: 7,
            map_elements: 17,
        }
    );
    for line in [
        "add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }",
        "add chain ip kube-proxy filter-prerouting-pre-dnat { type filter hook prerouting priority -110 ; }",
        "add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips",
        "add rule ip kube-proxy services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports",
        "add rule ip kube-proxy masquerading mark and 0x4000 == 0 return",
        "add rule ip kube-proxy masquerading masquerade fully-random",
        "add rule ip kube-proxy cluster-ips-check ip daddr { 172.30.0.0/16 } drop comment \"Drop traffic to unallocated ClusterIPs\"",
        "add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade",
        "add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 }",
        "add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 ip saddr 10.180.0.1 jump mark-for-masquerade",
        "add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 meta l4proto tcp dnat to 10.180.0.1:80",
        "add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 ip saddr 10.0.0.0/8 goto service-42NFTM6N-ns2/svc2/tcp/p80 comment \"short-circuit pod traffic\"",
        "add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 fib saddr type local jump mark-for-masquerade comment \"masquerade local traffic\"",
        "add element ip kube-proxy no-endpoint-nodeports { tcp . 3001 comment \"ns2/svc2:p80\" : drop }",
        "add element ip kube-proxy no-endpoint-services { 1.2.3.4 . tcp . 80 comment \"ns2/svc2:p80\" : drop }",
        "add rule ip kube-proxy external-4AT6LBPK-ns3/svc3/tcp/p80 goto service-4AT6LBPK-ns3/svc3/tcp/p80",
        "add element ip kube-proxy service-nodeports { tcp . 3003 : goto external-4AT6LBPK-ns3/svc3/tcp/p80 }",
        "add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 numgen random mod 2 vmap { 0 : goto endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 , 1 : goto endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 }",
        "add set ip kube-proxy affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }",
        "add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 ip saddr @affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 goto endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80",
        "add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 update @affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 { ip saddr }",
        "add rule ip kube-proxy firewall-HVFWP5L3-ns5/svc5/tcp/p80 ip saddr != { 203.0.113.0/25 } drop",
        "add element ip kube-proxy firewall-ips { 5.6.7.8 . tcp . 80 : goto firewall-HVFWP5L3-ns5/svc5/tcp/p80 }",
        "add element ip kube-proxy no-endpoint-services { 172.30.0.46 . tcp . 80 comment \"ns6/svc6:p80\" : goto reject-chain }",
        "add element ip kube-proxy nodeport-ips { 192.168.0.2 }",
    ] {
        assert!(text.lines().any(|l| l == line), "missing: {line}\n{text}");
    }
    let listed = t.to_nft_text();
    assert!(
        listed.contains(
            "\tchain nat-prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;"
        )
    );
    assert!(listed.contains("type filter hook prerouting priority dstnat - 10;"));
    // nft before 1.0.9 refuses `dstnat` on the output hook: numbers there, as knftables
    // writes them and as nft 1.0.6 lists them.
    assert!(listed.contains("type filter hook output priority -110;"));
    assert!(listed.contains("type nat hook output priority -100;"));
    assert!(listed.contains("type nat hook postrouting priority srcnat;"));
    assert!(!listed.contains("hook output priority dstnat"), "{listed}");
}

/// docs/kube-proxy.md §Objects per mode, nftables row.
#[test]
fn object_counts_follow_the_kube_proxy_table() {
    let cfg = NftablesConfig::default();
    let base = generate(&[], &cfg).counts();
    assert_eq!((base.chains, base.rules, base.sets, base.maps), (16, 23, 2, 5));
    struct Case {
        services: usize,
        eps: usize,
        nodeport: bool,
        affinity: bool,
        chains: usize,
        rules: usize,
        elements: usize,
        sets: usize,
    }
    let cases = [
        // ClusterIP: chains S + E, rules 2S + 2E, elements 2S.
        Case {
            services: 1,
            eps: 1,
            nodeport: false,
            affinity: false,
            chains: 2,
            rules: 4,
            elements: 2,
            sets: 0,
        },
        Case {
            services: 10,
            eps: 10,
            nodeport: false,
            affinity: false,
            chains: 110,
            rules: 220,
            elements: 20,
            sets: 0,
        },
        Case {
            services: 100,
            eps: 3,
            nodeport: false,
            affinity: false,
            chains: 400,
            rules: 800,
            elements: 200,
            sets: 0,
        },
        // No endpoints: no chains, cluster-ips + no-endpoint-services elements.
        Case {
            services: 5,
            eps: 0,
            nodeport: false,
            affinity: false,
            chains: 0,
            rules: 0,
            elements: 10,
            sets: 0,
        },
        // NodePort: + external chain (2 rules) + service-nodeports element.
        Case {
            services: 10,
            eps: 2,
            nodeport: true,
            affinity: false,
            chains: 40,
            rules: 80,
            elements: 30,
            sets: 0,
        },
        // Affinity: + E sets, + 2E rules.
        Case {
            services: 10,
            eps: 2,
            nodeport: false,
            affinity: true,
            chains: 30,
            rules: 100,
            elements: 20,
            sets: 20,
        },
    ];
    for c in cases {
        let mut svcs = synthetic_cluster_ip(c.services, c.eps, c.nodeport);
        if c.affinity {
            for s in &mut svcs {
                s.session_affinity = Some(SimDuration::from_secs(10_800));
            }
        }
        let n = generate(&svcs, &cfg).counts();
        let got = (
            n.chains - base.chains,
            n.rules - base.rules,
            n.set_elements + n.map_elements,
            n.sets - base.sets,
        );
        assert_eq!(
            got,
            (c.chains, c.rules, c.elements, c.sets),
            "S={} E/S={}",
            c.services,
            c.eps
        );
    }
}

fn pod() -> Ipv4Addr {
    Ipv4Addr::new(10, 244, 3, 3)
}

#[test]
fn first_packet_costs_the_same_for_every_service_position() {
    let svcs = synthetic_cluster_ip(500, 10, false);
    let mut p = NftablesProxy::new(&svcs, &NftablesConfig::default());
    let mut rng = SimRng::from_seed(3);
    let mut costs = Vec::new();
    for (i, s) in [&svcs[0], &svcs[250], &svcs[499]].into_iter().enumerate() {
        #[allow(clippy::cast_possible_truncation)]
        let fp = p.first_packet(
            Tuple::new(Proto::Tcp, pod(), 30_000 + i as u16, s.cluster_ip, 80),
            &mut rng,
            SimTime::ZERO,
        );
        assert_eq!(fp.verdict, ProxyVerdict::Translate);
        assert!(ready_backends(s).any(|b| Some(b) == fp.backend));
        assert!(!fp.masquerade);
        costs.push(fp.cost);
    }
    assert!(costs.iter().all(|c| *c == costs[0]), "{costs:?}");
    // filter-prerouting-pre-dnat 1 + firewall-check 1, nat-prerouting 1 + services 1 +
    // service chain 2 + endpoint chain 2, filter-forward 2 + service-endpoints-check 1 +
    // cluster-ips-check 2, nat-postrouting 1 + masquerading 1.
    assert_eq!(costs[0].rules_evaluated, 15);
    // firewall-ips, service-ips, numgen's map, no-endpoint-services, cluster-ips, the
    // Service CIDR interval set.
    assert_eq!(costs[0].hash_lookups, 6);
    assert_eq!(costs[0].scheduler_ops, 1);
}

#[test]
fn off_cluster_sources_and_hairpin_are_masqueraded() {
    let svcs = synthetic_cluster_ip(2, 1, false);
    let mut p = NftablesProxy::new(&svcs, &NftablesConfig::default());
    let mut rng = SimRng::from_seed(3);
    let outside = Ipv4Addr::new(192, 168, 7, 7);
    let fp = p.first_packet(
        Tuple::new(Proto::Tcp, outside, 1, svcs[0].cluster_ip, 80),
        &mut rng,
        SimTime::ZERO,
    );
    assert!(fp.masquerade);
    let me = svcs[1].endpoints[0].ip;
    let fp = p.first_packet(
        Tuple::new(Proto::Tcp, me, 1, svcs[1].cluster_ip, 80),
        &mut rng,
        SimTime::ZERO,
    );
    assert_eq!(fp.backend, Some(SocketAddrV4::new(me, 8080)));
    assert!(fp.masquerade, "hairpin traffic is masqueraded");
}

#[test]
fn no_endpoints_unallocated_and_wrong_port_are_refused() {
    let mut svcs = synthetic_cluster_ip(2, 1, false);
    svcs[1].endpoints.clear();
    let mut p = NftablesProxy::new(&svcs, &NftablesConfig::default());
    let mut rng = SimRng::from_seed(3);
    let mut go = |dst, port| {
        p.first_packet(
            Tuple::new(Proto::Tcp, pod(), 1, dst, port),
            &mut rng,
            SimTime::ZERO,
        )
    };
    assert_eq!(go(svcs[1].cluster_ip, 80).verdict, ProxyVerdict::Reject);
    assert_eq!(
        go(svcs[0].cluster_ip, 81).verdict,
        ProxyVerdict::Reject,
        "invalid port of a ClusterIP"
    );
    assert_eq!(
        go(Ipv4Addr::new(10, 96, 9, 9), 80).verdict,
        ProxyVerdict::Drop(ProxyDrop::UnallocatedClusterIp)
    );
    assert_eq!(
        go(Ipv4Addr::new(1, 1, 1, 1), 80).verdict,
        ProxyVerdict::NotService
    );
}

#[test]
fn external_traffic_follows_policy_firewall_and_node_ports() {
    let (svcs, cfg) = overall();
    let mut p = NftablesProxy::new(&svcs, &cfg);
    let mut rng = SimRng::from_seed(3);
    let client = Ipv4Addr::new(203, 0, 113, 2);
    let blocked = Ipv4Addr::new(203, 0, 113, 130);
    let node = Ipv4Addr::new(192, 168, 0, 2);
    let mut go =
        |src, dst, port| p.first_packet(Tuple::new(Proto::Tcp, src, 1, dst, port), &mut rng, SimTime::ZERO);
    // svc2: Local policy without a local endpoint.
    assert_eq!(
        go(client, Ipv4Addr::new(1, 2, 3, 4), 80).verdict,
        ProxyVerdict::Drop(ProxyDrop::NoLocalEndpoints)
    );
    // ... but pods short-circuit to the cluster chain.
    let fp = go(Ipv4Addr::new(10, 1, 1, 1), Ipv4Addr::new(1, 2, 3, 4), 80);
    assert_eq!(
        fp.backend,
        Some(SocketAddrV4::new(Ipv4Addr::new(10, 180, 0, 2), 80))
    );
    // svc5: source ranges.
    assert_eq!(
        go(blocked, Ipv4Addr::new(5, 6, 7, 8), 80).verdict,
        ProxyVerdict::Drop(ProxyDrop::SourceRange)
    );
    let fp = go(client, Ipv4Addr::new(5, 6, 7, 8), 80);
    assert_eq!(fp.verdict, ProxyVerdict::Translate);
    assert!(fp.masquerade, "Cluster policy masquerades external traffic");
    // NodePorts bypass source ranges.
    assert_eq!(go(blocked, node, 3002).verdict, ProxyVerdict::Translate);
    assert_eq!(
        go(client, node, 3001).verdict,
        ProxyVerdict::Drop(ProxyDrop::NoLocalEndpoints)
    );
}

#[test]
fn client_ip_affinity_sticks_until_the_timeout() {
    let mut svcs = synthetic_cluster_ip(1, 10, false);
    svcs[0].session_affinity = Some(SimDuration::from_secs(60));
    let mut p = NftablesProxy::new(&svcs, &NftablesConfig::default());
    let mut rng = SimRng::from_seed(9);
    let t = |port| Tuple::new(Proto::Tcp, pod(), port, svcs[0].cluster_ip, 80);
    let first = p.first_packet(t(1), &mut rng, SimTime::ZERO).backend;
    for i in 0..20 {
        let fp = p.first_packet(t(2 + i), &mut rng, SimTime::from_secs(30));
        assert_eq!(fp.backend, first);
    }
    // The last update was at 30 s; at 100 s the element has expired and numgen picks again.
    let seen: std::collections::BTreeSet<_> = (0..50)
        .map(|i| {
            p.affinity.iter_mut().for_each(BTreeMap::clear);
            p.first_packet(t(100 + i), &mut rng, SimTime::from_secs(100))
                .backend
        })
        .collect();
    assert!(seen.len() > 1);
}

#[test]
fn masquerade_is_fully_random_whatever_the_iptables_flag() {
    // kube-proxy's nftables proxier hard-codes `masquerade fully-random`.
    let mut cfg = NftablesConfig::default();
    cfg.proxy.random_fully = false;
    let text = generate(&synthetic_cluster_ip(2, 2, false), &cfg).to_nft_text();
    assert!(text.contains("masquerade fully-random"), "{text}");
}

/// Issue 11: a flow a node's own process opens (NodeLocal DNSCache's upstream query, a
/// host-network client) enters at OUTPUT, where kube-proxy's `nat-output` and
/// `filter-output` base chains run; a pod's flow enters at PREROUTING. Before host flows
/// reached OUTPUT, both ran the prerouting chains.
#[test]
fn host_flows_run_the_output_base_chains_and_pod_flows_prerouting() {
    let svcs = synthetic_cluster_ip(2, 1, false);
    let mut p = NftablesProxy::new(&svcs, &NftablesConfig::default());
    let mut rng = SimRng::from_seed(3);
    let node = Ipv4Addr::new(192, 168, 0, 10);
    let chains = |fp: &FirstPacket| match fp.note {
        ModeNote::Nftables { base_chains } => base_chains,
        _ => panic!("not an nftables note: {:?}", fp.note),
    };
    let host = p.first_packet_from(
        FlowOrigin::Host,
        Tuple::new(Proto::Tcp, node, 1, svcs[0].cluster_ip, 80),
        &mut rng,
        SimTime::ZERO,
    );
    assert_eq!(host.verdict, ProxyVerdict::Translate);
    let ran = chains(&host);
    assert!(ran.contains(ChainType::Nat, Hook::Output), "{ran}");
    assert!(ran.contains(ChainType::Filter, Hook::Output), "{ran}");
    assert!(ran.contains(ChainType::Nat, Hook::Postrouting), "{ran}");
    assert!(!ran.contains(ChainType::Nat, Hook::Prerouting), "{ran}");
    assert!(!ran.contains(ChainType::Filter, Hook::Prerouting), "{ran}");
    assert_eq!(ran.to_string(), "filter output, nat output, nat postrouting");

    let pod = p.first_packet_from(
        FlowOrigin::Pod,
        Tuple::new(Proto::Tcp, pod(), 1, svcs[0].cluster_ip, 80),
        &mut rng,
        SimTime::ZERO,
    );
    let ran = chains(&pod);
    assert!(ran.contains(ChainType::Nat, Hook::Prerouting), "{ran}");
    assert!(ran.contains(ChainType::Filter, Hook::Prerouting), "{ran}");
    assert!(!ran.contains(ChainType::Nat, Hook::Output), "{ran}");
    assert!(!ran.contains(ChainType::Filter, Hook::Output), "{ran}");
}
