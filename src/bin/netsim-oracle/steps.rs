//! The step script every load generator follows (`--step load:150@50 --step sleep:60s
//! ...`), the conntrack sampler thread, and the per-step counter snapshots that make
//! the summary JSON.

use crate::clock::{Clock, parse_duration};
use crate::ctstat::{CT_COLUMNS, CtSource, CtStats};
use serde_json::{Value, json};
use std::fs::File;
use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bound of any single step, so a typo cannot make a run last for hours.
const MAX_STEP: Duration = Duration::from_secs(600);

/// One step of a load script.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// `load:COUNT@RATE`: COUNT operations started open-loop at RATE per second.
    Load { count: u64, rate: f64 },
    /// `sleep:DUR`.
    Sleep(Duration),
    /// `exec:CMD`: run `sh -c CMD` (bounded to 60 s by `timeout`).
    Exec(String),
    /// `until-count:N:MAX`: wait until the sampled count is <= N, at most MAX.
    UntilCount { at_most: u64, max_wait: Duration },
    /// `hold:K` (TCP only): open K connections and keep them open.
    Hold(u64),
    /// `release` (TCP only): close the held connections (client closes first).
    Release,
    /// `try:N` (TCP only): N sequential connections, each closed after its exchange.
    Try(u64),
}

impl Step {
    /// Parses one `--step` argument.
    pub(crate) fn parse(text: &str) -> Result<Step, String> {
        let (kind, arg) = text.split_once(':').unwrap_or((text, ""));
        let step = match kind {
            "load" => {
                let (c, r) = arg
                    .split_once('@')
                    .ok_or_else(|| format!("step `{text}`: expected load:COUNT@RATE"))?;
                let count: u64 = c.parse().map_err(|e| format!("step `{text}`: count: {e}"))?;
                let rate: f64 = r.parse().map_err(|e| format!("step `{text}`: rate: {e}"))?;
                if !(rate.is_finite() && rate > 0.0 && rate <= 1_000_000.0) {
                    return Err(format!("step `{text}`: rate must be in (0, 1e6] per second"));
                }
                if count > 10_000_000 {
                    return Err(format!("step `{text}`: count above 10,000,000"));
                }
                if count as f64 / rate > MAX_STEP.as_secs_f64() {
                    return Err(format!("step `{text}`: lasts longer than {MAX_STEP:?}"));
                }
                Step::Load { count, rate }
            }
            "sleep" => Step::Sleep(bounded(text, parse_duration(arg)?)?),
            "exec" if !arg.is_empty() => Step::Exec(arg.to_owned()),
            "until-count" => {
                let (n, d) = arg
                    .split_once(':')
                    .ok_or_else(|| format!("step `{text}`: expected until-count:N:MAXDUR"))?;
                Step::UntilCount {
                    at_most: n.parse().map_err(|e| format!("step `{text}`: {e}"))?,
                    max_wait: bounded(text, parse_duration(d)?)?,
                }
            }
            "hold" => Step::Hold(arg.parse().map_err(|e| format!("step `{text}`: {e}"))?),
            "release" => Step::Release,
            "try" => Step::Try(arg.parse().map_err(|e| format!("step `{text}`: {e}"))?),
            _ => {
                return Err(format!(
                    "unknown step `{text}` (load, sleep, exec, until-count, hold, release, try)"
                ));
            }
        };
        Ok(step)
    }
}

fn bounded(text: &str, d: Duration) -> Result<Duration, String> {
    if d > MAX_STEP {
        Err(format!("step `{text}` lasts longer than {MAX_STEP:?}"))
    } else {
        Ok(d)
    }
}

/// Client-side progress, shared with the sampler. The meaning of each counter is
/// given by the tool (connections, datagrams, pairs).
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub(crate) started: AtomicU64,
    pub(crate) ok: AtomicU64,
    pub(crate) fail: AtomicU64,
}

impl Progress {
    fn snapshot(&self) -> [u64; 3] {
        [
            self.started.load(Ordering::Relaxed),
            self.ok.load(Ordering::Relaxed),
            self.fail.load(Ordering::Relaxed),
        ]
    }
}

/// What a tool must do for the steps that are not generic.
pub(crate) trait Driver {
    /// Runs `count` operations open-loop at `rate` per second starting at run time `at`.
    fn load(&mut self, count: u64, rate: f64, at: Duration) -> Result<(), String>;
    /// `hold:K`; tools without connections refuse.
    fn hold(&mut self, _k: u64) -> Result<(), String> {
        Err("this tool has no `hold` step".into())
    }
    /// `release`.
    fn release(&mut self) -> Result<(), String> {
        Err("this tool has no `release` step".into())
    }
    /// `try:N`.
    fn try_n(&mut self, _n: u64) -> Result<(), String> {
        Err("this tool has no `try` step".into())
    }
}

/// Sampling options shared by all load tools.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SampleOpts {
    /// Namespace whose conntrack counters are sampled (`.` = this process's own).
    #[arg(long)]
    pub(crate) ct_netns: Option<String>,
    /// Sampling period.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub(crate) sample_interval: Duration,
    /// Time-series CSV written while the steps run.
    #[arg(long)]
    pub(crate) sample_out: Option<String>,
}

