//! Issue #14's outputs: metrics.prom (against the time series and through promtool), the
//! alert replay, the census rendering, the chart data, and report.html in a real browser.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use k8s_netsim::report::census::{CensusSnapshot, CensusTrigger, OnsetCounter, example_census};
use k8s_netsim::report::chart::{PALETTE, colour};
use k8s_netsim::report::{RunReport, TimeSeries, alerts::Warning, html, latency_chart, metrics};
use k8s_netsim::scenario::{Override, Scenario};

fn root(p: &str) -> String {
    format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))
}

fn load(path: &str, sets: &[&str]) -> Scenario {
    let o: Vec<Override> = sets.iter().map(|s| Override::parse(s).unwrap()).collect();
    Scenario::load(root(path), &o).unwrap()
}

fn run(path: &str, sets: &[&str]) -> (RunReport, TimeSeries) {
    let out = k8s_netsim::sim::run(&load(path, sets), &mut |_, _| {}).unwrap();
    (RunReport::new(out.report, &out.timeseries), out.timeseries)
}

/// The flash-sale storm for 10 s, run once for every test here.
fn flash_sale() -> &'static (RunReport, TimeSeries) {
    static RUN: OnceLock<(RunReport, TimeSeries)> = OnceLock::new();
    RUN.get_or_init(|| run("scenarios/flash-sale.yaml", &["duration=10s"]))
}

/// `k8s-netsim run scenarios/flash-sale.yaml --set duration=10s --out DIR`, once.
fn flash_sale_out() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("k8s-netsim-outputs-{}", std::process::id()));
        let out = Command::new(env!("CARGO_BIN_EXE_k8s-netsim"))
            .args([
                "run",
                &root("scenarios/flash-sale.yaml"),
                "--set",
                "duration=10s",
                "--out",
            ])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        dir
    })
}

/// `name{labels}` -> [(timestamp, value)] from OpenMetrics text.
fn parse_openmetrics(text: &str) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, rest) = match line.find('}') {
            Some(i) => (&line[..=i], line[i + 1..].trim()),
            None => line.split_once(' ').unwrap(),
        };
        let mut it = rest.split_whitespace();
        let v: f64 = it.next().unwrap().parse().unwrap();
        let t: f64 = it.next().unwrap().parse().unwrap();
        out.entry(series.to_owned()).or_default().push((t, v));
    }
    out
}

