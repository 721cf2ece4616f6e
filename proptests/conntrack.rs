//! Conntrack table invariants under random operation sequences: counts never exceed
//! `nf_conntrack_max`, counts balance against the live entries, drops happen only at
//! the limit, early drop only evicts non-ASSURED same-namespace entries inside the
//! 8-bucket window of the new tuple, `insert` stays 0.

use k8s_netsim::conntrack::{
    ConfirmOutcome, ConnId, ConntrackTable, CtConfig, CtDrop, CtLookup, NatRange, NetnsConfig, SrcNat,
};
use k8s_netsim::kernel::{KernelProfile, Sysctls};
use k8s_netsim::packet::{Packet, Proto, TcpFlags, Tuple};
use k8s_netsim::rng::SimRng;
use k8s_netsim::time::{SimDuration, SimTime};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

#[derive(Clone, Debug)]
enum Op {
    New {
        ns: u16,
        proto: Proto,
        flow: u16,
        cpu: u16,
    },
    Confirm {
        pick: usize,
    },
    Abort {
        pick: usize,
    },
    Packet {
        pick: usize,
        reply: bool,
        flags: u8,
    },
    Advance {
        ms: u32,
    },
    Gc,
    List {
        ns: u16,
    },
    /// The SRC binding of an unconfirmed entry: the null binding, or SNAT to one
    /// address and a few ports (so the port search meets taken tuples).
    Snat {
        pick: usize,
        ports: Option<u16>,
        seed: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u16..2, prop_oneof![Just(Proto::Tcp), Just(Proto::Udp)], 0u16..300, 0u16..2)
            .prop_map(|(ns, proto, flow, cpu)| Op::New { ns, proto, flow, cpu }),
        5 => any::<usize>().prop_map(|pick| Op::Confirm { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Abort { pick }),
        5 => (any::<usize>(), any::<bool>(), prop_oneof![
                Just(0x02u8), Just(0x12), Just(0x10), Just(0x11), Just(0x14), Just(0x04), Just(0x01)])
            .prop_map(|(pick, reply, flags)| Op::Packet { pick, reply, flags }),
        2 => (1u32..40_000).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Gc),
        1 => (0u16..2).prop_map(|ns| Op::List { ns }),
        3 => (any::<usize>(), prop::option::of(1u16..24), any::<u64>())
            .prop_map(|(pick, ports, seed)| Op::Snat { pick, ports, seed }),
    ]
}

fn tuple(proto: Proto, flow: u16) -> Tuple {
    Tuple::new(
        proto,
        Ipv4Addr::new(10, 244, 0, (flow % 7) as u8),
        1000 + flow,
        Ipv4Addr::new(10, 96, 0, 10),
        if proto == Proto::Tcp { 80 } else { 53 },
    )
}

fn window_contains(ct: &ConntrackTable, start: u32, b: u32) -> bool {
    let n = ct.config().buckets;
    (b + n - start) % n < 8
}

