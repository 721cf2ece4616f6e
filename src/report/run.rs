//! The document a run writes (`report.json`, `run --json`): the simulation's [`Report`]
//! plus what this module derives from the time series (alert replay, who fills the
//! table), and the run's charts.

use serde::Serialize;

use super::alerts::AlertReport;
use super::census::NodeCensusReport;
use super::chart::{Axis, Dash, LineChart, Marker, MarkerKind, Scale, Series, ValueFormat, short_seconds};
use super::{Report, TimeSeries};

/// A run's report with the sections derived from its time series. Serialises flat: the
/// [`Report`]'s fields, then `alerts` and `census`.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// What the simulation measured.
    #[serde(flatten)]
    pub report: Report,
    /// When the usual conntrack alerts would have fired, and the warning they gave.
    pub alerts: AlertReport,
    /// Who fills each node's table (empty lists when the simulation took no census).
    pub census: Vec<NodeCensusReport>,
}

impl std::ops::Deref for RunReport {
    type Target = Report;

    fn deref(&self) -> &Report {
        &self.report
    }
}

impl RunReport {
    /// Derives the alert replay and the census from `ts`.
    #[must_use]
    pub fn new(report: Report, ts: &TimeSeries) -> RunReport {
        let interval = if ts.interval_s() > 0.0 {
            ts.interval_s()
        } else {
            report.duration_s
        };
        let alerts = AlertReport::standard(&report, ts, interval);
        let snaps = ts.census_snapshots();
        let census = report
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeCensusReport::collect(&n.name, i, &snaps))
            .collect();
        RunReport {
            report,
            alerts,
            census,
        }
    }

    /// `scenario flash-sale · seed 42 · kernel 5.4 · kube-proxy iptables`.
    #[must_use]
    pub fn subtitle(&self) -> String {
        format!(
            "scenario {} · seed {} · kernel {} · kube-proxy {}",
            self.report.scenario, self.report.seed, self.report.kernel, self.report.proxy_mode
        )
    }

    /// Onsets (`drop`, `insert_failed`) and each node's first alert in every replay, as
    /// chart markers.
    #[must_use]
    pub fn markers(&self) -> Vec<Marker> {
        let mut out = Vec::new();
        for n in &self.report.nodes {
            for (what, t) in [
                ("drop", n.onset_s.drop),
                ("insert_failed", n.onset_s.insert_failed),
            ] {
                if let Some(x) = t {
                    out.push(Marker {
                        x,
                        label: format!("{what} {} {}", n.name, short_seconds(x)),
                        kind: MarkerKind::Onset,
                    });
                }
            }
        }
        for (k, replay) in self.alerts.replays.iter().enumerate() {
            for n in &replay.nodes {
                if let Some(a) = &n.first_alert {
                    let which = if k == 0 {
                        String::new()
                    } else {
                        format!(" ({} s scrape)", replay.settings.scrape_interval_s)
                    };
                    out.push(Marker {
                        x: a.at_s,
                        label: format!("{} {}{which}", a.rule, n.node),
                        kind: MarkerKind::Alert,
                    });
                }
            }
        }
        out.sort_by(|a, b| a.x.total_cmp(&b.x));
        out
    }

    /// The run's charts, by file name.
    #[must_use]
    pub fn charts(&self, ts: &TimeSeries) -> Vec<(String, LineChart)> {
        let sub = self.subtitle();
        let markers = self.markers();
        let mut out = vec![
            ("conntrack-count.svg".to_owned(), count_chart(ts, &sub, &markers)),
            (
                "conntrack-counters.svg".to_owned(),
                counters_chart(ts, &sub, &markers),
            ),
            ("latency.svg".to_owned(), latency_chart(ts, &sub, &markers)),
            ("requests.svg".to_owned(), requests_chart(ts, &sub, &markers)),
        ];
        for c in &self.census {
            for (by, name) in [(CensusBy::Workload, "workload"), (CensusBy::State, "state")] {
                if let Some(chart) = census_chart(c, by, &sub) {
                    out.push((format!("census-{}-{name}.svg", c.node), chart));
                }
            }
        }
        out
    }
}

fn as_f64(v: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let f = v as f64;
    f
}

/// `nf_conntrack_count` per node with its `nf_conntrack_max` dashed in the same colour.
#[must_use]
pub fn count_chart(ts: &TimeSeries, subtitle: &str, markers: &[Marker]) -> LineChart {
    let mut series = Vec::new();
    for (i, n) in ts.nodes.iter().enumerate() {
        series.push(Series::line(
            format!("{n} count"),
            i,
            ts.samples
                .iter()
                .map(|r| (r.t_s, as_f64(r.count.get(i).copied().unwrap_or(0)))),
        ));
        let max = ts.max.get(i).copied().unwrap_or(0);
        let mut m = Series::line(
            format!("{n} max {max}"),
            i,
            ts.samples.iter().map(|r| (r.t_s, as_f64(max))),
        );
        m.dash = Dash::Dashed;
        series.push(m);
    }
    LineChart {
        title: "conntrack entries against the table size, per node".into(),
        subtitle: subtitle.to_owned(),
        x: Axis::time(),
        y: Axis::linear("entries", ValueFormat::Count),
        series,
        markers: markers.to_vec(),
        stacked: false,
    }
}

