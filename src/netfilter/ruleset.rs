//! The per-namespace ruleset: four tables of chains, plus the ipsets, `recent` lists and
//! nfacct counters its rules refer to.

use std::collections::BTreeMap;

use super::hook::{Hook, TableKind};
use super::index::ChainIndex;
use super::ipset::IpSet;
use super::rule::{ChainId, IpSetId, NfacctId, Policy, RecentId, Rule, Target};

/// Why a ruleset change was refused (API misuse; iptables would refuse the same).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RulesetError {
    /// No chain of that name or id in the table.
    #[error("table `{table}` has no chain `{chain}`")]
    UnknownChain {
        /// The table.
        table: TableKind,
        /// The chain name (or `#id`).
        chain: String,
    },
    /// A user chain of that name already exists.
    #[error("table `{table}` already has a chain `{chain}`")]
    DuplicateChain {
        /// The table.
        table: TableKind,
        /// The chain name.
        chain: String,
    },
    /// `-j`/`-g` to a built-in chain.
    #[error("cannot jump to built-in chain `{chain}` of table `{table}`")]
    JumpToBuiltin {
        /// The table.
        table: TableKind,
        /// The chain name.
        chain: String,
    },
    /// The table has no built-in chain at that hook.
    #[error("table `{table}` has no built-in chain at {hook}")]
    NoBuiltinChain {
        /// The table.
        table: TableKind,
        /// The hook.
        hook: Hook,
    },
    /// Jumps and gotos form a loop (the kernel refuses such a table: `mark_source_chains`).
    #[error("table `{table}`: chain `{chain}` can reach itself through jumps")]
    ChainLoop {
        /// The table.
        table: TableKind,
        /// A chain on the loop.
        chain: String,
    },
    /// An ipset of that name already exists.
    #[error("set `{set}` already exists")]
    DuplicateSet {
        /// The set name.
        set: String,
    },
    /// A rule position past the end of the chain.
    #[error("chain `{chain}` has no rule {index}")]
    NoSuchRule {
        /// The chain name.
        chain: String,
        /// The position asked for.
        index: usize,
    },
}

/// Packet and byte counters as `iptables-save` prints them (`[packets:bytes]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// A chain: built-in (with a policy) or user-defined.
#[derive(Clone, Debug, PartialEq)]
pub struct Chain {
    name: String,
    policy: Option<Policy>,
    counters: Counters,
    rules: Vec<Rule>,
    declared: bool,
    pub(crate) index: ChainIndex,
}

impl Chain {
    fn new(name: &str, policy: Option<Policy>) -> Chain {
        Chain {
            name: name.to_string(),
            policy,
            counters: Counters::default(),
            rules: Vec::new(),
            declared: false,
            index: ChainIndex::default(),
        }
    }

    /// The chain's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy (built-in chains only).
    #[must_use]
    pub fn policy(&self) -> Option<Policy> {
        self.policy
    }

    /// Whether this is a built-in chain.
    #[must_use]
    pub fn is_builtin(&self) -> bool {
        self.policy.is_some()
    }

    /// The counters printed after the policy.
    #[must_use]
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The rules in order.
    #[must_use]
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

/// One table: its chains (built-in ones first, in hook order), looked up by name only when
/// rules are added.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    kind: TableKind,
    chains: Vec<Chain>,
    by_name: BTreeMap<String, ChainId>,
    builtin: [Option<ChainId>; 5],
    /// Chains in the order they are printed (declaration order).
    decl_order: Vec<ChainId>,
}

fn hook_slot(hook: Hook) -> usize {
    match hook {
        Hook::Prerouting => 0,
        Hook::Input => 1,
        Hook::Forward => 2,
        Hook::Output => 3,
        Hook::Postrouting => 4,
    }
}

impl Table {
    fn new(kind: TableKind) -> Table {
        let mut t = Table {
            kind,
            chains: Vec::new(),
            by_name: BTreeMap::new(),
            builtin: [None; 5],
            decl_order: Vec::new(),
        };
        for hook in kind.hooks() {
            let id = t.push_chain(hook.chain_name(), Some(Policy::Accept));
            t.builtin[hook_slot(*hook)] = Some(id);
        }
        t
    }

    #[allow(clippy::cast_possible_truncation)]
    fn push_chain(&mut self, name: &str, policy: Option<Policy>) -> ChainId {
        let id = ChainId(self.chains.len() as u32);
        self.chains.push(Chain::new(name, policy));
        self.by_name.insert(name.to_string(), id);
        id
    }

    /// Which table this is.
    #[must_use]
    pub fn kind(&self) -> TableKind {
        self.kind
    }

