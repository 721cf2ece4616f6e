//! The pending-event queue: one binary heap for general events plus a few FIFO lanes
//! for constant-delay timer classes, merged into one `(time, seq)` order.
//!
//! A lane holds events whose due times never decrease in scheduling order (a constant
//! timeout such as TIME_WAIT scheduled from a clock that never goes back), so a
//! `VecDeque` keeps them sorted at O(1) per push and pop. If a push would break that
//! invariant, the event goes to the heap instead ("spills"): lanes are an optimisation
//! and never change the order events are delivered in. The lanes' front keys sit in a
//! second, small heap (one slot per non-empty lane), so finding the earliest lane costs
//! O(log lanes) however many lanes there are.
//!
//! Cancellation is lazy: a cancelled key is remembered in a sorted set and the event is
//! skipped when it reaches the front. Because events leave the queue in strictly
//! increasing `(time, seq)` order, a key at or below the last delivered key has already
//! been delivered, which is how `cancel` tells a pending event from a past one.

use std::cmp::{Ordering, Reverse};
use std::collections::binary_heap::PeekMut;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};

/// Sort key of an event: due time in nanoseconds, then scheduling sequence number.
pub(crate) type Key = (u64, u64);

/// One scheduled event.
#[derive(Debug)]
pub(crate) struct Entry<E> {
    pub(crate) time: u64,
    pub(crate) seq: u64,
    pub(crate) ev: E,
}

impl<E> Entry<E> {
    fn key(&self) -> Key {
        (self.time, self.seq)
    }
}

/// A heap slot: the key and where the event's payload waits in the slab. Keeping the
/// payload out of the heap makes every sift move 24 bytes instead of a whole event (the
/// heap's pop was a quarter of a storm's run time with payloads inline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HeapKey {
    time: u64,
    seq: u64,
    slot: u32,
}

impl HeapKey {
    fn key(self) -> Key {
        (self.time, self.seq)
    }
}

impl PartialOrd for HeapKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Reversed on `(time, seq)` so that std's max-heap pops the least key; `slot` never
/// decides (keys are unique).
impl Ord for HeapKey {
    fn cmp(&self, other: &Self) -> Ordering {
        other.key().cmp(&self.key())
    }
}

/// Heap entry for small events, kept inline (reversed `Ord`: std's max-heap pops the
/// least key).
#[derive(Debug)]
struct Inline<E>(Entry<E>);

impl<E> PartialEq for Inline<E> {
    fn eq(&self, other: &Self) -> bool {
        self.0.key() == other.0.key()
    }
}
impl<E> Eq for Inline<E> {}
impl<E> PartialOrd for Inline<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Inline<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.key().cmp(&self.0.key())
    }
}

/// Where the earliest pending event sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Heap,
    Lane(usize),
}

/// Heap + FIFO lanes with one global sequence counter.
#[derive(Debug)]
pub(crate) struct EventQueue<E> {
    /// Keys of large events (payload in `slab`); used when [`Self::SLAB`].
    heap: BinaryHeap<HeapKey>,
    /// Small events, inline; used otherwise.
    inline: BinaryHeap<Inline<E>>,
    /// Payloads of heap events, indexed by `HeapKey::slot`; `free` lists empty slots.
    slab: Vec<Option<E>>,
    free: Vec<u32>,
    lanes: Vec<VecDeque<Entry<E>>>,
    /// The front key of every non-empty lane, with the lane's index (least first).
    heads: BinaryHeap<Reverse<(u64, u64, u32)>>,
    next_seq: u64,
    /// Key of the last event handed out (`None` before the first).
    last_popped: Option<Key>,
    /// Keys cancelled but still physically queued.
    cancelled: BTreeSet<Key>,
    /// Events pushed to the heap because their lane's order would have broken.
    spills: u64,
}

impl<E> EventQueue<E> {
    /// Whether events are large enough to keep out of the heap. Measured both ways:
    /// the simulation's events (a packet and its purpose) sift 9 % faster as 24-byte keys
    /// with a slab; the canonical storm's 8-byte events run 75 % slower that way (the slab's
    /// indirection costs more than moving them). Decided per event type at compile time.
    const SLAB: bool = std::mem::size_of::<E>() > 32;

