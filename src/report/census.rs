//! Who fills the table: a census of a node's conntrack entries by the workload that
//! opened each flow, its destination (a Service, or external), protocol and TCP state,
//! ASSURED or not, and the largest tuple classes (`order-service → user-service:80
//! TIME_WAIT`).
//!
//! The simulation takes snapshots ([`CensusSnapshot`]) and puts them in the time series
//! ([`super::Sample::census`]): one per node at sample times it chooses
//! ([`CensusTrigger::Periodic`]), and one at each onset ([`CensusTrigger::Onset`]). This
//! module turns them into the report's per-node [`NodeCensusReport`] (at each onset, at
//! the peak, at the end, and columns over time). Every breakdown of a snapshot sums to
//! its `total`, which is `nf_conntrack_count` at that instant ([`NodeCensus::check`]).
//! With no snapshots (a simulation that does not take a census) everything here is empty
//! and renders as "no census".

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};

use crate::conntrack::CtState;
use crate::packet::Proto;

/// Who opened a flow (its ORIGINAL direction's source).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FlowSource {
    /// A pod of a scenario workload (`order-service`).
    Workload(String),
    /// A pod of a Service's endpoints (a backend calling out).
    ServicePod(String),
    /// The node's host network namespace (NodeLocal DNSCache's upstream, kubelet).
    HostNetwork,
    /// A source the simulation could not attribute.
    Unattributed,
}

impl fmt::Display for FlowSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlowSource::Workload(w) => f.write_str(w),
            FlowSource::ServicePod(s) => write!(f, "{s} (pods)"),
            FlowSource::HostNetwork => f.write_str("host network"),
            FlowSource::Unattributed => f.write_str("unattributed"),
        }
    }
}

/// Where a flow goes (its ORIGINAL direction's destination, before DNAT).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FlowDestination {
    /// A Service: its ClusterIP or NodePort, or for a headless Service one of its
    /// endpoints; `port` is the Service port the flow was addressed to.
    Service {
        /// Service name (`user-service`).
        name: String,
        /// Port (`80`).
        port: u16,
    },
    /// Anything that is not a Service of the scenario.
    External,
}

impl fmt::Display for FlowDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlowDestination::Service { name, port } => write!(f, "{name}:{port}"),
            FlowDestination::External => f.write_str("external"),
        }
    }
}

/// Protocol and, for TCP, conntrack's TCP state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowState {
    /// Protocol.
    pub proto: Proto,
    /// TCP state (`None` for UDP and ICMP).
    pub tcp: Option<CtState>,
}

impl fmt::Display for FlowState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tcp {
            Some(s) => write!(f, "{} {}", self.proto, s.as_str()),
            None => write!(f, "{}", self.proto),
        }
    }
}

/// A class of tuples: entries that share source, destination, state and ASSURED.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TupleClass {
    /// Who opened them.
    pub source: FlowSource,
    /// Where they go.
    pub destination: FlowDestination,
    /// Protocol and TCP state.
    pub state: FlowState,
    /// `IPS_ASSURED`.
    pub assured: bool,
}

impl fmt::Display for TupleClass {
    /// `order-service → user-service:80 TIME_WAIT [ASSURED]` (`udp` for UDP).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} → {} ", self.source, self.destination)?;
        match self.state.tcp {
            Some(s) => f.write_str(s.as_str())?,
            None => f.write_str(self.state.proto.as_str())?,
        }
        if self.assured {
            f.write_str(" [ASSURED]")?;
        }
        Ok(())
    }
}

fn as_text<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// A count of entries for one key of a breakdown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Share<K: fmt::Display> {
    /// The key, serialised as its text (`order-service`, `user-service:80`,
    /// `tcp TIME_WAIT`, `order-service → user-service:80 TIME_WAIT [ASSURED]`).
    #[serde(serialize_with = "as_text")]
    pub key: K,
    /// Entries.
    pub entries: u64,
}

/// One node's entries at one instant, broken down five ways.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NodeCensus {
    /// Entries counted: `nf_conntrack_count` at that instant (unconfirmed, hidden clash
    /// and expired-but-unreaped entries included, as the kernel counts them).
    pub total: u64,
    /// By the workload that opened the flow, largest first. Sums to `total`.
    pub by_workload: Vec<Share<FlowSource>>,
    /// By destination, largest first. Sums to `total`.
    pub by_destination: Vec<Share<FlowDestination>>,
    /// By protocol and TCP state, largest first. Sums to `total`.
    pub by_state: Vec<Share<FlowState>>,
    /// ASSURED entries (`early_drop` cannot evict them).
    pub assured: u64,
    /// Entries without ASSURED. `assured + not_assured == total`.
    pub not_assured: u64,
    /// The largest tuple classes, largest first (the simulation keeps at most
    /// [`TOP_CLASSES`]).
    pub top_classes: Vec<Share<TupleClass>>,
    /// Entries in classes not listed in `top_classes`; with them the classes sum to
    /// `total`.
    pub other_classes: u64,
}

