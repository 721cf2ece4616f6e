//! The `ebpf` module models Cilium's kube-proxy replacement: socket-level load balancing at
//! `connect()` (a cgroup BPF program rewrites the destination of a socket connecting to a
//! Service frontend, so no packet of the flow is ever NATed), per-packet load balancing for
//! NodePort and external frontends (random or Maglev backend selection), and connection
//! tracking in BPF LRU hash maps instead of nf_conntrack (cilium `bpf/lib/conntrack_map.h`,
//! `pkg/maps/ctmap`).
//!
//! Modelled: the service, backend and rev-NAT maps (object counts); the two global CT maps
//! (TCP and "any") with Cilium's sizes (fixed defaults 512Ki/256Ki, or dynamic: 0.25 % of
//! RAM split in proportion, clamped, from cilium `pkg/maps/mapsize`), per-state lifetimes
//! (SYN 60 s, closing 10 s, non-TCP 60 s, established 21,600 s or 8,000 s), the dynamic GC
//! interval (cilium PR #24400), deterministic LRU eviction of live flows under pressure,
//! "CT: Map insertion failed" (drop reason 155) when a map without LRU is full, map pressure
//! (`cilium_bpf_map_pressure`), and whether nf_conntrack still tracks the flow.
//!
//! Not modelled: the kernel's per-CPU LRU free lists (eviction here is strict LRU by last
//! touch, so an LRU insert never fails), the BPF NAT map, DSR and hybrid modes, session
//! affinity, topology-aware hints, policy, Cilium's separate ingress/egress CT entries (one
//! entry per flow here), the GC's expected-vs-actual interval correction. See
//! `docs/model.md`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use super::proxy::{
    DataPlane, FirstPacket, FlowOrigin, FrontendIndex, FrontendKind, LookupCost, ModeNote, ProxyDrop,
    ProxyVerdict, ServiceProxy,
};
use super::{ServicePort, TrafficPolicy, external_backends, ready_backends};
use crate::netfilter::FixedState;
use crate::packet::{Direction, Proto, TcpFlags, Tuple};
use crate::rng::{SimRng, splitmix64};
use crate::time::{SimDuration, SimTime};

/// `bpf-ct-global-tcp-max` default (`2 << 18`).
pub const CT_TCP_DEFAULT: u32 = 524_288;
/// `bpf-ct-global-any-max` default (`2 << 17`).
pub const CT_ANY_DEFAULT: u32 = 262_144;
/// Smallest dynamic TCP CT size (`limitTableAutoGlobalTCPMin`, 128Ki).
pub const CT_TCP_DYNAMIC_MIN: u32 = 1 << 17;
/// Smallest dynamic "any" CT size (`limitTableAutoGlobalAnyMin`, 64Ki).
pub const CT_ANY_DYNAMIC_MIN: u32 = 1 << 16;
/// Largest map size (`LimitTableMax`, 16Mi).
pub const CT_MAX: u32 = 1 << 24;
/// `bpf-map-dynamic-size-ratio` default.
pub const DYNAMIC_SIZE_RATIO: f64 = 0.0025;
/// Bytes of all default-sized maps the dynamic sizing divides among them
/// (`totalMapMemoryDefault`: CT TCP + CT any + NAT + neighbour + sock rev-NAT entries times
/// their element sizes). Derived from the four calculation examples in cilium's
/// `getDynamicSizeCalculator` comment (512 MB -> 33,140 TCP ... 16 GB -> 1,060,485 TCP), which
/// all give 81 bytes per 256Ki "unit".
pub const TOTAL_DEFAULT_MAP_BYTES: u64 = 81 * 262_144;
/// The default Maglev table size (`bpf-lb-maglev-table-size`, a prime).
pub const MAGLEV_TABLE_SIZE: u32 = 16_381;

/// Sizes of the two global CT maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CtMapSizes {
    /// TCP entries.
    pub tcp: u32,
    /// Non-TCP entries.
    pub any: u32,
}

impl CtMapSizes {
    /// The fixed defaults (`bpf-ct-global-tcp-max` 524,288, `-any-max` 262,144).
    pub const FIXED_DEFAULT: CtMapSizes = CtMapSizes {
        tcp: CT_TCP_DEFAULT,
        any: CT_ANY_DEFAULT,
    };

