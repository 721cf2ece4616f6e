//! Clients: requests arriving per workload, their attempts, deadlines and retries,
//! connections (short or pooled), and closing them.

mod waiting;

use super::event::{Attempt, Event, Purpose};
use super::model::{NodeSim, schedule};
use super::observe::Loss;
use super::slab::{FlowId, LookupId, ReqId};
use super::world::PodRole;
use crate::engine::Context;
use crate::packet::{Packet, Proto, TcpFlags, Tuple};
use crate::scenario::{Closer, ConnectionMode, DnsMode};
use crate::socket::{AbortReason, CloseRole, SocketError};
use crate::time::{SimDuration, SimTime};
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use waiting::{Compaction, Waiter};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FlowState {
    Connecting,
    Established,
}

/// One TCP connection from a client pod.
#[derive(Clone, Copy, Debug)]
pub(super) struct Flow {
    pub(super) pod: u32,
    pub(super) tuple: Tuple,
    pub(super) isn: u32,
    pub(super) state: FlowState,
    pub(super) syn_timer: Option<crate::socket::SynTimer>,
    /// The request using it now.
    pub(super) req: Option<ReqId>,
    pub(super) server_pod: Option<u32>,
    /// The client's address and port as the server saw them in the SYN (after any SNAT
    /// on the way): where the server's own segments (FIN, ACK) go.
    pub(super) peer: Option<SocketAddrV4>,
    pub(super) requests: u32,
    pub(super) idle_since: SimTime,
    /// A packet of this connection was lost on the way and it has not made progress
    /// since (cleared when the handshake completes or a request is answered).
    pub(super) lost: Option<Loss>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReqState {
    WaitDns,
    WaitConn,
    Connecting,
    Sent,
    Backoff,
    Done,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Request {
    pub(super) wl: u16,
    pub(super) pod: u32,
    pub(super) started: SimTime,
    /// Attempts started so far (the first is 1).
    pub(super) attempt: u32,
    /// The attempt (or the backoff after it) the request is in: timers of an earlier
    /// stage are stale.
    pub(super) stage: Attempt,
    pub(super) state: ReqState,
    pub(super) flow: Option<FlowId>,
    /// Address resolved for this request (per-request DNS, headless targets).
    pub(super) addr: Option<Ipv4Addr>,
    /// This attempt was held up by a lost packet: one of its connection's, or one of the
    /// pooled connections it waited for. A timeout of the attempt is put down to it.
    pub(super) delayed_by: Option<Loss>,
}

/// Per client pod dynamic state.
#[derive(Debug, Default)]
pub(super) struct ClientState {
    pub(super) dns_valid_until: Option<SimTime>,
    /// First address of the pod's cached answer (headless targets).
    pub(super) dns_addr: Option<Ipv4Addr>,
    pub(super) lookup: Option<LookupId>,
    /// Requests waiting for the pod's cached lookup, in arrival order. An attempt that
    /// timed out stays in the list, stale (see [`Waiter`]), instead of being searched
    /// for and removed: a storm leaves thousands waiting and each timeout would scan them.
    pub(super) dns_waiters: Vec<Waiter>,
    pub(super) idle: Vec<FlowId>,
    pub(super) open: u32,
    /// Requests waiting for a pooled connection, in arrival order (stale entries as in
    /// `dns_waiters`).
    pub(super) conn_waiters: VecDeque<Waiter>,
    /// Queue lengths at which the stale entries are swept out (see [`Compaction`]).
    dns_sweep: Compaction,
    conn_sweep: Compaction,
    /// Open connections that lost a packet and have not made progress since.
    pub(super) stalled: u32,
    /// What lost the latest of those packets.
    pub(super) stalled_by: Option<Loss>,
}

impl ClientState {
    /// What holds up a request that has to wait for one of this pod's pooled
    /// connections: a loss, while any of them is stalled by one.
    fn pool_stall(&self) -> Option<Loss> {
        self.stalled_by.filter(|_| self.stalled > 0)
    }
}

impl NodeSim {
    pub(super) fn on_arrival(&mut self, cx: &mut Context<'_, Event>, wl: u16) {
        let now = cx.now();
        let w = usize::from(wl);
        if let Some(t) = self.arrivals[w].next_after(now, self.horizon, &mut self.rng_arrival[w]) {
            schedule(cx, t, Event::Arrival { wl });
        }
        let pods = &self.world.wl_pods[w];
        if pods.is_empty() {
            return;
        }
        let pod = pods[self.wl_next_pod[w] % pods.len()];
        self.wl_next_pod[w] = self.wl_next_pod[w].wrapping_add(1);
        self.tally.sent += 1;
        self.wl_tally[w].sent += 1;
        self.users.node[usize::from(self.world.pods[pod as usize].node)].sent += 1;
        let req = self.reqs.insert(Request {
            wl,
            pod,
            started: now,
            attempt: 0,
            stage: Attempt(0),
            state: ReqState::WaitDns,
            flow: None,
            addr: None,
            delayed_by: None,
        });
        self.start_attempt(cx, req);
    }

    pub(super) fn start_attempt(&mut self, cx: &mut Context<'_, Event>, req: ReqId) {
        let now = cx.now();
        let Some(r) = self.reqs.get_mut(req) else { return };
        r.stage = Attempt(r.stage.0.wrapping_add(1));
        r.attempt += 1;
        r.flow = None;
        r.delayed_by = None;
        let (attempt, wl, pod) = (r.stage, usize::from(r.wl), r.pod);
        let timeout = self.sc.workloads[wl].timeout;
        self.schedule_timer(cx, timeout, Event::Deadline { req, attempt });
        // DNS first, if this workload resolves.
        let dns = &self.sc.workloads[wl].dns;
        let need_dns = match dns.mode {
            DnsMode::None => false,
            DnsMode::PerRequest => true,
            DnsMode::Cached => self.clients[pod as usize]
                .dns_valid_until
                .is_none_or(|t| t <= now),
        };
        if need_dns {
            if let Some(r) = self.reqs.get_mut(req) {
                r.state = ReqState::WaitDns;
            }
            if dns.mode == DnsMode::PerRequest {
                // Each request runs its own lookup (no client cache).
                self.start_lookup(cx, pod, Some(req));
            } else {
                let stage = self.reqs.get(req).map_or(Attempt(0), |r| r.stage);
                self.clients[pod as usize].push_dns_waiter(Waiter { req, stage }, &self.reqs);
                if self.clients[pod as usize].lookup.is_none() {
                    self.start_lookup(cx, pod, None);
                }
            }
        } else {
            self.get_connection(cx, req);
        }
    }

    pub(super) fn get_connection(&mut self, cx: &mut Context<'_, Event>, req: ReqId) {
        let now = cx.now();
        let Some(r) = self.reqs.get(req).copied() else {
            return;
        };
        let wl = usize::from(r.wl);
        let cfg = self.sc.workloads[wl].connection;
        if cfg.mode == ConnectionMode::Pool {
            // Reuse an idle pooled connection (LIFO), closing ones idle too long.
            while let Some(f) = self.clients[r.pod as usize].idle.pop() {
                let Some(flow) = self.flows.get(f).copied() else {
                    continue;
                };
                if now.saturating_since(flow.idle_since) > cfg.idle_timeout {
                    self.close_flow(cx, f, true);
                    continue;
                }
                self.send_request(cx, req, f);
                return;
            }
            let cs = &mut self.clients[r.pod as usize];
            if cs.open >= cfg.pool_size.max(1) {
                cs.push_conn_waiter(Waiter { req, stage: r.stage }, &self.reqs);
                let stall = cs.pool_stall();
                if let Some(rm) = self.reqs.get_mut(req) {
                    rm.state = ReqState::WaitConn;
                    rm.delayed_by = rm.delayed_by.or(stall);
                }
                return;
            }
        }
        self.open_connection(cx, req);
    }

    pub(super) fn open_connection(&mut self, cx: &mut Context<'_, Event>, req: ReqId) {
        let now = cx.now();
        let Some(r) = self.reqs.get(req).copied() else {
            return;
        };
        let wl = usize::from(r.wl);
        let mut target = self.world.wl_target[wl];
        if self.wl_headless[wl] {
            // A headless Service: dial the pod address DNS gave (no VIP, no DNAT).
            let resolved = r.addr.or(self.clients[r.pod as usize].dns_addr);
            if let Some(ip) = resolved.filter(|ip| !ip.is_unspecified()) {
                target = SocketAddrV4::new(ip, target.port());
            }
        }
        if let Some(t) = self.socket_lb(r.pod, target) {
            target = t;
        } else {
            self.attempt_failed(cx, req, "ECONNREFUSED (Service without endpoints)");
            return;
        }
        let pod = &mut self.world.pods[r.pod as usize];
        let connected = match pod.sockets.connect(pod.ip, *target.ip(), target.port(), now) {
            Ok(c) => c,
            Err(_) => {
                self.attempt_failed(cx, req, "EADDRNOTAVAIL (no free ephemeral port)");
                return;
            }
        };
        let node = usize::from(pod.node);
        let netns = pod.netns;
        let sys = &self.sc.nodes[node].sysctls.values;
        let timer = crate::socket::SynTimer::start(&self.sc.kernel, sys.tcp_syn_retries, now);
        let flow = self.flows.insert(Flow {
            pod: r.pod,
            tuple: connected.tuple,
            isn: connected.isn,
            state: FlowState::Connecting,
            syn_timer: Some(timer),
            req: Some(req),
            server_pod: None,
            peer: None,
            requests: 0,
            idle_since: now,
            lost: None,
        });
        self.clients[r.pod as usize].open += 1;
        if let Some(rm) = self.reqs.get_mut(req) {
            rm.state = ReqState::Connecting;
            rm.flow = Some(flow);
        }
        self.tally.new_connections += 1;
        self.schedule_syn_timer(cx, timer.rto(), timer.deadline().at(), Event::SynTimer { flow });
        let mut pkt = Packet::new(connected.tuple, TcpFlags::SYN);
        pkt.seq = connected.isn;
        self.send(cx, netns, pkt, now, Purpose::Syn { flow }, true, None);
    }

    pub(super) fn on_syn_timer(&mut self, cx: &mut Context<'_, Event>, flow: FlowId) {
        let Some(f) = self.flows.get_mut(flow) else { return };
        if f.state != FlowState::Connecting {
            return;
        }
        let Some(mut timer) = f.syn_timer else { return };
        let next = timer.on_timer();
        let rto = timer.rto();
        f.syn_timer = Some(timer);
        let (tuple, isn, pod) = (f.tuple, f.isn, f.pod);
        match next {
            crate::socket::SynDeadline::Retransmit(t) => {
                self.schedule_syn_timer(cx, rto, t, Event::SynTimer { flow });
            }
            crate::socket::SynDeadline::TimedOut(_) => {
                // connect() fails with ETIMEDOUT after the last retransmission.
                if let Some(req) = f.req {
                    self.note_timeout_after_loss(req);
                    self.abort_client_socket(pod, tuple, cx.now());
                    self.drop_flow(flow);
                    self.attempt_failed(cx, req, "ETIMEDOUT (SYN retries exhausted)");
                }
                return;
            }
        }
        let node = usize::from(self.world.pods[pod as usize].node);
        self.tally.syn_retransmits[node] += 1;
        let netns = self.world.pods[pod as usize].netns;
        let mut pkt = Packet::new(tuple, TcpFlags::SYN);
        pkt.seq = isn;
        self.send(cx, netns, pkt, cx.now(), Purpose::Syn { flow }, true, None);
    }

    pub(super) fn drop_flow(&mut self, flow: FlowId) {
        if let Some(f) = self.flows.remove(flow) {
            let cs = &mut self.clients[f.pod as usize];
            cs.open = cs.open.saturating_sub(1);
            if f.lost.is_some() {
                cs.stalled = cs.stalled.saturating_sub(1);
            }
        }
    }

    /// A packet of `flow` was lost on the way: the connection stalls until its next
    /// progress, and the request it carries is held up by the loss.
    pub(super) fn note_flow_loss(&mut self, flow: FlowId, loss: Loss) {
        let Some(f) = self.flows.get_mut(flow) else { return };
        let first = f.lost.is_none();
        f.lost = Some(loss);
        let (pod, req) = (f.pod as usize, f.req);
        let cs = &mut self.clients[pod];
        if first {
            cs.stalled += 1;
        }
        cs.stalled_by = Some(loss);
        if let Some(r) = req.and_then(|req| self.reqs.get_mut(req)) {
            r.delayed_by = Some(loss);
        }
    }

    /// `flow` made progress (its handshake completed or a request was answered).
    fn note_flow_progress(&mut self, flow: FlowId) {
        let Some(f) = self.flows.get_mut(flow) else { return };
        if f.lost.take().is_some() {
            let cs = &mut self.clients[f.pod as usize];
            cs.stalled = cs.stalled.saturating_sub(1);
        }
    }

    /// Request `req`'s attempt timed out: if a lost packet held it up, the loss is
    /// counted as the cause (the verdict's ranking).
    fn note_timeout_after_loss(&mut self, req: ReqId) {
        let Some(r) = self.reqs.get(req) else { return };
        let stall = match r.state {
            ReqState::WaitConn => self.clients[r.pod as usize].pool_stall(),
            _ => None,
        };
        if let Some(loss) = r.delayed_by.or(stall) {
            self.tally.timeouts_after_loss[loss.index()] += 1;
        }
    }

    pub(super) fn attempt_failed(&mut self, cx: &mut Context<'_, Event>, req: ReqId, cause: &str) {
        let Some(r) = self.reqs.get_mut(req) else { return };
        if r.state == ReqState::Done || r.state == ReqState::Backoff {
            return;
        }
        self.note_failure(cause, cx.now());
        let Some(r) = self.reqs.get_mut(req) else { return };
        let wl = usize::from(r.wl);
        let retries = self.sc.workloads[wl].retries;
        r.stage = Attempt(r.stage.0.wrapping_add(1)); // invalidates the attempt's deadline
        let retry_stage = r.stage;
        if r.attempt <= retries.max {
            r.state = ReqState::Backoff;
            self.tally.retries += 1;
            self.wl_tally[wl].retries += 1;
            self.schedule_timer(
                cx,
                retries.backoff,
                Event::Retry {
                    req,
                    attempt: retry_stage,
                },
            );
        } else {
            r.state = ReqState::Done;
            self.tally.failed += 1;
            self.wl_tally[wl].failed += 1;
            // The caller sees the failure now: at the last attempt's deadline, or when
            // the error that ended it came back.
            let (started, pod) = (r.started, r.pod as usize);
            let node = usize::from(self.world.pods[pod].node);
            self.users
                .finished(wl, node, cx.now().saturating_since(started).as_nanos(), false);
            self.reqs.remove(req);
        }
    }

    pub(super) fn on_deadline(&mut self, cx: &mut Context<'_, Event>, req: ReqId, attempt: Attempt) {
        let now = cx.now();
        let Some(r) = self.reqs.get(req).copied() else {
            return;
        };
        if r.stage != attempt || r.state == ReqState::Done || r.state == ReqState::Backoff {
            return;
        }
        self.tally.timeouts += 1;
        self.note_timeout_after_loss(req);
        self.wl_tally[usize::from(r.wl)].timeouts += 1;
        self.users.node[usize::from(self.world.pods[r.pod as usize].node)].timeouts += 1;
        let cause = match r.state {
            ReqState::WaitDns => "timeout waiting for DNS",
            ReqState::WaitConn => "timeout waiting for a pooled connection",
            ReqState::Connecting => "timeout in connect (SYN unanswered)",
            ReqState::Sent => "timeout waiting for the response",
            ReqState::Backoff | ReqState::Done => "timeout",
        };
        // Abandon whatever the attempt holds. A request waiting for DNS or a pooled
        // connection stays in its queue: `attempt_failed` below moves its stage on,
        // which makes that entry stale.
        match r.state {
            ReqState::WaitDns | ReqState::WaitConn => {}
            ReqState::Connecting | ReqState::Sent => {
                if let Some(f) = r.flow
                    && let Some(flow) = self.flows.get(f).copied()
                {
                    if flow.state == FlowState::Connecting {
                        self.abort_client_socket(flow.pod, flow.tuple, now);
                        self.drop_flow(f);
                    } else {
                        // The client gives up on the connection: close it (RST-free
                        // close; it leaves TIME_WAIT as an active close).
                        self.close_flow(cx, f, true);
                    }
                }
            }
            ReqState::Backoff | ReqState::Done => {}
        }
        self.attempt_failed(cx, req, cause);
    }

    pub(super) fn send_request(&mut self, cx: &mut Context<'_, Event>, req: ReqId, flow: FlowId) {
        let now = cx.now();
        let Some(f) = self.flows.get_mut(flow) else { return };
        f.req = Some(req);
        let (tuple, pod) = (f.tuple, f.pod);
        if let Some(r) = self.reqs.get_mut(req) {
            r.state = ReqState::Sent;
            r.flow = Some(flow);
        }
        let netns = self.world.pods[pod as usize].netns;
        let pkt = Packet::new(tuple, TcpFlags::ACK.union(TcpFlags::PSH));
        self.send(cx, netns, pkt, now, Purpose::Request { flow }, false, None);
    }

    pub(super) fn request_done(&mut self, cx: &mut Context<'_, Event>, flow: FlowId) {
        let now = cx.now();
        self.note_flow_progress(flow);
        let Some(f) = self.flows.get_mut(flow) else { return };
        let Some(req) = f.req.take() else { return };
        f.requests += 1;
        f.idle_since = now;
        let requests = f.requests;
        if let Some(r) = self.reqs.remove(req) {
            let lat = now.saturating_since(r.started);
            self.latency.record(lat.as_nanos());
            self.interval_latency.record(lat.as_nanos());
            let wl = usize::from(r.wl);
            self.wl_latency[wl].record(lat.as_nanos());
            let node = usize::from(self.world.pods[r.pod as usize].node);
            self.users.finished(wl, node, lat.as_nanos(), true);
            self.tally.ok += 1;
            self.wl_tally[wl].ok += 1;
            let cfg = self.sc.workloads[wl].connection;
            let keep = cfg.mode == ConnectionMode::Pool
                && cfg.max_requests_per_connection.is_none_or(|m| requests < m);
            if keep {
                let pod = r.pod as usize;
                if let Some(w) = self.clients[pod].next_conn_waiter(&self.reqs) {
                    self.send_request(cx, w, flow);
                } else {
                    self.clients[pod].idle.push(flow);
                }
            } else {
                self.close_flow(cx, flow, cfg.closer == Closer::Client);
            }
        }
    }

    /// Closes a connection: the FIN exchange through the data path, TIME_WAIT on the
    /// active closer, and hands the pool slot to a waiting request.
    pub(super) fn close_flow(&mut self, cx: &mut Context<'_, Event>, flow: FlowId, client_first: bool) {
        let now = cx.now();
        let Some(f) = self.flows.get(flow).copied() else {
            return;
        };
        // A backend that never closes (`server.behavior: neverClose`): the client closes
        // whatever `closer` says, the server only acknowledges.
        let never_close = f
            .server_pod
            .is_some_and(|sp| self.server_behavior(sp) == crate::scenario::ServerBehavior::NeverClose);
        let client_first = client_first || never_close;
        let Some(f) = self.flows.remove(flow) else { return };
        let pod_idx = f.pod as usize;
        self.clients[pod_idx].open = self.clients[pod_idx].open.saturating_sub(1);
        if f.lost.is_some() {
            let cs = &mut self.clients[pod_idx];
            cs.stalled = cs.stalled.saturating_sub(1);
        }
        self.clients[pod_idx].idle.retain(|x| *x != flow);
        let netns = self.world.pods[pod_idx].netns;
        let role = if client_first {
            CloseRole::ActiveCloser
        } else {
            CloseRole::PassiveCloser
        };
        let closed = self.world.pods[pod_idx]
            .sockets
            .close(f.tuple, role, f.isn.wrapping_add(1), now);
        debug_assert!(closed.is_ok(), "invariant: an open flow owns its client socket");
        if let Some(sp) = f.server_pod.filter(|_| !never_close) {
            // The server's socket for this connection (one that never closes stays in
            // CLOSE_WAIT for good).
            if let Some(server_tuple) = self.server_tuple(&f) {
                let srole = if client_first {
                    CloseRole::PassiveCloser
                } else {
                    CloseRole::ActiveCloser
                };
                // The server holds a socket only if the handshake's ACK reached its
                // accept queue: closing nothing is no error.
                match self.world.pods[sp as usize]
                    .sockets
                    .close(server_tuple, srole, 1, now)
                {
                    Ok(_) | Err(SocketError::UnknownSocket { .. }) => {}
                    Err(e) => debug_assert!(false, "invariant: one close per server socket ({e})"),
                }
            }
        }
        if f.state == FlowState::Established {
            // FIN, FIN-ACK, ACK through conntrack (closer's FIN first).
            let fin = Packet::new(f.tuple, TcpFlags::FIN_ACK);
            if never_close {
                // FIN, then the server's ACK: conntrack moves to CLOSE_WAIT and stays
                // there for nf_conntrack_tcp_timeout_close_wait.
                self.send(cx, netns, fin, now, Purpose::Silent, false, None);
                self.send_from_server(cx, &f, TcpFlags::ACK, now + SimDuration::from_micros(100));
            } else if client_first {
                self.send(cx, netns, fin, now, Purpose::Silent, false, None);
                self.send_from_server(cx, &f, TcpFlags::FIN_ACK, now + SimDuration::from_micros(100));
                self.send(
                    cx,
                    netns,
                    Packet::new(f.tuple, TcpFlags::ACK),
                    now + SimDuration::from_micros(200),
                    Purpose::Silent,
                    false,
                    None,
                );
            } else {
                self.send_from_server(cx, &f, TcpFlags::FIN_ACK, now);
                self.send(
                    cx,
                    netns,
                    fin,
                    now + SimDuration::from_micros(100),
                    Purpose::Silent,
                    false,
                    None,
                );
                self.send_from_server(cx, &f, TcpFlags::ACK, now + SimDuration::from_micros(200));
            }
        }
        // A pool slot freed: open a connection for a waiting request.
        let wl = match self.world.pods[pod_idx].role {
            PodRole::Client { wl } => usize::from(wl),
            PodRole::Server { .. } => return,
        };
        if self.sc.workloads[wl].connection.mode == ConnectionMode::Pool
            && let Some(w) = self.clients[pod_idx].next_conn_waiter(&self.reqs)
        {
            self.open_connection(cx, w);
        }
    }

    /// The server-side view of a connection: (pod ip:port → client ip:port) — the
    /// client's source as the server sees it (after any SNAT).
    pub(super) fn server_tuple(&self, f: &Flow) -> Option<Tuple> {
        let sp = f.server_pod?;
        let pod = &self.world.pods[sp as usize];
        let port = pod.listener.as_ref().map(|l| l.local().port())?;
        let (ip, cport) = f
            .peer
            .map_or((f.tuple.src, f.tuple.sport), |p| (*p.ip(), p.port()));
        Some(Tuple::new(Proto::Tcp, pod.ip, port, ip, cport))
    }

    pub(super) fn send_from_server(
        &mut self,
        cx: &mut Context<'_, Event>,
        f: &Flow,
        flags: TcpFlags,
        at: SimTime,
    ) {
        let Some(t) = self.server_tuple(f) else { return };
        let Some(sp) = f.server_pod else { return };
        let netns = self.world.pods[sp as usize].netns;
        self.send(cx, netns, Packet::new(t, flags), at, Purpose::Silent, false, None);
    }

    /// A backend's RST reached a connecting client (`server.behavior: reset`): connect()
    /// fails with ECONNREFUSED.
    pub(super) fn client_reset(&mut self, cx: &mut Context<'_, Event>, flow: FlowId) {
        let Some(f) = self.flows.get(flow).copied() else {
            return;
        };
        if f.state != FlowState::Connecting {
            return;
        }
        self.abort_client_socket(f.pod, f.tuple, cx.now());
        self.drop_flow(flow);
        if let Some(req) = f.req {
            self.attempt_failed(cx, req, "ECONNREFUSED (RST from the backend)");
        }
    }

    /// A DNS-only workload's lookup answered (`workloads[].dnsOnly`): the request is
    /// done, with no connection.
    pub(super) fn lookup_only_done(&mut self, cx: &mut Context<'_, Event>, req: ReqId) {
        let now = cx.now();
        let Some(r) = self.reqs.remove(req) else { return };
        let lat = now.saturating_since(r.started);
        self.latency.record(lat.as_nanos());
        self.interval_latency.record(lat.as_nanos());
        let wl = usize::from(r.wl);
        self.wl_latency[wl].record(lat.as_nanos());
        self.tally.ok += 1;
        self.wl_tally[wl].ok += 1;
    }

    /// The SYN-ACK reached the client: the connection is established and the request goes out.
    pub(super) fn client_syn_ack(&mut self, cx: &mut Context<'_, Event>, flow: FlowId) {
        let Some(f) = self.flows.get_mut(flow) else { return };
        if f.state != FlowState::Connecting {
            return;
        }
        f.state = FlowState::Established;
        f.syn_timer = None;
        self.note_flow_progress(flow);
        let Some(f) = self.flows.get(flow) else { return };

        let req = f.req;
        if let Some(req) = req {
            self.send_request(cx, req, flow);
        }
    }

    /// The response reached the client.
    pub(super) fn client_response(&mut self, cx: &mut Context<'_, Event>, flow: FlowId) {
        if self.flows.get(flow).is_some() {
            self.request_done(cx, flow);
        }
    }

    /// A request's backoff ended: its next attempt starts (unless it moved on).
    pub(super) fn on_retry(&mut self, cx: &mut Context<'_, Event>, req: ReqId, attempt: Attempt) {
        if self
            .reqs
            .get(req)
            .is_some_and(|r| r.state == ReqState::Backoff && r.stage == attempt)
        {
            self.start_attempt(cx, req);
        }
    }

    /// Tears down the client socket of a connection whose `connect()` fails (ETIMEDOUT).
    fn abort_client_socket(&mut self, pod: u32, tuple: Tuple, now: SimTime) {
        let aborted = self.world.pods[pod as usize]
            .sockets
            .abort(tuple, AbortReason::TimedOut, now);
        debug_assert!(
            aborted.is_ok(),
            "invariant: a connecting flow owns its client socket"
        );
    }
}
