//! The comparison's charts, each overlaying the variants over simulated time, and its
//! self-contained HTML page.

use crate::report::TimeSeries;
use crate::report::chart::{Axis, Dash, LineChart, Marker, MarkerKind, Series, ValueFormat, short_seconds};
use crate::report::html::{self, Page};

use super::Comparison;

impl Comparison {
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
