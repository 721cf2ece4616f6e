//! The `dns` module (being built).
