//! `report.html`: one self-contained page (inline CSS, SVG and a few lines of script; no
//! network access needed to open it) with the verdict and its cause, the nodes, the
//! alert replay, the charts with onsets and alerts marked, and who fills the table.
//!
//! [`Page`] builds any such page (`compare` builds its own with it); [`run_page`] is a
//! run's.

use std::fmt::Write as _;

use super::census::{NodeCensus, NodeCensusReport, Share};
use super::chart::esc;
use super::{RunReport, TimeSeries};

const STYLE: &str = "body{font-family:sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}\
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}\
h3{font-size:15px;margin:18px 0 6px}.meta{color:#555;font-size:13px}\
.verdict{border-left:6px solid #b00020;background:#fdf1f2;padding:10px 14px;margin:16px 0}\
.verdict.ok{border-color:#2ca02c;background:#f1fbf1}.verdict p{margin:4px 0}.why{font-size:13px;color:#333}\
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f4f4f4}\
.charts svg{max-width:100%;height:auto;margin:8px 0;border:1px solid #eee}\
.note{font-size:12px;color:#666}.bar{display:inline-block;height:9px;background:#1f77b4;vertical-align:middle;margin-right:4px}\
.grid{display:flex;flex-wrap:wrap;gap:18px}.grid>div{flex:1 1 360px}";

/// Legend entries toggle their series; the page records how many charts it wired up
/// (`data-charts` on `<body>`), which the browser test reads.
const SCRIPT: &str = "(function(){var charts=document.querySelectorAll('svg.chart');\
for(var i=0;i<charts.length;i++){(function(svg){var items=svg.querySelectorAll('text.legend[data-series]');\
for(var j=0;j<items.length;j++){(function(t){t.style.cursor='pointer';t.addEventListener('click',function(){\
var name=t.getAttribute('data-series');var paths=svg.querySelectorAll('.series');var off=t.getAttribute('data-off')!=='1';\
for(var k=0;k<paths.length;k++){if(paths[k].getAttribute('data-series')===name){paths[k].style.display=off?'none':'';}}\
t.setAttribute('data-off',off?'1':'0');t.style.opacity=off?'0.4':'1';});})(items[j]);}})(charts[i]);}\
document.body.setAttribute('data-charts',String(charts.length));})();";

/// An HTML page under construction.
#[derive(Clone, Debug, Default)]
pub struct Page {
    title: String,
    body: String,
}

impl Page {
    /// A page with a title (also the `<h1>`) and a line of metadata under it.
    #[must_use]
    pub fn new(title: &str, meta: &str) -> Page {
        let mut p = Page {
            title: title.to_owned(),
            body: String::new(),
        };
        let _ = write!(
            p.body,
            "<h1>{}</h1><p class=\"meta\">{}</p>",
            esc(title),
            esc(meta)
        );
        p
    }

    /// A `<h2>` section heading.
    pub fn heading(&mut self, text: &str) {
        let _ = write!(self.body, "<h2>{}</h2>", esc(text));
    }

    /// A `<h3>` heading.
    pub fn subheading(&mut self, text: &str) {
        let _ = write!(self.body, "<h3>{}</h3>", esc(text));
    }

    /// A paragraph of text (escaped), with a CSS class.
    pub fn paragraph(&mut self, class: &str, text: &str) {
        let _ = write!(self.body, "<p class=\"{class}\">{}</p>", esc(text));
    }

    /// A verdict box: the sentence and its cause; green when nothing went wrong.
    pub fn verdict(&mut self, text: &str, cause: &str, ok: bool) {
        let _ = write!(
            self.body,
            "<div class=\"verdict{}\"><p><b>{}</b></p>{}</div>",
            if ok { " ok" } else { "" },
            esc(text),
            if cause.is_empty() {
                String::new()
            } else {
                format!("<p class=\"why\">why: {}</p>", esc(cause))
            }
        );
    }

    /// A table: header cells, then rows (all text escaped).
    pub fn table(&mut self, header: &[String], rows: &[Vec<String>]) {
        self.body.push_str("<table><tr>");
        for h in header {
            let _ = write!(self.body, "<th>{}</th>", esc(h));
        }
        self.body.push_str("</tr>");
        for r in rows {
            self.body.push_str("<tr>");
            for c in r {
                let _ = write!(self.body, "<td>{}</td>", esc(c));
            }
            self.body.push_str("</tr>");
        }
        self.body.push_str("</table>");
    }

    /// Inline SVG charts (trusted: produced by [`super::chart`]).
    pub fn charts(&mut self, svgs: &[String]) {
        self.body.push_str("<div class=\"charts\">");
        for s in svgs {
            self.body.push_str(s);
        }
        self.body.push_str("</div>");
    }

