//! The numeric scenario fields `plan` and `sweep` vary, and the conditions `plan` stops at.
//!
//! A [`Knob`] is one or more override paths set to the same value: a workload's rate
//! (`workloads.0.rate`, values such as `30k/s`, held as milli-requests per second so that
//! `Rate`'s text round-trips exactly) or an integer field
//! (`nodes.0.sysctl.net.netfilter.nf_conntrack_max`, `workloads.0.connection.poolSize`,
//! `backgroundServices.count`). Override text is generated in the form the scenario
//! accepts (`1062.5/s`, `524288`), so integer fields stay integers.
//!
//! A [`Condition`] is read from `--until`: `drop>0`, `insert_failed>0`, `p99>200ms`,
//! `timeouts>0.1%`, `cpu>80%@node-a`.

use std::fmt;

use serde::Serialize;

use crate::report::Report;
use crate::scenario::{Override, Rate, Scenario};

/// How a knob's values are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KnobKind {
    /// A rate (`30k/s`); values are milli-requests per second.
    Rate,
    /// A whole number.
    Integer,
}

/// Why a knob, a value, a condition or a range could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KnobError {
    /// The path is not a scalar field with a value, and no range was given.
    #[error("{path}: the scenario does not set this field; give the values explicitly (e.g. --range LO..HI)")]
    NoValue {
        /// The path.
        path: String,
    },
    /// The field's value is not a rate or a whole number.
    #[error("{path}: value `{value}` is not a rate (`30k/s`) or a whole number, so it cannot be searched")]
    NotNumeric {
        /// The path.
        path: String,
        /// Its value.
        value: String,
    },
    /// A value given for the knob is not of its kind.
    #[error("`{value}` is not a {expected} (the kind of {path})")]
    BadValue {
        /// The text.
        value: String,
        /// `rate like 30k/s` or `whole number`.
        expected: &'static str,
        /// The knob's first path.
        path: String,
    },
    /// Paths of different kinds share one knob.
    #[error("{first} and {other} hold different kinds of values; one knob sets one kind")]
    MixedKinds {
        /// The first path.
        first: String,
        /// The path that differs.
        other: String,
    },
    /// An empty path list.
    #[error("no field path given")]
    NoPath,
    /// A range that is not `LO..HI` with LO < HI.
    #[error("range `{0}`: expected LO..HI with LO below HI (e.g. 500/s..2k/s)")]
    BadRange(String),
}

/// One or more scenario fields set to the same searched value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Knob {
    /// Override paths, all set to each value.
    pub paths: Vec<String>,
    /// How values are written.
    pub kind: KnobKind,
    /// The scenario's current value of the first path, if it has one.
    pub current: Option<u64>,
    /// True when a larger value is more load (a rate, a number of Services); false
    /// for capacities (`nf_conntrack_max`, a pool size). Only used to pick the direction
    /// in which to look for a bracket.
    pub more_is_load: bool,
}

impl Knob {
    /// Reads the paths' current value and kind from `base`. `hint` is a value given on
    /// the command line (a range end), used for the kind when the scenario does not set
    /// the field.
    ///
    /// # Errors
    /// [`KnobError`] naming the path.
    pub fn resolve(base: &Scenario, paths: &[String], hint: Option<&str>) -> Result<Knob, KnobError> {
        let first = paths.first().ok_or(KnobError::NoPath)?;
        let mut kind = None;
        let mut current = None;
        for (i, path) in paths.iter().enumerate() {
            let Some(text) = current_text(base, path) else {
                continue;
            };
            let (k, v) = classify(&text).ok_or_else(|| KnobError::NotNumeric {
                path: path.clone(),
                value: text.clone(),
            })?;
            match kind {
                None => kind = Some(k),
                Some(prev) if prev != k => {
                    return Err(KnobError::MixedKinds {
                        first: first.clone(),
                        other: path.clone(),
                    });
                }
                Some(_) => {}
            }
            if i == 0 {
                current = Some(v);
            }
        }
        let kind = match (kind, hint.and_then(classify)) {
            (Some(k), _) => k,
            (None, Some((k, _))) => k,
            (None, None) => return Err(KnobError::NoValue { path: first.clone() }),
        };
        let last = first.rsplit('.').next().unwrap_or_default();
        let more_is_load = matches!(last, "rate" | "count" | "endpointsEach" | "pods");
        Ok(Knob {
            paths: paths.to_vec(),
            kind,
            current,
            more_is_load,
        })
    }

