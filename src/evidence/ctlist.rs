//! `conntrack -L` (or `/proc/net/nf_conntrack`) summarised for a warm start: entries
//! counted by protocol, TCP state and `[ASSURED]`, with a histogram of their
//! remaining timeouts. Lines are read one at a time ([`CtListSummary::push_line`]), so
//! the memory used is that of the summary (a few thousand histogram cells per group),
//! whatever the size of the listing; past [`CtListSummary::cap`] entries the rest is
//! counted, not read.

use super::{EvidenceError, Skipped};
use std::collections::BTreeMap;

/// The `conntrack -L` file of a bundle.
pub const CONNTRACK_L: &str = "conntrack-L.txt";

/// Remaining timeouts up to this many seconds are kept exactly; longer ones in 60 s
/// cells (an ESTABLISHED entry's 5 days then take 7,200 cells, not 432,000).
const EXACT_SECONDS: u32 = 600;

/// How many malformed lines are quoted by number (the rest are counted).
const QUOTED_BAD_LINES: usize = 5;

/// Entries of one kind.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey {
    /// `tcp`, `udp` or `icmp`.
    pub protocol: String,
    /// TCP state as printed (`TIME_WAIT`); `None` for UDP/ICMP.
    pub state: Option<String>,
    /// `[ASSURED]`.
    pub assured: bool,
}

/// A slice of a group for a warm start: `count` entries whose remaining timeouts run
/// from `shortest_s` to `longest_s` seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WarmSlice {
    /// Which entries.
    pub key: GroupKey,
    /// How many.
    pub count: u64,
    /// Shortest remaining timeout (s).
    pub shortest_s: u32,
    /// Longest remaining timeout (s).
    pub longest_s: u32,
}

/// The summary of a listing.
#[derive(Clone, Debug, Default)]
pub struct CtListSummary {
    groups: BTreeMap<GroupKey, BTreeMap<u32, u64>>,
    /// Entries past the cap (counted, not read).
    over_cap: u64,
    cap: u64,
    entries: u64,
    lines: u64,
    bad: u64,
    bad_quoted: Vec<Skipped>,
    /// Entries of protocols or families the model does not track, by name.
    foreign: BTreeMap<String, u64>,
    /// What `conntrack` itself said it listed (`N flow entries have been shown`).
    reported_total: Option<u64>,
    /// The collection script's note that it truncated the listing (`# truncated ...`).
    truncated_note: Option<String>,
}

impl CtListSummary {
    /// An empty summary reading at most `cap` entries.
    #[must_use]
    pub fn new(cap: u64) -> CtListSummary {
        CtListSummary {
            cap,
            ..CtListSummary::default()
        }
    }

    /// The entry cap.
    #[must_use]
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Entries summarised.
    #[must_use]
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Reads one line (`line_no` is 1-based).
    pub fn push_line(&mut self, line_no: usize, line: &str) {
        self.lines += 1;
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        if let Some(rest) = line.strip_prefix('#') {
            // The collection script's own notes (`# truncated at N lines of M`).
            if rest.contains("truncated") {
                self.truncated_note = Some(rest.trim().to_string());
            }
            return;
        }
        if line.starts_with("conntrack v") && line.contains("flow entries have been shown") {
            self.reported_total = line
                .split_whitespace()
                .skip_while(|t| !t.ends_with(':'))
                .nth(1)
                .and_then(|t| t.parse().ok());
            return;
        }
        let toks: Vec<&str> = line.split_whitespace().collect();
        // `/proc/net/nf_conntrack` prefixes the family: `ipv4 2 tcp 6 ...`.
        let toks: &[&str] = match toks.first() {
            Some(&"ipv4") if toks.len() > 2 => &toks[2..],
            Some(&"ipv6") => {
                *self.foreign.entry("ipv6".into()).or_insert(0) += 1;
                return;
            }
            _ => &toks,
        };
        match parse_entry(toks) {
            Some((key, timeout)) => {
                if !matches!(key.protocol.as_str(), "tcp" | "udp" | "icmp") {
                    *self.foreign.entry(key.protocol).or_insert(0) += 1;
                    return;
                }
                if self.entries >= self.cap {
                    self.over_cap += 1;
                    return;
                }
                self.entries += 1;
                let cell = if timeout <= EXACT_SECONDS {
                    timeout
                } else {
                    timeout / 60 * 60
                };
                *self.groups.entry(key).or_default().entry(cell).or_insert(0) += 1;
            }
            None => {
                self.bad += 1;
                if self.bad_quoted.len() < QUOTED_BAD_LINES {
                    self.bad_quoted.push(Skipped::new(
                        CONNTRACK_L,
                        line_no,
                        format!(
                            "not a conntrack entry (`PROTO NUM TIMEOUT [STATE] src=... [ASSURED]`): `{}`",
                            super::ctstat::clip(line)
                        ),
                    ));
                }
            }
        }
    }

