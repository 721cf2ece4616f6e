//! Problems found while loading a scenario, each located by file, line, column and
//! field path, or by the `--set` override that introduced it.

use std::fmt;

/// One segment of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathSegment {
    /// A mapping key (`rate`, or a whole sysctl name).
    Key(String),
    /// A sequence index.
    Index(usize),
}

impl From<&str> for PathSegment {
    fn from(k: &str) -> PathSegment {
        PathSegment::Key(k.to_string())
    }
}
impl From<String> for PathSegment {
    fn from(k: String) -> PathSegment {
        PathSegment::Key(k)
    }
}
impl From<usize> for PathSegment {
    fn from(i: usize) -> PathSegment {
        PathSegment::Index(i)
    }
}

/// Where a value sits in the document: `workloads[0].rate`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(pub Vec<PathSegment>);

impl FieldPath {
    /// The document root.
    #[must_use]
    pub fn root() -> FieldPath {
        FieldPath(Vec::new())
    }

    /// This path extended by `seg`.
    #[must_use]
    pub fn with(&self, seg: impl Into<PathSegment>) -> FieldPath {
        let mut v = self.0.clone();
        v.push(seg.into());
        FieldPath(v)
    }

    /// True when `prefix` is this path or one of its ancestors.
    #[must_use]
    pub fn starts_with(&self, prefix: &FieldPath) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// The parent path (the root is its own parent).
    #[must_use]
    pub fn parent(&self) -> FieldPath {
        let mut v = self.0.clone();
        v.pop();
        FieldPath(v)
    }

    /// True for the document root.
    #[must_use]
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldPath {
    /// `workloads[0].rate`, `nodes[1].sysctl.net.netfilter.nf_conntrack_max`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSegment::Key(k) if i == 0 => f.write_str(k)?,
                PathSegment::Key(k) => write!(f, ".{k}")?,
                PathSegment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// What kind of problem was found (for callers that branch; the message says more).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The file could not be read.
    Io,
    /// The file is over the size limit.
    TooLarge,
    /// The file is not UTF-8.
    NotUtf8,
    /// The file is empty or holds no mapping.
    Empty,
    /// YAML/JSON syntax error, including truncated input.
    Syntax,
    /// Aliases expand too far, or nesting is too deep.
    Complexity,
    /// A field the format does not have.
    UnknownField,
    /// A required field is missing.
    MissingField,
    /// A value of the wrong type, or with a bad unit or range.
    BadValue,
    /// A reference to a Service, node or port that does not exist.
    UnknownReference,
    /// Two things with one name or address.
    Duplicate,
    /// A sysctl name the model does not know.
    UnknownSysctl,
    /// An address pool too small for what the scenario places in it.
    Exhausted,
    /// A `--set` override that does not apply.
    BadOverride,
    /// An unsupported `version`.
    Version,
}

/// Where a problem's text came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The scenario file, at a line and column (1-based) when known.
    File {
        /// Line, 1-based.
        line: Option<u32>,
        /// Column, 1-based.
        column: Option<u32>,
    },
    /// A `--set` override (its text as given) or a variant's override.
    Override(String),
}

/// One problem in a scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file as the user named it.
    pub file: String,
    /// Line/column or the override responsible.
    pub origin: Origin,
    /// The field concerned (`workloads[0].rate`); the root for whole-file problems.
    pub field: FieldPath,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// Lowercase message naming the offending value.
    pub message: String,
}

impl Problem {
    /// The 1-based line, when the problem is in the file and the line is known.
    #[must_use]
    pub fn line(&self) -> Option<u32> {
        match self.origin {
            Origin::File { line, .. } => line,
            Origin::Override(_) => None,
        }
    }
}

impl fmt::Display for Problem {
    /// `flash-sale.yaml:42:11: workloads[0].rate: negative rate `-5/s``, or
    /// `flash-sale.yaml: --set workloads.7.rate=1k/s: there is no workloads[7] (2 workloads)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File {
                line: Some(l),
                column: Some(c),
            } => write!(f, "{}:{l}:{c}: ", self.file)?,
            Origin::File {
                line: Some(l),
                column: None,
            } => write!(f, "{}:{l}: ", self.file)?,
            Origin::File { line: None, .. } => write!(f, "{}: ", self.file)?,
            Origin::Override(o) => write!(f, "{}: --set {o}: ", self.file)?,
        }
        if !self.field.is_root() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// A problem not yet located: kind, field path, whether it concerns the key (unknown
/// fields) rather than the value, message. The loader turns it into a [`Problem`].
pub(crate) struct Pending {
    pub(crate) kind: ProblemKind,
    pub(crate) field: FieldPath,
    pub(crate) at_key: bool,
    pub(crate) message: String,
}

impl Pending {
    pub(crate) fn new(kind: ProblemKind, field: FieldPath, message: impl Into<String>) -> Pending {
        Pending {
            kind,
            field,
            at_key: false,
            message: message.into(),
        }
    }
}

/// Why a scenario did not load: every problem found, in document order where known.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct ScenarioError {
    /// The problems, at least one.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl ScenarioError {
    /// An error holding `problems`.
    #[must_use]
    pub fn new(problems: Vec<Problem>) -> ScenarioError {
        ScenarioError { problems }
    }

    /// The problems found.
    #[must_use]
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_render_like_the_spec() {
        let p = FieldPath::root().with("workloads").with(0).with("rate");
        assert_eq!(p.to_string(), "workloads[0].rate");
        let s = FieldPath::root()
            .with("nodes")
            .with(1)
            .with("sysctl")
            .with("net.netfilter.nf_conntrack_max");
        assert_eq!(s.to_string(), "nodes[1].sysctl.net.netfilter.nf_conntrack_max");
    }

    #[test]
    fn problems_render_file_line_column_field_message() {
        let p = Problem {
            file: "flash-sale.yaml".into(),
            origin: Origin::File {
                line: Some(42),
                column: Some(11),
            },
            field: FieldPath::root().with("workloads").with(0).with("rate"),
            kind: ProblemKind::BadValue,
            message: "negative rate `-5/s`".into(),
        };
        assert_eq!(
            p.to_string(),
            "flash-sale.yaml:42:11: workloads[0].rate: negative rate `-5/s`"
        );
    }
}
