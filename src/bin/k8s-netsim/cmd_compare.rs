//! `k8s-netsim compare`: one scenario, several variants, same seed, side by side.

use std::path::PathBuf;

use anyhow::Context as _;
use k8s_netsim::scenario::Variant;
use k8s_netsim::study::{self, compare};

use crate::{BadInput, RunsProgress, StudyOpts, emit};

#[derive(clap::Args, Debug)]
pub(crate) struct CompareArgs {
    /// Scenario file (YAML or JSON); its `variants:` run unless `--only` or `--no-file-variants`.
    scenario: PathBuf,
    /// A variant: `NAME:PATH=VALUE[,PATH=VALUE...]` (same paths as --set); repeatable.
    #[arg(long = "variant", value_name = "NAME:PATH=VALUE,...")]
    variants: Vec<String>,
    /// Of the scenario file's `variants:`, run only these (comma-separated names; the
    /// baseline always runs). Without it, all of them run.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    only: Vec<String>,
    /// Ignore the scenario file's `variants:` (run the baseline and --variant ones).
    #[arg(long)]
    no_file_variants: bool,
    /// `--seed` (every variant runs with it), `--set` (every variant, baseline included),
    /// `--threads`.
    #[command(flatten)]
    opts: StudyOpts,
    /// Print the comparison as JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write compare.json, the table, report.html and overlay charts (SVG) into this directory.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub(crate) fn compare(a: CompareArgs) -> anyhow::Result<()> {
    let base = a.opts.load(&a.scenario)?;
    let variants = collect_variants(&a.scenario, &base, !a.no_file_variants, &a.only, &a.variants)?;
    if variants.is_empty() {
        return Err(BadInput(format!(
            "{}: nothing to compare: the file has no `variants:` and no --variant was given",
            a.scenario.display()
        ))
        .into());
    }
    let jobs = compare::jobs(&base, &variants).map_err(|e| {
        let user = e.is_user_error();
        crate::classify(&a.scenario, e, user)
    })?;
    for job in &jobs {
        a.opts.check(&a.scenario, &job.scenario, jobs.len())?;
    }
    let threads = a.opts.threads();
    let progress = RunsProgress::new("variants");
    progress.start("compare", jobs.len(), base.duration.as_secs_f64());
    let outcomes = study::run_jobs(&jobs, threads, &|done, total| progress.update(done, total));
    progress.finish();
    let cmp = compare::Comparison::new(&base, &variants, &jobs, outcomes).map_err(|e| {
        let user = e.is_user_error();
        crate::classify(&a.scenario, e, user)
    })?;
    let json = serde_json::to_string_pretty(&cmp).context("serialising the comparison")?;
    let text = cmp.render_text();
    let mut files = vec![
        ("compare.json".to_owned(), format!("{json}\n")),
        ("compare.txt".to_owned(), text.clone()),
    ];
    files.push(("report.html".to_owned(), cmp.html()));
    files.extend(cmp.charts());
    emit(a.out.as_deref(), a.json, &json, &text, &files)?;
    Ok(())
}

/// The variants to run: the file's `variants:` (all, or those named by `only`) when
/// `file_variants`, then the `--variant` ones.
pub(crate) fn collect_variants(
    path: &std::path::Path,
    base: &k8s_netsim::scenario::Scenario,
    file_variants: bool,
    only: &[String],
    cli: &[String],
) -> anyhow::Result<Vec<Variant>> {
    let mut variants: Vec<Variant> = Vec::new();
    if file_variants {
        for name in only {
            if !base.variants.iter().any(|v| &v.name == name) {
                let known: Vec<&str> = base.variants.iter().map(|v| v.name.as_str()).collect();
                return Err(BadInput(format!(
                    "--only {name}: {} has no variant of that name (variants: {})",
                    path.display(),
                    known.join(", ")
                ))
                .into());
            }
        }
        variants.extend(
            base.variants
                .iter()
                .filter(|v| only.is_empty() || only.contains(&v.name))
                .cloned(),
        );
    } else if !only.is_empty() {
        return Err(BadInput("--only and --no-file-variants exclude each other".into()).into());
    }
    for text in cli {
        variants.push(study::parse_variant(text).map_err(|e| BadInput(format!("--variant {e}")))?);
    }
    Ok(variants)
}
