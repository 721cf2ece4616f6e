//! NodeLocal DNSCache: the per-node agent on its link-local address (untracked), its
//! answer cache ([`cache`]), and the upstream connections it keeps to kube-dns.

mod cache;

pub(super) use cache::{ANSWER_TIME, NodeLocal, UPSTREAM_READ_TIMEOUT};

use super::event::{Answer, Event, Purpose, QueryOf, Turn};
use super::model::NodeSim;
use super::slab::{FwdId, LookupId, UpConnId};
use crate::dns::{QType, QueryId};
use crate::engine::Context;
use crate::packet::{Packet, Proto, TcpFlags, Tuple};
use crate::socket::{AbortReason, CloseRole};
use crate::time::SimDuration;
use std::net::SocketAddrV4;

/// State of a NodeLocal DNSCache upstream connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum UpState {
    Connecting,
    /// A query is out (one at a time per connection, as CoreDNS `forward`).
    Busy,
    Idle,
}

/// A NodeLocal DNSCache upstream connection (TCP with `force_tcp`, else a UDP socket).
#[derive(Clone, Copy, Debug)]
pub(super) struct UpConn {
    /// Its current turn (connecting, a query out, idle): timers and packets of an earlier
    /// turn are stale.
    pub(super) turn: Turn,
    pub(super) node: u16,
    pub(super) tuple: Tuple,
    pub(super) isn: u32,
    pub(super) state: UpState,
    pub(super) syn_timer: Option<crate::socket::SynTimer>,
    /// The forward it carries (connecting or busy).
    pub(super) fwd: Option<FwdId>,
    /// The CoreDNS pod and port that answered the SYN, and the agent's address and port
    /// as that pod saw them (after the MASQUERADE kube-proxy marks host traffic for).
    pub(super) server: Option<(u32, u16, SocketAddrV4)>,
}

/// A query NodeLocal DNSCache forwards upstream for a pod.
#[derive(Clone, Debug)]
pub(super) struct Fwd {
    pub(super) node: u16,
    pub(super) lookup: LookupId,
    pub(super) query: QueryId,
    pub(super) qtype: QType,
    pub(super) name: std::sync::Arc<str>,
    /// The pod's query tuple, reversed: the answer's tuple.
    pub(super) reply: Tuple,
    /// The upstream connection carrying it, once there is one.
    pub(super) conn: Option<UpConnId>,
}

impl NodeSim {
    /// A pod's query reached its node's cache agent (NOTRACK'ed: no conntrack entry).
    /// A live cached answer goes straight back; a miss is forwarded upstream.
    pub(super) fn nodelocal_receive(
        &mut self,
        cx: &mut Context<'_, Event>,
        pkt: Packet,
        lookup: LookupId,
        query: QueryId,
        qtype: QType,
    ) {
        let now = cx.now();
        let Some(pod) = self.pod_at(pkt.tuple.src) else {
            return;
        };
        let node = self.world.pods[pod as usize].node;
        let Some(name) = self
            .lookups
            .get(lookup)
            .and_then(|s| s.queries.iter().find(|(id, _)| *id == query))
            .map(|(_, n)| n.clone())
        else {
            return;
        };
        let Some(nl) = self.nodelocal.get_mut(usize::from(node)) else {
            return;
        };
        if pkt.tuple.dst != nl.addr {
            return;
        }
        match nl.lookup(&name, qtype, now) {
            Some(c) => {
                let host = nl.host;
                let purpose = Purpose::DnsReply {
                    lookup,
                    query,
                    answer: c,
                };
                let reply = Packet::new(pkt.tuple.reversed(), TcpFlags::NONE);
                self.send(cx, host, reply, now + ANSWER_TIME, purpose, false, None);
            }
            None => {
                let fwd = self.fwds.insert(Fwd {
                    node,
                    lookup,
                    query,
                    qtype,
                    name,
                    reply: pkt.tuple.reversed(),
                    conn: None,
                });
                self.forward_upstream(cx, fwd);
            }
        }
    }

