//! `sweep`: a grid of runs over one or more numeric fields, every point with every seed,
//! in parallel; output as rows (CSV, JSON) and charts (a line chart for one parameter, a
//! heatmap for two).
//!
//! Rows are numbered in grid order (the last parameter varies fastest, then the seed),
//! and row `i` belongs to shard `i mod N`, so `--shard K/N` slices can run anywhere (a
//! Kubernetes Indexed Job) and [`merge`] puts them back into exactly what one unsharded
//! run writes. Shards carry the scenario's [`Scenario::fingerprint`], the grid and the
//! seeds, and `merge` refuses slices of different sweeps, duplicates and gaps.
//!
//! This file holds the document (`Sweep`, its rows and errors) and how it is read back
//! and checked; the parts: `grid` parses the swept fields and orders the points, `plan`
//! derives and runs each row's scenario, `output` writes CSV, charts and the table, and
//! `shard` slices rows and merges the slices.

mod grid;
mod output;
mod plan;
mod shard;

pub use grid::{Param, parse_param};
pub use plan::SweepPlan;
pub use shard::{Shard, merge};

use grid::grid_size;
use std::num::NonZeroUsize;

use serde::{Deserialize, Serialize};

use crate::scenario::{Scenario, ScenarioError};
use crate::sim::SimError;

/// Schema version of [`Sweep`]'s JSON.
pub const SWEEP_SCHEMA_VERSION: u32 = 1;

/// Largest grid (points × seeds) a sweep accepts.
pub const MAX_ROWS: usize = 100_000;

/// Why a sweep's arguments, run or shards are unusable.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// `--param` is not `PATH=FROM..TO[:STEPS][:log]`.
    #[error("--param {text}: {message}")]
    BadParam {
        /// The argument.
        text: String,
        /// What is wrong.
        message: String,
    },
    /// `--shard` is not `K/N` with K < N.
    #[error("--shard {0}: expected K/N with 0 <= K < N (K is JOB_COMPLETION_INDEX, 0-based)")]
    BadShard(String),
    /// The grid is empty or too large.
    #[error("the grid has {0} runs; a sweep runs 1 to {MAX_ROWS}")]
    GridSize(usize),
    /// A grid point does not make a valid scenario.
    #[error("{point}: {source}")]
    Point {
        /// The point's overrides.
        point: String,
        /// Why.
        source: ScenarioError,
    },
    /// A run failed other than with an unsupported feature.
    #[error("{point}: {source}")]
    Sim {
        /// The point's overrides.
        point: String,
        /// Why.
        source: SimError,
    },
    /// Shards that cannot be merged.
    #[error("merge: {0}")]
    Merge(String),
    /// A sweep, shard or point file that is not what `sweep --out` writes.
    #[error("{0}")]
    BadFile(String),
}

impl SweepError {
    /// Whether the user's input caused it (see [`SimError::is_user_error`]).
    #[must_use]
    pub fn is_user_error(&self) -> bool {
        match self {
            SweepError::Sim { source, .. } => source.is_user_error(),
            _ => true,
        }
    }
}

/// One run of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Position in the grid (points in order, seeds fastest).
    pub index: usize,
    /// The parameters' values, as override text.
    pub values: Vec<String>,
    /// The seed.
    pub seed: u64,
    /// First counter to rise (`drop`, `insert_failed`, `early_drop`, `none`), or
    /// `not simulated` when this build cannot run the point.
    pub verdict: String,
    /// When, seconds.
    pub verdict_at_s: Option<f64>,
    /// Highest `nf_conntrack_count` over nodes.
    pub count_peak: u64,
    /// `nf_conntrack_max` of the node with that peak.
    pub max: u64,
    /// `drop`, summed over nodes.
    pub drop: u64,
    /// `insert_failed`, summed over nodes.
    pub insert_failed: u64,
    /// `early_drop`, summed over nodes.
    pub early_drop: u64,
    /// Median latency of successful requests, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Requests sent.
    pub sent: u64,
    /// Attempts that timed out.
    pub timeouts: u64,
    /// Requests failed after all retries.
    pub failed: u64,
    /// Highest CPU use over nodes, percent.
    pub cpu_peak_pct: f64,
    /// Whether the row's answer stands: the run showed a drop, insert_failed or failed
    /// request, or lasted long enough for the table's steady state. A clean row from a
    /// shorter run is inconclusive.
    #[serde(default = "conclusive_default")]
    pub conclusive: bool,
}

fn conclusive_default() -> bool {
    true
}