    /// Everything left out, as notes.
    #[must_use]
    pub fn skipped(&self) -> Vec<Skipped> {
        let mut out = self.bad_quoted.clone();
        if self.bad > self.bad_quoted.len() as u64 {
            out.push(Skipped::new(
                CONNTRACK_L,
                0,
                format!(
                    "{} malformed lines in all (the first {} are listed above)",
                    self.bad,
                    self.bad_quoted.len()
                ),
            ));
        }
        for (name, n) in &self.foreign {
            out.push(Skipped::new(
                CONNTRACK_L,
                0,
                format!("{n} entries of `{name}`: the model tracks IPv4 tcp, udp and icmp; not warm-started"),
            ));
        }
        if self.over_cap > 0 {
            out.push(Skipped::new(
                CONNTRACK_L,
                0,
                format!(
                    "{} entries past the cap of {} were counted but not summarised; the warm start holds the first {}",
                    self.over_cap, self.cap, self.cap
                ),
            ));
        }
        if let Some(note) = &self.truncated_note {
            out.push(Skipped::new(
                CONNTRACK_L,
                0,
                format!(
                    "the collection script truncated the listing ({note}): the warm start is a lower bound"
                ),
            ));
        }
        if let Some(total) = self.reported_total
            && total > self.entries + self.over_cap + self.foreign.values().sum::<u64>() + self.bad
        {
            out.push(Skipped::new(
                CONNTRACK_L,
                0,
                format!(
                    "conntrack reported {total} entries but the file holds {}: the listing is incomplete",
                    self.entries + self.over_cap
                ),
            ));
        }
        out
    }

    /// The summary as warm-start slices: each group cut into at most `per_group`
    /// slices of about equal counts, in timeout order.
    #[must_use]
    pub fn warm_slices(&self, per_group: usize) -> Vec<WarmSlice> {
        let per_group = per_group.max(1) as u64;
        let mut out = Vec::new();
        for (key, hist) in &self.groups {
            let total: u64 = hist.values().sum();
            let target = total.div_ceil(per_group).max(1);
            let mut cur: Option<WarmSlice> = None;
            for (&t, &n) in hist {
                let s = cur.get_or_insert(WarmSlice {
                    key: key.clone(),
                    count: 0,
                    shortest_s: t,
                    longest_s: t,
                });
                s.count += n;
                s.longest_s = t;
                if s.count >= target
                    && let Some(done) = cur.take()
                {
                    out.push(done);
                }
            }
            if let Some(done) = cur {
                out.push(done);
            }
        }
        out
    }
}

/// `PROTO NUM TIMEOUT [STATE] key=value... [FLAGS]...` → (group, timeout seconds).
fn parse_entry(toks: &[&str]) -> Option<(GroupKey, u32)> {
    let proto = *toks.first()?;
    if !proto.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    toks.get(1)?.parse::<u16>().ok()?;
    let timeout: u32 = toks.get(2)?.parse().ok()?;
    let mut rest = &toks[3..];
    let state = if proto == "tcp" {
        let s = *rest.first()?;
        if !s.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            return None;
        }
        rest = &rest[1..];
        Some(s.to_string())
    } else {
        None
    };
    if !rest.iter().any(|t| t.starts_with("src=")) {
        return None;
    }
    let assured = rest.contains(&"[ASSURED]");
    Some((
        GroupKey {
            protocol: proto.to_string(),
            state,
            assured,
        },
        timeout,
    ))
}

