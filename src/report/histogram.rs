//! A log-linear latency histogram over integer nanoseconds.
//!
//! Values are bucketed by their power of two and then linearly into 64 sub-buckets,
//! so any recorded value is reported within 1/64 (1.6 %) of its true value, with
//! constant memory and no floating point. Percentiles are the upper edge of the
//! bucket holding the requested rank, so they never under-report.

const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// A latency histogram (nanoseconds).
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    /// An empty histogram.
    #[must_use]
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
            sum: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB {
            return usize::try_from(v).unwrap_or(0);
        }
        let exp = 63 - v.leading_zeros(); // >= SUB_BITS
        let shift = exp - SUB_BITS;
        let sub = (v >> shift) - SUB; // 0..SUB
        let idx = u64::from(shift + 1) * SUB + sub;
        usize::try_from(idx).unwrap_or(BUCKETS - 1).min(BUCKETS - 1)
    }

    /// The largest value that falls into bucket `idx`.
    fn upper(idx: usize) -> u64 {
        let idx = idx as u64;
        if idx < SUB {
            return idx;
        }
        let shift = idx / SUB - 1;
        let sub = idx % SUB;
        let low = (SUB + sub) << shift;
        low.saturating_add((1u64 << shift) - 1)
    }

    /// Records one value.
    pub fn record(&mut self, nanos: u64) {
        self.counts[Self::index(nanos)] += 1;
        self.total += 1;
        self.max = self.max.max(nanos);
        self.sum += u128::from(nanos);
    }

    /// Number of recorded values.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest recorded value (exact).
    #[must_use]
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Mean of the recorded values (exact, truncated), 0 when empty.
    #[must_use]
    pub fn mean(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            u64::try_from(self.sum / u128::from(self.total)).unwrap_or(u64::MAX)
        }
    }

    /// The value at quantile `q` in per-mille-of-per-mille (`q_ppm` = 990_000 is P99),
    /// as the upper edge of its bucket, capped at the exact maximum. 0 when empty.
    #[must_use]
    pub fn quantile_ppm(&self, q_ppm: u64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        // rank = ceil(q * total), at least 1.
        let rank = (u128::from(q_ppm) * u128::from(self.total))
            .div_ceil(1_000_000)
            .max(1);
        let mut seen: u128 = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += u128::from(*c);
            if seen >= rank {
                return Self::upper(i).min(self.max);
            }
        }
        self.max
    }

    /// Values recorded in the buckets up to the one holding `nanos`: every value at most
    /// `nanos`, plus those sharing its bucket (at most 1/64 above it).
    #[must_use]
    pub fn count_at_most(&self, nanos: u64) -> u64 {
        self.counts[..=Self::index(nanos)].iter().sum()
    }

    /// Sum of the recorded values (exact).
    #[must_use]
    pub fn sum(&self) -> u128 {
        self.sum
    }

    /// Clears all counts.
    pub fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.total = 0;
        self.max = 0;
        self.sum = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_bucket_precision() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 1_000);
        }
        let p50 = h.quantile_ppm(500_000);
        let p99 = h.quantile_ppm(990_000);
        assert!(
            (50_000_000..=50_000_000 + 50_000_000 / 64).contains(&p50),
            "{p50}"
        );
        assert!(
            (99_000_000..=99_000_000 + 99_000_000 / 64).contains(&p99),
            "{p99}"
        );
        assert_eq!(h.quantile_ppm(1_000_000), 100_000_000);
        assert_eq!(h.max(), 100_000_000);
    }

    #[test]
    fn small_values_are_exact_and_empty_is_zero() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile_ppm(500_000), 0);
        h.record(3);
        h.record(5);
        assert_eq!(h.quantile_ppm(500_000), 3);
        assert_eq!(h.quantile_ppm(1_000_000), 5);
    }

    #[test]
    fn buckets_cover_the_u64_range() {
        let mut h = Histogram::new();
        h.record(u64::MAX);
        h.record(1 << 40);
        assert_eq!(h.quantile_ppm(1_000_000), u64::MAX);
        assert!(h.quantile_ppm(500_000) >= 1 << 40);
    }
}
