//! The verdict: the failure the users felt (causes ranked by the request attempts they
//! failed, each with its onset), and the first conntrack counter to rise on any node, and
//! why, in the kernel's terms.

use super::collect::round3;
use super::model::NodeSim;
use super::observe::Loss;
use crate::report::{FailureCause, NodeReport, Verdict};
use crate::time::SimTime;

/// The verdict of a finished run.
pub(super) fn verdict(sim: &NodeSim, nodes: &[NodeReport]) -> Verdict {
    let mut v = conntrack_verdict(sim, nodes);
    v.failures = failure_ranking(sim, nodes);
    let Some(largest) = v.failures.first() else {
        return v;
    };
    if largest.cause == CONNTRACK {
        return v;
    }
    // Another failure hurt more requests than conntrack: it leads, and the conntrack
    // finding follows it.
    let first = v
        .failures
        .iter()
        .filter_map(|f| f.onset_s.map(|t| (t, f)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, f)| f);
    let mut text = format!(
        "{}: {} failed request attempts{}",
        largest.cause,
        largest.attempts,
        largest
            .onset_s
            .map_or_else(String::new, |t| format!(" from t={t:.3}s"))
    );
    if let Some(f) = first.filter(|f| f.cause != largest.cause) {
        text.push_str(&format!(
            " (the first failure: {} at t={:.3}s)",
            f.cause,
            f.onset_s.unwrap_or_default()
        ));
    }
    let mut cause = largest.detail.clone();
    if v.kind != "none" {
        cause.push_str(&format!("; conntrack: {}: {}", v.text, v.cause));
    }
    v.text = text;
    v.cause = cause;
    v
}

const CONNTRACK: &str = "conntrack drops";

/// Failure causes ranked by request attempts failed (largest first; ties: earliest onset).
///
/// An attempt that timed out (in connect, waiting for a pooled connection, or waiting
/// for the response) is put down to the packet loss that held it up, when there was
/// one: a packet of its own connection, or of the pod's pooled connections it waited
/// for, lost to conntrack, a full listen queue or another drop. Timeouts with no loss
/// behind them go to CPU saturation when a node was saturated, else to `other`.
#[allow(clippy::too_many_lines)] // one table of causes, each row with its own wording
fn failure_ranking(sim: &NodeSim, nodes: &[NodeReport]) -> Vec<FailureCause> {
    let by = &sim.tally.failures_by_cause;
    let onsets = &sim.tally.cause_onsets.attempts;
    let matching = |pred: &dyn Fn(&str) -> bool| -> (u64, Option<SimTime>) {
        let n = by.iter().filter(|(k, _)| pred(k)).map(|(_, v)| *v).sum();
        let t = onsets.iter().filter(|(k, _)| pred(k)).map(|(_, t)| *t).min();
        (n, t)
    };
    let is_timeout = |k: &str| {
        k.starts_with("timeout in connect")
            || k.starts_with("ETIMEDOUT")
            || k.starts_with("timeout waiting for a pooled connection")
            || k.starts_with("timeout waiting for the response")
    };
    let is_dns = |k: &str| k.starts_with("timeout waiting for DNS") || k.starts_with("DNS:");
    let is_addr = |k: &str| k.starts_with("EADDRNOTAVAIL");
    let is_refused = |k: &str| k.starts_with("ECONNREFUSED");
    let (timeouts, timeout_at) = matching(&is_timeout);
    let (dns, dns_at) = matching(&is_dns);
    let (addr, addr_at) = matching(&is_addr);
    let (refused, refused_at) = matching(&is_refused);
    let (other, other_at) = matching(&|k| !(is_timeout(k) || is_dns(k) || is_addr(k) || is_refused(k)));

    let ct_lost: u64 = nodes.iter().map(|n| n.conntrack.stats.drop).sum();
    let listen_lost: u64 = nodes.iter().map(|n| n.sockets.listen_overflows).sum();
    let other_lost: u64 = nodes
        .iter()
        .flat_map(|n| n.packet_drops.iter())
        .filter(|(k, _)| !k.contains("conntrack"))
        .map(|(_, v)| *v)
        .sum();
    let saturated: Vec<&str> = nodes
        .iter()
        .filter(|n| n.cpu.peak_demand_pct > 100.0)
        .map(|n| n.name.as_str())
        .collect();
    let after = |l: Loss| sim.tally.timeouts_after_loss[l.index()];
    let (ct_attempts, listen_attempts, dropped_attempts) = (
        after(Loss::Conntrack),
        after(Loss::ListenQueue),
        after(Loss::OtherDrop),
    );
    let no_loss = timeouts.saturating_sub(ct_attempts + listen_attempts + dropped_attempts);
    let (cpu_attempts, unexplained) = if saturated.is_empty() {
        (0, no_loss)
    } else {
        (no_loss, 0)
    };

    let secs = |t: Option<SimTime>| t.map(|t| round3(t.as_secs_f64()));
    let ct_at = sim
        .onsets
        .iter()
        .flat_map(|o| [o.drop, o.insert_failed])
        .flatten()
        .map(|(t, _)| t)
        .min();
    let cpu_at = sim
        .samples
        .iter()
        .find(|s| s.cpu_pct.iter().any(|p| *p >= 99.5))
        .map(|s| round3(s.t_s));
    let mut out = vec![
        FailureCause {
            cause: CONNTRACK.into(),
            attempts: ct_attempts,
            onset_s: secs(ct_at),
            detail: format!(
                "{ct_lost} packets dropped by conntrack (drop, insert_failed) on the path; {ct_attempts} attempts timed out after one of their connection's packets, or of the pooled connections they waited for, was among them"
            ),
        },
        FailureCause {
            cause: "DNS timeouts".into(),
            attempts: dns,
            onset_s: secs(
                [dns_at, sim.tally.cause_onsets.dns_timeout]
                    .into_iter()
                    .flatten()
                    .min(),
            ),
            detail: format!(
                "{dns} attempts failed waiting for DNS; {} lookups hit the resolver's 5 s timeout, {} failed; CoreDNS answered {} queries",
                sim.tally.lookups_with_timeout, sim.tally.lookups_failed, sim.tally.coredns_queries
            ),
        },
        FailureCause {
            cause: "CPU saturation".into(),
            attempts: cpu_attempts,
            onset_s: cpu_at.or(secs(timeout_at)),
            detail: format!(
                "{} saturated (CPU demand above 100 %); {cpu_attempts} attempts timed out with no packet of theirs lost",
                if saturated.is_empty() {
                    "no node".to_owned()
                } else {
                    saturated.join(", ")
                }
            ),
        },
        FailureCause {
            cause: "listen-queue overflows".into(),
            attempts: listen_attempts,
            onset_s: secs(sim.tally.cause_onsets.listen_overflow),
            detail: format!(
                "{listen_lost} SYNs or handshake ACKs dropped by full listen queues (ListenOverflows); {listen_attempts} attempts timed out after one of them"
            ),
        },
        FailureCause {
            cause: "EADDRNOTAVAIL".into(),
            attempts: addr,
            onset_s: secs(addr_at),
            detail: format!("{addr} connect() calls found no free ephemeral port"),
        },
        FailureCause {
            cause: "no endpoints".into(),
            attempts: refused,
            onset_s: secs(refused_at),
            detail: format!("{refused} connects refused: a Service without endpoints"),
        },
        FailureCause {
            cause: "other".into(),
            attempts: other + dropped_attempts + unexplained,
            onset_s: secs([other_at, timeout_at].into_iter().flatten().min()),
            detail: format!(
                "{other_lost} packets lost to other drops (filter rules, routing, proxy) and {dropped_attempts} attempts timed out after one of them; {unexplained} timed out with no packet lost and no node saturated; {other} failed otherwise"
            ),
        },
    ];
    out.retain(|f| f.attempts > 0);
    out.sort_by(|a, b| {
        b.attempts.cmp(&a.attempts).then(
            a.onset_s
                .unwrap_or(f64::MAX)
                .total_cmp(&b.onset_s.unwrap_or(f64::MAX)),
        )
    });
    out
}

