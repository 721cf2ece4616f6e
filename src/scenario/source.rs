//! Reading a scenario's text safely and mapping field paths back to lines.
//!
//! Before serde sees the text, one pass of a position-keeping YAML event parser
//! (`saphyr-parser`) checks syntax, rejects documents whose aliases expand too far
//! (alias bombs) or that nest too deeply, and records where every key and value
//! starts, so stage-2 problems (found on typed values that carry no positions) can
//! still name their line. The pass is iterative (an explicit stack), so hostile
//! nesting cannot overflow the thread stack.

use super::error::{FieldPath, PathSegment, ProblemKind};
use saphyr_parser::{Event, Parser};
use std::collections::BTreeMap;

/// Files above this size are rejected before parsing. The bundled scenarios are a few
/// KiB; a 5,000-node cluster written out node by node is about 300 KiB.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 64;
/// Most nodes that aliases may add to a document by expansion.
pub const MAX_ALIAS_EXPANSION: u64 = 100_000;
/// Most YAML nodes (scalars, mappings, sequences, and what aliases expand to) in one
/// document. Every later stage (the value tree, the raw structs, the problems) grows
/// with this count, so bounding it bounds the memory of loading at a few tens of MiB.
/// A 5,000-node cluster written out node by node is about 40,000.
pub const MAX_YAML_VALUES: u64 = 100_000;

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) line: u32,
    pub(crate) column: u32,
}

/// A problem found while scanning: kind, position, message.
pub(crate) type ScanProblem = (ProblemKind, Option<Mark>, String);

/// Where each key and value of a document starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SourceMap {
    keys: BTreeMap<FieldPath, Mark>,
    values: BTreeMap<FieldPath, Mark>,
}

impl SourceMap {
    /// The position of `path`: its key when `prefer_key` (unknown-field problems point
    /// at the key), else its value; the nearest ancestor's when `path` is absent (a
    /// missing field points at the mapping that lacks it).
    pub(crate) fn locate(&self, path: &FieldPath, prefer_key: bool) -> Option<Mark> {
        let mut p = path.clone();
        loop {
            let hit = if prefer_key {
                self.keys.get(&p).or_else(|| self.values.get(&p))
            } else {
                self.values.get(&p).or_else(|| self.keys.get(&p))
            };
            if let Some(m) = hit {
                return Some(*m);
            }
            if p.is_root() {
                return None;
            }
            p = p.parent();
        }
    }
}

fn mark_of(m: saphyr_parser::Marker) -> Mark {
    Mark {
        line: u32::try_from(m.line()).unwrap_or(u32::MAX),
        column: u32::try_from(m.col().saturating_add(1)).unwrap_or(u32::MAX),
    }
}

enum Frame {
    Map {
        path: FieldPath,
        key: Option<String>,
        awaiting_key: bool,
        size: u64,
        anchor: usize,
    },
    Seq {
        path: FieldPath,
        index: usize,
        size: u64,
        anchor: usize,
    },
}

/// Where the next node goes: (its path, whether it is a mapping key).
fn next_slot(stack: &[Frame]) -> (FieldPath, bool) {
    match stack.last() {
        None => (FieldPath::root(), false),
        Some(Frame::Map {
            path,
            awaiting_key: true,
            ..
        }) => (path.with("?"), true),
        Some(Frame::Map { path, key, .. }) => (path.with(key.clone().unwrap_or_else(|| "?".into())), false),
        Some(Frame::Seq { path, index, .. }) => (path.with(*index), false),
    }
}

/// Records a finished node of expanded `size` in its parent; `key` is the text when
/// the node was a scalar in key position.
fn finish_node(stack: &mut [Frame], size: u64, key: Option<String>) {
    match stack.last_mut() {
        None => {}
        Some(Frame::Map {
            key: k,
            awaiting_key,
            size: s,
            ..
        }) => {
            *s = s.saturating_add(size);
            if *awaiting_key {
                *k = Some(key.unwrap_or_else(|| "?".into()));
                *awaiting_key = false;
            } else {
                *awaiting_key = true;
            }
        }
        Some(Frame::Seq { index, size: s, .. }) => {
            *s = s.saturating_add(size);
            *index += 1;
        }
    }
}

