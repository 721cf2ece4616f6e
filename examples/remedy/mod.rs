//! Shared by the `remedy_*` examples: run the flash-sale storm with and without one
//! remediation on the same seed and print what changed, every number from the model,
//! with each side's outcome as `k8s-netsim compare` judges it (inconclusive when the
//! run is too short to show it).

#![allow(clippy::print_stdout, dead_code)]

use std::num::NonZeroUsize;

use k8s_netsim::report::Report;
use k8s_netsim::scenario::{Override, Scenario, Variant};
use k8s_netsim::study::{self, Comparison, compare};

/// One remediation to show.
pub(crate) struct Remedy<'a> {
    /// What it is.
    pub(crate) title: &'a str,
    /// Scenario file, relative to the crate root.
    pub(crate) scenario: &'a str,
    /// Overrides of both runs (shorter duration, a base that shows the problem).
    pub(crate) base: &'a [&'a str],
    /// The remediation's overrides.
    pub(crate) fix: &'a [&'a str],
    /// Why it should help, in the kernel's terms (checked against the numbers printed).
    pub(crate) why: &'a str,
}

/// Runs baseline and remediation in parallel and prints the differences.
pub(crate) fn show(r: &Remedy<'_>) -> Result<Comparison, Box<dyn std::error::Error>> {
    let path = format!("{}/{}", env!("CARGO_MANIFEST_DIR"), r.scenario);
    let base: Vec<Override> = r
        .base
        .iter()
        .map(|s| Override::parse(s))
        .collect::<Result<_, _>>()?;
    let sc = Scenario::load(&path, &base)?;
    let fix = Variant {
        name: "remedied".into(),
        overrides: r
            .fix
            .iter()
            .map(|s| Override::parse(s))
            .collect::<Result<_, _>>()?,
    };
    let jobs = compare::jobs(&sc, std::slice::from_ref(&fix))?;
    let threads = NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN);
    let outs = study::run_jobs(&jobs, threads, &|_, _| {});
    let cmp = Comparison::new(&sc, std::slice::from_ref(&fix), &jobs, outs)?;
    println!("== {}", r.title);
    println!("   set: {}", r.fix.join(", "));
    println!("   why: {}\n", r.why);
    let (before, after) = (&cmp.variants[0].report, &cmp.variants[1].report);
    // Each side's outcome as `compare` judges it: a run too short to show whether the
    // table fills says so (inconclusive) instead of passing for a fix.
    for (label, v) in [("before:", &cmp.variants[0]), ("after: ", &cmp.variants[1])] {
        println!("   {label} {} [{}]", v.report.verdict.text, v.outcome.kind);
        if !v.run.long_enough {
            println!("           {}", v.run.reason);
        }
    }
    println!();
    for (label, a, b) in changes(before, after) {
        println!("   {label:<40} {a:>14} -> {b:<14}{}", ratio(a, b));
    }
    println!();
    Ok(cmp)
}

fn ratio(a: f64, b: f64) -> String {
    if a > 0.0 && b > 0.0 && (a / b >= 1.5 || b / a >= 1.5) {
        if a > b {
            format!(" ({:.1}x less)", a / b)
        } else {
            format!(" ({:.1}x more)", b / a)
        }
    } else {
        String::new()
    }
}

#[allow(clippy::cast_precision_loss)]
fn changes(a: &Report, b: &Report) -> Vec<(String, f64, f64)> {
    let mut rows = Vec::new();
    let mut push = |label: String, x: f64, y: f64| {
        if (x - y).abs() > f64::EPSILON {
            rows.push((label, x, y));
        }
    };
    for (na, nb) in a.nodes.iter().zip(&b.nodes) {
        let n = &na.name;
        push(
            format!("{n}: conntrack entries created"),
            na.conntrack.entries_created as f64,
            nb.conntrack.entries_created as f64,
        );
        push(
            format!("{n}: peak nf_conntrack_count"),
            na.conntrack.count_peak as f64,
            nb.conntrack.count_peak as f64,
        );
        push(
            format!("{n}: nf_conntrack_max"),
            na.conntrack.max as f64,
            nb.conntrack.max as f64,
        );
        push(
            format!("{n}: drop"),
            na.conntrack.stats.drop as f64,
            nb.conntrack.stats.drop as f64,
        );
        push(
            format!("{n}: insert_failed"),
            na.conntrack.stats.insert_failed as f64,
            nb.conntrack.stats.insert_failed as f64,
        );
        push(
            format!("{n}: early_drop"),
            na.conntrack.stats.early_drop as f64,
            nb.conntrack.stats.early_drop as f64,
        );
        push(
            format!("{n}: drop onset (s)"),
            na.onset_s.drop.unwrap_or(f64::NAN),
            nb.onset_s.drop.unwrap_or(f64::NAN),
        );
        push(
            format!("{n}: rules per new connection"),
            na.rules.mean_per_new_connection,
            nb.rules.mean_per_new_connection,
        );
        push(format!("{n}: CPU mean (%)"), na.cpu.mean_pct, nb.cpu.mean_pct);
    }
    push("latency p99 (ms)".into(), a.latency_ms.p99, b.latency_ms.p99);
    push(
        "requests failed".into(),
        a.requests.failed as f64,
        b.requests.failed as f64,
    );
    push(
        "timeouts".into(),
        a.requests.timeouts as f64,
        b.requests.timeouts as f64,
    );
    push(
        "new connections".into(),
        a.requests.new_connections as f64,
        b.requests.new_connections as f64,
    );
    push("DNS queries".into(), a.dns.queries as f64, b.dns.queries as f64);
    push(
        "CoreDNS peak QPS".into(),
        a.dns.coredns_qps_peak,
        b.dns.coredns_qps_peak,
    );
    // NaN != NaN: drop rows where neither run had an onset.
    rows.retain(|(_, x, y)| !(x.is_nan() && y.is_nan()));
    rows
}
