//! `sweep`: a grid of runs over one or more numeric fields, every point with every seed,
//! in parallel; output as rows (CSV, JSON) and charts (a line chart for one parameter, a
//! heatmap for two).
//!
//! Rows are numbered in grid order (the last parameter varies fastest, then the seed),
//! and row `i` belongs to shard `i mod N`, so `--shard K/N` slices can run anywhere (a
//! Kubernetes Indexed Job) and [`merge`] puts them back into exactly what one unsharded
//! run writes. Shards carry the scenario's [`Scenario::fingerprint`], the grid and the
//! seeds, and `merge` refuses slices of different sweeps, duplicates and gaps.

use std::fmt::Write as _;
use std::num::NonZeroUsize;

use serde::{Deserialize, Serialize};

use super::horizon::Horizon;
use super::knob::{Knob, KnobError};
use super::runner::{Job, run_reports};
use crate::report::chart::{Axis, Dash, Heatmap, LineChart, Series, ValueFormat};
use crate::scenario::{Override, Scenario, ScenarioError};
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

/// One swept field: its knob and its values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// The argument as given.
    pub text: String,
    /// Override paths set to each value.
    pub paths: Vec<String>,
    /// The values, as override text.
    pub values: Vec<String>,
    /// The values in report units (requests/s for rates), for charts.
    pub numeric: Vec<f64>,
    /// The unit of `numeric` (`requests/s` for rates; empty for plain integers such as
    /// `nf_conntrack_max`). Absent in shards written before it existed.
    #[serde(default)]
    pub unit: String,
}

/// Parses `PATH[,PATH...]=FROM..TO[:STEPS][:log]` against `base` (the field's kind comes
/// from the scenario, or from `FROM`). `STEPS` (default 10) counts points, ends
/// included; `log` spaces them geometrically.
///
/// # Errors
/// [`SweepError::BadParam`] naming the argument.
///
/// ```
/// use k8s_netsim::scenario::Scenario;
/// use k8s_netsim::study::sweep::parse_param;
/// let s = Scenario::load("scenarios/flash-sale.yaml", &[]).unwrap();
/// let p = parse_param(&s, "workloads.0.rate=1k/s..2k/s:5").unwrap();
/// assert_eq!(p.values, ["1k/s", "1250/s", "1500/s", "1750/s", "2k/s"]);
/// ```
pub fn parse_param(base: &Scenario, text: &str) -> Result<Param, SweepError> {
    let bad = |message: String| SweepError::BadParam {
        text: text.to_owned(),
        message,
    };
    let (paths, spec) = text.split_once('=').ok_or_else(|| {
        bad("expected PATH=FROM..TO[:STEPS][:log] (e.g. workloads.0.rate=1k/s..30k/s:20)".into())
    })?;
    let paths: Vec<String> = paths
        .split(',')
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    let mut parts = spec.split(':');
    let range = parts.next().unwrap_or_default();
    let mut steps = 10usize;
    let mut log = false;
    for p in parts {
        match p.trim() {
            "log" => log = true,
            n => {
                steps = n
                    .parse::<usize>()
                    .ok()
                    .filter(|s| *s >= 2)
                    .ok_or_else(|| bad(format!("`{n}` is not a number of steps (2 or more) or `log`")))?;
                if steps > MAX_ROWS {
                    return Err(bad(format!("{steps} steps: a sweep runs at most {MAX_ROWS}")));
                }
            }
        }
    }
    let hint = range.split_once("..").map(|(lo, _)| lo.trim());
    let knob = Knob::resolve(base, &paths, hint).map_err(|e: KnobError| bad(e.to_string()))?;
    let (lo, hi) = knob.parse_range(range).map_err(|e| bad(e.to_string()))?;
    if log && lo == 0 {
        return Err(bad("a `log` grid needs FROM above 0".into()));
    }
    knob.overrides(lo).map_err(bad)?;
    let mut values: Vec<u64> = (0..steps)
        .map(|i| grid_value(lo, hi, i, steps, log, knob.quantum(hi - lo)))
        .collect();
    values.dedup();
    Ok(Param {
        text: text.to_owned(),
        paths: knob.paths.clone(),
        values: values.iter().map(|v| knob.format(*v)).collect(),
        numeric: values.iter().map(|v| knob.as_f64(*v)).collect(),
        unit: match knob.kind {
            super::knob::KnobKind::Rate => "requests/s".to_owned(),
            super::knob::KnobKind::Integer => String::new(),
        },
    })
}

