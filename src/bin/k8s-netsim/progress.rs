//! Progress bars on stderr, shown only when stderr is a terminal and only once a run
//! has taken a second of wall time: a bar, how far it is, the time spent and the time
//! left (ETA, from the pace so far). Wall-clock time is read here only, never by the
//! model.

use std::io::IsTerminal as _;
use std::sync::Mutex;

use k8s_netsim::time::SimTime;

use std::time::Instant;

#[allow(
    clippy::disallowed_methods,
    reason = "wall clock only for progress bars, never for the model"
)]
fn now() -> Instant {
    Instant::now()
}

const WIDTH: usize = 30;

/// A duration of wall time as `45s`, `12m05s`, `3h20m`.
pub(crate) fn short_time(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "?".into();
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3_600, (s % 3_600) / 60),
    }
}

/// One line of a progress bar: `frac` done after `elapsed` seconds, then `what`.
pub(crate) fn bar_line(frac: f64, elapsed: f64, what: &str) -> String {
    let frac = if frac.is_finite() {
        frac.clamp(0.0, 1.0)
    } else {
        0.0
    };
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let filled = ((frac * WIDTH as f64) as usize).min(WIDTH);
    let eta = if frac > 0.0 {
        short_time(elapsed * (1.0 - frac) / frac)
    } else {
        "?".into()
    };
    format!(
        "[{}{}] {:>5.1}% {what}, {} elapsed, ETA {eta}",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        frac * 100.0,
        short_time(elapsed)
    )
}

/// The progress of one run, in simulated time.
pub(crate) struct Progress {
    tty: bool,
    started: Instant,
    shown: bool,
}

impl Progress {
    pub(crate) fn new() -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            started: now(),
            shown: false,
        }
    }

    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn update(&mut self, at: SimTime, end: SimTime) {
        let elapsed = self.started.elapsed().as_secs_f64();
        if !self.tty || elapsed < 1.0 {
            return;
        }
        self.shown = true;
        let frac = if end.as_nanos() == 0 {
            1.0
        } else {
            at.as_nanos() as f64 / end.as_nanos() as f64
        };
        eprint!(
            "\r{}\x1b[K",
            bar_line(frac, elapsed, &format!("simulated {at} of {end}"))
        );
    }

    pub(crate) fn finish(&mut self) {
        if self.shown {
            eprintln!();
        }
    }
}

/// The progress of a study (runs finished of total), called from worker threads: a bar
/// with an ETA on a terminal, else a line at every tenth of the runs.
pub(crate) struct RunsProgress {
    tty: bool,
    what: &'static str,
    started: Mutex<Instant>,
    /// Tenths of the runs already reported by a line (not on a terminal).
    shown: std::sync::atomic::AtomicUsize,
}

impl RunsProgress {
    pub(crate) fn new(what: &'static str) -> RunsProgress {
        RunsProgress {
            tty: std::io::stderr().is_terminal(),
            what,
            started: Mutex::new(now()),
            shown: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Says what is about to run (always, so a long study never starts silently).
    pub(crate) fn start(&self, command: &str, runs: usize, simulated_s: f64) {
        eprintln!(
            "{command}: {runs} {} of {simulated_s:.0} s simulated each",
            crate::plural(runs, "run", "runs")
        );
    }

    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn update(&self, done: usize, total: usize) {
        if !self.tty {
            let tenth = (done * 10).checked_div(total).unwrap_or(10);
            if self.shown.fetch_max(tenth, std::sync::atomic::Ordering::Relaxed) < tenth {
                eprintln!("{done}/{total} {} simulated", self.what);
            }
            return;
        }
        let elapsed = self.started.lock().map_or(0.0, |s| s.elapsed().as_secs_f64());
        let frac = if total == 0 {
            1.0
        } else {
            done as f64 / total as f64
        };
        eprint!(
            "\r{}\x1b[K",
            bar_line(frac, elapsed, &format!("{done}/{total} {}", self.what))
        );
    }

    pub(crate) fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_shows_the_fraction_elapsed_and_eta() {
        let line = bar_line(0.25, 30.0, "simulated 5s of 20s");
        assert!(
            line.starts_with(&format!("[{}{}]", "#".repeat(7), "-".repeat(23))),
            "{line}"
        );
        assert!(
            line.contains(" 25.0% simulated 5s of 20s, 30s elapsed, ETA 1m30s"),
            "{line}"
        );
        assert!(bar_line(0.0, 2.0, "x").ends_with("ETA ?"));
        assert!(bar_line(1.0, 7_300.0, "x").contains("2h01m elapsed, ETA 0s"));
        assert!(bar_line(f64::NAN, 1.0, "x").contains("0.0%"));
    }
}
