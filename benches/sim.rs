//! End-to-end simulation speed: the flash-sale scenario (30k QPS of short connections,
//! 5,000 background Services) for 10 and 40 simulated seconds (the 40 s run includes the
//! fill at ~4.4 s and the retry storm after it), and the small smoke scenario. The full
//! 120 s and 600 s runs are measured by `scripts/measure-storm.sh` (wall, x real time,
//! events/s, peak RSS).
//! Reports wall time per run; events per run are printed once so events/s can be derived.

#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_netsim::scenario::{Override, Scenario};
use std::time::Duration;

fn load(file: &str, sets: &[&str]) -> Scenario {
    let path = format!("{}/scenarios/{file}", env!("CARGO_MANIFEST_DIR"));
    let overrides: Vec<Override> = sets.iter().map(|s| Override::parse(s).unwrap()).collect();
    Scenario::load(path, &overrides).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(1));
    for (name, file, sets) in [
        ("flash-sale-10s", "flash-sale.yaml", vec!["duration=10s"]),
        ("flash-sale-40s", "flash-sale.yaml", vec!["duration=40s"]),
        ("small-20s", "small.yaml", vec![]),
    ] {
        let sc = load(file, &sets);
        let events = k8s_netsim::sim::run(&sc, &mut |_, _| {})
            .unwrap()
            .report
            .engine
            .events;
        eprintln!("{name}: {events} events per run");
        g.bench_function(name, |b| {
            b.iter(|| k8s_netsim::sim::run(&sc, &mut |_, _| {}).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
