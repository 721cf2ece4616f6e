//! Integration tests: one binary, one module per behaviour.

mod cli;
mod dns_remedies;
mod layering;
mod modes;
mod oracle_traces;
mod plan;
mod race_fit;
mod recommend;
mod remediations;
mod scenario_errors;
mod sim;
mod validation;
