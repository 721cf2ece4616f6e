//! A sweep written out: CSV rows, charts (a line chart per metric for one parameter, a
//! heatmap for two) and the text table.

use std::fmt::Write as _;

use super::grid::grid_size;
use super::{Row, Sweep};
use crate::report::chart::{Axis, Dash, Heatmap, LineChart, Series, ValueFormat};

/// `mean of 1 seed`, `mean of 3 seeds`.
fn mean_of(seeds: usize) -> String {
    if seeds == 1 {
        "1 seed".to_owned()
    } else {
        format!("mean of {seeds} seeds")
    }
}

impl Sweep {
    /// Rows as CSV: `index`, one column per parameter, `seed`, then the metrics.
    #[must_use]
    pub fn to_csv(&self) -> String {
        let mut s = String::from("index");
        for p in &self.params {
            let _ = write!(s, ",{}", p.paths.join("+"));
        }
        s.push_str(",seed,verdict,verdict_at_s,count_peak,max,drop,insert_failed,early_drop,p50_ms,p99_ms,sent,timeouts,failed,cpu_peak_pct,conclusive\n");
        for r in &self.rows {
            let _ = write!(s, "{}", r.index);
            for v in &r.values {
                let _ = write!(s, ",{v}");
            }
            let _ = writeln!(
                s,
                ",{},{},{},{},{},{},{},{},{:.3},{:.3},{},{},{},{:.2},{}",
                r.seed,
                r.verdict.replace(',', ";"),
                r.verdict_at_s.map_or_else(String::new, |t| format!("{t:.3}")),
                r.count_peak,
                r.max,
                r.drop,
                r.insert_failed,
                r.early_drop,
                r.p50_ms,
                r.p99_ms,
                r.sent,
                r.timeouts,
                r.failed,
                r.cpu_peak_pct,
                r.conclusive
            );
        }
        s
    }

    /// The rows' mean over seeds of `f` at every grid point, in point order.
    #[allow(clippy::cast_precision_loss)]
    pub(super) fn means(&self, f: fn(&Row) -> f64) -> Vec<Option<f64>> {
        let n = self.seeds.len().max(1);
        let points = grid_size(&self.params, 1).unwrap_or(0);
        let mut sum = vec![(0.0, 0usize); points];
        for r in &self.rows {
            if let Some(slot) = sum.get_mut(r.index / n) {
                slot.0 += f(r);
                slot.1 += 1;
            }
        }
        sum.into_iter()
            .map(|(s, c)| (c > 0).then(|| s / c as f64))
            .collect()
    }

    /// Charts of the metrics against the parameters (mean over seeds): line charts for
    /// one parameter, heatmaps for two, none for more.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn charts(&self) -> Vec<(String, String)> {
        let metrics: [(&str, &str, ValueFormat, RowMetric); 4] = [
            (
                "drops",
                "drop + insert_failed (packets)",
                ValueFormat::Count,
                |r| (r.drop + r.insert_failed) as f64,
            ),
            ("p99", "p99 latency", ValueFormat::Millis, |r| r.p99_ms),
            (
                "peak-count",
                "peak nf_conntrack_count (entries)",
                ValueFormat::Count,
                |r| r.count_peak as f64,
            ),
            ("timeouts", "timeouts (attempts)", ValueFormat::Count, |r| {
                r.timeouts as f64
            }),
        ];
        let mut out = Vec::new();
        match self.params.as_slice() {
            [p] => {
                for (file, label, format, f) in metrics {
                    let points = p
                        .numeric
                        .iter()
                        .zip(self.means(f))
                        .map(|(x, y)| (*x, y))
                        .collect();
                    let ticks_at = (p.numeric.len() <= 12).then(|| p.numeric.clone());
                    out.push((
                        format!("sweep-{file}.svg"),
                        LineChart {
                            title: format!("{label} against {}", p.paths.join(",")),
                            subtitle: format!("scenario {} · {}", self.scenario, seeds_text(&self.seeds)),
                            x: Axis {
                                label: p.axis_label(),
                                scale: crate::report::chart::Scale::Linear,
                                format: ValueFormat::Count,
                                ticks_at,
                            },
                            y: Axis::linear(label, format),
                            series: vec![Series {
                                name: mean_of(self.seeds.len()),
                                points,
                                slot: 0,
                                dash: Dash::Solid,
                                dots: true,
                            }],
                            markers: Vec::new(),
                            stacked: false,
                        }
                        .render(),
                    ));
                }
            }
            [px, py] => {
                for (file, label, _, f) in metrics {
                    let m = self.means(f);
                    let nx = px.values.len();
                    // Points run y-major (the last parameter fastest): index = ix * ny + iy.
                    let cells = (0..py.values.len())
                        .map(|iy| {
                            (0..nx)
                                .map(|ix| m.get(ix * py.values.len() + iy).copied().flatten())
                                .collect()
                        })
                        .collect();
                    out.push((
                        format!("sweep-{file}-heatmap.svg"),
                        Heatmap {
                            title: label.to_owned(),
                            subtitle: format!("scenario {} · {}", self.scenario, seeds_text(&self.seeds)),
                            x_label: px.axis_label(),
                            y_label: py.axis_label(),
                            x_values: px.values.clone(),
                            y_values: py.values.clone(),
                            cells,
                        }
                        .render(),
                    ));
                }
            }
            _ => {}
        }
        out
    }

    /// A short text summary: one line per grid point (first seed's verdict, worst p99).
    #[must_use]
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: sweep of {} ({}{})",
            self.scenario,
            self.params
                .iter()
                .map(|p| p.text.as_str())
                .collect::<Vec<_>>()
                .join(" x "),
            crate::study::count(self.rows.len(), "run", "runs"),
            self.shard
                .map_or_else(String::new, |sh| format!(", shard {}/{}", sh.index, sh.count))
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:>5}  {}  seed {}  {}{}{}  peak {}/{}  drop {}  insert_failed {}  p99 {:.1} ms  timeouts {}",
                r.index,
                r.values.join(" "),
                r.seed,
                if r.conclusive { "" } else { "inconclusive: " },
                r.verdict,
                r.verdict_at_s
                    .map_or_else(String::new, |t| format!(" at {t:.3}s")),
                r.count_peak,
                r.max,
                r.drop,
                r.insert_failed,
                r.p99_ms,
                r.timeouts
            );
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        s
    }
}

/// `seed 42`, or `seeds 42..44 · mean of 3 seeds`.
fn seeds_text(seeds: &[u64]) -> String {
    match (seeds.first(), seeds.last()) {
        (Some(a), Some(b)) if seeds.len() > 1 => format!("seeds {a}..{b} · {}", mean_of(seeds.len())),
        (Some(a), _) => format!("seed {a}"),
        _ => "no seed".to_owned(),
    }
}

/// Reads one number off a row (charts).
type RowMetric = fn(&Row) -> f64;
