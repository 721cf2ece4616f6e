//! First-packet cost of kube-proxy's iptables rules: nat PREROUTING for a new connection to a
//! ClusterIP, against the number of Services (10 endpoints each), with the fast (indexed)
//! and the reference (linear) evaluator. Also prints the modelled `rules_evaluated`.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{BenchmarkId, Criterion, criterion_main};
use k8s_netsim::netfilter::{CtStateMatch, EvalContext, EvalState, Hook, Ruleset, TableKind};
use k8s_netsim::packet::{Packet, Proto, TcpFlags, Tuple};
use k8s_netsim::rng::SimRng;
use k8s_netsim::service::iptables::generate;
use k8s_netsim::service::{ProxyConfig, ServicePort, synthetic_cluster_ip};
use k8s_netsim::time::SimTime;

const SIZES: [usize; 5] = [100, 1_000, 5_000, 10_000, 30_000];
const SAMPLE: usize = 256;

fn nothing_local(_: Ipv4Addr) -> bool {
    false
}

/// A fixed sample of first packets to random Services (seeded).
fn packets(svcs: &[ServicePort]) -> Vec<Packet> {
    let mut rng = SimRng::from_seed(2024);
    (0..SAMPLE)
        .map(|i| {
            #[allow(clippy::cast_possible_truncation)]
            let s = &svcs[rng.below(svcs.len() as u64) as usize];
            #[allow(clippy::cast_possible_truncation)]
            let sport = 30_000 + i as u16;
            Packet::new(
                Tuple::new(
                    Proto::Tcp,
                    Ipv4Addr::new(10, 244, 7, 7),
                    sport,
                    s.cluster_ip,
                    s.port,
                ),
                TcpFlags::SYN,
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let cfg = ProxyConfig::default();
    let mut group = c.benchmark_group("nat_prerouting_first_packet");
    for n in SIZES {
        let svcs = synthetic_cluster_ip(n, 10, false);
        let rs: Ruleset = generate(&svcs, &cfg);
        let pkts = packets(&svcs);
        let cx = EvalContext::new(CtStateMatch::NEW, &nothing_local, SimTime::ZERO);
        let mut state = EvalState::new();
        let mut rng = SimRng::from_seed(1);
        let total: u64 = pkts
            .iter()
            .map(|p| {
                u64::from(
                    rs.evaluate(TableKind::Nat, Hook::Prerouting, p, &cx, &mut state, &mut rng)
                        .rules_evaluated,
                )
            })
            .sum();
        #[allow(clippy::cast_precision_loss)]
        let mean = total as f64 / SAMPLE as f64;
        eprintln!("services={n} endpoints=10 modelled rules_evaluated mean={mean:.1} (sample {SAMPLE})");
        for (name, fast) in [("fast", true), ("reference", false)] {
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                let mut i = 0;
                b.iter(|| {
                    let p = &pkts[i % SAMPLE];
                    i += 1;
                    let ev = if fast {
                        rs.evaluate(TableKind::Nat, Hook::Prerouting, p, &cx, &mut state, &mut rng)
                    } else {
                        rs.evaluate_reference(TableKind::Nat, Hook::Prerouting, p, &cx, &mut state, &mut rng)
                    };
                    black_box(ev)
                });
            });
        }
    }
    group.finish();
}

/// Criterion's generated entry points.
mod entry {
    #![allow(missing_docs)]
    use super::bench;
    criterion::criterion_group!(benches, bench);
}

criterion_main!(entry::benches);
