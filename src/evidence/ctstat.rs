//! The conntrack counters: `conntrack -S` text (both formats: with `ignore=` on
//! older kernels; with `clash_resolve=`/`chaintoolong=` on newer ones) and
//! `/proc/net/stat/nf_conntrack`'s hexadecimal table, whose columns are read from its
//! header (they changed across kernels), not from fixed positions.

use super::{EvidenceError, Skipped};
use std::collections::BTreeMap;

/// The `conntrack -S` file of a bundle.
pub const CONNTRACK_S: &str = "conntrack-S.txt";
/// The `/proc/net/stat/nf_conntrack` file of a bundle.
pub const PROC_STAT: &str = "nf_conntrack-stat.txt";

/// Which counter generation a dump shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterFormat {
    /// With `ignore` (kernels before the 5.x counter rework).
    WithIgnore,
    /// With `clash_resolve` and `chaintoolong` (newer kernels).
    WithClashResolve,
    /// Neither (a format this reader does not know; the counters are still summed).
    Other,
}

/// Counters summed over CPUs, under their `conntrack -S` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterTable {
    /// CPUs (rows) read.
    pub cpus: usize,
    /// `conntrack -S` name → sum over CPUs.
    pub sums: BTreeMap<String, u64>,
    /// `nf_conntrack_count` when the dump carries it (`/proc`'s `entries` column).
    pub entries: Option<u64>,
    /// The generation.
    pub format: CounterFormat,
    /// Names the file had that no `conntrack -S` counter corresponds to.
    pub skipped: Vec<Skipped>,
}

impl CounterTable {
    /// A counter's sum (`None` when the dump does not have it).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<u64> {
        self.sums.get(name).copied()
    }

    /// Each counter minus the same counter of `before` (saturating; counters only
    /// grow, so a smaller value means the node rebooted or the files were swapped).
    #[must_use]
    pub fn since(&self, before: &CounterTable) -> CounterTable {
        let sums = self
            .sums
            .iter()
            .map(|(k, v)| (k.clone(), v.saturating_sub(before.get(k).unwrap_or(0))))
            .collect();
        CounterTable { sums, ..self.clone() }
    }
}

fn format_of(sums: &BTreeMap<String, u64>) -> CounterFormat {
    if sums.contains_key("clash_resolve") || sums.contains_key("chaintoolong") {
        CounterFormat::WithClashResolve
    } else if sums.contains_key("ignore") {
        CounterFormat::WithIgnore
    } else {
        CounterFormat::Other
    }
}

/// The names `conntrack -S` prints (any generation).
const KNOWN: [&str; 12] = [
    "found",
    "invalid",
    "ignore",
    "insert",
    "insert_failed",
    "drop",
    "early_drop",
    "error",
    "search_restart",
    "clash_resolve",
    "chaintoolong",
    "entries",
];

/// Parses `conntrack -S`: one line per CPU, `cpu=N` then `name=value` pairs (a tab or
/// spaces between them, a trailing space allowed).
///
/// # Errors
/// A line that is not `cpu=N name=value...`, a value that is not a decimal number, a
/// CPU given twice, or no CPU line at all; each names the line.
pub fn parse_conntrack_s(text: &str) -> Result<CounterTable, EvidenceError> {
    let mut sums: BTreeMap<String, u64> = BTreeMap::new();
    let mut cpus = std::collections::BTreeSet::new();
    let mut skipped = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        let Some(cpu) = first.strip_prefix("cpu=") else {
            return Err(EvidenceError::new(
                CONNTRACK_S,
                n,
                format!("expected `cpu=N name=value ...`, found `{}`", clip(line)),
            ));
        };
        let cpu: u32 = cpu.parse().map_err(|_| {
            EvidenceError::new(
                CONNTRACK_S,
                n,
                format!("`{first}`: the CPU number is not a number"),
            )
        })?;
        if !cpus.insert(cpu) {
            return Err(EvidenceError::new(
                CONNTRACK_S,
                n,
                format!("cpu={cpu} appears twice"),
            ));
        }
        for f in fields {
            let Some((k, v)) = f.split_once('=') else {
                return Err(EvidenceError::new(
                    CONNTRACK_S,
                    n,
                    format!("`{}` is not `name=value`", clip(f)),
                ));
            };
            let v: u64 = v.parse().map_err(|_| {
                EvidenceError::new(
                    CONNTRACK_S,
                    n,
                    format!("`{}`: the value is not a decimal number", clip(f)),
                )
            })?;
            if !KNOWN.contains(&k) && !sums.contains_key(k) {
                skipped.push(Skipped::new(
                    CONNTRACK_S,
                    n,
                    format!("counter `{k}` is not one the model produces; kept out of the baseline"),
                ));
            }
            let e = sums.entry(k.to_string()).or_insert(0);
            *e = e.saturating_add(v);
        }
    }
    if cpus.is_empty() {
        return Err(EvidenceError::new(
            CONNTRACK_S,
            0,
            "no `cpu=N ...` line (empty or truncated file)",
        ));
    }
    let format = format_of(&sums);
    Ok(CounterTable {
        cpus: cpus.len(),
        sums,
        entries: None,
        format,
        skipped,
    })
}

