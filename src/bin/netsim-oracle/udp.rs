//! UDP tools: `udp-echo`, `udp-flood` (one datagram per unique 5-tuple, from
//! explicitly bound source ports) and `udp-race` (two datagrams of one socket sent
//! from two threads released by a spin barrier, the glibc A/AAAA pattern).

use crate::clock::Clock;
use crate::steps::{Driver, Progress};
use crate::tcp::error_name;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Echoes every datagram back from the address it arrived on (one bound socket
/// per address, so answers come from the DNATed destination). With `tag`, one byte
/// is appended to each answer: the index of the listening address, so a client behind
/// a DNAT'd VIP learns which backend answered. Exits after `duration`.
pub(crate) fn echo(listen: &[SocketAddr], tag: bool, duration: Duration) -> Result<(), String> {
    let mut socks = Vec::new();
    for a in listen {
        socks.push(UdpSocket::bind(a).map_err(|e| format!("binding {a}: {e}"))?);
    }
    std::thread::spawn(move || {
        std::thread::sleep(duration);
        std::process::exit(0);
    });
    let handles: Vec<_> = socks
        .into_iter()
        .enumerate()
        .map(|(index, s)| {
            std::thread::spawn(move || {
                let mut buf = [0u8; 1501];
                loop {
                    if let Ok((n, from)) = s.recv_from(&mut buf[..1500]) {
                        let len = if tag {
                            buf[n] = u8::try_from(index).unwrap_or(u8::MAX);
                            n + 1
                        } else {
                            n
                        };
                        let _ = s.send_to(&buf[..len], from);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

/// An inclusive port range `A-B` (or a single port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PortRange {
    pub(crate) first: u16,
    pub(crate) last: u16,
}

impl PortRange {
    /// Parses `A-B` or `A`.
    pub(crate) fn parse(text: &str) -> Result<PortRange, String> {
        let (a, b) = text.split_once('-').unwrap_or((text, text));
        let first: u16 = a
            .trim()
            .parse()
            .map_err(|e| format!("port range `{text}`: {e}"))?;
        let last: u16 = b
            .trim()
            .parse()
            .map_err(|e| format!("port range `{text}`: {e}"))?;
        if first == 0 || last < first {
            return Err(format!("port range `{text}` is empty or starts at 0"));
        }
        Ok(PortRange { first, last })
    }

    fn len(self) -> u64 {
        u64::from(self.last - self.first) + 1
    }
}

/// The `udp-flood` driver: tuple `i` is (src:sport_i, dst:dport_i) with
/// `sport_i = sports.first + i / |dports|`, `dport_i = dports.first + i % |dports|`,
/// so every datagram of a run is a new conntrack entry. The index continues across
/// steps; a source port that cannot be bound is skipped whole.
#[derive(Debug)]
pub(crate) struct Flood {
    src: IpAddr,
    sports: PortRange,
    dst: IpAddr,
    dports: PortRange,
    clock: Clock,
    progress: Arc<Progress>,
    next: u64,
    sock: Option<(u16, UdpSocket)>,
    /// Source ports skipped because bind failed.
    pub(crate) bind_skips: u64,
    /// Send errors by name.
    pub(crate) errors: std::collections::BTreeMap<String, u64>,
}

impl Flood {
    /// A flood with nothing sent yet.
    pub(crate) fn new(
        src: IpAddr,
        sports: PortRange,
        dst: IpAddr,
        dports: PortRange,
        clock: Clock,
        progress: Arc<Progress>,
    ) -> Flood {
        Flood {
            src,
            sports,
            dst,
            dports,
            clock,
            progress,
            next: 0,
            sock: None,
            bind_skips: 0,
            errors: Default::default(),
        }
    }

    /// Sends the datagram of the next tuple; false when the tuple space is exhausted.
    fn send_next(&mut self) -> bool {
        loop {
            let nd = self.dports.len();
            let sidx = self.next / nd;
            if sidx >= self.sports.len() {
                return false;
            }
            let sport = self.sports.first + u16::try_from(sidx).unwrap_or(0);
            let dport = self.dports.first + u16::try_from(self.next % nd).unwrap_or(0);
            if self.sock.as_ref().map(|(p, _)| *p) != Some(sport) {
                self.sock = None;
                match UdpSocket::bind(SocketAddr::new(self.src, sport)) {
                    Ok(s) => self.sock = Some((sport, s)),
                    Err(_) => {
                        self.bind_skips += 1;
                        self.next = (sidx + 1) * nd;
                        continue;
                    }
                }
            }
            self.next += 1;
            self.progress.started.fetch_add(1, Ordering::Relaxed);
            let Some((_, s)) = &self.sock else { return false };
            match s.send_to(b"nso-udp\n", SocketAddr::new(self.dst, dport)) {
                Ok(_) => {
                    self.progress.ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.progress.fail.fetch_add(1, Ordering::Relaxed);
                    *self.errors.entry(error_name(&e)).or_insert(0) += 1;
                }
            }
            return true;
        }
    }
}

impl Driver for Flood {
    fn load(&mut self, count: u64, rate: f64, at: Duration) -> Result<(), String> {
        for i in 0..count {
            self.clock
                .sleep_until(at + Duration::from_secs_f64(i as f64 / rate));
            if !self.send_next() {
                return Err(format!(
                    "udp-flood ran out of (sport, dport) tuples after {} datagrams",
                    self.next
                ));
            }
        }
        self.sock = None;
        Ok(())
    }
}

/// How the two datagrams of a pair are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RaceMode {
    /// Two threads released together by a spin barrier (they run on two CPUs when both are free).
    Threads,
    /// One thread sends both back to back (control: no race expected).
    Sequential,
}

/// The `udp-race` driver: per pair a fresh connected socket; datagram tags 0 and 1
/// carry the pair index; answers are collected after each load step.
#[derive(Debug)]
pub(crate) struct Race {
    dst: SocketAddr,
    mode: RaceMode,
    reply_wait: Duration,
    clock: Clock,
    progress: Arc<Progress>,
    /// Per pair: gap between the two sends (ns, second minus first), answers to tag 0 and 1.
    pub(crate) pairs: Vec<(i64, u8, u8)>,
}

impl Race {
    /// A race with no pairs yet.
    pub(crate) fn new(
        dst: SocketAddr,
        mode: RaceMode,
        reply_wait: Duration,
        clock: Clock,
        progress: Arc<Progress>,
    ) -> Race {
        Race {
            dst,
            mode,
            reply_wait,
            clock,
            progress,
            pairs: Vec::new(),
        }
    }

    /// Writes `pair,gap_ns,answer0,answer1`.
    pub(crate) fn write_log(&self, path: &str) -> Result<(), String> {
        let mut out = String::from("pair,gap_ns,answer0,answer1\n");
        for (i, (g, a, b)) in self.pairs.iter().enumerate() {
            out.push_str(&format!("{i},{g},{a},{b}\n"));
        }
        std::fs::write(path, out).map_err(|e| format!("writing {path}: {e}"))
    }
}

fn payload(tag: u8, pair: u64) -> [u8; 9] {
    let mut p = [0u8; 9];
    p[0] = tag;
    p[1..].copy_from_slice(&pair.to_le_bytes());
    p
}

/// Spin until `counter` reaches `target`, at most `limit` (then Err).
fn spin_barrier(counter: &AtomicU64, target: u64, clock: &Clock, limit: Duration) -> Result<(), String> {
    let deadline = clock.elapsed() + limit;
    let mut spins = 0u32;
    while counter.load(Ordering::Acquire) < target {
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(4096) && clock.elapsed() > deadline {
            return Err("udp-race: partner thread did not reach the barrier within 5 s".into());
        }
    }
    Ok(())
}

impl Driver for Race {
    fn load(&mut self, count: u64, rate: f64, at: Duration) -> Result<(), String> {
        let base = self.pairs.len() as u64;
        let mut socks = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        for _ in 0..count {
            let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("udp-race bind: {e}"))?;
            s.connect(self.dst)
                .map_err(|e| format!("udp-race connect {}: {e}", self.dst))?;
            socks.push(s);
        }
        let n = usize::try_from(count).unwrap_or(0);
        let mut sent = vec![[0i64; 2]; n];
        let clock = self.clock;
        let progress = &self.progress;
        match self.mode {
            RaceMode::Sequential => {
                for (i, s) in socks.iter().enumerate() {
                    clock.sleep_until(at + Duration::from_secs_f64(i as f64 / rate));
                    progress.started.fetch_add(1, Ordering::Relaxed);
                    let t0 = clock.elapsed().as_nanos() as i64;
                    let _ = s.send(&payload(0, base + i as u64));
                    let t1 = clock.elapsed().as_nanos() as i64;
                    let _ = s.send(&payload(1, base + i as u64));
                    sent[i] = [t0, t1];
                }
            }
            RaceMode::Threads => {
                let arrived = AtomicU64::new(0);
                let (socks_ref, arrived_ref) = (&socks, &arrived);
                let results: Vec<Result<Vec<i64>, String>> = std::thread::scope(|scope| {
                    let hs: Vec<_> = (0..2u8)
                        .map(|tag| {
                            scope.spawn(move || -> Result<Vec<i64>, String> {
                                let mut times = Vec::with_capacity(socks_ref.len());
                                for (i, s) in socks_ref.iter().enumerate() {
                                    if tag == 0 {
                                        clock.sleep_until(at + Duration::from_secs_f64(i as f64 / rate));
                                        progress.started.fetch_add(1, Ordering::Relaxed);
                                    }
                                    arrived_ref.fetch_add(1, Ordering::AcqRel);
                                    spin_barrier(
                                        arrived_ref,
                                        2 * (i as u64 + 1),
                                        &clock,
                                        Duration::from_secs(5),
                                    )?;
                                    let _ = s.send(&payload(tag, base + i as u64));
                                    times.push(clock.elapsed().as_nanos() as i64);
                                }
                                Ok(times)
                            })
                        })
                        .collect();
                    hs.into_iter()
                        .map(|h| h.join().unwrap_or_else(|_| Err("race thread panicked".into())))
                        .collect()
                });
                let mut it = results.into_iter();
                let (Some(a), Some(b)) = (it.next(), it.next()) else {
                    return Err("udp-race: missing thread result".into());
                };
                let (a, b) = (a?, b?);
                for i in 0..n {
                    sent[i] = [a[i], b[i]];
                }
            }
        }
        // Collect answers until every socket has both or the wait ends.
        let mut answers = vec![[0u8; 2]; n];
        for s in &socks {
            s.set_nonblocking(true)
                .map_err(|e| format!("udp-race nonblocking: {e}"))?;
        }
        let deadline = self.clock.elapsed() + self.reply_wait;
        let mut buf = [0u8; 64];
        while self.clock.elapsed() < deadline {
            let mut missing = false;
            for (i, s) in socks.iter().enumerate() {
                loop {
                    match s.recv(&mut buf) {
                        Ok(9) if buf[0] < 2 && buf[1..9] == (base + i as u64).to_le_bytes() => {
                            answers[i][usize::from(buf[0])] += 1;
                        }
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
                missing |= answers[i][0] == 0 || answers[i][1] == 0;
            }
            if !missing {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for i in 0..n {
            let both = answers[i][0] > 0 && answers[i][1] > 0;
            if both {
                self.progress.ok.fetch_add(1, Ordering::Relaxed);
            } else {
                self.progress.fail.fetch_add(1, Ordering::Relaxed);
            }
            self.pairs
                .push((sent[i][1] - sent[i][0], answers[i][0], answers[i][1]));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_parse_single_ports_and_spans() {
        assert_eq!(PortRange::parse("9000-9099").unwrap().len(), 100);
        assert_eq!(PortRange::parse("53").unwrap(), PortRange { first: 53, last: 53 });
        assert!(PortRange::parse("10-5").is_err());
        assert!(PortRange::parse("0-5").is_err());
    }
}
