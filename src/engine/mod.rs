//! The `engine` module (being built).
