//! One conntrack entry (`struct nf_conn`) as the table's slab stores it, its status
//! bits, and the chain-node handles that name one of its two tuples.

use super::tcp::{CtState, TcpBits};
use crate::packet::{Direction, Proto, Tuple};
use crate::time::SimTime;

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
    pub(super) const EMPTY: Entry = Entry {
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
