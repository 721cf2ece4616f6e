//! Extension modules (`-m NAME`): which options each owns, and what they add to a rule.

use super::ImportError;
use super::importer::Importer;
use super::token::{Tok, err, parse_value_mask, plain_name};
use crate::netfilter::rule::{AddrTypeTest, CtStateMatch, Match, RecentMode, Rule, SetDirs};
use crate::packet::Proto;

/// Extension modules that own options (`-m NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Module {
    Tcp,
    Udp,
    Comment,
    AddrType,
    Mark,
    Conntrack,
    Statistic,
    Set,
    Recent,
    Nfacct,
}

impl Module {
    pub(super) fn parse(name: &str) -> Option<Module> {
        Some(match name {
            "tcp" => Module::Tcp,
            "udp" => Module::Udp,
            "comment" => Module::Comment,
            "addrtype" => Module::AddrType,
            "mark" => Module::Mark,
            "conntrack" => Module::Conntrack,
            "statistic" => Module::Statistic,
            "set" => Module::Set,
            "recent" => Module::Recent,
            "nfacct" => Module::Nfacct,
            _ => return None,
        })
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Module::Tcp => "tcp",
            Module::Udp => "udp",
            Module::Comment => "comment",
            Module::AddrType => "addrtype",
            Module::Mark => "mark",
            Module::Conntrack => "conntrack",
            Module::Statistic => "statistic",
            Module::Set => "set",
            Module::Recent => "recent",
            Module::Nfacct => "nfacct",
        }
    }

    pub(super) fn options(self) -> &'static [&'static str] {
        match self {
            Module::Tcp | Module::Udp => &["--sport", "--source-port", "--dport", "--destination-port"],
            Module::Comment => &["--comment"],
            Module::AddrType => &["--src-type", "--dst-type"],
            Module::Mark => &["--mark"],
            Module::Conntrack => &["--ctstate"],
            Module::Statistic => &["--mode", "--probability"],
            Module::Set => &["--match-set"],
            Module::Recent => &[
                "--name",
                "--set",
                "--rcheck",
                "--update",
                "--seconds",
                "--reap",
                "--rsource",
            ],
            Module::Nfacct => &["--nfacct-name"],
        }
    }
}

/// A loaded module: where its match sits and which of its options were seen.
pub(super) struct Loaded {
    pub(super) module: Module,
    pub(super) col: usize,
    pub(super) at: usize,
    pub(super) seen: u32,
    pub(super) recent_name: Option<String>,
}

const SEEN_A: u32 = 1;
const SEEN_B: u32 = 2;

