//! The committed real-kernel recordings (`validation/traces/`, written by
//! `oracle/run.sh`) parse and satisfy the invariants every honest recording has, so a
//! broken or hand-edited trace fails CI. Format: docs/oracle.md.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// Header of every time-series CSV (`<param>.csv`).
const COLUMNS: [&str; 15] = [
    "t_s",
    "count",
    "found",
    "invalid",
    "insert",
    "insert_failed",
    "drop",
    "early_drop",
    "clash_resolve",
    "chaintoolong",
    "search_restart",
    "error",
    "started",
    "ok",
    "fail",
];

/// Columns that are kernel or client counters and so can never decrease within a run.
const MONOTONE: [&str; 13] = [
    "t_s",
    "found",
    "invalid",
    "insert",
    "insert_failed",
    "drop",
    "early_drop",
    "clash_resolve",
    "chaintoolong",
    "search_restart",
    "error",
    "started",
    "ok",
];

/// Headers of the auxiliary CSVs, by kind (`<param>.<kind>.csv`).
const AUX: [(&str, &str); 4] = [
    (
        "conns",
        "idx,step,dst,sched_s,start_s,connect_s,end_s,outcome,local_port",
    ),
    ("pairs", "pair,gap_ns,answer0,answer1"),
    ("syns", "syn,t_s,segments"),
    (
        "race",
        "pair,gap_target_ns,gap_ns,start0_ns,end0_ns,start1_ns,end1_ns,cpu0,cpu1,answer0,answer1,clash_resolve,insert_failed,drop,clash_cpus",
    ),
];

fn traces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("validation/traces")
}

/// Parses a time series and checks it; `max` is the lowered `nf_conntrack_max` of
/// the run, if it was lowered. Returns the rows.
fn check_series(text: &str, max: Option<u64>) -> Result<Vec<Vec<f64>>, String> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty file")?.split(',').collect();
    if header != COLUMNS {
        return Err(format!("header {header:?}"));
    }
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for (n, line) in lines.enumerate() {
        let row: Vec<f64> = line
            .split(',')
            .map(|c| c.parse::<f64>().map_err(|e| format!("row {n}: `{c}`: {e}")))
            .collect::<Result<_, _>>()?;
        if row.len() != COLUMNS.len() {
            return Err(format!("row {n} has {} cells", row.len()));
        }
        if let Some(prev) = rows.last() {
            for name in MONOTONE {
                let i = COLUMNS.iter().position(|c| *c == name).unwrap();
                if row[i] < prev[i] {
                    return Err(format!(
                        "row {n}: `{name}` decreased from {} to {}",
                        prev[i], row[i]
                    ));
                }
            }
        }
        // `insert` only counts ctnetlink insertions, never the packet path
        // (docs/kernel-semantics.md §Counters).
        if row[4] != 0.0 {
            return Err(format!("row {n}: insert = {} on a packet-driven run", row[4]));
        }
        // The count may exceed max by one for an instant: `__nf_conntrack_alloc` increments
        // before it checks and undoes (docs/kernel-semantics.md §Allocation and confirm).
        if let Some(m) = max
            && row[1] > (m + 1) as f64
        {
            return Err(format!("row {n}: count {} above the lowered max {m}", row[1]));
        }
        rows.push(row);
    }
    if rows.len() < 2 {
        return Err(format!("only {} rows", rows.len()));
    }
    Ok(rows)
}

