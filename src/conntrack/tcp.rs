//! The TCP conntrack state machine (`net/netfilter/nf_conntrack_proto_tcp.c`).

use crate::kernel::CtTimeouts;
use crate::packet::{Direction, TcpFlags};
use crate::time::SimDuration;
use std::fmt;

/// `enum tcp_conntrack`, in the kernel's numeric order (the order matters:
/// `nf_nat_may_kill` tests `state >= TIME_WAIT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum CtState {
    /// `NONE`: before the first packet.
    None = 0,
    /// `SYN_SENT`: SYN seen.
    SynSent = 1,
    /// `SYN_RECV`: SYN-ACK seen.
    SynRecv = 2,
    /// `ESTABLISHED`: handshake ACK seen.
    Established = 3,
    /// `FIN_WAIT`: first FIN seen.
    FinWait = 4,
    /// `CLOSE_WAIT`: first FIN acknowledged.
    CloseWait = 5,
    /// `LAST_ACK`: FIN seen in both directions.
    LastAck = 6,
    /// `TIME_WAIT`: last ACK seen.
    TimeWait = 7,
    /// `CLOSE`: RST seen.
    Close = 8,
    /// `SYN_SENT2`: simultaneous open.
    SynSent2 = 9,
}

impl CtState {
    const ALL: [CtState; 10] = [
        CtState::None,
        CtState::SynSent,
        CtState::SynRecv,
        CtState::Established,
        CtState::FinWait,
        CtState::CloseWait,
        CtState::LastAck,
        CtState::TimeWait,
        CtState::Close,
        CtState::SynSent2,
    ];

    /// The state's name as `conntrack -L` prints it (`TIME_WAIT`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            CtState::None => "NONE",
            CtState::SynSent => "SYN_SENT",
            CtState::SynRecv => "SYN_RECV",
            CtState::Established => "ESTABLISHED",
            CtState::FinWait => "FIN_WAIT",
            CtState::CloseWait => "CLOSE_WAIT",
            CtState::LastAck => "LAST_ACK",
            CtState::TimeWait => "TIME_WAIT",
            CtState::Close => "CLOSE",
            CtState::SynSent2 => "SYN_SENT2",
        }
    }

    pub(crate) const fn from_u8(v: u8) -> CtState {
        if (v as usize) < Self::ALL.len() {
            Self::ALL[v as usize]
        } else {
            CtState::None
        }
    }

    /// The state's timeout (`tcp_timeouts[state]`).
    pub(crate) const fn timeout(self, t: &CtTimeouts) -> SimDuration {
        match self {
            CtState::None | CtState::SynSent | CtState::SynSent2 => t.tcp_syn_sent,
            CtState::SynRecv => t.tcp_syn_recv,
            CtState::Established => t.tcp_established,
            CtState::FinWait => t.tcp_fin_wait,
            CtState::CloseWait => t.tcp_close_wait,
            CtState::LastAck => t.tcp_last_ack,
            CtState::TimeWait => t.tcp_time_wait,
            CtState::Close => t.tcp_close,
        }
    }

    /// `tcp_can_early_drop`: the closing states the gc 95 % trim may kill even when
    /// ASSURED.
    pub(crate) const fn is_closing(self) -> bool {
        matches!(
            self,
            CtState::FinWait | CtState::CloseWait | CtState::LastAck | CtState::TimeWait | CtState::Close
        )
    }
}

impl fmt::Display for CtState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `enum tcp_bit_set` (`get_conntrack_index`).
pub(crate) const SYN_SET: u8 = 0;
pub(crate) const SYNACK_SET: u8 = 1;
pub(crate) const FIN_SET: u8 = 2;
pub(crate) const ACK_SET: u8 = 3;
pub(crate) const RST_SET: u8 = 4;
pub(crate) const NONE_SET: u8 = 5;