fn check_counts(ct: &ConntrackTable, max: u32) -> Result<(), TestCaseError> {
    let mut live: BTreeMap<u16, u32> = BTreeMap::new();
    for id in ct.conn_ids() {
        let c = ct.conn(id).unwrap();
        *live.entry(c.ns).or_default() += 1;
    }
    for ns in 0..2u16 {
        let c = ct.count(ns);
        prop_assert!(c <= max, "ns {} count {} > max {}", ns, c, max);
        prop_assert_eq!(c, live.get(&ns).copied().unwrap_or(0));
        prop_assert_eq!(ct.stats_sum(ns).insert, 0);
    }
    Ok(())
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
    fn counters_and_counts_balance(max in 4u32..40, ops in prop::collection::vec(op(), 1..300)) {
        let sysctls = Sysctls::default();
        let cfg = CtConfig::new(&sysctls, KernelProfile::LINUX_6_18, 2).with_size(max, 512);
        let mut ct = ConntrackTable::new(cfg, SimRng::from_seed(u64::from(max))).unwrap();
        let mut timeouts = sysctls.ct_timeouts;
        timeouts.tcp_syn_sent = SimDuration::from_secs(20);
        timeouts.udp = SimDuration::from_secs(10);
        for ns in 0..2 {
            let mut n = NetnsConfig::enabled(&sysctls);
            n.timeouts = timeouts;
            ct.set_netns(ns, n);
        }
        let mut now = SimTime::ZERO;
        let mut pending: Vec<ConnId> = Vec::new();
        for op in ops {
            match op {
                Op::New { ns, proto, flow, cpu } => {
                    let t = tuple(proto, flow);
                    let flags = if proto == Proto::Tcp { TcpFlags::SYN } else { TcpFlags::NONE };
                    let before: Vec<_> = ct.conn_ids().into_iter().filter_map(|id| ct.conn(id)).collect();
                    let count_before = ct.count(ns);
                    let ed_before = ct.stats_sum(ns).early_drop;
                    let out = ct.lookup_or_alloc(ns, cpu, &Packet::new(t, flags), now).unwrap();
                    let early = ct.stats_sum(ns).early_drop - ed_before;
                    if let CtLookup::Dropped(CtDrop::TableFull) = out {
                        prop_assert!(count_before >= max, "drop below the limit");
                    }
                    if early > 0 {
                        prop_assert!(count_before >= max, "early drop below the limit");
                        let start = ct.bucket_of(ns, &t);
                        let mut victims = 0;
                        for c in &before {
                            let expired = c.expires.is_some_and(|e| e <= now);
                            let same_flow = c.original == t || c.reply == t;
                            if ct.conn(c.id).is_none() && c.confirmed && !expired && !same_flow {
                                victims += 1;
                                prop_assert!(!c.assured, "early drop evicted an ASSURED entry");
                                prop_assert_eq!(c.ns, ns);
                                let in_win = window_contains(&ct, start, ct.bucket_of(c.ns, &c.original))
                                    || window_contains(&ct, start, ct.bucket_of(c.ns, &c.reply));
                                prop_assert!(in_win, "victim outside the 8-bucket window");
                            }
                        }
                        prop_assert_eq!(victims, early);
                    }
                    if let CtLookup::New { id } = out {
                        pending.push(id);
                    }
                }
                Op::Confirm { pick } if !pending.is_empty() => {
                    let id = pending.swap_remove(pick % pending.len());
                    let f = ct.stats_sum(0).drop + ct.stats_sum(1).drop;
                    match ct.confirm(id, 0, now).unwrap() {
                        ConfirmOutcome::Dropped(CtDrop::ChainTooLong) => {
                            prop_assert_eq!(ct.stats_sum(0).drop + ct.stats_sum(1).drop, f);
                        }
                        ConfirmOutcome::Dropped(_) => {
                            prop_assert_eq!(ct.stats_sum(0).drop + ct.stats_sum(1).drop, f + 1);
                        }
                        _ => {}
                    }
                }
                Op::Abort { pick } if !pending.is_empty() => {
                    let id = pending.swap_remove(pick % pending.len());
                    ct.abort(id).unwrap();
                }
                Op::Packet { pick, reply, flags } => {
                    let ids: Vec<_> = ct.conn_ids().into_iter()
                        .filter(|id| ct.conn(*id).is_some_and(|c| c.confirmed)).collect();
                    if !ids.is_empty() {
                        let c = ct.conn(ids[pick % ids.len()]).unwrap();
                        let t = if reply { c.reply } else { c.original };
                        let flags = if t.proto == Proto::Tcp { TcpFlags::from_bits(flags) } else { TcpFlags::NONE };
                        let p = Packet::new(t, flags);
                        if let CtLookup::Existing { id, dir, .. } = ct.lookup_or_alloc(c.ns, 1, &p, now).unwrap() {
                            ct.packet(id, dir, 1, &p, now).unwrap();
                        } else if let CtLookup::New { id } = ct.lookup_or_alloc(c.ns, 1, &p, now).unwrap() {
                            pending.push(id);
                        }
                    }
                }
                Op::Advance { ms } => now += SimDuration::from_millis(u64::from(ms)),
                Op::Gc => { ct.gc_step(now); }
                Op::List { ns } => {
                    for e in ct.list(ns, now) {
                        prop_assert!(e.timeout_secs < 500_000);
                    }
                }
                _ => {}
            }
            // Unconfirmed handles may have been freed only by confirm/abort.
            pending.retain(|id| ct.conn(*id).is_some());
            check_counts(&ct, max)?;
        }
    }
}

