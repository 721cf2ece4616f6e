use super::*;
use crate::service::{Endpoint, synthetic_cluster_ip};

fn pod() -> Ipv4Addr {
    Ipv4Addr::new(10, 244, 3, 3)
}

fn syn(dst: Ipv4Addr, sport: u16) -> Tuple {
    Tuple::new(Proto::Tcp, pod(), sport, dst, 80)
}

/// A connection that completes its handshake and closes from the client side, ending in
/// IPVS TIME_WAIT.
fn run_to_time_wait(p: &mut IpvsProxy, t: Tuple, now: SimTime) {
    for (dir, flags) in [
        (Direction::Reply, TcpFlags::SYN_ACK),
        (Direction::Original, TcpFlags::ACK),
        (Direction::Original, TcpFlags::FIN_ACK),
        (Direction::Reply, TcpFlags::FIN_ACK),
        (Direction::Original, TcpFlags::ACK),
    ] {
        p.packet(t, dir, flags, now);
    }
}

/// docs/kube-proxy.md §Objects per mode, IPVS row.
#[test]
fn iptables_rules_are_constant_and_ipsets_grow_with_services() {
    let cfg = ProxyConfig::default();
    let mut counts = Vec::new();
    for s in [1, 10, 1000] {
        let mut svcs = synthetic_cluster_ip(s, 3, false);
        // node-0 hosts one endpoint in three.
        let p = IpvsProxy::new(&svcs, &IpvsConfig::new(cfg.clone(), KernelVersion::new(6, 18)));
        let rs = p.ruleset();
        let nat = rs.table(TableKind::Nat).user_rule_count();
        let filter = rs.table(TableKind::Filter).user_rule_count();
        counts.push((nat, filter));
        let members = |name: &str| rs.ipset(rs.ipset_id(name).unwrap()).unwrap().len();
        assert_eq!(members("KUBE-CLUSTER-IP"), s);
        assert_eq!(members("KUBE-LOOP-BACK"), s, "one local endpoint per Service");
        assert_eq!(members("KUBE-IPVS-IPS"), s);
        assert_eq!(p.virtual_servers().len(), s);
        let real: usize = p.virtual_servers().iter().map(|v| v.real_servers().len()).sum();
        assert_eq!(real, 3 * s);
        assert_eq!(p.bound_addresses(), s);
        svcs.clear();
    }
    // KUBE-SERVICES 4, KUBE-POSTROUTING 4, KUBE-LOAD-BALANCER 1, KUBE-MARK-MASQ 1;
    // KUBE-FORWARD 2, KUBE-NODE-PORT 1, KUBE-SOURCE-RANGES-FIREWALL 1, KUBE-IPVS-FILTER 6.
    assert!(counts.iter().all(|c| *c == (10, 10)), "{counts:?}");
}

#[test]
fn node_ports_get_a_virtual_server_per_node_address_and_a_bitmap_entry() {
    let cfg = ProxyConfig {
        node_ips: vec![Ipv4Addr::new(192, 168, 0, 2), Ipv4Addr::new(192, 168, 1, 2)],
        ..ProxyConfig::default()
    };
    let svcs = synthetic_cluster_ip(5, 2, true);
    let mut p = IpvsProxy::new(&svcs, &IpvsConfig::new(cfg, KernelVersion::new(6, 18)));
    assert_eq!(p.virtual_servers().len(), 5 + 2 * 5);
    let rs = p.ruleset();
    assert_eq!(
        rs.ipset(rs.ipset_id("KUBE-NODE-PORT-TCP").unwrap())
            .unwrap()
            .len(),
        5
    );
    let mut rng = SimRng::from_seed(1);
    let t = Tuple::new(
        Proto::Tcp,
        Ipv4Addr::new(203, 0, 113, 9),
        5555,
        Ipv4Addr::new(192, 168, 1, 2),
        30_003,
    );
    let fp = p.first_packet(t, &mut rng, SimTime::ZERO);
    assert_eq!(fp.verdict, ProxyVerdict::Translate);
    assert!(fp.masquerade, "NodePort traffic is marked by KUBE-NODE-PORT-TCP");
    assert!(crate::service::ready_backends(&svcs[3]).any(|b| Some(b) == fp.backend));
}

