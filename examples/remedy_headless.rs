//! Remediation: a headless Service (clients connect to pod IPs, no Service NAT).
//!
//! Run with `cargo run --release --example remedy_headless`.

mod remedy;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    remedy::show(&remedy::Remedy {
        title: "user-service as a headless Service",
        scenario: "scenarios/flash-sale.yaml",
        base: &["duration=10s"],
        fix: &["services.0.type=Headless", "services.0.clusterIP=null"],
        why: "DNS returns the endpoints' pod IPs and the client picks one: no DNAT and no \
              KUBE-SVC/KUBE-SEP chains, but the node still tracks every forwarded connection, so \
              conntrack entries (and a full table) remain; in iptables mode the first packet to a pod \
              IP still walks all of KUBE-SERVICES (it matches no ClusterIP) before leaving the nat \
              table, so the rule work per new connection grows rather than shrinks",
    })?;
    Ok(())
}
