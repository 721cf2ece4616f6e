//! NAT binding selection on unconfirmed entries (`net/netfilter/nf_nat_core.c`:
//! `nf_nat_setup_info`, `get_unique_tuple`, `nf_nat_l4proto_unique_tuple`,
//! `nf_nat_used_tuple{,_new,_harder}`, `find_appropriate_src`, `find_best_ips_proto`).

use super::hash::reciprocal_scale;
use super::table::{ConntrackTable, node_idx, src_key, status};
use super::tcp::CtState;
use super::{CtError, DstNat, NatRange, SrcNat};
use crate::packet::{Direction, Proto, Tuple};
use crate::rng::{SimRng, mix64};
use crate::time::SimTime;
use std::net::Ipv4Addr;

/// `NF_NAT_MAX_ATTEMPTS`.
const MAX_ATTEMPTS: u32 = 128;
/// `NF_NAT_HARDER_THRESH` = `NF_NAT_MAX_ATTEMPTS / 4`.
const HARDER_THRESH: u32 = MAX_ATTEMPTS / 4;

/// `enum nf_nat_manip_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Manip {
    Src,
    Dst,
}

/// `struct nf_nat_range2` as the search sees it.
#[derive(Clone, Copy, Debug)]
struct Range {
    /// `NF_NAT_RANGE_MAP_IPS` with `[min, max]`.
    ips: Option<(u32, u32)>,
    /// `NF_NAT_RANGE_PROTO_SPECIFIED` with `[min, max]`.
    ports: Option<(u16, u16)>,
    /// `NF_NAT_RANGE_PROTO_RANDOM_ALL`.
    random_all: bool,
    /// `NF_NAT_RANGE_PERSISTENT`.
    persistent: bool,
}

impl Range {
    fn ip(addr: Ipv4Addr) -> Range {
        let a = addr.to_bits();
        Range {
            ips: Some((a, a)),
            ports: None,
            random_all: false,
            persistent: false,
        }
    }

    fn from_nat(r: &NatRange) -> Range {
        let (lo, hi) = (r.min_addr.to_bits(), r.max_addr.to_bits());
        Range {
            ips: Some((lo.min(hi), lo.max(hi))),
            ports: r.ports,
            random_all: r.is_random_all(),
            persistent: r.persistent,
        }
    }
}

/// The key of the manip: source port/id for SRC (and for ICMP always), else the
/// destination port.
fn key(t: &Tuple, m: Manip) -> u16 {
    if m == Manip::Src || t.proto == Proto::Icmp {
        t.sport
    } else {
        t.dport
    }
}

fn set_key(t: &mut Tuple, m: Manip, v: u16) {
    if m == Manip::Src || t.proto == Proto::Icmp {
        t.sport = v;
    } else {
        t.dport = v;
    }
}

/// `l4proto_in_range`.
fn port_in_range(t: &Tuple, m: Manip, (lo, hi): (u16, u16)) -> bool {
    let k = key(t, m);
    lo.min(hi) <= k && k <= lo.max(hi)
}

/// `nf_in_range` (SRC): address in the mapped range (if any) and port in the port
/// range (if any).
fn in_range(t: &Tuple, r: &Range) -> bool {
    if let Some((lo, hi)) = r.ips {
        let a = t.src.to_bits();
        if a < lo || a > hi {
            return false;
        }
    }
    r.ports.is_none_or(|p| port_in_range(t, Manip::Src, p))
}

impl ConntrackTable {
    /// Sets up the DST binding of an unconfirmed entry (`nf_nat_setup_info` with
    /// `NF_NAT_MANIP_DST`): a DNAT target or the null binding. Returns the tuple the
    /// packet carries afterwards. A DST manip keeps the port unless one is given; a
    /// taken tuple is accepted anyway (the clash, if any, surfaces at confirm).
    ///
    /// # Errors
    /// [`CtError::UnknownConn`], [`CtError::AlreadyConfirmed`],
    /// [`CtError::AlreadyBound`] (DST binding exists), [`CtError::UnknownCpu`].
    pub fn apply_dst_nat(
        &mut self,
        id: super::ConnId,
        cpu: u16,
        nat: DstNat,
        now: SimTime,
    ) -> Result<Tuple, CtError> {
        let idx = self.nat_target(id, cpu, status::DST_NAT_DONE, "DST")?;
        let curr = self.entries[idx as usize].reply().reversed();
        let range = match nat {
            DstNat::Null => Range::ip(curr.dst),
            DstNat::To { addr, port } => Range {
                ports: port.map(|p| (p, p)),
                ..Range::ip(addr)
            },
        };
        let new = self.get_unique_tuple(idx, cpu, curr, &range, Manip::Dst, None, now);
        Ok(self.finish_manip(idx, curr, new, Manip::Dst))
    }

