//! Replays of the pair-by-pair race recordings: k (UDP A/AAAA pairs to a DNAT'd VIP
//! from five thread placements) and l (two SYNs MASQUERADEd to one reply tuple).
//!
//! Which pairs race comes from [`RaceModel::MEASURED_6_18`] at each pair's recorded
//! gap and CPUs (one window factor drawn per recording, as the fit assumes); what a
//! race does comes from the conntrack table, driven through `nso-rtr`'s hooks in the
//! racing order (both allocated and NATed before either confirms) or one after the
//! other. The 5.4 rows replay the same pairs on the 5.4 profile, against what 5.4
//! would have counted in the recording (a race whose two datagrams reached different
//! backends: `insert_failed` + `drop`, the loser lost).

use super::check::{Tolerance as T, Unit as U};
use super::ct_level::{mean, model_range};
use super::replay::{CLI, Node, RTR, SRV, VIP, answer_returns, at, finish_begun, vip_dnat};
use super::trace::{Experiment, RacePairRow};
use super::{Rows, SEED, ValidateError};
use crate::conntrack::{DstNat, RaceKind, RaceModel, SrcNat, WindowFactor};
use crate::kernel::{CtTimeouts, KernelProfile};
use crate::packet::{Packet, Proto, TcpFlags, Tuple};
use crate::rng::SimRng;
use crate::time::SimDuration;
use std::net::Ipv4Addr;
use std::path::Path;

/// The k recordings, in table order.
const K_PARAMS: [&str; 12] = [
    "different-b1",
    "different-b2",
    "different-b1-r2",
    "different-b2-r2",
    "scheduler-b1",
    "scheduler-b2",
    "same-b1",
    "same-b2",
    "one-thread-b1",
    "one-thread-b2",
    "sendmmsg-b1",
    "sendmmsg-b2",
];

/// Draws of the race decisions (factor per draw, Bernoulli per pair) per row.
const DRAWS: u64 = 400;
/// Seeds of the conntrack-level replays (DNAT choice, race decisions).
const SEEDS: u64 = 40;

/// The second client address of l (`nso-cli` holds both).
const CLI2: Ipv4Addr = Ipv4Addr::new(10, 10, 1, 3);

fn gap_of(r: &RacePairRow) -> SimDuration {
    SimDuration::from_nanos(r.gap_ns.map_or(0, i64::unsigned_abs))
}

fn cpus_of(r: &RacePairRow) -> [u16; 2] {
    [r.cpu[0].unwrap_or(0), r.cpu[1].unwrap_or(0)]
}

/// Per pair: does it race, in one draw (factor `f`)?
fn decide(
    model: &RaceModel,
    kind: RaceKind,
    pairs: &[RacePairRow],
    f: WindowFactor,
    rng: &mut SimRng,
) -> Vec<bool> {
    pairs
        .iter()
        .map(|r| model.races(kind, cpus_of(r), gap_of(r), f, rng))
        .collect()
}

/// The model's distribution of raced pairs among `select`ed pairs over [`DRAWS`].
fn raced_draws(
    model: &RaceModel,
    kind: RaceKind,
    pairs: &[RacePairRow],
    select: &dyn Fn(&RacePairRow) -> bool,
    stream: &str,
) -> Vec<f64> {
    let mut rng = SimRng::stream(SEED, stream);
    let curve = model.curve(kind);
    (0..DRAWS)
        .map(|_| {
            let f = curve.draw_factor(&mut rng);
            pairs
                .iter()
                .filter(|r| select(r))
                .filter(|r| model.races(kind, cpus_of(r), gap_of(r), f, &mut rng))
                .count() as f64
        })
        .collect()
}

/// Counters of one conntrack-level replay of a k recording.
#[derive(Debug, Default, Clone, Copy)]
struct UdpReplay {
    clash_resolve: f64,
    insert_failed: f64,
    drop: f64,
    answered: f64,
}

