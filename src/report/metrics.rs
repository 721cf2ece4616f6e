//! `metrics.prom`: the time series as OpenMetrics text, under the names operators already
//! query, so a run can be loaded into Prometheus (`promtool tsdb create-blocks-from
//! openmetrics`) and opened in Grafana.
//!
//! - node_exporter's conntrack collector names for what it exports (all gauges, as
//!   node_exporter declares them): `node_nf_conntrack_entries`, `_entries_limit`,
//!   `node_nf_conntrack_stat_{found,invalid,insert,insert_failed,drop,early_drop,search_restart}`,
//!   labelled like a kube-prometheus scrape (`instance` = node name,
//!   `job="node-exporter"`) plus `node`;
//! - `k8s_netsim_*` for the rest: the `conntrack -S` counters node_exporter does not
//!   export, packet CPU, requests by outcome, latency, CoreDNS queries, and the census.
//!
//! Timestamps are the simulated clock: t = 0 is the Unix epoch. One sample per row of
//! the time series, with the values of that row (cumulative counters are the running sum
//! of the per-interval counts). Intervals in which no request completed have `NaN`
//! latency: there is no latency to report, and `NaN` draws as a gap in Grafana.
//! `node_nf_conntrack_stat_ignore` is not written: the simulation does not model the
//! packets the kernel counts there.

use std::fmt::Write as _;

use super::census::{CensusTrigger, NodeCensus};
use super::timeseries::LATENCY_BUCKETS_S;
use super::{ConntrackCounters, Report, TimeSeries};

/// A `conntrack -S` counter as a metric: (name suffix, help, reader).
type StatMetric = (&'static str, &'static str, fn(&ConntrackCounters) -> u64);

/// node_exporter's conntrack stat gauges.
const NODE_STATS: [StatMetric; 7] = [
    (
        "found",
        "conntrack -S found: NAT tuple probes that found the tuple taken.",
        |c| c.found,
    ),
    (
        "invalid",
        "conntrack -S invalid: packets conntrack could not track.",
        |c| c.invalid,
    ),
    (
        "insert",
        "conntrack -S insert: entries inserted through ctnetlink.",
        |c| c.insert,
    ),
    (
        "insert_failed",
        "conntrack -S insert_failed: entries whose insertion failed at confirm.",
        |c| c.insert_failed,
    ),
    (
        "drop",
        "conntrack -S drop: packets dropped because conntrack failed (table full, unresolvable clash).",
        |c| c.drop,
    ),
    (
        "early_drop",
        "conntrack -S early_drop: entries evicted to make room when the table was full.",
        |c| c.early_drop,
    ),
    (
        "search_restart",
        "conntrack -S search_restart: lookups restarted after a hash resize or a moved entry.",
        |c| c.search_restart,
    ),
];

/// The `conntrack -S` counters node_exporter does not export.
const EXTRA_STATS: [StatMetric; 3] = [
    (
        "error",
        "conntrack -S error: ICMP errors rejected by conntrack.",
        |c| c.error,
    ),
    (
        "clash_resolve",
        "conntrack -S clash_resolve: insertion clashes resolved without a drop.",
        |c| c.clash_resolve,
    ),
    (
        "chaintoolong",
        "conntrack -S chaintoolong: insertions refused for a too long hash chain.",
        |c| c.chaintoolong,
    ),
];

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "# HELP {name} {help}");
}

/// An OpenMetrics number: integers as integers, `NaN` for no value.
fn num(v: f64) -> String {
    if v.is_nan() { "NaN".into() } else { format!("{v}") }
}

