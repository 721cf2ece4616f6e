//! Topology tests: layouts per CNI, routing decisions, paths and validation.

use super::*;
use crate::netfilter::Hook;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

/// Two nodes, two pods on node-a, one on node-b.
fn two_nodes(b: TopologyBuilder) -> Topology {
    let mut b = b;
    let a = b.add_node("node-a", ip("10.0.0.1"), cidr("10.244.0.0/24"));
    let n2 = b.add_node("node-b", ip("10.0.0.2"), cidr("10.244.1.0/24"));
    b.add_pod(a, "order-0", ip("10.244.0.5"));
    b.add_pod(a, "order-1", ip("10.244.0.6"));
    b.add_pod(n2, "web-0", ip("10.244.1.7"));
    b.build().unwrap()
}

fn id(t: &Topology, name: &str) -> NetnsId {
    t.netns_by_name(name).unwrap()
}

fn roles(p: &Path) -> Vec<(String, HopRole, &'static [Hook])> {
    p.hops.iter().map(|h| (h.name.clone(), h.role, h.hooks)).collect()
}

const OUT: &[Hook] = &[Hook::Output, Hook::Postrouting];
const FWD: &[Hook] = &[Hook::Prerouting, Hook::Forward, Hook::Postrouting];
const IN: &[Hook] = &[Hook::Prerouting, Hook::Input];

#[test]
fn same_node_bridged_pod_to_pod_runs_host_hooks_with_br_netfilter() {
    let t = two_nodes(TopologyBuilder::new(CniFlavour::FlannelVxlan));
    let p = t.path(id(&t, "order-0"), ip("10.244.0.6")).unwrap();
    assert_eq!(
        roles(&p),
        vec![
            ("order-0".into(), HopRole::Origin, OUT),
            ("node-a".into(), HopRole::Bridged, FWD),
            ("order-1".into(), HopRole::Delivered, IN),
        ]
    );
    let host = &p.hops[1];
    assert_eq!(host.in_dev.as_ref().unwrap().name, "cni0");
    assert!(host.in_port.as_ref().unwrap().name.starts_with("veth"));
    assert!(host.egress_port.as_ref().unwrap().name.starts_with("veth"));
    assert_ne!(host.in_port, host.egress_port);
    assert_eq!((p.mtu, p.encap_bytes, p.links.len()), (1450, 0, 2));
    assert!(p.links.iter().all(|l| l.kind == LinkKind::Veth));
}

#[test]
fn same_node_bridged_pod_to_pod_skips_host_hooks_without_br_netfilter() {
    let t = two_nodes(TopologyBuilder::new(CniFlavour::FlannelVxlan).with_bridge_nf_call_iptables(false));
    let p = t.path(id(&t, "order-0"), ip("10.244.0.6")).unwrap();
    assert_eq!(p.hops[1].role, HopRole::Bridged);
    assert!(p.hops[1].hooks.is_empty());
    assert!(p.to_string().contains("bridge-nf-call-iptables=0"));
}

#[test]
fn cross_node_flannel_goes_through_vxlan_with_50_bytes_and_mtu_1450() {
    let t = two_nodes(TopologyBuilder::new(CniFlavour::FlannelVxlan));
    let p = t.path(id(&t, "order-0"), ip("10.244.1.7")).unwrap();
    assert_eq!(
        roles(&p),
        vec![
            ("order-0".into(), HopRole::Origin, OUT),
            ("node-a".into(), HopRole::Forwarded, FWD),
            ("node-b".into(), HopRole::Forwarded, FWD),
            ("web-0".into(), HopRole::Delivered, IN),
        ]
    );
    let a = &p.hops[1];
    assert_eq!(a.in_dev.as_ref().unwrap().name, "cni0");
    assert_eq!(a.out_dev.as_ref().unwrap().name, "flannel.1");
    let b = &p.hops[2];
    assert_eq!(b.in_dev.as_ref().unwrap().name, "flannel.1");
    assert_eq!(b.out_dev.as_ref().unwrap().name, "cni0");
    let tunnel = &p.links[1];
    assert_eq!(
        (tunnel.kind, tunnel.encap, tunnel.mtu),
        (LinkKind::Vxlan, Encap::Vxlan, 1450)
    );
    assert_eq!(tunnel.underlay.as_ref().unwrap().name, "eth0");
    assert_eq!((p.mtu, p.encap_bytes), (1450, 50));
}

