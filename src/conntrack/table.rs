//! The global conntrack hash table: bucket chains over the slab of entries
//! ([`super::entry`]) with their summaries ([`super::summary`]); allocation with early
//! drop, confirmation with clash resolution, per-packet tracking, listing.

use super::hash::{HashKey, reciprocal_scale, tuple_hash};
use super::listing::Conn;
use super::stats::{RateLimit, TableFullLog, format_stats, table_full_message};
use super::tcp::{self, CtState, Next, TcpBits};
use super::{ConnId, CtConfig, CtDrop, CtError, CtInfo, CtLookup, CtStats, NetnsConfig};
use crate::kernel::CtTimeouts;
use crate::packet::{Direction, Packet, Proto, TcpFlags, Tuple};
use crate::rng::SimRng;
use crate::time::{SimDuration, SimTime};

pub use super::entry::ENTRY_BYTES;
pub(super) use super::entry::{Entry, NIL, dir_slot, node, node_dir, node_idx, src_key, status};
pub(super) use super::summary::BucketSummary;

/// Per-namespace state (`struct nf_conntrack_net` + per-net stats).
#[derive(Clone, Debug)]
pub(super) struct Netns {
    pub(super) cfg: NetnsConfig,
    pub(super) count: u32,
    pub(super) stats: Vec<CtStats>,
}

/// gc worker state (`struct conntrack_gc_work`).
#[derive(Clone, Copy, Debug)]
pub(super) struct GcState {
    pub(super) next_bucket: u32,
    /// Running mean of remaining lifetimes, jiffies.
    pub(super) avg_timeout: i64,
    pub(super) count: i64,
    pub(super) start_time: SimTime,
    /// `conntrack_gc_work.early_drop`: armed by a failed allocation.
    pub(super) early_drop: bool,
}

/// The node's conntrack table (`nf_conntrack_hash` and everything hanging off it).
///
/// ```
/// use k8s_netsim::conntrack::{ConntrackTable, CtConfig, CtLookup, ConfirmOutcome, NetnsConfig};
/// use k8s_netsim::kernel::{KernelProfile, Sysctls};
/// use k8s_netsim::packet::{Packet, Proto, TcpFlags, Tuple};
/// use k8s_netsim::rng::SimRng;
/// use k8s_netsim::time::SimTime;
/// use std::net::Ipv4Addr;
///
/// let sysctls = Sysctls::default();
/// let cfg = CtConfig::new(&sysctls, KernelProfile::LINUX_6_18, 2);
/// let mut ct = ConntrackTable::new(cfg, SimRng::stream(1, "conntrack")).unwrap();
/// ct.set_netns(0, NetnsConfig::enabled(&sysctls).as_init());
/// let t = Tuple::new(Proto::Tcp, Ipv4Addr::new(10, 0, 0, 1), 40_000, Ipv4Addr::new(10, 96, 0, 10), 80);
/// let now = SimTime::ZERO;
/// let CtLookup::New { id } = ct.lookup_or_alloc(0, 0, &Packet::new(t, TcpFlags::SYN), now).unwrap() else {
///     unreachable!()
/// };
/// assert!(matches!(ct.confirm(id, 0, now).unwrap(), ConfirmOutcome::Inserted(_)));
/// assert_eq!(ct.count(0), 1);
/// ```
#[derive(Debug)]
pub struct ConntrackTable {
    pub(super) cfg: CtConfig,
    pub(super) key: HashKey,
    pub(super) rng: SimRng,
    pub(super) buckets: Vec<u32>,
    pub(super) entries: Vec<Entry>,
    pub(super) free_head: u32,
    pub(super) netns: Vec<Netns>,
    pub(super) gc: GcState,
    pub(super) ratelimit: RateLimit,
    pub(super) log: TableFullLog,
    /// Old kernels' shared per-protocol SNAT port offset (`nat_sequential_rover`).
    pub(super) rover: [u16; 3],
    /// `nf_nat_bysource` simplified to the latest SRC binding per source.
    pub(super) bysource: hashbrown::HashMap<u64, ConnId, crate::rng::FixedState>,
    /// Per bucket, what a chain walk of `early_drop` could find there (see
    /// [`BucketSummary`]).
    pub(super) summaries: Vec<BucketSummary>,
    /// Walk every chain `early_drop` visits even when its summary says the walk can
    /// change nothing (to check the summaries against the kernel's walk).
    pub(super) exhaustive_scans: bool,
}

