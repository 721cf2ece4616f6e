//! The fast evaluator's per-chain index: runs of "simple" rules (exact `-d ip/32 -p P
//! --dport N`) keyed by `(dst, proto, dport)`, so a 30k-Service `KUBE-SERVICES` lookup is one
//! hash probe while the number of rules the linear kernel scan would test is still known.

use std::net::Ipv4Addr;

use crate::packet::{Proto, Tuple};

use super::rule::Rule;
use crate::rng::FixedState;

/// Runs shorter than this are scanned linearly (the index would not pay for itself).
pub(crate) const MIN_INDEXED_RUN: usize = 8;

/// "No next rule with this key".
const NONE: u32 = u32::MAX;

/// The key of a simple rule, packed into one word.
pub(crate) fn pack_key(dst: Ipv4Addr, proto: Proto, dport: u16) -> u64 {
    (u64::from(u32::from(dst)) << 24) | (u64::from(proto.number()) << 16) | u64::from(dport)
}

fn packet_key(t: &Tuple) -> u64 {
    pack_key(t.dst, t.proto, t.dport)
}

/// One indexed run of consecutive simple rules.
#[derive(Clone, Debug)]
struct Run {
    start: u32,
    len: u32,
    /// Key -> offset of the first rule in the run with that key.
    first: hashbrown::HashMap<u64, u32, FixedState>,
    /// Per offset: the next offset with the same key, or `NONE`.
    next: Vec<u32>,
    /// Per key: the last offset seen (to chain `next` while appending).
    last: hashbrown::HashMap<u64, u32, FixedState>,
}

impl Run {
    fn new(start: u32) -> Run {
        Run {
            start,
            len: 0,
            first: hashbrown::HashMap::default(),
            next: Vec::new(),
            last: hashbrown::HashMap::default(),
        }
    }

    fn push(&mut self, key: u64) {
        let off = self.len;
        self.next.push(NONE);
        match self.last.insert(key, off) {
            Some(prev) => self.next[prev as usize] = off,
            None => {
                self.first.insert(key, off);
            }
        }
        self.len += 1;
    }
}

/// Where the scan of an indexed run ends: the rule that matches, or the end of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RunScan {
    /// Rules the linear scan tests from the starting position (inclusive of the hit).
    pub(crate) tested: u32,
    /// Position of the matching rule, if any; otherwise the scan ends at `end`.
    pub(crate) hit: Option<u32>,
    /// First position after the run.
    pub(crate) end: u32,
}

/// The index of one chain.
#[derive(Clone, Debug, Default)]
pub(crate) struct ChainIndex {
    runs: Vec<Run>,
    /// Per rule position: the run it belongs to (`NONE` if none).
    run_of: Vec<u32>,
    /// The trailing (possibly short, unindexed) run of simple rules: start and keys.
    tail_start: u32,
    tail_keys: Vec<u64>,
}

impl PartialEq for ChainIndex {
    /// The index is derived from the rules; two chains with equal rules have equal indexes.
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl ChainIndex {
    /// Rebuilds the index of a whole chain.
    pub(crate) fn build(rules: &[Rule]) -> ChainIndex {
        let mut ix = ChainIndex::default();
        for r in rules {
            ix.push(r);
        }
        ix
    }

    /// Extends the index with one appended rule.
    #[allow(clippy::cast_possible_truncation)]
    pub(crate) fn push(&mut self, rule: &Rule) {
        let pos = self.run_of.len() as u32;
        self.run_of.push(NONE);
        match rule.simple_key() {
            Some((d, p, port)) => {
                let key = pack_key(d, p, port);
                if self.tail_keys.is_empty() {
                    self.tail_start = pos;
                }
                self.tail_keys.push(key);
                if self.tail_keys.len() == MIN_INDEXED_RUN {
                    let mut run = Run::new(self.tail_start);
                    for k in &self.tail_keys {
                        run.push(*k);
                    }
                    let id = self.runs.len() as u32;
                    for p in self.tail_start..=pos {
                        self.run_of[p as usize] = id;
                    }
                    self.runs.push(run);
                } else if self.tail_keys.len() > MIN_INDEXED_RUN {
                    let id = self.runs.len() - 1;
                    self.runs[id].push(key);
                    self.run_of[pos as usize] = id as u32;
                }
            }
            None => self.tail_keys.clear(),
        }
    }

    /// Scans from `pos` when `pos` lies in an indexed run; `None` otherwise.
    #[inline]
    pub(crate) fn scan(&self, pos: u32, tuple: &Tuple) -> Option<RunScan> {
        let run_id = *self.run_of.get(pos as usize)?;
        if run_id == NONE {
            return None;
        }
        let run = &self.runs[run_id as usize];
        let off = pos - run.start;
        let end = run.start + run.len;
        let mut cand = run.first.get(&packet_key(tuple)).copied().unwrap_or(NONE);
        while cand != NONE && cand < off {
            cand = run.next[cand as usize];
        }
        Some(if cand == NONE {
            RunScan {
                tested: run.len - off,
                hit: None,
                end,
            }
        } else {
            RunScan {
                tested: cand - off + 1,
                hit: Some(run.start + cand),
                end,
            }
        })
    }
}
