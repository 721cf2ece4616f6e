//! NAT-level replays of experiments d (A/AAAA race through a DNAT'd VIP), e (SNAT port
//! collision) and j (storm through a small SNAT range).

use super::check::{Tolerance as T, Unit as U};
use super::ct_level::{dnat_80, mean, model_range, sample_at};
use super::replay::{
    CLI, Closer, Node, RTR, SRV, Start, TcpSpec, TcpStorm, VIP, answer_returns, at, finish_begun, vip_dnat,
};
use super::trace::Experiment;
use super::{Rows, SEED, ValidateError};
use crate::conntrack::{CtStats, DstNat, NatRange, RaceKind, RaceModel, SrcNat};
use crate::kernel::{CtTimeouts, KernelProfile};
use crate::packet::{Packet, Proto, TcpFlags, Tuple};
use crate::rng::SimRng;
use crate::time::SimDuration;
use std::path::Path;

/// Seeds of the d replays (race decisions, window factor, DNAT choice).
const D_SEEDS: u64 = 40;

/// d's recorded gaps below this are pairs whose two threads both ran when the spin
/// barrier released them (the next mode of the gap distribution starts above 1 ms,
/// after a thread was descheduled).
const D_CONCURRENT_NS: u64 = 1_000_000;

/// What one seed's replay of a d recording counted.
#[derive(Debug, Clone, Copy)]
struct DReplay {
    clash_resolve: f64,
    insert_failed: f64,
    drop: f64,
    both: f64,
    count: f64,
    hidden: f64,
}

/// One seed's NAT-level replay of d/`param`. In `threads` mode each pair races as
/// [`RaceModel::MEASURED_6_18`] says, one window factor per recording, at the gap
/// between the *starts* of its sends. d stamped the *ends* (after each `send()`
/// returned), which include the variable rest of each packet's trip and do not carry
/// the start gap (k shows races at every end gap up to 60 µs); the two threads left a
/// spin barrier together, so a pair whose end gap is under [`D_CONCURRENT_NS`] (both
/// threads ran, on two CPUs) started ~0 apart, and one above it had a thread
/// descheduled in between. Sequential pairs never race (one CPU).
fn replay_d(exp: &Experiment, param: &str, gaps: &[i64], seed: u64) -> Result<DReplay, ValidateError> {
    let backends = exp.num(param, "params.backends")? as u32;
    let threads = exp.text(param, "params.mode")? == "threads";
    let rate = exp.num(param, "params.pair_rate_per_s")?;
    let steps = exp.steps(param)?;
    let mut node = Node::recorded(exp, param, KernelProfile::LINUX_6_18, seed)?;
    node.enable(0, CtTimeouts::default());
    let model = RaceModel::MEASURED_6_18;
    let mut race_rng = SimRng::stream(seed, "validate-race");
    let factor = model.same_tuple.draw_factor(&mut race_rng);
    let cpus = if threads { [0, 1] } else { [0, 0] };
    // `-m statistic --mode random --probability 0.5` per new entry.
    let mut stat = SimRng::stream(seed, "validate-statistic");
    let mut both = 0u64;
    for (k, gap) in gaps.iter().enumerate() {
        let t0 = at(steps[0].start_s + k as f64 / rate);
        let port = 32_768 + 2 * (k as u16 % 14_000);
        let tuple = Tuple::new(Proto::Udp, CLI, port, VIP, 53);
        let pkt = Packet {
            len: 60,
            ..Packet::new(tuple, TcpFlags::NONE)
        };
        let mut dnat = || vip_dnat(backends, &mut stat);
        let dt = match gap.unsigned_abs() {
            g if g < D_CONCURRENT_NS => SimDuration::ZERO,
            g => SimDuration::from_nanos(g),
        };
        let w = SimDuration::from_micros(20);
        let races = model.races(RaceKind::SameTuple, cpus, dt, factor, &mut race_rng);
        let (first, second) = if races {
            // Both allocated and NATed before either confirms (two CPUs).
            let a = node.begin(0, 0, &pkt, dnat(), t0)?;
            let b = node.begin(0, 1, &pkt, dnat(), t0 + dt)?;
            let fa = finish_begun(&mut node, a, 0, t0 + w)?;
            let fb = finish_begun(&mut node, b, 1, t0 + dt + w)?;
            (fa, fb)
        } else {
            let a = node.send(0, 0, &pkt, dnat(), t0)?;
            let b = node.send(0, 0, &pkt, dnat(), t0 + dt + w)?;
            (a, b)
        };
        // Each backend echoes from the address the datagram was DNATed to; the
        // answer must come back un-NATed to VIP:53 -> client.
        let mut answered = 0;
        for s in [first, second] {
            if answer_returns(&mut node, s, port, t0 + dt + SimDuration::from_micros(200))? {
                answered += 1;
            }
        }
        if answered == 2 {
            both += 1;
        }
    }
    let t_list = at(steps[2].start_s);
    node.advance(t_list);
    let before = node.count(0);
    let listed = node.ct.list(0, t_list).len() as f64;
    let st = node.stats(0);
    Ok(DReplay {
        clash_resolve: st.clash_resolve as f64,
        insert_failed: st.insert_failed as f64,
        drop: st.drop as f64,
        both: both as f64,
        count: before,
        hidden: before - listed,
    })
}

