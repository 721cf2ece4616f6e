//! The canonical conntrack "storm" (docs/performance.md §Canonical storm) on the k8s-netsim
//! engine.
//!
//! ```text
//!   Poisson 30k/s ──▶ table (C = 262,144) ──▶ ESTABLISHED ~ lognormal(20 ms, σ 1)
//!   arrivals            clash / drop / insert      └─▶ TIME_WAIT 120 s (FIFO lane) ─▶ expiry
//! ```
//!
//! Prints one JSON line with the peers' counters (events, inserts, drops, clashes,
//! expiries, drop onset) and the speed (events/s, simulated seconds per wall second).
//! With the default seed the counters must equal the peers' table: T=60 gives 2,063,025
//! events, 262,144 inserts, 1,381,258 drops, 157,479 clashes, drop onset 9.172112 s.
//!
//! ```sh
//! cargo run --release --example storm_engine -- --t 60 [--expiry lane|heap] [--seed 42]
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "../benches/storm/mod.rs"]
mod storm;

use k8s_netsim::time::SimTime;
use storm::{Expiries, SEED};

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let flag = format!("--{name}");
    args.iter()
        .position(|a| *a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

#[expect(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let t: f64 = arg(&args, "t").and_then(|v| v.parse().ok()).unwrap_or(60.0);
    let seed: u64 = arg(&args, "seed").and_then(|v| v.parse().ok()).unwrap_or(SEED);
    let expiries = match arg(&args, "expiry").unwrap_or("lane") {
        "heap" => Expiries::Heap,
        "lane" => Expiries::Lane,
        other => {
            eprintln!("unknown --expiry {other} (lane|heap)");
            std::process::exit(2);
        }
    };
    let horizon = SimTime::from_nanos((t * 1e9) as u64);
    #[expect(clippy::disallowed_methods, reason = "the example measures its own wall time")]
    let start = std::time::Instant::now();
    let st = storm::run_storm(seed, horizon, expiries);
    let wall = start.elapsed().as_secs_f64();
    let onset = st
        .onset
        .map_or("null".to_string(), |o| format!("{:.6}", o.as_secs_f64()));
    println!(
        "{{\"engine\":\"k8s-netsim-{}\",\"t\":{t},\"seed\":{seed},\"events\":{},\"arrivals\":{},\"inserts\":{},\
         \"drops\":{},\"clashes\":{},\"closes\":{},\"expiries\":{},\"peak\":{},\"onset_s\":{onset},\
         \"wall_s\":{wall:.4},\"events_per_s\":{:.0},\"sim_s_per_wall_s\":{:.2}}}",
        if expiries == Expiries::Lane {
            "lane"
        } else {
            "heap"
        },
        st.events,
        st.arrivals,
        st.inserts,
        st.drops,
        st.clashes,
        st.closes,
        st.expiries,
        st.peak,
        st.events as f64 / wall,
        t / wall,
    );
}