/// One seed's conntrack-level replay of k/`param` on `profile`.
fn replay_udp(
    exp: &Experiment,
    param: &str,
    pairs: &[RacePairRow],
    profile: KernelProfile,
    seed: u64,
) -> Result<UdpReplay, ValidateError> {
    let model = RaceModel::MEASURED_6_18;
    let backends = exp.num(param, "params.backends")? as u32;
    let rate = exp.num(param, "params.pair_rate_per_s")?;
    let mut node = Node::recorded(exp, param, profile, seed)?;
    node.enable(0, CtTimeouts::default());
    let mut rng = SimRng::stream(seed, "validate-race");
    let f = model.same_tuple.draw_factor(&mut rng);
    let races = decide(&model, RaceKind::SameTuple, pairs, f, &mut rng);
    let mut stat = SimRng::stream(seed, "validate-statistic");
    let mut answered = 0u64;
    for (k, (r, race)) in pairs.iter().zip(races).enumerate() {
        let t0 = at(0.1 + k as f64 / rate);
        let port = 32_768 + (k % 28_000) as u16;
        let pkt = Packet {
            len: 60,
            ..Packet::new(Tuple::new(Proto::Udp, CLI, port, VIP, 53), TcpFlags::NONE)
        };
        let mut dnat = || vip_dnat(backends, &mut stat);
        let dt = gap_of(r);
        let window = SimDuration::from_micros(20);
        let cpus = cpus_of(r);
        let sent = if race {
            let a = node.begin(0, cpus[0], &pkt, dnat(), t0)?;
            let b = node.begin(0, cpus[1], &pkt, dnat(), t0 + dt)?;
            let fa = finish_begun(&mut node, a, cpus[0], t0 + window)?;
            let fb = finish_begun(&mut node, b, cpus[1], t0 + dt + window)?;
            [fa, fb]
        } else {
            [
                node.send(0, cpus[0], &pkt, dnat(), t0)?,
                node.send(0, cpus[1], &pkt, dnat(), t0 + dt + window)?,
            ]
        };
        let mut both = 0;
        for s in sent {
            if answer_returns(&mut node, s, port, t0 + dt + SimDuration::from_micros(200))? {
                both += 1;
            }
        }
        if both == 2 {
            answered += 1;
        }
    }
    let st = node.stats(0);
    Ok(UdpReplay {
        clash_resolve: st.clash_resolve as f64,
        insert_failed: st.insert_failed as f64,
        drop: st.drop as f64,
        answered: answered as f64,
    })
}