/// How many tuple classes a snapshot keeps.
pub const TOP_CLASSES: usize = 10;

/// A breakdown that does not add up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("census breakdown `{breakdown}` sums to {sum}, not the total {total}")]
pub struct CensusMismatch {
    /// Which breakdown.
    pub breakdown: &'static str,
    /// Its sum.
    pub sum: u64,
    /// The snapshot's total.
    pub total: u64,
}

fn sum<K: fmt::Display>(v: &[Share<K>]) -> u64 {
    v.iter().map(|s| s.entries).sum()
}

impl NodeCensus {
    /// Checks that every breakdown sums to `total`.
    ///
    /// # Errors
    /// The first [`CensusMismatch`].
    pub fn check(&self) -> Result<(), CensusMismatch> {
        let total = self.total;
        for (breakdown, s) in [
            ("by_workload", sum(&self.by_workload)),
            ("by_destination", sum(&self.by_destination)),
            ("by_state", sum(&self.by_state)),
            ("assured + not_assured", self.assured + self.not_assured),
            (
                "top_classes + other_classes",
                sum(&self.top_classes) + self.other_classes,
            ),
        ] {
            if s != total {
                return Err(CensusMismatch {
                    breakdown,
                    sum: s,
                    total,
                });
            }
        }
        Ok(())
    }

    /// Builds a census from per-entry classes (what a simulation walking its table
    /// produces): counts each breakdown, sorts largest first (ties by key), keeps the
    /// [`TOP_CLASSES`] largest classes.
    #[must_use]
    pub fn from_classes<'a>(classes: impl IntoIterator<Item = (&'a TupleClass, u64)>) -> NodeCensus {
        let mut by_class: BTreeMap<&TupleClass, u64> = BTreeMap::new();
        for (c, n) in classes {
            *by_class.entry(c).or_default() += n;
        }
        let mut by_workload: BTreeMap<FlowSource, u64> = BTreeMap::new();
        let mut by_destination: BTreeMap<FlowDestination, u64> = BTreeMap::new();
        let mut by_state: BTreeMap<FlowState, u64> = BTreeMap::new();
        let (mut assured, mut not_assured) = (0, 0);
        for (c, n) in &by_class {
            *by_workload.entry(c.source.clone()).or_default() += n;
            *by_destination.entry(c.destination.clone()).or_default() += n;
            *by_state.entry(c.state).or_default() += n;
            if c.assured {
                assured += n;
            } else {
                not_assured += n;
            }
        }
        let mut classes: Vec<Share<TupleClass>> = by_class
            .into_iter()
            .map(|(k, entries)| Share {
                key: k.clone(),
                entries,
            })
            .collect();
        sort(&mut classes);
        let other_classes = classes.iter().skip(TOP_CLASSES).map(|s| s.entries).sum();
        classes.truncate(TOP_CLASSES);
        NodeCensus {
            total: assured + not_assured,
            by_workload: shares(by_workload),
            by_destination: shares(by_destination),
            by_state: shares(by_state),
            assured,
            not_assured,
            top_classes: classes,
            other_classes,
        }
    }
}

fn sort<K: fmt::Display + Ord>(v: &mut [Share<K>]) {
    v.sort_by(|a, b| b.entries.cmp(&a.entries).then_with(|| a.key.cmp(&b.key)));
}

fn shares<K: fmt::Display + Ord>(m: BTreeMap<K, u64>) -> Vec<Share<K>> {
    let mut v: Vec<Share<K>> = m
        .into_iter()
        .map(|(key, entries)| Share { key, entries })
        .collect();
    sort(&mut v);
    v
}

/// Why a snapshot was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CensusTrigger {
    /// At a sample time.
    Periodic,
    /// At the first increment of a counter.
    Onset(OnsetCounter),
}

/// The counters whose onset triggers a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnsetCounter {
    /// `drop`.
    Drop,
    /// `insert_failed`.
    InsertFailed,
    /// `early_drop`.
    EarlyDrop,
}

