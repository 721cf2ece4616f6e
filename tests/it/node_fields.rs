//! Scenario fields for what real nodes do (docs/scenario-format.md): extra rules,
//! the node's own iptables-save, a warm start and the gc worker's phase, pinned
//! endpoint addresses, server behaviours, arrival processes, DNS-only workloads and an
//! observed baseline. Each has an error test naming file, line and field, and a test
//! that its behaviour shows in a run.

use k8s_netsim::scenario::{Scenario, ScenarioError};
use k8s_netsim::sim::Outcome;

const BASE: &str = "version: 1\nname: t\nduration: 10s\nsampleInterval: 500ms\nkernel: \"6.18\"\nnodes:\n";

fn load(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::from_bytes("t.yaml", text.as_bytes(), &[])
}

/// The single problem of `text`, checked to be at `field` with a line, mentioning `says`.
fn only_problem(text: &str, field: &str, says: &str) {
    let e = match load(text) {
        Ok(_) => panic!("loaded but should not:\n{text}"),
        Err(e) => e,
    };
    assert_eq!(e.problems().len(), 1, "{e}");
    let p = &e.problems()[0];
    assert_eq!(p.field.to_string(), field, "{e}");
    assert!(p.line().is_some(), "no line: {e}");
    assert!(p.to_string().starts_with("t.yaml:"), "{e}");
    assert!(p.message.contains(says), "`{says}` not in: {e}");
}

/// A syntax-stage (serde) error: one problem mentioning `says`, with a line.
fn serde_problem(text: &str, says: &str) {
    let e = match load(text) {
        Ok(_) => panic!("loaded but should not:\n{text}"),
        Err(e) => e,
    };
    assert!(e.to_string().contains(says), "`{says}` not in: {e}");
    assert!(e.problems().iter().all(|p| p.line().is_some()), "{e}");
}

fn run(text: &str) -> Outcome {
    let sc = load(text).unwrap_or_else(|e| panic!("{e}"));
    k8s_netsim::sim::run(&sc, &mut |_, _| {}).unwrap_or_else(|e| panic!("{e}"))
}

/// Two nodes and an echo Service on node b; `extra` goes under node a, `server` under
/// the Service's `server`, `wl` is the workload's extra fields.
fn two_nodes(node_a_extra: &str, server: &str, wl: &str) -> String {
    format!(
        "{BASE}  - name: a\n    cpus: 2\n    memory: 4Gi\n{node_a_extra}  - {{name: b, cpus: 2, memory: 4Gi}}\n\
services:\n  - name: echo\n    ports: [{{port: 80, targetPort: 8080}}]\n    endpoints: [{{node: b, count: 1}}]\n    server: {{serviceTime: {{distribution: constant, value: 1ms}}{server}}}\n\
workloads:\n  - name: c\n    node: a\n    pods: 1\n    target: echo:80\n    rate: 100/s\n    timeout: 1s\n{wl}"
    )
}

// ----- extraRules -----

#[test]
fn extra_rules_errors_name_the_rule() {
    only_problem(
        &two_nodes(
            "    extraRules:\n      - {table: natt, chain: POSTROUTING, rule: \"-j ACCEPT\"}\n",
            "",
            "",
        ),
        "nodes[0].extraRules[0].table",
        "unknown table `natt`",
    );
    only_problem(
        &two_nodes(
            "    extraRules:\n      - {table: filter, chain: FORWARD, rule: \"-m hashlimit --hashlimit-above 1/s -j DROP\"}\n",
            "",
            "",
        ),
        "nodes[0].extraRules[0].rule",
        "hashlimit",
    );
    only_problem(
        &two_nodes(
            "    extraRules:\n      - {table: nat, chain: FORWARD, rule: \"-j ACCEPT\"}\n",
            "",
            "",
        ),
        "nodes[0].extraRules[0].rule",
        "FORWARD",
    );
}

