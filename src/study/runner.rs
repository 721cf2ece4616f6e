//! Runs independent simulations on a pool of threads, deterministically.
//!
//! Jobs are claimed from a shared counter and each result is stored at its job's index;
//! the returned vector is in job order whatever the number of threads, so a study's output
//! is byte-identical with 1 thread or 16.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::report::Report;
use crate::scenario::Scenario;
use crate::scenario::budget::{Estimate, Limits};
use crate::sim::{Outcome, SimError};

/// One run of a study: a label and the scenario to simulate.
#[derive(Clone, Debug)]
pub struct Job {
    /// What the run is (a variant name, a grid point, a bisection step).
    pub label: String,
    /// The fully derived scenario.
    pub scenario: Scenario,
}

/// The number of threads to use by default: the machine's available parallelism.
#[must_use]
pub fn default_threads() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// Runs every job, on at most `threads` threads, and returns the outcomes in job order.
///
/// `on_done(finished, total)` is called after each job completes (from the worker thread
/// that ran it, in completion order): use it for progress bars only.
pub fn run_jobs(
    jobs: &[Job],
    threads: NonZeroUsize,
    on_done: &(dyn Fn(usize, usize) + Sync),
) -> Vec<Result<Outcome, SimError>> {
    pool(jobs.len(), threads, on_done, &|i| {
        crate::sim::run(&jobs[i].scenario, &mut |_, _| {})
    })
    .into_iter()
    .map(|r| r.unwrap_or_else(|| Err(stopped())))
    .collect()
}

/// Runs every job like [`run_jobs`], but stops each run at the end of the first simulated
/// second at which `decided(job index, progress)` says its question is answered
/// ([`crate::sim::run_until_decided`]).
pub fn run_jobs_until(
    jobs: &[Job],
    threads: NonZeroUsize,
    on_done: &(dyn Fn(usize, usize) + Sync),
    decided: &(dyn Fn(usize, &crate::sim::Progress<'_>) -> bool + Sync),
) -> Vec<Result<Outcome, SimError>> {
    pool(jobs.len(), threads, on_done, &|i| {
        crate::sim::run_until_decided(&jobs[i].scenario, &mut |_| {}, &mut |p| decided(i, p))
    })
    .into_iter()
    .map(|r| r.unwrap_or_else(|| Err(stopped())))
    .collect()
}

/// Runs every job like [`run_jobs`] but keeps only each run's report (the time series
/// is streamed away, so a run's memory does not grow with its length), and hands it to
/// `map(job index, report)` on the worker thread as soon as the run ends; returns what
/// `map` returned, in job order.
pub fn run_reports<T: Send>(
    jobs: &[Job],
    threads: NonZeroUsize,
    on_done: &(dyn Fn(usize, usize) + Sync),
    map: &(dyn Fn(usize, Result<Report, SimError>) -> T + Sync),
) -> Vec<T> {
    pool(jobs.len(), threads, on_done, &|i| {
        let out = crate::sim::run_with(&jobs[i].scenario, &mut |_, _| {}, &mut |_| {});
        map(i, out.map(|o| o.report))
    })
    .into_iter()
    .enumerate()
    .map(|(i, r)| r.unwrap_or_else(|| map(i, Err(stopped()))))
    .collect()
}

/// How many of `jobs` may run at once: at most `threads`, and no more than the largest
/// runs' memory estimates fit in `limits.max_memory` together (at least one). Studies
/// decide whether a run fits on its own, so their answers do not depend on the threads;
/// this keeps the runs at once within the limit.
#[must_use]
pub fn workers_within(jobs: &[Job], threads: NonZeroUsize, limits: &Limits) -> NonZeroUsize {
    let mut bytes: Vec<u64> = jobs
        .iter()
        .map(|j| Estimate::of(&j.scenario).memory_bytes())
        .collect();
    bytes.sort_unstable_by(|a, b| b.cmp(a));
    let mut total = 0u64;
    let fit = bytes
        .iter()
        .take_while(|b| {
            total = total.saturating_add(**b);
            total <= limits.max_memory
        })
        .count();
    NonZeroUsize::new(fit.min(threads.get())).unwrap_or(NonZeroUsize::MIN)
}

fn stopped() -> SimError {
    SimError::Internal("a worker thread stopped before finishing its run".into())
}

/// `work(i)` for every `i < total` on at most `threads` threads; results by index
/// (`None` where a worker died).
fn pool<T: Send>(
    total: usize,
    threads: NonZeroUsize,
    on_done: &(dyn Fn(usize, usize) + Sync),
    work: &(dyn Fn(usize) -> T + Sync),
) -> Vec<Option<T>> {
    let workers = threads.get().min(total.max(1));
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<T>>> = Mutex::new((0..total).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let out = work(i);
                    if let Ok(mut v) = slots.lock() {
                        v[i] = Some(out);
                    }
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    on_done(n, total);
                }
            });
        }
    });
    slots
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Override;

    fn small(rate: &str) -> Job {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/small.yaml");
        let set = [
            Override::parse("duration=1s").unwrap(),
            Override::parse(&format!("workloads.0.rate={rate}")).unwrap(),
        ];
        Job {
            label: rate.to_owned(),
            scenario: Scenario::load(path, &set).unwrap(),
        }
    }

    #[test]
    fn results_come_back_in_job_order_and_equal_with_one_or_two_threads() {
        let jobs = vec![small("300/s"), small("100/s"), small("200/s")];
        let one = run_jobs(&jobs, NonZeroUsize::MIN, &|_, _| {});
        let two = run_jobs(&jobs, NonZeroUsize::new(2).unwrap(), &|_, _| {});
        let sent = |v: &Vec<Result<Outcome, SimError>>| -> Vec<u64> {
            v.iter()
                .map(|o| o.as_ref().unwrap().report.requests.sent)
                .collect()
        };
        let s1 = sent(&one);
        assert!(s1[0] > s1[2] && s1[2] > s1[1], "job order kept: {s1:?}");
        let json = |v: &Vec<Result<Outcome, SimError>>| -> Vec<String> {
            v.iter()
                .map(|o| serde_json::to_string(&o.as_ref().unwrap().report).unwrap())
                .collect()
        };
        assert_eq!(json(&one), json(&two));
    }

    #[test]
    fn progress_is_reported_once_per_job() {
        let jobs = vec![small("100/s"), small("100/s")];
        let calls = AtomicUsize::new(0);
        let _ = run_jobs(&jobs, NonZeroUsize::new(2).unwrap(), &|_, total| {
            assert_eq!(total, 2);
            calls.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }
}
