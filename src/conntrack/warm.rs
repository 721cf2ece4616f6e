//! Warm start: entries already in the table when a simulation starts, as `conntrack
//! -L` listed them on a real node (protocol, TCP state, `[ASSURED]`, remaining timeout).
//!
//! A warm entry is inserted confirmed, with its reply seen when it is ASSURED or past
//! the handshake, and its timeout running from `now`. No counter moves: on the real node
//! the entries were counted when they were created, before the recording began.

use super::CtError;
use super::table::{ConntrackTable, status};
use super::tcp::{CtState, TcpBits};
use crate::packet::{Direction, Proto, Tuple};
use crate::time::{SimDuration, SimTime};

/// One entry to put in the table before the simulation starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WarmEntry {
    /// Its ORIGINAL tuple (the REPLY tuple is the reverse: no NAT).
    pub tuple: Tuple,
    /// TCP state (`None` for UDP and ICMP).
    pub tcp_state: Option<CtState>,
    /// `[ASSURED]`.
    pub assured: bool,
    /// Remaining timeout, from `now`.
    pub expires_in: SimDuration,
}

/// What became of a warm entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WarmOutcome {
    /// In the table (also above `nf_conntrack_max`: the kernel keeps the entries of a
    /// table whose max was lowered under its count).
    Inserted,
    /// An entry with this tuple (either direction) exists: not inserted.
    Duplicate,
}

impl CtState {
    /// The state named as `conntrack -L` prints it (`TIME_WAIT`), case-insensitive.
    #[must_use]
    pub fn from_name(name: &str) -> Option<CtState> {
        Some(match name.to_ascii_uppercase().as_str() {
            "NONE" => CtState::None,
            "SYN_SENT" => CtState::SynSent,
            "SYN_RECV" => CtState::SynRecv,
            "ESTABLISHED" => CtState::Established,
            "FIN_WAIT" => CtState::FinWait,
            "CLOSE_WAIT" => CtState::CloseWait,
            "LAST_ACK" => CtState::LastAck,
            "TIME_WAIT" => CtState::TimeWait,
            "CLOSE" => CtState::Close,
            "SYN_SENT2" => CtState::SynSent2,
            _ => return None,
        })
    }
}

impl ConntrackTable {
    /// Puts `entry` into namespace `ns` as a confirmed entry expiring `expires_in` after
    /// `now`, without touching any counter (see the module docs), even above
    /// `nf_conntrack_max`. A tuple already present is an outcome, not an error.
    ///
    /// # Errors
    /// [`CtError::InvalidConfig`] when the namespace does not exist.
    pub fn insert_warm(&mut self, ns: u16, entry: &WarmEntry, now: SimTime) -> Result<WarmOutcome, CtError> {
        if usize::from(ns) >= self.netns.len() {
            return Err(CtError::InvalidConfig(
                "warm start into a namespace that does not exist",
            ));
        }
        let reply = entry.tuple.reversed();
        if self.find(ns, &entry.tuple, now).is_some() || self.find(ns, &reply, now).is_some() {
            return Ok(WarmOutcome::Duplicate);
        }
        let idx = self.alloc_entry(ns, entry.tuple);
        let e = &mut self.entries[idx as usize];
        let past_handshake = entry
            .tcp_state
            .is_some_and(|s| s >= CtState::Established && s != CtState::SynSent2);
        e.status |= status::CONFIRMED;
        if entry.assured || past_handshake {
            e.status |= status::SEEN_REPLY;
        }
        if entry.assured {
            e.status |= status::ASSURED;
        }
        if entry.tuple.proto == Proto::Tcp {
            let state = entry.tcp_state.unwrap_or(CtState::Established);
            e.state = state as u8;
            e.tcp = TcpBits::fresh();
            if state.is_closing() {
                // A closed connection's entry: reopening its tuple with a SYN is allowed
                // (`tcp_reopens`), as for an entry that saw the FIN exchange.
                e.tcp.set_close_init(Direction::Original);
            }
        }
        e.timeout = now.saturating_add(entry.expires_in).as_nanos();
        self.link(idx, Direction::Original);
        self.link(idx, Direction::Reply);
        Ok(WarmOutcome::Inserted)
    }
}
