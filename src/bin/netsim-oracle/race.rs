//! `race-pairs`: the conntrack insertion race measured pair by pair.
//!
//! Each pair is two packets that would create the same conntrack entry in `nso-rtr`
//! (UDP: two datagrams of one connected socket to the DNAT'd VIP, the glibc A/AAAA
//! pattern; TCP: two SYNs from two client addresses with the same source port that
//! MASQUERADE maps to the same reply tuple, the XING race). The two sends are placed
//! as asked (two threads pinned to different CPUs, to the same CPU, left to the
//! scheduler, one thread with two `send()`s, or one `sendmmsg()`), the second one a
//! target gap after the first (the gap targets are interleaved pair by pair, so a
//! change of machine load hits every target alike). Around every send the monotonic
//! clock and the CPU are recorded; after the answers arrived (or `--reply-wait`
//! passed) the per-CPU rows of `nso-rtr`'s `/proc/net/stat/nf_conntrack` are read
//! again, so every clash is attributed to exactly one pair: pairs are sequential and
//! nothing else runs through `nso-rtr`.
//!
//! Packets from a local sender reach `nso-rtr` through a veth without NAPI, whose
//! receive path runs in the softirq of the sending CPU before `send()` returns; so
//! the CPU a sender runs on is the CPU that processes its packet in `nso-rtr`.

use crate::clock::Clock;
use crate::ctstat::{CpuClash, parse_per_cpu};
use crate::steps::{Driver, Progress};
use nix::sched::{CpuSet, sched_getcpu, sched_setaffinity};
use nix::sys::socket::{
    AddressFamily, MsgFlags, MultiHeaders, SockFlag, SockType, SockaddrIn, bind, connect, sendmmsg, socket,
};
use nix::unistd::Pid;
use serde::Serialize;
use std::io::IoSlice;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which protocol's race.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RaceProto {
    /// Two datagrams of one connected UDP socket (DNAT'd VIP; clash_resolve on 6.x).
    Udp,
    /// Two SYNs, same source port from two addresses, MASQUERADEd to one reply tuple.
    Tcp,
}

/// Where the two sends run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Placement {
    /// Two threads pinned to two different CPUs.
    Different,
    /// Two threads pinned to the same CPU.
    Same,
    /// Two threads, not pinned (the scheduler places them).
    Scheduler,
    /// One thread (not pinned): `send()`, wait for the gap, `send()`.
    OneThread,
    /// One thread (not pinned): both datagrams in one `sendmmsg()` call, as glibc's resolver does.
    Sendmmsg,
}

impl Placement {
    fn threads(self) -> usize {
        match self {
            Placement::Different | Placement::Same | Placement::Scheduler => 2,
            Placement::OneThread | Placement::Sendmmsg => 1,
        }
    }
}

/// Everything `race-pairs` needs besides the step script.
#[derive(Debug, Clone)]
pub(crate) struct RaceOpts {
    pub(crate) proto: RaceProto,
    pub(crate) dst: SocketAddrV4,
    pub(crate) placement: Placement,
    /// Target gaps, used round-robin pair by pair.
    pub(crate) gaps: Vec<Duration>,
    /// CPUs for the two threads (`different`: both, `same`: the first).
    pub(crate) cpus: [usize; 2],
    /// TCP: the two client addresses (same source port on both).
    pub(crate) src_ips: [Ipv4Addr; 2],
    /// TCP: source port of pair 0 (pair i uses base + i).
    pub(crate) sport_base: u16,
    pub(crate) reply_wait: Duration,
    /// `/proc/PID/net/stat/nf_conntrack` of a process inside the measured namespace.
    pub(crate) ct_stat_file: PathBuf,
}

/// One measured pair.
#[derive(Debug, Clone, Default)]
pub(crate) struct PairRecord {
    gap_target_ns: u64,
    /// Start and end (ns since the run started) of send 0 and send 1.
    start: [i64; 2],
    end: [i64; 2],
    /// CPU each send started on.
    cpu: [Option<usize>; 2],
    /// UDP: backend index that answered each datagram; TCP: 1 when the connect completed.
    answer: [Option<u8>; 2],
    clash_resolve: u64,
    insert_failed: u64,
    drop: u64,
    /// CPU rows whose clash_resolve or insert_failed moved.
    clash_cpus: Vec<usize>,
}

impl PairRecord {
    /// Achieved gap (start of send 1 minus start of send 0); none for `sendmmsg`.
    fn gap_ns(&self, placement: Placement) -> Option<i64> {
        (placement != Placement::Sendmmsg).then(|| self.start[1] - self.start[0])
    }
}

