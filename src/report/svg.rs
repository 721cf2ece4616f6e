//! Minimal, dependency-free SVG line charts and heatmaps for reports.
//!
//! Output is deterministic text: coordinates are printed with one decimal, series
//! colours come from a fixed palette in the order given.

use std::fmt::Write as _;

/// One line on a chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// (x, y) points in data units, x increasing.
    pub points: Vec<(f64, f64)>,
    /// Draw dashed (used for limits such as `nf_conntrack_max`).
    pub dashed: bool,
}

/// A line chart.
#[derive(Clone, Debug)]
pub struct LineChart {
    /// Title above the plot.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Use a log10 y axis (values ≤ 0 are clamped to the smallest positive value).
    pub log_y: bool,
}

const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf",
];
const W: f64 = 900.0;
const H: f64 = 420.0;
const L: f64 = 80.0;
const R: f64 = 200.0;
const T: f64 = 40.0;
const B: f64 = 50.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn nice_label(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

impl LineChart {
    /// Renders the chart as an SVG document.
    #[must_use]
    pub fn render(&self) -> String {
        let pts = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        let mut min_pos = f64::MAX;
        for &(x, y) in pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
            if y > 0.0 {
                min_pos = min_pos.min(y);
            }
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if (x1 - x0).abs() < f64::EPSILON {
            x1 = x0 + 1.0;
        }
        let ty = |y: f64| -> f64 {
            if self.log_y {
                y.max(if min_pos == f64::MAX { 1.0 } else { min_pos }).log10()
            } else {
                y
            }
        };
        let (ly0, mut ly1) = if self.log_y {
            let lo = if min_pos == f64::MAX {
                0.0
            } else {
                min_pos.log10().floor()
            };
            (lo, ty(y1.max(1.0)).ceil())
        } else {
            (y0.min(0.0), y1 * 1.05)
        };
        if (ly1 - ly0).abs() < f64::EPSILON {
            ly1 = ly0 + 1.0;
        }
        let px = |x: f64| L + (x - x0) / (x1 - x0) * (W - L - R);
        let py = |y: f64| H - B - (ty(y) - ly0) / (ly1 - ly0) * (H - T - B);
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{L}" y="24" font-size="15">{}</text>"#,
            esc(&self.title)
        );
        // Axes and grid.
        for i in 0..=5 {
            let f = f64::from(i) / 5.0;
            let gy = H - B - f * (H - T - B);
            let v = if self.log_y {
                10f64.powf(ly0 + f * (ly1 - ly0))
            } else {
                ly0 + f * (ly1 - ly0)
            };
            let _ = writeln!(
                s,
                r##"<line x1="{L}" y1="{gy:.1}" x2="{:.1}" y2="{gy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                W - R,
                L - 6.0,
                gy + 4.0,
                nice_label(v)
            );
            let gx = L + f * (W - L - R);
            let xv = x0 + f * (x1 - x0);
            let _ = writeln!(
                s,
                r#"<text x="{gx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                H - B + 18.0,
                nice_label(xv)
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
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            L + (W - L - R) / 2.0,
            H - 10.0,
            esc(&self.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"#,
            T + (H - T - B) / 2.0,
            T + (H - T - B) / 2.0,
            esc(&self.y_label)
        );
        for (i, series) in self.series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let mut d = String::new();
            for (j, &(x, y)) in series.points.iter().enumerate() {
                let _ = write!(d, "{}{:.1},{:.1}", if j == 0 { "M" } else { " L" }, px(x), py(y));
            }
            let dash = if series.dashed {
                r#" stroke-dasharray="6,4""#
            } else {
                ""
            };
            let _ = writeln!(
                s,
                r#"<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.6"{dash}/>"#
            );
            let ly = T + 16.0 * i as f64;
            let _ = writeln!(
                s,
                r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="3"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
                W - R + 10.0,
                W - R + 30.0,
                W - R + 36.0,
                ly + 4.0,
                esc(&series.name)
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
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Column labels, left to right.
    pub x_values: Vec<String>,
    /// Row labels, bottom to top.
    pub y_values: Vec<String>,
    /// `cells[y][x]`; `None` draws a grey cell.
    pub cells: Vec<Vec<Option<f64>>>,
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
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">"#
        );
        let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{L}" y="24" font-size="15">{}</text>"#,
            esc(&self.title)
        );
        for (yi, row) in self.cells.iter().enumerate() {
            for (xi, cell) in row.iter().enumerate() {
                let x = L + xi as f64 * cw;
                let y = H - B - (yi as f64 + 1.0) * ch;
                let (fill, label) = match cell {
                    Some(v) => {
                        let f = if hi > lo { (v - lo) / (hi - lo) } else { 0.0 };
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let g = (255.0 - f * 200.0).round().clamp(0.0, 255.0) as u8;
                        (format!("#ff{g:02x}{g:02x}"), nice_label(*v))
                    }
                    None => ("#cccccc".to_owned(), String::new()),
                };
                let _ = writeln!(
                    s,
                    r##"<rect x="{x:.1}" y="{y:.1}" width="{cw:.1}" height="{ch:.1}" fill="{fill}" stroke="#fff"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
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
                nice_label(lo),
                nice_label(hi)
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
    fn renders_each_series_and_escapes_labels() {
        let chart = LineChart {
            title: "count <vs> max".into(),
            x_label: "t (s)".into(),
            y_label: "entries".into(),
            series: vec![
                Series {
                    name: "node-a".into(),
                    points: vec![(0.0, 0.0), (1.0, 10.0)],
                    dashed: false,
                },
                Series {
                    name: "max".into(),
                    points: vec![(0.0, 20.0), (1.0, 20.0)],
                    dashed: true,
                },
            ],
            log_y: false,
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<path").count(), 2);
        assert!(svg.contains("count &lt;vs&gt; max"));
        assert!(svg.contains("stroke-dasharray"));
        assert_eq!(svg, chart.render(), "rendering is deterministic");
    }

    #[test]
    fn heatmap_draws_one_cell_per_point_shaded_by_value() {
        let h = Heatmap {
            title: "drops".into(),
            x_label: "rate".into(),
            y_label: "max".into(),
            x_values: vec!["1k/s".into(), "2k/s".into()],
            y_values: vec!["65536".into()],
            cells: vec![vec![Some(0.0), Some(10.0)]],
        };
        let svg = h.render();
        assert_eq!(svg.matches("<rect x=").count(), 2);
        assert!(svg.contains(r##"fill="#ffffff""##), "lowest is white");
        assert!(svg.contains(r##"fill="#ff3737""##), "highest is red");
        assert_eq!(svg, h.render());
    }
}
