//! Remediation: MASQUERADE `--random-fully` against SNAT port clashes.
//!
//! Pods masqueraded to the node address on a pre-5.x kernel pick SNAT ports with a shared
//! sequential rover: parallel connects on different CPUs get the same port and clash at
//! confirm (`insert_failed`). `--random-fully` draws each port at random.
//!
//! Run with `cargo run --release --example remedy_random_fully`.

mod remedy;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    remedy::show(&remedy::Remedy {
        title: "MASQUERADE --random-fully (kernel 4.19, masqueradeAll)",
        scenario: "scenarios/flash-sale.yaml",
        base: &[
            "duration=3s",
            "kernel=4.19",
            "kubeProxy.masqueradeAll=true",
            "kubeProxy.randomFully=false",
        ],
        fix: &["kubeProxy.randomFully=true"],
        why: "without it the SNAT port comes from a sequential search that concurrent first packets \
              share, so two flows can take the same port before either is confirmed; the loser's \
              confirm fails (insert_failed + drop) and the client retransmits its SYN 1 s later",
    })?;
    Ok(())
}
