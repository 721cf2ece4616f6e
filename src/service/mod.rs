//! The `service` module (being built).
