//! Remediation: kube-proxy in IPVS mode instead of iptables.
//!
//! Run with `cargo run --release --example remedy_ipvs`.

mod remedy;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    remedy::show(&remedy::Remedy {
        title: "kube-proxy mode iptables -> ipvs (rr)",
        scenario: "scenarios/flash-sale.yaml",
        base: &["duration=10s"],
        fix: &["kubeProxy.mode=ipvs", "kubeProxy.ipvs.scheduler=rr"],
        why: "IPVS finds the virtual service in a hash table and kube-proxy keeps a constant, \
              ipset-matched iptables ruleset, so the rules walked per new connection no longer grow \
              with the number of Services; with net.ipv4.vs.conntrack=1 nf_conntrack still tracks \
              every connection, so the entries and the table-full onset stay the same",
    })?;
    Ok(())
}