    /// Sets up the SRC binding of an unconfirmed entry (`nf_nat_setup_info` with
    /// `NF_NAT_MANIP_SRC`): SNAT, MASQUERADE or the null binding every flow gets at
    /// POSTROUTING. Returns the tuple the packet carries afterwards. Random port
    /// offsets come from `rng`. If no free tuple is found the last candidate is kept
    /// and the clash surfaces at [`ConntrackTable::confirm`].
    ///
    /// # Errors
    /// [`CtError::UnknownConn`], [`CtError::AlreadyConfirmed`],
    /// [`CtError::AlreadyBound`] (SRC binding exists), [`CtError::UnknownCpu`].
    pub fn apply_src_nat(
        &mut self,
        id: super::ConnId,
        cpu: u16,
        nat: SrcNat,
        rng: &mut SimRng,
        now: SimTime,
    ) -> Result<Tuple, CtError> {
        let idx = self.nat_target(id, cpu, status::SRC_NAT_DONE, "SRC")?;
        let curr = self.entries[idx as usize].reply().reversed();
        let range = match nat {
            // nf_nat_alloc_null_binding: the address the reply is sent to.
            SrcNat::Null => Range::ip(curr.src),
            SrcNat::Snat(r) => Range::from_nat(&r),
            SrcNat::Masquerade {
                addr,
                ports,
                random,
                random_fully,
            } => Range {
                ports,
                random_all: random || random_fully,
                ..Range::ip(addr)
            },
        };
        let new = self.get_unique_tuple(idx, cpu, curr, &range, Manip::Src, Some(rng), now);
        Ok(self.finish_manip(idx, curr, new, Manip::Src))
    }

    fn nat_target(
        &self,
        id: super::ConnId,
        cpu: u16,
        done_bit: u16,
        what: &'static str,
    ) -> Result<u32, CtError> {
        self.check_cpu(cpu)?;
        let idx = self.slot(id)?;
        let e = &self.entries[idx as usize];
        if e.has(status::CONFIRMED) {
            return Err(CtError::AlreadyConfirmed(id));
        }
        if e.has(done_bit) {
            return Err(CtError::AlreadyBound(id, what));
        }
        Ok(idx)
    }

    /// The tail of `nf_nat_setup_info`: alter the reply tuple, set the status bits,
    /// hash SRC bindings by source.
    fn finish_manip(&mut self, idx: u32, curr: Tuple, new: Tuple, m: Manip) -> Tuple {
        let e = &mut self.entries[idx as usize];
        if new != curr {
            e.tuple[1] = new.reversed();
            e.status |= match m {
                Manip::Src => status::SRC_NAT,
                Manip::Dst => status::DST_NAT,
            };
        }
        match m {
            Manip::Src => {
                e.status |= status::SRC_NAT_DONE;
                let k = src_key(&e.tuple[0]);
                let id = self.id_of(idx);
                self.bysource.insert(k, id);
            }
            Manip::Dst => e.status |= status::DST_NAT_DONE,
        }
        new
    }

    /// `get_unique_tuple`.
    #[allow(clippy::too_many_arguments)]
    fn get_unique_tuple(
        &mut self,
        idx: u32,
        cpu: u16,
        orig: Tuple,
        range: &Range,
        m: Manip,
        rng: Option<&mut SimRng>,
        now: SimTime,
    ) -> Tuple {
        // 1) SRC only: keep the original tuple, or reuse the source's current mapping.
        if m == Manip::Src && !range.random_all {
            if in_range(&orig, range) {
                if !self.used_tuple_new(idx, &orig, cpu, now) {
                    return orig;
                }
            } else if let Some(t) = self.find_appropriate_src(idx, &orig, range)
                && !self.used_tuple(idx, &t, cpu, now)
            {
                return t;
            }
        }
        // 2) choose the address.
        let mut t = orig;
        find_best_ips_proto(&mut t, range, m);
        // 3) keep the port if already in range and unique.
        if !range.random_all {
            if let Some(p) = range.ports {
                if port_in_range(&t, m, p) && (p.0 == p.1 || !self.used_tuple(idx, &t, cpu, now)) {
                    return t;
                }
            } else if !self.used_tuple(idx, &t, cpu, now) {
                return t;
            }
        }
        // 4) search the port.
        self.l4proto_unique_tuple(idx, cpu, &mut t, range, m, rng, now);
        t
    }

