//! An `-A CHAIN ...` rule: its matches, module loads and target, read in one pass.

use super::ImportError;
use super::importer::Importer;
use super::modules::{Loaded, Module};
use super::token::{Tok, err, parse_port_range};
use crate::netfilter::hook::TableKind;
use crate::netfilter::rule::{CtStateMatch, Match, MatchModule, RecentId, RecentMode, Rule, SetDirs, Target};
use crate::packet::{Cidr, Proto};

impl Importer {
    // Long on purpose: one loop over the rule's tokens, one arm per iptables option
    // (addresses, protocol, interfaces, `-m`, `-j`/`-g`, module options), all sharing the
    // pending `!`, the protocol and the loaded modules; split, that state would travel
    // through every call.
    #[allow(clippy::too_many_lines)]
    pub(super) fn rule_line(
        &mut self,
        kind: TableKind,
        toks: &[Tok],
        line: usize,
    ) -> Result<(), ImportError> {
        let Some(chain_tok) = toks.get(1) else {
            return Err(err(
                line,
                toks[0].col + toks[0].text.len(),
                "expected a chain name after `-A`",
            ));
        };
        let chain = self.rs.chain_id(kind, &chain_tok.text).ok_or_else(|| {
            err(
                line,
                chain_tok.col,
                format!(
                    "chain `{}` does not exist in table `{kind}` (declare it with `:{} - [0:0]`)",
                    chain_tok.text, chain_tok.text
                ),
            )
        })?;
        let mut rule = Rule::new(Target::None);
        let mut target_set = false;
        let mut loaded: Vec<Loaded> = Vec::new();
        let mut proto: Option<(Proto, bool, usize)> = None;
        let mut seen_ip: Vec<&str> = Vec::new();
        let mut negate: Option<usize> = None;
        let mut i = 2;
        while i < toks.len() {
            let tok = &toks[i];
            i += 1;
            if tok.text == "!" && !tok.quoted {
                if negate.is_some() {
                    return Err(err(line, tok.col, "`!` given twice"));
                }
                negate = Some(tok.col);
                continue;
            }
            let opt = tok.text.as_str();
            let mut arg = |what: &str| -> Result<&Tok, ImportError> {
                let a = toks.get(i).ok_or_else(|| {
                    err(
                        line,
                        tok.col + tok.text.len(),
                        format!("option `{opt}` needs {what}"),
                    )
                })?;
                i += 1;
                Ok(a)
            };
            let negatable = matches!(
                opt,
                "-s" | "--source"
                    | "-d"
                    | "--destination"
                    | "-p"
                    | "--protocol"
                    | "-i"
                    | "--in-interface"
                    | "-o"
                    | "--out-interface"
                    | "--sport"
                    | "--source-port"
                    | "--dport"
                    | "--destination-port"
                    | "--src-type"
                    | "--dst-type"
                    | "--mark"
                    | "--ctstate"
                    | "--match-set"
            );
            if let (Some(ncol), false) = (negate, negatable) {
                return Err(err(line, ncol, format!("option `{opt}` cannot be negated")));
            }
            let negated = negate.take().is_some();
            match opt {
                "-s" | "--source" | "-d" | "--destination" => {
                    let short = if opt.starts_with("-s") || opt == "--source" {
                        "-s"
                    } else {
                        "-d"
                    };
                    if seen_ip.contains(&short) {
                        return Err(err(line, tok.col, format!("multiple `{short}` options")));
                    }
                    seen_ip.push(short);
                    let a = arg("an address or CIDR")?;
                    let cidr: Cidr = a
                        .text
                        .parse()
                        .map_err(|e: crate::packet::CidrParseError| err(line, a.col, e.to_string()))?;
                    rule.matches.push(if short == "-s" {
                        Match::Source { cidr, negated }
                    } else {
                        Match::Destination { cidr, negated }
                    });
                }
                "-p" | "--protocol" => {
                    if proto.is_some() {
                        return Err(err(line, tok.col, "multiple `-p` options"));
                    }
                    let a = arg("a protocol")?;
                    let p = Proto::parse(&a.text).ok_or_else(|| {
                        err(
                            line,
                            a.col,
                            format!("unknown protocol `{}` (expected tcp, udp or icmp)", a.text),
                        )
                    })?;
                    proto = Some((p, negated, tok.col));
                    rule.matches.push(Match::Protocol { proto: p, negated });
                }
                "-i" | "--in-interface" | "-o" | "--out-interface" => {
                    let short = if opt.starts_with("-i") || opt == "--in-interface" {
                        "-i"
                    } else {
                        "-o"
                    };
                    if seen_ip.contains(&short) {
                        return Err(err(line, tok.col, format!("multiple `{short}` options")));
                    }
                    seen_ip.push(short);
                    let a = arg("an interface name")?;
                    let name = a.text.clone();
                    rule.matches.push(if short == "-i" {
                        Match::InInterface { name, negated }
                    } else {
                        Match::OutInterface { name, negated }
                    });
                }
                "-m" | "--match" => {
                    let a = arg("a module name")?;
                    let module = Module::parse(&a.text)
                        .ok_or_else(|| err(line, a.col, format!("unknown match module `{}`", a.text)))?;
                    let at = rule.matches.len();
                    rule.matches.push(match module {
                        Module::Tcp => Match::Module(MatchModule::Tcp),
                        Module::Udp => Match::Module(MatchModule::Udp),
                        Module::Comment => {
                            if rule.comment.is_some() || loaded.iter().any(|l| l.module == Module::Comment) {
                                return Err(err(line, a.col, "multiple `-m comment` in one rule"));
                            }
                            Match::Module(MatchModule::Comment)
                        }
                        Module::AddrType => Match::AddrType { src: None, dst: None },
                        Module::Mark => Match::Mark {
                            value: 0,
                            mask: u32::MAX,
                            negated: false,
                        },
                        Module::Conntrack => Match::Conntrack {
                            states: CtStateMatch::EMPTY,
                            negated: false,
                        },
                        Module::Statistic => Match::Statistic {
                            probability: 0.0,
                            text: String::new(),
                        },
                        Module::Set => Match::Set {
                            set: crate::netfilter::rule::IpSetId(u32::MAX),
                            dirs: SetDirs::DST,
                            negated: false,
                        },
                        Module::Recent => Match::Recent {
                            list: RecentId(u32::MAX),
                            mode: RecentMode::Set,
                            seconds: None,
                            reap: false,
                        },
                        Module::Nfacct => Match::Nfacct {
                            counter: crate::netfilter::rule::NfacctId(u32::MAX),
                        },
                    });
                    loaded.push(Loaded {
                        module,
                        col: a.col,
                        at,
                        seen: 0,
                        recent_name: None,
                    });
                }
                "-j" | "--jump" | "-g" | "--goto" => {
                    if target_set {
                        return Err(err(line, tok.col, "multiple targets in one rule"));
                    }
                    target_set = true;
                    let a = arg("a target or chain name")?;
                    let goto = opt == "-g" || opt == "--goto";
                    let (target, used) = self.parse_target(kind, a, goto, &toks[i..], line)?;
                    rule.target = target;
                    i += used;
                }
                o if o.starts_with('-') => {
                    // An extension option: find the loaded module that owns it (most recent
                    // first), or the module `-p tcp|udp` loads implicitly.
                    let owner = loaded.iter().rposition(|l| l.module.options().contains(&o));
                    let owner = match owner {
                        Some(k) => Some(k),
                        None if matches!(
                            o,
                            "--sport" | "--source-port" | "--dport" | "--destination-port"
                        ) && matches!(proto, Some((Proto::Tcp | Proto::Udp, false, _))) =>
                        {
                            None
                        }
                        None => {
                            return Err(err(
                                line,
                                tok.col,
                                match loaded.last() {
                                    Some(l) => {
                                        format!("unknown match option `{o}` for module `{}`", l.module.name())
                                    }
                                    None => format!("unknown option `{o}`"),
                                },
                            ));
                        }
                    };
                    match owner.map(|k| loaded[k].module) {
                        None | Some(Module::Tcp | Module::Udp) => {
                            let a = arg("a port or range")?;
                            let ports = parse_port_range(&a.text, ':').ok_or_else(|| {
                                err(line, a.col, format!("invalid port or range `{}`", a.text))
                            })?;
                            rule.matches.push(if matches!(o, "--sport" | "--source-port") {
                                Match::SourcePort { ports, negated }
                            } else {
                                Match::DestinationPort { ports, negated }
                            });
                        }
                        Some(module) => {
                            let k = owner.unwrap_or_default();
                            self.module_option(
                                &mut rule,
                                &mut loaded[k],
                                module,
                                tok,
                                negated,
                                &mut arg,
                                line,
                            )?;
                        }
                    }
                }
                other => {
                    return Err(err(line, tok.col, format!("unexpected argument `{other}`")));
                }
            }
        }
        if let Some(ncol) = negate {
            return Err(err(line, ncol, "`!` at the end of the rule"));
        }
        self.finish_modules(&mut rule, &loaded, proto, line)?;
        self.rs
            .append_rule(kind, chain, rule)
            .map_err(|e| err(line, chain_tok.col, e.to_string()))
    }
}
