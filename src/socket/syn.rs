//! The SYN retransmission timer of an active open (`tcp_retransmit_timer`,
//! `tcp_syn_linear_timeouts`), allocation-free.

use crate::kernel::KernelProfile;
use crate::time::{SimDuration, SimTime};

/// `TCP_RTO_MAX` default (`tcp_rto_max_ms` = 120 s), in seconds.
const RTO_MAX_SECS: u64 = 120;

/// `CONFIG_HZ` of the modelled kernels (Debian/Ubuntu builds and the verified 6.18 VM).
pub const CONFIG_HZ: u64 = 250;

/// When a kernel timer armed at `armed` for `delay` fires: `mod_timer` on the
/// hierarchical timer wheel (`kernel/time/timer.c`, `calc_wheel_index`). The expiry is
/// counted in jiffies (`msecs_to_jiffies` rounds up); a timer less than 63 jiffies away
/// fires on its jiffy, farther ones are put on level `n` (granularity `8^n` jiffies)
/// and fire at the first level boundary after their expiry. At HZ 250 a 1 s timer fires
/// 4-32 ms late, a 4-16 s timer up to 256 ms late and a 64 s timer up to 2 s late,
/// which is what a real `connect()` shows (validation f-syn-schedule).
#[must_use]
pub fn timer_wheel_expiry(armed: SimTime, delay: SimDuration) -> SimTime {
    const LVL_SHIFT: u32 = 3;
    let jiffy = 1_000_000_000 / CONFIG_HZ;
    let clk = armed.as_nanos() / jiffy;
    let expires = clk + delay.as_nanos().div_ceil(jiffy);
    let delta = expires - clk;
    // LVL_START(n) = 63 << 3(n-1) for n >= 1.
    let mut lvl = 0u32;
    while lvl < 8 && delta >= 63u64 << (LVL_SHIFT * lvl) {
        lvl += 1;
    }
    let fire = if lvl == 0 {
        expires
    } else {
        let gran = 1u64 << (LVL_SHIFT * lvl);
        (expires / gran + 1) * gran
    };
    SimTime::from_nanos(fire.saturating_mul(jiffy))
}

/// What happens next to a connecting socket if no SYN-ACK arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynDeadline {
    /// The SYN is sent again at this time.
    Retransmit(SimTime),
    /// `connect()` fails with ETIMEDOUT at this time.
    TimedOut(SimTime),
}

impl SynDeadline {
    /// The time of the deadline, whichever kind.
    #[must_use]
    pub fn at(self) -> SimTime {
        match self {
            SynDeadline::Retransmit(t) | SynDeadline::TimedOut(t) => t,
        }
    }
}

/// SYN retransmission schedule of one `connect()`: initial RTO 1 s (`TCP_TIMEOUT_INIT`),
/// kept for the first `syn_linear_timeouts` retransmissions (6.5+), then doubled up to
/// 120 s; `tcp_syn_retries + syn_linear_timeouts` retransmissions, then ETIMEDOUT one
/// RTO after the last one. The RTOs are those of [`KernelProfile::syn_schedule`]; each
/// timer is armed when the previous SYN leaves and fires as the kernel's timer wheel
/// fires it ([`timer_wheel_expiry`]), so retransmissions drift late as on a real node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynTimer {
    /// When the last SYN was sent.
    last: SimTime,
    rto_secs: u64,
    retransmitted: u32,
    linear: u32,
    retries: u32,
}

impl SynTimer {
    /// A timer for a `connect()` whose first SYN leaves at `now`.
    #[must_use]
    pub fn start(profile: &KernelProfile, syn_retries: u8, now: SimTime) -> SynTimer {
        let linear = u32::from(profile.syn_linear_timeouts);
        SynTimer {
            last: now,
            rto_secs: 1,
            retransmitted: 0,
            linear,
            retries: u32::from(syn_retries) + linear,
        }
    }

    /// The retransmission timeout the next deadline was armed with (before the timer
    /// wheel's rounding).
    #[must_use]
    pub fn rto(&self) -> SimDuration {
        SimDuration::from_secs(self.rto_secs)
    }

    /// The next deadline if no SYN-ACK arrives.
    #[must_use]
    pub fn deadline(&self) -> SynDeadline {
        let at = timer_wheel_expiry(self.last, SimDuration::from_secs(self.rto_secs));
        if self.retransmitted < self.retries {
            SynDeadline::Retransmit(at)
        } else {
            SynDeadline::TimedOut(at)
        }
    }

    /// The deadline has passed: if it was a retransmission, record the SYN sent and
    /// return the following deadline; a `TimedOut` deadline stays as it is.
    pub fn on_timer(&mut self) -> SynDeadline {
        if self.retransmitted < self.retries {
            self.last = self.deadline().at();
            self.retransmitted += 1;
            // `icsk_retransmits <= tcp_syn_linear_timeouts` keeps the RTO unchanged.
            if self.retransmitted > self.linear {
                self.rto_secs = (self.rto_secs * 2).min(RTO_MAX_SECS);
            }
        }
        self.deadline()
    }

