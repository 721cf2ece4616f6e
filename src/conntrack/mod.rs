//! The `conntrack` module models the Linux connection tracking table and NAT binding
//! selection (`net/netfilter/nf_conntrack_core.c`, `nf_conntrack_proto_{tcp,udp,icmp}.c`,
//! `nf_nat_core.c`) closely enough that a replayed storm shows the kernel's
//! `conntrack -S` counters, `nf_conntrack_count` and `conntrack -L` output.
//!
//! What is modelled (the kernel's rules are stated in docs/kernel-semantics.md; its
//! §Checklist maps each to the code and its test):
//!
//! - one global hash table (`nf_conntrack_hash`) shared by every network namespace, a
//!   bucket array whose chains link each entry twice (ORIGINAL and REPLY tuple); lookups
//!   walk those chains like `____nf_conntrack_find`, so lazy expiry (§Lazy expiry) and
//!   the early-drop window (§early_drop) fall out of the structure;
//! - per-namespace counts against one global `nf_conntrack_max`, counted from allocation
//!   (unconfirmed entries included) until the entry is freed;
//! - two-phase insertion: [`ConntrackTable::lookup_or_alloc`] at the first hook, NAT
//!   while unconfirmed ([`ConntrackTable::apply_dst_nat`],
//!   [`ConntrackTable::apply_src_nat`]), [`ConntrackTable::confirm`] at the last hook,
//!   with the kernel's clash handling, chain-length limit and counters;
//! - `early_drop` over 8 buckets, the gc worker ([`ConntrackTable::gc_step`]) with its
//!   adaptive interval, reap limit and 95 % trim;
//! - the TCP state machine (`tcp_conntracks`), UDP stream detection and ICMP echo
//!   timeouts; ASSURED rules; kill-and-recreate of TIME_WAIT/CLOSE entries by a new SYN;
//! - observables: per-CPU counters per namespace, counts, `conntrack -S`/`-L` text, the
//!   rate-limited "table full" log line.
//!
//! What is not modelled (see `docs/model.md` for the full list): TCP window
//! and sequence tracking (`tcp_in_window`), hence the RETRANS/UNACK timeout caps and
//! out-of-window `invalid`; zones, expectations, helpers, ctnetlink inserts (`insert`
//! stays 0), ICMP error tracking (`error` stays 0), RCU restarts (`search_restart` stays
//! 0), table resizing, IPv6.
//!
//! Simulated failures are data: a full table is [`CtLookup::Dropped`], a lost clash is
//! [`ConfirmOutcome::Dropped`]. [`CtError`] is returned only for API misuse (a stale
//! [`ConnId`], an unknown CPU, NAT on a confirmed entry).

mod confirm;
mod entry;
mod gc;
mod hash;
mod listing;
mod nat;
mod race;
mod sizing;
mod stats;
mod summary;
mod table;
mod tcp;
#[cfg(test)]
mod tests;
mod track;
mod warm;

pub use listing::{Conn, CtListEntry};
pub use race::{ClashKind, RaceCurve, RaceKind, RaceModel, ThreadPlacement, WindowFactor};
pub use sizing::{
    KERNEL_BYTES_PER_BUCKET, KERNEL_BYTES_PER_ENTRY, default_sizing, kernel_memory_bytes, kube_proxy_buckets,
    kube_proxy_max, round_buckets,
};
pub use stats::{CtCpuStats, CtStats, TableFullLog};
pub use table::{ConntrackTable, ENTRY_BYTES};
pub use tcp::CtState;
pub use warm::{WarmEntry, WarmOutcome};

use crate::kernel::{CtTimeouts, KernelProfile, Sysctls};
use std::fmt;
use std::net::Ipv4Addr;

/// A handle to one conntrack entry: slab index plus a generation, so a handle kept
/// after the entry was freed is detected instead of aliasing a new flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

impl ConnId {
    /// The slab index (stable while the entry lives).
    #[must_use]
    pub const fn index(self) -> u32 {
        self.index
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ct#{}.{}", self.index, self.generation)
    }
}

/// `enum ip_conntrack_info` as `resolve_normal_ct` assigns it to a packet of an existing
/// entry (RELATED is not modelled: no expectations).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CtInfo {
    /// `IP_CT_NEW`: ORIGINAL direction, no reply seen yet (a retransmitted SYN is NEW).
    New,
    /// `IP_CT_ESTABLISHED`: ORIGINAL direction after a reply was seen.
    Established,
    /// `IP_CT_ESTABLISHED_REPLY`: any REPLY-direction packet.
    EstablishedReply,
}

/// Why conntrack dropped a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CtDrop {
    /// Allocation failed: count at `nf_conntrack_max` and `early_drop` found nothing
    /// (`drop` += 1, not `insert_failed`).
    TableFull,
    /// Unresolvable clash at confirm (`insert_failed` += 1 and `drop` += 1).
    InsertFailed,
    /// A chain walked at confirm exceeded the random 50..79 node limit (`chaintoolong`
    /// += 1 and `insert_failed` += 1, `drop` unchanged).
    ChainTooLong,
}

