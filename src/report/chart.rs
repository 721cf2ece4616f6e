//! SVG charts for reports: line charts (with gaps, markers, stacked areas) and heatmaps.
//!
//! Hand-written rather than drawn with a charting crate; `docs/report-format.md` ("Why
//! the charts are hand-written") gives the measurements behind that choice. What a chart
//! promises its reader:
//! - ticks fall on 1-2-5 steps (time on 1-2-5 seconds, then 30 s and whole minutes), log
//!   axes on decades;
//! - a point without a value (`None`) breaks the line: an interval in which nothing
//!   completed is a gap, never a zero;
//! - every series has a legend entry; a series drawn exactly over an earlier one says so
//!   (`headless (= baseline)`), since it cannot be seen;
//! - colours come from [`PALETTE`] by the slot a caller pins (a compare gives each variant
//!   one slot for all its charts); the 12 colours do not repeat below 12 series, and
//!   slots 12 and up reuse them dashed;
//! - a subtitle names the scenario and seed; vertical markers show onsets and alerts.
//!
//! Output is deterministic text (coordinates with one decimal).

use std::fmt::Write as _;

/// Twelve colours that stay apart from each other on white.
pub const PALETTE: [&str; 12] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf", "#000000", "#005f5f",
];

/// How values on an axis are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueFormat {
    /// Plain numbers with `k`/`M` for thousands and millions (`50k`).
    Count,
    /// Milliseconds (`1 ms`, `250 ms`, `1 s`).
    Millis,
    /// Percent (`25 %`).
    Percent,
    /// Simulated time in seconds, printed in s or min.
    Time,
}

/// Linear or log10.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Linear, from 0 (or the lowest value if negative).
    Linear,
    /// log10 on whole decades; values ≤ 0 are not drawn.
    Log,
}

/// One axis.
#[derive(Clone, Debug)]
pub struct Axis {
    /// Label, with the unit (`latency (ms, log)`).
    pub label: String,
    /// Linear or log.
    pub scale: Scale,
    /// How tick values print.
    pub format: ValueFormat,
    /// Put the ticks exactly here (a sweep's grid values) instead of at nice steps.
    pub ticks_at: Option<Vec<f64>>,
}

impl Axis {
    /// Simulated time in seconds.
    #[must_use]
    pub fn time() -> Axis {
        Axis {
            label: "simulated time".into(),
            scale: Scale::Linear,
            format: ValueFormat::Time,
            ticks_at: None,
        }
    }

    /// A linear axis.
    #[must_use]
    pub fn linear(label: &str, format: ValueFormat) -> Axis {
        Axis {
            label: label.to_owned(),
            scale: Scale::Linear,
            format,
            ticks_at: None,
        }
    }

    /// A log10 axis.
    #[must_use]
    pub fn log(label: &str, format: ValueFormat) -> Axis {
        Axis {
            label: label.to_owned(),
            scale: Scale::Log,
            format,
            ticks_at: None,
        }
    }
}

/// Line style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dash {
    /// Solid.
    Solid,
    /// Long dashes (limits such as `nf_conntrack_max`).
    Dashed,
    /// Dots.
    Dotted,
}

/// One line (or, in a stacked chart, one layer).
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// `(x, y)`; `y = None` is a gap (no value in that interval).
    pub points: Vec<(f64, Option<f64>)>,
    /// Palette slot ([`PALETTE`]); slots past the palette are drawn dashed.
    pub slot: usize,
    /// Line style.
    pub dash: Dash,
    /// Draw a dot at every point (sweeps).
    pub dots: bool,
}

impl Series {
    /// A solid line in `slot` from points that all have a value.
    #[must_use]
    pub fn line(
        name: impl Into<String>,
        slot: usize,
        points: impl IntoIterator<Item = (f64, f64)>,
    ) -> Series {
        Series {
            name: name.into(),
            points: points.into_iter().map(|(x, y)| (x, Some(y))).collect(),
            slot,
            dash: Dash::Solid,
            dots: false,
        }
    }

    /// Whether the line breaks anywhere (some point has no value).
    #[must_use]
    pub fn has_gaps(&self) -> bool {
        self.points.iter().any(|p| p.1.is_none())
    }
}

