//! Alert replay: when the conntrack alerts operators run would have fired on each node,
//! and how much warning they gave before the first `drop` or `insert_failed`.
//!
//! The replay evaluates the rules of [`AlertRule::standard`] on the run's time series the
//! way Prometheus evaluates alerting rules:
//! - a *scrape* every `scrape_interval` reads the newest sample at or before it (the
//!   exporter reports the counter as it is at that instant);
//! - every `evaluation_interval` the rule's expression is computed from the scrapes: an
//!   instant selector takes the newest scrape (within Prometheus' 5 min lookback);
//!   `rate(x[5m])` needs at least two scrapes inside the window and is above 0 exactly
//!   when the newest one is higher than the oldest (the counters never go down, so no
//!   reset correction applies);
//! - a rule whose expression holds turns *pending*; it *fires* at the first evaluation at
//!   least `for:` after it turned pending, and falls back to inactive (the `for:` clock
//!   restarting) at any evaluation where the expression does not hold.
//!
//! Simplifications, all stated in `docs/report-format.md`: scrapes and evaluations are
//! aligned to simulated t = 0 (a real Prometheus staggers them; a different phase moves
//! an alert by up to one scrape plus one evaluation interval later); the first scrape is
//! the first sample (the table is empty before it); scrape duration and
//! Alertmanager's grouping delay are not modelled.

use serde::Serialize;

use super::{Report, TimeSeries};

/// What a rule's expression computes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AlertExpr {
    /// `(node_nf_conntrack_entries / node_nf_conntrack_entries_limit) > threshold`.
    EntriesRatioAbove {
        /// The ratio (0.75).
        threshold: f64,
    },
    /// `rate(node_nf_conntrack_stat_drop[window]) > 0`.
    DropRateAboveZero {
        /// The range window, seconds (300).
        window_s: f64,
    },
}

/// One alerting rule as replayed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertRule {
    /// Short id used in tables (`entries>75%`).
    pub id: &'static str,
    /// The alert's name (`NodeHighNumberConntrackEntriesUsed`).
    pub alert: &'static str,
    /// The PromQL expression, as written in the rule.
    pub expr: &'static str,
    /// What the replay computes.
    pub computes: AlertExpr,
    /// The rule's `for:`, seconds (0 = fires at the first evaluation that holds).
    pub for_s: f64,
    /// Where the rule comes from.
    pub source: &'static str,
}

impl AlertRule {
    /// The four rules the replay evaluates: node_exporter's mixin rule at 75 %, its
    /// common 80 % variant, and the drop-rate rule without and with `for: 2m`.
    #[must_use]
    pub fn standard() -> Vec<AlertRule> {
        vec![
            AlertRule {
                id: "entries>75%",
                alert: "NodeHighNumberConntrackEntriesUsed",
                expr: "(node_nf_conntrack_entries / node_nf_conntrack_entries_limit) > 0.75",
                computes: AlertExpr::EntriesRatioAbove { threshold: 0.75 },
                for_s: 0.0,
                source: "node_exporter node-mixin (docs/node-mixin/alerts/alerts.libsonnet; also shipped by kube-prometheus); no for:",
            },
            AlertRule {
                id: "entries>80%",
                alert: "NodeHighNumberConntrackEntriesUsed",
                expr: "(node_nf_conntrack_entries / node_nf_conntrack_entries_limit) > 0.8",
                computes: AlertExpr::EntriesRatioAbove { threshold: 0.8 },
                for_s: 0.0,
                source: "the same rule with the 0.8 threshold many teams use; no for:",
            },
            AlertRule {
                id: "drop-rate",
                alert: "NodeConntrackPacketsDropped",
                expr: "rate(node_nf_conntrack_stat_drop[5m]) > 0",
                computes: AlertExpr::DropRateAboveZero { window_s: 300.0 },
                for_s: 0.0,
                source: "the drop alert operators write themselves (node_exporter's mixin ships none); no for:",
            },
            AlertRule {
                id: "drop-rate for 2m",
                alert: "NodeConntrackPacketsDropped",
                expr: "rate(node_nf_conntrack_stat_drop[5m]) > 0",
                computes: AlertExpr::DropRateAboveZero { window_s: 300.0 },
                for_s: 120.0,
                source: "Red Hat Cloud Experts' conntrack alerting guide for OpenShift (for: 2m, to ignore single-scrape blips)",
            },
        ]
    }
}

