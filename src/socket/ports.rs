//! Per-namespace TCP socket table: ephemeral ports for `connect()`, TIME_WAIT and its
//! reuse (`__inet_hash_connect`, `__inet_check_established`, `tcp_twsk_unique`,
//! `tcp_time_wait`, `inet_twsk_alloc`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;

use super::{ConnectError, SocketConfig, SocketError, SocketStats, TCP_TIMEWAIT_LEN, TwReuse};
use crate::packet::{Proto, Tuple};
use crate::rng::{SPLITMIX64_GAMMA, SimRng, mix64};
use crate::time::{NANOS_PER_MILLI, NANOS_PER_SEC, SimTime};

/// `INET_TABLE_PERTURB_SIZE` (`1 << CONFIG_INET_TABLE_PERTURB_ORDER`, default order 16).
const PERTURB_MASK: u64 = (1 << 16) - 1;
/// `EPHEMERAL_PORT_SHUFFLE_PERIOD` (10 * HZ): the port offset hash is re-keyed with
/// `jiffies / EPHEMERAL_PORT_SHUFFLE_PERIOD`.
const SHUFFLE_PERIOD_NANOS: u64 = 10 * NANOS_PER_SEC;
/// `tcp_twsk_unique`: a reused connection starts at `tw_snd_nxt + 65535 + 2`.
const TW_REUSE_SEQ_GAP: u32 = 65_537;

/// A successful `connect()` port choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connected {
    /// The connection's 4-tuple (TCP, our address and port first).
    pub tuple: Tuple,
    /// Initial send sequence number (`write_seq`).
    pub isn: u32,
    /// Whether the 4-tuple was taken over from a TIME_WAIT socket (`tcp_tw_reuse`).
    pub reused_time_wait: bool,
}

/// Which side closes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CloseRole {
    /// Sends the first FIN and ends in TIME_WAIT.
    ActiveCloser,
    /// Answers the peer's FIN (CLOSE_WAIT, LAST_ACK); freed without TIME_WAIT.
    PassiveCloser,
}

/// What `close()` left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseOutcome {
    /// The 4-tuple stays in TIME_WAIT until this time.
    TimeWait {
        /// When the TIME_WAIT socket expires.
        until: SimTime,
    },
    /// `tcp_max_tw_buckets` reached: freed at once, counted as TCPTimeWaitOverflow.
    TimeWaitOverflow,
    /// Passive close: freed at once.
    Closed,
}

