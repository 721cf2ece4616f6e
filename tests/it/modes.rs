//! The proxy data planes in the simulation: nftables, IPVS and Cilium eBPF against
//! iptables on the same scenario (issue 4), and the V23 CPU calibration.

use k8s_netsim::report::Report;
use k8s_netsim::scenario::{Override, Scenario};

fn scenario(path: &str, sets: &[&str]) -> Scenario {
    let overrides: Vec<Override> = sets.iter().map(|s| Override::parse(s).unwrap()).collect();
    Scenario::load(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")), &overrides).unwrap()
}

fn run(sc: &Scenario) -> Report {
    k8s_netsim::sim::run(sc, &mut |_, _| {}).unwrap().report
}

fn small(mode: &str, extra: &[&str]) -> Report {
    let m = format!("kubeProxy.mode={mode}");
    let mut sets = vec!["duration=3s", m.as_str()];
    sets.extend_from_slice(extra);
    run(&scenario("scenarios/small.yaml", &sets))
}

fn within(a: u64, b: u64, rel: f64) -> bool {
    (a as f64 - b as f64).abs() <= rel * b as f64
}

/// `net.ipv4.vs.conntrack=1` and nftables NAT: nf_conntrack tracks every flow exactly as in
/// iptables mode (docs/kube-proxy.md §IPVS, docs/kernel-semantics.md §Kubernetes nodes).
#[test]
fn nftables_and_ipvs_keep_as_many_conntrack_entries_as_iptables() {
    let base = small("iptables", &[]);
    for mode in ["nftables", "ipvs"] {
        let r = small(mode, &[]);
        assert_eq!(r.requests.failed, 0, "{mode}");
        for (a, b) in r.nodes.iter().zip(&base.nodes) {
            assert!(
                within(a.conntrack.count_peak, b.conntrack.count_peak, 0.02),
                "{mode} {}: {} vs iptables {}",
                a.name,
                a.conntrack.count_peak,
                b.conntrack.count_peak
            );
            let p = a.proxy.as_ref().expect("proxy section outside iptables mode");
            assert_eq!(p.data_plane, mode);
        }
        assert!(
            base.nodes[0].proxy.is_none(),
            "iptables reports stay as they were"
        );
    }
    let ipvs = small("ipvs", &[]);
    let i = ipvs.nodes[0].proxy.as_ref().unwrap().ipvs.unwrap();
    // Every flow from the client node (TCP to echo, UDP DNS to kube-dns) is an IPVS
    // connection too: a second table of the same size.
    assert_eq!(i.conns_created, ipvs.nodes[0].conntrack.count_peak);
    assert_eq!(i.connections_peak, i.conns_created);
}

/// nftables: one verdict-map lookup; IPVS: constant ipset rules and a hash lookup. Rules per
/// new connection do not grow with the number of Services (iptables' do).
#[test]
fn rules_per_new_connection_do_not_grow_with_services_in_nftables_and_ipvs() {
    for mode in ["nftables", "ipvs"] {
        let few = small(mode, &["duration=1s", "backgroundServices.count=100"]);
        let many = small(mode, &["duration=1s", "backgroundServices.count=5000"]);
        let (a, b) = (
            few.nodes[0].proxy.as_ref().unwrap().per_new_connection,
            many.nodes[0].proxy.as_ref().unwrap().per_new_connection,
        );
        assert!(a.rules_evaluated > 0.0, "{mode}");
        assert_eq!(a.rules_evaluated, b.rules_evaluated, "{mode}");
        assert_eq!(a.hash_lookups, b.hash_lookups, "{mode}");
    }
    let few = small("iptables", &["duration=1s", "backgroundServices.count=100"]);
    let many = small("iptables", &["duration=1s", "backgroundServices.count=2000"]);
    assert!(
        many.nodes[1].rules.mean_per_new_connection > few.nodes[1].rules.mean_per_new_connection * 5.0,
        "the iptables contrast: KUBE-SERVICES is a linear scan"
    );
}

/// Cilium socket LB: the backend is chosen at connect(), the node does no DNAT (no rules, the
/// client connects to the backend), nf_conntrack still tracks every flow; NOTRACK removes them.
#[test]
fn ebpf_translates_at_connect_and_notrack_removes_the_entries() {
    let base = small("iptables", &[]);
    let r = small("ebpf", &[]);
    assert_eq!(r.requests.failed, 0);
    let p = r.nodes[0].proxy.as_ref().unwrap();
    assert_eq!(p.at_connect.scheduler_ops, r.requests.new_connections);
    assert_eq!(
        r.nodes[0].rules.mean_per_new_connection, 0.0,
        "no per-packet DNAT rules"
    );
    for (a, b) in r.nodes.iter().zip(&base.nodes) {
        assert!(
            within(a.conntrack.count_peak, b.conntrack.count_peak, 0.02),
            "{}",
            a.name
        );
    }
    let e = p.ebpf.unwrap();
    assert!(!e.notrack);
    assert!(
        e.ct_peak >= r.requests.new_connections,
        "the BPF CT map tracks every flow"
    );
    assert_eq!(e.insert_failed, 0);

    let nt = small("ebpf", &["kubeProxy.ebpf.notrack=true"]);
    assert_eq!(nt.requests.failed, 0);
    for n in &nt.nodes {
        assert_eq!(n.conntrack.count_peak, 0, "{}: NOTRACK for pod traffic", n.name);
    }
    let e = nt.nodes[0].proxy.as_ref().unwrap().ebpf.unwrap();
    assert!(e.notrack && e.ct_peak > 0);
}

/// A BPF CT map too small for the flows: LRU evicts live flows; a full hash map would fail.
#[test]
fn ebpf_ct_map_pressure_is_counted() {
    let r = small("ebpf", &["kubeProxy.ebpf.ctGlobalTcpMax=1000"]);
    let e = r.nodes[0].proxy.as_ref().unwrap().ebpf.unwrap();
    assert_eq!(e.ct_tcp_size, 1000);
    assert!(e.ct_peak <= 1000 + e.ct_any_size);
    assert!(e.evicted_live > 0 || e.inserted > 1000, "{e:?}");
}

/// V26: kernels before 5.9 drop the first SYN of a connection reusing the tuple of an IPVS
/// connection in TIME_WAIT when conn_reuse_mode=1 (f719e3754ee2); the client retransmits
/// after 1 s. 6.18 reschedules without a drop.
#[test]
fn ipvs_conn_reuse_drops_the_first_syn_on_5_4_only() {
    let sets = |k: &'static str| {
        vec![
            k,
            "kubeProxy.ipvs.connReuseMode=1",
            "workloads.0.connection.closer=server",
            "nodes.0.sysctl.net.ipv4.ip_local_port_range=40000 40199",
        ]
    };
    let old = small("ipvs", &sets("kernel=5.4"));
    let i = old.nodes[0].proxy.as_ref().unwrap().ipvs.unwrap();
    assert!(i.conn_reuse_drops > 0, "{i:?}");
    assert!(
        old.requests.timeouts > 0,
        "the dropped SYN costs the 1 s initial RTO"
    );
    assert!(
        old.nodes[0]
            .packet_drops
            .keys()
            .any(|k| k.contains("IPVS: first SYN dropped")),
        "{:?}",
        old.nodes[0].packet_drops
    );
    assert!(old.latency_ms.p99 >= 1000.0, "p99 {}", old.latency_ms.p99);

    let new = small("ipvs", &sets("kernel=6.18"));
    let i = new.nodes[0].proxy.as_ref().unwrap().ipvs.unwrap();
    assert_eq!(i.conn_reuse_drops, 0);
    assert!(i.conn_reuse_rescheduled > 0, "{i:?}");

    // kube-proxy's own choice on 5.4 is conn_reuse_mode=0: no drop, the tuple follows the
    // old connection.
    let kp = small(
        "ipvs",
        &[
            "kernel=5.4",
            "workloads.0.connection.closer=server",
            "nodes.0.sysctl.net.ipv4.ip_local_port_range=40000 40199",
        ],
    );
    let i = kp.nodes[0].proxy.as_ref().unwrap().ipvs.unwrap();
    assert_eq!((i.conn_reuse_mode, i.conn_reuse_drops), (0, 0));
}

