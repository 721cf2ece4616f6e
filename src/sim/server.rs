//! Servers: backend pods accepting connections and serving requests with their
//! workers.

use super::event::{Event, Purpose};
use super::model::{NodeSim, schedule};
use super::observe::Loss;
use super::slab::FlowId;
use super::world::PodRole;
use crate::engine::Context;
use crate::packet::{Packet, Proto, TcpFlags, Tuple};
use crate::rng::SimRng;
use crate::scenario::{ServerBehavior, ServiceTime};
use crate::socket::{AckOutcome, SynOutcome};
use crate::time::{SimDuration, SimTime};
use std::collections::VecDeque;
use std::net::SocketAddrV4;

/// Per server pod dynamic state.
#[derive(Debug, Default)]
pub(super) struct ServerState {
    pub(super) busy: u32,
    pub(super) queue: VecDeque<FlowId>,
    /// CoreDNS: when the pod is next free.
    pub(super) dns_free: SimTime,
    /// CoreDNS: queries received.
    pub(super) dns_queries: u64,
}

pub(super) fn service_time(st: ServiceTime, rng: &mut SimRng) -> SimDuration {
    match st {
        ServiceTime::Constant(d) => d,
        ServiceTime::Exponential { mean } => SimDuration::from_nanos(rng.exp_nanos(mean.as_nanos().max(1))),
        ServiceTime::Lognormal { median, sigma } => {
            SimDuration::from_nanos(rng.lognormal_nanos(median.as_nanos().max(1), sigma))
        }
    }
}

impl NodeSim {
    pub(super) fn server_enqueue(&mut self, cx: &mut Context<'_, Event>, sp: u32, flow: FlowId) {
        let svc = match self.world.pods[sp as usize].role {
            PodRole::Server { svc } => usize::from(svc),
            PodRole::Client { .. } => return,
        };
        let conc = self.sc.services[svc].server.concurrency.max(1);
        let s = &mut self.servers[sp as usize];
        if s.busy < conc {
            s.busy += 1;
            let d = service_time(self.sc.services[svc].server.service_time, &mut self.rng_server);
            schedule(cx, cx.now() + d, Event::ServerDone { flow, server: sp });
        } else {
            s.queue.push_back(flow);
        }
    }

    pub(super) fn on_server_done(&mut self, cx: &mut Context<'_, Event>, flow: FlowId, sp: u32) {
        let now = cx.now();
        if let Some(f) = self.flows.get(flow).copied()
            && let Some(t) = self.server_tuple(&f)
        {
            let netns = self.world.pods[sp as usize].netns;
            let pkt = Packet::new(t, TcpFlags::ACK.union(TcpFlags::PSH));
            self.send(cx, netns, pkt, now, Purpose::Response { flow }, false, None);
        }
        // The worker takes the next queued request of this pod, if any.
        let svc = match self.world.pods[sp as usize].role {
            PodRole::Server { svc } => usize::from(svc),
            PodRole::Client { .. } => return,
        };
        let s = &mut self.servers[sp as usize];
        s.busy = s.busy.saturating_sub(1);
        while let Some(next) = self.servers[sp as usize].queue.pop_front() {
            if self.flows.get(next).is_some() {
                self.servers[sp as usize].busy += 1;
                let d = service_time(self.sc.services[svc].server.service_time, &mut self.rng_server);
                schedule(
                    cx,
                    now + d,
                    Event::ServerDone {
                        flow: next,
                        server: sp,
                    },
                );
                break;
            }
        }
    }

