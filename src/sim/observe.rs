//! Observation: the counters the report is built from, when each conntrack counter
//! first rose on each node (onsets), what filled the table then, and the time series.

use super::event::Event;
use super::model::{NodeSim, schedule};
use crate::datapath::{Confirmed, DropReason, FirstHalf, HalfVerdict};
use crate::engine::Context;
use crate::packet::{Packet, Proto};
use crate::report::census::OnsetCounter;
use crate::report::{Histogram, LatencyBuckets, Sample};
use crate::time::SimTime;
use std::collections::BTreeMap;

/// Counters the report is built from.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) sent: u64,
    pub(super) ok: u64,
    pub(super) failed: u64,
    pub(super) timeouts: u64,
    pub(super) retries: u64,
    pub(super) new_connections: u64,
    pub(super) failures_by_cause: BTreeMap<String, u64>,
    pub(super) dns_queries: u64,
    pub(super) coredns_queries: u64,
    /// Of which over TCP (NodeLocal DNSCache upstream).
    pub(super) coredns_tcp_queries: u64,
    pub(super) lookups_with_timeout: u64,
    pub(super) lookups_failed: u64,
    pub(super) syn_retransmits: Vec<u64>,
    /// Causes of conntrack drops at confirm (insert_failed) by kind, per node.
    pub(super) insert_failed_causes: Vec<BTreeMap<&'static str, u64>>,
    /// Packets lost on the path, by node (`None`: outside any host namespace), kind and
    /// reason.
    pub(super) packet_drops: BTreeMap<(Option<u16>, &'static str, DropReason), u64>,
    /// When each cause of failure first happened (the verdict's ranking).
    pub(super) cause_onsets: CauseOnsets,
    /// Attempts that timed out (in connect, waiting for a pooled connection or for the
    /// response) after a packet of their connection, or of a pooled connection they
    /// waited for, was lost, by what lost it (indexed by [`Loss::index`]).
    pub(super) timeouts_after_loss: [u64; Loss::COUNT],
}

/// What lost a packet of a connection on its way: the cause a later timeout of the
/// request it carried (or of requests waiting for it in a pool) is put down to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Loss {
    /// Conntrack dropped it (`drop`, `insert_failed`, `chaintoolong`).
    Conntrack,
    /// A full listen queue dropped the SYN or the handshake's ACK (ListenOverflows).
    ListenQueue,
    /// Any other drop on the path (filter rules, routing, the proxy's data plane).
    OtherDrop,
}

impl Loss {
    /// How many kinds there are.
    pub(super) const COUNT: usize = 3;

    /// The kind of loss a drop on the path is.
    pub(super) fn of(reason: DropReason) -> Loss {
        match reason {
            DropReason::ConntrackTableFull
            | DropReason::ConntrackInsertFailed
            | DropReason::ConntrackChainTooLong => Loss::Conntrack,
            _ => Loss::OtherDrop,
        }
    }

    /// Its slot in [`Tally::timeouts_after_loss`].
    pub(super) fn index(self) -> usize {
        match self {
            Loss::Conntrack => 0,
            Loss::ListenQueue => 1,
            Loss::OtherDrop => 2,
        }
    }
}

/// When each cause of failure first happened: the verdict ranks causes by the request
/// attempts they failed and shows each one's onset (`verdict.rs`).
#[derive(Debug, Default)]
pub(super) struct CauseOnsets {
    /// First failed attempt per cause (the keys of `Tally::failures_by_cause`).
    pub(super) attempts: BTreeMap<String, SimTime>,
    /// First SYN or handshake ACK a full listen queue dropped.
    pub(super) listen_overflow: Option<SimTime>,
    /// First lookup that hit the resolver's 5 s timeout.
    pub(super) dns_timeout: Option<SimTime>,
}

/// Requests of one workload, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct WorkloadTally {
    pub(super) sent: u64,
    pub(super) ok: u64,
    pub(super) failed: u64,
    pub(super) timeouts: u64,
    pub(super) retries: u64,
}

/// Requests as their callers saw them: every finished request's latency, an answered
/// one at its answer and a failed one at its final failure, overall, per interval, per
/// workload and per client node, next to the answered-only histograms per node. All
/// histograms are allocated at start; recording never allocates.
#[derive(Debug)]
pub(super) struct UsersTally {
    pub(super) all: Histogram,
    pub(super) interval_all: Histogram,
    pub(super) wl_all: Vec<Histogram>,
    pub(super) node_all: Vec<Histogram>,
    pub(super) node_ok: Vec<Histogram>,
    pub(super) node: Vec<WorkloadTally>,
    /// `timeouts` at the previous sample.
    pub(super) last_timeouts: u64,
}