    /// Raw HTML built by this module's helpers.
    fn raw(&mut self, html: &str) {
        self.body.push_str(html);
    }

    /// The finished document.
    #[must_use]
    pub fn finish(self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head>\n<body>\n{}\n<p class=\"note\">Written by k8s-netsim {}. Self-contained: no network access is needed to open this page. Click a legend entry to hide or show its line.</p>\n<script>{SCRIPT}</script>\n</body></html>\n",
            esc(&self.title),
            self.body,
            env!("CARGO_PKG_VERSION")
        )
    }
}

fn pct(part: u64, total: u64) -> String {
    if total == 0 {
        "-".into()
    } else {
        #[allow(clippy::cast_precision_loss)]
        let p = part as f64 * 100.0 / total as f64;
        format!("{p:.1} %")
    }
}

fn t(v: Option<f64>) -> String {
    v.map_or_else(|| "never".to_owned(), |s| format!("{s:.3} s"))
}

/// A census as a table of its top tuple classes and its breakdowns (top `n` of each).
fn census_tables(page: &mut Page, c: &NodeCensus, n: usize) {
    fn rows<K: std::fmt::Display>(v: &[Share<K>], total: u64, n: usize) -> Vec<Vec<String>> {
        v.iter()
            .take(n)
            .map(|s| vec![s.key.to_string(), s.entries.to_string(), pct(s.entries, total)])
            .collect()
    }
    let head = |what: &str| vec![what.to_owned(), "entries".to_owned(), "share".to_owned()];
    let mut classes = rows(&c.top_classes, c.total, n);
    let rest = c.top_classes.iter().skip(n).map(|s| s.entries).sum::<u64>() + c.other_classes;
    if rest > 0 {
        classes.push(vec![
            "all other classes".into(),
            rest.to_string(),
            pct(rest, c.total),
        ]);
    }
    page.table(&head("tuple class"), &classes);
    page.raw("<div class=\"grid\"><div>");
    page.table(&head("workload"), &rows(&c.by_workload, c.total, n));
    page.raw("</div><div>");
    page.table(&head("destination"), &rows(&c.by_destination, c.total, n));
    page.raw("</div><div>");
    page.table(&head("protocol, state"), &rows(&c.by_state, c.total, n));
    page.raw("</div><div>");
    page.table(
        &head("flag"),
        &[
            vec!["ASSURED".into(), c.assured.to_string(), pct(c.assured, c.total)],
            vec![
                "not ASSURED".into(),
                c.not_assured.to_string(),
                pct(c.not_assured, c.total),
            ],
        ],
    );
    page.raw("</div></div>");
}

/// The "who fills the table" section for one node: at each onset, at the peak, and the
/// stacked chart.
pub fn census_section(page: &mut Page, c: &NodeCensusReport, subtitle: &str) {
    page.subheading(&format!("node {}", c.node));
    if c.is_empty() {
        page.paragraph(
            "note",
            "No census: the simulation took no snapshot of this node's table.",
        );
        return;
    }
    for o in &c.at_onset {
        page.paragraph(
            "meta",
            &format!(
                "at the {} onset, t = {:.3} s: {} entries",
                o.counter.as_str(),
                o.snapshot.at_s,
                o.snapshot.census.total
            ),
        );
        census_tables(page, &o.snapshot.census, 5);
    }
    if let Some(p) = &c.at_peak {
        page.paragraph(
            "meta",
            &format!("at the peak, t = {:.3} s: {} entries", p.at_s, p.census.total),
        );
        census_tables(page, &p.census, 5);
    }
    let charts: Vec<String> = [super::CensusBy::Workload, super::CensusBy::State]
        .into_iter()
        .filter_map(|by| super::census_chart(c, by, subtitle))
        .map(|chart| chart.render())
        .collect();
    page.charts(&charts);
}

