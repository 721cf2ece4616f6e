//! The `sim` module (being built).
