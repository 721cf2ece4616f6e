//! Property tests (NAT reversibility, conntrack invariants, evaluator equivalence).

mod netfilter;
