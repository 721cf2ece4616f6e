//! `plan`: the value of one numeric scenario field at which a condition first holds
//! (the breaking point), found by bisection, per variant and per seed.
//!
//! Each (variant, seed) pair runs its own search; the searches advance in lock step, one
//! round of runs at a time, so every round's runs go to [`run_jobs`] together and the
//! result does not depend on the number of threads. A search first needs a bracket:
//! with `range` it probes both ends; without, it probes the scenario's value and then
//! moves by a factor of 4 (down when the condition holds and a larger value is more load,
//! up otherwise) until the outcome flips. It then bisects until the last value where the
//! condition did not hold and the first where it did are within `resolution_ppm` of each
//! other. The breaking point is stated over seeds as min / median / max.
//!
//! A probe whose condition is on counters that only grow ([`Condition::only_grows`])
//! stops at the end of the first simulated second at which it holds
//! ([`crate::sim::run_until_decided`]): the rest of the run cannot undo it, so the
//! search's steps and answer are those of whole runs (`full_runs` turns this off).
//!
//! The simulations are monotone in expectation only: at a bracket this narrow two seeds
//! may disagree, which is what the spread shows.
//!
//! `search` is one search's state machine; `text` renders the plan.

mod search;
mod text;

use std::num::NonZeroUsize;

use serde::Serialize;

use super::compare;
use super::horizon::{Horizon, Sufficiency};
use super::knob::{Condition, Knob};
use super::runner::{Job, run_jobs, run_jobs_until, workers_within};
use crate::scenario::budget::{Estimate, Limits};
use crate::scenario::{ConnectionMode, Override, Scenario, ScenarioError, Variant};
use crate::sim::{Outcome, SimError};
use search::{Search, State};

/// Schema version of [`Plan`]'s JSON.
pub const PLAN_SCHEMA_VERSION: u32 = 1;

/// How to search.
#[derive(Clone, Debug)]
pub struct PlanSettings {
    /// The condition to find the onset of.
    pub until: Condition,
    /// Explicit bracket `(lo, hi)` in the knob's units; `None` = start at the scenario's value.
    pub range: Option<(u64, u64)>,
    /// Stop when the bracket is this narrow, parts per million of its upper end
    /// (10,000 = 1 %).
    pub resolution_ppm: u64,
    /// Factor-of-4 steps tried when looking for a bracket without `range`.
    pub max_expansions: u32,
    /// Seeds; every (variant, seed) pair is searched separately.
    pub seeds: Vec<u64>,
    /// Run every probe to its end even when its condition is decided earlier (by
    /// default a probe stops at the end of the first simulated second at which a
    /// condition on counters that only grow holds: the search's answer is the same,
    /// the probe's `observed` is then the count at the stop).
    pub full_runs: bool,
    /// Limits every probe's run must fit in: a search that would go on to a probe over
    /// them on its own ends with [`Answer::OverLimits`] instead of starting that run
    /// (moving a rate by factors of 4 reaches sizes no machine holds within a few
    /// steps), and a round runs only as many probes at once as fit in `max_memory`
    /// together, so neither the answer nor the memory depends on the threads.
    pub limits: Limits,
}

/// Why a plan could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Variants could not be derived.
    #[error(transparent)]
    Variant(#[from] compare::CompareError),
    /// A probe's value does not make a valid scenario.
    #[error("{variant}: {knob} = {value}: {source}")]
    Probe {
        /// Variant name.
        variant: String,
        /// The knob's paths.
        knob: String,
        /// The value.
        value: String,
        /// Why.
        source: ScenarioError,
    },
    /// A knob path is not an override path.
    #[error("{0}")]
    BadPath(String),
    /// No seeds.
    #[error("no seeds to run")]
    NoSeeds,
    /// No value to start from and no range.
    #[error("{0}: the scenario has no value to start from; give --range LO..HI")]
    NoStart(String),
    /// `@node` names no node.
    #[error("--until {cond}: the scenario has no node `{node}`")]
    UnknownNode {
        /// The condition.
        cond: String,
        /// The node.
        node: String,
    },
    /// A run failed for a reason other than an unsupported feature.
    #[error("{variant}: {source}")]
    Sim {
        /// Variant name.
        variant: String,
        /// Why.
        source: SimError,
    },
}

