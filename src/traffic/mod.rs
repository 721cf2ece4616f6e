//! The `traffic` module models open-loop request arrivals whose rate follows a profile
//! of steps and linear ramps (a flash sale is a step from a base rate to the peak), in
//! one of three processes ([`Process`]): Poisson (the default), paced (evenly spaced,
//! as a load generator or a cron fan-out sends), or bursts (groups of requests at one
//! instant, as a batch job or a retry storm sends).
//!
//! Rates are exact integers in milli-requests per second; time-varying Poisson rates
//! use thinning (Lewis-Shedler) against the profile's peak rate, so the process is an
//! exact non-homogeneous Poisson process and draws from one seeded stream.

use crate::rng::SimRng;
use crate::time::{NANOS_PER_SEC, SimDuration, SimTime};

/// One point of a rate profile: from `at`, the rate is `milli_per_sec`, reached by a
/// linear ramp of length `ramp` from the previous rate (zero ramp = a step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RatePoint {
    /// When this rate starts (the ramp ends at `at + ramp`).
    pub at: SimTime,
    /// Requests per second × 1000.
    pub milli_per_sec: u64,
    /// Length of the linear transition from the previous rate.
    pub ramp: SimDuration,
}

/// A rate over time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateProfile {
    points: Vec<RatePoint>,
}

impl RateProfile {
    /// A constant rate.
    #[must_use]
    pub fn constant(milli_per_sec: u64) -> RateProfile {
        RateProfile {
            points: vec![RatePoint {
                at: SimTime::ZERO,
                milli_per_sec,
                ramp: SimDuration::ZERO,
            }],
        }
    }

    /// A profile from points sorted by `at`. Before the first point the rate is 0.
    /// Points are sorted here (stable) so callers need not.
    #[must_use]
    pub fn from_points(mut points: Vec<RatePoint>) -> RateProfile {
        points.sort_by_key(|p| p.at);
        RateProfile { points }
    }

    /// The rate (milli-requests per second) at `t`.
    #[must_use]
    pub fn rate_at(&self, t: SimTime) -> u64 {
        let mut prev = 0u64;
        let mut current = 0u64;
        for p in &self.points {
            if p.at > t {
                break;
            }
            let into = t.saturating_since(p.at);
            current = if into >= p.ramp || p.ramp == SimDuration::ZERO {
                p.milli_per_sec
            } else {
                // Linear interpolation in integers.
                let num = u128::from(into.as_nanos());
                let den = u128::from(p.ramp.as_nanos());
                let a = i128::from(prev);
                let b = i128::from(p.milli_per_sec);
                let v = a + (b - a) * i128::try_from(num).unwrap_or(0) / i128::try_from(den).unwrap_or(1);
                u64::try_from(v.max(0)).unwrap_or(0)
            };
            prev = p.milli_per_sec;
        }
        current
    }

    /// The highest rate anywhere in the profile.
    #[must_use]
    pub fn peak(&self) -> u64 {
        self.points.iter().map(|p| p.milli_per_sec).max().unwrap_or(0)
    }

    /// Whether the rate never changes.
    #[must_use]
    pub fn is_constant(&self) -> bool {
        self.points.len() == 1 && self.points[0].at == SimTime::ZERO
    }
}

/// How arrivals are spaced in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Process {
    /// Exponential gaps at the profile's rate.
    #[default]
    Poisson,
    /// One arrival every 1/rate, the rate read at the previous arrival.
    Paced,
    /// `size` arrivals at one instant; the bursts are a Poisson process at rate/size.
    Bursts {
        /// Arrivals per burst (at least 1).
        size: u32,
    },
}

/// An open-loop arrival process following a [`RateProfile`].
#[derive(Clone, Debug)]
pub struct Arrivals {
    profile: RateProfile,
    peak: u64,
    process: Process,
    /// Bursts: arrivals of the current burst still to hand out.
    burst_left: u32,
}

