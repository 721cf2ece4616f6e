//! A real node's evidence: the bundle recorded by `scripts/record-evidence-fixture.sh`
//! (a node-like namespace on a 6.18 kernel through a conntrack storm, collected by
//! `scripts/collect-node-evidence.sh` itself) imports into a scenario that validates
//! and, given the storm as its workload, reproduces the recorded counters within the
//! tolerances of docs/validation.md; bad evidence gives clear errors or listed notes.

use k8s_netsim::evidence::bundle::Bundle;
use k8s_netsim::evidence::import::{ImportOptions, import};
use k8s_netsim::scenario::{Override, Scenario};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/evidence/storm-r100")
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_k8s-netsim"))
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("k8s-netsim-evidence-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A copy of the fixture bundle in `dir`, with `changes` (file → new text; `None`
/// removes it).
fn bundle_with(dir: &Path, changes: &[(&str, Option<&str>)]) -> PathBuf {
    let b = dir.join("bundle");
    std::fs::create_dir_all(&b).unwrap();
    for e in std::fs::read_dir(fixture()).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, b.join(p.file_name().unwrap())).unwrap();
    }
    for (name, text) in changes {
        match text {
            Some(t) => std::fs::write(b.join(name), t).unwrap(),
            None => std::fs::remove_file(b.join(name)).unwrap(),
        }
    }
    b
}

