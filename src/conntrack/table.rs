//! The global conntrack hash table: slab of entries, bucket chains, allocation with
//! early drop, confirmation with clash resolution, per-packet tracking, listing.

use super::hash::{HashKey, reciprocal_scale, tuple_hash};
use super::stats::{RateLimit, TableFullLog, format_stats, table_full_message};
use super::tcp::{self, CtState, Next, TcpBits};
use super::{
    ConfirmOutcome, ConnId, CtConfig, CtDrop, CtError, CtInfo, CtLookup, CtStats, NetnsConfig, TrackVerdict,
};
use crate::kernel::CtTimeouts;
use crate::packet::{Direction, Packet, Proto, TcpFlags, Tuple};
use crate::rng::SimRng;
use crate::time::{NANOS_PER_SEC, SimDuration, SimTime};
use std::fmt;

/// End of a chain / empty free list.
pub(super) const NIL: u32 = u32::MAX;

/// `ct->status` bits the model keeps (`enum ip_conntrack_status`), plus slab bookkeeping.
pub(super) mod status {
    /// Slab slot holds a live entry.
    pub(crate) const IN_USE: u16 = 1 << 0;
    /// `IPS_CONFIRMED`.
    pub(crate) const CONFIRMED: u16 = 1 << 1;
    /// `IPS_SEEN_REPLY`.
    pub(crate) const SEEN_REPLY: u16 = 1 << 2;
    /// `IPS_ASSURED`.
    pub(crate) const ASSURED: u16 = 1 << 3;
    /// `IPS_SRC_NAT`.
    pub(crate) const SRC_NAT: u16 = 1 << 4;
    /// `IPS_DST_NAT`.
    pub(crate) const DST_NAT: u16 = 1 << 5;
    /// `IPS_SRC_NAT_DONE`.
    pub(crate) const SRC_NAT_DONE: u16 = 1 << 6;
    /// `IPS_DST_NAT_DONE`.
    pub(crate) const DST_NAT_DONE: u16 = 1 << 7;
    /// `IPS_FIXED_TIMEOUT`.
    pub(crate) const FIXED_TIMEOUT: u16 = 1 << 8;
    /// `IPS_NAT_CLASH`: inserted under the REPLY tuple only.
    pub(crate) const NAT_CLASH: u16 = 1 << 9;
    /// `IPS_NAT_MASK`.
    pub(crate) const NAT_MASK: u16 = SRC_NAT | DST_NAT;
    /// `IPS_NAT_DONE_MASK`.
    pub(crate) const NAT_DONE_MASK: u16 = SRC_NAT_DONE | DST_NAT_DONE;
}

/// One conntrack entry (`struct nf_conn`), 64 bytes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    /// `tuplehash[ORIGINAL].tuple`, `tuplehash[REPLY].tuple`.
    pub(super) tuple: [Tuple; 2],
    /// Next node in the chain of each tuple's bucket (node = index << 1 | dir).
    /// Free slots chain the free list through `next[0]`.
    pub(super) next: [u32; 2],
    /// Confirmed: absolute deadline in ns (`ct->timeout`). Unconfirmed: the timeout
    /// relative to confirmation, as `__nf_ct_refresh_acct` stores it.
    pub(super) timeout: u64,
    /// UDP: `stream_ts` in ns. TCP: `seen[ORIGINAL].td_end` in the low 32 bits.
    pub(super) aux: u64,
    pub(super) generation: u32,
    pub(super) status: u16,
    pub(super) ns: u16,
    /// TCP state (`CtState as u8`).
    pub(super) state: u8,
    pub(super) tcp: TcpBits,
}

impl Entry {
    const EMPTY: Entry = Entry {
        tuple: [Tuple::new(
            Proto::Tcp,
            std::net::Ipv4Addr::UNSPECIFIED,
            0,
            std::net::Ipv4Addr::UNSPECIFIED,
            0,
        ); 2],
        next: [NIL, NIL],
        timeout: 0,
        aux: 0,
        generation: 0,
        status: 0,
        ns: 0,
        state: 0,
        tcp: TcpBits(0),
    };

    #[inline]
    pub(super) const fn has(&self, bit: u16) -> bool {
        self.status & bit != 0
    }

    /// `nf_ct_is_expired` for linked (confirmed) entries.
    #[inline]
    pub(super) const fn is_expired(&self, now: SimTime) -> bool {
        self.has(status::CONFIRMED) && self.timeout <= now.as_nanos()
    }

    pub(super) const fn tcp_state(&self) -> CtState {
        CtState::from_u8(self.state)
    }

    pub(super) fn original(&self) -> &Tuple {
        &self.tuple[0]
    }

    pub(super) fn reply(&self) -> &Tuple {
        &self.tuple[1]
    }
}

/// `size_of` one entry in the model (the kernel's is 256 bytes).
pub const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();

