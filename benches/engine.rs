//! Engine throughput on the canonical storm (docs/performance.md §Canonical storm): T = 60 s of
//! simulated time, about 2.06 M events per iteration, expiries on a FIFO lane or on the
//! heap. Divide 2,063,025 events by the reported time for events/s.

mod storm;

use criterion::{Criterion, criterion_main};
use k8s_netsim::time::SimTime;
use storm::{Expiries, SEED};

fn storm_60s(c: &mut Criterion) {
    let horizon = SimTime::from_secs(60);
    // Correctness first: the counters must be the peers' (FIFO order equivalence).
    let st = storm::run_storm(SEED, horizon, Expiries::Lane);
    assert_eq!(
        (st.events, st.inserts, st.drops, st.clashes),
        (2_063_025, 262_144, 1_381_258, 157_479)
    );
    let mut group = c.benchmark_group("storm_t60");
    group.sample_size(10);
    group.throughput(criterion::Throughput::Elements(st.events));
    group.bench_function("lane_expiries", |b| {
        b.iter(|| storm::run_storm(SEED, horizon, Expiries::Lane).events);
    });
    group.bench_function("heap_expiries", |b| {
        b.iter(|| storm::run_storm(SEED, horizon, Expiries::Heap).events);
    });
    group.finish();
}

/// Criterion's generated entry points (undocumented by construction).
mod harness {
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::storm_60s);
}

criterion_main!(harness::benches);
