//! Hostile input and long runs from the command line (docs/reliability.md): hostile
//! values refused before the run with the field and the estimate, hostile files
//! refused quickly, outputs that survive a kill, sweeps that resume byte-identically.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_k8s-netsim"))
}

fn root(p: &str) -> String {
    format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))
}

/// Wall-clock time, to bound how long a refusal takes or a test waits (never a model input).
#[allow(
    clippy::disallowed_methods,
    reason = "the tests time the binary, not the model"
)]
fn wall_clock() -> Instant {
    Instant::now()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("k8s-netsim-rel-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the binary with `args` under an address-space limit of `mib` MiB (`ulimit -v`):
/// a process that tried to allocate more would fail its allocation and abort, not exit 2.
fn run_limited(mib: u64, args: &[&str]) -> (Output, Duration) {
    let mut script = format!("ulimit -v {} && exec \"$0\"", mib * 1024);
    for i in 1..=args.len() {
        script.push_str(&format!(" \"${i}\""));
    }
    let started = wall_clock();
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_k8s-netsim"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out, started.elapsed())
}

/// The three values of issue 15: each exits 2 within a second and under 100 MB of
/// address space, naming its field and the estimate that refused it.
#[test]
fn hostile_values_are_refused_at_once_naming_the_field_and_the_estimate() {
    let small = root("scenarios/small.yaml");
    let cases: [(&str, &[&str]); 3] = [
        (
            "sampleInterval=1ns",
            &["sampleInterval", "20000000000 time-series rows", "--max-rows"],
        ),
        (
            "workloads.0.pods=100000000",
            &["workloads[0].pods", "100000000 pods", "1000000 pod addresses"],
        ),
        ("duration=1000000000s", &["duration", "events", "--max-events"]),
    ];
    for (set, want) in cases {
        let (out, took) = run_limited(100, &["run", &small, "--set", set]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--set {set}: {err}");
        assert!(took < Duration::from_secs(1), "--set {set} took {took:?}");
        for w in want {
            assert!(err.contains(w), "--set {set}: `{w}` missing from: {err}");
        }
        assert!(err.contains("small.yaml"), "{err}");
    }
}

/// `--max-memory` refuses a run whose estimate is above it, naming the largest part's
/// fields; raising it lets the same run start.
#[test]
fn max_memory_refuses_a_run_over_it_and_a_higher_limit_allows_it() {
    let small = root("scenarios/small.yaml");
    let out = bin()
        .args(["run", &small, "--set", "duration=1s", "--max-memory", "1Mi"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("of memory") && err.contains("(--max-memory)"),
        "{err}"
    );
    let out = bin()
        .args(["run", &small, "--set", "duration=1s", "--max-memory", "1Gi"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = bin()
        .args(["run", &small, "--max-memory", "lots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Files that are not scenarios: each exits 2 within two seconds under 100 MB, with a
/// message saying what is wrong.
#[test]
fn hostile_files_exit_2_quickly_with_a_message() {
    let d = tmp("files");
    let dir = d.join("a-directory.yaml");
    std::fs::create_dir_all(&dir).unwrap();
    let huge = d.join("huge.yaml");
    // 100 MB (sparse): refused by its size before a byte is read.
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(100_000_000)
        .unwrap();
    let nul = d.join("nul.yaml");
    std::fs::write(&nul, b"version: 1\nname: x\0y\nduration: 1s\n").unwrap();
    let latin1 = d.join("latin1.yaml");
    std::fs::write(&latin1, b"version: 1\nname: caf\xe9\nduration: 1s\n").unwrap();
    let fifo = d.join("fifo.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let nested = d.join("nested.yaml");
    std::fs::write(
        &nested,
        format!("a: {}{}\n", "[".repeat(10_000), "]".repeat(10_000)),
    )
    .unwrap();
    let bomb = d.join("bomb.yaml");
    let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (k, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
        .iter()
        .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
    {
        text.push_str(&format!("{k}: &{k} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
    }
    std::fs::write(&bomb, text).unwrap();
    let long_list = d.join("long.json");
    std::fs::write(&long_list, format!("{{\"a\": [{}1]}}", "1,".repeat(400_000))).unwrap();
    let cases: [(&Path, &str); 8] = [
        (&dir, "a directory, not a regular file"),
        (&fifo, "a FIFO (named pipe), not a regular file"),
        (&huge, "100000000 bytes"),
        (&nul, "unprintable character"),
        (&latin1, "not UTF-8"),
        (&nested, "nest"),
        (&bomb, "alias"),
        (&long_list, "values a scenario may hold"),
    ];
    for (path, want) in cases {
        let p = path.to_str().unwrap();
        let (out, took) = run_limited(100, &["run", p]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{p}: {err}");
        assert!(took < Duration::from_secs(2), "{p} took {took:?}");
        let file = path.file_name().unwrap().to_str().unwrap();
        assert!(err.contains(file), "{p}: the message names the file: {err}");
        if path != nul.as_path() {
            assert!(
                err.to_lowercase().contains(&want.to_lowercase()),
                "{p}: `{want}` missing: {err}"
            );
        }
    }
    std::fs::remove_dir_all(&d).unwrap();
}

/// A run killed while its outputs are being written leaves the previous run's complete
/// files, never a truncated one; the next run replaces them.
#[test]
fn a_run_killed_while_writing_leaves_the_previous_complete_outputs() {
    let d = tmp("killed-run");
    let small = root("scenarios/small.yaml");
    let out = d.join("out");
    let first = bin()
        .args([
            "run",
            &small,
            "--set",
            "duration=2s",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let report = std::fs::read(out.join("report.json")).unwrap();
    let csv = std::fs::read(out.join("timeseries.csv")).unwrap();
    // A long run into the same directory, killed while it streams its time series.
    let mut child = bin()
        .args([
            "run",
            &small,
            "--set",
            "duration=600s",
            "--set",
            "sampleInterval=10ms",
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = wall_clock();
    let partial = loop {
        let found = std::fs::read_dir(&out)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name().unwrap().to_string_lossy().ends_with(".partial")
                    && std::fs::metadata(p).is_ok_and(|m| m.len() > 10_000)
            });
        if let Some(p) = found {
            break p;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the long run wrote nothing"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        partial
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".timeseries.csv."),
        "{partial:?}"
    );
    assert_eq!(std::fs::read(out.join("report.json")).unwrap(), report);
    assert_eq!(std::fs::read(out.join("timeseries.csv")).unwrap(), csv);
    std::fs::remove_dir_all(&d).unwrap();
}

/// The files directly in `dir` and in `dir/points`, sorted by name.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for sub in ["", "points"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                let name = format!("{sub}/{}", p.file_name().unwrap().to_string_lossy());
                v.push((name, std::fs::read(&p).unwrap()));
            }
        }
    }
    v.sort();
    v
}

fn sweep_args<'a>(small: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "sweep",
        small,
        "--set",
        "duration=3s",
        "--param",
        "workloads.0.rate=500/s..3k/s:12",
        "--threads",
        "1",
        "--out",
        out,
    ]
}

/// A sweep killed after some points and resumed writes the same bytes as one that ran
/// uninterrupted; resuming with another grid is refused.
#[test]
fn a_killed_sweep_resumes_to_the_same_bytes() {
    let d = tmp("resume");
    let small = root("scenarios/small.yaml");
    let (whole, cut) = (d.join("whole"), d.join("cut"));
    let (whole_s, cut_s) = (whole.to_str().unwrap(), cut.to_str().unwrap());
    let o = bin().args(sweep_args(&small, whole_s)).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let mut child = bin()
        .args(sweep_args(&small, cut_s))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = wall_clock();
    let rows = |dir: &Path| {
        std::fs::read_dir(dir.join("points")).map_or(0, |r| {
            r.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("row-"))
            })
            .count()
        })
    };
    while rows(&cut) < 3 {
        assert!(started.elapsed() < Duration::from_secs(120), "no rows saved");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let saved = rows(&cut);
    assert!(!cut.join("sweep.json").exists(), "killed before the end");

    // Another grid in the same directory is refused, and leaves the rows alone.
    let mut other = sweep_args(&small, cut_s);
    other[3] = "duration=2s";
    let o = bin().args(&other).arg("--resume").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("of a different sweep"));
    assert_eq!(rows(&cut), saved);

    let o = bin()
        .args(sweep_args(&small, cut_s))
        .arg("--resume")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!("resuming: {saved} of 12 runs already done")),
        "{err}"
    );
    assert!(saved < 12, "the kill came before the last point");
    assert_eq!(tree(&cut), tree(&whole));
    std::fs::remove_dir_all(&d).unwrap();
}
