//! How each variant of a comparison moves the `insert_failed` onset against the
//! baseline, and why, in terms of what clashed (the report's clash census) and how many
//! A/AAAA pairs the race model raced.

use crate::conntrack::ClashKind;
use crate::report::Report;
use serde::Serialize;
use std::collections::BTreeMap;

/// What a variant did to the `insert_failed` onset.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "effect")]
pub enum OnsetEffect {
    /// Neither run had `insert_failed`.
    Absent,
    /// The baseline had it; the variant has none.
    Removed,
    /// The variant has it; the baseline had none.
    Introduced {
        /// The variant's onset, seconds.
        at_s: f64,
    },
    /// Both have it, within one sample of each other.
    Left {
        /// The variant's onset, seconds.
        at_s: f64,
    },
    /// Both have it, the variant's later or earlier by more than a sample.
    Moved {
        /// The baseline's onset, seconds.
        from_s: f64,
        /// The variant's onset, seconds.
        to_s: f64,
    },
}

/// The earliest `insert_failed` onset over the nodes, seconds.
#[must_use]
pub fn insert_failed_onset(r: &Report) -> Option<f64> {
    r.nodes
        .iter()
        .filter_map(|n| n.onset_s.insert_failed)
        .min_by(f64::total_cmp)
}

/// Clashes by kind summed over nodes: (`insert_failed`, `clash_resolve`).
#[must_use]
pub fn clashes_by_kind(r: &Report) -> BTreeMap<ClashKind, (u64, u64)> {
    let mut m: BTreeMap<ClashKind, (u64, u64)> = BTreeMap::new();
    for n in &r.nodes {
        for c in &n.conntrack.clashes {
            let e = m.entry(c.kind).or_default();
            e.0 += c.insert_failed;
            e.1 += c.clash_resolve;
        }
    }
    m
}

/// The effect of `variant` on the onset against `base`; `sample_s` is the tolerance.
#[must_use]
pub fn effect(base: &Report, variant: &Report, sample_s: f64) -> OnsetEffect {
    match (insert_failed_onset(base), insert_failed_onset(variant)) {
        (None, None) => OnsetEffect::Absent,
        (Some(_), None) => OnsetEffect::Removed,
        (None, Some(at_s)) => OnsetEffect::Introduced { at_s },
        (Some(a), Some(b)) if (a - b).abs() <= sample_s => OnsetEffect::Left { at_s: b },
        (Some(from_s), Some(to_s)) => OnsetEffect::Moved { from_s, to_s },
    }
}

/// One line: the effect, then why, from the clash census and the raced pairs.
#[must_use]
pub fn explain(base: &Report, variant: &Report, sample_s: f64) -> String {
    let what = match effect(base, variant, sample_s) {
        OnsetEffect::Absent => "no insert_failed, as in the baseline".to_owned(),
        OnsetEffect::Removed => format!(
            "removes it (baseline t={:.3}s)",
            insert_failed_onset(base).unwrap_or_default()
        ),
        OnsetEffect::Introduced { at_s } => format!("introduces it at t={at_s:.3}s"),
        OnsetEffect::Left { at_s } => format!("leaves it at t={at_s:.3}s"),
        OnsetEffect::Moved { from_s, to_s } => format!(
            "moves it {} from t={from_s:.3}s to t={to_s:.3}s",
            if to_s > from_s { "later" } else { "earlier" }
        ),
    };
    let (b, v) = (clashes_by_kind(base), clashes_by_kind(variant));
    let mut kinds: Vec<ClashKind> = b.keys().chain(v.keys()).copied().collect();
    kinds.sort();
    kinds.dedup();
    let census: Vec<String> = kinds
        .iter()
        .map(|k| {
            let (bi, bc) = b.get(k).copied().unwrap_or_default();
            let (vi, vc) = v.get(k).copied().unwrap_or_default();
            format!(
                "{} insert_failed {bi} -> {vi}, clash_resolve {bc} -> {vc}",
                k.name()
            )
        })
        .collect();
    let pairs = format!(
        "A/AAAA pairs raced {} -> {} (pod DNS queries {} -> {})",
        base.dns.pairs_raced, variant.dns.pairs_raced, base.dns.queries, variant.dns.queries
    );
    let why = why(&b, &v, base, variant);
    if census.is_empty() {
        format!("{what}: {why}; {pairs}")
    } else {
        format!("{what}: {why}; {}; {pairs}", census.join(", "))
    }
}

/// The reason, read off the numbers.
fn why(
    b: &BTreeMap<ClashKind, (u64, u64)>,
    v: &BTreeMap<ClashKind, (u64, u64)>,
    base: &Report,
    variant: &Report,
) -> &'static str {
    let sum = |m: &BTreeMap<ClashKind, (u64, u64)>| m.values().fold((0, 0), |a, c| (a.0 + c.0, a.1 + c.1));
    let (bi, _) = sum(b);
    let base_resolved = |m: &BTreeMap<ClashKind, (u64, u64)>| sum(m).1;
    let (vi, vc) = sum(v);
    let udp_diff = |m: &BTreeMap<ClashKind, (u64, u64)>| {
        m.get(&ClashKind::UdpPairDifferentBackends)
            .map_or(0, |c| c.0 + c.1)
    };
    if bi > 0 && vi == 0 && vc > 0 {
        return "the clashes still happen but the kernel resolves them at confirm (clash_resolve), so none fails";
    }
    let cache_answered = variant
        .dns
        .node_local
        .as_ref()
        .is_some_and(|n| n.hits + n.misses > 0);
    if bi + base_resolved(b) > 0 && vi + vc == 0 && cache_answered {
        return "pods' queries went to NodeLocal DNSCache, whose traffic is NOTRACKed: the pairs created no conntrack entry to clash";
    }
    if base.dns.pairs_raced > 0 && variant.dns.pairs_raced == 0 {
        return if variant.dns.queries == 0 {
            "pods sent no DNS query through conntrack, so no A/AAAA pair could race"
        } else {
            "no A/AAAA pair raced: the two queries no longer leave together from two threads on one socket"
        };
    }
    if vi > 0 && udp_diff(v) == 0 && udp_diff(b) > 0 {
        return "the pairs still race but reach the same backend: merged at confirm (still counted as insert_failed on this kernel)";
    }
    if vi == bi {
        return "the same clashes: this variant does not change what races at confirm";
    }
    if vi > bi {
        "more clashes at confirm"
    } else {
        "fewer clashes at confirm"
    }
}