/// Experiment d: parallel UDP datagrams from one socket to a DNAT'd VIP.
pub(crate) fn d_udp_race(traces: &Path) -> Result<Rows, ValidateError> {
    let exp = Experiment::load(traces, "d-udp-race")?;
    let mut rows = Rows::new("d-udp-race", &exp.kernel());
    for param in ["backends2", "backends1", "backends2-seq"] {
        let gaps = exp.pair_gaps(param)?;
        let runs = (0..D_SEEDS)
            .map(|s| replay_d(&exp, param, &gaps, SEED + s))
            .collect::<Result<Vec<_>, _>>()?;
        let col = |f: fn(&DReplay) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
        let d = |k: &str| exp.num(param, &format!("derived.{k}"));
        let p = format!("d/{param}");
        let listed = d("listed_entries")?;
        let real_count = d("count_before_listing")?;
        let ranged: [(&str, &str, f64, Vec<f64>); 3] = [
            (
                "clash-resolve",
                "clash_resolve per 3,000 pairs (mean of 40 seeds)",
                d("clash_resolve")?,
                col(|r| r.clash_resolve),
            ),
            (
                "count",
                "count before `conntrack -L`",
                real_count,
                col(|r| r.count),
            ),
            (
                "hidden",
                "hidden reply-only clash entries (count - listed)",
                real_count - listed,
                col(|r| r.hidden),
            ),
        ];
        let exact: [(&str, &str, f64, Vec<f64>); 3] = [
            (
                "insert-failed",
                "insert_failed",
                d("insert_failed")?,
                col(|r| r.insert_failed),
            ),
            ("drop", "drop", d("drop")?, col(|r| r.drop)),
            (
                "answered",
                "pairs with both answers (un-NATed to VIP:53)",
                d("pairs_with_both_answers")?,
                col(|r| r.both),
            ),
        ];
        for (id, what, real, sims) in ranged {
            rows.cmp(
                &format!("{p}/{id}"),
                what,
                U::Count,
                real,
                mean(&sims),
                model_range(&sims),
            );
        }
        for (id, what, real, sims) in exact {
            rows.cmp(&format!("{p}/{id}"), what, U::Count, real, mean(&sims), T::Count);
        }
    }
    Ok(rows)
}

/// `10.10.2.1:40000` or `10.10.2.1:40000-40063` as an SNAT range.
fn snat_range(text: &str) -> Option<SrcNat> {
    let (_, ports) = text.split_once(':')?;
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
        None => {
            let p = ports.parse().ok()?;
            (p, p)
        }
    };
    Some(SrcNat::Snat(NatRange::single(RTR).with_ports(lo, hi)))
}

fn bad_param(exp: &str, what: &str) -> ValidateError {
    ValidateError::Missing {
        path: format!("validation/traces/{exp}/meta.json"),
        field: what.to_owned(),
    }
}

fn delta(a: CtStats, b: CtStats) -> [f64; 3] {
    [
        (b.found - a.found) as f64,
        (b.insert_failed - a.insert_failed) as f64,
        (b.drop - a.drop) as f64,
    ]
}

/// Seeds per stochastic replay (ISNs decide TIME_WAIT eviction; random port offsets).
const E_SEEDS: u64 = 200;

