//! Rules: what a rule tests ([`Match`]) and what it does when every test passes ([`Target`]).

use std::fmt;
use std::net::Ipv4Addr;

use crate::packet::{Cidr, Proto};

/// A chain inside one table: an index resolved when the rule is added, so evaluation never
/// compares chain names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChainId(pub(crate) u32);

impl ChainId {
    /// The position of the chain in its table.
    #[must_use]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// An ipset held by the [`Ruleset`](super::Ruleset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpSetId(pub(crate) u32);

/// A `-m recent --name` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecentId(pub(crate) u32);

/// A `-m nfacct --nfacct-name` counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NfacctId(pub(crate) u32);

/// The policy of a built-in chain: the verdict when a packet falls off its end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Policy {
    /// `ACCEPT` (the default).
    #[default]
    Accept,
    /// `DROP`.
    Drop,
}

impl Policy {
    /// The name iptables prints.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Accept => "ACCEPT",
            Policy::Drop => "DROP",
        }
    }
}

/// An inclusive port range (`80`, `1024:65535`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (equal to `first` for a single port).
    pub last: u16,
}

impl PortRange {
    /// A single port.
    #[must_use]
    pub const fn single(port: u16) -> PortRange {
        PortRange {
            first: port,
            last: port,
        }
    }

    /// Whether `port` lies in the range.
    #[must_use]
    pub fn contains(self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// Whether the range is one port.
    #[must_use]
    pub fn is_single(self) -> bool {
        self.first == self.last
    }
}

/// The connection-tracking states and NAT statuses a packet can be in, as the `conntrack`
/// match sees them (`xt_conntrack`: `XT_CONNTRACK_STATE_*` bits plus the `SNAT`/`DNAT`
/// virtual states). Used both for `--ctstate` lists and for the packet's own state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtStateMatch(u8);

impl CtStateMatch {
    /// `INVALID`: conntrack could not classify the packet.
    pub const INVALID: CtStateMatch = CtStateMatch(1);
    /// `NEW`: the first packet of a connection.
    pub const NEW: CtStateMatch = CtStateMatch(2);
    /// `RELATED`: related to an existing connection (ICMP errors, expectations).
    pub const RELATED: CtStateMatch = CtStateMatch(4);
    /// `ESTABLISHED`: a packet of a connection that has seen both directions.
    pub const ESTABLISHED: CtStateMatch = CtStateMatch(8);
    /// `UNTRACKED`: NOTRACK applied in the raw table.
    pub const UNTRACKED: CtStateMatch = CtStateMatch(16);
    /// `SNAT`: the connection's source was translated.
    pub const SNAT: CtStateMatch = CtStateMatch(32);
    /// `DNAT`: the connection's destination was translated.
    pub const DNAT: CtStateMatch = CtStateMatch(64);
    /// No state at all.
    pub const EMPTY: CtStateMatch = CtStateMatch(0);

    /// The names in the order `iptables-save` prints them (libxt_conntrack
    /// `conntrack_dump_states`).
    const NAMES: [(CtStateMatch, &'static str); 7] = [
        (CtStateMatch::INVALID, "INVALID"),
        (CtStateMatch::NEW, "NEW"),
        (CtStateMatch::RELATED, "RELATED"),
        (CtStateMatch::ESTABLISHED, "ESTABLISHED"),
        (CtStateMatch::UNTRACKED, "UNTRACKED"),
        (CtStateMatch::SNAT, "SNAT"),
        (CtStateMatch::DNAT, "DNAT"),
    ];

    /// The union of two sets.
    #[must_use]
    pub const fn union(self, other: CtStateMatch) -> CtStateMatch {
        CtStateMatch(self.0 | other.0)
    }

    /// Whether the two sets share a state (how `--ctstate` tests a packet).
    #[must_use]
    pub const fn intersects(self, other: CtStateMatch) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether no state is set.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// From raw bits (unknown bits are dropped).
    #[must_use]
    pub const fn from_bits(bits: u8) -> CtStateMatch {
        CtStateMatch(bits & 0x7f)
    }

    /// Parses a `--ctstate` list such as `RELATED,ESTABLISHED,DNAT`; `None` names the first
    /// unknown state.
    ///
    /// # Errors
    /// The unknown state name.
    pub fn parse_list(text: &str) -> Result<CtStateMatch, String> {
        let mut set = CtStateMatch::EMPTY;
        for part in text.split(',') {
            let found = CtStateMatch::NAMES
                .iter()
                .find(|(_, n)| n.eq_ignore_ascii_case(part))
                .ok_or_else(|| part.to_string())?;
            set = set.union(found.0);
        }
        Ok(set)
    }
}

impl fmt::Display for CtStateMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (bit, name) in CtStateMatch::NAMES {
            if self.intersects(bit) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// Match modules whose `-m NAME` is kept as its own element so that rules print back with
/// their original option order (kube-proxy writes `-m tcp -p tcp -d IP --dport P`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchModule {
    /// `-m tcp`: its `--sport`/`--dport` are separate [`Match`] elements.
    Tcp,
    /// `-m udp`: as `tcp`.
    Udp,
    /// `-m comment`: the text lives in [`Rule::comment`].
    Comment,
}

impl MatchModule {
    /// The module name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            MatchModule::Tcp => "tcp",
            MatchModule::Udp => "udp",
            MatchModule::Comment => "comment",
        }
    }
}

