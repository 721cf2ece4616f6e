//! Experiment i (a short-connection storm into a 1,000-entry table) at two levels: the
//! recorded connections replayed through the conntrack table, and the same storm as a
//! scenario run by [`sim::run`](crate::sim::run) (`scenarios/validation/i-storm-*.yaml`).

use super::check::{Tolerance as T, Unit as U};
use super::ct_level::{dnat_80, over_time, sample_at, specs_from_log};
use super::replay::{Closer, Node, TcpStorm, VIP};
use super::trace::Experiment;
use super::{Rows, SEED, ValidateError};
use crate::conntrack::SrcNat;
use crate::kernel::{CtTimeouts, KernelProfile};
use crate::scenario::Scenario;
use crate::time::SimDuration;
use std::path::Path;

/// Loads and runs a validation scenario.
pub(crate) fn run_scenario(dir: &Path, file: &str) -> Result<crate::sim::Outcome, ValidateError> {
    let path = dir.join(file);
    let bad = |what: String| ValidateError::Scenario {
        file: path.display().to_string(),
        what,
    };
    let sc = Scenario::load(&path, &[]).map_err(|e| bad(e.to_string()))?;
    crate::sim::run(&sc, &mut |_, _| {}).map_err(|e| bad(e.to_string()))
}

/// Experiment i, both levels.
// Long on purpose: one recorded experiment at both levels, row by row in the
// recording's order.
pub(crate) fn i_storm_tw(traces: &Path, scenarios: &Path) -> Result<Rows, ValidateError> {
    let exp = Experiment::load(traces, "i-storm-tw")?;
    let mut rows = Rows::new("i-storm-tw", &exp.kernel());
    for param in ["r100", "r200"] {
        let max = exp.num(param, "nf_conntrack_max")?;
        let mut node = Node::recorded(&exp, param, KernelProfile::LINUX_6_18, SEED)?;
        node.enable(0, CtTimeouts::default());
        let timeout = SimDuration::from_nanos((exp.num(param, "params.connect_timeout_s")? * 1e9) as u64);
        let specs = specs_from_log(&exp, param, timeout)?;
        let series = exp.series(param)?;
        let steps = exp.steps(param)?;
        let end_t = steps[steps.len() - 1].end_s;
        let mut storm = TcpStorm::new((VIP, 80), Some((dnat_80(), SrcNat::Null)), Closer::Server, specs);
        storm.sample_times = series.iter().map(|r| r.t_s).collect();
        storm.sample_times.push(end_t);
        storm.sample_times.sort_by(f64::total_cmp);
        let run = storm.run(&mut node, 0, SEED)?;
        let end = sample_at(&run, end_t);
        let d = |k: &str| exp.num(param, &format!("derived.{k}"));
        let p = format!("i/{param}");
        let ok = run.results.iter().filter(|r| r.ok).count() as f64;
        let n = run.results.len() as f64;
        rows.cmp(
            &format!("{p}/replay-ok"),
            "connections ok (recorded ports replayed)",
            U::Count,
            d("ok")?,
            ok,
            T::Count,
        );
        rows.cmp(
            &format!("{p}/replay-fail"),
            "connections failed",
            U::Count,
            d("fail")?,
            n - ok,
            T::Count,
        );
        rows.cmp(
            &format!("{p}/replay-drop"),
            "drop (one per dropped SYN, up to 3 per failure)",
            U::Count,
            d("drop")?,
            end.stats.drop as f64,
            T::Count,
        );
        rows.cmp(
            &format!("{p}/replay-early-drop"),
            "early_drop",
            U::Count,
            d("early_drop")?,
            end.stats.early_drop as f64,
            T::Count,
        );
        rows.cmp(
            &format!("{p}/replay-insert-failed"),
            "insert_failed",
            U::Count,
            d("insert_failed")?,
            end.stats.insert_failed as f64,
            T::Count,
        );
        over_time(
            &mut rows,
            &format!("{p}/replay-drop-over-time"),
            "samples whose drop agrees (±5 %, ±2 under 40)",
            &series,
            &run,
            |r| r.drop,
            |s| s.stats.drop as f64,
        );
        over_time(
            &mut rows,
            &format!("{p}/replay-ok-over-time"),
            "samples whose client ok count agrees",
            &series,
            &run,
            |r| r.ok,
            |s| s.ok as f64,
        );
        over_time(
            &mut rows,
            &format!("{p}/replay-fail-over-time"),
            "samples whose client fail count agrees",
            &series,
            &run,
            |r| r.fail,
            |s| s.fail as f64,
        );
        let sim_onset = run
            .samples
            .iter()
            .find(|s| s.stats.drop > 0)
            .map_or(f64::NAN, |s| s.t);
        rows.cmp(
            &format!("{p}/replay-drop-onset"),
            "first sample with drop > 0",
            U::Seconds,
            exp.num(param, "extra.first_sample_with_drop_s")?,
            sim_onset,
            T::Onset,
        );
        rows.cmp(
            &format!("{p}/replay-count-end"),
            "count at the end (max, or down to the 95 % trim level after a gc pass)",
            U::Count,
            d("count_end")?,
            end.count,
            T::Within {
                lo: (max * 0.95).floor() - 1.0,
                hi: max,
            },
        );

        // The same storm as a scenario (Poisson arrivals, the simulator's own client
        // ports): counts are per connection started, scaled to the recorded number.
        let out = run_scenario(scenarios, &format!("i-storm-{param}.yaml"))?;
        let rep = &out.report;
        let sent = rep.requests.sent.max(1) as f64;
        let real_n = d("ok")? + d("fail")?;
        let scale = real_n / sent;
        let node_a = rep.nodes.first();
        let drop = node_a.map_or(0, |n| n.conntrack.stats.drop) as f64;
        rows.cmp(
            &format!("{p}/scenario-ok"),
            "sim::run: connections ok (per recorded count started)",
            U::Count,
            d("ok")?,
            rep.requests.ok as f64 * scale,
            T::Count,
        );
        rows.cmp(
            &format!("{p}/scenario-fail"),
            "sim::run: connections failed (scaled)",
            U::Count,
            d("fail")?,
            rep.requests.failed as f64 * scale,
            T::Count,
        );
        rows.cmp(
            &format!("{p}/scenario-drop"),
            "sim::run: drop on the client node (scaled)",
            U::Count,
            d("drop")?,
            drop * scale,
            T::Count,
        );
        let onset = out
            .timeseries
            .samples
            .iter()
            .find(|s| s.counters.first().is_some_and(|c| c.drop > 0))
            .map_or(f64::NAN, |s| s.t_s);
        rows.cmp(
            &format!("{p}/scenario-drop-onset"),
            "sim::run: first 250 ms sample with drop > 0",
            U::Seconds,
            exp.num(param, "extra.first_sample_with_drop_s")?,
            onset,
            T::Onset,
        );
        let count_end = node_a.map_or(0, |n| n.conntrack.count_end) as f64;
        rows.cmp(
            &format!("{p}/scenario-count-end"),
            "sim::run: count at the end",
            U::Count,
            d("count_end")?,
            count_end,
            T::Within {
                lo: (max * 0.95).floor() - 1.0,
                hi: max,
            },
        );
    }
    Ok(rows)
}