impl UsersTally {
    pub(super) fn new(workloads: usize, nodes: usize) -> UsersTally {
        UsersTally {
            all: Histogram::new(),
            interval_all: Histogram::new(),
            wl_all: (0..workloads).map(|_| Histogram::new()).collect(),
            node_all: (0..nodes).map(|_| Histogram::new()).collect(),
            node_ok: (0..nodes).map(|_| Histogram::new()).collect(),
            node: vec![WorkloadTally::default(); nodes],
            last_timeouts: 0,
        }
    }

    /// A request of workload `wl` from a pod on `node` finished after `nanos`.
    pub(super) fn finished(&mut self, wl: usize, node: usize, nanos: u64, answered: bool) {
        self.all.record(nanos);
        self.interval_all.record(nanos);
        self.wl_all[wl].record(nanos);
        self.node_all[node].record(nanos);
        if answered {
            self.node_ok[node].record(nanos);
            self.node[node].ok += 1;
        } else {
            self.node[node].failed += 1;
        }
    }
}

/// The running totals a time-series row is the difference from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct SampleBase {
    pub(super) new_connections: u64,
    pub(super) ok: u64,
    pub(super) failed: u64,
    pub(super) coredns_queries: u64,
}

/// Onset bookkeeping per node.
#[derive(Clone, Debug, Default)]
pub(super) struct NodeOnsets {
    pub(super) drop: Option<(SimTime, u32)>,
    pub(super) insert_failed: Option<(SimTime, u32)>,
    pub(super) early_drop: Option<(SimTime, u32)>,
    pub(super) clash_resolve: Option<(SimTime, u32)>,
    pub(super) count_peak: u32,
    /// `conntrack -S` state breakdown when `drop` first rose: (state, assured) → count.
    pub(super) table_at_drop: Option<TableCensus>,
}

/// What filled the table.
#[derive(Clone, Debug, Default)]
pub(super) struct TableCensus {
    pub(super) total: u64,
    pub(super) assured: u64,
    pub(super) by_state: BTreeMap<&'static str, u64>,
}

impl NodeSim {
    /// A request attempt failed for `cause` at `at`: counted, and its cause's onset kept.
    pub(super) fn note_failure(&mut self, cause: &str, at: SimTime) {
        match self.tally.failures_by_cause.get_mut(cause) {
            Some(n) => *n += 1,
            None => {
                self.tally.failures_by_cause.insert(cause.to_string(), 1);
                self.tally.cause_onsets.attempts.insert(cause.to_string(), at);
            }
        }
    }

    /// A full listen queue dropped a SYN or a handshake's ACK at `at`.
    pub(super) fn note_listen_overflow(&mut self, at: SimTime) {
        self.tally.cause_onsets.listen_overflow.get_or_insert(at);
    }

    /// A lookup hit the resolver's 5 s timeout (seen when it ended, at `at`).
    pub(super) fn note_dns_timeout(&mut self, at: SimTime) {
        self.tally.cause_onsets.dns_timeout.get_or_insert(at);
    }

    pub(super) fn counters(&self, n: usize) -> crate::conntrack::CtStats {
        self.world.nodes[n].ct.stats_sum(0)
    }

    pub(super) fn note_onsets(&mut self, n: usize, at: SimTime, half: &FirstHalf) {
        let count = self.world.nodes[n].ct.count(0);
        let o = &mut self.onsets[n];
        o.count_peak = o.count_peak.max(count);
        let max = self.world.nodes[n].ct.config().max;
        if let HalfVerdict::Dropped(DropReason::ConntrackTableFull) = half.verdict
            && o.drop.is_none()
        {
            o.drop = Some((at, count));
            let census = self.census(n, at);
            self.onsets[n].table_at_drop = Some(census);
            self.onset_census(n, at, OnsetCounter::Drop);
        }
        // early_drop only happens when an allocation found the table at its max.
        if half.new_entry
            && self.onsets[n].early_drop.is_none()
            && count + 1 >= max
            && self.counters(n).early_drop > 0
        {
            self.onsets[n].early_drop = Some((at, count));
            self.onset_census(n, at, OnsetCounter::EarlyDrop);
        }
    }

    pub(super) fn census(&self, n: usize, now: SimTime) -> TableCensus {
        let ct = &self.world.nodes[n].ct;
        let mut c = TableCensus::default();
        for id in ct.conn_ids() {
            if let Some(conn) = ct.conn(id) {
                c.total += 1;
                if conn.assured {
                    c.assured += 1;
                }
                let expired = conn.expires.is_some_and(|e| e <= now);
                let state = match (conn.tcp_state, conn.original.proto, expired) {
                    (_, _, true) => "expired (not yet reaped)",
                    (Some(s), _, _) => s.as_str(),
                    (None, Proto::Udp, _) => "UDP",
                    (None, _, _) => "other",
                };
                *c.by_state.entry(state).or_insert(0) += 1;
            }
        }
        c
    }

