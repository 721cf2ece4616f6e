//! Unit tests of the conntrack table: the experiments of docs/kernel-semantics.md
//! §Measurements on 6.18 in miniature, and one test per rule of its §Checklist.

use super::*;
use crate::kernel::{KernelProfile, Sysctls};
use crate::packet::{Packet, Proto, TcpFlags, Tuple};
use crate::rng::SimRng;
use crate::time::{SimDuration, SimTime};
use std::net::Ipv4Addr;

const CPU: u16 = 0;

fn table_with(max: u32, buckets: u32, profile: KernelProfile, sysctls: &Sysctls) -> ConntrackTable {
    let cfg = CtConfig::new(sysctls, profile, 2).with_size(max, buckets);
    let mut ct = ConntrackTable::new(cfg, SimRng::stream(7, "conntrack")).unwrap();
    ct.set_netns(0, NetnsConfig::enabled(sysctls).as_init());
    ct
}

fn table(max: u32, buckets: u32) -> ConntrackTable {
    table_with(max, buckets, KernelProfile::LINUX_6_18, &Sysctls::default())
}

fn vip() -> Ipv4Addr {
    Ipv4Addr::new(10, 96, 0, 10)
}

/// The i-th distinct client tuple towards `dst:dport`.
fn flow(proto: Proto, i: u32, dst: Ipv4Addr, dport: u16) -> Tuple {
    let src = Ipv4Addr::from_bits(0x0a0a_0100 + i / 50_000);
    #[allow(clippy::cast_possible_truncation)]
    let sport = 10_000 + (i % 50_000) as u16;
    Tuple::new(proto, src, sport, dst, dport)
}

fn tcp(i: u32) -> Tuple {
    flow(Proto::Tcp, i, vip(), 80)
}

fn udp(i: u32) -> Tuple {
    flow(Proto::Udp, i, vip(), 53)
}

fn pkt(t: Tuple, flags: TcpFlags) -> Packet {
    Packet::new(t, flags)
}

fn secs(s: u64) -> SimTime {
    SimTime::from_secs(s)
}

fn new_conn(ct: &mut ConntrackTable, ns: u16, p: &Packet, now: SimTime) -> ConnId {
    match ct.lookup_or_alloc(ns, CPU, p, now).unwrap() {
        CtLookup::New { id } => id,
        other => panic!("expected New, got {other:?}"),
    }
}

fn open(ct: &mut ConntrackTable, ns: u16, p: &Packet, now: SimTime) -> ConnId {
    let id = new_conn(ct, ns, p, now);
    match ct.confirm(id, CPU, now).unwrap() {
        ConfirmOutcome::Inserted(id) => id,
        other => panic!("expected Inserted, got {other:?}"),
    }
}

/// Sends a packet of an existing flow through lookup + tracker.
fn send(ct: &mut ConntrackTable, ns: u16, t: Tuple, flags: TcpFlags, now: SimTime) -> TrackVerdict {
    let p = pkt(t, flags);
    match ct.lookup_or_alloc(ns, CPU, &p, now).unwrap() {
        CtLookup::Existing { id, dir, .. } => ct.packet(id, dir, CPU, &p, now).unwrap(),
        other => panic!("expected Existing for {t}, got {other:?}"),
    }
}

/// A short HTTP/1.0-style exchange closed by the client; leaves TIME_WAIT ASSURED.
fn client_closed(ct: &mut ConntrackTable, ns: u16, t: Tuple, now: SimTime) -> ConnId {
    let id = open(ct, ns, &pkt(t, TcpFlags::SYN), now);
    let r = ct.conn(id).unwrap().reply;
    for (tup, f) in [
        (r, TcpFlags::SYN_ACK),
        (t, TcpFlags::ACK),
        (t, TcpFlags::FIN_ACK),
        (r, TcpFlags::ACK),
        (r, TcpFlags::FIN_ACK),
        (t, TcpFlags::ACK),
    ] {
        assert_eq!(send(ct, ns, tup, f, now), TrackVerdict::Accept);
    }
    id
}

#[test]
fn entry_fits_the_memory_budget() {
    // Target: <= 96 bytes per entry including buckets at kube-proxy's load factor
    // (buckets = max / 4, 4-byte heads => 1 byte per entry).
    assert_eq!(ENTRY_BYTES, 64);
    let per_entry = ENTRY_BYTES as f64 + 4.0 / 4.0;
    assert!(per_entry <= 96.0, "{per_entry} B/entry");
}

/// docs/kernel-semantics.md §early_drop and §Measurements on 6.18 (a): a table of ASSURED
/// TIME_WAIT entries at max drops every new flow: `drop` per SYN, no `early_drop`, no
/// `insert_failed`, `insert` stays 0 (§Counters), rate-limited log.
#[test]
fn full_table_of_assured_time_wait_drops_every_new_flow() {
    let mut ct = table(100, 512);
    for i in 0..100 {
        let id = client_closed(&mut ct, 0, tcp(i), secs(1));
        let c = ct.conn(id).unwrap();
        assert_eq!(c.tcp_state, Some(CtState::TimeWait));
        assert!(c.assured);
    }
    assert_eq!(ct.count(0), 100);
    for i in 100..150 {
        let out = ct
            .lookup_or_alloc(0, CPU, &pkt(tcp(i), TcpFlags::SYN), secs(2))
            .unwrap();
        assert_eq!(out, CtLookup::Dropped(CtDrop::TableFull));
    }
    let s = ct.stats_sum(0);
    assert_eq!((s.drop, s.early_drop, s.insert_failed, s.insert), (50, 0, 0, 0));
    assert_eq!(ct.count(0), 100);
    // All 50 drops at one instant: 10 lines, 40 suppressed.
    assert_eq!(
        ct.table_full_log(),
        TableFullLog {
            lines: 10,
            suppressed: 40
        }
    );
    assert_eq!(
        ct.table_full_message(0),
        "nf_conntrack: table full, dropping packet"
    );
    assert!(ct.gc_early_drop_armed());
}

/// docs/kernel-semantics.md §gc worker and §Measurements on 6.18 (a): the armed gc trims
/// closing TCP entries of a namespace at >= 95 % of max down to 94 (max 100), touching no
/// counter, and disarms.
#[test]
fn gc_trim_kills_closing_entries_down_to_95_percent_without_counters() {
    let mut ct = table(100, 512);
    for i in 0..100 {
        client_closed(&mut ct, 0, tcp(i), secs(1));
    }
    let _ = ct.lookup_or_alloc(0, CPU, &pkt(tcp(500), TcpFlags::SYN), secs(2));
    let before = ct.stats_sum(0);
    assert!(ct.gc_early_drop_armed());
    ct.gc_step(secs(3));
    assert_eq!(ct.count(0), 94);
    assert_eq!(ct.stats_sum(0), before);
    assert!(!ct.gc_early_drop_armed());
    // Not armed: a second pass kills nothing.
    ct.gc_step(secs(70));
    assert_eq!(ct.count(0), 94);
}