/// Summarises a whole listing held in memory (the bundle reader streams files
/// instead).
///
/// # Errors
/// A non-empty listing in which no line is a conntrack entry (a garbled file), naming
/// the first bad line.
pub fn parse_conntrack_list(text: &str, cap: u64) -> Result<CtListSummary, EvidenceError> {
    let mut s = CtListSummary::new(cap);
    for (i, line) in text.lines().enumerate() {
        s.push_line(i + 1, line);
    }
    s.check()?;
    Ok(s)
}

impl CtListSummary {
    /// An error when lines were read but none was an entry (a garbled file).
    ///
    /// # Errors
    /// As said, naming the first bad line.
    pub fn check(&self) -> Result<(), EvidenceError> {
        if self.entries == 0 && self.over_cap == 0 && self.foreign.is_empty() && self.bad > 0 {
            let first = self.bad_quoted.first().map_or(0, |s| s.line);
            return Err(EvidenceError::new(
                CONNTRACK_L,
                first,
                format!(
                    "none of its {} non-empty lines is a conntrack entry (`tcp 6 115 TIME_WAIT src=... dst=... sport=... dport=... [ASSURED]`)",
                    self.bad
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = "tcp      6 115 TIME_WAIT src=10.10.1.2 dst=10.96.0.10 sport=40001 dport=80 src=10.10.2.2 dst=10.10.1.2 sport=8080 dport=40001 [ASSURED] mark=0 use=1\n\
tcp      6 3 TIME_WAIT src=10.10.1.2 dst=10.96.0.10 sport=40002 dport=80 src=10.10.2.2 dst=10.10.1.2 sport=8080 dport=40002 [ASSURED] mark=0 use=1\n\
udp      17 29 src=10.10.1.2 dst=10.96.0.10 sport=5000 dport=53 [UNREPLIED] src=10.10.2.2 dst=10.10.1.2 sport=53 dport=5000 mark=0 use=1\n\
tcp      6 431999 ESTABLISHED src=10.10.1.2 dst=10.96.0.10 sport=40003 dport=80 src=10.10.2.2 dst=10.10.1.2 sport=8080 dport=40003 [ASSURED] mark=0 use=1\n\
conntrack v1.4.7 (conntrack-tools): 4 flow entries have been shown.\n";

    #[test]
    fn entries_are_grouped_by_protocol_state_and_assured() {
        let s = parse_conntrack_list(LISTING, 100).unwrap();
        assert_eq!(s.entries(), 4);
        let slices = s.warm_slices(4);
        let tw: Vec<_> = slices
            .iter()
            .filter(|x| x.key.state.as_deref() == Some("TIME_WAIT"))
            .collect();
        assert_eq!(tw.iter().map(|x| x.count).sum::<u64>(), 2);
        assert_eq!((tw[0].shortest_s, tw.last().unwrap().longest_s), (3, 115));
        let est = slices
            .iter()
            .find(|x| x.key.state.as_deref() == Some("ESTABLISHED"))
            .unwrap();
        assert_eq!(est.shortest_s, 431_940, "long timeouts land in 60 s cells");
        let udp = slices.iter().find(|x| x.key.protocol == "udp").unwrap();
        assert!(!udp.key.assured);
        assert!(s.skipped().is_empty(), "{:?}", s.skipped());
    }

    #[test]
    fn garbled_lines_are_listed_and_a_wholly_garbled_file_is_an_error() {
        let text =
            format!("{LISTING}garbage here\nipv6 10 tcp 6 1 ESTABLISHED src=::1 dst=::1 sport=1 dport=2\n");
        let s = parse_conntrack_list(&text, 100).unwrap();
        let notes = s.skipped();
        assert!(
            notes
                .iter()
                .any(|n| n.line == 6 && n.why.contains("not a conntrack entry")),
            "{notes:?}"
        );
        assert!(notes.iter().any(|n| n.why.contains("`ipv6`")), "{notes:?}");
        let e = parse_conntrack_list("hello\nworld\n", 100).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), (CONNTRACK_L, 1));
    }

    #[test]
    fn the_cap_bounds_what_is_summarised_and_says_so() {
        let s = parse_conntrack_list(LISTING, 2).unwrap();
        assert_eq!(s.entries(), 2);
        assert!(s.skipped().iter().any(|n| n.why.contains("past the cap of 2")));
    }
}