/// The loss counters that moved, per node (log scale: they span decades).
#[must_use]
pub fn counters_chart(ts: &TimeSeries, subtitle: &str, markers: &[Marker]) -> LineChart {
    let mut series = Vec::new();
    for (i, n) in ts.nodes.iter().enumerate() {
        for (name, get) in [
            (
                "drop",
                (|c: &super::ConntrackCounters| c.drop) as fn(&super::ConntrackCounters) -> u64,
            ),
            ("insert_failed", |c| c.insert_failed),
            ("early_drop", |c| c.early_drop),
            ("clash_resolve", |c| c.clash_resolve),
        ] {
            let pts: Vec<(f64, Option<f64>)> = ts
                .samples
                .iter()
                .map(|r| (r.t_s, Some(as_f64(r.counters.get(i).map_or(0, get)))))
                .collect();
            if pts.iter().any(|p| p.1.unwrap_or(0.0) > 0.0) {
                let slot = series.len();
                series.push(Series {
                    name: format!("{n} {name}"),
                    points: pts,
                    slot,
                    dash: Dash::Solid,
                    dots: false,
                });
            }
        }
    }
    LineChart {
        title: "conntrack -S loss counters (cumulative, summed over CPUs)".into(),
        subtitle: if series.is_empty() {
            format!("{subtitle} · no drop, insert_failed, early_drop or clash_resolve")
        } else {
            subtitle.to_owned()
        },
        x: Axis::time(),
        y: Axis::log("count (log)", ValueFormat::Count),
        series,
        markers: markers.to_vec(),
        stacked: false,
    }
}

/// p50 and p99 latency of the requests completed in each interval; an interval in which
/// nothing completed is a gap.
#[must_use]
pub fn latency_chart(ts: &TimeSeries, subtitle: &str, markers: &[Marker]) -> LineChart {
    let series = vec![
        Series {
            name: "p50 (completed requests)".into(),
            points: ts.samples.iter().map(|r| (r.t_s, r.p50_ms())).collect(),
            slot: 0,
            dash: Dash::Solid,
            dots: false,
        },
        Series {
            name: "p99 (completed requests)".into(),
            points: ts.samples.iter().map(|r| (r.t_s, r.p99_ms())).collect(),
            slot: 3,
            dash: Dash::Solid,
            dots: false,
        },
    ];
    let gaps = ts.samples.iter().filter(|r| r.ok == 0).count();
    LineChart {
        title: "latency of requests completed in each interval".into(),
        subtitle: if gaps > 0 {
            format!("{subtitle} · gaps: {gaps} intervals with no completed request")
        } else {
            subtitle.to_owned()
        },
        x: Axis::time(),
        y: Axis::log("latency (log)", ValueFormat::Millis),
        series,
        markers: markers.to_vec(),
        stacked: false,
    }
}

/// Requests answered and failed per second, the success share, and timeouts per second
/// when the simulation measured them.
#[must_use]
pub fn requests_chart(ts: &TimeSeries, subtitle: &str, markers: &[Marker]) -> LineChart {
    let dt = ts.interval_s().max(f64::MIN_POSITIVE);
    let mut series = vec![
        Series::line(
            "answered (ok) per s",
            2,
            ts.samples.iter().map(|r| (r.t_s, as_f64(r.ok) / dt)),
        ),
        Series::line(
            "failed per s",
            3,
            ts.samples.iter().map(|r| (r.t_s, as_f64(r.failed) / dt)),
        ),
    ];
    if ts.samples.iter().any(|r| r.timeouts.is_some()) {
        series.push(Series {
            name: "timeouts per s".into(),
            points: ts
                .samples
                .iter()
                .map(|r| (r.t_s, r.timeouts.map(|v| as_f64(v) / dt)))
                .collect(),
            slot: 1,
            dash: Dash::Dotted,
            dots: false,
        });
    }
    LineChart {
        title: "request outcomes per second".into(),
        subtitle: subtitle.to_owned(),
        x: Axis::time(),
        y: Axis {
            label: "requests per second".into(),
            scale: Scale::Linear,
            format: ValueFormat::Count,
            ticks_at: None,
        },
        series,
        markers: markers.to_vec(),
        stacked: false,
    }
}

/// Success share of completions per interval (`None` when nothing completed).
#[must_use]
pub fn success_pct(ts: &TimeSeries) -> Vec<(f64, Option<f64>)> {
    ts.samples
        .iter()
        .map(|r| {
            let done = r.ok + r.failed;
            (r.t_s, (done > 0).then(|| as_f64(r.ok) * 100.0 / as_f64(done)))
        })
        .collect()
}

/// Which breakdown a census chart stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CensusBy {
    /// By the workload that opened the flow.
    Workload,
    /// By protocol and TCP state.
    State,
}

/// Who fills a node's table over time, stacked by workload or by protocol and TCP state,
/// the largest layer at the bottom. `None` without periodic snapshots.
#[must_use]
pub fn census_chart(c: &NodeCensusReport, by: CensusBy, subtitle: &str) -> Option<LineChart> {
    let cols = &c.over_time;
    if cols.t_s.is_empty() {
        return None;
    }
    let (map, what) = match by {
        CensusBy::Workload => (&cols.by_workload, "workload"),
        CensusBy::State => (&cols.by_state, "protocol and TCP state"),
    };
    let mut layers: Vec<(&String, &Vec<u64>)> = map.iter().collect();
    layers.sort_by(|a, b| b.1.iter().max().cmp(&a.1.iter().max()).then_with(|| a.0.cmp(b.0)));
    let series = layers
        .iter()
        .enumerate()
        .map(|(k, (name, v))| {
            Series::line(
                (*name).clone(),
                k,
                cols.t_s.iter().zip(v.iter()).map(|(t, n)| (*t, as_f64(*n))),
            )
        })
        .collect();
    Some(LineChart {
        title: format!("who fills {}'s table: entries by {what}", c.node),
        subtitle: subtitle.to_owned(),
        x: Axis::time(),
        y: Axis::linear("entries", ValueFormat::Count),
        series,
        markers: Vec::new(),
        stacked: true,
    })
}
