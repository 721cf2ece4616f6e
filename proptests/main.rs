//! Property tests (NAT reversibility, conntrack invariants, evaluator equivalence).

mod conntrack;
mod engine;
mod nat;
mod netfilter;
mod socket;
