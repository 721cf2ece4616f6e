//! Parsing `iptables-save` / `iptables-restore` text into a [`Ruleset`].
//!
//! Accepted: `*table` headers, `:CHAIN POLICY [packets:bytes]` declarations, `-A CHAIN ...`
//! rules, `COMMIT`, blank lines and `#` comments, double-quoted arguments with `\"` and
//! `\\` escapes. Every option of the modelled matches and targets is understood; anything
//! else is an error naming the line, the column and what was expected. As in
//! `iptables-restore`, a chain must be declared before a rule appends to it or jumps to it.

use std::net::Ipv4Addr;

use super::hook::TableKind;
use super::rule::Policy;
use super::rule::{
    AddrTypeTest, ChainId, CtStateMatch, MarkOp, Match, MatchModule, NatRange, PortRange, RecentId,
    RecentMode, Rule, SetDirs, Target,
};
use super::ruleset::{Counters, Ruleset};
use crate::packet::{Cidr, Proto};

/// Why a dump did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ImportError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (byte offset + 1).
    pub column: usize,
    /// What was wrong or expected.
    pub message: String,
}

/// Parses a dump into a fresh ruleset.
///
/// # Errors
/// The first problem found, with its position.
pub fn parse(text: &str) -> Result<Ruleset, ImportError> {
    parse_into(Ruleset::new(), text)
}

/// Parses a dump into `base`, whose ipsets `-m set` rules may refer to.
///
/// # Errors
/// The first problem found, with its position.
pub fn parse_into(base: Ruleset, text: &str) -> Result<Ruleset, ImportError> {
    let mut p = Importer {
        rs: base,
        table: None,
        seen: Vec::new(),
    };
    let mut last_line = 0;
    for (i, raw) in text.lines().enumerate() {
        last_line = i + 1;
        p.line(raw.strip_suffix('\r').unwrap_or(raw), i + 1)?;
    }
    if let Some((kind, _)) = p.table {
        return Err(ImportError {
            line: last_line + 1,
            column: 1,
            message: format!("missing COMMIT for table `{kind}`"),
        });
    }
    Ok(p.rs)
}

/// A dump loaded as far as the model understands it ([`parse_lenient`]).
#[derive(Clone, Debug)]
pub struct LenientImport {
    /// The rules that parsed.
    pub ruleset: Ruleset,
    /// Every line left out, with why (1-based lines of the dump).
    pub skipped: Vec<ImportError>,
}

/// Parses a dump, leaving out (and listing) the rules the model does not implement
/// instead of stopping at the first: a rule line that does not parse, and every rule
/// of a table the model does not have (`*security`). A missing final `COMMIT` (a
/// truncated dump) is listed too. Structural problems (a line outside any table, a
/// malformed chain declaration, a jump loop) still fail, since the rest of the dump
/// cannot be trusted then.
///
/// # Errors
/// The first structural problem, with its position.
pub fn parse_lenient(text: &str) -> Result<LenientImport, ImportError> {
    let mut p = Importer {
        rs: Ruleset::new(),
        table: None,
        seen: Vec::new(),
    };
    let mut skipped = Vec::new();
    // Inside a table the model does not have: (its name, the line it opened on).
    let mut foreign: Option<String> = None;
    let mut last_line = 0;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        last_line = line_no;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim();
        if let Some(name) = &foreign {
            if trimmed == "COMMIT" {
                foreign = None;
            } else if let Some(next) = trimmed.strip_prefix('*') {
                // As in a modelled table: the dump's structure is broken.
                return Err(err(
                    line_no,
                    line.len() - line.trim_start().len() + 1,
                    format!("table `{name}` is not committed before `*{next}`"),
                ));
            } else if trimmed.starts_with("-A") || trimmed.starts_with("--append") {
                skipped.push(err(
                    line_no,
                    1,
                    format!("table `{name}` is not modelled: rule left out: {trimmed}"),
                ));
            }
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('*')
            && p.table.is_none()
            && TableKind::parse(name.trim()).is_none()
        {
            foreign = Some(name.trim().to_string());
            continue;
        }
        match p.line(line, line_no) {
            Ok(()) => {}
            Err(e) if p.table.is_some() && (trimmed.starts_with("-A") || trimmed.starts_with("--append")) => {
                skipped.push(ImportError {
                    message: format!("{}: rule left out: {trimmed}", e.message),
                    ..e
                });
            }
            Err(e) => return Err(e),
        }
    }
    if let Some((kind, _)) = p.table.take() {
        skipped.push(err(
            last_line + 1,
            1,
            format!("missing COMMIT for table `{kind}` (a truncated dump?): its rules were kept"),
        ));
        p.rs.check_loops(kind)
            .map_err(|e| err(last_line + 1, 1, e.to_string()))?;
    }
    Ok(LenientImport {
        ruleset: p.rs,
        skipped,
    })
}

struct Tok {
    text: String,
    col: usize,
    quoted: bool,
}

