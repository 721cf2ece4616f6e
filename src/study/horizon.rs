//! How long a run must last before its answer can be trusted.
//!
//! A short connection leaves an ASSURED conntrack entry for
//! `nf_conntrack_tcp_timeout_time_wait` (120 s by default) after it closes, so a table fed
//! at a constant rate grows for TIME_WAIT + the connection lifetime and only then levels
//! off (docs/kernel-semantics.md §early_drop: ASSURED entries are not evicted). A run that
//! ends earlier has seen neither the plateau nor, if the plateau is above
//! `nf_conntrack_max`, necessarily the moment the table fills: "no drop" from such a run
//! says nothing. [`Horizon::of`] computes, from the scenario alone, when the load reaches
//! its final rate, how long the entries it creates stay, and per node the new flows per
//! second and the time the table would take to fill; [`Horizon::check`] says whether a run
//! of a given length is long enough, and why not.
//!
//! The figures are estimates made before running anything: new flows per second count one
//! conntrack entry per new connection on the client's node and one on each node holding
//! endpoints (in proportion), retries and DNS aside; the lifetime is bounded by the
//! request timeout. They decide only whether a run is long enough, never a reported
//! number.

use std::fmt::Write as _;

use serde::Serialize;

use crate::scenario::{ConnectionMode, Scenario, WorkloadConfig, WorkloadTarget};
use crate::time::SimDuration;

/// Seconds added to the steady-state time: the gc worker reaps expired entries in passes
/// (up to a minute apart on 5.15+, docs/kernel-semantics.md §gc worker), so the count
/// settles a little after the last entry of the ramp-up has expired. At least this, and at
/// least 5 % of the holding time.
pub const MARGIN_S: f64 = 5.0;

/// One node's expected intake of new conntrack entries.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeFill {
    /// Node name.
    pub node: String,
    /// New conntrack entries per second at the workloads' peak rates.
    pub new_flows_per_s: f64,
    /// `nf_conntrack_max`.
    pub max: u64,
    /// Entries held at the steady state: new flows per second × the holding time.
    pub steady_entries: f64,
    /// When the table fills (`max / new flows per s`), if the steady state is above max.
    pub fill_s: Option<f64>,
}

/// What a scenario's runs must last to show its steady state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Horizon {
    /// When the last rate-profile step (or ramp) of any workload ends, seconds.
    pub load_settled_s: f64,
    /// How long a connection's entry stays in the table after it opens: the timeout that
    /// holds it once closed plus the connection's lifetime, seconds.
    pub hold_s: f64,
    /// What `hold_s` is made of, in words.
    pub hold_reason: String,
    /// Safety margin, seconds ([`MARGIN_S`], or 5 % of `hold_s`).
    pub margin_s: f64,
    /// `load_settled_s + hold_s + margin_s`, rounded up to a whole second.
    pub steady_s: f64,
    /// Per node, in scenario order.
    pub fills: Vec<NodeFill>,
}

/// Whether a run was long enough for its question.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sufficiency {
    /// The run's simulated length, seconds.
    pub run_s: f64,
    /// The length it needs, seconds.
    pub needed_s: f64,
    /// Whether the run is at least that long.
    pub long_enough: bool,
    /// Why it is needed (and, when too short, what the run missed).
    pub reason: String,
}