/// The alert replay as tables: per replay, each rule's firing time per node and the
/// lead time.
pub fn alerts_section(page: &mut Page, r: &RunReport) {
    let a = &r.alerts;
    page.table(
        &["rule".into(), "expression".into(), "for".into(), "source".into()],
        &a.rules
            .iter()
            .map(|rule| {
                vec![
                    format!("{} ({})", rule.id, rule.alert),
                    rule.expr.to_owned(),
                    format!("{} s", rule.for_s),
                    rule.source.to_owned(),
                ]
            })
            .collect::<Vec<_>>(),
    );
    for replay in &a.replays {
        page.subheading(&format!(
            "{}: scrape every {} s, evaluate every {} s",
            replay.settings.label, replay.settings.scrape_interval_s, replay.settings.evaluation_interval_s
        ));
        let mut header = vec!["node".to_owned()];
        header.extend(a.rules.iter().map(|rule| format!("{} fires", rule.id)));
        header.extend(["first loss".to_owned(), "lead time".to_owned()]);
        let rows: Vec<Vec<String>> = replay
            .nodes
            .iter()
            .map(|n| {
                let mut row = vec![n.node.clone()];
                row.extend(n.rules.iter().map(|o| t(o.firing_at_s)));
                row.push(match (n.first_loss_counter, n.first_loss_s) {
                    (Some(c), Some(s)) => format!("{c} {s:.3} s"),
                    _ => "none".into(),
                });
                row.push(lead_text(n.warning, n.lead_time_s));
                row
            })
            .collect();
        page.table(&header, &rows);
    }
    for line in a.summary_lines() {
        page.paragraph("meta", &line);
    }
}

/// `1.079 s ahead`, `25.621 s late`, `no alert`, `no loss`.
#[must_use]
pub fn lead_text(w: super::alerts::Warning, lead: Option<f64>) -> String {
    use super::alerts::Warning;
    match (w, lead) {
        (Warning::Ahead, Some(l)) => format!("{l:.3} s ahead"),
        (Warning::Late, Some(l)) => format!("{:.3} s late", -l),
        (Warning::NoAlert, _) => "no alert before the end".into(),
        _ => "no loss".into(),
    }
}

/// The per-node table: table size and use, counters, onsets, CPU.
pub fn nodes_section(page: &mut Page, r: &RunReport) {
    let rows: Vec<Vec<String>> = r
        .nodes
        .iter()
        .map(|n| {
            let c = &n.conntrack;
            vec![
                n.name.clone(),
                format!("{} / {}", c.count_peak, c.max),
                c.max_source.clone(),
                c.entries_created.to_string(),
                c.stats.drop.to_string(),
                c.stats.insert_failed.to_string(),
                c.stats.early_drop.to_string(),
                t(n.onset_s.drop),
                t(n.onset_s.insert_failed),
                format!("{:.1} % / {:.1} %", n.cpu.mean_pct, n.cpu.peak_pct),
            ]
        })
        .collect();
    page.table(
        &[
            "node".into(),
            "peak count / max".into(),
            "max from".into(),
            "entries created".into(),
            "drop".into(),
            "insert_failed".into(),
            "early_drop".into(),
            "drop onset".into(),
            "insert_failed onset".into(),
            "CPU mean / peak".into(),
        ],
        &rows,
    );
}

/// A run's page.
#[must_use]
pub fn run_page(r: &RunReport, ts: &TimeSeries) -> String {
    let sub = r.subtitle();
    let mut page = Page::new(
        &format!("k8s-netsim: {}", r.scenario),
        &format!("{sub} · {:.1} s simulated", r.duration_s),
    );
    page.verdict(&r.verdict.text, &r.verdict.cause, r.verdict.kind == "none");
    page.heading("Nodes");
    nodes_section(&mut page, r);
    page.heading("Alerts operators would have seen");
    alerts_section(&mut page, r);
    page.heading("Charts");
    let charts: Vec<String> = r
        .charts(ts)
        .into_iter()
        .filter(|(name, _)| !name.starts_with("census-"))
        .map(|(_, c)| c.render())
        .collect();
    page.charts(&charts);
    let q = &r.requests;
    page.table(
        &[
            "requests".into(),
            "sent".into(),
            "ok".into(),
            "failed".into(),
            "timeouts".into(),
            "retries".into(),
            "callers' p50".into(),
            "callers' p99".into(),
            "callers' p99.9".into(),
            "answered only: p99".into(),
        ],
        &[vec![
            "all workloads".into(),
            q.sent.to_string(),
            format!("{} ({})", q.ok, pct(q.ok, q.sent)),
            q.failed.to_string(),
            q.timeouts.to_string(),
            q.retries.to_string(),
            format!("{:.1} ms", r.users.latency_ms.p50),
            format!("{:.1} ms", r.users.latency_ms.p99),
            format!("{:.1} ms", r.users.latency_ms.p999),
            format!("{:.1} ms", r.latency_ms.p99),
        ]],
    );
    page.heading("Who fills the table");
    for c in &r.census {
        census_section(&mut page, c, &sub);
    }
    page.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_the_page_is_self_contained() {
        let mut p = Page::new("a <b>", "meta & more");
        p.table(&["x".into()], &[vec!["<script>".into()]]);
        let html = p.finish();
        assert!(html.contains("a &lt;b&gt;"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external resource"
        );
        assert_eq!(html.matches("<script>").count(), 1, "only the page's own script");
    }
}