impl Importer {
    // Long on purpose: one arm per extension module, each reading that module's options
    // in a few lines; the arms share the duplicate-option check.
    #[allow(clippy::too_many_arguments, clippy::too_many_lines)]
    pub(super) fn module_option<'t>(
        &mut self,
        rule: &mut Rule,
        l: &mut Loaded,
        module: Module,
        tok: &Tok,
        negated: bool,
        arg: &mut dyn FnMut(&str) -> Result<&'t Tok, ImportError>,
        line: usize,
    ) -> Result<(), ImportError> {
        let opt = tok.text.as_str();
        let dup = |l: &Loaded, bit: u32| {
            if l.seen & bit != 0 {
                Err(err(
                    line,
                    tok.col,
                    format!("option `{opt}` given twice for module `{}`", module.name()),
                ))
            } else {
                Ok(())
            }
        };
        match module {
            Module::Comment => {
                dup(l, SEEN_A)?;
                l.seen |= SEEN_A;
                rule.comment = Some(arg("a comment")?.text.clone());
            }
            Module::AddrType => {
                let src = opt == "--src-type";
                let bit = if src { SEEN_A } else { SEEN_B };
                dup(l, bit)?;
                l.seen |= bit;
                let a = arg("an address type")?;
                if a.text != "LOCAL" {
                    return Err(err(
                        line,
                        a.col,
                        format!("unsupported address type `{}` (only LOCAL is modelled)", a.text),
                    ));
                }
                if let Match::AddrType { src: s, dst: d } = &mut rule.matches[l.at] {
                    let t = Some(AddrTypeTest { negated });
                    if src {
                        *s = t;
                    } else {
                        *d = t;
                    }
                }
            }
            Module::Mark => {
                dup(l, SEEN_A)?;
                l.seen |= SEEN_A;
                let a = arg("VALUE[/MASK]")?;
                let (v, m) = parse_value_mask(&a.text).ok_or_else(|| {
                    err(
                        line,
                        a.col,
                        format!("invalid mark `{}` (expected VALUE[/MASK])", a.text),
                    )
                })?;
                rule.matches[l.at] = Match::Mark {
                    value: v,
                    mask: m,
                    negated,
                };
            }
            Module::Conntrack => {
                dup(l, SEEN_A)?;
                l.seen |= SEEN_A;
                let a = arg("a state list")?;
                let states = CtStateMatch::parse_list(&a.text)
                    .map_err(|bad| err(line, a.col, format!("unknown conntrack state `{bad}`")))?;
                rule.matches[l.at] = Match::Conntrack { states, negated };
            }
            Module::Statistic => {
                if opt == "--mode" {
                    dup(l, SEEN_A)?;
                    l.seen |= SEEN_A;
                    let a = arg("a mode")?;
                    if a.text != "random" {
                        return Err(err(
                            line,
                            a.col,
                            format!(
                                "unsupported statistic mode `{}` (only random is modelled)",
                                a.text
                            ),
                        ));
                    }
                } else {
                    dup(l, SEEN_B)?;
                    l.seen |= SEEN_B;
                    let a = arg("a probability")?;
                    let p: f64 = a
                        .text
                        .parse()
                        .ok()
                        .filter(|p: &f64| (0.0..=1.0).contains(p))
                        .ok_or_else(|| {
                            err(
                                line,
                                a.col,
                                format!("invalid probability `{}` (expected 0..1)", a.text),
                            )
                        })?;
                    rule.matches[l.at] = Match::Statistic {
                        probability: p,
                        text: a.text.clone(),
                    };
                }
            }
            Module::Set => {
                dup(l, SEEN_A)?;
                l.seen |= SEEN_A;
                let name = arg("a set name")?;
                let set = self
                    .rs
                    .ipset_id(&name.text)
                    .ok_or_else(|| err(line, name.col, format!("set `{}` does not exist", name.text)))?;
                let d = arg("set directions (src|dst,...)")?;
                let flags: Option<Vec<bool>> = d
                    .text
                    .split(',')
                    .map(|f| match f {
                        "src" => Some(true),
                        "dst" => Some(false),
                        _ => None,
                    })
                    .collect();
                let dirs = flags
                    .and_then(|f| SetDirs::new(&f))
                    .ok_or_else(|| err(line, d.col, format!("invalid set directions `{}`", d.text)))?;
                rule.matches[l.at] = Match::Set { set, dirs, negated };
            }
            Module::Recent => {
                let Match::Recent {
                    mode, seconds, reap, ..
                } = &mut rule.matches[l.at]
                else {
                    return Ok(());
                };
                match opt {
                    "--name" => {
                        if l.recent_name.is_some() {
                            return Err(err(
                                line,
                                tok.col,
                                "option `--name` given twice for module `recent`",
                            ));
                        }
                        l.recent_name = Some(plain_name(arg("a list name")?, line, "a `recent` list")?);
                    }
                    "--set" | "--rcheck" | "--update" => {
                        if l.seen & SEEN_A != 0 {
                            return Err(err(
                                line,
                                tok.col,
                                "only one of --set, --rcheck, --update is allowed",
                            ));
                        }
                        l.seen |= SEEN_A;
                        *mode = match opt {
                            "--set" => RecentMode::Set,
                            "--rcheck" => RecentMode::Rcheck,
                            _ => RecentMode::Update,
                        };
                    }
                    "--seconds" => {
                        let a = arg("a number of seconds")?;
                        *seconds =
                            Some(
                                a.text.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                                    err(line, a.col, format!("invalid seconds `{}`", a.text))
                                })?,
                            );
                    }
                    "--reap" => *reap = true,
                    _ => {} // --rsource is the default.
                }
            }
            Module::Nfacct => {
                dup(l, SEEN_A)?;
                l.seen |= SEEN_A;
                let name = plain_name(arg("a counter name")?, line, "an nfacct counter")?;
                let counter = self.rs.nfacct_counter(&name);
                rule.matches[l.at] = Match::Nfacct { counter };
            }
            Module::Tcp | Module::Udp => {}
        }
        Ok(())
    }

    pub(super) fn finish_modules(
        &mut self,
        rule: &mut Rule,
        loaded: &[Loaded],
        proto: Option<(Proto, bool, usize)>,
        line: usize,
    ) -> Result<(), ImportError> {
        for l in loaded {
            let missing = |what: &str| err(line, l.col, format!("module `{}` needs {what}", l.module.name()));
            match l.module {
                Module::Tcp | Module::Udp => {
                    let want = if l.module == Module::Tcp {
                        Proto::Tcp
                    } else {
                        Proto::Udp
                    };
                    if !matches!(proto, Some((p, false, _)) if p == want) {
                        return Err(missing(&format!("`-p {}`", want.as_str())));
                    }
                }
                Module::Comment if l.seen & SEEN_A == 0 => return Err(missing("`--comment`")),
                Module::AddrType if l.seen == 0 => return Err(missing("`--src-type` or `--dst-type`")),
                Module::Mark | Module::Conntrack | Module::Set | Module::Nfacct if l.seen & SEEN_A == 0 => {
                    return Err(missing(match l.module {
                        Module::Mark => "`--mark`",
                        Module::Conntrack => "`--ctstate`",
                        Module::Set => "`--match-set`",
                        _ => "`--nfacct-name`",
                    }));
                }
                Module::Statistic if l.seen != SEEN_A | SEEN_B => {
                    return Err(missing("`--mode random` and `--probability`"));
                }
                Module::Recent => {
                    if l.seen & SEEN_A == 0 {
                        return Err(missing("one of `--set`, `--rcheck`, `--update`"));
                    }
                    let id = self.rs.recent_list(l.recent_name.as_deref().unwrap_or("DEFAULT"));
                    if let Match::Recent {
                        list, reap, seconds, ..
                    } = &mut rule.matches[l.at]
                    {
                        if *reap && seconds.is_none() {
                            return Err(missing("`--seconds` with `--reap`"));
                        }
                        *list = id;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
