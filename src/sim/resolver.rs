//! The pods' resolvers: glibc lookups (search path, parallel A/AAAA from one socket,
//! tries and timeouts) and the per-pod answer cache.

use super::client::ReqState;
use super::event::{Answer, Attempt, Event, Purpose};
use super::hops::Hop;
use super::model::{NodeSim, schedule};
use super::path::InFlight;
use super::slab::{LookupId, ReqId};
use super::world::PodRole;
use crate::dns::{Action, Lookup, LookupOutcome, LookupResult, Query, QueryId};
use crate::engine::Context;
use crate::packet::{Packet, Proto, TcpFlags, Tuple};
use crate::scenario::DnsMode;
use crate::time::{SimDuration, SimTime};
use std::net::Ipv4Addr;
use std::sync::Arc;

pub(super) struct LookupSlot {
    pub(super) pod: u32,
    pub(super) lookup: Lookup,
    /// Source ports of the lookup's sockets (slot → port).
    pub(super) ports: Vec<(u32, u16)>,
    /// Queries sent: id and name asked.
    pub(super) queries: Vec<(QueryId, Arc<str>)>,
    pub(super) timer_at: Option<SimTime>,
    pub(super) had_timeout: bool,
    /// The request a per-request lookup resolves for, and the attempt it was in
    /// (`None`: the lookup fills the pod's cache).
    pub(super) owner: Option<(ReqId, Attempt)>,
    /// First A record per answered name.
    pub(super) firsts: Vec<(Arc<str>, Ipv4Addr)>,
}

impl std::fmt::Debug for LookupSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupSlot")
            .field("pod", &self.pod)
            .finish_non_exhaustive()
    }
}

impl NodeSim {
    /// Starts a lookup for `pod`: for one request (`owner`, per-request resolution) or
    /// for every request waiting on the pod's cache.
    pub(super) fn start_lookup(&mut self, cx: &mut Context<'_, Event>, pod: u32, owner: Option<ReqId>) {
        let now = cx.now();
        let wl = match self.world.pods[pod as usize].role {
            PodRole::Client { wl } => usize::from(wl),
            PodRole::Server { .. } => return,
        };
        let name = self.sc.workloads[wl].dns.name.clone();
        let Some(conf) = self.world.pods[pod as usize].resolv.clone() else {
            return;
        };
        let Ok(lookup) = Lookup::new(&conf, &name, now) else {
            // An invalid name cannot be resolved: every waiter fails.
            let waiters = match owner {
                Some(r) => vec![r],
                None => self.clients[pod as usize].take_dns_waiters(&self.reqs),
            };
            for r in waiters {
                self.attempt_failed(cx, r, "DNS: invalid name");
            }
            return;
        };
        let owner = owner.and_then(|r| self.reqs.get(r).map(|q| (r, q.stage)));
        let id = self.lookups.insert(LookupSlot {
            pod,
            lookup,
            ports: Vec::new(),
            queries: Vec::new(),
            timer_at: None,
            had_timeout: false,
            owner,
            firsts: Vec::new(),
        });
        if self.sc.workloads[wl].dns.mode == DnsMode::Cached {
            self.clients[pod as usize].lookup = Some(id);
        }
        self.drive_lookup(cx, id);
    }

    /// Runs the resolver until it waits: sends the queries it asks for, arms its try
    /// timer, or finishes the lookup.
    pub(super) fn drive_lookup(&mut self, cx: &mut Context<'_, Event>, id: LookupId) {
        let now = cx.now();
        let mut sends = 0u32;
        loop {
            let Some(slot) = self.lookups.get_mut(id) else {
                return;
            };
            match slot.lookup.next_action(now) {
                Action::Send(q) => {
                    self.send_query(cx, id, &q, sends);
                    sends += 1;
                }
                Action::Wait { until } => {
                    if slot.timer_at != Some(until) {
                        slot.timer_at = Some(until);
                        schedule(cx, until.max(now), Event::DnsTimer { lookup: id });
                    }
                    return;
                }
                Action::Done(outcome) => {
                    self.finish_lookup(cx, id, &outcome);
                    return;
                }
            }
        }
    }

