//! Replays the flash-sale incident through the library API and compares remediations that
//! the simulator supports today, all on the same seed.
//!
//! ```text
//!  order-service pods (node-a) ──veth──▶ node-a host netns ──flannel.1──▶ node-b host netns ──▶ user-service pods
//!                                        DNAT 10.96.32.15:80 → pod           conntrack too
//!                                        conntrack: 131072 max
//! ```
//!
//! Run with `cargo run --release --example flash_sale`.

#![allow(clippy::print_stdout)]

use k8s_netsim::scenario::{Override, Scenario};

fn run(label: &str, sets: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/flash-sale.yaml");
    let mut overrides = vec![Override::parse("duration=8s")?];
    for s in sets {
        overrides.push(Override::parse(s)?);
    }
    let sc = Scenario::load(path, &overrides)?;
    let r = k8s_netsim::sim::run(&sc, &mut |_, _| {})?.report;
    let a = &r.nodes[0];
    println!(
        "{label:<34} {:<62} p99 {:>7.1} ms  new conns {:>8}  node-a drop {:>8}  early_drop {:>8}",
        r.verdict.text,
        r.latency_ms.p99,
        r.requests.new_connections,
        a.conntrack.stats.drop,
        a.conntrack.stats.early_drop
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    run("as in the incident", &[])?;
    run(
        "nf_conntrack_max 524288",
        &[
            "nodes.0.sysctl.net.netfilter.nf_conntrack_max=524288",
            "nodes.1.sysctl.net.netfilter.nf_conntrack_max=524288",
        ],
    )?;
    run(
        "keep-alive pool, 100 req/conn",
        &[
            "workloads.0.connection.mode=pool",
            "workloads.0.connection.poolSize=50",
            "workloads.0.connection.maxRequestsPerConnection=100",
        ],
    )?;
    run(
        "conntrack TIME_WAIT 10s",
        &[
            "nodes.0.sysctl.net.netfilter.nf_conntrack_tcp_timeout_time_wait=10s",
            "nodes.1.sysctl.net.netfilter.nf_conntrack_tcp_timeout_time_wait=10s",
        ],
    )?;
    Ok(())
}
