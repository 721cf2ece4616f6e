//! Seeded random streams: one scenario seed, one independent stream per component.
//!
//! Every random choice in the simulator (arrival gaps, the `statistic` match, NAT port
//! offsets, the conntrack hash key, service times) draws from a [`SimRng`] derived
//! from `(scenario seed, component name)`. Adding a component or a workload therefore
//! does not perturb the streams of the others. The generator is ChaCha8, whose output
//! is specified and stable across `rand` versions (unlike `StdRng`).
//!
//! For keys and hashes that must be fixed functions of their input rather than draws
//! from a stream (a Maglev permutation, a veth name, a seeded ordering key), the module
//! also offers splitmix64's mixer: [`splitmix64`] and its output function [`mix64`].

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hash::{BuildHasherDefault, Hasher};

/// splitmix64's state increment: 2^64 divided by the golden ratio, rounded to odd.
pub const SPLITMIX64_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// splitmix64's output function (Stafford's "Mix13"): a bijection on `u64` in which each
/// input bit flips about half of the output bits. Use it to finalise a hash (FNV-1a
/// sums, packed address words) so that similar inputs give unrelated outputs.
///
/// Its results feed names, orderings and hash buckets that reach reports, so it is fixed:
/// changing it changes every report.
#[must_use]
#[inline]
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The splitmix64 output for state `x` (Steele, Lea and Flood, "Fast splittable
/// pseudorandom number generators", OOPSLA 2014): [`mix64`] of `x + SPLITMIX64_GAMMA`.
/// A generator seeded with `s` yields `splitmix64(s)`, `splitmix64(s + GAMMA)`, ...;
/// used alone, it turns a key into 64 well-mixed bits (also for keys 0, 1, 2, ...).
///
/// ```
/// use k8s_netsim::rng::{SPLITMIX64_GAMMA, splitmix64};
/// // The first two outputs of the reference generator seeded with 0.
/// assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
/// assert_eq!(splitmix64(SPLITMIX64_GAMMA), 0x6e78_9e6a_a1b9_65f4);
/// ```
#[must_use]
#[inline]
pub const fn splitmix64(x: u64) -> u64 {
    mix64(x.wrapping_add(SPLITMIX64_GAMMA))
}

/// A deterministic random stream.
#[derive(Clone, Debug)]
pub struct SimRng {
    inner: ChaCha8Rng,
}

impl SimRng {
    /// The stream for `component` under `seed`. The component name is hashed (FNV-1a,
    /// stable across platforms and releases) into the ChaCha stream id.
    #[must_use]
    pub fn stream(seed: u64, component: &str) -> SimRng {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in component.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let mut inner = ChaCha8Rng::seed_from_u64(seed);
        inner.set_stream(h);
        SimRng { inner }
    }

    /// A stream seeded directly (tests and benches).
    #[must_use]
    pub fn from_seed(seed: u64) -> SimRng {
        SimRng {
            inner: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// A uniformly random `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// A uniformly random `u32`.
    pub fn next_u32(&mut self) -> u32 {
        self.inner.next_u32()
    }

    /// A uniform integer in `0..n` (`n > 0`), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        self.inner.random_range(0..n.max(1))
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.inner.random::<f64>()
    }

    /// True with probability `p` (clamped to `[0, 1]`).
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// An exponential variate with the given mean, in integer nanoseconds (at least 1).
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    pub fn exp_nanos(&mut self, mean_nanos: u64) -> u64 {
        let u = 1.0 - self.unit(); // (0, 1]
        let x = -u.ln() * mean_nanos as f64;
        (x as u64).max(1)
    }

    /// A lognormal variate with the given median and shape `sigma`, in nanoseconds.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    pub fn lognormal_nanos(&mut self, median_nanos: u64, sigma: f64) -> u64 {
        let z = self.standard_normal();
        let x = median_nanos as f64 * (sigma * z).exp();
        if x >= u64::MAX as f64 {
            u64::MAX
        } else {
            (x as u64).max(1)
        }
    }

    /// A standard normal variate (Box-Muller).
    pub fn standard_normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// A fixed, seedless hasher for lookup-only indexes: [`splitmix64`] over the
/// written words (FNV-1a for byte slices). Same layout on every run and platform.
#[derive(Clone, Copy, Debug, Default)]
pub struct FixedHasher {
    state: u64,
}

impl Hasher for FixedHasher {
    fn finish(&self) -> u64 {
        splitmix64(self.state)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.state ^ 0xcbf2_9ce4_8422_2325;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.state = h;
    }

    fn write_u64(&mut self, n: u64) {
        self.state = self.state.rotate_left(29) ^ n;
    }
}

/// Build-hasher for [`FixedHasher`].
pub type FixedState = BuildHasherDefault<FixedHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_independent() {
        let mut a = SimRng::stream(42, "workload/0");
        let mut b = SimRng::stream(42, "workload/0");
        let mut c = SimRng::stream(42, "workload/1");
        let xa: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..4).map(|_| c.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
    }

    #[test]
    fn exponential_mean_is_close() {
        let mut r = SimRng::from_seed(7);
        let n = 20_000u64;
        let sum: u64 = (0..n).map(|_| r.exp_nanos(1_000_000)).sum();
        let mean = sum / n;
        assert!((950_000..1_050_000).contains(&mean), "mean {mean}");
    }
}
