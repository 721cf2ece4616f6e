//! The time series of `run --out`, streamed: each row goes to `timeseries.csv` (a
//! temporary file until the run ends) as the simulation takes it, and only a bounded
//! copy stays in memory for the charts, so a long run's memory does not grow with its
//! length.
//!
//! The copy keeps every row up to [`ROWS_KEPT`]; past that it keeps every second row,
//! then every fourth, and so on (always the rows whose index is a multiple of the
//! stride, so the result does not depend on when thinning happened).

use std::io::Write as _;
use std::path::Path;

use k8s_netsim::report::{Sample, csv_header, csv_row};
use k8s_netsim::scenario::budget::ROWS_KEPT;

use crate::files::Pending;

/// Rows kept for charts, thinned by powers of two once there are more than `cap`.
#[derive(Debug)]
pub(crate) struct Thinned {
    cap: usize,
    stride: u64,
    seen: u64,
    rows: Vec<Sample>,
}

impl Thinned {
    pub(crate) fn new() -> Thinned {
        Thinned::with_cap(usize::try_from(ROWS_KEPT).unwrap_or(usize::MAX))
    }

    fn with_cap(cap: usize) -> Thinned {
        Thinned {
            cap: cap.max(2),
            stride: 1,
            seen: 0,
            rows: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, row: Sample) {
        let index = self.seen;
        self.seen += 1;
        if !index.is_multiple_of(self.stride) {
            return;
        }
        self.rows.push(row);
        if self.rows.len() > self.cap {
            // Keep the rows at multiples of twice the stride: the even positions.
            let mut k = 0usize;
            self.rows.retain(|_| {
                k += 1;
                (k - 1).is_multiple_of(2)
            });
            self.stride *= 2;
        }
    }

    /// The kept rows and how many rows each stands for (1 until thinning started).
    pub(crate) fn into_rows(self) -> (Vec<Sample>, u64) {
        (self.rows, self.stride)
    }
}

/// `timeseries.csv` being written row by row; the first write error is kept and
/// reported at the end (the simulation cannot stop for it).
#[derive(Debug)]
pub(crate) struct CsvStream {
    file: Pending,
    nodes: usize,
    /// The sampling interval: the first row's time.
    interval_s: Option<f64>,
    error: Option<std::io::Error>,
}

impl CsvStream {
    pub(crate) fn create(path: &Path, nodes: &[String]) -> anyhow::Result<CsvStream> {
        let mut file = Pending::create(path)?;
        let error = file.write_all(csv_header(nodes).as_bytes()).err();
        Ok(CsvStream {
            file,
            nodes: nodes.len(),
            interval_s: None,
            error,
        })
    }

    pub(crate) fn row(&mut self, r: &Sample) {
        let interval_s = *self.interval_s.get_or_insert(r.t_s);
        if self.error.is_none()
            && let Err(e) = self.file.write_all(csv_row(r, self.nodes, interval_s).as_bytes())
        {
            self.error = Some(e);
        }
    }

    /// The finished file, or the first write error.
    pub(crate) fn finish(self) -> anyhow::Result<Pending> {
        match self.error {
            Some(e) => Err(anyhow::Error::new(e).context("writing timeseries.csv")),
            None => Ok(self.file),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: u64) -> Sample {
        Sample {
            new_connections: i,
            ..Sample::default()
        }
    }

    #[test]
    fn thinning_keeps_rows_at_multiples_of_the_stride_and_stays_bounded() {
        let mut t = Thinned::with_cap(8);
        for i in 0..100 {
            t.push(row(i));
            assert!(t.rows.len() <= 8);
        }
        let (rows, stride) = t.into_rows();
        assert_eq!(stride, 16);
        let kept: Vec<u64> = rows.iter().map(|r| r.new_connections).collect();
        assert_eq!(kept, [0, 16, 32, 48, 64, 80, 96]);
        let mut t = Thinned::with_cap(8);
        for i in 0..8 {
            t.push(row(i));
        }
        assert_eq!(t.into_rows().1, 1, "no thinning up to the cap");
    }
}
