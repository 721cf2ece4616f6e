//! Socket-level checks: the SYN retransmission schedule of experiment f and of the
//! published targets V03 and V04, from [`SynTimer`].

use super::check::{Tolerance as T, Unit as U};
use super::ct_level::mean;
use super::trace::Experiment;
use super::{Rows, SEED, ValidateError};
use crate::kernel::KernelProfile;
use crate::rng::SimRng;
use crate::socket::{SynDeadline, SynTimer};
use crate::time::SimTime;
use std::path::Path;

/// SYN times (seconds after the first) and the ETIMEDOUT time of one unanswered
/// `connect()` under `profile` with `retries` (`tcp_syn_retries`).
pub(crate) fn syn_times(profile: &KernelProfile, retries: u8) -> (Vec<f64>, f64) {
    let mut timer = SynTimer::start(profile, retries, SimTime::ZERO);
    let mut times = vec![0.0];
    loop {
        match timer.deadline() {
            SynDeadline::Retransmit(t) => {
                times.push(t.as_secs_f64());
                timer.on_timer();
            }
            SynDeadline::TimedOut(t) => return (times, t.as_secs_f64()),
        }
    }
}

/// The documented (nominal) schedule of `profile`: what V03's sources publish, before the
/// timer wheel's rounding ([`KernelProfile::syn_schedule`]).
pub(crate) fn nominal_syn_times(profile: &KernelProfile, retries: u8) -> (Vec<f64>, f64) {
    let (sends, fail) = profile.syn_schedule(retries);
    (
        sends.iter().map(|d| d.as_secs_f64()).collect(),
        fail.as_secs_f64(),
    )
}

/// Experiment f: SYN times of one connect to a black hole.
pub(crate) fn f_syn_schedule(traces: &Path) -> Result<Rows, ValidateError> {
    let exp = Experiment::load(traces, "f-syn-schedule")?;
    let mut rows = Rows::new("f-syn-schedule", &exp.kernel());
    for param in ["linear", "exp-retries4"] {
        let profile = KernelProfile {
            syn_linear_timeouts: exp.num(param, "params.tcp_syn_linear_timeouts")? as u8,
            ..KernelProfile::LINUX_6_18
        };
        let retries = exp.num(param, "params.tcp_syn_retries")? as u8;
        let (sim, fail) = syn_times(&profile, retries);
        let real = exp.syn_times(param)?;
        let t0 = real.first().copied().unwrap_or(0.0);
        let p = format!("f/{param}");
        rows.cmp(
            &format!("{p}/syns"),
            "SYNs sent before ETIMEDOUT",
            U::Count,
            real.len() as f64,
            sim.len() as f64,
            T::Count,
        );
        for (k, r) in real.iter().enumerate().skip(1) {
            let s = sim.get(k).copied().unwrap_or(f64::NAN);
            rows.cmp(
                &format!("{p}/syn{k}"),
                &format!("SYN {k} after the first"),
                U::Seconds,
                r - t0,
                s,
                T::SynTime,
            );
        }
        rows.cmp(
            &format!("{p}/etimedout"),
            "connect() fails with ETIMEDOUT",
            U::Seconds,
            exp.num(param, "derived.connect_elapsed_s")?,
            fail,
            T::SynTime,
        );
    }
    Ok(rows)
}

/// V03: the published SYN schedules of 6.5+ and older kernels.
pub(crate) fn v03() -> Rows {
    let mut rows = Rows::new(
        "V03",
        "ip-sysctl docs; D. Morley, \"tcp: make the first N SYN RTO backoffs linear\" (2023)",
    );
    let published: [(&str, KernelProfile, &[f64], f64); 2] = [
        (
            "6.18",
            KernelProfile::LINUX_6_18,
            &[1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 11.0, 19.0, 35.0, 67.0],
            131.0,
        ),
        (
            "5.4",
            KernelProfile::LINUX_5_4,
            &[1.0, 3.0, 7.0, 15.0, 31.0, 63.0],
            127.0,
        ),
    ];
    for (name, profile, times, fail) in published {
        let (sim, sim_fail) = nominal_syn_times(&profile, 6);
        for (k, r) in times.iter().enumerate() {
            let s = sim.get(k + 1).copied().unwrap_or(f64::NAN);
            rows.cmp(
                &format!("V03/{name}/syn{}", k + 1),
                &format!("retransmission {} ({name} profile)", k + 1),
                U::Seconds,
                *r,
                s,
                T::Abs(0.01),
            );
        }
        rows.cmp(
            &format!("V03/{name}/give-up"),
            &format!("connect() gives up ({name} profile)"),
            U::Seconds,
            fail,
            sim_fail,
            T::Abs(0.01),
        );
    }
    rows
}

/// V04: connect-latency modes when each SYN is dropped with probability `P_DROP`.
pub(crate) fn v04() -> Rows {
    /// Drop probability per SYN (an input of the check; any small value works).
    const P_DROP: f64 = 0.02;
    /// Connects drawn per profile.
    const N: usize = 200_000;
    /// Round trip of an answered SYN.
    const RTT: f64 = 0.000_2;
    let mut rows = Rows::new(
        "V04",
        "XING post; kubernetes PR #71114; docs/validation-targets.md §Latency-mode masses",
    );
    let cases: [(&str, KernelProfile, [f64; 2]); 2] = [
        ("5.4", KernelProfile::LINUX_5_4, [1.0, 3.0]),
        ("6.18", KernelProfile::LINUX_6_18, [1.0, 2.0]),
    ];
    for (name, profile, modes) in cases {
        let (sched, _) = syn_times(&profile, 6);
        let mut rng = SimRng::stream(SEED, &format!("validate-v04-{name}"));
        let mut lat = Vec::with_capacity(N);
        for _ in 0..N {
            let k = sched.iter().position(|_| !rng.chance(P_DROP));
            if let Some(k) = k {
                lat.push(sched[k] + RTT);
            }
        }
        let n = N as f64;
        for (i, m) in modes.iter().enumerate() {
            let at_mode: Vec<f64> = lat.iter().copied().filter(|l| (l - m).abs() < 0.5).collect();
            rows.cmp(
                &format!("V04/{name}/mode{}-at", i + 1),
                &format!(
                    "connect-latency spike {} position ({name}, p_drop {P_DROP})",
                    i + 1
                ),
                U::Seconds,
                *m,
                mean(&at_mode),
                T::Abs(0.05),
            );
            let mass = P_DROP.powi(i32::try_from(i + 1).unwrap_or(1));
            rows.cmp(
                &format!("V04/{name}/mode{}-mass", i + 1),
                &format!(
                    "share of connects in spike {} (published: p_drop^{})",
                    i + 1,
                    i + 1
                ),
                U::Fraction,
                mass,
                at_mode.len() as f64 / n,
                T::Factor(2.0),
            );
        }
    }
    rows
}
