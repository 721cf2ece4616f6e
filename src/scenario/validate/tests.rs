//! What the parts' tests share: a two-node base scenario, loading it with extra lines,
//! and the problems it reports; and the parser's own guard against alias bombs.

use crate::scenario::{ProblemKind, Scenario, ScenarioError};

pub(super) const BASE: &str = "version: 1\nname: t\nduration: 10s\nkernel: \"6.18\"\nnodes:\n  - {name: a, cpus: 2, memory: 4Gi}\n  - {name: b, cpus: 2, memory: 4Gi, ip: 192.168.0.10, podCIDR: 10.244.0.0/24}\n";

pub(super) fn load(extra: &str) -> Result<Scenario, ScenarioError> {
    Scenario::from_bytes("t.yaml", format!("{BASE}{extra}").as_bytes(), &[])
}

pub(super) fn problems(extra: &str) -> Vec<(ProblemKind, String)> {
    load(extra)
        .unwrap_err()
        .problems()
        .iter()
        .map(|p| (p.kind, p.to_string()))
        .collect()
}

/// The second guard behind the source scan: serde_norway's own alias repetition
/// limit (events × 100 jumps) turns a billion-laughs document into an error.
#[test]
fn serde_norway_repetition_limit_stops_alias_bombs() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let e = serde_norway::from_str::<serde_norway::Value>(&text).unwrap_err();
    assert!(e.to_string().contains("repetition limit exceeded"), "{e}");
}
