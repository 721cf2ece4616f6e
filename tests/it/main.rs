//! Integration tests: one binary, one module per behaviour.

mod cli;
mod layering;
mod oracle_traces;
mod plan;
mod scenario_errors;
mod sim;
mod validation;
