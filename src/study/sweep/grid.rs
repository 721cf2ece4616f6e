//! The grid: swept fields parsed from `PATH=FROM..TO[:STEPS][:log]`, their values, and
//! the points in row order.

use serde::{Deserialize, Serialize};

use super::{MAX_ROWS, SweepError};
use crate::scenario::Scenario;
use crate::study::knob::{Knob, KnobError};

/// One swept field: its knob and its values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// The argument as given.
    pub text: String,
    /// Override paths set to each value.
    pub paths: Vec<String>,
    /// The values, as override text.
    pub values: Vec<String>,
    /// The values in report units (requests/s for rates), for charts.
    pub numeric: Vec<f64>,
    /// The unit of `numeric` (`requests/s` for rates; empty for plain integers such as
    /// `nf_conntrack_max`). Absent in shards written before it existed.
    #[serde(default)]
    pub unit: String,
}

/// Parses `PATH[,PATH...]=FROM..TO[:STEPS][:log]` against `base` (the field's kind comes
/// from the scenario, or from `FROM`). `STEPS` (default 10) counts points, ends
/// included; `log` spaces them geometrically.
///
/// # Errors
/// [`SweepError::BadParam`] naming the argument.
///
/// ```
/// use k8s_netsim::scenario::Scenario;
/// use k8s_netsim::study::sweep::parse_param;
/// let s = Scenario::load("scenarios/flash-sale.yaml", &[]).unwrap();
/// let p = parse_param(&s, "workloads.0.rate=1k/s..2k/s:5").unwrap();
/// assert_eq!(p.values, ["1k/s", "1250/s", "1500/s", "1750/s", "2k/s"]);
/// ```
pub fn parse_param(base: &Scenario, text: &str) -> Result<Param, SweepError> {
    let bad = |message: String| SweepError::BadParam {
        text: text.to_owned(),
        message,
    };
    let (paths, spec) = text.split_once('=').ok_or_else(|| {
        bad("expected PATH=FROM..TO[:STEPS][:log] (e.g. workloads.0.rate=1k/s..30k/s:20)".into())
    })?;
    let paths: Vec<String> = paths
        .split(',')
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    let mut parts = spec.split(':');
    let range = parts.next().unwrap_or_default();
    let mut steps = 10usize;
    let mut log = false;
    for p in parts {
        match p.trim() {
            "log" => log = true,
            n => {
                steps = n
                    .parse::<usize>()
                    .ok()
                    .filter(|s| *s >= 2)
                    .ok_or_else(|| bad(format!("`{n}` is not a number of steps (2 or more) or `log`")))?;
                if steps > MAX_ROWS {
                    return Err(bad(format!("{steps} steps: a sweep runs at most {MAX_ROWS}")));
                }
            }
        }
    }
    let hint = range.split_once("..").map(|(lo, _)| lo.trim());
    let knob = Knob::resolve(base, &paths, hint).map_err(|e: KnobError| bad(e.to_string()))?;
    let (lo, hi) = knob.parse_range(range).map_err(|e| bad(e.to_string()))?;
    if log && lo == 0 {
        return Err(bad("a `log` grid needs FROM above 0".into()));
    }
    knob.overrides(lo).map_err(bad)?;
    let mut values: Vec<u64> = (0..steps)
        .map(|i| grid_value(lo, hi, i, steps, log, knob.quantum(hi - lo)))
        .collect();
    values.dedup();
    Ok(Param {
        text: text.to_owned(),
        paths: knob.paths.clone(),
        values: values.iter().map(|v| knob.format(*v)).collect(),
        numeric: values.iter().map(|v| knob.as_f64(*v)).collect(),
        unit: match knob.kind {
            crate::study::knob::KnobKind::Rate => "requests/s".to_owned(),
            crate::study::knob::KnobKind::Integer => String::new(),
        },
    })
}

impl Param {
    /// The axis label: the paths, with the unit (`workloads.0.rate (requests/s)`).
    #[must_use]
    pub fn axis_label(&self) -> String {
        if self.unit.is_empty() {
            self.paths.join(",")
        } else {
            format!("{} ({})", self.paths.join(","), self.unit)
        }
    }
}

/// Point `i` of `steps` from `lo` to `hi`, on multiples of `quantum` (ends exact).
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn grid_value(lo: u64, hi: u64, i: usize, steps: usize, log: bool, quantum: u64) -> u64 {
    if i == 0 {
        return lo;
    }
    if i + 1 == steps {
        return hi;
    }
    let v = if log && lo > 0 {
        let f = i as f64 / (steps - 1) as f64;
        ((lo as f64).ln() + f * ((hi as f64).ln() - (lo as f64).ln()))
            .exp()
            .round() as u64
    } else {
        let span = u128::from(hi - lo) * i as u128 / (steps - 1) as u128;
        lo + u64::try_from(span).unwrap_or(0)
    };
    let q = quantum.max(1);
    ((v + q / 2) / q * q).clamp(lo, hi)
}

/// The number of runs of a grid (points × seeds), `None` above [`MAX_ROWS`] (computed
/// with checked arithmetic: a shard file may claim any sizes).
pub(super) fn grid_size(params: &[Param], seeds: usize) -> Option<usize> {
    params
        .iter()
        .try_fold(seeds, |acc, p| acc.checked_mul(p.values.len()))
        .filter(|&n| n <= MAX_ROWS)
}

/// Every grid point as one value index per parameter, in row order. Call it only on a
/// grid whose [`grid_size`] is known.
pub(super) fn points(params: &[Param]) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new()];
    for p in params {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                (0..p.values.len()).map(move |i| {
                    let mut v = prefix.clone();
                    v.push(i);
                    v
                })
            })
            .collect();
    }
    out
}
