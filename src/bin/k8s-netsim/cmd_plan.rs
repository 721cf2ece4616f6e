//! `k8s-netsim plan`: the breaking point of a numeric field, per variant, over seeds.

use std::num::NonZeroU32;
use std::path::PathBuf;

use anyhow::Context as _;
use k8s_netsim::study::knob::{Condition, Knob};
use k8s_netsim::study::plan;

use crate::cmd_compare::collect_variants;
use crate::{BadInput, StudyOpts, emit};

#[derive(clap::Args, Debug)]
pub(crate) struct PlanArgs {
    /// Scenario file (YAML or JSON).
    scenario: PathBuf,
    /// Field(s) to search, set to the same value: `PATH[,PATH...]` (override paths, e.g.
    /// `nodes.0.sysctl.net.netfilter.nf_conntrack_max,nodes.1.sysctl.net.netfilter.nf_conntrack_max`).
    #[arg(long, default_value = "workloads.0.rate", value_name = "PATH[,PATH...]")]
    find: String,
    /// Condition whose onset is searched: `drop>0`, `insert_failed>0`, `p99>200ms`,
    /// `timeouts>0.1%`, `cpu>80%[@NODE]`.
    #[arg(long, value_name = "CONDITION")]
    until: String,
    /// Search between these values (`500/s..2k/s`, `64k..1M`); default: start at the
    /// scenario's value and move by factors of 4 until the outcome flips.
    #[arg(long, value_name = "LO..HI")]
    range: Option<String>,
    /// Stop when the bracket is this narrow, percent.
    #[arg(long, default_value_t = 1.0, value_name = "PCT")]
    resolution: f64,
    /// Seeds per variant (the scenario's seed, +1, +2, ...): the answer's spread.
    #[arg(long, default_value_t = NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN))]
    seeds: NonZeroU32,
    /// A variant: `NAME:PATH=VALUE[,PATH=VALUE...]`; repeatable.
    #[arg(long = "variant", value_name = "NAME:PATH=VALUE,...")]
    variants: Vec<String>,
    /// Of the scenario file's `variants:`, search only these (comma-separated names; the
    /// baseline is always searched), as `compare --only`.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    only: Vec<String>,
    /// Search every variant of the scenario file too (without it and without --only, only
    /// the baseline and the --variant ones).
    #[arg(long)]
    file_variants: bool,
    /// `--seed` (the first seed), `--set`, `--threads`.
    #[command(flatten)]
    opts: StudyOpts,
    /// Run every probe to its end. By default a probe whose condition is on a counter that
    /// only grows (drop, insert_failed, early_drop, failed or timeouts as a count) stops at
    /// the end of the first simulated second at which it holds: the answer is the same,
    /// the probe's `observed` is then the count at the stop.
    #[arg(long)]
    full_runs: bool,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
    /// Also write plan.json and plan.txt into this directory.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub(crate) fn plan(a: PlanArgs) -> anyhow::Result<()> {
    let base = a.opts.load(&a.scenario)?;
    let until = Condition::parse(&a.until).map_err(|e| BadInput(e.to_string()))?;
    let paths: Vec<String> = a
        .find
        .split(',')
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    let hint = a
        .range
        .as_deref()
        .and_then(|r| r.split_once(".."))
        .map(|(lo, _)| lo.trim());
    let knob = Knob::resolve(&base, &paths, hint).map_err(|e| BadInput(format!("--find {e}")))?;
    let range = a
        .range
        .as_deref()
        .map(|r| knob.parse_range(r))
        .transpose()
        .map_err(|e| BadInput(format!("--range {e}")))?;
    // The search runs the scenario at many values of the knob: check it as given, and
    // at the top of the range when one is given (the largest run it asks for), each on
    // its own: the search checks every probe the same way and runs only as many at once
    // as fit the memory limit together, so its answer does not depend on --threads.
    a.opts.check(&a.scenario, &base, 1)?;
    if let Some((_, hi)) = range {
        let top = knob
            .overrides(hi)
            .map_err(|e| BadInput(format!("--range: {e}")))
            .and_then(|o| {
                base.with_overrides(&o)
                    .map_err(|e| BadInput(format!("--range: {e}")))
            })?;
        a.opts.check(&a.scenario, &top, 1)?;
    }
    if !(a.resolution > 0.0 && a.resolution < 50.0) {
        return Err(BadInput(format!(
            "--resolution {}: expected a percentage above 0 and below 50",
            a.resolution
        ))
        .into());
    }
    let variants = collect_variants(
        &a.scenario,
        &base,
        a.file_variants || !a.only.is_empty(),
        &a.only,
        &a.variants,
    )?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let resolution_ppm = (a.resolution * 10_000.0).round() as u64;
    let settings = plan::PlanSettings {
        until,
        range,
        resolution_ppm,
        max_expansions: 6,
        seeds: (0..u64::from(a.seeds.get()))
            .map(|i| base.seed.wrapping_add(i))
            .collect(),
        full_runs: a.full_runs,
        limits: a.opts.limits.limits(),
    };
    let threads = a.opts.threads();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let searches = (variants.len() + 1) * settings.seeds.len();
    eprintln!(
        "plan: {searches} {} ({} {} x {} {}), runs of {:.0} s simulated each; a line per round of bisection",
        crate::plural(searches, "search", "searches"),
        variants.len() + 1,
        crate::plural(variants.len() + 1, "column", "columns"),
        settings.seeds.len(),
        crate::plural(settings.seeds.len(), "seed", "seeds"),
        base.duration.as_secs_f64()
    );
    let result = plan::plan(&base, &variants, &knob, &settings, threads, &|round, runs| {
        if tty {
            eprint!("\rround {round}: {runs} runs simulated");
        } else {
            eprintln!("round {round}: {runs} runs simulated");
        }
    });
    if tty {
        eprintln!();
    }
    let result = result.map_err(|e| {
        let user = e.is_user_error();
        crate::classify(&a.scenario, e, user)
    })?;
    let json = serde_json::to_string_pretty(&result).context("serialising the plan")?;
    let text = result.render_text();
    let files = [
        ("plan.json".to_owned(), format!("{json}\n")),
        ("plan.txt".to_owned(), text.clone()),
    ];
    emit(a.out.as_deref(), a.json, &json, &text, &files)
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum Topic {
    /// nf_conntrack_max and nf_conntrack_buckets for the scenario's load.
    Conntrack,
    /// A keep-alive pool size and idle timeout for a workload.
    Pool,
    /// SNAT source ports per destination (masqueradeAll): endpoints needed, verified by a re-run.
    Snat,
    /// Where IPVS / nftables start to cost less CPU than iptables.
    ProxyMode,
}

#[derive(clap::Args, Debug)]
pub(crate) struct RecommendArgs {
    /// Scenario file at the target load (set it with --set, e.g. workloads.0.rate=30k/s).
    scenario: PathBuf,
    /// What to size.
    #[arg(long = "for", value_enum)]
    topic: Topic,
    /// Workload index (pool, snat).
    #[arg(long, default_value_t = 0)]
    workload: usize,
    /// Headroom over the measured need, percent.
    #[arg(long, default_value_t = 25.0)]
    headroom: f64,
    /// Modes compared with iptables (proxy-mode).
    #[arg(long, value_delimiter = ',', default_value = "ipvs,nftables")]
    modes: Vec<String>,
    /// Numbers of Services (proxy-mode).
    #[arg(long, value_delimiter = ',', default_value = "100,1000,5000,10000")]
    services: Vec<u64>,
    /// `--seed`, `--set`, `--threads`.
    #[command(flatten)]
    opts: StudyOpts,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Also write recommend.json and recommend.txt into this directory.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub(crate) fn recommend(a: RecommendArgs) -> anyhow::Result<()> {
    use k8s_netsim::study::recommend;
    let base = a.opts.load(&a.scenario)?;
    // On its own: every derived run is checked the same way, and as many run at once as
    // fit the memory limit together.
    a.opts.check(&a.scenario, &base, 1)?;
    let threads = a.opts.threads();
    let limits = a.opts.limits.limits();
    eprintln!(
        "recommend --for {}: a measuring run and a re-run (or one run per mode and Service count), lengthened to what the question needs",
        crate::cli_name(a.topic)
    );
    let bad = |e: recommend::RecommendError| {
        let user = e.is_user_error();
        crate::classify(&a.scenario, e, user)
    };
    let (json, text) = match a.topic {
        Topic::ProxyMode => {
            let modes: Vec<&str> = a.modes.iter().map(String::as_str).collect();
            let c =
                recommend::proxy_mode_crossover(&base, &modes, &a.services, threads, &limits).map_err(bad)?;
            (serde_json::to_string_pretty(&c)?, c.render_text())
        }
        topic => {
            let r = match topic {
                Topic::Conntrack => recommend::conntrack(&base, a.headroom, threads, &limits),
                Topic::Pool => recommend::pool(&base, a.workload, a.headroom, threads, &limits),
                _ => recommend::snat_ports(&base, a.workload, a.headroom, threads, &limits),
            }
            .map_err(bad)?;
            (serde_json::to_string_pretty(&r)?, r.render_text())
        }
    };
    let files = [
        ("recommend.json".to_owned(), format!("{json}\n")),
        ("recommend.txt".to_owned(), text.clone()),
    ];
    emit(a.out.as_deref(), a.json, &json, &text, &files)
}