/// Experiment e: SNAT port collision.
// Long on purpose: per recorded parameter, the replay over E_SEEDS seeds and then one
// `add` per compared counter of each step, in the order the report lists them; the
// closures share the recorded steps and the per-seed columns.
#[allow(clippy::too_many_lines)]
pub(crate) fn e_snat_collision(traces: &Path) -> Result<Rows, ValidateError> {
    let exp = Experiment::load(traces, "e-snat-collision")?;
    let mut rows = Rows::new("e-snat-collision", &exp.kernel());
    for param in ["ports1", "ports2", "ports200-hold195"] {
        let snat = snat_range(&exp.text(param, "params.snat_to_source")?)
            .ok_or_else(|| bad_param("e-snat-collision", "params.snat_to_source"))?;
        let timeout = SimDuration::from_nanos((exp.num(param, "params.connect_timeout_s")? * 1e9) as u64);
        let steps = exp.steps(param)?;
        let log = exp.conns(param)?;
        let step_of = |name: &str| steps.iter().position(|s| s.name.starts_with(name));
        let try8 = step_of("Try(8)");
        // The tool numbers its load/hold/release/try steps from 1 (sleeps not counted).
        let driver_steps: Vec<usize> = steps
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                ["Load", "Hold", "Release", "Try"]
                    .iter()
                    .any(|k| s.name.starts_with(k))
            })
            .map(|(i, _)| i)
            .collect();
        let step_index = |n: u32| {
            driver_steps
                .get((n as usize).saturating_sub(1))
                .copied()
                .unwrap_or(usize::MAX)
        };
        let mut specs = Vec::new();
        for (i, c) in log.iter().enumerate() {
            let si = step_index(c.step);
            let name = steps.get(si).map_or("", |s| s.name.as_str());
            let port = c.local_port.unwrap_or(61_000 + i as u16);
            // `try:N` connects one after the other: the first at the step's start,
            // each next one when the previous ended in the model.
            let in_try8 = Some(si) == try8;
            let first_of_step = i == 0 || log[i - 1].step != c.step;
            let start = match (in_try8, first_of_step) {
                (true, true) => Start::At(at(steps[si].start_s)),
                (true, false) => Start::AfterPrevious,
                _ => Start::At(at(c.start_s)),
            };
            specs.push(TcpSpec {
                start,
                port,
                timeout,
                hold: name.starts_with("Hold"),
            });
        }
        let release = step_of("Release").map(|i| at(steps[i].start_s));
        let mut per_seed: Vec<Vec<f64>> = Vec::new();
        for s in 0..E_SEEDS {
            let mut node = Node::recorded(&exp, param, KernelProfile::LINUX_6_18, SEED + s)?;
            node.enable(0, CtTimeouts::default());
            let mut storm = TcpStorm::new(
                (SRV, 7070),
                Some((DstNat::Null, snat)),
                Closer::Client,
                specs.clone(),
            );
            storm.releases.extend(release);
            storm.sample_times = steps.iter().map(|s| s.start_s).collect();
            storm.sample_times.push(steps[steps.len() - 1].end_s + 30.0);
            let run = storm.run(&mut node, 0, SEED + s)?;
            let st = |i: usize| sample_at(&run, storm.sample_times[i]).stats;
            let ok_in = |step: usize| -> f64 {
                log.iter()
                    .zip(&run.results)
                    .filter(|(c, r)| step_index(c.step) == step && r.ok)
                    .count() as f64
            };
            let mut v = vec![ok_in(0)];
            v.extend(delta(st(0), st(1)));
            if let Some(t1) = step_of("Try(1)") {
                v.push(ok_in(t1));
                v.extend(delta(st(t1), st(t1 + 1)));
            }
            if let Some(t8) = try8 {
                v.push(ok_in(t8));
                v.extend(delta(st(t8), st(storm.sample_times.len() - 1)));
            }
            per_seed.push(v);
        }
        let col = |i: usize| -> Vec<f64> {
            per_seed
                .iter()
                .map(|v| v.get(i).copied().unwrap_or(f64::NAN))
                .collect()
        };
        let step_real = |step: &str, k: &str| -> Result<f64, ValidateError> {
            for i in 0..8 {
                if exp
                    .text(param, &format!("derived.per_step.{i}.step"))
                    .ok()
                    .as_deref()
                    == Some(step)
                {
                    return exp.num(param, &format!("derived.per_step.{i}.{k}"));
                }
            }
            Err(bad_param(
                "e-snat-collision",
                &format!("derived.per_step[{step}].{k}"),
            ))
        };
        let p = format!("e/{param}");
        let hold_name = steps[0].name.clone();
        let add = |rows: &mut Rows, id: &str, q: &str, real: f64, v: &[f64]| {
            rows.cmp(&format!("{p}/{id}"), q, U::Count, real, mean(v), model_range(v));
        };
        add(
            &mut rows,
            "hold-ok",
            &format!("{hold_name}: connections ok (mean of {E_SEEDS} seeds)"),
            step_real(&hold_name, "ok")?,
            &col(0),
        );
        add(
            &mut rows,
            "hold-found",
            &format!("{hold_name}: found (taken probes of the port search)"),
            step_real(&hold_name, "found")?,
            &col(1),
        );
        add(
            &mut rows,
            "hold-insert-failed",
            &format!("{hold_name}: insert_failed"),
            step_real(&hold_name, "insert_failed")?,
            &col(2),
        );
        let mut i = 4;
        if step_of("Try(1)").is_some() {
            add(
                &mut rows,
                "try1-ok",
                "one more while the ports are held: ok",
                step_real("Try(1)", "ok")?,
                &col(i),
            );
            add(
                &mut rows,
                "try1-found",
                "one more while held: found",
                step_real("Try(1)", "found")?,
                &col(i + 1),
            );
            add(
                &mut rows,
                "try1-insert-failed",
                "one more while held: insert_failed (one per SYN)",
                step_real("Try(1)", "insert_failed")?,
                &col(i + 2),
            );
            add(
                &mut rows,
                "try1-drop",
                "one more while held: drop",
                step_real("Try(1)", "drop")?,
                &col(i + 3),
            );
            i += 4;
        }
        if try8.is_some() {
            add(
                &mut rows,
                "try8-ok",
                "8 tries after release (holders in TIME_WAIT): ok",
                step_real("Try(8)", "ok")?,
                &col(i),
            );
            add(
                &mut rows,
                "try8-found",
                "8 tries after release: found",
                step_real("Try(8)", "found")?,
                &col(i + 1),
            );
            add(
                &mut rows,
                "try8-insert-failed",
                "8 tries after release: insert_failed",
                step_real("Try(8)", "insert_failed")?,
                &col(i + 2),
            );
        }
    }
    Ok(rows)
}

