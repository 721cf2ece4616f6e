//! The `engine` module models the passage of simulated time: a single-threaded
//! discrete-event engine that owns the clock and the pending-event queue and hands each
//! event, in order, to a [`Model`]. It knows nothing about networking.
//!
//! # Ordering rule (the determinism contract)
//!
//! Every event has a due time ([`SimTime`], integer nanoseconds) and a sequence number
//! taken from one counter that increases by one per scheduling call. Events are
//! delivered in increasing `(time, seq)` order: a total order, so events due at the
//! same instant are delivered first-scheduled, first-delivered. The engine never reads
//! a wall clock and has no threads; the same model and the same schedule calls give the
//! same delivery order, whatever queue structure holds the events.
//!
//! # Queue structure
//!
//! General events live in a binary heap. Constant-delay timer classes (a TIME_WAIT
//! expiry, a fixed conntrack timeout) and other streams whose due times never go back
//! (packets queued for one CPU) can be put on a **lane** ([`Engine::add_lane`],
//! [`Context::schedule_lane`], [`Context::schedule_lane_at`]): a FIFO whose events
//! become due in the order they were scheduled, so pushing and popping is O(1) whatever
//! the number pending. The engine delivers the least `(time, seq)` across the heap top
//! and the lane heads (kept in a small heap of their own; at most [`MAX_LANES`] lanes). An event whose lane would fall out of order goes to the heap
//! instead, so lanes only ever change speed, never order. Why lanes: docs/performance.md
//! §Lessons from the peers (the event-queue structure matters more than the framework).
//!
//! # Cancelling
//!
//! [`Context::cancel`] removes a pending event lazily (it is skipped when it reaches
//! the front). Models with many re-armed timers can instead keep a generation counter
//! in the event and ignore stale ones; both patterns are deterministic.
//!
//! # Observing progress
//!
//! [`Engine::run_until_with`] calls an observer on a fixed grid of simulated instants
//! (for example every 100 ms) without scheduling events of its own, so sampling a time
//! series or drawing a progress bar does not perturb the sequence numbers.
//!
//! # Example
//!
//! ```
//! use k8s_netsim::engine::{Context, Engine, Model};
//! use k8s_netsim::time::{SimDuration, SimTime};
//!
//! /// Ticks every second and counts the ticks.
//! struct Clock { ticks: u32 }
//! impl Model for Clock {
//!     type Event = ();
//!     fn handle(&mut self, (): (), cx: &mut Context<'_, ()>) {
//!         self.ticks += 1;
//!         cx.schedule_after(SimDuration::from_secs(1), ());
//!     }
//! }
//!
//! let mut engine = Engine::new(Clock { ticks: 0 });
//! engine.schedule(SimTime::ZERO, ()).unwrap();
//! let summary = engine.run_until(SimTime::from_secs(10));
//! assert_eq!(summary.events, 11); // t = 0, 1, ..., 10 s: the deadline is inclusive
//! assert_eq!(engine.model().ticks, 11);
//! ```

mod queue;

use crate::time::{SimDuration, SimTime};
use queue::EventQueue;

/// The most lanes one engine may have (the lanes' heads are kept in a heap, so a pop
/// costs O(log lanes); the limit bounds the memory of empty lanes).
pub const MAX_LANES: usize = 4096;

/// A simulation model: plain state plus a handler for its own event type.
pub trait Model {
    /// What the model schedules and receives.
    type Event;

    /// Handles one event at `cx.now()`; may schedule or cancel further events.
    fn handle(&mut self, ev: Self::Event, cx: &mut Context<'_, Self::Event>);
}

/// Handle of a scheduled event, for [`Context::cancel`] and [`Engine::cancel`].
///
/// Only meaningful for the engine that issued it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    time: SimTime,
    seq: u64,
}

impl EventId {
    /// When the event is (or was) due.
    #[must_use]
    pub fn time(self) -> SimTime {
        self.time
    }

    /// Its sequence number (the tie-breaker between equal times).
    #[must_use]
    pub fn seq(self) -> u64 {
        self.seq
    }

