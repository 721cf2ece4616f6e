//! Confirmation (`__nf_conntrack_confirm`): inserting a new entry's two tuples into
//! the hash, with the kernel's clash resolution when another CPU got there first.

use super::table::{ConntrackTable, NIL, dir_slot, node_idx, status};
use super::{ConfirmOutcome, ConnId, CtDrop, CtError};
use crate::packet::{Direction, Proto};
use crate::time::{SimDuration, SimTime};

impl ConntrackTable {
    /// Inserts an unconfirmed entry into the hash (`__nf_conntrack_confirm`, the last
    /// hook). Walks the ORIGINAL then the REPLY bucket for an equal confirmed key
    /// (without reaping) and enforces the random 50..79 node chain limit; resolves
    /// clashes as `nf_ct_resolve_clash` does. The timeout starts now.
    ///
    /// # Errors
    /// [`CtError::UnknownConn`] or [`CtError::AlreadyConfirmed`] for API misuse,
    /// [`CtError::UnknownCpu`] for a bad CPU.
    pub fn confirm(&mut self, id: ConnId, cpu: u16, now: SimTime) -> Result<ConfirmOutcome, CtError> {
        self.check_cpu(cpu)?;
        let idx = self.slot(id)?;
        let e = self.entries[idx as usize];
        if e.has(status::CONFIRMED) {
            return Err(CtError::AlreadyConfirmed(id));
        }
        let ns = e.ns;
        let chain_limit = if self.cfg.legacy_counters {
            u64::MAX
        } else {
            // MIN_CHAINLEN + get_random_u32_below(MAX_CHAINLEN) = 50..79.
            50 + self.rng.below(30)
        };
        for dir in [Direction::Original, Direction::Reply] {
            let t = e.tuple[dir_slot(dir)];
            let h = self.hash_of(ns, &t);
            let b = self.bucket_of_hash(h);
            let s = &self.summaries[b as usize];
            // No equal key possible and too few nodes to pass the limit: the walk
            // (which reaps nothing) would end without an outcome.
            if !self.exhaustive_scans && s.lacks(h) && u64::from(s.nodes) <= chain_limit.saturating_add(1) {
                continue;
            }
            let mut chainlen: u64 = 0;
            let mut n = self.buckets[b as usize];
            while n != NIL {
                if self.key_equal(n, &t, ns) {
                    return Ok(self.resolve_clash(idx, node_idx(n), cpu, now));
                }
                // `if (chainlen++ > max_chainlen)`
                if chainlen > chain_limit {
                    let s = self.stat(ns, cpu);
                    s.chaintoolong += 1;
                    s.insert_failed += 1;
                    self.free_entry(idx);
                    return Ok(ConfirmOutcome::Dropped(CtDrop::ChainTooLong));
                }
                chainlen += 1;
                n = self.next_of(n);
            }
        }
        let slot = &mut self.entries[idx as usize];
        slot.timeout = now.as_nanos().saturating_add(slot.timeout);
        slot.status |= status::CONFIRMED;
        self.link(idx, Direction::Original);
        self.link(idx, Direction::Reply);
        Ok(ConfirmOutcome::Inserted(id))
    }

    /// `nf_ct_resolve_clash`: `loser` (unconfirmed) met `winner` at confirm.
    fn resolve_clash(&mut self, loser: u32, winner: u32, cpu: u16, now: SimTime) -> ConfirmOutcome {
        let ns = self.entries[loser as usize].ns;
        let proto = self.entries[loser as usize].original().proto;
        let profile = self.cfg.profile;
        let legacy = self.cfg.legacy_counters;
        if legacy {
            // Before clash_resolve existed every clash counted insert_failed.
            self.stat(ns, cpu).insert_failed += 1;
        }
        // `l4proto->allow_clash`: UDP only in the model.
        let allow_clash = proto == Proto::Udp && profile.udp_clash_merge;
        if allow_clash {
            if let Some(out) = self.clash_merge(loser, winner, cpu) {
                return out;
            }
            if profile.udp_clash_reply_only {
                // nf_ct_resolve_clash_harder: the REPLY direction must not clash.
                let reply = *self.entries[loser as usize].reply();
                let b = self.bucket_of(ns, &reply);
                let mut n = self.buckets[b as usize];
                let mut reply_winner = None;
                while n != NIL {
                    if self.key_equal(n, &reply, ns) {
                        reply_winner = Some(node_idx(n));
                        break;
                    }
                    n = self.next_of(n);
                }
                match reply_winner {
                    Some(w) => {
                        if let Some(out) = self.clash_merge(loser, w, cpu) {
                            return out;
                        }
                    }
                    None => {
                        let e = &mut self.entries[loser as usize];
                        e.timeout = now.saturating_add(SimDuration::from_secs(1)).as_nanos();
                        e.status |= status::FIXED_TIMEOUT | status::NAT_CLASH | status::CONFIRMED;
                        self.link(loser, Direction::Reply);
                        self.stat(ns, cpu).clash_resolve += 1;
                        return ConfirmOutcome::ClashReplyOnly(self.id_of(loser));
                    }
                }
            }
        }
        let s = self.stat(ns, cpu);
        s.drop += 1;
        if !legacy {
            s.insert_failed += 1;
        }
        self.free_entry(loser);
        ConfirmOutcome::Dropped(CtDrop::InsertFailed)
    }

    /// `__nf_ct_resolve_clash`: merge into a winner without NAT or with identical
    /// tuples (`nf_ct_match`).
    fn clash_merge(&mut self, loser: u32, winner: u32, cpu: u16) -> Option<ConfirmOutcome> {
        let w = &self.entries[winner as usize];
        let l = &self.entries[loser as usize];
        if w.status & status::NAT_DONE_MASK == 0 || w.tuple == l.tuple {
            let ns = l.ns;
            if !self.cfg.legacy_counters {
                self.stat(ns, cpu).clash_resolve += 1;
            }
            let winner_id = self.id_of(winner);
            self.free_entry(loser);
            return Some(ConfirmOutcome::ClashMerged { winner: winner_id });
        }
        None
    }

    // ----- per-packet tracking -----
}