fn node_labels(node: &str) -> String {
    let n = label(node);
    format!(r#"instance="{n}",job="node-exporter",node="{n}""#)
}

/// The whole `metrics.prom` text.
#[must_use]
#[allow(
    clippy::too_many_lines,
    reason = "one family after the other, in the order Grafana's dashboard reads them"
)]
pub fn openmetrics(report: &Report, ts: &TimeSeries) -> String {
    let mut out = String::new();
    let rows = &ts.samples;
    let t = |r: &super::Sample| num(r.t_s);
    // node_exporter: entries and limit.
    family(
        &mut out,
        "node_nf_conntrack_entries",
        "gauge",
        "Number of currently allocated flow entries for connection tracking (nf_conntrack_count).",
    );
    for (i, n) in ts.nodes.iter().enumerate() {
        for r in rows {
            let _ = writeln!(
                out,
                "node_nf_conntrack_entries{{{}}} {} {}",
                node_labels(n),
                r.count.get(i).copied().unwrap_or(0),
                t(r)
            );
        }
    }
    family(
        &mut out,
        "node_nf_conntrack_entries_limit",
        "gauge",
        "Maximum size of the connection tracking table (nf_conntrack_max).",
    );
    for (i, n) in ts.nodes.iter().enumerate() {
        let max = ts.max.get(i).copied().unwrap_or(0);
        for r in rows {
            let _ = writeln!(
                out,
                "node_nf_conntrack_entries_limit{{{}}} {max} {}",
                node_labels(n),
                t(r)
            );
        }
    }
    for (suffix, help, get) in NODE_STATS {
        let name = format!("node_nf_conntrack_stat_{suffix}");
        family(&mut out, &name, "gauge", help);
        for (i, n) in ts.nodes.iter().enumerate() {
            for r in rows {
                let v = r.counters.get(i).map_or(0, get);
                let _ = writeln!(out, "{name}{{{}}} {v} {}", node_labels(n), t(r));
            }
        }
    }
    // k8s-netsim: the other conntrack -S counters, CPU.
    for (suffix, help, get) in EXTRA_STATS {
        let name = format!("k8s_netsim_conntrack_stat_{suffix}");
        family(&mut out, &name, "gauge", help);
        for (i, n) in ts.nodes.iter().enumerate() {
            for r in rows {
                let v = r.counters.get(i).map_or(0, get);
                let _ = writeln!(out, "{name}{{node=\"{}\"}} {v} {}", label(n), t(r));
            }
        }
    }
    family(
        &mut out,
        "k8s_netsim_packet_cpu_demand_ratio",
        "gauge",
        "Packet-processing CPU demand in the interval, as a fraction of all the node's CPUs (above 1: the node could not keep up).",
    );
    for (i, n) in ts.nodes.iter().enumerate() {
        for r in rows {
            let v = r.cpu_pct.get(i).copied().unwrap_or(0.0) / 100.0;
            let _ = writeln!(
                out,
                "k8s_netsim_packet_cpu_demand_ratio{{node=\"{}\"}} {} {}",
                label(n),
                num(v),
                t(r)
            );
        }
    }
    // Requests.
    family(
        &mut out,
        "k8s_netsim_requests",
        "counter",
        "Requests completed, by outcome (ok: answered; failed: gave up after all retries).",
    );
    for (outcome, get) in [
        ("ok", (|r: &super::Sample| r.ok) as fn(&super::Sample) -> u64),
        ("failed", |r| r.failed),
    ] {
        let mut total = 0u64;
        for r in rows {
            total += get(r);
            let _ = writeln!(
                out,
                "k8s_netsim_requests_total{{outcome=\"{outcome}\"}} {total} {}",
                t(r)
            );
        }
    }
    if rows.iter().any(|r| r.timeouts.is_some()) {
        family(
            &mut out,
            "k8s_netsim_request_timeouts",
            "counter",
            "Attempts that hit the per-request timeout.",
        );
        let mut total = 0u64;
        for r in rows {
            if let Some(v) = r.timeouts {
                total += v;
                let _ = writeln!(out, "k8s_netsim_request_timeouts_total {total} {}", t(r));
            }
        }
    }
    family(
        &mut out,
        "k8s_netsim_new_connections",
        "counter",
        "TCP connections opened (handshakes started).",
    );
    let mut total = 0u64;
    for r in rows {
        total += r.new_connections;
        let _ = writeln!(out, "k8s_netsim_new_connections_total {total} {}", t(r));
    }
    family(
        &mut out,
        "k8s_netsim_coredns_queries",
        "counter",
        "DNS queries that reached CoreDNS pods.",
    );
    let mut total = 0u64;
    for r in rows {
        total += r.coredns_queries;
        let _ = writeln!(out, "k8s_netsim_coredns_queries_total {total} {}", t(r));
    }
    for (q, get) in [
        (
            "p50",
            (|r: &super::Sample| r.p50_ms()) as fn(&super::Sample) -> Option<f64>,
        ),
        ("p99", |r| r.p99_ms()),
    ] {
        let name = format!("k8s_netsim_request_latency_{q}_seconds");
        family(
            &mut out,
            &name,
            "gauge",
            &format!("{q} latency of the requests completed in the interval (NaN: none completed)."),
        );
        for r in rows {
            let v = get(r).map_or(f64::NAN, |ms| ms / 1e3);
            let _ = writeln!(out, "{name} {} {}", num(v), t(r));
        }
    }
    latency_histogram(&mut out, ts);
    census(&mut out, report, ts);
    out.push_str("# EOF\n");
    out
}

