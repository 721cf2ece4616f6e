//! CPU booking: which CPU of a node processes a packet, when it can start, and how the
//! node's CPUs account for the time packets take.
//!
//! Softirq work is serialised per CPU: a packet waits for its CPU (chosen by the flow
//! hash, as RSS/RPS does, or pinned by its sender) to finish what it is doing. Packets
//! that create a conntrack entry are processed *windowed*: the engine delivers the start
//! of their processing as an event, so their CPU time separates allocation from
//! confirm exactly as in the kernel. Packets of existing connections are processed
//! *inline*: their start is computed from the CPU's work horizon and no event is
//! needed.
//!
//! Not modelled: NIC queues and their limits (`netdev_max_backlog`), interrupt
//! coalescing, the scheduler placing user-space work on the same CPUs.

use crate::packet::Tuple;
use crate::scenario::CostModel;
use crate::time::{SimDuration, SimTime};

/// What a windowed packet may do on its CPU now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// Start now.
    Start,
    /// Come back at `at`; `reserved`: a slot was booked for it there.
    Wait { at: SimTime, reserved: bool },
}

/// The CPUs of one node.
#[derive(Clone, Debug)]
pub(super) struct NodeCpus {
    /// When each CPU is next free (its work horizon).
    free: Vec<SimTime>,
    /// When each CPU finishes the new-entry packet it is processing.
    new_busy: Vec<SimTime>,
    /// Running estimate of a new-entry packet's processing time (slot reservations).
    new_cost_estimate: SimDuration,
}

/// The time a packet's processing costs on its CPU, and the share of it spent in the
/// data plane's lookups (rules, hash lookups, scheduler steps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PacketCost {
    pub(super) total: SimDuration,
    pub(super) lookups: SimDuration,
}

impl PacketCost {
    /// The cost of a packet that evaluated `rules` rules, made `hash_lookups` hash
    /// lookups and `scheduler_ops` scheduler steps, and either created a conntrack entry
    /// (`new_entry`) or looked one up.
    pub(super) fn of(
        c: &CostModel,
        rules: u32,
        hash_lookups: u32,
        scheduler_ops: u32,
        new_entry: bool,
    ) -> PacketCost {
        let lookups = c.per_rule.saturating_mul(u64::from(rules))
            + c.per_hash_lookup.saturating_mul(u64::from(hash_lookups))
            + c.per_scheduler_op.saturating_mul(u64::from(scheduler_ops));
        let ct = if new_entry {
            c.per_conntrack_insert
        } else {
            c.per_conntrack_lookup
        };
        PacketCost {
            total: c.per_packet + lookups + ct,
            lookups,
        }
    }
}