impl Param {
    /// The axis label: the paths, with the unit (`workloads.0.rate (requests/s)`).
    #[must_use]
    pub fn axis_label(&self) -> String {
        if self.unit.is_empty() {
            self.paths.join(",")
        } else {
            format!("{} ({})", self.paths.join(","), self.unit)
        }
    }
}

/// `mean of 1 seed`, `mean of 3 seeds`.
fn mean_of(seeds: usize) -> String {
    if seeds == 1 {
        "1 seed".to_owned()
    } else {
        format!("mean of {seeds} seeds")
    }
}

/// Point `i` of `steps` from `lo` to `hi`, on multiples of `quantum` (ends exact).
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn grid_value(lo: u64, hi: u64, i: usize, steps: usize, log: bool, quantum: u64) -> u64 {
    if i == 0 {
        return lo;
    }
    if i + 1 == steps {
        return hi;
    }
    let v = if log && lo > 0 {
        let f = i as f64 / (steps - 1) as f64;
        ((lo as f64).ln() + f * ((hi as f64).ln() - (lo as f64).ln()))
            .exp()
            .round() as u64
    } else {
        let span = u128::from(hi - lo) * i as u128 / (steps - 1) as u128;
        lo + u64::try_from(span).unwrap_or(0)
    };
    let q = quantum.max(1);
    ((v + q / 2) / q * q).clamp(lo, hi)
}

