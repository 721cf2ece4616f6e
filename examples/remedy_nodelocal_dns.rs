//! Remediation: NodeLocal DNSCache for clients that resolve per request.
//!
//! Run with `cargo run --release --example remedy_nodelocal_dns`.

mod remedy;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    remedy::show(&remedy::Remedy {
        title: "NodeLocal DNSCache (clients resolving per request, 1k requests/s)",
        scenario: "scenarios/flash-sale.yaml",
        base: &[
            "duration=10s",
            "workloads.0.rate=1k/s",
            "workloads.0.dns.mode=perRequest",
        ],
        fix: &["dns.nodeLocalDNSCache.enabled=true"],
        why: "pods query a cache on a link-local address in their own node; node-local-dns installs \
              NOTRACK rules for it, so pod DNS no longer creates conntrack entries, and only cache \
              misses go upstream (over TCP) to CoreDNS",
    })?;
    Ok(())
}