    /// Dynamic sizing (the flags left at 0): `ratio` of `total_memory` bytes shared in
    /// proportion to the default sizes, clamped to [128Ki, 16Mi] (TCP) and [64Ki, 16Mi]
    /// (any). A ratio outside (0, 1] gives the fixed defaults.
    #[must_use]
    pub fn dynamic(total_memory: u64, ratio: f64) -> CtMapSizes {
        if !(ratio > 0.0 && ratio <= 1.0) {
            return CtMapSizes::FIXED_DEFAULT;
        }
        CtMapSizes {
            tcp: dynamic_entries(CT_TCP_DEFAULT, total_memory, ratio).clamp(CT_TCP_DYNAMIC_MIN, CT_MAX),
            any: dynamic_entries(CT_ANY_DEFAULT, total_memory, ratio).clamp(CT_ANY_DYNAMIC_MIN, CT_MAX),
        }
    }
}

/// `entriesDefault * memoryAvailableForMaps / totalMapMemoryDefault`, before clamping.
#[must_use]
pub fn dynamic_entries(default: u32, total_memory: u64, ratio: f64) -> u32 {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let avail = (total_memory as f64 * ratio) as u64;
    let n = u64::from(default).saturating_mul(avail) / TOTAL_DEFAULT_MAP_BYTES;
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Cilium CT lifetimes (`ct-timeout-*` daemon flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BpfCtTimeouts {
    /// Until a non-SYN packet is seen (`CT_SYN_TIMEOUT`, 60 s).
    pub tcp_syn: SimDuration,
    /// Established TCP (`CT_CONNECTION_LIFETIME_TCP`: 21,600 s in older releases, 8,000 s
    /// in newer ones).
    pub tcp_established: SimDuration,
    /// After FIN in both directions or RST (`CT_CLOSE_TIMEOUT`, 10 s).
    pub tcp_close: SimDuration,
    /// Non-TCP (`CT_CONNECTION_LIFETIME_NONTCP`, 60 s).
    pub non_tcp: SimDuration,
}

impl BpfCtTimeouts {
    /// Established lifetime of older Cilium releases.
    pub const ESTABLISHED_OLDER: SimDuration = SimDuration::from_secs(21_600);
    /// Established lifetime of newer Cilium releases.
    pub const ESTABLISHED_NEWER: SimDuration = SimDuration::from_secs(8_000);
}

impl Default for BpfCtTimeouts {
    /// 60 s SYN, 21,600 s established, 10 s close, 60 s non-TCP.
    fn default() -> Self {
        BpfCtTimeouts {
            tcp_syn: SimDuration::from_secs(60),
            tcp_established: BpfCtTimeouts::ESTABLISHED_OLDER,
            tcp_close: SimDuration::from_secs(10),
            non_tcp: SimDuration::from_secs(60),
        }
    }
}

/// The map type holding CT entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CtMapKind {
    /// `BPF_MAP_TYPE_LRU_HASH` (kernels >= 4.10): a full map evicts its least recently used
    /// entry, live or not.
    #[default]
    Lru,
    /// `BPF_MAP_TYPE_HASH` (no LRU support): a full map refuses the insert.
    Hash,
}

/// Backend selection for per-packet (NodePort, external) load balancing
/// (`loadBalancer.algorithm`). Socket LB at `connect()` always picks at random.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackendSelection {
    /// `random`.
    #[default]
    Random,
    /// `maglev`: consistent hashing of the 5-tuple into a per-Service table.
    Maglev,
}

/// Settings of the eBPF data plane.
#[derive(Clone, Debug, PartialEq)]
pub struct EbpfConfig {
    /// This node's name (local endpoints for `externalTrafficPolicy: Local`).
    pub node_name: String,
    /// This node's addresses (NodePort frontends).
    pub node_ips: Vec<Ipv4Addr>,
    /// CT map sizes.
    pub ct_sizes: CtMapSizes,
    /// CT map type.
    pub ct_kind: CtMapKind,
    /// CT lifetimes.
    pub timeouts: BpfCtTimeouts,
    /// Per-packet backend selection.
    pub selection: BackendSelection,
    /// Maglev table size (a prime).
    pub maglev_table_size: u32,
    /// `installNoConntrackIptablesRules`: raw-table NOTRACK for pod traffic, so nf_conntrack
    /// no longer sees it (default false).
    pub notrack: bool,
}