impl OnsetCounter {
    /// The `conntrack -S` name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            OnsetCounter::Drop => "drop",
            OnsetCounter::InsertFailed => "insert_failed",
            OnsetCounter::EarlyDrop => "early_drop",
        }
    }
}

/// A census of one node at one instant, as the simulation records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CensusSnapshot {
    /// The node's position in [`super::TimeSeries::nodes`].
    pub node: usize,
    /// When, simulated nanoseconds.
    pub at_ns: u64,
    /// Why.
    pub trigger: CensusTrigger,
    /// The counts.
    pub census: NodeCensus,
}

/// A snapshot in the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimedCensus {
    /// When, seconds.
    pub at_s: f64,
    /// The counts.
    #[serde(flatten)]
    pub census: NodeCensus,
}

/// A snapshot at an onset.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OnsetCensus {
    /// Which counter first rose.
    pub counter: OnsetCounter,
    /// When, seconds, and the counts.
    #[serde(flatten)]
    pub snapshot: TimedCensus,
}

/// The periodic snapshots as columns (for charts and readers who plot).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CensusColumns {
    /// Snapshot times, seconds.
    pub t_s: Vec<f64>,
    /// Totals.
    pub total: Vec<u64>,
    /// Per workload: entries at each time (0 where absent).
    pub by_workload: BTreeMap<String, Vec<u64>>,
    /// Per destination.
    pub by_destination: BTreeMap<String, Vec<u64>>,
    /// Per protocol and TCP state.
    pub by_state: BTreeMap<String, Vec<u64>>,
    /// ASSURED entries.
    pub assured: Vec<u64>,
}

/// Who fills one node's table.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NodeCensusReport {
    /// Node name.
    pub node: String,
    /// At each onset, in time order.
    pub at_onset: Vec<OnsetCensus>,
    /// The periodic snapshot with the highest total (the first of equals).
    pub at_peak: Option<TimedCensus>,
    /// The last periodic snapshot.
    pub at_end: Option<TimedCensus>,
    /// Every periodic snapshot, as columns.
    pub over_time: CensusColumns,
}

#[allow(clippy::cast_precision_loss)]
fn secs(ns: u64) -> f64 {
    (ns as f64 / 1e6).round() / 1e3
}

fn column<K: fmt::Display>(cols: &mut BTreeMap<String, Vec<u64>>, shares: &[Share<K>], at: usize) {
    for s in shares {
        let col = cols.entry(s.key.to_string()).or_default();
        col.resize(at + 1, 0);
        col[at] = s.entries;
    }
}

impl NodeCensusReport {
    /// Collects node `node`'s snapshots from the time series.
    #[must_use]
    pub fn collect(name: &str, node: usize, snapshots: &[&CensusSnapshot]) -> NodeCensusReport {
        let mut r = NodeCensusReport {
            node: name.to_owned(),
            ..NodeCensusReport::default()
        };
        let mut periodic = 0usize;
        for s in snapshots.iter().filter(|s| s.node == node) {
            let timed = TimedCensus {
                at_s: secs(s.at_ns),
                census: s.census.clone(),
            };
            match s.trigger {
                CensusTrigger::Onset(counter) => r.at_onset.push(OnsetCensus {
                    counter,
                    snapshot: timed,
                }),
                CensusTrigger::Periodic => {
                    let cols = &mut r.over_time;
                    cols.t_s.push(timed.at_s);
                    cols.total.push(s.census.total);
                    cols.assured.push(s.census.assured);
                    column(&mut cols.by_workload, &s.census.by_workload, periodic);
                    column(&mut cols.by_destination, &s.census.by_destination, periodic);
                    column(&mut cols.by_state, &s.census.by_state, periodic);
                    periodic += 1;
                    if r.at_peak.as_ref().is_none_or(|p| s.census.total > p.census.total) {
                        r.at_peak = Some(timed.clone());
                    }
                    r.at_end = Some(timed);
                }
            }
        }
        for cols in [
            &mut r.over_time.by_workload,
            &mut r.over_time.by_destination,
            &mut r.over_time.by_state,
        ] {
            for v in cols.values_mut() {
                v.resize(periodic, 0);
            }
        }
        r.at_onset
            .sort_by(|a, b| a.snapshot.at_s.total_cmp(&b.snapshot.at_s));
        r
    }

    /// Whether the simulation took any census on this node.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.at_onset.is_empty() && self.at_peak.is_none()
    }
}

