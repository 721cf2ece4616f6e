//! The `netfilter` module models iptables: tables, chains, rules, and their evaluation.
//! (Being built; see issue #2.)

mod hook;

pub use hook::{Hook, HookStep, PRIORITY_CONNTRACK, PRIORITY_CONNTRACK_CONFIRM, TableKind, hook_sequence};
