//! What a variant did against the baseline: its outcome (fixed, improved, worse, or too
//! short a run to tell) from the failures both runs show, and what changed by more than
//! 2× on each node, with the mechanism the numbers point to.

use std::fmt::Write as _;

use serde::Serialize;

use crate::report::Report;
use crate::study::horizon::Sufficiency;

/// A variant's effect against the baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// The baseline column itself: it fails.
    Fails,
    /// Nothing dropped and no request failed, in a run long enough.
    Holds,
    /// The baseline fails; this variant does not, in a run long enough.
    Fixed,
    /// Fewer than half the baseline's failures.
    Improved,
    /// About the baseline's failures (within a factor of 2).
    NotFixed,
    /// More than twice the baseline's failures.
    Worse,
    /// No failure, or not fewer than the baseline's, in a run too short to tell.
    Inconclusive,
}

impl std::fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OutcomeKind::Fails => "fails",
            OutcomeKind::Holds => "holds",
            OutcomeKind::Fixed => "fixed",
            OutcomeKind::Improved => "improved",
            OutcomeKind::NotFixed => "not fixed",
            OutcomeKind::Worse => "worse",
            OutcomeKind::Inconclusive => "inconclusive",
        })
    }
}

/// The outcome and its explanation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VariantOutcome {
    /// What kind.
    pub kind: OutcomeKind,
    /// In words, with the numbers compared.
    pub text: String,
}

/// Failures a run shows: conntrack `drop` + `insert_failed` over nodes, and failed requests.
fn failures(r: &Report) -> u64 {
    r.nodes
        .iter()
        .map(|n| n.conntrack.stats.drop + n.conntrack.stats.insert_failed)
        .sum::<u64>()
        + r.requests.failed
}

/// Judges `v` against `base`; `run` says whether `v`'s run was long enough.
pub(super) fn outcome(base: Option<&Report>, v: &Report, run: &Sufficiency) -> VariantOutcome {
    let f = failures(v);
    let mk = |kind, text: String| VariantOutcome { kind, text };
    let Some(base) = base else {
        return if f > 0 {
            mk(
                OutcomeKind::Fails,
                format!("fails: {f} drops, insert_failed and failed requests"),
            )
        } else if run.long_enough {
            mk(OutcomeKind::Holds, "holds at the steady state".to_owned())
        } else {
            mk(
                OutcomeKind::Inconclusive,
                format!("inconclusive: no failure yet, but {}", run.reason),
            )
        };
    };
    let b = failures(base);
    if !run.long_enough {
        return mk(
            OutcomeKind::Inconclusive,
            format!(
                "inconclusive ({f} failures against the baseline's {b} so far): {}; run with --set duration={:.0}s",
                run.reason, run.needed_s
            ),
        );
    }
    let kind = match (b, f) {
        (0, 0) => OutcomeKind::Holds,
        (_, 0) => OutcomeKind::Fixed,
        (b, f) if f.saturating_mul(2) <= b => OutcomeKind::Improved,
        (b, f) if f >= b.saturating_mul(2) => OutcomeKind::Worse,
        _ => OutcomeKind::NotFixed,
    };
    let text = match kind {
        OutcomeKind::Holds => "holds at the steady state, as the baseline".to_owned(),
        OutcomeKind::Fixed => {
            format!("fixed: no drop, insert_failed or failed request at the steady state (baseline: {b})")
        }
        OutcomeKind::Improved => format!("improved: {f} failures against the baseline's {b}"),
        OutcomeKind::Worse => format!("worse: {f} failures against the baseline's {b}"),
        _ => format!("not fixed: {f} failures against the baseline's {b}"),
    };
    mk(kind, text)
}

/// Whether a count moved by more than 2× (and by at least 100, so that small numbers do
/// not count).
fn moved(x: u64, y: u64) -> bool {
    x.max(y) >= 100 && (y > x.saturating_mul(2) || x > y.saturating_mul(2))
}

#[allow(clippy::cast_precision_loss)]
fn change(x: u64, y: u64) -> String {
    if x == 0 {
        format!("{x} → {y}")
    } else {
        format!("{x} → {y} (×{:.2})", y as f64 / x as f64)
    }
}

