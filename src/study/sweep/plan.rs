//! A sweep ready to run: the derived scenario of every row, run in parallel, each
//! report reduced to its row.

use std::num::NonZeroUsize;

use super::grid::{Param, grid_size, points};
use super::shard::Shard;
use super::{Row, SWEEP_SCHEMA_VERSION, Sweep, SweepError};
use crate::scenario::{Override, Scenario};
use crate::sim::SimError;
use crate::study::horizon::Horizon;
use crate::study::runner::{Job, run_reports};

/// A sweep ready to run: its header (the [`Sweep`] without rows, what `--resume` checks
/// a directory against) and one derived scenario per run of the grid (of the shard).
#[derive(Debug)]
pub struct SweepPlan {
    header: Sweep,
    jobs: Vec<Job>,
    /// Per job: its row index, the parameters' values and the seed.
    meta: Vec<(usize, Vec<String>, u64)>,
    /// Why the base scenario's runs are too short for the table's steady state, said
    /// when a row is inconclusive.
    short_run: String,
}

impl SweepPlan {
    /// Derives every run of the grid (or of `shard`) from `base`, each validated.
    ///
    /// # Errors
    /// [`SweepError`] for a path swept twice, an empty or oversized grid, or a point
    /// that does not validate.
    pub fn new(
        base: &Scenario,
        params: Vec<Param>,
        seeds: Vec<u64>,
        shard: Option<Shard>,
    ) -> Result<SweepPlan, SweepError> {
        let mut seen = std::collections::BTreeSet::new();
        for p in &params {
            for path in &p.paths {
                if !seen.insert(path.as_str()) {
                    return Err(SweepError::BadParam {
                        text: p.text.clone(),
                        message: format!("`{path}` is already swept by another --param"),
                    });
                }
            }
        }
        match grid_size(&params, seeds.len()) {
            Some(n) if n > 0 => {}
            Some(n) => return Err(SweepError::GridSize(n)),
            None => return Err(SweepError::GridSize(usize::MAX)),
        }
        let grid = points(&params);
        let mut jobs = Vec::new();
        let mut meta: Vec<(usize, Vec<String>, u64)> = Vec::new();
        for (p, point) in grid.iter().enumerate() {
            for (k, &seed) in seeds.iter().enumerate() {
                let index = p * seeds.len() + k;
                if shard.is_some_and(|s| !s.owns(index)) {
                    continue;
                }
                let values: Vec<String> = params
                    .iter()
                    .zip(point)
                    .map(|(param, &i)| param.values[i].clone())
                    .collect();
                let mut set = Vec::new();
                for (param, v) in params.iter().zip(&values) {
                    for path in &param.paths {
                        set.push(format!("{path}={v}"));
                    }
                }
                set.push(format!("seed={seed}"));
                let label = set.join(" ");
                let overrides = set
                    .iter()
                    .map(|t| Override::parse(t))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| SweepError::BadParam {
                        text: label.clone(),
                        message: e.to_string(),
                    })?;
                let scenario = base
                    .with_overrides(&overrides)
                    .map_err(|source| SweepError::Point {
                        point: label.clone(),
                        source,
                    })?;
                jobs.push(Job { label, scenario });
                meta.push((index, values, seed));
            }
        }
        Ok(SweepPlan {
            header: Sweep {
                schema_version: SWEEP_SCHEMA_VERSION,
                scenario: base.file.clone(),
                fingerprint: base.fingerprint(),
                params,
                seeds,
                shard,
                rows: Vec::new(),
                warnings: Vec::new(),
            },
            jobs,
            meta,
            short_run: Horizon::of(base).check(base.duration.as_secs_f64()).reason,
        })
    }

    /// The sweep without rows: scenario, fingerprint, grid, seeds, shard.
    #[must_use]
    pub fn header(&self) -> &Sweep {
        &self.header
    }

    /// The runs, each a label and its scenario (to check their sizes before running).
    #[must_use]
    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// Runs every job whose row is not in `finished` on `threads`, handing each new row
    /// to `on_row` as soon as its run ends (from the worker thread, in completion
    /// order), and returns the whole sweep, rows in index order: the same document
    /// whichever rows were `finished` before.
    ///
    /// # Errors
    /// [`SweepError::BadFile`] when a finished row is not a row of this plan;
    /// [`SweepError::Sim`] when a run fails other than with
    /// [`SimError::Unsupported`].
    pub fn run(
        self,
        threads: NonZeroUsize,
        finished: Vec<Row>,
        on_row: &(dyn Fn(&Row) + Sync),
        on_done: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Sweep, SweepError> {
        let mine: std::collections::BTreeSet<usize> = self.meta.iter().map(|m| m.0).collect();
        let mut rows: std::collections::BTreeMap<usize, Row> = std::collections::BTreeMap::new();
        for r in finished {
            self.header.check_row(&r)?;
            if !mine.contains(&r.index) {
                return Err(SweepError::BadFile(format!(
                    "row {}: not a run of this sweep",
                    r.index
                )));
            }
            rows.insert(r.index, r);
        }
        let mut todo = Vec::new();
        let mut todo_meta = Vec::new();
        for (job, m) in self.jobs.into_iter().zip(self.meta) {
            if !rows.contains_key(&m.0) {
                todo.push(job);
                todo_meta.push(m);
            }
        }
        let made = run_reports(&todo, threads, on_done, &|i, out| {
            let (index, values, seed) = todo_meta[i].clone();
            let row = match out {
                Ok(report) => {
                    let mut row = row_of(index, values, seed, &report);
                    let run = Horizon::of(&todo[i].scenario).check(report.duration_s);
                    let failed = row.drop + row.insert_failed + row.failed > 0;
                    row.conclusive = failed || run.long_enough;
                    row
                }
                Err(SimError::Unsupported { what }) => Row {
                    verdict: format!("not simulated ({what})"),
                    ..row_of(index, values, seed, &empty_report())
                },
                Err(source) => return Err((i, source)),
            };
            on_row(&row);
            Ok(row)
        });
        for r in made {
            match r {
                Ok(row) => {
                    rows.insert(row.index, row);
                }
                Err((i, source)) => {
                    return Err(SweepError::Sim {
                        point: todo[i].label.clone(),
                        source,
                    });
                }
            }
        }
        let rows: Vec<Row> = rows.into_values().collect();
        let warnings = if rows.iter().any(|r| !r.conclusive) {
            vec![format!(
                "rows without drops from runs shorter than the table's steady state are inconclusive (the `conclusive` column): {}",
                self.short_run
            )]
        } else {
            Vec::new()
        };
        Ok(Sweep {
            rows,
            warnings,
            ..self.header
        })
    }
}

