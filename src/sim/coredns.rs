//! CoreDNS pods: queries served one after another at each pod's capacity, answers
//! from the cluster zone with `loadbalance` shuffling.

use super::event::{Event, Purpose};
use super::model::NodeSim;
use super::server::service_time;
use super::world::PodRole;
use crate::dns::{QType, Rcode};
use crate::engine::Context;
use crate::packet::{Packet, Proto, TcpFlags, Tuple};
use crate::time::SimDuration;
use std::net::Ipv4Addr;

impl NodeSim {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn coredns_receive(
        &mut self,
        cx: &mut Context<'_, Event>,
        pkt: Packet,
        lookup: u32,
        query: u32,
        epoch: u32,
        qtype: QType,
        fwd: u32,
    ) {
        let now = cx.now();
        let Some(dp) = self.pod_at(pkt.tuple.dst) else {
            return;
        };
        self.tally.coredns_queries += 1;
        if fwd != u32::MAX {
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
        let _ = cx.schedule_at(
            done,
            Event::DnsAnswer {
                dns_pod: dp,
                lookup,
                query,
                epoch,
                qtype,
                tuple: pkt.tuple.reversed(),
                fwd,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_dns_answer(
        &mut self,
        cx: &mut Context<'_, Event>,
        dns_pod: u32,
        lookup: u32,
        query: u32,
        epoch: u32,
        qtype: QType,
        tuple: Tuple,
        fwd: u32,
    ) {
        let now = cx.now();
        // The name asked: the forward's, or the lookup's candidate.
        let name = if fwd == u32::MAX {
            match self.lookups.get(lookup) {
                Some(slot) if slot.epoch == epoch => slot
                    .queries
                    .iter()
                    .find(|(id, _)| id.get() == query)
                    .map(|(_, n)| n.clone()),
                _ => None,
            }
        } else {
            self.fwds.get(fwd).map(|f| f.name.clone())
        };
        let (rcode, records, first) = match name {
            Some(n) => {
                let a = self.world.zone.answer(&n, qtype);
                // CoreDNS `loadbalance` (default Corefile) shuffles the A records of
                // every answer; clients take the first one.
                let first = match (qtype, a.addrs.len()) {
                    (QType::A, k) if k > 0 => {
                        let i = usize::try_from(self.rng_server.below(k as u64)).unwrap_or(0);
                        a.addrs[i]
                    }
                    _ => Ipv4Addr::UNSPECIFIED,
                };
                let ans = a.to_answer();
                (ans.rcode, ans.records, first)
            }
            None => (Rcode::ServFail, 0, Ipv4Addr::UNSPECIFIED),
        };
        let netns = self.world.pods[dns_pod as usize].netns;
        let (pkt, purpose) = if fwd == u32::MAX {
            (
                Packet::new(tuple, TcpFlags::NONE),
                Purpose::DnsReply {
                    lookup,
                    query,
                    epoch,
                    rcode,
                    records,
                    first,
                },
            )
        } else {
            let Some(f) = self.fwds.get(fwd) else { return };
            let conn = f.conn;
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
                    epoch: c.epoch,
                    fwd,
                    rcode,
                    records,
                    first,
                },
            )
        };
        self.send(cx, netns, pkt, now, purpose, false, None);
    }
}
