//! The `validate` module models nothing itself: it checks the rest of the crate against
//! the real kernel. It replays every experiment recorded by the oracle
//! (`validation/traces/`, `docs/oracle.md`) through the library at the level that
//! matches the experiment, compares the model's numbers with the recorded ones, checks
//! the published targets of `docs/validation-targets.md`, and renders the result
//! as the table of `docs/validation.md`.
//!
//! Levels (each replay uses the recorded parameters and the recorded load schedule):
//!
//! - conntrack level ([`ConntrackTable`](crate::conntrack::ConntrackTable) driven packet
//!   by packet, gc run at the times it asks): a, b, c, g, h;
//! - NAT level (the same, with the testbed's DNAT/SNAT rules, and two CPUs racing
//!   between allocation and confirm): d, e, j;
//! - socket level ([`SynTimer`](crate::socket::SynTimer)): f, V03, V04;
//! - scenario level ([`sim::run`](crate::sim::run) on `scenarios/validation/*.yaml`):
//!   i, V23; the table-sizing targets V20/V21 go through
//!   [`Scenario`](crate::scenario::Scenario) validation.
//!
//! What is not done here: the testbed's own sockets (client ports of successful
//! connections are taken from the recording, the rest are fresh), packet loss other
//! than conntrack's, and any tuning of the model to the recordings: every constant a
//! replay needs (race window, ports of failed connections, seeds) is documented in
//! `docs/model.md`. Disagreements are rows marked as such, with the reason in
//! the notes of `docs/validation.md`.

mod check;
mod ct_level;
mod nat_level;
mod notes;
mod race_fit;
mod race_level;
mod render;
mod replay;
mod socket_level;
mod storm;
mod targets;
#[cfg(test)]
mod tests;
mod trace;

pub use check::{Check, Status, Tolerance, Unit, fmt_value};
pub use race_fit::{FitBin, RaceFit, race_fits};
pub use render::{markdown, text_table};

use std::path::Path;

/// The seed of every replay (conntrack hash key, NAT offsets, ISNs). Quantities that
/// depend on it are averaged over several seeds derived from it.
pub(crate) const SEED: u64 = 5;

/// Why the validation suite could not run (the model's disagreements are rows, not
/// errors).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidateError {
    /// A recording could not be read.
    #[error("{path}: {what}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        what: String,
    },
    /// A recording could not be parsed.
    #[error("{path}: {what}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// A field the replay needs is missing from a `meta.json`.
    #[error("{path}: missing field `{field}`")]
    Missing {
        /// The file.
        path: String,
        /// The dotted field path.
        field: String,
    },
    /// The library refused a call the replay made (a bug in the replay).
    #[error("model refused a replay call: {0}")]
    Model(String),
    /// A bundled validation scenario did not load.
    #[error("validation scenario {file}: {what}")]
    Scenario {
        /// The scenario file.
        file: String,
        /// The problems.
        what: String,
    },
}

/// Rows of one experiment or target, under construction.
#[derive(Debug)]
pub(crate) struct Rows {
    group: String,
    source: String,
    rows: Vec<Check>,
}

impl Rows {
    pub(crate) fn new(group: &str, source: &str) -> Rows {
        Rows {
            group: group.to_owned(),
            source: source.to_owned(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, mut c: Check) {
        c.group.clone_from(&self.group);
        if c.source.is_empty() {
            c.source.clone_from(&self.source);
        }
        self.rows.push(c);
    }

    pub(crate) fn cmp(&mut self, id: &str, quantity: &str, unit: Unit, real: f64, sim: f64, tol: Tolerance) {
        self.push(Check::new(id.to_owned(), quantity, unit, real, sim, tol));
    }

    pub(crate) fn not_modelled(&mut self, id: &str, quantity: &str, unit: Unit, real: f64) {
        self.push(Check::not_modelled(id.to_owned(), quantity, unit, real));
    }
}

/// The documented disagreements and unmodelled behaviours: (row id prefix,
/// explanation), as printed in the notes of `docs/validation.md`.
#[must_use]
pub fn explanations() -> &'static [(&'static str, &'static str)] {
    notes::KNOWN_FAILURES
}

/// Counts of rows by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Rows within tolerance.
    pub pass: usize,
    /// Rows outside tolerance with an explanation.
    pub known_failure: usize,
    /// Rows outside tolerance without one.
    pub fail: usize,
    /// Behaviour not modelled yet.
    pub not_modelled: usize,
}

impl Summary {
    /// Tallies `checks`.
    #[must_use]
    pub fn of(checks: &[Check]) -> Summary {
        let mut s = Summary::default();
        for c in checks {
            match c.status {
                Status::Pass => s.pass += 1,
                Status::KnownFailure => s.known_failure += 1,
                Status::Fail => s.fail += 1,
                Status::NotModelled => s.not_modelled += 1,
            }
        }
        s
    }
}

/// Runs every check: the replays of the recordings under `traces` (normally
/// `validation/traces`) and the published targets (whose scenarios are read from
/// `scenarios`, normally `scenarios/validation`). Rows come in a fixed order;
/// disagreements explained in the notes are marked [`Status::KnownFailure`].
///
/// # Errors
/// [`ValidateError`] when a recording or scenario cannot be read or parsed.
pub fn run(traces: &Path, scenarios: &Path) -> Result<Vec<Check>, ValidateError> {
    let groups = [
        ct_level::a_full_assured(traces)?,
        ct_level::b_early_drop(traces)?,
        ct_level::c_tw_expiry(traces)?,
        nat_level::d_udp_race(traces)?,
        nat_level::e_snat_collision(traces)?,
        socket_level::f_syn_schedule(traces)?,
        ct_level::g_lazy_reap(traces)?,
        ct_level::h_netns_max(traces)?,
        storm::i_storm_tw(traces, scenarios)?,
        nat_level::j_storm_snat(traces)?,
        race_level::k_race_gap(traces)?,
        race_level::l_syn_race(traces)?,
        targets::v01()?,
        socket_level::v03(),
        socket_level::v04(),
        targets::v11(scenarios)?,
        targets::v20(),
        targets::v21()?,
        targets::v23(scenarios)?,
    ];

    let mut out = Vec::new();
    for g in groups {
        out.extend(g.rows);
    }
    for c in &mut out {
        if c.status == Status::Fail && notes::known_failure(&c.id).is_some() {
            c.status = Status::KnownFailure;
        }
    }
    Ok(out)
}
