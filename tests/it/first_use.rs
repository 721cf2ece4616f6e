//! What a first-time user hit (issue 17): `trace`'s protocol, seed, rule breakdown and
//! host-network flows; exit codes; error messages; the scenario format's shortcuts; one
//! meaning of `--only`; `recommend --out`; progress lines.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_k8s-netsim"))
}

fn root(p: &str) -> String {
    format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("k8s-netsim-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn trace(extra: &[&str]) -> Output {
    let small = root("scenarios/small.yaml");
    let mut args = vec!["trace", small.as_str()];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn trace_follows_the_ports_protocol_and_refuses_a_mismatch() {
    // kube-dns:53 is UDP only: the default is the port's protocol, and the datagram is
    // DNATed to CoreDNS instead of "leaving the cluster".
    let o = trace(&["--from", "client-0", "--to", "kube-dns:53"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.starts_with("UDP udp 10.244.0.2:40000 -> 10.96.0.10:53"),
        "{text}"
    );
    assert!(text.contains("delivered to pod kube-dns-0"), "{text}");
    assert!(!text.contains("leaves the cluster"), "{text}");
    let o = trace(&["--from", "client-0", "--to", "kube-dns:53", "--proto", "udp"]);
    assert_eq!(stdout(&o), text);
    let o = trace(&["--from", "client-0", "--to", "kube-dns:53", "--proto", "tcp"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("Service `kube-dns` port 53 is UDP, not TCP; use --proto udp"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn trace_speaks_the_tools_language_in_every_mode_with_a_rule_breakdown() {
    for (mode, breakdown, translated) in [
        ("iptables", "KUBE-SERVICES", "DNAT 10.96.0.2:80 -> 10.244.1."),
        (
            "ipvs",
            "IPVS mode's iptables rules",
            "DNAT 10.96.0.2:80 -> 10.244.1.",
        ),
        (
            "nftables",
            "nftables table ip kube-proxy",
            "DNAT 10.96.0.2:80 -> 10.244.1.",
        ),
        ("ebpf", "", "bpf: service 10.96.0.2:80 -> backend 10.244.1."),
    ] {
        let set = format!("kubeProxy.mode={mode}");
        let o = trace(&["--from", "client-0", "--to", "echo:80", "--set", &set]);
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        let text = stdout(&o);
        for debug in ["Some(", "None", "{ addr", "Dnat {", "Snat {"] {
            assert!(!text.contains(debug), "{mode}: Rust Debug `{debug}` in\n{text}");
        }
        assert!(text.contains(translated), "{mode}:\n{text}");
        if !breakdown.is_empty() {
            assert!(text.contains(breakdown), "{mode}:\n{text}");
            // Rule by rule: what was tested and what matched.
            assert!(text.contains(" tested, matched #"), "{mode}:\n{text}");
        }
    }
}

#[test]
fn trace_seed_picks_another_endpoint() {
    let backend = |seed: &str| {
        let o = trace(&["--from", "client-0", "--to", "echo:80", "--seed", seed]);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = stdout(&o);
        let line = text.lines().find(|l| l.contains("nat: DNAT")).unwrap().to_owned();
        line.rsplit(' ').next().unwrap().to_owned()
    };
    let seen: std::collections::BTreeSet<String> = ["1", "2", "3", "4", "5", "6"]
        .iter()
        .map(|s| backend(s))
        .collect();
    assert!(seen.len() > 1, "every seed picked {seen:?}");
    // The same seed, the same endpoint.
    assert_eq!(backend("3"), backend("3"));
}

#[test]
fn trace_suggests_client_pods_and_nodes_not_server_pods() {
    let o = trace(&["--from", "echo-0", "--to", "echo:80"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("client pods are client-0..client-3 on node node-a"),
        "{err}"
    );
    assert!(err.contains("a node's name (node-a, node-b)"), "{err}");
    assert!(!err.contains("echo-1"), "server pods suggested: {err}");
    let o = trace(&["--from", "Client-0", "--to", "echo:80"]);
    assert!(stderr(&o).contains("did you mean `client-0`?"), "{}", stderr(&o));
}

/// Issue 11: a host-network flow enters at OUTPUT, where the nftables data path runs
/// kube-proxy's `filter-output-pre-dnat`, `nat-output` and `filter-output` base chains; a
/// pod's flow runs the prerouting ones. `trace` shows which base chains ran.
#[test]
fn trace_from_a_node_runs_the_nftables_output_base_chains() {
    let set = ["--set", "kubeProxy.mode=nftables"];
    let o = trace(&["--from", "node-a", "--to", "echo:80", set[0], set[1]]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.starts_with("SYN tcp 192.168.0.10:40000 -> 10.96.0.2:80"),
        "{text}"
    );
    let first_node = text.split("  node node-b").next().unwrap();
    assert!(
        first_node
            .contains("OUTPUT      nftables: base chains run: filter output, nat output, nat postrouting"),
        "{text}"
    );
    assert!(first_node.contains("nat-output (type nat hook output)"), "{text}");
    assert!(
        first_node.contains("filter-output (type filter hook output)"),
        "{text}"
    );
    assert!(!first_node.contains("prerouting"), "{text}");
    assert!(
        text.contains("OUTPUT      nat: DNAT 10.96.0.2:80 -> 10.244.1."),
        "{text}"
    );

    let o = trace(&["--from", "client-0", "--to", "echo:80", set[0], set[1]]);
    let text = stdout(&o);
    let first_node = text.split("  node node-b").next().unwrap();
    assert!(
        first_node.contains("nftables: base chains run: filter prerouting, nat prerouting"),
        "{text}"
    );
    assert!(!first_node.contains("nat output"), "{text}");
}

#[test]
fn a_reader_that_stops_early_is_a_normal_end() {
    let mut child = bin()
        .args(["rules", "--mode", "iptables", "--services", "2000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "*filter\n");
    // The reader is gone (`| head -1`).
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Broken pipe"), "{}", stderr(&out));
}

#[test]
fn validate_write_creates_its_directory() {
    let dir = temp_dir("validate-write");
    let file = dir.join("deeper/validation.md");
    let o = run(&["validate", "--write", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&file).unwrap().contains("V01"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn override_errors_name_the_override_and_suggest_the_case() {
    let small = root("scenarios/small.yaml");
    let o = run(&["run", &small, "--set", "kubeproxy.mode=ipvs"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("--set kubeproxy.mode=ipvs: kubeproxy: unknown field"),
        "{err}"
    );
    assert!(err.contains("(did you mean `kubeProxy`?)"), "{err}");
    assert!(!err.contains("small.yaml:2:1"), "blames the file: {err}");
    let o = run(&["run", &small, "--set", "kubeProxy.mode=IPVS"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("(did you mean `ipvs`?)"), "{}", stderr(&o));
    // Said once, not "--set duration: --set duration:".
    let o = run(&["run", &small, "--set", "duration=x"]);
    let err = stderr(&o);
    assert_eq!(err.matches("--set duration").count(), 1, "{err}");
    assert!(err.contains("use ns, us, ms, s, m or h"), "{err}");
    // Indices as "0 or 1"; no "(0..2)".
    let o = run(&["run", &small, "--set", "nodes.5.cpus=2"]);
    assert!(stderr(&o).contains("(2 nodes: use 0 or 1)"), "{}", stderr(&o));
    let o = run(&["run", &small, "--set", "workloads.3.rate=1k/s"]);
    assert!(stderr(&o).contains("(1 workload: use 0)"), "{}", stderr(&o));
    let flash = root("scenarios/flash-sale.yaml");
    let o = run(&["run", &flash, "--set", "nodes.7.cpus=2"]);
    let err = stderr(&o);
    assert!(
        err.contains("use 0, 1 or 2") || err.contains("use 0 or 1"),
        "{err}"
    );
    assert!(!err.contains(".."), "{err}");
}

#[test]
fn a_bare_duration_is_seconds() {
    let o = run(&[
        "run",
        &root("scenarios/small.yaml"),
        "--set",
        "duration=2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["duration_s"], 2.0);
}

#[test]
fn messages_use_the_clis_own_spellings() {
    for args in [
        ["rules", "--mode", "iptables", "--format", "nft"],
        ["rules", "--mode", "nftables", "--format", "iptables-save"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2));
        let err = stderr(&o);
        for internal in ["IptablesSave", "Nftables", "Iptables", "Ipvs"] {
            assert!(!err.contains(internal), "{internal} in: {err}");
        }
        assert!(err.contains(&format!("--format {}", args[4])), "{err}");
    }
}

/// `1 workload`, `1 seed`, `1 run`: no plural for one.
#[test]
fn one_is_singular() {
    let small = root("scenarios/small.yaml");
    let o = run(&["run", &small, "--set", "workloads.4.rate=1k/s"]);
    assert!(stderr(&o).contains("1 workload:"), "{}", stderr(&o));
    let o = run(&[
        "compare",
        &small,
        "--set",
        "duration=1s",
        "--no-file-variants",
        "--variant",
        "x:workloads.0.rate=2k/s",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for text in [stdout(&o), stderr(&o)] {
        for bad in ["1 runs", "1 seeds", "1 workloads", "1 variants"] {
            assert!(!text.contains(bad), "`{bad}` in {text}");
        }
    }
    let o = run(&[
        "sweep",
        &small,
        "--set",
        "duration=1s",
        "--param",
        "workloads.0.rate=1k/s..2k/s:2",
        "--seeds",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let all = stdout(&o) + &stderr(&o);
    assert!(!all.contains("1 seeds") && !all.contains("1 runs"), "{all}");
}

/// A scenario written the short way: no `rate` (the profile starts at 0 s), no kube-dns
/// (an implicit one, which the report states), client pods spread over both nodes, and a
/// sysctl set on every node by `*` and on one by name.
#[test]
fn the_short_scenario_format_runs_and_says_what_it_assumed() {
    let dir = temp_dir("short-format");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("short.yaml");
    std::fs::write(
        &path,
        "version: 1
name: short
duration: 2s
kernel: \"6.18\"
nodes:
  - {name: node-a, cpus: 2, memory: 4Gi}
  - {name: node-b, cpus: 2, memory: 4Gi}
services:
  - {name: echo, ports: [{port: 80, targetPort: 8080}], endpoints: [{node: node-b, count: 2}]}
workloads:
  - name: client
    node: [node-a, node-b]
    pods: 4
    target: echo:80
    rateProfile: [{at: 0s, rate: 500/s}, {at: 1s, rate: 1k/s}]
    dns: {mode: cached}
",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let o = run(&[
        "run",
        p,
        "--set",
        "nodes.*.sysctl.net.netfilter.nf_conntrack_max=5000",
        "--set",
        "nodes.node-b.sysctl.net.netfilter.nf_conntrack_max=7000",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["nodes"][0]["conntrack"]["max"], 5000);
    assert_eq!(v["nodes"][1]["conntrack"]["max"], 7000);
    let notes = v["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n
            .as_str()
            .unwrap()
            .contains("an implicit one was added (kube-system/kube-dns")),
        "{notes:?}"
    );
    assert!(v["requests"]["ok"].as_u64().unwrap() > 500, "{}", v["requests"]);
    assert!(v["dns"]["queries"].as_u64().unwrap() > 0, "{}", v["dns"]);
    // The text report says it too.
    let o = run(&["run", p]);
    assert!(stdout(&o).contains("note: the scenario declares no kube-dns Service"));
    // Pods spread: client-1 runs on node-b.
    let o = run(&["trace", p, "--from", "client-1", "--to", "echo:80"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let first_host = text.lines().find(|l| l.contains("(host namespace)")).unwrap();
    assert!(first_host.contains("node node-b"), "{text}");
    let o = run(&["trace", p, "--from", "client-0", "--to", "echo:80"]);
    let text = stdout(&o);
    let first_host = text.lines().find(|l| l.contains("(host namespace)")).unwrap();
    assert!(first_host.contains("node node-a"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--only` means "only these" in both commands: `plan --only pool` searches the
/// baseline and `pool`, as `compare --only pool` runs them.
#[test]
fn only_means_only_these_in_compare_and_plan() {
    let small = root("scenarios/small.yaml");
    let o = run(&[
        "compare",
        &small,
        "--set",
        "duration=1s",
        "--only",
        "pool",
        "--variant",
        "extra:workloads.0.rate=2k/s",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["baseline", "pool", "extra"]);
    let o = run(&[
        "plan",
        &small,
        "--set",
        "duration=1s",
        "--find",
        "workloads.0.rate",
        "--until",
        "drop>0",
        "--range",
        "1k/s..4k/s",
        "--resolution",
        "40",
        "--seeds",
        "1",
        "--only",
        "pool",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let text = v.to_string();
    assert!(
        text.contains("\"baseline\"") && text.contains("\"pool\""),
        "{text}"
    );
    // Progress on stderr while it works.
    let err = stderr(&o);
    assert!(err.contains("plan: ") && err.contains("round 1:"), "{err}");
    let o = run(&["compare", &small, "--set", "duration=1s", "--only", "pool"]);
    let err = stderr(&o);
    assert!(
        err.contains("compare: 2 runs") && err.contains("2/2 variants simulated"),
        "{err}"
    );
}

#[test]
fn recommend_writes_its_answer_with_out() {
    let dir = temp_dir("recommend-out");
    let o = run(&[
        "recommend",
        &root("scenarios/small.yaml"),
        "--for",
        "proxy-mode",
        "--set",
        "duration=2s",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(files.iter().any(|f| f.ends_with(".json")), "{files:?}");
    assert!(files.iter().any(|f| f.ends_with(".txt")), "{files:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The docs bullets: the top-level help names every `rules` format, the README says how
/// to put the binary on the PATH, writes its examples outside the checkout and states the
/// time series' interval as the default it is.
#[test]
fn help_and_readme_say_what_the_tool_does() {
    let help = stdout(&run(&["--help"]));
    assert!(help.contains("iptables-save") && help.contains("nft"), "{help}");
    let readme = std::fs::read_to_string(root("README.md")).unwrap();
    assert!(readme.contains("cargo install --path ."));
    assert!(!readme.contains("a 100 ms\n  `timeseries.csv`"));
    assert!(readme.contains("1 s unless the scenario sets it"));
    for line in readme.lines().filter(|l| l.starts_with("k8s-netsim ")) {
        if let Some(out) = line.split("--out ").nth(1) {
            let dir = out.split_whitespace().next().unwrap().trim_end_matches(']');
            assert!(
                dir.starts_with("/tmp/") || dir == "DIR",
                "writes into the checkout: {line}"
            );
        }
    }
}
