//! A listening socket's SYN (request) queue and accept queue (`tcp_conn_request`,
//! `tcp_v4_syn_recv_sock`, `inet_csk_accept`).

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddrV4;

use super::{SocketConfig, SocketStats};

/// What a listener does with a SYN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SynOutcome {
    /// A request socket was queued and a SYN-ACK sent.
    SynAck,
    /// The SYN matched a pending request: its SYN-ACK is sent again (`tcp_check_req`).
    SynAckRetransmit,
    /// SYN queue full and `tcp_syncookies` on: a stateless SYN-ACK with a cookie.
    SynCookie,
    /// Dropped silently (counted in ListenDrops): the client retransmits its SYN.
    Dropped,
}

/// What a listener does with the handshake's final ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AckOutcome {
    /// The connection was created and queued for `accept()`.
    Queued,
    /// Accept queue full: the ACK is ignored (`tcp_abort_on_overflow` = 0) and counted
    /// in ListenOverflows and ListenDrops; a pending request stays for a later retry.
    Overflow,
    /// No request and no cookie to validate: the listener answers with a reset.
    Reset,
}

/// A TCP listening socket.
///
/// The accept queue holds `backlog + 1` connections (`sk_acceptq_is_full`: queued >
/// backlog), where `backlog = min(listen() argument, somaxconn)`.
#[derive(Clone, Debug)]
pub struct Listener {
    local: SocketAddrV4,
    backlog: u32,
    syncookies: u8,
    max_syn_backlog: u32,
    /// Clients with a pending request socket (SYN_RECV).
    requests: BTreeSet<SocketAddrV4>,
    /// Established children waiting for `accept()`, oldest first.
    accept_queue: VecDeque<SocketAddrV4>,
}

impl Listener {
    /// `listen(backlog)` on `local` (`__sys_listen` caps the argument at `somaxconn`).
    #[must_use]
    pub fn new(local: SocketAddrV4, listen_backlog: u32, config: &SocketConfig) -> Listener {
        Listener {
            local,
            backlog: listen_backlog.min(config.somaxconn),
            syncookies: config.syncookies,
            max_syn_backlog: config.max_syn_backlog,
            requests: BTreeSet::new(),
            accept_queue: VecDeque::new(),
        }
    }

