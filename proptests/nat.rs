//! NAT reversibility: random DNAT/SNAT/MASQUERADE decisions over random, colliding
//! flows, driven through the conntrack API. Every confirmed entry's reply tuple leads
//! back to that entry and un-NATs to the exact original tuple; no two live confirmed
//! entries share a reply tuple; later packets of a flow take the binding of its first.

use k8s_netsim::conntrack::{
    ConfirmOutcome, ConnId, ConntrackTable, CtConfig, CtLookup, DstNat, NatRange, NetnsConfig, SrcNat,
};
use k8s_netsim::kernel::{KernelProfile, Sysctls};
use k8s_netsim::packet::{Direction, Packet, Proto, TcpFlags, Tuple};
use k8s_netsim::rng::SimRng;
use k8s_netsim::time::SimTime;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

#[derive(Clone, Debug)]
struct FlowSpec {
    proto: Proto,
    client: u8,
    sport: u16,
    service: u8,
    dnat: Option<u8>,
    snat: u8,
    /// Allocate, then let the next flow allocate before this one confirms.
    race: bool,
}

fn flow() -> impl Strategy<Value = FlowSpec> {
    (
        prop_oneof![Just(Proto::Tcp), Just(Proto::Udp)],
        0u8..4,
        prop_oneof![1000u16..1004, 40_000u16..40_004],
        0u8..3,
        prop::option::of(0u8..3),
        0u8..5,
        any::<bool>(),
    )
        .prop_map(|(proto, client, sport, service, dnat, snat, race)| FlowSpec {
            proto,
            client,
            sport,
            service,
            dnat,
            snat,
            race,
        })
}

fn src_nat(kind: u8) -> SrcNat {
    let node = Ipv4Addr::new(192, 168, 0, 1);
    match kind {
        0 | 1 => SrcNat::Null,
        2 => SrcNat::Masquerade {
            addr: node,
            ports: None,
            random: false,
            random_fully: false,
        },
        3 => SrcNat::Masquerade {
            addr: node,
            ports: None,
            random: false,
            random_fully: true,
        },
        _ => SrcNat::Snat(NatRange::single(node).with_ports(50_000, 50_003)),
    }
}

/// `PROPTEST_CASES` if set (CI: 1000), else 256.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig::with_cases(cases)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn replies_unnat_to_the_original_and_reply_tuples_are_unique(
        flows in prop::collection::vec(flow(), 1..60),
        seed in any::<u64>(),
        old_kernel in any::<bool>(),
    ) {
        let sysctls = Sysctls::default();
        let profile = if old_kernel { KernelProfile::LINUX_5_4 } else { KernelProfile::LINUX_6_18 };
        let cfg = CtConfig::new(&sysctls, profile, 2).with_size(10_000, 512);
        let mut ct = ConntrackTable::new(cfg, SimRng::from_seed(seed)).unwrap();
        ct.set_netns(0, NetnsConfig::enabled(&sysctls));
        let mut rng = SimRng::from_seed(seed ^ 1);
        let now = SimTime::from_secs(1);
        // (id, tuple after NAT of the first packet)
        let mut bindings: Vec<(ConnId, Tuple)> = Vec::new();
        let mut held: Option<(ConnId, Tuple)> = None;
        for f in flows {
            let t = Tuple::new(
                f.proto,
                Ipv4Addr::new(10, 244, 0, f.client),
                f.sport,
                Ipv4Addr::new(10, 96, 0, f.service),
                80,
            );
            let flags = if f.proto == Proto::Tcp { TcpFlags::SYN } else { TcpFlags::NONE };
            let CtLookup::New { id } = ct.lookup_or_alloc(0, 0, &Packet::new(t, flags), now).unwrap() else {
                continue;
            };
            let dnat = match f.dnat {
                Some(b) => DstNat::To { addr: Ipv4Addr::new(10, 244, 9, b), port: Some(8080) },
                None => DstNat::Null,
            };
            ct.apply_dst_nat(id, 0, dnat, now).unwrap();
            let out = ct.apply_src_nat(id, 0, src_nat(f.snat), &mut rng, now).unwrap();
            prop_assert_eq!(ct.conn(id).unwrap().translated(Direction::Original), out);
            if let Some((hid, hout)) = held.take()
                && let ConfirmOutcome::Inserted(i) = ct.confirm(hid, 1, now).unwrap()
            {
                bindings.push((i, hout));
            }
            if f.race {
                held = Some((id, out));
            } else if let ConfirmOutcome::Inserted(i) = ct.confirm(id, 0, now).unwrap() {
                bindings.push((i, out));
            }
        }
        if let Some((hid, hout)) = held.take()
            && let ConfirmOutcome::Inserted(i) = ct.confirm(hid, 1, now).unwrap()
        {
            bindings.push((i, hout));
        }
        let mut replies = BTreeSet::new();
        for id in ct.conn_ids() {
            let c = ct.conn(id).unwrap();
            prop_assert!(c.confirmed);
            prop_assert!(replies.insert(c.reply), "two live entries share reply tuple {}", c.reply);
        }
        for (id, first_out) in bindings {
            let c = ct.conn(id).unwrap();
            // A reply arrives as the REPLY tuple and un-NATs to the original, reversed.
            let r = Packet::new(c.reply, TcpFlags::NONE);
            match ct.lookup_or_alloc(0, 0, &r, now).unwrap() {
                CtLookup::Existing { id: got, dir, .. } => {
                    prop_assert_eq!(got, id);
                    prop_assert_eq!(dir, Direction::Reply);
                    prop_assert_eq!(c.translated(Direction::Reply), c.original.reversed());
                }
                other => prop_assert!(false, "reply of {} found {:?}", c.original, other),
            }
            // A later ORIGINAL packet takes the first packet's binding.
            let o = Packet::new(c.original, TcpFlags::NONE);
            match ct.lookup_or_alloc(0, 0, &o, now).unwrap() {
                CtLookup::Existing { id: got, dir, .. } => {
                    prop_assert_eq!(got, id);
                    prop_assert_eq!(dir, Direction::Original);
                    prop_assert_eq!(c.translated(Direction::Original), first_out);
                }
                other => prop_assert!(false, "original of {} found {:?}", c.original, other),
            }
        }
    }
}
