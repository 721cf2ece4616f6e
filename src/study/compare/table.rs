//! The comparison side by side: one row per metric, one cell per variant, as
//! [`Comparison::table`] and as aligned text with each variant's verdict.

use std::fmt::Write as _;

use crate::report::alerts::AlertReplay;
use crate::report::html;
use crate::report::{Report, RunReport};
use crate::study::onset;

use super::{Comparison, PER_NODE_ROWS_ALWAYS};

impl Comparison {
    /// The side-by-side table: `(metric, one cell per variant)`.
    #[must_use]
    // Long on purpose: one block per row of the table, in the order the table prints.
    pub fn table(&self) -> Vec<(String, Vec<String>)> {
        let mut rows: Vec<(String, Vec<String>)> = vec![(
            "outcome".to_owned(),
            self.variants.iter().map(|v| v.outcome.kind.to_string()).collect(),
        )];
        let mut row = |label: &str, f: &dyn Fn(&Report) -> String| {
            rows.push((
                label.to_owned(),
                self.variants.iter().map(|v| f(&v.report)).collect(),
            ));
        };
        row("callers' p99 (all requests)", &|r| {
            format!("{:.1} ms", r.users.latency_ms.p99)
        });
        row("callers' p50 (all requests)", &|r| {
            format!("{:.1} ms", r.users.latency_ms.p50)
        });
        row("answered", &|r| format!("{:.2}%", r.users.success_pct));
        row("nodes losing packets (drop onset)", &|r| {
            let hot: Vec<String> = r
                .nodes
                .iter()
                .filter_map(|n| {
                    let t = match (n.onset_s.drop, n.onset_s.insert_failed) {
                        (Some(a), Some(b)) => a.min(b),
                        (a, b) => a.or(b)?,
                    };
                    Some(format!("{} {t:.1}s", n.name))
                })
                .collect();
            if hot.is_empty() {
                "none".to_owned()
            } else {
                hot.join(", ")
            }
        });
        row("first counter", &|r| match (&r.verdict.node, r.verdict.at_s) {
            (Some(n), Some(t)) => format!("{} {t:.3}s {n}", r.verdict.kind),
            _ => "none".to_owned(),
        });
        row("proxy mode", &|r| r.proxy_mode.clone());
        let nodes: Vec<String> = self
            .variants
            .first()
            .map(|v| v.report.nodes.iter().map(|n| n.name.clone()).collect())
            .unwrap_or_default();
        // With many nodes, the per-node rows are kept for the nodes that lost packets in
        // some variant; the others are summed up in one row.
        let lost = |i: usize| {
            self.variants.iter().any(|v| {
                v.report.nodes.get(i).is_some_and(|n| {
                    n.onset_s.drop.is_some()
                        || n.onset_s.insert_failed.is_some()
                        || n.onset_s.early_drop.is_some()
                })
            })
        };
        let shown: Vec<usize> = (0..nodes.len())
            .filter(|&i| nodes.len() <= PER_NODE_ROWS_ALWAYS || lost(i))
            .collect();
        if shown.len() < nodes.len() {
            let quiet = nodes.len() - shown.len();
            row(&format!("{quiet} other nodes: highest peak count / max"), &|r| {
                let peak = (0..nodes.len())
                    .filter(|i| !shown.contains(i))
                    .filter_map(|i| r.nodes.get(i))
                    .map(|n| (n.conntrack.count_peak, n.conntrack.max))
                    .max();
                peak.map_or_else(String::new, |(c, m)| format!("{c}/{m}, no loss"))
            });
        }
        for &i in &shown {
            let name = &nodes[i];
            let node = move |r: &Report| r.nodes.get(i).cloned();
            let onset = |t: Option<f64>| t.map_or_else(|| "-".to_owned(), |t| format!("{t:.3}s"));
            row(&format!("{name}: drop onset"), &|r| {
                node(r).map_or_else(String::new, |n| onset(n.onset_s.drop))
            });
            row(&format!("{name}: insert_failed onset"), &|r| {
                node(r).map_or_else(String::new, |n| onset(n.onset_s.insert_failed))
            });
            row(&format!("{name}: early_drop onset"), &|r| {
                node(r).map_or_else(String::new, |n| onset(n.onset_s.early_drop))
            });
            row(&format!("{name}: peak count / max"), &|r| {
                node(r).map_or_else(String::new, |n| {
                    format!("{}/{}", n.conntrack.count_peak, n.conntrack.max)
                })
            });
            row(&format!("{name}: entries created"), &|r| {
                node(r).map_or_else(String::new, |n| n.conntrack.entries_created.to_string())
            });
            let counters: [(&str, Counter); 4] = [
                ("drop", |c| c.drop),
                ("insert_failed", |c| c.insert_failed),
                ("early_drop", |c| c.early_drop),
                ("clash_resolve", |c| c.clash_resolve),
            ];
            for (label, get) in counters {
                row(&format!("{name}: {label}"), &|r| {
                    node(r).map_or_else(String::new, |n| get(&n.conntrack.stats).to_string())
                });
            }
            row(&format!("{name}: CPU mean / peak"), &|r| {
                node(r).map_or_else(String::new, |n| {
                    format!("{:.1}% / {:.1}%", n.cpu.mean_pct, n.cpu.peak_pct)
                })
            });
            row(&format!("{name}: rules per new conn"), &|r| {
                node(r).map_or_else(String::new, |n| format!("{:.0}", n.rules.mean_per_new_connection))
            });
        }
        row("answered only: latency p50", &|r| {
            format!("{:.1} ms", r.latency_ms.p50)
        });
        row("answered only: latency p99", &|r| {
            format!("{:.1} ms", r.latency_ms.p99)
        });
        row("answered only: latency p999", &|r| {
            format!("{:.1} ms", r.latency_ms.p999)
        });
        row("requests ok / sent", &|r| {
            format!("{}/{}", r.requests.ok, r.requests.sent)
        });
        row("requests failed", &|r| r.requests.failed.to_string());
        row("timeouts", &|r| r.requests.timeouts.to_string());
        row("retries", &|r| r.requests.retries.to_string());
        row("new connections", &|r| r.requests.new_connections.to_string());
        row("DNS queries", &|r| r.dns.queries.to_string());
        row("CoreDNS peak QPS", &|r| format!("{:.0}", r.dns.coredns_qps_peak));
        row("DNS lookups with 5 s timeout", &|r| {
            r.dns.lookups_with_timeout.to_string()
        });
        row("A/AAAA pairs raced", &|r| r.dns.pairs_raced.to_string());
        let mut kinds: Vec<crate::conntrack::ClashKind> = self
            .variants
            .iter()
            .flat_map(|v| onset::clashes_by_kind(&v.report).into_keys())
            .collect();
        kinds.sort();
        kinds.dedup();
        for k in kinds {
            row(
                &format!("clashed: {} (insert_failed/clash_resolve)", k.name()),
                &|r| {
                    let (i, c) = onset::clashes_by_kind(r).get(&k).copied().unwrap_or_default();
                    format!("{i}/{c}")
                },
            );
        }
        let replays = self.variants.first().map_or(0, |v| v.report.alerts.replays.len());
        for k in 0..replays {
            let label = self.variants[0].report.alerts.replays[k].settings.label;
            // One cell per variant from its k-th alert replay (`None`: it has none).
            let mut replay_row = |label: String, cell: &dyn Fn(Option<&AlertReplay>) -> String| {
                rows.push((
                    label,
                    self.variants
                        .iter()
                        .map(|v| cell(v.report.alerts.replays.get(k)))
                        .collect(),
                ));
            };
            replay_row(format!("first alert ({label})"), &|r| {
                r.and_then(|r| r.first_alert.as_ref()).map_or_else(
                    || "none".to_owned(),
                    |a| format!("{} {:.3}s {}", a.rule, a.at_s, a.node),
                )
            });
            replay_row(format!("warning before loss ({label})"), &|r| {
                r.map_or_else(String::new, |r| html::lead_text(r.warning, r.lead_time_s))
            });
        }
        rows.push((
            "top tuple class at first onset".to_owned(),
            self.variants.iter().map(|v| top_class(&v.report)).collect(),
        ));
        rows
    }

