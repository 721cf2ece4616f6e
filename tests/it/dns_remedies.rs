//! The DNS remedies end to end: NodeLocal DNSCache (KEP-1024), headless Services and
//! CoreDNS replicas (docs/kernel-semantics.md §Kubernetes nodes).

use k8s_netsim::report::Report;
use k8s_netsim::scenario::{Override, Scenario};

fn scenario(path: &str, sets: &[&str]) -> Scenario {
    let overrides: Vec<Override> = sets.iter().map(|s| Override::parse(s).unwrap()).collect();
    Scenario::load(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")), &overrides).unwrap()
}

fn run(path: &str, sets: &[&str]) -> Report {
    k8s_netsim::sim::run(&scenario(path, sets), &mut |_, _| {})
        .unwrap()
        .report
}

const V11: &str = "scenarios/validation/v11-nodelocal-dns.yaml";

#[test]
fn nodelocal_cache_leaves_no_pod_dns_entry_on_the_client_node() {
    // docs/kernel-semantics.md §Kubernetes nodes: raw-table NOTRACK flows create no entries.
    let on = run(V11, &[]);
    let off = run(V11, &["dns.nodeLocalDNSCache.enabled=false"]);
    let (a_on, a_off) = (&on.nodes[0].conntrack, &off.nodes[0].conntrack);
    assert!(a_off.dns_udp_entries_end > 500, "{a_off:?}");
    assert_eq!(a_on.dns_udp_entries_end, 0, "{a_on:?}");
    // The cache's upstream TCP connections are tracked and DNATed like any flow.
    let nl = on.dns.node_local.as_ref().expect("cache report");
    assert!(a_on.dns_tcp_entries_end >= 1, "{a_on:?}");
    assert!(
        a_on.dns_tcp_entries_end <= nl.upstream_connections,
        "{a_on:?} {nl:?}"
    );
    assert!(a_on.dnat_entries_end >= a_on.dns_tcp_entries_end, "{a_on:?}");
    assert!(a_on.count_end + 500 < a_off.count_end);
    // Lookups still succeed.
    assert_eq!(on.dns.lookups_failed, 0);
    assert_eq!(on.requests.ok, on.requests.sent - on.requests.in_flight_at_end);
    assert_eq!(nl.upstream_protocol, "tcp");
}

#[test]
fn coredns_load_drops_by_the_cache_hit_ratio() {
    let base = [
        "duration=4s",
        "workloads.0.dns.mode=perRequest",
        "workloads.0.rate=300/s",
    ];
    let off = run("scenarios/small.yaml", &base);
    let mut with: Vec<&str> = base.to_vec();
    with.push("dns.nodeLocalDNSCache.enabled=true");
    let on = run("scenarios/small.yaml", &with);
    // Without the cache every pod query reaches CoreDNS.
    assert_eq!(off.dns.coredns_queries, off.dns.queries);
    assert!(off.dns.node_local.is_none());
    let nl = on.dns.node_local.as_ref().expect("cache report");
    assert_eq!(nl.hits + nl.misses, on.dns.queries);
    // A hit is a name cached and unexpired: with one name and TTL caps of 30 s (A) and
    // 5 s (NODATA AAAA), only the first pair and the AAAA refresh every 5 s miss.
    assert!(nl.hit_ratio > 0.99, "{nl:?}");
    assert!(nl.misses >= 2, "{nl:?}");
    assert_eq!(on.dns.coredns_queries, nl.upstream_queries);
    let ratio = on.dns.coredns_queries as f64 / off.dns.coredns_queries as f64;
    let expected = 1.0 - nl.hit_ratio;
    assert!(
        (ratio - expected).abs() < 0.01,
        "ratio {ratio} vs 1 - hit ratio {expected}"
    );
    assert!(on.dns.coredns_qps_mean * 50.0 < off.dns.coredns_qps_mean);
    assert_eq!(on.dns.lookups_failed, 0);
}

#[test]
fn a_small_cache_with_many_names_misses_more() {
    // Capacity is a model input: one entry per cache cannot hold the denials of the
    // four search-path candidates (A and AAAA each) an unknown name walks through.
    let base = [
        "duration=3s",
        "workloads.0.dns.mode=perRequest",
        "workloads.0.dns.name=nosuch",
        "workloads.0.rate=200/s",
        "dns.nodeLocalDNSCache.enabled=true",
    ];
    let big = run("scenarios/small.yaml", &base);
    let mut small: Vec<&str> = base.to_vec();
    small.push("dns.nodeLocalDNSCache.capacity=1");
    let small = run("scenarios/small.yaml", &small);
    let (b, s) = (big.dns.node_local.unwrap(), small.dns.node_local.unwrap());
    assert!(s.evictions > 0, "{s:?}");
    assert!(s.hit_ratio < b.hit_ratio, "{s:?} vs {b:?}");
}

#[test]
fn the_5_4_a_aaaa_clash_disappears_with_the_cache() {
    // The V05-style race (tests/it/sim.rs): parallel A/AAAA from two threads through the
    // kube-dns DNAT on 5.4 fail at confirm; with NOTRACK there is no entry to clash.
    let base = [
        "duration=6s",
        "workloads.0.rate=300/s",
        "workloads.0.dns.mode=perRequest",
        "workloads.0.dns.threadPlacement=scheduler",
        "services.1.endpoints.0.count=2",
        "kernel=5.4",
    ];
    let off = run("scenarios/small.yaml", &base);
    assert!(off.nodes[0].conntrack.stats.insert_failed > 0);
    assert!(off.dns.lookups_with_timeout > 0);
    let mut with: Vec<&str> = base.to_vec();
    with.push("dns.nodeLocalDNSCache.enabled=true");
    let on = run("scenarios/small.yaml", &with);
    let a = &on.nodes[0].conntrack.stats;
    assert_eq!((a.insert_failed, a.drop, a.clash_resolve), (0, 0, 0), "{a:?}");
    assert_eq!(on.dns.lookups_with_timeout, 0);
    assert_eq!(on.dns.lookups_failed, 0);
    assert_eq!(on.verdict.kind, "none");
}

#[test]
fn udp_upstream_is_tracked_per_forwarding_socket() {
    let on = run(V11, &["dns.nodeLocalDNSCache.forceTcp=false"]);
    let a = &on.nodes[0].conntrack;
    let nl = on.dns.node_local.as_ref().unwrap();
    assert_eq!(nl.upstream_protocol, "udp");
    assert_eq!(a.dns_tcp_entries_end, 0);
    assert!(a.dns_udp_entries_end >= 1 && a.dns_udp_entries_end <= nl.upstream_connections);
    assert_eq!(on.dns.lookups_failed, 0);
}

#[test]
fn node_rules_carry_node_local_dns_notrack() {
    let sc = scenario(V11, &[]);
    let rules = k8s_netsim::sim::node_rules(&sc, "node-a").unwrap();
    assert!(rules.contains("*raw"), "{rules}");
    for needle in [
        "-A PREROUTING -p udp -d 169.254.20.10 --dport 53",
        "-A PREROUTING -p tcp -d 169.254.20.10 --dport 53",
        "-A OUTPUT -p udp -s 169.254.20.10 --sport 53",
        "-A OUTPUT -p udp -d 169.254.20.10 --dport 53",
    ] {
        assert!(
            rules
                .lines()
                .any(|l| l.starts_with(needle) && l.ends_with("-j NOTRACK")),
            "missing `{needle} ... -j NOTRACK` in\n{rules}"
        );
    }
    let off = scenario(V11, &["dns.nodeLocalDNSCache.enabled=false"]);
    assert!(
        !k8s_netsim::sim::node_rules(&off, "node-a")
            .unwrap()
            .contains("NOTRACK")
    );
}

#[test]
fn headless_targets_connect_to_pods_without_dnat_but_are_tracked() {
    // docs/kernel-semantics.md §Kubernetes nodes: headless Services still create entries.
    // Cached DNS: new entries are (almost) all SYNs, so rules per new entry are the SYN's.
    let base = [
        "duration=3s",
        "workloads.0.rate=300/s",
        "workloads.0.dns.mode=cached",
    ];
    let cip = run("scenarios/small.yaml", &base);
    let mut h: Vec<&str> = base.to_vec();
    h.push("services.0.type=Headless");
    let hl = run("scenarios/small.yaml", &h);
    let (a_c, a_h) = (&cip.nodes[0], &hl.nodes[0]);
    assert!(hl.requests.ok > 800, "{:?}", hl.requests);
    assert_eq!(hl.requests.failed, 0);
    // No DNAT on the client node: the only DNATed flows are DNS queries to kube-dns.
    assert_eq!(a_h.conntrack.dnat_entries_end, a_h.conntrack.dns_udp_entries_end);
    assert!(a_c.conntrack.dnat_entries_end > a_c.conntrack.dns_udp_entries_end + 500);
    // Entries are still created for the pod-to-pod flows, as many as with the VIP.
    assert!(a_h.conntrack.count_end > a_h.conntrack.dns_udp_entries_end + 500);
    assert!(a_h.conntrack.count_end + 20 >= a_c.conntrack.count_end);
    // Rules: a pod-IP SYN matches no `-d <VIP>` rule, so iptables kube-proxy makes it
    // walk the whole of KUBE-SERVICES (no KUBE-SVC/KUBE-SEP rules, no DNAT), while a
    // ClusterIP SYN stops at its Service's rule: more rules per new connection, not
    // fewer (proxier.go writes one `-d VIP -p proto --dport` rule per Service port).
    assert!(
        a_h.rules.mean_per_new_connection > a_c.rules.mean_per_new_connection,
        "{} vs {}",
        a_h.rules.mean_per_new_connection,
        a_c.rules.mean_per_new_connection
    );
    assert!(
        a_h.rules.mean_per_new_connection as u64 >= 100,
        "{}",
        a_h.rules.mean_per_new_connection
    );
}

#[test]
fn coredns_replicas_share_the_load() {
    let r = run(
        "scenarios/small.yaml",
        &[
            "duration=3s",
            "workloads.0.dns.mode=perRequest",
            "services.1.endpoints.0.count=3",
        ],
    );
    let by_pod = &r.dns.coredns_queries_by_pod;
    assert_eq!(by_pod.len(), 3, "{by_pod:?}");
    let total: u64 = by_pod.values().sum();
    assert_eq!(total, r.dns.coredns_queries);
    for (pod, q) in by_pod {
        let share = *q as f64 / total as f64;
        assert!((share - 1.0 / 3.0).abs() < 0.08, "{pod}: {share}");
    }
}

#[test]
fn same_seed_gives_identical_json_with_the_remedies_on() {
    let sets = [
        "duration=2s",
        "workloads.0.dns.mode=perRequest",
        "services.0.type=Headless",
        "dns.nodeLocalDNSCache.enabled=true",
    ];
    let a = serde_json::to_string(&run("scenarios/small.yaml", &sets)).unwrap();
    let b = serde_json::to_string(&run("scenarios/small.yaml", &sets)).unwrap();
    assert_eq!(a, b);
    assert!(a.contains("\"node_local\""));
}

#[test]
fn closing_an_idle_upstream_connection_is_tracked_through_the_masquerade() {
    // The cache's connection to kube-dns is MASQUERADEd (host traffic to a ClusterIP):
    // CoreDNS's FIN must go to the address it saw, or the CoreDNS node counts INVALID.
    let sc = k8s_netsim::scenario::Scenario::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/small.yaml"),
        &[
            "duration=8s",
            "dns.nodeLocalDNSCache.enabled=true",
            "dns.nodeLocalDNSCache.upstreamExpire=1s",
            "workloads.0.dns.ttl=2s",
        ]
        .map(|s| k8s_netsim::scenario::Override::parse(s).unwrap()),
    )
    .unwrap();
    let r = k8s_netsim::sim::run(&sc, &mut |_, _| {}).unwrap().report;
    let nl = r.dns.node_local.as_ref().unwrap();
    assert!(
        nl.upstream_connections >= 3,
        "connections closed and reopened: {}",
        nl.upstream_connections
    );
    for n in &r.nodes {
        assert_eq!(n.conntrack.stats.invalid, 0, "{}", n.name);
    }
}
