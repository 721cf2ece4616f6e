//! Scenario loading: every bad input gives an error naming file, line and field; the
//! bundled scenarios load.

use k8s_netsim::scenario::{Override, Problem, ProblemKind, Provenance, Scenario, ScenarioError};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/fixtures/bad")
        .join(name)
}

fn scenario_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

fn load_err(name: &str) -> ScenarioError {
    match Scenario::load(fixture(name), &[]) {
        Ok(_) => panic!("{name} loaded but should not"),
        Err(e) => e,
    }
}

/// The single problem of `name`, checked to name the file, a line and `field`.
fn only_problem(name: &str, field: &str) -> Problem {
    let e = load_err(name);
    assert_eq!(e.problems().len(), 1, "{e}");
    let p = e.problems()[0].clone();
    assert_located(&p, name, field);
    p
}

fn assert_located(p: &Problem, file: &str, field: &str) {
    let shown = p.to_string();
    assert!(p.file.ends_with(file), "{shown}");
    assert!(p.line().is_some(), "no line: {shown}");
    assert_eq!(p.field.to_string(), field, "{shown}");
    let prefix = format!("{}:{}:", p.file, p.line().unwrap_or(0));
    assert!(shown.starts_with(&prefix), "{shown}");
    assert!(shown.contains(&format!(": {field}: ")), "{shown}");
}

#[test]
fn unknown_field_is_named_with_its_line() {
    let p = only_problem("unknown-field.yaml", "workloads[0].retrys");
    assert_eq!(p.kind, ProblemKind::UnknownField);
    assert_eq!(p.line(), Some(18));
    assert!(p.message.contains("unknown field `retrys`"), "{p}");
}

#[test]
fn rate_with_unknown_unit_is_rejected() {
    let p = only_problem("bad-rate-unit.yaml", "workloads[0].rate");
    assert_eq!(p.line(), Some(17));
    assert!(p.message.contains("unknown unit `/h`"), "{p}");
}

#[test]
fn duration_with_unknown_unit_is_rejected() {
    let p = only_problem("bad-duration-unit.yaml", "workloads[0].timeout");
    assert_eq!(p.line(), Some(18));
    assert!(p.message.contains("unknown unit `parsecs`"), "{p}");
}

#[test]
fn negative_rate_is_rejected() {
    let p = only_problem("negative-rate.yaml", "workloads[0].rate");
    assert_eq!(p.line(), Some(17));
    assert!(p.message.contains("negative rate `-5/s`"), "{p}");
    assert!(
        p.to_string()
            .contains("negative-rate.yaml:17:11: workloads[0].rate: negative rate `-5/s`"),
        "{p}"
    );
}

#[test]
fn unknown_service_in_a_workload_target_is_named() {
    let p = only_problem("unknown-service.yaml", "workloads[0].target");
    assert_eq!(p.kind, ProblemKind::UnknownReference);
    assert_eq!(p.line(), Some(16));
    assert!(p.message.contains("unknown Service `user-service`"), "{p}");
}

#[test]
fn unknown_node_in_endpoints_is_named() {
    let p = only_problem("unknown-node.yaml", "services[0].endpoints[0].node");
    assert_eq!(p.kind, ProblemKind::UnknownReference);
    assert_eq!(p.line(), Some(11));
    assert!(
        p.message
            .contains("unknown node `node-c` (nodes: node-a, node-b)"),
        "{p}"
    );
}

#[test]
fn truncated_yaml_is_a_syntax_error_with_a_line() {
    let e = load_err("truncated.yaml");
    assert_eq!(e.problems().len(), 1, "{e}");
    let p = &e.problems()[0];
    assert_eq!(p.kind, ProblemKind::Syntax, "{p}");
    assert!(p.line().is_some(), "{p}");
    assert!(p.to_string().starts_with(&p.file), "{p}");
}

