//! The `netfilter` module models iptables: the raw, mangle, nat and filter tables of one
//! network namespace, their built-in and user chains, rules (matches and targets), ipsets,
//! and the evaluation of a table at a hook as `ipt_do_table` walks it.
//!
//! Modelled: the matches and targets kube-proxy and kubelet use (see [`Match`] and
//! [`Target`]), jumps, gotos and returns with the kernel's traversal order, built-in chain
//! policies, the `statistic`, `recent` and `nfacct` side effects, and the number of rules the
//! kernel tests per packet. Evaluation only decides: NAT targets return a [`NatAction`] that
//! the conntrack layer applies, and the nat table is consulted by the caller only for the
//! first packet of a connection. Rules are imported from and exported to `iptables-save`
//! text ([`import`], [`export`]).
//!
//! Not modelled: IPv6, rule counters, matches and targets outside the list above (an import
//! names them as errors), hook restrictions of targets (DNAT outside PREROUTING/OUTPUT is
//! accepted), and the hidden chain-tail entries of the kernel blob (not counted in
//! `rules_evaluated`). See `docs/model.md`.

pub mod eval;
pub mod export;
mod hook;
pub mod import;
mod index;
mod ipset;
mod rule;
mod ruleset;

pub use crate::rng::{FixedHasher, FixedState};
pub use eval::{
    AddrType, EvalContext, EvalState, Evaluation, LocalAddrs, NatAction, NfacctCounter, RulePos, Trace,
    TraceStep, Verdict,
};
pub use hook::{Hook, HookStep, PRIORITY_CONNTRACK, PRIORITY_CONNTRACK_CONFIRM, TableKind, hook_sequence};
pub use ipset::{IpSet, IpSetEntry, IpSetError, IpSetKind};
pub use rule::{
    AddrTypeTest, ChainId, CtStateMatch, IpSetId, MarkOp, Match, MatchModule, NatRange, NfacctId, Policy,
    PortRange, RecentId, RecentMode, Rule, SetDirs, Target,
};
pub use ruleset::{Chain, Counters, Ruleset, RulesetError, Table};

#[cfg(test)]
mod tests;
