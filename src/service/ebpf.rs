//! The `ebpf` data plane (being written).