#[test]
fn cross_node_per_cni_flavour_has_its_encapsulation_and_mtu() {
    for (cni, encap, mtu, link, out_dev) in [
        (CniFlavour::FlannelVxlan, 50, 1450, LinkKind::Vxlan, "flannel.1"),
        (CniFlavour::CalicoIpip, 20, 1480, LinkKind::Ipip, "tunl0"),
        (CniFlavour::CalicoBgp, 0, 1500, LinkKind::Underlay, "eth0"),
        (CniFlavour::CiliumNative, 0, 1500, LinkKind::Underlay, "eth0"),
    ] {
        let t = two_nodes(TopologyBuilder::new(cni));
        let p = t.path(id(&t, "order-0"), ip("10.244.1.7")).unwrap();
        assert_eq!(p.hops.len(), 4, "{cni}");
        assert_eq!((p.encap_bytes, p.mtu), (encap, mtu), "{cni}");
        assert_eq!(p.links[1].kind, link, "{cni}");
        assert_eq!(p.hops[1].out_dev.as_ref().unwrap().name, out_dev, "{cni}");
        assert_eq!(p.hops.last().unwrap().name, "web-0", "{cni}");
        assert_eq!(p.hops.last().unwrap().hooks, IN, "{cni}");
    }
}

#[test]
fn jumbo_underlay_raises_pod_mtu_by_the_same_amount() {
    let t = two_nodes(TopologyBuilder::new(CniFlavour::CalicoIpip).with_underlay_mtu(9001));
    let p = t.path(id(&t, "order-0"), ip("10.244.1.7")).unwrap();
    assert_eq!(p.mtu, 8981);
}

#[test]
fn calico_routes_pod_to_pod_on_one_node_through_the_host_without_a_bridge() {
    let t = two_nodes(TopologyBuilder::new(CniFlavour::CalicoBgp));
    let p = t.path(id(&t, "order-0"), ip("10.244.0.6")).unwrap();
    assert_eq!(p.hops[1].role, HopRole::Forwarded);
    assert!(p.hops[1].in_dev.as_ref().unwrap().name.starts_with("cali"));
    assert!(p.hops[1].out_dev.as_ref().unwrap().name.starts_with("cali"));
    assert!(p.hops[1].in_port.is_none());
}

#[test]
fn cilium_delivers_local_pods_through_cilium_host_to_their_lxc() {
    let t = two_nodes(TopologyBuilder::new(CniFlavour::CiliumNative));
    let p = t.path(id(&t, "node-a"), ip("10.244.0.6")).unwrap();
    assert_eq!(p.hops[0].out_dev.as_ref().unwrap().name, "cilium_host");
    assert!(p.hops[0].egress_port.as_ref().unwrap().name.starts_with("lxc"));
    assert_eq!(p.hops[1].name, "order-1");
}

#[test]
fn pod_to_its_own_node_ip_is_delivered_locally_in_the_host() {
    let t = two_nodes(TopologyBuilder::new(CniFlavour::FlannelVxlan));
    let p = t.path(id(&t, "order-0"), ip("10.0.0.1")).unwrap();
    assert_eq!(
        roles(&p),
        vec![
            ("order-0".into(), HopRole::Origin, OUT),
            ("node-a".into(), HopRole::Delivered, IN),
        ]
    );
    assert_eq!(p.hops[1].in_dev.as_ref().unwrap().name, "cni0");
}

#[test]
fn pod_to_another_node_ip_crosses_the_underlay_and_is_delivered_there() {
    let t = two_nodes(TopologyBuilder::new(CniFlavour::FlannelVxlan));
    let p = t.path(id(&t, "order-0"), ip("10.0.0.2")).unwrap();
    assert_eq!(p.hops.len(), 3);
    assert_eq!(p.links[1].kind, LinkKind::Underlay);
    assert_eq!(
        (p.hops[2].name.as_str(), p.hops[2].role),
        ("node-b", HopRole::Delivered)
    );
    assert_eq!(p.encap_bytes, 0);
}

