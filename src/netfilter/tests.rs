//! Tests across the rule model, import/export and evaluation, using kube-proxy's own
//! expected dumps (`testdata/`, Apache-2.0, see `testdata/README.md`).

use std::net::Ipv4Addr;

use super::export::{rule_to_string, to_iptables_save};
use super::import::parse;
use super::*;
use crate::packet::{Mark, Packet, Proto, TcpFlags, Tuple};
use crate::rng::SimRng;
use crate::time::SimTime;

const OVERALL: &str = include_str!("testdata/overall-multi-service.iptables-save");
const THREE: &str = include_str!("testdata/three-endpoint-clusterip.iptables-save");

fn counts(rs: &Ruleset, t: TableKind) -> (usize, usize) {
    let table = rs.table(t);
    (table.user_rule_count(), table.user_chain_count())
}

#[test]
fn fixtures_parse_with_the_readme_counts() {
    let rs = parse(OVERALL).unwrap();
    assert_eq!(counts(&rs, TableKind::Nat), (55, 20));
    assert_eq!(counts(&rs, TableKind::Filter), (10, 6));
    let rs = parse(THREE).unwrap();
    assert_eq!(counts(&rs, TableKind::Nat), (16, 8));
    assert_eq!(counts(&rs, TableKind::Filter), (4, 6));
}

#[test]
fn fixtures_print_back_byte_for_byte() {
    for text in [OVERALL, THREE] {
        let rs = parse(text).unwrap();
        assert_eq!(to_iptables_save(&rs), text);
        assert_eq!(parse(&to_iptables_save(&rs)).unwrap(), rs);
    }
}

#[test]
fn malformed_lines_report_line_column_and_what_was_expected() {
    let head = "*nat\n:KUBE-SVC - [0:0]\n";
    let cases: &[(&str, usize, usize, &str)] = &[
        (
            "-A KUBE-SVC -m tcp -p tcp --foo 1 -j ACCEPT\nCOMMIT\n",
            3,
            27,
            "unknown match option `--foo` for module `tcp`",
        ),
        ("-A KUBE-SVC --foo 1\nCOMMIT\n", 3, 13, "unknown option `--foo`"),
        (
            "-A KUBE-SVC -p tcp --dport\nCOMMIT\n",
            3,
            27,
            "option `--dport` needs a port or range",
        ),
        (
            "-A KUBE-SVC -d 10.0.0.300 -j ACCEPT\nCOMMIT\n",
            3,
            16,
            "invalid CIDR `10.0.0.300`",
        ),
        (
            "-A KUBE-SVC -s 10.0.0.0/33 -j ACCEPT\nCOMMIT\n",
            3,
            16,
            "prefix length above 32",
        ),
        (
            "-A KUBE-SVC -j KUBE-SEP-NOPE\nCOMMIT\n",
            3,
            16,
            "jump to undeclared chain `KUBE-SEP-NOPE`",
        ),
        (
            "-A KUBE-NOPE -j ACCEPT\nCOMMIT\n",
            3,
            4,
            "chain `KUBE-NOPE` does not exist",
        ),
        (
            "-A KUBE-SVC -m comment --comment \"unterminated -j ACCEPT\nCOMMIT\n",
            3,
            34,
            "unterminated quoted string",
        ),
        (
            "-A KUBE-SVC -m bogus -j ACCEPT\nCOMMIT\n",
            3,
            16,
            "unknown match module `bogus`",
        ),
        (
            "-A KUBE-SVC -j DNAT\nCOMMIT\n",
            3,
            16,
            "target `DNAT` needs `--to-destination`",
        ),
        (
            "-A KUBE-SVC -j DNAT --to-destination 10.0.0.1:99999\nCOMMIT\n",
            3,
            38,
            "invalid port `99999`",
        ),
        (
            "-A KUBE-SVC -j ACCEPT --random\nCOMMIT\n",
            3,
            23,
            "unknown option `--random` for target `ACCEPT`",
        ),
        (
            "-A KUBE-SVC -m tcp --dport 80 -j ACCEPT\nCOMMIT\n",
            3,
            16,
            "module `tcp` needs `-p tcp`",
        ),
        (
            "-A KUBE-SVC -m statistic --mode nth -j ACCEPT\nCOMMIT\n",
            3,
            33,
            "unsupported statistic mode `nth`",
        ),
        (
            "-A KUBE-SVC -m conntrack --ctstate NEW,BOGUS -j ACCEPT\nCOMMIT\n",
            3,
            36,
            "unknown conntrack state `BOGUS`",
        ),
        (
            "-A KUBE-SVC ! -m comment --comment x\nCOMMIT\n",
            3,
            13,
            "option `-m` cannot be negated",
        ),
        (
            "-A KUBE-SVC -j NOTRACK\nCOMMIT\n",
            3,
            16,
            "target `NOTRACK` is only valid in table `raw`",
        ),
        ("-A KUBE-SVC -j KUBE-SVC\nCOMMIT\n", 4, 1, "can reach itself"),
        (
            "-A KUBE-SVC -j PREROUTING\nCOMMIT\n",
            3,
            16,
            "cannot jump to built-in chain `PREROUTING`",
        ),
        (
            ":FORWARD ACCEPT [0:0]\nCOMMIT\n",
            3,
            10,
            "not a built-in chain of table `nat`",
        ),
        (":KUBE-X - [0:x]\nCOMMIT\n", 3, 11, "expected counters"),
        ("-A KUBE-SVC -j ACCEPT\n", 4, 1, "missing COMMIT for table `nat`"),
        ("COMMIT\n-A KUBE-SVC -j ACCEPT\n", 4, 1, "line outside a table"),
        ("-I KUBE-SVC -j ACCEPT\nCOMMIT\n", 3, 1, "unknown command `-I`"),
    ];
    for (tail, line, column, msg) in cases {
        let text = format!("{head}{tail}");
        let e = parse(&text).expect_err(tail);
        assert_eq!((e.line, e.column), (*line, *column), "{tail}: {e}");
        assert!(e.message.contains(msg), "{tail}: got `{e}`, want `{msg}`");
    }
    let e = parse("-A X -j ACCEPT\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 1, column 1: line outside a table (expected a `*table` line first)"
    );
    let e = parse("*bogus\n").unwrap_err();
    assert!(e.message.contains("unknown table `bogus`"));
}

