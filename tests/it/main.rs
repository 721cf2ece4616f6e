//! Integration tests: one binary, one module per behaviour.

mod oracle_traces;
mod scenario_errors;
mod validation;
