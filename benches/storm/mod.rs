//! The canonical "storm" model (docs/performance.md §Canonical storm), written as a
//! [`Model`] on our engine: Poisson arrivals at 30,000/s of random 5-tuples into a
//! table of capacity 262,144; an inserted connection lives a lognormal time (median
//! 20 ms, sigma 1), then enters TIME_WAIT and expires 120 s later.
//!
//! The random stream is the peers' xoshiro256++ seeded through splitmix64, with the
//! same five draws per connection, so the counters can be compared with the peers'
//! table: identical counters prove the engine delivers simultaneous events in the same
//! first-in-first-out order as the peers' engines. Shared by `benches/engine.rs` and
//! `examples/storm_engine.rs`.

use k8s_netsim::engine::{Context, Engine, LaneId, Model};
use k8s_netsim::rng::{SPLITMIX64_GAMMA, splitmix64};
use k8s_netsim::time::{SimDuration, SimTime};

/// Connection arrival rate (per simulated second).
pub(crate) const LAMBDA: f64 = 30_000.0;
/// Table capacity.
pub(crate) const CAPACITY: usize = 262_144;
/// TIME_WAIT timeout.
pub(crate) const TIME_WAIT: SimDuration = SimDuration::from_secs(120);
/// Median connection lifetime in seconds and lognormal sigma.
const LIFE_MEDIAN_S: f64 = 0.020;
const LIFE_SIGMA: f64 = 1.0;
/// Client ports are uniform in `PORT_LO..PORT_LO + PORT_COUNT`.
const PORT_LO: u64 = 10_240;
const PORT_COUNT: u64 = 65_536 - 10_240;
const BACKENDS: u64 = 50;
/// The peers' seed.
pub(crate) const SEED: u64 = 42;

/// 13-byte conntrack key: src ip, dst ip, src port, dst port, protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key([u8; 13]);

impl Key {
    fn new(client_port: u16, backend: u8) -> Key {
        let mut k = [0u8; 13];
        k[0..4].copy_from_slice(&[10, 0, 0, 1]);
        k[4..8].copy_from_slice(&[10, 244, 1, backend + 1]);
        k[8..10].copy_from_slice(&client_port.to_be_bytes());
        k[10..12].copy_from_slice(&8080u16.to_be_bytes());
        k[12] = 6;
        Key(k)
    }
}

/// One future connection: gap since the previous arrival, key, ESTABLISHED lifetime.
#[derive(Clone, Copy, Debug)]
struct Conn {
    gap: SimDuration,
    key: Key,
    life: SimDuration,
}

/// xoshiro256++ seeded through splitmix64 (the peers' stream, bit for bit).
#[derive(Clone, Debug)]
struct Xoshiro {
    s: [u64; 4],
}

impl Xoshiro {
    fn new(seed: u64) -> Xoshiro {
        let mut x = seed;
        let mut s = [0u64; 4];
        for w in &mut s {
            *w = splitmix64(x);
            x = x.wrapping_add(SPLITMIX64_GAMMA);
        }
        Xoshiro { s }
    }

    #[inline]
    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let r = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        r
    }

    #[inline]
    #[allow(clippy::cast_precision_loss, reason = "53-bit mantissa draw")]
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    #[inline]
    fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() >> 32) * n) >> 32
    }

    /// Exactly five draws: gap, port, backend, two for Box-Muller.
    #[inline]
    #[allow(clippy::cast_possible_truncation, reason = "port < 65536, backend < 50")]
    fn next_conn(&mut self) -> Conn {
        let gap_s = -(1.0 - self.unit()).ln() / LAMBDA;
        let port = PORT_LO + self.below(PORT_COUNT);
        let backend = self.below(BACKENDS);
        let (u1, u2) = (self.unit(), self.unit());
        let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let life_s = LIFE_MEDIAN_S * (LIFE_SIGMA * z).exp();
        Conn {
            gap: to_duration(gap_s),
            key: Key::new(port as u16, backend as u8),
            life: to_duration(life_s),
        }
    }
}

/// Seconds to whole nanoseconds, at least 1 ns (the peers' `to_ns`).
#[inline]
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "positive, < 2^64 ns"
)]
fn to_duration(s: f64) -> SimDuration {
    SimDuration::from_nanos(((s * 1e9) as u64).max(1))
}

