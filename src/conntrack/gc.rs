//! The conntrack gc worker (`gc_worker` in `nf_conntrack_core.c`).

use super::table::{ConntrackTable, NIL, node_idx, status};
use crate::time::{NANOS_PER_SEC, SimDuration, SimTime};

/// `GC_SCAN_INTERVAL_MAX` / `GC_SCAN_INTERVAL_INIT` (seconds).
const INTERVAL_MAX_S: i64 = 60;
/// `GC_SCAN_INTERVAL_MIN` (seconds).
const INTERVAL_MIN_S: i64 = 1;
/// `GC_SCAN_INTERVAL_CLAMP` (seconds).
const INTERVAL_CLAMP_S: i64 = 300;
/// `GC_SCAN_INITIAL_COUNT`.
const INITIAL_COUNT: i64 = 100;
/// Cadence of the pre-5.15 worker as modelled (kernel.rs: `gc_adaptive == false`).
const LEGACY_INTERVAL: SimDuration = SimDuration::from_secs(5);

impl ConntrackTable {
    fn jiffies(&self, t: u64) -> i64 {
        let j = u128::from(t) * u128::from(self.cfg.hz) / u128::from(NANOS_PER_SEC);
        i64::try_from(j).unwrap_or(i64::MAX)
    }

    fn jiffies_to_duration(&self, j: i64) -> SimDuration {
        let j = u128::try_from(j.max(0)).unwrap_or(0);
        let ns = j * u128::from(NANOS_PER_SEC) / u128::from(self.cfg.hz);
        SimDuration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// One run of the gc worker at `now`; returns when it wants to run next.
    ///
    /// 5.15+ (`gc_adaptive`): walks buckets from where the last run stopped, reaping
    /// expired entries and keeping a running mean of the remaining lifetime of the live
    /// ones (clamped to 1..300 s, seeded as 100 entries × 60 s). It yields after more
    /// than `GC_SCAN_EXPIRED_MAX` = 64000/HZ reaps or kills (next run 1 jiffy later, or
    /// at once if the cycle already lasted 60 s), and after `gc_slice_buckets` buckets
    /// (the 10 ms slice; next run at once). At the end of a pass the next run is the
    /// mean clamped to 1..60 s minus the cycle's duration (at least 1 jiffy). While the
    /// early-drop flag is armed, entries of namespaces at or above 95 % of
    /// `nf_conntrack_max` that are non-ASSURED or closing TCP are killed, without any
    /// counter; the flag is cleared whenever a run ends with a non-zero delay.
    ///
    /// Older kernels: a full pass every 5 s with the same reaping and trim.
    pub fn gc_step(&mut self, now: SimTime) -> SimTime {
        if !self.cfg.profile.gc_adaptive {
            self.gc.next_bucket = 0;
            let mut expired = 0;
            let mut next_run = 0;
            let mut count = 0;
            let max95 = self.max95();
            for b in 0..self.cfg.buckets {
                self.gc_bucket(b, now, max95, &mut expired, &mut next_run, &mut count, None);
            }
            self.gc.early_drop = false;
            return now.saturating_add(LEGACY_INTERVAL);
        }

        let hz = i64::from(self.cfg.hz);
        let expired_max = 64_000 / hz;
        let mut i = self.gc.next_bucket;
        let max95 = self.max95();
        if i == 0 {
            self.gc.avg_timeout = INTERVAL_MAX_S * hz;
            self.gc.count = INITIAL_COUNT;
            self.gc.start_time = now;
        }
        let mut next_run = self.gc.avg_timeout;
        let mut count = self.gc.count;
        let mut expired_count: i64 = 0;
        let mut sliced = 0u32;
        let now_j = self.jiffies(now.as_nanos());
        loop {
            if i >= self.cfg.buckets {
                break;
            }
            let yielded = self.gc_bucket(
                i,
                now,
                max95,
                &mut expired_count,
                &mut next_run,
                &mut count,
                Some(expired_max),
            );
            if yielded {
                self.gc.next_bucket = i;
                self.gc.avg_timeout = next_run;
                self.gc.count = count;
                let delta = now_j - self.jiffies(self.gc.start_time.as_nanos());
                // Re-schedule at once if the whole cycle exceeded 60 s.
                let delay = i64::from(delta < INTERVAL_MAX_S * hz);
                return self.gc_exit(now, delay);
            }
            i += 1;
            sliced += 1;
            if sliced >= self.cfg.gc_slice_buckets && i < self.cfg.buckets {
                self.gc.avg_timeout = next_run;
                self.gc.count = count;
                self.gc.next_bucket = i;
                return self.gc_exit(now, 0);
            }
        }
        self.gc.next_bucket = 0;
        next_run = next_run.clamp(INTERVAL_MIN_S * hz, INTERVAL_MAX_S * hz);
        let delta = (now_j - self.jiffies(self.gc.start_time.as_nanos())).max(1);
        let delay = if next_run > delta { next_run - delta } else { 1 };
        self.gc_exit(now, delay)
    }

    fn gc_exit(&mut self, now: SimTime, delay_j: i64) -> SimTime {
        if delay_j != 0 {
            self.gc.early_drop = false;
        }
        now.saturating_add(self.jiffies_to_duration(delay_j))
    }

    /// `nf_conntrack_max / 100 * 95` when the early-drop flag is armed, else 0.
    fn max95(&self) -> u32 {
        if self.gc.early_drop {
            self.cfg.max / 100 * 95
        } else {
            0
        }
    }

    /// Walks one bucket; returns `true` when the reap limit made the run yield.
    #[allow(clippy::too_many_arguments)]
    fn gc_bucket(
        &mut self,
        b: u32,
        now: SimTime,
        max95: u32,
        expired_count: &mut i64,
        next_run: &mut i64,
        count: &mut i64,
        expired_max: Option<i64>,
    ) -> bool {
        let hz = i64::from(self.cfg.hz);
        let now_ns = now.as_nanos();
        let mut n = self.buckets[b as usize];
        while n != NIL {
            if expired_max.is_some_and(|m| *expired_count > m) {
                return true;
            }
            let idx = node_idx(n);
            let next = self.next_of(n);
            let e = self.entries[idx as usize];
            if e.is_expired(now) {
                n = self.free_in_walk(idx, next);
                *expired_count += 1;
                continue;
            }
            // Running mean of remaining lifetimes (jiffies), as the kernel computes it.
            let expires = self
                .jiffies(e.timeout.saturating_sub(now_ns))
                .clamp(INTERVAL_MIN_S * hz, INTERVAL_CLAMP_S * hz);
            *count += 1;
            *next_run += (expires - *next_run) / *count;

            if max95 == 0 || !e.has(status::CONFIRMED) {
                n = next;
                continue;
            }
            if self.count(e.ns) < max95 {
                n = next;
                continue;
            }
            // gc_worker_can_early_drop: non-ASSURED, or a closing TCP state.
            let closing = e.original().proto == crate::packet::Proto::Tcp && e.tcp_state().is_closing();
            if !e.has(status::ASSURED) || closing {
                n = self.free_in_walk(idx, next);
                *expired_count += 1;
                continue;
            }
            n = next;
        }
        false
    }
}