    /// Parses a value of this knob's kind (`1.2k/s` for rates, `524288` for integers).
    ///
    /// # Errors
    /// [`KnobError::BadValue`].
    pub fn parse_value(&self, text: &str) -> Result<u64, KnobError> {
        let bad = || KnobError::BadValue {
            value: text.to_owned(),
            expected: match self.kind {
                KnobKind::Rate => "rate like 30k/s",
                KnobKind::Integer => "whole number",
            },
            path: self.paths.first().cloned().unwrap_or_default(),
        };
        match self.kind {
            KnobKind::Rate => Rate::parse(text).map(Rate::as_milli_per_sec).map_err(|_| bad()),
            KnobKind::Integer => parse_integer(text).ok_or_else(bad),
        }
    }

    /// Parses `LO..HI` in this knob's kind.
    ///
    /// # Errors
    /// [`KnobError::BadRange`] or [`KnobError::BadValue`].
    pub fn parse_range(&self, text: &str) -> Result<(u64, u64), KnobError> {
        let (lo, hi) = text
            .split_once("..")
            .ok_or_else(|| KnobError::BadRange(text.to_owned()))?;
        let (lo, hi) = (self.parse_value(lo.trim())?, self.parse_value(hi.trim())?);
        if lo >= hi {
            return Err(KnobError::BadRange(text.to_owned()));
        }
        Ok((lo, hi))
    }

    /// The value as the scenario writes it (`1062.5/s`, `131072`).
    #[must_use]
    pub fn format(&self, value: u64) -> String {
        match self.kind {
            KnobKind::Rate => Rate::from_milli_per_sec(value).to_string(),
            KnobKind::Integer => value.to_string(),
        }
    }

    /// The value in the unit reports use (requests per second for rates).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn as_f64(&self, value: u64) -> f64 {
        match self.kind {
            KnobKind::Rate => value as f64 / 1_000.0,
            KnobKind::Integer => value as f64,
        }
    }

    /// The overrides that set every path to `value`.
    ///
    /// # Errors
    /// A path that is not an override path (the message names it).
    pub fn overrides(&self, value: u64) -> Result<Vec<Override>, String> {
        let v = self.format(value);
        self.paths
            .iter()
            .map(|p| Override::parse(&format!("{p}={v}")).map_err(|e| e.to_string()))
            .collect()
    }

    /// The smallest step worth telling apart: 1 for integers, 1 request/s for rates
    /// (a thousandth of one when the bracket is smaller than a few requests per second).
    #[must_use]
    pub fn quantum(&self, span: u64) -> u64 {
        match self.kind {
            KnobKind::Rate if span > 4_000 => 1_000,
            _ => 1,
        }
    }
}

/// A whole number, with an optional `k`/`M` multiplier and `_` separators.
fn parse_integer(text: &str) -> Option<u64> {
    let t = text.trim().replace('_', "");
    let (num, mult) = if let Some(n) = t.strip_suffix('k') {
        (n.to_owned(), 1_000)
    } else if let Some(n) = t.strip_suffix('M') {
        (n.to_owned(), 1_000_000)
    } else {
        (t, 1)
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// `(kind, value)` of a scalar's text.
fn classify(text: &str) -> Option<(KnobKind, u64)> {
    if text.contains('/') {
        Rate::parse(text)
            .ok()
            .map(|r| (KnobKind::Rate, r.as_milli_per_sec()))
    } else {
        parse_integer(text).map(|v| (KnobKind::Integer, v))
    }
}

/// The field's value as written, or a node's effective sysctl.
fn current_text(base: &Scenario, path: &str) -> Option<String> {
    if let Some(v) = base.value_at(path) {
        return Some(v);
    }
    let rest = path.strip_prefix("nodes.")?;
    let (index, name) = rest.split_once(".sysctl.")?;
    let node = base.nodes.get(index.parse::<usize>().ok()?)?;
    node.sysctls
        .entries()
        .into_iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, v, _)| v)
}

