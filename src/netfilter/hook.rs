//! Netfilter hooks, tables and their priorities.

use std::fmt;

/// The five IPv4 netfilter hooks (`enum nf_inet_hooks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Hook {
    /// `NF_INET_PRE_ROUTING`: every packet arriving on an interface.
    Prerouting,
    /// `NF_INET_LOCAL_IN`: packets routed to a local address.
    Input,
    /// `NF_INET_FORWARD`: packets routed through this namespace.
    Forward,
    /// `NF_INET_LOCAL_OUT`: locally generated packets.
    Output,
    /// `NF_INET_POST_ROUTING`: every packet leaving on an interface.
    Postrouting,
}

impl Hook {
    /// All hooks in packet-path order.
    pub const ALL: [Hook; 5] = [
        Hook::Prerouting,
        Hook::Input,
        Hook::Forward,
        Hook::Output,
        Hook::Postrouting,
    ];

    /// The built-in chain name (`PREROUTING`, ...).
    #[must_use]
    pub fn chain_name(self) -> &'static str {
        match self {
            Hook::Prerouting => "PREROUTING",
            Hook::Input => "INPUT",
            Hook::Forward => "FORWARD",
            Hook::Output => "OUTPUT",
            Hook::Postrouting => "POSTROUTING",
        }
    }

    /// The hook whose built-in chain is called `name`.
    #[must_use]
    pub fn from_chain_name(name: &str) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| h.chain_name() == name)
    }

    /// Whether conntrack allocates entries at this hook (`nf_conntrack_in` at
    /// PRE_ROUTING and LOCAL_OUT, priority -200).
    #[must_use]
    pub fn is_conntrack_entry(self) -> bool {
        matches!(self, Hook::Prerouting | Hook::Output)
    }

    /// Whether conntrack confirms entries at this hook (`nf_confirm` at POST_ROUTING
    /// and LOCAL_IN, priority INT_MAX).
    #[must_use]
    pub fn is_conntrack_confirm(self) -> bool {
        matches!(self, Hook::Postrouting | Hook::Input)
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.chain_name())
    }
}

/// The iptables tables (`raw`, `mangle`, `nat`, `filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum TableKind {
    /// `raw`: before conntrack (priority -300); NOTRACK lives here.
    Raw,
    /// `mangle`: priority -150.
    Mangle,
    /// `nat`: DNAT at -100 (PREROUTING, OUTPUT), SNAT at +100 (POSTROUTING, INPUT);
    /// consulted only for the first packet of a connection.
    Nat,
    /// `filter`: priority 0.
    Filter,
}

impl TableKind {
    /// All tables, in iptables-save order.
    pub const ALL: [TableKind; 4] = [
        TableKind::Raw,
        TableKind::Mangle,
        TableKind::Nat,
        TableKind::Filter,
    ];

    /// The table name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TableKind::Raw => "raw",
            TableKind::Mangle => "mangle",
            TableKind::Nat => "nat",
            TableKind::Filter => "filter",
        }
    }

    /// The table called `name`.
    #[must_use]
    pub fn parse(name: &str) -> Option<TableKind> {
        TableKind::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The hooks this table has built-in chains at.
    #[must_use]
    pub fn hooks(self) -> &'static [Hook] {
        match self {
            TableKind::Raw => &[Hook::Prerouting, Hook::Output],
            TableKind::Mangle => &Hook::ALL,
            TableKind::Nat => &[Hook::Prerouting, Hook::Input, Hook::Output, Hook::Postrouting],
            TableKind::Filter => &[Hook::Input, Hook::Forward, Hook::Output],
        }
    }

    /// The netfilter priority of this table at `hook` (`enum nf_ip_hook_priorities`).
    #[must_use]
    pub fn priority(self, hook: Hook) -> i32 {
        match (self, hook) {
            (TableKind::Raw, _) => -300,
            (TableKind::Mangle, _) => -150,
            (TableKind::Nat, Hook::Prerouting | Hook::Output) => -100,
            (TableKind::Nat, _) => 100,
            (TableKind::Filter, _) => 0,
        }
    }
}

impl fmt::Display for TableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Conntrack's own priorities, for ordering: allocation (`NF_IP_PRI_CONNTRACK`) and
/// confirmation (`NF_IP_PRI_CONNTRACK_CONFIRM`).
pub const PRIORITY_CONNTRACK: i32 = -200;
/// See [`PRIORITY_CONNTRACK`].
pub const PRIORITY_CONNTRACK_CONFIRM: i32 = i32::MAX;

/// What runs at `hook`, in priority order: each table's chain and the conntrack steps.
#[must_use]
pub fn hook_sequence(hook: Hook) -> Vec<HookStep> {
    let mut steps: Vec<(i32, HookStep)> = TableKind::ALL
        .into_iter()
        .filter(|t| t.hooks().contains(&hook))
        .map(|t| (t.priority(hook), HookStep::Table(t)))
        .collect();
    if hook.is_conntrack_entry() {
        steps.push((PRIORITY_CONNTRACK, HookStep::ConntrackIn));
    }
    if hook.is_conntrack_confirm() {
        steps.push((PRIORITY_CONNTRACK_CONFIRM, HookStep::ConntrackConfirm));
    }
    steps.sort_by_key(|(p, _)| *p);
    steps.into_iter().map(|(_, s)| s).collect()
}

/// One step of a hook's traversal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum HookStep {
    /// A table's built-in chain.
    Table(TableKind),
    /// `nf_conntrack_in`: look up or allocate the entry.
    ConntrackIn,
    /// `nf_confirm`: insert the entry into the hash.
    ConntrackConfirm,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prerouting_runs_raw_then_conntrack_then_mangle_then_nat() {
        assert_eq!(
            hook_sequence(Hook::Prerouting),
            vec![
                HookStep::Table(TableKind::Raw),
                HookStep::ConntrackIn,
                HookStep::Table(TableKind::Mangle),
                HookStep::Table(TableKind::Nat)
            ]
        );
        assert_eq!(
            hook_sequence(Hook::Postrouting),
            vec![
                HookStep::Table(TableKind::Mangle),
                HookStep::Table(TableKind::Nat),
                HookStep::ConntrackConfirm
            ]
        );
    }
}