    pub(crate) fn new() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            inline: BinaryHeap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            lanes: Vec::new(),
            heads: BinaryHeap::new(),
            next_seq: 0,
            last_popped: None,
            cancelled: BTreeSet::new(),
            spills: 0,
        }
    }

    /// Adds a lane and returns its index.
    pub(crate) fn add_lane(&mut self) -> usize {
        self.lanes.push(VecDeque::new());
        self.lanes.len() - 1
    }

    pub(crate) fn lane_count(&self) -> usize {
        self.lanes.len()
    }

    pub(crate) fn spills(&self) -> u64 {
        self.spills
    }

    /// Events still to be delivered (cancelled ones excluded).
    pub(crate) fn len(&self) -> usize {
        let physical =
            self.heap.len() + self.inline.len() + self.lanes.iter().map(VecDeque::len).sum::<usize>();
        physical.saturating_sub(self.cancelled.len())
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Schedules `ev` at `time` on the heap; returns its key.
    #[inline]
    pub(crate) fn push(&mut self, time: u64, ev: E) -> Key {
        let seq = self.take_seq();
        self.heap_push(Entry { time, seq, ev });
        (time, seq)
    }

    #[inline]
    fn heap_push(&mut self, e: Entry<E>) {
        if !Self::SLAB {
            self.inline.push(Inline(e));
            return;
        }
        let slot = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = Some(e.ev);
                s
            }
            None => {
                self.slab.push(Some(e.ev));
                u32::try_from(self.slab.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.heap.push(HeapKey {
            time: e.time,
            seq: e.seq,
            slot,
        });
    }

    #[inline]
    fn heap_pop(&mut self) -> Option<Entry<E>> {
        if !Self::SLAB {
            return self.inline.pop().map(|i| i.0);
        }
        let k = self.heap.pop()?;
        let ev = self.slab.get_mut(k.slot as usize)?.take()?;
        self.free.push(k.slot);
        Some(Entry {
            time: k.time,
            seq: k.seq,
            ev,
        })
    }

    /// Schedules `ev` at `time` on lane `lane`, or on the heap if the lane does not
    /// exist or its last event is due later than `time`.
    #[inline]
    pub(crate) fn push_lane(&mut self, lane: usize, time: u64, ev: E) -> Key {
        let seq = self.take_seq();
        let entry = Entry { time, seq, ev };
        match self.lanes.get_mut(lane) {
            Some(q) if q.back().is_none_or(|b| b.time <= time) => {
                if q.is_empty() {
                    let idx = u32::try_from(lane).unwrap_or(u32::MAX);
                    self.heads.push(Reverse((time, seq, idx)));
                }
                q.push_back(entry);
            }
            _ => {
                self.spills += 1;
                self.heap_push(entry);
            }
        }
        (time, seq)
    }

    /// Marks a pending event as cancelled. Returns false if it was already delivered,
    /// already cancelled, or never scheduled.
    pub(crate) fn cancel(&mut self, key: Key) -> bool {
        if key.1 >= self.next_seq || self.last_popped.is_some_and(|last| key <= last) {
            return false;
        }
        self.cancelled.insert(key)
    }

    /// The source holding the least key, cancelled entries included.
    #[inline]
    fn front(&self) -> Option<(Key, Source)> {
        let heap = if Self::SLAB {
            self.heap.peek().map(|k| k.key())
        } else {
            self.inline.peek().map(|m| m.0.key())
        };
        let lane = self
            .heads
            .peek()
            .map(|Reverse((t, s, i))| ((*t, *s), Source::Lane(*i as usize)));
        match (heap, lane) {
            (Some(h), Some((l, src))) if l < h => Some((l, src)),
            (Some(h), _) => Some((h, Source::Heap)),
            (None, lane) => lane,
        }
    }

    fn pop_from(&mut self, src: Source) -> Option<Entry<E>> {
        match src {
            Source::Heap => self.heap_pop(),
            Source::Lane(i) => {
                let lane = self.lanes.get_mut(i)?;
                let entry = lane.pop_front()?;
                // `front` found this lane at the top of `heads`.
                if let Some(mut top) = self.heads.peek_mut() {
                    match lane.front() {
                        Some(next) => top.0 = (next.time, next.seq, top.0.2),
                        None => {
                            PeekMut::pop(top);
                        }
                    }
                }
                Some(entry)
            }
        }
    }

    /// Removes and returns the next live event.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Entry<E>> {
        self.pop_due(u64::MAX)
    }

    /// Removes and returns the next live event if it is due at or before `deadline`.
    #[inline]
    pub(crate) fn pop_due(&mut self, deadline: u64) -> Option<Entry<E>> {
        loop {
            let (key, src) = self.front()?;
            if key.0 > deadline {
                return None;
            }
            let entry = self.pop_from(src)?;
            self.last_popped = Some(key);
            if self.cancelled.is_empty() || !self.cancelled.remove(&key) {
                return Some(entry);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_times_pop_in_scheduling_order_across_heap_and_lanes() {
        let mut q = EventQueue::new();
        let lane = q.add_lane();
        q.push(5, 'a');
        q.push_lane(lane, 5, 'b');
        q.push(5, 'c');
        q.push_lane(lane, 5, 'd');
        q.push(4, 'z');
        let order: Vec<char> = std::iter::from_fn(|| q.pop().map(|e| e.ev)).collect();
        assert_eq!(order, vec!['z', 'a', 'b', 'c', 'd']);
    }

    #[test]
    fn large_events_go_through_the_slab_in_the_same_order() {
        // 64-byte events take the key-and-slab heap; the order contract is the same.
        const { assert!(EventQueue::<[u64; 8]>::SLAB && !EventQueue::<char>::SLAB) };
        let mut q = EventQueue::new();
        let lane = q.add_lane();
        for (t, id) in [(5u64, 0u64), (5, 1), (4, 2), (9, 3), (5, 4)] {
            q.push(t, [id; 8]);
        }
        q.push_lane(lane, 5, [5; 8]);
        let k = q.push(6, [6; 8]);
        assert!(q.cancel(k));
        let order: Vec<u64> = std::iter::from_fn(|| q.pop().map(|e| e.ev[0])).collect();
        assert_eq!(order, vec![2, 0, 1, 4, 5, 3]);
        // Slots are reused after pops.
        q.push(20, [7; 8]);
        assert_eq!(
            q.slab.len(),
            6,
            "six heap events ever pending at once; the seventh reuses a slot"
        );
        assert_eq!(q.pop().map(|e| e.ev[0]), Some(7));
    }

    #[test]
    fn lane_push_out_of_order_spills_to_heap_and_keeps_order() {
        let mut q = EventQueue::new();
        let lane = q.add_lane();
        q.push_lane(lane, 10, 1);
        q.push_lane(lane, 3, 2);
        assert_eq!(q.spills(), 1);
        assert_eq!(q.pop().map(|e| e.ev), Some(2));
        assert_eq!(q.pop().map(|e| e.ev), Some(1));
    }

    #[test]
    fn cancelled_event_is_skipped_and_past_events_cannot_be_cancelled() {
        let mut q = EventQueue::new();
        let a = q.push(1, 'a');
        let b = q.push(2, 'b');
        let c = q.push(3, 'c');
        assert_eq!(q.len(), 3);
        assert!(q.cancel(b));
        assert!(!q.cancel(b), "second cancel of the same event");
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop().map(|e| e.ev), Some('a'));
        assert!(!q.cancel(a), "already delivered");
        assert_eq!(q.pop().map(|e| e.ev), Some('c'));
        assert!(!q.cancel(c));
        assert!(!q.cancel((9, 99)), "never scheduled");
        assert!(q.pop().is_none());
        assert_eq!(q.len(), 0);
    }
}