/// docs/kernel-semantics.md §gc worker: the trim spares ASSURED ESTABLISHED entries.
#[test]
fn gc_trim_spares_assured_established_entries() {
    let mut ct = table(100, 512);
    for i in 0..100 {
        let t = tcp(i);
        let id = open(&mut ct, 0, &pkt(t, TcpFlags::SYN), secs(1));
        let r = ct.conn(id).unwrap().reply;
        send(&mut ct, 0, r, TcpFlags::SYN_ACK, secs(1));
        send(&mut ct, 0, t, TcpFlags::ACK, secs(1));
        assert!(ct.conn(id).unwrap().assured);
    }
    let _ = ct.lookup_or_alloc(0, CPU, &pkt(tcp(500), TcpFlags::SYN), secs(2));
    ct.gc_step(secs(3));
    assert_eq!(ct.count(0), 100);
}

/// docs/kernel-semantics.md §early_drop: early drop deletes the non-ASSURED entries of the
/// first bucket (of 8 from the new tuple's bucket) that has any, and counts them.
#[test]
fn early_drop_evicts_unassured_entries_inside_the_window_only() {
    let mut ct = table(200, 512);
    let mut ids = Vec::new();
    for i in 0..200 {
        ids.push(open(&mut ct, 0, &pkt(tcp(i), TcpFlags::SYN), secs(1)));
    }
    let newt = tcp(10_000);
    let start = ct.bucket_of(0, &newt);
    let in_window = |ct: &ConntrackTable, t: &Tuple| {
        let b = ct.bucket_of(0, t);
        (b + 512 - start) % 512 < 8
    };
    let snapshot: Vec<(ConnId, Tuple, Tuple)> = ids
        .iter()
        .map(|id| {
            let c = ct.conn(*id).unwrap();
            (*id, c.original, c.reply)
        })
        .collect();
    let id = new_conn(&mut ct, 0, &pkt(newt, TcpFlags::SYN), secs(2));
    let evicted: Vec<_> = snapshot
        .iter()
        .filter(|(id, ..)| ct.conn(*id).is_none())
        .collect();
    assert!(!evicted.is_empty());
    assert_eq!(ct.stats_sum(0).early_drop, evicted.len() as u64);
    for (_, o, r) in &evicted {
        assert!(in_window(&ct, o) || in_window(&ct, r));
    }
    assert_eq!(ct.count(0), 200 - evicted.len() as u32 + 1);
    assert!(matches!(
        ct.confirm(id, CPU, secs(2)).unwrap(),
        ConfirmOutcome::Inserted(_)
    ));
}

/// docs/kernel-semantics.md §early_drop: an expired entry reaped inside the window
/// frees a slot but does not count as early drop, so the packet still fails.
#[test]
fn early_drop_reaps_expired_entries_without_success() {
    let mut ct = table(1, 512);
    let t = tcp(0);
    open(&mut ct, 0, &pkt(t, TcpFlags::SYN), secs(0)); // expires at 120 s
    // A tuple whose own bucket is just before the expired entry's: the lookup walk
    // (which would reap it too) misses it, the early-drop window covers it.
    let b0 = ct.bucket_of(0, &t);
    let b_reply = ct.bucket_of(0, &t.reversed());
    let newt = (1..200_000)
        .map(tcp)
        .find(|n| {
            let b = ct.bucket_of(0, n);
            (b + 1) % 512 == b0 && b != b_reply
        })
        .unwrap();
    let out = ct
        .lookup_or_alloc(0, CPU, &pkt(newt, TcpFlags::SYN), secs(121))
        .unwrap();
    assert_eq!(out, CtLookup::Dropped(CtDrop::TableFull));
    assert_eq!(ct.count(0), 0);
    assert_eq!(ct.stats_sum(0).early_drop, 0);
    // The next packet fits.
    assert!(matches!(
        ct.lookup_or_alloc(0, CPU, &pkt(newt, TcpFlags::SYN), secs(121))
            .unwrap(),
        CtLookup::New { .. }
    ));
}

/// docs/kernel-semantics.md §early_drop and §Measurements on 6.18 (b): early-drop success
/// against density follows `1 - exp(-16 N f / B)`: sparse 2,000 of 262,144 buckets ~ 11.5 %,
/// dense ~ 98 %.
#[test]
fn early_drop_success_follows_density_law() {
    for (m, buckets) in [(2_000u32, 262_144u32), (4_096, 65_536), (16_384, 65_536)] {
        let mut ct = table(m, buckets);
        for i in 0..m {
            open(&mut ct, 0, &pkt(tcp(i), TcpFlags::SYN), secs(1));
        }
        let attempts = 2_000u32;
        let mut ok = 0u32;
        for k in 0..attempts {
            let p = pkt(tcp(100_000 + k), TcpFlags::SYN);
            if let CtLookup::New { id } = ct.lookup_or_alloc(0, CPU, &p, secs(2)).unwrap() {
                ct.confirm(id, CPU, secs(2)).unwrap();
                ok += 1;
            }
        }
        let rate = f64::from(ok) / f64::from(attempts);
        let model = 1.0 - (-16.0 * f64::from(m) / f64::from(buckets)).exp();
        eprintln!("early drop m={m} B={buckets}: success {rate:.3}, model {model:.3}");
        assert!((rate - model).abs() < 0.035, "m={m} rate {rate} model {model}");
        let s = ct.stats_sum(0);
        assert_eq!(s.drop, u64::from(attempts - ok));
        assert_eq!(s.insert_failed, 0);
    }
}

