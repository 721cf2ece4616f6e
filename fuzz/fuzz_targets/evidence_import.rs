//! A whole evidence bundle through `import`: the input is the bundle's files one after
//! another, each after a `==> NAME <==` line (as `tail` prints several files), held in
//! memory (`Bundle::from_files`). The import gives a scenario or an error naming a
//! file, never a panic; its contract is that the scenario it returns validates, so an
//! error saying the imported scenario does not validate is a failure here. (The import
//! loads its own output with `Scenario::from_bytes` before returning it and turns a
//! failure into that error, so loading the returned scenario again here would only
//! repeat the same deterministic check at a third of the target's time.)
#![no_main]

use k8s_netsim::evidence::bundle::Bundle;
use k8s_netsim::evidence::import::{ImportOptions, import};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

/// The files of a `==> NAME <==` concatenation (text before the first header is
/// ignored; a repeated name keeps the last).
fn files(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut cur: Option<(String, String)> = None;
    for line in text.split_inclusive('\n') {
        let t = line.trim_end_matches('\n');
        if let Some(name) = t.strip_prefix("==> ").and_then(|r| r.strip_suffix(" <==")) {
            if let Some((n, body)) = cur.take() {
                out.insert(n, body);
            }
            cur = Some((name.to_string(), String::new()));
        } else if let Some((_, body)) = cur.as_mut() {
            body.push_str(line);
        }
    }
    if let Some((n, body)) = cur {
        out.insert(n, body);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let bundle = Bundle::from_files("fuzz", files(text), 64);
    let opts = ImportOptions {
        warm_slices: 4,
        duration_s: 1,
    };
    if let Err(e) = import(&bundle, &opts) {
        assert!(
            !e.message.contains("does not validate"),
            "{e}\n--- bundle ---\n{text}"
        );
    }
});