/// Scans `text` and returns its source map.
///
/// # Errors
/// The first syntax error, a second document, nesting deeper than [`MAX_DEPTH`],
/// aliases adding more than [`MAX_ALIAS_EXPANSION`] nodes, or more than [`MAX_YAML_VALUES`]
/// nodes in all.
pub(crate) fn scan(text: &str) -> Result<SourceMap, ScanProblem> {
    let mut map = SourceMap::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchor_sizes: BTreeMap<usize, u64> = BTreeMap::new();
    let mut documents = 0u32;
    let mut added_by_aliases = 0u64;
    let mut nodes = 0u64;
    // The YAML scanner holds a flow collection's tokens until it knows whether the
    // collection is a mapping key, so one long `[1,1,1,...]` inside `{...}` (any JSON
    // file) is buffered whole before the first event. Counting its separators first
    // bounds that buffer without parsing.
    let separators = text.bytes().filter(|b| matches!(b, b',' | b'[' | b'{')).count();
    if separators as u64 > MAX_YAML_VALUES {
        return Err((
            ProblemKind::Complexity,
            None,
            format!(
                "{separators} `,` `[` `{{` in one scenario: more than the {MAX_YAML_VALUES} values a scenario may hold"
            ),
        ));
    }
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| {
            if e.info().contains("recursion limit") {
                // The scanner's own flow-nesting limit.
                (
                    ProblemKind::Complexity,
                    Some(mark_of(*e.marker())),
                    format!("nesting deeper than the YAML parser allows ({})", e.info()),
                )
            } else {
                (
                    ProblemKind::Syntax,
                    Some(mark_of(*e.marker())),
                    format!("invalid YAML: {}", e.info()),
                )
            }
        })?;
        let mark = mark_of(span.start);
        nodes = nodes.saturating_add(match &event {
            Event::Scalar(..) | Event::MappingStart(..) | Event::SequenceStart(..) => 1,
            Event::Alias(id) => anchor_sizes.get(id).copied().unwrap_or(1),
            _ => 0,
        });
        if nodes > MAX_YAML_VALUES {
            return Err((
                ProblemKind::Complexity,
                Some(mark),
                format!(
                    "more than {MAX_YAML_VALUES} YAML values (scalars, mappings, lists, alias expansions) in one scenario"
                ),
            ));
        }
        match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err((
                        ProblemKind::Syntax,
                        Some(mark),
                        "more than one YAML document; a scenario is one document".into(),
                    ));
                }
            }
            Event::Scalar(value, _, anchor, _) => {
                let (path, is_key) = next_slot(&stack);
                if is_key {
                    map.keys.insert(path.parent().with(value.to_string()), mark);
                } else {
                    map.values.insert(path, mark);
                }
                if anchor != 0 {
                    anchor_sizes.insert(anchor, 1);
                }
                finish_node(&mut stack, 1, is_key.then(|| value.to_string()));
            }
            Event::Alias(id) => {
                let (path, is_key) = next_slot(&stack);
                if !is_key {
                    map.values.insert(path, mark);
                }
                let size = anchor_sizes.get(&id).copied().unwrap_or(1);
                added_by_aliases = added_by_aliases.saturating_add(size);
                if added_by_aliases > MAX_ALIAS_EXPANSION {
                    return Err((
                        ProblemKind::Complexity,
                        Some(mark),
                        format!(
                            "aliases expand to more than {MAX_ALIAS_EXPANSION} nodes (an alias bomb?); write the values out"
                        ),
                    ));
                }
                finish_node(&mut stack, size, is_key.then(|| "*".to_string()));
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err((
                        ProblemKind::Complexity,
                        Some(mark),
                        format!("nesting deeper than {MAX_DEPTH} levels"),
                    ));
                }
                let (path, is_key) = next_slot(&stack);
                if !is_key {
                    map.values.insert(path.clone(), mark);
                }
                let frame = if matches!(event, Event::MappingStart(..)) {
                    Frame::Map {
                        path,
                        key: None,
                        awaiting_key: true,
                        size: 1,
                        anchor,
                    }
                } else {
                    Frame::Seq {
                        path,
                        index: 0,
                        size: 1,
                        anchor,
                    }
                };
                stack.push(frame);
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let (size, anchor) = match stack.pop() {
                    Some(Frame::Map { size, anchor, .. } | Frame::Seq { size, anchor, .. }) => (size, anchor),
                    None => (1, 0),
                };
                if anchor != 0 {
                    anchor_sizes.insert(anchor, size);
                }
                finish_node(&mut stack, size, None);
            }
        }
    }
    Ok(map)
}

