//! The command line: exit codes, output formats, files written.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_k8s-netsim"))
}

fn root(p: &str) -> String {
    format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn rules_ten_by_ten_prints_kube_proxys_325_nat_rules() {
    let out = bin()
        .args([
            "rules",
            "--mode",
            "iptables",
            "--services",
            "10",
            "--endpoints",
            "10",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let nat = text.split("*nat\n").nth(1).unwrap();
    assert_eq!(nat.lines().filter(|l| l.starts_with("-A ")).count(), 325);
}

#[test]
fn rules_of_a_scenario_node() {
    let out = bin()
        .args(["rules", &root("scenarios/small.yaml"), "--node", "node-a"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("-A KUBE-SERVICES")
    );
    let out = bin()
        .args(["rules", &root("scenarios/small.yaml"), "--node", "node-z"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("node-z"));
}

#[test]
fn bad_scenario_exits_2_naming_file_line_and_field() {
    let dir = std::env::temp_dir().join(format!("k8s-netsim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.yaml");
    std::fs::write(&path, "version: 1\nname: x\nduration: 1s\nkernel: \"6.18\"\nnodes:\n  - {name: a, cpus: 2, memory: 4Gi, colour: red}\n").unwrap();
    let out = bin().args(["run", path.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("bad.yaml:6"), "{err}");
    assert!(err.contains("colour"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_override_exits_2() {
    let out = bin()
        .args([
            "run",
            &root("scenarios/small.yaml"),
            "--set",
            "workloads.9.rate=1k/s",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("workloads"));
    let out = bin()
        .args(["run", &root("scenarios/small.yaml"), "--set", "nonsense"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn run_json_has_the_documented_keys_and_out_writes_files() {
    let dir = std::env::temp_dir().join(format!("k8s-netsim-out-{}", std::process::id()));
    let out = bin()
        .args([
            "run",
            &root("scenarios/small.yaml"),
            "--set",
            "duration=2s",
            "--json",
            "--out",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "latency_ms",
        "requests",
        "dns",
        "nodes",
        "verdict",
        "schema_version",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(v["latency_ms"].get(key).is_some());
        assert!(
            v["users"]["latency_ms"].get(key).is_some(),
            "users.latency_ms.{key}"
        );
    }
    assert!(v["users"]["success_pct"].is_number());
    assert!(v["nodes"][0]["clients"]["users"]["finished"].is_number());
    for key in ["sent", "ok", "failed", "timeouts", "retries"] {
        assert!(v["requests"].get(key).is_some());
    }
    for key in ["queries", "coredns_qps_peak"] {
        assert!(v["dns"].get(key).is_some());
    }
    let node = &v["nodes"][0];
    for key in ["max", "buckets", "count_peak", "stats"] {
        assert!(node["conntrack"].get(key).is_some(), "conntrack.{key}");
    }
    for key in [
        "found",
        "invalid",
        "insert",
        "insert_failed",
        "drop",
        "early_drop",
        "error",
        "search_restart",
        "clash_resolve",
        "chaintoolong",
    ] {
        assert!(node["conntrack"]["stats"].get(key).is_some(), "stats.{key}");
    }
    for key in ["drop", "insert_failed", "early_drop"] {
        assert!(node["onset_s"].get(key).is_some(), "onset_s.{key}");
    }
    for f in [
        "report.json",
        "timeseries.csv",
        "conntrack-count.svg",
        "conntrack-counters.svg",
        "latency.svg",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    let csv = std::fs::read_to_string(dir.join("timeseries.csv")).unwrap();
    assert_eq!(csv.lines().count(), 21, "20 samples of 100 ms plus a header");
}

#[test]
fn trace_prints_hops_and_rejects_unknown_pods() {
    let out = bin()
        .args([
            "trace",
            &root("scenarios/small.yaml"),
            "--from",
            "client-0",
            "--to",
            "echo:80",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("node node-a (host namespace)"));
    let out = bin()
        .args([
            "trace",
            &root("scenarios/small.yaml"),
            "--from",
            "ghost",
            "--to",
            "echo:80",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn compare_runs_file_and_command_line_variants_the_same_with_any_thread_count() {
    let dir = std::env::temp_dir().join(format!("netsim-compare-{}", std::process::id()));
    let run = |threads: &str, out: Option<&std::path::Path>| {
        let mut c = bin();
        c.args([
            "compare",
            &root("scenarios/small.yaml"),
            "--set",
            "duration=2s",
            "--variant",
            "max1k:nodes.0.sysctl.net.netfilter.nf_conntrack_max=1000",
            "--threads",
            threads,
            "--json",
        ]);
        if let Some(o) = out {
            c.arg("--out").arg(o);
        }
        c.output().unwrap()
    };
    let one = run("1", None);
    let two = run("2", Some(&dir));
    assert!(one.status.success(), "{}", String::from_utf8_lossy(&one.stderr));
    assert_eq!(one.stdout, two.stdout, "output depends on the thread count");
    let v: serde_json::Value = serde_json::from_slice(&one.stdout).unwrap();
    let names: Vec<&str> = v["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["baseline", "pool", "max1k"]);
    // A smaller table fills: the variant's drop shows, the baseline's does not.
    assert_eq!(v["variants"][0]["report"]["verdict"]["kind"], "none");
    assert_eq!(v["variants"][2]["report"]["verdict"]["kind"], "drop");
    for f in [
        "compare.json",
        "compare.txt",
        "compare-node-a-conntrack-count.svg",
        "compare-latency-p99.svg",
    ] {
        assert!(dir.join(f).exists(), "{f} not written");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compare_rejects_bad_variants_with_exit_2() {
    for (args, needle) in [
        (vec!["--variant", "nocolon"], "NAME:PATH=VALUE"),
        (vec!["--variant", "x:workloads.0.rate=fast"], "variant `x`"),
        (vec!["--only", "nosuch"], "no variant of that name"),
        (vec!["--no-file-variants"], "nothing to compare"),
    ] {
        let out = bin()
            .args(["compare", &root("scenarios/small.yaml")])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn rules_format_nft_prints_kube_proxys_nftables_table_and_refuses_a_mismatch() {
    let out = bin()
        .args(["rules", "--format", "nft", "--services", "3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("table ip kube-proxy"), "{text}");
    assert!(text.contains("vmap"), "{text}");
    let out = bin()
        .args([
            "rules",
            &root("scenarios/small.yaml"),
            "--node",
            "node-a",
            "--format",
            "nft",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kubeProxy.mode"));
    let out = bin()
        .args([
            "rules",
            &root("scenarios/small.yaml"),
            "--node",
            "node-a",
            "--format",
            "nft",
            "--set",
            "kubeProxy.mode=nftables",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("table ip kube-proxy"));
    let out = bin()
        .args(["rules", "--mode", "iptables", "--format", "nft"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
