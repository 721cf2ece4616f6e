//! `compare`: one scenario under several variants, same seed, side by side.
//!
//! The baseline (the scenario as loaded) is always the first column; each variant is the
//! baseline with its overrides applied ([`Scenario::with_overrides`]). The table puts the
//! numbers a platform engineer compares remediations by in rows (when `drop`,
//! `insert_failed` and `early_drop` start per node, peak `nf_conntrack_count` against
//! `nf_conntrack_max`, the counters, latency percentiles, timeouts and retries, CoreDNS
//! load, node CPU and the rule cost per new connection), and each variant's verdict says
//! which counter moved first and why.
//!
//! Here: the runs (`jobs`) and the comparison they make; `outcome` judges each variant
//! against the baseline, `table` lays the comparison out side by side, and `overlay`
//! draws its charts and HTML page.

mod outcome;
mod overlay;
mod table;

use serde::Serialize;

use crate::report::{RunReport, TimeSeries};
use crate::scenario::{Scenario, ScenarioError, Variant};
use crate::sim::{Outcome, SimError};

use super::horizon::{Horizon, Sufficiency};
use super::runner::Job;
use outcome::outcome;
pub use outcome::{OutcomeKind, VariantOutcome, node_changes};

/// The name of the unmodified scenario's column.
pub const BASELINE: &str = "baseline";

/// One column of a comparison.
#[derive(Clone, Debug, Serialize)]
pub struct VariantRun {
    /// Variant name ([`BASELINE`] for the scenario as loaded).
    pub name: String,
    /// The overrides that make this variant, as written.
    pub overrides: Vec<String>,
    /// The run's report, with its alert replay and census.
    pub report: RunReport,
    /// Whether the run lasted long enough to reach the table's steady state.
    pub run: Sufficiency,
    /// What the variant did against the baseline, judged only from runs long enough.
    pub outcome: VariantOutcome,
    /// What changed by more than 2× on each node against the baseline, and why.
    pub node_changes: Vec<String>,
    /// The run's time series (charts; not serialised).
    #[serde(skip)]
    pub timeseries: TimeSeries,
}

/// A whole comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Schema version of this JSON document (`docs/report-format.md`).
    pub schema_version: u32,
    /// Scenario file.
    pub scenario: String,
    /// The seed every variant ran with.
    pub seed: u64,
    /// Columns, baseline first.
    pub variants: Vec<VariantRun>,
    /// Caveats about the runs (too short for a steady state, ...).
    pub warnings: Vec<String>,
}

/// Schema version of [`Comparison`]'s JSON.
pub const COMPARE_SCHEMA_VERSION: u32 = 1;

/// Up to this many nodes the table has every node's rows; above it, only the nodes that
/// lost packets in some variant (a cluster's quiet nodes share one row).
pub const PER_NODE_ROWS_ALWAYS: usize = 4;

/// Why a comparison could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A variant's overrides do not apply or do not validate.
    #[error("variant `{name}`: {source}")]
    Variant {
        /// Variant name.
        name: String,
        /// The scenario problems.
        source: ScenarioError,
    },
    /// Two variants share a name.
    #[error("two variants are named `{0}`")]
    Duplicate(String),
    /// A variant's run could not be simulated.
    #[error("variant `{name}`: {source}")]
    Sim {
        /// Variant name.
        name: String,
        /// Why.
        source: SimError,
    },
}

impl CompareError {
    /// Whether the user's input caused it (see [`SimError::is_user_error`]).
    #[must_use]
    pub fn is_user_error(&self) -> bool {
        match self {
            CompareError::Sim { source, .. } => source.is_user_error(),
            CompareError::Variant { .. } | CompareError::Duplicate(_) => true,
        }
    }
}

/// The runs of a comparison: the baseline, then `variants` in order. A variant's
/// overrides apply to the baseline *after* the user's own `--set`s (already in `base`).
///
/// # Errors
/// [`CompareError::Variant`] for a variant that does not validate,
/// [`CompareError::Duplicate`] for a repeated name.
pub fn jobs(base: &Scenario, variants: &[Variant]) -> Result<Vec<Job>, CompareError> {
    let mut out = vec![Job {
        label: BASELINE.to_owned(),
        scenario: base.clone(),
    }];
    for v in variants {
        if out.iter().any(|j| j.label == v.name) {
            return Err(CompareError::Duplicate(v.name.clone()));
        }
        let scenario = base
            .with_overrides(&v.overrides)
            .map_err(|source| CompareError::Variant {
                name: v.name.clone(),
                source,
            })?;
        out.push(Job {
            label: v.name.clone(),
            scenario,
        });
    }
    Ok(out)
}

