//! `compare`: one scenario under several variants, same seed, side by side.
//!
//! The baseline (the scenario as loaded) is always the first column; each variant is the
//! baseline with its overrides applied ([`Scenario::with_overrides`]). The table puts the
//! numbers a platform engineer compares remediations by in rows (when `drop`,
//! `insert_failed` and `early_drop` start per node, peak `nf_conntrack_count` against
//! `nf_conntrack_max`, the counters, latency percentiles, timeouts and retries, CoreDNS
//! load, node CPU and the rule cost per new connection), and each variant's verdict says
//! which counter moved first and why.

use std::fmt::Write as _;

use serde::Serialize;

use crate::report::alerts::AlertReplay;
use crate::report::chart::{Axis, Dash, LineChart, Marker, MarkerKind, Series, ValueFormat, short_seconds};
use crate::report::html::{self, Page};
use crate::report::{Report, RunReport, TimeSeries};
use crate::scenario::{Scenario, ScenarioError, Variant};
use crate::sim::{Outcome, SimError};

use super::horizon::{Horizon, Sufficiency};
use super::onset;
use super::runner::Job;

/// The name of the unmodified scenario's column.
pub const BASELINE: &str = "baseline";

/// One column of a comparison.
#[derive(Clone, Debug, Serialize)]
pub struct VariantRun {
    /// Variant name ([`BASELINE`] for the scenario as loaded).
    pub name: String,
    /// The overrides that make this variant, as written.
    pub overrides: Vec<String>,
    /// The run's report, with its alert replay and census.
    pub report: RunReport,
    /// Whether the run lasted long enough to reach the table's steady state.
    pub run: Sufficiency,
    /// What the variant did against the baseline, judged only from runs long enough.
    pub outcome: VariantOutcome,
    /// What changed by more than 2× on each node against the baseline, and why.
    pub node_changes: Vec<String>,
    /// The run's time series (charts; not serialised).
    #[serde(skip)]
    pub timeseries: TimeSeries,
}

/// A variant's effect against the baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// The baseline column itself: it fails.
    Fails,
    /// Nothing dropped and no request failed, in a run long enough.
    Holds,
    /// The baseline fails; this variant does not, in a run long enough.
    Fixed,
    /// Fewer than half the baseline's failures.
    Improved,
    /// About the baseline's failures (within a factor of 2).
    NotFixed,
    /// More than twice the baseline's failures.
    Worse,
    /// No failure, or not fewer than the baseline's, in a run too short to tell.
    Inconclusive,
}

impl std::fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OutcomeKind::Fails => "fails",
            OutcomeKind::Holds => "holds",
            OutcomeKind::Fixed => "fixed",
            OutcomeKind::Improved => "improved",
            OutcomeKind::NotFixed => "not fixed",
            OutcomeKind::Worse => "worse",
            OutcomeKind::Inconclusive => "inconclusive",
        })
    }
}

/// The outcome and its explanation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VariantOutcome {
    /// What kind.
    pub kind: OutcomeKind,
    /// In words, with the numbers compared.
    pub text: String,
}

/// Failures a run shows: conntrack `drop` + `insert_failed` over nodes, and failed requests.
fn failures(r: &Report) -> u64 {
    r.nodes
        .iter()
        .map(|n| n.conntrack.stats.drop + n.conntrack.stats.insert_failed)
        .sum::<u64>()
        + r.requests.failed
}