#[test]
fn alias_bomb_is_an_error_not_a_hang() {
    let e = load_err("alias-bomb.yaml");
    let p = &e.problems()[0];
    assert_eq!(p.kind, ProblemKind::Complexity, "{p}");
    assert!(p.message.contains("alias"), "{p}");
    assert!(p.line().is_some(), "{p}");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let text = format!(
        "version: 1\nname: deep\nx: {}{}\n",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let e = Scenario::from_bytes("deep.yaml", text.as_bytes(), &[]).unwrap_err();
    assert_eq!(e.problems()[0].kind, ProblemKind::Complexity, "{e}");
    let block: String = (0..200).map(|i| format!("{}k{i}:\n", "  ".repeat(i))).collect();
    let e = Scenario::from_bytes("deep-block.yaml", block.as_bytes(), &[]).unwrap_err();
    assert_eq!(e.problems()[0].kind, ProblemKind::Complexity, "{e}");
    assert!(e.to_string().contains("nesting"), "{e}");
}

#[test]
fn unknown_sysctl_is_named_not_ignored() {
    let p = only_problem(
        "unknown-sysctl.yaml",
        "nodes[1].sysctl.net.netfilter.nf_conntrack_tcp_timeout_timewait",
    );
    assert_eq!(p.kind, ProblemKind::UnknownSysctl);
    assert_eq!(p.line(), Some(12));
    assert!(
        p.message
            .contains("did you mean `net.netfilter.nf_conntrack_tcp_timeout_time_wait`"),
        "{p}"
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let e = load_err("three-problems.yaml");
    let fields: Vec<String> = e.problems().iter().map(|p| p.field.to_string()).collect();
    assert_eq!(
        fields,
        [
            "services[0].endpoints[0].node",
            "workloads[0].target",
            "workloads[1].node"
        ],
        "{e}"
    );
    for p in e.problems() {
        assert_located(p, "three-problems.yaml", &p.field.to_string());
    }
    assert_eq!(e.to_string().lines().count(), 3, "{e}");
}

#[test]
fn huge_file_is_rejected_before_parsing_with_its_size() {
    let dir = std::env::temp_dir().join(format!("k8s-netsim-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("huge.yaml");
    let f = std::fs::File::create(&path).unwrap();
    // 100 MB without writing 100 MB: a sparse file.
    f.set_len(100_000_000).unwrap();
    let e = Scenario::load(&path, &[]).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    let p = &e.problems()[0];
    assert_eq!(p.kind, ProblemKind::TooLarge);
    assert!(p.to_string().contains("huge.yaml"), "{p}");
    assert!(
        p.message.contains("100000000 bytes") && p.message.contains("1 MiB"),
        "{p}"
    );
}

#[test]
fn empty_and_comment_only_files_are_rejected() {
    for name in ["empty.yaml", "comment-only.yaml"] {
        let e = load_err(name);
        assert_eq!(e.problems()[0].kind, ProblemKind::Empty, "{e}");
        assert!(e.to_string().contains(name), "{e}");
    }
}

#[test]
fn non_utf8_file_names_the_offset_and_line() {
    let e = Scenario::from_bytes("latin1.yaml", b"version: 1\nname: caf\xe9\n", &[]).unwrap_err();
    let p = &e.problems()[0];
    assert_eq!(p.kind, ProblemKind::NotUtf8);
    assert_eq!(p.line(), Some(2));
    assert!(p.message.contains("offset 20"), "{p}");
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let e = Scenario::load(fixture("does-not-exist.yaml"), &[]).unwrap_err();
    assert_eq!(e.problems()[0].kind, ProblemKind::Io);
    assert!(e.to_string().contains("does-not-exist.yaml"), "{e}");
}

#[test]
fn bad_set_path_names_the_override() {
    let o = Override::parse("workloads.7.rate=1k/s").unwrap();
    let e = Scenario::load(scenario_path("small.yaml"), &[o]).unwrap_err();
    let p = &e.problems()[0];
    assert_eq!(p.kind, ProblemKind::BadOverride);
    assert!(
        p.to_string()
            .ends_with("--set workloads.7.rate=1k/s: there is no workloads[7] (1 workload: use 0)"),
        "{p}"
    );
}

#[test]
fn bad_set_value_is_blamed_on_the_override_not_the_file() {
    let o = Override::parse("workloads.0.rate=-5/s").unwrap();
    let e = Scenario::load(scenario_path("small.yaml"), &[o]).unwrap_err();
    let p = &e.problems()[0];
    assert!(
        p.to_string()
            .contains("--set workloads.0.rate=-5/s: workloads[0].rate: negative rate `-5/s`"),
        "{p}"
    );
    let o = Override::parse("nodes.0.sysctl.net.core.somaxconnn=10").unwrap();
    let e = Scenario::load(scenario_path("small.yaml"), &[o]).unwrap_err();
    assert_eq!(e.problems()[0].kind, ProblemKind::UnknownSysctl, "{e}");
    assert!(
        e.to_string()
            .contains("--set nodes.0.sysctl.net.core.somaxconnn=10"),
        "{e}"
    );
}

#[test]
fn set_overrides_pass_the_same_validation_and_apply() {
    let sets = [
        "workloads.0.rate=10k/s",
        "nodes.0.sysctl.net.netfilter.nf_conntrack_max=524288",
        "kubeProxy.mode=ipvs",
    ]
    .map(|s| Override::parse(s).unwrap());
    let s = Scenario::load(scenario_path("flash-sale.yaml"), &sets).unwrap();
    assert_eq!(s.workloads[0].rate.to_string(), "10k/s");
    let n = &s.nodes[0].sysctls;
    assert_eq!(n.values.nf_conntrack_max, 524_288);
    assert_eq!(
        n.provenance("net.netfilter.nf_conntrack_max"),
        Some(Provenance::Scenario)
    );
    assert_eq!(s.nodes[1].sysctls.values.nf_conntrack_max, 131_072);
}

#[test]
fn bundled_scenarios_load_and_flash_sale_max_is_kube_proxys_131072() {
    let s = Scenario::load(scenario_path("flash-sale.yaml"), &[]).unwrap();
    assert_eq!(s.kernel.name, "5.4");
    assert_eq!(s.workloads[0].pods.len(), 20);
    assert_eq!(s.background_services.len(), 5_000);
    for n in &s.nodes {
        // docs/validation-targets.md §V21: kube-proxy on a 4-CPU node.
        assert_eq!(n.sysctls.values.nf_conntrack_max, 131_072, "{}", n.name);
        assert_eq!(
            n.sysctls.provenance("net.netfilter.nf_conntrack_max"),
            Some(Provenance::KubeProxy),
            "{}",
            n.name
        );
    }
    for v in &s.variants {
        s.with_variant(&v.name).unwrap();
    }
    let small = Scenario::load(scenario_path("small.yaml"), &[]).unwrap();
    assert_eq!(small.duration.as_secs(), 20);
}

#[test]
fn json_scenarios_load_like_yaml() {
    let yaml = Scenario::load(scenario_path("small.yaml"), &[]).unwrap();
    let text = std::fs::read_to_string(scenario_path("small.yaml")).unwrap();
    let value: serde_json::Value = serde_norway::from_str(&text).unwrap();
    let json = serde_json::to_string_pretty(&value).unwrap().replace("  ", "\t");
    let s = Scenario::from_bytes("small.json", json.as_bytes(), &[]).unwrap();
    assert_eq!(s.nodes, yaml.nodes);
    assert_eq!(s.services, yaml.services);
    assert_eq!(s.workloads, yaml.workloads);
    let bad = json.replacen("\"rate\": \"1k/s\"", "\"rate\": \"-1/s\"", 1);
    let e = Scenario::from_bytes("small.json", bad.as_bytes(), &[]).unwrap_err();
    assert!(e.to_string().contains("workloads[0].rate: negative rate"), "{e}");
    let e = Scenario::from_bytes("trunc.json", &json.as_bytes()[..200], &[]).unwrap_err();
    assert_eq!(e.problems()[0].kind, ProblemKind::Syntax, "{e}");
    assert!(e.problems()[0].line().is_some(), "{e}");
}

#[test]
fn a_node_local_cache_on_a_cluster_or_service_address_is_refused() {
    for addr in ["10.96.0.10", "10.244.1.5", "0.0.0.0"] {
        let set = [
            Override::parse("dns.nodeLocalDNSCache.enabled=true").unwrap(),
            Override::parse(&format!("dns.nodeLocalDNSCache.address={addr}")).unwrap(),
        ];
        let e = Scenario::load(scenario_path("small.yaml"), &set).expect_err(addr);
        let text = e.to_string();
        assert!(text.contains("dns.nodeLocalDNSCache.address"), "{text}");
        assert!(text.contains("node-local address"), "{text}");
    }
    let ok = [
        Override::parse("dns.nodeLocalDNSCache.enabled=true").unwrap(),
        Override::parse("dns.nodeLocalDNSCache.address=169.254.20.11").unwrap(),
    ];
    assert!(Scenario::load(scenario_path("small.yaml"), &ok).is_ok());
}

/// `resolverThreads` was replaced by `dns.threadPlacement`: refused, naming the
/// replacement, never silently ignored; an unknown placement is named too.
#[test]
fn resolver_threads_is_refused_with_its_replacement_named() {
    for (set, field, words) in [
        (
            "workloads.0.dns.resolverThreads=2",
            "workloads[0].dns.resolverThreads",
            "replaced by threadPlacement",
        ),
        (
            "workloads.0.dns.threadPlacement=pinned",
            "workloads[0].dns.threadPlacement",
            "same, different or scheduler, not `pinned`",
        ),
    ] {
        let o = vec![Override::parse(set).unwrap()];
        let e = Scenario::load(scenario_path("small.yaml"), &o).expect_err(set);
        assert_eq!(e.problems().len(), 1, "{e}");
        let p = &e.problems()[0];
        assert_eq!(p.field.to_string(), field, "{p}");
        assert!(p.message.contains(words), "{p}");
    }
    let ok = vec![Override::parse("workloads.0.dns.threadPlacement=scheduler").unwrap()];
    let s = Scenario::load(scenario_path("small.yaml"), &ok).unwrap();
    assert_eq!(
        s.workloads[0].dns.thread_placement,
        k8s_netsim::conntrack::ThreadPlacement::Scheduler
    );
    let default = Scenario::load(scenario_path("small.yaml"), &[]).unwrap();
    assert_eq!(
        default.workloads[0].dns.thread_placement,
        k8s_netsim::conntrack::ThreadPlacement::Same
    );
}