/// docs/kernel-semantics.md §Retransmitted SYNs scan the same buckets: the retransmitted SYN
/// scans the same 8 buckets, so a SYN that found nothing evictable keeps failing while the
/// table is unchanged.
#[test]
fn retransmitted_syn_fails_in_the_same_window() {
    let mut ct = table(2_000, 262_144);
    for i in 0..2_000 {
        open(&mut ct, 0, &pkt(tcp(i), TcpFlags::SYN), secs(1));
    }
    let mut failed = None;
    for k in 0..200 {
        let p = pkt(tcp(100_000 + k), TcpFlags::SYN);
        match ct.lookup_or_alloc(0, CPU, &p, secs(2)).unwrap() {
            CtLookup::Dropped(CtDrop::TableFull) => {
                failed = Some(p);
                break;
            }
            CtLookup::New { id } => {
                ct.abort(id).unwrap();
            }
            other => panic!("{other:?}"),
        }
    }
    let p = failed.expect("a sparse table fails most SYNs");
    for retry in 1..=6 {
        let out = ct.lookup_or_alloc(0, CPU, &p, secs(2 + retry)).unwrap();
        assert_eq!(out, CtLookup::Dropped(CtDrop::TableFull));
    }
}

/// docs/kernel-semantics.md §Lazy expiry and §Measurements on 6.18 (c): expired TIME_WAIT
/// entries stay counted until a gc pass or a listing reaches them; `conntrack -L` reaps.
#[test]
fn expired_entries_stay_counted_until_listing_reaps_them() {
    let mut sysctls = Sysctls::default();
    sysctls.ct_timeouts.tcp_time_wait = SimDuration::from_secs(10);
    let mut ct = table_with(262_144, 262_144, KernelProfile::LINUX_6_18, &sysctls);
    for i in 0..50 {
        client_closed(&mut ct, 0, tcp(i), secs(0));
    }
    assert_eq!(ct.count(0), 50);
    assert_eq!(ct.count(0), 50, "reading the count does not reap");
    assert_eq!(ct.list(0, secs(5)).len(), 50);
    assert_eq!(ct.count(0), 50);
    assert!(ct.list(0, SimTime::from_millis(12_400)).is_empty());
    assert_eq!(ct.count(0), 0);
}

/// docs/kernel-semantics.md §Lazy expiry: a gc pass removes expired entries at once.
#[test]
fn gc_pass_reaps_expired_entries() {
    let mut sysctls = Sysctls::default();
    sysctls.ct_timeouts.tcp_time_wait = SimDuration::from_secs(10);
    let mut ct = table_with(1_000, 1_024, KernelProfile::LINUX_6_18, &sysctls);
    for i in 0..50 {
        client_closed(&mut ct, 0, tcp(i), secs(0));
    }
    let next = ct.gc_step(secs(5));
    assert_eq!(ct.count(0), 50);
    assert!(next > secs(5));
    ct.gc_step(secs(11));
    assert_eq!(ct.count(0), 0);
}

/// docs/kernel-semantics.md §gc worker: an idle table is scanned every ~60 s; a table
/// of 30 s UDP entries sooner; more than 64000/HZ reaps make the run yield 1 jiffy.
#[test]
fn gc_interval_adapts_and_yields_after_reap_limit() {
    let mut ct = table(10_000, 4_096);
    // 60 s minus the pass duration (at least one jiffy).
    assert_eq!(ct.gc_step(secs(10)), SimTime::from_millis(69_996));
    for i in 0..1_000 {
        open(&mut ct, 0, &pkt(udp(i), TcpFlags::NONE), secs(10));
    }
    let next = ct.gc_step(secs(11));
    // Mean remaining lifetime ~29 s, seeded by 100 x 60 s.
    assert!(next > secs(30) && next < secs(45), "{next}");
    // All 1,000 expired: the first run reaps 257 (> 256 at HZ=250) then yields.
    let t = secs(100);
    let next = ct.gc_step(t);
    assert_eq!(next, t + SimDuration::from_millis(4));
    assert_eq!(ct.count(0), 1_000 - 257);
    let (mut now, mut last, mut runs) = (next, next, 1);
    while ct.count(0) > 0 {
        last = now;
        now = ct.gc_step(now);
        runs += 1;
    }
    // 1,000 reaps at 257 per run: four runs 4 ms apart.
    assert_eq!(runs, 4);
    assert_eq!(last, t + SimDuration::from_millis(12));
}

/// docs/kernel-semantics.md §Lazy expiry and §Measurements on 6.18 (g): new DNAT'd flows reap
/// the expired entries on the two buckets they walk; survival ~ exp(-4 N / B).
#[test]
fn lookups_reap_expired_entries_with_exponential_survival() {
    let mut sysctls = Sysctls::default();
    sysctls.ct_timeouts.udp = SimDuration::from_secs(3);
    let buckets = 16_384u32;
    let mut ct = table_with(1 << 20, buckets, KernelProfile::LINUX_6_18, &sysctls);
    let mut rng = SimRng::from_seed(3);
    let expired = 2_000u32;
    for i in 0..expired {
        let t = flow(Proto::Udp, i, Ipv4Addr::new(10, 10, 2, 9), 5353);
        open(&mut ct, 0, &pkt(t, TcpFlags::NONE), secs(0));
    }
    let n = 3_125u32; // 4N/B = 0.763
    for k in 0..n {
        let t = tcp(200_000 + k);
        let id = new_conn(&mut ct, 0, &pkt(t, TcpFlags::SYN), secs(4));
        let backend = DstNat::To {
            addr: Ipv4Addr::new(10, 10, 2, 2),
            port: Some(9090),
        };
        ct.apply_dst_nat(id, CPU, backend, secs(4)).unwrap();
        ct.apply_src_nat(id, CPU, SrcNat::Null, &mut rng, secs(4))
            .unwrap();
        ct.confirm(id, CPU, secs(4)).unwrap();
    }
    let survived = ct.count(0) - n;
    let frac = f64::from(survived) / f64::from(expired);
    let model = (-4.0 * f64::from(n) / f64::from(buckets)).exp();
    eprintln!("lazy reaping: survival {frac:.3}, model {model:.3}");
    assert!((frac - model).abs() < 0.05, "survival {frac} model {model}");
}

