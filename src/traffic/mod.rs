//! The `traffic` module models open-loop request arrivals: a Poisson process whose
//! rate follows a profile of steps and linear ramps (a flash sale is a step from a
//! base rate to the peak).
//!
//! Rates are exact integers in milli-requests per second; time-varying rates use
//! thinning (Lewis-Shedler) against the profile's peak rate, so the process is an
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

/// An open-loop Poisson arrival process following a [`RateProfile`].
#[derive(Clone, Debug)]
pub struct Arrivals {
    profile: RateProfile,
    peak: u64,
}

impl Arrivals {
    /// Arrivals following `profile`.
    #[must_use]
    pub fn new(profile: RateProfile) -> Arrivals {
        let peak = profile.peak();
        Arrivals { profile, peak }
    }

    /// The first arrival strictly after `now`, or `None` if the rate is zero from
    /// here on (checked up to `horizon`).
    pub fn next_after(&self, now: SimTime, horizon: SimTime, rng: &mut SimRng) -> Option<SimTime> {
        if self.peak == 0 {
            return None;
        }
        // Mean gap at the peak rate, in nanoseconds: 1e9 * 1000 / milli_per_sec.
        let mean =
            u64::try_from(u128::from(NANOS_PER_SEC) * 1_000 / u128::from(self.peak)).unwrap_or(u64::MAX);
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
        let a = Arrivals::new(RateProfile::constant(30_000_000)); // 30k/s
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
        let a = Arrivals::new(p);
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
}