/// `segment_seq_plus_len`: sequence number after the segment (payload = IP length minus
/// 40 header bytes; SYN and FIN count one each).
pub(super) fn seq_end(pkt: &Packet) -> u32 {
    let payload = u32::from(pkt.len.saturating_sub(40));
    let mut end = pkt.seq.wrapping_add(payload);
    if pkt.flags.contains(TcpFlags::SYN) {
        end = end.wrapping_add(1);
    }
    if pkt.flags.contains(TcpFlags::FIN) {
        end = end.wrapping_add(1);
    }
    end
}

impl ConntrackTable {
    /// A table for `config`; the hash key and the per-insert chain limits are drawn
    /// from `rng` (pass `SimRng::stream(seed, "conntrack")`).
    ///
    /// # Errors
    /// [`CtError::InvalidConfig`] when `cpus` or `hz` is 0 or the bucket count exceeds
    /// 2^30.
    pub fn new(config: CtConfig, mut rng: SimRng) -> Result<ConntrackTable, CtError> {
        if config.cpus == 0 {
            return Err(CtError::InvalidConfig("cpus must be at least 1"));
        }
        if config.hz == 0 {
            return Err(CtError::InvalidConfig("hz must be at least 1"));
        }
        if config.buckets > 1 << 30 {
            return Err(CtError::InvalidConfig("nf_conntrack_buckets above 2^30"));
        }
        let mut cfg = config;
        cfg.buckets = super::round_buckets(cfg.buckets);
        let key = HashKey::new(rng.next_u64(), rng.next_u64());
        let hz = i64::from(cfg.hz);
        Ok(ConntrackTable {
            cfg,
            key,
            rng,
            buckets: vec![NIL; cfg.buckets as usize],
            entries: Vec::with_capacity((cfg.max as usize).min(1 << 22)),
            free_head: NIL,
            netns: Vec::new(),
            gc: GcState {
                next_bucket: 0,
                avg_timeout: 60 * hz,
                count: 100,
                start_time: SimTime::ZERO,
                early_drop: false,
            },
            ratelimit: RateLimit::default(),
            log: TableFullLog::default(),
            rover: [0; 3],
            bysource: hashbrown::HashMap::default(),
            summaries: vec![BucketSummary::EMPTY; cfg.buckets as usize],
            exhaustive_scans: false,
        })
    }

    /// The configuration in force (bucket count already rounded).
    #[must_use]
    pub fn config(&self) -> &CtConfig {
        &self.cfg
    }

    /// Registers or reconfigures namespace `ns`. Namespaces never registered behave
    /// as disabled.
    pub fn set_netns(&mut self, ns: u16, cfg: NetnsConfig) {
        let i = usize::from(ns);
        if self.netns.len() <= i {
            let cpus = usize::from(self.cfg.cpus);
            self.netns.resize_with(i + 1, || Netns {
                cfg: NetnsConfig::disabled(),
                count: 0,
                stats: vec![CtStats::default(); cpus],
            });
        }
        self.netns[i].cfg = cfg;
    }

    /// `nf_conntrack_count` of `ns`: every allocated entry not yet freed, including
    /// unconfirmed, expired-but-unreaped and hidden clash entries.
    #[must_use]
    pub fn count(&self, ns: u16) -> u32 {
        self.netns.get(usize::from(ns)).map_or(0, |n| n.count)
    }

    /// Per-CPU counters of `ns` (empty for an unknown namespace).
    #[must_use]
    pub fn stats(&self, ns: u16) -> &[CtStats] {
        self.netns
            .get(usize::from(ns))
            .map_or(&[], |n| n.stats.as_slice())
    }

    /// Counters of `ns` summed over CPUs.
    #[must_use]
    pub fn stats_sum(&self, ns: u16) -> CtStats {
        CtStats::sum(self.stats(ns))
    }

    /// `conntrack -S` as run inside `ns`.
    #[must_use]
    pub fn format_stats(&self, ns: u16) -> String {
        format_stats(self.stats(ns), self.cfg.legacy_counters)
    }