/// `get_conntrack_index`.
pub(crate) const fn flag_index(f: TcpFlags) -> u8 {
    if f.contains(TcpFlags::RST) {
        RST_SET
    } else if f.contains(TcpFlags::SYN) {
        if f.contains(TcpFlags::ACK) {
            SYNACK_SET
        } else {
            SYN_SET
        }
    } else if f.contains(TcpFlags::FIN) {
        FIN_SET
    } else if f.contains(TcpFlags::ACK) {
        ACK_SET
    } else {
        NONE_SET
    }
}

/// `tcp_valid_flags` (`tcp_error`): the flag combinations conntrack accepts, PSH
/// ignored. URG, ECE and CWR are not modelled.
pub(crate) const fn valid_flags(f: TcpFlags) -> bool {
    let b = f.bits() & (0x01 | 0x02 | 0x04 | 0x10); // FIN SYN RST ACK
    matches!(b, 0x02 | 0x12 | 0x04 | 0x14 | 0x11 | 0x10)
}

/// Transition target: a state, or invalid / ignore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    State(CtState),
    /// `sIV` (`TCP_CONNTRACK_MAX`).
    Invalid,
    /// `sIG` (`TCP_CONNTRACK_IGNORE`).
    Ignore,
}

const NO: u8 = 0;
const SS: u8 = 1;
const SR: u8 = 2;
const ES: u8 = 3;
const FW: u8 = 4;
const CW: u8 = 5;
const LA: u8 = 6;
const TW: u8 = 7;
const CL: u8 = 8;
const S2: u8 = 9;
const IV: u8 = 10;
const IG: u8 = 11;