/// What a condition measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// `conntrack -S` `drop`, summed over nodes.
    Drop,
    /// `insert_failed`, summed over nodes.
    InsertFailed,
    /// `early_drop`, summed over nodes.
    EarlyDrop,
    /// Requests that failed after all retries.
    Failed,
    /// Attempts that hit the per-request timeout.
    Timeouts,
    /// Latency percentile of successful requests (ms).
    P50,
    /// See [`Metric::P50`].
    P90,
    /// See [`Metric::P50`].
    P99,
    /// See [`Metric::P50`].
    P999,
    /// Peak packet-processing CPU, percent of the node's CPUs.
    Cpu,
}

impl Metric {
    const NAMES: [(&'static str, Metric); 10] = [
        ("drop", Metric::Drop),
        ("insert_failed", Metric::InsertFailed),
        ("early_drop", Metric::EarlyDrop),
        ("failed", Metric::Failed),
        ("timeouts", Metric::Timeouts),
        ("p50", Metric::P50),
        ("p90", Metric::P90),
        ("p99", Metric::P99),
        ("p999", Metric::P999),
        ("cpu", Metric::Cpu),
    ];

    /// True for the conntrack counters (their onset needs the table to fill).
    #[must_use]
    pub fn is_conntrack(self) -> bool {
        matches!(self, Metric::Drop | Metric::InsertFailed | Metric::EarlyDrop)
    }
}

/// Why a `--until` condition could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    /// No `>` or `>=`.
    #[error("--until {0}: expected METRIC>VALUE (e.g. drop>0, p99>200ms, timeouts>0.1%, cpu>80%@node-a)")]
    NoOperator(String),
    /// An unknown metric.
    #[error(
        "--until {text}: unknown metric `{metric}` (drop, insert_failed, early_drop, failed, timeouts, p50, p90, p99, p999, cpu)"
    )]
    UnknownMetric {
        /// The condition.
        text: String,
        /// The metric as written.
        metric: String,
    },
    /// A threshold that is not a number in the metric's units.
    #[error("--until {text}: `{value}` is not {expected}")]
    BadThreshold {
        /// The condition.
        text: String,
        /// The threshold as written.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// `@node` on a metric that is not per node.
    #[error("--until {0}: only drop, insert_failed, early_drop and cpu are per node (@NODE)")]
    NodeNotAllowed(String),
}