/// Why a socket is torn down without a normal close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AbortReason {
    /// The SYN retransmissions ran out: `connect()` fails with ETIMEDOUT (counted).
    TimedOut,
    /// A reset was received or sent.
    Reset,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TimeWait {
    entered: SimTime,
    expires: SimTime,
    snd_nxt: u32,
    /// `tw_ts_recent_stamp != 0`: the peer's timestamps were recorded.
    ts_recent: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SockState {
    Open,
    TimeWait(TimeWait),
}

#[derive(Clone, Copy, Debug)]
struct Sock {
    state: SockState,
    /// Distinguishes this socket from earlier ones on the same 4-tuple (stale FIFO
    /// entries are recognised by it).
    generation: u64,
}

/// The sockets of one (local address, remote address, remote port), by local port.
#[derive(Debug, Default)]
struct DestPorts {
    socks: BTreeMap<u16, Sock>,
    /// Bitmap of the local ports in `socks` (65,536 bits), so `connect()`'s scan tests a
    /// port with one bit instead of a map lookup.
    used: Vec<u64>,
    /// Sockets whose local port is inside `ip_local_port_range`.
    in_range: u32,
    /// Sockets in TIME_WAIT.
    time_wait: u32,
}

type DestKey = (Ipv4Addr, Ipv4Addr, u16);

/// The TCP sockets of one network namespace.
#[derive(Debug)]
pub struct SocketTable {
    config: SocketConfig,
    rng: SimRng,
    port_secret: u64,
    perturb_secret: u64,
    seq_secret: u64,
    /// Entries of `table_perturb` changed since start; the others keep their random
    /// initial value, derived from `perturb_secret`.
    perturb: BTreeMap<u16, u32>,
    dests: BTreeMap<DestKey, DestPorts>,
    /// Ports held by `bind()`/`listen()` sockets (a bind bucket with `fastreuse >= 0`).
    bound: BTreeSet<u16>,
    /// TIME_WAIT expiries in due order (constant 60 s, so FIFO); may hold stale entries.
    tw_fifo: VecDeque<(SimTime, Tuple, u64)>,
    time_wait: u32,
    sockets: usize,
    next_generation: u64,
    stats: SocketStats,
}

/// A keyed 64-bit mix standing in for the kernel's siphash (splitmix64's [`mix64`]).
fn keyed(key: u64, words: &[u64]) -> u64 {
    let mut h = key;
    for &w in words {
        h ^= w
            .wrapping_add(SPLITMIX64_GAMMA)
            .wrapping_add(h << 6)
            .wrapping_add(h >> 2);
        h = mix64(h);
    }
    h
}

impl SocketTable {
    /// An empty table. `rng` supplies the namespace's secrets (the port-offset and
    /// sequence-number keys, the initial `table_perturb`) and the small random
    /// increments of the perturbation table; use a dedicated stream per namespace.
    #[must_use]
    pub fn new(config: SocketConfig, mut rng: SimRng) -> SocketTable {
        let port_secret = rng.next_u64();
        let perturb_secret = rng.next_u64();
        let seq_secret = rng.next_u64();
        SocketTable {
            config,
            rng,
            port_secret,
            perturb_secret,
            seq_secret,
            perturb: BTreeMap::new(),
            dests: BTreeMap::new(),
            bound: BTreeSet::new(),
            tw_fifo: VecDeque::new(),
            time_wait: 0,
            sockets: 0,
            next_generation: 0,
            stats: SocketStats::default(),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &SocketConfig {
        &self.config
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> &SocketStats {
        &self.stats
    }

    /// The counters, mutably (listeners of this namespace count into them).
    pub fn stats_mut(&mut self) -> &mut SocketStats {
        &mut self.stats
    }

    /// Sockets held, TIME_WAIT included (after the last expiry pass).
    #[must_use]
    pub fn socket_count(&self) -> usize {
        self.sockets
    }

    /// TIME_WAIT sockets alive at `now`.
    pub fn time_wait_count(&mut self, now: SimTime) -> u32 {
        self.expire_time_wait(now);
        self.time_wait
    }

    /// When the TIME_WAIT socket of `tuple` expires, if it is in TIME_WAIT at `now`.
    pub fn time_wait_until(&mut self, tuple: Tuple, now: SimTime) -> Option<SimTime> {
        self.expire_time_wait(now);
        match self.sock(tuple)?.state {
            SockState::TimeWait(tw) => Some(tw.expires),
            SockState::Open => None,
        }
    }

    /// Whether `tuple` is an open (not TIME_WAIT) socket.
    #[must_use]
    pub fn is_open(&self, tuple: Tuple) -> bool {
        self.sock(tuple).is_some_and(|s| s.state == SockState::Open)
    }

    /// Earliest pending TIME_WAIT expiry, for a caller that wants an event at it.
    #[must_use]
    pub fn next_time_wait_expiry(&self) -> Option<SimTime> {
        self.tw_fifo.front().map(|e| e.0)
    }

    /// Marks `port` as held by a `bind()`/`listen()` socket: `connect()` skips it.
    pub fn bind_port(&mut self, port: u16) {
        self.bound.insert(port);
    }

    /// Releases a port taken with [`SocketTable::bind_port`].
    pub fn release_port(&mut self, port: u16) {
        self.bound.remove(&port);
    }

    fn sock(&self, t: Tuple) -> Option<&Sock> {
        self.dests.get(&(t.src, t.dst, t.dport))?.socks.get(&t.sport)
    }

    fn in_range(&self, port: u16) -> bool {
        (self.config.port_range.0..=self.config.port_range.1).contains(&port)
    }

    /// Removes TIME_WAIT sockets whose 60 s are over at `now` (`inet_twsk_kill` from
    /// the TIME_WAIT timer). Every time-dependent method calls it first; returns the
    /// number removed.
    pub fn expire_time_wait(&mut self, now: SimTime) -> usize {
        let mut removed = 0;
        while let Some(&(expires, tuple, generation)) = self.tw_fifo.front() {
            if expires > now {
                break;
            }
            self.tw_fifo.pop_front();
            let live = self
                .sock(tuple)
                .is_some_and(|s| s.generation == generation && matches!(s.state, SockState::TimeWait(_)));
            if live {
                self.remove(tuple);
                removed += 1;
            }
        }
        removed
    }

    /// Removes a socket, keeping the counts right.
    fn remove(&mut self, t: Tuple) -> Option<Sock> {
        let key = (t.src, t.dst, t.dport);
        let in_range = self.in_range(t.sport);
        let dest = self.dests.get_mut(&key)?;
        let sock = dest.socks.remove(&t.sport)?;
        if let Some(w) = dest.used.get_mut(usize::from(t.sport) / 64) {
            *w &= !(1u64 << (t.sport % 64));
        }
        if in_range {
            dest.in_range -= 1;
        }
        if matches!(sock.state, SockState::TimeWait(_)) {
            dest.time_wait -= 1;
            self.time_wait -= 1;
        }
        if dest.socks.is_empty() {
            self.dests.remove(&key);
        }
        self.sockets -= 1;
        Some(sock)
    }

    fn insert(&mut self, t: Tuple, state: SockState) -> u64 {
        let generation = self.next_generation;
        self.next_generation += 1;
        let in_range = self.in_range(t.sport);
        let dest = self.dests.entry((t.src, t.dst, t.dport)).or_default();
        if in_range {
            dest.in_range += 1;
        }
        if matches!(state, SockState::TimeWait(_)) {
            dest.time_wait += 1;
            self.time_wait += 1;
        }
        if dest.used.is_empty() {
            dest.used = vec![0; 1024];
        }
        dest.used[usize::from(t.sport) / 64] |= 1u64 << (t.sport % 64);
        dest.socks.insert(t.sport, Sock { state, generation });
        self.sockets += 1;
        generation
    }

    /// Registers an established socket with a known 4-tuple (an accepted connection,
    /// or a `connect()` from an explicitly bound port).
    ///
    /// # Errors
    /// [`SocketError::InUse`] or [`SocketError::AlreadyClosed`] if the 4-tuple is
    /// taken at `now`.
    pub fn insert_established(&mut self, tuple: Tuple, now: SimTime) -> Result<(), SocketError> {
        self.expire_time_wait(now);
        match self.sock(tuple).map(|s| s.state) {
            None => {
                self.insert(tuple, SockState::Open);
                Ok(())
            }
            Some(SockState::TimeWait(_)) => Err(SocketError::AlreadyClosed { tuple }),
            Some(SockState::Open) => Err(SocketError::InUse { tuple }),
        }
    }

    /// `tcp_twsk_unique`, as called from `__inet_hash_connect` (so `twp != NULL`):
    /// may `connect()` take over this TIME_WAIT 4-tuple at `now`?
    fn may_reuse(&self, tw: &TimeWait, saddr: Ipv4Addr, daddr: Ipv4Addr, now: SimTime) -> bool {
        let allowed = match self.config.tw_reuse {
            TwReuse::Never => false,
            TwReuse::Always => true,
            // `ipv4_is_loopback(tw_daddr) || ipv4_is_loopback(tw_rcv_saddr)`.
            TwReuse::LoopbackOnly => saddr.is_loopback() || daddr.is_loopback(),
        };
        // `time_after32(tcp_clock_ms(), tw_entry_stamp + tcp_tw_reuse_delay)`.
        let now_ms = now.as_nanos() / NANOS_PER_MILLI;
        let threshold_ms = (tw.entered.as_nanos() + self.config.tw_reuse_delay.as_nanos()) / NANOS_PER_MILLI;
        allowed && tw.ts_recent && now_ms > threshold_ms
    }

    /// `table_perturb[index]`: its random initial value until first advanced.
    fn perturb_value(&self, index: u16) -> u32 {
        #[allow(clippy::cast_possible_truncation, reason = "low 32 bits of a hash")]
        let initial = keyed(self.perturb_secret, &[u64::from(index)]) as u32;
        self.perturb.get(&index).copied().unwrap_or(initial)
    }

    /// `secure_ipv4_port_ephemeral(saddr, daddr, dport)`, re-keyed every 10 s.
    fn port_offset(&self, saddr: Ipv4Addr, daddr: Ipv4Addr, dport: u16, now: SimTime) -> u64 {
        keyed(
            self.port_secret,
            &[
                u64::from(u32::from(saddr)),
                u64::from(u32::from(daddr)),
                u64::from(dport),
                now.as_nanos() / SHUFFLE_PERIOD_NANOS,
            ],
        )
    }

    /// `secure_tcp_seq`: keyed hash of the 4-tuple plus a 64 ns clock.
    #[allow(clippy::cast_possible_truncation, reason = "sequence numbers are 32-bit")]
    fn fresh_isn(&self, t: Tuple, now: SimTime) -> u32 {
        let h = keyed(
            self.seq_secret,
            &[
                u64::from(u32::from(t.src)),
                u64::from(u32::from(t.dst)),
                (u64::from(t.sport) << 16) | u64::from(t.dport),
            ],
        ) as u32;
        h.wrapping_add((now.as_nanos() >> 6) as u32)
    }

    /// `connect()` from `saddr` to `daddr:dport` with an ephemeral port
    /// (`__inet_hash_connect`). The new socket is open; close it with
    /// [`SocketTable::close`] or [`SocketTable::abort`].
    ///
    /// # Errors
    /// [`ConnectError::AddrNotAvail`] (counted) when no port of `ip_local_port_range`
    /// gives a free or reusable 4-tuple.
    pub fn connect(
        &mut self,
        saddr: Ipv4Addr,
        daddr: Ipv4Addr,
        dport: u16,
        now: SimTime,
    ) -> Result<Connected, ConnectError> {
        self.expire_time_wait(now);
        let (low, high) = (
            u32::from(self.config.port_range.0),
            u32::from(self.config.port_range.1) + 1,
        );
        // `high++; remaining = high - low; if (remaining > 1) remaining &= ~1U;`
        let span = high - low;
        let remaining = if span > 1 { span & !1 } else { span };
        if self.exhausted_without_reuse(saddr, daddr, dport, span, remaining) {
            self.stats.connect_eaddrnotavail += 1;
            return Err(ConnectError::AddrNotAvail);
        }
        let port_offset = self.port_offset(saddr, daddr, dport, now);
        #[allow(clippy::cast_possible_truncation, reason = "masked to 16 bits")]
        let index = (port_offset & PERTURB_MASK) as u16;
        #[allow(clippy::cast_possible_truncation, reason = "high half of a u64")]
        let mut offset = self.perturb_value(index).wrapping_add((port_offset >> 32) as u32) % remaining;
        // First pass: ports of `low`'s parity.
        offset &= !1;
        let key = (saddr, daddr, dport);
        let dest = self.dests.get(&key);
        // Whether a TIME_WAIT socket may be reused at all here (`tcp_twsk_unique`'s
        // mode and timestamp conditions); if not, an occupied port is skipped on its bit.
        let reuse_mode = self.config.timestamps
            && match self.config.tw_reuse {
                TwReuse::Never => false,
                TwReuse::Always => true,
                TwReuse::LoopbackOnly => saddr.is_loopback() || daddr.is_loopback(),
            };
        let mut found: Option<(u16, Option<TimeWait>, u32)> = None;
        'scan: loop {
            let mut port = low + offset;
            let mut i = 0;
            while i < remaining {
                if port >= high {
                    port -= remaining;
                }
                #[allow(clippy::cast_possible_truncation, reason = "port < 65536")]
                let p = port as u16;
                if !self.bound.contains(&p) {
                    let occupied = dest.is_some_and(|d| {
                        d.used
                            .get(usize::from(p) / 64)
                            .is_some_and(|w| w & (1u64 << (p % 64)) != 0)
                    });
                    if !occupied {
                        found = Some((p, None, i));
                        break 'scan;
                    }
                    if reuse_mode
                        && let Some(SockState::TimeWait(tw)) =
                            dest.and_then(|d| d.socks.get(&p)).map(|s| s.state)
                        && self.may_reuse(&tw, saddr, daddr, now)
                    {
                        found = Some((p, Some(tw), i));
                        break 'scan;
                    }
                }
                i += 2;
                port += 2;
            }
            offset += 1;
            if offset & 1 == 0 || remaining <= 1 {
                break;
            }
        }
        if let Some((p, reused, i)) = found {
            return Ok(self.take_port(
                Tuple::new(Proto::Tcp, saddr, p, daddr, dport),
                reused,
                index,
                i,
                now,
            ));
        }
        self.stats.connect_eaddrnotavail += 1;
        Err(ConnectError::AddrNotAvail)
    }

    /// Shortcut for a full destination: every scanned port holds a socket and no
    /// TIME_WAIT socket could be reused, so the scan would fail. Exact only when the
    /// scan covers the whole range (even span), so it is used only then.
    fn exhausted_without_reuse(
        &self,
        saddr: Ipv4Addr,
        daddr: Ipv4Addr,
        dport: u16,
        span: u32,
        remaining: u32,
    ) -> bool {
        if span != remaining {
            return false;
        }
        let Some(dest) = self.dests.get(&(saddr, daddr, dport)) else {
            return false;
        };
        let reuse_possible = self.config.timestamps
            && dest.time_wait > 0
            && match self.config.tw_reuse {
                TwReuse::Never => false,
                TwReuse::Always => true,
                TwReuse::LoopbackOnly => saddr.is_loopback() || daddr.is_loopback(),
            };
        dest.in_range >= remaining && !reuse_possible
    }

    /// Binds the chosen port: kills a reused TIME_WAIT socket, advances
    /// `table_perturb[index]` by `max(i, random(8) * 2) + 2`, picks the ISN.
    fn take_port(
        &mut self,
        tuple: Tuple,
        reused: Option<TimeWait>,
        index: u16,
        i: u32,
        now: SimTime,
    ) -> Connected {
        #[allow(clippy::cast_possible_truncation, reason = "below(8) < 8")]
        let jitter = self.rng.below(8) as u32 * 2;
        let advance = i.max(jitter) + 2;
        let value = self.perturb_value(index).wrapping_add(advance);
        self.perturb.insert(index, value);
        let isn = match reused {
            Some(tw) => {
                self.remove(tuple);
                self.stats.time_wait_recycled += 1;
                match tw.snd_nxt.wrapping_add(TW_REUSE_SEQ_GAP) {
                    0 => 1,
                    seq => seq,
                }
            }
            None => self.fresh_isn(tuple, now),
        };
        self.insert(tuple, SockState::Open);
        Connected {
            tuple,
            isn,
            reused_time_wait: reused.is_some(),
        }
    }

    /// Closes an open socket. The active closer enters TIME_WAIT for 60 s unless
    /// `tcp_max_tw_buckets` TIME_WAIT sockets exist (`inet_twsk_alloc` fails: freed,
    /// TCPTimeWaitOverflow). `snd_nxt` is the socket's next send sequence number, kept
    /// for `tcp_tw_reuse`.
    ///
    /// # Errors
    /// [`SocketError::UnknownSocket`] or [`SocketError::AlreadyClosed`].
    pub fn close(
        &mut self,
        tuple: Tuple,
        role: CloseRole,
        snd_nxt: u32,
        now: SimTime,
    ) -> Result<CloseOutcome, SocketError> {
        self.expire_time_wait(now);
        match self.sock(tuple).map(|s| s.state) {
            None => return Err(SocketError::UnknownSocket { tuple }),
            Some(SockState::TimeWait(_)) => return Err(SocketError::AlreadyClosed { tuple }),
            Some(SockState::Open) => {}
        }
        self.remove(tuple);
        match role {
            CloseRole::PassiveCloser => Ok(CloseOutcome::Closed),
            CloseRole::ActiveCloser if self.time_wait >= self.config.max_tw_buckets => {
                self.stats.time_wait_overflow += 1;
                Ok(CloseOutcome::TimeWaitOverflow)
            }
            CloseRole::ActiveCloser => {
                let until = now + TCP_TIMEWAIT_LEN;
                let tw = TimeWait {
                    entered: now,
                    expires: until,
                    snd_nxt,
                    ts_recent: self.config.timestamps,
                };
                let generation = self.insert(tuple, SockState::TimeWait(tw));
                self.tw_fifo.push_back((until, tuple, generation));
                Ok(CloseOutcome::TimeWait { until })
            }
        }
    }

    /// Tears a socket down without TIME_WAIT; [`AbortReason::TimedOut`] counts an
    /// ETIMEDOUT `connect()` failure.
    ///
    /// # Errors
    /// [`SocketError::UnknownSocket`] if no such socket exists at `now`.
    pub fn abort(&mut self, tuple: Tuple, reason: AbortReason, now: SimTime) -> Result<(), SocketError> {
        self.expire_time_wait(now);
        self.remove(tuple).ok_or(SocketError::UnknownSocket { tuple })?;
        if reason == AbortReason::TimedOut {
            self.stats.connect_etimedout += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SimDuration;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 10, 1, 2);
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 10, 2, 2);

    fn table(config: SocketConfig, seed: u64) -> SocketTable {
        SocketTable::new(config, SimRng::stream(seed, "socket/test"))
    }

    fn small_range(tw_reuse: TwReuse) -> SocketConfig {
        SocketConfig {
            port_range: (40_000, 40_009),
            tw_reuse,
            ..SocketConfig::default()
        }
    }

    /// Connects and closes first (the client keeps TIME_WAIT), `n` times at `now`.
    fn connect_close(t: &mut SocketTable, n: usize, now: SimTime) -> Vec<Result<u16, ConnectError>> {
        (0..n)
            .map(|_| {
                let c = t.connect(CLIENT, SERVER, 7070, now)?;
                t.close(c.tuple, CloseRole::ActiveCloser, c.isn.wrapping_add(100), now)
                    .unwrap();
                Ok(c.tuple.sport)
            })
            .collect()
    }

    /// docs/kernel-semantics.md §Ephemeral ports and §Measurements on 6.18 (socket
    /// experiments): range 40000-40009, client closes
    /// first: five even ports, then the five odd ones, then EADDRNOTAVAIL.
    #[test]
    fn small_range_uses_even_then_odd_ports_then_eaddrnotavail() {
        for seed in 0..20 {
            let mut t = table(small_range(TwReuse::LoopbackOnly), seed);
            let got = connect_close(&mut t, 13, SimTime::from_secs(1));
            let ports: Vec<u16> = got[..10].iter().map(|r| *r.as_ref().unwrap()).collect();
            assert!(ports[..5].iter().all(|p| p % 2 == 0), "seed {seed}: {ports:?}");
            assert!(ports[5..].iter().all(|p| p % 2 == 1), "seed {seed}: {ports:?}");
            let distinct: BTreeSet<u16> = ports.iter().copied().collect();
            assert_eq!(distinct, (40_000..=40_009).collect(), "seed {seed}");
            assert!(got[10..].iter().all(|r| *r == Err(ConnectError::AddrNotAvail)));
            assert_eq!(t.stats().connect_eaddrnotavail, 3);
            assert_eq!(t.time_wait_count(SimTime::from_secs(1)), 10);
        }
    }

    #[test]
    fn port_choice_is_a_function_of_the_seed() {
        let run = |seed| connect_close(&mut table(SocketConfig::default(), seed), 50, SimTime::ZERO);
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    /// docs/kernel-semantics.md §Ephemeral ports: with the default range the first pass only
    /// yields even ports.
    #[test]
    fn default_range_hands_out_even_ports_first() {
        let mut t = table(SocketConfig::default(), 3);
        let ports = connect_close(&mut t, 2_000, SimTime::ZERO);
        assert!(ports.iter().all(|p| p.as_ref().is_ok_and(|p| p % 2 == 0)));
    }

    /// docs/kernel-semantics.md §TIME_WAIT and tw_reuse: with `tcp_tw_reuse = 1` the TIME_WAIT
    /// ports become usable once `tcp_tw_reuse_delay` (1 s) has passed, strictly after.
    #[test]
    fn tw_reuse_one_reuses_time_wait_ports_after_the_delay() {
        let mut t = table(small_range(TwReuse::Always), 1);
        let t0 = SimTime::from_secs(5);
        assert!(connect_close(&mut t, 10, t0).iter().all(Result::is_ok));
        assert_eq!(
            t.connect(CLIENT, SERVER, 7070, t0 + SimDuration::from_millis(1_000)),
            Err(ConnectError::AddrNotAvail),
            "at exactly the delay: time_after32 is strict"
        );
        let later = t0 + SimDuration::from_millis(1_200);
        let mut reused = Vec::new();
        for _ in 0..6 {
            let c = t.connect(CLIENT, SERVER, 7070, later).unwrap();
            assert!(c.reused_time_wait);
            reused.push(c);
        }
        assert_eq!(t.stats().time_wait_recycled, 6);
        assert_eq!(t.time_wait_count(later), 4);
        let distinct: BTreeSet<u16> = reused.iter().map(|c| c.tuple.sport).collect();
        assert_eq!(distinct.len(), 6);
    }

    /// `tcp_twsk_unique`: the reused connection starts at the old `snd_nxt` + 65537.
    #[test]
    fn reused_connection_isn_is_old_snd_nxt_plus_65537() {
        let config = SocketConfig {
            port_range: (40_000, 40_000),
            tw_reuse: TwReuse::Always,
            ..SocketConfig::default()
        };
        let mut t = table(config, 1);
        let c = t.connect(CLIENT, SERVER, 80, SimTime::ZERO).unwrap();
        t.close(c.tuple, CloseRole::ActiveCloser, 0xFFFF_0000, SimTime::ZERO)
            .unwrap();
        let again = t.connect(CLIENT, SERVER, 80, SimTime::from_secs(2)).unwrap();
        assert_eq!(again.tuple, c.tuple);
        assert_eq!(again.isn, 0xFFFF_0000u32.wrapping_add(65_537));
    }

    /// docs/kernel-semantics.md §TIME_WAIT and tw_reuse: `tcp_tw_reuse = 2` reuses only loopback
    /// TIME_WAIT sockets; without timestamps nothing is reused.
    #[test]
    fn tw_reuse_two_is_loopback_only_and_needs_timestamps() {
        let one_port = |tw_reuse, timestamps| SocketConfig {
            port_range: (40_000, 40_000),
            tw_reuse,
            timestamps,
            ..SocketConfig::default()
        };
        let later = SimTime::from_secs(3);
        let lo = Ipv4Addr::LOCALHOST;
        for (config, src, dst, expect_ok) in [
            (one_port(TwReuse::LoopbackOnly, true), CLIENT, SERVER, false),
            (one_port(TwReuse::LoopbackOnly, true), lo, lo, true),
            (one_port(TwReuse::Always, false), CLIENT, SERVER, false),
            (one_port(TwReuse::Never, true), lo, lo, false),
        ] {
            let mut t = table(config.clone(), 1);
            let c = t.connect(src, dst, 80, SimTime::ZERO).unwrap();
            t.close(c.tuple, CloseRole::ActiveCloser, 1, SimTime::ZERO)
                .unwrap();
            assert_eq!(
                t.connect(src, dst, 80, later).is_ok(),
                expect_ok,
                "{config:?} {src}"
            );
        }
    }

    /// docs/kernel-semantics.md §TIME_WAIT and tw_reuse: TIME_WAIT lasts exactly
    /// TCP_TIMEWAIT_LEN (60 s).
    #[test]
    fn time_wait_expires_after_sixty_seconds() {
        let config = SocketConfig {
            port_range: (40_000, 40_000),
            tw_reuse: TwReuse::Never,
            ..SocketConfig::default()
        };
        let mut t = table(config, 1);
        let c = t.connect(CLIENT, SERVER, 80, SimTime::ZERO).unwrap();
        let out = t
            .close(c.tuple, CloseRole::ActiveCloser, 1, SimTime::from_secs(1))
            .unwrap();
        assert_eq!(
            out,
            CloseOutcome::TimeWait {
                until: SimTime::from_secs(61)
            }
        );
        assert_eq!(t.next_time_wait_expiry(), Some(SimTime::from_secs(61)));
        let just_before = SimTime::from_nanos(61_000_000_000 - 1);
        assert_eq!(
            t.connect(CLIENT, SERVER, 80, just_before),
            Err(ConnectError::AddrNotAvail)
        );
        assert_eq!(
            t.time_wait_until(c.tuple, just_before),
            Some(SimTime::from_secs(61))
        );
        let fresh = t.connect(CLIENT, SERVER, 80, SimTime::from_secs(61)).unwrap();
        assert!(!fresh.reused_time_wait);
        assert_eq!(t.time_wait_count(SimTime::from_secs(61)), 0);
    }

    /// docs/kernel-semantics.md §TIME_WAIT and tw_reuse: beyond `tcp_max_tw_buckets` a closing socket
    /// skips TIME_WAIT and TCPTimeWaitOverflow counts it; a passive closer never waits.
    #[test]
    fn max_tw_buckets_overflow_skips_time_wait() {
        let config = SocketConfig {
            max_tw_buckets: 2,
            ..SocketConfig::default()
        };
        let mut t = table(config, 1);
        let now = SimTime::ZERO;
        let mut outcomes = Vec::new();
        for _ in 0..3 {
            let c = t.connect(CLIENT, SERVER, 80, now).unwrap();
            outcomes.push(t.close(c.tuple, CloseRole::ActiveCloser, 1, now).unwrap());
        }
        assert_eq!(outcomes[2], CloseOutcome::TimeWaitOverflow);
        assert!(matches!(outcomes[1], CloseOutcome::TimeWait { .. }));
        assert_eq!(t.stats().time_wait_overflow, 1);
        assert_eq!(t.socket_count(), 2);
        let c = t.connect(CLIENT, SERVER, 80, now).unwrap();
        assert_eq!(
            t.close(c.tuple, CloseRole::PassiveCloser, 1, now),
            Ok(CloseOutcome::Closed)
        );
        assert_eq!(t.socket_count(), 2);
    }

    #[test]
    fn ports_are_per_destination_and_bound_ports_are_skipped() {
        let mut t = table(small_range(TwReuse::Never), 1);
        let now = SimTime::ZERO;
        for dport in [80, 81] {
            for _ in 0..10 {
                t.connect(CLIENT, SERVER, dport, now).unwrap();
            }
        }
        assert_eq!(
            t.connect(CLIENT, SERVER, 80, now),
            Err(ConnectError::AddrNotAvail)
        );
        let mut t = table(small_range(TwReuse::Never), 1);
        t.bind_port(40_004);
        let ports: BTreeSet<u16> = (0..9)
            .map(|_| t.connect(CLIENT, SERVER, 80, now).unwrap().tuple.sport)
            .collect();
        assert!(!ports.contains(&40_004));
        assert_eq!(
            t.connect(CLIENT, SERVER, 80, now),
            Err(ConnectError::AddrNotAvail)
        );
        t.release_port(40_004);
        assert_eq!(t.connect(CLIENT, SERVER, 80, now).unwrap().tuple.sport, 40_004);
    }

    #[test]
    fn abort_counts_etimedout_and_misuse_is_an_error() {
        let mut t = table(SocketConfig::default(), 1);
        let c = t.connect(CLIENT, SERVER, 80, SimTime::ZERO).unwrap();
        assert!(t.is_open(c.tuple));
        t.abort(c.tuple, AbortReason::TimedOut, SimTime::from_secs(131))
            .unwrap();
        assert_eq!(t.stats().connect_etimedout, 1);
        assert_eq!(
            t.abort(c.tuple, AbortReason::Reset, SimTime::from_secs(131)),
            Err(SocketError::UnknownSocket { tuple: c.tuple })
        );
        assert!(
            t.close(c.tuple, CloseRole::ActiveCloser, 0, SimTime::from_secs(132))
                .is_err()
        );
        t.insert_established(c.tuple, SimTime::from_secs(132)).unwrap();
        assert_eq!(
            t.insert_established(c.tuple, SimTime::from_secs(132)),
            Err(SocketError::InUse { tuple: c.tuple })
        );
    }

    #[test]
    fn odd_sized_range_still_exhausts_cleanly() {
        let config = SocketConfig {
            port_range: (40_000, 40_010),
            tw_reuse: TwReuse::Never,
            ..SocketConfig::default()
        };
        let mut t = table(config, 2);
        let mut ok = 0;
        while t.connect(CLIENT, SERVER, 80, SimTime::ZERO).is_ok() {
            ok += 1;
            assert!(ok <= 11);
        }
        assert!(ok >= 10, "scan covers at least `remaining` ports: {ok}");
    }
}