#[test]
fn every_option_round_trips() {
    let text = "*raw\n:PREROUTING ACCEPT [3:180]\n-A PREROUTING -p udp --dport 53 -j NOTRACK\n\
                -A PREROUTING -i eth+ -j CT --notrack\nCOMMIT\n\
                *nat\n:POSTROUTING DROP [0:0]\n:X - [0:0]\n\
                -A POSTROUTING ! -o lo -p tcp --sport 1000:2000 -j SNAT --to-source 1.1.1.1-1.1.1.5:1024-2048 --random-fully\n\
                -A POSTROUTING -m set ! --match-set S dst,dst -g X\n\
                -A X -m mark --mark 0x1 -m addrtype ! --src-type LOCAL --dst-type LOCAL -j MASQUERADE --to-ports 30000-31000 --random\n\
                -A X -m recent --name L --update --seconds 5 --reap -j MARK --set-xmark 0x2/0xff\n\
                -A X -m comment --comment \"a \\\"quoted\\\" one\" -j MARK --and-mark 0xf\n\
                -A X ! -p udp -j RETURN\nCOMMIT\n";
    let mut base = Ruleset::new();
    base.add_ipset(IpSet::new("S", IpSetKind::HashIpPort)).unwrap();
    let rs = super::import::parse_into(base.clone(), text).unwrap();
    let out = to_iptables_save(&rs);
    assert_eq!(out, text);
    assert_eq!(super::import::parse_into(base, &out).unwrap(), rs);
}