/// Experiment j: a storm through a small SNAT range (client closes first).
pub(crate) fn j_storm_snat(traces: &Path) -> Result<Rows, ValidateError> {
    let exp = Experiment::load(traces, "j-storm-snat")?;
    let mut rows = Rows::new("j-storm-snat", &exp.kernel());
    for param in ["ports64-r20", "ports16-r10"] {
        let snat = snat_range(&exp.text(param, "params.snat_to_source")?)
            .ok_or_else(|| bad_param("j-storm-snat", "params.snat_to_source"))?;
        let timeout = SimDuration::from_nanos((exp.num(param, "params.connect_timeout_s")? * 1e9) as u64);
        let specs = super::ct_level::specs_from_log(&exp, param, timeout)?;
        let steps = exp.steps(param)?;
        let seeds = 20u64;
        let (mut ok, mut found, mut inf, mut drop, mut count) = (vec![], vec![], vec![], vec![], vec![]);
        for s in 0..seeds {
            let mut node = Node::recorded(&exp, param, KernelProfile::LINUX_6_18, SEED + s)?;
            node.enable(0, CtTimeouts::default());
            let mut storm = TcpStorm::new((VIP, 80), Some((dnat_80(), snat)), Closer::Client, specs.clone());
            storm.sample_times = vec![steps[steps.len() - 1].end_s];
            let run = storm.run(&mut node, 0, SEED + s)?;
            let end = sample_at(&run, steps[steps.len() - 1].end_s);
            ok.push(run.results.iter().filter(|r| r.ok).count() as f64);
            found.push(end.stats.found as f64);
            inf.push(end.stats.insert_failed as f64);
            drop.push(end.stats.drop as f64);
            count.push(end.count);
        }
        let d = |k: &str| exp.num(param, &format!("derived.{k}"));
        let p = format!("j/{param}");
        rows.cmp(
            &format!("{p}/ok"),
            "connections ok (mean of 20 seeds)",
            U::Count,
            d("ok")?,
            mean(&ok),
            model_range(&ok),
        );
        rows.cmp(
            &format!("{p}/found"),
            "found (taken probes of the port searches)",
            U::Count,
            d("found")?,
            mean(&found),
            model_range(&found),
        );
        rows.cmp(
            &format!("{p}/insert-failed"),
            "insert_failed",
            U::Count,
            d("insert_failed")?,
            mean(&inf),
            model_range(&inf),
        );
        rows.cmp(
            &format!("{p}/drop"),
            "drop",
            U::Count,
            d("drop")?,
            mean(&drop),
            model_range(&drop),
        );
        rows.cmp(
            &format!("{p}/count-end"),
            "count at the end (one entry per SNAT port)",
            U::Count,
            d("count_end")?,
            mean(&count),
            T::Count,
        );
    }
    Ok(rows)
}
