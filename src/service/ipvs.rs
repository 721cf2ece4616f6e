//! The `ipvs` data plane (being written).