/// Judges `v` against `base`; `run` says whether `v`'s run was long enough.
fn outcome(base: Option<&Report>, v: &Report, run: &Sufficiency) -> VariantOutcome {
    let f = failures(v);
    let mk = |kind, text: String| VariantOutcome { kind, text };
    let Some(base) = base else {
        return if f > 0 {
            mk(
                OutcomeKind::Fails,
                format!("fails: {f} drops, insert_failed and failed requests"),
            )
        } else if run.long_enough {
            mk(OutcomeKind::Holds, "holds at the steady state".to_owned())
        } else {
            mk(
                OutcomeKind::Inconclusive,
                format!("inconclusive: no failure yet, but {}", run.reason),
            )
        };
    };
    let b = failures(base);
    if !run.long_enough {
        return mk(
            OutcomeKind::Inconclusive,
            format!(
                "inconclusive ({f} failures against the baseline's {b} so far): {}; run with --set duration={:.0}s",
                run.reason, run.needed_s
            ),
        );
    }
    let kind = match (b, f) {
        (0, 0) => OutcomeKind::Holds,
        (_, 0) => OutcomeKind::Fixed,
        (b, f) if f.saturating_mul(2) <= b => OutcomeKind::Improved,
        (b, f) if f >= b.saturating_mul(2) => OutcomeKind::Worse,
        _ => OutcomeKind::NotFixed,
    };
    let text = match kind {
        OutcomeKind::Holds => "holds at the steady state, as the baseline".to_owned(),
        OutcomeKind::Fixed => {
            format!("fixed: no drop, insert_failed or failed request at the steady state (baseline: {b})")
        }
        OutcomeKind::Improved => format!("improved: {f} failures against the baseline's {b}"),
        OutcomeKind::Worse => format!("worse: {f} failures against the baseline's {b}"),
        _ => format!("not fixed: {f} failures against the baseline's {b}"),
    };
    mk(kind, text)
}

/// A whole comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Schema version of this JSON document (`docs/report-format.md`).
    pub schema_version: u32,
    /// Scenario file.
    pub scenario: String,
    /// The seed every variant ran with.
    pub seed: u64,
    /// Columns, baseline first.
    pub variants: Vec<VariantRun>,
    /// Caveats about the runs (too short for a steady state, ...).
    pub warnings: Vec<String>,
}

/// Schema version of [`Comparison`]'s JSON.
pub const COMPARE_SCHEMA_VERSION: u32 = 1;

/// Up to this many nodes the table has every node's rows; above it, only the nodes that
/// lost packets in some variant (a cluster's quiet nodes share one row).
pub const PER_NODE_ROWS_ALWAYS: usize = 4;

/// Why a comparison could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A variant's overrides do not apply or do not validate.
    #[error("variant `{name}`: {source}")]
    Variant {
        /// Variant name.
        name: String,
        /// The scenario problems.
        source: ScenarioError,
    },
    /// Two variants share a name.
    #[error("two variants are named `{0}`")]
    Duplicate(String),
    /// A variant's run could not be simulated.
    #[error("variant `{name}`: {source}")]
    Sim {
        /// Variant name.
        name: String,
        /// Why.
        source: SimError,
    },
}

impl CompareError {
    /// Whether the user's input caused it (see [`SimError::is_user_error`]).
    #[must_use]
    pub fn is_user_error(&self) -> bool {
        match self {
            CompareError::Sim { source, .. } => source.is_user_error(),
            CompareError::Variant { .. } | CompareError::Duplicate(_) => true,
        }
    }
}

/// The runs of a comparison: the baseline, then `variants` in order. A variant's
/// overrides apply to the baseline *after* the user's own `--set`s (already in `base`).
///
/// # Errors
/// [`CompareError::Variant`] for a variant that does not validate,
/// [`CompareError::Duplicate`] for a repeated name.
pub fn jobs(base: &Scenario, variants: &[Variant]) -> Result<Vec<Job>, CompareError> {
    let mut out = vec![Job {
        label: BASELINE.to_owned(),
        scenario: base.clone(),
    }];
    for v in variants {
        if out.iter().any(|j| j.label == v.name) {
            return Err(CompareError::Duplicate(v.name.clone()));
        }
        let scenario = base
            .with_overrides(&v.overrides)
            .map_err(|source| CompareError::Variant {
                name: v.name.clone(),
                source,
            })?;
        out.push(Job {
            label: v.name.clone(),
            scenario,
        });
    }
    Ok(out)
}