/// A `--until` condition: the metric, a threshold, strictness and an optional node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Condition {
    /// The condition as written.
    pub text: String,
    /// What is measured.
    pub metric: Metric,
    /// The threshold: a count, milliseconds for latencies, percent for `cpu` and for
    /// `%` thresholds of `failed`/`timeouts` (per request sent).
    pub threshold: f64,
    /// The threshold was a percentage of requests sent (`timeouts>0.1%`).
    pub percent: bool,
    /// `>=` rather than `>`.
    pub inclusive: bool,
    /// Only this node (`@node-a`).
    pub node: Option<String>,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Condition {
    /// Parses `METRIC>VALUE[@NODE]` (or `>=`).
    ///
    /// # Errors
    /// [`ConditionError`] naming the text.
    ///
    /// ```
    /// use k8s_netsim::study::knob::{Condition, Metric};
    /// let c = Condition::parse("p99>200ms").unwrap();
    /// assert_eq!(c.metric, Metric::P99);
    /// assert_eq!(c.threshold, 200.0);
    /// ```
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        let t = text.trim();
        let (body, node) = match t.split_once('@') {
            Some((b, n)) if !n.trim().is_empty() => (b.trim(), Some(n.trim().to_owned())),
            Some(_) => return Err(ConditionError::NoOperator(text.to_owned())),
            None => (t, None),
        };
        let (metric, value, inclusive) = if let Some((m, v)) = body.split_once(">=") {
            (m, v, true)
        } else if let Some((m, v)) = body.split_once('>') {
            (m, v, false)
        } else {
            return Err(ConditionError::NoOperator(text.to_owned()));
        };
        let metric_name = metric.trim();
        let Some(&(_, metric)) = Metric::NAMES.iter().find(|(n, _)| *n == metric_name) else {
            return Err(ConditionError::UnknownMetric {
                text: text.to_owned(),
                metric: metric_name.to_owned(),
            });
        };
        let value = value.trim();
        let bad = |expected| ConditionError::BadThreshold {
            text: text.to_owned(),
            value: value.to_owned(),
            expected,
        };
        let number = |s: &str| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        let (threshold, percent) = match metric {
            Metric::P50 | Metric::P90 | Metric::P99 | Metric::P999 => {
                let ms = if let Some(v) = value.strip_suffix("ms") {
                    number(v)
                } else if let Some(v) = value.strip_suffix('s') {
                    number(v).map(|s| s * 1_000.0)
                } else {
                    None
                };
                (ms.ok_or_else(|| bad("a latency such as 200ms or 1.5s"))?, false)
            }
            Metric::Cpu => {
                let pct = value.strip_suffix('%').and_then(number);
                (pct.ok_or_else(|| bad("a share such as 80%"))?, true)
            }
            _ => match value.strip_suffix('%') {
                Some(v) if matches!(metric, Metric::Failed | Metric::Timeouts) => (
                    number(v).ok_or_else(|| bad("a count or a share of requests such as 0.1%"))?,
                    true,
                ),
                Some(_) => return Err(bad("a count (conntrack counters have no share)")),
                None => (number(value).ok_or_else(|| bad("a count such as 0"))?, false),
            },
        };
        if node.is_some() && !(metric.is_conntrack() || metric == Metric::Cpu) {
            return Err(ConditionError::NodeNotAllowed(text.to_owned()));
        }
        Ok(Condition {
            text: t.to_owned(),
            metric,
            threshold,
            percent,
            inclusive,
            node,
        })
    }

    /// The measured value in the threshold's units, and the simulated time it first rose
    /// (conntrack counters only), from one run's report. `None` when `@node` names no node
    /// of the report.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn observe(&self, report: &Report) -> Option<(f64, Option<f64>)> {
        let nodes: Vec<_> = report.nodes.iter().filter(|n| self.covers(&n.name)).collect();
        if nodes.is_empty() {
            return None;
        }
        let share = |v: u64| {
            if self.percent {
                v as f64 * 100.0 / (report.requests.sent.max(1) as f64)
            } else {
                v as f64
            }
        };
        let counter = |get: fn(&crate::report::NodeReport) -> (u64, Option<f64>)| {
            let mut sum = 0u64;
            let mut onset: Option<f64> = None;
            for n in &nodes {
                let (v, t) = get(n);
                sum += v;
                onset = match (onset, t) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            (sum as f64, onset)
        };
        let l = &report.latency_ms;
        Some(match self.metric {
            Metric::Drop => counter(|n| (n.conntrack.stats.drop, n.onset_s.drop)),
            Metric::InsertFailed => counter(|n| (n.conntrack.stats.insert_failed, n.onset_s.insert_failed)),
            Metric::EarlyDrop => counter(|n| (n.conntrack.stats.early_drop, n.onset_s.early_drop)),
            Metric::Failed => (share(report.requests.failed), None),
            Metric::Timeouts => (share(report.requests.timeouts), None),
            Metric::P50 => (l.p50, None),
            Metric::P90 => (l.p90, None),
            Metric::P99 => (l.p99, None),
            Metric::P999 => (l.p999, None),
            Metric::Cpu => (nodes.iter().map(|n| n.cpu.peak_pct).fold(0.0, f64::max), None),
        })
    }

    /// Whether the condition counts node `name` (every node without `@NODE`): the one
    /// rule `observe` and `decided_by` share.
    fn covers(&self, name: &str) -> bool {
        self.node.as_deref().is_none_or(|x| x == name)
    }

    /// Whether a run that meets the condition at some point still meets it at its end:
    /// true for the counters that only grow (the conntrack counters, and `failed` and
    /// `timeouts` as counts). A share of requests, a latency percentile or the CPU peak
    /// of a partial run says nothing certain about the whole run's, so those are never
    /// decided early.
    #[must_use]
    pub fn only_grows(&self) -> bool {
        match self.metric {
            Metric::Drop | Metric::InsertFailed | Metric::EarlyDrop => true,
            Metric::Failed | Metric::Timeouts => !self.percent,
            Metric::P50 | Metric::P90 | Metric::P99 | Metric::P999 | Metric::Cpu => false,
        }
    }

    /// Whether a running simulation already meets the condition for good: it holds on
    /// counters that [`only grow`](Self::only_grows), so the run's end cannot undo it.
    /// Always false for the other metrics.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn decided_by(&self, progress: &crate::sim::Progress<'_>) -> bool {
        if !self.only_grows() {
            return false;
        }
        let nodes: Vec<usize> = progress
            .node_names()
            .enumerate()
            .filter(|(_, name)| self.covers(name))
            .map(|(i, _)| i)
            .collect();
        if nodes.is_empty() {
            // As `observe`: no such node, nothing measured, never held.
            return false;
        }
        let counter = |get: fn(&crate::conntrack::CtStats) -> u64| {
            nodes
                .iter()
                .filter_map(|&i| progress.conntrack_stats(i))
                .map(|s| get(&s))
                .fold(0u64, u64::saturating_add)
        };
        let observed = match self.metric {
            Metric::Drop => counter(|s| s.drop),
            Metric::InsertFailed => counter(|s| s.insert_failed),
            Metric::EarlyDrop => counter(|s| s.early_drop),
            Metric::Failed => progress.failed(),
            Metric::Timeouts => progress.timeouts(),
            Metric::P50 | Metric::P90 | Metric::P99 | Metric::P999 | Metric::Cpu => return false,
        };
        self.holds(observed as f64)
    }

    /// Whether the measured value meets the condition.
    #[must_use]
    pub fn holds(&self, observed: f64) -> bool {
        if self.inclusive {
            observed >= self.threshold
        } else {
            observed > self.threshold
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flash() -> Scenario {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/flash-sale.yaml");
        Scenario::load(path, &[]).unwrap()
    }

    #[test]
    fn conditions_parse_with_their_units() {
        let c = Condition::parse("drop>0").unwrap();
        assert_eq!((c.metric, c.threshold, c.percent), (Metric::Drop, 0.0, false));
        assert!(c.holds(1.0) && !c.holds(0.0));
        let c = Condition::parse("p99>1.5s").unwrap();
        assert!((c.threshold - 1_500.0).abs() < 1e-9);
        let c = Condition::parse("timeouts>0.1%").unwrap();
        assert!(c.percent && (c.threshold - 0.1).abs() < 1e-12);
        let c = Condition::parse("cpu>=80%@node-a").unwrap();
        assert_eq!(c.node.as_deref(), Some("node-a"));
        assert!(c.inclusive && c.holds(80.0));
        let c = Condition::parse("insert_failed > 10").unwrap();
        assert_eq!(c.metric, Metric::InsertFailed);
    }

    /// Only counts that never go down decide a run early; a share of requests sent, a
    /// percentile or the CPU peak of part of a run says nothing about the whole run's.
    #[test]
    fn only_counters_that_grow_are_decided_early() {
        for (text, grows) in [
            ("drop>0", true),
            ("insert_failed>=5@node-a", true),
            ("early_drop>0", true),
            ("failed>10", true),
            ("timeouts>0", true),
            ("timeouts>0.1%", false),
            ("failed>1%", false),
            ("p99>200ms", false),
            ("p50>1s", false),
            ("cpu>80%", false),
        ] {
            assert_eq!(Condition::parse(text).unwrap().only_grows(), grows, "{text}");
        }
    }

    /// What `decided_by` reads from a running simulation is what `observe` reads from its
    /// report: stopped at 5 s, every condition's live decision equals the report's.
    #[test]
    fn a_live_decision_agrees_with_the_report_of_the_run_it_stopped() {
        let sets = [
            crate::scenario::Override::parse("duration=9s").unwrap(),
            crate::scenario::Override::parse("backgroundServices.count=100").unwrap(),
        ];
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/flash-sale.yaml");
        let s = Scenario::load(path, &sets).unwrap();
        let conditions: Vec<Condition> = [
            "drop>0",
            "drop>0@node-a",
            "drop>0@node-b",
            "drop>=0@node-x",
            "drop>100000000",
            "insert_failed>0",
            "early_drop>0",
            "failed>0",
            "timeouts>0",
            "timeouts>=1000000",
        ]
        .iter()
        .map(|t| Condition::parse(t).unwrap())
        .collect();
        let mut live = Vec::new();
        let out = crate::sim::run_until_decided(&s, &mut |_| {}, &mut |p| {
            if p.now().as_nanos() < 5_000_000_000 {
                return false;
            }
            live = conditions.iter().map(|c| c.decided_by(p)).collect();
            true
        })
        .unwrap();
        let from_report: Vec<bool> = conditions
            .iter()
            .map(|c| c.observe(&out.report).is_some_and(|(v, _)| c.holds(v)))
            .collect();
        assert_eq!(live, from_report);
        assert!(live[0] && !live[3] && !live[4], "{live:?}");
    }

    #[test]
    fn malformed_conditions_are_named_errors() {
        assert!(matches!(
            Condition::parse("drop"),
            Err(ConditionError::NoOperator(_))
        ));
        assert!(matches!(
            Condition::parse("drops>0"),
            Err(ConditionError::UnknownMetric { .. })
        ));
        assert!(matches!(
            Condition::parse("p99>200"),
            Err(ConditionError::BadThreshold { .. })
        ));
        assert!(matches!(
            Condition::parse("drop>1%"),
            Err(ConditionError::BadThreshold { .. })
        ));
        assert!(matches!(
            Condition::parse("cpu>80"),
            Err(ConditionError::BadThreshold { .. })
        ));
        assert!(matches!(
            Condition::parse("p99>1s@node-a"),
            Err(ConditionError::NodeNotAllowed(_))
        ));
        let e = Condition::parse("drops>0").unwrap_err().to_string();
        assert!(e.contains("drops>0") && e.contains("unknown metric"), "{e}");
    }

    #[test]
    fn knobs_read_the_current_value_and_write_text_the_scenario_accepts() {
        let s = flash();
        let k = Knob::resolve(&s, &["workloads.0.rate".into()], None).unwrap();
        assert_eq!((k.kind, k.current), (KnobKind::Rate, Some(30_000_000)));
        assert!(k.more_is_load);
        assert_eq!(k.format(1_062_500), "1062.5/s");
        let o = k.overrides(1_062_500).unwrap();
        let s2 = s.with_overrides(&o).unwrap();
        assert_eq!(s2.workloads[0].rate.as_milli_per_sec(), 1_062_500);
        // The max comes from kube-proxy, not the file: read from the effective sysctls.
        let paths = [
            "nodes.0.sysctl.net.netfilter.nf_conntrack_max".to_owned(),
            "nodes.1.sysctl.net.netfilter.nf_conntrack_max".to_owned(),
        ];
        let k = Knob::resolve(&s, &paths, None).unwrap();
        assert_eq!((k.kind, k.current), (KnobKind::Integer, Some(131_072)));
        assert!(!k.more_is_load);
        let s3 = s.with_overrides(&k.overrides(200_000).unwrap()).unwrap();
        assert_eq!(s3.nodes[1].sysctls.values.nf_conntrack_max, 200_000);
        assert_eq!(k.parse_range("64k..256k").unwrap(), (64_000, 256_000));
        assert!(matches!(k.parse_range("5..5"), Err(KnobError::BadRange(_))));
        assert!(matches!(k.parse_value("1k/s"), Err(KnobError::BadValue { .. })));
    }

    #[test]
    fn a_field_the_scenario_does_not_set_needs_a_range() {
        let s = flash();
        let p = ["workloads.0.connection.poolSize".to_owned()];
        assert!(matches!(
            Knob::resolve(&s, &p, None),
            Err(KnobError::NoValue { .. })
        ));
        let k = Knob::resolve(&s, &p, Some("10")).unwrap();
        assert_eq!((k.kind, k.current), (KnobKind::Integer, None));
        let p = ["workloads.0.name".to_owned()];
        assert!(matches!(
            Knob::resolve(&s, &p, None),
            Err(KnobError::NotNumeric { .. })
        ));
    }
}