    /// Sends query `q` of lookup `id`, the `sends`-th of this resolver step (the second
    /// of a parallel A/AAAA pair races the first or leaves `pairGap` later, as
    /// [`NodeSim::pair_second`] decides from the workload's `threadPlacement`).
    fn send_query(&mut self, cx: &mut Context<'_, Event>, id: LookupId, q: &Query, sends: u32) {
        let now = cx.now();
        let Some(slot) = self.lookups.get_mut(id) else {
            return;
        };
        let pod = slot.pod;
        let port = match slot.ports.iter().find(|(s, _)| *s == q.socket.0) {
            Some((_, p)) => *p,
            None => {
                let sys = &self.sc.nodes[usize::from(self.world.pods[pod as usize].node)]
                    .sysctls
                    .values;
                let (lo, hi) = sys.ip_local_port_range;
                let span = u64::from(hi.saturating_sub(lo)) + 1;
                let p = lo.saturating_add(u16::try_from(self.rng_client.below(span)).unwrap_or(0));
                if let Some(slot) = self.lookups.get_mut(id) {
                    slot.ports.push((q.socket.0, p));
                }
                p
            }
        };
        if let Some(slot) = self.lookups.get_mut(id) {
            slot.queries.push((q.id, q.name.clone()));
        }
        let p = &self.world.pods[pod as usize];
        let tuple = Tuple::new(Proto::Udp, p.ip, port, q.server, 53);
        let netns = p.netns;
        let wl = match p.role {
            PodRole::Client { wl } => usize::from(wl),
            PodRole::Server { .. } => 0,
        };
        let d = &self.sc.workloads[wl].dns;
        let (placement, gap) = (d.thread_placement, d.pair_gap.saturating_mul(u64::from(sends)));
        let node = usize::from(p.node);
        // The second send of a parallel pair: racing the first or not, as the race model
        // decides (`sim::race`).
        let (at, cpu) = if sends == 0 {
            (now, None)
        } else {
            self.pair_second(node, &tuple, placement, gap, now)
        };
        self.tally.dns_queries += 1;
        let purpose = Purpose::DnsQuery {
            lookup: id,
            query: q.id,
            qtype: q.qtype,
        };
        let pkt = Packet::new(tuple, TcpFlags::NONE);
        if at > now {
            // Deferred second send: walk it when its time comes.
            let flight = self.inflight.insert(InFlight::Waiting {
                pkt,
                hop: Hop::origin(netns),
                purpose,
                cpu,
            });
            schedule(
                cx,
                at,
                Event::HopStart {
                    flight,
                    waited: false,
                },
            );
        } else {
            self.send(cx, netns, pkt, at, purpose, true, cpu);
        }
    }

    /// A lookup ended: fill the pod's cache or hand the address to its request, and
    /// let the waiting requests go on (or fail).
    fn finish_lookup(&mut self, cx: &mut Context<'_, Event>, id: LookupId, outcome: &LookupOutcome) {
        let now = cx.now();
        let Some(slot) = self.lookups.remove(id) else {
            return;
        };
        let pod = slot.pod as usize;
        if slot.had_timeout || outcome.elapsed >= SimDuration::from_secs(5) {
            self.tally.lookups_with_timeout += 1;
            self.note_dns_timeout(now);
        }
        let ok = matches!(outcome.result, LookupResult::Resolved { .. });
        let first = match &outcome.result {
            LookupResult::Resolved { name } => {
                slot.firsts.iter().rev().find(|(n, _)| n == name).map(|(_, a)| *a)
            }
            _ => None,
        };
        if !ok {
            self.tally.lookups_failed += 1;
        }
        let wl = match self.world.pods[pod].role {
            PodRole::Client { wl } => usize::from(wl),
            PodRole::Server { .. } => return,
        };
        let cached = self.sc.workloads[wl].dns.mode == DnsMode::Cached;
        if cached {
            self.clients[pod].lookup = None;
            if ok {
                self.clients[pod].dns_valid_until = Some(now + self.sc.workloads[wl].dns.ttl);
                self.clients[pod].dns_addr = first;
            }
        }
        // A per-request lookup serves its own request, if that request still waits for
        // it (it may have timed out and moved on).
        let waiters: Vec<ReqId> = match slot.owner {
            None => self.clients[pod].take_dns_waiters(&self.reqs),
            Some((r, stage))
                if self
                    .reqs
                    .get(r)
                    .is_some_and(|q| q.state == ReqState::WaitDns && q.stage == stage) =>
            {
                vec![r]
            }
            Some(_) => Vec::new(),
        };
        for r in waiters {
            if ok {
                if slot.owner.is_some()
                    && let Some(q) = self.reqs.get_mut(r)
                {
                    q.addr = first;
                }
                if self.sc.workloads[wl].dns_only {
                    self.lookup_only_done(cx, r);
                } else {
                    self.get_connection(cx, r);
                }
            } else {
                let cause = match outcome.result {
                    LookupResult::Timeout => "DNS: resolver timed out",
                    LookupResult::NxDomain => "DNS: NXDOMAIN",
                    _ => "DNS: lookup failed",
                };
                self.attempt_failed(cx, r, cause);
            }
        }
    }

    pub(super) fn on_dns_timer(&mut self, cx: &mut Context<'_, Event>, lookup: LookupId) {
        let Some(slot) = self.lookups.get_mut(lookup) else {
            return;
        };
        if slot.timer_at.is_some_and(|t| t <= cx.now()) {
            slot.timer_at = None;
            slot.had_timeout = true;
        }
        self.drive_lookup(cx, lookup);
    }

    /// An answer reached the pod's resolver.
    pub(super) fn dns_answer_arrived(
        &mut self,
        cx: &mut Context<'_, Event>,
        lookup: LookupId,
        query: QueryId,
        answer: Answer,
    ) {
        let now = cx.now();
        let Some(slot) = self.lookups.get_mut(lookup) else {
            return;
        };
        let Some(name) = slot
            .queries
            .iter()
            .find(|(id, _)| *id == query)
            .map(|(_, n)| n.clone())
        else {
            return;
        };
        if let Some(first) = answer.first {
            slot.firsts.push((name, first));
        }
        let _ = slot.lookup.on_answer(
            query,
            crate::dns::Answer {
                rcode: answer.rcode,
                records: answer.records,
            },
            now,
        );
        self.drive_lookup(cx, lookup);
    }
}