/// Experiment k: the A/AAAA race pair by pair.
pub(crate) fn k_race_gap(traces: &Path) -> Result<Rows, ValidateError> {
    let exp = Experiment::load(traces, "k-race-gap")?;
    let mut rows = Rows::new("k-race-gap", &exp.kernel());
    let model = RaceModel::MEASURED_6_18;
    for param in K_PARAMS {
        let pairs = exp.race_pairs(param)?;
        let p = format!("k/{param}");
        let real_raced = pairs.iter().filter(|r| r.raced()).count() as f64;
        let draws = raced_draws(
            &model,
            RaceKind::SameTuple,
            &pairs,
            &|_| true,
            &format!("k/{param}"),
        );
        rows.cmp(
            &format!("{p}/raced"),
            "pairs that raced (clash counter moved), of the pairs sent",
            U::Count,
            real_raced,
            mean(&draws),
            model_range(&draws),
        );
        if pairs.iter().any(|r| r.gap_ns.is_some() && r.different_cpus()) {
            per_gap_rows(&mut rows, &model, &p, &pairs, RaceKind::SameTuple);
        }
        let mut six = Vec::new();
        let mut five = Vec::new();
        for s in 0..SEEDS {
            six.push(replay_udp(
                &exp,
                param,
                &pairs,
                KernelProfile::LINUX_6_18,
                SEED + s,
            )?);
            five.push(replay_udp(
                &exp,
                param,
                &pairs,
                KernelProfile::LINUX_5_4,
                SEED + s,
            )?);
        }
        let col = |v: &[UdpReplay], f: fn(&UdpReplay) -> f64| v.iter().map(f).collect::<Vec<f64>>();
        let real = |f: fn(&RacePairRow) -> u64| pairs.iter().map(f).sum::<u64>() as f64;
        let cr = col(&six, |r| r.clash_resolve);
        rows.cmp(
            &format!("{p}/clash-resolve"),
            "clash_resolve (6.18: every race resolved)",
            U::Count,
            real(|r| r.clash_resolve),
            mean(&cr),
            model_range(&cr),
        );
        let inf6 = col(&six, |r| r.insert_failed + r.drop);
        rows.cmp(
            &format!("{p}/insert-failed-drop"),
            "insert_failed + drop (6.18: none)",
            U::Count,
            real(|r| r.insert_failed + r.drop),
            mean(&inf6),
            model_range(&inf6),
        );
        let ans = col(&six, |r| r.answered);
        let real_answered = pairs
            .iter()
            .filter(|r| r.answer.iter().all(Option::is_some))
            .count() as f64;
        rows.cmp(
            &format!("{p}/answered"),
            "pairs with both answers (un-NATed to VIP:53)",
            U::Count,
            real_answered,
            mean(&ans),
            T::Count,
        );
        // What 5.4 would have counted (`__nf_conntrack_confirm` before clash_resolve
        // existed): insert_failed for every clash, resolved or not; drop for the
        // clashes it cannot resolve, the datagrams DNATed to different backends.
        let inf5 = col(&five, |r| r.insert_failed);
        rows.cmp(
            &format!("{p}/insert-failed-5.4"),
            "insert_failed on 5.4 (every raced pair of the recording)",
            U::Count,
            real_raced,
            mean(&inf5),
            model_range(&inf5),
        );
        let real54 = pairs
            .iter()
            .filter(|r| r.raced() && matches!(r.answer, [Some(a), Some(b)] if a != b))
            .count() as f64;
        let drop5 = col(&five, |r| r.drop);
        rows.cmp(
            &format!("{p}/drop-5.4"),
            "drop on 5.4 (raced pairs answered by different backends in the recording)",
            U::Count,
            real54,
            mean(&drop5),
            model_range(&drop5),
        );
    }
    Ok(rows)
}

/// One row per gap target: raced pairs among those on different CPUs.
fn per_gap_rows(rows: &mut Rows, model: &RaceModel, p: &str, pairs: &[RacePairRow], kind: RaceKind) {
    let mut targets: Vec<u64> = pairs.iter().map(|r| r.gap_target_ns).collect();
    targets.sort_unstable();
    targets.dedup();
    for t in targets {
        let sel = |r: &RacePairRow| r.gap_target_ns == t && r.different_cpus();
        let n = pairs.iter().filter(|r| sel(r)).count();
        let mut gaps: Vec<i64> = pairs.iter().filter(|r| sel(r)).filter_map(|r| r.gap_ns).collect();
        gaps.sort_unstable();
        let median = gaps.get(gaps.len() / 2).copied().unwrap_or(0);
        let real = pairs.iter().filter(|r| sel(r) && r.raced()).count() as f64;
        let draws = raced_draws(model, kind, pairs, &sel, &format!("{p}/{t}"));
        rows.cmp(
            &format!("{p}/gap{}us", t / 1000),
            &format!(
                "raced of {n} pairs on two CPUs, target gap {} µs (median achieved {:.1} µs)",
                t / 1000,
                median as f64 / 1000.0
            ),
            U::Count,
            real,
            mean(&draws),
            model_range(&draws),
        );
    }
}