/// What changed by more than 2× on each node of `v` against `base`: the counters, the
/// packets lost there by kind, the DNS entries it held, its CPU, and the mechanisms the
/// numbers point to across nodes (a node that admits flows by `early_drop` and another
/// that drops them; CPU spent on rules by flows no longer dropped at conntrack).
#[must_use]
pub fn node_changes(base: &Report, v: &Report) -> Vec<String> {
    let pair = |name: &str| -> Option<(&crate::report::NodeReport, &crate::report::NodeReport)> {
        Some((
            base.nodes.iter().find(|x| x.name == name)?,
            v.nodes.iter().find(|x| x.name == name)?,
        ))
    };
    let mut out = Vec::new();
    for n in &v.nodes {
        let Some((b, n)) = pair(&n.name) else { continue };
        let (bs, ns) = (&b.conntrack.stats, &n.conntrack.stats);
        let mut changed: Vec<String> = [
            ("drop", bs.drop, ns.drop),
            ("insert_failed", bs.insert_failed, ns.insert_failed),
            ("early_drop", bs.early_drop, ns.early_drop),
            (
                "entries created",
                b.conntrack.entries_created,
                n.conntrack.entries_created,
            ),
        ]
        .into_iter()
        .filter(|(_, x, y)| moved(*x, *y))
        .map(|(k, x, y)| format!("{k} {}", change(x, y)))
        .collect();
        let cpu_moved = (n.cpu.mean_pct > 2.0 * b.cpu.mean_pct || b.cpu.mean_pct > 2.0 * n.cpu.mean_pct)
            && (n.cpu.mean_pct - b.cpu.mean_pct).abs() >= 5.0;
        if cpu_moved {
            changed.push(format!(
                "CPU mean {:.1}% → {:.1}%",
                b.cpu.mean_pct, n.cpu.mean_pct
            ));
        }
        if changed.is_empty() {
            continue;
        }
        let mut line = format!("{}: {}", n.name, changed.join(", "));
        let kinds: std::collections::BTreeSet<&String> =
            b.packet_drops.keys().chain(n.packet_drops.keys()).collect();
        let lost: Vec<String> = kinds
            .into_iter()
            .filter_map(|k| {
                let x = b.packet_drops.get(k).copied().unwrap_or(0);
                let y = n.packet_drops.get(k).copied().unwrap_or(0);
                moved(x, y).then(|| format!("{k} {x} → {y}"))
            })
            .collect();
        if !lost.is_empty() {
            let _ = write!(line, "; packets lost here: {}", lost.join(", "));
        }
        let (bu, nu) = (b.conntrack.dns_udp_entries_end, n.conntrack.dns_udp_entries_end);
        let (bt, nt) = (b.conntrack.dns_tcp_entries_end, n.conntrack.dns_tcp_entries_end);
        if bu != nu || bt != nt {
            let _ = write!(
                line,
                "; DNS entries held at the end: UDP {bu} → {nu}, TCP {bt} → {nt}"
            );
        }
        // A node whose drops rose while another node's early_drop rose: the other node
        // admitted new flows by evicting non-ASSURED entries, and they died here.
        if moved(bs.drop, ns.drop) && ns.drop > bs.drop {
            for m in &v.nodes {
                let Some((mb, mn)) = pair(&m.name) else { continue };
                let (x, y) = (mb.conntrack.stats.early_drop, mn.conntrack.stats.early_drop);
                if m.name != n.name && moved(x, y) && y > x {
                    let _ = write!(
                        line,
                        "; why: {} admitted more new flows by early_drop ({x} → {y}: it evicted non-ASSURED entries, such as the SYN_SENT entries of SYNs dropped further on) and {}'s full table dropped them",
                        m.name, n.name
                    );
                }
            }
        }
        // CPU up while this node's own drops fell: flows that used to die at conntrack
        // (before the nat table) now walk the rules.
        if cpu_moved && n.cpu.mean_pct > b.cpu.mean_pct && ns.drop < bs.drop {
            let _ = write!(
                line,
                "; why: fewer new flows were dropped here at conntrack, before the nat table, so more walked its {:.0} rules per new connection",
                n.rules.mean_per_new_connection
            );
        }
        out.push(line);
    }
    out
}
