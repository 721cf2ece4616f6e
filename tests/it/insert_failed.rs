//! Issue #12's headline: `scenarios/flash-sale-insert-failed.yaml` on 5.4 shows
//! `insert_failed` from A/AAAA pairs sent from two threads, the verdict names what
//! clashed, and every variant of the file moves the onset the way docs/model.md
//! ("What moves the insert_failed onset") says, for the kernel or glibc reason given
//! there.

use std::num::NonZeroUsize;

use k8s_netsim::conntrack::ClashKind;
use k8s_netsim::report::Report;
use k8s_netsim::scenario::{Override, Scenario};
use k8s_netsim::study::onset::{self, OnsetEffect};
use k8s_netsim::study::{Comparison, compare, run_jobs};

const FILE: &str = "scenarios/flash-sale-insert-failed.yaml";

/// The file's baseline and every variant it declares, over a short run (the cold-cache
/// lookups of the 20 pods come in the first milliseconds).
fn compare_file() -> Comparison {
    let overrides = vec![Override::parse("duration=1s").unwrap()];
    let base = Scenario::load(format!("{}/{FILE}", env!("CARGO_MANIFEST_DIR")), &overrides).unwrap();
    let vs = base.variants.clone();
    let jobs = compare::jobs(&base, &vs).unwrap();
    let outs = run_jobs(&jobs, NonZeroUsize::new(2).unwrap(), &|_, _| {});
    Comparison::new(&base, &vs, &jobs, outs).unwrap()
}

fn report<'a>(c: &'a Comparison, name: &str) -> &'a Report {
    &c.variants
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no variant {name}"))
        .report
}

/// DNS queries dropped at confirm after a clash (the lookups then wait 5 s).
fn dns_clash_drops(r: &Report) -> u64 {
    r.nodes
        .iter()
        .flat_map(|n| &n.packet_drops)
        .filter(|(k, _)| k.starts_with("DNS query: conntrack clash"))
        .map(|(_, v)| *v)
        .sum()
}

fn kind(r: &Report, k: ClashKind) -> (u64, u64) {
    onset::clashes_by_kind(r).get(&k).copied().unwrap_or_default()
}

/// The clash census sums to the counters on every node of every run.
fn assert_census_sums(c: &Comparison) {
    for v in &c.variants {
        for n in &v.report.nodes {
            let s = &n.conntrack.stats;
            let i: u64 = n.conntrack.clashes.iter().map(|k| k.insert_failed).sum();
            let r: u64 = n.conntrack.clashes.iter().map(|k| k.clash_resolve).sum();
            assert_eq!(
                (i, r),
                (s.insert_failed, s.clash_resolve),
                "{} {}",
                v.name,
                n.name
            );
        }
    }
}

#[test]
fn the_headline_storm_and_every_variant_move_insert_failed_as_the_model_says() {
    let c = compare_file();
    assert_census_sums(&c);
    let base = report(&c, "baseline");
    let sample = 0.1;

    // 5.4: insert_failed starts (the verdict), from A/AAAA pairs, some DNATed to
    // different CoreDNS pods (insert_failed + drop, a 5 s resolver timeout).
    assert_eq!(base.verdict.kind, "insert_failed", "{}", base.verdict.text);
    assert!(onset::insert_failed_onset(base).is_some());
    assert!(base.dns.pairs_raced > 0);
    let (diff, _) = kind(base, ClashKind::UdpPairDifferentBackends);
    assert!(diff > 0, "{:?}", base.nodes[0].conntrack.clashes);
    assert!(
        base.verdict.cause.contains("udp-pair-different-backends"),
        "{}",
        base.verdict.cause
    );
    assert_eq!(dns_clash_drops(base), diff);

    // NodeLocal DNSCache: pods' queries go to the node-local agent (NOTRACK), which
    // talks to CoreDNS over TCP: nothing left to race.
    let nl = report(&c, "nodelocal-dns");
    assert_eq!(onset::effect(base, nl, sample), OnsetEffect::Removed);
    assert!(onset::clashes_by_kind(nl).is_empty());

    // 6.18: the same races, resolved at confirm (reply-only insert for different
    // backends, merge for the same one): clash_resolve, no insert_failed.
    let k6 = report(&c, "kernel-6.18");
    assert_eq!(onset::effect(base, k6, sample), OnsetEffect::Removed);
    assert!(k6.nodes[0].conntrack.stats.clash_resolve > 0);
    assert!(kind(k6, ClashKind::UdpPairDifferentBackends).1 > 0);
    assert_eq!(dns_clash_drops(k6), 0);

    // glibc's single-request (AAAA after the A answer), single-request-reopen (AAAA
    // from a new socket) and one thread sending both: no pair races.
    for name in ["single-request", "single-request-reopen", "one-thread"] {
        let r = report(&c, name);
        assert_eq!(r.dns.pairs_raced, 0, "{name}");
        assert_eq!(onset::effect(base, r, sample), OnsetEffect::Removed, "{name}");
    }

    // IPVS: the second query follows the first's IPVS connection to the same CoreDNS
    // pod: the pairs still clash (5.4 counts the merge as insert_failed) but none is
    // dropped.
    let ipvs = report(&c, "ipvs");
    assert!(matches!(
        onset::effect(base, ipvs, sample),
        OnsetEffect::Left { .. }
    ));
    assert_eq!(kind(ipvs, ClashKind::UdpPairDifferentBackends), (0, 0));
    assert!(kind(ipvs, ClashKind::UdpPairSameBackend).0 > 0);
    assert_eq!(dns_clash_drops(ipvs), 0);

    // nftables (random numgen per packet), headless (user-service's pods direct; DNS
    // still through kube-dns's ClusterIP), keep-alive (fewer TCP connections, the same
    // lookups) and --random-fully (SNAT only): the DNS pairs race as before.
    for name in ["nftables", "headless", "keepalive", "random-fully-off"] {
        let r = report(&c, name);
        assert!(
            matches!(onset::effect(base, r, sample), OnsetEffect::Left { .. }),
            "{name}"
        );
        assert!(kind(r, ClashKind::UdpPairDifferentBackends).0 > 0, "{name}");
    }

    // compare prints the effect and the reason for each variant.
    let text = c.render_text();
    assert!(text.contains("insert_failed onset against baseline:"), "{text}");
    assert!(text.contains("nodelocal-dns: removes it"), "{text}");
    assert!(text.contains("kernel-6.18: removes it (baseline t=0.000s): the clashes still happen but the kernel resolves them"), "{text}");
    assert!(
        text.contains("clashed: udp-pair-different-backends (insert_failed/clash_resolve)"),
        "{text}"
    );
}
