//! Sweep shard JSON as `merge` reads it: any bytes give shards or an error; merging,
//! CSV, charts and text of what parses never panic or allocate without bound.
#![no_main]

use k8s_netsim::study::sweep::{Sweep, merge};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(s) = serde_json::from_str::<Sweep>(text) else {
        return;
    };
    let _ = s.to_csv();
    let _ = s.render_text();
    let _ = s.charts();
    if let Ok(m) = merge(vec![s.clone()]) {
        let _ = m.to_csv();
        let _ = m.charts();
    }
});