/// What a vertical marker shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkerKind {
    /// A counter's first rise (`drop`, `insert_failed`).
    Onset,
    /// An alert rule firing.
    Alert,
}

/// A vertical line at `x` with a short label.
#[derive(Clone, Debug)]
pub struct Marker {
    /// Where.
    pub x: f64,
    /// Label (`drop node-a`).
    pub label: String,
    /// Onset or alert.
    pub kind: MarkerKind,
}

/// A line chart, or a stacked area chart.
#[derive(Clone, Debug)]
pub struct LineChart {
    /// Title.
    pub title: String,
    /// Second line: scenario and seed (and, for sweeps, how many seeds were averaged).
    pub subtitle: String,
    /// X axis.
    pub x: Axis,
    /// Y axis.
    pub y: Axis,
    /// The lines, drawn in order.
    pub series: Vec<Series>,
    /// Vertical markers.
    pub markers: Vec<Marker>,
    /// Stack the series as areas (bottom first) instead of drawing lines.
    pub stacked: bool,
}

/// The opening of a chart's SVG: the root element (base font size `font_px`), a white
/// background, the title and the subtitle.
fn svg_head(font_px: u32, title: &str, subtitle: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="{font_px}">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{L}" y="22" font-size="15" font-weight="bold">{}</text>"#,
        esc(title)
    );
    let _ = writeln!(
        s,
        r##"<text x="{L}" y="40" font-size="12" fill="#555">{}</text>"##,
        esc(subtitle)
    );
    s
}

const W: f64 = 960.0;
const H: f64 = 440.0;
const L: f64 = 76.0;
const R: f64 = 250.0;
const T: f64 = 64.0;
const B: f64 = 48.0;

/// Escapes text for SVG and HTML.
#[must_use]
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The colour of a palette slot.
#[must_use]
pub fn colour(slot: usize) -> &'static str {
    PALETTE[slot % PALETTE.len()]
}

fn dash_attr(dash: Dash, slot: usize) -> &'static str {
    match (dash, slot >= PALETTE.len()) {
        (Dash::Dashed, _) => r#" stroke-dasharray="7,4""#,
        (Dash::Dotted, _) => r#" stroke-dasharray="2,3""#,
        (Dash::Solid, true) => r#" stroke-dasharray="10,3,2,3""#,
        (Dash::Solid, false) => "",
    }
}

/// The 1-2-5 step that gives about `target` intervals over `range`.
#[must_use]
pub fn nice_step(range: f64, target: f64) -> f64 {
    if range.is_nan() || range <= 0.0 {
        return 1.0;
    }
    let raw = range / target.max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0] {
        if m * mag >= raw * 0.999_999 {
            return m * mag;
        }
    }
    10.0 * mag
}

/// Ticks on 1-2-5 steps covering `[lo, hi]`: the first at or below `lo`, the last at or
/// above `hi`.
#[must_use]
pub fn linear_ticks(lo: f64, hi: f64, target: f64) -> Vec<f64> {
    let step = nice_step(hi - lo, target);
    ticks_with_step(lo, hi, step)
}

fn ticks_with_step(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    let first = (lo / step + 1e-9).floor();
    let last = (hi / step - 1e-9).ceil();
    let mut out = Vec::new();
    let mut k = first;
    while k <= last && out.len() < 200 {
        // Round on the step's decimals so ticks are exact (0.3, not 0.30000000000000004).
        let scale = 10f64.powi(i32::try_from(decimals_for(step)).unwrap_or(0));
        let v = (k * step * scale).round() / scale;
        out.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        k += 1.0;
    }
    out
}

/// Ticks for simulated time: 1-2-5 seconds up to 20 s, then 30 s and 1, 2, 5, 10, 20,
/// 30, 60 minutes.
#[must_use]
pub fn time_ticks(lo: f64, hi: f64, target: f64) -> Vec<f64> {
    let raw = (hi - lo) / target.max(1.0);
    let step = if raw <= 20.0 {
        nice_step(hi - lo, target)
    } else {
        [30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0]
            .into_iter()
            .find(|s| *s >= raw)
            .unwrap_or(3600.0)
    };
    ticks_with_step(lo, hi, step)
}