#[test]
fn round_robin_cycles_and_first_packet_cost_is_flat() {
    let svcs = synthetic_cluster_ip(300, 4, false);
    let mut p = IpvsProxy::new(&svcs, &IpvsConfig::default());
    let mut rng = SimRng::from_seed(1);
    let mut costs = Vec::new();
    for (k, s) in [0usize, 150, 299].into_iter().enumerate() {
        let mut seen = Vec::new();
        for i in 0..8u16 {
            let fp = p.first_packet(
                syn(svcs[s].cluster_ip, 1000 * (k as u16 + 1) + i),
                &mut rng,
                SimTime::ZERO,
            );
            assert_eq!(fp.verdict, ProxyVerdict::Translate);
            assert!(!fp.masquerade);
            costs.push(fp.cost);
            seen.push(fp.backend.unwrap());
        }
        // rr: 0,1,2,3,0,1,2,3.
        assert_eq!(seen[..4], seen[4..]);
        let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
        assert_eq!(distinct.len(), 4);
    }
    assert!(costs.iter().all(|c| *c == costs[0]), "{costs:?}");
    assert_eq!(costs[0].scheduler_ops, 1);
    assert!(costs[0].hash_lookups >= 3, "ipset + service + connection lookups");
}

#[test]
fn least_connections_prefers_the_idle_real_server() {
    let svcs = synthetic_cluster_ip(1, 3, false);
    let cfg = IpvsConfig {
        scheduler: Scheduler::Lc,
        ..IpvsConfig::default()
    };
    let mut p = IpvsProxy::new(&svcs, &cfg);
    let mut rng = SimRng::from_seed(1);
    let vip = svcs[0].cluster_ip;
    // Two established connections on whatever lc picks first and second.
    let a = syn(vip, 1);
    let b = syn(vip, 2);
    let ba = p.first_packet(a, &mut rng, SimTime::ZERO).backend;
    p.packet(a, Direction::Original, TcpFlags::ACK, SimTime::ZERO);
    let bb = p.first_packet(b, &mut rng, SimTime::ZERO).backend;
    assert_ne!(ba, bb);
    let fp = p.first_packet(syn(vip, 3), &mut rng, SimTime::ZERO);
    assert_ne!(fp.backend, ba);
    assert_ne!(fp.backend, bb);
    assert_eq!(fp.cost.scheduler_ops, 3, "lc examines every real server");
}

#[test]
fn source_hashing_pins_a_client_to_one_real_server() {
    let svcs = synthetic_cluster_ip(1, 5, false);
    let cfg = IpvsConfig {
        scheduler: Scheduler::Sh,
        ..IpvsConfig::default()
    };
    let mut p = IpvsProxy::new(&svcs, &cfg);
    let mut rng = SimRng::from_seed(1);
    let vip = svcs[0].cluster_ip;
    let first = p.first_packet(syn(vip, 1), &mut rng, SimTime::ZERO).backend;
    for port in 2..30 {
        assert_eq!(
            p.first_packet(syn(vip, port), &mut rng, SimTime::ZERO).backend,
            first
        );
    }
    let other = Tuple::new(Proto::Tcp, Ipv4Addr::new(10, 244, 200, 17), 1, vip, 80);
    let others: std::collections::BTreeSet<_> = (0..64u8)
        .map(|i| {
            let t = Tuple {
                src: Ipv4Addr::new(10, 244, i, 17),
                ..other
            };
            p.first_packet(t, &mut rng, SimTime::ZERO).backend
        })
        .collect();
    assert!(others.len() > 1);
}

