//! Typed, generational handles to the simulation's short-lived objects (connections,
//! requests, lookups, NodeLocal DNSCache upstream connections and forwards, packets in
//! flight) and the slab that stores them.
//!
//! A handle is an index plus the generation of the slot when the object was stored: once
//! the object is removed, the slot's generation moves on and every old handle to it
//! stops resolving. An event that outlives its object (a timer of a closed connection, an
//! answer to an abandoned lookup) therefore finds nothing and is ignored, however the
//! slot has been reused since.

use std::fmt;
use std::marker::PhantomData;

/// A handle type of a [`Slab`].
pub(super) trait SlabId: Copy {
    /// The handle of slot `index` at `generation`.
    fn from_parts(index: u32, generation: u32) -> Self;
    /// The slot.
    fn index(self) -> u32;
    /// The slot's generation when the handle was issued.
    fn generation(self) -> u32;
}

macro_rules! slab_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(super) struct $name {
            index: u32,
            generation: u32,
        }

        impl SlabId for $name {
            fn from_parts(index: u32, generation: u32) -> Self {
                $name { index, generation }
            }
            fn index(self) -> u32 {
                self.index
            }
            fn generation(self) -> u32 {
                self.generation
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "#{}.{}"), self.index, self.generation)
            }
        }
    };
}

slab_id!(
    /// A client pod's TCP connection (one `connect()`).
    FlowId,
    "flow"
);
slab_id!(
    /// A request of a workload, across its attempts.
    ReqId,
    "req"
);
slab_id!(
    /// A resolver lookup (one `getaddrinfo()`).
    LookupId,
    "lookup"
);
slab_id!(
    /// A NodeLocal DNSCache upstream connection to kube-dns.
    UpConnId,
    "upconn"
);
slab_id!(
    /// A query NodeLocal DNSCache forwards upstream.
    FwdId,
    "fwd"
);
slab_id!(
    /// A packet waiting for a CPU or for its conntrack confirm.
    FlightId,
    "flight"
);

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Objects of one kind behind handles of type `I`, with a free list (last freed, first
/// reused).
#[derive(Debug)]
pub(super) struct Slab<T, I> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    live: usize,
    id: PhantomData<I>,
}

impl<T, I: SlabId> Slab<T, I> {
    pub(super) fn new() -> Slab<T, I> {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            id: PhantomData,
        }
    }

    /// Stores `v`; returns its handle.
    pub(super) fn insert(&mut self, v: T) -> I {
        self.live += 1;
        if let Some(i) = self.free.pop() {
            let slot = &mut self.slots[i as usize];
            slot.value = Some(v);
            I::from_parts(i, slot.generation)
        } else {
            let i =
                u32::try_from(self.slots.len()).expect("invariant: fewer than 2^32 live objects of one kind");
            self.slots.push(Slot {
                generation: 0,
                value: Some(v),
            });
            I::from_parts(i, 0)
        }
    }

    fn slot(&self, id: I) -> Option<&Slot<T>> {
        self.slots
            .get(id.index() as usize)
            .filter(|s| s.generation == id.generation())
    }

    /// The object behind `id`, if it is still stored.
    pub(super) fn get(&self, id: I) -> Option<&T> {
        self.slot(id).and_then(|s| s.value.as_ref())
    }

    /// The object behind `id`, mutably, if it is still stored.
    pub(super) fn get_mut(&mut self, id: I) -> Option<&mut T> {
        self.slots
            .get_mut(id.index() as usize)
            .filter(|s| s.generation == id.generation())
            .and_then(|s| s.value.as_mut())
    }

    /// Removes the object behind `id`; every handle to it goes stale.
    pub(super) fn remove(&mut self, id: I) -> Option<T> {
        let slot = self
            .slots
            .get_mut(id.index() as usize)
            .filter(|s| s.generation == id.generation())?;
        let v = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index());
        self.live -= 1;
        Some(v)
    }

    /// Objects stored.
    pub(super) fn live(&self) -> usize {
        self.live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_objects_handle_goes_stale_when_its_slot_is_reused() {
        let mut s: Slab<&str, FlowId> = Slab::new();
        let a = s.insert("a");
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_eq!(a.index(), b.index(), "the slot is reused");
        assert_eq!(s.get(a), None, "the old handle no longer resolves");
        assert_eq!(s.remove(a), None);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.live(), 1);
    }
}
