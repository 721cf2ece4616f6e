//! `k8s-netsim sweep` (a grid of runs, or one shard of it) and `k8s-netsim merge`.
//!
//! With `--out DIR`, each run's row is saved as soon as the run ends
//! (`DIR/points/row-NNNNNN.json`, or `DIR/points-K-of-N/` for a shard, next to the
//! sweep's header `sweep-plan.json`), so a sweep killed after an hour keeps the hour:
//! `--resume` reads the saved rows, checks they belong to this very sweep (same
//! scenario fingerprint, grid, seeds and shard) and runs only the rest. The result is
//! byte-identical to an uninterrupted sweep.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context as _;
use k8s_netsim::study::sweep::{self, Row, Sweep, SweepPlan};

use crate::files::{read_user_file, write_atomic};
use crate::{BadInput, RunsProgress, StudyOpts, emit};

/// Largest shard or sweep file `merge` reads (100,000 rows of about 500 bytes).
const MAX_SWEEP_FILE_BYTES: u64 = 64 << 20;
/// Largest point file `--resume` reads.
const MAX_POINT_FILE_BYTES: u64 = 1 << 20;

#[derive(clap::Args, Debug)]
pub(crate) struct SweepArgs {
    /// Scenario file (YAML or JSON).
    scenario: PathBuf,
    /// A swept field: `PATH[,PATH...]=FROM..TO[:STEPS][:log]` (STEPS points, ends
    /// included, default 10); repeatable (two give a heatmap).
    #[arg(long = "param", value_name = "PATH=FROM..TO[:STEPS]", required = true)]
    params: Vec<String>,
    /// Seeds per point (the scenario's seed, +1, ...).
    #[arg(long, default_value_t = NonZeroU32::MIN)]
    seeds: NonZeroU32,
    /// Run only rows i with i mod N == K (K = JOB_COMPLETION_INDEX); join with `merge`.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// `--seed` (the first seed), `--set`, `--threads`, limits.
    #[command(flatten)]
    opts: StudyOpts,
    /// Print the sweep as JSON.
    #[arg(long)]
    json: bool,
    /// Write sweep.json, sweep.csv and charts here (a shard writes shard-K-of-N.json
    /// only); each run's row is saved here as it finishes.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Keep the rows an earlier, interrupted `sweep --out DIR` of the same sweep saved,
    /// and run only the others.
    #[arg(long, requires = "out")]
    resume: bool,
}

#[derive(clap::Args, Debug)]
pub(crate) struct MergeArgs {
    /// Shard files written by `sweep --shard K/N --out DIR` (shard-K-of-N.json).
    #[arg(required = true)]
    shards: Vec<PathBuf>,
    /// Write sweep.json, sweep.csv and charts here, as an unsharded sweep would.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print the merged sweep as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn sweep(a: SweepArgs) -> anyhow::Result<()> {
    let base = a.opts.load(&a.scenario)?;
    let params = a
        .params
        .iter()
        .map(|p| sweep::parse_param(&base, p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BadInput(e.to_string()))?;
    let shard = a
        .shard
        .as_deref()
        .map(sweep::Shard::parse)
        .transpose()
        .map_err(|e| BadInput(e.to_string()))?;
    let seeds: Vec<u64> = (0..u64::from(a.seeds.get()))
        .map(|i| base.seed.wrapping_add(i))
        .collect();
    let plan = SweepPlan::new(&base, params, seeds, shard).map_err(|e| {
        let user = e.is_user_error();
        crate::classify(&a.scenario, e, user)
    })?;
    for job in plan.jobs() {
        a.opts.check(&a.scenario, &job.scenario, plan.jobs().len())?;
    }
    let points = a.out.as_deref().map(|dir| points_dir(dir, plan.header()));
    let finished = match &points {
        Some(dir) => prepare(dir, plan.header(), a.resume)?,
        None => Vec::new(),
    };
    if a.resume {
        eprintln!(
            "resuming: {} of {} runs already done",
            finished.len(),
            plan.jobs().len()
        );
    }
    let threads = a.opts.threads();
    let progress = RunsProgress::new("grid points");
    progress.start("sweep", plan.jobs().len(), base.duration.as_secs_f64());
    let save_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let result = plan.run(
        threads,
        finished,
        &|row| {
            if let Some(dir) = &points
                && let Err(e) = save_row(dir, row)
                && let Ok(mut slot) = save_error.lock()
            {
                slot.get_or_insert(e);
            }
        },
        &|d, t| progress.update(d, t),
    );
    progress.finish();
    if let Some(e) = save_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let result = result.map_err(|e| {
        let user = e.is_user_error();
        crate::classify(&a.scenario, e, user)
    })?;
    emit_sweep(&result, a.out.as_deref(), a.json)
}

/// Where a sweep saves its rows as they finish.
fn points_dir(out: &Path, header: &Sweep) -> PathBuf {
    match header.shard {
        Some(sh) => out.join(format!("points-{}-of-{}", sh.index, sh.count)),
        None => out.join("points"),
    }
}

fn row_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("row-{index:06}.json"))
}

