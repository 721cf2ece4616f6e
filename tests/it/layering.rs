//! Modules import only from their own layer or below (docs/architecture.md).

use std::path::Path;

fn layer(module: &str) -> Option<u8> {
    Some(match module {
        "time" | "packet" | "rng" | "kernel" => 0,
        "conntrack" | "dns" | "netfilter" | "socket" | "topology" => 1,
        "engine" | "service" | "datapath" => 2,
        "scenario" | "traffic" => 3,
        "sim" | "report" | "validate" => 4,
        "study" => 5,
        _ => return None,
    })
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
    let mut violations = Vec::new();
    for (path, text) in &files {
        let rel = path
            .strip_prefix(root.to_str().unwrap())
            .unwrap_or(path)
            .trim_start_matches('/');
        if rel.starts_with("bin/") {
            continue;
        }
        let own = rel.split(['/', '.']).next().unwrap_or("");
        let Some(own_layer) = layer(own) else { continue };
        for (i, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(pos) = rest.find("crate::") {
                let after = &rest[pos + 7..];
                let target: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if let Some(t) = layer(&target)
                    && t > own_layer
                {
                    violations.push(format!(
                        "{rel}:{}: `{own}` (layer {own_layer}) uses `{target}` (layer {t})",
                        i + 1
                    ));
                }
                rest = &after[target.len()..];
            }
        }
    }
    assert!(
        violations.is_empty(),
        "upward imports:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_checker_sees_an_upward_import() {
    // Guard against the checker silently matching nothing.
    assert_eq!(layer("sim"), Some(4));
    assert!(layer("conntrack") < layer("datapath"));
}