/// `recording.txt`'s `key=value` lines.
fn recording() -> BTreeMap<String, String> {
    std::fs::read_to_string(fixture().join("recording.txt"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The storm of `recording.txt` as a workload on `node`.
fn storm_workload(node: &str) -> String {
    let r = recording();
    format!(
        "workloads:\n  - name: storm\n    node: {node}\n    pods: 1\n    target: {}\n    rate: 1/s\n    rateProfile:\n      - {{at: 0s, rate: {}/s}}\n      - {{at: {}s, rate: 0/s}}\n    arrivals: {{process: paced}}\n    connection: {{mode: short, closer: {}}}\n    timeout: {}s\n",
        r["target"], r["rate_per_s"], r["load_s"], r["closer"], r["connect_timeout_s"]
    )
}

fn observed(report: &k8s_netsim::report::Report, counter: &str) -> u64 {
    let b = report
        .baseline
        .as_ref()
        .expect("the imported scenario has a baseline");
    b.rows
        .iter()
        .find(|r| r.counter == counter)
        .map_or_else(|| panic!("no {counter} row"), |r| r.observed)
}

#[test]
fn the_collected_bundle_imports_to_a_scenario_that_validates_with_every_field_sourced() {
    let dir = scratch("cli");
    let out = dir.join("node.yaml");
    let o = bin()
        .arg("import")
        .arg(fixture())
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let yaml = std::fs::read_to_string(&out).unwrap();
    let sc = Scenario::load(&out, &[]).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    // The rule the model does not implement is listed with its line, in the scenario
    // and on stderr, and the cost is flagged as a lower bound.
    assert!(
        stderr.contains("iptables-save.txt:7: unknown match module `limit`"),
        "{stderr}"
    );
    assert!(yaml.contains("#   iptables-save.txt:7:"), "{yaml}");
    assert!(yaml.contains("LOWER BOUND"));
    assert!(
        yaml.contains("# left out by k8s-netsim import: -A INPUT"),
        "the rule stays visible, commented out"
    );
    // Derived fields carry their evidence line.
    for needle in [
        "kernel: \"6.18\"   # uname-r.txt:1:",
        "cpus: 2   # nproc.txt:1",
        "net.netfilter.nf_conntrack_max: 1000   # sysctl.txt:",
        "clusterCIDR: 10.10.0.0/16   # iptables-save.txt:",
        "mode: iptables   # iptables-save.txt: KUBE-SERVICES",
        "warmStart:   # conntrack-L.txt: 1000 entries",
    ] {
        assert!(yaml.contains(needle), "`{needle}` not in:\n{yaml}");
    }
    let node = &sc.nodes[0];
    assert_eq!(node.sysctls.values.nf_conntrack_max, 1000);
    assert_eq!(node.cpus, 2);
    let warm: u32 = node.conntrack_start.warm_start.iter().map(|g| g.count).sum();
    assert_eq!(warm, 1000);
    assert!(
        node.iptables_save
            .as_deref()
            .is_some_and(|t| t.contains("KUBE-SVC-KHFWJ2CCLDUXD4NQ"))
    );
    // The Service behind kube-proxy's chains, by name, with its endpoint.
    let echo = sc
        .services
        .iter()
        .find(|s| s.name == "echo")
        .expect("Service echo");
    assert_eq!(
        echo.cluster_ip.map(|ip| ip.to_string()).as_deref(),
        Some("10.96.0.10")
    );
    assert_eq!(
        echo.ports
            .iter()
            .map(|p| (p.port, p.target_port))
            .collect::<Vec<_>>(),
        [(80, 8080), (81, 9090)]
    );
    assert_eq!(echo.endpoints[0].ip.to_string(), "10.10.2.2");
    // The observed counters are the baseline (over the collector's window).
    let b = sc.baseline.as_ref().expect("baseline");
    assert_eq!(b.counters.drop, Some(2709));
    assert_eq!(b.window.map(|w| w.to_string()).as_deref(), Some("26s"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn import_then_run_reproduces_the_recorded_storm_within_the_validation_tolerances() {
    let bundle = Bundle::read(&fixture(), 1_000_000).unwrap();
    let imported = import(&bundle, &ImportOptions::default()).unwrap();
    let text = imported.yaml.replace("duration: 60s", "duration: 27s").replace(
        "workloads: []   # the node's traffic: add it here\n",
        &storm_workload(&imported.node),
    );
    // The storm started from an empty table: no warm start (the listing was taken
    // after it).
    let no_warm = [Override::parse("nodes.0.conntrack.warmStart=[]").unwrap()];
    let base =
        Scenario::from_bytes("storm.yaml", text.as_bytes(), &no_warm).unwrap_or_else(|e| panic!("{e}"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("storm-summary.json")).unwrap())
            .unwrap();
    let real_ok = summary["result"]["outcomes"]["ok"].as_u64().unwrap();

    let seeds = 40u64;
    let mut drops = Vec::new();
    let mut oks = Vec::new();
    let mut first = None;
    for seed in 1..=seeds {
        let sc = base
            .with_overrides(&[Override::parse(&format!("seed={seed}")).unwrap()])
            .unwrap();
        let o = k8s_netsim::sim::run(&sc, &mut |_, _| {}).unwrap();
        let n = &o.report.nodes[0].conntrack;
        // Deterministic quantities: ±5 % (±2 under 40), docs/validation.md.
        let within = |real: u64, sim: u64| {
            let tol = if real < 40 { 2.0 } else { 0.05 * real as f64 };
            (sim as f64 - real as f64).abs() <= tol
        };
        for (name, sim) in [
            ("insert_failed", n.stats.insert_failed),
            ("early_drop", n.stats.early_drop),
            ("count", n.count_end),
        ] {
            let real = observed(&o.report, name);
            assert!(
                within(real, sim),
                "seed {seed}: {name} real {real}, simulated {sim}"
            );
        }
        drops.push(n.stats.drop);
        oks.push(o.report.requests.ok);
        first.get_or_insert(o);
    }
    // Random in the kernel (which ports reopen TIME_WAIT entries): the recording is
    // one draw, so it must lie in the model's p2.5–p97.5 (docs/validation.md).
    let band = |v: &mut Vec<u64>| {
        v.sort_unstable();
        let lo = v[(v.len() as f64 * 0.025).floor() as usize];
        let hi = v[((v.len() as f64 * 0.975).ceil() as usize).min(v.len() - 1)];
        (lo, hi)
    };
    let report = &first.unwrap().report;
    let real_drop = observed(report, "drop");
    let (lo, hi) = band(&mut drops);
    assert!(
        (lo..=hi).contains(&real_drop),
        "drop: real {real_drop}, model p2.5–p97.5 [{lo}, {hi}]"
    );
    let (lo, hi) = band(&mut oks);
    assert!(
        (lo..=hi).contains(&real_ok),
        "ok: real {real_ok}, model p2.5–p97.5 [{lo}, {hi}]"
    );
}

#[test]
fn the_warm_start_puts_the_nodes_occupancy_in_the_table_at_time_zero() {
    let bundle = Bundle::read(&fixture(), 1_000_000).unwrap();
    let imported = import(&bundle, &ImportOptions::default()).unwrap();
    let text = imported.yaml.replace("duration: 60s", "duration: 5s").replace(
        "workloads: []   # the node's traffic: add it here\n",
        &storm_workload(&imported.node),
    );
    let sc = Scenario::from_bytes("warm.yaml", text.as_bytes(), &[]).unwrap();
    let o = k8s_netsim::sim::run(&sc, &mut |_, _| {}).unwrap();
    // 1,000 TIME_WAIT entries with 94-114 s to go fill the 1,000-entry table: every
    // SYN of the first 5 s is dropped (the gc trim needs the worker's next pass).
    assert_eq!(o.timeseries.samples[0].count[0], 1000);
    assert_eq!(o.report.requests.ok, 0);
    assert!(o.report.nodes[0].conntrack.stats.drop > 400);
}

#[test]
fn a_tarball_imports_like_the_directory() {
    let dir = scratch("tar");
    let tgz = dir.join("evidence.tar.gz");
    {
        let f = std::fs::File::create(&tgz).unwrap();
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        let mut t = tar::Builder::new(gz);
        t.append_dir_all("node-evidence-vm", fixture()).unwrap();
        t.into_inner().unwrap().finish().unwrap();
    }
    let from_dir = import(
        &Bundle::read(&fixture(), 1_000_000).unwrap(),
        &ImportOptions::default(),
    )
    .unwrap();
    let from_tar = import(&Bundle::read(&tgz, 1_000_000).unwrap(), &ImportOptions::default()).unwrap();
    let body = |y: &str| {
        y.lines()
            .filter(|l| !l.contains("evidence"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(body(&from_dir.yaml), body(&from_tar.yaml));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `import` on a bundle changed by `changes`: (exit code, stderr, scenario text).
fn import_changed(name: &str, changes: &[(&str, Option<&str>)], extra: &[&str]) -> (i32, String, String) {
    let dir = scratch(name);
    let b = bundle_with(&dir, changes);
    let out = dir.join("node.yaml");
    let o = bin()
        .arg("import")
        .arg(&b)
        .arg("--out")
        .arg(&out)
        .args(extra)
        .output()
        .unwrap();
    let yaml = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        yaml,
    )
}

#[test]
fn garbled_and_truncated_counters_name_the_file_and_line() {
    let (code, err, _) = import_changed(
        "ct-s",
        &[(
            "conntrack-S.txt",
            Some("cpu=0 found=0 invalid=0 insert=0 insert_failed=0 drop=7\ncpu=1 found=0 inval"),
        )],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("conntrack-S.txt:2: `inval` is not `name=value`"),
        "{err}"
    );
    let truncated = "entries  clashres found\n000003e8  00000000\n";
    let (code, err, _) = import_changed("proc", &[("nf_conntrack-stat.txt", Some(truncated))], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("nf_conntrack-stat.txt:2: 2 fields where the header names 3 columns"),
        "{err}"
    );
    let (code, err, _) = import_changed(
        "ct-l",
        &[("conntrack-L.txt", Some("\u{1}\u{2}garbage\nmore garbage\n"))],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("conntrack-L.txt:1: none of its 2 non-empty lines is a conntrack entry"),
        "{err}"
    );
}

#[test]
fn an_unknown_kernel_is_an_error_and_a_backport_prone_one_a_warning() {
    let (code, err, _) = import_changed("uname", &[("uname-r.txt", Some("Linux\n"))], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("uname-r.txt:1: `Linux` is not a kernel release"),
        "{err}"
    );
    let (code, err, yaml) = import_changed(
        "el8",
        &[("uname-r.txt", Some("4.18.0-477.27.1.el8_8.x86_64\n"))],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("backports conntrack fixes"), "{err}");
    assert!(
        yaml.contains("# WARNING: `4.18.0-477.27.1.el8_8.x86_64` is a distribution kernel"),
        "{yaml}"
    );
    assert!(yaml.contains("kernel: \"4.19\""), "{yaml}");
}

#[test]
fn a_truncated_ruleset_and_missing_tools_are_listed_not_silent() {
    let full = std::fs::read_to_string(fixture().join("iptables-save.txt")).unwrap();
    let cut = &full[..full.rfind("COMMIT").unwrap()];
    let (code, err, yaml) = import_changed(
        "cut",
        &[
            ("iptables-save.txt", Some(cut)),
            ("nproc.txt", None),
            ("sysctl.txt", None),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("missing COMMIT for table `nat`"), "{err}");
    assert!(
        err.contains("warning: nproc.txt is missing: 2 CPUs assumed"),
        "{err}"
    );
    assert!(yaml.contains("# WARNING: sysctl.txt is missing"), "{yaml}");
    Scenario::from_bytes("cut.yaml", yaml.as_bytes(), &[]).unwrap();
    let (code, err, _) = import_changed(
        "garbage-rules",
        &[("iptables-save.txt", Some("-A INPUT -j DROP\n"))],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("iptables-save.txt:1:"), "{err}");
    assert!(err.contains("outside a table"), "{err}");
}

#[test]
fn a_100_mb_listing_is_streamed_in_bounded_memory_and_its_cap_reported() {
    let dir = scratch("big");
    let b = bundle_with(&dir, &[]);
    {
        let f = std::fs::File::create(b.join("conntrack-L.txt")).unwrap();
        let mut w = std::io::BufWriter::new(f);
        let mut written = 0usize;
        let mut i = 0u64;
        while written < 100 << 20 {
            let line = format!(
                "tcp      6 {} TIME_WAIT src=10.10.{}.{} dst=10.96.0.10 sport={} dport=80 src=10.10.2.2 dst=10.10.{}.{} sport=8080 dport={} [ASSURED] mark=0 secctx=system_u:object_r:unlabeled_t:s0 zone=0 use=1\n",
                1 + i % 120,
                (i >> 8) % 256,
                i % 256,
                1024 + i % 60_000,
                (i >> 8) % 256,
                i % 256,
                1024 + i % 60_000
            );
            w.write_all(line.as_bytes()).unwrap();
            written += line.len();
            i += 1;
        }
    }
    let out = dir.join("node.yaml");
    // Under a 60 MB address-space limit a 100 MB file cannot be read whole.
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v 60000 && exec '{}' import '{}' --out '{}' --conntrack-cap 100000",
            env!("CARGO_BIN_EXE_k8s-netsim"),
            b.display(),
            out.display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("entries past the cap of 100000 were counted but not summarised"),
        "{err}"
    );
    let yaml = std::fs::read_to_string(&out).unwrap();
    assert!(
        yaml.contains("warmStart:   # conntrack-L.txt: 100000 entries"),
        "{yaml}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unreadable_files_are_listed_with_why() {
    let dir = scratch("utf8");
    let b = bundle_with(&dir, &[]);
    std::fs::write(b.join("dmesg-conntrack.txt"), [0xffu8, 0xfe, b'\n']).unwrap();
    let bundle = Bundle::read(&b, 1000).unwrap();
    assert!(
        bundle
            .skipped
            .iter()
            .any(|s| s.file == "dmesg-conntrack.txt" && s.why.contains("not UTF-8")),
        "{:?}",
        bundle.skipped
    );
    let e = Bundle::read(&dir.join("nope"), 1000).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `tool`'s path on this machine's PATH.
fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

#[test]
fn the_collection_script_says_what_it_skipped_and_its_bundle_still_imports() {
    // A node without conntrack-tools, iptables, nft, ipvsadm, sysctl or dmesg: only
    // the shell tools the script itself needs are on PATH.
    let dir = scratch("collect");
    let tools = dir.join("bin");
    std::fs::create_dir_all(&tools).unwrap();
    for t in [
        "bash", "cat", "date", "mkdir", "grep", "head", "wc", "rm", "mktemp", "sed", "tar", "gzip",
        "timeout", "sleep", "dirname", "basename", "touch", "cp", "tail", "uname", "nproc", "hostname",
    ] {
        if let Some(p) = which(t) {
            std::os::unix::fs::symlink(p, tools.join(t)).unwrap();
        }
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/collect-node-evidence.sh");
    let out = dir.join("node-evidence");
    let o = Command::new(which("bash").unwrap())
        .arg(&script)
        .arg("--out")
        .arg(&out)
        .arg("--tar")
        .env_clear()
        .env("PATH", &tools)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("wrote"), "{stdout}");
    let tgz = dir.join("node-evidence.tar.gz");
    let bundle = Bundle::read(&tgz, 1000).unwrap();
    for missing in [
        "conntrack -S: 'conntrack' is not installed",
        "iptables-save: 'iptables-save' is not installed",
        "sysctl: 'sysctl' is not installed",
        "dmesg: 'dmesg' is not installed",
    ] {
        assert!(
            bundle.file("skipped.txt").unwrap().contains(missing),
            "`{missing}` not in skipped.txt"
        );
    }
    for present in ["uname-r.txt", "nproc.txt", "meta.txt", "hostname.txt"] {
        assert!(bundle.file(present).is_some(), "{present} missing");
    }
    // The bundle of that node imports to a scenario that validates, saying what it lacks.
    let o = bin().arg("import").arg(&tgz).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("skipped: skipped.txt:"), "{stderr}");
    assert!(stderr.contains("sysctl.txt is missing"), "{stderr}");
    let yaml = String::from_utf8(o.stdout).unwrap();
    Scenario::from_bytes("collected.yaml", yaml.as_bytes(), &[]).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The fenced blocks of `lang` in `text`, in order.
fn fenced<'a>(text: &'a str, lang: &str) -> Vec<&'a str> {
    let open = format!("```{lang}\n");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&open) {
        let body = &rest[start + open.len()..];
        let end = body.find("```").unwrap();
        out.push(&body[..end]);
        rest = &body[end + 3..];
    }
    out
}

/// Every line of `expected` (whitespace collapsed) is a line of `got`.
fn assert_lines_in(expected: &str, got: &str) {
    let norm = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    let lines: Vec<String> = got.lines().map(norm).collect();
    for e in expected.lines().map(norm).filter(|l| !l.is_empty()) {
        assert!(lines.contains(&e), "`{e}` is not in the output:\n{got}");
    }
}

#[test]
fn the_your_own_node_walkthrough_prints_what_the_docs_show() {
    let doc =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/capacity-planning.md"))
            .unwrap();
    let start = doc.find("## Your own node").expect("the walkthrough");
    let section = &doc[start..start + doc[start..].find("\n## Sweeps").unwrap()];
    let workloads = fenced(section, "yaml")[0];
    let outputs = fenced(section, "text");
    assert_eq!(outputs.len(), 2);

    let dir = scratch("walk");
    let scenario = dir.join("my-node.yaml");
    let o = bin()
        .arg("import")
        .arg(fixture())
        .arg("--out")
        .arg(&scenario)
        .output()
        .unwrap();
    assert!(o.status.success());
    let yaml = std::fs::read_to_string(&scenario)
        .unwrap()
        .replace("workloads: []   # the node's traffic: add it here\n", workloads)
        .replace("duration: 60s", "duration: 26s");
    std::fs::write(&scenario, yaml).unwrap();
    let cold = "nodes.0.conntrack.warmStart=[]";
    let run = bin()
        .arg("run")
        .arg(&scenario)
        .args(["--set", cold])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_lines_in(outputs[0], &String::from_utf8_lossy(&run.stdout));
    let compare = bin()
        .arg("compare")
        .arg(&scenario)
        .args(["--set", cold])
        .args([
            "--variant",
            "bigger-table:nodes.0.sysctl.net.netfilter.nf_conntrack_max=4096",
        ])
        .args([
            "--variant",
            "time-wait-30s:nodes.0.sysctl.net.netfilter.nf_conntrack_tcp_timeout_time_wait=30",
        ])
        .args([
            "--variant",
            "keepalive:workloads.0.connection.mode=pool,workloads.0.connection.poolSize=4",
        ])
        .output()
        .unwrap();
    assert!(
        compare.status.success(),
        "{}",
        String::from_utf8_lossy(&compare.stderr)
    );
    assert_lines_in(outputs[1], &String::from_utf8_lossy(&compare.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn import_options_out_of_range_are_refused_not_clamped() {
    for (flag, value) in [
        ("--warm-slices", "0"),
        ("--warm-slices", "65"),
        ("--duration", "0"),
        ("--conntrack-cap", "0"),
    ] {
        let o = bin()
            .arg("import")
            .arg(fixture())
            .args([flag, value])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(flag) && err.contains(value), "{flag} {value}: {err}");
    }
}
