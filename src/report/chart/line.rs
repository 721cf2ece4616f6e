//! Line charts (gaps, markers, stacked areas) drawn as SVG.

use std::fmt::Write as _;

use super::ticks::{format_tick, linear_ticks, log_ticks, time_ticks};
use super::{
    Axis, B, H, L, LineChart, MarkerKind, R, Scale, T, ValueFormat, W, colour, dash_attr, esc, identical_to,
    svg_head,
};

pub(super) struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    x_log: bool,
    y_log: bool,
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        let (a, b, v) = if self.x_log {
            (self.x0.log10(), self.x1.log10(), x.max(self.x0).log10())
        } else {
            (self.x0, self.x1, x)
        };
        L + (v - a) / (b - a) * (W - L - R)
    }

    fn py(&self, y: f64) -> f64 {
        let (a, b, v) = if self.y_log {
            (self.y0.log10(), self.y1.log10(), y.max(self.y0).log10())
        } else {
            (self.y0, self.y1, y)
        };
        H - B - (v - a) / (b - a) * (H - T - B)
    }
}

/// Axis ticks and the range they span.
pub(super) fn axis_ticks(axis: &Axis, lo: f64, hi: f64, min_pos: f64, target: f64) -> (Vec<f64>, f64, f64) {
    if let Some(at) = axis.ticks_at.as_ref().filter(|v| !v.is_empty()) {
        let lo = at.iter().copied().fold(f64::MAX, f64::min).min(lo);
        let hi = at.iter().copied().fold(f64::MIN, f64::max).max(hi);
        let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 1.0, hi + 1.0) };
        return (at.clone(), lo, hi);
    }
    match axis.scale {
        Scale::Log => {
            let lo = if min_pos < f64::MAX { min_pos } else { 1.0 };
            let hi = if hi > lo { hi } else { lo * 10.0 };
            let t = log_ticks(lo, hi);
            let (a, b) = (t[0], *t.last().unwrap_or(&hi));
            (t, a, b)
        }
        Scale::Linear => {
            let lo = lo.min(0.0);
            let hi = if hi > lo { hi } else { lo + 1.0 };
            let t = if axis.format == ValueFormat::Time {
                time_ticks(lo, hi, target)
            } else {
                linear_ticks(lo, hi, target)
            };
            let a = t.first().copied().unwrap_or(lo);
            let b = t.last().copied().unwrap_or(hi);
            // Time axes end at the data, not at the next tick.
            if axis.format == ValueFormat::Time {
                let kept: Vec<f64> = t.into_iter().filter(|v| *v <= hi + 1e-9).collect();
                (kept, lo, hi)
            } else {
                (t, a, b)
            }
        }
    }
}

impl LineChart {
    /// The stacked tops: for layer `i`, the sum of layers `0..=i` at every point.
    pub(super) fn stacked_tops(&self) -> Vec<Vec<(f64, f64)>> {
        let mut tops: Vec<Vec<(f64, f64)>> = Vec::new();
        for s in &self.series {
            let below = tops.last();
            let layer: Vec<(f64, f64)> = s
                .points
                .iter()
                .enumerate()
                .map(|(j, (x, y))| {
                    let base = below.and_then(|b| b.get(j)).map_or(0.0, |p| p.1);
                    (*x, base + y.unwrap_or(0.0))
                })
                .collect();
            tops.push(layer);
        }
        tops
    }

    fn frame(&self) -> (Frame, Vec<f64>, Vec<f64>) {
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        let (mut min_pos_y, mut min_pos_x) = (f64::MAX, f64::MAX);
        let mut see = |x: f64, y: Option<f64>| {
            x0 = x0.min(x);
            x1 = x1.max(x);
            if x > 0.0 {
                min_pos_x = min_pos_x.min(x);
            }
            if let Some(y) = y.filter(|y| y.is_finite()) {
                y0 = y0.min(y);
                y1 = y1.max(y);
                if y > 0.0 {
                    min_pos_y = min_pos_y.min(y);
                }
            }
        };
        if self.stacked {
            for layer in self.stacked_tops() {
                for (x, y) in layer {
                    see(x, Some(y));
                }
            }
        } else {
            for s in &self.series {
                for &(x, y) in &s.points {
                    see(x, y);
                }
            }
        }
        for m in &self.markers {
            x0 = x0.min(m.x);
            x1 = x1.max(m.x);
        }
        if x0 > x1 {
            (x0, x1) = (0.0, 1.0);
        }
        if y0 > y1 {
            (y0, y1) = (0.0, 1.0);
        }
        if self.x.format == ValueFormat::Time {
            x0 = x0.min(0.0);
        }
        let (xt, fx0, fx1) = axis_ticks(&self.x, x0, x1, min_pos_x, 8.0);
        let (yt, fy0, fy1) = axis_ticks(&self.y, y0, y1, min_pos_y, 5.0);
        (
            Frame {
                x0: fx0,
                x1: if fx1 > fx0 { fx1 } else { fx0 + 1.0 },
                y0: fy0,
                y1: if fy1 > fy0 { fy1 } else { fy0 + 1.0 },
                x_log: self.x.scale == Scale::Log,
                y_log: self.y.scale == Scale::Log,
            },
            xt,
            yt,
        )
    }