impl PlanError {
    /// Whether the user's input caused it (see [`SimError::is_user_error`]).
    #[must_use]
    pub fn is_user_error(&self) -> bool {
        match self {
            PlanError::Variant(e) => e.is_user_error(),
            PlanError::Sim { source, .. } => source.is_user_error(),
            PlanError::Probe { .. }
            | PlanError::BadPath(_)
            | PlanError::NoSeeds
            | PlanError::NoStart(_)
            | PlanError::UnknownNode { .. } => true,
        }
    }
}

/// One run of a search.
#[derive(Clone, Debug, Serialize)]
pub struct Probe {
    /// The knob's value (knob units: milli-requests/s for rates).
    pub value: u64,
    /// The value as written in the override.
    pub text: String,
    /// Whether the condition held.
    pub held: bool,
    /// The measured value (threshold units).
    pub observed: f64,
    /// When a conntrack counter first rose, seconds.
    pub onset_s: Option<f64>,
    /// Median latency of successful requests (ms), for the analytic estimate.
    pub p50_ms: f64,
    /// When the run was stopped because the condition held for good (seconds);
    /// `observed` and `p50_ms` are then as of this time. `None`: the run went to its end.
    pub stopped_at_s: Option<f64>,
}

/// The outcome of one search.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    /// The condition starts between these two values.
    Found {
        /// The value nearest the boundary at which the condition did not hold.
        last_safe: u64,
        /// The value nearest the boundary at which it held (the breaking point).
        breaking: u64,
    },
    /// It held at every value tried.
    AlwaysHolds {
        /// Smallest value tried.
        lo: u64,
        /// Largest value tried.
        hi: u64,
    },
    /// It never held.
    NeverHolds {
        /// Smallest value tried.
        lo: u64,
        /// Largest value tried.
        hi: u64,
    },
    /// The next value to try would make a run over the limits (`--max-memory`,
    /// `--max-events`, `--max-rows`), so the search stopped before it.
    OverLimits {
        /// The value not run.
        next: u64,
        /// Why: the run's estimate against the limits, naming the fields that drive it.
        reason: String,
        /// Smallest and largest value run before it, when any was.
        tried: Option<(u64, u64)>,
        /// Whether the condition held at the last value run (`None` when none was).
        held: Option<bool>,
    },
    /// This build cannot simulate the variant.
    NotSimulated {
        /// The simulator's reason.
        reason: String,
    },
}

/// One (variant, seed) search.
#[derive(Clone, Debug, Serialize)]
pub struct SeedSearch {
    /// The seed.
    pub seed: u64,
    /// Its result.
    pub answer: Answer,
    /// Every run, in the order made.
    pub probes: Vec<Probe>,
}

/// min / median / max over seeds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    /// Smallest.
    pub min: f64,
    /// Median (lower middle for an even count).
    pub median: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when empty.
    #[must_use]
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        Some(Spread {
            min: *v.first()?,
            median: v[(v.len() - 1) / 2],
            max: *v.last()?,
        })
    }
}

/// The sustainable rate of short connections a conntrack table allows:
/// `nf_conntrack_max / (nf_conntrack_tcp_timeout_time_wait + connection lifetime)`.
#[derive(Clone, Debug, Serialize)]
pub struct Analytic {
    /// Requests (= connections) per second.
    pub rate_per_s: f64,
    /// The node whose table gives the lowest rate.
    pub node: String,
    /// Its `nf_conntrack_max`.
    pub max: u64,
    /// Its TIME_WAIT timeout, seconds.
    pub time_wait_s: f64,
    /// The connection lifetime used: the median latency measured at the last safe value, ms.
    pub lifetime_ms: f64,
}

