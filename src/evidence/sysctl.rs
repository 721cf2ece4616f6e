//! `sysctl` output (`name = value` lines), `/proc/meminfo`, `nproc` and `uname -r`.

use super::{EvidenceError, Skipped, Sourced};
use std::collections::BTreeMap;

/// The `sysctl` file of a bundle.
pub const SYSCTL: &str = "sysctl.txt";
/// The `/proc/meminfo` file of a bundle.
pub const MEMINFO: &str = "meminfo.txt";
/// The `nproc` file of a bundle.
pub const NPROC: &str = "nproc.txt";

/// Sysctls by name, each with its line, values with whitespace runs made one space
/// (`ip_local_port_range` is printed with a tab).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SysctlDump {
    /// Name → value and line.
    pub values: BTreeMap<String, Sourced<String>>,
    /// Lines that are not `name = value`.
    pub skipped: Vec<Skipped>,
}

/// Parses `sysctl -a`-style output. Lines that are not `name = value` (sysctl's own
/// `permission denied` notes on stderr, if merged) are listed, not fatal.
///
/// # Errors
/// A file with no `name = value` line at all.
pub fn parse_sysctl(text: &str) -> Result<SysctlDump, EvidenceError> {
    let mut d = SysctlDump::default();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let parsed = t
            .split_once(" = ")
            .or_else(|| t.split_once('='))
            .and_then(|(k, v)| {
                let k = k.trim();
                (!k.is_empty() && k.contains('.') && !k.contains(char::is_whitespace))
                    .then_some((k, v.trim()))
            });
        match parsed {
            Some((k, v)) => {
                let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
                d.values.insert(k.to_string(), Sourced::new(v, SYSCTL, i + 1));
            }
            None => d.skipped.push(Skipped::new(
                SYSCTL,
                i + 1,
                format!("not `name = value`: `{}`", super::ctstat::clip(t)),
            )),
        }
    }
    if d.values.is_empty() {
        return Err(EvidenceError::new(
            SYSCTL,
            0,
            "no `name = value` line (empty or garbled file)",
        ));
    }
    Ok(d)
}

/// The least memory a scenario's node may have (the scenario refuses less).
const MIN_NODE_MEMORY: u64 = 64 << 20;

/// `MemTotal` of `/proc/meminfo`, in bytes.
///
/// # Errors
/// No `MemTotal:` line, or one whose value is not `N kB` or is below 64 MiB.
pub fn parse_meminfo(text: &str) -> Result<Sourced<u64>, EvidenceError> {
    for (i, line) in text.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("MemTotal:") {
            let mut f = rest.split_whitespace();
            let n: u64 = f.next().and_then(|v| v.parse().ok()).ok_or_else(|| {
                EvidenceError::new(
                    MEMINFO,
                    i + 1,
                    format!("`{}`: expected `MemTotal: N kB`", line.trim()),
                )
            })?;
            if f.next() != Some("kB") {
                return Err(EvidenceError::new(MEMINFO, i + 1, "expected the unit `kB`"));
            }
            let bytes = n.saturating_mul(1024);
            if bytes < MIN_NODE_MEMORY {
                return Err(EvidenceError::new(
                    MEMINFO,
                    i + 1,
                    format!("MemTotal {n} kB is below 64 MiB: not a node's memory"),
                ));
            }
            return Ok(Sourced::new(bytes, MEMINFO, i + 1));
        }
    }
    Err(EvidenceError::new(MEMINFO, 0, "no `MemTotal:` line"))
}

/// The CPU count `nproc` printed.
///
/// # Errors
/// Not one number in 1..=4096.
pub fn parse_nproc(text: &str) -> Result<Sourced<u32>, EvidenceError> {
    let t = text.trim();
    match t.parse::<u32>() {
        Ok(n) if (1..=4096).contains(&n) => Ok(Sourced::new(n, NPROC, 1)),
        _ => Err(EvidenceError::new(
            NPROC,
            1,
            format!("`{}` is not a CPU count in 1..=4096", super::ctstat::clip(t)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_lines_keep_their_line_numbers_and_odd_lines_are_listed() {
        let d = parse_sysctl("net.netfilter.nf_conntrack_max = 262144\nsysctl: permission denied on key 'x'\nnet.ipv4.ip_local_port_range = 32768\t60999\n").unwrap();
        assert_eq!(d.values["net.netfilter.nf_conntrack_max"].value, "262144");
        assert_eq!(d.values["net.ipv4.ip_local_port_range"].value, "32768 60999");
        assert_eq!(d.values["net.ipv4.ip_local_port_range"].source, "sysctl.txt:3");
        assert_eq!(d.skipped[0].line, 2);
        assert!(parse_sysctl("garbage\n").is_err());
    }

    #[test]
    fn meminfo_and_nproc() {
        assert_eq!(
            parse_meminfo("MemFree: 1 kB\nMemTotal:       24573712 kB\n")
                .unwrap()
                .value,
            24_573_712 * 1024
        );
        assert_eq!(parse_meminfo("MemTotal: 12 MB\n").unwrap_err().line, 1);
        // Found by the evidence_import fuzz target: a garbled MemTotal gave a node the
        // scenario refuses; it is an error naming the line now, like a CPU count of 0.
        let e = parse_meminfo("MemFree: 1 kB\nMemTotal: 32 kB\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("below 64 MiB"), "{e}");
        assert_eq!(parse_meminfo("MemTotal: 65536 kB\n").unwrap().value, 64 << 20);
        assert_eq!(parse_nproc("12\n").unwrap().value, 12);
        assert!(parse_nproc("0").is_err());
    }
}
