//! The `k8s-netsim` command line.
//!
//! Exit codes: 0 the command ran; 2 bad input (scenario file, flags, overrides); 1 an
//! internal failure.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cmd_compare;
mod cmd_import;
mod cmd_plan;
mod cmd_rules;
mod cmd_sweep;
mod cmd_trace;
mod cmd_validate;
mod files;
mod limits;
mod progress;
mod render;
mod stream;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use k8s_netsim::scenario::{Override, Scenario};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub(crate) use limits::LimitArgs;
pub(crate) use progress::RunsProgress;

#[derive(Parser, Debug)]
#[command(
    name = "k8s-netsim",
    version,
    about = "Simulate the network data path of Kubernetes nodes: conntrack, NAT, kube-proxy, DNS, sockets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay a scenario and report when conntrack drop / insert_failed / early_drop start, and why.
    Run(RunArgs),
    /// Print the rules kube-proxy programs: iptables-save (iptables, IPVS + `ipvsadm -Ln`) or nft text (nftables), for a synthetic cluster or a scenario's node.
    Rules(RulesArgs),
    /// Follow one connection's first packet hop by hop through a scenario's data path.
    Trace(TraceArgs),
    /// Run a scenario under several variants (remediations) with the same seed, side by side.
    Compare(cmd_compare::CompareArgs),
    /// Find the value of a field (rate, nf_conntrack_max, pool size, ...) at which a condition starts, by bisection.
    Plan(cmd_plan::PlanArgs),
    /// Recommend conntrack sizing, a keep-alive pool, SNAT ports or a proxy mode, verified by a re-run.
    Recommend(cmd_plan::RecommendArgs),
    /// Run a grid over one or more fields in parallel (CSV, JSON, charts); `--shard K/N` for one slice.
    Sweep(cmd_sweep::SweepArgs),
    /// Join `sweep --shard` slices into what one unsharded sweep writes.
    Merge(cmd_sweep::MergeArgs),
    /// Compare the simulator with the recorded kernel traces and published targets.
    Validate(cmd_validate::ValidateArgs),
    /// Build a scenario of a real node from its evidence (scripts/collect-node-evidence.sh).
    Import(cmd_import::ImportArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Scenario file (YAML or JSON).
    scenario: PathBuf,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Override a scenario field: `PATH=VALUE` (e.g. `workloads.0.rate=10k/s`); repeatable.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<String>,
    /// Print the report as JSON (schema: docs/report-format.md) instead of the summary.
    #[arg(long)]
    json: bool,
    /// Also write report.json, report.html, metrics.prom (OpenMetrics), timeseries.csv
    /// and SVG charts into this directory.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// `--max-memory`, `--max-events`, `--max-rows`.
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    Iptables,
    Nftables,
    Ipvs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum RulesFormat {
    Auto,
    Nft,
    IptablesSave,
}

#[derive(clap::Args, Debug)]
struct RulesArgs {
    /// Scenario file: print the ruleset of one of its nodes (with --node).
    scenario: Option<PathBuf>,
    /// Node of the scenario.
    #[arg(long)]
    node: Option<String>,
    /// kube-proxy mode (synthetic cluster; default iptables, or nftables with `--format nft`).
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// Output format: `auto` follows the mode (iptables-save for iptables and IPVS, `nft
    /// list ruleset` text for nftables); `nft` and `iptables-save` insist on one.
    #[arg(long, value_enum, default_value = "auto")]
    format: RulesFormat,
    /// Number of synthetic ClusterIP Services.
    #[arg(long, default_value_t = 10)]
    services: usize,
    /// Endpoints per synthetic Service.
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// Give the synthetic Services NodePorts.
    #[arg(long)]
    nodeport: bool,
    /// Override a scenario field (with a scenario).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<String>,
}

#[derive(clap::Args, Debug)]
struct TraceArgs {
    /// Scenario file.
    scenario: PathBuf,
    /// Source: a client pod name such as `order-service-0`, or a node name for a host-network flow (enters at OUTPUT).
    #[arg(long)]
    from: String,
    /// Destination: `SERVICE:PORT` (a Service of the scenario) or `IP:PORT`.
    #[arg(long)]
    to: String,
    /// Protocol of the first packet (default: the Service port's; TCP for `IP:PORT`).
    #[arg(long, value_enum)]
    proto: Option<TraceProto>,
    /// Override the scenario's seed (picks another endpoint where the data plane draws one).
    #[arg(long)]
    seed: Option<u64>,
    /// Override a scenario field.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TraceProto {
    Tcp,
    Udp,
}

/// An error that is the user's input, not ours (exit 2).
#[derive(Debug)]
pub(crate) struct BadInput(pub(crate) String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// A library error about `path`, as the exit code wants it: the user's input (exit 2)
/// or ours (exit 1, with the error chain).
pub(crate) fn classify<E>(path: &Path, e: E, user: bool) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    if user {
        BadInput(format!("{}: {e}", path.display())).into()
    } else {
        anyhow::Error::new(e).context(path.display().to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run(a),
        Command::Rules(a) => rules(a),
        Command::Trace(a) => {
            let proto = a.proto.map(|p| match p {
                TraceProto::Tcp => k8s_netsim::packet::Proto::Tcp,
                TraceProto::Udp => k8s_netsim::packet::Proto::Udp,
            });
            parse_overrides(&a.set, a.seed)
                .and_then(|o| cmd_trace::trace(&a.scenario, &a.from, &a.to, proto, &o))
        }
        Command::Compare(a) => cmd_compare::compare(a),
        Command::Plan(a) => cmd_plan::plan(a),
        Command::Recommend(a) => cmd_plan::recommend(a),
        Command::Sweep(a) => cmd_sweep::sweep(a),
        Command::Merge(a) => cmd_sweep::merge(a),
        Command::Validate(a) => cmd_validate::validate(a),
        Command::Import(a) => cmd_import::import_cmd(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped early (`| head`): the output was wanted up to there.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(bad) = e.downcast_ref::<BadInput>() {
                eprintln!("error: {bad}");
                ExitCode::from(2)
            } else {
                eprintln!("internal error: {e:#}");
                ExitCode::from(1)
            }
        }
    }
}

/// Whether an error is a write to a closed pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub(crate) fn parse_overrides(set: &[String], seed: Option<u64>) -> anyhow::Result<Vec<Override>> {
    let mut out = Vec::new();
    if let Some(s) = seed {
        out.push(Override::parse(&format!("seed={s}")).map_err(|e| BadInput(format!("--seed: {e}")))?);
    }
    for s in set {
        out.push(Override::parse(s).map_err(|e| BadInput(e.to_string()))?);
    }
    Ok(out)
}

pub(crate) fn load(path: &Path, overrides: &[Override]) -> anyhow::Result<Scenario> {
    Scenario::load(path, overrides).map_err(|e| BadInput(e.to_string()).into())
}

fn run(a: RunArgs) -> anyhow::Result<()> {
    let overrides = parse_overrides(&a.set, a.seed)?;
    let scenario = load(&a.scenario, &overrides)?;
    a.limits.check(&a.scenario, &scenario, 1)?;
    let mut bar = progress::Progress::new();
    let mut kept = stream::Thinned::new();
    let outcome = match &a.out {
        None => k8s_netsim::sim::run_with(&scenario, &mut |now, end| bar.update(now, end), &mut |row| {
            kept.push(row);
        }),
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let names: Vec<String> = scenario.nodes.iter().map(|n| n.name.clone()).collect();
            let mut csv = stream::CsvStream::create(&dir.join("timeseries.csv"), &names)?;
            let out =
                k8s_netsim::sim::run_with(&scenario, &mut |now, end| bar.update(now, end), &mut |row| {
                    csv.row(&row);
                    kept.push(row);
                });
            if out.is_ok() {
                let csv = csv.finish()?;
                bar.finish();
                return finish_run(&a, out, kept, Some(csv));
            }
            out
        }
    };
    bar.finish();
    finish_run(&a, outcome, kept, None)
}