#[inline]
pub(super) const fn node(idx: u32, dir: Direction) -> u32 {
    (idx << 1)
        | match dir {
            Direction::Original => 0,
            Direction::Reply => 1,
        }
}

#[inline]
pub(super) const fn node_idx(n: u32) -> u32 {
    n >> 1
}

#[inline]
pub(super) const fn node_dir(n: u32) -> Direction {
    if n & 1 == 0 {
        Direction::Original
    } else {
        Direction::Reply
    }
}

#[inline]
pub(super) const fn dir_slot(d: Direction) -> usize {
    match d {
        Direction::Original => 0,
        Direction::Reply => 1,
    }
}

/// `nf_nat_bysource` key: protocol, source address and port of the ORIGINAL tuple.
pub(super) fn src_key(t: &Tuple) -> u64 {
    (u64::from(t.proto.number()) << 48) | (u64::from(t.src.to_bits()) << 16) | u64::from(t.sport)
}

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

/// What a bucket's chain holds, kept up to date as nodes are linked, unlinked,
/// refreshed and made ASSURED: enough to tell, without walking the chain, that a walk
/// would change nothing and find nothing.
///
/// `early_drop_list` changes a chain only by reaping an expired node or deleting a
/// non-ASSURED one. A chain with no non-ASSURED node (`evictable == 0`) and no node
/// whose timeout has passed (`min_expiry > now`; a lower bound of the nodes' deadlines)
/// is therefore left exactly as it was: the scan can move to the next bucket without
/// walking it. A lookup (`____nf_conntrack_find`, `nf_conntrack_tuple_taken`) in a
/// chain with no expired node and no node whose key falls in the looked-up key's class
/// (`keys`, counts of nodes per class of their hash) reaps nothing and finds nothing,
/// so it returns at once; confirm's walk, which reaps nothing, does the same when the
/// chain is also too short for its length limit. The counters, the entries and every
/// result are the same as with the walk (`docs/model.md` §Work the simulator folds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(align(64))]
pub(super) struct BucketSummary {
    /// At most the earliest timeout of a node in the chain (`u64::MAX`: none yet).
    pub(super) min_expiry: u64,
    /// Nodes in the chain whose entry is not ASSURED.
    pub(super) evictable: u32,
    /// Nodes in the chain.
    pub(super) nodes: u32,
    /// Per class of key ([`key_class`]), the nodes of the chain whose key is in it;
    /// a count that reached 255 stays there (it then only means "maybe").
    pub(super) keys: [u8; KEY_CLASSES],
}

/// Classes of keys a bucket summary counts: one cache line per bucket with the rest
/// of the summary.
pub(super) const KEY_CLASSES: usize = 48;

/// The class of a key with hash `h` (its low bits; the bucket uses the high ones).
#[inline]
pub(super) const fn key_class(h: u32) -> usize {
    (((h & 0xFFFF) as usize) * KEY_CLASSES) >> 16
}

impl BucketSummary {
    const EMPTY: BucketSummary = BucketSummary {
        min_expiry: u64::MAX,
        evictable: 0,
        nodes: 0,
        keys: [0; KEY_CLASSES],
    };

    /// Whether `early_drop_list` at `now` would leave the chain unchanged.
    #[inline]
    pub(super) const fn is_inert(&self, now: u64) -> bool {
        self.evictable == 0 && self.min_expiry > now
    }

    /// Whether no node of the chain can have a key of hash `h`.
    #[inline]
    pub(super) const fn lacks(&self, h: u32) -> bool {
        self.keys[key_class(h)] == 0
    }

    /// Whether a lookup of a key of hash `h` at `now` would reap nothing and find
    /// nothing.
    #[inline]
    pub(super) const fn lookup_misses(&self, h: u32, now: u64) -> bool {
        self.min_expiry > now && self.lacks(h)
    }

    fn add_key(&mut self, h: u32) {
        let c = &mut self.keys[key_class(h)];
        *c = c.saturating_add(1);
        self.nodes += 1;
    }

    fn remove_key(&mut self, h: u32) {
        let c = &mut self.keys[key_class(h)];
        debug_assert!(*c > 0, "invariant: a linked node's key class is counted");
        if *c < u8::MAX {
            *c -= 1;
        }
        self.nodes -= 1;
    }
}