fn row_of(index: usize, values: Vec<String>, seed: u64, r: &crate::report::Report) -> Row {
    let sum = |f: fn(&crate::report::NodeReport) -> u64| r.nodes.iter().map(f).sum();
    let peak = r.nodes.iter().max_by_key(|n| n.conntrack.count_peak);
    Row {
        index,
        values,
        seed,
        verdict: r.verdict.kind.clone(),
        verdict_at_s: r.verdict.at_s,
        count_peak: peak.map_or(0, |n| n.conntrack.count_peak),
        max: peak.map_or(0, |n| n.conntrack.max),
        drop: sum(|n| n.conntrack.stats.drop),
        insert_failed: sum(|n| n.conntrack.stats.insert_failed),
        early_drop: sum(|n| n.conntrack.stats.early_drop),
        p50_ms: r.latency_ms.p50,
        p99_ms: r.latency_ms.p99,
        sent: r.requests.sent,
        timeouts: r.requests.timeouts,
        failed: r.requests.failed,
        cpu_peak_pct: r.nodes.iter().map(|n| n.cpu.peak_pct).fold(0.0, f64::max),
        conclusive: true,
    }
}

fn empty_report() -> crate::report::Report {
    crate::report::Report {
        schema_version: crate::report::SCHEMA_VERSION,
        scenario: String::new(),
        seed: 0,
        kernel: String::new(),
        proxy_mode: String::new(),
        duration_s: 0.0,
        verdict: crate::report::Verdict {
            kind: String::new(),
            node: None,
            at_s: None,
            text: String::new(),
            cause: String::new(),
            failures: Vec::new(),
        },
        nodes: Vec::new(),
        users: crate::report::UsersView::default(),
        latency_ms: crate::report::LatencyReport::default(),
        requests: crate::report::RequestReport::default(),
        dns: crate::report::DnsReport::default(),
        baseline: None,
        workloads: Vec::new(),
        engine: crate::report::EngineReport::default(),
        notes: Vec::new(),
    }
}