/// The first conntrack counter to rise on any node, and why, in the kernel's terms.
fn conntrack_verdict(sim: &NodeSim, nodes: &[NodeReport]) -> Verdict {
    // Earliest onset across nodes and counters. On a tie insert_failed wins: a clash at
    // confirm raises insert_failed and drop together, and the clash is the cause.
    let mut best: Option<(SimTime, usize, &'static str, u32)> = None;
    for (i, o) in sim.onsets.iter().enumerate() {
        for (kind, v) in [
            ("insert_failed", o.insert_failed),
            ("drop", o.drop),
            ("early_drop", o.early_drop),
        ] {
            if let Some((t, count)) = v
                && best.is_none_or(|(bt, ..)| t < bt)
            {
                best = Some((t, i, kind, count));
            }
        }
    }
    let Some((t, i, kind, count)) = best else {
        return Verdict {
            kind: "none".into(),
            node: None,
            at_s: None,
            text: "no conntrack drop, insert_failed or early_drop on any node".into(),
            cause: String::new(),
            failures: Vec::new(),
        };
    };
    let n = &nodes[i];
    let max = n.conntrack.max;
    let text = format!(
        "{kind} starts at t={:.3}s on {} (nf_conntrack_count {count}/{max})",
        t.as_secs_f64(),
        n.name
    );
    let cause = match kind {
        "drop" => {
            if u64::from(count) + 1 >= max {
                let census = sim.onsets[i].table_at_drop.clone().unwrap_or_default();
                let top: Vec<String> = census
                    .by_state
                    .iter()
                    .rev()
                    .map(|(s, c)| format!("{s} {c}"))
                    .take(4)
                    .collect();
                format!(
                    "table full: nf_conntrack_count reached nf_conntrack_max ({max}, from {}) and early_drop found no \
                     non-ASSURED entry in the 8 buckets it scans, so the new flow's packet was dropped (drop, not \
                     insert_failed); {} of {} entries were ASSURED [{}]",
                    n.conntrack.max_source,
                    census.assured,
                    census.total,
                    top.join(", ")
                )
            } else {
                "packets dropped at confirm after an unresolvable clash (insert_failed + drop)".into()
            }
        }
        "insert_failed" => format!(
            "insertion clash at confirm, not a full table (count {count} of {max}); what clashed: {}",
            clash_census(n)
        ),
        _ => {
            "the table was at nf_conntrack_max and new flows evicted non-ASSURED entries (early_drop)".into()
        }
    };
    Verdict {
        kind: kind.into(),
        node: Some(n.name.clone()),
        at_s: Some(round3(t.as_secs_f64())),
        text,
        cause,
        failures: Vec::new(),
    }
}

/// The node's clashes at confirm by mechanism, largest first: `kind: insert_failed N,
/// clash_resolve M (mechanism)`.
pub(super) fn clash_census(n: &NodeReport) -> String {
    let mut rows: Vec<_> = n.conntrack.clashes.iter().collect();
    rows.sort_by_key(|c| std::cmp::Reverse(c.insert_failed + c.clash_resolve));
    if rows.is_empty() {
        return "nothing (no clash on this node)".into();
    }
    rows.iter()
        .map(|c| {
            format!(
                "{}: insert_failed {}, clash_resolve {} ({})",
                c.kind.name(),
                c.insert_failed,
                c.clash_resolve,
                c.mechanism
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