/// Readies `dir` for this sweep and returns the rows to keep: with `resume`, the rows
/// an earlier run of the same sweep saved there; without, none (earlier rows are
/// removed). The sweep's header is (re)written either way.
fn prepare(dir: &Path, header: &Sweep, resume: bool) -> anyhow::Result<Vec<Row>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let plan_path = dir.join("sweep-plan.json");
    let mut finished = Vec::new();
    if resume && plan_path.exists() {
        let saved = Sweep::from_json(&read_user_file(&plan_path, MAX_SWEEP_FILE_BYTES)?)
            .map_err(|e| BadInput(format!("{}: {e}", plan_path.display())))?;
        if saved.fingerprint != header.fingerprint
            || saved.params != header.params
            || saved.seeds != header.seeds
            || saved.shard != header.shard
        {
            return Err(BadInput(format!(
                "{}: --resume: the rows there are of a different sweep (another scenario, --set, --param, --seeds or --shard); remove the directory or run without --resume",
                dir.display()
            ))
            .into());
        }
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !(name.starts_with("row-") && name.ends_with(".json")) {
            continue;
        }
        if !resume {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            continue;
        }
        let text = read_user_file(&path, MAX_POINT_FILE_BYTES)?;
        let row: Row = serde_json::from_str(&text)
            .map_err(|e| BadInput(format!("{}: not a sweep row: {e}", path.display())))?;
        header
            .check_row(&row)
            .map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
        if row_path(dir, row.index) != path {
            return Err(BadInput(format!("{}: holds row {}", path.display(), row.index)).into());
        }
        finished.push(row);
    }
    finished.sort_by_key(|r| r.index);
    let json = serde_json::to_string_pretty(header).context("serialising the sweep header")?;
    write_atomic(&plan_path, &format!("{json}\n"))?;
    Ok(finished)
}

fn save_row(dir: &Path, row: &Row) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(row).context("serialising a sweep row")?;
    write_atomic(&row_path(dir, row.index), &format!("{json}\n"))
}

pub(crate) fn merge(a: MergeArgs) -> anyhow::Result<()> {
    let mut shards = Vec::new();
    for path in &a.shards {
        let text = read_user_file(path, MAX_SWEEP_FILE_BYTES)?;
        let s = Sweep::from_json(&text)
            .map_err(|e| BadInput(format!("{}: not a sweep shard: {e}", path.display())))?;
        shards.push(s);
    }
    let merged = sweep::merge(shards).map_err(|e| BadInput(e.to_string()))?;
    emit_sweep(&merged, a.out.as_deref(), a.json)
}

fn emit_sweep(s: &sweep::Sweep, out_dir: Option<&Path>, as_json: bool) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(s).context("serialising the sweep")?;
    let files = match s.shard {
        Some(sh) => vec![(
            format!("shard-{}-of-{}.json", sh.index, sh.count),
            format!("{json}\n"),
        )],
        None => {
            let mut f = vec![
                ("sweep.json".to_owned(), format!("{json}\n")),
                ("sweep.csv".to_owned(), s.to_csv()),
            ];
            f.extend(s.charts());
            f
        }
    };
    emit(out_dir, as_json, &json, &s.render_text(), &files)
}