/// The RSS/RPS flow hash of a tuple: the same for both directions of a flow.
fn flow_hash(t: &Tuple) -> u64 {
    let key = if (t.src, t.sport) < (t.dst, t.dport) {
        *t
    } else {
        t.reversed()
    };
    let mut h = u64::from(u32::from(key.src)) << 32 | u64::from(u32::from(key.dst));
    h ^= (u64::from(key.sport) << 16 | u64::from(key.dport)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

impl NodeCpus {
    /// `cpus` idle CPUs (at least one); `first_estimate` seeds the running estimate of
    /// a new-entry packet's cost.
    pub(super) fn new(cpus: u16, first_estimate: SimDuration) -> NodeCpus {
        let n = usize::from(cpus.max(1));
        NodeCpus {
            free: vec![SimTime::ZERO; n],
            new_busy: vec![SimTime::ZERO; n],
            new_cost_estimate: first_estimate,
        }
    }

    /// The CPU that processes a packet of `tuple`: `pinned` (modulo the CPU count), or
    /// the flow hash's.
    pub(super) fn pick(&self, tuple: &Tuple, pinned: Option<u16>) -> u16 {
        let cpus = u64::try_from(self.free.len()).unwrap_or(1);
        let c = match pinned {
            Some(c) => u64::from(c) % cpus,
            None => flow_hash(tuple) % cpus,
        };
        u16::try_from(c).unwrap_or(0)
    }

    /// Whether a windowed packet can start on `cpu` at `now`. A packet coming back to a
    /// slot reserved for it (`reserved`) waits only for a new-entry packet that ran over
    /// its estimate; any other waits for the CPU and books the next slot with the
    /// running estimate.
    pub(super) fn admit(&mut self, cpu: u16, now: SimTime, reserved: bool) -> Admission {
        let c = usize::from(cpu);
        if reserved {
            if self.new_busy[c] > now {
                return Admission::Wait {
                    at: self.new_busy[c],
                    reserved: true,
                };
            }
        } else if self.free[c] > now || self.new_busy[c] > now {
            let slot = self.free[c].max(self.new_busy[c]).max(now);
            self.free[c] = slot + self.new_cost_estimate;
            return Admission::Wait {
                at: slot,
                reserved: true,
            };
        }
        Admission::Start
    }

    /// When an inline packet arriving at `t` starts on `cpu`.
    pub(super) fn inline_start(&self, cpu: u16, t: SimTime) -> SimTime {
        t.max(self.free[usize::from(cpu)])
    }

    /// Books `cost` on `cpu` for a packet that started at `start` (booked at `now`).
    ///
    /// The work horizon takes inline work at booking time, even for packets whose start
    /// lies ahead (inline walks compute later hops in advance), so future bookings never
    /// leave the CPU looking busy while it idles.
    pub(super) fn book(
        &mut self,
        cpu: u16,
        start: SimTime,
        now: SimTime,
        cost: SimDuration,
        booking: Booking,
    ) {
        let c = usize::from(cpu);
        match booking {
            Booking::Windowed { new_entry } => {
                self.new_busy[c] = start + cost;
                if new_entry {
                    let est = self.new_cost_estimate.as_nanos();
                    self.new_cost_estimate = SimDuration::from_nanos(est - est / 8 + cost.as_nanos() / 8);
                }
                self.free[c] = self.free[c].max(start + cost);
            }
            Booking::Inline => {
                self.free[c] = self.free[c].max(now) + cost;
            }
        }
    }
}

/// How a packet's CPU time was booked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Booking {
    /// Started by an event at its start time; `new_entry`: it allocated a conntrack
    /// entry (its cost updates the slot estimate).
    Windowed { new_entry: bool },
    /// Computed inside another event.
    Inline,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Proto;
    use std::net::Ipv4Addr;

    fn tuple(sport: u16) -> Tuple {
        Tuple::new(
            Proto::Tcp,
            Ipv4Addr::new(10, 244, 1, 2),
            sport,
            Ipv4Addr::new(10, 96, 0, 1),
            80,
        )
    }

    #[test]
    fn both_directions_of_a_flow_land_on_one_cpu() {
        let cpus = NodeCpus::new(4, SimDuration::from_micros(2));
        for p in 40_000..40_050 {
            let t = tuple(p);
            assert_eq!(cpus.pick(&t, None), cpus.pick(&t.reversed(), None));
        }
        assert_eq!(
            cpus.pick(&tuple(1), Some(6)),
            2,
            "a pinned CPU wraps at the CPU count"
        );
    }

    #[test]
    fn a_busy_cpu_books_the_next_slot_and_the_packet_waits_for_it() {
        let mut cpus = NodeCpus::new(1, SimDuration::from_micros(2));
        let t0 = SimTime::ZERO;
        assert_eq!(cpus.admit(0, t0, false), Admission::Start);
        cpus.book(
            0,
            t0,
            t0,
            SimDuration::from_micros(5),
            Booking::Windowed { new_entry: true },
        );
        let second = cpus.admit(0, t0, false);
        assert_eq!(
            second,
            Admission::Wait {
                at: t0 + SimDuration::from_micros(5),
                reserved: true
            }
        );
        // At its slot, it starts (the first packet is done).
        assert_eq!(
            cpus.admit(0, t0 + SimDuration::from_micros(5), true),
            Admission::Start
        );
    }
}
