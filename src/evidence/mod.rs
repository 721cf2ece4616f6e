//! The `evidence` module reads what operators collect on a real node when conntrack
//! hurts (`scripts/collect-node-evidence.sh` writes it as one bundle) and turns it into
//! the pieces of a scenario of that node: the kernel profile, sysctls, CPU count and
//! memory, the node's own ruleset and the Services behind kube-proxy's chains, the
//! table's occupancy for a warm start, and the observed counters as a baseline.
//!
//! Every parser is a pure function of the file's text (`parse_*`), returning either
//! the value or an [`EvidenceError`] naming the bundle file, the line and what was
//! wrong; lines a parser cannot use but can live without are returned as
//! [`Skipped`] notes, never dropped silently. `conntrack -L` output is read line by
//! line ([`ctlist::CtListSummary::push_line`]) so a 100 MB listing needs no more memory
//! than its summary. [`bundle`] reads a directory or a tarball with size caps, and
//! [`import`] assembles the scenario text (every derived field commented with the
//! evidence line it came from).
//!
//! Not modelled here: running anything on a node (the collection script does that),
//! or guessing the node's traffic (the scenario leaves `workloads` to the user).

pub mod bundle;
pub mod ctlist;
pub mod ctstat;
pub mod import;
pub mod kernel;
pub mod rules;
pub mod sysctl;

/// A problem in one evidence file, at one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct EvidenceError {
    /// The bundle file (`conntrack-S.txt`).
    pub file: String,
    /// 1-based line (0 when the problem is the file as a whole).
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

impl EvidenceError {
    /// An error in `file` at `line`.
    #[must_use]
    pub fn new(file: &str, line: usize, message: impl Into<String>) -> EvidenceError {
        EvidenceError {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }
}

/// Characters a YAML document may not hold as they are: control characters other than
/// the tab, the line and paragraph separators, the byte-order mark and the
/// non-characters U+FFFE and U+FFFF. Evidence text carrying them is escaped where it
/// becomes a comment or a string of the imported scenario, and refused where it would
/// be carried as it is (`iptables-save`).
pub(crate) fn unsafe_in_yaml(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}')
}

/// Something in the evidence that was left out, and why (reported, never silent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The bundle file.
    pub file: String,
    /// 1-based line (0: the file as a whole).
    pub line: usize,
    /// What was left out and why.
    pub why: String,
}

impl Skipped {
    /// A note about `file` at `line`.
    #[must_use]
    pub fn new(file: &str, line: usize, why: impl Into<String>) -> Skipped {
        Skipped {
            file: file.to_string(),
            line,
            why: why.into(),
        }
    }
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.why)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.why)
        }
    }
}

/// A value taken from the evidence with the place it came from (for the comment the
/// scenario carries next to it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// `file:line` (or `file` alone).
    pub source: String,
}

impl<T> Sourced<T> {
    /// `value` from `file` at `line` (0: the whole file).
    pub fn new(value: T, file: &str, line: usize) -> Sourced<T> {
        let source = if line == 0 {
            file.to_string()
        } else {
            format!("{file}:{line}")
        };
        Sourced { value, source }
    }
}
