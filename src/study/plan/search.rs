//! One search's state machine: from the first probes to a bracket (both ends of the
//! range, or factors of 4 from the scenario's value until the outcome flips), then
//! bisection until the bracket is within the resolution.

use super::{Answer, PlanSettings, Probe};
use crate::study::knob::Knob;

#[derive(Clone, Debug)]
pub(super) enum State {
    Start,
    Expanding {
        last: u64,
        last_held: bool,
        steps: u32,
        first: u64,
    },
    Bisect {
        safe: u64,
        failing: u64,
    },
    Done(Answer),
}

/// One search's state machine.
#[derive(Clone, Debug)]
pub(super) struct Search {
    pub(super) state: State,
    pub(super) probes: Vec<Probe>,
}

impl Search {
    /// The values to run next (empty when done).
    pub(super) fn next(&self, knob: &Knob, s: &PlanSettings) -> Vec<u64> {
        match &self.state {
            State::Start => match (s.range, knob.current) {
                (Some((lo, hi)), _) => vec![lo, hi],
                (None, Some(c)) => vec![c],
                (None, None) => Vec::new(),
            },
            State::Expanding { last, last_held, .. } => {
                let up = *last_held != knob.more_is_load;
                let v = if up { last.saturating_mul(4) } else { *last / 4 };
                if v == *last || v == 0 { Vec::new() } else { vec![v] }
            }
            State::Bisect { safe, failing } => {
                let (a, b) = ((*safe).min(*failing), (*safe).max(*failing));
                let q = knob.quantum(b - a);
                let mid = (a + (b - a) / 2) / q * q;
                if mid <= a || mid >= b {
                    Vec::new()
                } else {
                    vec![mid]
                }
            }
            State::Done(_) => Vec::new(),
        }
    }

    /// Records the runs of `next` and advances.
    pub(super) fn record(&mut self, knob: &Knob, s: &PlanSettings, probes: Vec<Probe>) {
        if matches!(self.state, State::Done(_)) {
            return;
        }
        let held: Vec<(u64, bool)> = probes.iter().map(|p| (p.value, p.held)).collect();
        self.probes.extend(probes);
        self.state = match (&self.state, held.as_slice()) {
            (State::Start, [(lo, hl), (hi, hh)]) => match (hl, hh) {
                (true, true) => State::Done(Answer::AlwaysHolds { lo: *lo, hi: *hi }),
                (false, false) => State::Done(Answer::NeverHolds { lo: *lo, hi: *hi }),
                (true, false) => State::Bisect {
                    safe: *hi,
                    failing: *lo,
                },
                (false, true) => State::Bisect {
                    safe: *lo,
                    failing: *hi,
                },
            },
            (State::Start, [(v, h)]) => State::Expanding {
                last: *v,
                last_held: *h,
                steps: 0,
                first: *v,
            },
            (
                State::Expanding {
                    last,
                    last_held,
                    steps,
                    first,
                },
                [(v, h)],
            ) => {
                if h == last_held {
                    if steps + 1 >= s.max_expansions {
                        done_without_flip(*first, *v, *h)
                    } else {
                        State::Expanding {
                            last: *v,
                            last_held: *h,
                            steps: steps + 1,
                            first: *first,
                        }
                    }
                } else if *h {
                    State::Bisect {
                        safe: *last,
                        failing: *v,
                    }
                } else {
                    State::Bisect {
                        safe: *v,
                        failing: *last,
                    }
                }
            }
            (State::Bisect { safe, failing }, [(v, h)]) => {
                if *h {
                    State::Bisect {
                        safe: *safe,
                        failing: *v,
                    }
                } else {
                    State::Bisect {
                        safe: *v,
                        failing: *failing,
                    }
                }
            }
            (state, _) => state.clone(),
        };
        self.finish_if_narrow(knob, s);
    }

    /// Ends the search before `next`, whose run would be over the limits (`reason`).
    pub(super) fn stop_over_limits(&mut self, next: u64, reason: String) {
        let tried = self
            .probes
            .iter()
            .map(|p| p.value)
            .fold(None, |acc: Option<(u64, u64)>, v| {
                Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
            });
        self.state = State::Done(Answer::OverLimits {
            next,
            reason,
            tried,
            held: self.probes.last().map(|p| p.held),
        });
    }

    fn finish_if_narrow(&mut self, knob: &Knob, s: &PlanSettings) {
        if let State::Bisect { safe, failing } = self.state {
            let width = safe.abs_diff(failing);
            let top = safe.max(failing);
            let tol =
                u64::try_from(u128::from(top) * u128::from(s.resolution_ppm) / 1_000_000).unwrap_or(u64::MAX);
            if width <= tol.max(knob.quantum(width)) || self.next(knob, s).is_empty() {
                self.state = State::Done(Answer::Found {
                    last_safe: safe,
                    breaking: failing,
                });
            }
        }
        if let State::Expanding {
            last,
            last_held,
            first,
            ..
        } = self.state
            && self.next(knob, s).is_empty()
        {
            self.state = done_without_flip(first, last, last_held);
        }
    }
}

