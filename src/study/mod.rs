//! The `study` module runs many simulations of one scenario and puts them side by side:
//! the same scenario under named variants ([`compare`]), the breaking point of a field by
//! bisection ([`plan`]), grids of runs and their shards ([`sweep`]), sizing advice verified
//! by re-runs ([`recommend`]), with the fields and conditions they use ([`knob`]), how long
//! a run must last for its answer to count ([`horizon`]), and the shared machinery to
//! derive the runs ([`variant`]) and to execute them on several cores ([`runner`]).
//!
//! Every run is an independent, single-threaded, deterministic simulation; parallelism
//! lives only here, across runs, and results are gathered by job index, so the output of
//! a study does not depend on the number of threads or on which thread finished first.
//!
//! What is not modelled here: nothing: this layer only derives scenarios and collects
//! reports; every number comes out of [`crate::sim::run`].

pub mod compare;
pub mod horizon;
pub mod knob;
pub mod onset;
pub mod plan;
pub mod recommend;
pub mod runner;
pub mod sweep;
pub mod variant;

pub use compare::{Comparison, VariantRun};
pub use runner::{Job, run_jobs};
pub use variant::{VariantSpec, parse_variant};

/// `n` and the noun, singular for one: `1 seed`, `3 seeds`.
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
