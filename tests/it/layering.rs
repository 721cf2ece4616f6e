//! Modules import only from their own layer or below (docs/architecture.md).
//!
//! The scanner reads every `crate::` path in a file's text, including grouped and
//! nested imports (`use crate::{a, b::{c, d}}`, over several lines, with comments) and
//! paths written inline (`crate::sim::NodeSim::new(..)`, doc links). `super::` paths
//! are not followed: they stay inside one top-level module unless they climb to the
//! crate root, which the code does not do.

use std::path::Path;

fn layer(module: &str) -> Option<u8> {
    Some(match module {
        "time" | "packet" | "rng" | "kernel" => 0,
        "conntrack" | "dns" | "netfilter" | "socket" | "topology" => 1,
        "engine" | "service" | "datapath" => 2,
        "scenario" | "traffic" | "evidence" => 3,
        "sim" | "report" | "validate" => 4,
        "study" => 5,
        _ => return None,
    })
}

/// The text from `at` on, past whitespace and comments (`//` to the end of the line,
/// `/* */`).
fn skip_blank(text: &str, mut at: usize) -> usize {
    loop {
        let rest = &text[at..];
        let trimmed = rest.trim_start();
        at += rest.len() - trimmed.len();
        if trimmed.starts_with("//") {
            at += trimmed.find('\n').unwrap_or(trimmed.len());
        } else if trimmed.starts_with("/*") {
            at += trimmed.find("*/").map_or(trimmed.len(), |end| end + 2);
        } else {
            return at;
        }
    }
}

/// The identifier starting at `at` (empty when there is none).
fn ident_at(text: &str, at: usize) -> &str {
    let rest = &text[at..];
    let len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    &rest[..len]
}

/// The top-level modules a path tree starting at `at` (just after `crate::`) names,
/// each with its byte offset: `sim` for `sim::NodeSim`, `a` and `b` for
/// `{a, b::{c, d}}`. Returns them with the offset where the tree ends.
fn tree_heads(text: &str, at: usize, heads: &mut Vec<(usize, String)>) -> usize {
    let at = skip_blank(text, at);
    if !text[at..].starts_with('{') {
        let name = ident_at(text, at);
        if !name.is_empty() && name != "self" {
            heads.push((at, name.to_string()));
        }
        return at + name.len();
    }
    // A group: items separated by commas; only each item's first segment matters,
    // but nested groups are skipped as a whole.
    let mut at = at + 1;
    loop {
        at = skip_blank(text, at);
        match text[at..].chars().next() {
            None => return at,
            Some('}') => return at + 1,
            Some(',') => at += 1,
            Some(_) => {
                let before = at;
                at = tree_heads(text, at, heads);
                at = skip_item_rest(text, at);
                if at == before {
                    at += text[at..].chars().next().map_or(1, char::len_utf8);
                }
            }
        }
    }
}

/// Past the rest of a group item (`::x::{y, z}`, `as w`), up to its comma or the
/// group's closing brace.
fn skip_item_rest(text: &str, mut at: usize) -> usize {
    let mut depth = 0usize;
    loop {
        at = skip_blank(text, at);
        match text[at..].chars().next() {
            None => return at,
            Some('{') => depth += 1,
            Some('}') if depth == 0 => return at,
            Some('}') => depth -= 1,
            Some(',') if depth == 0 => return at,
            Some(_) => {}
        }
        at += text[at..].chars().next().map_or(1, char::len_utf8);
    }
}

/// The upward imports in `text`, the source of the file at `rel` (relative to
/// `src/`), as `rel:line: ...` messages.
fn upward_imports(rel: &str, text: &str) -> Vec<String> {
    let own = rel.split(['/', '.']).next().unwrap_or("");
    let Some(own_layer) = layer(own) else {
        return Vec::new();
    };
    let mut heads = Vec::new();
    let mut from = 0;
    while let Some(pos) = text[from..].find("crate::") {
        let start = from + pos;
        let preceded_by_ident = text[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        from = start + "crate::".len();
        if !preceded_by_ident {
            from = tree_heads(text, from, &mut heads).max(from);
        }
    }
    heads
        .into_iter()
        .filter_map(|(at, target)| {
            let t = layer(&target)?;
            (t > own_layer).then(|| {
                let line = text[..at].matches('\n').count() + 1;
                format!("{rel}:{line}: `{own}` (layer {own_layer}) uses `{target}` (layer {t})")
            })
        })
        .collect()
}

fn visit(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            visit(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
}

#[test]
fn modules_import_only_downward() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    visit(&root, &mut files);
    assert!(files.len() > 50, "the scan found only {} files", files.len());
    let mut violations = Vec::new();
    for (path, text) in &files {
        let rel = path
            .strip_prefix(root.to_str().unwrap())
            .unwrap_or(path)
            .trim_start_matches('/');
        if rel.starts_with("bin/") {
            continue;
        }
        violations.extend(upward_imports(rel, text));
    }
    assert!(
        violations.is_empty(),
        "upward imports:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_checker_sees_an_upward_import() {
    let text = "//! conntrack\n\nuse crate::packet::Tuple;\nuse crate::sim::NodeSim;\n";
    assert_eq!(
        upward_imports("conntrack/table.rs", text),
        ["conntrack/table.rs:4: `conntrack` (layer 1) uses `sim` (layer 4)"]
    );
    // Inline paths and `self` in a group count too; other crates' `crate::` do not.
    let inline = "fn f() { let _ = crate::report::Report::default(); }\nuse crate::study::{self, sweep};\nuse other_crate::sim;\n";
    assert_eq!(
        upward_imports("service/mod.rs", inline),
        [
            "service/mod.rs:1: `service` (layer 2) uses `report` (layer 4)",
            "service/mod.rs:2: `service` (layer 2) uses `study` (layer 5)",
        ]
    );
    // Downward and same-layer imports, and files outside the layers, pass.
    assert!(upward_imports("sim/model.rs", "use crate::{conntrack, report::Stats};\n").is_empty());
    assert!(upward_imports("lib.rs", "use crate::study::Plan;\n").is_empty());
}

#[test]
fn the_checker_sees_grouped_and_nested_imports() {
    let text = "use crate::{\n    packet::{Proto, Tuple}, // L0\n    /* a { brace } in a comment */\n    time::SimTime,\n    scenario::{\n        self,\n        file::{ScenarioFile, ServiceSpec},\n    },\n    sim::NodeSim as Sim,\n};\n";
    assert_eq!(
        upward_imports("netfilter/mod.rs", text),
        [
            "netfilter/mod.rs:5: `netfilter` (layer 1) uses `scenario` (layer 3)",
            "netfilter/mod.rs:9: `netfilter` (layer 1) uses `sim` (layer 4)",
        ]
    );
    let one_line = "pub(crate) use crate::{kernel, validate::{targets}};";
    assert_eq!(
        upward_imports("dns/cache.rs", one_line),
        ["dns/cache.rs:1: `dns` (layer 1) uses `validate` (layer 4)"]
    );
}
