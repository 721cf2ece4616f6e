//! First-packet lookup per proxy data plane (iptables, nftables, IPVS, eBPF) against the
//! number of Services (10 endpoints each): simulator time per first packet, and the modelled
//! kernel work (rules evaluated, hash lookups, scheduler operations) printed once per size.
//!
//! iptables runs the generated ruleset through `IptablesProxy` (nat PREROUTING, filter
//! FORWARD, nat POSTROUTING with the indexed fast evaluator), so its modelled cost includes
//! the filter and POSTROUTING rules as well as the KUBE-SERVICES scan.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_main};
use k8s_netsim::packet::{Proto, Tuple};
use k8s_netsim::rng::SimRng;
use k8s_netsim::service::ebpf::{EbpfConfig, EbpfProxy};
use k8s_netsim::service::ipvs::{IpvsConfig, IpvsProxy};
use k8s_netsim::service::nftables::{NftablesConfig, NftablesProxy};
use k8s_netsim::service::{
    IptablesProxy, LookupCost, ProxyConfig, ServicePort, ServiceProxy, synthetic_cluster_ip,
};
use k8s_netsim::time::{SimDuration, SimTime};

const SIZES: [usize; 5] = [100, 1_000, 5_000, 10_000, 30_000];
const SAMPLE: usize = 256;

/// The destinations of a fixed sample of first packets (seeded).
fn targets(svcs: &[ServicePort]) -> Vec<Ipv4Addr> {
    let mut rng = SimRng::from_seed(2024);
    (0..SAMPLE)
        .map(|_| {
            #[allow(clippy::cast_possible_truncation)]
            let s = &svcs[rng.below(svcs.len() as u64) as usize];
            s.cluster_ip
        })
        .collect()
}

/// The i-th first packet: a new source port every time, and (for the stateful modes) a clock
/// that moves 61 s per packet so IPVS SYN_RECV connections (60 s) expire behind it.
fn flow(dsts: &[Ipv4Addr], i: usize) -> (Tuple, SimTime) {
    #[allow(clippy::cast_possible_truncation)]
    let sport = 1024 + (i % 60_000) as u16;
    let t = Tuple::new(
        Proto::Tcp,
        Ipv4Addr::new(10, 244, 7, 7),
        sport,
        dsts[i % SAMPLE],
        80,
    );
    (
        t,
        SimTime::ZERO + SimDuration::from_secs(61).saturating_mul(i as u64),
    )
}

fn mean(costs: &[LookupCost]) -> (f64, f64, f64) {
    #[allow(clippy::cast_precision_loss)]
    let n = costs.len() as f64;
    let sum = |f: fn(&LookupCost) -> u32| costs.iter().map(|c| f64::from(f(c))).sum::<f64>() / n;
    (
        sum(|c| c.rules_evaluated),
        sum(|c| c.hash_lookups),
        sum(|c| c.scheduler_ops),
    )
}

fn bench(c: &mut Criterion) {
    let cfg = ProxyConfig::default();
    let mut group = c.benchmark_group("proxy_first_packet");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for n in SIZES {
        let svcs = synthetic_cluster_ip(n, 10, false);
        let dsts = targets(&svcs);
        let modes: Vec<(&str, Box<dyn ServiceProxy>)> = vec![
            ("iptables", Box::new(IptablesProxy::new(&svcs, &cfg))),
            (
                "nftables",
                Box::new(NftablesProxy::new(
                    &svcs,
                    &NftablesConfig {
                        proxy: cfg.clone(),
                        ..NftablesConfig::default()
                    },
                )),
            ),
            (
                "ipvs",
                Box::new(IpvsProxy::new(
                    &svcs,
                    &IpvsConfig {
                        proxy: cfg.clone(),
                        ..IpvsConfig::default()
                    },
                )),
            ),
            ("ebpf", Box::new(EbpfProxy::new(&svcs, &EbpfConfig::default()))),
        ];
        for (name, mut m) in modes {
            let mut rng = SimRng::from_seed(1);
            let costs: Vec<LookupCost> = (0..SAMPLE)
                .map(|i| {
                    let (t, now) = flow(&dsts, i);
                    m.first_packet(t, &mut rng, now).cost
                })
                .collect();
            let (r, h, s) = mean(&costs);
            eprintln!(
                "services={n} endpoints=10 mode={name} modelled mean: rules_evaluated={r:.1} hash_lookups={h:.1} scheduler_ops={s:.1}"
            );
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                let mut i = SAMPLE;
                b.iter(|| {
                    let (t, now) = flow(&dsts, i);
                    i += 1;
                    black_box(m.first_packet(t, &mut rng, now))
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