/// One variant's result.
#[derive(Clone, Debug, Serialize)]
pub struct VariantPlan {
    /// Variant name.
    pub name: String,
    /// Its overrides as written.
    pub overrides: Vec<String>,
    /// Breaking point over seeds (report units: requests/s for rates), when every seed found one.
    pub breaking: Option<Spread>,
    /// Last safe value over seeds.
    pub last_safe: Option<Spread>,
    /// The analytic sustainable rate, when the knob is a short-connection workload's rate
    /// and the condition a conntrack counter.
    pub analytic: Option<Analytic>,
    /// Per seed.
    pub seeds: Vec<SeedSearch>,
}

/// A whole plan.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// [`PLAN_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Scenario file.
    pub scenario: String,
    /// The knob searched.
    pub knob: Knob,
    /// The condition.
    pub until: Condition,
    /// Resolution, percent.
    pub resolution_pct: f64,
    /// Simulated duration of each run, seconds.
    pub duration_s: f64,
    /// Runs made in total.
    pub runs: usize,
    /// Of those, runs stopped once the condition held for good ([`Probe::stopped_at_s`]).
    pub runs_stopped: usize,
    /// Whether the runs reach the table's steady state; answers from shorter runs are
    /// inconclusive (the value found fills the table within the run, not for good).
    pub run: Sufficiency,
    /// Caveats (duration too short for a steady state, ...).
    pub warnings: Vec<String>,
    /// Per variant, baseline first.
    pub variants: Vec<VariantPlan>,
}

/// Runs the plan: every (variant, seed) search, in lock-step rounds on `threads`.
/// `on_round(round, runs_done)` is called after each round (progress only).
///
/// # Errors
/// [`PlanError`] for variants or probe values that do not validate and for runs that
/// fail other than with [`SimError::Unsupported`] (which ends that variant's searches
/// with [`Answer::NotSimulated`]).
pub fn plan(
    base: &Scenario,
    variants: &[Variant],
    knob: &Knob,
    settings: &PlanSettings,
    threads: NonZeroUsize,
    on_round: &dyn Fn(usize, usize),
) -> Result<Plan, PlanError> {
    if settings.seeds.is_empty() {
        return Err(PlanError::NoSeeds);
    }
    if settings.range.is_none() && knob.current.is_none() {
        return Err(PlanError::NoStart(knob.paths.join(",")));
    }
    if let Some(node) = &settings.until.node
        && base.node_by_name(node).is_none()
    {
        return Err(PlanError::UnknownNode {
            cond: settings.until.text.clone(),
            node: node.clone(),
        });
    }
    knob.overrides(0).map_err(PlanError::BadPath)?;
    let columns = compare::jobs(base, variants)?;
    let mut searches: Vec<Search> = (0..columns.len() * settings.seeds.len())
        .map(|_| Search {
            state: State::Start,
            probes: Vec::new(),
        })
        .collect();
    let mut runs = 0usize;
    let mut round = 0usize;
    loop {
        let Round { jobs, owners } = next_round(&mut searches, &columns, knob, settings)?;
        if jobs.is_empty() {
            break;
        }
        let workers = workers_within(&jobs, threads, &settings.limits);
        let outcomes = if settings.full_runs || !settings.until.only_grows() {
            run_jobs(&jobs, workers, &|_, _| {})
        } else {
            run_jobs_until(&jobs, workers, &|_, _| {}, &|_, p| settings.until.decided_by(p))
        };
        runs += jobs.len();
        round += 1;
        let mut per_search: Vec<Vec<Probe>> = vec![Vec::new(); searches.len()];
        let mut unsupported: Vec<Option<String>> = vec![None; searches.len()];
        for ((i, value), out) in owners.into_iter().zip(outcomes) {
            match out {
                Ok(o) => per_search[i].push(probe(knob, &settings.until, value, &o)),
                Err(SimError::Unsupported { what }) => unsupported[i] = Some(what),
                Err(source) => {
                    return Err(PlanError::Sim {
                        variant: columns[i / settings.seeds.len()].label.clone(),
                        source,
                    });
                }
            }
        }
        for (i, (search, probes)) in searches.iter_mut().zip(per_search).enumerate() {
            if let Some(reason) = unsupported[i].take() {
                search.state = State::Done(Answer::NotSimulated { reason });
            } else if !probes.is_empty() {
                search.record(knob, settings, probes);
            }
        }
        on_round(round, runs);
    }
    let mut out = Vec::new();
    for (c, column) in columns.iter().enumerate() {
        let seeds: Vec<SeedSearch> = settings
            .seeds
            .iter()
            .enumerate()
            .map(|(k, &seed)| {
                let s = &searches[c * settings.seeds.len() + k];
                SeedSearch {
                    seed,
                    answer: match &s.state {
                        State::Done(a) => a.clone(),
                        _ => Answer::NeverHolds { lo: 0, hi: 0 },
                    },
                    probes: s.probes.clone(),
                }
            })
            .collect();
        let found: Vec<(f64, f64)> = seeds
            .iter()
            .filter_map(|s| match s.answer {
                Answer::Found { last_safe, breaking } => {
                    Some((knob.as_f64(last_safe), knob.as_f64(breaking)))
                }
                _ => None,
            })
            .collect();
        let all = found.len() == seeds.len();
        let analytic = analytic(&column.scenario, knob, &settings.until, &seeds);
        out.push(VariantPlan {
            name: column.label.clone(),
            overrides: variants
                .iter()
                .find(|v| v.name == column.label)
                .map(|v| v.overrides.iter().map(|o| o.as_str().to_owned()).collect())
                .unwrap_or_default(),
            breaking: all
                .then(|| Spread::of(&found.iter().map(|f| f.1).collect::<Vec<_>>()))
                .flatten(),
            last_safe: all
                .then(|| Spread::of(&found.iter().map(|f| f.0).collect::<Vec<_>>()))
                .flatten(),
            analytic,
            seeds,
        });
    }
    Ok(Plan {
        schema_version: PLAN_SCHEMA_VERSION,
        scenario: base.file.clone(),
        knob: knob.clone(),
        until: settings.until.clone(),
        resolution_pct: ppm_to_pct(settings.resolution_ppm),
        duration_s: secs(base.duration.as_nanos()),
        runs,
        runs_stopped: out
            .iter()
            .flat_map(|v| &v.seeds)
            .flat_map(|s| &s.probes)
            .filter(|p| p.stopped_at_s.is_some())
            .count(),
        run: Horizon::of(base).check(secs(base.duration.as_nanos())),
        warnings: warnings(base, &settings.until),
        variants: out,
    })
}