impl Comparison {
    /// Assembles a comparison from the jobs of [`jobs`] and their outcomes (in the same
    /// order, as [`super::run_jobs`] returns them).
    ///
    /// # Errors
    /// [`CompareError::Sim`] naming the first variant that could not be simulated.
    pub fn new(
        base: &Scenario,
        variants: &[Variant],
        jobs: &[Job],
        outcomes: Vec<Result<Outcome, SimError>>,
    ) -> Result<Comparison, CompareError> {
        let mut runs: Vec<VariantRun> = Vec::with_capacity(jobs.len());
        for (job, out) in jobs.iter().zip(outcomes) {
            let out = out.map_err(|source| CompareError::Sim {
                name: job.label.clone(),
                source,
            })?;
            let overrides = variants
                .iter()
                .find(|v| v.name == job.label)
                .map(|v| v.overrides.iter().map(|o| o.as_str().to_owned()).collect())
                .unwrap_or_default();
            let run = Horizon::of(&job.scenario).check(out.report.duration_s);
            let baseline = runs.first().map(|b| &b.report.report);
            let outcome = outcome(baseline, &out.report, &run);
            let node_changes = baseline.map_or_else(Vec::new, |b| node_changes(b, &out.report));
            runs.push(VariantRun {
                name: job.label.clone(),
                overrides,
                report: RunReport::new(out.report, &out.timeseries),
                run,
                outcome,
                node_changes,
                timeseries: out.timeseries,
            });
        }
        let short: Vec<&str> = runs
            .iter()
            .filter(|r| !r.run.long_enough)
            .map(|r| r.name.as_str())
            .collect();
        let mut warnings = Vec::new();
        if let Some(first) = runs.iter().find(|r| !r.run.long_enough) {
            let needed = runs.iter().map(|r| r.run.needed_s).fold(0.0, f64::max);
            warnings.push(format!(
                "{} of {} runs are too short to reach the steady state ({}): no variant is called fixed from them; run with --set duration={needed:.0}s",
                short.len(),
                runs.len(),
                first.run.reason
            ));
        }
        Ok(Comparison {
            schema_version: COMPARE_SCHEMA_VERSION,
            scenario: base.file.clone(),
            seed: base.seed,
            variants: runs,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Override;
    use crate::study::{parse_variant, run_jobs};
    use std::num::NonZeroUsize;

    fn base() -> Scenario {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/small.yaml");
        Scenario::load(path, &[Override::parse("duration=2s").unwrap()]).unwrap()
    }

    #[test]
    fn baseline_comes_first_and_variants_keep_their_order_and_overrides() {
        let b = base();
        let vs = [
            parse_variant("pool:workloads.0.connection.mode=pool").unwrap(),
            parse_variant("slow:workloads.0.rate=100/s").unwrap(),
        ];
        let jobs = jobs(&b, &vs).unwrap();
        let names: Vec<&str> = jobs.iter().map(|j| j.label.as_str()).collect();
        assert_eq!(names, ["baseline", "pool", "slow"]);
        let outs = run_jobs(&jobs, NonZeroUsize::new(2).unwrap(), &|_, _| {});
        let c = Comparison::new(&b, &vs, &jobs, outs).unwrap();
        assert_eq!(c.variants[2].overrides, ["workloads.0.rate=100/s"]);
        // Pools open far fewer connections than short connections at the same rate.
        let newc = |i: usize| c.variants[i].report.requests.new_connections;
        assert!(newc(1) * 10 < newc(0), "pool {} vs short {}", newc(1), newc(0));
        let text = c.render_text();
        assert!(text.contains("new connections"), "{text}");
        assert!(text.lines().nth(1).unwrap().contains("baseline"));
        assert_eq!(c.charts().len(), 2 * c.variants[0].report.nodes.len() + 2);
    }

    #[test]
    fn a_variant_that_does_not_validate_is_named() {
        let b = base();
        let vs = [parse_variant("bad:workloads.0.rate=fast").unwrap()];
        match jobs(&b, &vs) {
            Err(CompareError::Variant { name, .. }) => assert_eq!(name, "bad"),
            other => panic!("expected a variant error, got {other:?}"),
        }
        let dup = [
            parse_variant("a:workloads.0.rate=1/s").unwrap(),
            parse_variant("a:workloads.0.rate=2/s").unwrap(),
        ];
        assert!(matches!(jobs(&b, &dup), Err(CompareError::Duplicate(_))));
    }
}