/// Writes the run's outputs (report, charts, and the streamed `timeseries.csv` when
/// `--out`), each atomically, then the summary or JSON on stdout.
fn finish_run(
    a: &RunArgs,
    outcome: Result<k8s_netsim::sim::Outcome, k8s_netsim::sim::SimError>,
    kept: stream::Thinned,
    csv: Option<files::Pending>,
) -> anyhow::Result<()> {
    let outcome = outcome.map_err(|e| {
        let user = e.is_user_error();
        classify(&a.scenario, e, user)
    })?;
    let (rows, stride) = kept.into_rows();
    if stride > 1 {
        eprintln!(
            "note: the run has more than {} time-series rows: timeseries.csv holds every row; the charts, report.html and metrics.prom are drawn from every {stride}th",
            k8s_netsim::scenario::budget::ROWS_KEPT
        );
    }
    let mut ts = outcome.timeseries;
    ts.samples = rows;
    let report = k8s_netsim::report::RunReport::new(outcome.report, &ts);
    let json = serde_json::to_string_pretty(&report).context("serialising the report")?;
    let mut written = Vec::new();
    if let Some(dir) = &a.out {
        let mut files = vec![
            ("report.json".to_owned(), format!("{json}\n")),
            (
                "metrics.prom".to_owned(),
                k8s_netsim::report::metrics::openmetrics(&report, &ts),
            ),
            (
                "report.html".to_owned(),
                k8s_netsim::report::html::run_page(&report, &ts),
            ),
        ];
        files.extend(report.charts(&ts).into_iter().map(|(name, c)| (name, c.render())));
        // Everything staged first, then renamed in one go: a kill leaves the previous
        // complete set or this one, file by file, never a truncated file.
        files::write_all_atomic(dir, &files)?;
        written.extend(files.into_iter().map(|(name, _)| name));
        written.insert(1, "timeseries.csv".to_owned());
        if let Some(csv) = csv {
            csv.commit()?;
        }
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{json}")?;
    } else {
        write!(out, "{}", render::summary(&report))?;
        if let Some(dir) = &a.out {
            writeln!(out, "\nwrote {} to {}", written.join(", "), dir.display())?;
        }
    }
    Ok(())
}