impl Default for EbpfConfig {
    /// Cilium defaults with fixed CT sizes, node `node-0` without addresses.
    fn default() -> Self {
        EbpfConfig {
            node_name: "node-0".into(),
            node_ips: Vec::new(),
            ct_sizes: CtMapSizes::FIXED_DEFAULT,
            ct_kind: CtMapKind::Lru,
            timeouts: BpfCtTimeouts::default(),
            selection: BackendSelection::Random,
            maglev_table_size: MAGLEV_TABLE_SIZE,
            notrack: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CtEntry {
    expires: SimTime,
    touch: u64,
    seen_non_syn: bool,
    closing: [bool; 2],
}

/// CT map counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CtMapStats {
    /// Entries created.
    pub inserted: u64,
    /// LRU evictions of entries whose lifetime had not run out (flows lose their state).
    pub evicted_live: u64,
    /// LRU evictions of expired entries.
    pub evicted_expired: u64,
    /// Inserts refused because the map was full ("CT: Map insertion failed").
    pub insert_failed: u64,
    /// Entries deleted by GC passes.
    pub gc_deleted: u64,
}

/// The result of creating a CT entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtInsert {
    /// A new entry (`evicted_live`: the LRU evicted a live flow to make room).
    Created {
        /// A live entry was evicted.
        evicted_live: bool,
    },
    /// An entry for the tuple existed and was refreshed (or an expired one was reused).
    Existing,
    /// The map was full and nothing could be evicted.
    Failed,
}

/// One BPF CT map: a bounded hash with deterministic LRU order (by last touch).
#[derive(Clone, Debug)]
pub struct BpfCtMap {
    capacity: usize,
    kind: CtMapKind,
    entries: hashbrown::HashMap<Tuple, CtEntry, FixedState>,
    lru: BTreeMap<u64, Tuple>,
    seq: u64,
    stats: CtMapStats,
}

impl BpfCtMap {
    /// An empty map of `capacity` entries.
    #[must_use]
    pub fn new(capacity: u32, kind: CtMapKind) -> BpfCtMap {
        BpfCtMap {
            capacity: capacity as usize,
            kind,
            entries: hashbrown::HashMap::default(),
            lru: BTreeMap::new(),
            seq: 0,
            stats: CtMapStats::default(),
        }
    }

    /// Entries held, expired ones included (they stay until GC, LRU eviction or reuse).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `max_entries`.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// `cilium_bpf_map_pressure`: entries / `max_entries`.
    #[must_use]
    pub fn pressure(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let p = self.entries.len() as f64 / self.capacity.max(1) as f64;
        p
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> CtMapStats {
        self.stats
    }

    /// Whether `tuple` has an unexpired entry.
    #[must_use]
    pub fn is_live(&self, tuple: &Tuple, now: SimTime) -> bool {
        self.entries.get(tuple).is_some_and(|e| e.expires > now)
    }

    fn touch(&mut self, tuple: Tuple) -> u64 {
        self.seq += 1;
        let seq = self.seq;
        if let Some(e) = self.entries.get_mut(&tuple) {
            self.lru.remove(&e.touch);
            e.touch = seq;
            self.lru.insert(seq, tuple);
        }
        seq
    }

    /// Creates (or refreshes) the entry of a flow's first packet (`ct_create4`).
    pub fn create(&mut self, tuple: Tuple, lifetime: SimDuration, now: SimTime) -> CtInsert {
        if self.entries.contains_key(&tuple) {
            self.touch(tuple);
            if let Some(e) = self.entries.get_mut(&tuple) {
                *e = CtEntry {
                    expires: now + lifetime,
                    seen_non_syn: false,
                    closing: [false; 2],
                    ..*e
                };
            }
            return CtInsert::Existing;
        }
        let mut evicted_live = false;
        if self.entries.len() >= self.capacity {
            match self.kind {
                CtMapKind::Hash => {
                    self.stats.insert_failed += 1;
                    return CtInsert::Failed;
                }
                CtMapKind::Lru => {
                    let Some((_, victim)) = self.lru.pop_first() else {
                        self.stats.insert_failed += 1;
                        return CtInsert::Failed;
                    };
                    if let Some(v) = self.entries.remove(&victim) {
                        if v.expires > now {
                            self.stats.evicted_live += 1;
                            evicted_live = true;
                        } else {
                            self.stats.evicted_expired += 1;
                        }
                    }
                }
            }
        }
        self.seq += 1;
        self.entries.insert(
            tuple,
            CtEntry {
                expires: now + lifetime,
                touch: self.seq,
                seen_non_syn: false,
                closing: [false; 2],
            },
        );
        self.lru.insert(self.seq, tuple);
        self.stats.inserted += 1;
        CtInsert::Created { evicted_live }
    }

    /// Deletes expired entries (one GC pass over the map); returns how many.
    pub fn gc(&mut self, now: SimTime) -> usize {
        let before = self.entries.len();
        let lru = &mut self.lru;
        self.entries.retain(|_, e| {
            let keep = e.expires > now;
            if !keep {
                lru.remove(&e.touch);
            }
            keep
        });
        let n = before - self.entries.len();
        self.stats.gc_deleted += n as u64;
        n
    }
}

/// Cilium's CT GC cadence (`conntrack-gc-interval` 0 = dynamic; `calculateInterval`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GcSchedule {
    /// The interval until the next pass.
    pub interval: SimDuration,
}

impl GcSchedule {
    /// First interval (`ConntrackGCStartingInterval`, 5 min).
    pub const START: SimDuration = SimDuration::from_secs(300);
    /// Shortest interval (`ConntrackGCMinInterval`, 10 s).
    pub const MIN: SimDuration = SimDuration::from_secs(10);
    /// Longest interval with LRU maps (`ConntrackGCMaxLRUInterval`, 12 h).
    pub const MAX_LRU: SimDuration = SimDuration::from_secs(12 * 3600);