#[test]
fn an_extra_drop_rule_blackholes_the_service_and_notrack_keeps_it_out_of_conntrack() {
    let drop = run(&two_nodes(
        "    extraRules:\n      - {table: filter, chain: FORWARD, rule: \"-d 10.244.1.0/24 -p tcp -j DROP\"}\n",
        "",
        "",
    ));
    assert_eq!(drop.report.requests.ok, 0, "{:?}", drop.report.requests);
    assert!(drop.report.requests.failed > 500);
    let plain = run(&two_nodes("", "", ""));
    assert!(plain.report.nodes[0].conntrack.count_peak > 100);
    let notrack = run(&two_nodes(
        "    extraRules:\n      - {table: raw, chain: PREROUTING, rule: \"-s 10.244.0.0/24 -j NOTRACK\"}\n      - {table: raw, chain: PREROUTING, rule: \"-d 10.244.0.0/24 -j NOTRACK\"}\n",
        "",
        "",
    ));
    // The client node tracks nothing of the pods' traffic (the ClusterIP needs DNAT,
    // which NOTRACK bypasses, so the requests fail: the rule does what it says).
    assert_eq!(notrack.report.nodes[0].conntrack.entries_created, 0);
}

#[test]
fn an_extra_snat_rule_with_a_port_range_exhausts_its_ports() {
    // SNAT to 4 ports for a backend whose clients close first: TIME_WAIT holds the
    // ports, new connections fail at confirm.
    let sc = two_nodes(
        "    extraRules:\n      - {table: nat, chain: POSTROUTING, rule: \"-d 10.244.1.0/24 -p tcp -j SNAT --to-source 192.168.0.10:40000-40003\"}\n",
        "",
        "",
    );
    let o = run(&sc);
    let a = &o.report.nodes[0].conntrack.stats;
    // Four source ports for 1,000 connections to one backend: the NAT port search
    // finds them taken, the SYN fails at confirm (insert_failed + drop) on node a.
    assert!(a.insert_failed > 100 && a.drop >= a.insert_failed, "{a:?}");
    assert!(o.report.requests.failed > 100, "{:?}", o.report.requests);
    assert!(
        o.report
            .requests
            .failures_by_cause
            .keys()
            .any(|k| k.starts_with("a insert_failed")),
        "{:?}",
        o.report.requests.failures_by_cause
    );
    // Without the rule the same traffic goes through.
    let plain = run(&two_nodes("", "", ""));
    assert_eq!(plain.report.nodes[0].conntrack.stats.insert_failed, 0);
    // --random-fully is kept and shown in the node's rules.
    let fully = sc.replace("40000-40003", "40000-40003 --random-fully");
    let text = k8s_netsim::sim::node_rules(&load(&fully).unwrap(), "a").unwrap();
    assert!(
        text.contains("--to-source 192.168.0.10:40000-40003 --random-fully"),
        "{text}"
    );
    let k8s_netsim::scenario::ExtraRule { rule, .. } = &load(&sc).unwrap().nodes[0].extra_rules[0];
    assert!(rule.contains("--to-source 192.168.0.10:40000-40003"));
    let text = k8s_netsim::sim::node_rules(&load(&sc).unwrap(), "a").unwrap();
    assert!(
        text.contains("-j SNAT --to-source 192.168.0.10:40000-40003"),
        "{text}"
    );
}

// ----- iptablesSave -----

#[test]
fn iptables_save_must_parse_and_needs_iptables_mode() {
    only_problem(
        &two_nodes(
            "    iptablesSave: |\n      *nat\n      -A PREROUTING -j NOPE\n      COMMIT\n",
            "",
            "",
        ),
        "nodes[0].iptablesSave",
        "line 2 of the dump",
    );
    only_problem(
        &two_nodes("    iptablesSave: |\n      *nat\n      COMMIT\n", "", "")
            .replace("nodes:\n", "kubeProxy: {mode: ipvs}\nnodes:\n"),
        "nodes[0].iptablesSave",
        "kubeProxy.mode: iptables",
    );
}

#[test]
fn the_nodes_own_ruleset_replaces_kube_proxys() {
    // An empty dump: no kube-proxy rules, so the ClusterIP is never DNATed.
    let own = run(&two_nodes(
        "    iptablesSave: |\n      *nat\n      COMMIT\n",
        "",
        "",
    ));
    assert_eq!(own.report.requests.ok, 0);
    assert_eq!(own.report.nodes[0].rules.nat_rules, 0);
    let generated = run(&two_nodes("", "", ""));
    assert!(generated.report.requests.ok > 500);
}

