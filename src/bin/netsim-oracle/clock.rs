//! Wall-clock helpers. This binary drives a real kernel, so unlike the library it
//! reads the host's clocks; every read goes through this module.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A monotonic clock started when the run began; all trace times are seconds since then.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
    start_epoch_s: f64,
}

impl Clock {
    /// Starts the run clock now.
    #[allow(clippy::disallowed_methods)] // Real-kernel harness: measuring wall time is its job.
    pub(crate) fn start() -> Clock {
        let start_epoch_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Clock {
            start: Instant::now(),
            start_epoch_s,
        }
    }

    /// Unix time (seconds) at which the run clock read 0, to align traces of several processes.
    pub(crate) fn start_epoch_s(&self) -> f64 {
        self.start_epoch_s
    }

    /// Time since the start of the run.
    #[allow(clippy::disallowed_methods)] // Real-kernel harness.
    pub(crate) fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }

    /// Seconds since the start of the run.
    pub(crate) fn now_s(&self) -> f64 {
        self.elapsed().as_secs_f64()
    }

    /// Sleeps until the run clock reads `t`; returns at once when `t` has passed.
    /// Sleeps short of the target and spins the last 200 µs to hold open-loop rates.
    pub(crate) fn sleep_until(&self, t: Duration) {
        loop {
            let now = self.elapsed();
            if now >= t {
                return;
            }
            let left = t - now;
            if left > Duration::from_micros(200) {
                std::thread::sleep(left - Duration::from_micros(150));
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// Parses an operator duration (`150ms`, `2.5s`) with the crate's parser.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    k8s_netsim::time::SimDuration::parse(text).map(|d| Duration::from_nanos(d.as_nanos()))
}
