//! The race model's constants are the fit to the committed recordings: refitting
//! `validation/traces/k-race-gap` and `l-syn-race` must give `RaceModel::MEASURED_6_18`
//! (to the 3 significant digits it is written with), and the fit must describe the
//! recordings gap bin by gap bin.

use k8s_netsim::conntrack::{RaceCurve, RaceModel};
use k8s_netsim::validate::race_fits;
use std::path::Path;

fn close(a: f64, b: f64) -> bool {
    (a / b - 1.0).abs() < 0.006
}

#[test]
fn the_measured_race_model_is_the_fit_to_the_recordings() {
    let fits = race_fits(Path::new("validation/traces")).expect("recordings load");
    let m = RaceModel::MEASURED_6_18;
    let shipped = |name: &str| -> RaceCurve {
        match name {
            "same_tuple" => m.same_tuple,
            "snat_reply" => m.snat_reply,
            other => panic!("unknown curve {other}"),
        }
    };
    assert_eq!(fits.len(), 2);
    let mut wrong = Vec::new();
    for f in &fits {
        let s = shipped(f.name);
        let c = f.curve;
        if !(close(c.in_flight, s.in_flight)
            && close(c.scale_ns, s.scale_ns)
            && close(c.shape, s.shape)
            && close(c.factor_sigma, s.factor_sigma)
            && (c.in_flight_slope - s.in_flight_slope).abs() < 0.006)
        {
            wrong.push(format!(
                "{}: fitted in_flight {:.4} slope {:.4} scale_ns {:.1} shape {:.4} factor_sigma {:.4} (pairs {}, raced {}, factors {:?}, chi2 {:?}), shipped {s:?}",
            f.name,
            c.in_flight,
            c.in_flight_slope,
            c.scale_ns,
            c.shape,
            c.factor_sigma,
            f.pairs,
            f.raced,
            f.factors,
            f.chi_square
            ));
        }
        assert!(f.pairs > 1000, "{}: {} pairs", f.name, f.pairs);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_fit_is_good_per_gap_bin() {
    for f in race_fits(Path::new("validation/traces")).expect("recordings load") {
        let (chi, dof) = f.chi_square;
        // Pearson chi-square per degree of freedom of the pooled bins, each recording at
        // its own most likely window factor. The Weibull family does not follow every
        // recording's shape (docs/model.md gives the figure, about 26 for the
        // same-tuple curve); a broken fit is in the thousands.
        assert!(
            dof == 0 || chi / (dof as f64) < 40.0,
            "{}: chi2 {chi:.1} on {dof} dof; {:#?}",
            f.name,
            f.bins
        );
        let total: usize = f.bins.iter().map(|b| b.pairs).sum();
        assert_eq!(total, f.pairs, "{}: bins cover every pair", f.name);
    }
}

#[test]
fn docs_model_md_states_the_shipped_constants() {
    let md = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/model.md")).unwrap();
    let m = RaceModel::MEASURED_6_18;
    for (name, c) in [("same_tuple", m.same_tuple), ("snat_reply", m.snat_reply)] {
        let head = format!("| `{name}` | {}", c.in_flight);
        let tail = format!("| {} µs | {} |", c.scale_ns / 1000.0, c.shape);
        let line = md
            .lines()
            .find(|l| l.starts_with(&head))
            .unwrap_or_else(|| panic!("docs/model.md has no fit row starting `{head}`"));
        assert!(
            line.contains(&tail),
            "docs/model.md fit row `{line}` lacks `{tail}`"
        );
        assert!(line.contains(&c.factor_sigma.to_string()), "{line}");
    }
}