    pub(super) fn note_confirm_drop(&mut self, n: usize, at: SimTime, reason: DropReason, pkt: &Packet) {
        let count = self.world.nodes[n].ct.count(0);
        if matches!(
            reason,
            DropReason::ConntrackInsertFailed | DropReason::ConntrackChainTooLong
        ) {
            let cause = match (reason, pkt.tuple.proto) {
                (DropReason::ConntrackChainTooLong, _) => "hash chain too long",
                (_, Proto::Udp) => "UDP clash on confirm (parallel packets DNATed differently)",
                (_, Proto::Tcp) => "TCP clash on confirm (same tuple or NAT port taken)",
                _ => "clash on confirm",
            };
            *self.tally.insert_failed_causes[n].entry(cause).or_insert(0) += 1;
        }
        self.check_counter_onsets(n, at, count);
    }

    pub(super) fn note_clash(&mut self, n: usize, at: SimTime, c: Confirmed) {
        if let Confirmed::Pass {
            clash_resolved: true, ..
        } = c
        {
            let count = self.world.nodes[n].ct.count(0);
            self.check_counter_onsets(n, at, count);
        }
    }

    pub(super) fn check_counter_onsets(&mut self, n: usize, at: SimTime, count: u32) {
        let s = self.counters(n);
        let o = &mut self.onsets[n];
        let mut rose = Vec::new();
        if o.insert_failed.is_none() && s.insert_failed > 0 {
            o.insert_failed = Some((at, count));
            rose.push(OnsetCounter::InsertFailed);
        }
        if o.clash_resolve.is_none() && s.clash_resolve > 0 {
            o.clash_resolve = Some((at, count));
        }
        if o.drop.is_none() && s.drop > 0 {
            o.drop = Some((at, count));
            rose.push(OnsetCounter::Drop);
        }
        for counter in rose {
            self.onset_census(n, at, counter);
        }
    }

    #[allow(clippy::cast_precision_loss)]
    pub(super) fn on_sample(&mut self, cx: &mut Context<'_, Event>) {
        let now = cx.now();
        let interval = self.sc.sample_interval;
        let mut row = Sample {
            t_s: now.as_secs_f64(),
            ..Sample::default()
        };
        for n in &mut self.world.nodes {
            n.sample_proxy(now);
        }
        for (i, n) in self.world.nodes.iter().enumerate() {
            let count = n.ct.count(0);
            row.count.push(u64::from(count));
            self.onsets[i].count_peak = self.onsets[i].count_peak.max(count);
            row.counters.push(n.ct.stats_sum(0));
            let busy = n.busy_ns - self.last_busy[i];
            self.last_busy[i] = n.busy_ns;
            let cap = u128::from(interval.as_nanos()) * u128::from(n.cpus.max(1));
            let pct = if cap == 0 {
                0.0
            } else {
                busy as f64 * 100.0 / cap as f64
            };
            // The report's peak, kept here because the rows may be streamed away.
            self.cpu_peak_pct[i] = self.cpu_peak_pct[i].max(pct);
            row.cpu_pct.push(pct);
        }
        let base = self.last_counts;
        row.new_connections = self.tally.new_connections - base.new_connections;
        row.ok = self.tally.ok - base.ok;
        row.failed = self.tally.failed - base.failed;
        row.coredns_queries = self.tally.coredns_queries - base.coredns_queries;
        self.coredns_peak_per_interval = self.coredns_peak_per_interval.max(row.coredns_queries);
        self.last_counts = SampleBase {
            new_connections: self.tally.new_connections,
            ok: self.tally.ok,
            failed: self.tally.failed,
            coredns_queries: self.tally.coredns_queries,
        };
        row.latency_p50_ms = self.interval_latency.quantile_ppm(500_000) as f64 / 1e6;
        row.latency_p99_ms = self.interval_latency.quantile_ppm(990_000) as f64 / 1e6;
        row.latency = Some(LatencyBuckets::from_histogram(&self.interval_latency));
        self.interval_latency.clear();
        row.timeouts = Some(self.tally.timeouts - self.users.last_timeouts);
        self.users.last_timeouts = self.tally.timeouts;
        let all = &self.users.interval_all;
        if all.count() > 0 {
            row.users_p50_ms = Some(all.quantile_ppm(500_000) as f64 / 1e6);
            row.users_p99_ms = Some(all.quantile_ppm(990_000) as f64 / 1e6);
        }
        self.users.interval_all.clear();
        row.census = self.sample_census(now);
        self.samples.push(row);
        if now + interval <= self.horizon {
            schedule(cx, now + interval, Event::Sample);
        }
    }
}
