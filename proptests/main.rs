//! Property tests (NAT reversibility, conntrack invariants, evaluator equivalence).

mod conntrack;
mod nat;