impl Arrivals {
    /// Poisson arrivals following `profile`.
    #[must_use]
    pub fn new(profile: RateProfile) -> Arrivals {
        Arrivals::with_process(profile, Process::Poisson)
    }

    /// Arrivals following `profile` in the given process.
    #[must_use]
    pub fn with_process(profile: RateProfile, process: Process) -> Arrivals {
        let peak = profile.peak();
        Arrivals {
            profile,
            peak,
            process,
            burst_left: 0,
        }
    }

    /// The next arrival after `now` (strictly after, except for the rest of a burst,
    /// which arrives at `now`), or `None` if the rate is zero from here on (checked up
    /// to `horizon`).
    pub fn next_after(&mut self, now: SimTime, horizon: SimTime, rng: &mut SimRng) -> Option<SimTime> {
        if self.peak == 0 {
            return None;
        }
        match self.process {
            Process::Poisson => self.poisson_after(now, horizon, 1, rng),
            Process::Paced => self.paced_after(now, horizon),
            Process::Bursts { size } => {
                if self.burst_left > 0 {
                    self.burst_left -= 1;
                    return Some(now);
                }
                let start = self.poisson_after(now, horizon, size.max(1), rng)?;
                self.burst_left = size.max(1) - 1;
                Some(start)
            }
        }
    }

    /// Evenly spaced: 1/rate after `now`, the rate read at `now`; where the rate is 0,
    /// the first instant after `now` where it is not (a profile point, or inside a ramp
    /// from 0, found by stepping 1 ms).
    fn paced_after(&self, now: SimTime, horizon: SimTime) -> Option<SimTime> {
        let mut t = now;
        loop {
            let r = self.profile.rate_at(t);
            if r > 0 {
                let gap =
                    u64::try_from(u128::from(NANOS_PER_SEC) * 1_000 / u128::from(r)).unwrap_or(u64::MAX);
                let next = t.saturating_add(SimDuration::from_nanos(gap.max(1)));
                return (next <= horizon).then_some(next);
            }
            let next_point = self.profile.points.iter().map(|p| p.at).find(|at| *at > t);
            let ramp_from_zero = self
                .profile
                .points
                .iter()
                .any(|p| p.at <= t && t < p.at.saturating_add(p.ramp));
            t = match (next_point, ramp_from_zero) {
                (_, true) => t.saturating_add(SimDuration::from_millis(1)),
                (Some(at), false) => at,
                (None, false) => return None,
            };
            if t > horizon {
                return None;
            }
        }
    }

