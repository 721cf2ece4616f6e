//! The `nftables` data plane (being written).