    /// Sends a forward on the most recently used idle upstream connection, or dials a
    /// new one (CoreDNS `forward`: one query at a time per cached connection).
    pub(super) fn forward_upstream(&mut self, cx: &mut Context<'_, Event>, fwd: FwdId) {
        let now = cx.now();
        let Some(node) = self.fwds.get(fwd).map(|f| usize::from(f.node)) else {
            return;
        };
        self.nodelocal[node].stats.upstream_queries += 1;
        while let Some(conn) = self.nodelocal[node].idle.pop() {
            if self.upconns.get(conn).is_some_and(|c| c.state == UpState::Idle) {
                self.upstream_send(cx, conn, fwd);
                return;
            }
        }
        // In eBPF mode the cache's own connect() to the kube-dns ClusterIP goes through
        // Cilium's socket LB like a pod's (host namespace included by default).
        let (node_ip, force_tcp) = (self.nodelocal[node].node_ip, self.nodelocal[node].force_tcp);
        let proto = if force_tcp { Proto::Tcp } else { Proto::Udp };
        let Some(upstream) =
            self.socket_lb_on(node, node_ip, SocketAddrV4::new(self.world.kube_dns, 53), proto)
        else {
            self.nodelocal[node].stats.upstream_timeouts += 1;
            self.fwds.remove(fwd);
            return;
        };
        let (kube_dns, dns_port) = (*upstream.ip(), upstream.port());
        let nl = &mut self.nodelocal[node];
        let (tuple, isn) = if nl.force_tcp {
            match nl.sockets.connect(nl.node_ip, kube_dns, dns_port, now) {
                Ok(c) => (c.tuple, c.isn),
                Err(_) => {
                    // No local port: the forward fails; the pod's resolver retries.
                    nl.stats.upstream_timeouts += 1;
                    self.fwds.remove(fwd);
                    return;
                }
            }
        } else {
            let (lo, hi) = self.sc.nodes[node].sysctls.values.ip_local_port_range;
            let span = u64::from(hi.saturating_sub(lo)) + 1;
            let port = lo.saturating_add(u16::try_from(self.rng_client.below(span)).unwrap_or(0));
            (Tuple::new(Proto::Udp, nl.node_ip, port, kube_dns, dns_port), 0)
        };
        nl.stats.upstream_connections += 1;
        let host = nl.host;
        let turn = Turn(0);
        let tcp = tuple.proto == Proto::Tcp;
        let timer = tcp.then(|| {
            let sys = &self.sc.nodes[node].sysctls.values;
            crate::socket::SynTimer::start(&self.sc.kernel, sys.tcp_syn_retries, now)
        });
        let conn = self.upconns.insert(UpConn {
            turn,
            node: u16::try_from(node).unwrap_or(u16::MAX),
            tuple,
            isn,
            state: if tcp { UpState::Connecting } else { UpState::Idle },
            syn_timer: timer,
            fwd: Some(fwd),
            server: None,
        });
        if let Some(f) = self.fwds.get_mut(fwd) {
            f.conn = Some(conn);
        }
        match timer {
            Some(t) => {
                self.schedule_timer(
                    cx,
                    t.deadline().at().saturating_since(now),
                    Event::UpTimer { conn, turn },
                );
                let mut pkt = Packet::new(tuple, TcpFlags::SYN);
                pkt.seq = isn;
                self.send(cx, host, pkt, now, Purpose::UpSyn { conn, turn }, true, None);
            }
            None => self.upstream_send(cx, conn, fwd),
        }
    }

    /// Sends a forwarded query on an established upstream connection.
    pub(super) fn upstream_send(&mut self, cx: &mut Context<'_, Event>, conn: UpConnId, fwd: FwdId) {
        let now = cx.now();
        let Some(c) = self.upconns.get_mut(conn) else {
            return;
        };
        c.turn = Turn(c.turn.0.wrapping_add(1));
        let turn = c.turn;
        c.state = UpState::Busy;
        c.fwd = Some(fwd);
        let (tuple, node) = (c.tuple, usize::from(c.node));
        if let Some(f) = self.fwds.get_mut(fwd) {
            f.conn = Some(conn);
        }
        self.schedule_timer(cx, UPSTREAM_READ_TIMEOUT, Event::UpTimer { conn, turn });
        let host = self.nodelocal[node].host;
        // UDP: every query may create (or refresh) an entry, so it takes the windowed path.
        let (flags, windowed) = if tuple.proto == Proto::Tcp {
            (TcpFlags::ACK.union(TcpFlags::PSH), false)
        } else {
            (TcpFlags::NONE, true)
        };
        let purpose = Purpose::UpQuery { conn, turn, fwd };
        self.send(cx, host, Packet::new(tuple, flags), now, purpose, windowed, None);
    }

