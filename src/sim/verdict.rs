//! The verdict: the first conntrack counter to rise on any node, and why, in the
//! kernel's terms.

use super::collect::round3;
use super::model::NodeSim;
use crate::report::{NodeReport, Verdict};
use crate::time::SimTime;

/// The first thing that went wrong, and why, in the kernel's terms.
pub(super) fn verdict(sim: &NodeSim, nodes: &[NodeReport]) -> Verdict {
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
