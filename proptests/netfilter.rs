//! Netfilter properties: the fast evaluator equals the reference interpreter, and
//! iptables-save export then import gives back the same ruleset.

use std::net::Ipv4Addr;

use k8s_netsim::netfilter::export::to_iptables_save;
use k8s_netsim::netfilter::import::parse;
use k8s_netsim::netfilter::{
    AddrTypeTest, CtStateMatch, EvalContext, EvalState, Hook, MarkOp, Match, MatchModule, PortRange,
    RecentMode, Rule, Ruleset, TableKind, Target,
};
use k8s_netsim::packet::{Cidr, Mark, Packet, Proto, TcpFlags, Tuple};
use k8s_netsim::rng::SimRng;
use k8s_netsim::time::SimTime;
use proptest::prelude::*;

/// `PROPTEST_CASES` if set, else 1000.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    ProptestConfig::with_cases(cases)
}

const DSTS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(10, 96, 0, 1),
    Ipv4Addr::new(10, 96, 0, 2),
    Ipv4Addr::new(10, 96, 0, 3),
    Ipv4Addr::new(192, 168, 1, 1),
];
const PORTS: [u16; 3] = [80, 443, 53];
const SRCS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(10, 244, 1, 5),
    Ipv4Addr::new(192, 168, 1, 1),
    Ipv4Addr::new(127, 0, 0, 1),
];

#[derive(Clone, Debug)]
enum TargetSpec {
    Accept,
    Drop,
    Reject,
    Return,
    Jump(usize),
    Goto(usize),
    Nothing,
    MarkOr(u32),
    MarkSetX(u32, u32),
    Dnat(usize, Option<u16>),
    Masquerade(bool),
}

#[derive(Clone, Debug)]
struct Complex {
    src: Option<(usize, bool)>,
    ports: Option<(bool, bool, u16, u16, bool)>,
    proto_not: Option<bool>,
    statistic: Option<usize>,
    mark: Option<(u32, bool)>,
    ct: Option<(u8, bool)>,
    recent: Option<(usize, u8)>,
    nfacct: Option<usize>,
    addrtype: Option<(bool, bool)>,
    comment: Option<String>,
}

#[derive(Clone, Debug)]
enum RuleSpec {
    Simple {
        dst: usize,
        udp: bool,
        dport: usize,
        comment: bool,
        target: TargetSpec,
    },
    Complex(Box<Complex>, TargetSpec),
}

fn target_spec() -> impl Strategy<Value = TargetSpec> {
    prop_oneof![
        2 => Just(TargetSpec::Accept),
        1 => Just(TargetSpec::Drop),
        1 => Just(TargetSpec::Reject),
        2 => Just(TargetSpec::Return),
        4 => any::<usize>().prop_map(TargetSpec::Jump),
        2 => any::<usize>().prop_map(TargetSpec::Goto),
        2 => Just(TargetSpec::Nothing),
        1 => prop::sample::select(vec![0x4000u32, 0x1, 0x4001]).prop_map(TargetSpec::MarkOr),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(v, m)| TargetSpec::MarkSetX(u32::from(v), u32::from(m))),
        1 => (0..4usize, prop::option::of(1u16..9000)).prop_map(|(i, p)| TargetSpec::Dnat(i, p)),
        1 => any::<bool>().prop_map(TargetSpec::Masquerade),
    ]
}

fn complex() -> impl Strategy<Value = Complex> {
    (
        (
            prop::option::of((0..4usize, any::<bool>())),
            prop::option::of((any::<bool>(), any::<bool>(), 0u16..600, 0u16..600, any::<bool>())),
            prop::option::of(any::<bool>()),
            prop::option::of(0..3usize),
            prop::option::of((prop::sample::select(vec![0u32, 0x4000, 0x1]), any::<bool>())),
        ),
        (
            prop::option::of((0u8..0x7f, any::<bool>())),
            prop::option::of((0..2usize, 0u8..3)),
            prop::option::of(0..2usize),
            prop::option::of((any::<bool>(), any::<bool>())),
            prop::option::of("[ a-z\"\\\\/:!-]{0,12}"),
        ),
    )
        .prop_map(
            |((src, ports, proto_not, statistic, mark), (ct, recent, nfacct, addrtype, comment))| Complex {
                src,
                ports,
                proto_not,
                statistic,
                mark,
                ct,
                recent,
                nfacct,
                addrtype,
                comment,
            },
        )
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    prop_oneof![
        4 => (0..4usize, any::<bool>(), 0..3usize, any::<bool>(), target_spec()).prop_map(
            |(dst, udp, dport, comment, target)| RuleSpec::Simple { dst, udp, dport, comment, target }
        ),
        1 => (complex(), target_spec()).prop_map(|(c, t)| RuleSpec::Complex(Box::new(c), t)),
    ]
}

