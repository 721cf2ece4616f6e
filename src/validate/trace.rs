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
