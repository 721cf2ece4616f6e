//! A client pod's waiting queues: the requests waiting for its cached DNS lookup and
//! for a pooled connection, served in order with the entries of attempts that gave up
//! left behind, stale, and swept out as a queue grows.

use super::{ClientState, ReqState, Request};
use crate::sim::event::Attempt;
use crate::sim::slab::{ReqId, Slab};

/// A request waiting in one of a client pod's queues, with the attempt it waits for.
///
/// Every change of a request's attempt (a timeout, a failure, a retry) moves its `stage`
/// on, so an entry left behind by an attempt that gave up no longer matches, and is
/// skipped when the queue is served. The entries that still match are exactly the ones
/// an eager removal would have kept, in the same order (docs/model.md, §Work the
/// simulator folds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::sim) struct Waiter {
    pub(in crate::sim) req: ReqId,
    pub(super) stage: Attempt,
}

/// Whether `w` is still the attempt its request is in, and that attempt still waits
/// in `state`.
fn still_waiting(reqs: &Slab<Request, ReqId>, w: Waiter, state: ReqState) -> bool {
    reqs.get(w.req)
        .is_some_and(|r| r.state == state && r.stage == w.stage)
}

/// When to sweep stale entries out of a waiting queue, so that a queue whose requests
/// keep timing out (a pool that never frees a slot, a lookup that never answers) holds
/// at most twice the most requests that ever waited in it at once (or
/// [`Compaction::MIN`]). A sweep keeps the live entries in their order, and after a
/// sweep leaving `n` entries the next comes at `2n` (at least `MIN`), so sweeping costs
/// O(1) per entry pushed.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Compaction {
    at: usize,
}

impl Compaction {
    const MIN: usize = 64;

    /// Whether a queue of `len` entries is due a sweep.
    fn due(self, len: usize) -> bool {
        len >= self.at.max(Self::MIN)
    }

    /// The sweep left `len` entries.
    fn swept(&mut self, len: usize) {
        self.at = (2 * len).max(Self::MIN);
    }
}

impl ClientState {
    /// Queues `w` for the pod's cached lookup.
    pub(super) fn push_dns_waiter(&mut self, w: Waiter, reqs: &Slab<Request, ReqId>) {
        if self.dns_sweep.due(self.dns_waiters.len()) {
            self.dns_waiters
                .retain(|x| still_waiting(reqs, *x, ReqState::WaitDns));
            self.dns_sweep.swept(self.dns_waiters.len());
        }
        self.dns_waiters.push(w);
    }

    /// Queues `w` for a pooled connection.
    pub(super) fn push_conn_waiter(&mut self, w: Waiter, reqs: &Slab<Request, ReqId>) {
        if self.conn_sweep.due(self.conn_waiters.len()) {
            self.conn_waiters
                .retain(|x| still_waiting(reqs, *x, ReqState::WaitConn));
            self.conn_sweep.swept(self.conn_waiters.len());
        }
        self.conn_waiters.push_back(w);
    }

    /// Takes the requests that still wait for the pod's cached lookup, in order.
    pub(in crate::sim) fn take_dns_waiters(&mut self, reqs: &Slab<Request, ReqId>) -> Vec<ReqId> {
        let waiters = std::mem::take(&mut self.dns_waiters)
            .into_iter()
            .filter(|w| still_waiting(reqs, *w, ReqState::WaitDns))
            .map(|w| w.req)
            .collect();
        self.dns_sweep = Compaction::default();
        waiters
    }

