//! The `scenario` module (being built).
