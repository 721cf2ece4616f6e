//! The fit behind [`crate::conntrack::RaceModel::MEASURED_6_18`]. Each race curve
//! (`in_flight(f) × exp(-(|gap| / (f × scale))^shape)`, `ln f` normal with standard
//! deviation `factor_sigma`, one `f` per recording; see [`RaceCurve`]) is fitted by maximum marginal
//! likelihood to the pairs of the `race-pairs` recordings (`k-race-gap`,
//! `l-syn-race`): one Bernoulli outcome (raced or not) per pair at its recorded gap,
//! the pairs of one recording sharing its factor, which is integrated out (Laplace,
//! around each recording's most likely factor). Only pairs
//! whose two sends ran on different CPUs enter a fit (the placement rule handles the
//! others). The goodness of fit is reported per gap bin (observed against expected
//! races, the expectation at each recording's most likely factor) and as Pearson's
//! chi-square over those bins; the factor of each recording is reported too.

use super::ValidateError;
use super::trace::{Experiment, RacePairRow};
use crate::conntrack::{RaceCurve, WindowFactor};
use crate::time::SimDuration;
use std::path::Path;

/// Gap bins (µs, lower bounds; the last is open) of the goodness-of-fit table.
const BINS_US: [f64; 10] = [0.0, 1.5, 3.0, 5.0, 8.0, 12.0, 18.0, 25.0, 35.0, 60.0];

/// Observed and expected races in one gap bin.
#[derive(Clone, Debug, PartialEq)]
pub struct FitBin {
    /// Lower bound of |gap|, µs.
    pub lo_us: f64,
    /// Upper bound of |gap|, µs (`None`: open).
    pub hi_us: Option<f64>,
    /// Pairs in the bin.
    pub pairs: usize,
    /// Pairs that raced.
    pub raced: usize,
    /// Races the fitted curve expects.
    pub expected: f64,
}

/// One fitted curve with its data and goodness of fit.
#[derive(Clone, Debug, PartialEq)]
pub struct RaceFit {
    /// Which curve of the model (`pinned_same_tuple`, ...).
    pub name: &'static str,
    /// The recordings it was fitted to (`experiment/param`).
    pub sources: Vec<String>,
    /// Pairs used (sends on different CPUs).
    pub pairs: usize,
    /// Of which raced.
    pub raced: usize,
    /// The maximum-likelihood curve.
    pub curve: RaceCurve,
    /// Its log-likelihood.
    pub log_likelihood: f64,
    /// Observed and expected races per gap bin.
    pub bins: Vec<FitBin>,
    /// Pearson's chi-square over the bins with at least 5 expected races and
    /// non-races, and its degrees of freedom (bins used - parameters fitted).
    pub chi_square: (f64, usize),
    /// The most likely window factor of each recording (same order as `sources`).
    pub factors: Vec<f64>,
}

/// The fits of the model's two curves, from the recordings under `traces`: the
/// same-tuple curve from every k recording with pairs on different CPUs, the SNAT
/// curve from l with the factor spread and in-flight slope of the same-tuple fit (one
/// recording cannot show them).
pub fn race_fits(traces: &Path) -> Result<Vec<RaceFit>, ValidateError> {
    let k = Experiment::load(traces, "k-race-gap")?;
    let l = Experiment::load(traces, "l-syn-race")?;
    let same = fit_from(&k, "k-race-gap", "same_tuple", SAME_TUPLE_FIT, None)?;
    let shared = (same.curve.factor_sigma, same.curve.in_flight_slope);
    let snat = fit_from(&l, "l-syn-race", "snat_reply", SNAT_FIT, Some(shared))?;
    Ok(vec![same, snat])
}

/// The k recordings the same-tuple curve is fitted to (every two-thread run).
pub(crate) const SAME_TUPLE_FIT: &[&str] = &[
    "different-b1",
    "different-b2",
    "scheduler-b1",
    "scheduler-b2",
    "different-b1-r2",
    "different-b2-r2",
];
/// The l recordings of the SNAT curve.
pub(crate) const SNAT_FIT: &[&str] = &["different"];

/// One recording's pairs, binned by |gap| (100 ns bins to 200 µs, one bin above).
#[derive(Debug, Default)]
struct Block {
    /// (|gap| ns at the bin centre, pairs, raced).
    bins: Vec<(f64, f64, f64)>,
}

impl Block {
    fn of(points: &[(f64, bool)]) -> Block {
        let mut counts = std::collections::BTreeMap::<u64, (f64, f64)>::new();
        for (g, raced) in points {
            let key = if *g >= 200_000.0 {
                10_000
            } else {
                (*g / 100.0) as u64
            };
            let e = counts.entry(key).or_insert((0.0, 0.0));
            e.0 += 1.0;
            e.1 += f64::from(u8::from(*raced));
        }
        Block {
            bins: counts
                .into_iter()
                .map(|(k, (n, r))| {
                    let centre = if k == 10_000 { 1e6 } else { k as f64 * 100.0 + 50.0 };
                    (centre, n, r)
                })
                .collect(),
        }
    }

