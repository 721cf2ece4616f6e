//! Reads the conntrack statistics of one network namespace from
//! `/proc/net/stat/nf_conntrack` (printed by `ct_cpu_seq_show` in
//! `net/netfilter/nf_conntrack_standalone.c`): one row per CPU, hexadecimal, with
//! `entries` (= `nf_conntrack_count` of the reading namespace) repeated on every row
//! and the per-CPU `struct ip_conntrack_stat` counters, which are summed here exactly
//! as `conntrack -S` users sum them. Reading does not reap expired entries.

use serde::Serialize;
use std::process::Command;

/// Column names written to trace CSVs, in order.
pub(crate) const CT_COLUMNS: [&str; 11] = [
    "count",
    "found",
    "invalid",
    "insert",
    "insert_failed",
    "drop",
    "early_drop",
    "clash_resolve",
    "chaintoolong",
    "search_restart",
    "error",
];

/// Conntrack counters of one namespace, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct CtStats {
    pub(crate) count: u64,
    pub(crate) found: u64,
    pub(crate) invalid: u64,
    pub(crate) insert: u64,
    pub(crate) insert_failed: u64,
    pub(crate) drop: u64,
    pub(crate) early_drop: u64,
    pub(crate) clash_resolve: u64,
    pub(crate) chaintoolong: u64,
    pub(crate) search_restart: u64,
    pub(crate) error: u64,
}

impl CtStats {
    /// Values in [`CT_COLUMNS`] order.
    pub(crate) fn values(&self) -> [u64; 11] {
        [
            self.count,
            self.found,
            self.invalid,
            self.insert,
            self.insert_failed,
            self.drop,
            self.early_drop,
            self.clash_resolve,
            self.chaintoolong,
            self.search_restart,
            self.error,
        ]
    }
}

/// Parses the text of `/proc/net/stat/nf_conntrack`.
pub(crate) fn parse_proc_stat(text: &str) -> Result<CtStats, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty nf_conntrack stat file")?
        .split_whitespace()
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let need = |name: &str| col(name).ok_or_else(|| format!("nf_conntrack stat header lacks `{name}`"));
    let entries = need("entries")?;
    let mut s = CtStats::default();
    let mut rows = 0;
    for line in lines {
        let cells: Vec<u64> = line
            .split_whitespace()
            .map(|c| u64::from_str_radix(c, 16).map_err(|e| format!("bad stat cell `{c}`: {e}")))
            .collect::<Result<_, _>>()?;
        if cells.len() != header.len() {
            return Err(format!(
                "stat row has {} cells, header {}",
                cells.len(),
                header.len()
            ));
        }
        let get = |name: &str| col(name).map_or(0, |i| cells[i]);
        s.count = cells[entries];
        s.found += get("found");
        s.invalid += get("invalid");
        s.insert += get("insert");
        s.insert_failed += get("insert_failed");
        s.drop += get("drop");
        s.early_drop += get("early_drop");
        s.clash_resolve += get("clashres");
        s.chaintoolong += get("chainlength");
        s.search_restart += get("search_restart");
        s.error += get("icmp_error");
        rows += 1;
    }
    if rows == 0 {
        return Err("nf_conntrack stat file has no CPU rows".into());
    }
    Ok(s)
}

/// The clash counters of one CPU row (for per-pair attribution in `race-pairs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CpuClash {
    pub(crate) clash_resolve: u64,
    pub(crate) insert_failed: u64,
    pub(crate) drop: u64,
}

/// Parses the per-CPU rows of `/proc/net/stat/nf_conntrack` (row i = CPU i, the
/// kernel prints one row per possible CPU in order) and returns their clash counters.
pub(crate) fn parse_per_cpu(text: &str) -> Result<Vec<CpuClash>, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty nf_conntrack stat file")?
        .split_whitespace()
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("nf_conntrack stat header lacks `{name}`"))
    };
    let (c, f, d) = (col("clashres")?, col("insert_failed")?, col("drop")?);
    let mut rows = Vec::new();
    for line in lines {
        let cells: Vec<u64> = line
            .split_whitespace()
            .map(|x| u64::from_str_radix(x, 16).map_err(|e| format!("bad stat cell `{x}`: {e}")))
            .collect::<Result<_, _>>()?;
        if cells.len() != header.len() {
            return Err(format!(
                "stat row has {} cells, header {}",
                cells.len(),
                header.len()
            ));
        }
        rows.push(CpuClash {
            clash_resolve: cells[c],
            insert_failed: cells[f],
            drop: cells[d],
        });
    }
    if rows.is_empty() {
        return Err("nf_conntrack stat file has no CPU rows".into());
    }
    Ok(rows)
}

/// Where to read the counters from.
#[derive(Debug, Clone)]
pub(crate) enum CtSource {
    /// The namespace this process runs in.
    Own,
    /// A named namespace, read through `ip netns exec NAME cat ...`.
    Netns(String),
}

impl CtSource {
    /// `.` means the process's own namespace, anything else a named one.
    pub(crate) fn from_arg(arg: &str) -> CtSource {
        if arg == "." {
            CtSource::Own
        } else {
            CtSource::Netns(arg.to_owned())
        }
    }

    /// Reads the current counters.
    pub(crate) fn read(&self) -> Result<CtStats, String> {
        let text = match self {
            CtSource::Own => std::fs::read_to_string("/proc/net/stat/nf_conntrack")
                .map_err(|e| format!("reading /proc/net/stat/nf_conntrack: {e}"))?,
            CtSource::Netns(ns) => {
                let out = Command::new("ip")
                    .args(["netns", "exec", ns, "cat", "/proc/net/stat/nf_conntrack"])
                    .output()
                    .map_err(|e| format!("running ip netns exec {ns}: {e}"))?;
                if !out.status.success() {
                    return Err(format!(
                        "ip netns exec {ns} cat /proc/net/stat/nf_conntrack failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
                String::from_utf8_lossy(&out.stdout).into_owned()
            }
        };
        parse_proc_stat(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000064  00000001 00000002 00000000 00000003 00000000 00000000 00000000 00000000 00000004 0000000a 00000005 00000000  00000000 00000000 00000000 00000000
00000064  00000002 00000000 00000000 00000000 00000000 00000000 00000001 00000000 00000004 00000010 00000000 00000001  00000000 00000000 00000000 00000001
";

    #[test]
    fn sums_counters_over_cpus_and_takes_entries_once() {
        let s = parse_proc_stat(SAMPLE).unwrap();
        assert_eq!(s.count, 100);
        assert_eq!(s.clash_resolve, 3);
        assert_eq!(s.found, 2);
        assert_eq!(s.invalid, 3);
        assert_eq!(s.insert_failed, 8);
        assert_eq!(s.drop, 26);
        assert_eq!(s.early_drop, 5);
        assert_eq!(s.chaintoolong, 1);
        assert_eq!(s.error, 1);
        assert_eq!(s.search_restart, 1);
    }

    #[test]
    fn per_cpu_rows_keep_their_order() {
        let rows = parse_per_cpu(SAMPLE).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            CpuClash {
                clash_resolve: 1,
                insert_failed: 4,
                drop: 10
            }
        );
        assert_eq!(
            rows[1],
            CpuClash {
                clash_resolve: 2,
                insert_failed: 4,
                drop: 16
            }
        );
    }

    #[test]
    fn rejects_rows_that_do_not_match_the_header() {
        assert!(parse_proc_stat("entries found\n00000001\n").is_err());
        assert!(parse_proc_stat("entries found\n").is_err());
        assert!(parse_proc_stat("").is_err());
    }
}
