//! `--max-memory`, `--max-events`, `--max-rows`: the limits a run must fit in, checked
//! against the library's estimate (`scenario::budget`) before anything is built.

use std::path::Path;

use k8s_netsim::scenario::budget::{Estimate, Limits};
use k8s_netsim::scenario::{ByteSize, Scenario};

use crate::BadInput;

/// The limit flags every command that runs simulations takes.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct LimitArgs {
    /// Refuse runs whose estimated memory is above this (`8Gi`, `512Mi`); default: half
    /// of the machine's memory (or of the cgroup's limit when lower).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_memory: Option<ByteSize>,
    /// Refuse runs estimated at more engine events than this (default 10000000000, a
    /// few hours of computing).
    #[arg(long, value_name = "N")]
    max_events: Option<u64>,
    /// Refuse runs with more time-series rows (duration / sampleInterval) than this
    /// (default 10000000).
    #[arg(long, value_name = "N")]
    max_rows: Option<u64>,
}

fn parse_size(s: &str) -> Result<ByteSize, String> {
    ByteSize::parse(s)
}

impl LimitArgs {
    /// The limits in force.
    pub(crate) fn limits(&self) -> Limits {
        let d = Limits::default();
        Limits {
            max_memory: self.max_memory.map_or_else(
                || machine_memory().map_or(d.max_memory, |m| m / 2),
                ByteSize::as_bytes,
            ),
            max_events: self.max_events.unwrap_or(d.max_events),
            max_rows: self.max_rows.unwrap_or(d.max_rows),
        }
    }

    /// Refuses `scenario` (exit 2, naming the fields and the estimate) when `parallel`
    /// runs of it would not fit the limits.
    pub(crate) fn check(
        &self,
        file: &Path,
        scenario: &Scenario,
        parallel: usize,
    ) -> anyhow::Result<Estimate> {
        let e = Estimate::of(scenario);
        e.check(scenario, &self.limits(), parallel as u64)
            .map_err(|err| BadInput(format!("{}: {err}", file.display())))?;
        Ok(e)
    }
}

/// The memory this process may use: the machine's (`MemTotal` of `/proc/meminfo`), or
/// the cgroup v2 limit when lower; `None` when neither can be read.
fn machine_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|kb| kb.saturating_mul(1024))
    });
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}