    /// Takes the oldest request of `conn_waiters` that still waits for a pooled
    /// connection, dropping stale entries on the way.
    pub(super) fn next_conn_waiter(&mut self, reqs: &Slab<Request, ReqId>) -> Option<ReqId> {
        while let Some(w) = self.conn_waiters.pop_front() {
            if still_waiting(reqs, w, ReqState::WaitConn) {
                return Some(w.req);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SimTime;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    /// One step of a random life of a pod's waiting requests.
    #[derive(Clone, Copy, Debug)]
    enum Step {
        /// Request `k` (of a few) starts an attempt that waits in a queue.
        Wait(usize),
        /// Request `k`'s attempt times out (its stage moves on; it backs off).
        Timeout(usize),
        /// Request `k` is done and freed (its slot may be reused).
        Finish(usize),
        /// A pooled connection frees: serve the oldest waiter.
        Serve,
        /// The cached lookup answers: serve every DNS waiter.
        Answer,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..40usize).prop_map(Step::Wait),
            3 => (0..40usize).prop_map(Step::Timeout),
            1 => (0..40usize).prop_map(Step::Finish),
            2 => Just(Step::Serve),
            1 => Just(Step::Answer),
        ]
    }

    fn request() -> Request {
        Request {
            wl: 0,
            pod: 0,
            started: SimTime::ZERO,
            attempt: 0,
            stage: Attempt(0),
            state: ReqState::Backoff,
            flow: None,
            addr: None,
            delayed_by: None,
        }
    }

    proptest! {
        /// The queues that leave timed-out attempts behind, stale, serve the same
        /// requests in the same order as queues from which each timeout removes its
        /// request at once (what the simulator did before), across slot reuse and
        /// sweeps.
        #[test]
        fn lazy_waiting_queues_serve_what_eager_removal_serves(
            steps in proptest::collection::vec(step(), 0..1500),
            dns in any::<bool>(),
        ) {
            let (state, other) = if dns {
                (ReqState::WaitDns, ReqState::WaitConn)
            } else {
                (ReqState::WaitConn, ReqState::WaitDns)
            };
            let mut reqs: Slab<Request, ReqId> = Slab::new();
            let mut ids: Vec<Option<ReqId>> = vec![None; 40];
            let mut most_live = 0;
            let mut lazy = ClientState::default();
            let mut eager: VecDeque<ReqId> = VecDeque::new();
            for s in steps {
                match s {
                    Step::Wait(k) => {
                        let id = *ids[k].get_or_insert_with(|| reqs.insert(request()));
                        let Some(r) = reqs.get_mut(id) else { continue };
                        if r.state == state {
                            continue;
                        }
                        r.stage = Attempt(r.stage.0.wrapping_add(1));
                        r.state = state;
                        let w = Waiter { req: id, stage: r.stage };
                        if dns {
                            lazy.push_dns_waiter(w, &reqs);
                        } else {
                            lazy.push_conn_waiter(w, &reqs);
                        }
                        eager.push_back(id);
                    }
                    Step::Timeout(k) => {
                        let Some(r) = ids[k].and_then(|id| reqs.get_mut(id)) else { continue };
                        if r.state == state {
                            r.stage = Attempt(r.stage.0.wrapping_add(1));
                            // Any state but the queue's: a backoff, or the other wait.
                            r.state = if k % 2 == 0 { ReqState::Backoff } else { other };
                            eager.retain(|x| Some(*x) != ids[k]);
                        }
                    }
                    Step::Finish(k) => {
                        if let Some(id) = ids[k].take() {
                            reqs.remove(id);
                            eager.retain(|x| *x != id);
                        }
                    }
                    Step::Serve if !dns => {
                        let got = lazy.next_conn_waiter(&reqs);
                        prop_assert_eq!(got, eager.pop_front());
                        if let Some(r) = got.and_then(|id| reqs.get_mut(id)) {
                            r.state = ReqState::Connecting;
                        }
                    }
                    Step::Answer if dns => {
                        let got = lazy.take_dns_waiters(&reqs);
                        let want: Vec<ReqId> = eager.drain(..).collect();
                        prop_assert_eq!(&got, &want);
                        for id in got {
                            if let Some(r) = reqs.get_mut(id) {
                                r.state = ReqState::Connecting;
                            }
                        }
                    }
                    Step::Serve | Step::Answer => {}
                }
                most_live = most_live.max(eager.len());
                let held = if dns { lazy.dns_waiters.len() } else { lazy.conn_waiters.len() };
                prop_assert!(
                    held <= (2 * most_live).max(Compaction::MIN),
                    "{held} held, at most {most_live} live at once"
                );
            }
        }
    }
}
