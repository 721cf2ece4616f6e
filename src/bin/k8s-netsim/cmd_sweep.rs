//! `k8s-netsim sweep` (a grid of runs, or one shard of it) and `k8s-netsim merge`.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use k8s_netsim::study::sweep;

use crate::{BadInput, RunsProgress, StudyOpts, emit};

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
    /// `--seed` (the first seed), `--set`, `--threads`.
    #[command(flatten)]
    opts: StudyOpts,
    /// Print the sweep as JSON.
    #[arg(long)]
    json: bool,
    /// Write sweep.json, sweep.csv and charts here (a shard writes shard-K-of-N.json only).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
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
    let threads = a.opts.threads();
    let progress = RunsProgress::new("grid points");
    let grid: usize = params.iter().map(|p| p.values.len()).product::<usize>() * seeds.len();
    let runs = shard.map_or(grid, |s| grid.div_ceil(s.count as usize));
    progress.start("sweep", runs, base.duration.as_secs_f64());
    let result = sweep::Sweep::run(&base, params, seeds, shard, threads, &|d, t| {
        progress.update(d, t)
    });
    progress.finish();
    let result = result.map_err(|e| {
        let user = e.is_user_error();
        crate::classify(&a.scenario, e, user)
    })?;
    emit_sweep(&result, a.out.as_deref(), a.json)
}

pub(crate) fn merge(a: MergeArgs) -> anyhow::Result<()> {
    let mut shards = Vec::new();
    for path in &a.shards {
        let text = std::fs::read_to_string(path).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
        let s: sweep::Sweep = serde_json::from_str(&text)
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
