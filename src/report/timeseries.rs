//! The time series of a run: one [`Sample`] per `sampleInterval`, its CSV, and the
//! per-interval latency buckets the Prometheus histogram is written from.

use std::fmt::Write as _;

use super::census::CensusSnapshot;
use super::{ConntrackCounters, Histogram};

/// Upper bounds (seconds) of the request-latency histogram buckets in `metrics.prom`
/// (`+Inf` follows).
pub const LATENCY_BUCKETS_S: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Latencies of the requests completed in one interval, bucketed for a Prometheus
/// histogram.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencyBuckets {
    /// Requests whose latency is at most each bound of [`LATENCY_BUCKETS_S`]
    /// (cumulative, like a histogram's `le` buckets).
    pub at_most: Vec<u64>,
    /// Requests (the `+Inf` bucket).
    pub count: u64,
    /// Sum of their latencies, nanoseconds.
    pub sum_ns: u128,
}

impl LatencyBuckets {
    /// Buckets a histogram of nanoseconds. A value up to 1/64 (1.6 %) above a bound may
    /// count under it (the histogram's resolution).
    #[must_use]
    pub fn from_histogram(h: &Histogram) -> LatencyBuckets {
        LatencyBuckets {
            at_most: LATENCY_BUCKETS_S
                .iter()
                .map(|b| {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let ns = (b * 1e9).round() as u64;
                    h.count_at_most(ns)
                })
                .collect(),
            count: h.count(),
            sum_ns: h.sum(),
        }
    }
}

/// One row of the time series (one sample interval).
///
/// The simulation builds rows with `..Sample::default()`, so fields it does not fill
/// stay empty (`None`, empty vectors) and every output treats them as "not measured".
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// End of the interval, seconds.
    pub t_s: f64,
    /// Per node: `nf_conntrack_count` at the end of the interval.
    pub count: Vec<u64>,
    /// Per node: cumulative counters.
    pub counters: Vec<ConntrackCounters>,
    /// Per node: CPU utilisation in the interval, percent of all CPUs.
    pub cpu_pct: Vec<f64>,
    /// New connections started in the interval (all workloads).
    pub new_connections: u64,
    /// Requests completed OK in the interval.
    pub ok: u64,
    /// Requests failed in the interval.
    pub failed: u64,
    /// DNS queries reaching CoreDNS in the interval.
    pub coredns_queries: u64,
    /// Latency of requests completed in the interval: p50 (ms). Meaningless when `ok`
    /// is 0 (nothing completed): outputs leave such intervals empty.
    pub latency_p50_ms: f64,
    /// See `latency_p50_ms`.
    pub latency_p99_ms: f64,
    /// Attempts that hit the per-request timeout in the interval (`None`: not measured).
    pub timeouts: Option<u64>,
    /// Latencies of the requests completed in the interval, bucketed (`None`: not
    /// measured).
    pub latency: Option<LatencyBuckets>,
    /// Census snapshots taken in the interval (empty: none taken).
    pub census: Vec<CensusSnapshot>,
    /// Latency of every request that finished in the interval, answered or failed (a
    /// failure at its failure time): p50 and p99 in ms (`None`: nothing finished, or not
    /// measured).
    pub users_p50_ms: Option<f64>,
    /// See `users_p50_ms`.
    pub users_p99_ms: Option<f64>,
}

impl Sample {
    /// p50 latency of the interval, `None` when nothing completed.
    #[must_use]
    pub fn p50_ms(&self) -> Option<f64> {
        (self.ok > 0).then_some(self.latency_p50_ms)
    }

    /// p99 latency of the interval, `None` when nothing completed.
    #[must_use]
    pub fn p99_ms(&self) -> Option<f64> {
        (self.ok > 0).then_some(self.latency_p99_ms)
    }

    /// Answered share of the requests that finished in the interval, percent (`None`
    /// when nothing finished).
    #[must_use]
    pub fn success_pct(&self) -> Option<f64> {
        let done = self.ok + self.failed;
        #[allow(clippy::cast_precision_loss)]
        (done > 0).then(|| self.ok as f64 * 100.0 / done as f64)
    }
}

/// The whole time series.
#[derive(Clone, Debug, Default)]
pub struct TimeSeries {
    /// Node names (column groups).
    pub nodes: Vec<String>,
    /// Per node `nf_conntrack_max` (for charts).
    pub max: Vec<u64>,
    /// Rows.
    pub samples: Vec<Sample>,
}

impl TimeSeries {
    /// The sample interval (the first row's time), seconds; 0 without rows.
    #[must_use]
    pub fn interval_s(&self) -> f64 {
        self.samples.first().map_or(0.0, |s| s.t_s)
    }

    /// Every census snapshot, in time order.
    #[must_use]
    pub fn census_snapshots(&self) -> Vec<&CensusSnapshot> {
        let mut v: Vec<&CensusSnapshot> = self.samples.iter().flat_map(|s| s.census.iter()).collect();
        v.sort_by_key(|s| (s.at_ns, s.node));
        v
    }

