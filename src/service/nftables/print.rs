//! The table printed: as an `nft -f` transaction (kube-proxy's test syntax) and as
//! `nft list ruleset` output.

use std::fmt::Write as _;

use super::table::{
    ChainType, MapKey, NftAction, NftChainId, NftElement, NftMatch, NftRule, NftTable, NftVerdict, VmapKey,
};
use crate::netfilter::Hook;
use crate::packet::Cidr;

impl NftTable {
    fn chain_name(&self, id: NftChainId) -> &str {
        &self.chains[id.0 as usize].name
    }

    fn verdict_text(&self, v: NftVerdict) -> String {
        match v {
            NftVerdict::Accept => "accept".into(),
            NftVerdict::Drop => "drop".into(),
            NftVerdict::Reject => "reject".into(),
            NftVerdict::Return => "return".into(),
            NftVerdict::Jump(c) => format!("jump {}", self.chain_name(c)),
            NftVerdict::Goto(c) => format!("goto {}", self.chain_name(c)),
        }
    }

    pub(super) fn rule_text(&self, r: &NftRule) -> String {
        let mut parts: Vec<String> = Vec::new();
        for m in &r.matches {
            parts.push(match m {
                NftMatch::Daddr(a) => format!("ip daddr {a}"),
                NftMatch::Saddr(a) => format!("ip saddr {a}"),
                NftMatch::SaddrPrefix { cidr, negated } => {
                    format!("ip saddr {}{cidr}", if *negated { "!= " } else { "" })
                }
                NftMatch::SaddrAnon { cidrs, negated } => {
                    format!(
                        "ip saddr {}{{ {} }}",
                        if *negated { "!= " } else { "" },
                        cidr_list(cidrs)
                    )
                }
                NftMatch::DaddrAnon { cidrs } => format!("ip daddr {{ {} }}", cidr_list(cidrs)),
                NftMatch::DaddrInSet(s) => format!("ip daddr @{}", self.sets[s.0 as usize].name),
                NftMatch::SaddrInSet(s) => format!("ip saddr @{}", self.sets[s.0 as usize].name),
                NftMatch::FibSaddrLocal => "fib saddr type local".into(),
                NftMatch::CtStateNew => "ct state new".into(),
                NftMatch::MarkUnset(m) => format!("mark and {m:#x} == 0"),
            });
        }
        parts.push(match &r.action {
            NftAction::Verdict(v) => self.verdict_text(*v),
            NftAction::Vmap { key, map } => format!(
                "{} vmap @{}",
                match key {
                    VmapKey::DaddrProtoPort => "ip daddr . meta l4proto . th dport",
                    VmapKey::ProtoPort => "meta l4proto . th dport",
                },
                self.maps[map.0 as usize].name
            ),
            NftAction::NumgenVmap(targets) => {
                let elems: Vec<String> = targets
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{i} : goto {}", self.chain_name(*c)))
                    .collect();
                format!(
                    "numgen random mod {} vmap {{ {} }}",
                    targets.len(),
                    elems.join(" , ")
                )
            }
            NftAction::UpdateSet(s) => format!("update @{} {{ ip saddr }}", self.sets[s.0 as usize].name),
            NftAction::MarkOr(m) => format!("mark set mark or {m:#x}"),
            NftAction::MarkXor(m) => format!("mark set mark xor {m:#x}"),
            NftAction::Masquerade { fully_random } => {
                if *fully_random {
                    "masquerade fully-random".into()
                } else {
                    "masquerade".into()
                }
            }
            NftAction::Dnat { proto, to } => format!("meta l4proto {proto} dnat to {to}"),
        });
        if let Some(c) = &r.comment {
            parts.push(format!("comment \"{c}\""));
        }
        parts.join(" ")
    }

    fn key_text(k: &MapKey) -> String {
        match k {
            MapKey::AddrProtoPort(a, p, port) => format!("{a} . {p} . {port}"),
            MapKey::ProtoPort(p, port) => format!("{p} . {port}"),
        }
    }

    fn element_text(&self, e: &NftElement) -> String {
        let comment = e
            .comment
            .as_ref()
            .map(|c| format!(" comment \"{c}\""))
            .unwrap_or_default();
        format!(
            "{}{comment} : {}",
            Self::key_text(&e.key),
            self.verdict_text(e.verdict)
        )
    }

