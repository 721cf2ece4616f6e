//! Remediation: a larger conntrack table (`nf_conntrack_max` 131072 -> 524288).
//!
//! Run with `cargo run --release --example remedy_conntrack_max`.

mod remedy;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    remedy::show(&remedy::Remedy {
        title: "nf_conntrack_max 131072 -> 524288 on both nodes",
        scenario: "scenarios/flash-sale.yaml",
        base: &["duration=24s"],
        fix: &[
            "nodes.0.sysctl.net.netfilter.nf_conntrack_max=524288",
            "nodes.1.sysctl.net.netfilter.nf_conntrack_max=524288",
        ],
        why: "at 30k new connections/s the table fills in max / 30k s (TIME_WAIT holds entries for 120 s): \
              4x the table moves the drop onset about 4x later, and does not remove it while \
              30k x 120 s = 3.6M entries exceed any sane max",
    })?;
    Ok(())
}
