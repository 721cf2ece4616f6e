//! `--set PATH=VALUE` overrides, applied to the YAML value tree before stage 1 so an
//! overridden value passes the same checks as one written in the file.
//!
//! Path syntax: dot-separated keys; a numeric segment indexes a sequence; under
//! `sysctl` the rest of the path is one sysctl name
//! (`nodes.0.sysctl.net.netfilter.nf_conntrack_max=524288`). The value is read as a
//! YAML scalar or flow collection, so `10k/s` stays a string, `524288` is a number and
//! `true` a bool.

use super::error::{FieldPath, PathSegment};
use serde_norway::{Mapping, Value};
use std::fmt;

/// One `--set PATH=VALUE` override.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    text: String,
    keys: Vec<String>,
    value: Value,
}

/// Why an override's text did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OverrideError {
    /// No `=` in the text.
    #[error("--set {text}: expected PATH=VALUE (e.g. workloads.0.rate=10k/s)")]
    NoEquals {
        /// The override as given.
        text: String,
    },
    /// An empty path or an empty segment (`a..b`).
    #[error("--set {text}: empty path segment in `{path}`")]
    EmptySegment {
        /// The override as given.
        text: String,
        /// The path part.
        path: String,
    },
    /// The value is not valid YAML.
    #[error("--set {text}: value `{value}` is not a YAML value: {reason}")]
    BadValue {
        /// The override as given.
        text: String,
        /// The value part.
        value: String,
        /// The YAML parser's message.
        reason: String,
    },
}

impl Override {
    /// Parses `PATH=VALUE`.
    ///
    /// # Errors
    /// No `=`, an empty path segment, or a value that is not YAML.
    ///
    /// ```
    /// use k8s_netsim::scenario::Override;
    /// let o = Override::parse("workloads.0.rate=10k/s").unwrap();
    /// assert_eq!(o.path(), "workloads.0.rate");
    /// ```
    pub fn parse(text: &str) -> Result<Override, OverrideError> {
        let Some((path, raw)) = text.split_once('=') else {
            return Err(OverrideError::NoEquals {
                text: text.to_string(),
            });
        };
        let path = path.trim();
        let mut keys: Vec<String> = Vec::new();
        let mut rest = path;
        loop {
            let (seg, tail) = match rest.split_once('.') {
                Some((s, t)) => (s, Some(t)),
                None => (rest, None),
            };
            if seg.is_empty() {
                return Err(OverrideError::EmptySegment {
                    text: text.to_string(),
                    path: path.to_string(),
                });
            }
            keys.push(seg.to_string());
            match tail {
                // Under `sysctl`, the rest is one dotted sysctl name.
                Some(t) if seg == "sysctl" => {
                    if t.is_empty() || t.split('.').any(str::is_empty) {
                        return Err(OverrideError::EmptySegment {
                            text: text.to_string(),
                            path: path.to_string(),
                        });
                    }
                    keys.push(t.to_string());
                    break;
                }
                Some(t) => rest = t,
                None => break,
            }
        }
        let value: Value = if raw.trim().is_empty() {
            Value::String(String::new())
        } else {
            serde_norway::from_str(raw).map_err(|e| OverrideError::BadValue {
                text: text.to_string(),
                value: raw.to_string(),
                reason: e.to_string(),
            })?
        };
        Ok(Override {
            text: text.to_string(),
            keys,
            value,
        })
    }

    /// The path as given (`workloads.0.rate`).
    #[must_use]
    pub fn path(&self) -> String {
        self.keys.join(".")
    }