    /// SYNs sent so far, the first one included.
    #[must_use]
    pub fn syns_sent(&self) -> u32 {
        self.retransmitted + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SYN send times (whole seconds after the first, truncated: the wheel's delay is
    /// below one second until the 64 s RTO) and the ETIMEDOUT time.
    fn walk(profile: &KernelProfile, retries: u8) -> (Vec<u64>, u64) {
        let (sends, fail) = walk_ns(profile, retries);
        (
            sends.iter().map(|n| n / 1_000_000_000).collect(),
            fail / 1_000_000_000,
        )
    }

    fn walk_ns(profile: &KernelProfile, retries: u8) -> (Vec<u64>, u64) {
        let start = SimTime::from_secs(100);
        let mut t = SynTimer::start(profile, retries, start);
        let mut sends = vec![0];
        loop {
            match t.deadline() {
                SynDeadline::Retransmit(at) => {
                    sends.push((at - start).as_nanos());
                    t.on_timer();
                }
                SynDeadline::TimedOut(at) => return (sends, (at - start).as_nanos()),
            }
        }
    }

    /// The timer wheel's rounding (calc_wheel_index at HZ 250): 1 s RTOs fire 4-32 ms
    /// late, as the 6.18 recording shows (0, 1.03, 2.05, 3.08, 4.10, 5.13, 7.14 s, …,
    /// ETIMEDOUT 133.4 s; docs/kernel-semantics.md §Measurements on 6.18 (f)).
    #[test]
    fn syn_retransmissions_drift_late_like_the_timer_wheel() {
        let (sends, fail) = walk_ns(&KernelProfile::LINUX_6_18, 6);
        let nominal = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 11.0, 19.0, 35.0, 67.0];
        let recorded = [
            0.0, 1.03, 2.05, 3.08, 4.10, 5.13, 7.14, 11.30, 19.50, 35.62, 67.88,
        ];
        for (i, ns) in sends.iter().enumerate() {
            let s = *ns as f64 / 1e9;
            assert!(
                s > nominal[i] || i == 0,
                "SYN {i} at {s} must be after its nominal time"
            );
            assert!(
                (s - recorded[i]).abs() < 0.6,
                "SYN {i} at {s} vs recorded {}",
                recorded[i]
            );
        }
        let f = fail as f64 / 1e9;
        assert!(f > 131.0 && f < 135.0, "ETIMEDOUT at {f}");
        // Level boundaries: < 63 jiffies exact, then 8, 64, 512 jiffies granularity.
        let at = |d_ms: u64| {
            (timer_wheel_expiry(SimTime::ZERO, SimDuration::from_millis(d_ms))).as_nanos() / 1_000_000
        };
        assert_eq!(at(200), 200);
        assert_eq!(at(1000), 1024);
        assert_eq!(at(4000), 4096);
    }

    /// docs/kernel-semantics.md §SYN retransmission: 6.5+ SYNs at 0,1,2,3,4,5,7,11,19,35,67 s,
    /// ETIMEDOUT at 131 s.
    #[test]
    fn linear_then_exponential_syn_schedule_on_6_18() {
        let (sends, fail) = walk(&KernelProfile::LINUX_6_18, 6);
        assert_eq!(sends, vec![0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67]);
        // The last RTO (64 s) is on the wheel's 2.048 s level: up to 2 s late.
        assert!((131..=131 + 2).contains(&fail), "{fail}");
    }

    /// docs/kernel-semantics.md §SYN retransmission: older kernels SYNs at 0,1,3,7,15,31,63 s,
    /// ETIMEDOUT at 127 s.
    #[test]
    fn exponential_syn_schedule_on_5_4() {
        let (sends, fail) = walk(&KernelProfile::LINUX_5_4, 6);
        assert_eq!(sends, vec![0, 1, 3, 7, 15, 31, 63]);
        // The last RTO (64 s) is on the wheel's 2.048 s level: up to 2 s late.
        assert!((127..=127 + 2).contains(&fail), "{fail}");
    }

    #[test]
    fn timer_agrees_with_profile_schedule_and_caps_rto() {
        for profile in KernelProfile::ALL {
            for retries in [0u8, 1, 3, 6, 10, 15] {
                let (sends, fail) = profile.syn_schedule(retries);
                let secs: Vec<u64> = sends.iter().map(|d| d.as_secs()).collect();
                // Each timer is armed when the previous SYN left, so the wheel's rounding
                // (at most 8/63 of a delay, one level's granularity) accumulates.
                let (got, got_fail) = walk(&profile, retries);
                for (g, n) in got.iter().zip(&secs) {
                    assert!(
                        *g >= *n && *g * 100 <= *n * 113 + 100,
                        "{profile} retries {retries}: {got:?} vs {secs:?}"
                    );
                }
                assert!(
                    got_fail >= fail.as_secs() && got_fail * 100 <= fail.as_secs() * 113 + 100,
                    "{profile} {retries}"
                );
            }
        }
        let mut t = SynTimer::start(&KernelProfile::LINUX_5_4, 15, SimTime::ZERO);
        let mut prev = SimTime::ZERO;
        while let SynDeadline::Retransmit(at) = t.deadline() {
            assert!(
                at - prev <= SimDuration::from_secs(136),
                "RTO capped at 120 s plus the wheel granularity"
            );
            prev = at;
            t.on_timer();
        }
        assert_eq!(t.syns_sent(), 16);
        assert!(
            matches!(t.on_timer(), SynDeadline::TimedOut(_)),
            "timed out stays timed out"
        );
    }
}
