//! 5-tuples, protocols, flags, marks and the simulated packet.

use std::fmt;
use std::net::Ipv4Addr;

/// The transport protocols the data path distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP (IPPROTO_TCP = 6).
    Tcp,
    /// UDP (IPPROTO_UDP = 17).
    Udp,
    /// ICMP (IPPROTO_ICMP = 1); ports carry the echo id.
    Icmp,
}

impl Proto {
    /// The name iptables prints (`tcp`, `udp`, `icmp`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }

    /// The IP protocol number.
    #[must_use]
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Icmp => 1,
        }
    }

    /// Parses `tcp`, `udp`, `icmp` (any case) or the protocol number.
    #[must_use]
    pub fn parse(s: &str) -> Option<Proto> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" | "6" => Some(Proto::Tcp),
            "udp" | "17" => Some(Proto::Udp),
            "icmp" | "1" => Some(Proto::Icmp),
            _ => None,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connection's 5-tuple as conntrack keys it (`struct nf_conntrack_tuple`).
///
/// Field order puts the protocol first so that `Ord` groups flows by protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tuple {
    /// Transport protocol.
    pub proto: Proto,
    /// Source address.
    pub src: Ipv4Addr,
    /// Source port (ICMP: echo id).
    pub sport: u16,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Destination port (ICMP: 0).
    pub dport: u16,
}

impl Tuple {
    /// A tuple from its parts.
    #[must_use]
    pub const fn new(proto: Proto, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Tuple {
        Tuple {
            proto,
            src,
            sport,
            dst,
            dport,
        }
    }

    /// The same flow seen from the reply direction (`nf_ct_invert_tuple`).
    #[must_use]
    pub const fn reversed(self) -> Tuple {
        Tuple {
            proto: self.proto,
            src: self.dst,
            sport: self.dport,
            dst: self.src,
            dport: self.sport,
        }
    }
}

impl fmt::Display for Tuple {
    /// `tcp 10.244.1.5:40000 -> 10.96.0.10:80`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}:{} -> {}:{}",
            self.proto, self.src, self.sport, self.dst, self.dport
        )
    }
}

/// Which way a packet travels relative to the connection that tracks it
/// (`IP_CT_DIR_ORIGINAL` / `IP_CT_DIR_REPLY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Direction {
    /// From the initiator.
    Original,
    /// Back to the initiator.
    Reply,
}

/// TCP header flags, as a bit set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// SYN.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// RST.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// PSH.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// ACK.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// No flags (UDP and ICMP packets carry this).
    pub const NONE: TcpFlags = TcpFlags(0);
    /// SYN+ACK.
    pub const SYN_ACK: TcpFlags = TcpFlags(0x12);
    /// FIN+ACK.
    pub const FIN_ACK: TcpFlags = TcpFlags(0x11);

    /// Whether every flag of `other` is set.
    #[must_use]
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two sets.
    #[must_use]
    pub const fn union(self, other: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | other.0)
    }

    /// The raw bits.
    #[must_use]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// From raw bits.
    #[must_use]
    pub const fn from_bits(bits: u8) -> TcpFlags {
        TcpFlags(bits)
    }
}

/// The packet mark (`skb->mark`, `-m mark`, `MARK --set-xmark`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mark(pub u32);

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// One simulated packet: its headers as the current hook sees them, plus metadata.
///
/// Payload bytes are not modelled; `len` is the IP length, for MTU checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Addresses, ports and protocol as currently written in the headers.
    pub tuple: Tuple,
    /// TCP flags (NONE for UDP/ICMP).
    pub flags: TcpFlags,
    /// TCP sequence number of the first byte (used by the SNAT TIME_WAIT eviction rule
    /// and `tcp_tw_reuse`); 0 for UDP.
    pub seq: u32,
    /// IP total length in bytes.
    pub len: u16,
    /// `skb->mark`.
    pub mark: Mark,
}

impl Packet {
    /// A packet with the given tuple and flags, length 60, mark 0, sequence 0.
    #[must_use]
    pub const fn new(tuple: Tuple, flags: TcpFlags) -> Packet {
        Packet {
            tuple,
            flags,
            seq: 0,
            len: 60,
            mark: Mark(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversed_is_an_involution() {
        let t = Tuple::new(
            Proto::Tcp,
            Ipv4Addr::new(10, 244, 1, 5),
            40_000,
            Ipv4Addr::new(10, 96, 0, 10),
            80,
        );
        assert_eq!(t.reversed().reversed(), t);
        assert_eq!(t.reversed().src, t.dst);
        assert_eq!(t.reversed().dport, t.sport);
        assert_eq!(t.to_string(), "tcp 10.244.1.5:40000 -> 10.96.0.10:80");
    }

    #[test]
    fn proto_parses_names_and_numbers() {
        assert_eq!(Proto::parse("TCP"), Some(Proto::Tcp));
        assert_eq!(Proto::parse("17"), Some(Proto::Udp));
        assert_eq!(Proto::parse("sctp"), None);
    }
}