/// Found by the `iptables_save` fuzz target: nfacct counters (like `recent` lists) are
/// numbered in the order the text first uses them, and the canonical export prints
/// `KUBE-NODEPORTS` before a `KUBE-FORWARD` the dump listed first, so the re-import
/// numbers them the other way round. The rulesets are the same rules under other ids:
/// the export of the re-import is the same text, and each rule names the same counter.
#[test]
fn named_counters_keep_their_names_through_a_reordering_export() {
    let text = "*filter\n:KUBE-NODEPORTS -\n:KUBE-FORWARD - [0:0]\n\
                -A KUBE-FORWARD -m nfacct --nfacct-name 0\n\
                -A KUBE-NODEPORTS -p tcp -m nfacct --nfacct-name lJ\nCOMMIT\n";
    let rs = parse(text).unwrap();
    let out = to_iptables_save(&rs);
    let again = parse(&out).unwrap();
    assert_eq!(to_iptables_save(&again), out);
    let names = |r: &Ruleset| {
        let f = r.table(TableKind::Filter);
        ["KUBE-FORWARD", "KUBE-NODEPORTS"].map(|c| {
            let chain = f.chain_id(c).unwrap();
            rule_to_string(r, TableKind::Filter, c, &f.chain(chain).rules()[0])
        })
    };
    assert_eq!(names(&rs), names(&again));
}

/// Found by the `iptables_save` fuzz target: a quoted nfacct name with a space imported,
/// and its export (names are printed bare, as `iptables-save` does) did not. Names of
/// counters and `recent` lists must be one word.
#[test]
fn nfacct_and_recent_names_with_spaces_or_quotes_are_refused() {
    for (text, col) in [
        ("*filter\n-A INPUT -m nfacct --nfacct-name \"c> .\"\nCOMMIT\n", 34),
        ("*filter\n-A INPUT -m recent --name \"a b\" --set\nCOMMIT\n", 27),
    ] {
        let e = parse(text).expect_err(text);
        assert_eq!((e.line, e.column), (2, col), "{text}: {e}");
        assert!(e.message.contains("must be one word"), "{e}");
    }
    assert!(parse("*filter\n-A INPUT -m nfacct --nfacct-name kube-proxy.x_1\nCOMMIT\n").is_ok());
    // Found by the same target: an empty (quoted) chain name was declared, and its
    // export `: - [0:0]` did not import.
    let e = parse("*filter\n:\"\" -\nCOMMIT\n").unwrap_err();
    assert_eq!((e.line, e.column), (2, 2), "{e}");
    assert!(e.message.contains("expected a chain name"), "{e}");
}

fn tcp(dst: Ipv4Addr, dport: u16) -> Packet {
    Packet::new(
        Tuple::new(Proto::Tcp, Ipv4Addr::new(10, 0, 5, 5), 40_000, dst, dport),
        TcpFlags::SYN,
    )
}

fn nothing_local(_: Ipv4Addr) -> bool {
    false
}

/// The three-endpoint fixture with kube-proxy's jump from nat PREROUTING.
fn three_endpoint_ruleset() -> Ruleset {
    let mut rs = parse(THREE).unwrap();
    let pre = rs.chain_id(TableKind::Nat, "PREROUTING").unwrap();
    let svcs = rs.chain_id(TableKind::Nat, "KUBE-SERVICES").unwrap();
    rs.append_rule(TableKind::Nat, pre, Rule::new(Target::Jump(svcs)))
        .unwrap();
    let post = rs.chain_id(TableKind::Nat, "POSTROUTING").unwrap();
    let kpost = rs.chain_id(TableKind::Nat, "KUBE-POSTROUTING").unwrap();
    rs.append_rule(TableKind::Nat, post, Rule::new(Target::Jump(kpost)))
        .unwrap();
    rs
}