    /// The chain with this id.
    ///
    /// # Panics
    /// If the id does not belong to this table (ids come from this table's own lookups).
    #[must_use]
    pub fn chain(&self, id: ChainId) -> &Chain {
        &self.chains[id.index()]
    }

    /// The chain with this id, if it exists.
    #[must_use]
    pub fn try_chain(&self, id: ChainId) -> Option<&Chain> {
        self.chains.get(id.index())
    }

    /// The chain called `name`.
    #[must_use]
    pub fn chain_id(&self, name: &str) -> Option<ChainId> {
        self.by_name.get(name).copied()
    }

    /// The built-in chain at `hook`, if the table has one there.
    #[must_use]
    pub fn builtin(&self, hook: Hook) -> Option<ChainId> {
        self.builtin[hook_slot(hook)]
    }

    /// Every chain, in id order.
    pub fn chains(&self) -> impl Iterator<Item = (ChainId, &Chain)> {
        #[allow(clippy::cast_possible_truncation)]
        self.chains
            .iter()
            .enumerate()
            .map(|(i, c)| (ChainId(i as u32), c))
    }

    /// Chains in printing (declaration) order.
    #[must_use]
    pub fn declared(&self) -> &[ChainId] {
        &self.decl_order
    }

    /// The total number of rules in the table.
    #[must_use]
    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }

    /// Rules in user-defined chains only (what kube-proxy's restore payload counts).
    #[must_use]
    pub fn user_rule_count(&self) -> usize {
        self.chains
            .iter()
            .filter(|c| !c.is_builtin())
            .map(|c| c.rules.len())
            .sum()
    }

    /// Number of user-defined chains.
    #[must_use]
    pub fn user_chain_count(&self) -> usize {
        self.chains.iter().filter(|c| !c.is_builtin()).count()
    }

    fn declare(&mut self, id: ChainId) {
        if self.chains[id.index()].declared {
            return;
        }
        self.chains[id.index()].declared = true;
        if self.chains[id.index()].is_builtin() {
            // Built-in chains print first, in hook order, as iptables-save does.
            let at = self
                .decl_order
                .iter()
                .take_while(|c| self.chains[c.index()].is_builtin() && **c < id)
                .count();
            self.decl_order.insert(at, id);
        } else {
            self.decl_order.push(id);
        }
    }

    fn check_id(&self, id: ChainId) -> Result<(), RulesetError> {
        if id.index() < self.chains.len() {
            Ok(())
        } else {
            Err(RulesetError::UnknownChain {
                table: self.kind,
                chain: format!("#{}", id.0),
            })
        }
    }

    fn check_target(&self, target: Target) -> Result<(), RulesetError> {
        if let Target::Jump(id) | Target::Goto(id) = target {
            self.check_id(id)?;
            let c = &self.chains[id.index()];
            if c.is_builtin() {
                return Err(RulesetError::JumpToBuiltin {
                    table: self.kind,
                    chain: c.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// Finds a chain that can reach itself through jumps/gotos, if any.
    fn find_loop(&self) -> Option<ChainId> {
        // Iterative DFS with colours: 0 white, 1 on stack, 2 done.
        let n = self.chains.len();
        let mut colour = vec![0u8; n];
        for root in 0..n {
            if colour[root] != 0 {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
            colour[root] = 1;
            while let Some(&mut (c, ref mut next_rule)) = stack.last_mut() {
                let rules = &self.chains[c].rules;
                let mut pushed = false;
                while *next_rule < rules.len() {
                    let r = &rules[*next_rule];
                    *next_rule += 1;
                    if let Target::Jump(id) | Target::Goto(id) = r.target {
                        let d = id.index();
                        if colour[d] == 1 {
                            #[allow(clippy::cast_possible_truncation)]
                            return Some(ChainId(d as u32));
                        }
                        if colour[d] == 0 {
                            colour[d] = 1;
                            stack.push((d, 0));
                            pushed = true;
                            break;
                        }
                    }
                }
                if !pushed {
                    colour[c] = 2;
                    stack.pop();
                }
            }
        }
        None
    }
}

/// The netfilter rules of one network namespace: the raw, mangle, nat and filter tables
/// with their built-in chains (policy ACCEPT), user chains, and the named objects rules
/// refer to (ipsets, `recent` lists, nfacct counters).
#[derive(Clone, Debug, PartialEq)]
pub struct Ruleset {
    tables: [Table; 4],
    /// Tables in printing order (only tables that were used).
    table_order: Vec<TableKind>,
    ipsets: Vec<IpSet>,
    recent_names: Vec<String>,
    nfacct_names: Vec<String>,
}

fn table_slot(kind: TableKind) -> usize {
    match kind {
        TableKind::Raw => 0,
        TableKind::Mangle => 1,
        TableKind::Nat => 2,
        TableKind::Filter => 3,
    }
}

impl Default for Ruleset {
    fn default() -> Self {
        Ruleset::new()
    }
}

impl Ruleset {
    /// An empty ruleset: every built-in chain present, empty, policy ACCEPT.
    #[must_use]
    pub fn new() -> Ruleset {
        Ruleset {
            tables: TableKind::ALL.map(Table::new),
            table_order: Vec::new(),
            ipsets: Vec::new(),
            recent_names: Vec::new(),
            nfacct_names: Vec::new(),
        }
    }

    /// One table.
    #[must_use]
    pub fn table(&self, kind: TableKind) -> &Table {
        &self.tables[table_slot(kind)]
    }

    fn table_mut(&mut self, kind: TableKind) -> &mut Table {
        if !self.table_order.contains(&kind) {
            self.table_order.push(kind);
        }
        &mut self.tables[table_slot(kind)]
    }

    /// Tables in printing order: those that were used, in first-use order.
    #[must_use]
    pub fn table_order(&self) -> &[TableKind] {
        &self.table_order
    }

    /// Marks a table as used (it is printed even when it holds no rule).
    pub fn use_table(&mut self, kind: TableKind) {
        let _ = self.table_mut(kind);
    }

    /// The chain called `name` in `table`.
    #[must_use]
    pub fn chain_id(&self, table: TableKind, name: &str) -> Option<ChainId> {
        self.table(table).chain_id(name)
    }

    /// Creates a user chain (`iptables -N`, or a `:NAME - [0:0]` line).
    ///
    /// # Errors
    /// When a chain of that name exists.
    pub fn add_chain(&mut self, table: TableKind, name: &str) -> Result<ChainId, RulesetError> {
        let t = self.table_mut(table);
        if t.chain_id(name).is_some() {
            return Err(RulesetError::DuplicateChain {
                table,
                chain: name.to_string(),
            });
        }
        let id = t.push_chain(name, None);
        t.declare(id);
        Ok(id)
    }

    /// Sets a chain's counters (kept for printing only).
    ///
    /// # Errors
    /// Unknown chain id.
    pub fn set_counters(
        &mut self,
        table: TableKind,
        chain: ChainId,
        counters: Counters,
    ) -> Result<(), RulesetError> {
        let t = self.table_mut(table);
        t.check_id(chain)?;
        t.chains[chain.index()].counters = counters;
        Ok(())
    }

    /// Sets the policy of the built-in chain at `hook` (`iptables -P`).
    ///
    /// # Errors
    /// When the table has no chain at that hook.
    pub fn set_policy(&mut self, table: TableKind, hook: Hook, policy: Policy) -> Result<(), RulesetError> {
        let t = self.table_mut(table);
        let id = t
            .builtin(hook)
            .ok_or(RulesetError::NoBuiltinChain { table, hook })?;
        t.chains[id.index()].policy = Some(policy);
        t.declare(id);
        Ok(())
    }

    /// Appends a rule (`iptables -A`).
    ///
    /// # Errors
    /// Unknown chain, or a jump to an unknown or built-in chain.
    pub fn append_rule(&mut self, table: TableKind, chain: ChainId, rule: Rule) -> Result<(), RulesetError> {
        let t = self.table_mut(table);
        t.check_id(chain)?;
        t.check_target(rule.target)?;
        t.declare(chain);
        let c = &mut t.chains[chain.index()];
        c.index.push(&rule);
        c.rules.push(rule);
        Ok(())
    }

    /// Inserts a rule at position `index` (`iptables -I CHAIN index+1`).
    ///
    /// # Errors
    /// Unknown chain, bad position, or a jump to an unknown or built-in chain.
    pub fn insert_rule(
        &mut self,
        table: TableKind,
        chain: ChainId,
        index: usize,
        rule: Rule,
    ) -> Result<(), RulesetError> {
        let t = self.table_mut(table);
        t.check_id(chain)?;
        t.check_target(rule.target)?;
        t.declare(chain);
        let c = &mut t.chains[chain.index()];
        if index > c.rules.len() {
            return Err(RulesetError::NoSuchRule {
                chain: c.name.clone(),
                index,
            });
        }
        c.rules.insert(index, rule);
        c.index = ChainIndex::build(&c.rules);
        Ok(())
    }

    /// Checks that no chain of `table` can reach itself (the kernel's `mark_source_chains`
    /// refuses such a table). Evaluation of a looping table stops after a step budget.
    ///
    /// # Errors
    /// [`RulesetError::ChainLoop`] naming a chain on the loop.
    pub fn check_loops(&self, table: TableKind) -> Result<(), RulesetError> {
        let t = self.table(table);
        match t.find_loop() {
            Some(id) => Err(RulesetError::ChainLoop {
                table,
                chain: t.chain(id).name.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Adds an ipset.
    ///
    /// # Errors
    /// When a set of that name exists.
    #[allow(clippy::cast_possible_truncation)]
    pub fn add_ipset(&mut self, set: IpSet) -> Result<IpSetId, RulesetError> {
        if self.ipset_id(set.name()).is_some() {
            return Err(RulesetError::DuplicateSet {
                set: set.name().to_string(),
            });
        }
        self.ipsets.push(set);
        Ok(IpSetId((self.ipsets.len() - 1) as u32))
    }

    /// The set called `name`.
    #[must_use]
    #[allow(clippy::cast_possible_truncation)]
    pub fn ipset_id(&self, name: &str) -> Option<IpSetId> {
        self.ipsets
            .iter()
            .position(|s| s.name() == name)
            .map(|i| IpSetId(i as u32))
    }

    /// A set by id.
    #[must_use]
    pub fn ipset(&self, id: IpSetId) -> Option<&IpSet> {
        self.ipsets.get(id.0 as usize)
    }

    /// Every set.
    #[must_use]
    pub fn ipsets(&self) -> &[IpSet] {
        &self.ipsets
    }

    /// The `recent` list called `name`, created on first use.
    #[allow(clippy::cast_possible_truncation)]
    pub fn recent_list(&mut self, name: &str) -> RecentId {
        match self.recent_names.iter().position(|n| n == name) {
            Some(i) => RecentId(i as u32),
            None => {
                self.recent_names.push(name.to_string());
                RecentId((self.recent_names.len() - 1) as u32)
            }
        }
    }

    /// The name of a `recent` list.
    #[must_use]
    pub fn recent_name(&self, id: RecentId) -> Option<&str> {
        self.recent_names.get(id.0 as usize).map(String::as_str)
    }

    /// The nfacct counter called `name`, created on first use.
    #[allow(clippy::cast_possible_truncation)]
    pub fn nfacct_counter(&mut self, name: &str) -> NfacctId {
        match self.nfacct_names.iter().position(|n| n == name) {
            Some(i) => NfacctId(i as u32),
            None => {
                self.nfacct_names.push(name.to_string());
                NfacctId((self.nfacct_names.len() - 1) as u32)
            }
        }
    }

    /// The name of an nfacct counter.
    #[must_use]
    pub fn nfacct_name(&self, id: NfacctId) -> Option<&str> {
        self.nfacct_names.get(id.0 as usize).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ruleset_has_builtin_chains_with_accept_policy() {
        let rs = Ruleset::new();
        let nat = rs.table(TableKind::Nat);
        let pre = nat.builtin(Hook::Prerouting).unwrap();
        assert_eq!(nat.chain(pre).name(), "PREROUTING");
        assert_eq!(nat.chain(pre).policy(), Some(Policy::Accept));
        assert!(nat.builtin(Hook::Forward).is_none());
        assert!(rs.table_order().is_empty());
    }

    #[test]
    fn jumps_to_builtin_or_unknown_chains_are_refused() {
        let mut rs = Ruleset::new();
        let pre = rs.chain_id(TableKind::Nat, "PREROUTING").unwrap();
        let out = rs.chain_id(TableKind::Nat, "OUTPUT").unwrap();
        let err = rs.append_rule(TableKind::Nat, pre, Rule::new(Target::Jump(out)));
        assert!(matches!(err, Err(RulesetError::JumpToBuiltin { .. })));
        let err = rs.append_rule(TableKind::Nat, pre, Rule::new(Target::Jump(ChainId(99))));
        assert!(matches!(err, Err(RulesetError::UnknownChain { .. })));
        assert!(rs.add_chain(TableKind::Nat, "PREROUTING").is_err());
    }

    #[test]
    fn loops_are_found() {
        let mut rs = Ruleset::new();
        let a = rs.add_chain(TableKind::Filter, "A").unwrap();
        let b = rs.add_chain(TableKind::Filter, "B").unwrap();
        rs.append_rule(TableKind::Filter, a, Rule::new(Target::Jump(b)))
            .unwrap();
        assert!(rs.check_loops(TableKind::Filter).is_ok());
        rs.append_rule(TableKind::Filter, b, Rule::new(Target::Goto(a)))
            .unwrap();
        assert!(matches!(
            rs.check_loops(TableKind::Filter),
            Err(RulesetError::ChainLoop { .. })
        ));
    }
}
