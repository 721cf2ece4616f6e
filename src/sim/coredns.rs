//! CoreDNS pods: queries served one after another at each pod's capacity, answers
//! from the cluster zone with `loadbalance` shuffling.

use super::event::{Answer, Event, Purpose, QueryOf};
use super::model::{NodeSim, schedule};
use super::server::service_time;
use super::world::PodRole;
use crate::dns::{QType, Rcode};
use crate::engine::Context;
use crate::packet::{Packet, Proto, TcpFlags, Tuple};
use crate::time::SimDuration;

impl NodeSim {
    /// A query reached a CoreDNS pod: it is served after the queries before it, at the
    /// pod's capacity.
    pub(super) fn coredns_receive(
        &mut self,
        cx: &mut Context<'_, Event>,
        pkt: Packet,
        query: QueryOf,
        qtype: QType,
    ) {
        let now = cx.now();
        let Some(dp) = self.pod_at(pkt.tuple.dst) else {
            return;
        };
        self.tally.coredns_queries += 1;
        if matches!(query, QueryOf::Forward(_)) {
            self.tally.coredns_tcp_queries += u64::from(pkt.tuple.proto == Proto::Tcp);
        }
        let svc = match self.world.pods[dp as usize].role {
            PodRole::Server { svc } => usize::from(svc),
            PodRole::Client { .. } => return,
        };
        let server = &self.sc.services[svc].server;
        // A CoreDNS pod serves queries one after another at its capacity.
        let per_query = server.capacity.map_or(SimDuration::ZERO, |c| {
            let milli = c.as_milli_per_sec().max(1);
            SimDuration::from_nanos(
                u64::try_from(1_000_000_000_000u128 / u128::from(milli)).unwrap_or(u64::MAX),
            )
        });
        let base = service_time(server.service_time, &mut self.rng_server);
        let st = &mut self.servers[dp as usize];
        st.dns_queries += 1;
        let start = now.max(st.dns_free);
        st.dns_free = start + per_query;
        let done = start + per_query.max(base);
        schedule(
            cx,
            done,
            Event::DnsAnswer {
                dns_pod: dp,
                query,
                qtype,
                tuple: pkt.tuple.reversed(),
            },
        );
    }

    /// A CoreDNS pod answers a query from the cluster zone.
    pub(super) fn on_dns_answer(
        &mut self,
        cx: &mut Context<'_, Event>,
        dns_pod: u32,
        query: QueryOf,
        qtype: QType,
        tuple: Tuple,
    ) {
        let now = cx.now();
        // The name asked: the lookup's candidate, or the forward's.
        let name = match query {
            QueryOf::Lookup { lookup, query } => self
                .lookups
                .get(lookup)
                .and_then(|slot| slot.queries.iter().find(|(id, _)| *id == query))
                .map(|(_, n)| n.clone()),
            QueryOf::Forward(fwd) => self.fwds.get(fwd).map(|f| f.name.clone()),
        };
        let answer = match name {
            Some(n) => {
                let a = self.world.zone.answer(&n, qtype);
                // CoreDNS `loadbalance` (default Corefile) shuffles the A records of
                // every answer; clients take the first one.
                let first = match (qtype, a.addrs.len()) {
                    (QType::A, k) if k > 0 => {
                        let i = usize::try_from(self.rng_server.below(k as u64)).unwrap_or(0);
                        Some(a.addrs[i])
                    }
                    _ => None,
                };
                let ans = a.to_answer();
                Answer {
                    rcode: ans.rcode,
                    records: ans.records,
                    first,
                }
            }
            None => Answer {
                rcode: Rcode::ServFail,
                records: 0,
                first: None,
            },
        };
        let netns = self.world.pods[dns_pod as usize].netns;
        let (pkt, purpose) = match query {
            QueryOf::Lookup { lookup, query } => (
                Packet::new(tuple, TcpFlags::NONE),
                Purpose::DnsReply {
                    lookup,
                    query,
                    answer,
                },
            ),
            QueryOf::Forward(fwd) => {
                let Some(conn) = self.fwds.get(fwd).and_then(|f| f.conn) else {
                    return;
                };
                let Some(c) = self.upconns.get(conn) else { return };
                let flags = if tuple.proto == Proto::Tcp {
                    TcpFlags::ACK.union(TcpFlags::PSH)
                } else {
                    TcpFlags::NONE
                };
                (
                    Packet::new(tuple, flags),
                    Purpose::UpReply {
                        conn,
                        turn: c.turn,
                        fwd,
                        answer,
                    },
                )
            }
        };
        self.send(cx, netns, pkt, now, purpose, false, None);
    }
}
