//! Targets (`-j NAME [options]`, `-g NAME`): built-in targets with their options, or a
//! jump or goto to a user chain.

use std::net::Ipv4Addr;

use super::ImportError;
use super::importer::Importer;
use super::token::{Tok, err, parse_nat_range, parse_port, parse_port_range, parse_u32, parse_value_mask};
use crate::netfilter::hook::TableKind;
use crate::netfilter::rule::{MarkOp, NatRange, Target};

impl Importer {
    // Long on purpose: one arm per built-in target (ACCEPT/DROP/REJECT/RETURN/NOTRACK, CT,
    // DNAT, SNAT, MASQUERADE, MARK), each reading its own options.
    /// Parses `-j NAME [options]` / `-g NAME`; returns the target and how many tokens after
    /// the name it used.
    #[allow(clippy::too_many_lines)]
    pub(super) fn parse_target(
        &mut self,
        kind: TableKind,
        name: &Tok,
        goto: bool,
        rest: &[Tok],
        line: usize,
    ) -> Result<(Target, usize), ImportError> {
        let n = name.text.as_str();
        let builtin_target = matches!(
            n,
            "ACCEPT"
                | "DROP"
                | "REJECT"
                | "RETURN"
                | "DNAT"
                | "SNAT"
                | "MASQUERADE"
                | "MARK"
                | "NOTRACK"
                | "CT"
        );
        if goto || !builtin_target {
            let id = self.user_chain(kind, name, line)?;
            return Ok((if goto { Target::Goto(id) } else { Target::Jump(id) }, 0));
        }
        let only = |t: TableKind| {
            if kind == t {
                Ok(())
            } else {
                Err(err(
                    line,
                    name.col,
                    format!("target `{n}` is only valid in table `{t}`"),
                ))
            }
        };
        // Collect target options: `--opt [value]`.
        let mut opts: Vec<(&Tok, Option<&Tok>)> = Vec::new();
        let mut used = 0;
        while used < rest.len() {
            let o = &rest[used];
            if !o.text.starts_with("--") || o.quoted {
                return Err(err(
                    line,
                    o.col,
                    format!("unexpected `{}` after target `{n}`", o.text),
                ));
            }
            let takes_value = matches!(
                o.text.as_str(),
                "--to-destination"
                    | "--to-source"
                    | "--to-ports"
                    | "--set-xmark"
                    | "--set-mark"
                    | "--or-mark"
                    | "--xor-mark"
                    | "--and-mark"
            );
            used += 1;
            let v = if takes_value {
                let v = rest.get(used).ok_or_else(|| {
                    err(
                        line,
                        o.col + o.text.len(),
                        format!("option `{}` of target `{n}` needs a value", o.text),
                    )
                })?;
                used += 1;
                Some(v)
            } else {
                None
            };
            if opts.iter().any(|(p, _)| p.text == o.text) {
                return Err(err(line, o.col, format!("option `{}` given twice", o.text)));
            }
            opts.push((o, v));
        }
        let unknown = |o: &Tok| {
            err(
                line,
                o.col,
                format!("unknown option `{}` for target `{n}`", o.text),
            )
        };
        let target = match n {
            "ACCEPT" | "DROP" | "REJECT" | "RETURN" | "NOTRACK" => {
                if let Some((o, _)) = opts.first() {
                    return Err(unknown(o));
                }
                if n == "NOTRACK" {
                    only(TableKind::Raw)?;
                }
                match n {
                    "ACCEPT" => Target::Accept,
                    "DROP" => Target::Drop,
                    "REJECT" => Target::Reject,
                    "RETURN" => Target::Return,
                    _ => Target::Notrack,
                }
            }
            "CT" => {
                only(TableKind::Raw)?;
                match opts.as_slice() {
                    [(o, None)] if o.text == "--notrack" => Target::CtNotrack,
                    [] => {
                        return Err(err(
                            line,
                            name.col,
                            "target `CT` needs `--notrack` (the only CT option modelled)",
                        ));
                    }
                    [(o, _), ..] => return Err(unknown(o)),
                }
            }
            "DNAT" => {
                only(TableKind::Nat)?;
                let mut dest = None;
                for (o, v) in &opts {
                    match (o.text.as_str(), v) {
                        ("--to-destination", Some(v)) => {
                            let (a, p) = match v.text.split_once(':') {
                                Some((a, p)) => (a, Some(p)),
                                None => (v.text.as_str(), None),
                            };
                            let addr: Ipv4Addr = a.parse().map_err(|_| {
                                err(
                                    line,
                                    v.col,
                                    format!("invalid address `{a}` in `--to-destination`"),
                                )
                            })?;
                            let port = match p {
                                Some(p) => Some(parse_port(p).ok_or_else(|| {
                                    err(line, v.col, format!("invalid port `{p}` in `--to-destination`"))
                                })?),
                                None => None,
                            };
                            dest = Some(Target::Dnat { addr, port });
                        }
                        _ => return Err(unknown(o)),
                    }
                }
                dest.ok_or_else(|| err(line, name.col, "target `DNAT` needs `--to-destination`"))?
            }
            "SNAT" => {
                only(TableKind::Nat)?;
                let mut range: Option<NatRange> = None;
                let (mut random, mut fully, mut persistent) = (false, false, false);
                for (o, v) in &opts {
                    match (o.text.as_str(), v) {
                        ("--to-source", Some(v)) => {
                            range = Some(parse_nat_range(&v.text).ok_or_else(|| {
                                err(
                                    line,
                                    v.col,
                                    format!(
                                        "invalid range `{}` (expected ADDR[-ADDR][:PORT[-PORT]])",
                                        v.text
                                    ),
                                )
                            })?)
                        }
                        ("--random", None) => random = true,
                        ("--random-fully", None) => fully = true,
                        ("--persistent", None) => persistent = true,
                        _ => return Err(unknown(o)),
                    }
                }
                let mut r = range.ok_or_else(|| err(line, name.col, "target `SNAT` needs `--to-source`"))?;
                r.random = random;
                r.random_fully = fully;
                r.persistent = persistent;
                Target::Snat(r)
            }
            "MASQUERADE" => {
                only(TableKind::Nat)?;
                let (mut ports, mut random, mut fully) = (None, false, false);
                for (o, v) in &opts {
                    match (o.text.as_str(), v) {
                        ("--to-ports", Some(v)) => {
                            ports = Some(parse_port_range(&v.text, '-').ok_or_else(|| {
                                err(line, v.col, format!("invalid port range `{}`", v.text))
                            })?);
                        }
                        ("--random", None) => random = true,
                        ("--random-fully", None) => fully = true,
                        _ => return Err(unknown(o)),
                    }
                }
                Target::Masquerade {
                    ports,
                    random,
                    random_fully: fully,
                }
            }
            _ => {
                // MARK
                let [(o, Some(v))] = opts.as_slice() else {
                    return match opts.get(1).or(opts.first()) {
                        Some((o, _)) if opts.len() == 1 => Err(unknown(o)),
                        Some((o, _)) => Err(err(line, o.col, "target `MARK` takes exactly one operation")),
                        None => Err(err(
                            line,
                            name.col,
                            "target `MARK` needs one of --set-xmark, --set-mark, --or-mark, --xor-mark, --and-mark",
                        )),
                    };
                };
                let bad = || err(line, v.col, format!("invalid mark `{}`", v.text));
                let op = match o.text.as_str() {
                    "--set-xmark" => {
                        let (value, mask) = parse_value_mask(&v.text).ok_or_else(bad)?;
                        MarkOp::SetXmark { value, mask }
                    }
                    "--set-mark" => {
                        let (value, mask) = parse_value_mask(&v.text).ok_or_else(bad)?;
                        MarkOp::SetMark { value, mask }
                    }
                    "--or-mark" => MarkOp::Or(parse_u32(&v.text).ok_or_else(bad)?),
                    "--xor-mark" => MarkOp::Xor(parse_u32(&v.text).ok_or_else(bad)?),
                    "--and-mark" => MarkOp::And(parse_u32(&v.text).ok_or_else(bad)?),
                    _ => return Err(unknown(o)),
                };
                Target::Mark(op)
            }
        };
        Ok((target, used))
    }
}