/// `K/N`: this process runs rows `i` with `i mod N == K`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, 0-based.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl Shard {
    /// Parses `K/N`.
    ///
    /// # Errors
    /// [`SweepError::BadShard`].
    pub fn parse(text: &str) -> Result<Shard, SweepError> {
        let bad = || SweepError::BadShard(text.to_owned());
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let (k, n) = (
            k.trim().parse::<u32>().map_err(|_| bad())?,
            n.trim().parse::<u32>().map_err(|_| bad())?,
        );
        if n == 0 || k >= n {
            return Err(bad());
        }
        Ok(Shard { index: k, count: n })
    }

    fn owns(self, row: usize) -> bool {
        row % self.count as usize == self.index as usize
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

/// The number of runs of a grid (points × seeds), `None` above [`MAX_ROWS`] (computed
/// with checked arithmetic: a shard file may claim any sizes).
fn grid_size(params: &[Param], seeds: usize) -> Option<usize> {
    params
        .iter()
        .try_fold(seeds, |acc, p| acc.checked_mul(p.values.len()))
        .filter(|&n| n <= MAX_ROWS)
}

/// Every grid point as one value index per parameter, in row order. Call it only on a
/// grid whose [`grid_size`] is known.
fn points(params: &[Param]) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new()];
    for p in params {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                (0..p.values.len()).map(move |i| {
                    let mut v = prefix.clone();
                    v.push(i);
                    v
                })
            })
            .collect();
    }
    out
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

    /// Rows as CSV: `index`, one column per parameter, `seed`, then the metrics.
    #[must_use]
    pub fn to_csv(&self) -> String {
        let mut s = String::from("index");
        for p in &self.params {
            let _ = write!(s, ",{}", p.paths.join("+"));
        }
        s.push_str(",seed,verdict,verdict_at_s,count_peak,max,drop,insert_failed,early_drop,p50_ms,p99_ms,sent,timeouts,failed,cpu_peak_pct,conclusive\n");
        for r in &self.rows {
            let _ = write!(s, "{}", r.index);
            for v in &r.values {
                let _ = write!(s, ",{v}");
            }
            let _ = writeln!(
                s,
                ",{},{},{},{},{},{},{},{},{:.3},{:.3},{},{},{},{:.2},{}",
                r.seed,
                r.verdict.replace(',', ";"),
                r.verdict_at_s.map_or_else(String::new, |t| format!("{t:.3}")),
                r.count_peak,
                r.max,
                r.drop,
                r.insert_failed,
                r.early_drop,
                r.p50_ms,
                r.p99_ms,
                r.sent,
                r.timeouts,
                r.failed,
                r.cpu_peak_pct,
                r.conclusive
            );
        }
        s
    }

    /// The rows' mean over seeds of `f` at every grid point, in point order.
    #[allow(clippy::cast_precision_loss)]
    fn means(&self, f: fn(&Row) -> f64) -> Vec<Option<f64>> {
        let n = self.seeds.len().max(1);
        let points = grid_size(&self.params, 1).unwrap_or(0);
        let mut sum = vec![(0.0, 0usize); points];
        for r in &self.rows {
            if let Some(slot) = sum.get_mut(r.index / n) {
                slot.0 += f(r);
                slot.1 += 1;
            }
        }
        sum.into_iter()
            .map(|(s, c)| (c > 0).then(|| s / c as f64))
            .collect()
    }

    /// Charts of the metrics against the parameters (mean over seeds): line charts for
    /// one parameter, heatmaps for two, none for more.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn charts(&self) -> Vec<(String, String)> {
        let metrics: [(&str, &str, ValueFormat, RowMetric); 4] = [
            (
                "drops",
                "drop + insert_failed (packets)",
                ValueFormat::Count,
                |r| (r.drop + r.insert_failed) as f64,
            ),
            ("p99", "p99 latency", ValueFormat::Millis, |r| r.p99_ms),
            (
                "peak-count",
                "peak nf_conntrack_count (entries)",
                ValueFormat::Count,
                |r| r.count_peak as f64,
            ),
            ("timeouts", "timeouts (attempts)", ValueFormat::Count, |r| {
                r.timeouts as f64
            }),
        ];
        let mut out = Vec::new();
        match self.params.as_slice() {
            [p] => {
                for (file, label, format, f) in metrics {
                    let points = p
                        .numeric
                        .iter()
                        .zip(self.means(f))
                        .map(|(x, y)| (*x, y))
                        .collect();
                    let ticks_at = (p.numeric.len() <= 12).then(|| p.numeric.clone());
                    out.push((
                        format!("sweep-{file}.svg"),
                        LineChart {
                            title: format!("{label} against {}", p.paths.join(",")),
                            subtitle: format!("scenario {} · {}", self.scenario, seeds_text(&self.seeds)),
                            x: Axis {
                                label: p.axis_label(),
                                scale: crate::report::chart::Scale::Linear,
                                format: ValueFormat::Count,
                                ticks_at,
                            },
                            y: Axis::linear(label, format),
                            series: vec![Series {
                                name: mean_of(self.seeds.len()),
                                points,
                                slot: 0,
                                dash: Dash::Solid,
                                dots: true,
                            }],
                            markers: Vec::new(),
                            stacked: false,
                        }
                        .render(),
                    ));
                }
            }
            [px, py] => {
                for (file, label, _, f) in metrics {
                    let m = self.means(f);
                    let nx = px.values.len();
                    // Points run y-major (the last parameter fastest): index = ix * ny + iy.
                    let cells = (0..py.values.len())
                        .map(|iy| {
                            (0..nx)
                                .map(|ix| m.get(ix * py.values.len() + iy).copied().flatten())
                                .collect()
                        })
                        .collect();
                    out.push((
                        format!("sweep-{file}-heatmap.svg"),
                        Heatmap {
                            title: label.to_owned(),
                            subtitle: format!("scenario {} · {}", self.scenario, seeds_text(&self.seeds)),
                            x_label: px.axis_label(),
                            y_label: py.axis_label(),
                            x_values: px.values.clone(),
                            y_values: py.values.clone(),
                            cells,
                        }
                        .render(),
                    ));
                }
            }
            _ => {}
        }
        out
    }

    /// A short text summary: one line per grid point (first seed's verdict, worst p99).
    #[must_use]
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: sweep of {} ({}{})",
            self.scenario,
            self.params
                .iter()
                .map(|p| p.text.as_str())
                .collect::<Vec<_>>()
                .join(" x "),
            super::count(self.rows.len(), "run", "runs"),
            self.shard
                .map_or_else(String::new, |sh| format!(", shard {}/{}", sh.index, sh.count))
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:>5}  {}  seed {}  {}{}{}  peak {}/{}  drop {}  insert_failed {}  p99 {:.1} ms  timeouts {}",
                r.index,
                r.values.join(" "),
                r.seed,
                if r.conclusive { "" } else { "inconclusive: " },
                r.verdict,
                r.verdict_at_s
                    .map_or_else(String::new, |t| format!(" at {t:.3}s")),
                r.count_peak,
                r.max,
                r.drop,
                r.insert_failed,
                r.p99_ms,
                r.timeouts
            );
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        s
    }
}

