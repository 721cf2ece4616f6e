//! The SYN retransmission timer of an active open (`tcp_retransmit_timer`,
//! `tcp_syn_linear_timeouts`), allocation-free.

use crate::kernel::KernelProfile;
use crate::time::{SimDuration, SimTime};

/// `TCP_RTO_MAX` default (`tcp_rto_max_ms` = 120 s), in seconds.
const RTO_MAX_SECS: u64 = 120;

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
/// RTO after the last one. Matches [`KernelProfile::syn_schedule`] without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynTimer {
    first: SimTime,
    /// Seconds from the first SYN to the last one sent.
    last_secs: u64,
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
            first: now,
            last_secs: 0,
            rto_secs: 1,
            retransmitted: 0,
            linear,
            retries: u32::from(syn_retries) + linear,
        }
    }

    /// The next deadline if no SYN-ACK arrives.
    #[must_use]
    pub fn deadline(&self) -> SynDeadline {
        let at = self.first + SimDuration::from_secs(self.last_secs + self.rto_secs);
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
            self.last_secs += self.rto_secs;
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

    fn walk(profile: &KernelProfile, retries: u8) -> (Vec<u64>, u64) {
        let mut t = SynTimer::start(profile, retries, SimTime::from_secs(100));
        let mut sends = vec![0];
        loop {
            match t.deadline() {
                SynDeadline::Retransmit(at) => {
                    sends.push(at.as_nanos() / 1_000_000_000 - 100);
                    t.on_timer();
                }
                SynDeadline::TimedOut(at) => return (sends, at.as_nanos() / 1_000_000_000 - 100),
            }
        }
    }

    /// kernel-semantics.md §9 item 15: 6.5+ SYNs at 0,1,2,3,4,5,7,11,19,35,67 s, ETIMEDOUT at 131 s.
    #[test]
    fn linear_then_exponential_syn_schedule_on_6_18() {
        let (sends, fail) = walk(&KernelProfile::LINUX_6_18, 6);
        assert_eq!(sends, vec![0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67]);
        assert_eq!(fail, 131);
    }

    /// kernel-semantics.md §9 item 15: older kernels SYNs at 0,1,3,7,15,31,63 s, ETIMEDOUT at 127 s.
    #[test]
    fn exponential_syn_schedule_on_5_4() {
        let (sends, fail) = walk(&KernelProfile::LINUX_5_4, 6);
        assert_eq!(sends, vec![0, 1, 3, 7, 15, 31, 63]);
        assert_eq!(fail, 127);
    }

    #[test]
    fn timer_agrees_with_profile_schedule_and_caps_rto() {
        for profile in KernelProfile::ALL {
            for retries in [0u8, 1, 3, 6, 10, 15] {
                let (sends, fail) = profile.syn_schedule(retries);
                let secs: Vec<u64> = sends.iter().map(|d| d.as_secs()).collect();
                assert_eq!(
                    walk(&profile, retries),
                    (secs, fail.as_secs()),
                    "{profile} retries {retries}"
                );
            }
        }
        let mut t = SynTimer::start(&KernelProfile::LINUX_5_4, 15, SimTime::ZERO);
        let mut prev = SimTime::ZERO;
        while let SynDeadline::Retransmit(at) = t.deadline() {
            assert!(at - prev <= SimDuration::from_secs(120));
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