    /// The path's keys (a sysctl name is one key).
    pub(crate) fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The override as given (`workloads.0.rate=10k/s`).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Applies the override to `root`, creating missing mapping keys (stage 1 then
    /// rejects keys the format does not have). In a list, a number is an index, `*` is
    /// every element and any other segment the element whose `name` it is
    /// (`nodes.*.sysctl...`, `nodes.node-b.cpus`). Returns, per element set, the field
    /// path it set, or the first key it had to create (what a problem about an unknown
    /// field points at).
    ///
    /// # Errors
    /// A message when the path indexes past a sequence's end, names no element, indexes
    /// a mapping or a scalar, or names a key inside a scalar.
    pub(crate) fn apply(&self, root: &mut Value) -> Result<Vec<FieldPath>, String> {
        let mut out = Vec::new();
        self.apply_from(root, 0, FieldPath::root(), None, &mut out)?;
        Ok(out)
    }

    fn apply_from(
        &self,
        mut node: &mut Value,
        from: usize,
        mut at: FieldPath,
        mut created: Option<FieldPath>,
        out: &mut Vec<FieldPath>,
    ) -> Result<(), String> {
        for (d, key) in self.keys.iter().enumerate().skip(from) {
            if node.is_null() {
                *node = Value::Mapping(Mapping::new());
            }
            node = match node {
                Value::Sequence(seq) => {
                    let len = seq.len();
                    let list = match at.0.last() {
                        Some(PathSegment::Key(k)) => k.clone(),
                        _ => at.to_string(),
                    };
                    if key == "*" {
                        for (i, item) in seq.iter_mut().enumerate() {
                            self.apply_from(item, d + 1, at.with(i), created.clone(), out)?;
                        }
                        return Ok(());
                    }
                    let i = match key.parse::<usize>() {
                        Ok(i) => i,
                        Err(_) => {
                            let names: Vec<&str> = seq
                                .iter()
                                .filter_map(|v| v.get("name").and_then(Value::as_str))
                                .collect();
                            if names.is_empty() {
                                return Err(format!(
                                    "{at} is a list; use an index ({}) or `*` instead of `{key}`",
                                    index_choices(len)
                                ));
                            }
                            seq.iter()
                                .position(|v| v.get("name").and_then(Value::as_str) == Some(key.as_str()))
                                .ok_or_else(|| {
                                    format!(
                                        "no {list} named `{key}` ({list}: {}; or an index {}, or `*`)",
                                        names.join(", "),
                                        index_choices(len)
                                    )
                                })?
                        }
                    };
                    at = at.with(i);
                    seq.get_mut(i).ok_or_else(|| {
                        let list = if len == 1 {
                            list.strip_suffix('s').map_or(list.clone(), str::to_owned)
                        } else {
                            list.clone()
                        };
                        format!("there is no {at} ({len} {list}: use {})", index_choices(len))
                    })?
                }
                Value::Mapping(map) => {
                    at = at.with(key.as_str());
                    let k = Value::String(key.clone());
                    if created.is_none() && !map.contains_key(&k) {
                        created = Some(at.clone());
                    }
                    map.entry(k).or_insert(Value::Null)
                }
                Value::Tagged(_) | Value::Bool(_) | Value::Number(_) | Value::String(_) | Value::Null => {
                    return Err(format!("{at} is a single value; it has no `{key}` inside"));
                }
            };
        }
        *node = self.value.clone();
        out.push(created.unwrap_or(at));
        Ok(())
    }
}

/// The indices of a list of `len` items in words: `0`, `0 or 1`, `0, 1 or 2`, `0 to 9`.
fn index_choices(len: usize) -> String {
    match len {
        0 => "none: the list is empty".to_owned(),
        1 => "0".to_owned(),
        2 => "0 or 1".to_owned(),
        3 => "0, 1 or 2".to_owned(),
        n => format!("0 to {}", n - 1),
    }
}

impl fmt::Display for Override {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Override {
    type Err = OverrideError;
    fn from_str(s: &str) -> Result<Override, OverrideError> {
        Override::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        serde_norway::from_str(
            "workloads:\n- {name: a, rate: 1k/s}\n- {name: b, rate: 2k/s}\nnodes:\n- name: n\n",
        )
        .unwrap()
    }