impl Horizon {
    /// The horizon of `s` as configured (its rates, timeouts and tables).
    #[must_use]
    pub fn of(s: &Scenario) -> Horizon {
        let load_settled_s = s
            .workloads
            .iter()
            .flat_map(|w| w.rate_profile.iter().map(|p| secs(p.at + p.ramp)))
            .fold(0.0, f64::max);
        let mut hold_s = 0.0;
        let mut hold_reason = String::from("no workload opens connections");
        for w in &s.workloads {
            let (h, why) = hold_of(s, w);
            if h > hold_s {
                hold_s = h;
                hold_reason = why;
            }
        }
        let margin_s = if hold_s > 0.0 {
            MARGIN_S.max(hold_s * 0.05)
        } else {
            0.0
        };
        let steady_s = (load_settled_s + hold_s + margin_s).ceil();
        let fills = s
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let rate: f64 = s.workloads.iter().map(|w| new_flows_on(s, w, i)).sum();
                let max = u64::from(n.sysctls.values.nf_conntrack_max);
                #[allow(clippy::cast_precision_loss)]
                let maxf = max as f64;
                let steady_entries = rate * hold_s;
                NodeFill {
                    node: n.name.clone(),
                    new_flows_per_s: rate,
                    max,
                    steady_entries,
                    fill_s: (rate > 0.0 && steady_entries > maxf).then(|| maxf / rate),
                }
            })
            .collect();
        Horizon {
            load_settled_s,
            hold_s,
            hold_reason,
            margin_s,
            steady_s,
            fills,
        }
    }

    /// Whether a run of `run_s` seconds reaches the steady state, with the reason in words.
    #[must_use]
    pub fn check(&self, run_s: f64) -> Sufficiency {
        let long_enough = run_s + 1e-9 >= self.steady_s;
        let mut reason = format!(
            "the table's steady state needs {:.0} s: {}{} + {:.0} s margin",
            self.steady_s,
            if self.load_settled_s > 0.0 {
                format!("load at its final rate from {:.0} s + ", self.load_settled_s)
            } else {
                String::new()
            },
            self.hold_reason,
            self.margin_s
        );
        if !long_enough {
            let _ = write!(reason, "; this run lasts {run_s:.0} s");
            let late: Vec<String> = self
                .fills
                .iter()
                .filter_map(|f| {
                    f.fill_s.filter(|t| *t > run_s).map(|t| {
                        format!(
                            "{}'s table would fill at about {t:.1} s ({} / {:.0} new flows/s)",
                            f.node, f.max, f.new_flows_per_s
                        )
                    })
                })
                .collect();
            if !late.is_empty() {
                let _ = write!(reason, ", but {}", late.join(" and "));
            }
        }
        Sufficiency {
            run_s,
            needed_s: self.steady_s,
            long_enough,
            reason,
        }
    }

    /// The `duration=` override that makes a run at least [`Horizon::steady_s`] long, if
    /// `current` is shorter.
    #[must_use]
    pub fn lengthen(&self, current: SimDuration) -> Option<String> {
        (secs(current) + 1e-9 < self.steady_s).then(|| format!("duration={:.0}s", self.steady_s))
    }
}

/// How long an entry of workload `w`'s connections stays: the timeout that holds it once
/// the connection is closed, plus the connection's lifetime (bounded by the request
/// timeout, or the pool's idle timeout), and the words for it.
fn hold_of(s: &Scenario, w: &WorkloadConfig) -> (f64, String) {
    let nodes = nodes_of(s, w);
    let (tw, tw_node) = nodes
        .iter()
        .map(|&i| (secs(s.nodes[i].sysctls.values.ct_timeouts.tcp_time_wait), i))
        .fold((0.0, w.node.0 as usize), |a, b| if b.0 > a.0 { b } else { a });
    let life = secs(w.timeout);
    match w.connection.mode {
        ConnectionMode::Short => (
            tw + life,
            format!(
                "nf_conntrack_tcp_timeout_time_wait {tw:.0} s on {} + connection lifetime up to {life:.1} s ({}'s timeout)",
                s.nodes[tw_node].name, w.name
            ),
        ),
        ConnectionMode::Pool => {
            let idle = secs(w.connection.idle_timeout);
            (
                tw + idle + life,
                format!(
                    "nf_conntrack_tcp_timeout_time_wait {tw:.0} s on {} + {}'s pool idle timeout {idle:.0} s + {life:.1} s timeout",
                    s.nodes[tw_node].name, w.name
                ),
            )
        }
    }
}

/// Indices of the nodes a workload's connections are tracked on: its own and those of its
/// target's endpoints.
fn nodes_of(s: &Scenario, w: &WorkloadConfig) -> Vec<usize> {
    let mut out = vec![w.node.0 as usize];
    if let WorkloadTarget::Service { service, .. } = w.target {
        for e in &s.service(service).endpoints {
            let i = e.node.0 as usize;
            if !out.contains(&i) {
                out.push(i);
            }
        }
    }
    out.retain(|i| *i < s.nodes.len());
    out
}