/// Chain 0 is nat PREROUTING; chains 1.. are user chains. Jumps only go to higher-numbered
/// chains, so no loops.
fn spec() -> impl Strategy<Value = Vec<Vec<RuleSpec>>> {
    (1..5usize)
        .prop_flat_map(|users| prop::collection::vec(prop::collection::vec(rule_spec(), 0..28), users + 1))
}

fn target(rs: &Ruleset, chain: usize, chains: usize, t: &TargetSpec) -> Target {
    let user = |k: usize| rs.chain_id(TableKind::Nat, &format!("C{k}")).unwrap();
    let pick = |off: usize| (chain + 1 < chains).then(|| chain + 1 + off % (chains - chain - 1));
    match t {
        TargetSpec::Accept => Target::Accept,
        TargetSpec::Drop => Target::Drop,
        TargetSpec::Reject => Target::Reject,
        TargetSpec::Return => Target::Return,
        TargetSpec::Jump(o) => pick(*o).map_or(Target::Accept, |k| Target::Jump(user(k))),
        TargetSpec::Goto(o) => pick(*o).map_or(Target::Drop, |k| Target::Goto(user(k))),
        TargetSpec::Nothing => Target::None,
        TargetSpec::MarkOr(v) => Target::Mark(MarkOp::Or(*v)),
        TargetSpec::MarkSetX(v, m) => Target::Mark(MarkOp::SetXmark { value: *v, mask: *m }),
        TargetSpec::Dnat(i, p) => Target::Dnat {
            addr: DSTS[*i],
            port: *p,
        },
        TargetSpec::Masquerade(f) => Target::Masquerade {
            ports: None,
            random: false,
            random_fully: *f,
        },
    }
}

fn proto(udp: bool) -> Proto {
    if udp { Proto::Udp } else { Proto::Tcp }
}

fn module(udp: bool) -> Match {
    Match::Module(if udp { MatchModule::Udp } else { MatchModule::Tcp })
}

/// Builds rules in printing order, so recent lists and nfacct counters get the ids an import
/// of the printed text gives them.
fn build(spec: &[Vec<RuleSpec>]) -> Ruleset {
    let mut rs = Ruleset::new();
    for k in 1..spec.len() {
        rs.add_chain(TableKind::Nat, &format!("C{k}")).unwrap();
    }
    for (c, rules) in spec.iter().enumerate() {
        let chain = if c == 0 {
            rs.chain_id(TableKind::Nat, "PREROUTING").unwrap()
        } else {
            rs.chain_id(TableKind::Nat, &format!("C{c}")).unwrap()
        };
        for r in rules {
            let rule = match r {
                RuleSpec::Simple {
                    dst,
                    udp,
                    dport,
                    comment,
                    target: t,
                } => {
                    let mut rule = Rule::new(target(&rs, c, spec.len(), t));
                    if *comment {
                        rule = rule.with_comment(format!("svc {dst}"));
                    }
                    rule.with(module(*udp))
                        .with(Match::Protocol {
                            proto: proto(*udp),
                            negated: false,
                        })
                        .with(Match::Destination {
                            cidr: Cidr::host(DSTS[*dst]),
                            negated: false,
                        })
                        .with(Match::DestinationPort {
                            ports: PortRange::single(PORTS[*dport]),
                            negated: false,
                        })
                }
                RuleSpec::Complex(x, t) => {
                    let mut rule = Rule::new(target(&rs, c, spec.len(), t));
                    if let Some(text) = &x.comment {
                        rule = rule.with_comment(text.clone());
                    }
                    if let Some((i, neg)) = x.src {
                        let cidr = [
                            Cidr::host(SRCS[0]),
                            "10.0.0.0/8".parse().unwrap(),
                            "127.0.0.0/8".parse().unwrap(),
                            Cidr::ANY,
                        ][i];
                        rule = rule.with(Match::Source { cidr, negated: neg });
                    }
                    if let Some((udp, with_module, a, b, neg)) = x.ports {
                        if with_module {
                            rule = rule.with(module(udp));
                        }
                        rule = rule
                            .with(Match::Protocol {
                                proto: proto(udp),
                                negated: false,
                            })
                            .with(Match::DestinationPort {
                                ports: PortRange {
                                    first: a.min(b),
                                    last: a.max(b),
                                },
                                negated: neg,
                            });
                    } else if let Some(udp) = x.proto_not {
                        rule = rule.with(Match::Protocol {
                            proto: proto(udp),
                            negated: true,
                        });
                    }
                    if let Some(p) = x.statistic {
                        rule = rule.with(Match::statistic([0.1, 0.5, 0.9][p]));
                    }
                    if let Some((v, neg)) = x.mark {
                        rule = rule.with(Match::Mark {
                            value: v,
                            mask: 0x4001,
                            negated: neg,
                        });
                    }
                    if let Some((bits, neg)) = x.ct {
                        let states = CtStateMatch::from_bits(bits);
                        if !states.is_empty() {
                            rule = rule.with(Match::Conntrack { states, negated: neg });
                        }
                    }
                    if let Some((src_neg, dst)) = x.addrtype {
                        rule = rule.with(Match::AddrType {
                            src: Some(AddrTypeTest { negated: src_neg }),
                            dst: dst.then_some(AddrTypeTest { negated: false }),
                        });
                    }
                    if let Some((name, mode)) = x.recent {
                        let list = rs.recent_list(&format!("L{name}"));
                        rule = rule.with(match mode {
                            0 => Match::Recent {
                                list,
                                mode: RecentMode::Set,
                                seconds: None,
                                reap: false,
                            },
                            1 => Match::Recent {
                                list,
                                mode: RecentMode::Rcheck,
                                seconds: Some(5),
                                reap: true,
                            },
                            _ => Match::Recent {
                                list,
                                mode: RecentMode::Update,
                                seconds: None,
                                reap: false,
                            },
                        });
                    }
                    if let Some(n) = x.nfacct {
                        let counter = rs.nfacct_counter(&format!("N{n}"));
                        rule = rule.with(Match::Nfacct { counter });
                    }
                    rule
                }
            };
            rs.append_rule(TableKind::Nat, chain, rule).unwrap();
        }
    }
    rs
}