/// Runs the step script with a sampler thread; returns the per-step summary.
pub(crate) fn run_steps(
    steps: &[Step],
    clock: Clock,
    progress: &Arc<Progress>,
    opts: &SampleOpts,
    driver: &mut dyn Driver,
) -> Result<Value, String> {
    let source = opts.ct_netns.as_deref().map(CtSource::from_arg);
    if opts.sample_out.is_some() && source.is_none() {
        return Err("--sample-out needs --ct-netns".into());
    }
    if opts.sample_interval < Duration::from_millis(10) {
        return Err("--sample-interval below 10ms".into());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = match (&source, &opts.sample_out) {
        (Some(src), Some(path)) => {
            let mut file = File::create(path).map_err(|e| format!("creating {path}: {e}"))?;
            let header = format!("t_s,{},started,ok,fail\n", CT_COLUMNS.join(","));
            file.write_all(header.as_bytes())
                .map_err(|e| format!("writing {path}: {e}"))?;
            let (src, stop, progress, interval) =
                (src.clone(), stop.clone(), progress.clone(), opts.sample_interval);
            Some(std::thread::spawn(move || {
                sampler_loop(&src, &mut file, clock, &progress, &stop, interval)
            }))
        }
        _ => None,
    };
    let result = run_steps_inner(steps, clock, progress, source.as_ref(), driver);
    stop.store(true, Ordering::Relaxed);
    let sampler_result = sampler.map(|h| h.join().unwrap_or_else(|_| Err("sampler thread panicked".into())));
    let summary = result?;
    if let Some(r) = sampler_result {
        r?;
    }
    Ok(summary)
}

fn run_steps_inner(
    steps: &[Step],
    clock: Clock,
    progress: &Progress,
    source: Option<&CtSource>,
    driver: &mut dyn Driver,
) -> Result<Value, String> {
    let snap =
        |src: Option<&CtSource>| -> Result<Option<CtStats>, String> { src.map(CtSource::read).transpose() };
    let mut records = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let before = snap(source)?;
        let p0 = progress.snapshot();
        let t0 = clock.elapsed();
        let mut note = Value::Null;
        match step {
            Step::Load { count, rate } => driver.load(*count, *rate, t0)?,
            Step::Sleep(d) => clock.sleep_until(t0 + *d),
            Step::Exec(cmd) => {
                let out = Command::new("timeout")
                    .args(["60", "sh", "-c", cmd])
                    .output()
                    .map_err(|e| format!("step {i}: running `{cmd}`: {e}"))?;
                note = json!({"exit": out.status.code(), "stdout_lines": out.stdout.iter().filter(|b| **b == b'\n').count()});
            }
            Step::UntilCount { at_most, max_wait } => {
                let src = source.ok_or("until-count needs --ct-netns")?;
                let deadline = t0 + *max_wait;
                let mut reached = false;
                while clock.elapsed() < deadline {
                    if src.read()?.count <= *at_most {
                        reached = true;
                        break;
                    }
                    clock.sleep_until(clock.elapsed() + Duration::from_millis(100));
                }
                note = json!({"reached": reached});
            }
            Step::Hold(k) => driver.hold(*k)?,
            Step::Release => driver.release()?,
            Step::Try(n) => driver.try_n(*n)?,
        }
        let t1 = clock.elapsed();
        let after = snap(source)?;
        let p1 = progress.snapshot();
        records.push(json!({
            "step": format!("{step:?}"),
            "start_s": t0.as_secs_f64(),
            "end_s": t1.as_secs_f64(),
            "started": p1[0] - p0[0],
            "ok": p1[1] - p0[1],
            "fail": p1[2] - p0[2],
            "ct_before": before,
            "ct_after": after,
            "note": note,
        }));
    }
    Ok(Value::Array(records))
}

fn sampler_loop(
    src: &CtSource,
    file: &mut File,
    clock: Clock,
    progress: &Progress,
    stop: &AtomicBool,
    interval: Duration,
) -> Result<(), String> {
    let mut next = clock.elapsed();
    let mut last = false;
    loop {
        if stop.load(Ordering::Relaxed) {
            last = true; // One final row after the steps ended.
        }
        let t = clock.now_s();
        let s = src.read()?;
        let p = progress.snapshot();
        let mut row = format!("{t:.3}");
        for v in s.values().iter().chain(p.iter()) {
            row.push(',');
            row.push_str(&v.to_string());
        }
        row.push('\n');
        // One write per row: a killed run leaves only whole rows.
        file.write_all(row.as_bytes())
            .map_err(|e| format!("writing samples: {e}"))?;
        if last {
            return Ok(());
        }
        next += interval;
        while clock.elapsed() < next && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5).min(interval));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_step_kind() {
        assert_eq!(
            Step::parse("load:150@50").unwrap(),
            Step::Load {
                count: 150,
                rate: 50.0
            }
        );
        assert_eq!(
            Step::parse("sleep:2.5s").unwrap(),
            Step::Sleep(Duration::from_millis(2500))
        );
        assert_eq!(
            Step::parse("exec:conntrack -L").unwrap(),
            Step::Exec("conntrack -L".into())
        );
        assert_eq!(
            Step::parse("until-count:0:90s").unwrap(),
            Step::UntilCount {
                at_most: 0,
                max_wait: Duration::from_secs(90)
            }
        );
        assert_eq!(Step::parse("hold:2").unwrap(), Step::Hold(2));
        assert_eq!(Step::parse("release").unwrap(), Step::Release);
        assert_eq!(Step::parse("try:4").unwrap(), Step::Try(4));
    }

    #[test]
    fn refuses_unbounded_or_malformed_steps() {
        assert!(Step::parse("load:100@0").is_err());
        assert!(Step::parse("load:100000@10").is_err()); // 10,000 s
        assert!(Step::parse("sleep:2h").is_err());
        assert!(Step::parse("sleep:5").is_err());
        assert!(Step::parse("exec:").is_err());
        assert!(Step::parse("jump:1").is_err());
    }
}