#[test]
fn metrics_prom_values_equal_the_time_series() {
    let (r, ts) = run("scenarios/small.yaml", &["duration=2s"]);
    let text = metrics::openmetrics(&r, &ts);
    assert!(text.ends_with("# EOF\n"));
    let m = parse_openmetrics(&text);
    for (i, node) in ts.nodes.iter().enumerate() {
        let labels = format!(r#"{{instance="{node}",job="node-exporter",node="{node}"}}"#);
        let entries = &m[&format!("node_nf_conntrack_entries{labels}")];
        let drop = &m[&format!("node_nf_conntrack_stat_drop{labels}")];
        let limit = &m[&format!("node_nf_conntrack_entries_limit{labels}")];
        assert_eq!(entries.len(), ts.samples.len(), "one sample per sampleInterval");
        for (k, row) in ts.samples.iter().enumerate() {
            assert_eq!(
                entries[k],
                (row.t_s, row.count[i] as f64),
                "{node} entries at {}",
                row.t_s
            );
            assert_eq!(drop[k].1, row.counters[i].drop as f64);
            assert_eq!(limit[k].1, ts.max[i] as f64);
        }
        let cpu = &m[&format!(r#"k8s_netsim_packet_cpu_demand_ratio{{node="{node}"}}"#)];
        for (k, row) in ts.samples.iter().enumerate() {
            assert_eq!(cpu[k].1, row.cpu_pct[i] / 100.0);
        }
    }
    let ok = &m[r#"k8s_netsim_requests_total{outcome="ok"}"#];
    let mut sum = 0;
    for (k, row) in ts.samples.iter().enumerate() {
        sum += row.ok;
        assert_eq!(ok[k].1, sum as f64);
    }
    assert_eq!(sum, r.requests.ok, "the intervals add up to the report's total");
    let p99 = &m["k8s_netsim_request_latency_p99_seconds"];
    for (k, row) in ts.samples.iter().enumerate() {
        match row.p99_ms() {
            Some(ms) => assert_eq!(p99[k].1, ms / 1e3),
            None => assert!(p99[k].1.is_nan(), "no completions: NaN, not 0"),
        }
    }
    assert!(
        !text.contains("node_nf_conntrack_stat_ignore"),
        "not modelled, not invented"
    );
}

/// promtool (Debian package `prometheus`) turns metrics.prom into TSDB blocks, and the
/// blocks hold the report's numbers.
#[test]
fn promtool_loads_the_flash_sale_metrics() {
    let Ok(v) = Command::new("promtool").arg("--version").output() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is missing in CI (.ci/run installs it)"
        );
        eprintln!(
            "SKIPPED promtool_loads_the_flash_sale_metrics: promtool is not installed (apt-get install prometheus)"
        );
        return;
    };
    assert!(v.status.success());
    let dir = flash_sale_out();
    let tsdb = dir.join("tsdb");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(dir.join("metrics.prom"))
        .arg(&tsdb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // `tsdb dump` opens the database as Prometheus would, write-ahead log included.
    std::fs::create_dir_all(tsdb.join("wal")).unwrap();
    let dump = Command::new("promtool")
        .args([
            "tsdb",
            "dump",
            "--match",
            r#"node_nf_conntrack_entries{node="node-a"}"#,
        ])
        .arg(&tsdb)
        .output()
        .unwrap();
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let text = String::from_utf8_lossy(&dump.stdout);
    let (_, ts) = flash_sale();
    // One line per sample: `{labels} value timestamp_ms`.
    let values: Vec<(u64, u64)> = text
        .lines()
        .filter(|l| l.contains("node-a"))
        .map(|l| {
            let mut it = l.rsplit(' ');
            let t: u64 = it.next().unwrap().parse().unwrap();
            let v: f64 = it.next().unwrap().parse().unwrap();
            (t, v as u64)
        })
        .collect();
    let expected: Vec<(u64, u64)> = ts
        .samples
        .iter()
        .map(|r| ((r.t_s * 1000.0).round() as u64, r.count[0]))
        .collect();
    assert_eq!(values, expected, "the TSDB holds the time series");
}

#[test]
fn flash_sale_alerts_warn_at_sample_resolution_and_not_at_kube_prometheus_intervals() {
    let (r, ts) = flash_sale();
    let every = &r.alerts.replays[0];
    let node = &every.nodes[0];
    let onset = r.nodes[0].onset_s.drop.expect("the storm drops on node-a");
    // The 75 % rule fires at the first sample above 75 % (no `for:`).
    let crossed = ts
        .samples
        .iter()
        .find(|s| s.count[0] as f64 / ts.max[0] as f64 > 0.75)
        .unwrap()
        .t_s;
    assert_eq!(
        node.rules[0].firing_at_s,
        Some((crossed * 1000.0).round() / 1000.0)
    );
    assert_eq!(node.first_alert.as_ref().unwrap().rule, "entries>75%");
    assert_eq!(node.warning, Warning::Ahead);
    let lead = node.lead_time_s.unwrap();
    assert!(
        (lead - (onset - crossed)).abs() < 1e-3,
        "lead {lead} = onset {onset} - {crossed}"
    );
    assert!(
        lead > 0.5 && lead < 2.0,
        "the table fills in ~4.4 s; 75 % leaves about 1 s: {lead}"
    );
    // The drop-rate rule fires at the first sample after the onset.
    let drop_rule = node.rules[2].firing_at_s.unwrap();
    assert!(
        drop_rule > onset && drop_rule <= onset + ts.interval_s() + 1e-9,
        "{drop_rule} vs {onset}"
    );
    assert_eq!(node.rules[3].firing_at_s, None, "for: 2m cannot fire in 10 s");
    // kube-prometheus' 15 s scrape: no scrape at all in a 10 s run.
    let kp = &r.alerts.replays[1];
    assert_eq!(kp.warning, Warning::NoAlert);
    assert!(kp.nodes.iter().all(|n| n.first_alert.is_none()));
    let json = serde_json::to_value(r).unwrap();
    assert_eq!(json["alerts"]["replays"][0]["nodes"][0]["warning"], "ahead");
    assert_eq!(
        json["alerts"]["rules"][0]["alert"],
        "NodeHighNumberConntrackEntriesUsed"
    );
}

#[test]
fn the_latency_chart_leaves_intervals_without_completions_empty() {
    let (r, ts) = flash_sale();
    let chart = latency_chart(ts, &r.subtitle(), &r.markers());
    let empty: Vec<f64> = ts.samples.iter().filter(|s| s.ok == 0).map(|s| s.t_s).collect();
    assert!(
        !empty.is_empty(),
        "the storm has intervals where nothing completes"
    );
    for series in &chart.series {
        for (row, (x, y)) in ts.samples.iter().zip(&series.points) {
            assert_eq!(row.t_s, *x);
            assert_eq!(y.is_none(), row.ok == 0, "{} at {x}: {y:?}", series.name);
            if let Some(v) = y {
                assert!(*v > 0.0);
            }
        }
        assert!(series.has_gaps());
    }
    assert!(chart.subtitle.contains("scenario flash-sale · seed"));
    assert!(chart.markers.iter().any(|m| m.label.starts_with("drop node-a")));
}

/// Known census snapshots on node-a only, in place of the ones the simulation took.
fn with_census(ts: &mut TimeSeries) {
    let n = ts.samples.len();
    for (k, row) in ts.samples.iter_mut().enumerate() {
        row.census.clear();
        let scale = (k as u64 + 1) * 10;
        row.census.push(CensusSnapshot {
            node: 0,
            at_ns: (row.t_s * 1e9).round() as u64,
            trigger: CensusTrigger::Periodic,
            census: example_census(scale),
        });
        if k == n / 2 {
            row.census.push(CensusSnapshot {
                node: 0,
                at_ns: (row.t_s * 1e9).round() as u64 - 1,
                trigger: CensusTrigger::Onset(OnsetCounter::Drop),
                census: example_census(scale),
            });
        }
    }
}

#[test]
fn a_census_renders_in_json_text_metrics_chart_and_html() {
    let out = k8s_netsim::sim::run(&load("scenarios/small.yaml", &["duration=1s"]), &mut |_, _| {}).unwrap();
    let mut ts = out.timeseries;
    with_census(&mut ts);
    let r = RunReport::new(out.report, &ts);
    let c = &r.census[0];
    assert_eq!(c.over_time.t_s.len(), ts.samples.len());
    assert_eq!(c.at_onset.len(), 1);
    for snap in c
        .at_onset
        .iter()
        .map(|o| &o.snapshot.census)
        .chain(c.at_peak.iter().map(|p| &p.census))
    {
        snap.check().unwrap();
    }
    assert!(r.census[1].is_empty(), "node-b had no snapshot");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json["census"][0]["at_onset"][0]["top_classes"][0]["key"],
        "order-service → user-service:80 TIME_WAIT [ASSURED]"
    );
    let m = parse_openmetrics(&metrics::openmetrics(&r, &ts));
    let tw = &m[r#"k8s_netsim_conntrack_entries_by_state{node="node-a",protocol="tcp",state="TIME_WAIT"}"#];
    assert_eq!(tw.len(), ts.samples.len());
    assert_eq!(tw[0].1, 900.0);
    let charts = r.charts(&ts);
    for name in ["census-node-a-workload.svg", "census-node-a-state.svg"] {
        let census = charts.iter().find(|(n, _)| n == name).expect("a stacked chart");
        assert!(census.1.stacked);
    }
    assert!(!charts.iter().any(|(n, _)| n.starts_with("census-node-b")));
    let page = html::run_page(&r, &ts);
    assert!(page.contains("order-service → user-service:80 TIME_WAIT [ASSURED]"));
    assert!(page.contains("at the drop onset"));
    assert!(page.contains("No census: the simulation took no snapshot of this node"));
}

/// The simulation's census: every periodic snapshot's total is `nf_conntrack_count` of
/// its row, every breakdown sums to its total, and the `drop` onset has a snapshot.
#[test]
fn flash_sale_census_sums_to_the_count() {
    let (r, ts) = flash_sale();
    let c = &r.census[0];
    assert!(!c.is_empty());
    for (k, t) in c.over_time.t_s.iter().enumerate() {
        let row = ts.samples.iter().find(|s| (s.t_s - t).abs() < 1e-9).unwrap();
        assert_eq!(c.over_time.total[k], row.count[0]);
    }
    for o in &c.at_onset {
        o.snapshot.census.check().unwrap();
    }
    assert!(c.at_onset.iter().any(|o| o.counter == OnsetCounter::Drop));
}

#[test]
fn compare_gives_each_variant_one_colour_on_every_chart_and_one_page() {
    use k8s_netsim::study::{Comparison, compare, parse_variant, run_jobs};
    let base = load("scenarios/small.yaml", &["duration=1s"]);
    let vs = [
        parse_variant("pool:workloads.0.connection.mode=pool").unwrap(),
        parse_variant("same:workloads.0.timeout=1s").unwrap(),
    ];
    let jobs = compare::jobs(&base, &vs).unwrap();
    let outs = run_jobs(&jobs, std::num::NonZeroUsize::new(2).unwrap(), &|_, _| {});
    let c = Comparison::new(&base, &vs, &jobs, outs).unwrap();
    for (name, chart) in c.line_charts() {
        for s in chart.series.iter().filter(|s| !s.name.contains(" max ")) {
            let slot = c.variants.iter().position(|v| v.name == s.name).unwrap();
            assert_eq!(colour(s.slot), PALETTE[slot], "{name}: {}", s.name);
        }
        assert!(chart.subtitle.contains("seed 7"), "{name}");
    }
    let svg = &c.charts()[0].1;
    assert!(
        svg.contains("same (= baseline)"),
        "an identical variant is named in the legend"
    );
    let page = c.html();
    for v in &c.variants {
        assert!(page.contains(&v.report.verdict.text));
    }
    assert!(page.contains("warning before loss"));
}

/// Headless Chromium opens report.html from disk: no console error, every chart wired
/// by the page's script, and a screenshot that is not blank.
#[test]
fn report_html_renders_in_headless_chromium() {
    let browser = ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(browser) = browser else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is missing in CI (.ci/run installs it)"
        );
        eprintln!(
            "SKIPPED report_html_renders_in_headless_chromium: chromium is not installed (apt-get install chromium)"
        );
        return;
    };
    let dir = flash_sale_out();
    let page = dir.join("report.html");
    let html_text = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html_text.contains(" src=\"http") && !html_text.contains(" href=\"http"),
        "no network resource"
    );
    let profile = dir.join("chromium-profile");
    let common = |c: &mut Command| {
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,4000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    };
    let mut dom = Command::new(browser);
    common(&mut dom);
    let out = dom
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let dom_text = String::from_utf8_lossy(&out.stdout);
    let charts = html_text.matches("<svg").count();
    assert!(charts >= 4, "{charts} charts");
    assert!(
        dom_text.contains(&format!("data-charts=\"{charts}\"")),
        "the page's script ran to its end over {charts} charts"
    );
    assert!(dom_text.matches("class=\"series\"").count() >= 6);
    let shot = dir.join("report.png");
    let mut cmd = Command::new(browser);
    common(&mut cmd);
    let out = cmd
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // A blank page compresses to a few kilobytes; charts and tables do not.
    assert!(png.len() > 100_000, "screenshot is {} bytes", png.len());
}

