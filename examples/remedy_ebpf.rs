//! Remediation: Cilium's eBPF kube-proxy replacement (socket-level load balancing).
//!
//! Run with `cargo run --release --example remedy_ebpf`.

mod remedy;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    remedy::show(&remedy::Remedy {
        title: "kube-proxy replaced by Cilium eBPF (socket LB)",
        scenario: "scenarios/flash-sale.yaml",
        base: &["duration=10s"],
        fix: &["kubeProxy.mode=ebpf"],
        why: "the ClusterIP is translated once, at connect(), in the client pod: no per-packet DNAT \
              and no rule walk on the node; the forwarded pod-to-pod flow is still tracked by \
              nf_conntrack unless it is bypassed (NOTRACK), so short connections still fill the table",
    })?;
    Ok(())
}
