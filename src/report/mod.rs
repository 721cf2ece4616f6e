//! The `report` module (being built).
