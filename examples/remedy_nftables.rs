//! Remediation: kube-proxy in nftables mode instead of iptables.
//!
//! Run with `cargo run --release --example remedy_nftables`.

mod remedy;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    remedy::show(&remedy::Remedy {
        title: "kube-proxy mode iptables -> nftables",
        scenario: "scenarios/flash-sale.yaml",
        base: &["duration=10s"],
        fix: &["kubeProxy.mode=nftables"],
        why: "the nftables proxier dispatches on one verdict map (daddr . proto . port), so the work \
              per new connection is constant in the number of Services; the DNAT still makes a \
              conntrack entry per connection, so the table fills just the same",
    })?;
    Ok(())
}
