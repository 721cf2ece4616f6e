//! Recommendations computed from runs of the model, each verified by a re-run with the
//! recommended setting applied.
//!
//! - [`conntrack`]: `nf_conntrack_max` and `nf_conntrack_buckets` for the scenario's
//!   load: a measuring run with an unconstrained table gives the peak entries per node;
//!   max = peak × (1 + headroom), rounded up to a multiple of 65,536; buckets follow the
//!   profile's rule (kube-proxy's `max / 4` before 5.15, `max` on 5.15+ where the kernel
//!   sizes max = buckets; `src/conntrack/sizing.rs`).
//! - [`pool`]: a keep-alive pool per client pod by Little's law, `L = λ·W`, with λ the
//!   workload's rate per pod and W the p99 latency measured with a generous pool, times
//!   (1 + headroom); the idle timeout must exceed the gap between two requests on one
//!   connection.
//! - [`snat_ports`]: with `masqueradeAll`, the SNAT source ports nf_nat needs per
//!   destination (node address, endpoint ip:port): `rate / endpoints × (TIME_WAIT +
//!   lifetime) × (1 + headroom)` against 80 % of the port class MASQUERADE searches
//!   (64,512 for ephemeral ports), rate and lifetime measured; the number of endpoints
//!   that fits, re-run at the steady state. The client pods' `ip_local_port_range` is
//!   checked as a separate number.
//! - [`proxy_mode_crossover`]: runs per kube-proxy mode and number of Services; the
//!   smallest count at which another mode costs less CPU than iptables.
//!
//! The SNAT sizing lives in `snat` and the crossover in `crossover`; this module keeps
//! the first two and what all four share (a derived run, running a batch, verifying).
//!
//! Not modelled: memory limits other than the table's (256 B per entry), and the time a
//! change takes to apply (kube-proxy restarts, connection draining).

mod crossover;
mod snat;

use std::fmt::Write as _;
use std::num::NonZeroUsize;

use serde::Serialize;

use super::horizon::Horizon;
use super::runner::{Job, run_jobs, workers_within};
use crate::conntrack as sizing;
use crate::report::Report;
use crate::scenario::budget::{BudgetError, Estimate, Limits};
use crate::scenario::{Override, Scenario, ScenarioError};
use crate::sim::SimError;
pub use crossover::{CPU_SETTLE_S, Crossover, ModeCell, proxy_mode_crossover};
pub use snat::{SNAT_USABLE_SHARE, snat_port_class, snat_ports};

/// Why a recommendation could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum RecommendError {
    /// A derived scenario does not validate.
    #[error("{what}: {source}")]
    Scenario {
        /// Which run.
        what: String,
        /// Why.
        source: ScenarioError,
    },
    /// A run could not be simulated.
    #[error("{what}: {source}")]
    Sim {
        /// Which run.
        what: String,
        /// Why.
        source: SimError,
    },
    /// A derived run would not fit the limits (`--max-memory`, `--max-events`,
    /// `--max-rows`).
    #[error("{what}: {source}")]
    OverLimits {
        /// Which run.
        what: String,
        /// Its estimate against the limits.
        source: BudgetError,
    },
    /// The workload index does not exist.
    #[error("there is no workloads.{0}")]
    NoWorkload(usize),
    /// The workload targets a fixed address, not a Service with endpoints.
    #[error("workloads.{0} targets an address, not a Service: no endpoints to size")]
    NotAService(usize),
    /// Headroom outside 0..=1000 %.
    #[error("headroom {0}%: expected 0 to 1000")]
    Headroom(f64),
}

impl RecommendError {
    /// Whether the user's input caused it (see [`SimError::is_user_error`]).
    #[must_use]
    pub fn is_user_error(&self) -> bool {
        match self {
            RecommendError::Sim { source, .. } => source.is_user_error(),
            _ => true,
        }
    }
}

/// The re-run with the recommended setting.
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    /// `drop` summed over nodes.
    pub drop: u64,
    /// `insert_failed` summed over nodes.
    pub insert_failed: u64,
    /// Requests failed.
    pub failed: u64,
    /// Highest peak `nf_conntrack_count` / its max.
    pub peak: String,
    /// p99 latency, ms.
    pub p99_ms: f64,
    /// True when nothing was dropped and no request failed.
    pub holds: bool,
}