#[test]
fn host_to_its_own_address_loops_through_all_four_hooks() {
    let t = two_nodes(TopologyBuilder::new(CniFlavour::FlannelVxlan));
    let p = t.path(id(&t, "node-a"), ip("10.0.0.1")).unwrap();
    assert_eq!(p.hops.len(), 1);
    assert_eq!(
        p.hops[0].hooks,
        &[Hook::Output, Hook::Postrouting, Hook::Prerouting, Hook::Input]
    );
}

#[test]
fn unknown_address_in_own_bridge_subnet_has_no_neighbour() {
    let t = two_nodes(TopologyBuilder::new(CniFlavour::FlannelVxlan));
    let err = t.path(id(&t, "order-0"), ip("10.244.0.77")).unwrap_err();
    assert_eq!(
        err,
        PathError::Unreachable {
            netns: "order-0".into(),
            dst: ip("10.244.0.77"),
            reason: Unreachable::NoNeighbour
        }
    );
    // From the host the bridge has no port for it either.
    assert_eq!(
        t.route(id(&t, "node-a"), ip("10.244.0.77")),
        RouteDecision::Unreachable(Unreachable::NoNeighbour)
    );
}

#[test]
fn calico_blackholes_unused_addresses_of_its_own_block() {
    let t = two_nodes(TopologyBuilder::new(CniFlavour::CalicoIpip));
    let err = t.path(id(&t, "order-0"), ip("10.244.0.77")).unwrap_err();
    assert!(matches!(
        err,
        PathError::Unreachable { ref netns, reason: Unreachable::Blackhole, .. } if netns == "node-a"
    ));
    // The /32 of a real pod beats the /24 blackhole (longest prefix wins).
    assert!(matches!(
        t.route(id(&t, "node-a"), ip("10.244.0.6")),
        RouteDecision::Forward(_)
    ));
}

#[test]
fn without_default_route_external_addresses_are_unreachable() {
    let t = two_nodes(TopologyBuilder::new(CniFlavour::CalicoBgp).with_default_route(false));
    assert_eq!(
        t.route(id(&t, "node-a"), ip("8.8.8.8")),
        RouteDecision::Unreachable(Unreachable::NoRoute)
    );
    let with = two_nodes(TopologyBuilder::new(CniFlavour::CalicoBgp).with_default_gateway(ip("10.0.0.254")));
    let p = with.path(id(&with, "order-0"), ip("8.8.8.8")).unwrap();
    assert!(p.leaves_cluster);
    assert_eq!(p.hops.last().unwrap().out_dev.as_ref().unwrap().name, "eth0");
    let RouteDecision::Forward(f) = with.route(id(&with, "node-a"), ip("8.8.8.8")) else {
        panic!("expected forward")
    };
    assert_eq!(
        (f.via, f.src, f.next),
        (Some(ip("10.0.0.254")), Some(ip("10.0.0.1")), NextHop::External)
    );
}

#[test]
fn service_vip_routes_to_the_host_stack_then_the_caller_reroutes_after_dnat() {
    let t = two_nodes(TopologyBuilder::new(CniFlavour::FlannelVxlan));
    let host = id(&t, "node-a");
    let RouteDecision::Forward(f) = t.route(id(&t, "order-0"), ip("10.96.0.10")) else {
        panic!("expected forward")
    };
    let cni0 = t.device_by_name(host, "cni0").unwrap();
    assert_eq!(f.via, Some(ip("10.244.0.1")));
    match f.next {
        NextHop::Netns {
            netns,
            in_dev,
            in_port,
            arrival,
        } => {
            assert_eq!((netns, in_dev, arrival), (host, cni0, Arrival::Routed));
            assert!(in_port.is_some());
        }
        NextHop::External => panic!("expected the host"),
    }
    // After DNAT to a backend on node-b, the host forwards into flannel.1.
    let RouteDecision::Forward(f) = t.route(host, ip("10.244.1.7")) else {
        panic!("expected forward")
    };
    assert_eq!(f.encap, Encap::Vxlan);
    assert_eq!(
        f.src,
        Some(ip("10.244.0.0")),
        "MASQUERADE source is flannel.1's address"
    );
    assert_eq!(t.device(f.out_dev).unwrap().name(), "flannel.1");
}

