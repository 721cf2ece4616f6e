//! A bounded DNS answer cache with TTLs and deterministic LRU eviction.

use super::lookup::QType;
use crate::time::{SimDuration, SimTime};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Cache counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups not answered (absent or expired).
    pub misses: u64,
    /// Entries found expired on lookup or purged.
    pub expired: u64,
    /// Live entries evicted to make room.
    pub evictions: u64,
    /// Entries stored (new or replaced).
    pub inserts: u64,
}

/// The result of a cache lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheLookup<'a, V> {
    /// A live entry.
    Hit(&'a V),
    /// Nothing live for this name and type.
    Miss,
}

#[derive(Clone, Debug)]
struct Entry<V> {
    value: V,
    expires: SimTime,
    seq: u64,
}

/// A DNS cache keyed by (name, type), as NodeLocal DNSCache (CoreDNS `cache`) or a
/// client-side cache keeps one: entries live for their TTL; when full, the least
/// recently used entry (by a monotonic sequence number bumped on insert and hit) is
/// evicted, so eviction order is deterministic. Expired entries are removed when
/// looked up or by [`DnsCache::purge_expired`]; they count towards capacity until
/// then. Names are matched exactly (pass them normalised).
#[derive(Clone, Debug)]
pub struct DnsCache<V> {
    capacity: usize,
    entries: BTreeMap<Arc<str>, [Option<Entry<V>>; 2]>,
    order: BTreeMap<u64, (Arc<str>, QType)>,
    seq: u64,
    stats: CacheStats,
}

fn slot(qtype: QType) -> usize {
    match qtype {
        QType::A => 0,
        QType::Aaaa => 1,
    }
}

impl<V> DnsCache<V> {
    /// An empty cache holding at most `capacity` entries (0 disables caching).
    #[must_use]
    pub fn new(capacity: usize) -> DnsCache<V> {
        DnsCache {
            capacity,
            entries: BTreeMap::new(),
            order: BTreeMap::new(),
            seq: 0,
            stats: CacheStats::default(),
        }
    }