/// How often the replayed Prometheus scrapes and evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ReplaySettings {
    /// What these settings stand for.
    pub label: &'static str,
    /// Scrape interval, seconds.
    pub scrape_interval_s: f64,
    /// Rule evaluation interval, seconds.
    pub evaluation_interval_s: f64,
}

impl ReplaySettings {
    /// The run's own resolution: a scrape and an evaluation at every sample. The best any
    /// monitoring could do.
    #[must_use]
    pub fn at_sample_interval(sample_interval_s: f64) -> ReplaySettings {
        ReplaySettings {
            label: "every sample",
            scrape_interval_s: sample_interval_s,
            evaluation_interval_s: sample_interval_s,
        }
    }

    /// A typical cluster: kube-prometheus scrapes node-exporter every 15 s and the
    /// Prometheus Operator evaluates rules every 30 s by default.
    #[must_use]
    pub fn kube_prometheus() -> ReplaySettings {
        ReplaySettings {
            label: "kube-prometheus (15 s scrape, 30 s evaluation)",
            scrape_interval_s: 15.0,
            evaluation_interval_s: 30.0,
        }
    }
}

/// One rule on one node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleOutcome {
    /// [`AlertRule::id`].
    pub rule: &'static str,
    /// First evaluation at which the expression held (the alert turned pending), seconds.
    pub pending_at_s: Option<f64>,
    /// First evaluation at which the alert fired, seconds; `None` if it did not fire
    /// before the run ended.
    pub firing_at_s: Option<f64>,
}

/// How the first alert relates to the first packet loss on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Warning {
    /// An alert fired before the first `drop`/`insert_failed`: `lead_time_s` > 0.
    Ahead,
    /// The first alert fired at or after the first loss: `lead_time_s` ≤ 0.
    Late,
    /// Packets were lost, but no alert fired before the run ended.
    NoAlert,
    /// No `drop` or `insert_failed` on this node (an alert may still have fired).
    NoLoss,
}

/// Alerts on one node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeAlerts {
    /// Node name.
    pub node: String,
    /// One per rule, in rule order.
    pub rules: Vec<RuleOutcome>,
    /// The earliest firing rule and when.
    pub first_alert: Option<FiredAlert>,
    /// The first `drop` or `insert_failed` (`nodes[].onset_s`), seconds.
    pub first_loss_s: Option<f64>,
    /// Which counter that was.
    pub first_loss_counter: Option<&'static str>,
    /// `first_loss_s - first_alert.at_s`: positive is warning time, negative means the
    /// alert came after the loss.
    pub lead_time_s: Option<f64>,
    /// The verdict on the warning.
    pub warning: Warning,
}

/// A rule that fired.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FiredAlert {
    /// [`AlertRule::id`].
    pub rule: &'static str,
    /// When, seconds.
    pub at_s: f64,
}

/// One replay (one choice of scrape and evaluation interval) over every node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertReplay {
    /// The intervals.
    pub settings: ReplaySettings,
    /// Per node, in scenario order.
    pub nodes: Vec<NodeAlerts>,
    /// The run's earliest alert on any node.
    pub first_alert: Option<NodeFiredAlert>,
    /// The run's earliest loss on any node (the verdict when it is `drop`/`insert_failed`).
    pub first_loss_s: Option<f64>,
    /// `first_loss_s - first_alert.at_s`.
    pub lead_time_s: Option<f64>,
    /// The verdict on the warning, cluster-wide.
    pub warning: Warning,
}

/// An alert on a node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeFiredAlert {
    /// Node.
    pub node: String,
    /// Rule id.
    pub rule: &'static str,
    /// When, seconds.
    pub at_s: f64,
}