/// One recommendation.
#[derive(Clone, Debug, Serialize)]
pub struct Recommendation {
    /// What it sizes.
    pub topic: String,
    /// The settings, as `--set` overrides.
    pub settings: Vec<String>,
    /// The numbers behind it, `(name, value)`.
    pub numbers: Vec<(String, String)>,
    /// The re-run with `settings` applied (`None` for analytic-only ones).
    pub verified: Option<Verification>,
    /// How long the measuring run and the re-run lasted, and why.
    pub runs: RunLength,
}

/// How long a recommendation's runs lasted: at least what its question needs
/// ([`Horizon`]), lengthened from the scenario's own duration when that is shorter.
#[derive(Clone, Debug, Serialize)]
pub struct RunLength {
    /// Simulated seconds of each run.
    pub duration_s: f64,
    /// The scenario's own duration when the runs were lengthened past it.
    pub lengthened_from_s: Option<f64>,
    /// What the question needs, in words.
    pub reason: String,
}

impl RunLength {
    /// The runs of a question needing `h` for a scenario of `scenario_s` seconds.
    fn of(h: &Horizon, scenario_s: f64) -> RunLength {
        let duration_s = scenario_s.max(h.steady_s);
        RunLength {
            duration_s,
            lengthened_from_s: (duration_s > scenario_s).then_some(scenario_s),
            reason: h.check(duration_s).reason,
        }
    }

    fn render(&self) -> String {
        match self.lengthened_from_s {
            Some(from) => format!(
                "{:.0} s, lengthened from the scenario's {from:.0} s ({})",
                self.duration_s, self.reason
            ),
            None => format!("{:.0} s ({})", self.duration_s, self.reason),
        }
    }
}

impl Recommendation {
    /// Text: the settings, the numbers, the verification.
    #[must_use]
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}:", self.topic);
        for set in &self.settings {
            let _ = writeln!(s, "  --set {set}");
        }
        for (k, v) in &self.numbers {
            let _ = writeln!(s, "  {k}: {v}");
        }
        let _ = writeln!(s, "  runs: {}", self.runs.render());
        match &self.verified {
            Some(v) => {
                let _ = writeln!(
                    s,
                    "  re-run with these settings: drop {}, insert_failed {}, failed {}, peak {}, p99 {:.1} ms: {}",
                    v.drop,
                    v.insert_failed,
                    v.failed,
                    v.peak,
                    v.p99_ms,
                    if v.holds { "holds" } else { "DOES NOT HOLD" }
                );
            }
            None => {
                let _ = writeln!(s, "  (analytic; not re-run)");
            }
        }
        s
    }
}