impl Comparison {
    /// Assembles a comparison from the jobs of [`jobs`] and their outcomes (in the same
    /// order, as [`super::run_jobs`] returns them).
    ///
    /// # Errors
    /// [`CompareError::Sim`] naming the first variant that could not be simulated.
    pub fn new(
        base: &Scenario,
        variants: &[Variant],
        jobs: &[Job],
        outcomes: Vec<Result<Outcome, SimError>>,
    ) -> Result<Comparison, CompareError> {
        let mut runs: Vec<VariantRun> = Vec::with_capacity(jobs.len());
        for (job, out) in jobs.iter().zip(outcomes) {
            let out = out.map_err(|source| CompareError::Sim {
                name: job.label.clone(),
                source,
            })?;
            let overrides = variants
                .iter()
                .find(|v| v.name == job.label)
                .map(|v| v.overrides.iter().map(|o| o.as_str().to_owned()).collect())
                .unwrap_or_default();
            let run = Horizon::of(&job.scenario).check(out.report.duration_s);
            let baseline = runs.first().map(|b| &b.report.report);
            let outcome = outcome(baseline, &out.report, &run);
            let node_changes = baseline.map_or_else(Vec::new, |b| node_changes(b, &out.report));
            runs.push(VariantRun {
                name: job.label.clone(),
                overrides,
                report: RunReport::new(out.report, &out.timeseries),
                run,
                outcome,
                node_changes,
                timeseries: out.timeseries,
            });
        }
        let short: Vec<&str> = runs
            .iter()
            .filter(|r| !r.run.long_enough)
            .map(|r| r.name.as_str())
            .collect();
        let mut warnings = Vec::new();
        if let Some(first) = runs.iter().find(|r| !r.run.long_enough) {
            let needed = runs.iter().map(|r| r.run.needed_s).fold(0.0, f64::max);
            warnings.push(format!(
                "{} of {} runs are too short to reach the steady state ({}): no variant is called fixed from them; run with --set duration={needed:.0}s",
                short.len(),
                runs.len(),
                first.run.reason
            ));
        }
        Ok(Comparison {
            schema_version: COMPARE_SCHEMA_VERSION,
            scenario: base.file.clone(),
            seed: base.seed,
            variants: runs,
            warnings,
        })
    }

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
            super::count(self.variants.len(), "column", "columns")
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

    /// `scenario FILE · seed N · K variants`.
    #[must_use]
    pub fn subtitle(&self) -> String {
        format!(
            "scenario {} · seed {} · {} variants",
            self.variants
                .first()
                .map_or(self.scenario.as_str(), |v| v.report.scenario.as_str()),
            self.seed,
            self.variants.len()
        )
    }

    /// Onsets on node `i` of every variant, as markers named by variant.
    fn onset_markers(&self, i: usize) -> Vec<Marker> {
        let mut out = Vec::new();
        for v in &self.variants {
            if let Some(n) = v.report.nodes.get(i) {
                let first = [
                    ("drop", n.onset_s.drop),
                    ("insert_failed", n.onset_s.insert_failed),
                ]
                .into_iter()
                .filter_map(|(w, t)| t.map(|t| (w, t)))
                .min_by(|a, b| a.1.total_cmp(&b.1));
                if let Some((what, x)) = first {
                    out.push(Marker {
                        x,
                        label: format!("{what} {} {}", v.name, short_seconds(x)),
                        kind: MarkerKind::Onset,
                    });
                }
            }
        }
        out.sort_by(|a, b| a.x.total_cmp(&b.x));
        out
    }

    /// One solid line per variant, in the variant's palette slot, its points read off the
    /// variant's time series by `points` (`None`: a gap).
    fn per_variant(&self, points: impl Fn(&TimeSeries) -> Vec<(f64, Option<f64>)>) -> Vec<Series> {
        self.variants
            .iter()
            .enumerate()
            .map(|(slot, v)| Series {
                name: v.name.clone(),
                points: points(&v.timeseries),
                slot,
                dash: Dash::Solid,
                dots: false,
            })
            .collect()
    }

