//! Integration tests: one binary, one module per behaviour.

mod cli;
mod cluster;
mod dns_remedies;
mod doc_refs;
mod evidence;
mod evidence_fuzz_found;
mod first_use;
mod insert_failed;
mod layering;
mod modes;
mod node_fields;
mod oracle_traces;
mod outputs;
mod plan;
mod planning;
mod race_fit;
mod readme;
mod real_tools;
mod recommend;
mod reliability;
mod remediations;
mod scenario_errors;
mod sim;
mod validation;