/// docs/kernel-semantics.md §Table and limit and §Measurements on 6.18 (h): every namespace may
/// hold `nf_conntrack_max` entries; a namespace without conntrack tracks nothing.
#[test]
fn each_namespace_reaches_max_independently() {
    let sysctls = Sysctls::default();
    let mut ct = table(100, 512);
    ct.set_netns(1, NetnsConfig::enabled(&sysctls).with_inode(4_026_532_246));
    ct.set_netns(2, NetnsConfig::disabled());
    for ns in [0u16, 1] {
        for i in 0..100 {
            let id = client_closed(&mut ct, ns, tcp(i), secs(1));
            assert_eq!(ct.conn(id).unwrap().ns, ns);
        }
    }
    assert_eq!((ct.count(0), ct.count(1)), (100, 100));
    for ns in [0u16, 1] {
        let out = ct
            .lookup_or_alloc(ns, CPU, &pkt(tcp(999), TcpFlags::SYN), secs(2))
            .unwrap();
        assert_eq!(out, CtLookup::Dropped(CtDrop::TableFull));
    }
    assert_eq!(
        ct.table_full_message(1),
        "nf_conntrack: nf_conntrack: table full in netns 4026532246, dropping packet"
    );
    let out = ct
        .lookup_or_alloc(2, CPU, &pkt(tcp(0), TcpFlags::SYN), secs(2))
        .unwrap();
    assert_eq!(out, CtLookup::Untracked);
    assert_eq!(ct.count(2), 0);
    // Unregistered namespaces behave as disabled.
    let out = ct
        .lookup_or_alloc(9, CPU, &pkt(tcp(0), TcpFlags::SYN), secs(2))
        .unwrap();
    assert_eq!(out, CtLookup::Untracked);
}

/// docs/kernel-semantics.md §Allocation and confirm: unconfirmed entries count from allocation
/// and are invisible to lookups until confirmed; abort frees them.
#[test]
fn unconfirmed_entries_count_but_are_invisible() {
    let mut ct = table(10, 512);
    let p = pkt(tcp(1), TcpFlags::SYN);
    let a = new_conn(&mut ct, 0, &p, secs(0));
    assert_eq!(ct.count(0), 1);
    // Same flow on another CPU before confirm: a second unconfirmed entry.
    let b = new_conn(&mut ct, 0, &p, secs(0));
    assert_ne!(a, b);
    assert_eq!(ct.count(0), 2);
    ct.abort(b).unwrap();
    assert_eq!(ct.count(0), 1);
    assert_eq!(ct.abort(b), Err(CtError::UnknownConn(b)));
    assert!(ct.list(0, secs(0)).is_empty());
}

/// docs/kernel-semantics.md §TCP tracking: TCP ASSURED only when the handshake completes.
#[test]
fn tcp_assured_after_handshake_ack_only() {
    let mut ct = table(10, 512);
    let t = tcp(1);
    let id = open(&mut ct, 0, &pkt(t, TcpFlags::SYN), secs(0));
    let r = ct.conn(id).unwrap().reply;
    send(&mut ct, 0, r, TcpFlags::SYN_ACK, secs(0));
    let c = ct.conn(id).unwrap();
    assert_eq!(c.tcp_state, Some(CtState::SynRecv));
    assert!(c.seen_reply && !c.assured);
    assert_eq!(c.expires, Some(secs(60)));
    send(&mut ct, 0, t, TcpFlags::ACK, secs(1));
    let c = ct.conn(id).unwrap();
    assert_eq!(c.tcp_state, Some(CtState::Established));
    assert!(c.assured);
    assert_eq!(c.expires, Some(secs(1 + 432_000)));
}

/// docs/kernel-semantics.md §TCP tracking: a retransmitted SYN in SYN_SENT does not refresh.
#[test]
fn syn_retransmit_does_not_refresh_timeout() {
    let mut ct = table(10, 512);
    let t = tcp(1);
    let id = open(&mut ct, 0, &pkt(t, TcpFlags::SYN), secs(0));
    for s in [1, 3, 7] {
        let p = pkt(t, TcpFlags::SYN);
        let CtLookup::Existing { ctinfo, .. } = ct.lookup_or_alloc(0, CPU, &p, secs(s)).unwrap() else {
            panic!()
        };
        assert_eq!(ctinfo, CtInfo::New);
        assert_eq!(send(&mut ct, 0, t, TcpFlags::SYN, secs(s)), TrackVerdict::Accept);
    }
    assert_eq!(ct.conn(id).unwrap().expires, Some(secs(120)));
}

/// docs/kernel-semantics.md §TCP tracking: an RST answering an unreplied SYN deletes at once.
#[test]
fn rst_answer_to_unreplied_syn_deletes_entry() {
    let mut ct = table(10, 512);
    let t = tcp(1);
    let id = open(&mut ct, 0, &pkt(t, TcpFlags::SYN), secs(0));
    let r = ct.conn(id).unwrap().reply;
    let v = send(&mut ct, 0, r, TcpFlags::RST.union(TcpFlags::ACK), secs(0));
    assert_eq!(v, TrackVerdict::AcceptDeleted);
    assert_eq!(ct.count(0), 0);
    assert!(ct.conn(id).is_none());
}

/// docs/kernel-semantics.md §TCP tracking and §Port reuse over a TIME_WAIT entry: a new SYN
/// over a TIME_WAIT entry of its own tuple kills and recreates it, even while the table is
/// full.
#[test]
fn syn_over_time_wait_kills_and_recreates_even_when_full() {
    let mut ct = table(100, 512);
    for i in 0..100 {
        client_closed(&mut ct, 0, tcp(i), secs(0));
    }
    let old = ct.conn_ids()[5];
    let t = ct.conn(old).unwrap().original;
    let id = new_conn(&mut ct, 0, &pkt(t, TcpFlags::SYN), secs(5));
    assert!(ct.conn(old).is_none());
    assert_eq!(ct.conn(id).unwrap().tcp_state, Some(CtState::SynSent));
    assert!(matches!(
        ct.confirm(id, CPU, secs(5)).unwrap(),
        ConfirmOutcome::Inserted(_)
    ));
    assert_eq!(ct.count(0), 100);
    let s = ct.stats_sum(0);
    assert_eq!((s.drop, s.early_drop, s.invalid), (0, 0, 0));
}

/// docs/kernel-semantics.md §TCP tracking and §Counters: ignored and invalid packets.
#[test]
fn invalid_tcp_packets_count_invalid_and_pass_untracked() {
    let mut ct = table(10, 512);
    // A bare FIN without an entry: allocated, then rejected by tcp_error.
    let out = ct
        .lookup_or_alloc(0, CPU, &pkt(tcp(1), TcpFlags::FIN), secs(0))
        .unwrap();
    assert_eq!(out, CtLookup::Invalid);
    assert_eq!(ct.count(0), 0);
    // A SYN-ACK without an entry cannot start one.
    let out = ct
        .lookup_or_alloc(0, CPU, &pkt(tcp(2), TcpFlags::SYN_ACK), secs(0))
        .unwrap();
    assert_eq!(out, CtLookup::Invalid);
    // An ACK from the client while SYN_SENT is invalid.
    let t = tcp(3);
    open(&mut ct, 0, &pkt(t, TcpFlags::SYN), secs(0));
    assert_eq!(send(&mut ct, 0, t, TcpFlags::ACK, secs(0)), TrackVerdict::Invalid);
    assert_eq!(ct.stats_sum(0).invalid, 3);
    // Loose pickup: a mid-stream ACK creates an ESTABLISHED entry capped at UNACK.
    let id = open(&mut ct, 0, &pkt(tcp(4), TcpFlags::ACK), secs(0));
    let c = ct.conn(id).unwrap();
    assert_eq!(c.tcp_state, Some(CtState::Established));
    assert_eq!(c.expires, Some(secs(300)));
}

