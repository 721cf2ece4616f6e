//! Conntrack table costs at kube-proxy sizes (buckets = max / 4): lookup of an
//! existing entry, allocation + confirmation of a new one, and a gc pass, at 131,072
//! and 1,048,576 entries.

use criterion::{BenchmarkId, Criterion, black_box};
use k8s_netsim::conntrack::{ConntrackTable, CtConfig, CtLookup, ENTRY_BYTES, NetnsConfig};
use k8s_netsim::kernel::{KernelProfile, Sysctls};
use k8s_netsim::packet::{Packet, Proto, TcpFlags, Tuple};
use k8s_netsim::rng::SimRng;
use k8s_netsim::time::SimTime;
use std::net::Ipv4Addr;

fn tuple(i: u32) -> Tuple {
    #[allow(clippy::cast_possible_truncation)]
    let sport = 1024 + (i % 60_000) as u16;
    Tuple::new(
        Proto::Tcp,
        Ipv4Addr::from_bits(0x0af4_0000 + i / 60_000),
        sport,
        Ipv4Addr::new(10, 96, 0, 10),
        80,
    )
}

/// A table of `n` confirmed SYN_SENT entries with max = n + 1 and buckets = max / 4.
fn filled(n: u32) -> ConntrackTable {
    let sysctls = Sysctls::default();
    let max = n + 1;
    let cfg = CtConfig::new(&sysctls, KernelProfile::LINUX_6_18, 4).with_size(max, max / 4);
    let mut ct = ConntrackTable::new(cfg, SimRng::stream(1, "conntrack")).expect("config");
    ct.set_netns(0, NetnsConfig::enabled(&sysctls).as_init());
    let now = SimTime::from_secs(1);
    for i in 0..n {
        let p = Packet::new(tuple(i), TcpFlags::SYN);
        if let Ok(CtLookup::New { id }) = ct.lookup_or_alloc(0, 0, &p, now) {
            let _ = ct.confirm(id, 0, now);
        }
    }
    ct
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("conntrack");
    for n in [131_072u32, 1_048_576] {
        let mut ct = filled(n);
        let bytes = ct.memory_bytes();
        eprintln!(
            "entries {n}: size_of Entry {ENTRY_BYTES} B, model memory {bytes} B = {:.1} B/entry incl. buckets",
            bytes as f64 / f64::from(n)
        );
        let now = SimTime::from_secs(2);
        let mut i = 0u32;
        g.bench_with_input(BenchmarkId::new("lookup_existing", n), &n, |b, &n| {
            b.iter(|| {
                i = (i + 7_919) % n;
                let p = Packet::new(tuple(i), TcpFlags::SYN);
                black_box(ct.lookup_or_alloc(0, 0, &p, now))
            });
        });
        let mut k = n;
        g.bench_with_input(BenchmarkId::new("alloc_confirm_kill", n), &n, |b, _| {
            b.iter(|| {
                k = k.wrapping_add(1);
                let p = Packet::new(tuple(k), TcpFlags::SYN);
                if let Ok(CtLookup::New { id }) = ct.lookup_or_alloc(0, 1, &p, now) {
                    let _ = black_box(ct.confirm(id, 1, now));
                    let _ = ct.kill(id);
                }
            });
        });
        // A full gc pass over live entries (nothing expired).
        g.bench_with_input(BenchmarkId::new("gc_pass_live", n), &n, |b, _| {
            b.iter(|| black_box(ct.gc_step(now)));
        });
        // Expiry: a pass that reaps everything (rebuilt per iteration).
        g.sample_size(10);
        g.bench_with_input(BenchmarkId::new("gc_reap_all_expired", n), &n, |b, &n| {
            b.iter_batched(
                || filled(n),
                |mut t| {
                    let mut at = SimTime::from_secs(1_000);
                    while t.count(0) > 0 {
                        at = t.gc_step(at);
                    }
                    t
                },
                criterion::BatchSize::PerIteration,
            );
        });
        g.sample_size(100);
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
