//! Human-readable rendering of a report.

use k8s_netsim::report::{LatencyReport, RunReport};
use std::fmt::Write as _;

fn onset(v: Option<f64>) -> String {
    v.map_or_else(|| "never".to_string(), |s| format!("t={s:.3}s"))
}

fn latency_line(l: &LatencyReport) -> String {
    format!(
        "p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  p99.9 {:.1} ms  max {:.1} ms",
        l.p50, l.p90, l.p99, l.p999, l.max
    )
}

/// The scenario's `baseline` (a real node's counters) next to the simulated ones.
fn baseline_lines(s: &mut String, b: &k8s_netsim::report::BaselineReport) {
    let window = b.window_s.map_or_else(
        || "since the counters started".to_string(),
        |w| format!("over {w:.0}s"),
    );
    let _ = writeln!(
        s,
        "\nobserved on the real node {} ({}, {window}) -> simulated:",
        b.node, b.source
    );
    let rows: Vec<String> = b
        .rows
        .iter()
        .map(|row| match row.simulated {
            Some(sim) => format!("{} {} -> {sim}", row.counter, row.observed),
            None => format!("{} {} -> (not simulated)", row.counter, row.observed),
        })
        .collect();
    let _ = writeln!(s, "  {}", rows.join(", "));
}