/// The result of the first conntrack hook for a packet (`nf_conntrack_in`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtLookup {
    /// The packet belongs to a confirmed entry; call [`ConntrackTable::packet`] next.
    Existing {
        /// The entry.
        id: ConnId,
        /// Which of the entry's tuples the packet matched.
        dir: Direction,
        /// The `ctinfo` the packet carries through the ruleset.
        ctinfo: CtInfo,
    },
    /// A new entry was allocated (unconfirmed, invisible to lookups, counted) and the
    /// tracker accepted the packet; NAT may be applied, then
    /// [`ConntrackTable::confirm`] or [`ConntrackTable::abort`] must be called.
    New {
        /// The unconfirmed entry.
        id: ConnId,
    },
    /// The packet was dropped by conntrack.
    Dropped(CtDrop),
    /// The tracker rejected the packet (`invalid` += 1); it continues untracked.
    Invalid,
    /// The namespace does not run conntrack; nothing was allocated or counted.
    Untracked,
}

/// The tracker's verdict for a packet of an existing entry
/// (`nf_conntrack_handle_packet`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackVerdict {
    /// Accepted; the entry was updated (or deliberately left alone, e.g. an ignored
    /// SYN or a retransmitted SYN, which do not refresh the timeout).
    Accept,
    /// Accepted, and the entry was deleted (RST while no reply had been seen).
    AcceptDeleted,
    /// `invalid` += 1; the packet passes untracked (no NAT applies to it).
    Invalid,
    /// A SYN reopened a TIME_WAIT/CLOSE entry: the entry was killed, look up again
    /// (`-NF_REPEAT`). [`ConntrackTable::lookup_or_alloc`] already does this, so this
    /// is only returned when `packet` is called without a fresh lookup.
    Repeat,
}

/// The outcome of inserting an unconfirmed entry (`__nf_conntrack_confirm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// Inserted under both tuples.
    Inserted(ConnId),
    /// UDP clash with an equal entry: the loser was freed and the packet continues on
    /// the winner (`clash_resolve` += 1; on legacy kernels `insert_failed` += 1).
    ClashMerged {
        /// The confirmed entry the packet now belongs to.
        winner: ConnId,
    },
    /// UDP clash in the ORIGINAL direction only: the entry was inserted under its
    /// REPLY tuple with a fixed 1 s timeout and `IPS_NAT_CLASH`, hidden from listings
    /// but counted (`nf_ct_resolve_clash_harder`, `clash_resolve` += 1).
    ClashReplyOnly(ConnId),
    /// The packet was dropped and the entry freed.
    Dropped(CtDrop),
}

/// A destination NAT decision for a new entry (PREROUTING / OUTPUT nat chains).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DstNat {
    /// No DNAT rule matched: the null DST binding (`nf_nat_alloc_null_binding`), which
    /// probes the reply tuple but never changes it.
    Null,
    /// `DNAT --to-destination addr[:port]`.
    To {
        /// New destination address.
        addr: Ipv4Addr,
        /// New destination port; `None` keeps the port.
        port: Option<u16>,
    },
}

/// An SNAT address/port range with the iptables flags that change the search
/// (`struct nf_nat_range2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatRange {
    /// First address of the range.
    pub min_addr: Ipv4Addr,
    /// Last address of the range (equal to `min_addr` for one address).
    pub max_addr: Ipv4Addr,
    /// Inclusive port range (`NF_NAT_RANGE_PROTO_SPECIFIED`), or `None`.
    pub ports: Option<(u16, u16)>,
    /// `--random` (`NF_NAT_RANGE_PROTO_RANDOM`).
    pub random: bool,
    /// `--random-fully` (`NF_NAT_RANGE_PROTO_RANDOM_FULLY`).
    pub random_fully: bool,
    /// `--persistent`: choose the address from the source only.
    pub persistent: bool,
}

impl NatRange {
    /// One address, any port, no flags.
    #[must_use]
    pub const fn single(addr: Ipv4Addr) -> NatRange {
        NatRange {
            min_addr: addr,
            max_addr: addr,
            ports: None,
            random: false,
            random_fully: false,
            persistent: false,
        }
    }

    /// This range restricted to the inclusive port range `min..=max`.
    #[must_use]
    pub const fn with_ports(self, min: u16, max: u16) -> NatRange {
        NatRange {
            ports: Some((min, max)),
            ..self
        }
    }

    /// `NF_NAT_RANGE_PROTO_RANDOM_ALL`: either random flag.
    #[must_use]
    pub const fn is_random_all(&self) -> bool {
        self.random || self.random_fully
    }
}

/// A source NAT decision for a new entry (POSTROUTING / INPUT nat chains).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SrcNat {
    /// No SNAT rule matched: the null SRC binding every flow gets, which keeps the
    /// source unless the reply tuple is taken (then the port is remapped in its class).
    Null,
    /// `SNAT --to-source range`.
    Snat(NatRange),
    /// `MASQUERADE` to the outgoing interface address.
    Masquerade {
        /// The address of the outgoing interface.
        addr: Ipv4Addr,
        /// `--to-ports`.
        ports: Option<(u16, u16)>,
        /// `--random`.
        random: bool,
        /// `--random-fully`.
        random_fully: bool,
    },
}