/// The 1-based line and column of byte `offset` in `bytes`.
pub(crate) fn mark_at_byte(bytes: &[u8], offset: usize) -> Mark {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    Mark {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(col).unwrap_or(u32::MAX),
    }
}

/// Converts a serde path (from `serde_path_to_error`) to a [`FieldPath`].
pub(crate) fn field_path_of(path: &serde_path_to_error::Path) -> FieldPath {
    use serde_path_to_error::Segment;
    let mut segs = Vec::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => segs.push(PathSegment::Index(*index)),
            Segment::Map { key } => segs.push(PathSegment::Key(key.clone())),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    FieldPath(segs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(s: &[PathSegment]) -> FieldPath {
        FieldPath(s.to_vec())
    }

    #[test]
    fn source_map_finds_keys_and_values_by_path() {
        let text = "version: 1\nworkloads:\n  - name: a\n    rate: 5/s\n  - {name: b, rate: 7/s}\n";
        let map = scan(text).unwrap();
        let rate1 = fp(&["workloads".into(), 1usize.into(), "rate".into()]);
        assert_eq!(map.locate(&rate1, false), Some(Mark { line: 5, column: 21 }));
        let rate0 = fp(&["workloads".into(), 0usize.into(), "rate".into()]);
        assert_eq!(map.locate(&rate0, true), Some(Mark { line: 4, column: 5 }));
        assert_eq!(map.locate(&rate0, false), Some(Mark { line: 4, column: 11 }));
        // An absent field falls back to its nearest ancestor.
        let missing = fp(&["workloads".into(), 0usize.into(), "pods".into()]);
        assert_eq!(map.locate(&missing, false), Some(Mark { line: 3, column: 5 }));
    }

    #[test]
    fn sysctl_names_with_dots_are_single_keys() {
        let text = "nodes:\n- sysctl:\n    net.core.somaxconn: 4096\n";
        let map = scan(text).unwrap();
        let p = fp(&[
            "nodes".into(),
            0usize.into(),
            "sysctl".into(),
            "net.core.somaxconn".into(),
        ]);
        assert_eq!(map.locate(&p, false).map(|m| m.line), Some(3));
    }

    #[test]
    fn alias_bomb_is_rejected_quickly() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let err = scan(&text).unwrap_err();
        assert_eq!(err.0, ProblemKind::Complexity);
        assert!(err.2.contains("alias"));
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let err = scan(&text).unwrap_err();
        assert_eq!(err.0, ProblemKind::Complexity);
        assert!(err.2.contains("nesting"));
    }

    #[test]
    fn syntax_errors_carry_the_position() {
        let err = scan("name: \"unterminated\nversion: 1\n").unwrap_err();
        assert_eq!(err.0, ProblemKind::Syntax);
        assert!(err.1.is_some());
    }

    #[test]
    fn a_second_document_is_rejected() {
        let err = scan("version: 1\n---\nversion: 2\n").unwrap_err();
        assert_eq!(err.0, ProblemKind::Syntax);
        assert_eq!(err.1.map(|m| m.line), Some(2));
        assert!(err.2.contains("more than one YAML document"));
    }

    #[test]
    fn byte_offsets_map_to_lines() {
        assert_eq!(mark_at_byte(b"ab\ncd\nef", 7), Mark { line: 3, column: 2 });
    }
}