    /// `nf_nat_l4proto_unique_tuple`.
    #[allow(clippy::too_many_arguments)]
    fn l4proto_unique_tuple(
        &mut self,
        idx: u32,
        cpu: u16,
        t: &mut Tuple,
        range: &Range,
        m: Manip,
        mut rng: Option<&mut SimRng>,
        now: SimTime,
    ) {
        let icmp = t.proto == Proto::Icmp;
        let (min, size): (u32, u32) = match range.ports {
            Some((a, b)) => {
                let (lo, hi) = (a.min(b), a.max(b));
                (u32::from(lo), u32::from(hi) - u32::from(lo) + 1)
            }
            None if icmp => (0, 65_536),
            // A DST manip without a range never changes the port.
            None if m == Manip::Dst => return,
            None => {
                let p = t.sport;
                if p < 512 {
                    (1, 511)
                } else if p < 1024 {
                    (600, 424)
                } else {
                    (1024, 64_512)
                }
            }
        };
        let mut random_u16 = || -> u16 {
            rng.as_deref_mut().map_or(0, |r| {
                #[allow(clippy::cast_possible_truncation)]
                let v = r.next_u32() as u16;
                v
            })
        };
        #[allow(clippy::cast_possible_truncation)]
        let port_at = |off: u16| (min + u32::from(off) % size) as u16;

        if self.cfg.profile.nat_sequential_rover {
            // Old kernels: scan the whole range from the shared per-protocol rover
            // (random offset with --random/--random-fully); the last candidate is
            // accepted without a check.
            let slot = match t.proto {
                Proto::Tcp => 0,
                Proto::Udp => 1,
                Proto::Icmp => 2,
            };
            let mut off = if range.random_all {
                random_u16()
            } else {
                self.rover[slot]
            };
            let mut i = 0;
            loop {
                set_key(t, m, port_at(off));
                i += 1;
                if i != size && self.used_tuple(idx, t, cpu, now) {
                    off = off.wrapping_add(1);
                    continue;
                }
                if !range.random_all {
                    self.rover[slot] = off;
                }
                return;
            }
        }

        let mut off: u16 = if range.random_all || m != Manip::Dst {
            random_u16()
        } else {
            0
        };
        let mut attempts = size.min(MAX_ATTEMPTS);
        loop {
            for i in 0..attempts {
                set_key(t, m, port_at(off));
                if !self.used_tuple_harder(idx, t, cpu, attempts - i, now) {
                    return;
                }
                off = off.wrapping_add(1);
            }
            if attempts >= size || attempts < 16 {
                return;
            }
            attempts /= 2;
            off = random_u16();
        }
    }

    /// `nf_nat_used_tuple`: is the reply tuple of candidate `t` taken?
    fn used_tuple(&mut self, idx: u32, t: &Tuple, cpu: u16, now: SimTime) -> bool {
        self.tuple_taken(idx, &t.reversed(), cpu, now)
    }

    /// `nf_conntrack_tuple_taken`: walks the bucket of `reply`, reaping expired
    /// entries; a confirmed same-namespace node with that tuple is a hit (`found` += 1)
    /// unless its entry has our ORIGINAL tuple (same-flow races go to clash resolution).
    fn tuple_taken(&mut self, idx: u32, reply: &Tuple, cpu: u16, now: SimTime) -> bool {
        let (ns, our_orig) = {
            let e = &self.entries[idx as usize];
            (e.ns, *e.original())
        };
        let h = self.hash_of(ns, reply);
        let b = self.bucket_of_hash(h);
        if !self.exhaustive_scans && self.summaries[b as usize].lookup_misses(h, now.as_nanos()) {
            // No expired node to reap and no node that can hold the tuple.
            return false;
        }
        let mut earliest = u64::MAX;
        let mut n = self.buckets[b as usize];
        while n != super::table::NIL {
            let other = node_idx(n);
            let next = self.next_of(n);
            let e = &self.entries[other as usize];
            if e.is_expired(now) {
                n = self.free_in_walk(other, next);
                continue;
            }
            earliest = earliest.min(e.timeout);
            if self.key_equal(n, reply, ns) {
                if *self.entries[other as usize].original() == our_orig {
                    n = next;
                    continue;
                }
                self.stat(ns, cpu).found += 1;
                return true;
            }
            n = next;
        }
        // The walk saw every node left: the exact earliest deadline.
        self.summaries[b as usize].min_expiry = earliest;
        false
    }