fn latency_histogram(out: &mut String, ts: &TimeSeries) {
    if !ts.samples.iter().any(|r| r.latency.is_some()) {
        return;
    }
    family(
        out,
        "k8s_netsim_request_duration_seconds",
        "histogram",
        "Latency of successful requests, from the first attempt to the response.",
    );
    let mut le = vec![0u64; LATENCY_BUCKETS_S.len()];
    let (mut count, mut sum_ns) = (0u64, 0u128);
    let mut lines: Vec<Vec<String>> = vec![Vec::new(); LATENCY_BUCKETS_S.len() + 3];
    for r in &ts.samples {
        let Some(b) = &r.latency else { continue };
        for (acc, v) in le.iter_mut().zip(&b.at_most) {
            *acc += v;
        }
        count += b.count;
        sum_ns += b.sum_ns;
        let t = num(r.t_s);
        for (k, bound) in LATENCY_BUCKETS_S.iter().enumerate() {
            lines[k].push(format!(
                "k8s_netsim_request_duration_seconds_bucket{{le=\"{}\"}} {} {t}",
                num(*bound),
                le[k]
            ));
        }
        let n = LATENCY_BUCKETS_S.len();
        lines[n].push(format!(
            "k8s_netsim_request_duration_seconds_bucket{{le=\"+Inf\"}} {count} {t}"
        ));
        #[allow(clippy::cast_precision_loss)]
        let sum_s = sum_ns as f64 / 1e9;
        lines[n + 1].push(format!(
            "k8s_netsim_request_duration_seconds_sum {} {t}",
            num(sum_s)
        ));
        lines[n + 2].push(format!("k8s_netsim_request_duration_seconds_count {count} {t}"));
    }
    for l in lines.iter().flatten() {
        out.push_str(l);
        out.push('\n');
    }
}

/// The periodic census snapshots as gauges.
fn census(out: &mut String, report: &Report, ts: &TimeSeries) {
    let snaps: Vec<_> = ts
        .census_snapshots()
        .into_iter()
        .filter(|s| s.trigger == CensusTrigger::Periodic)
        .collect();
    if snaps.is_empty() {
        return;
    }
    let node_name = |i: usize| -> String {
        label(
            ts.nodes
                .get(i)
                .or_else(|| report.nodes.get(i).map(|n| &n.name))
                .map_or("", String::as_str),
        )
    };
    type Breakdown = fn(&NodeCensus) -> Vec<(String, u64)>;
    let breakdowns: [(&str, &str, &str, Breakdown); 4] = [
        (
            "k8s_netsim_conntrack_entries_by_workload",
            "workload",
            "Conntrack entries by the workload that opened the flow.",
            |c| {
                c.by_workload
                    .iter()
                    .map(|s| (format!("workload=\"{}\"", label(&s.key.to_string())), s.entries))
                    .collect()
            },
        ),
        (
            "k8s_netsim_conntrack_entries_by_destination",
            "destination",
            "Conntrack entries by destination Service (or external).",
            |c| {
                c.by_destination
                    .iter()
                    .map(|s| {
                        (
                            format!("destination=\"{}\"", label(&s.key.to_string())),
                            s.entries,
                        )
                    })
                    .collect()
            },
        ),
        (
            "k8s_netsim_conntrack_entries_by_state",
            "state",
            "Conntrack entries by protocol and TCP state.",
            |c| {
                c.by_state
                    .iter()
                    .map(|s| {
                        let state = s.key.tcp.map_or("", |t| t.as_str());
                        (
                            format!("protocol=\"{}\",state=\"{state}\"", s.key.proto.as_str()),
                            s.entries,
                        )
                    })
                    .collect()
            },
        ),
        (
            "k8s_netsim_conntrack_entries_by_assured",
            "assured",
            "Conntrack entries with and without ASSURED.",
            |c| {
                vec![
                    ("assured=\"true\"".to_owned(), c.assured),
                    ("assured=\"false\"".to_owned(), c.not_assured),
                ]
            },
        ),
    ];
    for (name, _, help, get) in breakdowns {
        family(out, name, "gauge", help);
        // Series: (node, labels) -> samples; every key seen on a node gets a value at
        // every snapshot of that node (0 where absent), so a class that empties drops to 0.
        let mut series: std::collections::BTreeMap<(usize, String), Vec<(f64, u64)>> =
            std::collections::BTreeMap::new();
        let mut times: std::collections::BTreeMap<usize, Vec<f64>> = std::collections::BTreeMap::new();
        for s in &snaps {
            #[allow(clippy::cast_precision_loss)]
            let at = s.at_ns as f64 / 1e9;
            times.entry(s.node).or_default().push(at);
            for (labels, v) in get(&s.census) {
                series.entry((s.node, labels)).or_default().push((at, v));
            }
        }
        for ((node, labels), pts) in &series {
            let mut it = pts.iter().peekable();
            for at in times.get(node).into_iter().flatten() {
                let v = match it.peek() {
                    Some((t, v)) if t == at => {
                        let v = *v;
                        it.next();
                        v
                    }
                    _ => 0,
                };
                let _ = writeln!(
                    out,
                    "{name}{{node=\"{}\",{labels}}} {v} {}",
                    node_name(*node),
                    num(*at)
                );
            }
        }
    }
}
