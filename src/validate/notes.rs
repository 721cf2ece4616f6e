//! The explanations of `docs/validation.md`: per-group notes (how the replay is done)
//! and known disagreements (what in the model differs and what it would take).

/// Known disagreements: (row id prefix, explanation). A failing row whose id starts
/// with a prefix here is a known failure; the explanation is printed in the notes.
pub(crate) const KNOWN_FAILURES: &[(&str, &str)] = &[];

/// The explanation of a failing row, if it is a known disagreement.
pub(crate) fn known_failure(id: &str) -> Option<&'static str> {
    KNOWN_FAILURES
        .iter()
        .find(|(prefix, _)| id.starts_with(prefix))
        .map(|(_, why)| *why)
}

/// How each group is replayed (printed under the group's notes).
pub(crate) const GROUP_NOTES: &[(&str, &str)] = &[];

/// The notes of a group.
pub(crate) fn group_notes(group: &str) -> impl Iterator<Item = &'static str> + '_ {
    GROUP_NOTES.iter().filter(move |(g, _)| *g == group).map(|(_, n)| *n)
}
