//! Unit tests of the replay machinery (the suite itself runs in `tests/it/validation.rs`).

use super::replay::{
    Begun, CLI, Closer, Node, SRV, SRV2, Sent, Start, TcpSpec, TcpStorm, VIP, at, flood_tuple,
};
use crate::conntrack::{DstNat, SrcNat};
use crate::kernel::{CtTimeouts, KernelProfile};
use crate::packet::{Packet, Proto, TcpFlags, Tuple};
use crate::time::SimDuration;

fn node(max: u32) -> Node {
    let mut n = Node::new(max, 1_024, 250, KernelProfile::LINUX_6_18, 1).unwrap();
    n.enable(0, CtTimeouts::default());
    n
}

#[test]
fn flood_tuples_follow_the_udp_flood_index() {
    let t = flood_tuple(0, 1024, 100);
    assert_eq!((t.sport, t.dport), (1024, 9000));
    let t = flood_tuple(101, 1024, 100);
    assert_eq!((t.sport, t.dport), (1025, 9001));
    assert_eq!(t.proto, Proto::Udp);
}

/// docs/kernel-semantics.md §early_drop and §SYN retransmission: a table full of ASSURED
/// TIME_WAIT entries drops every SYN; a connect timeout below 1 s allows one SYN, so one drop.
#[test]
fn storm_into_a_full_assured_table_drops_one_syn_per_short_connect() {
    let mut n = node(2);
    let specs = (0..3)
        .map(|i| TcpSpec {
            start: Start::At(at(0.01 * f64::from(i))),
            port: 40_000 + i as u16,
            timeout: SimDuration::from_millis(300),
            hold: false,
        })
        .collect();
    let dnat = DstNat::To {
        addr: SRV,
        port: Some(8080),
    };
    let storm = TcpStorm::new((VIP, 80), Some((dnat, SrcNat::Null)), Closer::Server, specs);
    let run = storm.run(&mut n, 0, 1).unwrap();
    let ok: Vec<bool> = run.results.iter().map(|r| r.ok).collect();
    assert_eq!(ok, [true, true, false]);
    assert_eq!(n.stats(0).drop, 1);
    assert_eq!(n.stats(0).early_drop, 0);
    assert_eq!(n.count(0), 2.0);
}

/// docs/kernel-semantics.md §Clash resolution: two datagrams of one socket racing through a
/// DNAT to different backends: the loser is inserted reply-only, nothing is dropped.
#[test]
fn racing_pair_to_two_backends_is_resolved_reply_only() {
    let mut n = node(100);
    let pkt = Packet::new(Tuple::new(Proto::Udp, CLI, 33_000, VIP, 53), TcpFlags::NONE);
    let to = |addr| {
        Some((
            DstNat::To {
                addr,
                port: Some(5353),
            },
            SrcNat::Null,
        ))
    };
    let a = n.begin(0, 0, &pkt, to(SRV), at(1.0)).unwrap();
    let b = n.begin(0, 1, &pkt, to(SRV2), at(1.000_01)).unwrap();
    let (Begun::Pending(a), Begun::Pending(b)) = (a, b) else {
        panic!("both must be unconfirmed")
    };
    assert!(matches!(n.finish(a, 0, at(1.000_02)).unwrap(), Sent::Tracked(..)));
    assert!(matches!(n.finish(b, 1, at(1.000_03)).unwrap(), Sent::Tracked(..)));
    let st = n.stats(0);
    assert_eq!((st.clash_resolve, st.insert_failed, st.drop), (1, 0, 0));
    assert_eq!(n.count(0), 2.0);
    assert_eq!(n.ct.list(0, at(1.1)).len(), 1, "the reply-only entry is hidden");
}

/// docs/kernel-semantics.md §gc worker and §Lazy expiry: an expired entry stays counted until
/// the gc pass the worker scheduled, which the driver runs at the time it asked for.
#[test]
fn expired_entries_stay_counted_until_the_scheduled_gc_pass() {
    let mut n = node(100);
    n.enable(
        0,
        CtTimeouts {
            udp: SimDuration::from_secs(3),
            ..CtTimeouts::default()
        },
    );
    let pkt = Packet::new(flood_tuple(0, 1024, 100), TcpFlags::NONE);
    n.send(0, 0, &pkt, Some((DstNat::Null, SrcNat::Null)), at(0.5))
        .unwrap();
    n.advance(at(10.0));
    assert_eq!(n.count(0), 1.0, "expired at 3.5 s but no gc pass yet");
    n.advance(at(61.0));
    assert_eq!(n.count(0), 0.0);
}

#[test]
fn syn_times_follow_the_profile() {
    let (t, fail) = super::socket_level::nominal_syn_times(&KernelProfile::LINUX_5_4, 6);
    assert_eq!(t, [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 63.0]);
    assert!((fail - 127.0).abs() < 1e-9);
    // The simulated timer fires as the kernel's timer wheel does: a little late.
    let (w, wfail) = super::socket_level::syn_times(&KernelProfile::LINUX_5_4, 6);
    for (a, b) in w.iter().zip(&t) {
        assert!(*a >= *b && *a <= *b * 1.13 + 0.1, "{w:?}");
    }
    assert!((127.0..=127.0 * 1.13).contains(&wfail), "{wfail}");
}

/// Each published target's section points to where its source is named in full; the
/// recordings' sections do not.
#[test]
fn markdown_points_published_targets_to_their_source() {
    use super::check::{Check, Tolerance, Unit};
    let check = |group: &str| Check {
        group: group.into(),
        ..Check::new(format!("{group}/x"), "q", Unit::Count, 1.0, 1.0, Tolerance::Count)
    };
    let md = super::markdown(&[check("V23"), check("a-full-assured"), check("Vx")]);
    assert!(md.contains(
        "## V23\n\nPublished target: source, conditions and tolerance in \
                         [docs/validation-targets.md §V23](validation-targets.md#v23)."
    ));
    assert_eq!(md.matches("Published target:").count(), 1, "{md}");
}

#[test]
fn markdown_has_one_row_per_check_and_is_deterministic() {
    use super::check::{Check, Tolerance, Unit};
    let mut c = Check::new("x/y/z".into(), "q", Unit::Count, 10.0, 30.0, Tolerance::Count);
    c.group = "x".into();
    let md = super::markdown(&[c]);
    assert_eq!(md.matches("| `x/y/z` |").count(), 1);
    assert!(md.contains("| FAIL |"));
    assert_eq!(
        md,
        super::markdown(&[super::check::Check {
            group: "x".into(),
            ..Check::new("x/y/z".into(), "q", Unit::Count, 10.0, 30.0, Tolerance::Count)
        }])
    );
}