/// docs/kernel-semantics.md §TCP tracking: kube-proxy's timeout overrides apply per namespace.
#[test]
fn namespace_timeouts_override_defaults() {
    let mut sysctls = Sysctls::default();
    sysctls.ct_timeouts.tcp_established = SimDuration::from_secs(86_400);
    let mut ct = table_with(10, 512, KernelProfile::LINUX_6_18, &sysctls);
    let t = tcp(1);
    let id = open(&mut ct, 0, &pkt(t, TcpFlags::SYN), secs(0));
    let r = ct.conn(id).unwrap().reply;
    send(&mut ct, 0, r, TcpFlags::SYN_ACK, secs(0));
    send(&mut ct, 0, t, TcpFlags::ACK, secs(0));
    assert_eq!(ct.conn(id).unwrap().expires, Some(secs(86_400)));
}

/// docs/kernel-semantics.md §UDP tracking: UDP 30 s unreplied and for one exchange
/// within 2 s; 120 s and ASSURED once traffic continues after 2 s; reuse within the
/// timeout refreshes the same entry.
#[test]
fn udp_stream_detection_and_reuse() {
    let mut ct = table(10, 512);
    let t = udp(1);
    let id = open(&mut ct, 0, &pkt(t, TcpFlags::NONE), secs(0));
    assert_eq!(ct.conn(id).unwrap().expires, Some(secs(30)));
    let r = ct.conn(id).unwrap().reply;
    send(&mut ct, 0, r, TcpFlags::NONE, SimTime::from_millis(500));
    let c = ct.conn(id).unwrap();
    assert!(c.seen_reply && !c.assured);
    assert_eq!(c.expires, Some(SimTime::from_millis(30_500)));
    // Same source port reused 10 s later: the same entry.
    let CtLookup::Existing {
        id: again, ctinfo, ..
    } = ct
        .lookup_or_alloc(0, CPU, &pkt(t, TcpFlags::NONE), secs(10))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!((again, ctinfo), (id, CtInfo::Established));
    ct.packet(id, Direction::Original, CPU, &pkt(t, TcpFlags::NONE), secs(10))
        .unwrap();
    let c = ct.conn(id).unwrap();
    assert!(c.assured);
    assert_eq!(c.expires, Some(secs(130)));
}

/// ICMP echo: 30 s refreshed per packet.
#[test]
fn icmp_echo_times_out_after_thirty_seconds() {
    let mut ct = table(10, 512);
    let t = Tuple::new(Proto::Icmp, Ipv4Addr::new(10, 0, 0, 1), 7, vip(), 0);
    let id = open(&mut ct, 0, &pkt(t, TcpFlags::NONE), secs(0));
    send(&mut ct, 0, t.reversed(), TcpFlags::NONE, secs(1));
    assert_eq!(ct.conn(id).unwrap().expires, Some(secs(31)));
    let line = ct.list(0, secs(2))[0].to_string();
    assert_eq!(
        line,
        "icmp     1 29 src=10.0.0.1 dst=10.96.0.10 type=8 code=0 id=7 src=10.96.0.10 dst=10.0.0.1 type=0 code=0 id=7 mark=0 use=1"
    );
}

/// docs/kernel-semantics.md §Observables: `conntrack -L` text.
#[test]
fn listing_prints_conntrack_l_format() {
    let mut ct = table(10, 512);
    let mut rng = SimRng::from_seed(1);
    let t = Tuple::new(Proto::Tcp, Ipv4Addr::new(10, 10, 1, 2), 40_000, vip(), 80);
    let id = new_conn(&mut ct, 0, &pkt(t, TcpFlags::SYN), secs(0));
    let to = DstNat::To {
        addr: Ipv4Addr::new(10, 10, 2, 2),
        port: Some(8080),
    };
    ct.apply_dst_nat(id, CPU, to, secs(0)).unwrap();
    ct.apply_src_nat(id, CPU, SrcNat::Null, &mut rng, secs(0))
        .unwrap();
    ct.confirm(id, CPU, secs(0)).unwrap();
    let line = ct.list(0, SimTime::from_millis(2_500))[0].to_string();
    assert_eq!(
        line,
        "tcp      6 117 SYN_SENT src=10.10.1.2 dst=10.96.0.10 sport=40000 dport=80 [UNREPLIED] src=10.10.2.2 dst=10.10.1.2 sport=8080 dport=40000 mark=0 use=1"
    );
    let r = ct.conn(id).unwrap().reply;
    send(&mut ct, 0, r, TcpFlags::SYN_ACK, secs(3));
    send(&mut ct, 0, t, TcpFlags::ACK, secs(3));
    let line = ct.list(0, secs(4))[0].to_string();
    assert!(
        line.ends_with("sport=8080 dport=40000 [ASSURED] mark=0 use=1"),
        "{line}"
    );
    assert!(line.starts_with("tcp      6 431999 ESTABLISHED "), "{line}");
}

/// docs/kernel-semantics.md §Observables: `conntrack -S` prints per CPU.
#[test]
fn format_stats_prints_each_cpu() {
    let mut ct = table(1, 512);
    open(&mut ct, 0, &pkt(tcp(0), TcpFlags::SYN), secs(0));
    let _ = ct
        .lookup_or_alloc(0, 1, &pkt(tcp(1), TcpFlags::SYN), secs(0))
        .unwrap();
    let text = ct.format_stats(0);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("cpu=0   \tfound=0 invalid=0 insert=0 insert_failed=0 drop=0 "));
    assert!(lines[1].contains(" drop=1 early_drop=1 ") || lines[1].contains(" drop=1 early_drop=0 "));
    assert!(lines[1].ends_with("clash_resolve=0 chaintoolong=0 "));
}

// ----- confirm-time clashes (docs/kernel-semantics.md §Clash resolution, experiment d) -----

