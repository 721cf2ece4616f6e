//! Remediation: more CoreDNS replicas for clients that resolve per request.
//!
//! Run with `cargo run --release --example remedy_coredns_replicas`.

mod remedy;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    remedy::show(&remedy::Remedy {
        title: "CoreDNS 2 -> 6 replicas (clients resolving per request, 1k requests/s)",
        scenario: "scenarios/flash-sale.yaml",
        base: &[
            "duration=10s",
            "workloads.0.rate=1k/s",
            "workloads.0.dns.mode=perRequest",
        ],
        fix: &["services.1.endpoints.0.count=6"],
        why: "each CoreDNS pod answers a bounded query rate; with A and AAAA per request the two \
              pods are overloaded, queries wait out glibc's 5 s timeout and requests fail; more \
              replicas behind the same ClusterIP spread the load",
    })?;
    Ok(())
}