fn derive(base: &Scenario, what: &str, set: &[String]) -> Result<Job, RecommendError> {
    let overrides = set
        .iter()
        .map(|t| Override::parse(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RecommendError::Sim {
            what: what.to_owned(),
            source: SimError::Internal(format!("a derived override does not parse: {e}")),
        })?;
    let scenario = base
        .with_overrides(&overrides)
        .map_err(|source| RecommendError::Scenario {
            what: what.to_owned(),
            source,
        })?;
    Ok(Job {
        label: what.to_owned(),
        scenario,
    })
}

/// Refuses, before any starts, a batch of runs one of which would not fit `limits` on
/// its own (the derived runs are larger than the scenario the command line checked: an
/// unconstrained table, a generous pool, longer runs); returns how many may run at once
/// within the memory limit ([`workers_within`]).
fn check_limits(
    jobs: &[Job],
    threads: NonZeroUsize,
    limits: &Limits,
) -> Result<NonZeroUsize, RecommendError> {
    for j in jobs {
        Estimate::of(&j.scenario)
            .check(&j.scenario, limits, 1)
            .map_err(|source| RecommendError::OverLimits {
                what: j.label.clone(),
                source,
            })?;
    }
    Ok(workers_within(jobs, threads, limits))
}

fn run_all(jobs: &[Job], threads: NonZeroUsize, limits: &Limits) -> Result<Vec<Report>, RecommendError> {
    let workers = check_limits(jobs, threads, limits)?;
    run_jobs(jobs, workers, &|_, _| {})
        .into_iter()
        .zip(jobs)
        .map(|(o, j)| {
            o.map(|o| o.report).map_err(|source| RecommendError::Sim {
                what: j.label.clone(),
                source,
            })
        })
        .collect()
}

fn verification(r: &Report) -> Verification {
    let drop = r.nodes.iter().map(|n| n.conntrack.stats.drop).sum();
    let insert_failed = r.nodes.iter().map(|n| n.conntrack.stats.insert_failed).sum();
    let peak = r
        .nodes
        .iter()
        .max_by_key(|n| n.conntrack.count_peak)
        .map_or_else(String::new, |n| {
            format!("{}/{} on {}", n.conntrack.count_peak, n.conntrack.max, n.name)
        });
    Verification {
        drop,
        insert_failed,
        failed: r.requests.failed,
        peak,
        p99_ms: r.latency_ms.p99,
        holds: drop == 0 && insert_failed == 0 && r.requests.failed == 0,
    }
}

fn check_headroom(pct: f64) -> Result<f64, RecommendError> {
    if (0.0..=1_000.0).contains(&pct) {
        Ok(pct / 100.0)
    } else {
        Err(RecommendError::Headroom(pct))
    }
}

/// A table large enough that a measuring run never fills it.
const UNCONSTRAINED_MAX: u32 = 16 * 1_048_576;

/// `nf_conntrack_max` and `nf_conntrack_buckets` for every node, for the scenario's load
/// with `headroom_pct` percent of headroom over the measured peak.
///
/// # Errors
/// [`RecommendError`] when a derived run does not validate or cannot be simulated.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
pub fn conntrack(
    base: &Scenario,
    headroom_pct: f64,
    threads: NonZeroUsize,
    limits: &Limits,
) -> Result<Recommendation, RecommendError> {
    let headroom = check_headroom(headroom_pct)?;
    let sysctl = |i: usize, name: &str, v: u64| format!("nodes.{i}.sysctl.net.netfilter.{name}={v}");
    // Both runs last until the table's steady state (TIME_WAIT + lifetime after the load
    // settles): a shorter measuring run sees a table still filling and sizes it too small.
    let horizon = Horizon::of(base);
    let runs = RunLength::of(&horizon, base.duration.as_secs_f64());
    let lengthen = horizon.lengthen(base.duration);
    let mut measure: Vec<String> = (0..base.nodes.len())
        .flat_map(|i| {
            let m = u64::from(UNCONSTRAINED_MAX);
            [
                sysctl(i, "nf_conntrack_max", m),
                sysctl(i, "nf_conntrack_buckets", m / 4),
            ]
        })
        .collect();
    measure.extend(lengthen.clone());
    let measured = run_all(
        &[derive(base, "measuring run (unconstrained table)", &measure)?],
        threads,
        limits,
    )?;
    let r = &measured[0];
    let peak = r.nodes.iter().map(|n| n.conntrack.count_peak).max().unwrap_or(0);
    let want = (peak as f64 * (1.0 + headroom)).ceil() as u64;
    let max = want.max(1).div_ceil(65_536) * 65_536;
    let buckets = if base.kernel.max_equals_buckets {
        u64::from(sizing::round_buckets(u32::try_from(max).unwrap_or(u32::MAX)))
    } else {
        max / 4
    };
    let settings: Vec<String> = (0..base.nodes.len())
        .flat_map(|i| {
            [
                sysctl(i, "nf_conntrack_max", max),
                sysctl(i, "nf_conntrack_buckets", buckets),
            ]
        })
        .collect();
    let mut check_set = settings.clone();
    check_set.extend(lengthen);
    let check = run_all(
        &[derive(base, "re-run with the recommended table", &check_set)?],
        threads,
        limits,
    )?;
    let mut numbers = vec![
        (
            "measured peak nf_conntrack_count (unconstrained)".to_owned(),
            peak.to_string(),
        ),
        ("headroom".to_owned(), format!("{headroom_pct}%")),
        (
            "nf_conntrack_max".to_owned(),
            format!("{max} = peak x {:.2}, rounded up to 65536", 1.0 + headroom),
        ),
        (
            "nf_conntrack_buckets".to_owned(),
            if base.kernel.max_equals_buckets {
                format!("{buckets} (= max, as the kernel sizes it since 5.15)")
            } else {
                format!("{buckets} (= max / 4, kube-proxy's hashsize rule on pre-5.15 kernels)")
            },
        ),
        (
            "kernel memory per node".to_owned(),
            format!(
                "{:.0} MiB",
                sizing::kernel_memory_bytes(
                    u32::try_from(max).unwrap_or(u32::MAX),
                    u32::try_from(buckets).unwrap_or(u32::MAX)
                ) as f64
                    / 1_048_576.0
            ),
        ),
    ];
    for n in &r.nodes {
        numbers.push((
            format!("{}: peak / current max", n.name),
            format!(
                "{} / {}",
                n.conntrack.count_peak,
                base.node_by_name(&n.name)
                    .map_or(0, |c| c.sysctls.values.nf_conntrack_max)
            ),
        ));
    }
    Ok(Recommendation {
        topic: "conntrack table size".to_owned(),
        settings,
        numbers,
        verified: Some(verification(&check[0])),
        runs,
    })
}

/// A keep-alive pool for workload `workload`: pool size per pod and idle timeout.
///
/// # Errors
/// [`RecommendError`].
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
pub fn pool(
    base: &Scenario,
    workload: usize,
    headroom_pct: f64,
    threads: NonZeroUsize,
    limits: &Limits,
) -> Result<Recommendation, RecommendError> {
    let headroom = check_headroom(headroom_pct)?;
    let w = base
        .workloads
        .get(workload)
        .ok_or(RecommendError::NoWorkload(workload))?;
    let p = |k: &str, v: &str| format!("workloads.{workload}.connection.{k}={v}");
    let generous = 256;
    let measure = [p("mode", "pool"), p("poolSize", &generous.to_string())];
    let r = &run_all(
        &[derive(base, "measuring run (generous pool)", &measure)?],
        threads,
        limits,
    )?[0];
    let pods = w.pods.len().max(1) as f64;
    let rate_per_pod = w.rate.as_per_sec_f64() / pods;
    let w_s = r.latency_ms.p99 / 1_000.0;
    let in_flight = rate_per_pod * w_s;
    let size = ((in_flight * (1.0 + headroom)).ceil() as u64).max(1);
    let gap_s = size as f64 / rate_per_pod.max(f64::MIN_POSITIVE);
    let idle_s = (gap_s * 4.0).ceil().max(30.0) as u64;
    let settings = vec![
        p("mode", "pool"),
        p("poolSize", &size.to_string()),
        p("idleTimeout", &format!("{idle_s}s")),
    ];
    // The re-run lasts until the pooled table's steady state (closed pool connections
    // hold TIME_WAIT entries too).
    let pooled = derive(base, "re-run with the recommended pool", &settings)?;
    let horizon = Horizon::of(&pooled.scenario);
    let runs = RunLength::of(&horizon, base.duration.as_secs_f64());
    let mut check_set = settings.clone();
    check_set.extend(horizon.lengthen(base.duration));
    let check = run_all(
        &[derive(base, "re-run with the recommended pool", &check_set)?],
        threads,
        limits,
    )?;
    Ok(Recommendation {
        topic: format!("keep-alive pool for {}", w.name),
        settings,
        numbers: vec![
            (
                "rate per pod".to_owned(),
                format!(
                    "{rate_per_pod:.1}/s ({})",
                    super::count(w.pods.len(), "pod", "pods")
                ),
            ),
            (
                "p99 latency with a generous pool (W)".to_owned(),
                format!("{:.1} ms", r.latency_ms.p99),
            ),
            (
                "in flight per pod, L = rate x W".to_owned(),
                format!("{in_flight:.2}"),
            ),
            (
                "pool size".to_owned(),
                format!("{size} = ceil(L x {:.2})", 1.0 + headroom),
            ),
            (
                "idle timeout".to_owned(),
                format!(
                    "{idle_s}s (at least 4 x the {gap_s:.3} s between requests on one connection, at least 30 s)"
                ),
            ),
            (
                "new connections: short vs pooled".to_owned(),
                format!(
                    "{} with short connections' rate; {} in the pooled run",
                    w.rate, r.requests.new_connections
                ),
            ),
        ],
        verified: Some(verification(&check[0])),
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn small() -> Scenario {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/small.yaml");
        Scenario::load(path, &[Override::parse("duration=2s").unwrap()]).unwrap()
    }

    #[test]
    fn headroom_outside_the_range_is_refused() {
        let t = NonZeroUsize::MIN;
        assert!(matches!(
            conntrack(&small(), -1.0, t, &Limits::default()),
            Err(RecommendError::Headroom(_))
        ));
        assert!(matches!(
            pool(&small(), 7, 10.0, t, &Limits::default()),
            Err(RecommendError::NoWorkload(7))
        ));
    }
}