/// The `race-pairs` driver.
#[derive(Debug)]
pub(crate) struct PairRace {
    opts: RaceOpts,
    clock: Clock,
    progress: Arc<Progress>,
    /// Every pair measured so far.
    pub(crate) pairs: Vec<PairRecord>,
}

/// The sockets of one pair.
#[derive(Debug)]
enum PairSockets {
    Udp(UdpSocket),
    Tcp([OwnedFd; 2]),
}

/// What the two threads share for the pair in flight.
#[derive(Debug, Default)]
struct Shared {
    published: AtomicU64,
    arrived: AtomicU64,
    done: AtomicU64,
    slot: Mutex<Option<Arc<PairSockets>>>,
    /// Send 1 of the pair in flight: start, end, CPU (+1, 0 = unknown).
    second: Mutex<[i64; 3]>,
    /// Set when either thread gave up, so the other stops spinning.
    failed: AtomicU64,
}

const SPIN_LIMIT: Duration = Duration::from_secs(5);

fn payload(tag: u8, pair: u64) -> [u8; 9] {
    let mut p = [0u8; 9];
    p[0] = tag;
    p[1..].copy_from_slice(&pair.to_le_bytes());
    p
}

fn pin(cpu: usize) -> Result<(), String> {
    let mut set = CpuSet::new();
    set.set(cpu).map_err(|e| format!("cpu {cpu}: {e}"))?;
    sched_setaffinity(Pid::from_raw(0), &set).map_err(|e| format!("sched_setaffinity to cpu {cpu}: {e}"))
}

fn cpu_now() -> Option<usize> {
    sched_getcpu().ok()
}

impl PairRace {
    /// A race with no pairs yet.
    pub(crate) fn new(opts: RaceOpts, clock: Clock, progress: Arc<Progress>) -> Result<PairRace, String> {
        if opts.gaps.is_empty() {
            return Err("race-pairs needs at least one --gap".into());
        }
        if opts.gaps.iter().any(|g| *g > Duration::from_millis(10)) {
            return Err("race-pairs: gaps above 10ms measure nothing (the window is microseconds)".into());
        }
        if opts.proto == RaceProto::Tcp && opts.placement.threads() != 2 {
            return Err("race-pairs --proto tcp needs two threads (different, same or scheduler)".into());
        }
        Ok(PairRace {
            opts,
            clock,
            progress,
            pairs: Vec::new(),
        })
    }

    fn read_rows(&self) -> Result<Vec<CpuClash>, String> {
        let p = &self.opts.ct_stat_file;
        let text = std::fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
        parse_per_cpu(&text)
    }

