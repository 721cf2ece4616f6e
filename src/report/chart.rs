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
//!
//! This file holds the chart types, the palette and the SVG pieces both kinds share; the
//! parts (submodules, re-exported here): `ticks` places and labels axis ticks, `line`
//! draws line charts, `heatmap` draws heatmaps.

use std::fmt::Write as _;

mod heatmap;
mod line;
mod ticks;

pub use heatmap::Heatmap;
pub use ticks::{format_tick, format_time, linear_ticks, log_ticks, nice_step, short_seconds, time_ticks};

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

#[cfg(test)]
mod tests;