    /// Log-likelihood of the block at factor `f`.
    fn log_lik(&self, c: &RaceCurve, f: f64) -> f64 {
        self.bins
            .iter()
            .map(|(g, n, r)| {
                let p = c
                    .probability_given(SimDuration::from_nanos(g.round() as u64), WindowFactor(f))
                    .clamp(1e-12, 1.0 - 1e-12);
                r * p.ln() + (n - r) * (1.0 - p).ln()
            })
            .sum()
    }
}

/// The most likely `ln f` of a block under the curve's prior, by golden section on
/// [-3, 3]: the maximum of `ll(u) - u² / (2 σ²)`.
fn block_mode(b: &Block, c: &RaceCurve) -> (f64, f64) {
    let sigma = c.factor_sigma.max(1e-6);
    let g = |u: f64| b.log_lik(c, u.exp()) - u * u / (2.0 * sigma * sigma);
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let (mut lo, mut hi) = (-3.0f64, 3.0f64);
    let mut x1 = hi - phi * (hi - lo);
    let mut x2 = lo + phi * (hi - lo);
    let (mut f1, mut f2) = (g(x1), g(x2));
    for _ in 0..60 {
        if f1 > f2 {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - phi * (hi - lo);
            f1 = g(x1);
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + phi * (hi - lo);
            f2 = g(x2);
        }
    }
    let u = (lo + hi) / 2.0;
    (u, g(u))
}

/// Laplace approximation of the marginal log-likelihood of the blocks (the window
/// factor of each integrated out around its mode; the curvature term, which hardly
/// depends on the curve, is left out), and each block's most likely factor.
fn marginal(blocks: &[Block], c: &RaceCurve) -> (f64, Vec<f64>) {
    let sigma = c.factor_sigma.max(1e-6);
    let mut total = 0.0;
    let mut modes = Vec::new();
    for b in blocks {
        let (u, v) = block_mode(b, c);
        total += v - sigma.ln();
        modes.push(u.exp());
    }
    (total, modes)
}

fn fit_from(
    exp: &Experiment,
    exp_name: &str,
    name: &'static str,
    params: &[&str],
    shared: Option<(f64, f64)>,
) -> Result<RaceFit, ValidateError> {
    let mut points = Vec::new();
    let mut blocks = Vec::new();
    for p in params {
        let pts: Vec<(f64, bool)> = exp.race_pairs(p)?.iter().filter_map(fit_point).collect();
        blocks.push(Block::of(&pts));
        points.push(pts);
    }
    let (curve, log_likelihood) = fit_blocks(&blocks, shared);
    let (_, factors) = marginal(&blocks, &curve);
    let mut bins = bins_of(&points[0], &curve, factors[0]);
    for (pts, f) in points.iter().zip(&factors).skip(1) {
        for (acc, b) in bins.iter_mut().zip(bins_of(pts, &curve, *f)) {
            acc.pairs += b.pairs;
            acc.raced += b.raced;
            acc.expected += b.expected;
        }
    }
    let used: Vec<&FitBin> = bins
        .iter()
        .filter(|b| b.expected >= 5.0 && b.pairs as f64 - b.expected >= 5.0)
        .collect();
    let chi: f64 = used
        .iter()
        .map(|b| {
            let n = b.pairs as f64;
            let var = b.expected * (1.0 - b.expected / n);
            (b.raced as f64 - b.expected).powi(2) / var
        })
        .sum();
    let fitted = if shared.is_some() { 3 } else { 5 };
    let dof = used.len().saturating_sub(fitted);
    let all: Vec<&(f64, bool)> = points.iter().flatten().collect();
    Ok(RaceFit {
        name,
        sources: params.iter().map(|p| format!("{exp_name}/{p}")).collect(),
        pairs: all.len(),
        raced: all.iter().filter(|d| d.1).count(),
        curve,
        log_likelihood,
        bins,
        chi_square: (chi, dof),
        factors,
    })
}

/// A pair as fit data: (|gap| ns, raced), for sends on different CPUs with a gap.
pub(crate) fn fit_point(r: &RacePairRow) -> Option<(f64, bool)> {
    let g = r.gap_ns?;
    r.different_cpus().then(|| (g.unsigned_abs() as f64, r.raced()))
}

