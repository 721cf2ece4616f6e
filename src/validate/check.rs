//! One row of the validation table: a quantity measured on a real kernel (or published),
//! the model's value for it, and the tolerance that decides agreement.

use std::fmt::Write as _;

/// The unit a row is expressed in (decides formatting only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A count of packets, entries, connections or events.
    Count,
    /// Seconds.
    Seconds,
    /// A fraction, printed as a percentage.
    Fraction,
}

/// How close the simulated value must be to the real one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    /// Counts and counters (issue 5): ±5 % of the real value, ±2 when the real value is
    /// under 40.
    Count,
    /// Onset times (issue 5): ±5 % of the real value or ±100 ms, whichever is larger.
    Onset,
    /// SYN transmission times (issue 5): ±50 ms.
    SynTime,
    /// ± this many units of the row.
    Abs(f64),
    /// The simulated value within this factor of the real one (×/÷).
    Factor(f64),
    /// ± this fraction of the real value.
    Rel(f64),
    /// Both the real and the simulated value inside `[lo, hi]`: used for quantities that
    /// depend on the phase of the gc worker (docs/kernel-semantics.md §Expired entries leave
    /// in steps), whose phase-independent statement is a window, and for published ranges.
    Within {
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
    },
    /// The real value inside the `tail`..`100 - tail` percentile range `[lo, hi]` of the
    /// model's distribution over many seeds: used for quantities that are random in the
    /// kernel (ISNs, random port offsets, hash keys), where one recording is one draw.
    ModelRange {
        /// The model's `tail`th percentile.
        lo: f64,
        /// The model's `100 - tail`th percentile.
        hi: f64,
        /// Percent of the model's draws left out on each side (2.5 for the 95 % range).
        tail: f64,
    },
}

impl Tolerance {
    /// Whether `sim` agrees with `real` under this tolerance.
    #[must_use]
    pub fn accepts(&self, real: f64, sim: f64) -> bool {
        const EPS: f64 = 1e-9;
        let err = (sim - real).abs();
        match *self {
            Tolerance::Count => {
                let tol = if real.abs() < 40.0 { 2.0 } else { 0.05 * real.abs() };
                err <= tol + EPS
            }
            Tolerance::Onset => err <= (0.05 * real.abs()).max(0.1) + EPS,
            Tolerance::SynTime => err <= 0.05 + EPS,
            Tolerance::Abs(a) => err <= a + EPS,
            Tolerance::Rel(f) => err <= f * real.abs() + EPS,
            Tolerance::Factor(f) => {
                if real == 0.0 {
                    sim == 0.0
                } else {
                    let r = sim / real;
                    r >= 1.0 / f - EPS && r <= f + EPS
                }
            }
            Tolerance::Within { lo, hi } => {
                (lo - EPS..=hi + EPS).contains(&real) && (lo - EPS..=hi + EPS).contains(&sim)
            }
            Tolerance::ModelRange { lo, hi, .. } => (lo - EPS..=hi + EPS).contains(&real),
        }
    }

    /// The tolerance as printed in the table.
    #[must_use]
    pub fn describe(&self, unit: Unit) -> String {
        match *self {
            Tolerance::Count => "±5 % (±2 under 40)".to_owned(),
            Tolerance::Onset => "±5 % or ±100 ms".to_owned(),
            Tolerance::SynTime => "±50 ms".to_owned(),
            Tolerance::Abs(a) => format!("±{}", fmt_value(a, unit)),
            Tolerance::Factor(f) => format!("×/÷ {f}"),
            Tolerance::Rel(f) => format!("±{:.0} %", f * 100.0),
            Tolerance::Within { lo, hi } => {
                format!("both in [{}, {}]", fmt_value(lo, unit), fmt_value(hi, unit))
            }
            Tolerance::ModelRange { lo, hi, tail } => format!(
                "real in model p{tail}–p{} [{}, {}]",
                100.0 - tail,
                fmt_value(lo, unit),
                fmt_value(hi, unit)
            ),
        }
    }
}

/// The verdict of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Within tolerance.
    Pass,
    /// Outside tolerance, and the disagreement is explained in the notes (the model is
    /// known to differ; the notes say what it would take).
    KnownFailure,
    /// Outside tolerance with no explanation: a regression or a new finding.
    Fail,
    /// The simulator does not model this yet (the notes say what is missing).
    NotModelled,
}

impl Status {
    /// The label printed in the table.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::KnownFailure => "known failure",
            Status::Fail => "FAIL",
            Status::NotModelled => "not modelled",
        }
    }
}