#[test]
fn dnat_through_three_endpoints_picks_each_about_a_third() {
    let rs = three_endpoint_ruleset();
    let cx = EvalContext::new(CtStateMatch::NEW, &nothing_local, SimTime::ZERO);
    let mut state = EvalState::new();
    let mut rng = SimRng::from_seed(42);
    let pkt = tcp(Ipv4Addr::new(172, 30, 1, 1), 80);
    let mut hits = [0u32; 3];
    let n = 30_000;
    for _ in 0..n {
        let ev = rs.evaluate(TableKind::Nat, Hook::Prerouting, &pkt, &cx, &mut state, &mut rng);
        let Some(NatAction::Dnat { addr, port: Some(80) }) = ev.nat else {
            panic!("no DNAT: {ev:?}")
        };
        let o = addr.octets();
        assert_eq!(&o[..3], &[10, 0, 1]);
        hits[usize::from(o[3]) - 1] += 1;
        // The client is in the pod CIDR: no masquerade mark.
        assert_eq!(ev.mark, Mark(0));
    }
    for h in hits {
        let share = f64::from(h) / f64::from(n);
        assert!((share - 1.0 / 3.0).abs() < 0.015, "{hits:?}");
    }
}

#[test]
fn only_marked_traffic_is_masqueraded() {
    let rs = three_endpoint_ruleset();
    let cx = EvalContext::new(CtStateMatch::NEW, &nothing_local, SimTime::ZERO);
    let mut state = EvalState::new();
    let mut rng = SimRng::from_seed(1);
    // From outside the pod CIDR: KUBE-SVC marks 0x4000, POSTROUTING masquerades and clears it.
    let mut outside = tcp(Ipv4Addr::new(172, 30, 1, 1), 80);
    outside.tuple.src = Ipv4Addr::new(192, 168, 1, 9);
    let ev = rs.evaluate(
        TableKind::Nat,
        Hook::Prerouting,
        &outside,
        &cx,
        &mut state,
        &mut rng,
    );
    assert_eq!(ev.mark, Mark(0x4000));
    assert!(matches!(ev.nat, Some(NatAction::Dnat { .. })));
    outside.mark = ev.mark;
    let post = rs.evaluate(
        TableKind::Nat,
        Hook::Postrouting,
        &outside,
        &cx,
        &mut state,
        &mut rng,
    );
    assert_eq!(post.mark, Mark(0));
    assert!(matches!(
        post.nat,
        Some(NatAction::Masquerade {
            random_fully: false,
            ..
        })
    ));
    assert_eq!(post.rules_evaluated, 1 + 3);
    // Unmarked: RETURN from KUBE-POSTROUTING, fall through to the ACCEPT policy.
    let pod = tcp(Ipv4Addr::new(172, 30, 1, 1), 80);
    let post = rs.evaluate(TableKind::Nat, Hook::Postrouting, &pod, &cx, &mut state, &mut rng);
    assert_eq!(post.nat, None);
    assert_eq!(post.verdict, Verdict::Accept);
    assert_eq!(post.decided_by, None);
    assert_eq!(post.rules_evaluated, 2);
}

/// N simple service rules in one chain, each jumping to a per-service chain that accepts.
fn n_services(n: u32) -> Ruleset {
    let mut rs = Ruleset::new();
    let pre = rs.chain_id(TableKind::Nat, "PREROUTING").unwrap();
    let svcs = rs.add_chain(TableKind::Nat, "KUBE-SERVICES").unwrap();
    rs.append_rule(TableKind::Nat, pre, Rule::new(Target::Jump(svcs)))
        .unwrap();
    for k in 0..n {
        let c = rs.add_chain(TableKind::Nat, &format!("SVC-{k}")).unwrap();
        rs.append_rule(
            TableKind::Nat,
            c,
            Rule::new(Target::Dnat {
                addr: Ipv4Addr::new(10, 244, 0, 1),
                port: Some(8080),
            }),
        )
        .unwrap();
        let rule = Rule::new(Target::Jump(c))
            .with_comment(format!("svc{k} cluster IP"))
            .with(Match::Module(MatchModule::Tcp))
            .with(Match::Protocol {
                proto: Proto::Tcp,
                negated: false,
            })
            .with(Match::Destination {
                cidr: crate::packet::Cidr::host(Ipv4Addr::from(0x0a60_0000 + k)),
                negated: false,
            })
            .with(Match::DestinationPort {
                ports: PortRange::single(80),
                negated: false,
            });
        rs.append_rule(TableKind::Nat, svcs, rule).unwrap();
    }
    rs
}