    fn from_key((time, seq): (u64, u64)) -> EventId {
        EventId {
            time: SimTime::from_nanos(time),
            seq,
        }
    }

    fn key(self) -> (u64, u64) {
        (self.time.as_nanos(), self.seq)
    }
}

/// Handle of a FIFO lane created by [`Engine::add_lane`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LaneId(u16);

/// Invalid scheduling requests. The engine state is unchanged after any of them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The requested time precedes the engine's current time.
    #[error("cannot schedule an event at {at}: simulated time is already {now}")]
    InPast {
        /// The requested due time.
        at: SimTime,
        /// The engine's current time.
        now: SimTime,
    },
    /// [`Engine::add_lane`] was called when [`MAX_LANES`] lanes already exist.
    #[error("cannot add another event lane: the engine already has the maximum of {max}")]
    TooManyLanes {
        /// The limit ([`MAX_LANES`]).
        max: usize,
    },
}

/// What one `run_until*` call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunSummary {
    /// Events delivered during this call.
    pub events: u64,
    /// The engine's time when the call returned: the deadline, or the time of the
    /// halting event.
    pub end_time: SimTime,
    /// Whether the model called [`Context::halt`].
    pub halted: bool,
}

/// What a model may do while handling an event: read the time, schedule, cancel, halt.
#[derive(Debug)]
pub struct Context<'a, E> {
    now: SimTime,
    queue: &'a mut EventQueue<E>,
    halt: &'a mut bool,
}

impl<E> Context<'_, E> {
    /// The current simulated time (the due time of the event being handled).
    #[must_use]
    #[inline]
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Schedules `ev` at the absolute time `at`.
    ///
    /// # Errors
    /// [`ScheduleError::InPast`] if `at` is before [`Context::now`].
    #[inline]
    pub fn schedule_at(&mut self, at: SimTime, ev: E) -> Result<EventId, ScheduleError> {
        if at < self.now {
            return Err(ScheduleError::InPast { at, now: self.now });
        }
        Ok(EventId::from_key(self.queue.push(at.as_nanos(), ev)))
    }

    /// Schedules `ev` `delay` after now (saturating at [`SimTime::MAX`]).
    #[inline]
    pub fn schedule_after(&mut self, delay: SimDuration, ev: E) -> EventId {
        let at = self.now.saturating_add(delay);
        EventId::from_key(self.queue.push(at.as_nanos(), ev))
    }

    /// Schedules `ev` `delay` after now on `lane`. Meant for constant-delay timer
    /// classes; if the lane's last event is due later, the event is kept in the heap,
    /// so delivery order is the same either way.
    #[inline]
    pub fn schedule_lane(&mut self, lane: LaneId, delay: SimDuration, ev: E) -> EventId {
        let at = self.now.saturating_add(delay);
        EventId::from_key(self.queue.push_lane(usize::from(lane.0), at.as_nanos(), ev))
    }

    /// Schedules `ev` at `at` (not before now) on `lane`: for events that become due in
    /// the order they are scheduled, such as packets waiting for one CPU. If the lane's
    /// last event is due later, the event is kept in the heap, so delivery order is the
    /// same either way.
    #[inline]
    pub fn schedule_lane_at(&mut self, lane: LaneId, at: SimTime, ev: E) -> EventId {
        let at = at.max(self.now);
        EventId::from_key(self.queue.push_lane(usize::from(lane.0), at.as_nanos(), ev))
    }

    /// Cancels a pending event. Returns false if it was already delivered or cancelled.
    pub fn cancel(&mut self, id: EventId) -> bool {
        self.queue.cancel(id.key())
    }

    /// Stops the current `run_until*` call after this event.
    pub fn halt(&mut self) {
        *self.halt = true;
    }

    /// Number of events still pending (cancelled ones excluded).
    #[must_use]
    pub fn pending(&self) -> usize {
        self.queue.len()
    }
}

/// The discrete-event engine: a clock, a queue and a model.
#[derive(Debug)]
pub struct Engine<M: Model> {
    model: M,
    queue: EventQueue<M::Event>,
    now: SimTime,
    delivered: u64,
    halt: bool,
}