#[test]
fn every_mode_is_deterministic() {
    for mode in ["nftables", "ipvs", "ebpf"] {
        let a = serde_json::to_string(&small(mode, &["duration=1s"])).unwrap();
        let b = serde_json::to_string(&small(mode, &["duration=1s"])).unwrap();
        assert_eq!(a, b, "{mode}");
    }
}

/// docs/validation-targets.md §V23 (Tigera), shortened: client-node CPU with iptables ~35 %,
/// IPVS ~8 %, iptables with keep-alive ~2 % of a core, each within 30 %.
#[test]
fn v23_cpu_per_mode_matches_tigera() {
    let f = "scenarios/validation/v23-iptables-10k.yaml";
    let core = |r: &Report| r.nodes[0].cpu.busy_core_s / r.duration_s;
    let ipt = core(&run(&scenario(f, &["duration=1s"])));
    let ipvs = core(&run(&scenario(f, &["duration=1s", "kubeProxy.mode=ipvs"])));
    let ka = core(&run(&scenario(
        f,
        &[
            "duration=1s",
            "workloads.0.connection.mode=pool",
            "workloads.0.connection.poolSize=10",
            "workloads.0.connection.maxRequestsPerConnection=100",
        ],
    )));
    for (what, got, want) in [
        ("iptables", ipt, 0.35),
        ("ipvs", ipvs, 0.08),
        ("keep-alive", ka, 0.02),
    ] {
        assert!((got - want).abs() <= 0.3 * want, "{what}: {got} vs {want}");
    }
}