    /// Table-full log lines emitted and suppressed (global `net_ratelimit`).
    #[must_use]
    pub fn table_full_log(&self) -> TableFullLog {
        self.log
    }

    /// The log line `ns` prints when its table is full.
    #[must_use]
    pub fn table_full_message(&self, ns: u16) -> String {
        let cfg = self.netns.get(usize::from(ns)).map(|n| n.cfg);
        let (is_init, inode) = cfg.map_or((false, 0), |c| (c.is_init, c.inode));
        table_full_message(is_init, inode)
    }

    /// Whether the gc early-drop (95 % trim) flag is armed.
    #[must_use]
    pub fn gc_early_drop_armed(&self) -> bool {
        self.gc.early_drop
    }

    /// The bucket `tuple` hashes to in `ns` (`hash_conntrack` + `scale_hash`).
    #[must_use]
    pub fn bucket_of(&self, ns: u16, tuple: &Tuple) -> u32 {
        self.bucket_of_hash(self.hash_of(ns, tuple))
    }

    /// The 32-bit hash of `tuple` in `ns` (`hash_conntrack_raw`).
    #[inline]
    pub(super) fn hash_of(&self, ns: u16, tuple: &Tuple) -> u32 {
        tuple_hash(self.key, ns, tuple)
    }

    /// The bucket of a key whose hash is `h` (`scale_hash`).
    #[inline]
    pub(super) fn bucket_of_hash(&self, h: u32) -> u32 {
        reciprocal_scale(h, self.cfg.buckets)
    }

    /// Number of nodes in bucket `b`'s chain (diagnostics and tests).
    #[must_use]
    pub fn chain_len(&self, b: u32) -> usize {
        let mut n = self.buckets.get(b as usize).copied().unwrap_or(NIL);
        let mut len = 0;
        while n != NIL {
            len += 1;
            n = self.next_of(n);
        }
        len
    }

    /// Bytes the model uses: entry slab, bucket array and bucket summaries.
    #[must_use]
    pub fn memory_bytes(&self) -> usize {
        self.entries.capacity() * ENTRY_BYTES
            + self.buckets.capacity() * 4
            + self.summaries.capacity() * std::mem::size_of::<BucketSummary>()
    }

    /// A snapshot of entry `id`, or `None` if it was freed.
    #[must_use]
    pub fn conn(&self, id: ConnId) -> Option<Conn> {
        let idx = self.slot(id).ok()?;
        let e = &self.entries[idx as usize];
        Some(Conn {
            id,
            ns: e.ns,
            original: *e.original(),
            reply: *e.reply(),
            tcp_state: (e.original().proto == Proto::Tcp).then(|| e.tcp_state()),
            confirmed: e.has(status::CONFIRMED),
            seen_reply: e.has(status::SEEN_REPLY),
            assured: e.has(status::ASSURED),
            src_nat: e.has(status::SRC_NAT),
            dst_nat: e.has(status::DST_NAT),
            nat_clash: e.has(status::NAT_CLASH),
            expires: e.has(status::CONFIRMED).then(|| SimTime::from_nanos(e.timeout)),
        })
    }