/// The human summary: verdict first, then counters, latency and request outcomes, the
/// alert replay and who fills the table.
// Long on purpose: the summary's sections top to bottom, in the order they print, each a
// few lines; split, the order would live in a second place.
pub(crate) fn summary(r: &RunReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", r.verdict.text);
    if !r.verdict.cause.is_empty() {
        let _ = writeln!(s, "  why: {}", r.verdict.cause);
    }
    if !r.verdict.failures.is_empty() {
        let _ = writeln!(s, "  failed request attempts by cause, largest first:");
        for f in &r.verdict.failures {
            let _ = writeln!(
                s,
                "    {}: {}{} ({})",
                f.cause,
                f.attempts,
                f.onset_s.map_or_else(String::new, |t| format!(" from t={t:.3}s")),
                f.detail
            );
        }
    }
    for note in &r.notes {
        let _ = writeln!(s, "note: {note}");
    }
    let _ = writeln!(
        s,
        "\nscenario {} · seed {} · kernel {} · kube-proxy {} · {:.1}s simulated · {} events",
        r.scenario, r.seed, r.kernel, r.proxy_mode, r.duration_s, r.engine.events
    );
    users(&mut s, r);
    for n in &r.nodes {
        let c = &n.conntrack;
        let _ = writeln!(
            s,
            "\nnode {} ({} CPUs): nf_conntrack_count peak {}/{} (max from {}), end {}, buckets {}",
            n.name, n.cpus, c.count_peak, c.max, c.max_source, c.count_end, c.buckets
        );
        let counters: Vec<String> = c.stats.named().iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(s, "  conntrack -S (sum over CPUs): {}", counters.join(" "));
        let _ = writeln!(
            s,
            "  onset: drop {}, insert_failed {}, early_drop {}, clash_resolve {}",
            onset(n.onset_s.drop),
            onset(n.onset_s.insert_failed),
            onset(n.onset_s.early_drop),
            onset(n.onset_s.clash_resolve)
        );
        for k in &c.clashes {
            let _ = writeln!(
                s,
                "  clashed at confirm: {} insert_failed {}, clash_resolve {} ({})",
                k.kind.name(),
                k.insert_failed,
                k.clash_resolve,
                k.mechanism
            );
        }
        if c.table_full_log_lines > 0 {
            let _ = writeln!(
                s,
                "  dmesg: {} × \"nf_conntrack: table full, dropping packet\" (rate-limited)",
                c.table_full_log_lines
            );
        }
        let _ = writeln!(
            s,
            "  cpu: mean {:.1}%, peak {:.1}% of {} CPUs{}; rules: nat {}, filter {}, {:.0} evaluated per new connection ({:.0}% of packet CPU)",
            n.cpu.mean_pct,
            n.cpu.peak_pct,
            n.cpus,
            if n.cpu.peak_demand_pct > 100.0 {
                format!(" (saturated: demand peaked at {:.0}%)", n.cpu.peak_demand_pct)
            } else {
                String::new()
            },
            n.rules.nat_rules,
            n.rules.filter_rules,
            n.rules.mean_per_new_connection,
            n.cpu.rules_share_pct
        );
        let cl = &n.clients;
        if cl.sent > 0 {
            let _ = writeln!(
                s,
                "  clients here: {} requests, {:.2}% answered, {} timeouts; callers' p99 {:.1} ms (answered only {:.1} ms)",
                cl.sent, cl.users.success_pct, cl.timeouts, cl.users.latency_ms.p99, cl.latency_ms.p99
            );
        }
        if let Some(p) = &n.proxy {
            let c = p.per_new_connection;
            let mut line = format!(
                "  data plane {}: per new connection {:.0} rules, {:.1} hash lookups, {:.1} scheduler ops",
                p.data_plane, c.rules_evaluated, c.hash_lookups, c.scheduler_ops
            );
            if let Some(i) = p.ipvs {
                line.push_str(&format!(
                    "; IPVS connections peak {}, conn_reuse_mode {}, first-SYN drops {}",
                    i.connections_peak, i.conn_reuse_mode, i.conn_reuse_drops
                ));
            }
            if let Some(e) = p.ebpf {
                line.push_str(&format!(
                    "; BPF CT peak {} of {} (tcp {} + any {}), live evictions {}, insertion failures {}{}",
                    e.ct_peak,
                    e.ct_tcp_size + e.ct_any_size,
                    e.ct_tcp_size,
                    e.ct_any_size,
                    e.evicted_live,
                    e.insert_failed,
                    if e.notrack { ", pod traffic NOTRACKed" } else { "" }
                ));
            }
            let _ = writeln!(s, "{line}");
        }
        if !n.packet_drops.is_empty() {
            let drops: Vec<String> = n.packet_drops.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
            let _ = writeln!(s, "  packets lost here: {}", drops.join(", "));
        }
        let k = &n.sockets;
        if k.eaddrnotavail + k.listen_overflows + k.time_wait_overflow + k.syn_retransmits > 0 {
            let _ = writeln!(
                s,
                "  sockets: SYN retransmits {}, EADDRNOTAVAIL {}, ListenOverflows {}, TCPTimeWaitOverflow {}",
                k.syn_retransmits, k.eaddrnotavail, k.listen_overflows, k.time_wait_overflow
            );
        }
    }
    if let Some(b) = &r.baseline {
        baseline_lines(&mut s, b);
    }
    let q = &r.requests;
    let _ = writeln!(
        s,
        "\nlatency of answered requests only (survivors): {}",
        latency_line(&r.latency_ms)
    );
    let _ = writeln!(
        s,
        "requests: sent {}, ok {}, failed {}, timeouts {}, retries {}, new connections {}, in flight at end {}",
        q.sent, q.ok, q.failed, q.timeouts, q.retries, q.new_connections, q.in_flight_at_end
    );
    if !q.failures_by_cause.is_empty() {
        let causes: Vec<String> = q
            .failures_by_cause
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = writeln!(s, "failed attempts by cause: {}", causes.join(", "));
    }
    let d = &r.dns;
    let _ = writeln!(
        s,
        "dns: {} queries, CoreDNS peak {:.0} QPS, {} lookups hit a 5 s timeout, {} failed, {} A/AAAA pairs raced",
        d.queries, d.coredns_qps_peak, d.lookups_with_timeout, d.lookups_failed, d.pairs_raced
    );
    let _ = writeln!(
        s,
        "coredns: {} queries ({:.1} QPS mean) over {} pod(s)",
        d.coredns_queries,
        d.coredns_qps_mean,
        d.coredns_queries_by_pod.len()
    );
    if let Some(c) = &d.node_local {
        let _ = writeln!(
            s,
            "nodelocal dns cache: {} hits, {} misses (hit ratio {:.3}), {} upstream queries over {} {} connections, {} upstream timeouts",
            c.hits,
            c.misses,
            c.hit_ratio,
            c.upstream_queries,
            c.upstream_connections,
            c.upstream_protocol,
            c.upstream_timeouts
        );
    }
    if r.workloads.len() > 1 {
        for w in &r.workloads {
            let _ = writeln!(
                s,
                "  workload {}: callers' {}, {:.2}% answered; answered only p99 {:.1} ms",
                w.name,
                latency_line(&w.users.latency_ms),
                w.users.success_pct,
                w.latency_ms.p99
            );
        }
    }
    let _ = writeln!(
        s,
        "\nalerts (replayed on the time series; rules in docs/report-format.md):"
    );
    for line in r.alerts.summary_lines() {
        let _ = writeln!(s, "  {line}");
    }
    census(&mut s, r);
    s
}