/// One row of the validation table.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// Stable identifier, `<experiment>/<param>/<quantity>` (e.g. `a/max100/drop-fill`).
    pub id: String,
    /// The experiment or published target the row belongs to (`a-full-assured`, `V03`).
    pub group: String,
    /// What is compared, in words.
    pub quantity: String,
    /// Unit of `real` and `simulated`.
    pub unit: Unit,
    /// The value recorded on a real kernel, or published.
    pub real: f64,
    /// The model's value; `None` when the behaviour is not modelled.
    pub simulated: Option<f64>,
    /// The agreement rule.
    pub tolerance: Tolerance,
    /// Where the real value comes from: the kernel release of the recording, or the
    /// publication.
    pub source: String,
    /// The verdict.
    pub status: Status,
}

impl Check {
    /// A row comparing `sim` with `real`; the status is decided by the tolerance.
    #[must_use]
    pub fn new(id: String, quantity: &str, unit: Unit, real: f64, sim: f64, tolerance: Tolerance) -> Check {
        let status = if tolerance.accepts(real, sim) {
            Status::Pass
        } else {
            Status::Fail
        };
        Check {
            group: String::new(),
            id,
            quantity: quantity.to_owned(),
            unit,
            real,
            simulated: Some(sim),
            tolerance,
            source: String::new(),
            status,
        }
    }

    /// A row for behaviour the simulator does not model yet.
    #[must_use]
    pub fn not_modelled(id: String, quantity: &str, unit: Unit, real: f64) -> Check {
        Check {
            group: String::new(),
            id,
            quantity: quantity.to_owned(),
            unit,
            real,
            simulated: None,
            tolerance: Tolerance::Count,
            source: String::new(),
            status: Status::NotModelled,
        }
    }

    /// The simulated value minus the real one, formatted (`+3`, `-0.120 (-4.1 %)`).
    #[must_use]
    pub fn error_text(&self) -> String {
        let Some(sim) = self.simulated else {
            return "—".to_owned();
        };
        let d = sim - self.real;
        let mut s = String::new();
        let sign = if d >= 0.0 { "+" } else { "-" };
        let _ = write!(s, "{sign}{}", fmt_value(d.abs(), self.unit));
        if self.real != 0.0 && self.unit != Unit::Fraction {
            let _ = write!(s, " ({sign}{:.1} %)", (d / self.real).abs() * 100.0);
        }
        s
    }
}

/// Formats a value in its unit, deterministically.
#[must_use]
pub fn fmt_value(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Count => {
            if (v - v.round()).abs() < 1e-9 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        }
        Unit::Seconds => format!("{v:.3} s"),
        Unit::Fraction => format!("{:.2} %", v * 100.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_tolerance_is_five_percent_or_two_under_forty() {
        assert!(Tolerance::Count.accepts(100.0, 105.0));
        assert!(!Tolerance::Count.accepts(100.0, 105.5));
        assert!(Tolerance::Count.accepts(10.0, 12.0));
        assert!(!Tolerance::Count.accepts(10.0, 12.5));
        assert!(Tolerance::Count.accepts(0.0, 2.0));
    }

    #[test]
    fn onset_tolerance_is_five_percent_or_100_ms() {
        assert!(Tolerance::Onset.accepts(1.0, 1.1));
        assert!(!Tolerance::Onset.accepts(1.0, 1.11));
        assert!(Tolerance::Onset.accepts(10.0, 10.5));
        assert!(!Tolerance::Onset.accepts(10.0, 10.6));
    }

    #[test]
    fn within_needs_both_values_inside() {
        let t = Tolerance::Within { lo: 0.0, hi: 61.0 };
        assert!(t.accepts(26.0, 59.0));
        assert!(!t.accepts(26.0, 62.0));
        assert!(!t.accepts(-1.0, 20.0));
    }

    #[test]
    fn model_range_only_looks_at_the_real_value() {
        let t = Tolerance::ModelRange {
            lo: 2.0,
            hi: 7.0,
            tail: 2.5,
        };
        assert!(t.accepts(5.0, 100.0));
        assert!(!t.accepts(8.0, 5.0));
        assert_eq!(t.describe(Unit::Count), "real in model p2.5–p97.5 [2, 7]");
        let wide = Tolerance::ModelRange {
            lo: 2.0,
            hi: 7.0,
            tail: 0.5,
        };
        assert_eq!(wide.describe(Unit::Count), "real in model p0.5–p99.5 [2, 7]");
    }

    #[test]
    fn error_text_has_sign_and_relative_error() {
        let c = Check::new("x".into(), "q", Unit::Count, 100.0, 96.0, Tolerance::Count);
        assert_eq!(c.error_text(), "-4 (-4.0 %)");
        assert_eq!(c.status, Status::Pass);
    }
}
