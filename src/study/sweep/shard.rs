//! Shards: `--shard K/N` slices of the rows, and `merge`, which joins them back into
//! what one unsharded run writes.

use serde::{Deserialize, Serialize};

use super::grid::grid_size;
use super::{MAX_ROWS, Row, Sweep, SweepError};

/// `K/N`: this process runs rows `i` with `i mod N == K`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, 0-based.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl Shard {
    /// Parses `K/N`.
    ///
    /// # Errors
    /// [`SweepError::BadShard`].
    pub fn parse(text: &str) -> Result<Shard, SweepError> {
        let bad = || SweepError::BadShard(text.to_owned());
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let (k, n) = (
            k.trim().parse::<u32>().map_err(|_| bad())?,
            n.trim().parse::<u32>().map_err(|_| bad())?,
        );
        if n == 0 || k >= n {
            return Err(bad());
        }
        Ok(Shard { index: k, count: n })
    }

    pub(super) fn owns(self, row: usize) -> bool {
        row % self.count as usize == self.index as usize
    }
}

/// Joins the shards of one sweep into the document an unsharded run writes.
///
/// # Errors
/// [`SweepError::Merge`] when the shards differ in scenario, grid, seeds or shard count,
/// repeat a shard, miss one, or hold rows that are not theirs.
pub fn merge(mut shards: Vec<Sweep>) -> Result<Sweep, SweepError> {
    let err = |m: String| Err(SweepError::Merge(m));
    let Some(first) = shards.first().cloned() else {
        return err("no shards given".into());
    };
    let Some(count) = first.shard.map(|s| s.count) else {
        return err("the first file is a whole sweep, not a shard".into());
    };
    let Some(total) = grid_size(&first.params, first.seeds.len()) else {
        return err(format!(
            "the grid is larger than the {MAX_ROWS} runs a sweep may have"
        ));
    };
    if count == 0 || count as usize > MAX_ROWS {
        return err(format!("{count} shards: a sweep has 1 to {MAX_ROWS}"));
    }
    shards.sort_by_key(|s| s.shard.map(|x| x.index));
    let mut seen = vec![false; count as usize];
    for s in &shards {
        if s.fingerprint != first.fingerprint {
            return err(format!(
                "shards of different scenarios ({} fingerprint {} vs {} fingerprint {})",
                first.scenario, first.fingerprint, s.scenario, s.fingerprint
            ));
        }
        if s.params != first.params || s.seeds != first.seeds || s.schema_version != first.schema_version {
            return err("shards of different grids or seeds".into());
        }
        let Some(sh) = s.shard.filter(|x| x.count == count && x.index < count) else {
            return err(format!("a file is not one of {count} shards"));
        };
        if std::mem::replace(&mut seen[sh.index as usize], true) {
            return err(format!("shard {}/{count} given twice", sh.index));
        }
        if let Some(r) = s.rows.iter().find(|r| !sh.owns(r.index)) {
            return err(format!(
                "shard {}/{count} holds row {}, not its own",
                sh.index, r.index
            ));
        }
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return err(format!("shard {missing}/{count} is missing"));
    }
    let mut warnings: Vec<String> = Vec::new();
    for w in shards.iter().flat_map(|s| &s.warnings) {
        if !warnings.contains(w) {
            warnings.push(w.clone());
        }
    }
    let mut rows: Vec<Row> = shards.into_iter().flat_map(|s| s.rows).collect();
    rows.sort_by_key(|r| r.index);
    if rows.len() != total || rows.iter().enumerate().any(|(i, r)| r.index != i) {
        return err(format!(
            "the shards hold {} rows of a {total}-run grid",
            rows.len()
        ));
    }
    Ok(Sweep {
        shard: None,
        rows,
        warnings,
        ..first
    })
}
