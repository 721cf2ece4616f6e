//! The `k8s-netsim` command line (being built).
fn main() {}