fn dns_race(profile: KernelProfile, same_backend: bool) -> (ConntrackTable, ConfirmOutcome) {
    let mut ct = table_with(100, 512, profile, &Sysctls::default());
    let mut rng = SimRng::from_seed(5);
    let t = udp(1);
    let p = pkt(t, TcpFlags::NONE);
    let now = secs(0);
    // Two CPUs allocate for the same tuple before either confirms.
    let a = new_conn(&mut ct, 0, &p, now);
    let b = match ct.lookup_or_alloc(0, 1, &p, now).unwrap() {
        CtLookup::New { id } => id,
        other => panic!("{other:?}"),
    };
    let be = |last| DstNat::To {
        addr: Ipv4Addr::new(10, 244, 0, last),
        port: Some(5353),
    };
    ct.apply_dst_nat(a, CPU, be(2), now).unwrap();
    ct.apply_dst_nat(b, 1, be(if same_backend { 2 } else { 3 }), now)
        .unwrap();
    ct.apply_src_nat(a, CPU, SrcNat::Null, &mut rng, now).unwrap();
    ct.apply_src_nat(b, 1, SrcNat::Null, &mut rng, now).unwrap();
    assert!(matches!(
        ct.confirm(a, CPU, now).unwrap(),
        ConfirmOutcome::Inserted(_)
    ));
    let out = ct.confirm(b, 1, now).unwrap();
    (ct, out)
}

/// docs/kernel-semantics.md §Clash resolution: same backend -> merged, `clash_resolve`.
#[test]
fn udp_race_same_backend_merges() {
    let (ct, out) = dns_race(KernelProfile::LINUX_6_18, true);
    assert!(matches!(out, ConfirmOutcome::ClashMerged { .. }));
    let s = ct.stats_sum(0);
    assert_eq!((s.clash_resolve, s.insert_failed, s.drop), (1, 0, 0));
    assert_eq!(ct.count(0), 1);
}

/// docs/kernel-semantics.md §Clash resolution: different backends -> reply-only entry with a
/// fixed 1 s timeout, hidden from the listing but counted; answers un-NAT through it.
#[test]
fn udp_race_different_backends_inserts_reply_only_on_6_18() {
    let (mut ct, out) = dns_race(KernelProfile::LINUX_6_18, false);
    let ConfirmOutcome::ClashReplyOnly(id) = out else {
        panic!("{out:?}")
    };
    let s = ct.stats_sum(0);
    assert_eq!((s.clash_resolve, s.insert_failed, s.drop), (1, 0, 0));
    assert_eq!(ct.count(0), 2);
    assert_eq!(ct.list(0, SimTime::from_millis(100)).len(), 1);
    let c = ct.conn(id).unwrap();
    assert!(c.nat_clash && c.expires == Some(secs(1)));
    // The answer from the second backend matches the hidden entry and is un-NATed.
    let answer = c.reply;
    let CtLookup::Existing { id: got, dir, .. } = ct
        .lookup_or_alloc(0, CPU, &pkt(answer, TcpFlags::NONE), SimTime::from_millis(10))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!((got, dir), (id, Direction::Reply));
    assert_eq!(c.translated(Direction::Reply), udp(1).reversed());
    // Never ASSURED, timeout fixed.
    ct.packet(id, dir, CPU, &pkt(answer, TcpFlags::NONE), secs(0))
        .unwrap();
    assert_eq!(ct.conn(id).unwrap().expires, Some(secs(1)));
    // Gone after a gc pass past 1 s.
    ct.gc_step(secs(2));
    assert_eq!(ct.count(0), 1);
}

/// docs/kernel-semantics.md §Before 5.6: the A/AAAA races (docs/validation-targets.md §V05):
/// on 5.4 the different-backend race is an
/// `insert_failed` + `drop`; a same-backend merge still counts `insert_failed`.
#[test]
fn udp_race_different_backends_fails_on_5_4() {
    let (ct, out) = dns_race(KernelProfile::LINUX_5_4, false);
    assert_eq!(out, ConfirmOutcome::Dropped(CtDrop::InsertFailed));
    let s = ct.stats_sum(0);
    assert_eq!((s.clash_resolve, s.insert_failed, s.drop), (0, 1, 1));
    assert!(!ct.format_stats(0).contains("clash_resolve"));
    let (ct, out) = dns_race(KernelProfile::LINUX_5_4, true);
    assert!(matches!(out, ConfirmOutcome::ClashMerged { .. }));
    let s = ct.stats_sum(0);
    assert_eq!((s.insert_failed, s.drop), (1, 0));
}

/// docs/kernel-semantics.md §Clash resolution: TCP does not allow clashes.
#[test]
fn tcp_race_same_tuple_is_insert_failed_and_drop() {
    let mut ct = table(100, 512);
    let p = pkt(tcp(1), TcpFlags::SYN);
    let a = new_conn(&mut ct, 0, &p, secs(0));
    let b = new_conn(&mut ct, 0, &p, secs(0));
    ct.confirm(a, CPU, secs(0)).unwrap();
    assert_eq!(
        ct.confirm(b, CPU, secs(0)).unwrap(),
        ConfirmOutcome::Dropped(CtDrop::InsertFailed)
    );
    let s = ct.stats_sum(0);
    assert_eq!((s.insert_failed, s.drop, s.clash_resolve), (1, 1, 0));
    assert_eq!(ct.count(0), 1);
}

/// docs/kernel-semantics.md §Clash resolution: a chain over the 50..79 limit -> `chaintoolong`
/// + `insert_failed`, no `drop`.
#[test]
fn chain_too_long_counts_chaintoolong_and_insert_failed_only() {
    let mut ct = table(10_000, 512);
    let target = ct.bucket_of(0, &udp(0));
    let colliding: Vec<Tuple> = (0..200_000)
        .map(udp)
        .filter(|t| ct.bucket_of(0, t) == target)
        .collect();
    let mut colliding = colliding.into_iter();
    // Grow the chain to 81 nodes; some inserts may already fail on the way.
    while ct.chain_len(target) < 81 {
        let t = colliding.next().unwrap();
        let id = new_conn(&mut ct, 0, &pkt(t, TcpFlags::NONE), secs(0));
        let _ = ct.confirm(id, CPU, secs(0)).unwrap();
    }
    let before = ct.stats_sum(0);
    let t = colliding.next().unwrap();
    let id = new_conn(&mut ct, 0, &pkt(t, TcpFlags::NONE), secs(0));
    assert_eq!(
        ct.confirm(id, CPU, secs(0)).unwrap(),
        ConfirmOutcome::Dropped(CtDrop::ChainTooLong)
    );
    let s = ct.stats_sum(0);
    assert_eq!(s.chaintoolong - before.chaintoolong, 1);
    assert_eq!(s.insert_failed - before.insert_failed, 1);
    assert_eq!(s.drop, 0);
}