/// V26: the IPVS conn-reuse 1 s delay (k/k #70747, kernel commit f719e3754ee2).
#[test]
fn reused_tuple_drops_the_first_syn_on_old_kernels_with_conn_reuse_mode_1() {
    let svcs = synthetic_cluster_ip(1, 3, false);
    let mut cfg = IpvsConfig::new(ProxyConfig::default(), KernelVersion::new(5, 4));
    assert_eq!(cfg.conn_reuse_mode, 0, "kube-proxy sets 0 on 4.1..5.9");
    cfg.conn_reuse_mode = 1;
    let mut p = IpvsProxy::new(&svcs, &cfg);
    let mut rng = SimRng::from_seed(1);
    let t = syn(svcs[0].cluster_ip, 40_000);
    p.first_packet(t, &mut rng, SimTime::ZERO);
    run_to_time_wait(&mut p, t, SimTime::from_secs(1));
    let fp = p.first_packet(t, &mut rng, SimTime::from_secs(5));
    assert_eq!(fp.verdict, ProxyVerdict::Drop(ProxyDrop::IpvsConnReuse));
    assert_eq!(
        fp.note,
        ModeNote::Ipvs {
            reused_connection: true,
            drop_first_syn: true
        }
    );
    // The retransmission 1 s later finds no IPVS connection and is scheduled.
    let fp = p.first_packet(t, &mut rng, SimTime::from_secs(6));
    assert_eq!(fp.verdict, ProxyVerdict::Translate);
    assert_eq!(p.stats().conn_reuse_drops, 1);
    // Without a live nf_conntrack entry there is nothing to redirect: no drop.
    run_to_time_wait(&mut p, t, SimTime::from_secs(7));
    let fp = p.first_packet_with(FlowOrigin::Pod, t, false, &mut rng, SimTime::from_secs(8));
    assert_eq!(fp.verdict, ProxyVerdict::Translate);
}

#[test]
fn reused_tuple_is_rescheduled_without_a_drop_on_fixed_kernels() {
    let svcs = synthetic_cluster_ip(1, 3, false);
    let cfg = IpvsConfig::new(ProxyConfig::default(), KernelVersion::new(5, 10));
    assert_eq!(cfg.conn_reuse_mode, 1);
    let mut p = IpvsProxy::new(&svcs, &cfg);
    let mut rng = SimRng::from_seed(1);
    let t = syn(svcs[0].cluster_ip, 40_000);
    let first = p.first_packet(t, &mut rng, SimTime::ZERO).backend;
    run_to_time_wait(&mut p, t, SimTime::from_secs(1));
    let fp = p.first_packet(t, &mut rng, SimTime::from_secs(5));
    assert_eq!(fp.verdict, ProxyVerdict::Translate);
    assert_ne!(fp.backend, first, "rr moved on to the next real server");
    assert_eq!(p.stats().conn_reuse_rescheduled, 1);
}

#[test]
fn conn_reuse_mode_0_follows_the_old_connection_even_to_a_removed_backend() {
    let svcs = synthetic_cluster_ip(1, 3, false);
    let cfg = IpvsConfig::new(ProxyConfig::default(), KernelVersion::new(5, 4));
    let mut p = IpvsProxy::new(&svcs, &cfg);
    let mut rng = SimRng::from_seed(1);
    let t = syn(svcs[0].cluster_ip, 40_000);
    let first = p.first_packet(t, &mut rng, SimTime::ZERO).backend.unwrap();
    run_to_time_wait(&mut p, t, SimTime::from_secs(1));
    let again = p.first_packet(t, &mut rng, SimTime::from_secs(2));
    assert_eq!(
        again.backend,
        Some(first),
        "no rescheduling with conn_reuse_mode=0"
    );
    run_to_time_wait(&mut p, t, SimTime::from_secs(3));
    p.remove_backend(first);
    let fp = p.first_packet(t, &mut rng, SimTime::from_secs(4));
    assert_eq!(fp.verdict, ProxyVerdict::Drop(ProxyDrop::IpvsStaleBackend));
    let fp = p.first_packet(t, &mut rng, SimTime::from_secs(5));
    assert_eq!(fp.verdict, ProxyVerdict::Translate);
    assert_ne!(fp.backend, Some(first));
}