/// The `conntrack -S` name of a `/proc/net/stat/nf_conntrack` column, or `None` for
/// columns `conntrack -S` does not print.
fn proc_column_name(col: &str) -> Option<&'static str> {
    Some(match col {
        "found" => "found",
        "invalid" => "invalid",
        "ignore" => "ignore",
        "insert" => "insert",
        "insert_failed" => "insert_failed",
        "drop" => "drop",
        "early_drop" => "early_drop",
        "icmp_error" => "error",
        "search_restart" => "search_restart",
        "clashres" => "clash_resolve",
        "chainlength" => "chaintoolong",
        _ => return None,
    })
}

/// Parses `/proc/net/stat/nf_conntrack`: a header of column names, then one row of
/// hexadecimal numbers per CPU. `entries` (the namespace's count, the same on every
/// row) is taken from the first row, not summed.
///
/// # Errors
/// No header, a row whose width differs from the header's, a field that is not
/// hexadecimal, no row; each names the line.
pub fn parse_proc_stat(text: &str) -> Result<CounterTable, EvidenceError> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((hi, header)) = lines.next() else {
        return Err(EvidenceError::new(PROC_STAT, 0, "empty file (no header line)"));
    };
    let cols: Vec<&str> = header.split_whitespace().collect();
    if !cols.contains(&"entries") {
        return Err(EvidenceError::new(
            PROC_STAT,
            hi + 1,
            "the first line is not the header of column names (it has no `entries` column)",
        ));
    }
    let mut skipped = Vec::new();
    for c in &cols {
        if *c != "entries" && proc_column_name(c).is_none() {
            skipped.push(Skipped::new(
                PROC_STAT,
                hi + 1,
                format!("column `{c}` has no `conntrack -S` counter; not used"),
            ));
        }
    }
    let mut sums: BTreeMap<String, u64> = BTreeMap::new();
    let mut entries = None;
    let mut rows = 0;
    for (i, line) in lines {
        let vals: Vec<&str> = line.split_whitespace().collect();
        if vals.len() != cols.len() {
            return Err(EvidenceError::new(
                PROC_STAT,
                i + 1,
                format!(
                    "{} fields where the header names {} columns (a truncated or garbled row)",
                    vals.len(),
                    cols.len()
                ),
            ));
        }
        for (c, v) in cols.iter().zip(&vals) {
            let v = u64::from_str_radix(v, 16).map_err(|_| {
                EvidenceError::new(
                    PROC_STAT,
                    i + 1,
                    format!("`{}` in column `{c}` is not hexadecimal", clip(v)),
                )
            })?;
            if *c == "entries" {
                entries.get_or_insert(v);
            } else if let Some(name) = proc_column_name(c) {
                let e = sums.entry(name.to_string()).or_insert(0);
                *e = e.saturating_add(v);
            }
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(EvidenceError::new(
            PROC_STAT,
            hi + 1,
            "a header but no CPU row (truncated file)",
        ));
    }
    let format = if cols.contains(&"clashres") || cols.contains(&"chainlength") {
        CounterFormat::WithClashResolve
    } else {
        format_of(&sums)
    };
    Ok(CounterTable {
        cpus: rows,
        sums,
        entries,
        format,
        skipped,
    })
}

