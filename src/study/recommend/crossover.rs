//! The kube-proxy mode crossover: runs per mode and number of background Services, and
//! the smallest count at which another mode costs less CPU than iptables.

use std::fmt::Write as _;
use std::num::NonZeroUsize;

use serde::Serialize;

use super::{RecommendError, RunLength, check_limits, derive};
use crate::scenario::Scenario;
use crate::scenario::budget::Limits;
use crate::sim::SimError;
use crate::study::horizon::Horizon;
use crate::study::runner::run_jobs;

/// One cell of the proxy-mode crossover.
#[derive(Clone, Debug, Serialize)]
pub struct ModeCell {
    /// kube-proxy mode.
    pub mode: String,
    /// Number of background Services.
    pub services: u64,
    /// Packet-processing busy time, core-seconds summed over nodes; `None` when this
    /// build does not simulate the mode.
    pub busy_core_s: Option<f64>,
    /// Mean rules evaluated per new connection on the client node.
    pub rules_per_new_connection: Option<f64>,
    /// p99 latency, ms.
    pub p99_ms: Option<f64>,
    /// Why it was not simulated.
    pub not_simulated: Option<String>,
}

/// The proxy modes compared against iptables at each number of Services, and the
/// smallest count at which each costs less CPU than iptables.
#[derive(Clone, Debug, Serialize)]
pub struct Crossover {
    /// Every run.
    pub cells: Vec<ModeCell>,
    /// `(mode, smallest Service count where it beats iptables)`, `None` when it never
    /// does in the range or was not simulated.
    pub crossover: Vec<(String, Option<u64>)>,
    /// How long each run lasted, and why.
    pub runs: RunLength,
}

/// Seconds of load at its final rate the CPU cost per connection is measured over.
pub const CPU_SETTLE_S: f64 = 10.0;

impl Crossover {
    /// Text table.
    #[must_use]
    pub fn render_text(&self) -> String {
        let mut s =
            String::from("proxy mode crossover (CPU busy core-seconds, rules per new connection, p99):\n");
        let _ = writeln!(s, "  runs: {}", self.runs.render());
        for c in &self.cells {
            match (c.busy_core_s, &c.not_simulated) {
                (Some(b), _) => {
                    let _ = writeln!(
                        s,
                        "  {:9} {:>6} Services: {b:.3} core-s, {:.0} rules/conn, p99 {:.1} ms",
                        c.mode,
                        c.services,
                        c.rules_per_new_connection.unwrap_or(0.0),
                        c.p99_ms.unwrap_or(0.0)
                    );
                }
                (None, reason) => {
                    let _ = writeln!(
                        s,
                        "  {:9} {:>6} Services: not simulated on this build ({})",
                        c.mode,
                        c.services,
                        reason.as_deref().unwrap_or("")
                    );
                }
            }
        }
        for (mode, at) in &self.crossover {
            let _ = writeln!(
                s,
                "  {mode}: {}",
                at.map_or_else(
                    || "never cheaper than iptables in this range (or not simulated)".to_owned(),
                    |n| format!("cheaper than iptables from {n} Services")
                )
            );
        }
        s
    }
}

/// Runs `modes` (plus `iptables`) at each Service count and finds where each mode's CPU
/// cost drops below iptables'. Modes this build does not simulate are reported as such.
///
/// # Errors
/// [`RecommendError`] for runs that fail other than with [`SimError::Unsupported`].
pub fn proxy_mode_crossover(
    base: &Scenario,
    modes: &[&str],
    service_counts: &[u64],
    threads: NonZeroUsize,
    limits: &Limits,
) -> Result<Crossover, RecommendError> {
    let mut all: Vec<&str> = vec!["iptables"];
    all.extend(modes.iter().filter(|m| **m != "iptables"));
    // The question is the CPU a new connection costs: it needs the load at its final rate
    // for CPU_SETTLE_S, not the table's steady state.
    let settled = Horizon::of(base).load_settled_s;
    let needed = (settled + CPU_SETTLE_S).ceil();
    let scenario_s = base.duration.as_secs_f64();
    let duration_s = scenario_s.max(needed);
    let runs = RunLength {
        duration_s,
        lengthened_from_s: (duration_s > scenario_s).then_some(scenario_s),
        reason: format!(
            "the CPU cost per new connection needs {CPU_SETTLE_S:.0} s of load at its final rate (from {settled:.0} s)"
        ),
    };
    let mut jobs = Vec::new();
    for &m in &all {
        for &n in service_counts {
            let mut set = vec![
                format!("kubeProxy.mode={m}"),
                format!("backgroundServices.count={n}"),
            ];
            if runs.lengthened_from_s.is_some() {
                set.push(format!("duration={needed:.0}s"));
            }
            jobs.push(derive(base, &format!("{m} with {n} Services"), &set)?);
        }
    }
    let workers = check_limits(&jobs, threads, limits)?;
    let outs = run_jobs(&jobs, workers, &|_, _| {});
    let mut cells = Vec::new();
    for ((job, out), (m, n)) in jobs.iter().zip(outs).zip(
        all.iter()
            .flat_map(|m| service_counts.iter().map(move |n| (*m, *n))),
    ) {
        cells.push(match out {
            Ok(o) => ModeCell {
                mode: m.to_owned(),
                services: n,
                busy_core_s: Some(o.report.nodes.iter().map(|x| x.cpu.busy_core_s).sum()),
                rules_per_new_connection: o.report.nodes.first().map(|x| x.rules.mean_per_new_connection),
                p99_ms: Some(o.report.latency_ms.p99),
                not_simulated: None,
            },
            Err(SimError::Unsupported { what }) => ModeCell {
                mode: m.to_owned(),
                services: n,
                busy_core_s: None,
                rules_per_new_connection: None,
                p99_ms: None,
                not_simulated: Some(what),
            },
            Err(source) => {
                return Err(RecommendError::Sim {
                    what: job.label.clone(),
                    source,
                });
            }
        });
    }
    let busy = |m: &str, n: u64| {
        cells
            .iter()
            .find(|c| c.mode == m && c.services == n)
            .and_then(|c| c.busy_core_s)
    };
    let crossover = all
        .iter()
        .skip(1)
        .map(|&m| {
            let at = service_counts
                .iter()
                .copied()
                .find(|&n| matches!((busy(m, n), busy("iptables", n)), (Some(a), Some(b)) if a < b));
            (m.to_owned(), at)
        })
        .collect();
    Ok(Crossover {
        cells,
        crossover,
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::recommend::tests::small;

    #[test]
    fn unsupported_proxy_modes_are_reported_not_failed() {
        let c =
            proxy_mode_crossover(&small(), &["ipvs"], &[10], NonZeroUsize::MIN, &Limits::default()).unwrap();
        assert_eq!(c.cells.len(), 2);
        assert!(c.cells[0].busy_core_s.is_some(), "iptables runs");
        let text = c.render_text();
        assert!(text.contains("iptables"), "{text}");
    }
}