/// The rules and their replays at each setting.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertReport {
    /// The rules, as replayed.
    pub rules: Vec<AlertRule>,
    /// One replay per setting: the run's own sample interval first, then kube-prometheus'
    /// defaults.
    pub replays: Vec<AlertReplay>,
}

const NS: f64 = 1e9;

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn to_ns(s: f64) -> u64 {
    (s * NS).round().max(0.0) as u64
}

#[allow(clippy::cast_precision_loss)]
fn to_s(ns: u64) -> f64 {
    (ns as f64 / 1e6).round() / 1e3
}

/// A node's scraped values: `(time ns, entries, limit, drop)`.
type Scrape = (u64, u64, u64, u64);

fn scrapes(ts: &TimeSeries, node: usize, interval_ns: u64, end_ns: u64) -> Vec<Scrape> {
    let limit = ts.max.get(node).copied().unwrap_or(0);
    let mut out: Vec<Scrape> = Vec::new();
    let mut next = interval_ns.max(1);
    let mut last: Option<(u64, u64)> = None;
    let mut rows = ts.samples.iter().peekable();
    while next <= end_ns {
        while let Some(r) = rows.peek() {
            if to_ns(r.t_s) <= next {
                last = Some((
                    r.count.get(node).copied().unwrap_or(0),
                    r.counters.get(node).map_or(0, |c| c.drop),
                ));
                rows.next();
            } else {
                break;
            }
        }
        if let Some((entries, drop)) = last {
            out.push((next, entries, limit, drop));
        }
        next += interval_ns.max(1);
    }
    out
}

fn holds(expr: AlertExpr, scrapes: &[Scrape], at: u64) -> bool {
    const LOOKBACK_NS: u64 = 300_000_000_000;
    match expr {
        AlertExpr::EntriesRatioAbove { threshold } => scrapes
            .iter()
            .rev()
            .find(|s| s.0 <= at)
            .filter(|s| at - s.0 <= LOOKBACK_NS && s.2 > 0)
            .is_some_and(|s| {
                #[allow(clippy::cast_precision_loss)]
                let ratio = s.1 as f64 / s.2 as f64;
                ratio > threshold
            }),
        AlertExpr::DropRateAboveZero { window_s } => {
            let w = to_ns(window_s);
            let inside: Vec<&Scrape> = scrapes.iter().filter(|s| s.0 <= at && s.0 + w > at).collect();
            match (inside.first(), inside.last()) {
                (Some(a), Some(b)) if inside.len() >= 2 => b.3 > a.3,
                _ => false,
            }
        }
    }
}

fn replay_rule(rule: &AlertRule, scrapes: &[Scrape], eval_ns: u64, end_ns: u64) -> RuleOutcome {
    let for_ns = to_ns(rule.for_s);
    let mut pending_since: Option<u64> = None;
    let mut first_pending = None;
    let mut firing = None;
    let mut at = eval_ns.max(1);
    while at <= end_ns {
        if holds(rule.computes, scrapes, at) {
            let since = *pending_since.get_or_insert(at);
            first_pending.get_or_insert(at);
            if at - since >= for_ns {
                firing = Some(at);
                break;
            }
        } else {
            pending_since = None;
        }
        at += eval_ns.max(1);
    }
    RuleOutcome {
        rule: rule.id,
        pending_at_s: first_pending.map(to_s),
        firing_at_s: firing.map(to_s),
    }
}

fn warning(alert: Option<f64>, loss: Option<f64>) -> (Option<f64>, Warning) {
    match (alert, loss) {
        (_, None) => (None, Warning::NoLoss),
        (None, Some(_)) => (None, Warning::NoAlert),
        (Some(a), Some(l)) => {
            let lead = ((l - a) * 1e3).round() / 1e3;
            (
                Some(lead),
                if lead > 0.0 { Warning::Ahead } else { Warning::Late },
            )
        }
    }
}