/// A sweep, or one shard of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// [`SWEEP_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Scenario file.
    pub scenario: String,
    /// [`Scenario::fingerprint`] of the scenario after `--set`.
    pub fingerprint: String,
    /// The swept fields.
    pub params: Vec<Param>,
    /// Seeds run at every point.
    pub seeds: Vec<u64>,
    /// The shard this document holds; `None` for a whole sweep.
    pub shard: Option<Shard>,
    /// Rows, by index.
    pub rows: Vec<Row>,
    /// Caveats (runs too short for the table's steady state).
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl Sweep {
    /// Reads a sweep or shard as `sweep --out` writes it (`sweep.json`,
    /// `shard-K-of-N.json`) and checks that it holds together: a known schema, a grid of
    /// 1 to [`MAX_ROWS`] runs, a shard index below its count, and rows in order, each at
    /// an index of the grid (and of its shard) with that index's values and seed.
    ///
    /// # Errors
    /// [`SweepError::BadFile`] saying what is wrong.
    pub fn from_json(text: &str) -> Result<Sweep, SweepError> {
        let s: Sweep =
            serde_json::from_str(text).map_err(|e| SweepError::BadFile(format!("not a sweep: {e}")))?;
        s.check()?;
        Ok(s)
    }

    /// See [`Sweep::from_json`].
    fn check(&self) -> Result<(), SweepError> {
        let bad = |m: String| Err(SweepError::BadFile(m));
        if self.schema_version != SWEEP_SCHEMA_VERSION {
            return bad(format!(
                "sweep schema version {} (this build reads {SWEEP_SCHEMA_VERSION})",
                self.schema_version
            ));
        }
        for p in &self.params {
            if p.paths.is_empty() || p.values.is_empty() || p.values.len() != p.numeric.len() {
                return bad(format!(
                    "parameter `{}` has no paths or mismatched values",
                    p.text
                ));
            }
        }
        let total = match grid_size(&self.params, self.seeds.len()) {
            Some(n) if n > 0 => n,
            _ => return bad(format!("the grid is empty or larger than {MAX_ROWS} runs")),
        };
        if let Some(sh) = self.shard
            && (sh.count == 0 || sh.count as usize > MAX_ROWS || sh.index >= sh.count)
        {
            return bad(format!(
                "shard {}/{} is not a shard of 1 to {MAX_ROWS}",
                sh.index, sh.count
            ));
        }
        let mut last = None;
        for r in &self.rows {
            if r.index >= total || last.is_some_and(|l| r.index <= l) {
                return bad(format!(
                    "row {} is out of order or outside the {total}-run grid",
                    r.index
                ));
            }
            last = Some(r.index);
            self.check_row(r)?;
        }
        Ok(())
    }

    /// Checks that `r` belongs to this grid (and shard): its index, values and seed.
    ///
    /// # Errors
    /// [`SweepError::BadFile`] naming the row.
    pub fn check_row(&self, r: &Row) -> Result<(), SweepError> {
        let bad = |m: &str| Err(SweepError::BadFile(format!("row {}: {m}", r.index)));
        let Some(total) = grid_size(&self.params, self.seeds.len()) else {
            return bad("the grid is too large");
        };
        if r.index >= total {
            return bad("outside the grid");
        }
        if self.shard.is_some_and(|sh| sh.count == 0 || !sh.owns(r.index)) {
            return bad("not a row of this shard");
        }
        let n = self.seeds.len();
        if self.seeds.get(r.index % n) != Some(&r.seed) {
            return bad("its seed is not the grid's seed at this index");
        }
        // The point's value index per parameter, the last parameter fastest.
        let mut rest = r.index / n;
        let mut want = vec![""; self.params.len()];
        for (slot, p) in want.iter_mut().zip(&self.params).rev() {
            *slot = p.values[rest % p.values.len()].as_str();
            rest /= p.values.len();
        }
        if r.values.len() != want.len() || r.values.iter().zip(&want).any(|(a, b)| a != b) {
            return bad("its values are not the grid's values at this index");
        }
        Ok(())
    }

    /// Runs the grid (or the rows of `shard`) on `threads`; `on_done(done, total)` is
    /// called per finished run (progress only). [`SweepPlan`] does the same in steps,
    /// for callers that save rows as they finish and resume.
    ///
    /// # Errors
    /// [`SweepError`] for an empty or oversized grid, a point that does not validate, or
    /// a run that fails other than with [`SimError::Unsupported`] (recorded as a
    /// `not simulated` row).
    pub fn run(
        base: &Scenario,
        params: Vec<Param>,
        seeds: Vec<u64>,
        shard: Option<Shard>,
        threads: NonZeroUsize,
        on_done: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Sweep, SweepError> {
        SweepPlan::new(base, params, seeds, shard)?.run(threads, Vec::new(), &|_| {}, on_done)
    }
}

#[cfg(test)]
mod tests;