/// `seed 42`, or `seeds 42..44 · mean of 3 seeds`.
fn seeds_text(seeds: &[u64]) -> String {
    match (seeds.first(), seeds.last()) {
        (Some(a), Some(b)) if seeds.len() > 1 => format!("seeds {a}..{b} · {}", mean_of(seeds.len())),
        (Some(a), _) => format!("seed {a}"),
        _ => "no seed".to_owned(),
    }
}

/// Reads one number off a row (charts).
type RowMetric = fn(&Row) -> f64;

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

/// Joins the shards of one sweep into the document an unsharded run writes.
///
/// # Errors
/// [`SweepError::Merge`] when the shards differ in scenario, grid, seeds or shard count,
/// repeat a shard, miss one, or hold rows that are not theirs.
pub fn merge(mut shards: Vec<Sweep>) -> Result<Sweep, SweepError> {
    let err = |m: String| Err(SweepError::Merge(m));
    let Some(first) = shards.first().cloned() else {
        return err("no shards given".into());
    };
    let Some(count) = first.shard.map(|s| s.count) else {
        return err("the first file is a whole sweep, not a shard".into());
    };
    let Some(total) = grid_size(&first.params, first.seeds.len()) else {
        return err(format!(
            "the grid is larger than the {MAX_ROWS} runs a sweep may have"
        ));
    };
    if count == 0 || count as usize > MAX_ROWS {
        return err(format!("{count} shards: a sweep has 1 to {MAX_ROWS}"));
    }
    shards.sort_by_key(|s| s.shard.map(|x| x.index));
    let mut seen = vec![false; count as usize];
    for s in &shards {
        if s.fingerprint != first.fingerprint {
            return err(format!(
                "shards of different scenarios ({} fingerprint {} vs {} fingerprint {})",
                first.scenario, first.fingerprint, s.scenario, s.fingerprint
            ));
        }
        if s.params != first.params || s.seeds != first.seeds || s.schema_version != first.schema_version {
            return err("shards of different grids or seeds".into());
        }
        let Some(sh) = s.shard.filter(|x| x.count == count && x.index < count) else {
            return err(format!("a file is not one of {count} shards"));
        };
        if std::mem::replace(&mut seen[sh.index as usize], true) {
            return err(format!("shard {}/{count} given twice", sh.index));
        }
        if let Some(r) = s.rows.iter().find(|r| !sh.owns(r.index)) {
            return err(format!(
                "shard {}/{count} holds row {}, not its own",
                sh.index, r.index
            ));
        }
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return err(format!("shard {missing}/{count} is missing"));
    }
    let mut warnings: Vec<String> = Vec::new();
    for w in shards.iter().flat_map(|s| &s.warnings) {
        if !warnings.contains(w) {
            warnings.push(w.clone());
        }
    }
    let mut rows: Vec<Row> = shards.into_iter().flat_map(|s| s.rows).collect();
    rows.sort_by_key(|r| r.index);
    if rows.len() != total || rows.iter().enumerate().any(|(i, r)| r.index != i) {
        return err(format!(
            "the shards hold {} rows of a {total}-run grid",
            rows.len()
        ));
    }
    Ok(Sweep {
        shard: None,
        rows,
        warnings,
        ..first
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Scenario {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/small.yaml");
        Scenario::load(path, &[Override::parse("duration=1s").unwrap()]).unwrap()
    }

    #[test]
    fn params_parse_linear_and_log_grids_with_exact_ends() {
        let s = small();
        let p = parse_param(&s, "workloads.0.rate=100/s..1k/s:4").unwrap();
        assert_eq!(p.values, ["100/s", "400/s", "700/s", "1k/s"]);
        assert_eq!(p.numeric, [100.0, 400.0, 700.0, 1_000.0]);
        let p = parse_param(&s, "workloads.0.rate=100/s..10k/s:3:log").unwrap();
        assert_eq!(p.values, ["100/s", "1k/s", "10k/s"]);
        let p = parse_param(&s, "nodes.0.sysctl.net.netfilter.nf_conntrack_max=1000..1003:10").unwrap();
        assert_eq!(
            p.values,
            ["1000", "1001", "1002", "1003"],
            "integers stay whole, no repeats"
        );
    }

    #[test]
    fn malformed_params_and_shards_are_named_errors() {
        let s = small();
        for bad in [
            "workloads.0.rate",
            "workloads.0.rate=1k/s",
            "workloads.0.rate=2k/s..1k/s",
            "workloads.0.rate=1k/s..2k/s:1",
            "workloads.0.rate=1k/s..2k/s:x",
            "workloads.0.rate=0/s..2k/s:3:log",
            "workloads.0.rate=1k/s..2k/s:100000000000",
            "workloads.0.rate=1000..2000",
        ] {
            let e = parse_param(&s, bad).unwrap_err();
            assert!(matches!(e, SweepError::BadParam { .. }), "{bad}: {e}");
            assert!(e.to_string().contains(bad), "{e}");
        }
        assert_eq!(Shard::parse("2/4").unwrap(), Shard { index: 2, count: 4 });
        for bad in ["4/4", "1", "a/2", "0/0"] {
            assert!(matches!(Shard::parse(bad), Err(SweepError::BadShard(_))), "{bad}");
        }
    }

    #[test]
    fn one_parameter_charts_mark_each_swept_value_with_its_unit() {
        let s = small();
        let params = vec![parse_param(&s, "workloads.0.rate=100/s..300/s:3").unwrap()];
        let sw = Sweep::run(&s, params, vec![1], None, NonZeroUsize::MIN, &|_, _| {}).unwrap();
        let charts = sw.charts();
        assert_eq!(charts.len(), 4);
        let (_, svg) = &charts[0];
        assert_eq!(svg.matches(r#"class="point""#).count(), 3, "a dot per grid point");
        assert!(svg.contains("workloads.0.rate (requests/s)"), "unit on the axis");
        for v in [">100<", ">200<", ">300<"] {
            assert!(svg.contains(v), "a tick at the swept value {v}");
        }
        assert!(
            svg.contains("· seed 1<") && svg.contains(">1 seed<") && !svg.contains("seeds"),
            "grammar"
        );
    }

    #[test]
    fn a_path_swept_twice_is_refused() {
        let s = small();
        let params = vec![
            parse_param(&s, "workloads.0.rate=100/s..200/s:2").unwrap(),
            parse_param(&s, "workloads.0.rate=300/s..400/s:2").unwrap(),
        ];
        let e = Sweep::run(&s, params, vec![1], None, NonZeroUsize::MIN, &|_, _| {}).unwrap_err();
        assert!(e.to_string().contains("already swept"), "{e}");
    }

    #[test]
    fn one_or_two_threads_and_merged_shards_give_the_same_bytes() {
        let s = small();
        let params = vec![
            parse_param(&s, "workloads.0.rate=100/s..300/s:3").unwrap(),
            parse_param(&s, "nodes.0.sysctl.net.netfilter.nf_conntrack_max=200..400:2").unwrap(),
        ];
        let seeds = vec![1, 2];
        let run = |threads: usize, shard| {
            Sweep::run(
                &s,
                params.clone(),
                seeds.clone(),
                shard,
                NonZeroUsize::new(threads).unwrap(),
                &|_, _| {},
            )
            .unwrap()
        };
        let one = run(1, None);
        let two = run(2, None);
        assert_eq!(one.rows.len(), 12);
        let json = |s: &Sweep| serde_json::to_string_pretty(s).unwrap();
        assert_eq!(json(&one), json(&two));
        assert_eq!(one.to_csv(), two.to_csv());
        assert_eq!(one.charts(), two.charts());
        assert_eq!(one.charts().len(), 4, "heatmaps for two parameters");
        // The rows differ across the grid (a sweep that varies nothing would pass above).
        assert!(one.rows[0].sent < one.rows[11].sent);
        // Shards, serialised and read back as merge does, in any order.
        let shards: Vec<Sweep> = [2, 0, 1]
            .into_iter()
            .map(|k| {
                let sh = run(1, Some(Shard { index: k, count: 3 }));
                serde_json::from_str(&json(&sh)).unwrap()
            })
            .collect();
        let merged = merge(shards.clone()).unwrap();
        assert_eq!(json(&merged), json(&one));
        assert_eq!(merged.to_csv(), one.to_csv());
        // Missing, repeated and foreign shards are refused.
        assert!(
            merge(shards[..2].to_vec())
                .unwrap_err()
                .to_string()
                .contains("missing")
        );
        let twice = vec![shards[0].clone(), shards[0].clone(), shards[1].clone()];
        assert!(merge(twice).unwrap_err().to_string().contains("twice"));
        let mut foreign = shards.clone();
        foreign[1].fingerprint = "other".into();
        assert!(
            merge(foreign)
                .unwrap_err()
                .to_string()
                .contains("different scenarios")
        );
    }
}