    /// The first event strictly after `now` of a Poisson process at the profile's rate
    /// divided by `per_event` (thinning when the rate varies).
    fn poisson_after(
        &self,
        now: SimTime,
        horizon: SimTime,
        per_event: u32,
        rng: &mut SimRng,
    ) -> Option<SimTime> {
        let per_event = u128::from(per_event.max(1));
        // Mean gap at the peak rate, in nanoseconds: 1e9 * 1000 / milli_per_sec.
        let mean = u64::try_from(u128::from(NANOS_PER_SEC) * 1_000 * per_event / u128::from(self.peak))
            .unwrap_or(u64::MAX);
        let constant = self.profile.is_constant();
        let mut t = now;
        loop {
            t = t.saturating_add(SimDuration::from_nanos(rng.exp_nanos(mean.max(1))));
            if t > horizon {
                return None;
            }
            if constant {
                return Some(t);
            }
            let r = self.profile.rate_at(t);
            // Accept with probability r / peak (thinning); one uniform draw.
            if rng.below(self.peak) < r {
                return Some(t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_and_ramp_rates() {
        let p = RateProfile::from_points(vec![
            RatePoint {
                at: SimTime::ZERO,
                milli_per_sec: 2_000_000,
                ramp: SimDuration::ZERO,
            },
            RatePoint {
                at: SimTime::from_secs(5),
                milli_per_sec: 30_000_000,
                ramp: SimDuration::from_secs(2),
            },
        ]);
        assert_eq!(p.rate_at(SimTime::from_secs(1)), 2_000_000);
        assert_eq!(p.rate_at(SimTime::from_secs(6)), 16_000_000);
        assert_eq!(p.rate_at(SimTime::from_secs(8)), 30_000_000);
        assert_eq!(p.peak(), 30_000_000);
    }

    #[test]
    fn poisson_count_matches_rate() {
        let mut a = Arrivals::new(RateProfile::constant(30_000_000)); // 30k/s
        let mut rng = SimRng::from_seed(1);
        let horizon = SimTime::from_secs(2);
        let mut t = SimTime::ZERO;
        let mut n = 0u64;
        while let Some(next) = a.next_after(t, horizon, &mut rng) {
            t = next;
            n += 1;
        }
        // 60,000 expected, sd ~245.
        assert!((59_000..61_000).contains(&n), "{n}");
    }

    #[test]
    fn thinning_follows_a_step() {
        let p = RateProfile::from_points(vec![
            RatePoint {
                at: SimTime::ZERO,
                milli_per_sec: 1_000_000,
                ramp: SimDuration::ZERO,
            },
            RatePoint {
                at: SimTime::from_secs(1),
                milli_per_sec: 10_000_000,
                ramp: SimDuration::ZERO,
            },
        ]);
        let mut a = Arrivals::new(p);
        let mut rng = SimRng::from_seed(2);
        let (mut t, mut first, mut second) = (SimTime::ZERO, 0u64, 0u64);
        while let Some(next) = a.next_after(t, SimTime::from_secs(2), &mut rng) {
            t = next;
            if t < SimTime::from_secs(1) {
                first += 1
            } else {
                second += 1
            }
        }
        assert!((900..1_100).contains(&first), "{first}");
        assert!((9_600..10_400).contains(&second), "{second}");
    }

    fn count_until(a: &mut Arrivals, horizon: SimTime, seed: u64) -> Vec<SimTime> {
        let mut rng = SimRng::from_seed(seed);
        let mut t = SimTime::ZERO;
        let mut out = Vec::new();
        while let Some(next) = a.next_after(t, horizon, &mut rng) {
            t = next;
            out.push(t);
        }
        out
    }

    #[test]
    fn paced_arrivals_are_evenly_spaced_and_follow_steps() {
        let p = RateProfile::from_points(vec![
            RatePoint {
                at: SimTime::ZERO,
                milli_per_sec: 0,
                ramp: SimDuration::ZERO,
            },
            RatePoint {
                at: SimTime::from_secs(1),
                milli_per_sec: 100_000,
                ramp: SimDuration::ZERO,
            },
        ]);
        let mut a = Arrivals::with_process(p, Process::Paced);
        let times = count_until(&mut a, SimTime::from_secs(2), 3);
        // Nothing in the first second, then exactly every 10 ms.
        assert_eq!(times.len(), 100, "{}", times.len());
        assert_eq!(times[0], SimTime::from_millis(1_010));
        assert!(
            times
                .windows(2)
                .all(|w| w[1] - w[0] == SimDuration::from_millis(10))
        );
    }

    #[test]
    fn bursts_group_arrivals_at_one_instant_with_the_same_mean_rate() {
        let mut a = Arrivals::with_process(RateProfile::constant(10_000_000), Process::Bursts { size: 50 });
        let times = count_until(&mut a, SimTime::from_secs(10), 4);
        // 100,000 expected (2,000 bursts of 50; the burst count's sd is about 45).
        assert!((95_000..105_000).contains(&times.len()), "{}", times.len());
        let distinct: std::collections::BTreeSet<_> = times.iter().collect();
        assert!(
            times.len() / distinct.len() >= 49,
            "{} arrivals at {} instants",
            times.len(),
            distinct.len()
        );
    }
}