    /// Maximum number of entries.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries held (expired but not yet removed included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the cache holds nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Counters so far.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn remove(&mut self, name: &str, qtype: QType) -> Option<Entry<V>> {
        let slots = self.entries.get_mut(name)?;
        let entry = slots[slot(qtype)].take()?;
        if slots.iter().all(Option::is_none) {
            self.entries.remove(name);
        }
        self.order.remove(&entry.seq);
        Some(entry)
    }

    /// Looks up `name`/`qtype` at `now`; a hit makes the entry most recently used.
    pub fn get(&mut self, name: &str, qtype: QType, now: SimTime) -> CacheLookup<'_, V> {
        let state = self
            .entries
            .get(name)
            .and_then(|s| s[slot(qtype)].as_ref())
            .map(|e| (e.expires <= now, e.seq));
        match state {
            None => {
                self.stats.misses += 1;
                CacheLookup::Miss
            }
            Some((true, _)) => {
                self.remove(name, qtype);
                self.stats.expired += 1;
                self.stats.misses += 1;
                CacheLookup::Miss
            }
            Some((false, old_seq)) => {
                self.stats.hits += 1;
                let seq = self.next_seq();
                if let Some(key) = self.order.remove(&old_seq) {
                    self.order.insert(seq, key);
                }
                match self.entries.get_mut(name).and_then(|s| s[slot(qtype)].as_mut()) {
                    Some(e) => {
                        e.seq = seq;
                        CacheLookup::Hit(&e.value)
                    }
                    None => CacheLookup::Miss,
                }
            }
        }
    }

    /// Stores `value` for `name`/`qtype` for `ttl` from `now`, replacing any entry
    /// and evicting the least recently used one when full. A zero TTL or a zero
    /// capacity stores nothing.
    pub fn insert(&mut self, name: &str, qtype: QType, value: V, ttl: SimDuration, now: SimTime) {
        if self.capacity == 0 || ttl == SimDuration::ZERO {
            return;
        }
        self.remove(name, qtype);
        while self.order.len() >= self.capacity {
            let Some((_, (victim, vtype))) = self.order.pop_first() else {
                break;
            };
            if let Some(slots) = self.entries.get_mut(&victim) {
                slots[slot(vtype)] = None;
                if slots.iter().all(Option::is_none) {
                    self.entries.remove(&victim);
                }
            }
            self.stats.evictions += 1;
        }
        let seq = self.next_seq();
        let key: Arc<str> = match self.entries.get_key_value(name) {
            Some((k, _)) => Arc::clone(k),
            None => Arc::from(name),
        };
        self.order.insert(seq, (Arc::clone(&key), qtype));
        self.entries.entry(key).or_insert([None, None])[slot(qtype)] = Some(Entry {
            value,
            expires: now + ttl,
            seq,
        });
        self.stats.inserts += 1;
    }

    /// Removes every entry expired at `now`; returns how many.
    pub fn purge_expired(&mut self, now: SimTime) -> usize {
        let expired: Vec<(Arc<str>, QType)> = self
            .order
            .values()
            .filter(|(name, qtype)| {
                self.entries
                    .get(name)
                    .and_then(|s| s[slot(*qtype)].as_ref())
                    .is_some_and(|e| e.expires <= now)
            })
            .cloned()
            .collect();
        for (name, qtype) in &expired {
            self.remove(name, *qtype);
        }
        self.stats.expired += expired.len() as u64;
        expired.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> SimTime {
        SimTime::from_secs(s)
    }

    #[test]
    fn entries_expire_at_their_ttl() {
        let mut c = DnsCache::new(10);
        c.insert(
            "orders.shop.svc.cluster.local",
            QType::A,
            1u8,
            SimDuration::from_secs(30),
            t(0),
        );
        assert_eq!(
            c.get("orders.shop.svc.cluster.local", QType::A, t(29)),
            CacheLookup::Hit(&1)
        );
        assert_eq!(
            c.get("orders.shop.svc.cluster.local", QType::Aaaa, t(29)),
            CacheLookup::Miss
        );
        assert_eq!(
            c.get("orders.shop.svc.cluster.local", QType::A, t(30)),
            CacheLookup::Miss
        );
        assert!(c.is_empty());
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.expired, s.inserts), (1, 2, 1, 1));
    }

    #[test]
    fn full_cache_evicts_least_recently_used_first() {
        let mut c = DnsCache::new(2);
        let ttl = SimDuration::from_secs(60);
        c.insert("a", QType::A, 'a', ttl, t(0));
        c.insert("b", QType::A, 'b', ttl, t(1));
        // touching `a` makes `b` the oldest
        assert_eq!(c.get("a", QType::A, t(2)), CacheLookup::Hit(&'a'));
        c.insert("c", QType::A, 'c', ttl, t(3));
        assert_eq!(c.get("b", QType::A, t(4)), CacheLookup::Miss);
        assert_eq!(c.get("a", QType::A, t(4)), CacheLookup::Hit(&'a'));
        assert_eq!(c.get("c", QType::A, t(4)), CacheLookup::Hit(&'c'));
        // now `a` is older than `c`: inserting `d` evicts `a`
        c.insert("d", QType::Aaaa, 'd', ttl, t(5));
        assert_eq!(c.get("a", QType::A, t(6)), CacheLookup::Miss);
        assert_eq!(c.len(), 2);
        assert_eq!(c.stats().evictions, 2);
    }

    #[test]
    fn eviction_order_without_hits_is_insertion_order() {
        let mut c = DnsCache::new(3);
        for (i, n) in ["x", "y", "z", "w"].iter().enumerate() {
            c.insert(n, QType::A, i, SimDuration::from_secs(60), t(0));
        }
        assert_eq!(c.get("x", QType::A, t(1)), CacheLookup::Miss);
        assert_eq!(c.get("y", QType::A, t(1)), CacheLookup::Hit(&1));
    }

    #[test]
    fn replacing_an_entry_does_not_grow_the_cache_and_refreshes_ttl() {
        let mut c = DnsCache::new(2);
        c.insert("a", QType::A, 1, SimDuration::from_secs(5), t(0));
        c.insert("a", QType::A, 2, SimDuration::from_secs(5), t(4));
        assert_eq!(c.len(), 1);
        assert_eq!(c.get("a", QType::A, t(8)), CacheLookup::Hit(&2));
        assert_eq!(c.stats().evictions, 0);
    }

    #[test]
    fn purge_removes_only_expired_entries() {
        let mut c = DnsCache::new(4);
        c.insert("short", QType::A, 0, SimDuration::from_secs(5), t(0));
        c.insert("long", QType::A, 0, SimDuration::from_secs(50), t(0));
        assert_eq!(c.purge_expired(t(10)), 1);
        assert_eq!(c.len(), 1);
        assert_eq!(c.get("long", QType::A, t(10)), CacheLookup::Hit(&0));
    }

    #[test]
    fn zero_ttl_or_zero_capacity_caches_nothing() {
        let mut c = DnsCache::new(0);
        c.insert("a", QType::A, 1, SimDuration::from_secs(5), t(0));
        assert!(c.is_empty());
        let mut c = DnsCache::new(2);
        c.insert("a", QType::A, 1, SimDuration::ZERO, t(0));
        assert!(c.is_empty());
    }
}
