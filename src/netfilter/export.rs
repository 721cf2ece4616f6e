//! Printing a [`Ruleset`] in `iptables-save` format.
//!
//! Tables print in the order they were first used, chains in declaration order (built-in
//! chains first), then each chain's rules, chain by chain. Each rule prints its options in
//! the order they were given; `-d`/`-s` print a bare address for a `/32` (as kube-proxy
//! writes them; real `iptables-save` appends `/32`, which parses to the same rule).

use std::fmt::Write as _;

use super::hook::TableKind;
use super::rule::{MarkOp, Match, MatchModule, PortRange, RecentMode, Rule, Target};
use super::ruleset::{Ruleset, Table};
use crate::packet::Cidr;

/// What to do with rules in built-in chains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BuiltinRules {
    /// Print built-in chains and their rules, as `iptables-save` on the node would.
    #[default]
    Rules,
    /// Print only user chains as real lines; rules of built-in chains become `#` comment
    /// lines right after the table header (kube-proxy's `iptables-restore` payload, whose
    /// jumps from built-in chains are installed separately with `iptables -I`).
    Comments,
}

/// Export settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Built-in chain handling.
    pub builtin_rules: BuiltinRules,
}

/// The whole ruleset as `iptables-save` prints it.
#[must_use]
pub fn to_iptables_save(rs: &Ruleset) -> String {
    let mut out = String::new();
    write_iptables_save(rs, ExportOptions::default(), &mut out);
    out
}

/// kube-proxy's restore payload: user chains only, built-in chain rules as comments.
#[must_use]
pub fn to_restore_payload(rs: &Ruleset) -> String {
    let mut out = String::new();
    write_iptables_save(
        rs,
        ExportOptions {
            builtin_rules: BuiltinRules::Comments,
        },
        &mut out,
    );
    out
}

/// Appends the ruleset to `out`.
pub fn write_iptables_save(rs: &Ruleset, opts: ExportOptions, out: &mut String) {
    for &kind in rs.table_order() {
        write_table(rs, kind, opts, out);
    }
}

fn write_table(rs: &Ruleset, kind: TableKind, opts: ExportOptions, out: &mut String) {
    let t = rs.table(kind);
    let _ = writeln!(out, "*{}", kind.as_str());
    let skip_builtin = opts.builtin_rules == BuiltinRules::Comments;
    if skip_builtin {
        for &id in t.declared() {
            let c = t.chain(id);
            if c.is_builtin() {
                for r in c.rules() {
                    out.push_str("# ");
                    write_rule(rs, t, c.name(), r, out);
                    out.push('\n');
                }
            }
        }
    }
    for &id in t.declared() {
        let c = t.chain(id);
        if skip_builtin && c.is_builtin() {
            continue;
        }
        let policy = c.policy().map_or("-", |p| p.as_str());
        let k = c.counters();
        let _ = writeln!(out, ":{} {} [{}:{}]", c.name(), policy, k.packets, k.bytes);
    }
    for &id in t.declared() {
        let c = t.chain(id);
        if skip_builtin && c.is_builtin() {
            continue;
        }
        for r in c.rules() {
            write_rule(rs, t, c.name(), r, out);
            out.push('\n');
        }
    }
    out.push_str("COMMIT\n");
}

/// One rule as an `-A CHAIN ...` line (no newline).
#[must_use]
pub fn rule_to_string(rs: &Ruleset, table: TableKind, chain: &str, rule: &Rule) -> String {
    let mut s = String::new();
    write_rule(rs, rs.table(table), chain, rule, &mut s);
    s
}

fn needs_quotes(text: &str) -> bool {
    text.is_empty()
        || text == "!"
        || text
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\\' || c == '\'')
}

fn push_word(text: &str, out: &mut String) {
    if needs_quotes(text) {
        out.push('"');
        for c in text.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        out.push_str(text);
    }
}

fn push_cidr(c: Cidr, out: &mut String) {
    if c.len() == 32 {
        let _ = write!(out, "{}", c.addr());
    } else {
        let _ = write!(out, "{c}");
    }
}

fn push_not(negated: bool, out: &mut String) {
    if negated {
        out.push_str(" !");
    }
}

fn push_ports(p: PortRange, sep: char, out: &mut String) {
    if p.is_single() {
        let _ = write!(out, "{}", p.first);
    } else {
        let _ = write!(out, "{}{sep}{}", p.first, p.last);
    }
}

fn push_comment(rule: &Rule, out: &mut String) {
    out.push_str(" -m comment");
    if let Some(c) = &rule.comment {
        out.push_str(" --comment ");
        push_word(c, out);
    }
}