    /// Charts overlaying the variants, each variant in the same palette slot on every
    /// chart: `nf_conntrack_count` per node (each variant's `nf_conntrack_max` dashed
    /// where it differs from the baseline's), cumulative `drop` + `insert_failed`, p99
    /// latency (gaps where nothing completed) and the share of completed requests that
    /// succeeded.
    #[must_use]
    pub fn line_charts(&self) -> Vec<(String, LineChart)> {
        let sub = self.subtitle();
        let mut out = Vec::new();
        let nodes: Vec<String> = self
            .variants
            .first()
            .map(|v| v.timeseries.nodes.clone())
            .unwrap_or_default();
        let base_max: Vec<u64> = self
            .variants
            .first()
            .map(|v| v.timeseries.max.clone())
            .unwrap_or_default();
        for (i, node) in nodes.iter().enumerate() {
            let mut count = Vec::new();
            let mut drops = Vec::new();
            for (slot, v) in self.variants.iter().enumerate() {
                let ts = &v.timeseries;
                count.push(Series::line(
                    v.name.clone(),
                    slot,
                    ts.samples
                        .iter()
                        .map(|r| (r.t_s, as_f64(r.count.get(i).copied().unwrap_or(0)))),
                ));
                let max = ts.max.get(i).copied().unwrap_or(0);
                if slot == 0 || Some(&max) != base_max.get(i) {
                    let mut m = Series::line(
                        format!("{} max {max}", v.name),
                        slot,
                        ts.samples.iter().map(|r| (r.t_s, as_f64(max))),
                    );
                    m.dash = Dash::Dashed;
                    count.push(m);
                }
                drops.push(Series::line(
                    v.name.clone(),
                    slot,
                    ts.samples.iter().map(|r| {
                        let c = r.counters.get(i).copied().unwrap_or_default();
                        (r.t_s, as_f64(c.drop + c.insert_failed))
                    }),
                ));
            }
            let markers = self.onset_markers(i);
            out.push((
                format!("compare-{node}-conntrack-count.svg"),
                over_time(
                    format!("{node}: nf_conntrack_count per variant"),
                    sub.clone(),
                    Axis::linear("entries", ValueFormat::Count),
                    count,
                    markers.clone(),
                ),
            ));
            out.push((
                format!("compare-{node}-drops.svg"),
                over_time(
                    format!("{node}: drop + insert_failed (cumulative) per variant"),
                    sub.clone(),
                    Axis::linear("packets", ValueFormat::Count),
                    drops,
                    markers,
                ),
            ));
        }
        let p99 = self.per_variant(|ts| ts.samples.iter().map(|r| (r.t_s, r.p99_ms())).collect());
        out.push((
            "compare-latency-p99.svg".to_owned(),
            over_time(
                "p99 latency of requests completed in each interval, per variant".into(),
                format!("{sub} · gaps: intervals with no completed request"),
                Axis::log("p99 latency (log)", ValueFormat::Millis),
                p99,
                Vec::new(),
            ),
        ));
        let success = self.per_variant(crate::report::success_pct);
        out.push((
            "compare-success.svg".to_owned(),
            over_time(
                "share of completed requests that succeeded, per variant".into(),
                format!("{sub} · gaps: intervals with no completed request"),
                Axis::linear("succeeded (% of completed)", ValueFormat::Percent),
                success,
                Vec::new(),
            ),
        ));
        out
    }

    /// [`Comparison::line_charts`] rendered as SVG files.
    #[must_use]
    pub fn charts(&self) -> Vec<(String, String)> {
        self.line_charts()
            .into_iter()
            .map(|(n, c)| (n, c.render()))
            .collect()
    }

