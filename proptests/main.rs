//! Property tests (NAT reversibility, conntrack invariants, evaluator equivalence, proxy
//! data-plane conformance).

mod conntrack;
mod engine;
mod nat;
mod netfilter;
mod proxy;
mod socket;