/// The next round's runs of every search that is not done, with the search and value
/// each belongs to. A round's probes of one search are queued together or not at all:
/// one over the limits on its own ends that search before any of them runs.
fn next_round(
    searches: &mut [Search],
    columns: &[Job],
    knob: &Knob,
    settings: &PlanSettings,
) -> Result<Round, PlanError> {
    let mut jobs = Vec::new();
    let mut owners = Vec::new();
    for (i, search) in searches.iter_mut().enumerate() {
        let column = &columns[i / settings.seeds.len()];
        let seed = settings.seeds[i % settings.seeds.len()];
        let mut queued = Vec::new();
        let mut refused = None;
        for value in search.next(knob, settings) {
            let mut set = knob.overrides(value).map_err(PlanError::BadPath)?;
            set.push(
                Override::parse(&format!("seed={seed}")).map_err(|e| PlanError::BadPath(e.to_string()))?,
            );
            let scenario = column
                .scenario
                .with_overrides(&set)
                .map_err(|source| PlanError::Probe {
                    variant: column.label.clone(),
                    knob: knob.paths.join(","),
                    value: knob.format(value),
                    source,
                })?;
            // Alone, whatever the threads, so the answer does not depend on them;
            // `plan` runs only as many at once as fit the memory limit (`workers_within`).
            if let Err(e) = Estimate::of(&scenario).check(&scenario, &settings.limits, 1) {
                refused = Some((value, e.to_string()));
                break;
            }
            let label = format!("{} seed {seed} {}", column.label, knob.format(value));
            queued.push((Job { label, scenario }, value));
        }
        if let Some((value, reason)) = refused {
            search.stop_over_limits(value, reason);
            continue;
        }
        for (job, value) in queued {
            jobs.push(job);
            owners.push((i, value));
        }
    }
    Ok(Round { jobs, owners })
}

