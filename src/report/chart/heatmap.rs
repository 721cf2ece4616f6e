//! Heatmaps: one labelled cell per grid point, white to red, drawn as SVG.

use std::fmt::Write as _;

use super::ticks::trim_decimals;
use super::{B, H, L, R, T, W, esc, svg_head};

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

pub(super) fn cell_label(v: f64) -> String {
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