    fn open_pair(&self, pair: u64) -> Result<PairSockets, String> {
        match self.opts.proto {
            RaceProto::Udp => {
                let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("race-pairs bind: {e}"))?;
                s.connect(self.opts.dst)
                    .map_err(|e| format!("race-pairs connect {}: {e}", self.opts.dst))?;
                Ok(PairSockets::Udp(s))
            }
            RaceProto::Tcp => {
                let port = u16::try_from(u64::from(self.opts.sport_base) + pair)
                    .map_err(|_| "race-pairs: source ports ran past 65535".to_string())?;
                let mk = |ip: Ipv4Addr| -> Result<OwnedFd, String> {
                    let fd = socket(
                        AddressFamily::Inet,
                        SockType::Stream,
                        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                        None,
                    )
                    .map_err(|e| format!("race-pairs socket: {e}"))?;
                    bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(ip, port)))
                        .map_err(|e| format!("race-pairs bind {ip}:{port}: {e}"))?;
                    Ok(fd)
                };
                Ok(PairSockets::Tcp([
                    mk(self.opts.src_ips[0])?,
                    mk(self.opts.src_ips[1])?,
                ]))
            }
        }
    }

    /// Waits for the answers of pair `pair` (UDP: both echoes; TCP: both connects),
    /// at most `reply_wait`.
    fn collect(&self, socks: &PairSockets, pair: u64) -> [Option<u8>; 2] {
        let deadline = self.clock.elapsed() + self.opts.reply_wait;
        let mut got = [None, None];
        match socks {
            PairSockets::Udp(s) => {
                let mut buf = [0u8; 64];
                while got.iter().any(Option::is_none) {
                    let now = self.clock.elapsed();
                    if now >= deadline {
                        break;
                    }
                    let _ = s.set_read_timeout(Some((deadline - now).max(Duration::from_micros(100))));
                    match s.recv(&mut buf) {
                        Ok(10) if buf[0] < 2 && buf[1..9] == pair.to_le_bytes() => {
                            got[usize::from(buf[0])] = Some(buf[9]);
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            }
            PairSockets::Tcp(fds) => {
                let streams: Vec<TcpStream> = fds
                    .iter()
                    .filter_map(|fd| fd.try_clone().ok().map(TcpStream::from))
                    .collect();
                while self.clock.elapsed() < deadline {
                    for (i, st) in streams.iter().enumerate() {
                        if got[i].is_none() && st.peer_addr().is_ok() {
                            got[i] = Some(1);
                        }
                    }
                    if got.iter().all(Option::is_some) {
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
        got
    }

    /// Reads the counters after pair `rec` and attributes their movement to it.
    fn attribute(&self, prev: &mut Vec<CpuClash>, rec: &mut PairRecord) -> Result<(), String> {
        let rows = self.read_rows()?;
        for (cpu, (a, b)) in prev.iter().zip(&rows).enumerate() {
            let dc = b.clash_resolve - a.clash_resolve;
            let di = b.insert_failed - a.insert_failed;
            rec.clash_resolve += dc;
            rec.insert_failed += di;
            rec.drop += b.drop - a.drop;
            if dc + di > 0 {
                rec.clash_cpus.push(cpu);
            }
        }
        *prev = rows;
        Ok(())
    }

    /// Writes the per-pair CSV (see docs/oracle.md for the columns).
    pub(crate) fn write_log(&self, path: &str) -> Result<(), String> {
        let mut out = String::from(
            "pair,gap_target_ns,gap_ns,start0_ns,end0_ns,start1_ns,end1_ns,cpu0,cpu1,answer0,answer1,clash_resolve,insert_failed,drop,clash_cpus\n",
        );
        let opt = |v: Option<String>| v.unwrap_or_default();
        for (i, r) in self.pairs.iter().enumerate() {
            out.push_str(&format!(
                "{i},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                r.gap_target_ns,
                opt(r.gap_ns(self.opts.placement).map(|g| g.to_string())),
                r.start[0],
                r.end[0],
                r.start[1],
                r.end[1],
                opt(r.cpu[0].map(|c| c.to_string())),
                opt(r.cpu[1].map(|c| c.to_string())),
                opt(r.answer[0].map(|c| c.to_string())),
                opt(r.answer[1].map(|c| c.to_string())),
                r.clash_resolve,
                r.insert_failed,
                r.drop,
                r.clash_cpus
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
            ));
        }
        std::fs::write(path, out).map_err(|e| format!("writing {path}: {e}"))
    }

    /// Per gap target: pairs, clashes, achieved gap quantiles (for the JSON summary).
    pub(crate) fn summary(&self) -> serde_json::Value {
        let mut per = Vec::new();
        for g in &self.opts.gaps {
            let target = g.as_nanos() as u64;
            let sel: Vec<&PairRecord> = self.pairs.iter().filter(|p| p.gap_target_ns == target).collect();
            let mut gaps: Vec<i64> = sel.iter().filter_map(|p| p.gap_ns(self.opts.placement)).collect();
            gaps.sort_unstable();
            let q = |f: f64| {
                gaps.get(((gaps.len().saturating_sub(1)) as f64 * f) as usize)
                    .copied()
            };
            per.push(serde_json::json!({
                "gap_target_ns": target,
                "pairs": sel.len(),
                "clash_resolve": sel.iter().map(|p| p.clash_resolve).sum::<u64>(),
                "insert_failed": sel.iter().map(|p| p.insert_failed).sum::<u64>(),
                "drop": sel.iter().map(|p| p.drop).sum::<u64>(),
                "raced_pairs": sel.iter().filter(|p| p.clash_resolve + p.insert_failed > 0).count(),
                "gap_ns": {"p10": q(0.1), "p50": q(0.5), "p90": q(0.9)},
            }));
        }
        serde_json::json!({
            "pairs": self.pairs.len(),
            "placement": self.opts.placement,
            "proto": self.opts.proto,
            "per_gap": per,
        })
    }
}

/// Spins until `t`, yielding the CPU on every round when `polite` (two threads on one CPU).
fn spin_until(clock: &Clock, t: Duration, polite: bool) {
    while clock.elapsed() < t {
        if polite {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Spins until `counter >= target`, at most [`SPIN_LIMIT`], or until `failed` is set.
fn spin_for(
    counter: &AtomicU64,
    target: u64,
    shared: &Shared,
    clock: &Clock,
    polite: bool,
) -> Result<(), String> {
    let deadline = clock.elapsed() + SPIN_LIMIT;
    let mut spins = 0u32;
    while counter.load(Ordering::Acquire) < target {
        if shared.failed.load(Ordering::Relaxed) > 0 {
            return Err("race-pairs: the partner thread failed".into());
        }
        if polite {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(1024) && clock.elapsed() > deadline {
            return Err("race-pairs: partner thread did not arrive within 5 s".into());
        }
    }
    Ok(())
}

/// Sends datagram or SYN `who` of pair `pair` on `socks`; returns (start, end, cpu).
fn fire(clock: &Clock, socks: &PairSockets, dst: SocketAddrV4, who: u8, pair: u64) -> [i64; 3] {
    let cpu = cpu_now().map_or(0, |c| c as i64 + 1);
    let t0 = clock.elapsed().as_nanos() as i64;
    match socks {
        PairSockets::Udp(s) => {
            let _ = s.send(&payload(who, pair));
        }
        PairSockets::Tcp(fds) => {
            // Non-blocking: the SYN leaves (and crosses nso-rtr) inside this call.
            let _ = connect(fds[usize::from(who)].as_raw_fd(), &SockaddrIn::from(dst));
        }
    }
    let t1 = clock.elapsed().as_nanos() as i64;
    [t0, t1, cpu]
}

/// Both datagrams of a pair in one `sendmmsg()`.
fn fire_mmsg(clock: &Clock, sock: &UdpSocket, pair: u64) -> Result<[i64; 3], String> {
    let (p0, p1) = (payload(0, pair), payload(1, pair));
    let iovs = [[IoSlice::new(&p0)], [IoSlice::new(&p1)]];
    let addrs: [Option<SockaddrIn>; 2] = [None, None];
    let mut headers = MultiHeaders::<SockaddrIn>::preallocate(2, None);
    let cpu = cpu_now().map_or(0, |c| c as i64 + 1);
    let t0 = clock.elapsed().as_nanos() as i64;
    let sent = sendmmsg(
        sock.as_raw_fd(),
        &mut headers,
        &iovs,
        addrs,
        [],
        MsgFlags::empty(),
    )
    .map_err(|e| format!("sendmmsg: {e}"))?
    .count();
    let t1 = clock.elapsed().as_nanos() as i64;
    if sent != 2 {
        return Err(format!("sendmmsg sent {sent} of 2 datagrams"));
    }
    Ok([t0, t1, cpu])
}

fn unpack(v: [i64; 3]) -> (i64, i64, Option<usize>) {
    (v[0], v[1], usize::try_from(v[2] - 1).ok())
}

impl Driver for PairRace {
    fn load(&mut self, count: u64, rate: f64, at: Duration) -> Result<(), String> {
        match self.opts.placement.threads() {
            1 => self.load_one_thread(count, rate, at),
            _ => self.load_two_threads(count, rate, at),
        }
    }
}

impl PairRace {
    fn scheduled(at: Duration, i: u64, rate: f64) -> Duration {
        at + Duration::from_secs_f64(i as f64 / rate)
    }

    fn gap_of(&self, pair: u64) -> Duration {
        self.opts.gaps[(pair % self.opts.gaps.len() as u64) as usize]
    }

    fn load_one_thread(&mut self, count: u64, rate: f64, at: Duration) -> Result<(), String> {
        let mut prev = self.read_rows()?;
        let clock = self.clock;
        for i in 0..count {
            let pair = self.pairs.len() as u64;
            let socks = self.open_pair(pair)?;
            let PairSockets::Udp(sock) = &socks else {
                return Err("one-thread placements are UDP only".into());
            };
            let gap = self.gap_of(pair);
            clock.sleep_until(Self::scheduled(at, i, rate));
            self.progress.started.fetch_add(1, Ordering::Relaxed);
            let mut rec = PairRecord {
                gap_target_ns: gap.as_nanos() as u64,
                ..PairRecord::default()
            };
            let (a, b) = if self.opts.placement == Placement::Sendmmsg {
                let v = fire_mmsg(&clock, sock, pair)?;
                (v, v)
            } else {
                let a = fire(&clock, &socks, self.opts.dst, 0, pair);
                spin_until(&clock, Duration::from_nanos(a[0] as u64) + gap, false);
                (a, fire(&clock, &socks, self.opts.dst, 1, pair))
            };
            for (k, v) in [a, b].into_iter().enumerate() {
                (rec.start[k], rec.end[k], rec.cpu[k]) = unpack(v);
            }
            rec.answer = self.collect(&socks, pair);
            self.attribute(&mut prev, &mut rec)?;
            self.finish(rec);
        }
        Ok(())
    }

    fn finish(&mut self, rec: PairRecord) {
        if rec.answer.iter().all(Option::is_some) {
            self.progress.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.progress.fail.fetch_add(1, Ordering::Relaxed);
        }
        self.pairs.push(rec);
    }

    fn load_two_threads(&mut self, count: u64, rate: f64, at: Duration) -> Result<(), String> {
        let shared = Shared::default();
        let placement = self.opts.placement;
        let polite = placement == Placement::Same;
        let cpu_of = |who: usize| match placement {
            Placement::Different => Some(self.opts.cpus[who]),
            Placement::Same => Some(self.opts.cpus[0]),
            _ => None,
        };
        let (cpu0, cpu1) = (cpu_of(0), cpu_of(1));
        let base = self.pairs.len() as u64;
        let gaps: Vec<Duration> = (0..count).map(|i| self.gap_of(base + i)).collect();
        let (clock, dst) = (self.clock, self.opts.dst);
        std::thread::scope(|scope| -> Result<(), String> {
            let sh = &shared;
            let gaps = &gaps;
            let second = scope.spawn(move || -> Result<(), String> {
                let r = (|| {
                    if let Some(c) = cpu1 {
                        pin(c)?;
                    }
                    for i in 0..count {
                        clock.sleep_until(Self::scheduled(at, i, rate));
                        spin_for(&sh.published, i + 1, sh, &clock, polite)?;
                        let socks = sh
                            .slot
                            .lock()
                            .map_err(|_| "race-pairs: poisoned slot")?
                            .clone()
                            .ok_or("race-pairs: no sockets published")?;
                        sh.arrived.fetch_add(1, Ordering::AcqRel);
                        spin_for(&sh.arrived, 2 * (i + 1), sh, &clock, polite)?;
                        let release = clock.elapsed();
                        spin_until(&clock, release + gaps[i as usize], polite);
                        let v = fire(&clock, &socks, dst, 1, base + i);
                        *sh.second.lock().map_err(|_| "race-pairs: poisoned slot")? = v;
                        sh.done.store(i + 1, Ordering::Release);
                    }
                    Ok(())
                })();
                if r.is_err() {
                    sh.failed.store(1, Ordering::Relaxed);
                }
                r
            });
            let first = self.first_thread(sh, cpu0, count, rate, at, gaps);
            if first.is_err() {
                sh.failed.store(1, Ordering::Relaxed);
            }
            let second = second
                .join()
                .unwrap_or_else(|_| Err("race-pairs: second thread panicked".into()));
            first.and(second)
        })
    }

    /// Thread 0 of the two-thread placements: opens and publishes each pair's
    /// sockets, sends first, then collects answers and attributes the counters.
    fn first_thread(
        &mut self,
        sh: &Shared,
        cpu: Option<usize>,
        count: u64,
        rate: f64,
        at: Duration,
        gaps: &[Duration],
    ) -> Result<(), String> {
        if let Some(c) = cpu {
            pin(c)?;
        }
        let polite = self.opts.placement == Placement::Same;
        let clock = self.clock;
        let base = self.pairs.len() as u64;
        let mut prev = self.read_rows()?;
        for i in 0..count {
            let pair = base + i;
            let socks = Arc::new(self.open_pair(pair)?);
            *sh.slot.lock().map_err(|_| "race-pairs: poisoned slot")? = Some(socks.clone());
            sh.published.store(i + 1, Ordering::Release);
            clock.sleep_until(Self::scheduled(at, i, rate));
            self.progress.started.fetch_add(1, Ordering::Relaxed);
            sh.arrived.fetch_add(1, Ordering::AcqRel);
            spin_for(&sh.arrived, 2 * (i + 1), sh, &clock, polite)?;
            let a = fire(&clock, &socks, self.opts.dst, 0, pair);
            spin_for(&sh.done, i + 1, sh, &clock, polite)?;
            let b = *sh.second.lock().map_err(|_| "race-pairs: poisoned slot")?;
            let mut rec = PairRecord {
                gap_target_ns: gaps[i as usize].as_nanos() as u64,
                ..PairRecord::default()
            };
            for (k, v) in [a, b].into_iter().enumerate() {
                (rec.start[k], rec.end[k], rec.cpu[k]) = unpack(v);
            }
            rec.answer = self.collect(&socks, pair);
            self.attribute(&mut prev, &mut rec)?;
            *sh.slot.lock().map_err(|_| "race-pairs: poisoned slot")? = None;
            drop(socks);
            self.finish(rec);
        }
        Ok(())
    }
}
