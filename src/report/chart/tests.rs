use super::*;

#[test]
fn ticks_fall_on_one_two_five_steps() {
    assert_eq!(
        linear_ticks(0.0, 131_072.0, 5.0),
        [0.0, 50_000.0, 100_000.0, 150_000.0]
    );
    assert_eq!(linear_ticks(0.0, 6.1, 5.0), [0.0, 2.0, 4.0, 6.0, 8.0]);
    assert_eq!(linear_ticks(0.0, 0.3, 5.0), [0.0, 0.1, 0.2, 0.3]);
    assert_eq!(nice_step(1585.0, 5.0), 500.0);
    assert_eq!(time_ticks(0.0, 10.0, 8.0), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
    assert_eq!(time_ticks(0.0, 120.0, 8.0)[1], 20.0);
    assert_eq!(time_ticks(0.0, 600.0, 8.0)[1], 120.0);
    assert_eq!(log_ticks(0.9, 2200.0), [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0]);
    assert_eq!(log_ticks(3.0, 40.0), [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]);
}

#[test]
fn tick_labels_read_as_units() {
    assert_eq!(format_tick(100_000.0, 50_000.0, ValueFormat::Count, 0.0), "100k");
    assert_eq!(
        format_tick(1_500_000.0, 500_000.0, ValueFormat::Count, 0.0),
        "1.5M"
    );
    assert_eq!(format_tick(0.2, 0.1, ValueFormat::Count, 0.0), "0.2");
    assert_eq!(format_tick(1000.0, 1000.0, ValueFormat::Millis, 0.0), "1 s");
    assert_eq!(format_tick(10.0, 10.0, ValueFormat::Millis, 0.0), "10 ms");
    assert_eq!(format_tick(0.1, 0.1, ValueFormat::Millis, 0.0), "0.1 ms");
    assert_eq!(format_tick(4.0, 2.0, ValueFormat::Time, 10.0), "4 s");
    assert_eq!(format_tick(120.0, 60.0, ValueFormat::Time, 300.0), "2 min");
    assert_eq!(format_tick(90.0, 30.0, ValueFormat::Time, 300.0), "1:30");
    assert_eq!(format_tick(25.0, 25.0, ValueFormat::Percent, 100.0), "25 %");
}

fn chart(series: Vec<Series>) -> LineChart {
    LineChart {
        title: "count <vs> max".into(),
        subtitle: "scenario small · seed 7".into(),
        x: Axis::time(),
        y: Axis::linear("entries", ValueFormat::Count),
        series,
        markers: vec![Marker {
            x: 0.5,
            label: "drop node-a".into(),
            kind: MarkerKind::Onset,
        }],
        stacked: false,
    }
}

#[test]
fn a_gap_breaks_the_line_and_is_not_drawn_at_zero() {
    let s = Series {
        name: "p99".into(),
        points: vec![(0.0, Some(5.0)), (1.0, None), (2.0, Some(7.0)), (3.0, Some(6.0))],
        slot: 0,
        dash: Dash::Solid,
        dots: false,
    };
    assert!(s.has_gaps());
    let svg = chart(vec![s]).render();
    let path = svg.lines().find(|l| l.contains(r#"class="series""#)).unwrap();
    assert_eq!(path.matches('M').count(), 2, "two segments: {path}");
    assert_eq!(path.matches(" L").count(), 1);
}

#[test]
fn renders_each_series_escapes_labels_and_names_identical_curves() {
    let a = Series::line("node-a", 0, [(0.0, 0.0), (1.0, 10.0)]);
    let mut b = Series::line("max", 1, [(0.0, 20.0), (1.0, 20.0)]);
    b.dash = Dash::Dashed;
    let c = Series::line("headless", 2, [(0.0, 0.0), (1.0, 10.0)]);
    let svg = chart(vec![a, b, c]).render();
    assert!(svg.starts_with("<svg"));
    assert_eq!(svg.matches(r#"class="series""#).count(), 3);
    assert!(svg.contains("count &lt;vs&gt; max"));
    assert!(svg.contains("scenario small · seed 7"));
    assert!(svg.contains("stroke-dasharray"));
    assert!(svg.contains("headless (= node-a)"), "{svg}");
    let long = chart(vec![
        Series::line("node-a max 131072", 0, [(0.0, 1.0)]),
        Series::line("node-b max 131072", 1, [(0.0, 1.0)]),
    ])
    .render();
    assert!(
        long.contains(">(= node-a max 131072)</text>"),
        "a long note gets its own line"
    );
    assert!(svg.contains("drop node-a"));
    assert!(svg.contains("onset (first drop / insert_failed)"));
}

#[test]
fn palette_does_not_repeat_below_twelve_and_slots_beyond_are_dashed() {
    let set: std::collections::BTreeSet<&str> = (0..12).map(colour).collect();
    assert_eq!(set.len(), 12);
    assert_eq!(dash_attr(Dash::Solid, 3), "");
    assert_ne!(dash_attr(Dash::Solid, 12), "");
}

#[test]
fn stacked_layers_sum_to_the_top() {
    let mut c = chart(vec![
        Series::line("a", 0, [(0.0, 1.0), (1.0, 2.0)]),
        Series::line("b", 1, [(0.0, 3.0), (1.0, 4.0)]),
    ]);
    c.stacked = true;
    let tops = c.stacked_tops();
    assert_eq!(tops[1], [(0.0, 4.0), (1.0, 6.0)]);
    let svg = c.render();
    assert_eq!(svg.matches(" Z\"").count(), 2);
}

#[test]
fn heatmap_draws_one_cell_per_point_shaded_by_value() {
    let h = Heatmap {
        title: "drops".into(),
        subtitle: "scenario x · seed 1 · mean of 1 seed".into(),
        x_label: "rate (requests/s)".into(),
        y_label: "max".into(),
        x_values: vec!["1k/s".into(), "2k/s".into()],
        y_values: vec!["65536".into()],
        cells: vec![vec![Some(0.0), Some(10.0)]],
    };
    let svg = h.render();
    assert_eq!(svg.matches(r#"class="cell""#).count(), 2);
    assert!(svg.contains(r##"fill="#ffffff""##), "lowest is white");
    assert!(svg.contains(r##"fill="#ff3737""##), "highest is red");
    assert_eq!(svg, h.render());
}