#[test]
fn connections_expire_by_state_with_ipvsadm_set_overrides() {
    let svcs = synthetic_cluster_ip(1, 1, false);
    let mut cfg = IpvsConfig::default();
    let mut p = IpvsProxy::new(&svcs, &cfg);
    let mut rng = SimRng::from_seed(1);
    let t = syn(svcs[0].cluster_ip, 1);
    p.first_packet(t, &mut rng, SimTime::ZERO);
    // SYN_RECV: 60 s.
    assert_eq!(p.expire(SimTime::from_secs(59)), 0);
    assert_eq!(p.expire(SimTime::from_secs(60)), 1);
    p.first_packet(t, &mut rng, SimTime::from_secs(100));
    p.packet(t, Direction::Original, TcpFlags::ACK, SimTime::from_secs(100));
    assert_eq!(p.expire(SimTime::from_secs(999)), 0);
    assert_eq!(p.expire(SimTime::from_secs(1000)), 1, "ESTABLISHED: 900 s");
    run_to_time_wait(&mut p, t, SimTime::from_secs(2000));
    assert_eq!(p.connections(), 0, "packets without a connection create none");
    p.first_packet(t, &mut rng, SimTime::from_secs(2000));
    run_to_time_wait(&mut p, t, SimTime::from_secs(2000));
    assert_eq!(p.expire(SimTime::from_secs(2119)), 0);
    assert_eq!(p.expire(SimTime::from_secs(2120)), 1, "TIME_WAIT: 120 s");
    // UDP 300 s; ipvsadm --set 0 0 10 makes it 10 s.
    cfg.timeouts = cfg
        .timeouts
        .with_set(SimDuration::ZERO, SimDuration::ZERO, SimDuration::from_secs(10));
    assert_eq!(cfg.timeouts.tcp_established, SimDuration::from_secs(900));
    let mut udp = svcs.clone();
    udp[0].protocol = Proto::Udp;
    let mut p = IpvsProxy::new(&udp, &cfg);
    let u = Tuple::new(Proto::Udp, pod(), 5353, udp[0].cluster_ip, 80);
    assert_eq!(
        p.first_packet(u, &mut rng, SimTime::ZERO).verdict,
        ProxyVerdict::Translate
    );
    assert_eq!(p.expire(SimTime::from_secs(9)), 0);
    assert_eq!(p.expire(SimTime::from_secs(10)), 1);
}

#[test]
fn rejects_no_endpoints_and_unknown_ports_and_masquerades_hairpin() {
    let mut svcs = synthetic_cluster_ip(2, 1, false);
    svcs[1].endpoints.clear();
    svcs[0].endpoints[0].node = "node-0".into();
    let mut p = IpvsProxy::new(&svcs, &IpvsConfig::default());
    let mut rng = SimRng::from_seed(1);
    let fp = p.first_packet(syn(svcs[1].cluster_ip, 1), &mut rng, SimTime::ZERO);
    assert_eq!(fp.verdict, ProxyVerdict::Reject);
    let wrong_port = Tuple::new(Proto::Tcp, pod(), 2, svcs[0].cluster_ip, 443);
    assert_eq!(
        p.first_packet(wrong_port, &mut rng, SimTime::ZERO).verdict,
        ProxyVerdict::Reject,
        "KUBE-IPVS-FILTER rejects new connections to other ports of a VIP"
    );
    let ep: &Endpoint = &svcs[0].endpoints[0];
    let hairpin = Tuple::new(Proto::Tcp, ep.ip, 3, svcs[0].cluster_ip, 80);
    let fp = p.first_packet(hairpin, &mut rng, SimTime::ZERO);
    assert_eq!(fp.backend, Some(SocketAddrV4::new(ep.ip, ep.port)));
    assert!(fp.masquerade, "KUBE-LOOP-BACK");
    let outside = Tuple::new(
        Proto::Tcp,
        Ipv4Addr::new(192, 168, 50, 1),
        4,
        svcs[0].cluster_ip,
        80,
    );
    assert!(p.first_packet(outside, &mut rng, SimTime::ZERO).masquerade);
    let other = Tuple::new(Proto::Tcp, pod(), 5, Ipv4Addr::new(1, 1, 1, 1), 80);
    assert_eq!(
        p.first_packet(other, &mut rng, SimTime::ZERO).verdict,
        ProxyVerdict::NotService
    );
}

#[test]
fn kernel_versions_parse_and_order() {
    assert_eq!(
        KernelVersion::parse("5.4.0-150-generic"),
        Some(KernelVersion::new(5, 4))
    );
    assert_eq!(KernelVersion::parse("6.18"), Some(KernelVersion::new(6, 18)));
    assert_eq!(KernelVersion::parse("six"), None);
    assert!(KernelVersion::new(5, 10) > CONN_REUSE_FIXED_KERNEL);
    assert_eq!(
        IpvsConfig::new(ProxyConfig::default(), KernelVersion::new(3, 10)).conn_reuse_mode,
        1
    );
}