#[test]
fn kube_ipvs0_makes_cluster_ips_local_on_every_node() {
    let t = two_nodes(TopologyBuilder::new(CniFlavour::FlannelVxlan).with_kube_ipvs0([ip("10.96.0.10")]));
    for node in ["node-a", "node-b"] {
        assert!(t.is_local(id(&t, node), ip("10.96.0.10")));
        let dev = t.device_by_name(id(&t, node), "kube-ipvs0").unwrap();
        assert_eq!(
            t.route(id(&t, node), ip("10.96.0.10")),
            RouteDecision::Local { dev }
        );
    }
    assert!(!t.is_local(id(&t, "order-0"), ip("10.96.0.10")));
    let p = t.path(id(&t, "order-0"), ip("10.96.0.10")).unwrap();
    assert_eq!(p.hops[1].role, HopRole::Delivered);
}

#[test]
fn nodelocaldns_address_is_delivered_in_the_local_host() {
    let t = two_nodes(TopologyBuilder::new(CniFlavour::CalicoBgp).with_nodelocaldns(true));
    let p = t.path(id(&t, "web-0"), NODELOCAL_DNS_ADDR).unwrap();
    assert_eq!(p.hops.len(), 2);
    assert_eq!(
        (p.hops[1].name.as_str(), p.hops[1].role),
        ("node-b", HopRole::Delivered)
    );
}

#[test]
fn lookups_find_namespaces_nodes_and_local_addresses() {
    let t = two_nodes(TopologyBuilder::new(CniFlavour::FlannelVxlan));
    let pod = t.pod_by_ip(ip("10.244.1.7")).unwrap();
    assert_eq!(t.netns(pod).unwrap().name(), "web-0");
    let node = t.node_of(pod).unwrap();
    assert_eq!(t.node_name(node), Some("node-b"));
    assert_eq!(t.host_netns(node), t.netns_by_name("node-b"));
    assert_eq!(t.pods_on(node), &[pod]);
    assert_eq!(t.pod_by_ip(ip("10.0.0.1")), None);
    let host_addrs: Vec<_> = t.local_addrs(id(&t, "node-a")).collect();
    assert_eq!(
        host_addrs,
        vec![ip("10.0.0.1"), ip("10.244.0.0"), ip("10.244.0.1")]
    );
    assert!(t.is_local(pod, ip("10.244.1.7")));
    assert!(t.is_local(pod, ip("127.0.0.1")));
    assert!(!t.is_local(pod, ip("10.244.1.8")));
    assert_eq!(
        t.neighbours(pod).collect::<Vec<_>>(),
        vec![t.host_netns(node).unwrap()]
    );
    let eth0 = t.device_by_name(pod, "eth0").unwrap();
    assert!(t.link_of(eth0).is_some());
    assert_eq!(t.device(eth0).unwrap().mtu(), 1450);
}

#[test]
fn display_renders_one_line_per_namespace() {
    let t = two_nodes(TopologyBuilder::new(CniFlavour::FlannelVxlan));
    let text = t.path(id(&t, "order-0"), ip("10.244.1.7")).unwrap().to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "{text}");
    assert_eq!(lines[0], "pod order-0 on node-a [OUTPUT, POSTROUTING] out eth0");
    assert!(lines[2].starts_with("node-a host [PREROUTING, FORWARD, POSTROUTING] in cni0 (port veth"));
    assert!(lines[2].ends_with("out flannel.1"));
    assert_eq!(
        lines[3],
        "  -> vxlan flannel.1 -> flannel.1 (+50B over eth0, mtu 1450)"
    );
    assert_eq!(lines[6], "pod web-0 on node-b [PREROUTING, INPUT] in eth0");
    assert_eq!(lines[7], "to 10.244.1.7: path mtu 1450, encapsulation 50B");
}

