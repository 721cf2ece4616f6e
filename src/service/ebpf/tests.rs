use super::*;
use crate::service::synthetic_cluster_ip;

const GIB: u64 = 1 << 30;

fn pod() -> Ipv4Addr {
    Ipv4Addr::new(10, 244, 3, 3)
}

#[test]
fn dynamic_sizes_reproduce_cilium_examples_and_clamp() {
    // The calculation examples in cilium's mapsize comment (before clamping).
    for (mem, tcp, any) in [
        (GIB / 2, 33_140, 16_570),
        (GIB, 66_280, 33_140),
        (4 * GIB, 265_121, 132_560),
        (16 * GIB, 1_060_485, 530_242),
    ] {
        assert_eq!(dynamic_entries(CT_TCP_DEFAULT, mem, DYNAMIC_SIZE_RATIO), tcp);
        assert_eq!(dynamic_entries(CT_ANY_DEFAULT, mem, DYNAMIC_SIZE_RATIO), any);
    }
    assert_eq!(
        CtMapSizes::dynamic(GIB, DYNAMIC_SIZE_RATIO),
        CtMapSizes {
            tcp: 131_072,
            any: 65_536
        }
    );
    assert_eq!(
        CtMapSizes::dynamic(16 * GIB, DYNAMIC_SIZE_RATIO),
        CtMapSizes {
            tcp: 1_060_485,
            any: 530_242
        }
    );
    assert_eq!(
        CtMapSizes::dynamic(1 << 50, 1.0),
        CtMapSizes {
            tcp: CT_MAX,
            any: CT_MAX
        }
    );
    assert_eq!(CtMapSizes::dynamic(GIB, 0.0), CtMapSizes::FIXED_DEFAULT);
}

#[test]
fn lru_map_evicts_the_least_recently_touched_live_flow() {
    let mut m = BpfCtMap::new(3, CtMapKind::Lru);
    let t = |p| Tuple::new(Proto::Tcp, pod(), p, Ipv4Addr::new(10, 244, 9, 9), 80);
    let life = SimDuration::from_secs(60);
    for p in 1..=3 {
        assert_eq!(
            m.create(t(p), life, SimTime::ZERO),
            CtInsert::Created { evicted_live: false }
        );
    }
    m.touch(t(1));
    assert_eq!(
        m.create(t(4), life, SimTime::from_secs(1)),
        CtInsert::Created { evicted_live: true }
    );
    assert!(
        !m.is_live(&t(2), SimTime::from_secs(1)),
        "2 was least recently used"
    );
    assert!(m.is_live(&t(1), SimTime::from_secs(1)));
    assert_eq!(m.len(), 3);
    assert!((m.pressure() - 1.0).abs() < 1e-9);
    // Expired victims are not live evictions.
    assert_eq!(
        m.create(t(5), life, SimTime::from_secs(100)),
        CtInsert::Created { evicted_live: false }
    );
    assert_eq!(m.stats().evicted_live, 1);
    assert_eq!(m.stats().evicted_expired, 1);
}

#[test]
fn hash_map_refuses_inserts_when_full() {
    let svcs = synthetic_cluster_ip(1, 2, false);
    let cfg = EbpfConfig {
        ct_sizes: CtMapSizes { tcp: 2, any: 2 },
        ct_kind: CtMapKind::Hash,
        ..EbpfConfig::default()
    };
    let mut p = EbpfProxy::new(&svcs, &cfg);
    let mut rng = SimRng::from_seed(1);
    let t = |port| Tuple::new(Proto::Tcp, pod(), port, svcs[0].cluster_ip, 80);
    assert_eq!(
        p.first_packet(t(1), &mut rng, SimTime::ZERO).verdict,
        ProxyVerdict::Translate
    );
    assert_eq!(
        p.first_packet(t(2), &mut rng, SimTime::ZERO).verdict,
        ProxyVerdict::Translate
    );
    let fp = p.first_packet(t(3), &mut rng, SimTime::ZERO);
    assert_eq!(fp.verdict, ProxyVerdict::Drop(ProxyDrop::CtMapInsertFailed));
    assert_eq!(p.ct_tcp().stats().insert_failed, 1);
    // After the SYN lifetime a GC pass frees the slots.
    let pass = p.gc(SimTime::from_secs(61));
    assert_eq!(pass.deleted, 2);
    assert_eq!(
        p.first_packet(t(3), &mut rng, SimTime::from_secs(61)).verdict,
        ProxyVerdict::Translate
    );
}

#[test]
fn socket_lb_translates_at_connect_with_constant_cost() {
    let svcs = synthetic_cluster_ip(2000, 10, false);
    let mut p = EbpfProxy::new(&svcs, &EbpfConfig::default());
    let mut rng = SimRng::from_seed(1);
    let mut costs = Vec::new();
    for (i, s) in [0usize, 1000, 1999].into_iter().enumerate() {
        #[allow(clippy::cast_possible_truncation)]
        let fp = p.first_packet(
            Tuple::new(Proto::Tcp, pod(), 1000 + i as u16, svcs[s].cluster_ip, 80),
            &mut rng,
            SimTime::ZERO,
        );
        assert_eq!(fp.verdict, ProxyVerdict::Translate);
        assert!(!fp.masquerade);
        assert_eq!(
            fp.note,
            ModeNote::Ebpf {
                evicted_live_flow: false,
                netfilter_tracks: true
            }
        );
        assert_eq!(fp.cost.rules_evaluated, 0);
        costs.push(fp.cost);
    }
    assert!(costs.iter().all(|c| *c == costs[0]));
    assert_eq!(p.ct_tcp().len(), 3);
    let udp = Tuple::new(Proto::Udp, pod(), 5353, Ipv4Addr::new(8, 8, 8, 8), 53);
    assert_eq!(
        p.first_packet(udp, &mut rng, SimTime::ZERO).verdict,
        ProxyVerdict::NotService
    );
    assert_eq!(p.ct_any().len(), 1, "every pod flow is tracked, Service or not");
}