/// Per-namespace conntrack settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetnsConfig {
    /// Whether conntrack runs in this namespace (a ruleset that needs it is loaded).
    /// A disabled namespace tracks nothing ([`CtLookup::Untracked`]).
    pub enabled: bool,
    /// The namespace's `nf_conntrack_*_timeout*` sysctls.
    pub timeouts: CtTimeouts,
    /// `nf_conntrack_tcp_loose`: pick up mid-stream TCP flows.
    pub tcp_loose: bool,
    /// Whether this is the initial namespace (changes the "table full" log text).
    pub is_init: bool,
    /// The namespace inode printed by the log line of non-initial namespaces.
    pub inode: u32,
}

impl NetnsConfig {
    /// A namespace with conntrack enabled and the timeouts of `sysctls`.
    #[must_use]
    pub fn enabled(sysctls: &Sysctls) -> NetnsConfig {
        NetnsConfig {
            enabled: true,
            timeouts: sysctls.ct_timeouts,
            tcp_loose: sysctls.nf_conntrack_tcp_loose,
            is_init: false,
            inode: 4_026_531_840,
        }
    }

    /// A namespace that tracks nothing.
    #[must_use]
    pub fn disabled() -> NetnsConfig {
        NetnsConfig {
            enabled: false,
            timeouts: CtTimeouts::default(),
            tcp_loose: true,
            is_init: false,
            inode: 0,
        }
    }

    /// This config marked as the initial namespace.
    #[must_use]
    pub const fn as_init(self) -> NetnsConfig {
        NetnsConfig {
            is_init: true,
            ..self
        }
    }

    /// This config with the given namespace inode.
    #[must_use]
    pub const fn with_inode(self, inode: u32) -> NetnsConfig {
        NetnsConfig { inode, ..self }
    }
}

/// Global conntrack configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtConfig {
    /// `net.netfilter.nf_conntrack_max` (global; compared with each namespace's count).
    pub max: u32,
    /// `net.netfilter.nf_conntrack_buckets`; rounded up to a multiple of 512 like
    /// `nf_ct_alloc_hashtable`.
    pub buckets: u32,
    /// Number of CPUs (per-CPU counters).
    pub cpus: u16,
    /// `CONFIG_HZ` (jiffy length; `GC_SCAN_EXPIRED_MAX` = 64000 / HZ). Default 250.
    pub hz: u32,
    /// The kernel behaviour followed.
    pub profile: KernelProfile,
    /// Counter generation: `true` = before `clash_resolve`/`chaintoolong` existed
    /// (every clash counts `insert_failed`, even when resolved; no chain limit; `conntrack
    /// -S` prints eight counters). Derived from the profile by [`CtConfig::new`]: the
    /// modelled pre-5.6 profiles (5.4, 4.19) all predate both counters.
    pub legacy_counters: bool,
    /// Buckets the gc worker scans per call before yielding, modelling the 10 ms
    /// `GC_SCAN_MAX_DURATION` slice. `u32::MAX` (default) = a pass never time-slices.
    pub gc_slice_buckets: u32,
}

impl CtConfig {
    /// The configuration of a node with these sysctls, profile and CPU count.
    #[must_use]
    pub fn new(sysctls: &Sysctls, profile: KernelProfile, cpus: u16) -> CtConfig {
        CtConfig {
            max: sysctls.nf_conntrack_max,
            buckets: sysctls.nf_conntrack_buckets,
            cpus,
            hz: 250,
            profile,
            legacy_counters: !profile.udp_clash_reply_only,
            gc_slice_buckets: u32::MAX,
        }
    }

    /// This configuration with another `nf_conntrack_max` and bucket count.
    #[must_use]
    pub const fn with_size(self, max: u32, buckets: u32) -> CtConfig {
        CtConfig { max, buckets, ..self }
    }
}

/// API misuse of the conntrack table.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CtError {
    /// The handle refers to an entry that was freed (or never existed).
    #[error("conntrack entry {0} does not exist (freed or never allocated)")]
    UnknownConn(ConnId),
    /// NAT, confirm or abort was asked for an entry that is already confirmed.
    #[error("conntrack entry {0} is already confirmed")]
    AlreadyConfirmed(ConnId),
    /// The NAT manip of this type was already set up for the entry.
    #[error("conntrack entry {0} already has a {1} NAT binding")]
    AlreadyBound(ConnId, &'static str),
    /// A CPU number outside the configured CPU count.
    #[error("cpu {cpu} is out of range (the table has {cpus} cpus)")]
    UnknownCpu {
        /// The CPU given.
        cpu: u16,
        /// The configured count.
        cpus: u16,
    },
    /// A configuration value that cannot work.
    #[error("invalid conntrack configuration: {0}")]
    InvalidConfig(&'static str),
}

pub use crate::packet::Direction;