// ----- NAT (docs/kernel-semantics.md §NAT port search, experiment e) -----

fn snat_to(port_lo: u16, port_hi: u16) -> SrcNat {
    SrcNat::Snat(NatRange::single(Ipv4Addr::new(10, 10, 2, 1)).with_ports(port_lo, port_hi))
}

fn srv() -> Ipv4Addr {
    Ipv4Addr::new(10, 10, 2, 2)
}

/// Opens a SNATed TCP connection attempt; returns the confirm outcome.
fn snat_syn(
    ct: &mut ConntrackTable,
    rng: &mut SimRng,
    i: u32,
    seq: u32,
    nat: SrcNat,
    now: SimTime,
) -> ConfirmOutcome {
    let t = flow(Proto::Tcp, i, srv(), 7070);
    let mut p = pkt(t, TcpFlags::SYN);
    p.seq = seq;
    let id = new_conn(ct, 0, &p, now);
    ct.apply_dst_nat(id, CPU, DstNat::Null, now).unwrap();
    ct.apply_src_nat(id, CPU, nat, rng, now).unwrap();
    ct.confirm(id, CPU, now).unwrap()
}

/// docs/kernel-semantics.md §NAT port search and §Measurements on 6.18 (e): with the only SNAT
/// port held by an ESTABLISHED flow each SYN fails with `insert_failed` + `drop`; `found`
/// unchanged.
#[test]
fn snat_single_port_held_by_established_flow_fails_each_syn() {
    let mut ct = table(1_000, 512);
    let mut rng = SimRng::from_seed(9);
    let ConfirmOutcome::Inserted(held) =
        snat_syn(&mut ct, &mut rng, 0, 1_000, snat_to(40_000, 40_000), secs(0))
    else {
        panic!()
    };
    let t = ct.conn(held).unwrap().original;
    let r = ct.conn(held).unwrap().reply;
    assert_eq!(r.dport, 40_000);
    send(&mut ct, 0, r, TcpFlags::SYN_ACK, secs(0));
    send(&mut ct, 0, t, TcpFlags::ACK, secs(0));
    for syn in 0..3 {
        let out = snat_syn(&mut ct, &mut rng, 1, 5_000, snat_to(40_000, 40_000), secs(syn));
        assert_eq!(out, ConfirmOutcome::Dropped(CtDrop::InsertFailed));
    }
    let s = ct.stats_sum(0);
    assert_eq!((s.insert_failed, s.drop, s.found), (3, 3, 0));
}

/// docs/kernel-semantics.md §NAT port search and §Measurements on 6.18 (e): once the holder is
/// in TIME_WAIT, a new SYN whose sequence is ahead evicts it; one behind fails.
#[test]
fn snat_time_wait_eviction_depends_on_sequence_order() {
    let mut ct = table(1_000, 512);
    let mut rng = SimRng::from_seed(9);
    let ConfirmOutcome::Inserted(held) =
        snat_syn(&mut ct, &mut rng, 0, 1_000_000, snat_to(40_000, 40_000), secs(0))
    else {
        panic!()
    };
    let t = ct.conn(held).unwrap().original;
    let r = ct.conn(held).unwrap().reply;
    for (tup, f) in [
        (r, TcpFlags::SYN_ACK),
        (t, TcpFlags::ACK),
        (t, TcpFlags::FIN_ACK),
        (r, TcpFlags::ACK),
        (r, TcpFlags::FIN_ACK),
        (t, TcpFlags::ACK),
    ] {
        send(&mut ct, 0, tup, f, secs(0));
    }
    assert_eq!(ct.conn(held).unwrap().tcp_state, Some(CtState::TimeWait));
    let behind = snat_syn(&mut ct, &mut rng, 1, 10, snat_to(40_000, 40_000), secs(1));
    assert_eq!(behind, ConfirmOutcome::Dropped(CtDrop::InsertFailed));
    let ahead = snat_syn(&mut ct, &mut rng, 2, 2_000_000, snat_to(40_000, 40_000), secs(2));
    assert!(matches!(ahead, ConfirmOutcome::Inserted(_)));
    assert!(ct.conn(held).is_none());
    // Old kernels do not evict.
    let mut old = table_with(1_000, 512, KernelProfile::LINUX_5_4, &Sysctls::default());
    let ConfirmOutcome::Inserted(h) =
        snat_syn(&mut old, &mut rng, 0, 1_000_000, snat_to(40_000, 40_000), secs(0))
    else {
        panic!()
    };
    let (t, r) = (old.conn(h).unwrap().original, old.conn(h).unwrap().reply);
    for (tup, f) in [
        (r, TcpFlags::SYN_ACK),
        (t, TcpFlags::ACK),
        (t, TcpFlags::FIN_ACK),
        (r, TcpFlags::ACK),
        (r, TcpFlags::FIN_ACK),
        (t, TcpFlags::ACK),
    ] {
        send(&mut old, 0, tup, f, secs(0));
    }
    let out = snat_syn(&mut old, &mut rng, 2, 2_000_000, snat_to(40_000, 40_000), secs(2));
    assert_eq!(out, ConfirmOutcome::Dropped(CtDrop::InsertFailed));
}

/// docs/kernel-semantics.md §Counters, §NAT port search and §Measurements on 6.18 (e): 195
/// concurrent connections through a 200-port SNAT range all succeed while `found` counts the taken
/// probes.
#[test]
fn snat_port_search_counts_found_without_insert_failed() {
    let mut ct = table(1_000, 512);
    let mut rng = SimRng::from_seed(11);
    for i in 0..195 {
        let out = snat_syn(&mut ct, &mut rng, i, 1, snat_to(40_000, 40_199), secs(0));
        assert!(matches!(out, ConfirmOutcome::Inserted(_)), "{i}: {out:?}");
    }
    let s = ct.stats_sum(0);
    assert_eq!(s.insert_failed, 0);
    eprintln!("195 of 200 SNAT ports: found {}", s.found);
    assert!(s.found > 195, "found {}", s.found);
}