/// A synthetic census for tests and examples of rendering: `order-service` filling the
/// table with TIME_WAIT entries to `user-service:80`, some DNS, some external.
#[must_use]
pub fn example_census(scale: u64) -> NodeCensus {
    let class = |src: FlowSource, dst: FlowDestination, proto: Proto, tcp: Option<CtState>, assured: bool| {
        TupleClass {
            source: src,
            destination: dst,
            state: FlowState { proto, tcp },
            assured,
        }
    };
    let order = || FlowSource::Workload("order-service".into());
    let user = || FlowDestination::Service {
        name: "user-service".into(),
        port: 80,
    };
    let dns = || FlowDestination::Service {
        name: "kube-dns".into(),
        port: 53,
    };
    let classes = [
        (
            class(order(), user(), Proto::Tcp, Some(CtState::TimeWait), true),
            90 * scale,
        ),
        (
            class(order(), user(), Proto::Tcp, Some(CtState::Established), true),
            4 * scale,
        ),
        (
            class(order(), user(), Proto::Tcp, Some(CtState::SynSent), false),
            2 * scale,
        ),
        (class(order(), dns(), Proto::Udp, None, false), 2 * scale),
        (
            class(
                FlowSource::HostNetwork,
                FlowDestination::External,
                Proto::Tcp,
                Some(CtState::Established),
                true,
            ),
            scale,
        ),
        (
            class(
                FlowSource::Unattributed,
                FlowDestination::External,
                Proto::Udp,
                None,
                false,
            ),
            scale,
        ),
    ];
    NodeCensus::from_classes(classes.iter().map(|(c, n)| (c, *n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_breakdown_sums_to_the_total() {
        let c = example_census(100);
        assert_eq!(c.total, 10_000);
        c.check().unwrap();
        assert_eq!(c.by_workload[0].key.to_string(), "order-service");
        assert_eq!(c.by_workload[0].entries, 9_800);
        assert_eq!(
            c.top_classes[0].key.to_string(),
            "order-service → user-service:80 TIME_WAIT [ASSURED]"
        );
        assert_eq!(c.by_state[0].key.to_string(), "tcp TIME_WAIT");
        let mut broken = c.clone();
        broken.assured += 1;
        assert_eq!(broken.check().unwrap_err().breakdown, "assured + not_assured");
    }

    #[test]
    fn top_classes_keep_the_largest_and_count_the_rest() {
        let classes: Vec<(TupleClass, u64)> = (0..15u16)
            .map(|i| {
                (
                    TupleClass {
                        source: FlowSource::Workload(format!("w{i:02}")),
                        destination: FlowDestination::External,
                        state: FlowState {
                            proto: Proto::Udp,
                            tcp: None,
                        },
                        assured: false,
                    },
                    u64::from(i) + 1,
                )
            })
            .collect();
        let c = NodeCensus::from_classes(classes.iter().map(|(c, n)| (c, *n)));
        assert_eq!(c.top_classes.len(), TOP_CLASSES);
        assert_eq!(c.top_classes[0].entries, 15);
        assert_eq!(c.other_classes, 1 + 2 + 3 + 4 + 5);
        c.check().unwrap();
    }

    #[test]
    fn the_report_picks_onsets_peak_end_and_columns() {
        let snap = |at_ns: u64, trigger, scale| CensusSnapshot {
            node: 0,
            at_ns,
            trigger,
            census: example_census(scale),
        };
        let snaps = [
            snap(1_000_000_000, CensusTrigger::Periodic, 1),
            snap(2_000_000_000, CensusTrigger::Periodic, 3),
            snap(2_500_000_000, CensusTrigger::Onset(OnsetCounter::Drop), 3),
            snap(3_000_000_000, CensusTrigger::Periodic, 2),
        ];
        let refs: Vec<&CensusSnapshot> = snaps.iter().collect();
        let r = NodeCensusReport::collect("node-a", 0, &refs);
        assert_eq!(r.at_peak.as_ref().unwrap().at_s, 2.0);
        assert_eq!(r.at_end.as_ref().unwrap().at_s, 3.0);
        assert_eq!(r.at_onset[0].counter, OnsetCounter::Drop);
        assert_eq!(r.over_time.t_s, [1.0, 2.0, 3.0]);
        assert_eq!(r.over_time.by_workload["order-service"], [98, 294, 196]);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["at_onset"][0]["counter"], "drop");
        assert_eq!(json["at_onset"][0]["total"], 300);
        assert_eq!(json["at_peak"]["by_destination"][0]["key"], "user-service:80");
        assert!(NodeCensusReport::collect("node-b", 1, &refs).is_empty());
    }
}
