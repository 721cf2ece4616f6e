//! Reading the real-kernel recordings of `validation/traces/<experiment>/`
//! (format: `docs/oracle.md`, "Files and formats").

use super::ValidateError;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One experiment directory: its `meta.json` and the path to its CSVs.
#[derive(Debug)]
pub(crate) struct Experiment {
    dir: PathBuf,
    meta: Value,
}

/// One row of a `<param>.csv` time series (the columns the checks use).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct SeriesRow {
    pub(crate) t_s: f64,
    pub(crate) count: f64,
    pub(crate) found: f64,
    pub(crate) insert_failed: f64,
    pub(crate) drop: f64,
    pub(crate) early_drop: f64,
    pub(crate) clash_resolve: f64,
    pub(crate) ok: f64,
    pub(crate) fail: f64,
}

/// One row of a `<param>.conns.csv` (tcp-storm connection log).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ConnRow {
    pub(crate) step: u32,
    pub(crate) start_s: f64,
    pub(crate) ok: bool,
    pub(crate) local_port: Option<u16>,
}

/// One row of a `race-pairs` `<param>.race.csv` (experiments k and l).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RacePairRow {
    /// Target gap of the pair, ns.
    pub(crate) gap_target_ns: u64,
    /// Achieved gap (start of send 1 minus start of send 0), ns; none for `sendmmsg`.
    pub(crate) gap_ns: Option<i64>,
    /// End of send 0 minus its start, ns.
    pub(crate) send0_ns: i64,
    /// CPU each send started on.
    pub(crate) cpu: [Option<u16>; 2],
    /// UDP: index of the backend that answered each datagram; TCP: 1 when connected.
    pub(crate) answer: [Option<u8>; 2],
    pub(crate) clash_resolve: u64,
    pub(crate) insert_failed: u64,
    pub(crate) drop: u64,
}

impl RacePairRow {
    /// The pair raced: a clash was resolved or an insertion failed in its window.
    pub(crate) fn raced(&self) -> bool {
        self.clash_resolve + self.insert_failed > 0
    }

    /// Both sends ran on known, different CPUs.
    pub(crate) fn different_cpus(&self) -> bool {
        matches!(self.cpu, [Some(a), Some(b)] if a != b)
    }
}

/// One step of the tool's step script, with its recorded start and end.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Step {
    pub(crate) name: String,
    pub(crate) start_s: f64,
    pub(crate) end_s: f64,
}

impl Experiment {
    /// Reads `<traces>/<name>/meta.json`.
    pub(crate) fn load(traces: &Path, name: &str) -> Result<Experiment, ValidateError> {
        let dir = traces.join(name);
        let path = dir.join("meta.json");
        let text = read(&path)?;
        let meta: Value = serde_json::from_str(&text).map_err(|e| ValidateError::Parse {
            path: path.display().to_string(),
            what: e.to_string(),
        })?;
        Ok(Experiment { dir, meta })
    }

    fn meta_path(&self) -> String {
        self.dir.join("meta.json").display().to_string()
    }

    /// The kernel release the experiment was recorded on, with HZ (`6.18.44 HZ=250`).
    pub(crate) fn kernel(&self) -> String {
        let rel = self.meta["kernel"]["release"].as_str().unwrap_or("?");
        // "6.18.44-fc-v669" -> "6.18.44": the build suffix says nothing to a reader.
        let short = rel.split('-').next().unwrap_or(rel);
        format!("Linux {short}")
    }

    /// `kernel.hz`.
    pub(crate) fn hz(&self) -> u32 {
        self.meta["kernel"]["hz"]
            .as_u64()
            .and_then(|h| u32::try_from(h).ok())
            .unwrap_or(250)
    }

    fn run(&self, param: &str) -> Result<&Value, ValidateError> {
        let r = &self.meta["runs"][param];
        if r.is_null() {
            return Err(self.missing(&format!("runs.{param}")));
        }
        Ok(r)
    }

    fn missing(&self, field: &str) -> ValidateError {
        ValidateError::Missing {
            path: self.meta_path(),
            field: field.to_owned(),
        }
    }

    /// The value under `runs.<param>.<dotted path>` (numbers index arrays).
    fn walk(&self, param: &str, path: &str) -> Result<&Value, ValidateError> {
        let mut v = self.run(param)?;
        for key in path.split('.') {
            v = match key.parse::<usize>() {
                Ok(i) if v.is_array() => &v[i],
                _ => &v[key],
            };
        }
        Ok(v)
    }

    /// A number under `runs.<param>.<dotted path>`.
    pub(crate) fn num(&self, param: &str, path: &str) -> Result<f64, ValidateError> {
        self.walk(param, path)?
            .as_f64()
            .ok_or_else(|| self.missing(&format!("runs.{param}.{path}")))
    }