#[test]
fn rules_evaluated_for_the_kth_service_is_its_linear_position() {
    let n = 500;
    let rs = n_services(n);
    let cx = EvalContext::new(CtStateMatch::NEW, &nothing_local, SimTime::ZERO);
    let mut state = EvalState::new();
    let mut rng = SimRng::from_seed(3);
    for k in [0, 1, 7, 8, 9, 250, n - 1] {
        let pkt = tcp(Ipv4Addr::from(0x0a60_0000 + k), 80);
        let fast = rs.evaluate(TableKind::Nat, Hook::Prerouting, &pkt, &cx, &mut state, &mut rng);
        let slow = rs.evaluate_reference(TableKind::Nat, Hook::Prerouting, &pkt, &cx, &mut state, &mut rng);
        // PREROUTING jump + k+1 rules of KUBE-SERVICES + the DNAT rule.
        assert_eq!(fast.rules_evaluated, 1 + (k + 1) + 1, "service {k}");
        assert_eq!(fast, slow);
    }
    // A miss scans the whole chain, then falls to the policy.
    let miss = tcp(Ipv4Addr::new(10, 96, 255, 255), 80);
    let ev = rs.evaluate(TableKind::Nat, Hook::Prerouting, &miss, &cx, &mut state, &mut rng);
    assert_eq!(ev.rules_evaluated, 1 + n);
    assert_eq!(ev.nat, None);
}

#[test]
fn traced_evaluation_lists_each_rule_tested() {
    let rs = n_services(3);
    let cx = EvalContext::new(CtStateMatch::NEW, &nothing_local, SimTime::ZERO);
    let mut rng = SimRng::from_seed(3);
    let pkt = tcp(Ipv4Addr::from(0x0a60_0001), 80);
    let (ev, trace) = rs.evaluate_traced(
        TableKind::Nat,
        Hook::Prerouting,
        &pkt,
        &cx,
        &mut EvalState::new(),
        &mut rng,
    );
    assert_eq!(trace.steps.len() as u32, ev.rules_evaluated);
    let matched: Vec<bool> = trace.steps.iter().map(|s| s.matched).collect();
    assert_eq!(matched, [true, false, true, true]);
    let svcs = rs.chain_id(TableKind::Nat, "KUBE-SERVICES").unwrap();
    assert_eq!(trace.per_chain_counts()[&svcs], 2);
    let nat = rs.table(TableKind::Nat);
    let r = &nat.chain(svcs).rules()[1];
    assert_eq!(
        rule_to_string(&rs, TableKind::Nat, "KUBE-SERVICES", r),
        "-A KUBE-SERVICES -m comment --comment \"svc1 cluster IP\" -m tcp -p tcp -d 10.96.0.1 --dport 80 -j SVC-1"
    );
}

#[test]
fn affinity_sticks_to_the_recorded_endpoint_until_it_expires() {
    let rs = parse(OVERALL).unwrap();
    let svc = rs.chain_id(TableKind::Nat, "KUBE-SVC-NUKIZ6OKUXPJNT4C").unwrap();
    let mut rs = rs;
    let pre = rs.chain_id(TableKind::Nat, "PREROUTING").unwrap();
    let svcs = rs.chain_id(TableKind::Nat, "KUBE-SERVICES").unwrap();
    rs.append_rule(TableKind::Nat, pre, Rule::new(Target::Jump(svcs)))
        .unwrap();
    let mut state = EvalState::new();
    let mut rng = SimRng::from_seed(9);
    let pkt = tcp(Ipv4Addr::new(172, 30, 0, 45), 80);
    let at = |s| EvalContext::new(CtStateMatch::NEW, &nothing_local, SimTime::from_secs(s));
    let first = rs.evaluate(
        TableKind::Nat,
        Hook::Prerouting,
        &pkt,
        &at(0),
        &mut state,
        &mut rng,
    );
    assert!(first.decided_by.is_some());
    let list = RecentId(0);
    assert_eq!(state.recent_seen(list, pkt.tuple.src), Some(SimTime::ZERO));
    // Within 10800 s the --rcheck rule (index 1 of KUBE-SVC) decides the jump.
    let (_, trace) = rs.evaluate_traced(
        TableKind::Nat,
        Hook::Prerouting,
        &pkt,
        &at(100),
        &mut state,
        &mut rng,
    );
    assert!(
        trace
            .steps
            .iter()
            .any(|s| s.chain == svc && s.rule == 1 && s.matched)
    );
    // After 10800 s it misses and --reap removes the entry (the SEP rule then sets it again).
    let (_, trace) = rs.evaluate_traced(
        TableKind::Nat,
        Hook::Prerouting,
        &pkt,
        &at(20_000),
        &mut state,
        &mut rng,
    );
    assert!(
        trace
            .steps
            .iter()
            .any(|s| s.chain == svc && s.rule == 1 && !s.matched)
    );
    assert_eq!(
        state.recent_seen(list, pkt.tuple.src),
        Some(SimTime::from_secs(20_000))
    );
}