/// docs/kernel-semantics.md §NAT port search: the null SRC binding keeps the source port unless
/// the reply tuple is taken, then remaps it within its class (`found` += 1).
#[test]
fn null_binding_remaps_source_port_on_reply_collision() {
    let mut ct = table(1_000, 512);
    let mut rng = SimRng::from_seed(2);
    let client = Ipv4Addr::new(10, 244, 1, 5);
    let backend = Ipv4Addr::new(10, 244, 2, 7);
    // Flow A via the Service VIP, DNATed to backend:8080.
    let a = Tuple::new(Proto::Tcp, client, 40_000, vip(), 80);
    let ida = new_conn(&mut ct, 0, &pkt(a, TcpFlags::SYN), secs(0));
    ct.apply_dst_nat(
        ida,
        CPU,
        DstNat::To {
            addr: backend,
            port: Some(8080),
        },
        secs(0),
    )
    .unwrap();
    let out = ct
        .apply_src_nat(ida, CPU, SrcNat::Null, &mut rng, secs(0))
        .unwrap();
    assert_eq!(out, Tuple::new(Proto::Tcp, client, 40_000, backend, 8080));
    ct.confirm(ida, CPU, secs(0)).unwrap();
    // Flow B straight to the backend from the same source port.
    let b = Tuple::new(Proto::Tcp, client, 40_000, backend, 8080);
    let idb = new_conn(&mut ct, 0, &pkt(b, TcpFlags::SYN), secs(0));
    ct.apply_dst_nat(idb, CPU, DstNat::Null, secs(0)).unwrap();
    let out = ct
        .apply_src_nat(idb, CPU, SrcNat::Null, &mut rng, secs(0))
        .unwrap();
    assert_ne!(out.sport, 40_000);
    assert!(out.sport >= 1024);
    assert_eq!(out.src, client);
    assert!(ct.conn(idb).unwrap().src_nat);
    assert!(matches!(
        ct.confirm(idb, CPU, secs(0)).unwrap(),
        ConfirmOutcome::Inserted(_)
    ));
    assert!(ct.stats_sum(0).found >= 1);
}

/// docs/kernel-semantics.md §NAT port search: MASQUERADE keeps the source port when free;
/// `--random-fully` never prefers it.
#[test]
fn masquerade_keeps_port_unless_random_fully() {
    let mut ct = table(1_000, 512);
    let mut rng = SimRng::from_seed(4);
    let node = Ipv4Addr::new(192, 168, 0, 10);
    let masq = |random_fully| SrcNat::Masquerade {
        addr: node,
        ports: None,
        random: false,
        random_fully,
    };
    let t = flow(Proto::Tcp, 1, Ipv4Addr::new(1, 1, 1, 1), 443);
    let id = new_conn(&mut ct, 0, &pkt(t, TcpFlags::SYN), secs(0));
    let out = ct.apply_src_nat(id, CPU, masq(false), &mut rng, secs(0)).unwrap();
    assert_eq!((out.src, out.sport), (node, t.sport));
    let mut kept = 0;
    for i in 2..22 {
        let t = flow(Proto::Tcp, i, Ipv4Addr::new(1, 1, 1, 1), 443);
        let id = new_conn(&mut ct, 0, &pkt(t, TcpFlags::SYN), secs(0));
        let out = ct.apply_src_nat(id, CPU, masq(true), &mut rng, secs(0)).unwrap();
        if out.sport == t.sport {
            kept += 1;
        }
    }
    assert!(kept <= 1);
    assert_eq!(
        ct.apply_src_nat(id, CPU, masq(true), &mut rng, secs(0)),
        Err(CtError::AlreadyBound(id, "SRC"))
    );
}

/// The 4.19 rover: concurrent SNATs (unconfirmed, invisible to each other) pick the
/// same port without `--random-fully` (the XING race, V01) and clash at confirm.
#[test]
fn sequential_rover_races_concurrent_snat_on_4_19() {
    let mut ct = table_with(1_000, 512, KernelProfile::LINUX_4_19, &Sysctls::default());
    let mut rng = SimRng::from_seed(1);
    let node = Ipv4Addr::new(192, 168, 0, 10);
    let nat = SrcNat::Masquerade {
        addr: node,
        ports: Some((1024, 65_535)),
        random: false,
        random_fully: false,
    };
    // A holder takes port 5000; two pods then both want 5000, find it taken and
    // search from the shared rover.
    let dst = Ipv4Addr::new(1, 1, 1, 1);
    let h = Tuple::new(Proto::Tcp, Ipv4Addr::new(10, 244, 0, 1), 5_000, dst, 443);
    let idh = new_conn(&mut ct, 0, &pkt(h, TcpFlags::SYN), secs(0));
    ct.apply_src_nat(idh, CPU, nat, &mut rng, secs(0)).unwrap();
    ct.confirm(idh, CPU, secs(0)).unwrap();
    let a = Tuple::new(Proto::Tcp, Ipv4Addr::new(10, 244, 0, 2), 5_000, dst, 443);
    let b = Tuple::new(Proto::Tcp, Ipv4Addr::new(10, 244, 0, 3), 5_000, dst, 443);
    let ida = new_conn(&mut ct, 0, &pkt(a, TcpFlags::SYN), secs(0));
    let idb = new_conn(&mut ct, 0, &pkt(b, TcpFlags::SYN), secs(0));
    let pa = ct.apply_src_nat(ida, CPU, nat, &mut rng, secs(0)).unwrap();
    let pb = ct.apply_src_nat(idb, 1, nat, &mut rng, secs(0)).unwrap();
    assert_eq!(pa.sport, pb.sport);
    assert!(matches!(
        ct.confirm(ida, CPU, secs(0)).unwrap(),
        ConfirmOutcome::Inserted(_)
    ));
    assert_eq!(
        ct.confirm(idb, 1, secs(0)).unwrap(),
        ConfirmOutcome::Dropped(CtDrop::InsertFailed)
    );
}

#[test]
fn api_misuse_is_an_error_not_a_panic() {
    let mut ct = table(10, 512);
    let id = open(&mut ct, 0, &pkt(tcp(1), TcpFlags::SYN), secs(0));
    assert_eq!(ct.confirm(id, CPU, secs(0)), Err(CtError::AlreadyConfirmed(id)));
    assert_eq!(
        ct.lookup_or_alloc(0, 7, &pkt(tcp(2), TcpFlags::SYN), secs(0)),
        Err(CtError::UnknownCpu { cpu: 7, cpus: 2 })
    );
    ct.kill(id).unwrap();
    assert_eq!(
        ct.packet(id, Direction::Original, CPU, &pkt(tcp(1), TcpFlags::ACK), secs(0)),
        Err(CtError::UnknownConn(id))
    );
    let cfg = CtConfig::new(&Sysctls::default(), KernelProfile::LINUX_6_18, 0);
    assert!(ConntrackTable::new(cfg, SimRng::from_seed(0)).is_err());
}