impl<M: Model> Engine<M> {
    /// An engine at time zero with no pending events.
    pub fn new(model: M) -> Self {
        Engine {
            model,
            queue: EventQueue::new(),
            now: SimTime::ZERO,
            delivered: 0,
            halt: false,
        }
    }

    /// Adds a FIFO lane for a constant-delay timer class.
    ///
    /// # Errors
    /// [`ScheduleError::TooManyLanes`] beyond [`MAX_LANES`].
    pub fn add_lane(&mut self) -> Result<LaneId, ScheduleError> {
        if self.queue.lane_count() >= MAX_LANES {
            return Err(ScheduleError::TooManyLanes { max: MAX_LANES });
        }
        let idx = self.queue.add_lane();
        let id = u16::try_from(idx).map_err(|_| ScheduleError::TooManyLanes { max: MAX_LANES })?;
        Ok(LaneId(id))
    }

    /// The current simulated time.
    #[must_use]
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Schedules `ev` at `at` from outside the model (initial events, injections).
    ///
    /// # Errors
    /// [`ScheduleError::InPast`] if `at` is before [`Engine::now`].
    pub fn schedule(&mut self, at: SimTime, ev: M::Event) -> Result<EventId, ScheduleError> {
        self.context().schedule_at(at, ev)
    }

    /// Schedules `ev` `delay` after [`Engine::now`].
    pub fn schedule_after(&mut self, delay: SimDuration, ev: M::Event) -> EventId {
        self.context().schedule_after(delay, ev)
    }

    /// Cancels a pending event. Returns false if it was already delivered or cancelled.
    pub fn cancel(&mut self, id: EventId) -> bool {
        self.queue.cancel(id.key())
    }

