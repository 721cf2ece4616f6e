//! Conformance suite over every proxy data plane (iptables, nftables, IPVS, eBPF): each
//! ClusterIP flow goes to exactly one ready endpoint of its own Service, Services without
//! ready endpoints reject, other destinations pass untouched, every mode can reach exactly the
//! same backends, and endpoint choice is uniform.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};

use k8s_netsim::packet::{Proto, Tuple};
use k8s_netsim::rng::SimRng;
use k8s_netsim::service::ebpf::{EbpfConfig, EbpfProxy};
use k8s_netsim::service::ipvs::{IpvsConfig, IpvsProxy};
use k8s_netsim::service::nftables::{NftablesConfig, NftablesProxy};
use k8s_netsim::service::{
    DataPlane, IptablesProxy, ProxyConfig, ProxyVerdict, ServicePort, ServiceProxy, ready_backends,
    synthetic_cluster_ip,
};
use k8s_netsim::time::SimTime;
use proptest::prelude::*;

/// `PROPTEST_CASES` if set, else 48 (each case builds four data planes).
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    ProptestConfig::with_cases(cases)
}

fn modes(svcs: &[ServicePort]) -> Vec<Box<dyn ServiceProxy>> {
    let proxy = ProxyConfig::default();
    vec![
        Box::new(IptablesProxy::new(svcs, &proxy)),
        Box::new(NftablesProxy::new(
            svcs,
            &NftablesConfig {
                proxy: proxy.clone(),
                ..NftablesConfig::default()
            },
        )),
        Box::new(IpvsProxy::new(
            svcs,
            &IpvsConfig {
                proxy,
                ..IpvsConfig::default()
            },
        )),
        Box::new(EbpfProxy::new(svcs, &EbpfConfig::default())),
    ]
}

/// Services with 0..=5 endpoints, some not ready.
fn services() -> impl Strategy<Value = Vec<ServicePort>> {
    prop::collection::vec((0usize..=5, any::<u8>()), 1..12).prop_map(|shape| {
        let mut svcs = synthetic_cluster_ip(shape.len(), 5, false);
        for (sp, (n, ready_bits)) in svcs.iter_mut().zip(shape) {
            sp.endpoints.truncate(n);
            for (i, ep) in sp.endpoints.iter_mut().enumerate() {
                ep.ready = ready_bits & (1 << i) != 0 || i == 0 && ready_bits & 0x80 != 0;
            }
        }
        svcs
    })
}

fn pod(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 244, 100, 0)) + (i % 250))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_cluster_ip_flow_goes_to_one_ready_endpoint_of_its_service(svcs in services(), seed in any::<u64>()) {
        let owner: BTreeMap<SocketAddrV4, usize> = svcs
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.endpoints.iter().map(move |e| (SocketAddrV4::new(e.ip, e.port), i)))
            .collect();
        for mut m in modes(&svcs) {
            let plane = m.data_plane();
            let mut rng = SimRng::stream(seed, "proptest/proxy");
            let mut seen: Vec<BTreeSet<SocketAddrV4>> = vec![BTreeSet::new(); svcs.len()];
            for k in 0..(svcs.len() * 120) {
                let i = k % svcs.len();
                #[allow(clippy::cast_possible_truncation)]
                let t = Tuple::new(Proto::Tcp, pod(k as u32), 20_000 + k as u16, svcs[i].cluster_ip, 80);
                let fp = m.first_packet(t, &mut rng, SimTime::from_millis(k as u64));
                let ready: BTreeSet<SocketAddrV4> = ready_backends(&svcs[i]).collect();
                if ready.is_empty() {
                    prop_assert_eq!(fp.verdict, ProxyVerdict::Reject, "{:?}", plane);
                    prop_assert_eq!(fp.backend, None);
                    continue;
                }
                prop_assert_eq!(fp.verdict, ProxyVerdict::Translate, "{:?}", plane);
                let b = fp.backend.expect("a translated flow has a backend");
                prop_assert_eq!(owner.get(&b), Some(&i), "{:?} sent {} to another Service", plane, b);
                prop_assert!(ready.contains(&b), "{:?} chose unready {}", plane, b);
                prop_assert!(!fp.masquerade, "{:?}: pod-sourced ClusterIP traffic is not masqueraded", plane);
                seen[i].insert(b);
            }
            // Every ready endpoint is eligible (the modes agree on the eligible set).
            for (i, s) in svcs.iter().enumerate() {
                let ready: BTreeSet<SocketAddrV4> = ready_backends(s).collect();
                prop_assert_eq!(&seen[i], &ready, "{:?} service {}", plane, i);
            }
            let other = Tuple::new(Proto::Tcp, pod(1), 9, Ipv4Addr::new(172, 16, 0, 1), 443);
            prop_assert_eq!(m.first_packet(other, &mut rng, SimTime::ZERO).verdict, ProxyVerdict::NotService);
        }
    }
}

/// Endpoint choice is uniform within tolerance in every mode (seeded, so deterministic).
#[test]
fn endpoint_choice_is_uniform_in_every_mode() {
    const N: usize = 6;
    const FLOWS: usize = 12_000;
    let svcs = synthetic_cluster_ip(3, N, false);
    for mut m in modes(&svcs) {
        let plane = m.data_plane();
        let mut rng = SimRng::stream(7, "proptest/uniform");
        let mut counts: BTreeMap<SocketAddrV4, usize> = BTreeMap::new();
        for k in 0..FLOWS {
            #[allow(clippy::cast_possible_truncation)]
            let t = Tuple::new(
                Proto::Tcp,
                pod(k as u32),
                (k % 60_000) as u16 + 1024,
                svcs[1].cluster_ip,
                80,
            );
            let fp = m.first_packet(t, &mut rng, SimTime::from_millis(k as u64));
            *counts.entry(fp.backend.expect("translated")).or_default() += 1;
        }
        assert_eq!(counts.len(), N, "{plane:?}");
        // Expected 2000 each; a binomial sd is ~41, so 10 % is about 5 sd.
        for (b, c) in &counts {
            assert!((1800..=2200).contains(c), "{plane:?}: {b} got {c} of {FLOWS}");
        }
        if plane == DataPlane::Ipvs {
            assert!(counts.values().all(|c| *c == FLOWS / N), "rr is exact");
        }
    }
}