    /// The table as an `nft -f` transaction, in the syntax of kube-proxy's
    /// `TestOverallNFTablesRules` expectations: table, sets, maps, chains, rules, elements.
    #[must_use]
    pub fn to_transaction(&self) -> String {
        let t = "ip kube-proxy";
        let mut out = format!("add table {t} {{ comment \"rules for kube-proxy\" ; }}\n");
        for s in &self.sets {
            let _ = write!(out, "add set {t} {} {{ type ipv4_addr ;", s.name);
            if let Some(to) = s.timeout {
                let _ = write!(out, " flags dynamic,timeout ; timeout {}s ;", to.as_secs());
            }
            if let Some(c) = &s.comment {
                let _ = write!(out, " comment \"{c}\" ;");
            }
            out.push_str(" }\n");
        }
        for m in &self.maps {
            let ty = match m.key {
                VmapKey::DaddrProtoPort => "ipv4_addr . inet_proto . inet_service",
                VmapKey::ProtoPort => "inet_proto . inet_service",
            };
            let _ = writeln!(
                out,
                "add map {t} {} {{ type {ty} : verdict ; comment \"{}\" ; }}",
                m.name, m.comment
            );
        }
        for c in &self.chains {
            let _ = write!(out, "add chain {t} {}", c.name);
            if let Some(b) = c.base {
                let _ = write!(
                    out,
                    " {{ type {} hook {} priority {} ; }}",
                    chain_type(b.kind),
                    hook_name(b.hook),
                    b.priority
                );
            } else if let Some(cm) = &c.comment {
                let _ = write!(out, " {{ comment \"{cm}\" ; }}");
            }
            out.push('\n');
        }
        for c in &self.chains {
            for r in &c.rules {
                let _ = writeln!(out, "add rule {t} {} {}", c.name, self.rule_text(r));
            }
        }
        for s in &self.sets {
            for e in &s.elements {
                let _ = writeln!(out, "add element {t} {} {{ {e} }}", s.name);
            }
        }
        for m in &self.maps {
            for e in &m.elements {
                let _ = writeln!(out, "add element {t} {} {{ {} }}", m.name, self.element_text(e));
            }
        }
        out
    }

    /// The table as `nft list ruleset` prints it.
    #[must_use]
    pub fn to_nft_text(&self) -> String {
        let mut out = String::from("table ip kube-proxy {\n\tcomment \"rules for kube-proxy\"\n");
        for s in &self.sets {
            let _ = write!(out, "\n\tset {} {{\n\t\ttype ipv4_addr\n", s.name);
            if let Some(to) = s.timeout {
                let _ = write!(out, "\t\tflags dynamic,timeout\n\t\ttimeout {}s\n", to.as_secs());
            }
            if let Some(c) = &s.comment {
                let _ = writeln!(out, "\t\tcomment \"{c}\"");
            }
            if !s.elements.is_empty() {
                let list: Vec<String> = s.elements.iter().map(ToString::to_string).collect();
                let _ = writeln!(out, "\t\telements = {{ {} }}", list.join(", "));
            }
            out.push_str("\t}\n");
        }
        for m in &self.maps {
            let ty = match m.key {
                VmapKey::DaddrProtoPort => "ipv4_addr . inet_proto . inet_service",
                VmapKey::ProtoPort => "inet_proto . inet_service",
            };
            let _ = write!(
                out,
                "\n\tmap {} {{\n\t\ttype {ty} : verdict\n\t\tcomment \"{}\"\n",
                m.name, m.comment
            );
            if !m.elements.is_empty() {
                let list: Vec<String> = m.elements.iter().map(|e| self.element_text(e)).collect();
                let _ = writeln!(out, "\t\telements = {{ {} }}", list.join(",\n\t\t\t     "));
            }
            out.push_str("\t}\n");
        }
        for c in &self.chains {
            let _ = writeln!(out, "\n\tchain {} {{", c.name);
            if let Some(b) = c.base {
                let _ = writeln!(
                    out,
                    "\t\ttype {} hook {} priority {}; policy accept;",
                    chain_type(b.kind),
                    hook_name(b.hook),
                    priority_name(b.hook, b.priority)
                );
            }
            if let Some(cm) = &c.comment {
                let _ = writeln!(out, "\t\tcomment \"{cm}\"");
            }
            for r in &c.rules {
                let _ = writeln!(out, "\t\t{}", self.rule_text(r));
            }
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
        out
    }
}

fn cidr_list(cidrs: &[Cidr]) -> String {
    cidrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn chain_type(k: ChainType) -> &'static str {
    match k {
        ChainType::Filter => "filter",
        ChainType::Nat => "nat",
    }
}

pub(super) fn hook_name(h: Hook) -> &'static str {
    match h {
        Hook::Prerouting => "prerouting",
        Hook::Input => "input",
        Hook::Forward => "forward",
        Hook::Output => "output",
        Hook::Postrouting => "postrouting",
    }
}

/// How `nft list ruleset` (nftables 1.0.6, Debian 12) prints a base chain's priority: by
/// name where the name is valid for the hook (`filter` 0 on every hook, `dstnat` -100 on
/// prerouting, `srcnat` 100 on postrouting), as a plain number elsewhere. Before nftables
/// 1.0.9, `dstnat` on the output hook is refused (`invalid priority expression value in
/// this context`), which is why kube-proxy's library (knftables) writes every priority as
/// a number; the listing printed here loads with the older and the newer `nft -f`.
fn priority_name(hook: Hook, p: i32) -> String {
    match (hook, p) {
        (_, 0) => "filter".into(),
        (Hook::Prerouting, -100) => "dstnat".into(),
        (Hook::Prerouting, p) if (-150..-100).contains(&p) => format!("dstnat - {}", -100 - p),
        (Hook::Prerouting, p) if (-99..-50).contains(&p) => format!("dstnat + {}", p + 100),
        (Hook::Postrouting, 100) => "srcnat".into(),
        (_, p) => p.to_string(),
    }
}