    /// CSV text: one row per sample, per-node column groups, then `timeouts` and the
    /// users' view: `success_pct`, `timeouts_per_s`, `users_p50_ms`, `users_p99_ms`. The
    /// latency columns are empty in intervals where no request completed (finished, for
    /// the users' columns); `timeouts` and `timeouts_per_s` are empty when not measured.
    #[must_use]
    pub fn to_csv(&self) -> String {
        let mut s = csv_header(&self.nodes);
        for r in &self.samples {
            s.push_str(&csv_row(r, self.nodes.len(), self.interval_s()));
        }
        s
    }
}

/// The first line of the time-series CSV for `nodes` (the column groups), with its
/// newline. With [`csv_row`], a run can write its rows as they come
/// ([`TimeSeries::to_csv`] is the header and every row).
#[must_use]
pub fn csv_header(nodes: &[String]) -> String {
    let mut s = String::from("t_s,new_connections,ok,failed,coredns_queries,latency_p50_ms,latency_p99_ms");
    for n in nodes {
        let _ = write!(s, ",{n}.count,{n}.cpu_pct");
        for (name, _) in ConntrackCounters::default().named() {
            let _ = write!(s, ",{n}.{name}");
        }
    }
    s.push_str(",timeouts,success_pct,timeouts_per_s,users_p50_ms,users_p99_ms\n");
    s
}

/// One line of the time-series CSV (with its newline) for a run of `nodes` nodes sampled
/// every `interval_s` seconds.
#[must_use]
pub fn csv_row(r: &Sample, nodes: usize, interval_s: f64) -> String {
    let opt = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.3}"));
    let mut s = String::new();
    let _ = write!(
        s,
        "{:.3},{},{},{},{},{},{}",
        r.t_s,
        r.new_connections,
        r.ok,
        r.failed,
        r.coredns_queries,
        opt(r.p50_ms()),
        opt(r.p99_ms())
    );
    for i in 0..nodes {
        let _ = write!(
            s,
            ",{},{:.2}",
            r.count.get(i).copied().unwrap_or(0),
            r.cpu_pct.get(i).copied().unwrap_or(0.0)
        );
        for (_, v) in r.counters.get(i).copied().unwrap_or_default().named() {
            let _ = write!(s, ",{v}");
        }
    }
    let _ = write!(s, ",{}", r.timeouts.map_or_else(String::new, |t| t.to_string()));
    #[allow(clippy::cast_precision_loss)]
    let per_s = r
        .timeouts
        .filter(|_| interval_s > 0.0)
        .map(|t| t as f64 / interval_s);
    let _ = write!(
        s,
        ",{},{},{},{}",
        opt(r.success_pct()),
        opt(per_s),
        opt(r.users_p50_ms),
        opt(r.users_p99_ms)
    );
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_without_completions_have_no_latency() {
        let ts = TimeSeries {
            nodes: vec!["node-a".into()],
            max: vec![10],
            samples: vec![
                Sample {
                    t_s: 0.1,
                    ok: 3,
                    latency_p50_ms: 1.5,
                    latency_p99_ms: 2.5,
                    ..Sample::default()
                },
                Sample {
                    t_s: 0.2,
                    ok: 0,
                    failed: 4,
                    ..Sample::default()
                },
            ],
        };
        let csv = ts.to_csv();
        let rows: Vec<&str> = csv.lines().collect();
        assert!(rows[1].starts_with("0.100,0,3,0,0,1.500,2.500,0,"), "{}", rows[1]);
        assert!(rows[2].starts_with("0.200,0,0,4,0,,,0,"), "{}", rows[2]);
        assert!(
            rows[0].ends_with(",timeouts,success_pct,timeouts_per_s,users_p50_ms,users_p99_ms"),
            "{}",
            rows[0]
        );
        assert!(rows[1].ends_with(",,100.000,,,"), "{}", rows[1]);
        assert!(
            rows[2].ends_with(",,0.000,,,"),
            "timeouts empty when not measured: {}",
            rows[2]
        );
        assert_eq!(ts.samples[1].p99_ms(), None);
        assert_eq!(ts.interval_s(), 0.1);
    }

    #[test]
    fn latency_buckets_are_cumulative_and_end_at_the_count() {
        let mut h = Histogram::new();
        for ms in [1u64, 3, 3, 40, 2_000] {
            h.record(ms * 1_000_000);
        }
        let b = LatencyBuckets::from_histogram(&h);
        assert_eq!(b.count, 5);
        assert_eq!(b.at_most[0], 1, "<= 1 ms");
        assert_eq!(b.at_most[2], 3, "<= 5 ms");
        assert_eq!(b.at_most[5], 4, "<= 50 ms");
        assert_eq!(b.at_most[10], 5, "<= 2.5 s");
        assert!(b.at_most.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(b.sum_ns, 2_047_000_000);
    }
}