    fn context(&mut self) -> Context<'_, M::Event> {
        Context {
            now: self.now,
            queue: &mut self.queue,
            halt: &mut self.halt,
        }
    }

    /// Number of events still pending (cancelled ones excluded).
    #[must_use]
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Events delivered since the engine was created.
    #[must_use]
    pub fn events_delivered(&self) -> u64 {
        self.delivered
    }

    /// Lane pushes that went to the heap because they were out of lane order
    /// (a hint that a lane is used for a timer class whose delay varies).
    #[must_use]
    pub fn lane_spills(&self) -> u64 {
        self.queue.spills()
    }

    /// Delivers the next event, whatever its time; returns that time, or `None` if
    /// nothing is pending.
    pub fn step(&mut self) -> Option<SimTime> {
        self.halt = false;
        let entry = self.queue.pop()?;
        self.deliver(entry.time, entry.ev);
        Some(self.now)
    }

    #[inline]
    fn deliver(&mut self, time: u64, ev: M::Event) {
        self.now = SimTime::from_nanos(time);
        self.delivered += 1;
        let mut cx = Context {
            now: self.now,
            queue: &mut self.queue,
            halt: &mut self.halt,
        };
        self.model.handle(ev, &mut cx);
    }

    /// Delivers every event due at or before `deadline` (inclusive), then sets the
    /// clock to `deadline`, unless the model halts first. A deadline in the past
    /// delivers nothing and leaves the clock where it is.
    pub fn run_until(&mut self, deadline: SimTime) -> RunSummary {
        self.halt = false;
        let limit = deadline.as_nanos();
        let start = self.delivered;
        while let Some(entry) = self.queue.pop_due(limit) {
            self.deliver(entry.time, entry.ev);
            if self.halt {
                return RunSummary {
                    events: self.delivered - start,
                    end_time: self.now,
                    halted: true,
                };
            }
        }
        self.now = self.now.max(deadline);
        RunSummary {
            events: self.delivered - start,
            end_time: self.now,
            halted: false,
        }
    }

    /// As [`Engine::run_until`], and calls `observe(model, t)` at every multiple `t`
    /// of `every` with `now < t <= deadline`, after all events due at or before `t`
    /// and before any later one. The grid is absolute (multiples of `every` since time
    /// zero), so consecutive calls sample the same instants as one long call. With
    /// `every` zero the observer is called once, at the deadline. It is not called
    /// after a halt.
    pub fn run_until_with<F>(&mut self, deadline: SimTime, every: SimDuration, mut observe: F) -> RunSummary
    where
        F: FnMut(&M, SimTime),
    {
        let step = every.as_nanos();
        let mut events = 0;
        if let Some(k) = self.now.as_nanos().checked_div(step) {
            let mut next = k.checked_add(1).and_then(|k| k.checked_mul(step));
            while let Some(t) = next.filter(|&t| t <= deadline.as_nanos()) {
                let at = SimTime::from_nanos(t);
                let part = self.run_until(at);
                events += part.events;
                if part.halted {
                    return RunSummary { events, ..part };
                }
                observe(&self.model, at);
                next = t.checked_add(step);
            }
        }
        let part = self.run_until(deadline);
        events += part.events;
        if step == 0 && !part.halted {
            observe(&self.model, self.now);
        }
        RunSummary { events, ..part }
    }

    /// The model.
    #[must_use]
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The model, mutably (between runs).
    pub fn model_mut(&mut self) -> &mut M {
        &mut self.model
    }

    /// Consumes the engine and returns the model.
    pub fn into_model(self) -> M {
        self.model
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every delivery as (time in ns, label).
    #[derive(Debug, Default)]
    struct Recorder {
        seen: Vec<(u64, u32)>,
    }

    /// An event that may schedule children when handled.
    #[derive(Debug)]
    enum Ev {
        Mark(u32),
        Spawn {
            label: u32,
            delay: SimDuration,
            lane: Option<LaneId>,
        },
        CancelThenMark {
            victim: EventId,
            label: u32,
        },
        Halt(u32),
    }

    impl Model for Recorder {
        type Event = Ev;
        fn handle(&mut self, ev: Ev, cx: &mut Context<'_, Ev>) {
            let t = cx.now().as_nanos();
            match ev {
                Ev::Mark(l) => self.seen.push((t, l)),
                Ev::Spawn { label, delay, lane } => {
                    self.seen.push((t, label));
                    match lane {
                        Some(lane) => cx.schedule_lane(lane, delay, Ev::Mark(label + 1000)),
                        None => cx.schedule_after(delay, Ev::Mark(label + 1000)),
                    };
                }
                Ev::CancelThenMark { victim, label } => {
                    assert!(cx.cancel(victim));
                    self.seen.push((t, label));
                }
                Ev::Halt(l) => {
                    self.seen.push((t, l));
                    cx.halt();
                }
            }
        }
    }

    #[test]
    fn same_time_events_are_delivered_in_scheduling_order() {
        let mut e = Engine::new(Recorder::default());
        for l in 0..5 {
            e.schedule(SimTime::from_nanos(7), Ev::Mark(l)).unwrap();
        }
        e.schedule(SimTime::from_nanos(3), Ev::Mark(99)).unwrap();
        e.run_until(SimTime::from_nanos(100));
        let labels: Vec<u32> = e.model().seen.iter().map(|s| s.1).collect();
        assert_eq!(labels, vec![99, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn scheduling_in_the_past_is_a_typed_error() {
        let mut e = Engine::new(Recorder::default());
        e.run_until(SimTime::from_secs(5));
        let err = e.schedule(SimTime::from_secs(4), Ev::Mark(0)).unwrap_err();
        assert_eq!(
            err,
            ScheduleError::InPast {
                at: SimTime::from_secs(4),
                now: SimTime::from_secs(5)
            }
        );
        assert!(err.to_string().contains("4.000s"));
        assert_eq!(e.pending(), 0);
    }

    #[test]
    fn deadline_is_inclusive_and_clock_advances_to_it() {
        let mut e = Engine::new(Recorder::default());
        e.schedule(SimTime::from_secs(2), Ev::Mark(1)).unwrap();
        e.schedule(SimTime::from_secs(3), Ev::Mark(2)).unwrap();
        let s = e.run_until(SimTime::from_secs(2));
        assert_eq!(s.events, 1);
        assert_eq!(s.end_time, SimTime::from_secs(2));
        let s = e.run_until(SimTime::from_millis(2_500));
        assert_eq!((s.events, s.end_time), (0, SimTime::from_millis(2_500)));
        assert_eq!(e.step(), Some(SimTime::from_secs(3)));
        assert_eq!(e.step(), None);
        assert_eq!(e.events_delivered(), 2);
    }

    #[test]
    fn lane_and_heap_events_interleave_in_time_then_sequence_order() {
        let mut e = Engine::new(Recorder::default());
        let lane = e.add_lane().unwrap();
        let d = SimDuration::from_nanos(10);
        e.schedule(
            SimTime::ZERO,
            Ev::Spawn {
                label: 1,
                delay: d,
                lane: Some(lane),
            },
        )
        .unwrap();
        e.schedule(
            SimTime::ZERO,
            Ev::Spawn {
                label: 2,
                delay: d,
                lane: None,
            },
        )
        .unwrap();
        e.schedule(
            SimTime::ZERO,
            Ev::Spawn {
                label: 3,
                delay: d,
                lane: Some(lane),
            },
        )
        .unwrap();
        e.schedule(SimTime::from_nanos(10), Ev::Mark(4)).unwrap();
        e.run_until(SimTime::from_nanos(50));
        assert_eq!(
            e.model().seen,
            vec![
                (0, 1),
                (0, 2),
                (0, 3),
                (10, 4),
                (10, 1001),
                (10, 1002),
                (10, 1003)
            ]
        );
        assert_eq!(e.lane_spills(), 0);
    }

    #[test]
    fn cancelled_event_is_never_delivered() {
        let mut e = Engine::new(Recorder::default());
        let victim = e.schedule(SimTime::from_secs(2), Ev::Mark(2)).unwrap();
        e.schedule(SimTime::from_secs(1), Ev::CancelThenMark { victim, label: 1 })
            .unwrap();
        e.schedule(SimTime::from_secs(3), Ev::Mark(3)).unwrap();
        let s = e.run_until(SimTime::from_secs(10));
        assert_eq!(s.events, 2);
        assert_eq!(e.model().seen, vec![(1_000_000_000, 1), (3_000_000_000, 3)]);
        assert!(!e.cancel(victim));
    }

    #[test]
    fn halt_stops_the_run_at_the_halting_event() {
        let mut e = Engine::new(Recorder::default());
        e.schedule(SimTime::from_secs(1), Ev::Halt(1)).unwrap();
        e.schedule(SimTime::from_secs(2), Ev::Mark(2)).unwrap();
        let s = e.run_until(SimTime::from_secs(10));
        assert_eq!((s.events, s.end_time, s.halted), (1, SimTime::from_secs(1), true));
        let s = e.run_until(SimTime::from_secs(10));
        assert_eq!((s.events, s.halted), (1, false));
    }

    #[test]
    fn too_many_lanes_is_an_error() {
        let mut e = Engine::new(Recorder::default());
        for _ in 0..MAX_LANES {
            e.add_lane().unwrap();
        }
        assert_eq!(e.add_lane(), Err(ScheduleError::TooManyLanes { max: MAX_LANES }));
    }

    #[test]
    fn observer_samples_an_absolute_grid_after_events_at_each_instant() {
        let mut e = Engine::new(Recorder::default());
        for ms in [50, 100, 150, 250] {
            e.schedule(SimTime::from_millis(ms), Ev::Mark(0)).unwrap();
        }
        let mut samples = Vec::new();
        let every = SimDuration::from_millis(100);
        let s = e.run_until_with(SimTime::from_millis(120), every, |m, t| {
            samples.push((t.as_nanos() / 1_000_000, m.seen.len()));
        });
        assert_eq!(s.events, 2);
        e.run_until_with(SimTime::from_millis(300), every, |m, t| {
            samples.push((t.as_nanos() / 1_000_000, m.seen.len()));
        });
        assert_eq!(samples, vec![(100, 2), (200, 3), (300, 4)]);
    }

    #[test]
    fn observer_with_zero_interval_is_called_once_at_the_deadline() {
        let mut e = Engine::new(Recorder::default());
        let mut calls = Vec::new();
        e.run_until_with(SimTime::from_secs(3), SimDuration::ZERO, |_, t| calls.push(t));
        assert_eq!(calls, vec![SimTime::from_secs(3)]);
    }
}