#[allow(clippy::too_many_lines)]
fn write_rule(rs: &Ruleset, t: &Table, chain: &str, rule: &Rule, out: &mut String) {
    out.push_str("-A ");
    out.push_str(chain);
    let has_marker = rule
        .matches
        .iter()
        .any(|m| matches!(m, Match::Module(MatchModule::Comment)));
    if rule.comment.is_some() && !has_marker {
        push_comment(rule, out);
    }
    for m in &rule.matches {
        match m {
            Match::Source { cidr, negated } => {
                push_not(*negated, out);
                out.push_str(" -s ");
                push_cidr(*cidr, out);
            }
            Match::Destination { cidr, negated } => {
                push_not(*negated, out);
                out.push_str(" -d ");
                push_cidr(*cidr, out);
            }
            Match::Protocol { proto, negated } => {
                push_not(*negated, out);
                let _ = write!(out, " -p {proto}");
            }
            Match::InInterface { name, negated } => {
                push_not(*negated, out);
                let _ = write!(out, " -i {name}");
            }
            Match::OutInterface { name, negated } => {
                push_not(*negated, out);
                let _ = write!(out, " -o {name}");
            }
            Match::SourcePort { ports, negated } => {
                push_not(*negated, out);
                out.push_str(" --sport ");
                push_ports(*ports, ':', out);
            }
            Match::DestinationPort { ports, negated } => {
                push_not(*negated, out);
                out.push_str(" --dport ");
                push_ports(*ports, ':', out);
            }
            Match::Module(MatchModule::Comment) => push_comment(rule, out),
            Match::Module(m) => {
                let _ = write!(out, " -m {}", m.as_str());
            }
            Match::AddrType { src, dst } => {
                out.push_str(" -m addrtype");
                if let Some(a) = src {
                    push_not(a.negated, out);
                    out.push_str(" --src-type LOCAL");
                }
                if let Some(a) = dst {
                    push_not(a.negated, out);
                    out.push_str(" --dst-type LOCAL");
                }
            }
            Match::Mark { value, mask, negated } => {
                out.push_str(" -m mark");
                push_not(*negated, out);
                if *mask == u32::MAX {
                    let _ = write!(out, " --mark {value:#x}");
                } else {
                    let _ = write!(out, " --mark {value:#x}/{mask:#x}");
                }
            }
            Match::Conntrack { states, negated } => {
                out.push_str(" -m conntrack");
                push_not(*negated, out);
                let _ = write!(out, " --ctstate {states}");
            }
            Match::Statistic { text, .. } => {
                let _ = write!(out, " -m statistic --mode random --probability {text}");
            }
            Match::Set { set, dirs, negated } => {
                out.push_str(" -m set");
                push_not(*negated, out);
                let name = rs.ipset(*set).map_or("?", |s| s.name());
                let _ = write!(out, " --match-set {name} {dirs}");
            }
            Match::Recent {
                list,
                mode,
                seconds,
                reap,
            } => {
                let name = rs.recent_name(*list).unwrap_or("DEFAULT");
                let _ = write!(out, " -m recent --name {name}");
                out.push_str(match mode {
                    RecentMode::Set => " --set",
                    RecentMode::Rcheck => " --rcheck",
                    RecentMode::Update => " --update",
                });
                if let Some(s) = seconds {
                    let _ = write!(out, " --seconds {s}");
                }
                if *reap {
                    out.push_str(" --reap");
                }
            }
            Match::Nfacct { counter } => {
                let name = rs.nfacct_name(*counter).unwrap_or("?");
                let _ = write!(out, " -m nfacct --nfacct-name {name}");
            }
        }
    }
    write_target(t, rule.target, out);
}

fn write_target(t: &Table, target: Target, out: &mut String) {
    let chain_name = |id| t.try_chain(id).map_or("?", |c| c.name());
    match target {
        Target::None => {}
        Target::Accept => out.push_str(" -j ACCEPT"),
        Target::Drop => out.push_str(" -j DROP"),
        Target::Reject => out.push_str(" -j REJECT"),
        Target::Return => out.push_str(" -j RETURN"),
        Target::Jump(id) => {
            let _ = write!(out, " -j {}", chain_name(id));
        }
        Target::Goto(id) => {
            let _ = write!(out, " -g {}", chain_name(id));
        }
        Target::Dnat { addr, port } => {
            let _ = write!(out, " -j DNAT --to-destination {addr}");
            if let Some(p) = port {
                let _ = write!(out, ":{p}");
            }
        }
        Target::Snat(r) => {
            let _ = write!(out, " -j SNAT --to-source {}", r.min_addr);
            if r.max_addr != r.min_addr {
                let _ = write!(out, "-{}", r.max_addr);
            }
            if let Some(p) = r.ports {
                out.push(':');
                push_ports(p, '-', out);
            }
            if r.random {
                out.push_str(" --random");
            }
            if r.random_fully {
                out.push_str(" --random-fully");
            }
            if r.persistent {
                out.push_str(" --persistent");
            }
        }
        Target::Masquerade {
            ports,
            random,
            random_fully,
        } => {
            out.push_str(" -j MASQUERADE");
            if let Some(p) = ports {
                out.push_str(" --to-ports ");
                push_ports(p, '-', out);
            }
            if random {
                out.push_str(" --random");
            }
            if random_fully {
                out.push_str(" --random-fully");
            }
        }
        Target::Mark(op) => {
            let _ = match op {
                MarkOp::SetXmark { value, mask } => write!(out, " -j MARK --set-xmark {value:#x}/{mask:#x}"),
                MarkOp::SetMark { value, mask } if mask == u32::MAX => {
                    write!(out, " -j MARK --set-mark {value:#x}")
                }
                MarkOp::SetMark { value, mask } => write!(out, " -j MARK --set-mark {value:#x}/{mask:#x}"),
                MarkOp::Or(v) => write!(out, " -j MARK --or-mark {v:#x}"),
                MarkOp::Xor(v) => write!(out, " -j MARK --xor-mark {v:#x}"),
                MarkOp::And(v) => write!(out, " -j MARK --and-mark {v:#x}"),
            };
        }
        Target::Notrack => out.push_str(" -j NOTRACK"),
        Target::CtNotrack => out.push_str(" -j CT --notrack"),
    }
}