/// `tcp_conntracks[dir][index][state]` as in current mainline (6.x).
const TCP_CONNTRACKS: [[[u8; 10]; 6]; 2] = [
    [
        // ORIGINAL   sNO sSS sSR sES sFW sCW sLA sTW sCL sS2
        /* syn    */
        [SS, SS, IG, IG, IG, IG, IG, SS, SS, S2],
        /* synack */ [IV, IV, SR, IV, IV, IV, IV, IV, IV, SR],
        /* fin    */ [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        /* ack    */ [ES, IV, ES, ES, CW, CW, TW, TW, CL, IV],
        /* rst    */ [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        /* none   */ [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
    ],
    [
        // REPLY      sNO sSS sSR sES sFW sCW sLA sTW sCL sS2
        /* syn    */
        [IV, S2, IV, IV, IV, IV, IV, SS, IV, S2],
        /* synack */ [IV, SR, IG, IG, IG, IG, IG, IG, IG, SR],
        /* fin    */ [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        /* ack    */ [IV, IG, SR, ES, CW, CW, TW, TW, CL, IG],
        /* rst    */ [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        /* none   */ [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
    ],
];

const _: () = assert!(NO == CtState::None as u8);

/// Looks up the transition table.
pub(crate) const fn transition(dir: Direction, index: u8, old: CtState) -> Next {
    let d = match dir {
        Direction::Original => 0,
        Direction::Reply => 1,
    };
    let v = TCP_CONNTRACKS[d][index as usize][old as usize];
    match v {
        IV => Next::Invalid,
        IG => Next::Ignore,
        s => Next::State(CtState::from_u8(s)),
    }
}

/// Per-entry TCP bookkeeping packed into one byte: `last_index` (3 bits), `last_dir`
/// (1 bit), `IP_CT_TCP_FLAG_CLOSE_INIT` per direction (2 bits), simultaneous open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TcpBits(pub(crate) u8);

impl TcpBits {
    const LAST_INDEX: u8 = 0b0000_0111;
    const LAST_DIR_REPLY: u8 = 0b0000_1000;
    const CLOSE_INIT_ORIG: u8 = 0b0001_0000;
    const CLOSE_INIT_REPLY: u8 = 0b0010_0000;
    const SIMULTANEOUS_OPEN: u8 = 0b0100_0000;

    /// `tcp_new`: `last_index = TCP_NONE_SET`, everything else cleared.
    pub(crate) const fn fresh() -> TcpBits {
        TcpBits(NONE_SET)
    }
    pub(crate) const fn last_index(self) -> u8 {
        self.0 & Self::LAST_INDEX
    }
    pub(crate) const fn last_dir(self) -> Direction {
        if self.0 & Self::LAST_DIR_REPLY != 0 {
            Direction::Reply
        } else {
            Direction::Original
        }
    }
    pub(crate) fn set_last(&mut self, index: u8, dir: Direction) {
        self.0 &= !(Self::LAST_INDEX | Self::LAST_DIR_REPLY);
        self.0 |= index & Self::LAST_INDEX;
        if dir == Direction::Reply {
            self.0 |= Self::LAST_DIR_REPLY;
        }
    }
    pub(crate) const fn any_close_init(self) -> bool {
        self.0 & (Self::CLOSE_INIT_ORIG | Self::CLOSE_INIT_REPLY) != 0
    }
    pub(crate) fn set_close_init(&mut self, dir: Direction) {
        self.0 |= match dir {
            Direction::Original => Self::CLOSE_INIT_ORIG,
            Direction::Reply => Self::CLOSE_INIT_REPLY,
        };
    }
    pub(crate) const fn simultaneous_open(self) -> bool {
        self.0 & Self::SIMULTANEOUS_OPEN != 0
    }
    pub(crate) fn set_simultaneous_open(&mut self) {
        self.0 |= Self::SIMULTANEOUS_OPEN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_index_follows_get_conntrack_index_priority() {
        assert_eq!(flag_index(TcpFlags::SYN), SYN_SET);
        assert_eq!(flag_index(TcpFlags::SYN_ACK), SYNACK_SET);
        assert_eq!(flag_index(TcpFlags::FIN_ACK), FIN_SET);
        assert_eq!(flag_index(TcpFlags::ACK), ACK_SET);
        assert_eq!(flag_index(TcpFlags::RST.union(TcpFlags::ACK)), RST_SET);
        assert_eq!(flag_index(TcpFlags::NONE), NONE_SET);
    }

    #[test]
    fn bare_fin_and_syn_fin_are_invalid_flag_combinations() {
        assert!(!valid_flags(TcpFlags::FIN));
        assert!(!valid_flags(TcpFlags::SYN.union(TcpFlags::FIN)));
        assert!(!valid_flags(TcpFlags::NONE));
        assert!(valid_flags(TcpFlags::FIN_ACK.union(TcpFlags::PSH)));
        assert!(valid_flags(TcpFlags::SYN));
        assert!(valid_flags(TcpFlags::RST));
    }

    #[test]
    fn client_close_walks_fin_wait_close_wait_last_ack_time_wait() {
        use Direction::{Original as O, Reply as R};
        let steps = [
            (O, SYN_SET, CtState::SynSent),
            (R, SYNACK_SET, CtState::SynRecv),
            (O, ACK_SET, CtState::Established),
            (O, FIN_SET, CtState::FinWait),
            (R, ACK_SET, CtState::CloseWait),
            (R, FIN_SET, CtState::LastAck),
            (O, ACK_SET, CtState::TimeWait),
        ];
        let mut s = CtState::None;
        for (dir, idx, want) in steps {
            assert_eq!(transition(dir, idx, s), Next::State(want), "from {s}");
            s = want;
        }
        assert_eq!(transition(O, SYN_SET, s), Next::State(CtState::SynSent));
        assert_eq!(transition(O, SYN_SET, CtState::Established), Next::Ignore);
        assert_eq!(transition(O, ACK_SET, CtState::SynSent), Next::Invalid);
    }

    #[test]
    fn tcp_bits_pack_independently() {
        let mut b = TcpBits::fresh();
        assert_eq!(b.last_index(), NONE_SET);
        b.set_last(RST_SET, Direction::Reply);
        b.set_close_init(Direction::Original);
        b.set_simultaneous_open();
        assert_eq!(b.last_index(), RST_SET);
        assert_eq!(b.last_dir(), Direction::Reply);
        assert!(b.any_close_init() && b.simultaneous_open());
        b.set_last(ACK_SET, Direction::Original);
        assert_eq!(b.last_dir(), Direction::Original);
        assert!(b.any_close_init());
    }
}
