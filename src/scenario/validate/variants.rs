//! `variants`: names and `set` lines, each variant checked for its own declaration.

use super::{Checker, VariantCheck};
use crate::scenario::Variant;
use crate::scenario::error::{FieldPath, PathSegment, ProblemKind};
use crate::scenario::file;
use crate::scenario::overrides::Override;
use std::collections::BTreeSet;

/// `variants`: names and `set` lines; each variant's problems kept apart, for the
/// loader to report with the result of checking it against the base.
pub(super) fn check_variants(specs: &[file::VariantSpec]) -> (Vec<Variant>, Vec<VariantCheck>) {
    let mut variants = Vec::new();
    let mut checks = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, v) in specs.iter().enumerate() {
        let mut c = Checker::default();
        if !seen.insert(v.name.clone()) {
            c.bad(
                ProblemKind::Duplicate,
                fp!("variants", i, "name"),
                format!("variant `{}` is declared twice", v.name),
            );
        }
        let mut overrides = Vec::new();
        for (j, text) in v.set.iter().enumerate() {
            match Override::parse(text) {
                Ok(o) => overrides.push(o),
                Err(e) => c.bad(
                    ProblemKind::BadOverride,
                    fp!("variants", i, "set", j),
                    e.to_string(),
                ),
            }
        }
        checks.push(VariantCheck {
            problems: c.problems,
            parsed: overrides.len() == v.set.len(),
        });
        variants.push(Variant {
            name: v.name.clone(),
            overrides,
        });
    }
    (variants, checks)
}

#[cfg(test)]
mod tests {
    use super::super::tests::problems;
    use crate::scenario::ProblemKind;

    #[test]
    fn invalid_variant_is_reported_at_its_set_list() {
        let p = problems(
            "services: [{name: x, ports: [{port: 80}]}]\nworkloads:\n  - {name: w, node: a, pods: 1, target: 'x:80', rate: 1/s}\nvariants:\n  - {name: v, set: ['workloads.0.connection.mode=poool']}\n  - {name: u, set: ['nope']}\n",
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().any(|(k, m)| *k == ProblemKind::BadOverride
            && m.contains(
                "variants[0].set: variant `v` does not validate: --set workloads.0.connection.mode=poool"
            )));
        assert!(
            p.iter()
                .any(|(_, m)| m.contains("variants[1].set[0]: --set nope: expected PATH=VALUE"))
        );
    }
}
