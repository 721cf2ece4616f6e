//! The engine delivers events in exactly the `(time, seq)` order of a plain sorted
//! reference list, whatever mix of heap events, lane events, ties and cancellations.

use k8s_netsim::engine::{Context, Engine, EventId, LaneId, Model};
use k8s_netsim::time::{SimDuration, SimTime};
use proptest::prelude::*;

/// What handling one event does: schedule children, maybe cancel an earlier event.
#[derive(Clone, Debug)]
struct Step {
    /// (delay in ns, lane index or none) per child.
    children: Vec<(u64, Option<u8>)>,
    /// Cancel the event with this label, if it exists.
    cancel: Option<usize>,
}

/// Engine-side model: replays the plan and records (time, label) and cancel results.
struct Planned {
    plan: Vec<Step>,
    lanes: Vec<LaneId>,
    ids: Vec<EventId>,
    seen: Vec<(u64, usize)>,
    cancels: Vec<bool>,
}

impl Model for Planned {
    type Event = usize;
    fn handle(&mut self, label: usize, cx: &mut Context<'_, usize>) {
        self.seen.push((cx.now().as_nanos(), label));
        let Some(step) = self.plan.get(label).cloned() else {
            return;
        };
        if let Some(victim) = step.cancel
            && let Some(id) = self.ids.get(victim)
        {
            self.cancels.push(cx.cancel(*id));
        }
        for (delay, lane) in step.children {
            let label = self.ids.len();
            let d = SimDuration::from_nanos(delay);
            let id = match lane.and_then(|l| self.lanes.get(usize::from(l)).copied()) {
                // Odd lanes take absolute times (as the simulation's CPU queues do).
                Some(lane) if l_odd(lane, &self.lanes) => {
                    let at = cx.now() + d;
                    cx.schedule_lane_at(lane, at, label)
                }
                Some(lane) => cx.schedule_lane(lane, d, label),
                None => cx.schedule_after(d, label),
            };
            self.ids.push(id);
        }
    }
}

fn l_odd(lane: LaneId, lanes: &[LaneId]) -> bool {
    lanes.iter().position(|l| *l == lane).is_some_and(|i| i % 2 == 1)
}

/// Reference: a flat list, searched for the minimum (time, seq) on every pop.
fn reference(plan: &[Step], roots: &[u64], horizon: u64) -> (Vec<(u64, usize)>, Vec<bool>) {
    let mut pending: Vec<(u64, u64, usize)> = Vec::new();
    let mut seq = 0u64;
    let mut labels = 0usize;
    let mut keys: Vec<(u64, u64)> = Vec::new();
    for &t in roots {
        pending.push((t, seq, labels));
        keys.push((t, seq));
        seq += 1;
        labels += 1;
    }
    let mut seen = Vec::new();
    let mut cancels = Vec::new();
    while let Some(i) = (0..pending.len()).min_by_key(|&i| (pending[i].0, pending[i].1)) {
        if pending[i].0 > horizon {
            break;
        }
        let (now, _, label) = pending.remove(i);
        seen.push((now, label));
        let Some(step) = plan.get(label) else { continue };
        if let Some(victim) = step.cancel
            && let Some(key) = keys.get(victim)
        {
            let pos = pending.iter().position(|p| (p.0, p.1) == *key);
            cancels.push(pos.is_some());
            if let Some(pos) = pos {
                pending.remove(pos);
            }
        }
        for &(delay, _) in &step.children {
            pending.push((now + delay, seq, labels));
            keys.push((now + delay, seq));
            seq += 1;
            labels += 1;
        }
    }
    (seen, cancels)
}

fn step_strategy() -> impl Strategy<Value = Step> {
    let delay = prop_oneof![Just(0u64), 0u64..5, 0u64..1_000, Just(120u64), Just(60u64)];
    // Many lanes: the lanes' heads are ordered by a heap of their own.
    let child = (delay, proptest::option::of(0u8..24));
    (
        proptest::collection::vec(child, 0..3),
        proptest::option::of(0usize..200),
    )
        .prop_map(|(children, cancel)| Step { children, cancel })
}

proptest! {
    #[test]
    fn delivery_order_matches_sorted_reference(
        plan in proptest::collection::vec(step_strategy(), 1..200),
        roots in proptest::collection::vec(0u64..50, 1..6),
        horizon in 0u64..3_000,
    ) {
        let mut engine = Engine::new(Planned {
            plan: plan.clone(),
            lanes: Vec::new(),
            ids: Vec::new(),
            seen: Vec::new(),
            cancels: Vec::new(),
        });
        let mut lanes = Vec::new();
        for _ in 0..24 {
            lanes.push(engine.add_lane().unwrap());
        }
        engine.model_mut().lanes = lanes;
        for &t in &roots {
            let id = engine.schedule(SimTime::from_nanos(t), engine.model().ids.len()).unwrap();
            engine.model_mut().ids.push(id);
        }
        let summary = engine.run_until(SimTime::from_nanos(horizon));
        let (seen, cancels) = reference(&plan, &roots, horizon);
        prop_assert_eq!(summary.events, seen.len() as u64);
        prop_assert_eq!(&engine.model().seen, &seen);
        prop_assert_eq!(&engine.model().cancels, &cancels);
    }
}
