//! NodeLocal DNSCache (KEP-1024, k8s.io/dns `node-cache`): the per-node cache agent's
//! state. The agent is CoreDNS in the host network namespace with the reference
//! Corefile (`cache { success 9984 30; denial 9984 5 }`, `forward . <kube-dns> {
//! force_tcp }`); its traffic moves through the node's data path in `model.rs`.

use super::super::event::Answer;
use super::super::slab::UpConnId;
use crate::dns::{CacheLookup, DnsCache, QType, Rcode};
use crate::scenario::NodeLocalDnsCache;
use crate::socket::SocketTable;
use crate::time::{SimDuration, SimTime};
use crate::topology::NetnsId;
use std::net::Ipv4Addr;

/// TTL of the cluster zone's answers: the `kubernetes` plugin's `ttl 30` of the
/// kubeadm / CoreDNS-manifest Corefile (NXDOMAIN/NODATA carry the same SOA minimum).
pub(in crate::sim) const ZONE_TTL: SimDuration = SimDuration::from_secs(30);

/// The denial cache's TTL cap in node-local-dns's Corefile (`denial 9984 5`).
pub(in crate::sim) const DENIAL_TTL_CAP: SimDuration = SimDuration::from_secs(5);

/// Time the agent takes to answer a query from its cache (documented constant; the
/// agent's CPU is not modelled, so it has no capacity limit).
pub(in crate::sim) const ANSWER_TIME: SimDuration = SimDuration::from_micros(50);

/// How long the agent waits for an upstream answer before giving up on the
/// connection (CoreDNS `plugin/pkg/proxy` read timeout, 2 s).
pub(in crate::sim) const UPSTREAM_READ_TIMEOUT: SimDuration = SimDuration::from_secs(2);

/// Counters of one node's agent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(in crate::sim) struct NodeLocalStats {
    pub(in crate::sim) hits: u64,
    pub(in crate::sim) misses: u64,
    pub(in crate::sim) upstream_queries: u64,
    pub(in crate::sim) upstream_connections: u64,
    pub(in crate::sim) upstream_timeouts: u64,
}

/// One node's cache agent.
#[derive(Debug)]
pub(in crate::sim) struct NodeLocal {
    /// Listen address.
    pub(in crate::sim) addr: Ipv4Addr,
    /// The node's host namespace (where the agent runs).
    pub(in crate::sim) host: NetnsId,
    /// The node's address (source of upstream connections).
    pub(in crate::sim) node_ip: Ipv4Addr,
    /// Positive answers (`success` cache).
    success: DnsCache<Answer>,
    /// NXDOMAIN and NODATA answers (`denial` cache).
    denial: DnsCache<Answer>,
    ttl_cap: SimDuration,
    pub(in crate::sim) force_tcp: bool,
    pub(in crate::sim) expire: SimDuration,
    /// Idle upstream connections, most recently used last (the forward plugin's
    /// connection cache hands out the most recent one).
    pub(in crate::sim) idle: Vec<UpConnId>,
    /// The agent's sockets (upstream TCP connections: ports, TIME_WAIT).
    pub(in crate::sim) sockets: SocketTable,
    pub(in crate::sim) stats: NodeLocalStats,
}

impl NodeLocal {
    /// A cold agent.
    pub(in crate::sim) fn new(
        cfg: &NodeLocalDnsCache,
        host: NetnsId,
        node_ip: Ipv4Addr,
        sockets: SocketTable,
    ) -> NodeLocal {
        let cap = usize::try_from(cfg.capacity).unwrap_or(usize::MAX);
        NodeLocal {
            addr: cfg.address,
            host,
            node_ip,
            success: DnsCache::new(cap),
            denial: DnsCache::new(cap),
            ttl_cap: cfg.ttl,
            force_tcp: cfg.force_tcp,
            expire: cfg.upstream_expire,
            idle: Vec::new(),
            sockets,
            stats: NodeLocalStats::default(),
        }
    }

    /// Looks `name`/`qtype` up at `now` (a live entry of either cache), counting the
    /// hit or miss.
    pub(in crate::sim) fn lookup(&mut self, name: &str, qtype: QType, now: SimTime) -> Option<Answer> {
        let hit = match self.success.get(name, qtype, now) {
            CacheLookup::Hit(c) => Some(*c),
            CacheLookup::Miss => match self.denial.get(name, qtype, now) {
                CacheLookup::Hit(c) => Some(*c),
                CacheLookup::Miss => None,
            },
        };
        if hit.is_some() {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
        }
        hit
    }

