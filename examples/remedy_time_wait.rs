//! Remediation: shorter conntrack TIME_WAIT timeout (`nf_conntrack_tcp_timeout_time_wait`).
//!
//! Run with `cargo run --release --example remedy_time_wait`.

mod remedy;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    remedy::show(&remedy::Remedy {
        title: "nf_conntrack_tcp_timeout_time_wait 120 s -> 30 s on both nodes",
        scenario: "scenarios/flash-sale.yaml",
        base: &["duration=10s"],
        fix: &[
            "nodes.0.sysctl.net.netfilter.nf_conntrack_tcp_timeout_time_wait=30",
            "nodes.1.sysctl.net.netfilter.nf_conntrack_tcp_timeout_time_wait=30",
        ],
        why: "the table's steady state is new connections/s x (TIME_WAIT + lifetime); entries expire no \
              earlier than the shorter timeout, so a table that fills faster than that is not helped; it \
              pays off together with fewer new connections (see remedy_keepalive)",
    })?;
    Ok(())
}
