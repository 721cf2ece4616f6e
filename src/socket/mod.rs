//! The `socket` module models the TCP socket side of one network namespace, sans I/O
//! and with time injected (every time-dependent call takes `now`): ephemeral port
//! choice for `connect()`, TIME_WAIT on the active closer with `tcp_max_tw_buckets`
//! and `tcp_tw_reuse`, the SYN retransmission timer, and a listener's SYN and accept
//! queues, with the nstat counters these produce.
//!
//! Modelled (docs/kernel-semantics.md §Sockets):
//! - [`SocketTable::connect`] follows `__inet_hash_connect` (net/ipv4/inet_hashtables.c):
//!   keyed per-destination offset re-keyed every 10 s, the `table_perturb` entry advanced
//!   on each success, even-then-odd scan with step 2, ports of `bind()`/`listen()`
//!   sockets skipped, a 4-tuple accepted if unused or if its TIME_WAIT socket may be
//!   reused (`tcp_twsk_unique`), EADDRNOTAVAIL on exhaustion.
//! - [`SocketTable::close`]: TIME_WAIT for `TCP_TIMEWAIT_LEN` (60 s) on the active
//!   closer, skipped and counted as TCPTimeWaitOverflow beyond `tcp_max_tw_buckets`
//!   (`inet_twsk_alloc`).
//! - [`SynTimer`]: the SYN retransmission schedule of the kernel profile.
//! - [`Listener`]: `tcp_conn_request` / `tcp_v4_syn_recv_sock` queue checks.
//!
//! Not modelled: data transfer, FIN_WAIT_2 and its `tcp_fin_timeout`, the TIME_WAIT
//! socket's own handling of a new SYN (`tcp_timewait_state_process`), SO_REUSEADDR /
//! SO_REUSEPORT, `ip_local_reserved_ports`, `bind(0)`, IPv6, and the real siphash keys
//! (a keyed 64-bit mix stands in). See `docs/model.md`.

mod listener;
mod ports;
mod syn;

pub use listener::{AckOutcome, Listener, SynOutcome};
pub use ports::{AbortReason, CloseOutcome, CloseRole, Connected, SocketTable};
pub use syn::{CONFIG_HZ, SynDeadline, SynTimer, timer_wheel_expiry};

use crate::kernel::Sysctls;
use crate::time::SimDuration;

/// `TCP_TIMEWAIT_LEN`: how long the active closer keeps TIME_WAIT (not tunable).
pub const TCP_TIMEWAIT_LEN: SimDuration = SimDuration::from_secs(60);

/// `net.ipv4.tcp_tw_reuse`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum TwReuse {
    /// 0: never reuse a TIME_WAIT 4-tuple for `connect()`.
    Never,
    /// 1: reuse when timestamps allow it.
    Always,
    /// 2 (default): reuse only for loopback traffic.
    LoopbackOnly,
}

impl TwReuse {
    /// From the sysctl value.
    #[must_use]
    pub fn from_sysctl(v: u8) -> Option<TwReuse> {
        match v {
            0 => Some(TwReuse::Never),
            1 => Some(TwReuse::Always),
            2 => Some(TwReuse::LoopbackOnly),
            _ => None,
        }
    }
}

/// The per-namespace socket tunables, validated.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SocketConfig {
    /// `net.ipv4.ip_local_port_range` (inclusive).
    pub port_range: (u16, u16),
    /// `net.ipv4.tcp_tw_reuse`.
    pub tw_reuse: TwReuse,
    /// `net.ipv4.tcp_tw_reuse_delay` (6.x, default 1 s).
    pub tw_reuse_delay: SimDuration,
    /// `net.ipv4.tcp_timestamps` negotiated on both sides (default on): TIME_WAIT
    /// sockets record the peer's timestamp, which `tcp_tw_reuse` requires.
    pub timestamps: bool,
    /// `net.ipv4.tcp_max_tw_buckets`.
    pub max_tw_buckets: u32,
    /// `net.core.somaxconn`: caps the `listen()` backlog.
    pub somaxconn: u32,
    /// `net.ipv4.tcp_syncookies` (0, 1 or 2).
    pub syncookies: u8,
    /// `net.ipv4.tcp_max_syn_backlog`.
    pub max_syn_backlog: u32,
}

impl Default for SocketConfig {
    /// The 6.18 defaults of [`Sysctls::default`].
    fn default() -> SocketConfig {
        SocketConfig {
            port_range: (32_768, 60_999),
            tw_reuse: TwReuse::LoopbackOnly,
            tw_reuse_delay: SimDuration::from_secs(1),
            timestamps: true,
            max_tw_buckets: 131_072,
            somaxconn: 4_096,
            syncookies: 1,
            max_syn_backlog: 2_048,
        }
    }
}