    /// Renders the chart as an SVG document.
    #[must_use]
    #[allow(
        clippy::too_many_lines,
        reason = "one linear pass over the chart's parts: frame, axes, series, markers, legend"
    )]
    pub fn render(&self) -> String {
        let (f, xt, yt) = self.frame();
        let mut s = svg_head(12, &self.title, &self.subtitle);
        // Grid and tick labels.
        let ystep = yt.windows(2).map(|w| w[1] - w[0]).fold(f64::MAX, f64::min);
        for v in &yt {
            let gy = f.py(*v);
            let _ = writeln!(
                s,
                r##"<line x1="{L}" y1="{gy:.1}" x2="{:.1}" y2="{gy:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                W - R,
                L - 6.0,
                gy + 4.0,
                esc(&format_tick(
                    *v,
                    ystep.min(v.abs().max(1e-12)),
                    self.y.format,
                    f.y1 - f.y0
                ))
            );
        }
        let xstep = xt.windows(2).map(|w| w[1] - w[0]).fold(f64::MAX, f64::min);
        let xstep = if xstep == f64::MAX { 1.0 } else { xstep };
        for v in &xt {
            let gx = f.px(*v);
            let _ = writeln!(
                s,
                r##"<line x1="{gx:.1}" y1="{T}" x2="{gx:.1}" y2="{:.1}" stroke="#f0f0f0"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                H - B,
                H - B + 16.0,
                esc(&format_tick(*v, xstep, self.x.format, f.x1 - f.x0))
            );
        }
        let _ = writeln!(
            s,
            r##"<line x1="{L}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/><line x1="{L}" y1="{T}" x2="{L}" y2="{:.1}" stroke="#333"/>"##,
            H - B,
            W - R,
            H - B,
            H - B
        );
        let x_label = if self.x.format == ValueFormat::Time {
            if f.x1 - f.x0 >= 120.0 {
                "simulated time (min)"
            } else {
                "simulated time (s)"
            }
        } else {
            self.x.label.as_str()
        };
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            L + (W - L - R) / 2.0,
            H - 10.0,
            esc(x_label)
        );
        let _ = writeln!(
            s,
            r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"#,
            T + (H - T - B) / 2.0,
            T + (H - T - B) / 2.0,
            esc(&self.y.label)
        );
        // Series.
        let same = identical_to(&self.series);
        if self.stacked {
            let tops = self.stacked_tops();
            for (i, (series, top)) in self.series.iter().zip(&tops).enumerate() {
                let mut d = String::new();
                for (j, (x, y)) in top.iter().enumerate() {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1}",
                        if j == 0 { "M" } else { " L" },
                        f.px(*x),
                        f.py(*y)
                    );
                }
                let below: Vec<(f64, f64)> = if i == 0 {
                    top.iter().map(|(x, _)| (*x, f.y0.max(0.0))).collect()
                } else {
                    tops[i - 1].clone()
                };
                for (x, y) in below.iter().rev() {
                    let _ = write!(d, " L{:.1},{:.1}", f.px(*x), f.py(*y));
                }
                let _ = writeln!(
                    s,
                    r#"<path class="series" data-series="{}" d="{d} Z" fill="{}" fill-opacity="0.75" stroke="{}" stroke-width="0.8"/>"#,
                    esc(&series.name),
                    colour(series.slot),
                    colour(series.slot)
                );
            }
        } else {
            for series in &self.series {
                let mut d = String::new();
                let mut pen_down = false;
                for &(x, y) in &series.points {
                    match y.filter(|v| v.is_finite() && (!f.y_log || *v > 0.0)) {
                        Some(y) => {
                            let _ = write!(
                                d,
                                "{}{:.1},{:.1}",
                                if pen_down {
                                    " L"
                                } else if d.is_empty() {
                                    "M"
                                } else {
                                    " M"
                                },
                                f.px(x),
                                f.py(y)
                            );
                            pen_down = true;
                        }
                        None => pen_down = false,
                    }
                }
                let c = colour(series.slot);
                let _ = writeln!(
                    s,
                    r#"<path class="series" data-series="{}" d="{d}" fill="none" stroke="{c}" stroke-width="1.7"{}/>"#,
                    esc(&series.name),
                    dash_attr(series.dash, series.slot)
                );
                if series.dots {
                    for &(x, y) in &series.points {
                        if let Some(y) = y.filter(|v| v.is_finite() && (!f.y_log || *v > 0.0)) {
                            let _ = writeln!(
                                s,
                                r#"<circle class="point" cx="{:.1}" cy="{:.1}" r="3.5" fill="{c}"/>"#,
                                f.px(x),
                                f.py(y)
                            );
                        }
                    }
                }
            }
        }
        // Markers: vertical lines, labels staggered in rows at the top of the plot.
        for (k, m) in self.markers.iter().enumerate() {
            let mx = f.px(m.x);
            let (stroke, dash) = match m.kind {
                MarkerKind::Onset => ("#b00020", "6,3"),
                MarkerKind::Alert => ("#e07b00", "2,2"),
            };
            #[allow(clippy::cast_precision_loss)]
            let row = (k % 5) as f64;
            let _ = writeln!(
                s,
                r#"<line class="marker" x1="{mx:.1}" y1="{T}" x2="{mx:.1}" y2="{:.1}" stroke="{stroke}" stroke-width="1.2" stroke-dasharray="{dash}"/><text x="{:.1}" y="{:.1}" font-size="10" fill="{stroke}">{}</text>"#,
                H - B,
                mx + 3.0,
                T + 10.0 + row * 11.0,
                esc(&m.label)
            );
        }
        // Legend.
        let entries = self.series.len()
            + usize::from(self.markers.iter().any(|m| m.kind == MarkerKind::Onset))
            + usize::from(self.markers.iter().any(|m| m.kind == MarkerKind::Alert));
        let row_h = if entries > 22 { 11.0 } else { 16.0 };
        let lx = W - R + 12.0;
        let mut ly = T + 4.0;
        let order: Vec<usize> = if self.stacked {
            (0..self.series.len()).rev().collect()
        } else {
            (0..self.series.len()).collect()
        };
        for i in order {
            let series = &self.series[i];
            let c = colour(series.slot);
            // A long "(= other)" goes on a second, smaller line so it stays inside the SVG.
            let (name, second) = match &same[i] {
                Some(o) if series.name.chars().count() + o.chars().count() > 26 => {
                    (series.name.clone(), Some(format!("(= {o})")))
                }
                Some(o) => (format!("{} (= {o})", series.name), None),
                None => (series.name.clone(), None),
            };
            if self.stacked {
                let _ = writeln!(
                    s,
                    r#"<rect x="{lx:.1}" y="{:.1}" width="20" height="9" fill="{c}" fill-opacity="0.75"/>"#,
                    ly - 4.5
                );
            } else {
                let _ = writeln!(
                    s,
                    r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{c}" stroke-width="3"{}/>"#,
                    lx + 20.0,
                    dash_attr(series.dash, series.slot)
                );
            }
            let _ = writeln!(
                s,
                r#"<text class="legend" data-series="{}" x="{:.1}" y="{:.1}">{}</text>"#,
                esc(&series.name),
                lx + 26.0,
                ly + 4.0,
                esc(&name)
            );
            ly += row_h;
            if let Some(second) = second {
                let _ = writeln!(
                    s,
                    r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#555">{}</text>"##,
                    lx + 26.0,
                    ly + 1.0,
                    esc(&second)
                );
                ly += row_h * 0.8;
            }
        }
        for (kind, label, stroke, dash) in [
            (
                MarkerKind::Onset,
                "onset (first drop / insert_failed)",
                "#b00020",
                "6,3",
            ),
            (MarkerKind::Alert, "alert fires (replayed rule)", "#e07b00", "2,2"),
        ] {
            if self.markers.iter().any(|m| m.kind == kind) {
                let _ = writeln!(
                    s,
                    r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{stroke}" stroke-width="1.5" stroke-dasharray="{dash}"/><text class="legend" x="{:.1}" y="{:.1}">{label}</text>"#,
                    lx + 20.0,
                    lx + 26.0,
                    ly + 4.0
                );
                ly += row_h;
            }
        }
        if self.series.is_empty() {
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#777">nothing to draw</text>"##,
                L + (W - L - R) / 2.0,
                T + (H - T - B) / 2.0
            );
        }
        s.push_str("</svg>\n");
        s
    }
}