// ----- conntrack: warmStart, gcPhase -----

#[test]
fn conntrack_start_errors_name_the_field() {
    let warm = |g: &str| {
        two_nodes(
            &format!("    conntrack:\n      warmStart:\n        - {g}\n"),
            "",
            "",
        )
    };
    only_problem(
        &warm("{protocol: tcp, count: 5, expiresIn: [1s]}"),
        "nodes[0].conntrack.warmStart[0].state",
        "needs its state",
    );
    only_problem(
        &warm("{protocol: tcp, state: TIME_WAITING, count: 5, expiresIn: [1s]}"),
        "nodes[0].conntrack.warmStart[0].state",
        "unknown TCP state",
    );
    only_problem(
        &warm("{protocol: udp, state: TIME_WAIT, count: 5, expiresIn: [1s]}"),
        "nodes[0].conntrack.warmStart[0].state",
        "only TCP",
    );
    only_problem(
        &warm("{protocol: sctp, count: 5, expiresIn: [1s]}"),
        "nodes[0].conntrack.warmStart[0].protocol",
        "unknown protocol",
    );
    only_problem(
        &warm("{protocol: udp, count: 5, expiresIn: [9s, 1s]}"),
        "nodes[0].conntrack.warmStart[0].expiresIn",
        "shortest comes first",
    );
    only_problem(
        &warm("{protocol: udp, count: 0, expiresIn: [1s]}"),
        "nodes[0].conntrack.warmStart[0].count",
        "at least 1",
    );
    only_problem(
        &two_nodes("    conntrack: {gcPhase: 10m}\n", "", ""),
        "nodes[0].conntrack.gcPhase",
        "longest interval",
    );
}

#[test]
fn a_warm_table_starts_full_and_the_gc_phase_decides_when_expired_entries_leave() {
    // 2,000 ASSURED TIME_WAIT entries expiring within 1 s fill a 2,000-entry table.
    let text = |phase: &str| {
        two_nodes(
            &format!(
                "    sysctl: {{net.netfilter.nf_conntrack_max: 2000}}\n    conntrack:\n      gcPhase: {phase}\n      warmStart:\n        - {{protocol: tcp, state: TIME_WAIT, assured: true, count: 2000, expiresIn: [100ms, 900ms]}}\n"
            ),
            "",
            "",
        )
        .replace("    rate: 100/s\n", "    rate: 1/s\n    rateProfile: [{at: 0s, rate: 0/s}, {at: 7500ms, rate: 20/s}]\n")
    };
    let early = run(&text("0s"));
    let late = run(&text("9s"));
    let count_at = |o: &Outcome, t: f64| {
        o.timeseries
            .samples
            .iter()
            .find(|s| (s.t_s - t).abs() < 1e-6)
            .map(|s| s.count[0])
            .unwrap_or_else(|| panic!("no sample at {t}"))
    };
    assert_eq!(
        count_at(&early, 0.5),
        2000,
        "warm entries are counted from time 0"
    );
    assert_eq!(count_at(&late, 0.5), 2000);
    // A first gc pass at 0 s sees 2,000 entries about to expire and comes back a few
    // seconds later (the kernel's running mean of remaining lifetimes, in integer
    // jiffies) to reap them; a first pass at 9 s leaves them (expired but counted)
    // until then.
    assert_eq!(count_at(&early, 7.5), 0);
    assert_eq!(count_at(&late, 7.5), 2000);
    assert!(
        count_at(&late, 9.5) < 100,
        "only the new connections' entries are left"
    );
    // Connections from 7.5 s: into an empty table, or into a full one of expired
    // entries, where allocation reaps only what its early-drop scan meets and drops
    // the packet that found the table full.
    assert_eq!(early.report.nodes[0].conntrack.stats.drop, 0);
    assert!(
        late.report.nodes[0].conntrack.stats.drop > 0,
        "{:?}",
        late.report.nodes[0].conntrack.stats
    );
}

// ----- endpoints[].ips -----