#[derive(Clone, Debug)]
struct PacketSpec {
    dst: usize,
    udp: bool,
    dport: usize,
    src: usize,
    mark: u32,
    ct: u8,
    now: u64,
}

fn packet_spec() -> impl Strategy<Value = PacketSpec> {
    (
        0..5usize,
        any::<bool>(),
        0..4usize,
        0..3usize,
        prop::sample::select(vec![0u32, 0x4000, 0x1]),
        0u8..0x7f,
        0u64..20,
    )
        .prop_map(|(dst, udp, dport, src, mark, ct, now)| PacketSpec {
            dst,
            udp,
            dport,
            src,
            mark,
            ct,
            now,
        })
}

fn is_local(a: Ipv4Addr) -> bool {
    a.is_loopback() || a == Ipv4Addr::new(192, 168, 1, 1)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fast_evaluator_equals_reference(
        spec in spec(),
        packets in prop::collection::vec(packet_spec(), 1..10),
        seed in any::<u64>(),
    ) {
        let rs = build(&spec);
        let mut rng_fast = SimRng::from_seed(seed);
        let mut rng_ref = SimRng::from_seed(seed);
        let mut st_fast = EvalState::new();
        let mut st_ref = EvalState::new();
        for p in &packets {
            let dst = DSTS.get(p.dst).copied().unwrap_or(Ipv4Addr::new(10, 96, 9, 9));
            let dport = PORTS.get(p.dport).copied().unwrap_or(8080);
            let proto = if p.udp { Proto::Udp } else { Proto::Tcp };
            let mut pkt = Packet::new(Tuple::new(proto, SRCS[p.src], 40_000, dst, dport), TcpFlags::SYN);
            pkt.mark = Mark(p.mark);
            let cx = EvalContext::new(CtStateMatch::from_bits(p.ct), &is_local, SimTime::from_secs(p.now));
            let fast = rs.evaluate(TableKind::Nat, Hook::Prerouting, &pkt, &cx, &mut st_fast, &mut rng_fast);
            let slow = rs.evaluate_reference(TableKind::Nat, Hook::Prerouting, &pkt, &cx, &mut st_ref, &mut rng_ref);
            prop_assert_eq!(fast, slow);
            prop_assert_eq!(&st_fast, &st_ref);
            prop_assert_eq!(rng_fast.clone().next_u64(), rng_ref.clone().next_u64());
        }
    }

    #[test]
    fn export_then_import_round_trips(spec in spec()) {
        let rs = build(&spec);
        let text = to_iptables_save(&rs);
        let back = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&back, &rs);
        prop_assert_eq!(to_iptables_save(&back), text);
    }
}