/// At most 60 characters of `s`, for messages.
pub(crate) fn clip(s: &str) -> String {
    if s.chars().count() <= 60 {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(57).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_conntrack_s_formats_are_summed_over_cpus() {
        let old = "cpu=0 found=0 invalid=685 ignore=11379 insert=0 insert_failed=0 drop=0 early_drop=0 error=677 search_restart=3\ncpu=1 found=2 invalid=1 ignore=1 insert=0 insert_failed=4 drop=5 early_drop=0 error=0 search_restart=0\n";
        let t = parse_conntrack_s(old).unwrap();
        assert_eq!(
            (t.cpus, t.get("invalid"), t.get("ignore"), t.get("drop")),
            (2, Some(686), Some(11380), Some(5))
        );
        assert_eq!(t.format, CounterFormat::WithIgnore);
        let new = "cpu=0   \tfound=0 invalid=0 insert=0 insert_failed=3 drop=3 early_drop=0 error=0 search_restart=0 clash_resolve=7 chaintoolong=0 \n";
        let t = parse_conntrack_s(new).unwrap();
        assert_eq!(
            (t.get("insert_failed"), t.get("clash_resolve")),
            (Some(3), Some(7))
        );
        assert_eq!(t.format, CounterFormat::WithClashResolve);
        assert!(t.skipped.is_empty());
    }

    #[test]
    fn garbled_conntrack_s_names_the_line() {
        let e = parse_conntrack_s("cpu=0 found=1\ncpu=1 found=zz\n").unwrap_err();
        assert_eq!((e.file.as_str(), e.line), (CONNTRACK_S, 2));
        assert!(e.message.contains("not a decimal"), "{e}");
        let e = parse_conntrack_s("").unwrap_err();
        assert!(e.message.contains("truncated"), "{e}");
        let e = parse_conntrack_s("entries 12\n").unwrap_err();
        assert_eq!(e.line, 1);
    }

    #[test]
    fn proc_stat_columns_are_read_from_the_header() {
        // 6.18's header (chainlength, no delete_list) and an older one (delete_list,
        // no clashres): the same counters land under the same names.
        let new = "entries clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n000003e8  00000002 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001 00000913 00000000 00000000  00000000 00000000 00000000 00000000\n000003e8  00000001 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001 00000000 00000000  00000000 00000000 00000000 00000000\n";
        let t = parse_proc_stat(new).unwrap();
        assert_eq!(t.entries, Some(1000));
        assert_eq!(
            (t.get("drop"), t.get("clash_resolve"), t.get("insert_failed")),
            (Some(0x914), Some(3), Some(1))
        );
        assert_eq!(t.format, CounterFormat::WithClashResolve);
        let old = "entries  searched found new invalid ignore delete delete_list insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n00000010  00000000 00000005 00000000 00000000 0000000a 00000000 00000000 00000000 00000000 00000002 00000000 00000000  00000000 00000000 00000000 00000000\n";
        let t = parse_proc_stat(old).unwrap();
        assert_eq!(
            (t.get("found"), t.get("ignore"), t.get("drop")),
            (Some(5), Some(10), Some(2))
        );
        assert!(t.skipped.iter().any(|s| s.why.contains("`searched`")));
    }

    #[test]
    fn truncated_proc_stat_rows_are_errors_with_their_line() {
        let e = parse_proc_stat("entries drop\n0001\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_proc_stat("entries drop\n").unwrap_err();
        assert!(e.message.contains("no CPU row"), "{e}");
        let e = parse_proc_stat("entries drop\n0001 zz\n").unwrap_err();
        assert!(e.message.contains("hexadecimal"), "{e}");
    }
}
