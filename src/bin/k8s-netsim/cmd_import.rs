//! `k8s-netsim import DIR|TARBALL [--out scenario.yaml]`: a scenario of the node an
//! evidence bundle (`scripts/collect-node-evidence.sh`) was collected on.

use crate::BadInput;
use anyhow::Context as _;
use k8s_netsim::evidence::bundle::Bundle;
use k8s_netsim::evidence::import::{ImportOptions, import};
use std::io::Write as _;
use std::path::PathBuf;

/// Arguments of `import`.
#[derive(clap::Args, Debug)]
pub(crate) struct ImportArgs {
    /// The bundle: the directory the collection script wrote, or its tarball.
    bundle: PathBuf,
    /// Write the scenario here instead of to stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Entries of `conntrack -L` summarised for the warm start; the rest is counted.
    #[arg(long, default_value_t = 20_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    conntrack_cap: u64,
    /// Slices per warm-start group (protocol, state, ASSURED), 1..=64.
    #[arg(long, default_value_t = 8, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    warm_slices: usize,
    /// The scenario's duration in seconds (at most a week).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    duration: u64,
}

pub(crate) fn import_cmd(a: ImportArgs) -> anyhow::Result<()> {
    let bundle = Bundle::read(&a.bundle, a.conntrack_cap).map_err(|e| BadInput(e.to_string()))?;
    let opts = ImportOptions {
        warm_slices: a.warm_slices,
        duration_s: a.duration,
    };
    let imported = import(&bundle, &opts).map_err(|e| BadInput(e.to_string()))?;
    let mut err = std::io::stderr().lock();
    for w in &imported.warnings {
        writeln!(err, "warning: {w}")?;
    }
    for s in &imported.skipped {
        writeln!(err, "skipped: {s}")?;
    }
    if imported.cost_is_lower_bound {
        writeln!(
            err,
            "note: rules the model does not implement were left out: node {}'s rule cost is a lower bound",
            imported.node
        )?;
    }
    match &a.out {
        Some(path) => {
            crate::files::write_atomic(path, &imported.yaml)?;
            writeln!(
                err,
                "wrote the scenario of node {} to {} (add its traffic under `workloads`)",
                imported.node,
                path.display()
            )?;
        }
        None => std::io::stdout()
            .lock()
            .write_all(imported.yaml.as_bytes())
            .context("writing the scenario")?,
    }
    Ok(())
}
