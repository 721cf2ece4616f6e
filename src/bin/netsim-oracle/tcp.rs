//! TCP tools: the backend `server`, the open-loop `tcp-storm` client and `syn-probe`.

use crate::clock::Clock;
use crate::steps::{Driver, Progress};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bytes of the client's request and of the server's reply.
pub(crate) const MSG_LEN: usize = 16;
const REQUEST: &[u8; MSG_LEN] = b"nso-oracle-req\n\0";
const REPLY: &[u8; MSG_LEN] = b"nso-oracle-rep\n\0";

/// Which side sends the first FIN (and so holds the TIME_WAIT socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Closer {
    /// The server closes right after replying (HTTP/1.0 style).
    Server,
    /// The client closes after reading the reply; the server waits for its FIN.
    Client,
}

/// Most connections a `Closer::Client` server serves on threads of their own.
const MAX_HELD: u64 = 4096;

/// Runs the backend: accept, read the request, reply, then close first or wait for
/// the client's close. Exits after `duration` (a watchdog), whatever happens.
pub(crate) fn server(
    listen: SocketAddr,
    closer: Closer,
    workers: usize,
    duration: Duration,
) -> Result<(), String> {
    let listener = TcpListener::bind(listen).map_err(|e| format!("binding {listen}: {e}"))?;
    std::thread::spawn(move || {
        std::thread::sleep(duration);
        std::process::exit(0);
    });
    let active = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..workers.clamp(1, 256) {
        let l = listener
            .try_clone()
            .map_err(|e| format!("cloning listener: {e}"))?;
        let active = active.clone();
        handles.push(std::thread::spawn(move || {
            loop {
                match l.accept() {
                    // A client that closes first may hold its connection for long (`hold`
                    // steps): serve it on its own thread so accepting never stalls.
                    Ok((s, _)) if closer == Closer::Client && active.load(Ordering::Relaxed) < MAX_HELD => {
                        active.fetch_add(1, Ordering::Relaxed);
                        let mine = active.clone();
                        let spawned = std::thread::Builder::new().stack_size(64 * 1024).spawn(move || {
                            serve_one(s, closer);
                            mine.fetch_sub(1, Ordering::Relaxed);
                        });
                        if spawned.is_err() {
                            active.fetch_sub(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                    Ok((s, _)) => serve_one(s, closer),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }));
    }
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

fn serve_one(mut s: TcpStream, closer: Closer) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; MSG_LEN];
    if read_full(&mut s, &mut buf).is_err() {
        return;
    }
    if s.write_all(REPLY).is_err() {
        return;
    }
    if closer == Closer::Client {
        // Wait for the client's FIN so that the client is the active closer.
        let mut sink = [0u8; 64];
        while let Ok(n) = s.read(&mut sink) {
            if n == 0 {
                break;
            }
        }
    }
    let _ = s.shutdown(Shutdown::Both);
}

/// Reads exactly `buf.len()` bytes.
fn read_full(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Short name of a socket error, from its errno where there is one.
pub(crate) fn error_name(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(1) => "eperm".into(),
        Some(99) => "eaddrnotavail".into(),
        Some(104) => "econnreset".into(),
        Some(110) => "etimedout".into(),
        Some(111) => "econnrefused".into(),
        Some(113) => "ehostunreach".into(),
        Some(n) => format!("errno{n}"),
        // `connect_timeout` reports its own deadline without an errno.
        None if e.kind() == ErrorKind::TimedOut => "connect-timeout".into(),
        None => format!("{:?}", e.kind()).to_lowercase(),
    }
}

/// One connection attempt, as written to the per-connection log.
#[derive(Debug, Clone)]
struct ConnRecord {
    idx: u64,
    step: usize,
    dst: SocketAddr,
    sched_s: f64,
    start_s: f64,
    connect_s: Option<f64>,
    end_s: f64,
    outcome: String,
    local_port: Option<u16>,
}

/// Options of the TCP client.
#[derive(Debug, Clone)]
pub(crate) struct TcpClientOpts {
    pub(crate) dsts: Vec<SocketAddr>,
    pub(crate) connect_timeout: Duration,
    pub(crate) io_timeout: Duration,
    pub(crate) closer: Closer,
    pub(crate) max_workers: usize,
}

/// The `tcp-storm` driver.
#[derive(Debug)]
pub(crate) struct TcpClient {
    opts: TcpClientOpts,
    clock: Clock,
    progress: Arc<Progress>,
    next_idx: u64,
    step: usize,
    held: Vec<TcpStream>,
    log: Vec<ConnRecord>,
    /// Largest lateness of an open-loop start behind its schedule (seconds).
    pub(crate) max_lateness_s: f64,
    /// Largest number of workers a load step used.
    pub(crate) workers_used: usize,
}

impl TcpClient {
    /// A client with nothing sent yet.
    pub(crate) fn new(opts: TcpClientOpts, clock: Clock, progress: Arc<Progress>) -> TcpClient {
        TcpClient {
            opts,
            clock,
            progress,
            next_idx: 0,
            step: 0,
            held: Vec::new(),
            log: Vec::new(),
            max_lateness_s: 0.0,
            workers_used: 0,
        }
    }

    fn dst(&self, idx: u64) -> SocketAddr {
        let n = self.opts.dsts.len() as u64;
        self.opts.dsts[usize::try_from(idx % n).unwrap_or(0)]
    }

    /// Connects, exchanges request and reply; keeps the stream when `keep`.
    fn one(&self, idx: u64, sched_s: f64, keep: bool) -> (ConnRecord, Option<TcpStream>) {
        let dst = self.dst(idx);
        self.progress.started.fetch_add(1, Ordering::Relaxed);
        let start_s = self.clock.now_s();
        let mut rec = ConnRecord {
            idx,
            step: self.step,
            dst,
            sched_s,
            start_s,
            connect_s: None,
            end_s: start_s,
            outcome: String::new(),
            local_port: None,
        };
        let result = TcpStream::connect_timeout(&dst, self.opts.connect_timeout);
        let kept = match result {
            Err(e) => {
                rec.outcome = error_name(&e);
                None
            }
            Ok(mut s) => {
                rec.connect_s = Some(self.clock.now_s() - start_s);
                rec.local_port = s.local_addr().ok().map(|a| a.port());
                match exchange(&mut s, self.opts.io_timeout, self.opts.closer, keep) {
                    Ok(()) => {
                        rec.outcome = "ok".into();
                        keep.then_some(s)
                    }
                    Err(e) => {
                        rec.outcome = format!("exchange-{}", error_name(&e));
                        None
                    }
                }
            }
        };
        rec.end_s = self.clock.now_s();
        if rec.outcome == "ok" {
            self.progress.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.progress.fail.fetch_add(1, Ordering::Relaxed);
        }
        (rec, kept)
    }

    /// Writes the per-connection log (`idx,step,dst,sched_s,start_s,connect_s,end_s,outcome,local_port`).
    pub(crate) fn write_log(&self, path: &str) -> Result<(), String> {
        let mut out = String::from("idx,step,dst,sched_s,start_s,connect_s,end_s,outcome,local_port\n");
        let mut log = self.log.clone();
        log.sort_by_key(|r| r.idx);
        for r in &log {
            out.push_str(&format!(
                "{},{},{},{:.6},{:.6},{},{:.6},{},{}\n",
                r.idx,
                r.step,
                r.dst,
                r.sched_s,
                r.start_s,
                r.connect_s.map_or(String::new(), |c| format!("{c:.6}")),
                r.end_s,
                r.outcome,
                r.local_port.map_or(String::new(), |p| p.to_string())
            ));
        }
        std::fs::write(path, out).map_err(|e| format!("writing {path}: {e}"))
    }

    /// Outcome counts over the whole run, by name.
    pub(crate) fn outcome_counts(&self) -> std::collections::BTreeMap<String, u64> {
        let mut m = std::collections::BTreeMap::new();
        for r in &self.log {
            *m.entry(r.outcome.clone()).or_insert(0) += 1;
        }
        m
    }
}

fn exchange(s: &mut TcpStream, io: Duration, closer: Closer, keep: bool) -> std::io::Result<()> {
    s.set_read_timeout(Some(io))?;
    s.set_write_timeout(Some(io))?;
    s.set_nodelay(true)?;
    s.write_all(REQUEST)?;
    let mut buf = [0u8; MSG_LEN];
    read_full(s, &mut buf)?;
    if closer == Closer::Server && !keep {
        // Wait for the server's FIN so that the server is the active closer.
        let mut sink = [0u8; 64];
        loop {
            match s.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

impl Driver for TcpClient {
    fn load(&mut self, count: u64, rate: f64, at: Duration) -> Result<(), String> {
        self.step += 1;
        // Enough workers that the rate holds while every connect stalls for its timeout.
        let busy_s = self.opts.connect_timeout.as_secs_f64() + 0.5;
        let want = (rate * busy_s).ceil() as usize + 4;
        let workers = want
            .min(self.opts.max_workers)
            .min(usize::try_from(count).unwrap_or(usize::MAX))
            .max(1);
        self.workers_used = self.workers_used.max(workers);
        let base = self.next_idx;
        self.next_idx += count;
        let next = AtomicU64::new(0);
        let records = Mutex::new(Vec::with_capacity(usize::try_from(count).unwrap_or(0)));
        let lateness = Mutex::new(0.0f64);
        let failed_spawn = AtomicBool::new(false);
        let this = &*self;
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let spawned = std::thread::Builder::new()
                    .stack_size(128 * 1024)
                    .spawn_scoped(scope, || {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= count {
                                return;
                            }
                            let sched = at + Duration::from_secs_f64(i as f64 / rate);
                            this.clock.sleep_until(sched);
                            let late = this.clock.elapsed().saturating_sub(sched).as_secs_f64();
                            let (rec, _) = this.one(base + i, sched.as_secs_f64(), false);
                            if let Ok(mut l) = lateness.lock() {
                                *l = l.max(late);
                            }
                            if let Ok(mut r) = records.lock() {
                                r.push(rec);
                            }
                        }
                    });
                if spawned.is_err() {
                    failed_spawn.store(true, Ordering::Relaxed);
                    break;
                }
            }
        });
        if failed_spawn.load(Ordering::Relaxed) {
            return Err(format!("could not spawn {workers} worker threads"));
        }
        self.max_lateness_s = self.max_lateness_s.max(lateness.into_inner().unwrap_or(0.0));
        self.log.extend(records.into_inner().unwrap_or_default());
        Ok(())
    }

    fn hold(&mut self, k: u64) -> Result<(), String> {
        self.step += 1;
        for _ in 0..k {
            let idx = self.next_idx;
            self.next_idx += 1;
            let (rec, s) = self.one(idx, self.clock.now_s(), true);
            self.log.push(rec);
            self.held.extend(s);
        }
        Ok(())
    }

    fn release(&mut self) -> Result<(), String> {
        self.step += 1;
        for s in self.held.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        Ok(())
    }

    fn try_n(&mut self, n: u64) -> Result<(), String> {
        self.step += 1;
        for _ in 0..n {
            let idx = self.next_idx;
            self.next_idx += 1;
            let (rec, _) = self.one(idx, self.clock.now_s(), false);
            self.log.push(rec);
        }
        Ok(())
    }
}

/// Reads `Tcp: OutSegs + RetransSegs` of this process's namespace from
/// `/proc/self/net/snmp` (OutSegs excludes retransmissions, RFC 2012 tcpOutSegs).
pub(crate) fn tcp_out_segs() -> Result<u64, String> {
    let text = std::fs::read_to_string("/proc/self/net/snmp")
        .map_err(|e| format!("reading /proc/self/net/snmp: {e}"))?;
    parse_out_segs(&text)
}

fn parse_out_segs(text: &str) -> Result<u64, String> {
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(h), Some(v)) = (tcp.next(), tcp.next()) else {
        return Err("no Tcp: lines in snmp".into());
    };
    let values: Vec<&str> = v.split_whitespace().collect();
    let mut total = 0;
    for name in ["OutSegs", "RetransSegs"] {
        let i = h
            .split_whitespace()
            .position(|c| c == name)
            .ok_or_else(|| format!("no {name} column"))?;
        total += values
            .get(i)
            .and_then(|c| c.parse::<u64>().ok())
            .ok_or_else(|| format!("bad {name} value"))?;
    }
    Ok(total)
}

/// `syn-probe`: one connect to a black hole while a thread polls `Tcp: OutSegs` +
/// `RetransSegs` every `poll`; each increment is a (re)transmitted SYN (the namespace must have no
/// other TCP traffic). Returns the SYN times and the connect outcome.
pub(crate) fn syn_probe(
    dst: SocketAddr,
    connect_timeout: Option<Duration>,
    poll: Duration,
    out: &str,
    clock: Clock,
) -> Result<serde_json::Value, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let base = tcp_out_segs()?;
    let poller = {
        let stop = stop.clone();
        std::thread::spawn(move || -> Result<Vec<(f64, u64)>, String> {
            let mut seen = base;
            let mut syns = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let now = tcp_out_segs()?;
                if now > seen {
                    syns.push((clock.now_s(), now - seen));
                    seen = now;
                }
                std::thread::sleep(poll);
            }
            Ok(syns)
        })
    };
    let t0 = clock.now_s();
    let res = match connect_timeout {
        Some(t) => TcpStream::connect_timeout(&dst, t),
        None => TcpStream::connect(dst),
    };
    let elapsed = clock.now_s() - t0;
    std::thread::sleep(poll * 3);
    stop.store(true, Ordering::Relaxed);
    let syns = poller.join().map_err(|_| "poller panicked".to_owned())??;
    let mut f = File::create(out).map_err(|e| format!("creating {out}: {e}"))?;
    let mut text = String::from("syn,t_s,segments\n");
    for (i, (t, n)) in syns.iter().enumerate() {
        text.push_str(&format!("{},{:.4},{}\n", i, t - t0, n));
    }
    f.write_all(text.as_bytes())
        .map_err(|e| format!("writing {out}: {e}"))?;
    Ok(serde_json::json!({
        "dst": dst.to_string(),
        "connect_timeout_s": connect_timeout.map(|d| d.as_secs_f64()),
        "poll_s": poll.as_secs_f64(),
        "outcome": match &res { Ok(_) => "connected".to_owned(), Err(e) => error_name(e) },
        "elapsed_s": elapsed,
        "syn_times_s": syns.iter().map(|(t, _)| ((t - t0) * 1e4).round() / 1e4).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_segments_include_retransmissions() {
        let snmp =
            "Ip: Forwarding\nIp: 1\nTcp: RtoAlgorithm ActiveOpens OutSegs RetransSegs\nTcp: 1 5 42 3\n";
        assert_eq!(parse_out_segs(snmp).unwrap(), 45);
        assert!(parse_out_segs("Ip: a\nIp: 1\n").is_err());
    }

    #[test]
    fn errno_names_match_the_socket_errors_of_a_storm() {
        assert_eq!(
            error_name(&std::io::Error::from_raw_os_error(99)),
            "eaddrnotavail"
        );
        assert_eq!(error_name(&std::io::Error::from_raw_os_error(110)), "etimedout");
        assert_eq!(
            error_name(&std::io::Error::from(ErrorKind::TimedOut)),
            "connect-timeout"
        );
    }
}
