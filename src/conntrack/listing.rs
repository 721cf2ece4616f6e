//! What the table shows outside: a snapshot of one entry ([`Conn`]) and the
//! `conntrack -L` listing, which reaps expired entries as the kernel's dump does.

use super::ConnId;
use super::table::{ConntrackTable, NIL, node_dir, node_idx, status};
use super::tcp::CtState;
use crate::packet::{Direction, Proto, Tuple};
use crate::time::{NANOS_PER_SEC, SimTime};
use std::fmt;

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

impl ConntrackTable {
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
