//! The modelled kernel cost of a connection's first packet per proxy data plane, against
//! the number of Services (10 endpoints each), priced with the default cost constants of
//! `cost:` (docs/scenario-format.md). Prints a table and writes
//! `docs/img/proxy-first-packet.svg` (the chart in docs/performance.md).
//!
//! The rule, hash-lookup and scheduler counts come from each mode's model
//! (`ServiceProxy::first_packet`) over 256 seeded first packets to random ClusterIPs;
//! the simulator's own speed for the same lookups is `cargo bench --bench proxy`.
//!
//! Run with `cargo run --release --example proxy_cost_chart [OUT.svg]`.

#![allow(clippy::print_stdout, clippy::cast_precision_loss)]

use std::net::Ipv4Addr;

use k8s_netsim::packet::{Proto, Tuple};
use k8s_netsim::report::chart::{Axis, LineChart, Series, ValueFormat};
use k8s_netsim::rng::SimRng;
use k8s_netsim::scenario::CostModel;
use k8s_netsim::service::ebpf::{EbpfConfig, EbpfProxy};
use k8s_netsim::service::ipvs::{IpvsConfig, IpvsProxy};
use k8s_netsim::service::nftables::{NftablesConfig, NftablesProxy};
use k8s_netsim::service::{IptablesProxy, ProxyConfig, ServiceProxy, synthetic_cluster_ip};
use k8s_netsim::time::{SimDuration, SimTime};

const SIZES: [usize; 6] = [100, 300, 1_000, 3_000, 10_000, 30_000];
const SAMPLE: u64 = 256;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("{}/docs/img/proxy-first-packet.svg", env!("CARGO_MANIFEST_DIR")));
    let cost = CostModel::default();
    let cfg = ProxyConfig::default();
    let names = ["iptables", "nftables", "ipvs", "ebpf"];
    let mut series: Vec<Series> = names
        .iter()
        .enumerate()
        .map(|(slot, n)| {
            let mut s = Series::line(*n, slot, []);
            s.dots = true;
            s
        })
        .collect();
    println!(
        "modelled kernel ns per first packet (rules x {} + hash lookups x {} + scheduler ops x {})",
        cost.per_rule, cost.per_hash_lookup, cost.per_scheduler_op
    );
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>10}",
        "Services", names[0], names[1], names[2], names[3]
    );
    for n in SIZES {
        let svcs = synthetic_cluster_ip(n, 10, false);
        let mut modes: Vec<Box<dyn ServiceProxy>> = vec![
            Box::new(IptablesProxy::new(&svcs, &cfg)),
            Box::new(NftablesProxy::new(
                &svcs,
                &NftablesConfig {
                    proxy: cfg.clone(),
                    ..NftablesConfig::default()
                },
            )),
            Box::new(IpvsProxy::new(
                &svcs,
                &IpvsConfig {
                    proxy: cfg.clone(),
                    ..IpvsConfig::default()
                },
            )),
            Box::new(EbpfProxy::new(&svcs, &EbpfConfig::default())),
        ];
        let mut pick = SimRng::from_seed(2024);
        let dsts: Vec<Ipv4Addr> = (0..SAMPLE)
            .map(|_| svcs[usize::try_from(pick.below(svcs.len() as u64)).unwrap_or(0)].cluster_ip)
            .collect();
        print!("{n:>8}");
        for (k, m) in modes.iter_mut().enumerate() {
            let mut rng = SimRng::from_seed(1);
            let mut ns = 0u64;
            for (i, dst) in dsts.iter().enumerate() {
                let sport = 1024 + u16::try_from(i).unwrap_or(0);
                let t = Tuple::new(Proto::Tcp, Ipv4Addr::new(10, 244, 7, 7), sport, *dst, 80);
                let now = SimTime::ZERO + SimDuration::from_secs(61).saturating_mul(i as u64);
                let c = m.first_packet(t, &mut rng, now).cost;
                ns += cost.per_rule.as_nanos() * u64::from(c.rules_evaluated)
                    + cost.per_hash_lookup.as_nanos() * u64::from(c.hash_lookups)
                    + cost.per_scheduler_op.as_nanos() * u64::from(c.scheduler_ops);
            }
            let mean = ns as f64 / SAMPLE as f64;
            print!(" {mean:>10.0}");
            series[k].points.push((n as f64, Some(mean)));
        }
        println!();
    }
    let mut x = Axis::log("ClusterIP Services (log), 10 endpoints each", ValueFormat::Count);
    x.ticks_at = Some(SIZES.iter().map(|n| *n as f64).collect());
    let svg = LineChart {
        title: "modelled first-packet cost per proxy mode (default cost constants)".into(),
        subtitle: format!("{SAMPLE} seeded first packets to random ClusterIPs per point"),
        x,
        y: Axis::log("ns per first packet (log)", ValueFormat::Count),
        series,
        markers: Vec::new(),
        stacked: false,
    }
    .render();
    std::fs::write(&out, svg)?;
    println!("wrote {out}");
    Ok(())
}
