//! `k8s-netsim validate [--traces DIR] [--scenarios DIR] [--write FILE] [--check]`: run
//! every validation check (replays of the real-kernel recordings, published targets),
//! print the table, optionally regenerate `docs/validation.md`.

use k8s_netsim::validate::{self, Summary};
use std::io::Write as _;
use std::path::PathBuf;

/// Arguments of `validate`.
#[derive(clap::Args, Debug)]
pub(crate) struct ValidateArgs {
    /// Directory of the oracle's recordings.
    #[arg(long, default_value = "validation/traces")]
    traces: PathBuf,
    /// Directory of the validation scenarios.
    #[arg(long, default_value = "scenarios/validation")]
    scenarios: PathBuf,
    /// Write the markdown report to this file (deterministic; `docs/validation.md`).
    #[arg(long, value_name = "FILE")]
    write: Option<PathBuf>,
    /// Exit with status 1 if any check is outside its tolerance without an explanation
    /// in the notes (with --strict: also known failures).
    #[arg(long)]
    check: bool,
    /// With --check, also fail on known (explained) failures.
    #[arg(long)]
    strict: bool,
}

/// Runs the suite.
pub(crate) fn validate(a: ValidateArgs) -> anyhow::Result<()> {
    let checks = validate::run(&a.traces, &a.scenarios).map_err(|e| crate::BadInput(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", validate::text_table(&checks))?;
    if let Some(path) = &a.write {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            anyhow::Context::with_context(std::fs::create_dir_all(dir), || {
                format!("creating {}", dir.display())
            })?;
        }
        crate::files::write_atomic(path, &validate::markdown(&checks))?;
        writeln!(out, "wrote {}", path.display())?;
    }
    let s = Summary::of(&checks);
    if a.check && (s.fail > 0 || (a.strict && s.known_failure > 0)) {
        drop(out);
        eprintln!(
            "validate --check: {} unexplained and {} known failures",
            s.fail, s.known_failure
        );
        std::process::exit(1);
    }
    Ok(())
}