/// The name of a named object (nfacct counter, `recent` list): one word. `iptables-save`
/// prints these names without quotes, so a name with a space or a quote could not be
/// written back as the same rule.
fn plain_name(tok: &Tok, line: usize, what: &str) -> Result<String, ImportError> {
    let t = &tok.text;
    if t.is_empty()
        || t.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\'')
    {
        return Err(err(
            line,
            tok.col,
            format!(
                "{what} name must be one word without quotes, got `{}`",
                t.escape_default()
            ),
        ));
    }
    Ok(t.clone())
}

fn err(line: usize, column: usize, message: impl Into<String>) -> ImportError {
    ImportError {
        line,
        column,
        message: message.into(),
    }
}

fn tokenize(s: &str, line: usize) -> Result<Vec<Tok>, ImportError> {
    let mut toks = Vec::new();
    let bytes: Vec<(usize, char)> = s.char_indices().collect();
    let mut i = 0;
    while i < bytes.len() {
        let (start, c) = bytes[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let mut text = String::new();
        let mut quoted = false;
        while i < bytes.len() && !bytes[i].1.is_whitespace() {
            let (qpos, ch) = bytes[i];
            if ch == '"' {
                quoted = true;
                i += 1;
                loop {
                    let Some(&(_, q)) = bytes.get(i) else {
                        return Err(err(line, qpos + 1, "unterminated quoted string"));
                    };
                    i += 1;
                    match q {
                        '"' => break,
                        '\\' => match bytes.get(i) {
                            Some(&(_, e)) => {
                                text.push(e);
                                i += 1;
                            }
                            None => return Err(err(line, qpos + 1, "unterminated quoted string")),
                        },
                        _ => text.push(q),
                    }
                }
            } else {
                text.push(ch);
                i += 1;
            }
        }
        toks.push(Tok {
            text,
            col: start + 1,
            quoted,
        });
    }
    Ok(toks)
}

struct Importer {
    rs: Ruleset,
    table: Option<(TableKind, usize)>,
    seen: Vec<TableKind>,
}

/// Extension modules that own options (`-m NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Module {
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
    fn parse(name: &str) -> Option<Module> {
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

    fn name(self) -> &'static str {
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

    fn options(self) -> &'static [&'static str] {
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
struct Loaded {
    module: Module,
    col: usize,
    at: usize,
    seen: u32,
    recent_name: Option<String>,
}

const SEEN_A: u32 = 1;
const SEEN_B: u32 = 2;

fn parse_u32(text: &str) -> Option<u32> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn parse_value_mask(text: &str) -> Option<(u32, u32)> {
    match text.split_once('/') {
        Some((v, m)) => Some((parse_u32(v)?, parse_u32(m)?)),
        None => Some((parse_u32(text)?, u32::MAX)),
    }
}

fn parse_port(text: &str) -> Option<u16> {
    text.parse().ok()
}

fn parse_port_range(text: &str, sep: char) -> Option<PortRange> {
    match text.split_once(sep) {
        Some((a, b)) => {
            let first = if a.is_empty() { 0 } else { parse_port(a)? };
            let last = if b.is_empty() { u16::MAX } else { parse_port(b)? };
            (first <= last).then_some(PortRange { first, last })
        }
        None => parse_port(text).map(PortRange::single),
    }
}

impl Importer {
    fn line(&mut self, s: &str, line: usize) -> Result<(), ImportError> {
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
                let hook = super::hook::Hook::from_chain_name(&name.text)
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

    #[allow(clippy::too_many_lines)]
    fn rule_line(&mut self, kind: TableKind, toks: &[Tok], line: usize) -> Result<(), ImportError> {
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
                            set: super::rule::IpSetId(u32::MAX),
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
                            counter: super::rule::NfacctId(u32::MAX),
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

    #[allow(clippy::too_many_arguments, clippy::too_many_lines)]
    fn module_option<'t>(
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

    fn finish_modules(
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

    /// Parses `-j NAME [options]` / `-g NAME`; returns the target and how many tokens after
    /// the name it used.
    #[allow(clippy::too_many_lines)]
    fn parse_target(
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

    fn user_chain(&self, kind: TableKind, name: &Tok, line: usize) -> Result<ChainId, ImportError> {
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

fn parse_nat_range(text: &str) -> Option<NatRange> {
    let (addrs, ports) = match text.split_once(':') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let (lo, hi) = match addrs.split_once('-') {
        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
        None => {
            let a: Ipv4Addr = addrs.parse().ok()?;
            (a, a)
        }
    };
    if u32::from(lo) > u32::from(hi) {
        return None;
    }
    let ports = match ports {
        Some(p) => Some(parse_port_range(p, '-')?),
        None => None,
    };
    Some(NatRange {
        min_addr: lo,
        max_addr: hi,
        ports,
        random: false,
        random_fully: false,
        persistent: false,
    })
}