/// A snapshot of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conn {
    /// The handle.
    pub id: ConnId,
    /// Owning namespace.
    pub ns: u16,
    /// ORIGINAL tuple (as the first packet arrived).
    pub original: Tuple,
    /// REPLY tuple (what answers look like; NAT rewrites it).
    pub reply: Tuple,
    /// TCP state (`None` for UDP/ICMP).
    pub tcp_state: Option<CtState>,
    /// `IPS_CONFIRMED`.
    pub confirmed: bool,
    /// `IPS_SEEN_REPLY`.
    pub seen_reply: bool,
    /// `IPS_ASSURED`.
    pub assured: bool,
    /// `IPS_SRC_NAT` (the source was changed).
    pub src_nat: bool,
    /// `IPS_DST_NAT` (the destination was changed).
    pub dst_nat: bool,
    /// `IPS_NAT_CLASH` (reply-only clash entry).
    pub nat_clash: bool,
    /// Absolute expiry (confirmed entries), or `None` while unconfirmed.
    pub expires: Option<SimTime>,
}

impl Conn {
    /// The tuple a packet travelling in `dir` carries after conntrack's NAT
    /// (`nf_nat_packet`): ORIGINAL packets leave as the inverse of the REPLY tuple,
    /// REPLY packets leave as the inverse of the ORIGINAL tuple.
    #[must_use]
    pub fn translated(&self, dir: Direction) -> Tuple {
        match dir {
            Direction::Original => self.reply.reversed(),
            Direction::Reply => self.original.reversed(),
        }
    }
}

/// One line of `conntrack -L`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtListEntry {
    /// ORIGINAL tuple.
    pub original: Tuple,
    /// REPLY tuple.
    pub reply: Tuple,
    /// Seconds until expiry (`nf_ct_expires / HZ`, truncated).
    pub timeout_secs: u64,
    /// TCP state.
    pub tcp_state: Option<CtState>,
    /// `[ASSURED]`.
    pub assured: bool,
    /// `[UNREPLIED]` (no reply seen).
    pub unreplied: bool,
}

