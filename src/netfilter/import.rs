//! Parsing `iptables-save` / `iptables-restore` text into a [`Ruleset`].
//!
//! Accepted: `*table` headers, `:CHAIN POLICY [packets:bytes]` declarations, `-A CHAIN ...`
//! rules, `COMMIT`, blank lines and `#` comments, double-quoted arguments with `\"` and
//! `\\` escapes. Every option of the modelled matches and targets is understood; anything
//! else is an error naming the line, the column and what was expected. As in
//! `iptables-restore`, a chain must be declared before a rule appends to it or jumps to it.
//!
//! The parts: `token` splits a line into tokens and reads numbers, ports and ranges;
//! `importer` holds the state and reads `*table`, `COMMIT` and chain declarations; `rule`
//! reads an `-A` rule, `modules` the options of its `-m` extension modules and `target`
//! its `-j`/`-g` target.

mod importer;
mod modules;
mod rule;
mod target;
mod token;

use importer::Importer;
use token::err;

use super::hook::TableKind;
use super::ruleset::Ruleset;

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