fn bins_of(data: &[(f64, bool)], curve: &RaceCurve, f: f64) -> Vec<FitBin> {
    (0..BINS_US.len())
        .map(|i| {
            let lo = BINS_US[i];
            let hi = BINS_US.get(i + 1).copied();
            let inside: Vec<&(f64, bool)> = data
                .iter()
                .filter(|(g, _)| *g >= lo * 1e3 && hi.is_none_or(|h| *g < h * 1e3))
                .collect();
            FitBin {
                lo_us: lo,
                hi_us: hi,
                pairs: inside.len(),
                raced: inside.iter().filter(|d| d.1).count(),
                expected: inside
                    .iter()
                    .map(|(g, _)| {
                        curve.probability_given(SimDuration::from_nanos(g.round() as u64), WindowFactor(f))
                    })
                    .sum(),
            }
        })
        .collect()
}

fn curve_of(x: &[f64], shared: Option<(f64, f64)>) -> RaceCurve {
    let (factor_sigma, in_flight_slope) = shared.unwrap_or_else(|| (x[3].exp(), x[4]));
    RaceCurve {
        in_flight: 1.0 / (1.0 + (-x[0]).exp()),
        in_flight_slope,
        scale_ns: x[1].exp(),
        shape: x[2].exp(),
        factor_sigma,
    }
}

/// Maximum marginal likelihood by Nelder-Mead over (logit in_flight, ln scale,
/// ln shape[, ln factor_sigma, in_flight_slope]); deterministic (fixed start and
/// budget). `shared` fixes the last two (a single recording cannot show them).
fn fit_blocks(blocks: &[Block], shared: Option<(f64, f64)>) -> (RaceCurve, f64) {
    let dims = if shared.is_some() { 3 } else { 5 };
    let f = |x: &[f64]| -marginal(blocks, &curve_of(x, shared)).0;
    let start = [1.0, (10_000f64).ln(), 0.0, (0.3f64).ln(), 0.0];
    let (best, value) = nelder_mead(&start[..dims], &f);
    (curve_of(&best, shared), -value)
}

/// Minimises `f` from `start` (simplex steps of 0.5), at most 3,000 iterations.
pub(crate) fn nelder_mead(start: &[f64], f: &dyn Fn(&[f64]) -> f64) -> (Vec<f64>, f64) {
    let d = start.len();
    let mut simplex: Vec<(Vec<f64>, f64)> = (0..=d)
        .map(|i| {
            let mut x = start.to_vec();
            if i > 0 {
                x[i - 1] += 0.5;
            }
            let v = f(&x);
            (x, v)
        })
        .collect();
    for _ in 0..3_000 {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        if (simplex[d].1 - simplex[0].1).abs() < 1e-9 {
            break;
        }
        let centroid: Vec<f64> = (0..d)
            .map(|k| simplex[..d].iter().map(|(x, _)| x[k]).sum::<f64>() / d as f64)
            .collect();
        let worst = simplex[d].0.clone();
        let along = |t: f64| -> Vec<f64> {
            (0..d)
                .map(|k| centroid[k] + t * (worst[k] - centroid[k]))
                .collect()
        };
        let xr = along(-1.0);
        let fr = f(&xr);
        if fr < simplex[0].1 {
            let xe = along(-2.0);
            let fe = f(&xe);
            simplex[d] = if fe < fr { (xe, fe) } else { (xr, fr) };
        } else if fr < simplex[d - 1].1 {
            simplex[d] = (xr, fr);
        } else {
            let xc = along(0.5);
            let fc = f(&xc);
            if fc < simplex[d].1 {
                simplex[d] = (xc, fc);
            } else {
                let best = simplex[0].0.clone();
                for s in simplex.iter_mut().skip(1) {
                    s.0 = (0..d).map(|k| best[k] + 0.5 * (s.0[k] - best[k])).collect();
                    s.1 = f(&s.0);
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex.swap_remove(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SimRng;

    #[test]
    fn recovers_a_known_curve_from_simulated_recordings() {
        let truth = RaceCurve {
            in_flight: 0.8,
            in_flight_slope: 1.5,
            scale_ns: 15_000.0,
            shape: 2.5,
            factor_sigma: 0.4,
        };
        let mut rng = SimRng::from_seed(11);
        let blocks: Vec<Block> = (0..12)
            .map(|_| {
                let f = truth.draw_factor(&mut rng);
                let pts: Vec<(f64, bool)> = (0..3_000)
                    .map(|_| {
                        let g = rng.below(50_000);
                        (
                            g as f64,
                            rng.chance(truth.probability_given(SimDuration::from_nanos(g), f)),
                        )
                    })
                    .collect();
                Block::of(&pts)
            })
            .collect();
        let (fit, _) = fit_blocks(&blocks, None);
        assert!((fit.in_flight - 0.8).abs() < 0.04, "{fit:?}");
        assert!((fit.scale_ns / 15_000.0 - 1.0).abs() < 0.3, "{fit:?}");
        assert!((fit.shape / 2.5 - 1.0).abs() < 0.2, "{fit:?}");
        assert!((fit.factor_sigma / 0.4 - 1.0).abs() < 0.5, "{fit:?}");
        assert!((fit.in_flight_slope - 1.5).abs() < 1.0, "{fit:?}");
    }
}
