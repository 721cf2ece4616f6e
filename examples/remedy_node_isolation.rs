//! Remediation: isolate ingress nodes from business nodes.
//!
//! Run with `cargo run --release --example remedy_node_isolation`.

mod remedy;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    remedy::show(&remedy::Remedy {
        title: "ingress-nginx moved from the business node (node-a) to its own node (node-c)",
        scenario: "scenarios/node-isolation.yaml",
        base: &[],
        fix: &["workloads.1.node=node-c"],
        why: "a node's conntrack table holds every flow its pods open: two workloads that are \
              each below the sustainable rate max / (TIME_WAIT + lifetime) can exceed it together; \
              on separate nodes each table carries one of them",
    })?;
    Ok(())
}
