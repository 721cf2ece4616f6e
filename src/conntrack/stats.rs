//! `conntrack -S` counters (`struct ip_conntrack_stat`) and the rate-limited
//! "table full" log line.

use crate::time::{SimDuration, SimTime};
use std::fmt::Write as _;

/// The per-CPU counters `conntrack -S` prints, with exactly the kernel's meaning
/// (docs/kernel-semantics.md §Counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CtStats {
    /// NAT tuple probes (`nf_conntrack_tuple_taken`) that found the candidate taken.
    pub found: u64,
    /// Packets the tracker rejected or that could not be attached to an entry.
    pub invalid: u64,
    /// ctnetlink inserts only; stays 0 on the packet path.
    pub insert: u64,
    /// Confirm-time failures: unresolvable clash, chain too long.
    pub insert_failed: u64,
    /// Packets dropped by conntrack: table full, unresolvable clash.
    pub drop: u64,
    /// Entries deleted by allocation-time `early_drop`.
    pub early_drop: u64,
    /// ICMP error pre-processing rejections (not modelled: stays 0).
    pub error: u64,
    /// RCU chain-walk restarts (no concurrency in the model: stays 0).
    pub search_restart: u64,
    /// Confirm-time clashes resolved without dropping.
    pub clash_resolve: u64,
    /// Confirm-time chain walks over the random 50..79 node limit.
    pub chaintoolong: u64,
}

/// One CPU's counters.
pub type CtCpuStats = CtStats;

impl CtStats {
    /// Counter names in `conntrack -S` order, with values.
    #[must_use]
    pub fn named(&self) -> [(&'static str, u64); 10] {
        [
            ("found", self.found),
            ("invalid", self.invalid),
            ("insert", self.insert),
            ("insert_failed", self.insert_failed),
            ("drop", self.drop),
            ("early_drop", self.early_drop),
            ("error", self.error),
            ("search_restart", self.search_restart),
            ("clash_resolve", self.clash_resolve),
            ("chaintoolong", self.chaintoolong),
        ]
    }

    /// The sum over CPUs (what adding up the per-CPU lines of `conntrack -S` gives,
    /// docs/kernel-semantics.md §Observables).
    #[must_use]
    pub fn sum(cpus: &[CtCpuStats]) -> CtStats {
        cpus.iter().fold(CtStats::default(), |mut a, c| {
            a.found += c.found;
            a.invalid += c.invalid;
            a.insert += c.insert;
            a.insert_failed += c.insert_failed;
            a.drop += c.drop;
            a.early_drop += c.early_drop;
            a.error += c.error;
            a.search_restart += c.search_restart;
            a.clash_resolve += c.clash_resolve;
            a.chaintoolong += c.chaintoolong;
            a
        })
    }

    /// Counter names and values in `CTA_STATS_*` attribute order.
    fn fields(&self, legacy: bool) -> impl Iterator<Item = (&'static str, u64)> {
        let all = [
            ("found", self.found),
            ("invalid", self.invalid),
            ("insert", self.insert),
            ("insert_failed", self.insert_failed),
            ("drop", self.drop),
            ("early_drop", self.early_drop),
            ("error", self.error),
            ("search_restart", self.search_restart),
            ("clash_resolve", self.clash_resolve),
            ("chaintoolong", self.chaintoolong),
        ];
        let n = if legacy { 8 } else { 10 };
        all.into_iter().take(n)
    }
}

/// `conntrack -S` text: `nfct_stats_cb` prints `cpu=%-4u\t` then `name=%u ` per
/// attribute the kernel sent, then a newline. Kernels before `clash_resolve` and
/// `chaintoolong` existed send eight attributes.
pub(crate) fn format_stats(cpus: &[CtCpuStats], legacy: bool) -> String {
    let mut out = String::new();
    for (cpu, s) in cpus.iter().enumerate() {
        let _ = write!(out, "cpu={cpu:<4}\t");
        for (name, v) in s.fields(legacy) {
            let _ = write!(out, "{name}={v} ");
        }
        out.push('\n');
    }
    out
}

/// The "nf_conntrack: table full, dropping packet" lines, limited by `net_ratelimit`
/// (`net.core.message_cost` 5 s, `net.core.message_burst` 10).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TableFullLog {
    /// Lines emitted to the kernel log.
    pub lines: u64,
    /// Messages suppressed by the rate limit.
    pub suppressed: u64,
}

/// `___ratelimit` state of `net_ratelimit_state` (global).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RateLimit {
    begin: Option<SimTime>,
    printed: u32,
}

impl RateLimit {
    const INTERVAL: SimDuration = SimDuration::from_secs(5);
    const BURST: u32 = 10;

    /// Whether a message at `now` is printed (`___ratelimit`).
    pub(crate) fn allow(&mut self, now: SimTime) -> bool {
        let begin = *self.begin.get_or_insert(now);
        if now > begin.saturating_add(Self::INTERVAL) {
            self.begin = Some(now);
            self.printed = 0;
        }
        if self.printed < Self::BURST {
            self.printed += 1;
            true
        } else {
            false
        }
    }
}

/// The log text (`__nf_conntrack_alloc`, 6.18 wording; the module prefix is printed
/// twice for non-initial namespaces on the verified build).
#[must_use]
pub(crate) fn table_full_message(is_init: bool, inode: u32) -> String {
    if is_init {
        "nf_conntrack: table full, dropping packet".to_owned()
    } else {
        format!("nf_conntrack: nf_conntrack: table full in netns {inode}, dropping packet")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_matches_conntrack_tools_layout() {
        let cpus = [
            CtStats {
                found: 3,
                drop: 2,
                ..CtStats::default()
            },
            CtStats::default(),
        ];
        let text = format_stats(&cpus, false);
        assert_eq!(
            text,
            "cpu=0   \tfound=3 invalid=0 insert=0 insert_failed=0 drop=2 early_drop=0 error=0 search_restart=0 clash_resolve=0 chaintoolong=0 \n\
             cpu=1   \tfound=0 invalid=0 insert=0 insert_failed=0 drop=0 early_drop=0 error=0 search_restart=0 clash_resolve=0 chaintoolong=0 \n"
        );
        assert!(!format_stats(&cpus, true).contains("clash_resolve"));
        assert_eq!(CtStats::sum(&cpus).found, 3);
    }

    /// docs/kernel-semantics.md §Table-full log: about 10 lines per 5 s; the experiment saw
    /// 30 lines for 50 drops spread over 15 s.
    #[test]
    fn ratelimit_prints_ten_per_five_seconds() {
        let mut rl = RateLimit::default();
        let mut printed = 0;
        // 50 drops evenly over 15 s.
        for i in 0..50u64 {
            if rl.allow(SimTime::from_millis(i * 300)) {
                printed += 1;
            }
        }
        assert_eq!(printed, 30);
    }
}