    /// CoreDNS answered a forward: cache it, answer the pod, free the connection.
    pub(super) fn upstream_answer(
        &mut self,
        cx: &mut Context<'_, Event>,
        conn: UpConnId,
        turn: Turn,
        fwd: FwdId,
        ans: Answer,
    ) {
        let now = cx.now();
        if !self
            .upconns
            .get(conn)
            .is_some_and(|c| c.turn == turn && c.state == UpState::Busy)
        {
            return;
        }
        let Some(f) = self.fwds.remove(fwd) else { return };
        let node = usize::from(f.node);
        self.nodelocal[node].store(&f.name, f.qtype, ans, now);
        let host = self.nodelocal[node].host;
        let purpose = Purpose::DnsReply {
            lookup: f.lookup,
            query: f.query,
            answer: ans,
        };
        let reply = Packet::new(f.reply, TcpFlags::NONE);
        self.send(cx, host, reply, now + ANSWER_TIME, purpose, false, None);
        self.upconn_idle(cx, conn);
    }

    /// Returns a connection to the agent's connection cache; it expires when idle for
    /// `upstreamExpire`.
    pub(super) fn upconn_idle(&mut self, cx: &mut Context<'_, Event>, conn: UpConnId) {
        let Some(c) = self.upconns.get_mut(conn) else {
            return;
        };
        c.turn = Turn(c.turn.0.wrapping_add(1));
        let turn = c.turn;
        c.state = UpState::Idle;
        c.fwd = None;
        let node = usize::from(c.node);
        self.nodelocal[node].idle.push(conn);
        let expire = self.nodelocal[node].expire;
        self.schedule_timer(cx, expire, Event::UpTimer { conn, turn });
    }

    pub(super) fn on_up_timer(&mut self, cx: &mut Context<'_, Event>, conn: UpConnId, turn: Turn) {
        let now = cx.now();
        let Some(c) = self.upconns.get_mut(conn) else {
            return;
        };
        if c.turn != turn {
            return;
        }
        let node = usize::from(c.node);
        match c.state {
            UpState::Connecting => {
                let Some(mut timer) = c.syn_timer else { return };
                let next = timer.on_timer();
                c.syn_timer = Some(timer);
                let (tuple, isn) = (c.tuple, c.isn);
                match next {
                    crate::socket::SynDeadline::Retransmit(t) => {
                        self.schedule_timer(cx, t.saturating_since(now), Event::UpTimer { conn, turn });
                        self.tally.syn_retransmits[node] += 1;
                        let mut pkt = Packet::new(tuple, TcpFlags::SYN);
                        pkt.seq = isn;
                        let host = self.nodelocal[node].host;
                        self.send(cx, host, pkt, now, Purpose::UpSyn { conn, turn }, true, None);
                    }
                    crate::socket::SynDeadline::TimedOut(_) => {
                        self.nodelocal[node].stats.upstream_timeouts += 1;
                        self.close_upconn(cx, conn);
                    }
                }
            }
            UpState::Busy => {
                // No answer within the read timeout: the forward fails (the pod's
                // resolver retries on its own timer) and the connection is dropped.
                self.nodelocal[node].stats.upstream_timeouts += 1;
                self.close_upconn(cx, conn);
            }
            UpState::Idle => self.close_upconn(cx, conn),
        }
    }

