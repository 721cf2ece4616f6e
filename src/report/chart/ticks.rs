//! Axis ticks and their labels: 1-2-5 steps, simulated time, log decades.

use super::ValueFormat;

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

pub(super) fn ticks_with_step(lo: f64, hi: f64, step: f64) -> Vec<f64> {
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

pub(super) fn trim_decimals(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// Decimals needed to print multiples of `step` (0.1 and 0.2: 1; 0.05: 2).
pub(super) fn decimals_for(step: f64) -> usize {
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