    /// Handles of every live entry (confirmed or not) in slab order, for tests and
    /// reports. Allocates.
    #[must_use]
    pub fn conn_ids(&self) -> Vec<ConnId> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.has(status::IN_USE))
            .map(|(i, e)| ConnId {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                generation: e.generation,
            })
            .collect()
    }

    // ----- internals: ids, chains, slab -----

    pub(super) fn check_cpu(&self, cpu: u16) -> Result<(), CtError> {
        if cpu < self.cfg.cpus {
            Ok(())
        } else {
            Err(CtError::UnknownCpu {
                cpu,
                cpus: self.cfg.cpus,
            })
        }
    }

    pub(super) fn slot(&self, id: ConnId) -> Result<u32, CtError> {
        match self.entries.get(id.index as usize) {
            Some(e) if e.has(status::IN_USE) && e.generation == id.generation => Ok(id.index),
            _ => Err(CtError::UnknownConn(id)),
        }
    }

    pub(super) fn id_of(&self, idx: u32) -> ConnId {
        ConnId {
            index: idx,
            generation: self.entries[idx as usize].generation,
        }
    }

    pub(super) fn ns_enabled(&self, ns: u16) -> bool {
        self.netns.get(usize::from(ns)).is_some_and(|n| n.cfg.enabled)
    }

    pub(super) fn stat(&mut self, ns: u16, cpu: u16) -> &mut CtStats {
        // Callers checked both the namespace and the cpu.
        &mut self.netns[usize::from(ns)].stats[usize::from(cpu)]
    }

    pub(super) fn timeouts(&self, ns: u16) -> CtTimeouts {
        self.netns[usize::from(ns)].cfg.timeouts
    }

    #[inline]
    pub(super) fn next_of(&self, n: u32) -> u32 {
        self.entries[node_idx(n) as usize].next[dir_slot(node_dir(n))]
    }

    /// `nf_ct_key_equal`: same tuple, same namespace, confirmed.
    #[inline]
    pub(super) fn key_equal(&self, n: u32, tuple: &Tuple, ns: u16) -> bool {
        let e = &self.entries[node_idx(n) as usize];
        e.tuple[dir_slot(node_dir(n))] == *tuple && e.ns == ns && e.has(status::CONFIRMED)
    }

    pub(super) fn link(&mut self, idx: u32, dir: Direction) {
        let e = &self.entries[idx as usize];
        let h = self.hash_of(e.ns, &e.tuple[dir_slot(dir)]);
        let b = self.bucket_of_hash(h) as usize;
        let s = &mut self.summaries[b];
        s.min_expiry = s.min_expiry.min(e.timeout);
        s.add_key(h);
        if !e.has(status::ASSURED) {
            s.evictable += 1;
        }
        self.entries[idx as usize].next[dir_slot(dir)] = self.buckets[b];
        self.buckets[b] = node(idx, dir);
    }

    fn unlink(&mut self, idx: u32, dir: Direction) {
        let e = &self.entries[idx as usize];
        let h = self.hash_of(e.ns, &e.tuple[dir_slot(dir)]);
        let b = self.bucket_of_hash(h) as usize;
        let s = &mut self.summaries[b];
        s.remove_key(h);
        if !e.has(status::ASSURED) {
            s.evictable -= 1;
        }
        let target = node(idx, dir);
        let after = e.next[dir_slot(dir)];
        if self.buckets[b] == target {
            self.buckets[b] = after;
            return;
        }
        let mut n = self.buckets[b];
        while n != NIL {
            let nx = self.next_of(n);
            if nx == target {
                let (pi, pd) = (node_idx(n) as usize, dir_slot(node_dir(n)));
                self.entries[pi].next[pd] = after;
                return;
            }
            n = nx;
        }
        debug_assert!(false, "invariant: linked node {target} not found in its bucket");
    }

    /// Allocates an unconfirmed entry for `tuple` in `ns` and counts it.
    pub(super) fn alloc_entry(&mut self, ns: u16, tuple: Tuple) -> u32 {
        let fresh = Entry {
            tuple: [tuple, tuple.reversed()],
            ns,
            status: status::IN_USE,
            ..Entry::EMPTY
        };
        let idx = if self.free_head == NIL {
            let idx = u32::try_from(self.entries.len()).unwrap_or(NIL >> 1);
            self.entries.push(fresh);
            idx
        } else {
            let idx = self.free_head;
            let e = &mut self.entries[idx as usize];
            self.free_head = e.next[0];
            let generation = e.generation;
            *e = Entry { generation, ..fresh };
            idx
        };
        self.netns[usize::from(ns)].count += 1;
        idx
    }

    /// Destroys an entry: unlinks it, uncounts it, returns the slot
    /// (`nf_ct_delete` + `nf_conntrack_free`; references are not modelled, so the
    /// object is freed at once).
    pub(super) fn free_entry(&mut self, idx: u32) {
        let e = self.entries[idx as usize];
        if e.has(status::CONFIRMED) {
            if !e.has(status::NAT_CLASH) {
                self.unlink(idx, Direction::Original);
            }
            self.unlink(idx, Direction::Reply);
        }
        if e.has(status::SRC_NAT_DONE) {
            let k = src_key(e.original());
            if self.bysource.get(&k).is_some_and(|id| id.index == idx) {
                self.bysource.remove(&k);
            }
        }
        let n = &mut self.netns[usize::from(e.ns)];
        n.count = n.count.saturating_sub(1);
        let slot = &mut self.entries[idx as usize];
        slot.status = 0;
        slot.generation = slot.generation.wrapping_add(1);
        slot.next = [self.free_head, NIL];
        self.free_head = idx;
    }

    /// Frees `idx` while walking a chain whose next node is `next`; returns the node to
    /// continue with (skipping `idx`'s other node if it was next).
    pub(super) fn free_in_walk(&mut self, idx: u32, next: u32) -> u32 {
        let cont = if next != NIL && node_idx(next) == idx {
            self.next_of(next)
        } else {
            next
        };
        self.free_entry(idx);
        cont
    }

    /// `____nf_conntrack_find`: walks the bucket of `tuple`, reaping expired entries it
    /// meets, and returns the first confirmed same-namespace node with that tuple.
    ///
    /// A chain whose summary shows no expired node and no node in the key's class is
    /// not walked: the walk would reap nothing and find nothing.
    pub(super) fn find(&mut self, ns: u16, tuple: &Tuple, now: SimTime) -> Option<(u32, Direction)> {
        let h = self.hash_of(ns, tuple);
        let b = self.bucket_of_hash(h);
        if !self.exhaustive_scans && self.summaries[b as usize].lookup_misses(h, now.as_nanos()) {
            return None;
        }
        let mut earliest = u64::MAX;
        let mut n = self.buckets[b as usize];
        while n != NIL {
            let idx = node_idx(n);
            let next = self.next_of(n);
            let e = &self.entries[idx as usize];
            if e.is_expired(now) {
                n = self.free_in_walk(idx, next);
                continue;
            }
            earliest = earliest.min(e.timeout);
            if self.key_equal(n, tuple, ns) {
                return Some((idx, node_dir(n)));
            }
            n = next;
        }
        // The walk saw every node left: the exact earliest deadline.
        self.summaries[b as usize].min_expiry = earliest;
        None
    }

    /// `__nf_ct_refresh_acct`: set the timeout unless fixed.
    pub(super) fn refresh(&mut self, idx: u32, timeout: SimDuration, now: SimTime) {
        let e = &mut self.entries[idx as usize];
        if e.has(status::FIXED_TIMEOUT) {
            return;
        }
        if !e.has(status::CONFIRMED) {
            e.timeout = timeout.as_nanos();
            return;
        }
        let at = now.saturating_add(timeout).as_nanos();
        let earlier = at < e.timeout;
        e.timeout = at;
        if earlier {
            // Keep each chain's lower bound of deadlines a lower bound.
            for b in self.linked_buckets(idx) {
                let s = &mut self.summaries[b as usize];
                s.min_expiry = s.min_expiry.min(at);
            }
        }
    }

    /// The buckets a confirmed entry's nodes are linked in (REPLY only for a clash
    /// entry).
    fn linked_buckets(&self, idx: u32) -> impl Iterator<Item = u32> + use<> {
        let e = &self.entries[idx as usize];
        let reply = self.bucket_of(e.ns, e.reply());
        let original = (!e.has(status::NAT_CLASH)).then(|| self.bucket_of(e.ns, e.original()));
        original.into_iter().chain(std::iter::once(reply))
    }

    /// Sets `IPS_ASSURED` on a confirmed entry: it is no longer an `early_drop` victim.
    pub(super) fn assure(&mut self, idx: u32) {
        let e = &self.entries[idx as usize];
        if e.has(status::ASSURED) {
            return;
        }
        if !e.has(status::CONFIRMED) {
            // Not in the hash yet: `link` counts it when it is confirmed.
            self.entries[idx as usize].status |= status::ASSURED;
            return;
        }
        for b in self.linked_buckets(idx) {
            self.summaries[b as usize].evictable -= 1;
        }
        self.entries[idx as usize].status |= status::ASSURED;
    }

    /// Walk chains even where the bucket summaries say the walk would change and find
    /// nothing (`early_drop`, lookups, confirm): a check of the summaries; the results
    /// are the same either way.
    pub fn set_exhaustive_scans(&mut self, on: bool) {
        self.exhaustive_scans = on;
    }

    // ----- nf_conntrack_in -----

    /// The first conntrack hook for `pkt` in namespace `ns` on `cpu`
    /// (`nf_conntrack_in` → `resolve_normal_ct` → `init_conntrack`).
    ///
    /// Looks the tuple up (reaping expired entries met on the chain); a TCP SYN that
    /// reopens a TIME_WAIT/CLOSE entry kills it and looks up again. Without an entry,
    /// allocates one (early drop when the namespace is at `nf_conntrack_max`), then
    /// runs the tracker's new-connection check, which may free it again as `invalid`.
    /// NOTRACK packets must not be passed here (the raw table detaches them first).
    ///
    /// # Errors
    /// [`CtError::UnknownCpu`] for a CPU outside the configuration.
    pub fn lookup_or_alloc(
        &mut self,
        ns: u16,
        cpu: u16,
        pkt: &Packet,
        now: SimTime,
    ) -> Result<CtLookup, CtError> {
        self.check_cpu(cpu)?;
        if !self.ns_enabled(ns) {
            return Ok(CtLookup::Untracked);
        }
        let tuple = pkt.tuple;
        // -NF_REPEAT loops at most once per reopened entry; tuples of confirmed
        // entries are unique, so two rounds suffice.
        for _ in 0..2 {
            let Some((idx, dir)) = self.find(ns, &tuple, now) else {
                break;
            };
            if tuple.proto == Proto::Tcp && self.tcp_reopens(idx, dir, pkt.flags) {
                self.free_entry(idx);
                continue;
            }
            let e = &self.entries[idx as usize];
            let ctinfo = match dir {
                Direction::Reply => CtInfo::EstablishedReply,
                Direction::Original if e.has(status::SEEN_REPLY) => CtInfo::Established,
                Direction::Original => CtInfo::New,
            };
            return Ok(CtLookup::Existing {
                id: self.id_of(idx),
                dir,
                ctinfo,
            });
        }

        // __nf_conntrack_alloc: count check and early drop.
        if self.count(ns).saturating_add(1) > self.cfg.max {
            let start = self.bucket_of(ns, &tuple);
            if !self.early_drop(ns, cpu, start, now) {
                self.gc.early_drop = true;
                if self.ratelimit.allow(now) {
                    self.log.lines += 1;
                } else {
                    self.log.suppressed += 1;
                }
                self.stat(ns, cpu).drop += 1;
                return Ok(CtLookup::Dropped(CtDrop::TableFull));
            }
        }
        let idx = self.alloc_entry(ns, tuple);

        // The L4 tracker on the new entry (`tcp_new`, `udp_packet`, `icmp_packet`).
        let t = self.timeouts(ns);
        let timeout = match tuple.proto {
            Proto::Tcp => match self.tcp_new(idx, ns, pkt) {
                Some(d) => d,
                None => {
                    self.free_entry(idx);
                    self.stat(ns, cpu).invalid += 1;
                    return Ok(CtLookup::Invalid);
                }
            },
            Proto::Udp => {
                // stream_ts = jiffies + 2 s, taken while unconfirmed.
                self.entries[idx as usize].aux = now.saturating_add(SimDuration::from_secs(2)).as_nanos();
                t.udp
            }
            Proto::Icmp => t.icmp,
        };
        self.entries[idx as usize].timeout = timeout.as_nanos();
        Ok(CtLookup::New { id: self.id_of(idx) })
    }

    /// The `-NF_REPEAT` test of `nf_conntrack_tcp_packet`: a SYN that moves a
    /// TIME_WAIT/CLOSE entry to SYN_SENT reopens it when the old connection was closed
    /// by a FIN (CLOSE_INIT) or the last packet in this direction was an RST.
    fn tcp_reopens(&self, idx: u32, dir: Direction, flags: TcpFlags) -> bool {
        if !tcp::valid_flags(flags) {
            return false;
        }
        let e = &self.entries[idx as usize];
        let old = e.tcp_state();
        let index = tcp::flag_index(flags);
        matches!(tcp::transition(dir, index, old), Next::State(CtState::SynSent))
            && old >= CtState::TimeWait
            && (e.tcp.any_close_init() || (e.tcp.last_dir() == dir && e.tcp.last_index() == tcp::RST_SET))
    }

    /// `tcp_new` plus the first pass of `nf_conntrack_tcp_packet` on a new entry.
    /// Returns the timeout, or `None` when the packet cannot start a connection.
    fn tcp_new(&mut self, idx: u32, ns: u16, pkt: &Packet) -> Option<SimDuration> {
        if !tcp::valid_flags(pkt.flags) {
            return None;
        }
        let cfg = self.netns[usize::from(ns)].cfg;
        let index = tcp::flag_index(pkt.flags);
        let Next::State(new) = tcp::transition(Direction::Original, index, CtState::None) else {
            return None;
        };
        if new != CtState::SynSent && !cfg.tcp_loose {
            return None;
        }
        let e = &mut self.entries[idx as usize];
        e.state = new as u8;
        e.tcp = TcpBits::fresh();
        e.tcp.set_last(index, Direction::Original);
        e.aux = u64::from(seq_end(pkt));
        let t = cfg.timeouts;
        let mut timeout = new.timeout(&t);
        // ESTABLISHED without a reply (loose pickup): capped at UNACK.
        if new == CtState::Established && timeout > t.tcp_unacknowledged {
            timeout = t.tcp_unacknowledged;
        }
        Some(timeout)
    }

    /// Early drop (`early_drop`): scan `NF_CT_EVICTION_RANGE` = 8 buckets from
    /// `start`, wrapping; in each, reap expired entries (not counted) and delete every
    /// non-ASSURED entry of `ns`; stop at the first bucket that deleted any.
    fn early_drop(&mut self, ns: u16, cpu: u16, start: u32, now: SimTime) -> bool {
        let nb = self.cfg.buckets;
        let mut b = start;
        for _ in 0..8 {
            if !self.exhaustive_scans && self.summaries[b as usize].is_inert(now.as_nanos()) {
                b = (b + 1) % nb;
                continue;
            }
            let drops = self.early_drop_list(ns, b, now);
            if drops > 0 {
                self.stat(ns, cpu).early_drop += drops;
                return true;
            }
            b = (b + 1) % nb;
        }
        false
    }

    /// `early_drop_list`. The walk sees every node left in the chain, so it also
    /// tightens the bucket's lower bound of deadlines to the exact earliest one.
    fn early_drop_list(&mut self, ns: u16, b: u32, now: SimTime) -> u64 {
        let mut drops = 0;
        let mut earliest = u64::MAX;
        let mut n = self.buckets[b as usize];
        while n != NIL {
            let idx = node_idx(n);
            let next = self.next_of(n);
            let e = &self.entries[idx as usize];
            if e.is_expired(now) {
                n = self.free_in_walk(idx, next);
                continue;
            }
            if e.has(status::ASSURED) || e.ns != ns {
                earliest = earliest.min(e.timeout);
                n = next;
                continue;
            }
            n = self.free_in_walk(idx, next);
            drops += 1;
        }
        self.summaries[b as usize].min_expiry = earliest;
        drops
    }

    /// Frees an unconfirmed entry whose packet was dropped later in the path (the
    /// kernel frees it with the skb).
    ///
    /// # Errors
    /// [`CtError::UnknownConn`] for a stale handle, [`CtError::AlreadyConfirmed`] for a
    /// confirmed entry (use the tracker or gc to end those).
    pub fn abort(&mut self, id: ConnId) -> Result<(), CtError> {
        let idx = self.slot(id)?;
        if self.entries[idx as usize].has(status::CONFIRMED) {
            return Err(CtError::AlreadyConfirmed(id));
        }
        self.free_entry(idx);
        Ok(())
    }

    /// Deletes a confirmed or unconfirmed entry (`conntrack -D`, flushes). No counter
    /// changes.
    ///
    /// # Errors
    /// [`CtError::UnknownConn`] for a stale handle.
    pub fn kill(&mut self, id: ConnId) -> Result<(), CtError> {
        let idx = self.slot(id)?;
        self.free_entry(idx);
        Ok(())
    }

    // ----- __nf_conntrack_confirm -----
}