/// Applies `op` to `ct` as a node would, with the bookkeeping of unconfirmed entries.
fn apply(ct: &mut ConntrackTable, op: &Op, now: &mut SimTime, pending: &mut Vec<ConnId>) {
    match *op {
        Op::New { ns, proto, flow, cpu } => {
            let flags = if proto == Proto::Tcp {
                TcpFlags::SYN
            } else {
                TcpFlags::NONE
            };
            let p = Packet::new(tuple(proto, flow), flags);
            if let Ok(CtLookup::New { id }) = ct.lookup_or_alloc(ns, cpu, &p, *now) {
                pending.push(id);
            }
        }
        Op::Confirm { pick } if !pending.is_empty() => {
            let id = pending.swap_remove(pick % pending.len());
            let _ = ct.confirm(id, 0, *now);
        }
        Op::Abort { pick } if !pending.is_empty() => {
            let id = pending.swap_remove(pick % pending.len());
            let _ = ct.abort(id);
        }
        Op::Packet { pick, reply, flags } => {
            let ids: Vec<_> = ct
                .conn_ids()
                .into_iter()
                .filter(|id| ct.conn(*id).is_some_and(|c| c.confirmed))
                .collect();
            if let Some(c) = ids.get(pick % ids.len().max(1)).and_then(|id| ct.conn(*id)) {
                let t = if reply { c.reply } else { c.original };
                let flags = if t.proto == Proto::Tcp {
                    TcpFlags::from_bits(flags)
                } else {
                    TcpFlags::NONE
                };
                let p = Packet::new(t, flags);
                match ct.lookup_or_alloc(c.ns, 1, &p, *now) {
                    Ok(CtLookup::Existing { id, dir, .. }) => {
                        let _ = ct.packet(id, dir, 1, &p, *now);
                    }
                    Ok(CtLookup::New { id }) => pending.push(id),
                    _ => {}
                }
            }
        }
        Op::Advance { ms } => *now += SimDuration::from_millis(u64::from(ms)),
        Op::Gc => {
            ct.gc_step(*now);
        }
        Op::List { ns } => {
            ct.list(ns, *now);
        }
        Op::Snat { pick, ports, seed } if !pending.is_empty() => {
            let id = pending[pick % pending.len()];
            let nat = match ports {
                None => SrcNat::Null,
                Some(n) => {
                    SrcNat::Snat(NatRange::single(Ipv4Addr::new(10, 244, 0, 1)).with_ports(1000, 1000 + n))
                }
            };
            let _ = ct.apply_src_nat(id, 0, nat, &mut SimRng::from_seed(seed), *now);
        }
        _ => {}
    }
    pending.retain(|id| ct.conn(*id).is_some());
}

/// Everything about a table a report or a later packet can observe.
fn observable(ct: &ConntrackTable) -> (Vec<String>, Vec<u32>, Vec<String>) {
    let conns = ct
        .conn_ids()
        .into_iter()
        .filter_map(|id| ct.conn(id))
        .map(|c| format!("{c:?}"))
        .collect();
    let counts = (0..2).map(|ns| ct.count(ns)).collect();
    let stats = (0..2).map(|ns| ct.format_stats(ns)).collect();
    (conns, counts, stats)
}

proptest! {
    #![proptest_config(config())]

    /// `early_drop`, lookups, the NAT port search and confirm skip chains whose summary
    /// says the walk can neither change nor find anything (docs/model.md §Work the
    /// simulator folds). Walking every chain, as the kernel does, must leave the same
    /// entries, counts and counters after every operation.
    #[test]
    fn early_drop_skipping_inert_chains_changes_nothing(
        max in 4u32..40,
        buckets in 8u32..64,
        ops in prop::collection::vec(op(), 1..400),
    ) {
        let sysctls = Sysctls::default();
        let cfg = CtConfig::new(&sysctls, KernelProfile::LINUX_6_18, 2).with_size(max, buckets);
        let mut timeouts = sysctls.ct_timeouts;
        timeouts.tcp_syn_sent = SimDuration::from_secs(20);
        timeouts.udp = SimDuration::from_secs(10);
        let mut tables = [0, 1].map(|_| {
            let mut ct = ConntrackTable::new(cfg, SimRng::from_seed(u64::from(max))).unwrap();
            for ns in 0..2 {
                let mut n = NetnsConfig::enabled(&sysctls);
                n.timeouts = timeouts;
                ct.set_netns(ns, n);
            }
            ct
        });
        tables[1].set_exhaustive_scans(true);
        let mut now = [SimTime::ZERO; 2];
        let mut pending: [Vec<ConnId>; 2] = [Vec::new(), Vec::new()];
        for op in &ops {
            for i in 0..2 {
                apply(&mut tables[i], op, &mut now[i], &mut pending[i]);
            }
            prop_assert_eq!(observable(&tables[0]), observable(&tables[1]), "after {:?}", op);
        }
    }
}
