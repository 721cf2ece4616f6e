//! Scenario files as JSON (a `.json` name picks the JSON parser): any bytes must give a
//! `Scenario` or a `ScenarioError`, never a panic, a hang or unbounded memory; every
//! error names at least one problem.
#![no_main]

use k8s_netsim::scenario::Scenario;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Scenario::from_bytes("fuzz.json", data, &[]) {
        Ok(s) => {
            // A validated scenario re-validates to the same thing.
            let again = s.with_overrides(&[]).expect("a valid scenario stays valid");
            assert_eq!(again.fingerprint(), s.fingerprint());
        }
        Err(e) => assert!(!e.problems().is_empty(), "an error with no problem"),
    }
});