#[test]
fn filter_chains_use_ctstate_mark_and_nfacct() {
    let mut rs = parse(OVERALL).unwrap();
    let fwd = rs.chain_id(TableKind::Filter, "FORWARD").unwrap();
    let kf = rs.chain_id(TableKind::Filter, "KUBE-FORWARD").unwrap();
    rs.append_rule(TableKind::Filter, fwd, Rule::new(Target::Jump(kf)))
        .unwrap();
    rs.set_policy(TableKind::Filter, Hook::Forward, Policy::Drop)
        .unwrap();
    let counter = rs.nfacct_counter("ct_state_invalid_dropped_pkts");
    let mut state = EvalState::new();
    let mut rng = SimRng::from_seed(0);
    let pkt = tcp(Ipv4Addr::new(10, 180, 0, 1), 80);
    let run = |ct, mark: u32, state: &mut EvalState, rng: &mut SimRng| {
        let cx = EvalContext::new(ct, &nothing_local, SimTime::ZERO);
        let p = Packet {
            mark: Mark(mark),
            ..pkt
        };
        rs.evaluate(TableKind::Filter, Hook::Forward, &p, &cx, state, rng)
    };
    let est = CtStateMatch::ESTABLISHED.union(CtStateMatch::DNAT);
    assert_eq!(
        run(CtStateMatch::INVALID, 0, &mut state, &mut rng).verdict,
        Verdict::Drop
    );
    assert_eq!(state.nfacct(counter).packets, 1);
    assert_eq!(
        run(CtStateMatch::NEW, 0x4000, &mut state, &mut rng).verdict,
        Verdict::Accept
    );
    let ev = run(est, 0, &mut state, &mut rng);
    assert_eq!((ev.verdict, ev.rules_evaluated), (Verdict::Accept, 4));
    // NEW and unmarked: falls through KUBE-FORWARD to the DROP policy.
    let ev = run(CtStateMatch::NEW, 0, &mut state, &mut rng);
    assert_eq!((ev.verdict, ev.decided_by), (Verdict::Drop, None));
    assert_eq!(state.nfacct(counter).packets, 1);
}

#[test]
fn looping_rulesets_are_abandoned_not_hung() {
    let mut rs = Ruleset::new();
    let a = rs.add_chain(TableKind::Filter, "A").unwrap();
    let input = rs.chain_id(TableKind::Filter, "INPUT").unwrap();
    rs.append_rule(TableKind::Filter, input, Rule::new(Target::Goto(a)))
        .unwrap();
    rs.append_rule(TableKind::Filter, a, Rule::new(Target::Goto(a)))
        .unwrap();
    let cx = EvalContext::new(CtStateMatch::NEW, &nothing_local, SimTime::ZERO);
    let ev = rs.evaluate(
        TableKind::Filter,
        Hook::Input,
        &tcp(Ipv4Addr::LOCALHOST, 1),
        &cx,
        &mut EvalState::new(),
        &mut SimRng::from_seed(0),
    );
    assert!(ev.aborted);
    assert_eq!(ev.verdict, Verdict::Drop);
}