/// Every metric the shipped Grafana dashboard queries is one metrics.prom writes (with
/// every optional family present: census, timeouts, the latency histogram).
#[test]
fn the_grafana_dashboard_queries_only_metrics_the_run_writes() {
    let out = k8s_netsim::sim::run(&load("scenarios/small.yaml", &["duration=1s"]), &mut |_, _| {}).unwrap();
    let mut ts = out.timeseries;
    with_census(&mut ts);
    let mut h = k8s_netsim::report::Histogram::new();
    h.record(2_000_000);
    for row in &mut ts.samples {
        row.timeouts = Some(1);
        row.latency = Some(k8s_netsim::report::LatencyBuckets::from_histogram(&h));
    }
    let r = RunReport::new(out.report, &ts);
    let text = metrics::openmetrics(&r, &ts);
    let written: std::collections::BTreeSet<String> = parse_openmetrics(&text)
        .keys()
        .map(|k| k.split('{').next().unwrap().to_owned())
        .collect();
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root("docs/grafana/k8s-netsim.json")).unwrap())
            .unwrap();
    let mut queried = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("node_nf_") || word.starts_with("k8s_netsim_") {
                    queried += 1;
                    assert!(
                        written.contains(word),
                        "{} queries {word}, which metrics.prom lacks",
                        panel["title"]
                    );
                }
            }
        }
    }
    assert!(queried >= 15, "{queried}");
}