/// New conntrack entries per second workload `w` creates on node `node` at its peak rate.
#[allow(clippy::cast_precision_loss)]
fn new_flows_on(s: &Scenario, w: &WorkloadConfig, node: usize) -> f64 {
    let peak = w
        .rate_profile
        .iter()
        .map(|p| p.rate.as_per_sec_f64())
        .fold(w.rate.as_per_sec_f64(), f64::max);
    let conns = match w.connection.mode {
        ConnectionMode::Short => peak,
        ConnectionMode::Pool => w
            .connection
            .max_requests_per_connection
            .map_or(0.0, |m| peak / f64::from(m.max(1))),
    };
    // The share of the workload's pods on this node (pods are spread round-robin).
    let pods = w.pods.len().max(1);
    let here = (0..pods).filter(|k| w.pod_node(*k).0 as usize == node).count();
    let client_share = here as f64 / pods as f64;
    let client = w.node.0 as usize;
    let share = match w.target {
        WorkloadTarget::Service { service, .. } => {
            let eps = &s.service(service).endpoints;
            if eps.is_empty() {
                0.0
            } else {
                // Same-node endpoints are tracked once, in the client node's table.
                eps.iter()
                    .filter(|e| e.node.0 as usize == node && node != client)
                    .count() as f64
                    / eps.len() as f64
            }
        }
        WorkloadTarget::Address(_) => 0.0,
    };
    if w.nodes.len() > 1 {
        // Spread pods: each node tracks its own pods' connections (endpoints elsewhere
        // counted as for one client node).
        return conns * (client_share + if here == 0 { share } else { 0.0 });
    }
    if node == client { conns } else { conns * share }
}

fn secs(d: SimDuration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Override;

    fn load(path: &str, sets: &[&str]) -> Scenario {
        let o: Vec<Override> = sets.iter().map(|s| Override::parse(s).unwrap()).collect();
        Scenario::load(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")), &o).unwrap()
    }

    #[test]
    fn short_connections_need_time_wait_plus_lifetime_and_a_margin() {
        let h = Horizon::of(&load("scenarios/small.yaml", &[]));
        assert!((h.hold_s - 121.0).abs() < 1e-9, "{h:?}");
        assert!((h.steady_s - 128.0).abs() < 1e-9, "{h:?}");
        assert!(!h.check(20.0).long_enough);
        assert!(h.check(130.0).long_enough);
        assert_eq!(
            h.lengthen(SimDuration::from_secs(20)).as_deref(),
            Some("duration=128s")
        );
        assert_eq!(h.lengthen(SimDuration::from_secs(130)), None);
    }

    #[test]
    fn the_flash_sale_table_with_524288_entries_fills_after_ten_seconds() {
        let h = Horizon::of(&load(
            "scenarios/flash-sale.yaml",
            &["nodes.0.sysctl.net.netfilter.nf_conntrack_max=524288"],
        ));
        let a = &h.fills[0];
        assert_eq!(a.max, 524_288);
        let t = a.fill_s.unwrap();
        assert!((t - 524_288.0 / 30_000.0).abs() < 0.01, "{t}");
        let c = h.check(10.0);
        assert!(!c.long_enough);
        assert!(
            c.reason.contains("node-a's table would fill at about 17.5 s"),
            "{}",
            c.reason
        );
        // A shorter TIME_WAIT shortens what the run needs.
        let tw = Horizon::of(&load(
            "scenarios/flash-sale.yaml",
            &[
                "nodes.0.sysctl.net.netfilter.nf_conntrack_tcp_timeout_time_wait=30",
                "nodes.1.sysctl.net.netfilter.nf_conntrack_tcp_timeout_time_wait=30",
            ],
        ));
        assert!((tw.steady_s - 36.0).abs() < 1e-9, "{tw:?}");
    }
}