fn build_err(f: impl FnOnce(&mut TopologyBuilder)) -> TopologyError {
    let mut b = TopologyBuilder::new(CniFlavour::FlannelVxlan);
    f(&mut b);
    b.build().unwrap_err()
}

#[test]
fn builder_rejects_invalid_declarations_naming_the_offender() {
    let e = build_err(|b| {
        b.add_node("n", ip("10.0.0.1"), cidr("10.244.0.0/24"));
        b.add_node("n", ip("10.0.0.2"), cidr("10.244.1.0/24"));
    });
    assert_eq!(e, TopologyError::DuplicateName { name: "n".into() });

    let e = build_err(|b| {
        let n = b.add_node("n", ip("10.0.0.1"), cidr("10.244.0.0/24"));
        b.add_pod(n, "a", ip("10.244.0.5"));
        b.add_pod(n, "b", ip("10.244.0.5"));
    });
    assert!(
        matches!(e, TopologyError::DuplicateIp { ref first, ref second, .. } if first == "a" && second == "b")
    );

    let e = build_err(|b| {
        b.add_node("n1", ip("10.0.0.1"), cidr("10.244.0.0/16"));
        b.add_node("n2", ip("10.0.0.2"), cidr("10.244.1.0/24"));
    });
    assert!(matches!(e, TopologyError::OverlappingPodCidrs { .. }));
    assert!(e.to_string().contains("n1") && e.to_string().contains("n2"));

    let e = build_err(|b| {
        let n = b.add_node("n", ip("10.0.0.1"), cidr("10.244.0.0/24"));
        b.add_pod(n, "a", ip("10.244.1.5"));
    });
    assert!(matches!(e, TopologyError::PodIpOutsideNodeCidr { ref pod, .. } if pod == "a"));

    let e = build_err(|b| {
        let n = b.add_node("n", ip("10.0.0.1"), cidr("10.244.0.0/24"));
        b.add_pod(n, "gw", ip("10.244.0.1"));
    });
    assert!(matches!(e, TopologyError::PodIpReserved { .. }));

    let e = build_err(|b| {
        b.add_node("n", ip("10.244.0.9"), cidr("10.244.0.0/24"));
    });
    assert!(matches!(e, TopologyError::NodeIpInPodCidr { .. }));

    let e = build_err(|b| {
        b.add_node("n", ip("10.0.0.1"), cidr("10.244.0.0/31"));
    });
    assert!(matches!(e, TopologyError::PodCidrTooSmall { .. }));

    let e = build_err(|b| {
        b.add_node("", ip("10.0.0.1"), cidr("10.244.0.0/24"));
    });
    assert_eq!(e, TopologyError::EmptyName);

    let mut other = TopologyBuilder::new(CniFlavour::FlannelVxlan);
    other.add_node("x", ip("10.0.0.9"), cidr("10.9.0.0/24"));
    let foreign = other.add_node("y", ip("10.0.0.8"), cidr("10.8.0.0/24"));
    let e = build_err(|b| {
        b.add_pod(foreign, "p", ip("10.8.0.5"));
    });
    assert!(matches!(e, TopologyError::UnknownNode { .. }));

    let mut b = TopologyBuilder::new(CniFlavour::FlannelVxlan).with_underlay_mtu(600);
    b.add_node("n", ip("10.0.0.1"), cidr("10.244.0.0/24"));
    assert!(matches!(
        b.build().unwrap_err(),
        TopologyError::MtuTooSmall { mtu: 600, .. }
    ));
}

#[test]
fn calico_accepts_the_first_host_address_for_pods() {
    let mut b = TopologyBuilder::new(CniFlavour::CalicoBgp);
    let n = b.add_node("n", ip("10.0.0.1"), cidr("10.244.0.0/26"));
    b.add_pod(n, "p", ip("10.244.0.1"));
    assert!(b.build().is_ok());
}