/// One `--src-type`/`--dst-type` test of the `addrtype` match. Only `LOCAL` is modelled
/// (the one type kube-proxy uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddrTypeTest {
    /// `!` before the option.
    pub negated: bool,
}

/// How the `recent` match uses its list (`xt_recent` `XT_RECENT_*` check_set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecentMode {
    /// `--set`: record the source address; always matches.
    Set,
    /// `--rcheck`: match when the source address is in the list.
    Rcheck,
    /// `--update`: like `--rcheck`, and refresh the entry when it matches.
    Update,
}

/// The dimension directions of a `-m set --match-set NAME dst,dst` match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SetDirs {
    len: u8,
    src_bits: u8,
}

impl SetDirs {
    /// One dimension taken from the destination (`dst`).
    pub const DST: SetDirs = SetDirs { len: 1, src_bits: 0 };

    /// Directions from a list of "is source" flags (1 to 3 entries).
    #[must_use]
    pub fn new(src: &[bool]) -> Option<SetDirs> {
        if src.is_empty() || src.len() > 3 {
            return None;
        }
        let mut bits = 0u8;
        for (i, s) in src.iter().enumerate() {
            if *s {
                bits |= 1 << i;
            }
        }
        #[allow(clippy::cast_possible_truncation)]
        Some(SetDirs {
            len: src.len() as u8,
            src_bits: bits,
        })
    }

    /// The number of dimensions given.
    #[must_use]
    pub fn len(self) -> usize {
        usize::from(self.len)
    }

    /// Always false: a direction list has at least one entry.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.len == 0
    }

    /// Whether dimension `i` is taken from the source side.
    #[must_use]
    pub fn is_src(self, i: usize) -> bool {
        i < 8 && self.src_bits & (1 << i) != 0
    }
}

impl fmt::Display for SetDirs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for i in 0..self.len() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(if self.is_src(i) { "src" } else { "dst" })?;
        }
        Ok(())
    }
}

/// One test of a rule. IP-header tests (`-s`, `-d`, `-p`, `-i`, `-o`) are checked before the
/// extension matches, as `ip_packet_match` runs before the `xt_ematch` loop in
/// `ipt_do_table`; extension matches run in their order in the rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Match {
    /// `[!] -s CIDR`.
    Source {
        /// The prefix.
        cidr: Cidr,
        /// `!`.
        negated: bool,
    },
    /// `[!] -d CIDR`.
    Destination {
        /// The prefix.
        cidr: Cidr,
        /// `!`.
        negated: bool,
    },
    /// `[!] -p PROTO`.
    Protocol {
        /// The protocol.
        proto: Proto,
        /// `!`.
        negated: bool,
    },
    /// `[!] -i NAME` (a trailing `+` matches every name with that prefix).
    InInterface {
        /// The interface name or prefix.
        name: String,
        /// `!`.
        negated: bool,
    },
    /// `[!] -o NAME`.
    OutInterface {
        /// The interface name or prefix.
        name: String,
        /// `!`.
        negated: bool,
    },
    /// `[!] --sport P[:Q]` of the `tcp`/`udp` match.
    SourcePort {
        /// The ports.
        ports: PortRange,
        /// `!`.
        negated: bool,
    },
    /// `[!] --dport P[:Q]` of the `tcp`/`udp` match.
    DestinationPort {
        /// The ports.
        ports: PortRange,
        /// `!`.
        negated: bool,
    },
    /// `-m tcp`, `-m udp` or `-m comment` (position marker; always matches).
    Module(MatchModule),
    /// `-m addrtype [[!] --src-type LOCAL] [[!] --dst-type LOCAL]`.
    AddrType {
        /// The `--src-type LOCAL` test.
        src: Option<AddrTypeTest>,
        /// The `--dst-type LOCAL` test.
        dst: Option<AddrTypeTest>,
    },
    /// `-m mark [!] --mark VALUE[/MASK]`: `(skb->mark & mask) == value`.
    Mark {
        /// Value.
        value: u32,
        /// Mask (`0xffffffff` when none was given).
        mask: u32,
        /// `!`.
        negated: bool,
    },
    /// `-m conntrack [!] --ctstate LIST`.
    Conntrack {
        /// The states listed.
        states: CtStateMatch,
        /// `!`.
        negated: bool,
    },
    /// `-m statistic --mode random --probability P`: one random draw per evaluation.
    Statistic {
        /// The probability.
        probability: f64,
        /// The probability as written (kube-proxy prints ten decimals).
        text: String,
    },
    /// `-m set [!] --match-set NAME DIRS`.
    Set {
        /// The set.
        set: IpSetId,
        /// Which side of the packet each dimension is taken from.
        dirs: SetDirs,
        /// `!`.
        negated: bool,
    },
    /// `-m recent --name NAME (--set | --rcheck | --update) [--seconds S] [--reap]`, keyed by
    /// source address (`--rsource`, the default).
    Recent {
        /// The list.
        list: RecentId,
        /// What the match does with the list.
        mode: RecentMode,
        /// `--seconds S`: only entries seen in the last S seconds count.
        seconds: Option<u32>,
        /// `--reap`: drop entries older than `seconds`.
        reap: bool,
    },
    /// `-m nfacct --nfacct-name NAME`: counts the packet; always matches.
    Nfacct {
        /// The counter.
        counter: NfacctId,
    },
}