fn done_without_flip(a: u64, b: u64, held: bool) -> State {
    let (lo, hi) = (a.min(b), a.max(b));
    State::Done(if held {
        Answer::AlwaysHolds { lo, hi }
    } else {
        Answer::NeverHolds { lo, hi }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::knob::{Condition, KnobKind};

    fn knob(more_is_load: bool, current: Option<u64>) -> Knob {
        Knob {
            paths: vec!["x".into()],
            kind: KnobKind::Integer,
            current,
            more_is_load,
        }
    }

    fn settings(range: Option<(u64, u64)>) -> PlanSettings {
        PlanSettings {
            until: Condition::parse("drop>0").unwrap(),
            range,
            resolution_ppm: 10_000,
            max_expansions: 6,
            seeds: vec![1],
            full_runs: false,
            limits: crate::scenario::budget::Limits::default(),
        }
    }

    /// Drives a search against a threshold function and returns its answer and runs.
    fn drive(k: &Knob, s: &PlanSettings, holds: impl Fn(u64) -> bool) -> (Answer, usize) {
        let mut search = Search {
            state: State::Start,
            probes: Vec::new(),
        };
        let mut runs = 0;
        loop {
            let next = search.next(k, s);
            if next.is_empty() {
                break;
            }
            runs += next.len();
            let probes = next
                .into_iter()
                .map(|v| Probe {
                    value: v,
                    text: v.to_string(),
                    held: holds(v),
                    observed: 0.0,
                    onset_s: None,
                    p50_ms: 0.0,
                    stopped_at_s: None,
                })
                .collect();
            search.record(k, s, probes);
        }
        match search.state {
            State::Done(a) => (a, runs),
            other => panic!("not done: {other:?}"),
        }
    }

    #[test]
    fn a_search_stopped_over_the_limits_says_what_it_tried() {
        let k = knob(true, Some(1_000));
        let s = settings(None);
        let mut search = Search {
            state: State::Start,
            probes: Vec::new(),
        };
        for v in [1_000, 4_000] {
            assert_eq!(search.next(&k, &s), [v]);
            let probe = Probe {
                value: v,
                text: v.to_string(),
                held: false,
                observed: 0.0,
                onset_s: None,
                p50_ms: 0.0,
                stopped_at_s: None,
            };
            search.record(&k, &s, vec![probe]);
        }
        assert_eq!(search.next(&k, &s), [16_000]);
        search.stop_over_limits(16_000, "too large".into());
        assert!(search.next(&k, &s).is_empty());
        let State::Done(a) = &search.state else {
            panic!("{:?}", search.state)
        };
        assert_eq!(
            *a,
            Answer::OverLimits {
                next: 16_000,
                reason: "too large".into(),
                tried: Some((1_000, 4_000)),
                held: Some(false),
            }
        );
    }

    #[test]
    fn bisection_brackets_the_threshold_within_the_resolution() {
        // A load knob: holds at 1093 and above; start at 30000 (holds), go down.
        let k = knob(true, Some(30_000));
        let (a, runs) = drive(&k, &settings(None), |v| v >= 1_093);
        let Answer::Found { last_safe, breaking } = a else {
            panic!("{a:?}")
        };
        assert!(last_safe < 1_093 && breaking >= 1_093, "{last_safe}..{breaking}");
        assert!(breaking - last_safe <= breaking / 100, "{last_safe}..{breaking}");
        assert!(runs < 20, "{runs} runs");
    }

    #[test]
    fn a_capacity_knob_searches_upwards_when_the_condition_holds() {
        // nf_conntrack_max: drop holds below 200000; start at 131072 (holds), go up.
        let k = knob(false, Some(131_072));
        let (a, _) = drive(&k, &settings(None), |v| v < 200_000);
        let Answer::Found { last_safe, breaking } = a else {
            panic!("{a:?}")
        };
        assert!(
            last_safe >= 200_000 && breaking < 200_000,
            "{last_safe} {breaking}"
        );
        assert!(last_safe - breaking <= 2_000);
    }

    #[test]
    fn a_range_where_the_condition_never_or_always_holds_says_so() {
        let k = knob(true, None);
        let s = settings(Some((10, 100)));
        assert_eq!(drive(&k, &s, |_| false).0, Answer::NeverHolds { lo: 10, hi: 100 });
        assert_eq!(drive(&k, &s, |_| true).0, Answer::AlwaysHolds { lo: 10, hi: 100 });
        // Without a range, expansion stops after max_expansions and names what it tried.
        let k = knob(true, Some(1_000));
        let (a, runs) = drive(&k, &settings(None), |_| false);
        assert_eq!(
            a,
            Answer::NeverHolds {
                lo: 1_000,
                hi: 1_000 * 4u64.pow(6)
            }
        );
        assert_eq!(runs, 7);
    }

    #[test]
    fn integer_bisection_stops_at_adjacent_values() {
        let k = knob(true, None);
        let mut s = settings(Some((1, 40)));
        s.resolution_ppm = 0;
        let (a, _) = drive(&k, &s, |v| v >= 17);
        assert_eq!(
            a,
            Answer::Found {
                last_safe: 16,
                breaking: 17
            }
        );
    }
}