impl fmt::Display for CtListEntry {
    /// libnetfilter_conntrack's default format:
    /// `tcp      6 117 TIME_WAIT src=... dst=... sport=... dport=... src=... [ASSURED] mark=0 use=1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.original.proto;
        write!(f, "{:<8} {} {} ", p.as_str(), p.number(), self.timeout_secs)?;
        if let Some(s) = self.tcp_state {
            write!(f, "{} ", s.as_str())?;
        }
        let side = |f: &mut fmt::Formatter<'_>, t: &Tuple, icmp_type: u8| -> fmt::Result {
            write!(f, "src={} dst={} ", t.src, t.dst)?;
            if p == Proto::Icmp {
                write!(f, "type={icmp_type} code=0 id={} ", self.original.sport)
            } else {
                write!(f, "sport={} dport={} ", t.sport, t.dport)
            }
        };
        side(f, &self.original, 8)?;
        if self.unreplied {
            f.write_str("[UNREPLIED] ")?;
        }
        side(f, &self.reply, 0)?;
        if self.assured {
            f.write_str("[ASSURED] ")?;
        }
        f.write_str("mark=0 use=1")
    }
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
    fn assure(&mut self, idx: u32) {
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

    /// Runs the L4 tracker for a packet of an existing, confirmed entry
    /// (`nf_conntrack_handle_packet`), then marks `IPS_SEEN_REPLY` for accepted REPLY
    /// packets as `nf_conntrack_in` does.
    ///
    /// # Errors
    /// [`CtError::UnknownConn`] for a stale handle, [`CtError::UnknownCpu`].
    pub fn packet(
        &mut self,
        id: ConnId,
        dir: Direction,
        cpu: u16,
        pkt: &Packet,
        now: SimTime,
    ) -> Result<TrackVerdict, CtError> {
        self.check_cpu(cpu)?;
        let idx = self.slot(id)?;
        let e = self.entries[idx as usize];
        let ns = e.ns;
        let t = self.timeouts(ns);
        let verdict = match e.original().proto {
            Proto::Tcp => self.tcp_packet(idx, dir, pkt, &t, now),
            Proto::Udp => {
                self.udp_packet(idx, &t, now);
                TrackVerdict::Accept
            }
            Proto::Icmp => {
                self.refresh(idx, t.icmp, now);
                TrackVerdict::Accept
            }
        };
        match verdict {
            TrackVerdict::Invalid => self.stat(ns, cpu).invalid += 1,
            TrackVerdict::Accept if dir == Direction::Reply => {
                self.entries[idx as usize].status |= status::SEEN_REPLY;
            }
            _ => {}
        }
        Ok(verdict)
    }

    /// `nf_conntrack_udp_packet`.
    fn udp_packet(&mut self, idx: u32, t: &CtTimeouts, now: SimTime) {
        let e = self.entries[idx as usize];
        if e.has(status::SEEN_REPLY) {
            let mut extra = t.udp;
            let mut stream = false;
            if now.as_nanos() > e.aux {
                extra = t.udp_stream;
                stream = !e.has(status::ASSURED);
            }
            self.refresh(idx, extra, now);
            // Never ASSURED for IPS_NAT_CLASH entries.
            if stream && !e.has(status::NAT_CLASH) {
                self.assure(idx);
            }
        } else {
            self.refresh(idx, t.udp, now);
        }
    }

    /// `nf_conntrack_tcp_packet` without window tracking (every segment is in window).
    fn tcp_packet(
        &mut self,
        idx: u32,
        dir: Direction,
        pkt: &Packet,
        t: &CtTimeouts,
        now: SimTime,
    ) -> TrackVerdict {
        if !tcp::valid_flags(pkt.flags) {
            return TrackVerdict::Invalid;
        }
        let e = self.entries[idx as usize];
        let index = tcp::flag_index(pkt.flags);
        let old = e.tcp_state();
        let mut new = match tcp::transition(dir, index, old) {
            Next::Invalid => return TrackVerdict::Invalid,
            Next::State(CtState::SynSent) if old >= CtState::TimeWait => {
                if e.tcp.any_close_init() || (e.tcp.last_dir() == dir && e.tcp.last_index() == tcp::RST_SET) {
                    self.free_entry(idx);
                    return TrackVerdict::Repeat;
                }
                // Fall through to the ignore case.
                self.entries[idx as usize].tcp.set_last(index, dir);
                return TrackVerdict::Accept;
            }
            Next::Ignore => {
                // Record and let it through without touching state or timeout.
                self.entries[idx as usize].tcp.set_last(index, dir);
                return TrackVerdict::Accept;
            }
            Next::State(s) => s,
        };
        let ent = &mut self.entries[idx as usize];
        match new {
            CtState::SynSent2 => ent.tcp.set_simultaneous_open(),
            CtState::SynRecv
                if dir == Direction::Reply && index == tcp::ACK_SET && ent.tcp.simultaneous_open() =>
            {
                new = CtState::Established;
            }
            _ => {}
        }
        // in_window:
        if dir == Direction::Original {
            let end = seq_end(pkt);
            #[allow(clippy::cast_possible_truncation)]
            let cur = ent.aux as u32;
            #[allow(clippy::cast_possible_wrap)]
            if (end.wrapping_sub(cur) as i32) > 0 {
                ent.aux = u64::from(end);
            }
        }
        ent.tcp.set_last(index, dir);
        ent.state = new as u8;
        if old != new && new == CtState::FinWait {
            ent.tcp.set_close_init(dir);
        }
        let mut timeout = if index == tcp::RST_SET {
            t.tcp_close
        } else {
            new.timeout(t)
        };
        if !ent.has(status::SEEN_REPLY) {
            if index == tcp::RST_SET {
                // Only reply is an RST: delete at once (nf_ct_kill_acct).
                self.free_entry(idx);
                return TrackVerdict::AcceptDeleted;
            }
            if index == tcp::SYN_SET && old == CtState::SynSent {
                // Do not renew the timeout on SYN retransmits.
                return TrackVerdict::Accept;
            }
            if new == CtState::Established && timeout > t.tcp_unacknowledged {
                timeout = t.tcp_unacknowledged;
            }
        } else if !ent.has(status::ASSURED)
            && (old == CtState::SynRecv || old == CtState::Established)
            && new == CtState::Established
        {
            self.assure(idx);
        }
        self.refresh(idx, timeout, now);
        TrackVerdict::Accept
    }

    // ----- dumps -----

    /// `conntrack -L` inside `ns`: walks every bucket, reaping expired entries of any
    /// namespace it passes (ctnetlink dump), and returns the ORIGINAL-direction nodes of
    /// `ns` in bucket order. Reply-only clash entries are hidden.
    pub fn list(&mut self, ns: u16, now: SimTime) -> Vec<CtListEntry> {
        let mut out = Vec::new();
        let hz = u64::from(self.cfg.hz);
        for b in 0..self.buckets.len() {
            let mut n = self.buckets[b];
            while n != NIL {
                let idx = node_idx(n);
                let next = self.next_of(n);
                let e = self.entries[idx as usize];
                if e.is_expired(now) {
                    n = self.free_in_walk(idx, next);
                    continue;
                }
                if e.ns == ns && node_dir(n) == Direction::Original {
                    let left_ns = e.timeout - now.as_nanos();
                    // nf_ct_expires(ct) / HZ, both in jiffies.
                    let left_j = u128::from(left_ns) * u128::from(hz) / u128::from(NANOS_PER_SEC);
                    out.push(CtListEntry {
                        original: *e.original(),
                        reply: *e.reply(),
                        timeout_secs: u64::try_from(left_j / u128::from(hz)).unwrap_or(u64::MAX),
                        tcp_state: (e.original().proto == Proto::Tcp).then(|| e.tcp_state()),
                        assured: e.has(status::ASSURED),
                        unreplied: !e.has(status::SEEN_REPLY),
                    });
                }
                n = next;
            }
        }
        out
    }
}