    /// The next interval after a pass that deleted `ratio` of the map's `max_entries`: more
    /// than 25 % deleted shrinks it to `(1 - min(ratio, 0.9))` times (at least 10 s); less
    /// than 5 % grows it 1.5 times (at most 12 h); both rounded to whole seconds.
    #[must_use]
    pub fn next(self, ratio: f64) -> GcSchedule {
        let secs = self.interval.as_secs_f64();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let round = |s: f64| SimDuration::from_secs(s.round().max(0.0) as u64);
        let interval = if ratio > 0.25 {
            round(secs * (1.0 - ratio.min(0.9))).max(GcSchedule::MIN)
        } else if ratio < 0.05 && ratio > 0.0 {
            round(secs * 1.5).min(GcSchedule::MAX_LRU)
        } else {
            self.interval
        };
        GcSchedule { interval }
    }
}

impl Default for GcSchedule {
    fn default() -> Self {
        GcSchedule {
            interval: GcSchedule::START,
        }
    }
}

/// The result of one GC pass over both CT maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcPass {
    /// Entries deleted.
    pub deleted: usize,
    /// When the next pass is due.
    pub next_at: SimTime,
}

/// What a later packet found in the BPF CT map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtPacket {
    /// The flow's entry was there and unexpired.
    pub found: bool,
    /// The entry was missing (evicted or expired) and had to be created again: the flow lost
    /// its state.
    pub recreated: bool,
    /// The insert failed (the packet is dropped, drop reason 155).
    pub insert_failed: bool,
    /// The work done.
    pub cost: LookupCost,
}

/// Object counts of the LB maps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EbpfObjects {
    /// Frontends (ClusterIP, external, LoadBalancer, one NodePort per node address).
    pub frontends: usize,
    /// Service map entries: per frontend one master entry plus one slot per backend.
    pub service_entries: usize,
    /// Distinct backends (backend map).
    pub backends: usize,
    /// Rev-NAT map entries (one per frontend).
    pub rev_nat: usize,
    /// Maglev tables (one per Service with per-packet frontends, Maglev only).
    pub maglev_tables: usize,
}

#[derive(Clone, Debug)]
struct LbService {
    cluster: Vec<SocketAddrV4>,
    external: Vec<SocketAddrV4>,
    local_policy: bool,
    maglev: Option<Vec<u16>>,
}

/// Cilium's kube-proxy replacement on one node.
#[derive(Debug)]
pub struct EbpfProxy {
    cfg: EbpfConfig,
    index: FrontendIndex,
    services: Vec<LbService>,
    objects: EbpfObjects,
    tcp: BpfCtMap,
    any: BpfCtMap,
    gc: GcSchedule,
}