impl Match {
    /// `-m statistic --mode random --probability p`, written with kube-proxy's ten decimals
    /// (`computeProbability`, `%0.10f`); the stored probability is the printed one.
    #[must_use]
    pub fn statistic(probability: f64) -> Match {
        let text = format!("{probability:.10}");
        let probability = text.parse().unwrap_or(probability);
        Match::Statistic { probability, text }
    }
}

/// How a `MARK` target changes `skb->mark` (`xt_MARK`: `mark = (mark & ~mask) ^ value`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MarkOp {
    /// `--set-xmark VALUE/MASK`.
    SetXmark {
        /// Value XORed in.
        value: u32,
        /// Bits cleared first.
        mask: u32,
    },
    /// `--set-mark VALUE[/MASK]`: clear `mask` bits, OR in `value`.
    SetMark {
        /// Value.
        value: u32,
        /// Mask (`0xffffffff` when none was given).
        mask: u32,
    },
    /// `--or-mark BITS`.
    Or(u32),
    /// `--xor-mark BITS`.
    Xor(u32),
    /// `--and-mark BITS`.
    And(u32),
}

impl MarkOp {
    /// The `(value, mask)` pair libxt_MARK hands to the kernel (`mark_tg_parse`).
    #[must_use]
    pub fn xmark(self) -> (u32, u32) {
        match self {
            MarkOp::SetXmark { value, mask } => (value, mask),
            MarkOp::SetMark { value, mask } => (value, value | mask),
            MarkOp::Or(bits) => (bits, bits),
            MarkOp::Xor(bits) => (bits, 0),
            MarkOp::And(bits) => (0, !bits),
        }
    }

    /// The mark after the target (`mark_tg`).
    #[must_use]
    pub fn apply(self, mark: u32) -> u32 {
        let (value, mask) = self.xmark();
        (mark & !mask) ^ value
    }
}

/// A source NAT range (`--to-source a[-b][:p[-q]]` and its flags; `struct
/// nf_nat_range2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NatRange {
    /// First address.
    pub min_addr: Ipv4Addr,
    /// Last address (equal to `min_addr` for one address).
    pub max_addr: Ipv4Addr,
    /// Port range, if one was given.
    pub ports: Option<PortRange>,
    /// `--random` (`NF_NAT_RANGE_PROTO_RANDOM`).
    pub random: bool,
    /// `--random-fully` (`NF_NAT_RANGE_PROTO_RANDOM_FULLY`).
    pub random_fully: bool,
    /// `--persistent` (`NF_NAT_RANGE_PERSISTENT`).
    pub persistent: bool,
}

/// What a rule does when it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// No `-j`: the rule only counts (kube-proxy's last KUBE-FW rule).
    None,
    /// `ACCEPT`: stop this table, accept.
    Accept,
    /// `DROP`.
    Drop,
    /// `REJECT`: drop and answer (RST / ICMP port unreachable).
    Reject,
    /// `RETURN`: back to the calling chain (or the policy in a built-in chain).
    Return,
    /// `-j CHAIN`: call a user chain.
    Jump(ChainId),
    /// `-g CHAIN`: go to a user chain without a return frame.
    Goto(ChainId),
    /// `DNAT --to-destination ADDR[:PORT]`.
    Dnat {
        /// New destination address.
        addr: Ipv4Addr,
        /// New destination port (unchanged when `None`).
        port: Option<u16>,
    },
    /// `SNAT --to-source RANGE`.
    Snat(NatRange),
    /// `MASQUERADE [--to-ports P[-Q]] [--random] [--random-fully]`.
    Masquerade {
        /// `--to-ports`.
        ports: Option<PortRange>,
        /// `--random`.
        random: bool,
        /// `--random-fully`.
        random_fully: bool,
    },
    /// `MARK ...`: change the packet mark and continue.
    Mark(MarkOp),
    /// `NOTRACK` (raw table): the packet gets no conntrack entry; continue.
    Notrack,
    /// `CT --notrack` (raw table): as `NOTRACK`.
    CtNotrack,
}