fn rules(a: RulesArgs) -> anyhow::Result<()> {
    let text = match (&a.scenario, &a.node) {
        (Some(path), Some(node)) => {
            if a.mode.is_some() {
                return Err(BadInput(format!(
                    "{}: --mode is for the synthetic cluster; a scenario's mode is kubeProxy.mode (--set kubeProxy.mode=...)",
                    path.display()
                ))
                .into());
            }
            let scenario = load(path, &parse_overrides(&a.set, None)?)?;
            let mode = k8s_netsim::sim::proxy_mode_name(scenario.kube_proxy.mode);
            let fits = match a.format {
                RulesFormat::Auto => true,
                RulesFormat::Nft => mode == "nftables",
                RulesFormat::IptablesSave => mode != "nftables",
            };
            if !fits {
                return Err(BadInput(format!(
                    "{}: --format {} does not fit kubeProxy.mode `{mode}` (its rules are {}); use --set kubeProxy.mode=... or --format auto",
                    path.display(),
                    if a.format == RulesFormat::Nft { "nft" } else { "iptables-save" },
                    if mode == "nftables" { "nft text" } else { "iptables-save" }
                ))
                .into());
            }
            k8s_netsim::sim::node_rules(&scenario, node).map_err(|e| {
                let user = e.is_user_error();
                classify(path, e, user)
            })?
        }
        (Some(path), None) => {
            return Err(BadInput(format!(
                "{}: --node NAME is required with a scenario",
                path.display()
            ))
            .into());
        }
        (None, Some(_)) => return Err(BadInput("--node needs a scenario file".into()).into()),
        (None, None) => {
            let mode = match (a.mode, a.format) {
                (Some(m), _) => m,
                (None, RulesFormat::Nft) => Mode::Nftables,
                (None, _) => Mode::Iptables,
            };
            match (mode, a.format) {
                (Mode::Nftables, RulesFormat::IptablesSave)
                | (Mode::Iptables | Mode::Ipvs, RulesFormat::Nft) => {
                    return Err(BadInput(format!(
                        "--format {} does not fit --mode {} (nft text is nftables mode's; iptables-save is iptables and IPVS mode's)",
                        cli_name(a.format),
                        cli_name(mode)
                    ))
                    .into());
                }
                _ => {}
            }
            match mode {
                Mode::Iptables => cmd_rules::synthetic(a.services, a.endpoints, a.nodeport),
                Mode::Nftables => cmd_rules::synthetic_nftables(a.services, a.endpoints, a.nodeport),
                Mode::Ipvs => cmd_rules::synthetic_ipvs(a.services, a.endpoints, a.nodeport),
            }
        }
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// A value's spelling on the command line (`iptables-save`, `nftables`).
pub(crate) fn cli_name<V: ValueEnum>(v: V) -> String {
    v.to_possible_value()
        .map_or_else(String::new, |p| p.get_name().to_owned())
}

/// `n` with the singular or plural noun.
pub(crate) fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// Options every multi-run command shares (`compare`, `plan`, `sweep`, `recommend`).
#[derive(clap::Args, Debug)]
pub(crate) struct StudyOpts {
    /// Override the scenario's seed (the first seed where a command runs several).
    #[arg(long)]
    seed: Option<u64>,
    /// Override a scenario field for every run: `PATH=VALUE`; repeatable.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<String>,
    /// Worker threads (default: all cores). The output does not depend on it.
    #[arg(long)]
    threads: Option<std::num::NonZeroUsize>,
    /// `--max-memory`, `--max-events`, `--max-rows` (memory counts one run per thread).
    #[command(flatten)]
    pub(crate) limits: LimitArgs,
}

impl StudyOpts {
    /// Loads the scenario with `--seed` and `--set` applied.
    pub(crate) fn load(&self, path: &Path) -> anyhow::Result<Scenario> {
        load(path, &parse_overrides(&self.set, self.seed)?)
    }

    /// `--threads`, or every core.
    pub(crate) fn threads(&self) -> std::num::NonZeroUsize {
        self.threads
            .unwrap_or_else(k8s_netsim::study::runner::default_threads)
    }

    /// Refuses `scenario` (exit 2) when `runs` runs of it, at most one per thread at
    /// once, would not fit the limits.
    pub(crate) fn check(&self, path: &Path, scenario: &Scenario, runs: usize) -> anyhow::Result<()> {
        let parallel = runs.clamp(1, self.threads().get());
        self.limits.check(path, scenario, parallel).map(|_| ())
    }
}

/// A study's output: `files` (name, contents) into `--out DIR` when given, then the
/// JSON (`--json`) or the text on stdout.
pub(crate) fn emit(
    out_dir: Option<&Path>,
    as_json: bool,
    json: &str,
    text: &str,
    files: &[(String, String)],
) -> anyhow::Result<()> {
    if let Some(dir) = out_dir {
        files::write_all_atomic(dir, files)?;
    }
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{json}")?;
    } else {
        write!(out, "{text}")?;
        if let Some(dir) = out_dir {
            let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
            writeln!(out, "\nwrote {} to {}", names.join(", "), dir.display())?;
        }
    }
    Ok(())
}
