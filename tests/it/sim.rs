//! The node simulation end to end: the flash-sale acceptance checks, determinism,
//! counter semantics and the DNS race per kernel profile.

use k8s_netsim::report::Report;
use k8s_netsim::scenario::{Override, Scenario};

fn scenario(path: &str, sets: &[&str]) -> Scenario {
    let overrides: Vec<Override> = sets.iter().map(|s| Override::parse(s).unwrap()).collect();
    Scenario::load(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")), &overrides).unwrap()
}

fn run(sc: &Scenario) -> Report {
    k8s_netsim::sim::run(sc, &mut |_, _| {}).unwrap().report
}

#[test]
fn flash_sale_drop_onset_is_the_analytic_fill_time() {
    let sc = scenario("scenarios/flash-sale.yaml", &["duration=7s"]);
    let r = run(&sc);
    let max = r.nodes[0].conntrack.max as f64;
    let rate = sc.workloads[0].rate.as_per_sec_f64();
    let analytic = max / rate;
    let onset = r.nodes[0].onset_s.drop.expect("drop must start");
    assert!(
        (onset - analytic).abs() / analytic < 0.10,
        "onset {onset} vs analytic {analytic}"
    );
    assert_eq!(r.verdict.kind, "drop");
    assert!(r.verdict.text.starts_with(&format!(
        "drop starts at t={onset:.3}s on node-a (nf_conntrack_count "
    )));
    // A full table of ASSURED TIME_WAIT entries: drop, never insert_failed
    // (docs/kernel-semantics.md §Counters).
    assert!(r.nodes[0].conntrack.stats.drop > 0);
    assert_eq!(r.nodes[0].conntrack.stats.insert_failed, 0);
    assert_eq!(r.nodes[0].conntrack.stats.insert, 0);
    assert!(r.verdict.cause.contains("ASSURED"), "{}", r.verdict.cause);
}

#[test]
fn flash_sale_requests_after_the_fill_succeed_only_through_retries() {
    // Once the table is full a SYN is dropped; the 1 s request deadline expires before
    // (or as) the kernel would retransmit it, so the requests that still succeed are
    // retries after a 1 s timeout and a 100 ms backoff.
    let r = run(&scenario("scenarios/flash-sale.yaml", &["duration=12s"]));
    assert!(r.latency_ms.max >= 1100.0, "max {} ms", r.latency_ms.max);
    assert!(r.requests.retries > 0 && r.requests.timeouts > 0);
    assert!(
        r.requests
            .failures_by_cause
            .keys()
            .any(|k| k.contains("SYN unanswered")),
        "{:?}",
        r.requests.failures_by_cause
    );
}

#[test]
fn the_bundled_flash_sale_storm_has_a_p99_above_one_second() {
    // The whole 120 s storm as `cargo run -- run scenarios/flash-sale.yaml` replays it
    // (the incident: P99 1.2 s): about 2 minutes in release.
    let sc = scenario("scenarios/flash-sale.yaml", &[]);
    assert_eq!(sc.duration.as_nanos(), 120_000_000_000);
    let r = run(&sc);
    assert!(r.latency_ms.p99 >= 1000.0, "p99 {} ms", r.latency_ms.p99);
    assert_eq!(r.verdict.kind, "drop");
}

#[test]
fn below_the_sustainable_rate_nothing_drops() {
    // nf_conntrack_max / (120 s TIME_WAIT + lifetime) = 131072 / ~120 s ≈ 1092/s.
    let sc = scenario("scenarios/flash-sale.yaml", &["workloads.0.rate=1k/s"]);
    let max = sc.nodes[0].sysctls.values.nf_conntrack_max as f64;
    assert!(1000.0 < max / 120.0);
    let r = run(&sc);
    for n in &r.nodes {
        assert_eq!(n.conntrack.stats.drop, 0, "{}", n.name);
        assert_eq!(n.onset_s.drop, None);
    }
    assert_eq!(r.verdict.kind, "none");
    assert!(r.latency_ms.p99 < 100.0);
}

#[test]
fn same_scenario_and_seed_give_byte_identical_json() {
    let sc = scenario("scenarios/small.yaml", &["duration=5s"]);
    let a = serde_json::to_string(&run(&sc)).unwrap();
    let b = serde_json::to_string(&run(&sc)).unwrap();
    assert_eq!(a, b);
    let c = serde_json::to_string(&run(&scenario(
        "scenarios/small.yaml",
        &["duration=5s", "seed=8"],
    )))
    .unwrap();
    assert_ne!(a, c, "a different seed must change something");
}

/// docs/kernel-semantics.md §Clash resolution and docs/validation-targets.md §V05: parallel
/// A/AAAA from two threads through a DNATed kube-dns with two endpoints clash at confirm. 5.4
/// cannot insert the loser reply-only: insert_failed + drop and a 5 s resolver timeout; 6.18
/// resolves it.
#[test]
fn dns_race_fails_on_5_4_and_resolves_on_6_18() {
    let base = [
        "duration=6s",
        "workloads.0.rate=300/s",
        "workloads.0.dns.mode=perRequest",
        "workloads.0.dns.threadPlacement=scheduler",
        "services.1.endpoints.0.count=2",
    ];
    let mut old: Vec<&str> = base.to_vec();
    old.push("kernel=5.4");
    let r_old = run(&scenario("scenarios/small.yaml", &old));
    let a_old = &r_old.nodes[0].conntrack.stats;
    assert!(a_old.insert_failed > 0, "{a_old:?}");
    assert!(a_old.drop > 0, "{a_old:?}");
    assert!(r_old.dns.lookups_with_timeout > 0);
    assert_eq!(r_old.verdict.kind, "insert_failed");
    assert!(
        r_old.verdict.cause.contains("udp-pair-different-backends"),
        "{}",
        r_old.verdict.cause
    );

    let mut new: Vec<&str> = base.to_vec();
    new.push("kernel=6.18");
    let r_new = run(&scenario("scenarios/small.yaml", &new));
    let a_new = &r_new.nodes[0].conntrack.stats;
    assert!(a_new.clash_resolve > 0, "{a_new:?}");
    assert_eq!(a_new.drop, 0, "{a_new:?}");
    assert_eq!(r_new.dns.lookups_with_timeout, 0);
}

#[test]
fn one_thread_resolvers_never_race() {
    // glibc sends the pair back to back from one thread: one CPU, sequential
    // (docs/kernel-semantics.md §The A/AAAA race depends on the send gap).
    let r = run(&scenario(
        "scenarios/small.yaml",
        &[
            "duration=4s",
            "workloads.0.dns.mode=perRequest",
            "services.1.endpoints.0.count=2",
            "kernel=5.4",
        ],
    ));
    let s = &r.nodes[0].conntrack.stats;
    assert_eq!((s.insert_failed, s.clash_resolve), (0, 0), "{s:?}");
    assert!(r.dns.queries > 1000);
}

#[test]
fn keepalive_pools_cut_new_connections() {
    let short = run(&scenario("scenarios/small.yaml", &["duration=5s"]));
    let pooled = run(&scenario(
        "scenarios/small.yaml",
        &[
            "duration=5s",
            "workloads.0.connection.mode=pool",
            "workloads.0.connection.maxRequestsPerConnection=100",
        ],
    ));
    assert_eq!(short.requests.new_connections, short.requests.sent);
    assert!(
        pooled.requests.new_connections * 20 < short.requests.new_connections,
        "{:?}",
        pooled.requests
    );
    assert!(pooled.requests.ok > 0);
}

#[test]
fn trace_shows_dnat_and_the_reply_un_nat() {
    let sc = scenario("scenarios/small.yaml", &[]);
    let text = k8s_netsim::sim::trace(&sc, "client-0", "echo:80", None).unwrap();
    assert!(text.contains("nat: DNAT"), "{text}");
    assert!(text.contains("KUBE-SERVICES"));
    assert!(text.contains("confirmed"));
    assert!(text.contains("restores the original tuple"), "{text}");
    assert!(k8s_netsim::sim::trace(&sc, "nobody", "echo:80", None).is_err());
    assert!(k8s_netsim::sim::trace(&sc, "client-0", "nosuch:80", None).is_err());
}

#[test]
fn a_masqueraded_connection_is_one_entry_per_node_through_its_close() {
    // The server answers (SYN-ACK, FIN, ACK) to the address it saw, the SNAT address:
    // with masqueradeAll the count must equal the count without SNAT, and the entries
    // must reach TIME_WAIT, not linger as stray reverse-direction flows.
    let mut counts = Vec::new();
    for masq in ["false", "true"] {
        let r = run(&scenario(
            "scenarios/snat-exhaustion.yaml",
            &["duration=5s", &format!("kubeProxy.masqueradeAll={masq}")],
        ));
        counts.push((r.nodes[0].conntrack.count_end, r.nodes[1].conntrack.count_end));
        assert_eq!(
            r.nodes[0].conntrack.count_end, r.nodes[0].conntrack.entries_created,
            "masqueradeAll={masq}"
        );
    }
    assert_eq!(counts[0], counts[1]);
}

/// docs/report-format.md: `engine.events_by_kind` splits `engine.events` by kind, so a
/// change that adds events shows where.
#[test]
fn events_by_kind_sum_to_the_events() {
    let sc = scenario("scenarios/small.yaml", &["duration=5s"]);
    let engine = run(&sc).engine;
    let by_kind: u64 = engine.events_by_kind.values().sum();
    assert_eq!(by_kind, engine.events);
    for kind in ["arrival", "hop_start", "confirm", "deliver", "sample"] {
        assert!(
            engine.events_by_kind.get(kind).is_some_and(|n| *n > 0),
            "{kind} missing"
        );
    }
    assert!(
        engine.events_by_kind.values().all(|n| *n > 0),
        "zero counts are left out"
    );
}