/// One rule: its tests in their original order, its target and its `-m comment` text.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Tests, in the order given (the order is kept for printing; see [`Match`] for the
    /// order in which they are evaluated).
    pub matches: Vec<Match>,
    /// What happens when every test passes.
    pub target: Target,
    /// `-m comment --comment TEXT`, printed where the `Module(Comment)` marker sits (or first
    /// when there is none).
    pub comment: Option<String>,
}

impl Rule {
    /// A rule with no tests.
    #[must_use]
    pub fn new(target: Target) -> Rule {
        Rule {
            matches: Vec::new(),
            target,
            comment: None,
        }
    }

    /// Adds a test (builder style).
    #[must_use]
    pub fn with(mut self, m: Match) -> Rule {
        self.matches.push(m);
        self
    }

    /// Sets the comment (builder style); adds the `-m comment` marker first.
    #[must_use]
    pub fn with_comment(mut self, text: impl Into<String>) -> Rule {
        self.matches.push(Match::Module(MatchModule::Comment));
        self.comment = Some(text.into());
        self
    }

    /// The exact `(destination, protocol, destination port)` this rule tests when it is
    /// "simple": its only tests are one `-d ip/32`, one `-p tcp|udp`, one single `--dport`
    /// (none negated) plus `-m tcp|udp|comment` markers. Runs of such rules are indexed by
    /// the fast evaluator.
    #[must_use]
    pub fn simple_key(&self) -> Option<(Ipv4Addr, Proto, u16)> {
        let mut dst = None;
        let mut proto = None;
        let mut dport = None;
        for m in &self.matches {
            match m {
                Match::Destination { cidr, negated: false } if cidr.len() == 32 && dst.is_none() => {
                    dst = Some(cidr.addr());
                }
                Match::Protocol {
                    proto: p @ (Proto::Tcp | Proto::Udp),
                    negated: false,
                } if proto.is_none() => proto = Some(*p),
                Match::DestinationPort {
                    ports,
                    negated: false,
                } if ports.is_single() && dport.is_none() => {
                    dport = Some(ports.first);
                }
                Match::Module(_) => {}
                _ => return None,
            }
        }
        Some((dst?, proto?, dport?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_ops_follow_libxt_mark() {
        // KUBE-MARK-MASQ sets bit 14, KUBE-POSTROUTING clears it with XOR.
        let m = MarkOp::Or(0x4000).apply(0x1);
        assert_eq!(m, 0x4001);
        assert_eq!(MarkOp::Xor(0x4000).apply(m), 0x1);
        assert_eq!(
            MarkOp::SetMark {
                value: 0x10,
                mask: u32::MAX
            }
            .apply(0xff),
            0x10
        );
        assert_eq!(
            MarkOp::SetXmark {
                value: 0x1,
                mask: 0xf
            }
            .apply(0xff),
            0xf1
        );
        assert_eq!(MarkOp::And(0xf0).apply(0xff), 0xf0);
    }

    #[test]
    fn ctstate_lists_print_in_iptables_order() {
        let s = CtStateMatch::parse_list("DNAT,ESTABLISHED,RELATED").unwrap();
        assert_eq!(s.to_string(), "RELATED,ESTABLISHED,DNAT");
        assert!(CtStateMatch::parse_list("NEW,BOGUS").is_err());
        assert!(s.intersects(CtStateMatch::ESTABLISHED));
        assert!(!s.intersects(CtStateMatch::NEW));
    }

    #[test]
    fn simple_key_requires_exact_unnegated_dst_proto_dport() {
        let base = Rule::new(Target::Accept)
            .with_comment("x")
            .with(Match::Module(MatchModule::Tcp))
            .with(Match::Protocol {
                proto: Proto::Tcp,
                negated: false,
            })
            .with(Match::Destination {
                cidr: Cidr::host(Ipv4Addr::new(10, 96, 0, 1)),
                negated: false,
            });
        assert_eq!(base.simple_key(), None);
        let full = base.clone().with(Match::DestinationPort {
            ports: PortRange::single(80),
            negated: false,
        });
        assert_eq!(
            full.simple_key(),
            Some((Ipv4Addr::new(10, 96, 0, 1), Proto::Tcp, 80))
        );
        let extra = full.with(Match::Source {
            cidr: Cidr::ANY,
            negated: true,
        });
        assert_eq!(extra.simple_key(), None);
    }
}