    #[test]
    fn values_keep_their_yaml_types() {
        let mut d = doc();
        Override::parse("workloads.1.rate=10k/s")
            .unwrap()
            .apply(&mut d)
            .unwrap();
        assert_eq!(d["workloads"][1]["rate"], Value::String("10k/s".into()));
        let p = Override::parse("nodes.0.sysctl.net.netfilter.nf_conntrack_max=524288")
            .unwrap()
            .apply(&mut d)
            .unwrap();
        // node 0 has no `sysctl` yet: the first key created is what a problem points at.
        assert_eq!(p[0].to_string(), "nodes[0].sysctl");
        assert_eq!(
            d["nodes"][0]["sysctl"]["net.netfilter.nf_conntrack_max"],
            Value::Number(524_288.into())
        );
        Override::parse("workloads.0.dns.parallelAAAA=false")
            .unwrap()
            .apply(&mut d)
            .unwrap();
        assert_eq!(d["workloads"][0]["dns"]["parallelAAAA"], Value::Bool(false));
    }

    #[test]
    fn index_past_the_end_names_the_count() {
        let mut d = doc();
        let e = Override::parse("workloads.7.rate=1k/s")
            .unwrap()
            .apply(&mut d)
            .unwrap_err();
        assert_eq!(e, "there is no workloads[7] (2 workloads: use 0 or 1)");
        let e = Override::parse("workloads.first.rate=1k/s")
            .unwrap()
            .apply(&mut d)
            .unwrap_err();
        assert!(
            e.contains("no workloads named `first` (workloads: a, b; or an index 0 or 1, or `*`)"),
            "{e}"
        );
        let mut one: Value = serde_norway::from_str("nodes:\n- name: n\n").unwrap();
        let e = Override::parse("nodes.1.cpus=2")
            .unwrap()
            .apply(&mut one)
            .unwrap_err();
        assert_eq!(e, "there is no nodes[1] (1 node: use 0)");
        let e = Override::parse("workloads.0.name.x=1")
            .unwrap()
            .apply(&mut d)
            .unwrap_err();
        assert!(e.contains("workloads[0].name is a single value"), "{e}");
    }

    /// `*` sets every element of a list, a name the element with that `name`.
    #[test]
    fn a_star_sets_every_element_and_a_name_selects_one() {
        let mut d: Value = serde_norway::from_str("nodes:\n- name: node-a\n- name: node-b\n").unwrap();
        let set = Override::parse("nodes.*.sysctl.net.netfilter.nf_conntrack_max=524288")
            .unwrap()
            .apply(&mut d)
            .unwrap();
        assert_eq!(set.len(), 2);
        for i in 0..2 {
            assert_eq!(
                d["nodes"][i]["sysctl"]["net.netfilter.nf_conntrack_max"],
                Value::Number(524_288.into())
            );
        }
        let set = Override::parse("nodes.node-b.cpus=8")
            .unwrap()
            .apply(&mut d)
            .unwrap();
        assert_eq!(set[0].to_string(), "nodes[1].cpus");
        assert_eq!(d["nodes"][1]["cpus"], Value::Number(8.into()));
        let e = Override::parse("nodes.node-c.cpus=8")
            .unwrap()
            .apply(&mut d)
            .unwrap_err();
        assert_eq!(
            e,
            "no nodes named `node-c` (nodes: node-a, node-b; or an index 0 or 1, or `*`)"
        );
    }

    #[test]
    fn syntax_errors_name_the_override() {
        assert!(matches!(
            Override::parse("seed"),
            Err(OverrideError::NoEquals { .. })
        ));
        let e = Override::parse("workloads..rate=1").unwrap_err();
        assert!(e.to_string().contains("--set workloads..rate=1"));
        assert!(Override::parse("nodes.0.sysctl.=1").is_err());
        assert!(Override::parse("seed=[1,").is_err());
    }
}
