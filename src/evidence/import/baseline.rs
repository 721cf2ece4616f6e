//! The node's observed conntrack counters, read from the bundle and written as the
//! scenario's `baseline:`, which the report compares a run with.

use super::{CONNTRACK_S_BEFORE, META, PROC_STAT_BEFORE, q};
use crate::evidence::bundle::Bundle;
use crate::evidence::ctstat::{self, CounterTable};
use crate::evidence::sysctl::SysctlDump;
use crate::evidence::{EvidenceError, Skipped};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The counters: `conntrack -S` when present, else `/proc/net/stat/nf_conntrack`;
/// minus the `.before` snapshot when the bundle has one.
pub(super) fn counters(
    b: &Bundle,
    warnings: &mut Vec<String>,
    skipped: &mut Vec<Skipped>,
) -> Result<Option<(CounterTable, String)>, EvidenceError> {
    let proc_now = b
        .file(ctstat::PROC_STAT)
        .map(ctstat::parse_proc_stat)
        .transpose()?;
    let s_now = b
        .file(ctstat::CONNTRACK_S)
        .map(ctstat::parse_conntrack_s)
        .transpose()?;
    let (mut table, mut source) = match (s_now, &proc_now) {
        (Some(t), _) => (t, format!("{} ({} CPUs)", ctstat::CONNTRACK_S, 0)),
        (None, Some(t)) => (t.clone(), format!("{} ({} CPUs)", ctstat::PROC_STAT, 0)),
        (None, None) => {
            warnings.push(format!(
                "neither {} nor {}: no baseline counters",
                ctstat::CONNTRACK_S,
                ctstat::PROC_STAT
            ));
            return Ok(None);
        }
    };
    source = source.replace("(0 CPUs)", &format!("({} CPUs)", table.cpus));
    skipped.extend(table.skipped.iter().cloned());
    if let Some(p) = &proc_now {
        table.entries = p.entries;
    }
    let before = match (b.file(CONNTRACK_S_BEFORE), b.file(PROC_STAT_BEFORE)) {
        (Some(t), _) if source.starts_with(ctstat::CONNTRACK_S) => {
            Some(ctstat::parse_conntrack_s(t).map_err(|e| EvidenceError {
                file: CONNTRACK_S_BEFORE.into(),
                ..e
            })?)
        }
        (_, Some(t)) => Some(ctstat::parse_proc_stat(t).map_err(|e| EvidenceError {
            file: PROC_STAT_BEFORE.into(),
            ..e
        })?),
        _ => None,
    };
    if let Some(before) = before {
        table = table.since(&before);
        source.push_str(" minus the snapshot before the window");
    }
    Ok(Some((table, source)))
}

/// Writes the `baseline:` section: the observed counters (`observed`, from
/// [`counters`]) with the window `meta` gives, for the report to compare the run with.
pub(super) fn write_baseline(
    y: &mut String,
    observed: Option<(CounterTable, String)>,
    meta: &BTreeMap<String, String>,
    sysctls: Option<&SysctlDump>,
    name: &str,
) {
    if let Some((t, source)) = observed {
        let window = meta
            .get("window_s")
            .and_then(|w| w.parse::<u64>().ok())
            .filter(|w| *w > 0);
        let _ = writeln!(y, "baseline:");
        let _ = writeln!(y, "  node: {}", q(name));
        let _ = writeln!(y, "  source: {}", q(&source));
        if let Some(w) = window {
            let _ = writeln!(y, "  window: {w}s   # {META}: window_s");
        }
        let _ = writeln!(y, "  counters:");
        let counters_file = source.split(' ').next().unwrap_or_default().to_string();
        let count = t
            .entries
            .map(|e| (e, format!("{}: entries", ctstat::PROC_STAT)))
            .or_else(|| {
                sysctls
                    .and_then(|d| d.values.get("net.netfilter.nf_conntrack_count"))
                    .and_then(|v| Some((v.value.parse().ok()?, v.source.clone())))
            });
        if let Some((c, src)) = count {
            let _ = writeln!(y, "    count: {c}   # {src}");
        }
        for (k, v) in &t.sums {
            if matches!(
                k.as_str(),
                "found"
                    | "invalid"
                    | "ignore"
                    | "insert"
                    | "insert_failed"
                    | "drop"
                    | "early_drop"
                    | "error"
                    | "search_restart"
                    | "clash_resolve"
                    | "chaintoolong"
            ) {
                let _ = writeln!(
                    y,
                    "    {k}: {v}   # {counters_file}: `{k}` summed over {} CPUs",
                    t.cpus
                );
            }
        }
    }
}
