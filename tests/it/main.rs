//! Integration tests: one binary, one module per behaviour.

mod cli;
mod cluster;
mod dns_remedies;
mod doc_refs;
mod layering;
mod modes;
mod oracle_traces;
mod outputs;
mod plan;
mod race_fit;
mod recommend;
mod remediations;
mod scenario_errors;
mod sim;
mod validation;
