//! Remediation: connection pools with keep-alive instead of one connection per request.
//!
//! Run with `cargo run --release --example remedy_keepalive`.

mod remedy;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    remedy::show(&remedy::Remedy {
        title: "keep-alive pool: 50 connections per pod, 100 requests per connection",
        scenario: "scenarios/flash-sale.yaml",
        base: &["duration=10s"],
        fix: &[
            "workloads.0.connection.mode=pool",
            "workloads.0.connection.poolSize=50",
            "workloads.0.connection.maxRequestsPerConnection=100",
        ],
        why: "every short connection leaves a conntrack entry in TIME_WAIT for 120 s; a pooled \
              connection carries 100 requests, so new entries fall about 100x and the table never fills",
    })?;
    Ok(())
}
