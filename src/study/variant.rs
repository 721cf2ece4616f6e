//! Variants given on the command line: `NAME:PATH=VALUE[,PATH=VALUE...]`.
//!
//! A variant is a named set of scenario overrides, the same `PATH=VALUE` as `--set`
//! (`workloads.0.connection.mode=pool`, `nodes.0.sysctls.net.netfilter.nf_conntrack_max=262144`).
//! Scenario files can declare them too (`variants:`, docs/scenario-format.md); both kinds
//! run the same way.

use crate::scenario::{Override, Variant};

/// Why a `--variant` argument could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VariantSpecError {
    /// No `NAME:` prefix.
    #[error("`{0}`: expected NAME:PATH=VALUE[,PATH=VALUE...]")]
    NoName(String),
    /// The name is empty or has characters other than letters, digits, `-`, `_`, `.`.
    #[error("`{0}`: a variant name is letters, digits, `-`, `_` or `.`")]
    BadName(String),
    /// No override after the name.
    #[error("`{0}`: no PATH=VALUE after the name")]
    Empty(String),
    /// An override did not parse.
    #[error("`{text}`: {message}")]
    BadOverride {
        /// The override's text.
        text: String,
        /// What is wrong.
        message: String,
    },
}

/// Alias kept for readers who look for the spec type by the CLI's word.
pub type VariantSpec = Variant;

/// Parses `NAME:PATH=VALUE[,PATH=VALUE...]`.
///
/// A comma starts a new override only when what follows it has a `=` before the next
/// comma, so values may contain commas (`--variant a:dns.name=x,y=1` is two overrides,
/// `--variant a:path=1,2` one).
///
/// # Errors
/// [`VariantSpecError`] naming the argument.
///
/// ```
/// use k8s_netsim::study::parse_variant;
/// let v = parse_variant("pool:workloads.0.connection.mode=pool,workloads.0.connection.poolSize=20").unwrap();
/// assert_eq!(v.name, "pool");
/// assert_eq!(v.overrides.len(), 2);
/// ```
pub fn parse_variant(text: &str) -> Result<Variant, VariantSpecError> {
    let Some((name, rest)) = text.split_once(':') else {
        return Err(VariantSpecError::NoName(text.to_owned()));
    };
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(VariantSpecError::BadName(text.to_owned()));
    }
    let mut pieces: Vec<String> = Vec::new();
    for part in rest.split(',') {
        match pieces.last_mut() {
            Some(last) if !part.contains('=') => {
                last.push(',');
                last.push_str(part);
            }
            _ => pieces.push(part.to_owned()),
        }
    }
    let pieces: Vec<String> = pieces.into_iter().filter(|p| !p.trim().is_empty()).collect();
    if pieces.is_empty() {
        return Err(VariantSpecError::Empty(text.to_owned()));
    }
    let overrides = pieces
        .iter()
        .map(|p| {
            Override::parse(p.trim()).map_err(|e| VariantSpecError::BadOverride {
                text: p.clone(),
                message: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Variant {
        name: name.to_owned(),
        overrides,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_split_overrides_only_before_a_path() {
        let v = parse_variant("a:x.y=1,z=2").unwrap();
        assert_eq!(v.overrides.len(), 2);
        let v = parse_variant("a:x.y=1,2").unwrap();
        assert_eq!(v.overrides.len(), 1);
        assert_eq!(v.overrides[0].as_str(), "x.y=1,2");
    }

    #[test]
    fn malformed_variants_are_named_errors() {
        assert!(matches!(parse_variant("x=1"), Err(VariantSpecError::NoName(_))));
        assert!(matches!(parse_variant(":x=1"), Err(VariantSpecError::BadName(_))));
        assert!(matches!(
            parse_variant("a b:x=1"),
            Err(VariantSpecError::BadName(_))
        ));
        assert!(matches!(parse_variant("a:"), Err(VariantSpecError::Empty(_))));
        assert!(matches!(
            parse_variant("a:novalue"),
            Err(VariantSpecError::BadOverride { .. })
        ));
    }
}