    /// Closes an upstream connection: the agent is the active closer (TIME_WAIT on the
    /// node), the FIN exchange goes through conntrack. Its forward, if any, is dropped.
    pub(super) fn close_upconn(&mut self, cx: &mut Context<'_, Event>, conn: UpConnId) {
        let now = cx.now();
        let Some(c) = self.upconns.remove(conn) else {
            return;
        };
        if let Some(f) = c.fwd {
            self.fwds.remove(f);
        }
        let node = usize::from(c.node);
        self.nodelocal[node].idle.retain(|x| *x != conn);
        if c.tuple.proto != Proto::Tcp {
            return;
        }
        let host = self.nodelocal[node].host;
        if c.state == UpState::Connecting {
            let aborted = self.nodelocal[node]
                .sockets
                .abort(c.tuple, AbortReason::TimedOut, now);
            debug_assert!(
                aborted.is_ok(),
                "invariant: a connecting upstream owns its socket"
            );
            return;
        }
        let closed =
            self.nodelocal[node]
                .sockets
                .close(c.tuple, CloseRole::ActiveCloser, c.isn.wrapping_add(1), now);
        debug_assert!(
            closed.is_ok(),
            "invariant: an established upstream owns its socket"
        );
        self.send(
            cx,
            host,
            Packet::new(c.tuple, TcpFlags::FIN_ACK),
            now,
            Purpose::Silent,
            false,
            None,
        );
        if let Some((sp, port, peer)) = c.server {
            let st = Tuple::new(
                Proto::Tcp,
                self.world.pods[sp as usize].ip,
                port,
                *peer.ip(),
                peer.port(),
            );
            let netns = self.world.pods[sp as usize].netns;
            let at = now + SimDuration::from_micros(100);
            self.send(
                cx,
                netns,
                Packet::new(st, TcpFlags::FIN_ACK),
                at,
                Purpose::Silent,
                false,
                None,
            );
        }
        let at = now + SimDuration::from_micros(200);
        self.send(
            cx,
            host,
            Packet::new(c.tuple, TcpFlags::ACK),
            at,
            Purpose::Silent,
            false,
            None,
        );
    }

    /// An upstream connection's SYN reached a CoreDNS pod, which answers it.
    pub(super) fn upstream_syn_arrived(
        &mut self,
        cx: &mut Context<'_, Event>,
        conn: UpConnId,
        turn: Turn,
        pkt: Packet,
    ) {
        let now = cx.now();
        let Some(dp) = self.pod_at(pkt.tuple.dst) else {
            return;
        };
        let Some(c) = self.upconns.get_mut(conn) else {
            return;
        };
        if c.turn != turn || c.state != UpState::Connecting {
            return;
        }
        c.server = Some((
            dp,
            pkt.tuple.dport,
            SocketAddrV4::new(pkt.tuple.src, pkt.tuple.sport),
        ));
        let netns = self.world.pods[dp as usize].netns;
        let reply = Packet::new(pkt.tuple.reversed(), TcpFlags::SYN_ACK);
        self.send(
            cx,
            netns,
            reply,
            now,
            Purpose::UpSynAck { conn, turn },
            false,
            None,
        );
    }

    /// The SYN-ACK of an upstream connection reached the agent.
    pub(super) fn upstream_syn_ack_arrived(
        &mut self,
        cx: &mut Context<'_, Event>,
        conn: UpConnId,
        turn: Turn,
    ) {
        let Some(c) = self.upconns.get_mut(conn) else {
            return;
        };
        if c.turn != turn || c.state != UpState::Connecting {
            return;
        }
        c.syn_timer = None;
        match c.fwd {
            Some(f) => self.upstream_send(cx, conn, f),
            None => self.upconn_idle(cx, conn),
        }
    }

    /// A forwarded query reached a CoreDNS pod on its upstream connection.
    pub(super) fn upstream_query_arrived(
        &mut self,
        cx: &mut Context<'_, Event>,
        conn: UpConnId,
        turn: Turn,
        fwd: FwdId,
        pkt: Packet,
    ) {
        let Some(f) = self.fwds.get(fwd) else { return };
        let qtype = f.qtype;
        if self.upconns.get(conn).is_some_and(|c| c.turn == turn) {
            self.coredns_receive(cx, pkt, QueryOf::Forward(fwd), qtype);
        }
    }
}
