//! The insertion race in the simulation: whether the two queries of a parallel A/AAAA
//! pair meet at confirm ([`RaceModel`], the model the validation replays use), and the
//! census of what clashed at confirm, per node and [`ClashKind`].
//!
//! The model decides; the packet path carries the decision out. A pair that races
//! sends its second query at once, on another CPU than the first's, so its first half
//! runs while the first query's entry is unconfirmed and the two meet at confirm (a
//! busy CPU can still hold one of them back past the other's confirm: a queued packet
//! arrives late, as on a real node). A pair that does not race sends its second query
//! `pairGap` later on the first's CPU, processed after the first is confirmed.

use super::model::NodeSim;
use crate::conntrack::{ClashKind, Conn, CtStats, RaceKind, RaceModel, ThreadPlacement, WindowFactor};
use crate::datapath::{Confirmed, DropReason};
use crate::packet::Tuple;
use crate::rng::SimRng;
use crate::time::{SimDuration, SimTime};
use std::collections::BTreeMap;

/// How long one window factor holds on a node: the recordings' factors held over a
/// recording of a few seconds and changed from one minute to the next.
const FACTOR_PERIOD: SimDuration = SimDuration::from_secs(1);

/// The clashes of one kind on one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct ClashCount {
    pub(super) insert_failed: u64,
    pub(super) clash_resolve: u64,
}

/// The race model's state in a run.
#[derive(Debug)]
pub(super) struct Races {
    model: RaceModel,
    rng: SimRng,
    /// Per node: the period and its window factor.
    factors: Vec<Option<(u64, WindowFactor)>>,
    /// Pairs the model raced.
    pub(super) pairs_raced: u64,
    /// Per node: clashes by kind.
    pub(super) clashes: Vec<BTreeMap<ClashKind, ClashCount>>,
    /// Per node: `insert_failed` and `clash_resolve` already attributed to a kind.
    attributed: Vec<ClashCount>,
}

impl Races {
    pub(super) fn new(seed: u64, nodes: usize) -> Races {
        Races {
            model: RaceModel::MEASURED_6_18,
            rng: SimRng::stream(seed, "race"),
            factors: vec![None; nodes],
            pairs_raced: 0,
            clashes: vec![BTreeMap::new(); nodes],
            attributed: vec![ClashCount::default(); nodes],
        }
    }

    /// The window factor on `node` at `now`, drawn once per node and period.
    fn factor(&mut self, node: usize, now: SimTime) -> WindowFactor {
        let period = now.as_nanos() / FACTOR_PERIOD.as_nanos();
        match self.factors[node] {
            Some((p, f)) if p == period => f,
            _ => {
                let f = self.model.same_tuple.draw_factor(&mut self.rng);
                self.factors[node] = Some((period, f));
                f
            }
        }
    }

    /// Attributes what the node's counters gained since the last clash to `kind`, so the
    /// kinds always sum to the counters.
    fn attribute(&mut self, node: usize, kind: ClashKind, now: CtStats) {
        let done = &mut self.attributed[node];
        let add = ClashCount {
            insert_failed: now.insert_failed.saturating_sub(done.insert_failed),
            clash_resolve: now.clash_resolve.saturating_sub(done.clash_resolve),
        };
        if add == ClashCount::default() {
            return;
        }
        done.insert_failed += add.insert_failed;
        done.clash_resolve += add.clash_resolve;
        let c = self.clashes[node].entry(kind).or_default();
        c.insert_failed += add.insert_failed;
        c.clash_resolve += add.clash_resolve;
    }
}

impl NodeSim {
    /// When and on which CPU the second query of a parallel pair leaves: the first left
    /// at `now` from a pod on `node` with `tuple`; the workload's threads sit as
    /// `placement` and the resolver spaces the sends by `gap`.
    pub(super) fn pair_second(
        &mut self,
        node: usize,
        tuple: &Tuple,
        placement: ThreadPlacement,
        gap: SimDuration,
        now: SimTime,
    ) -> (SimTime, Option<u16>) {
        let n_cpus = u16::try_from(self.world.nodes[node].cpus.max(1)).unwrap_or(u16::MAX);
        let f = self.races.factor(node, now);
        let r = &mut self.races;
        let cpus = r.model.cpus(placement, n_cpus, &mut r.rng);
        if r.model.races(RaceKind::SameTuple, cpus, gap, f, &mut r.rng) {
            r.pairs_raced += 1;
            // The first query's CPU is its flow's; the second's is as far from it as the
            // model's draw put the two threads apart (never the same CPU: they raced).
            let first = self.world.nodes[node].cpu.pick(tuple, None);
            let apart = (cpus[1] + n_cpus - cpus[0] % n_cpus) % n_cpus;
            (now, Some((first + apart.max(1)) % n_cpus))
        } else {
            (now + gap, None)
        }
    }

    /// Records a confirm on node `n` whose packet's entry was `loser` before it: when
    /// it clashed, the counters' gain goes to the clash's kind.
    pub(super) fn note_clash_kind(&mut self, n: usize, loser: Option<&Conn>, c: Confirmed) {
        let (merged, chain) = match c {
            Confirmed::Pass {
                clash_resolved: true,
                id,
            } => (id.is_some_and(|w| loser.is_none_or(|l| l.id != w)), false),
            Confirmed::Dropped(DropReason::ConntrackInsertFailed) => (false, false),
            Confirmed::Dropped(DropReason::ConntrackChainTooLong) => (false, true),
            _ => return,
        };
        let Some(l) = loser else {
            return;
        };
        let kind = ClashKind::classify(l.original.proto, l.src_nat, merged, chain);
        let stats = self.counters(n);
        self.races.attribute(n, kind, stats);
    }
}
