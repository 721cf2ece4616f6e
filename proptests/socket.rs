//! Socket table invariants under random connect / close / time sequences: a port is
//! never handed out twice while its 4-tuple is held (unless TIME_WAIT is reused), and
//! the table's counts match an independent model.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_netsim::packet::Tuple;
use k8s_netsim::rng::SimRng;
use k8s_netsim::socket::{CloseOutcome, CloseRole, SocketConfig, SocketTable, TwReuse};
use k8s_netsim::time::{SimDuration, SimTime};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Connect { dst: u8 },
    Close { pick: usize, active: bool },
    Advance { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..2).prop_map(|dst| Op::Connect { dst }),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(pick, active)| Op::Close { pick, active }),
        1 => prop_oneof![0u64..2_000, 55_000u64..65_000].prop_map(|ms| Op::Advance { ms }),
    ]
}

proptest! {
    #[test]
    fn held_tuples_are_never_handed_out_twice(
        ops in proptest::collection::vec(op(), 1..300),
        reuse in 0u8..3,
        seed in any::<u64>(),
    ) {
        let config = SocketConfig {
            port_range: (40_000, 40_007),
            tw_reuse: TwReuse::from_sysctl(reuse).unwrap(),
            max_tw_buckets: 6,
            ..SocketConfig::default()
        };
        let mut table = SocketTable::new(config, SimRng::stream(seed, "socket"));
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let mut now = SimTime::ZERO;
        // Independent model: open sockets, and TIME_WAIT sockets with their expiry.
        let mut open: Vec<Tuple> = Vec::new();
        let mut time_wait: BTreeMap<Tuple, SimTime> = BTreeMap::new();
        for op in ops {
            time_wait.retain(|_, until| *until > now);
            match op {
                Op::Connect { dst } => {
                    let daddr = Ipv4Addr::new(10, 0, 1, dst);
                    if let Ok(c) = table.connect(src, daddr, 80, now) {
                        prop_assert!(!open.contains(&c.tuple), "open tuple handed out again");
                        let was_tw = time_wait.remove(&c.tuple).is_some();
                        prop_assert_eq!(was_tw, c.reused_time_wait);
                        if was_tw {
                            prop_assert!(reuse == 1, "reuse only with tcp_tw_reuse=1 off loopback");
                        }
                        open.push(c.tuple);
                    }
                }
                Op::Close { pick, active } => {
                    if open.is_empty() {
                        continue;
                    }
                    let t = open.swap_remove(pick % open.len());
                    let role = if active { CloseRole::ActiveCloser } else { CloseRole::PassiveCloser };
                    match table.close(t, role, 7, now).unwrap() {
                        CloseOutcome::TimeWait { until } => {
                            prop_assert!(time_wait.len() < 6);
                            time_wait.insert(t, until);
                        }
                        CloseOutcome::TimeWaitOverflow => prop_assert_eq!(time_wait.len(), 6),
                        CloseOutcome::Closed => prop_assert!(!active),
                    }
                }
                Op::Advance { ms } => now += SimDuration::from_millis(ms),
            }
            time_wait.retain(|_, until| *until > now);
            prop_assert_eq!(table.time_wait_count(now) as usize, time_wait.len());
            prop_assert_eq!(table.socket_count(), open.len() + time_wait.len());
        }
    }
}
