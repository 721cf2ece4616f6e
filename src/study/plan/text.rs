//! The plan as text: the breaking point per variant over seeds, each seed's answer, the
//! analytic comparison and the warnings.

use std::fmt::Write as _;

use super::{Answer, Plan};
use crate::study::knob::KnobKind;

impl Plan {
    /// The result as text: one line per variant, the analytic comparison, warnings.
    #[must_use]
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let unit = match self.knob.kind {
            KnobKind::Rate => "/s",
            KnobKind::Integer => "",
        };
        let seeds = self.variants.first().map_or(0, |v| v.seeds.len());
        let stopped = if self.runs_stopped > 0 {
            format!(
                "; {} stopped once {} held for good",
                self.runs_stopped, self.until
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "{}: find {} until {} ({}, resolution {}%, {} of {:.0} s simulated{stopped})",
            self.scenario,
            self.knob.paths.join(","),
            self.until,
            crate::study::count(seeds, "seed", "seeds"),
            self.resolution_pct,
            crate::study::count(self.runs, "run", "runs"),
            self.duration_s
        );
        let width = self
            .variants
            .iter()
            .map(|v| v.name.len())
            .max()
            .unwrap_or(0)
            .max(7);
        for v in &self.variants {
            let line = match (&v.breaking, &v.last_safe) {
                (Some(b), Some(l)) => format!(
                    "breaks at {}{unit} (min {}{unit}, max {}{unit}); last safe {}{unit} (min {}{unit})",
                    num(b.median),
                    num(b.min),
                    num(b.max),
                    num(l.median),
                    num(l.min)
                ),
                _ => v
                    .seeds
                    .iter()
                    .map(|sd| format!("seed {}: {}", sd.seed, self.answer_text(&sd.answer)))
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            let line = if self.run.long_enough {
                line
            } else {
                format!("inconclusive (runs too short, see the warning): {line}")
            };
            let _ = writeln!(s, "{:width$}  {line}", v.name);
            if let Some(a) = &v.analytic {
                let _ = writeln!(
                    s,
                    "{:width$}  analytic sustainable rate {}/s = nf_conntrack_max {} on {} / (TIME_WAIT {:.0} s + lifetime {:.1} ms){}",
                    "",
                    num(a.rate_per_s),
                    a.max,
                    a.node,
                    a.time_wait_s,
                    a.lifetime_ms,
                    v.breaking.map_or_else(String::new, |b| format!(
                        "; found/analytic = {:.3}",
                        b.median / a.rate_per_s
                    ))
                );
            }
            if !v.overrides.is_empty() {
                let _ = writeln!(s, "{:width$}  set: {}", "", v.overrides.join(", "));
            }
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        s
    }

    fn answer_text(&self, a: &Answer) -> String {
        let f = |v: u64| self.knob.format(v);
        match a {
            Answer::Found { last_safe, breaking } => {
                format!("breaks at {} (last safe {})", f(*breaking), f(*last_safe))
            }
            Answer::AlwaysHolds { lo, hi } => format!(
                "{} holds at every value tried ({}..{})",
                self.until,
                f(*lo),
                f(*hi)
            ),
            Answer::NeverHolds { lo, hi } => format!("{} never holds in {}..{}", self.until, f(*lo), f(*hi)),
            Answer::OverLimits {
                next,
                reason,
                tried,
                held,
            } => {
                let before = tried.map_or_else(String::new, |(lo, hi)| {
                    let verb = if *held == Some(true) {
                        "holds at every value tried"
                    } else {
                        "never holds"
                    };
                    format!("{} {verb} in {}..{}; ", self.until, f(lo), f(hi))
                });
                format!("{before}stopped before {}: {reason}", f(*next))
            }
            Answer::NotSimulated { reason } => format!("not simulated on this build ({reason})"),
        }
    }
}

fn num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}
