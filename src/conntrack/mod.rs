//! The `conntrack` module (being built).