/// One seed's conntrack-level replay of l/`param`: (insert_failed, drop).
fn replay_syn(
    exp: &Experiment,
    param: &str,
    pairs: &[RacePairRow],
    seed: u64,
) -> Result<(f64, f64), ValidateError> {
    let model = RaceModel::MEASURED_6_18;
    let rate = exp.num(param, "params.pair_rate_per_s")?;
    let base = exp.num(param, "params.sport_base")? as u16;
    let mut node = Node::recorded(exp, param, KernelProfile::LINUX_6_18, seed)?;
    node.enable(0, CtTimeouts::default());
    let mut rng = SimRng::stream(seed, "validate-race");
    let f = model.snat_reply.draw_factor(&mut rng);
    let races = decide(&model, RaceKind::SnatReply, pairs, f, &mut rng);
    let masq = SrcNat::Masquerade {
        addr: RTR,
        ports: None,
        random: false,
        random_fully: false,
    };
    let nat = Some((DstNat::Null, masq));
    for (k, (r, race)) in pairs.iter().zip(races).enumerate() {
        let t0 = at(0.1 + k as f64 / rate);
        let port = base.wrapping_add(k as u16);
        let syn = |src| Packet::new(Tuple::new(Proto::Tcp, src, port, SRV, 7070), TcpFlags::SYN);
        let (a, b) = (syn(CLI), syn(CLI2));
        let dt = gap_of(r);
        let cpus = cpus_of(r);
        let window = SimDuration::from_micros(20);
        if race {
            let x = node.begin(0, cpus[0], &a, nat, t0)?;
            let y = node.begin(0, cpus[1], &b, nat, t0 + dt)?;
            finish_begun(&mut node, x, cpus[0], t0 + window)?;
            finish_begun(&mut node, y, cpus[1], t0 + dt + window)?;
        } else {
            node.send(0, cpus[0], &a, nat, t0)?;
            node.send(0, cpus[1], &b, nat, t0 + dt + window)?;
        }
    }
    let st = node.stats(0);
    Ok((st.insert_failed as f64, st.drop as f64))
}

/// Experiment l: the XING race, two SYNs MASQUERADEd to one reply tuple.
pub(crate) fn l_syn_race(traces: &Path) -> Result<Rows, ValidateError> {
    let exp = Experiment::load(traces, "l-syn-race")?;
    let mut rows = Rows::new("l-syn-race", &exp.kernel());
    let model = RaceModel::MEASURED_6_18;
    for param in ["different", "same"] {
        let pairs = exp.race_pairs(param)?;
        let p = format!("l/{param}");
        let mut inf = Vec::new();
        let mut drop = Vec::new();
        for s in 0..SEEDS {
            let (i, d) = replay_syn(&exp, param, &pairs, SEED + s)?;
            inf.push(i);
            drop.push(d);
        }
        let real = |f: fn(&RacePairRow) -> u64| pairs.iter().map(f).sum::<u64>() as f64;
        rows.cmp(
            &format!("{p}/insert-failed"),
            "insert_failed (one per lost SYN)",
            U::Count,
            real(|r| r.insert_failed),
            mean(&inf),
            model_range(&inf),
        );
        rows.cmp(
            &format!("{p}/drop"),
            "drop (the losing SYN)",
            U::Count,
            real(|r| r.drop),
            mean(&drop),
            model_range(&drop),
        );
        let connected = pairs
            .iter()
            .filter(|r| r.answer.iter().all(Option::is_some))
            .count() as f64;
        let raced = pairs.iter().filter(|r| r.raced()).count() as f64;
        rows.cmp(
            &format!("{p}/both-connected"),
            "pairs whose two connects completed within the wait (all but the lost SYNs)",
            U::Count,
            connected,
            pairs.len() as f64 - raced,
            T::Count,
        );
        if pairs.iter().any(RacePairRow::different_cpus) {
            per_gap_rows(&mut rows, &model, &p, &pairs, RaceKind::SnatReply);
        }
    }
    Ok(rows)
}