#[test]
fn ct_lifetimes_follow_tcp_state_and_the_10s_close() {
    let svcs = synthetic_cluster_ip(1, 1, false);
    let mut p = EbpfProxy::new(&svcs, &EbpfConfig::default());
    let mut rng = SimRng::from_seed(1);
    let t = Tuple::new(Proto::Tcp, pod(), 1, svcs[0].cluster_ip, 80);
    let b = p.first_packet(t, &mut rng, SimTime::ZERO).backend.unwrap();
    let ct = Tuple::new(Proto::Tcp, pod(), 1, *b.ip(), b.port());
    assert!(p.ct_tcp().is_live(&ct, SimTime::from_secs(59)));
    assert!(
        !p.ct_tcp().is_live(&ct, SimTime::from_secs(60)),
        "SYN lifetime 60 s"
    );
    let now = SimTime::from_secs(10);
    assert!(p.packet(ct, Direction::Reply, TcpFlags::SYN_ACK, now).found);
    assert!(
        p.ct_tcp().is_live(&ct, SimTime::from_secs(21_609)),
        "established 21,600 s"
    );
    p.packet(ct, Direction::Original, TcpFlags::FIN_ACK, now);
    assert!(
        p.ct_tcp().is_live(&ct, SimTime::from_secs(100)),
        "one FIN is not a close"
    );
    p.packet(ct, Direction::Reply, TcpFlags::FIN_ACK, now);
    assert!(p.ct_tcp().is_live(&ct, SimTime::from_secs(19)));
    assert!(
        !p.ct_tcp().is_live(&ct, SimTime::from_secs(20)),
        "closed: 10 s, not 120 s"
    );
    let later = p.packet(ct, Direction::Original, TcpFlags::ACK, SimTime::from_secs(30));
    assert!(!later.found && later.recreated);
}

#[test]
fn gc_interval_adapts_to_the_delete_ratio() {
    let g = GcSchedule::default();
    assert_eq!(g.interval, SimDuration::from_secs(300));
    assert_eq!(g.next(0.0), g, "nothing deleted: unchanged");
    assert_eq!(g.next(0.01).interval, SimDuration::from_secs(450));
    assert_eq!(g.next(0.10).interval, SimDuration::from_secs(300));
    assert_eq!(g.next(0.5).interval, SimDuration::from_secs(150));
    assert_eq!(
        g.next(0.99).interval,
        SimDuration::from_secs(30),
        "ratio capped at 0.9"
    );
    let tiny = GcSchedule {
        interval: SimDuration::from_secs(12),
    };
    assert_eq!(tiny.next(0.9).interval, GcSchedule::MIN);
    let big = GcSchedule {
        interval: SimDuration::from_secs(40_000),
    };
    assert_eq!(big.next(0.01).interval, GcSchedule::MAX_LRU);
}

#[test]
fn lb_objects_count_frontends_slots_and_maglev_tables() {
    let cfg = EbpfConfig {
        node_ips: vec![Ipv4Addr::new(192, 168, 0, 2), Ipv4Addr::new(192, 168, 1, 2)],
        selection: BackendSelection::Maglev,
        ..EbpfConfig::default()
    };
    let p = EbpfProxy::new(&synthetic_cluster_ip(10, 3, false), &cfg);
    assert_eq!(
        p.objects(),
        EbpfObjects {
            frontends: 10,
            service_entries: 40,
            backends: 30,
            rev_nat: 10,
            maglev_tables: 0
        }
    );
    let p = EbpfProxy::new(&synthetic_cluster_ip(10, 3, true), &cfg);
    assert_eq!(
        p.objects().frontends,
        30,
        "ClusterIP + one NodePort per node address"
    );
    assert_eq!(p.objects().service_entries, 120);
    assert_eq!(p.objects().maglev_tables, 10);
}

#[test]
fn maglev_is_consistent_per_tuple_and_spreads_across_backends() {
    let node = Ipv4Addr::new(192, 168, 0, 2);
    let cfg = EbpfConfig {
        node_ips: vec![node],
        selection: BackendSelection::Maglev,
        maglev_table_size: 251,
        ..EbpfConfig::default()
    };
    let svcs = synthetic_cluster_ip(1, 4, true);
    let mut p = EbpfProxy::new(&svcs, &cfg);
    let mut rng = SimRng::from_seed(1);
    let np = svcs[0].node_port.unwrap();
    let t = |port| Tuple::new(Proto::Tcp, Ipv4Addr::new(203, 0, 113, 1), port, node, np);
    let a = p.first_packet(t(7), &mut rng, SimTime::ZERO);
    assert!(a.masquerade, "SNAT mode for Cluster policy");
    assert_eq!(p.first_packet(t(7), &mut rng, SimTime::ZERO).backend, a.backend);
    let seen: std::collections::BTreeSet<_> = (0..200)
        .map(|i| p.first_packet(t(1000 + i), &mut rng, SimTime::ZERO).backend)
        .collect();
    assert_eq!(seen.len(), 4);
    let table = maglev_table(&crate::service::ready_backends(&svcs[0]).collect::<Vec<_>>(), 251);
    let mut per = [0usize; 4];
    for i in &table {
        per[usize::from(*i)] += 1;
    }
    assert!(per.iter().all(|n| (61..=65).contains(n)), "{per:?}");
}