fn addr_key(a: SocketAddrV4) -> u64 {
    (u64::from(u32::from(*a.ip())) << 16) | u64::from(a.port())
}

/// Maglev table population (Eisenbud et al., NSDI 2016, "Maglev", section 3.4): each backend walks
/// its own permutation `offset + j * skip (mod M)` and claims the first free slot, in turn.
fn maglev_table(backends: &[SocketAddrV4], m: u32) -> Vec<u16> {
    let m = m.max(1) as usize;
    let n = backends.len();
    let mut table = vec![u16::MAX; m];
    if n == 0 {
        return table;
    }
    let perm: Vec<(usize, usize)> = backends
        .iter()
        .map(|b| {
            let k = addr_key(*b);
            #[allow(clippy::cast_possible_truncation)]
            let offset = (splitmix64(k ^ 0x6d61_676c) % m as u64) as usize;
            #[allow(clippy::cast_possible_truncation)]
            let skip = (splitmix64(k ^ 0x7365_6564) % (m.max(2) as u64 - 1)) as usize + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0usize; n];
    let mut filled = 0;
    while filled < m {
        for i in 0..n {
            let (offset, skip) = perm[i];
            let mut c = (offset + next[i] * skip) % m;
            while table[c] != u16::MAX {
                next[i] += 1;
                c = (offset + next[i] * skip) % m;
            }
            table[c] = u16::try_from(i).unwrap_or(u16::MAX);
            next[i] += 1;
            filled += 1;
            if filled == m {
                break;
            }
        }
    }
    table
}

fn tuple_hash(t: &Tuple) -> u64 {
    let a = (u64::from(u32::from(t.src)) << 32) | u64::from(u32::from(t.dst));
    let b = (u64::from(t.sport) << 24) | (u64::from(t.dport) << 8) | u64::from(t.proto.number());
    splitmix64(a ^ splitmix64(b))
}

impl EbpfProxy {
    /// The LB maps for `services` and empty CT maps.
    #[must_use]
    pub fn new(services: &[ServicePort], cfg: &EbpfConfig) -> EbpfProxy {
        let mut objects = EbpfObjects::default();
        let mut all_backends = std::collections::BTreeSet::new();
        let lb: Vec<LbService> = services
            .iter()
            .map(|sp| {
                let cluster: Vec<SocketAddrV4> = ready_backends(sp).collect();
                let external = external_backends(sp, &cfg.node_name);
                all_backends.extend(cluster.iter().copied());
                if super::is_proxied(sp) {
                    let ext_frontends = sp.external_ips.len()
                        + sp.load_balancer_ips.len()
                        + sp.node_port.map_or(0, |_| cfg.node_ips.len());
                    objects.frontends += 1 + ext_frontends;
                    objects.rev_nat += 1 + ext_frontends;
                    objects.service_entries += 1 + cluster.len() + ext_frontends * (1 + external.len());
                    if cfg.selection == BackendSelection::Maglev && ext_frontends > 0 {
                        objects.maglev_tables += 1;
                    }
                }
                LbService {
                    cluster,
                    external,
                    local_policy: sp.external_traffic_policy == TrafficPolicy::Local,
                    maglev: None,
                }
            })
            .collect();
        objects.backends = all_backends.len();
        EbpfProxy {
            index: FrontendIndex::new(services, &cfg.node_ips),
            services: lb,
            objects,
            tcp: BpfCtMap::new(cfg.ct_sizes.tcp, cfg.ct_kind),
            any: BpfCtMap::new(cfg.ct_sizes.any, cfg.ct_kind),
            gc: GcSchedule::default(),
            cfg: cfg.clone(),
        }
    }

    /// LB map object counts.
    #[must_use]
    pub fn objects(&self) -> EbpfObjects {
        self.objects
    }

    /// The TCP CT map.
    #[must_use]
    pub fn ct_tcp(&self) -> &BpfCtMap {
        &self.tcp
    }

    /// The non-TCP CT map.
    #[must_use]
    pub fn ct_any(&self) -> &BpfCtMap {
        &self.any
    }

    fn map_for(&mut self, proto: Proto) -> &mut BpfCtMap {
        match proto {
            Proto::Tcp => &mut self.tcp,
            _ => &mut self.any,
        }
    }

    fn initial_lifetime(&self, proto: Proto) -> SimDuration {
        match proto {
            Proto::Tcp => self.cfg.timeouts.tcp_syn,
            _ => self.cfg.timeouts.non_tcp,
        }
    }

    /// Socket LB alone (`cil_sock4_connect`): the service-map lookup and backend choice for
    /// `tuple` at `connect()`, without touching the CT maps (the datapath creates the flow's
    /// CT entry when its first packet passes `bpf_lxc`, see [`EbpfProxy::packet`]).
    pub fn socket_connect(&mut self, tuple: Tuple, rng: &mut SimRng) -> FirstPacket {
        let mut cost = LookupCost {
            hash_lookups: 1, // lb4_lookup_service
            ..LookupCost::default()
        };
        let mut backend = None;
        let mut masquerade = false;
        if let Some((svc, kind)) = self.index.lookup(&tuple) {
            let m = self.cfg.maglev_table_size;
            let selection = self.cfg.selection;
            let Some(s) = self.services.get_mut(svc) else {
                return FirstPacket::not_service(cost);
            };
            let socket_lb = kind == FrontendKind::ClusterIp;
            let list = if socket_lb { &s.cluster } else { &s.external };
            if list.is_empty() {
                return FirstPacket {
                    verdict: ProxyVerdict::Reject,
                    ..FirstPacket::not_service(cost)
                };
            }
            cost.scheduler_ops += 1;
            let pick = if socket_lb || selection == BackendSelection::Random {
                #[allow(clippy::cast_possible_truncation)]
                let i = rng.below(list.len() as u64) as usize;
                cost.hash_lookups += 1; // the slot entry of the service map
                i
            } else {
                if s.maglev.is_none() {
                    s.maglev = Some(maglev_table(&s.external, m));
                }
                let table = s.maglev.as_deref().unwrap_or_default();
                cost.hash_lookups += 1; // the Maglev outer/inner map lookup
                #[allow(clippy::cast_possible_truncation)]
                let slot = (tuple_hash(&tuple) % table.len().max(1) as u64) as usize;
                table.get(slot).map_or(0, |i| usize::from(*i))
            };
            cost.hash_lookups += 1; // lb4_lookup_backend
            backend = list.get(pick).copied();
            // Per-packet LB of external traffic SNATs (loadBalancer.mode=snat) unless the
            // policy is Local.
            masquerade = !socket_lb && !s.local_policy;
        }
        FirstPacket {
            backend,
            verdict: if backend.is_some() {
                ProxyVerdict::Translate
            } else {
                ProxyVerdict::NotService
            },
            masquerade,
            cost,
            note: ModeNote::None,
        }
    }

    /// The first packet of `tuple` (for socket LB: the `connect()` of the client socket,
    /// before any packet exists). Picks a backend if `tuple` addresses a frontend, then
    /// creates the flow's CT entry for the translated tuple. Call it for every new pod flow:
    /// the BPF CT map tracks all of them, Services or not.
    pub fn first_packet_from(
        &mut self,
        origin: FlowOrigin,
        tuple: Tuple,
        rng: &mut SimRng,
        now: SimTime,
    ) -> FirstPacket {
        let _ = origin; // socket LB runs in the client's cgroup hook wherever it lives
        let fp = self.socket_connect(tuple, rng);
        if fp.verdict == ProxyVerdict::Reject {
            return fp;
        }
        let (backend, masquerade, mut cost) = (fp.backend, fp.masquerade, fp.cost);
        let mut ct_tuple = tuple;
        if let Some(b) = backend {
            ct_tuple.dst = *b.ip();
            ct_tuple.dport = b.port();
        }
        let lifetime = self.initial_lifetime(tuple.proto);
        cost.hash_lookups += 2; // ct_lookup miss + ct_create
        let outcome = self.map_for(tuple.proto).create(ct_tuple, lifetime, now);
        let evicted_live = matches!(outcome, CtInsert::Created { evicted_live: true });
        let note = ModeNote::Ebpf {
            evicted_live_flow: evicted_live,
            netfilter_tracks: !self.cfg.notrack,
        };
        if outcome == CtInsert::Failed {
            return FirstPacket {
                backend: None,
                verdict: ProxyVerdict::Drop(ProxyDrop::CtMapInsertFailed),
                masquerade: false,
                cost,
                note,
            };
        }
        FirstPacket {
            backend,
            verdict: if backend.is_some() {
                ProxyVerdict::Translate
            } else {
                ProxyVerdict::NotService
            },
            masquerade,
            cost,
            note,
        }
    }

    /// Whether `tuple` addresses a frontend (ClusterIP, external or LoadBalancer IP, or a
    /// NodePort on a node address).
    #[must_use]
    pub fn is_frontend(&self, tuple: &Tuple) -> bool {
        self.index.lookup(tuple).is_some()
    }

    /// The CT key and direction of a packet carrying `tuple` (`ct_lookup4` tries both
    /// directions): the live entry keyed by the tuple itself (original direction) or by its
    /// reverse (reply). A packet of no live entry opens one in the original direction.
    #[must_use]
    pub fn ct_key(&self, tuple: Tuple, now: SimTime) -> (Tuple, Direction) {
        let map = match tuple.proto {
            Proto::Tcp => &self.tcp,
            _ => &self.any,
        };
        let rev = tuple.reversed();
        if !map.is_live(&tuple, now) && map.is_live(&rev, now) {
            (rev, Direction::Reply)
        } else {
            (tuple, Direction::Original)
        }
    }

    /// A later packet of a flow whose CT key is `ct_tuple` (the translated tuple: client ->
    /// backend), travelling `dir`. Updates the lifetime as `ct_update_timeout` does: SYN-only
    /// flows keep the SYN lifetime, any non-SYN packet moves TCP to the established lifetime,
    /// FIN in both directions or RST to the close lifetime; non-TCP flows get the non-TCP
    /// lifetime on every packet. A missing or expired entry is created again.
    pub fn packet(&mut self, ct_tuple: Tuple, dir: Direction, flags: TcpFlags, now: SimTime) -> CtPacket {
        let t = self.cfg.timeouts;
        let mut cost = LookupCost {
            hash_lookups: 1,
            ..LookupCost::default()
        };
        let proto = ct_tuple.proto;
        let lifetime0 = self.initial_lifetime(proto);
        let map = self.map_for(proto);
        let found = map.is_live(&ct_tuple, now);
        let mut recreated = false;
        if !found {
            cost.hash_lookups += 1;
            recreated = true;
            if map.create(ct_tuple, lifetime0, now) == CtInsert::Failed {
                return CtPacket {
                    found,
                    recreated: false,
                    insert_failed: true,
                    cost,
                };
            }
        }
        map.touch(ct_tuple);
        if let Some(e) = map.entries.get_mut(&ct_tuple) {
            let lifetime = if proto == Proto::Tcp {
                let syn_only = flags.contains(TcpFlags::SYN) && !flags.contains(TcpFlags::ACK);
                e.seen_non_syn |= !syn_only;
                let d = usize::from(dir == Direction::Reply);
                if flags.contains(TcpFlags::RST) {
                    e.closing = [true; 2];
                } else if flags.contains(TcpFlags::FIN) {
                    e.closing[d] = true;
                }
                if e.closing == [true; 2] {
                    t.tcp_close
                } else if e.seen_non_syn {
                    t.tcp_established
                } else {
                    t.tcp_syn
                }
            } else {
                t.non_tcp
            };
            e.expires = now + lifetime;
        }
        CtPacket {
            found,
            recreated,
            insert_failed: false,
            cost,
        }
    }

    /// One GC pass over both CT maps at `now`; the interval adapts to the larger delete ratio
    /// of the two maps.
    pub fn gc(&mut self, now: SimTime) -> GcPass {
        let dt = self.tcp.gc(now);
        let da = self.any.gc(now);
        #[allow(clippy::cast_precision_loss)]
        let ratio = (dt as f64 / self.tcp.capacity().max(1) as f64)
            .max(da as f64 / self.any.capacity().max(1) as f64);
        self.gc = self.gc.next(ratio);
        GcPass {
            deleted: dt + da,
            next_at: now + self.gc.interval,
        }
    }
}

impl ServiceProxy for EbpfProxy {
    fn data_plane(&self) -> DataPlane {
        DataPlane::Ebpf
    }

    fn first_packet(&mut self, tuple: Tuple, rng: &mut SimRng, now: SimTime) -> FirstPacket {
        self.first_packet_from(FlowOrigin::Pod, tuple, rng, now)
    }
}

#[cfg(test)]
mod tests;