    /// A connection's SYN reached the backend pod: its listener answers or drops it.
    pub(super) fn server_syn(&mut self, cx: &mut Context<'_, Event>, flow: FlowId, pkt: Packet) {
        let now = cx.now();
        if self.flows.get(flow).is_none() {
            return;
        }
        let Some(sp) = self.pod_at(pkt.tuple.dst) else {
            return;
        };
        let client = SocketAddrV4::new(pkt.tuple.src, pkt.tuple.sport);
        if self.server_syn_misbehaves(cx, flow, sp, pkt) {
            return;
        }
        let pod = &mut self.world.pods[sp as usize];
        let Some(listener) = pod.listener.as_mut() else {
            return;
        };
        let outcome = listener.on_syn(client, pod.sockets.stats_mut());
        match outcome {
            SynOutcome::SynAck | SynOutcome::SynAckRetransmit | SynOutcome::SynCookie => {
                if let Some(fm) = self.flows.get_mut(flow) {
                    fm.server_pod = Some(sp);
                    fm.peer = Some(client);
                }
                let reply = Packet::new(pkt.tuple.reversed(), TcpFlags::SYN_ACK);
                let netns = self.world.pods[sp as usize].netns;
                self.send(cx, netns, reply, now, Purpose::SynAck { flow }, false, None);
            }
            SynOutcome::Dropped => {
                self.note_listen_overflow(now);
                self.note_flow_loss(flow, Loss::ListenQueue);
            }
        }
    }

    /// The behaviour of server pod `sp`'s Service (`server.behavior`).
    pub(super) fn server_behavior(&self, sp: u32) -> ServerBehavior {
        match self.world.pods.get(sp as usize).map(|p| p.role) {
            Some(PodRole::Server { svc }) => self.sc.services[usize::from(svc)].server.behavior,
            _ => ServerBehavior::Normal,
        }
    }

    /// A SYN reached a pod whose Service does not accept connections: a black hole
    /// drops it (the client retransmits until its deadline, each SYN through
    /// conntrack), `reset` answers RST (the entry goes to CLOSE, the client gets
    /// ECONNREFUSED). Returns whether the SYN was handled so.
    fn server_syn_misbehaves(
        &mut self,
        cx: &mut Context<'_, Event>,
        flow: FlowId,
        sp: u32,
        pkt: Packet,
    ) -> bool {
        match self.server_behavior(sp) {
            ServerBehavior::Normal | ServerBehavior::NeverClose => false,
            ServerBehavior::Blackhole => true,
            ServerBehavior::Reset => {
                let rst = Packet::new(pkt.tuple.reversed(), TcpFlags::RST.union(TcpFlags::ACK));
                let netns = self.world.pods[sp as usize].netns;
                self.send(cx, netns, rst, cx.now(), Purpose::Reset { flow }, false, None);
                true
            }
        }
    }

    /// A request reached the backend pod (the first one completes the handshake).
    pub(super) fn server_request(&mut self, cx: &mut Context<'_, Event>, flow: FlowId, pkt: Packet) {
        let now = cx.now();
        let Some(f) = self.flows.get(flow).copied() else {
            return;
        };
        let Some(sp) = f.server_pod.or_else(|| self.pod_at(pkt.tuple.dst)) else {
            return;
        };
        if f.requests == 0 {
            // The handshake's ACK completes the connection on the server.
            let client = SocketAddrV4::new(pkt.tuple.src, pkt.tuple.sport);
            let pod = &mut self.world.pods[sp as usize];
            if let Some(l) = pod.listener.as_mut() {
                match l.on_ack(client, pod.sockets.stats_mut()) {
                    AckOutcome::Queued => {
                        // The worker accepts it at once (the accept queue only fills
                        // when ACKs outrun the workers; see `Listener`).
                        let accepted = l.accept();
                        debug_assert!(
                            accepted.is_some(),
                            "invariant: a queued connection can be accepted"
                        );
                        let st = Tuple::new(
                            Proto::Tcp,
                            pkt.tuple.dst,
                            pkt.tuple.dport,
                            pkt.tuple.src,
                            pkt.tuple.sport,
                        );
                        // The server may still hold this 4-tuple (a client that reused
                        // its port while the old connection's socket lingers): the
                        // request is served and the old socket is kept until it goes
                        // (a simplification, docs/model.md).
                        let _registered = pod.sockets.insert_established(st, now).is_ok();
                    }
                    AckOutcome::Overflow => {
                        self.note_listen_overflow(now);
                        self.note_flow_loss(flow, Loss::ListenQueue);
                        return;
                    }
                    AckOutcome::Reset => return,
                }
            }
        }
        self.server_enqueue(cx, sp, flow);
    }
}
