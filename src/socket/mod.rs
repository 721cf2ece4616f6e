//! The `socket` module (being built).