/// Whole decades covering `[lo, hi]` (both > 0); with less than two decades, the 2 and 5
/// in between as well.
#[must_use]
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let a = lo.log10().floor();
    let b = hi.log10().ceil().max(a + 1.0);
    let mut out = Vec::new();
    let mut e = a;
    while e <= b {
        let d = 10f64.powf(e);
        out.push(d);
        if hi.log10() - lo.log10() < 2.0 && e < b {
            out.push(2.0 * d);
            out.push(5.0 * d);
        }
        e += 1.0;
    }
    out
}

fn trim_decimals(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// Decimals needed to print multiples of `step` (0.1 and 0.2: 1; 0.05: 2).
fn decimals_for(step: f64) -> usize {
    if step >= 1.0 || step <= 0.0 {
        0
    } else {
        #[allow(clippy::cast_possible_truncation)]
        let d = (-step.log10() - 1e-9).ceil() as i64;
        usize::try_from(d).unwrap_or(0).min(9)
    }
}

/// Prints a tick value; `step` is the distance between ticks (decides the decimals).
#[must_use]
pub fn format_tick(v: f64, step: f64, format: ValueFormat, span: f64) -> String {
    match format {
        ValueFormat::Count => {
            let a = v.abs();
            if a >= 1e6 {
                format!("{}M", trim_decimals(v / 1e6, decimals_for(step / 1e6) + 1))
            } else if a >= 1e4 {
                format!("{}k", trim_decimals(v / 1e3, decimals_for(step / 1e3)))
            } else {
                trim_decimals(v, decimals_for(step))
            }
        }
        ValueFormat::Percent => format!("{} %", trim_decimals(v, decimals_for(step))),
        ValueFormat::Millis => {
            if v.abs() >= 1000.0 {
                format!("{} s", trim_decimals(v / 1000.0, decimals_for(step / 1000.0)))
            } else {
                format!("{} ms", trim_decimals(v, decimals_for(step).max(decimals_for(v))))
            }
        }
        ValueFormat::Time => format_time(v, step, span),
    }
}

/// Simulated time: `4 s`, `2.5 s`; past two minutes `3 min` or `1:30`.
#[must_use]
pub fn format_time(v: f64, step: f64, span: f64) -> String {
    if span < 120.0 {
        return format!("{} s", trim_decimals(v, decimals_for(step)));
    }
    #[allow(clippy::cast_possible_truncation)]
    let total = v.round() as i64;
    if total % 60 == 0 {
        format!("{} min", total / 60)
    } else {
        format!("{}:{:02}", total / 60, (total % 60).abs())
    }
}

/// A short human number for labels (`4.38 s`, `131072`).
#[must_use]
pub fn short_seconds(s: f64) -> String {
    if s >= 120.0 {
        format!("{}:{:05.2}", (s / 60.0).floor(), s % 60.0)
    } else {
        format!("{} s", trim_decimals(s, 3))
    }
}

/// For each series, the name of an earlier series with exactly the same points, if any.
#[must_use]
pub fn identical_to(series: &[Series]) -> Vec<Option<String>> {
    series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            series[..i]
                .iter()
                .find(|o| o.points == s.points && !s.points.is_empty())
                .map(|o| o.name.clone())
        })
        .collect()
}