#[test]
fn every_recorded_trace_parses_and_keeps_the_counter_invariants() {
    let dir = traces_dir();
    let mut experiments = 0;
    let mut series = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    entries.sort();
    for exp in entries {
        let name = exp.file_name().unwrap().to_string_lossy().into_owned();
        let meta: Value = serde_json::from_str(&std::fs::read_to_string(exp.join("meta.json")).unwrap())
            .unwrap_or_else(|e| panic!("{name}/meta.json: {e}"));
        assert_eq!(meta["experiment"], name.as_str(), "{name}: experiment name");
        let release = meta["kernel"]["release"].as_str().unwrap_or("");
        assert!(!release.is_empty(), "{name}: kernel release missing");
        assert!(meta["date_utc"].as_str().is_some(), "{name}: date missing");
        let original_max = meta["global"]["nf_conntrack_max_original"]
            .as_u64()
            .expect("original max");
        let runs = meta["runs"].as_object().unwrap_or_else(|| panic!("{name}: runs"));
        assert!(!runs.is_empty(), "{name}: no runs");
        for (param, run) in runs {
            assert!(run["params"].is_object(), "{name}/{param}: params");
            assert!(
                run["sysctl_rtr"]["net.netfilter.nf_conntrack_buckets"].is_string(),
                "{name}/{param}: sysctls"
            );
            let max = run["nf_conntrack_max"].as_u64().expect("max");
            let lowered = (max < original_max).then_some(max);
            let files: Vec<&str> = run["files"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert!(
                files.contains(&format!("{param}.csv").as_str()),
                "{name}/{param}: no time series listed"
            );
            for f in files {
                let text = std::fs::read_to_string(exp.join(f)).unwrap_or_else(|e| panic!("{name}/{f}: {e}"));
                let parts: Vec<&str> = f.split('.').collect();
                match parts.as_slice() {
                    [_, "csv"] => {
                        check_series(&text, lowered).unwrap_or_else(|e| panic!("{name}/{f}: {e}"));
                        series += 1;
                    }
                    [_, kind, "csv"] => {
                        let (_, header) = AUX
                            .iter()
                            .find(|(k, _)| k == kind)
                            .unwrap_or_else(|| panic!("{name}/{f}: kind"));
                        assert_eq!(text.lines().next(), Some(*header), "{name}/{f}: header");
                        let width = header.split(',').count();
                        for (n, l) in text.lines().enumerate().skip(1) {
                            assert_eq!(l.split(',').count(), width, "{name}/{f}: row {n}");
                        }
                    }
                    _ => panic!("{name}/{f}: unexpected file name"),
                }
            }
        }
        experiments += 1;
    }
    assert!(experiments >= 10, "only {experiments} experiments recorded");
    assert!(series >= 20, "only {series} time series recorded");
}

#[test]
fn a_full_table_of_assured_entries_drops_without_insert_failed_or_early_drop() {
    // docs/kernel-semantics.md §early_drop and §Counters: a table full of ASSURED entries
    // cannot be relieved by early drop, and table-full drops never count as insert_failed.
    let dir = traces_dir().join("a-full-assured");
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    for (param, run) in meta["runs"].as_object().unwrap() {
        let max = run["nf_conntrack_max"].as_u64().unwrap();
        let rows = check_series(
            &std::fs::read_to_string(dir.join(format!("{param}.csv"))).unwrap(),
            Some(max),
        )
        .unwrap();
        let last = rows.last().unwrap();
        assert!(last[6] > 0.0, "{param}: no drop recorded");
        assert_eq!(last[7], 0.0, "{param}: early_drop moved");
        assert_eq!(last[5], 0.0, "{param}: insert_failed moved");
        assert!(
            rows.iter().any(|r| r[1] == max as f64),
            "{param}: count never reached max"
        );
    }
}

#[test]
fn the_checker_rejects_a_decreasing_counter_and_an_overfull_table() {
    let head = COLUMNS.join(",");
    let ok = format!("{head}\n0,1,0,0,0,0,0,0,0,0,0,0,1,1,0\n0.2,2,0,0,0,0,1,0,0,0,0,0,2,1,1\n");
    assert!(check_series(&ok, Some(2)).is_ok());
    let dropping = format!("{head}\n0,1,0,0,0,0,5,0,0,0,0,0,1,1,0\n0.2,2,0,0,0,0,4,0,0,0,0,0,2,1,1\n");
    assert!(check_series(&dropping, None).unwrap_err().contains("drop"));
    let overfull = format!("{head}\n0,1,0,0,0,0,0,0,0,0,0,0,1,1,0\n0.2,9,0,0,0,0,0,0,0,0,0,0,2,1,1\n");
    assert!(check_series(&overfull, Some(2)).unwrap_err().contains("above"));
    let inserted = format!("{head}\n0,1,0,0,3,0,0,0,0,0,0,0,1,1,0\n0.2,2,0,0,3,0,0,0,0,0,0,0,2,1,1\n");
    assert!(check_series(&inserted, None).is_err());
}

#[test]
fn race_pairs_attribute_every_clash_to_one_pair_and_one_cpu_never_races() {
    // The per-pair counters of `race-pairs` (read around every pair) must add up to the
    // counters of the whole load step, and sends on one CPU never race (docs/oracle.md).
    for exp in ["k-race-gap", "l-syn-race"] {
        let dir = traces_dir().join(exp);
        let meta: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
        for (param, run) in meta["runs"].as_object().unwrap() {
            let text = std::fs::read_to_string(dir.join(format!("{param}.race.csv"))).unwrap();
            let rows: Vec<Vec<&str>> = text.lines().skip(1).map(|l| l.split(',').collect()).collect();
            assert_eq!(
                rows.len() as u64,
                run["params"]["pairs"].as_u64().unwrap(),
                "{exp}/{param}: pairs"
            );
            let sum = |col: usize| rows.iter().map(|r| r[col].parse::<u64>().unwrap()).sum::<u64>();
            let step = &run["summary"]["steps"][0];
            for (col, key) in [(11, "clash_resolve"), (12, "insert_failed"), (13, "drop")] {
                let whole =
                    step["ct_after"][key].as_u64().unwrap() - step["ct_before"][key].as_u64().unwrap();
                assert_eq!(sum(col), whole, "{exp}/{param}: {key} per pair vs the step");
            }
            for r in &rows {
                let raced = r[11] != "0" || r[12] != "0";
                if r[7] == r[8] {
                    assert!(!raced, "{exp}/{param}: pair {} raced on one CPU", r[0]);
                }
                if raced {
                    assert!(
                        !r[14].is_empty(),
                        "{exp}/{param}: pair {} raced on no CPU row",
                        r[0]
                    );
                }
            }
        }
    }
}
