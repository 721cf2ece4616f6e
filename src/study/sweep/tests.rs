use super::*;
use crate::scenario::Override;

fn small() -> Scenario {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/small.yaml");
    Scenario::load(path, &[Override::parse("duration=1s").unwrap()]).unwrap()
}

#[test]
fn params_parse_linear_and_log_grids_with_exact_ends() {
    let s = small();
    let p = parse_param(&s, "workloads.0.rate=100/s..1k/s:4").unwrap();
    assert_eq!(p.values, ["100/s", "400/s", "700/s", "1k/s"]);
    assert_eq!(p.numeric, [100.0, 400.0, 700.0, 1_000.0]);
    let p = parse_param(&s, "workloads.0.rate=100/s..10k/s:3:log").unwrap();
    assert_eq!(p.values, ["100/s", "1k/s", "10k/s"]);
    let p = parse_param(&s, "nodes.0.sysctl.net.netfilter.nf_conntrack_max=1000..1003:10").unwrap();
    assert_eq!(
        p.values,
        ["1000", "1001", "1002", "1003"],
        "integers stay whole, no repeats"
    );
}

#[test]
fn malformed_params_and_shards_are_named_errors() {
    let s = small();
    for bad in [
        "workloads.0.rate",
        "workloads.0.rate=1k/s",
        "workloads.0.rate=2k/s..1k/s",
        "workloads.0.rate=1k/s..2k/s:1",
        "workloads.0.rate=1k/s..2k/s:x",
        "workloads.0.rate=0/s..2k/s:3:log",
        "workloads.0.rate=1k/s..2k/s:100000000000",
        "workloads.0.rate=1000..2000",
    ] {
        let e = parse_param(&s, bad).unwrap_err();
        assert!(matches!(e, SweepError::BadParam { .. }), "{bad}: {e}");
        assert!(e.to_string().contains(bad), "{e}");
    }
    assert_eq!(Shard::parse("2/4").unwrap(), Shard { index: 2, count: 4 });
    for bad in ["4/4", "1", "a/2", "0/0"] {
        assert!(matches!(Shard::parse(bad), Err(SweepError::BadShard(_))), "{bad}");
    }
}

#[test]
fn one_parameter_charts_mark_each_swept_value_with_its_unit() {
    let s = small();
    let params = vec![parse_param(&s, "workloads.0.rate=100/s..300/s:3").unwrap()];
    let sw = Sweep::run(&s, params, vec![1], None, NonZeroUsize::MIN, &|_, _| {}).unwrap();
    let charts = sw.charts();
    assert_eq!(charts.len(), 4);
    let (_, svg) = &charts[0];
    assert_eq!(svg.matches(r#"class="point""#).count(), 3, "a dot per grid point");
    assert!(svg.contains("workloads.0.rate (requests/s)"), "unit on the axis");
    for v in [">100<", ">200<", ">300<"] {
        assert!(svg.contains(v), "a tick at the swept value {v}");
    }
    assert!(
        svg.contains("· seed 1<") && svg.contains(">1 seed<") && !svg.contains("seeds"),
        "grammar"
    );
}

#[test]
fn a_path_swept_twice_is_refused() {
    let s = small();
    let params = vec![
        parse_param(&s, "workloads.0.rate=100/s..200/s:2").unwrap(),
        parse_param(&s, "workloads.0.rate=300/s..400/s:2").unwrap(),
    ];
    let e = Sweep::run(&s, params, vec![1], None, NonZeroUsize::MIN, &|_, _| {}).unwrap_err();
    assert!(e.to_string().contains("already swept"), "{e}");
}

#[test]
fn one_or_two_threads_and_merged_shards_give_the_same_bytes() {
    let s = small();
    let params = vec![
        parse_param(&s, "workloads.0.rate=100/s..300/s:3").unwrap(),
        parse_param(&s, "nodes.0.sysctl.net.netfilter.nf_conntrack_max=200..400:2").unwrap(),
    ];
    let seeds = vec![1, 2];
    let run = |threads: usize, shard| {
        Sweep::run(
            &s,
            params.clone(),
            seeds.clone(),
            shard,
            NonZeroUsize::new(threads).unwrap(),
            &|_, _| {},
        )
        .unwrap()
    };
    let one = run(1, None);
    let two = run(2, None);
    assert_eq!(one.rows.len(), 12);
    let json = |s: &Sweep| serde_json::to_string_pretty(s).unwrap();
    assert_eq!(json(&one), json(&two));
    assert_eq!(one.to_csv(), two.to_csv());
    assert_eq!(one.charts(), two.charts());
    assert_eq!(one.charts().len(), 4, "heatmaps for two parameters");
    // The rows differ across the grid (a sweep that varies nothing would pass above).
    assert!(one.rows[0].sent < one.rows[11].sent);
    // Shards, serialised and read back as merge does, in any order.
    let shards: Vec<Sweep> = [2, 0, 1]
        .into_iter()
        .map(|k| {
            let sh = run(1, Some(Shard { index: k, count: 3 }));
            serde_json::from_str(&json(&sh)).unwrap()
        })
        .collect();
    let merged = merge(shards.clone()).unwrap();
    assert_eq!(json(&merged), json(&one));
    assert_eq!(merged.to_csv(), one.to_csv());
    // Missing, repeated and foreign shards are refused.
    assert!(
        merge(shards[..2].to_vec())
            .unwrap_err()
            .to_string()
            .contains("missing")
    );
    let twice = vec![shards[0].clone(), shards[0].clone(), shards[1].clone()];
    assert!(merge(twice).unwrap_err().to_string().contains("twice"));
    let mut foreign = shards.clone();
    foreign[1].fingerprint = "other".into();
    assert!(
        merge(foreign)
            .unwrap_err()
            .to_string()
            .contains("different scenarios")
    );
}
