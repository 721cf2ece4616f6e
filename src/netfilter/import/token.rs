//! Lexing: a line split into tokens (double-quoted arguments with `\"` and `\\`
//! escapes), and the numbers, ports, ranges and names read from one token.

use std::net::Ipv4Addr;

use super::ImportError;
use crate::netfilter::rule::{NatRange, PortRange};

pub(super) struct Tok {
    pub(super) text: String,
    pub(super) col: usize,
    pub(super) quoted: bool,
}

/// The name of a named object (nfacct counter, `recent` list): one word. `iptables-save`
/// prints these names without quotes, so a name with a space or a quote could not be
/// written back as the same rule.
pub(super) fn plain_name(tok: &Tok, line: usize, what: &str) -> Result<String, ImportError> {
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

pub(super) fn err(line: usize, column: usize, message: impl Into<String>) -> ImportError {
    ImportError {
        line,
        column,
        message: message.into(),
    }
}

pub(super) fn tokenize(s: &str, line: usize) -> Result<Vec<Tok>, ImportError> {
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

pub(super) fn parse_u32(text: &str) -> Option<u32> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

pub(super) fn parse_value_mask(text: &str) -> Option<(u32, u32)> {
    match text.split_once('/') {
        Some((v, m)) => Some((parse_u32(v)?, parse_u32(m)?)),
        None => Some((parse_u32(text)?, u32::MAX)),
    }
}

pub(super) fn parse_port(text: &str) -> Option<u16> {
    text.parse().ok()
}

pub(super) fn parse_port_range(text: &str, sep: char) -> Option<PortRange> {
    match text.split_once(sep) {
        Some((a, b)) => {
            let first = if a.is_empty() { 0 } else { parse_port(a)? };
            let last = if b.is_empty() { u16::MAX } else { parse_port(b)? };
            (first <= last).then_some(PortRange { first, last })
        }
        None => parse_port(text).map(PortRange::single),
    }
}

pub(super) fn parse_nat_range(text: &str) -> Option<NatRange> {
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