struct Frame {
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
fn axis_ticks(axis: &Axis, lo: f64, hi: f64, min_pos: f64, target: f64) -> (Vec<f64>, f64, f64) {
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
    fn stacked_tops(&self) -> Vec<Vec<(f64, f64)>> {
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

/// A heatmap: one cell per (x, y) grid point, shaded from white (the lowest value) to
/// red (the highest), each cell labelled with its value.
#[derive(Clone, Debug)]
pub struct Heatmap {
    /// Title above the plot.
    pub title: String,
    /// Second line (scenario, seed, seeds averaged).
    pub subtitle: String,
    /// X axis label, with unit.
    pub x_label: String,
    /// Y axis label, with unit.
    pub y_label: String,
    /// Column labels, left to right.
    pub x_values: Vec<String>,
    /// Row labels, bottom to top.
    pub y_values: Vec<String>,
    /// `cells[y][x]`; `None` draws a grey cell.
    pub cells: Vec<Vec<Option<f64>>>,
}

fn cell_label(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim_decimals(v / 1e6, 1))
    } else if a >= 1e4 {
        format!("{}k", trim_decimals(v / 1e3, 0))
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        trim_decimals(v, 2)
    }
}

impl Heatmap {
    /// Renders the heatmap as an SVG document.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn render(&self) -> String {
        let (mut lo, mut hi) = (f64::MAX, f64::MIN);
        for v in self.cells.iter().flatten().flatten() {
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
        let nx = self.x_values.len().max(1) as f64;
        let ny = self.y_values.len().max(1) as f64;
        let (pw, ph) = (W - L - R, H - T - B);
        let (cw, ch) = (pw / nx, ph / ny);
        let mut s = svg_head(11, &self.title, &self.subtitle);
        for (yi, row) in self.cells.iter().enumerate() {
            for (xi, cell) in row.iter().enumerate() {
                let x = L + xi as f64 * cw;
                let y = H - B - (yi as f64 + 1.0) * ch;
                let (fill, label) = match cell {
                    Some(v) => {
                        let f = if hi > lo { (v - lo) / (hi - lo) } else { 0.0 };
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let g = (255.0 - f * 200.0).round().clamp(0.0, 255.0) as u8;
                        (format!("#ff{g:02x}{g:02x}"), cell_label(*v))
                    }
                    None => ("#cccccc".to_owned(), String::new()),
                };
                let _ = writeln!(
                    s,
                    r##"<rect class="cell" x="{x:.1}" y="{y:.1}" width="{cw:.1}" height="{ch:.1}" fill="{fill}" stroke="#fff"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
                    x + cw / 2.0,
                    y + ch / 2.0 + 4.0
                );
            }
        }
        for (xi, l) in self.x_values.iter().enumerate() {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                L + (xi as f64 + 0.5) * cw,
                H - B + 16.0,
                esc(l)
            );
        }
        for (yi, l) in self.y_values.iter().enumerate() {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                L - 6.0,
                H - B - (yi as f64 + 0.5) * ch + 4.0,
                esc(l)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            L + pw / 2.0,
            H - 10.0,
            esc(&self.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"#,
            T + ph / 2.0,
            T + ph / 2.0,
            esc(&self.y_label)
        );
        if lo <= hi {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}">min {} (white) .. max {} (red)</text>"#,
                W - R + 10.0,
                T + 12.0,
                cell_label(lo),
                cell_label(hi)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_fall_on_one_two_five_steps() {
        assert_eq!(
            linear_ticks(0.0, 131_072.0, 5.0),
            [0.0, 50_000.0, 100_000.0, 150_000.0]
        );
        assert_eq!(linear_ticks(0.0, 6.1, 5.0), [0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(linear_ticks(0.0, 0.3, 5.0), [0.0, 0.1, 0.2, 0.3]);
        assert_eq!(nice_step(1585.0, 5.0), 500.0);
        assert_eq!(time_ticks(0.0, 10.0, 8.0), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(time_ticks(0.0, 120.0, 8.0)[1], 20.0);
        assert_eq!(time_ticks(0.0, 600.0, 8.0)[1], 120.0);
        assert_eq!(log_ticks(0.9, 2200.0), [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0]);
        assert_eq!(log_ticks(3.0, 40.0), [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]);
    }

    #[test]
    fn tick_labels_read_as_units() {
        assert_eq!(format_tick(100_000.0, 50_000.0, ValueFormat::Count, 0.0), "100k");
        assert_eq!(
            format_tick(1_500_000.0, 500_000.0, ValueFormat::Count, 0.0),
            "1.5M"
        );
        assert_eq!(format_tick(0.2, 0.1, ValueFormat::Count, 0.0), "0.2");
        assert_eq!(format_tick(1000.0, 1000.0, ValueFormat::Millis, 0.0), "1 s");
        assert_eq!(format_tick(10.0, 10.0, ValueFormat::Millis, 0.0), "10 ms");
        assert_eq!(format_tick(0.1, 0.1, ValueFormat::Millis, 0.0), "0.1 ms");
        assert_eq!(format_tick(4.0, 2.0, ValueFormat::Time, 10.0), "4 s");
        assert_eq!(format_tick(120.0, 60.0, ValueFormat::Time, 300.0), "2 min");
        assert_eq!(format_tick(90.0, 30.0, ValueFormat::Time, 300.0), "1:30");
        assert_eq!(format_tick(25.0, 25.0, ValueFormat::Percent, 100.0), "25 %");
    }

    fn chart(series: Vec<Series>) -> LineChart {
        LineChart {
            title: "count <vs> max".into(),
            subtitle: "scenario small · seed 7".into(),
            x: Axis::time(),
            y: Axis::linear("entries", ValueFormat::Count),
            series,
            markers: vec![Marker {
                x: 0.5,
                label: "drop node-a".into(),
                kind: MarkerKind::Onset,
            }],
            stacked: false,
        }
    }

    #[test]
    fn a_gap_breaks_the_line_and_is_not_drawn_at_zero() {
        let s = Series {
            name: "p99".into(),
            points: vec![(0.0, Some(5.0)), (1.0, None), (2.0, Some(7.0)), (3.0, Some(6.0))],
            slot: 0,
            dash: Dash::Solid,
            dots: false,
        };
        assert!(s.has_gaps());
        let svg = chart(vec![s]).render();
        let path = svg.lines().find(|l| l.contains(r#"class="series""#)).unwrap();
        assert_eq!(path.matches('M').count(), 2, "two segments: {path}");
        assert_eq!(path.matches(" L").count(), 1);
    }

    #[test]
    fn renders_each_series_escapes_labels_and_names_identical_curves() {
        let a = Series::line("node-a", 0, [(0.0, 0.0), (1.0, 10.0)]);
        let mut b = Series::line("max", 1, [(0.0, 20.0), (1.0, 20.0)]);
        b.dash = Dash::Dashed;
        let c = Series::line("headless", 2, [(0.0, 0.0), (1.0, 10.0)]);
        let svg = chart(vec![a, b, c]).render();
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches(r#"class="series""#).count(), 3);
        assert!(svg.contains("count &lt;vs&gt; max"));
        assert!(svg.contains("scenario small · seed 7"));
        assert!(svg.contains("stroke-dasharray"));
        assert!(svg.contains("headless (= node-a)"), "{svg}");
        let long = chart(vec![
            Series::line("node-a max 131072", 0, [(0.0, 1.0)]),
            Series::line("node-b max 131072", 1, [(0.0, 1.0)]),
        ])
        .render();
        assert!(
            long.contains(">(= node-a max 131072)</text>"),
            "a long note gets its own line"
        );
        assert!(svg.contains("drop node-a"));
        assert!(svg.contains("onset (first drop / insert_failed)"));
    }

    #[test]
    fn palette_does_not_repeat_below_twelve_and_slots_beyond_are_dashed() {
        let set: std::collections::BTreeSet<&str> = (0..12).map(colour).collect();
        assert_eq!(set.len(), 12);
        assert_eq!(dash_attr(Dash::Solid, 3), "");
        assert_ne!(dash_attr(Dash::Solid, 12), "");
    }

    #[test]
    fn stacked_layers_sum_to_the_top() {
        let mut c = chart(vec![
            Series::line("a", 0, [(0.0, 1.0), (1.0, 2.0)]),
            Series::line("b", 1, [(0.0, 3.0), (1.0, 4.0)]),
        ]);
        c.stacked = true;
        let tops = c.stacked_tops();
        assert_eq!(tops[1], [(0.0, 4.0), (1.0, 6.0)]);
        let svg = c.render();
        assert_eq!(svg.matches(" Z\"").count(), 2);
    }

    #[test]
    fn heatmap_draws_one_cell_per_point_shaded_by_value() {
        let h = Heatmap {
            title: "drops".into(),
            subtitle: "scenario x · seed 1 · mean of 1 seed".into(),
            x_label: "rate (requests/s)".into(),
            y_label: "max".into(),
            x_values: vec!["1k/s".into(), "2k/s".into()],
            y_values: vec!["65536".into()],
            cells: vec![vec![Some(0.0), Some(10.0)]],
        };
        let svg = h.render();
        assert_eq!(svg.matches(r#"class="cell""#).count(), 2);
        assert!(svg.contains(r##"fill="#ffffff""##), "lowest is white");
        assert!(svg.contains(r##"fill="#ff3737""##), "highest is red");
        assert_eq!(svg, h.render());
    }
}