    /// The table as aligned text, followed by each variant's verdict and cause.
    #[must_use]
    pub fn render_text(&self) -> String {
        let rows = self.table();
        let mut widths: Vec<usize> = self.variants.iter().map(|v| v.name.chars().count()).collect();
        let label_w = rows.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0);
        for (_, cells) in &rows {
            for (w, c) in widths.iter_mut().zip(cells) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} (seed {}): {}",
            self.scenario,
            self.seed,
            crate::study::count(self.variants.len(), "column", "columns")
        );
        let _ = write!(s, "{:label_w$}", "");
        for (v, w) in self.variants.iter().zip(&widths) {
            let _ = write!(s, "  {:>w$}", v.name);
        }
        s.push('\n');
        for (label, cells) in &rows {
            let _ = write!(s, "{label:label_w$}");
            for (c, w) in cells.iter().zip(&widths) {
                let _ = write!(s, "  {c:>w$}");
            }
            s.push('\n');
        }
        s.push('\n');
        if let Some(base) = self.variants.first() {
            let _ = writeln!(s, "insert_failed onset against {}:", base.name);
            let sample_s = base.timeseries.interval_s();
            for v in self.variants.iter().skip(1) {
                let _ = writeln!(
                    s,
                    "  {}: {}",
                    v.name,
                    onset::explain(&base.report, &v.report, sample_s)
                );
            }
            s.push('\n');
        }
        for v in &self.variants {
            let _ = writeln!(s, "{}: {}", v.name, v.outcome.text);
            let _ = writeln!(s, "  first: {}", v.report.verdict.text);
            if !v.report.verdict.cause.is_empty() {
                let _ = writeln!(s, "  why: {}", v.report.verdict.cause);
            }
            for c in &v.node_changes {
                let _ = writeln!(s, "  {c}");
            }
            if !v.overrides.is_empty() {
                let _ = writeln!(s, "  set: {}", v.overrides.join(", "));
            }
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        s
    }
}

/// The largest tuple class at a run's first onset (any node), or at its peak.
fn top_class(r: &RunReport) -> String {
    let at_onset = r
        .census
        .iter()
        .flat_map(|c| {
            c.at_onset
                .iter()
                .map(move |o| (o.snapshot.at_s, &o.snapshot.census))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c);
    let census = at_onset.or_else(|| {
        r.census
            .iter()
            .filter_map(|c| c.at_peak.as_ref())
            .map(|p| &p.census)
            .next()
    });
    census
        .and_then(|c| c.top_classes.first().map(|s| (s, c.total)))
        .map_or_else(
            || "no census".to_owned(),
            |(s, total)| format!("{} ({} of {total})", s.key, s.entries),
        )
}

/// Reads one `conntrack -S` counter.
type Counter = fn(&crate::report::ConntrackCounters) -> u64;