    /// A string under `runs.<param>.<dotted path>`.
    pub(crate) fn text(&self, param: &str, path: &str) -> Result<String, ValidateError> {
        self.walk(param, path)?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.missing(&format!("runs.{param}.{path}")))
    }

    /// The recorded step script of a run (`summary.steps`).
    pub(crate) fn steps(&self, param: &str) -> Result<Vec<Step>, ValidateError> {
        let steps = self.run(param)?["summary"]["steps"]
            .as_array()
            .ok_or_else(|| self.missing(&format!("runs.{param}.summary.steps")))?;
        steps
            .iter()
            .map(|s| {
                Ok(Step {
                    name: s["step"].as_str().unwrap_or("").to_owned(),
                    start_s: s["start_s"]
                        .as_f64()
                        .ok_or_else(|| self.missing("summary.steps[].start_s"))?,
                    end_s: s["end_s"]
                        .as_f64()
                        .ok_or_else(|| self.missing("summary.steps[].end_s"))?,
                })
            })
            .collect()
    }

    /// `<param>.csv`.
    pub(crate) fn series(&self, param: &str) -> Result<Vec<SeriesRow>, ValidateError> {
        let rows = self.csv(&format!("{param}.csv"))?;
        rows.iter()
            .map(|r| {
                let f = |i: usize| -> Result<f64, ValidateError> { self.cell(param, r, i) };
                Ok(SeriesRow {
                    t_s: f(0)?,
                    count: f(1)?,
                    found: f(2)?,
                    insert_failed: f(5)?,
                    drop: f(6)?,
                    early_drop: f(7)?,
                    clash_resolve: f(8)?,
                    ok: f(13)?,
                    fail: f(14)?,
                })
            })
            .collect()
    }

    /// `<param>.conns.csv`.
    pub(crate) fn conns(&self, param: &str) -> Result<Vec<ConnRow>, ValidateError> {
        let rows = self.csv(&format!("{param}.conns.csv"))?;
        rows.iter()
            .map(|r| {
                let step = self.cell(param, r, 1)?;
                Ok(ConnRow {
                    step: step as u32,
                    start_s: self.cell(param, r, 4)?,
                    ok: r.get(7).is_some_and(|o| o == "ok"),
                    local_port: r.get(8).and_then(|p| p.parse().ok()),
                })
            })
            .collect()
    }

    /// `<param>.pairs.csv`: the send gap of every pair, nanoseconds.
    pub(crate) fn pair_gaps(&self, param: &str) -> Result<Vec<i64>, ValidateError> {
        let rows = self.csv(&format!("{param}.pairs.csv"))?;
        rows.iter()
            .map(|r| {
                r.get(1)
                    .and_then(|g| g.parse::<i64>().ok())
                    .ok_or_else(|| self.bad_csv(&format!("{param}.pairs.csv"), "gap_ns"))
            })
            .collect()
    }

    /// `<param>.race.csv` of `race-pairs` (columns in docs/oracle.md).
    pub(crate) fn race_pairs(&self, param: &str) -> Result<Vec<RacePairRow>, ValidateError> {
        let file = format!("{param}.race.csv");
        let rows = self.csv(&file)?;
        rows.iter()
            .map(|r| {
                let bad = |what: &str| self.bad_csv(&file, what);
                let int = |i: usize, what: &str| -> Result<i64, ValidateError> {
                    r.get(i)
                        .and_then(|c| c.parse::<i64>().ok())
                        .ok_or_else(|| bad(what))
                };
                let opt = |i: usize| r.get(i).and_then(|c| c.parse::<i64>().ok());
                if r.len() != 15 {
                    return Err(bad("row of 15 columns"));
                }
                Ok(RacePairRow {
                    gap_target_ns: u64::try_from(int(1, "gap_target_ns")?)
                        .map_err(|_| bad("gap_target_ns"))?,
                    gap_ns: opt(2),
                    send0_ns: int(4, "end0_ns")? - int(3, "start0_ns")?,
                    cpu: [7, 8].map(|i| opt(i).and_then(|c| u16::try_from(c).ok())),
                    answer: [9, 10].map(|i| opt(i).and_then(|c| u8::try_from(c).ok())),
                    clash_resolve: u64::try_from(int(11, "clash_resolve")?)
                        .map_err(|_| bad("clash_resolve"))?,
                    insert_failed: u64::try_from(int(12, "insert_failed")?)
                        .map_err(|_| bad("insert_failed"))?,
                    drop: u64::try_from(int(13, "drop")?).map_err(|_| bad("drop"))?,
                })
            })
            .collect()
    }

    /// `<param>.syns.csv`: SYN times since `connect()`, seconds.
    pub(crate) fn syn_times(&self, param: &str) -> Result<Vec<f64>, ValidateError> {
        let rows = self.csv(&format!("{param}.syns.csv"))?;
        rows.iter().map(|r| self.cell(param, r, 1)).collect()
    }

    fn cell(&self, param: &str, row: &[String], i: usize) -> Result<f64, ValidateError> {
        row.get(i)
            .and_then(|c| c.parse::<f64>().ok())
            .ok_or_else(|| self.bad_csv(&format!("{param}.csv"), &format!("column {i}")))
    }

    fn bad_csv(&self, file: &str, what: &str) -> ValidateError {
        ValidateError::Parse {
            path: self.dir.join(file).display().to_string(),
            what: format!("bad or missing {what}"),
        }
    }

    fn csv(&self, file: &str) -> Result<Vec<Vec<String>>, ValidateError> {
        let text = read(&self.dir.join(file))?;
        Ok(text
            .lines()
            .skip(1)
            .filter(|l| !l.is_empty())
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect())
    }
}

fn read(path: &Path) -> Result<String, ValidateError> {
    std::fs::read_to_string(path).map_err(|e| ValidateError::Io {
        path: path.display().to_string(),
        what: e.to_string(),
    })
}