impl AlertReplay {
    /// Replays `rules` on a run.
    #[must_use]
    pub fn run(
        report: &Report,
        ts: &TimeSeries,
        rules: &[AlertRule],
        settings: ReplaySettings,
    ) -> AlertReplay {
        let end_ns = to_ns(report.duration_s);
        let scrape_ns = to_ns(settings.scrape_interval_s);
        let eval_ns = to_ns(settings.evaluation_interval_s);
        let mut nodes = Vec::new();
        for (i, n) in report.nodes.iter().enumerate() {
            let sc = scrapes(ts, i, scrape_ns, end_ns);
            let outcomes: Vec<RuleOutcome> = rules
                .iter()
                .map(|r| replay_rule(r, &sc, eval_ns, end_ns))
                .collect();
            let first_alert = outcomes
                .iter()
                .filter_map(|o| {
                    o.firing_at_s.map(|t| FiredAlert {
                        rule: o.rule,
                        at_s: t,
                    })
                })
                .min_by(|a, b| a.at_s.total_cmp(&b.at_s));
            let (first_loss_s, first_loss_counter) = match (n.onset_s.drop, n.onset_s.insert_failed) {
                (Some(d), Some(f)) if f < d => (Some(f), Some("insert_failed")),
                (Some(d), _) => (Some(d), Some("drop")),
                (None, Some(f)) => (Some(f), Some("insert_failed")),
                (None, None) => (None, None),
            };
            let (lead_time_s, warn) = warning(first_alert.as_ref().map(|a| a.at_s), first_loss_s);
            nodes.push(NodeAlerts {
                node: n.name.clone(),
                rules: outcomes,
                first_alert,
                first_loss_s,
                first_loss_counter,
                lead_time_s,
                warning: warn,
            });
        }
        let first_alert = nodes
            .iter()
            .filter_map(|n| {
                n.first_alert.as_ref().map(|a| NodeFiredAlert {
                    node: n.node.clone(),
                    rule: a.rule,
                    at_s: a.at_s,
                })
            })
            .min_by(|a, b| a.at_s.total_cmp(&b.at_s));
        let first_loss_s = nodes.iter().filter_map(|n| n.first_loss_s).min_by(f64::total_cmp);
        let (lead_time_s, warn) = warning(first_alert.as_ref().map(|a| a.at_s), first_loss_s);
        AlertReplay {
            settings,
            nodes,
            first_alert,
            first_loss_s,
            lead_time_s,
            warning: warn,
        }
    }
}

impl AlertReport {
    /// The standard rules replayed at the run's sample interval and at kube-prometheus'
    /// defaults.
    #[must_use]
    pub fn standard(report: &Report, ts: &TimeSeries, sample_interval_s: f64) -> AlertReport {
        let rules = AlertRule::standard();
        let replays = [
            ReplaySettings::at_sample_interval(sample_interval_s),
            ReplaySettings::kube_prometheus(),
        ]
        .into_iter()
        .map(|s| AlertReplay::run(report, ts, &rules, s))
        .collect();
        AlertReport { rules, replays }
    }