#[test]
fn pinned_endpoint_addresses_are_checked_and_used() {
    let svc = |eps: &str| {
        format!(
            "{BASE}  - {{name: a, cpus: 2, memory: 4Gi, podCIDR: 10.244.0.0/24}}\n  - {{name: b, cpus: 2, memory: 4Gi, podCIDR: 10.244.7.0/24}}\nservices:\n  - name: echo\n    ports: [{{port: 80}}]\n    endpoints: [{eps}]\n"
        )
    };
    only_problem(
        &svc("{node: b, ips: [10.244.9.9]}"),
        "services[0].endpoints[0].ips[0]",
        "outside node `b`'s podCIDR",
    );
    only_problem(
        &svc("{node: b, count: 2, ips: [10.244.7.9]}"),
        "services[0].endpoints[0].count",
        "does not match",
    );
    only_problem(
        &svc("{node: b, ips: [10.244.7.9, 10.244.7.9]}"),
        "services[0].endpoints[0].ips[1]",
        "used twice",
    );
    only_problem(
        &svc("{node: b}"),
        "services[0].endpoints[0].count",
        "give `count`",
    );
    let sc = load(&format!(
        "{}  - {{name: other, ports: [{{port: 81}}], endpoints: [{{node: b, count: 3}}]}}\n",
        svc("{node: b, ips: [10.244.7.3, 10.244.7.200]}")
    ))
    .unwrap();
    let ips: Vec<String> = sc.services[0]
        .endpoints
        .iter()
        .map(|e| e.ip.to_string())
        .collect();
    assert_eq!(ips, ["10.244.7.3", "10.244.7.200"]);
    // Allocation skips the pinned address .3.
    let other: Vec<String> = sc.services[1]
        .endpoints
        .iter()
        .map(|e| e.ip.to_string())
        .collect();
    assert_eq!(other, ["10.244.7.2", "10.244.7.4", "10.244.7.5"]);
}

// ----- server.behavior -----

#[test]
fn unknown_server_behavior_is_rejected() {
    serde_problem(
        &two_nodes("", ", behavior: blackHole", ""),
        "unknown variant `blackHole`",
    );
}

#[test]
fn blackhole_reset_and_never_close_backends_fail_or_leak_as_real_ones_do() {
    let normal = run(&two_nodes("", "", ""));
    assert!(normal.report.requests.ok > 900);

    let hole = run(&two_nodes("", ", behavior: blackhole", ""));
    assert_eq!(hole.report.requests.ok, 0);
    let causes = &hole.report.requests.failures_by_cause;
    assert!(
        causes.contains_key("timeout in connect (SYN unanswered)"),
        "{causes:?}"
    );
    // Each SYN (and retransmission) goes through conntrack: entries stay in SYN_SENT.
    assert!(hole.report.nodes[0].conntrack.count_end > 900);

    let reset = run(&two_nodes("", ", behavior: reset", ""));
    assert_eq!(reset.report.requests.ok, 0);
    let causes = &reset.report.requests.failures_by_cause;
    assert!(
        causes.contains_key("ECONNREFUSED (RST from the backend)"),
        "{causes:?}"
    );

    // A backend that never closes: with TIME_WAIT entries gone after 1 s, a normal
    // backend's table empties; CLOSE_WAIT entries stay for tcp_timeout_close_wait.
    // Load for 3 s, then 87 s of quiet for the gc worker to reap what expired (its
    // interval follows the entries' remaining lifetimes, up to 60 s).
    let short_tw = "    sysctl: {net.netfilter.nf_conntrack_tcp_timeout_time_wait: 1}\n";
    let quiet = |t: String| {
        t.replace("duration: 10s", "duration: 90s").replace(
            "    rate: 100/s\n",
            "    rate: 100/s\n    rateProfile: [{at: 3s, rate: 0/s}]\n",
        )
    };
    let normal = run(&quiet(two_nodes(
        short_tw,
        "",
        "    connection: {closer: server}\n",
    )));
    let leak = run(&quiet(two_nodes(
        short_tw,
        ", behavior: neverClose",
        "    connection: {closer: server}\n",
    )));
    assert!(leak.report.requests.ok > 250, "the requests themselves succeed");
    let (n, l) = (
        normal.report.nodes[0].conntrack.count_end,
        leak.report.nodes[0].conntrack.count_end,
    );
    assert!(l > 250 && n < 20, "count at the end: normal {n}, neverClose {l}");
}