    /// The listening address.
    #[must_use]
    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }

    /// The effective backlog (`sk_max_ack_backlog`).
    #[must_use]
    pub fn backlog(&self) -> u32 {
        self.backlog
    }

    /// Connections waiting for `accept()` (`ss -lnt` Recv-Q).
    #[must_use]
    pub fn accept_queue_len(&self) -> usize {
        self.accept_queue.len()
    }

    /// Pending request sockets (SYN_RECV).
    #[must_use]
    pub fn request_queue_len(&self) -> usize {
        self.requests.len()
    }

    fn len_u32(n: usize) -> u32 {
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// `sk_acceptq_is_full`: more than `backlog` connections queued.
    #[must_use]
    pub fn accept_queue_full(&self) -> bool {
        Self::len_u32(self.accept_queue.len()) > self.backlog
    }

    /// `inet_csk_reqsk_queue_is_full`: more than `backlog` requests pending (6.x uses
    /// `>`; older kernels `>=`).
    fn request_queue_full(&self) -> bool {
        Self::len_u32(self.requests.len()) > self.backlog
    }

    /// A SYN from `client` arrives (`tcp_conn_request`).
    pub fn on_syn(&mut self, client: SocketAddrV4, stats: &mut SocketStats) -> SynOutcome {
        if self.requests.contains(&client) {
            return SynOutcome::SynAckRetransmit;
        }
        let mut want_cookie = false;
        if self.syncookies == 2 || self.request_queue_full() {
            // `tcp_syn_flood_action`.
            if self.syncookies == 0 {
                stats.req_queue_full_drop += 1;
                stats.listen_drops += 1;
                return SynOutcome::Dropped;
            }
            stats.req_queue_full_do_cookies += 1;
            want_cookie = true;
        }
        if self.accept_queue_full() {
            stats.listen_overflows += 1;
            stats.listen_drops += 1;
            return SynOutcome::Dropped;
        }
        if want_cookie {
            stats.syncookies_sent += 1;
            return SynOutcome::SynCookie;
        }
        // Without cookies, unproven peers are dropped once less than a quarter of
        // `tcp_max_syn_backlog` remains (peers are never "proven" in this model).
        let pending = Self::len_u32(self.requests.len());
        if self.syncookies == 0 && self.max_syn_backlog.saturating_sub(pending) < (self.max_syn_backlog >> 2)
        {
            stats.listen_drops += 1;
            return SynOutcome::Dropped;
        }
        self.requests.insert(client);
        SynOutcome::SynAck
    }

    /// The final ACK of `client`'s handshake arrives (`tcp_check_req` →
    /// `tcp_v4_syn_recv_sock`, or `cookie_v4_check` when there is no request).
    pub fn on_ack(&mut self, client: SocketAddrV4, stats: &mut SocketStats) -> AckOutcome {
        let has_request = self.requests.contains(&client);
        if !has_request && self.syncookies == 0 {
            return AckOutcome::Reset;
        }
        if self.accept_queue_full() {
            stats.listen_overflows += 1;
            stats.listen_drops += 1;
            return AckOutcome::Overflow;
        }
        self.requests.remove(&client);
        self.accept_queue.push_back(client);
        AckOutcome::Queued
    }

    /// The request of `client` gave up (SYN-ACK retries exhausted, or a reset).
    /// Returns whether there was one.
    pub fn drop_request(&mut self, client: SocketAddrV4) -> bool {
        self.requests.remove(&client)
    }

    /// `accept()`: the oldest queued connection's client address.
    pub fn accept(&mut self) -> Option<SocketAddrV4> {
        self.accept_queue.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn client(i: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40_000 + i)
    }

    fn listener(backlog: u32, config: &SocketConfig) -> Listener {
        Listener::new(
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 7070),
            backlog,
            config,
        )
    }

    /// docs/kernel-semantics.md §Listen queues and §Measurements on 6.18 (socket
    /// experiments): `listen(2)` never accepting, 10
    /// clients whose handshakes complete at once, 5 SYNs each in 4.5 s: 3 connections
    /// complete, 7 x 5 = 35 ListenOverflows and ListenDrops, no cookies.
    #[test]
    fn backlog_two_completes_three_and_drops_the_rest_silently() {
        let config = SocketConfig::default();
        let mut l = listener(2, &config);
        let mut stats = SocketStats::default();
        let mut completed = BTreeSet::new();
        for _syn_round in 0..5 {
            for i in 0..10 {
                if completed.contains(&i) {
                    continue;
                }
                match l.on_syn(client(i), &mut stats) {
                    SynOutcome::SynAck => {
                        assert_eq!(l.on_ack(client(i), &mut stats), AckOutcome::Queued);
                        completed.insert(i);
                    }
                    other => assert_eq!(other, SynOutcome::Dropped),
                }
            }
        }
        assert_eq!(completed.len(), 3);
        assert_eq!(l.accept_queue_len(), 3);
        assert_eq!(stats.listen_overflows, 35);
        assert_eq!(stats.listen_drops, 35);
        assert_eq!(stats.syncookies_sent, 0);
    }

    #[test]
    fn backlog_is_capped_by_somaxconn() {
        let config = SocketConfig {
            somaxconn: 4,
            ..SocketConfig::default()
        };
        assert_eq!(listener(100, &config).backlog(), 4);
        assert_eq!(listener(3, &config).backlog(), 3);
    }

    #[test]
    fn accept_dequeues_oldest_first_and_makes_room() {
        let config = SocketConfig::default();
        let mut l = listener(0, &config);
        let mut stats = SocketStats::default();
        assert_eq!(l.on_syn(client(1), &mut stats), SynOutcome::SynAck);
        assert_eq!(l.on_ack(client(1), &mut stats), AckOutcome::Queued);
        assert!(l.accept_queue_full(), "backlog 0 holds one connection");
        assert_eq!(l.on_syn(client(2), &mut stats), SynOutcome::Dropped);
        assert_eq!(l.accept(), Some(client(1)));
        assert_eq!(l.on_syn(client(2), &mut stats), SynOutcome::SynAck);
        assert_eq!(l.accept(), None, "handshake not complete yet");
    }

    /// docs/kernel-semantics.md §Listen queues: SYN-queue overflow is answered with cookies when
    /// `tcp_syncookies = 1`, dropped when 0.
    #[test]
    fn syn_queue_overflow_sends_cookies_or_drops() {
        for (cookies, expect) in [(1u8, SynOutcome::SynCookie), (0, SynOutcome::Dropped)] {
            let config = SocketConfig {
                syncookies: cookies,
                ..SocketConfig::default()
            };
            let mut l = listener(1, &config);
            let mut stats = SocketStats::default();
            assert_eq!(l.on_syn(client(1), &mut stats), SynOutcome::SynAck);
            assert_eq!(l.on_syn(client(2), &mut stats), SynOutcome::SynAck);
            assert_eq!(l.on_syn(client(3), &mut stats), expect, "syncookies={cookies}");
            assert_eq!(l.request_queue_len(), 2);
            if cookies == 1 {
                assert_eq!((stats.syncookies_sent, stats.req_queue_full_do_cookies), (1, 1));
                assert_eq!(
                    l.on_ack(client(3), &mut stats),
                    AckOutcome::Queued,
                    "valid cookie"
                );
            } else {
                assert_eq!((stats.req_queue_full_drop, stats.listen_drops), (1, 1));
                assert_eq!(l.on_ack(client(3), &mut stats), AckOutcome::Reset);
            }
        }
    }

    #[test]
    fn final_ack_on_full_accept_queue_overflows_and_keeps_the_request() {
        let config = SocketConfig::default();
        let mut l = listener(1, &config);
        let mut stats = SocketStats::default();
        assert_eq!(l.on_syn(client(1), &mut stats), SynOutcome::SynAck);
        assert_eq!(l.on_syn(client(2), &mut stats), SynOutcome::SynAck);
        assert_eq!(l.on_ack(client(1), &mut stats), AckOutcome::Queued);
        assert_eq!(l.on_syn(client(3), &mut stats), SynOutcome::SynAck);
        assert_eq!(l.on_ack(client(3), &mut stats), AckOutcome::Queued);
        assert_eq!(l.on_ack(client(2), &mut stats), AckOutcome::Overflow);
        assert_eq!((stats.listen_overflows, stats.listen_drops), (1, 1));
        assert_eq!(l.on_syn(client(2), &mut stats), SynOutcome::SynAckRetransmit);
        l.accept();
        assert_eq!(l.on_ack(client(2), &mut stats), AckOutcome::Queued);
        assert!(!l.drop_request(client(2)));
    }
}
