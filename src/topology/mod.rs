//! The `topology` module (being built).
