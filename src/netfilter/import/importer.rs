//! The importer's state and the line types: `*table` headers, `COMMIT`, `:CHAIN POLICY
//! [packets:bytes]` declarations, and the chains a rule jumps to.

use super::ImportError;
use super::token::{Tok, err, tokenize};
use crate::netfilter::hook::TableKind;
use crate::netfilter::rule::{ChainId, Policy};
use crate::netfilter::ruleset::{Counters, Ruleset};

pub(super) struct Importer {
    pub(super) rs: Ruleset,
    pub(super) table: Option<(TableKind, usize)>,
    pub(super) seen: Vec<TableKind>,
}

impl Importer {
    pub(super) fn line(&mut self, s: &str, line: usize) -> Result<(), ImportError> {
        let trimmed = s.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(());
        }
        let col0 = s.len() - trimmed.len() + 1;
        if let Some(name) = trimmed.strip_prefix('*') {
            if let Some((open, _)) = self.table {
                return Err(err(
                    line,
                    col0,
                    format!("table `{open}` is not committed before `*{name}`"),
                ));
            }
            let name = name.trim_end();
            let kind = TableKind::parse(name).ok_or_else(|| {
                err(
                    line,
                    col0 + 1,
                    format!("unknown table `{name}` (expected raw, mangle, nat or filter)"),
                )
            })?;
            if self.seen.contains(&kind) {
                return Err(err(line, col0 + 1, format!("table `{kind}` appears twice")));
            }
            self.seen.push(kind);
            self.rs.use_table(kind);
            self.table = Some((kind, line));
            return Ok(());
        }
        if trimmed.trim_end() == "COMMIT" {
            let Some((kind, _)) = self.table.take() else {
                return Err(err(line, col0, "COMMIT outside a table"));
            };
            return self
                .rs
                .check_loops(kind)
                .map_err(|e| err(line, col0, e.to_string()));
        }
        let Some((kind, _)) = self.table else {
            return Err(err(
                line,
                col0,
                "line outside a table (expected a `*table` line first)",
            ));
        };
        if let Some(rest) = trimmed.strip_prefix(':') {
            return self.chain_line(kind, rest, line, col0 + 1);
        }
        let toks = tokenize(s, line)?;
        match toks.first().map(|t| t.text.as_str()) {
            Some("-A" | "--append") => self.rule_line(kind, &toks, line),
            Some(other) => Err(err(
                line,
                col0,
                format!("unknown command `{other}` (expected `-A`, `:CHAIN`, `*table` or COMMIT)"),
            )),
            None => Ok(()),
        }
    }

    fn chain_line(
        &mut self,
        kind: TableKind,
        rest: &str,
        line: usize,
        col: usize,
    ) -> Result<(), ImportError> {
        let toks = tokenize(rest, line)?;
        let at = |t: &Tok| col + t.col - 1;
        let Some(name) = toks.first().filter(|t| !t.text.is_empty()) else {
            return Err(err(line, col, "expected a chain name after `:`"));
        };
        let Some(policy) = toks.get(1) else {
            return Err(err(
                line,
                at(name) + name.text.len(),
                "expected a policy (`-`, ACCEPT or DROP)",
            ));
        };
        let counters = match toks.get(2) {
            None => Counters::default(),
            Some(t) => {
                let inner = t.text.strip_prefix('[').and_then(|x| x.strip_suffix(']'));
                let parsed = inner
                    .and_then(|x| x.split_once(':'))
                    .and_then(|(p, b)| Some((p.parse().ok()?, b.parse().ok()?)));
                let Some((packets, bytes)) = parsed else {
                    return Err(err(
                        line,
                        at(t),
                        format!("expected counters `[packets:bytes]`, found `{}`", t.text),
                    ));
                };
                Counters { packets, bytes }
            }
        };
        if let Some(extra) = toks.get(3) {
            return Err(err(
                line,
                at(extra),
                format!("unexpected `{}` after chain counters", extra.text),
            ));
        }
        let existing = self.rs.chain_id(kind, &name.text);
        let builtin = existing.is_some_and(|id| self.rs.table(kind).chain(id).is_builtin());
        let id = match (policy.text.as_str(), builtin) {
            ("-", false) => {
                if existing.is_some() {
                    return Err(err(
                        line,
                        at(name),
                        format!("chain `{}` declared twice", name.text),
                    ));
                }
                self.rs
                    .add_chain(kind, &name.text)
                    .map_err(|e| err(line, at(name), e.to_string()))?
            }
            ("ACCEPT" | "DROP", true) => {
                let hook = crate::netfilter::hook::Hook::from_chain_name(&name.text)
                    .ok_or_else(|| err(line, at(name), "internal: built-in chain without hook"))?;
                let p = if policy.text == "DROP" {
                    Policy::Drop
                } else {
                    Policy::Accept
                };
                self.rs
                    .set_policy(kind, hook, p)
                    .map_err(|e| err(line, at(name), e.to_string()))?;
                existing.ok_or_else(|| err(line, at(name), "internal: built-in chain missing"))?
            }
            ("ACCEPT" | "DROP", false) => {
                return Err(err(
                    line,
                    at(policy),
                    format!(
                        "chain `{}` is not a built-in chain of table `{kind}`; user chains take policy `-`",
                        name.text
                    ),
                ));
            }
            (_, true) => {
                return Err(err(
                    line,
                    at(policy),
                    format!(
                        "built-in chain `{}` needs policy ACCEPT or DROP, found `{}`",
                        name.text, policy.text
                    ),
                ));
            }
            (_, false) => {
                return Err(err(
                    line,
                    at(policy),
                    format!("expected policy `-` for user chain, found `{}`", policy.text),
                ));
            }
        };
        self.rs
            .set_counters(kind, id, counters)
            .map_err(|e| err(line, col, e.to_string()))
    }

    pub(super) fn user_chain(
        &self,
        kind: TableKind,
        name: &Tok,
        line: usize,
    ) -> Result<ChainId, ImportError> {
        match self.rs.chain_id(kind, &name.text) {
            Some(id) if self.rs.table(kind).chain(id).is_builtin() => Err(err(
                line,
                name.col,
                format!("cannot jump to built-in chain `{}`", name.text),
            )),
            Some(id) => Ok(id),
            None => Err(err(
                line,
                name.col,
                format!("jump to undeclared chain `{}` in table `{kind}`", name.text),
            )),
        }
    }
}