    /// One line per replay: the first alert, the first loss and the lead time
    /// (`every sample: entries>75% on node-a at 3.300 s, drop at 4.379 s: 1.079 s of warning`).
    #[must_use]
    pub fn summary_lines(&self) -> Vec<String> {
        self.replays
            .iter()
            .map(|r| {
                let alert = r.first_alert.as_ref().map_or_else(
                    || "no alert fired".to_owned(),
                    |a| format!("{} on {} at {:.3} s", a.rule, a.node, a.at_s),
                );
                let verdict = match (r.warning, r.lead_time_s, r.first_loss_s) {
                    (Warning::Ahead, Some(l), Some(t)) => {
                        format!("first loss at {t:.3} s: {l:.3} s of warning")
                    }
                    (Warning::Late, Some(l), Some(t)) => {
                        format!("first loss at {t:.3} s: the alert came {:.3} s after it", -l)
                    }
                    (Warning::NoAlert, _, Some(t)) => {
                        format!("first loss at {t:.3} s: no warning before the run ended")
                    }
                    _ => "no drop or insert_failed".to_owned(),
                };
                format!("{}: {alert}; {verdict}", r.settings.label)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Sample;

    fn series(counts: &[u64], drops: &[u64], max: u64) -> TimeSeries {
        TimeSeries {
            nodes: vec!["node-a".into()],
            max: vec![max],
            samples: counts
                .iter()
                .zip(drops)
                .enumerate()
                .map(|(i, (c, d))| {
                    let mut s = Sample {
                        t_s: (i + 1) as f64,
                        count: vec![*c],
                        ..Sample::default()
                    };
                    s.counters = vec![crate::report::ConntrackCounters {
                        drop: *d,
                        ..Default::default()
                    }];
                    s
                })
                .collect(),
        }
    }

    fn rule(expr: AlertExpr, for_s: f64) -> AlertRule {
        AlertRule {
            id: "r",
            alert: "A",
            expr: "",
            computes: expr,
            for_s,
            source: "",
        }
    }

    #[test]
    fn entries_rule_fires_at_the_first_evaluation_above_the_threshold() {
        let ts = series(&[10, 50, 76, 80, 100], &[0, 0, 0, 0, 5], 100);
        let sc = scrapes(&ts, 0, to_ns(1.0), to_ns(5.0));
        let r = replay_rule(
            &rule(AlertExpr::EntriesRatioAbove { threshold: 0.75 }, 0.0),
            &sc,
            to_ns(1.0),
            to_ns(5.0),
        );
        assert_eq!(r.firing_at_s, Some(3.0));
        // Evaluated every 2 s: at 2 s (50 %) no, at 4 s (80 %) yes.
        let r = replay_rule(
            &rule(AlertExpr::EntriesRatioAbove { threshold: 0.75 }, 0.0),
            &sc,
            to_ns(2.0),
            to_ns(5.0),
        );
        assert_eq!(r.firing_at_s, Some(4.0));
    }

    #[test]
    fn for_duration_needs_the_expression_to_hold_at_every_evaluation() {
        // Above 75 % at 2 s, below at 3 s (pending resets), above from 4 s on.
        let ts = series(&[10, 90, 10, 90, 90, 90, 90], &[0; 7], 100);
        let sc = scrapes(&ts, 0, to_ns(1.0), to_ns(7.0));
        let r = replay_rule(
            &rule(AlertExpr::EntriesRatioAbove { threshold: 0.75 }, 2.0),
            &sc,
            to_ns(1.0),
            to_ns(7.0),
        );
        assert_eq!(r.pending_at_s, Some(2.0));
        assert_eq!(r.firing_at_s, Some(6.0), "pending again at 4 s, fires 2 s later");
    }

    #[test]
    fn rate_needs_two_scrapes_in_the_window_and_an_increase() {
        let ts = series(&[0; 6], &[0, 0, 3, 3, 3, 3], 100);
        let sc = scrapes(&ts, 0, to_ns(1.0), to_ns(6.0));
        let e = AlertExpr::DropRateAboveZero { window_s: 300.0 };
        assert!(!holds(e, &sc, to_ns(1.0)), "one scrape only");
        assert!(!holds(e, &sc, to_ns(2.0)));
        assert!(holds(e, &sc, to_ns(3.0)));
        // With a 2 s window the increase leaves the window at 5 s (scrapes 4 s and 5 s equal).
        let short = AlertExpr::DropRateAboveZero { window_s: 2.0 };
        assert!(holds(short, &sc, to_ns(3.0)));
        assert!(!holds(short, &sc, to_ns(5.0)));
    }

    #[test]
    fn scrapes_read_the_newest_sample_at_or_before_them() {
        let ts = series(&[1, 2, 3, 4, 5, 6], &[0; 6], 100);
        let sc = scrapes(&ts, 0, to_ns(2.5), to_ns(6.0));
        assert_eq!(
            sc.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
            [(to_ns(2.5), 2), (to_ns(5.0), 5)]
        );
    }

    #[test]
    fn lead_time_is_loss_minus_first_alert() {
        assert_eq!(warning(Some(3.0), Some(4.5)), (Some(1.5), Warning::Ahead));
        assert_eq!(warning(Some(30.0), Some(4.5)), (Some(-25.5), Warning::Late));
        assert_eq!(warning(None, Some(4.5)), (None, Warning::NoAlert));
        assert_eq!(warning(Some(3.0), None), (None, Warning::NoLoss));
    }
}