    /// `nf_nat_used_tuple_new`: as `used_tuple`, but a reverse-direction collision with
    /// the exactly inverse, non-NAT flow (simultaneous open) counts as free.
    fn used_tuple_new(&mut self, idx: u32, t: &Tuple, cpu: u16, now: SimTime) -> bool {
        if !self.used_tuple(idx, t, cpu, now) {
            return false;
        }
        if self.cfg.legacy_counters {
            return true;
        }
        let ns = self.entries[idx as usize].ns;
        let Some((other, dir)) = self.find(ns, t, now) else {
            return true;
        };
        if dir != Direction::Reply {
            return true;
        }
        let o = self.entries[other as usize];
        if o.status & status::NAT_MASK != 0 {
            return true;
        }
        let e = &self.entries[idx as usize];
        !(o.original() == e.reply() && o.reply() == e.original())
    }

    /// `nf_nat_used_tuple_harder`: in the last `HARDER_THRESH` probes of a round, a new
    /// TCP entry in SYN_SENT may evict a colliding SNATed entry in TIME_WAIT/CLOSE whose
    /// ORIGINAL sequence end is behind ours, and reuse its tuple. No `found` there.
    fn used_tuple_harder(&mut self, idx: u32, t: &Tuple, cpu: u16, attempts_left: u32, now: SimTime) -> bool {
        let e = self.entries[idx as usize];
        if !self.cfg.profile.snat_evict_time_wait
            || attempts_left > HARDER_THRESH
            || t.proto != Proto::Tcp
            || e.tcp_state() != CtState::SynSent
        {
            return self.used_tuple(idx, t, cpu, now);
        }
        let reply = t.reversed();
        let Some((other, dir)) = self.find(e.ns, &reply, now) else {
            return false;
        };
        if dir == Direction::Original {
            return true;
        }
        let o = self.entries[other as usize];
        // nf_nat_may_kill: state >= TIME_WAIT, not fixed-timeout, SNATed.
        if o.tcp_state() < CtState::TimeWait || o.has(status::FIXED_TIMEOUT) || !o.has(status::SRC_NAT) {
            return true;
        }
        // nf_seq_has_advanced: (s32)(new td_end - old td_end) > 0.
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        let advanced = ((e.aux as u32).wrapping_sub(o.aux as u32) as i32) > 0;
        if !advanced {
            return true;
        }
        self.free_entry(other);
        false
    }

    /// `find_appropriate_src`: the latest SRC binding of the same source (protocol,
    /// address, port) in this namespace, if its mapping fits the range.
    fn find_appropriate_src(&self, idx: u32, orig: &Tuple, range: &Range) -> Option<Tuple> {
        let id = *self.bysource.get(&src_key(orig))?;
        let other = self.slot(id).ok()?;
        if other == idx {
            return None;
        }
        let o = &self.entries[other as usize];
        let ns = self.entries[idx as usize].ns;
        if o.ns != ns || o.original().src != orig.src || o.original().sport != orig.sport {
            return None;
        }
        let mut result = o.reply().reversed();
        result.dst = orig.dst;
        result.dport = orig.dport;
        in_range(&result, range).then_some(result)
    }
}

/// `find_best_ips_proto`: one address → that one; several → a deterministic hash of
/// the source (and destination unless `--persistent`) picks one.
fn find_best_ips_proto(t: &mut Tuple, r: &Range, m: Manip) {
    let Some((lo, hi)) = r.ips else {
        return;
    };
    let chosen = if lo == hi {
        lo
    } else {
        let d = if r.persistent { 0 } else { t.dst.to_bits() };
        #[allow(clippy::cast_possible_truncation)]
        let j = mix64((u64::from(t.src.to_bits()) << 32) | u64::from(d)) as u32;
        lo + reciprocal_scale(j, (hi - lo).wrapping_add(1))
    };
    match m {
        Manip::Src => t.src = Ipv4Addr::from_bits(chosen),
        Manip::Dst => t.dst = Ipv4Addr::from_bits(chosen),
    }
}