impl SocketConfig {
    /// The socket tunables of a namespace's sysctls (timestamps on).
    ///
    /// # Errors
    /// [`SocketError`] naming the sysctl whose value the kernel would reject.
    pub fn from_sysctls(s: &Sysctls) -> Result<SocketConfig, SocketError> {
        let (low, high) = s.ip_local_port_range;
        if low == 0 || low > high {
            return Err(SocketError::InvalidPortRange { low, high });
        }
        let tw_reuse = TwReuse::from_sysctl(s.tcp_tw_reuse).ok_or(SocketError::InvalidSysctl {
            name: "net.ipv4.tcp_tw_reuse",
            value: u64::from(s.tcp_tw_reuse),
        })?;
        if s.tcp_syncookies > 2 {
            return Err(SocketError::InvalidSysctl {
                name: "net.ipv4.tcp_syncookies",
                value: u64::from(s.tcp_syncookies),
            });
        }
        Ok(SocketConfig {
            port_range: (low, high),
            tw_reuse,
            tw_reuse_delay: s.tcp_tw_reuse_delay,
            timestamps: true,
            max_tw_buckets: s.tcp_max_tw_buckets,
            somaxconn: s.somaxconn,
            syncookies: s.tcp_syncookies,
            max_syn_backlog: s.tcp_max_syn_backlog,
        })
    }
}

/// Invalid socket configuration or API misuse. Simulated failures (EADDRNOTAVAIL,
/// ETIMEDOUT, queue overflows) are not errors of this kind: they are outcomes and
/// counters; [`ConnectError`] is the `connect()` errno.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// `ip_local_port_range` that the kernel rejects.
    #[error("net.ipv4.ip_local_port_range `{low} {high}` is invalid: need 0 < low <= high")]
    InvalidPortRange {
        /// First port.
        low: u16,
        /// Last port.
        high: u16,
    },
    /// A sysctl outside its allowed values.
    #[error("{name} = {value} is not an allowed value")]
    InvalidSysctl {
        /// The sysctl name.
        name: &'static str,
        /// The rejected value.
        value: u64,
    },
    /// An operation on a socket the table does not hold.
    #[error("no socket {tuple} in this namespace")]
    UnknownSocket {
        /// The 4-tuple asked for.
        tuple: crate::packet::Tuple,
    },
    /// A socket with this 4-tuple is already open.
    #[error("socket {tuple} already exists")]
    InUse {
        /// The 4-tuple.
        tuple: crate::packet::Tuple,
    },
    /// `close()` on a socket already in TIME_WAIT.
    #[error("socket {tuple} is already in TIME_WAIT")]
    AlreadyClosed {
        /// The socket's 4-tuple.
        tuple: crate::packet::Tuple,
    },
}

/// Why `connect()` failed: the errno the application sees. This is a simulated
/// outcome, counted in [`SocketStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// EADDRNOTAVAIL: every ephemeral port to this destination is in use.
    #[error("EADDRNOTAVAIL: no free ephemeral port")]
    AddrNotAvail,
}

/// Socket counters of one namespace, named after their `nstat` fields where Linux has
/// one (the two errno counts have no nstat field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SocketStats {
    /// `TcpExtListenOverflows`: SYNs or final ACKs that found the accept queue full.
    pub listen_overflows: u64,
    /// `TcpExtListenDrops`: SYNs and final ACKs a listener dropped, for any reason.
    pub listen_drops: u64,
    /// `TcpExtTCPTimeWaitOverflow`: closes that skipped TIME_WAIT (`tcp_max_tw_buckets`).
    pub time_wait_overflow: u64,
    /// `TcpExtTWRecycled`: TIME_WAIT sockets reused by `connect()` (`tcp_tw_reuse`).
    pub time_wait_recycled: u64,
    /// `TcpExtSyncookiesSent`.
    pub syncookies_sent: u64,
    /// `TcpExtTCPReqQFullDoCookies`: SYN queue full, answered with a cookie.
    pub req_queue_full_do_cookies: u64,
    /// `TcpExtTCPReqQFullDrop`: SYN queue full, SYN dropped (no cookies).
    pub req_queue_full_drop: u64,
    /// `connect()` calls that failed with EADDRNOTAVAIL.
    pub connect_eaddrnotavail: u64,
    /// `connect()` calls that failed with ETIMEDOUT.
    pub connect_etimedout: u64,
}

impl SocketStats {
    /// Every counter with its nstat name (`connect_*` for the errno counts), in a fixed
    /// order.
    #[must_use]
    pub fn nstat(&self) -> [(&'static str, u64); 9] {
        [
            ("TcpExtListenOverflows", self.listen_overflows),
            ("TcpExtListenDrops", self.listen_drops),
            ("TcpExtTCPTimeWaitOverflow", self.time_wait_overflow),
            ("TcpExtTWRecycled", self.time_wait_recycled),
            ("TcpExtSyncookiesSent", self.syncookies_sent),
            ("TcpExtTCPReqQFullDoCookies", self.req_queue_full_do_cookies),
            ("TcpExtTCPReqQFullDrop", self.req_queue_full_drop),
            ("connect_eaddrnotavail", self.connect_eaddrnotavail),
            ("connect_etimedout", self.connect_etimedout),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_default_sysctls_matches_default() {
        assert_eq!(
            SocketConfig::from_sysctls(&Sysctls::default()),
            Ok(SocketConfig::default())
        );
    }

    #[test]
    fn invalid_sysctls_are_named_in_the_error() {
        let mut s = Sysctls {
            ip_local_port_range: (5000, 4000),
            ..Sysctls::default()
        };
        let e = SocketConfig::from_sysctls(&s).unwrap_err();
        assert!(e.to_string().contains("5000 4000"), "{e}");
        s.ip_local_port_range = (4000, 5000);
        s.tcp_tw_reuse = 3;
        let e = SocketConfig::from_sysctls(&s).unwrap_err();
        assert!(e.to_string().contains("tcp_tw_reuse = 3"), "{e}");
    }
}