/// What the callers saw, first: every finished request's latency (a failure at its
/// failure time) next to the answered-only figure, and which nodes lost packets when.
fn users(s: &mut String, r: &RunReport) {
    let u = &r.users;
    let _ = writeln!(
        s,
        "\nwhat the callers saw (all {} finished requests, a failure counted when it failed): {}",
        u.finished,
        latency_line(&u.latency_ms)
    );
    let _ = writeln!(
        s,
        "  {:.2}% answered, {} timeouts; answered requests only (survivors): p99 {:.1} ms",
        u.success_pct, r.requests.timeouts, r.latency_ms.p99
    );
    let hot: Vec<String> = r
        .nodes
        .iter()
        .filter(|n| n.onset_s.drop.is_some() || n.onset_s.insert_failed.is_some())
        .map(|n| {
            format!(
                "{} (drop {}, insert_failed {}, callers' p99 {:.1} ms)",
                n.name,
                onset(n.onset_s.drop),
                onset(n.onset_s.insert_failed),
                n.clients.users.latency_ms.p99
            )
        })
        .collect();
    let quiet = r.nodes.len() - hot.len();
    if hot.is_empty() {
        let _ = writeln!(s, "  no node counted drop or insert_failed");
    } else {
        let _ = writeln!(s, "  nodes losing packets: {}", hot.join("; "));
        if quiet > 0 {
            let _ = writeln!(s, "  {quiet} other node(s): no drop, no insert_failed");
        }
    }
}

/// Who fills the table: the top 5 tuple classes at each node's first onset (or peak).
fn census(s: &mut String, r: &RunReport) {
    let _ = writeln!(s, "\nwho fills the table:");
    for c in &r.census {
        let snap = c
            .at_onset
            .first()
            .map(|o| {
                (
                    format!("at the {} onset, t={:.3}s", o.counter.as_str(), o.snapshot.at_s),
                    &o.snapshot.census,
                )
            })
            .or_else(|| {
                c.at_peak
                    .as_ref()
                    .map(|p| (format!("at the peak, t={:.3}s", p.at_s), &p.census))
            });
        let Some((when, census)) = snap else {
            let _ = writeln!(
                s,
                "  node {}: no census (the simulation took no snapshot of its table)",
                c.node
            );
            continue;
        };
        let _ = writeln!(s, "  node {} {when}: {} entries", c.node, census.total);
        for (k, class) in census.top_classes.iter().take(5).enumerate() {
            #[allow(clippy::cast_precision_loss)]
            let pct = class.entries as f64 * 100.0 / census.total.max(1) as f64;
            let _ = writeln!(s, "    {}. {}  {} ({pct:.1}%)", k + 1, class.key, class.entries);
        }
    }
}