    /// The comparison as one self-contained HTML page: each variant's verdict and cause,
    /// the table, the alert replay's warning per variant, the overlay charts, and who
    /// fills the table at each variant's first onset.
    #[must_use]
    pub fn html(&self) -> String {
        let mut page = Page::new(
            &format!("k8s-netsim compare: {}", self.scenario),
            &self.subtitle(),
        );
        page.heading("Verdicts");
        for v in &self.variants {
            page.subheading(&if v.overrides.is_empty() {
                v.name.clone()
            } else {
                format!("{} ({})", v.name, v.overrides.join(", "))
            });
            page.verdict(
                &v.report.verdict.text,
                &v.report.verdict.cause,
                v.report.verdict.kind == "none",
            );
        }
        page.heading("Side by side");
        let mut header = vec![String::new()];
        header.extend(self.variants.iter().map(|v| v.name.clone()));
        let rows: Vec<Vec<String>> = self
            .table()
            .into_iter()
            .map(|(label, cells)| std::iter::once(label).chain(cells).collect())
            .collect();
        page.table(&header, &rows);
        page.heading("Charts");
        let svgs: Vec<String> = self.charts().into_iter().map(|(_, s)| s).collect();
        page.charts(&svgs);
        page.heading("Who fills the table");
        let sub = self.subtitle();
        for v in &self.variants {
            page.subheading(&format!("variant {}", v.name));
            for c in &v.report.census {
                html::census_section(&mut page, c, &sub);
            }
        }
        page.finish()
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

/// Whether a count moved by more than 2× (and by at least 100, so that small numbers do
/// not count).
fn moved(x: u64, y: u64) -> bool {
    x.max(y) >= 100 && (y > x.saturating_mul(2) || x > y.saturating_mul(2))
}

#[allow(clippy::cast_precision_loss)]
fn change(x: u64, y: u64) -> String {
    if x == 0 {
        format!("{x} → {y}")
    } else {
        format!("{x} → {y} (×{:.2})", y as f64 / x as f64)
    }
}

/// What changed by more than 2× on each node of `v` against `base`: the counters, the
/// packets lost there by kind, the DNS entries it held, its CPU, and the mechanisms the
/// numbers point to across nodes (a node that admits flows by `early_drop` and another
/// that drops them; CPU spent on rules by flows no longer dropped at conntrack).
#[must_use]
pub fn node_changes(base: &Report, v: &Report) -> Vec<String> {
    let pair = |name: &str| -> Option<(&crate::report::NodeReport, &crate::report::NodeReport)> {
        Some((
            base.nodes.iter().find(|x| x.name == name)?,
            v.nodes.iter().find(|x| x.name == name)?,
        ))
    };
    let mut out = Vec::new();
    for n in &v.nodes {
        let Some((b, n)) = pair(&n.name) else { continue };
        let (bs, ns) = (&b.conntrack.stats, &n.conntrack.stats);
        let mut changed: Vec<String> = [
            ("drop", bs.drop, ns.drop),
            ("insert_failed", bs.insert_failed, ns.insert_failed),
            ("early_drop", bs.early_drop, ns.early_drop),
            (
                "entries created",
                b.conntrack.entries_created,
                n.conntrack.entries_created,
            ),
        ]
        .into_iter()
        .filter(|(_, x, y)| moved(*x, *y))
        .map(|(k, x, y)| format!("{k} {}", change(x, y)))
        .collect();
        let cpu_moved = (n.cpu.mean_pct > 2.0 * b.cpu.mean_pct || b.cpu.mean_pct > 2.0 * n.cpu.mean_pct)
            && (n.cpu.mean_pct - b.cpu.mean_pct).abs() >= 5.0;
        if cpu_moved {
            changed.push(format!(
                "CPU mean {:.1}% → {:.1}%",
                b.cpu.mean_pct, n.cpu.mean_pct
            ));
        }
        if changed.is_empty() {
            continue;
        }
        let mut line = format!("{}: {}", n.name, changed.join(", "));
        let kinds: std::collections::BTreeSet<&String> =
            b.packet_drops.keys().chain(n.packet_drops.keys()).collect();
        let lost: Vec<String> = kinds
            .into_iter()
            .filter_map(|k| {
                let x = b.packet_drops.get(k).copied().unwrap_or(0);
                let y = n.packet_drops.get(k).copied().unwrap_or(0);
                moved(x, y).then(|| format!("{k} {x} → {y}"))
            })
            .collect();
        if !lost.is_empty() {
            let _ = write!(line, "; packets lost here: {}", lost.join(", "));
        }
        let (bu, nu) = (b.conntrack.dns_udp_entries_end, n.conntrack.dns_udp_entries_end);
        let (bt, nt) = (b.conntrack.dns_tcp_entries_end, n.conntrack.dns_tcp_entries_end);
        if bu != nu || bt != nt {
            let _ = write!(
                line,
                "; DNS entries held at the end: UDP {bu} → {nu}, TCP {bt} → {nt}"
            );
        }
        // A node whose drops rose while another node's early_drop rose: the other node
        // admitted new flows by evicting non-ASSURED entries, and they died here.
        if moved(bs.drop, ns.drop) && ns.drop > bs.drop {
            for m in &v.nodes {
                let Some((mb, mn)) = pair(&m.name) else { continue };
                let (x, y) = (mb.conntrack.stats.early_drop, mn.conntrack.stats.early_drop);
                if m.name != n.name && moved(x, y) && y > x {
                    let _ = write!(
                        line,
                        "; why: {} admitted more new flows by early_drop ({x} → {y}: it evicted non-ASSURED entries, such as the SYN_SENT entries of SYNs dropped further on) and {}'s full table dropped them",
                        m.name, n.name
                    );
                }
            }
        }
        // CPU up while this node's own drops fell: flows that used to die at conntrack
        // (before the nat table) now walk the rules.
        if cpu_moved && n.cpu.mean_pct > b.cpu.mean_pct && ns.drop < bs.drop {
            let _ = write!(
                line,
                "; why: fewer new flows were dropped here at conntrack, before the nat table, so more walked its {:.0} rules per new connection",
                n.rules.mean_per_new_connection
            );
        }
        out.push(line);
    }
    out
}

/// Reads one `conntrack -S` counter.
type Counter = fn(&crate::report::ConntrackCounters) -> u64;

/// A comparison chart over simulated time: `series` against `y`, with `markers`.
fn over_time(
    title: String,
    subtitle: String,
    y: Axis,
    series: Vec<Series>,
    markers: Vec<Marker>,
) -> LineChart {
    LineChart {
        title,
        subtitle,
        x: Axis::time(),
        y,
        series,
        markers,
        stacked: false,
    }
}

#[allow(clippy::cast_precision_loss)]
fn as_f64(v: u64) -> f64 {
    v as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Override;
    use crate::study::{parse_variant, run_jobs};
    use std::num::NonZeroUsize;

    fn base() -> Scenario {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/small.yaml");
        Scenario::load(path, &[Override::parse("duration=2s").unwrap()]).unwrap()
    }

    #[test]
    fn baseline_comes_first_and_variants_keep_their_order_and_overrides() {
        let b = base();
        let vs = [
            parse_variant("pool:workloads.0.connection.mode=pool").unwrap(),
            parse_variant("slow:workloads.0.rate=100/s").unwrap(),
        ];
        let jobs = jobs(&b, &vs).unwrap();
        let names: Vec<&str> = jobs.iter().map(|j| j.label.as_str()).collect();
        assert_eq!(names, ["baseline", "pool", "slow"]);
        let outs = run_jobs(&jobs, NonZeroUsize::new(2).unwrap(), &|_, _| {});
        let c = Comparison::new(&b, &vs, &jobs, outs).unwrap();
        assert_eq!(c.variants[2].overrides, ["workloads.0.rate=100/s"]);
        // Pools open far fewer connections than short connections at the same rate.
        let newc = |i: usize| c.variants[i].report.requests.new_connections;
        assert!(newc(1) * 10 < newc(0), "pool {} vs short {}", newc(1), newc(0));
        let text = c.render_text();
        assert!(text.contains("new connections"), "{text}");
        assert!(text.lines().nth(1).unwrap().contains("baseline"));
        assert_eq!(c.charts().len(), 2 * c.variants[0].report.nodes.len() + 2);
    }

    #[test]
    fn a_variant_that_does_not_validate_is_named() {
        let b = base();
        let vs = [parse_variant("bad:workloads.0.rate=fast").unwrap()];
        match jobs(&b, &vs) {
            Err(CompareError::Variant { name, .. }) => assert_eq!(name, "bad"),
            other => panic!("expected a variant error, got {other:?}"),
        }
        let dup = [
            parse_variant("a:workloads.0.rate=1/s").unwrap(),
            parse_variant("a:workloads.0.rate=2/s").unwrap(),
        ];
        assert!(matches!(jobs(&b, &dup), Err(CompareError::Duplicate(_))));
    }
}