/// Prometheus' own rule engine (`promtool test rules`) fires the replayed rules at the
/// times the replay reports, on node-a's flash-sale series evaluated every sample.
#[test]
fn the_alert_replay_agrees_with_promtool_test_rules() {
    if Command::new("promtool").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is missing in CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED the_alert_replay_agrees_with_promtool_test_rules: promtool is not installed");
        return;
    }
    let (r, ts) = flash_sale();
    let replay = &r.alerts.replays[0];
    let step_ms = (ts.interval_s() * 1000.0).round() as u64;
    let dir = std::env::temp_dir().join(format!("k8s-netsim-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Each replayed rule under its own alert name, with its `for:`.
    let name = |id: &str| format!("Replay_{}", id.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
    let mut rules = String::from("groups:\n  - name: replay\n    rules:\n");
    for rule in &r.alerts.rules {
        rules.push_str(&format!(
            "      - alert: {}\n        expr: '{}'\n        for: {}s\n",
            name(rule.id),
            rule.expr,
            rule.for_s
        ));
    }
    std::fs::write(dir.join("rules.yml"), rules).unwrap();
    // Input: node-a's samples; promtool's series start at t = 0 with the empty table.
    let values = |f: &dyn Fn(&k8s_netsim::report::Sample) -> u64| {
        std::iter::once("0".to_owned())
            .chain(ts.samples.iter().map(|s| f(s).to_string()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut test = format!(
        "rule_files: [rules.yml]\nevaluation_interval: {step_ms}ms\ntests:\n  - interval: {step_ms}ms\n    input_series:\n"
    );
    test.push_str(&format!(
        "      - series: 'node_nf_conntrack_entries{{node=\"node-a\"}}'\n        values: '{}'\n",
        values(&|s| s.count[0])
    ));
    test.push_str(&format!(
        "      - series: 'node_nf_conntrack_entries_limit{{node=\"node-a\"}}'\n        values: '{}'\n",
        values(&|_| ts.max[0])
    ));
    test.push_str(&format!(
        "      - series: 'node_nf_conntrack_stat_drop{{node=\"node-a\"}}'\n        values: '{}'\n",
        values(&|s| s.counters[0].drop)
    ));
    test.push_str("    alert_rule_test:\n");
    let mut checks = 0;
    for (rule, outcome) in r.alerts.rules.iter().zip(&replay.nodes[0].rules) {
        let alert = name(rule.id);
        match outcome.firing_at_s {
            Some(t) => {
                let ms = (t * 1000.0).round() as u64;
                for (at, firing) in [(ms - step_ms, false), (ms, true)] {
                    test.push_str(&format!(
                        "      - eval_time: {at}ms\n        alertname: {alert}\n"
                    ));
                    test.push_str(if firing {
                        "        exp_alerts:\n          - exp_labels: {node: node-a}\n"
                    } else {
                        "        exp_alerts: []\n"
                    });
                    checks += 1;
                }
            }
            None => {
                let end = (r.duration_s * 1000.0).round() as u64;
                test.push_str(&format!(
                    "      - eval_time: {end}ms\n        alertname: {alert}\n        exp_alerts: []\n"
                ));
                checks += 1;
            }
        }
    }
    std::fs::write(dir.join("test.yml"), test).unwrap();
    let out = Command::new("promtool")
        .args(["test", "rules", "test.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool disagrees with the replay:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(checks >= 7, "{checks}");
}

/// The callers' view (docs/report-format.md "The callers' view and the survivors' view"):
/// every finished request counts, a failure at its failure time, so in a storm where more
/// than 1 % fail the callers' P99 sits at a failure time (at least the 1 s deadline) while
/// the survivors' P99 is lower; per-node and per-interval figures add up to the totals.
#[test]
fn flash_sale_callers_view_counts_failures_the_survivors_view_does_not() {
    let (r, ts) = flash_sale();
    let u = &r.users;
    let q = &r.requests;
    assert_eq!(u.finished, q.ok + q.failed);
    assert!(
        q.failed * 100 > u.finished,
        "the storm fails > 1 %: {} of {}",
        q.failed,
        u.finished
    );
    let expect_pct = q.ok as f64 * 100.0 / u.finished as f64;
    assert!(
        (u.success_pct - expect_pct).abs() < 0.001,
        "{} vs {expect_pct}",
        u.success_pct
    );
    assert!(
        u.latency_ms.p99 >= 1000.0,
        "a failure ends at a deadline (1 s) or later: callers' p99 {}",
        u.latency_ms.p99
    );
    assert!(
        u.latency_ms.p99 > r.latency_ms.p99,
        "callers' p99 {} vs survivors' {}",
        u.latency_ms.p99,
        r.latency_ms.p99
    );
    assert!(u.latency_ms.max >= r.latency_ms.max);
    // Per node: the client node carries every request; the server node none.
    let sent: u64 = r.nodes.iter().map(|n| n.clients.sent).sum();
    let finished: u64 = r.nodes.iter().map(|n| n.clients.users.finished).sum();
    assert_eq!(sent, q.sent);
    assert_eq!(finished, u.finished);
    assert_eq!(r.nodes[0].clients.timeouts, q.timeouts);
    assert_eq!(r.nodes[1].clients.sent, 0);
    assert_eq!(r.workloads[0].users.finished, u.finished);
    // Per interval: timeouts add up, and where nothing failed the two views agree.
    let timeouts: u64 = ts.samples.iter().map(|s| s.timeouts.unwrap()).sum();
    assert_eq!(timeouts, q.timeouts);
    for s in &ts.samples {
        if s.failed == 0 {
            assert_eq!(s.users_p99_ms, s.p99_ms(), "t={}", s.t_s);
        }
        assert_eq!(s.success_pct().is_some(), s.ok + s.failed > 0);
    }
    let csv = ts.to_csv();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",success_pct,timeouts_per_s,users_p50_ms,users_p99_ms")
    );
}