/// One round of a plan: its runs, and for each the search (index) and value it belongs to.
struct Round {
    jobs: Vec<Job>,
    owners: Vec<(usize, u64)>,
}

fn probe(knob: &Knob, until: &Condition, value: u64, o: &Outcome) -> Probe {
    let (observed, onset_s) = until.observe(&o.report).unwrap_or((0.0, None));
    Probe {
        value,
        text: knob.format(value),
        held: until.holds(observed),
        observed,
        onset_s,
        p50_ms: o.report.latency_ms.p50,
        stopped_at_s: o.stopped_at.map(crate::time::SimTime::as_secs_f64),
    }
}

#[allow(clippy::cast_precision_loss)]
fn secs(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

#[allow(clippy::cast_precision_loss)]
fn ppm_to_pct(ppm: u64) -> f64 {
    ppm as f64 / 10_000.0
}

/// The short-connection workload a rate knob sets, if any.
fn short_workload<'a>(s: &'a Scenario, knob: &Knob) -> Option<&'a crate::scenario::WorkloadConfig> {
    let [path] = knob.paths.as_slice() else {
        return None;
    };
    let index = path.strip_prefix("workloads.")?.strip_suffix(".rate")?;
    let w = s.workloads.get(index.parse::<usize>().ok()?)?;
    (w.connection.mode == ConnectionMode::Short).then_some(w)
}

fn analytic(s: &Scenario, knob: &Knob, until: &Condition, seeds: &[SeedSearch]) -> Option<Analytic> {
    if !until.metric.is_conntrack() || short_workload(s, knob).is_none() {
        return None;
    }
    // The lifetime: the median latency at the last safe value (first seed that found one).
    let lifetime_ms = seeds.iter().find_map(|sd| match sd.answer {
        Answer::Found { last_safe, .. } => sd.probes.iter().find(|p| p.value == last_safe).map(|p| p.p50_ms),
        _ => None,
    })?;
    s.nodes
        .iter()
        .filter(|n| until.node.as_ref().is_none_or(|x| *x == n.name))
        .map(|n| {
            let max = u64::from(n.sysctls.values.nf_conntrack_max);
            let tw = secs(n.sysctls.values.ct_timeouts.tcp_time_wait.as_nanos());
            #[allow(clippy::cast_precision_loss)]
            let rate = max as f64 / (tw + lifetime_ms / 1_000.0);
            Analytic {
                rate_per_s: rate,
                node: n.name.clone(),
                max,
                time_wait_s: tw,
                lifetime_ms,
            }
        })
        .min_by(|a, b| a.rate_per_s.total_cmp(&b.rate_per_s))
}

/// Caveats about the runs' length: a condition on short connections needs the table to
/// reach its steady state, TIME_WAIT (`nf_conntrack_tcp_timeout_time_wait`) plus the
/// connection lifetime after the load settles ([`Horizon`]).
fn warnings(s: &Scenario, until: &Condition) -> Vec<String> {
    let mut out = Vec::new();
    let run = Horizon::of(s).check(secs(s.duration.as_nanos()));
    if !run.long_enough {
        out.push(format!(
            "inconclusive: {}: the value found for {until} is the one that shows it within {:.0} s, not a sustainable one (a capacity found this way is too high, a safe value may not be); run with --set duration={:.0}s",
            run.reason, run.run_s, run.needed_s
        ));
    }
    if s.workloads.iter().any(|w| !w.rate_profile.is_empty()) {
        out.push(
            "a workload has a rate profile: the knob sets the base rate only, before the first step"
                .to_owned(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_min_median_max() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        assert!(Spread::of(&[]).is_none());
    }
}