// ----- arrivals -----

#[test]
fn arrival_process_errors() {
    only_problem(
        &two_nodes("", "", "    arrivals: {process: bursts, size: 0}\n"),
        "workloads[0].arrivals.size",
        "not in 1..=1000000",
    );
    serde_problem(
        &two_nodes("", "", "    arrivals: {process: uniform}\n"),
        "unknown variant `uniform`",
    );
    serde_problem(
        &two_nodes("", "", "    arrivals: {process: paced, size: 3}\n"),
        "unknown field `size`",
    );
}

#[test]
fn paced_arrivals_are_exact_and_bursts_keep_the_mean_rate() {
    let paced = run(&two_nodes("", "", "    arrivals: {process: paced}\n"));
    // 100/s for 10 s, the first at 10 ms: exactly 1,000.
    assert_eq!(paced.report.requests.sent, 1000);
    let poisson = run(&two_nodes("", "", ""));
    assert_ne!(
        poisson.report.requests.sent, 1000,
        "Poisson counts vary (this seed gives another)"
    );
    let bursts = run(&two_nodes("", "", "    arrivals: {process: bursts, size: 50}\n"));
    let sent = bursts.report.requests.sent;
    assert!(sent.is_multiple_of(50) && (500..=1500).contains(&sent), "{sent}");
}

// ----- dnsOnly -----

#[test]
fn dns_only_needs_per_request_resolution() {
    only_problem(
        &two_nodes("", "", "    dnsOnly: true\n"),
        "workloads[0].dnsOnly",
        "dns.mode: perRequest",
    );
}

#[test]
fn a_dns_only_workload_resolves_and_opens_no_connection() {
    let text = two_nodes("", "", "    dnsOnly: true\n    dns: {mode: perRequest}\n").replace(
        "workloads:\n",
        "  - name: kube-dns\n    namespace: kube-system\n    clusterIP: 10.96.0.10\n    ports: [{port: 53, protocol: UDP}]\n    endpoints: [{node: b, count: 1}]\nworkloads:\n",
    );
    let o = run(&text);
    assert_eq!(o.report.requests.new_connections, 0);
    assert!(o.report.requests.ok > 900, "{:?}", o.report.requests);
    assert!(
        o.report.dns.coredns_queries >= 2 * o.report.requests.ok,
        "{:?}",
        o.report.dns
    );
}

// ----- baseline -----

#[test]
fn baseline_errors() {
    only_problem(
        &format!(
            "{}baseline: {{node: zz, counters: {{drop: 5}}}}\n",
            two_nodes("", "", "")
        ),
        "baseline.node",
        "unknown node `zz`",
    );
    serde_problem(
        &format!(
            "{}baseline: {{node: a, counters: {{drops: 5}}}}\n",
            two_nodes("", "", "")
        ),
        "unknown field `drops`",
    );
}

#[test]
fn the_report_sets_the_baseline_next_to_the_simulated_counters() {
    let o = run(&format!(
        "{}baseline: {{node: a, source: \"conntrack-S.txt\", window: 10s, counters: {{drop: 5, insert_failed: 0, count: 7, ignore: 3}}}}\n",
        two_nodes("", "", "")
    ));
    let b = o.report.baseline.as_ref().expect("a baseline section");
    assert_eq!((b.node.as_str(), b.window_s), ("a", Some(10.0)));
    let names: Vec<&str> = b.rows.iter().map(|r| r.counter.as_str()).collect();
    assert_eq!(names, ["ignore", "insert_failed", "drop", "count"]);
    assert_eq!(b.rows[2].observed, 5);
    assert_eq!(b.rows[2].simulated, Some(o.report.nodes[0].conntrack.stats.drop));
    assert_eq!(b.rows[0].simulated, None, "ignore is not simulated");
    let json = serde_json::to_value(&o.report).unwrap();
    assert!(json["baseline"]["rows"].is_array());
    let without = run(&two_nodes("", "", ""));
    assert!(
        serde_json::to_value(&without.report)
            .unwrap()
            .get("baseline")
            .is_none()
    );
}
