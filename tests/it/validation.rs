//! The validation suite (`k8s-netsim validate`): every replay of the real-kernel
//! recordings and every published target is within tolerance or explained, the known
//! disagreements stay marked, and `docs/validation.md` is current.

use k8s_netsim::validate::{self, Check, Status, Tolerance};
use std::path::Path;
use std::sync::OnceLock;

fn checks() -> &'static [Check] {
    static CHECKS: OnceLock<Vec<Check>> = OnceLock::new();
    CHECKS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        validate::run(
            &root.join("validation/traces"),
            &root.join("scenarios/validation"),
        )
        .expect("the suite runs")
    })
}

fn row(id: &str) -> &'static Check {
    checks()
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no row `{id}`"))
}

#[test]
fn every_check_is_within_tolerance_or_explained() {
    let bad: Vec<String> = checks()
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| format!("{} real {} simulated {:?}", c.id, c.real, c.simulated))
        .collect();
    assert!(bad.is_empty(), "unexplained disagreements:\n{}", bad.join("\n"));
}

#[test]
fn ids_are_unique() {
    let mut ids: Vec<&str> = checks().iter().map(|c| c.id.as_str()).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n);
}

#[test]
fn recorded_mechanisms_agree() {
    // docs/kernel-semantics.md §early_drop: a table full of ASSURED entries drops, never
    // early-drops.
    assert_eq!(row("a/max100/drop-fill").status, Status::Pass);
    assert_eq!(row("a/max100/early-drop-fill").status, Status::Pass);
    // §gc worker: the gc 95 % trim.
    assert_eq!(row("a/max200/count-idle").status, Status::Pass);
    // §early_drop: early-drop success follows bucket density.
    assert_eq!(row("b/max2000/probe-evicted-share").status, Status::Pass);
    assert_eq!(row("b/max65536/probe-evicted-share").status, Status::Pass);
    // §gc worker: b's model draws its gc phase, so some draws have a pass inside the
    // probe window, whose 95 % trim lets 101 of max 2,000's probes in without meeting a
    // full table (as 2 of 16 re-recordings did).
    let full = row("b/max2000/probe-full-table");
    assert!(
        matches!(full.tolerance, Tolerance::ModelRange { lo, hi, .. } if lo == 1899.0 && hi == 2000.0),
        "{:?}",
        full.tolerance
    );
    // §Lazy expiry: reaping by lookups and dumps.
    assert_eq!(row("g/n50000/survivors").status, Status::Pass);
    assert_eq!(row("c/tw10-list/count-after-list").status, Status::Pass);
    // §Clash resolution: UDP clash resolution, no insert_failed.
    assert_eq!(row("d/backends2/clash-resolve").status, Status::Pass);
    assert_eq!(row("d/backends1/clash-resolve").status, Status::Pass);
    assert_eq!(row("d/backends2/hidden").status, Status::Pass);
    // The race model: one CPU never races; on 6.18 every race is resolved; 5.4 drops
    // the races DNATed to different backends; the XING race loses the second SYN.
    for id in [
        "k/sendmmsg-b2/raced",
        "k/one-thread-b2/raced",
        "k/same-b2/raced",
        "l/same/insert-failed",
    ] {
        assert_eq!(row(id).status, Status::Pass, "{id}");
        assert_eq!(row(id).real, 0.0, "{id}");
    }
    for id in [
        "k/different-b1/raced",
        "k/different-b2/gap10us",
        "k/scheduler-b2/raced",
        "k/different-b2/clash-resolve",
        "k/different-b2/insert-failed-drop",
        "k/different-b2/drop-5.4",
        "l/different/insert-failed",
        "l/different/gap1us",
    ] {
        assert_eq!(row(id).status, Status::Pass, "{id}");
    }
    assert_eq!(row("d/backends2/insert-failed").status, Status::Pass);
    // §NAT port search and §Port-search cost shows in found: SNAT port search cost and TIME_WAIT
    // eviction.
    assert_eq!(row("j/ports64-r20/found").status, Status::Pass);
    assert_eq!(row("e/ports1/try1-insert-failed").status, Status::Pass);
    // §Port reuse over a TIME_WAIT entry and §drop counts packets: storm outcomes with the recorded
    // client ports.
    assert_eq!(row("i/r200/replay-ok").status, Status::Pass);
    assert_eq!(row("i/r200/replay-drop").status, Status::Pass);
}

/// The disagreements documented in the notes stay marked as such: if a model fix makes
/// one pass, this fails until its note is removed; if a note disappears, the row turns
/// into an unexplained failure.
#[test]
fn known_disagreements_are_marked_and_explained() {
    for id in [
        "f/linear/syn10",
        "f/linear/etimedout",
        "k/different-b2-r2/raced",
        "i/r200/scenario-ok",
        "V01/80/default",
    ] {
        assert_eq!(row(id).status, Status::KnownFailure, "{id}");
    }
    for id in [
        "V23/iptables-short",
        "V23/iptables-keepalive",
        "V23/ipvs-short",
        "V11/pod-dns-entries",
        "V11/dns-entries",
    ] {
        assert_eq!(row(id).status, Status::Pass, "{id}");
    }
    for (prefix, why) in validate::explanations() {
        assert!(!why.is_empty());
        assert!(
            checks().iter().any(|c| c.id.starts_with(prefix)
                && matches!(c.status, Status::KnownFailure | Status::NotModelled)),
            "explanation `{prefix}` no longer matches a failing row: remove it"
        );
    }
}

#[test]
fn docs_validation_md_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/validation.md");
    let committed = std::fs::read_to_string(&path).expect("docs/validation.md exists");
    let fresh = validate::markdown(checks());
    assert!(
        committed == fresh,
        "docs/validation.md is stale: run `cargo run -- validate --write docs/validation.md`"
    );
}