/// Storm events.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Ev {
    /// The next connection arrives.
    Arrival,
    /// A connection leaves ESTABLISHED for TIME_WAIT.
    Close(Key),
    /// A TIME_WAIT entry is removed.
    Expire(Key),
}

const ESTABLISHED: u8 = 1;
const TIME_WAIT_STATE: u8 = 2;

/// Counters the peers report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Arrivals + closes + expiries delivered.
    pub(crate) events: u64,
    /// Arrivals.
    pub(crate) arrivals: u64,
    /// Arrivals inserted.
    pub(crate) inserts: u64,
    /// Arrivals dropped because the table was full.
    pub(crate) drops: u64,
    /// Arrivals whose tuple was already present.
    pub(crate) clashes: u64,
    /// Connections entering TIME_WAIT.
    pub(crate) closes: u64,
    /// TIME_WAIT entries removed.
    pub(crate) expiries: u64,
    /// Largest table size.
    pub(crate) peak: u64,
    /// Time of the first drop.
    pub(crate) onset: Option<SimTime>,
}

type Table = hashbrown::HashMap<Key, u8, foldhash::fast::FixedState>;

/// The storm as an engine model.
#[derive(Debug)]
pub(crate) struct Storm {
    rng: Xoshiro,
    next: Conn,
    table: Table,
    expiry_lane: Option<LaneId>,
    /// Counters.
    pub(crate) stats: Stats,
}

impl Model for Storm {
    type Event = Ev;

    #[inline]
    fn handle(&mut self, ev: Ev, cx: &mut Context<'_, Ev>) {
        self.stats.events += 1;
        match ev {
            Ev::Arrival => {
                self.stats.arrivals += 1;
                let len = self.table.len();
                match self.table.entry(self.next.key) {
                    hashbrown::hash_map::Entry::Occupied(_) => self.stats.clashes += 1,
                    hashbrown::hash_map::Entry::Vacant(_) if len >= CAPACITY => {
                        self.stats.drops += 1;
                        self.stats.onset.get_or_insert(cx.now());
                    }
                    hashbrown::hash_map::Entry::Vacant(v) => {
                        v.insert(ESTABLISHED);
                        self.stats.inserts += 1;
                        self.stats.peak = self.stats.peak.max(len as u64 + 1);
                        cx.schedule_after(self.next.life, Ev::Close(self.next.key));
                    }
                }
                self.next = self.rng.next_conn();
                cx.schedule_after(self.next.gap, Ev::Arrival);
            }
            Ev::Close(key) => {
                self.stats.closes += 1;
                if let Some(state) = self.table.get_mut(&key) {
                    *state = TIME_WAIT_STATE;
                }
                match self.expiry_lane {
                    Some(lane) => cx.schedule_lane(lane, TIME_WAIT, Ev::Expire(key)),
                    None => cx.schedule_after(TIME_WAIT, Ev::Expire(key)),
                };
            }
            Ev::Expire(key) => {
                self.stats.expiries += 1;
                self.table.remove(&key);
            }
        }
    }
}

/// Which queue the TIME_WAIT expiries use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expiries {
    /// The general heap.
    Heap,
    /// A FIFO lane.
    Lane,
}

/// An engine holding the storm with its first arrival scheduled.
pub(crate) fn storm_engine(seed: u64, expiries: Expiries) -> Engine<Storm> {
    let mut rng = Xoshiro::new(seed);
    let next = rng.next_conn();
    let first_gap = next.gap;
    let model = Storm {
        rng,
        next,
        table: Table::with_capacity_and_hasher(CAPACITY, foldhash::fast::FixedState::default()),
        expiry_lane: None,
        stats: Stats::default(),
    };
    let mut engine = Engine::new(model);
    if expiries == Expiries::Lane {
        engine.model_mut().expiry_lane = engine.add_lane().ok();
    }
    engine.schedule_after(first_gap, Ev::Arrival);
    engine
}

/// Runs the storm to `horizon` (inclusive) and returns its counters.
pub(crate) fn run_storm(seed: u64, horizon: SimTime, expiries: Expiries) -> Stats {
    let mut engine = storm_engine(seed, expiries);
    engine.run_until(horizon);
    engine.into_model().stats
}