    /// Stores an upstream answer: positive answers for `min(ZONE_TTL, ttl cap)`,
    /// denials for `min(ZONE_TTL, DENIAL_TTL_CAP)`; SERVFAIL is not cached.
    pub(in crate::sim) fn store(&mut self, name: &str, qtype: QType, ans: Answer, now: SimTime) {
        match ans.rcode {
            Rcode::NoError if ans.records > 0 => {
                self.success
                    .insert(name, qtype, ans, ZONE_TTL.min(self.ttl_cap), now);
            }
            Rcode::NoError | Rcode::NxDomain => {
                self.denial
                    .insert(name, qtype, ans, ZONE_TTL.min(DENIAL_TTL_CAP), now);
            }
            Rcode::ServFail => {}
        }
    }

    /// Evictions of live entries so far (both caches).
    pub(in crate::sim) fn evictions(&self) -> u64 {
        self.success.stats().evictions + self.denial.stats().evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::SocketConfig;

    fn agent(capacity: u32) -> NodeLocal {
        let cfg = NodeLocalDnsCache {
            address: Ipv4Addr::new(169, 254, 20, 10),
            ttl: SimDuration::from_secs(30),
            capacity,
            force_tcp: true,
            upstream_expire: SimDuration::from_secs(10),
        };
        let sockets = SocketTable::new(SocketConfig::default(), crate::rng::SimRng::stream(1, "t"));
        NodeLocal::new(&cfg, NetnsId(0), Ipv4Addr::new(10, 0, 0, 1), sockets)
    }

    fn ans(rcode: Rcode, records: u16) -> Answer {
        Answer {
            rcode,
            records,
            first: None,
        }
    }

    #[test]
    fn a_stored_answer_is_a_hit_until_its_ttl_then_a_miss() {
        let mut a = agent(10);
        let t0 = SimTime::ZERO;
        assert_eq!(a.lookup("echo.default.svc.cluster.local", QType::A, t0), None);
        a.store(
            "echo.default.svc.cluster.local",
            QType::A,
            ans(Rcode::NoError, 1),
            t0,
        );
        let t = t0 + SimDuration::from_secs(29);
        assert!(a.lookup("echo.default.svc.cluster.local", QType::A, t).is_some());
        let t = t0 + SimDuration::from_secs(30);
        assert_eq!(a.lookup("echo.default.svc.cluster.local", QType::A, t), None);
        assert_eq!((a.stats.hits, a.stats.misses), (1, 2));
    }

    #[test]
    fn denials_live_five_seconds_and_servfail_is_not_cached() {
        let mut a = agent(10);
        let t0 = SimTime::ZERO;
        a.store("x.svc.cluster.local", QType::A, ans(Rcode::NxDomain, 0), t0);
        a.store("echo.svc.cluster.local", QType::Aaaa, ans(Rcode::NoError, 0), t0);
        a.store("y.svc.cluster.local", QType::A, ans(Rcode::ServFail, 0), t0);
        let t = t0 + SimDuration::from_millis(4_999);
        assert!(a.lookup("x.svc.cluster.local", QType::A, t).is_some());
        assert!(a.lookup("echo.svc.cluster.local", QType::Aaaa, t).is_some());
        assert_eq!(a.lookup("y.svc.cluster.local", QType::A, t), None);
        let t = t0 + SimDuration::from_secs(5);
        assert_eq!(a.lookup("x.svc.cluster.local", QType::A, t), None);
    }

    #[test]
    fn a_full_cache_evicts_the_least_recently_used_name() {
        let mut a = agent(2);
        let t0 = SimTime::ZERO;
        a.store("a", QType::A, ans(Rcode::NoError, 1), t0);
        a.store("b", QType::A, ans(Rcode::NoError, 1), t0);
        assert!(a.lookup("a", QType::A, t0).is_some());
        a.store("c", QType::A, ans(Rcode::NoError, 1), t0);
        assert_eq!(a.lookup("b", QType::A, t0), None);
        assert!(a.lookup("a", QType::A, t0).is_some());
        assert_eq!(a.evictions(), 1);
    }
}
