//! `netsim-oracle`: load generators and samplers that record what a real Linux
//! kernel does, as reference traces for the simulator (`oracle/run.sh` drives it
//! inside the `nso-*` namespaces of `oracle/testbed.sh`; see docs/oracle.md).
//!
//! Every client follows a step script (`--step load:COUNT@RATE`, `sleep:DUR`,
//! `exec:CMD`, `until-count:N:MAX`, and for TCP `hold:K`, `release`, `try:N`) while a
//! sampler thread writes the conntrack counters of one namespace and the client's
//! progress to a CSV; a JSON summary with counter snapshots around every step goes
//! to stdout.
//!
//! No `unsafe`: CPU pinning, `sendmmsg` and bind-before-connect (`race-pairs` only)
//! come from `nix`'s safe wrappers; there are no raw sockets; docs/oracle.md says what
//! each experiment uses instead.

mod clock;
mod ctstat;
mod race;
mod steps;
mod tcp;
mod udp;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use clock::{Clock, parse_duration};
use serde_json::json;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use steps::{Progress, SampleOpts, Step, run_steps};

#[derive(Debug, Parser)]
#[command(
    name = "netsim-oracle",
    version,
    about = "Real-kernel load generators for the k8s-netsim oracle traces"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// TCP backend: accept, read the request, reply, close first or wait for the client's close.
    Server {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// Who closes first.
        #[arg(long, value_enum, default_value = "server")]
        close: tcp::Closer,
        /// Accepting threads.
        #[arg(long, default_value_t = 16)]
        workers: usize,
        /// Exit after this long, whatever happens.
        #[arg(long, default_value = "900s", value_parser = parse_duration)]
        duration: Duration,
    },
    /// UDP echo bound to each address (answers leave from the address that was asked).
    UdpEcho {
        /// Addresses to listen on (repeatable).
        #[arg(long, required = true)]
        listen: Vec<SocketAddr>,
        /// Append the index of the listening address (0, 1, ...) to every answer.
        #[arg(long)]
        tag: bool,
        /// Exit after this long.
        #[arg(long, default_value = "900s", value_parser = parse_duration)]
        duration: Duration,
    },
    /// Open-loop short TCP connections: connect, send 16 bytes, read 16 bytes, close.
    TcpStorm {
        /// Destinations, used round-robin (repeatable; several give tuple diversity).
        #[arg(long, required = true)]
        dst: Vec<SocketAddr>,
        /// Shorthand for a single `load` step: connections per second.
        #[arg(long)]
        rate: Option<f64>,
        /// Shorthand for a single `load` step: how long.
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// connect() deadline (the SYNs sent are those of the kernel schedule within it).
        #[arg(long, value_parser = parse_duration)]
        connect_timeout: Duration,
        /// Deadline for each read/write of the exchange.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        io_timeout: Duration,
        /// Who closes first (the server must be started with the same value).
        #[arg(long, value_enum, default_value = "server")]
        close: tcp::Closer,
        /// Upper bound of worker threads.
        #[arg(long, default_value_t = 2048)]
        max_workers: usize,
        /// Step script (repeatable); overrides --rate/--duration.
        #[arg(long = "step", value_parser = Step::parse)]
        steps: Vec<Step>,
        /// Per-connection CSV.
        #[arg(long)]
        conn_log: Option<String>,
        #[command(flatten)]
        sample: SampleOpts,
    },
    /// One connect() to a black hole; records when each SYN leaves (Tcp OutSegs polling).
    SynProbe {
        /// Destination that never answers.
        #[arg(long)]
        dst: SocketAddr,
        /// connect() deadline; omit to wait for the kernel's own ETIMEDOUT.
        #[arg(long, value_parser = parse_duration)]
        connect_timeout: Option<Duration>,
        /// Poll period of /proc/self/net/snmp.
        #[arg(long, default_value = "2ms", value_parser = parse_duration)]
        poll: Duration,
        /// CSV of SYN times.
        #[arg(long)]
        out: String,
    },
    /// One UDP datagram per new 5-tuple from explicitly bound source ports.
    UdpFlood {
        /// Source address to bind.
        #[arg(long)]
        src: IpAddr,
        /// Source ports to use, `A-B`.
        #[arg(long, default_value = "1024-65535", value_parser = udp::PortRange::parse)]
        sports: udp::PortRange,
        /// Destination address.
        #[arg(long)]
        dst: IpAddr,
        /// Destination ports, `A-B`.
        #[arg(long, value_parser = udp::PortRange::parse)]
        dports: udp::PortRange,
        /// Step script (repeatable).
        #[arg(long = "step", value_parser = Step::parse, required = true)]
        steps: Vec<Step>,
        #[command(flatten)]
        sample: SampleOpts,
    },
    /// Parallel A/AAAA-like pairs: two datagrams of one connected socket sent from two threads.
    UdpRace {
        /// Service address (e.g. the DNAT'd VIP:53).
        #[arg(long)]
        dst: SocketAddr,
        /// Two threads with a spin barrier, or one thread back to back.
        #[arg(long, value_enum, default_value = "threads")]
        mode: udp::RaceMode,
        /// How long to wait for answers after each load step.
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        reply_wait: Duration,
        /// Step script (repeatable); `load:PAIRS@RATE`.
        #[arg(long = "step", value_parser = Step::parse, required = true)]
        steps: Vec<Step>,
        /// Per-pair CSV.
        #[arg(long)]
        pair_log: Option<String>,
        #[command(flatten)]
        sample: SampleOpts,
    },
    /// The insertion race pair by pair: two packets that would create one conntrack
    /// entry, sent from a chosen CPU placement a target gap apart, with the clash
    /// counters of the measured namespace read around every pair.
    RacePairs {
        /// UDP (A/AAAA datagrams of one socket) or TCP (two SYNs MASQUERADEd to one tuple).
        #[arg(long, value_enum)]
        proto: race::RaceProto,
        /// UDP: the DNAT'd VIP:port; TCP: the backend address:port.
        #[arg(long)]
        dst: std::net::SocketAddrV4,
        /// Where the two sends run.
        #[arg(long, value_enum)]
        placement: race::Placement,
        /// Target gap between the two sends (repeatable; used round-robin pair by pair).
        #[arg(long = "gap", value_parser = parse_duration, required = true)]
        gaps: Vec<Duration>,
        /// CPUs of the two threads (`same` uses the first).
        #[arg(long, num_args = 2, default_values_t = [0usize, 1])]
        cpus: Vec<usize>,
        /// TCP: the two client addresses (both bind the same source port).
        #[arg(long, num_args = 2, default_values_t = [std::net::Ipv4Addr::new(10, 10, 1, 2), std::net::Ipv4Addr::new(10, 10, 1, 3)])]
        src_ips: Vec<std::net::Ipv4Addr>,
        /// TCP: source port of the first pair (pair i uses base + i).
        #[arg(long, default_value_t = 20_000)]
        sport_base: u16,
        /// How long to wait for the answers of a pair before reading the counters.
        #[arg(long, default_value = "20ms", value_parser = parse_duration)]
        reply_wait: Duration,
        /// `/proc/PID/net/stat/nf_conntrack` of a process inside the measured namespace.
        #[arg(long)]
        ct_stat_file: std::path::PathBuf,
        /// Step script (repeatable); `load:PAIRS@RATE`.
        #[arg(long = "step", value_parser = Step::parse, required = true)]
        steps: Vec<Step>,
        /// Per-pair CSV.
        #[arg(long)]
        pair_log: Option<String>,
        #[command(flatten)]
        sample: SampleOpts,
    },
    /// Only sample conntrack counters (no load) following a step script of sleeps/execs.
    Sample {
        /// Step script (repeatable).
        #[arg(long = "step", value_parser = Step::parse, required = true)]
        steps: Vec<Step>,
        #[command(flatten)]
        sample: SampleOpts,
    },
}

/// A driver without load, for `sample`.
#[derive(Debug)]
struct NoLoad;

impl steps::Driver for NoLoad {
    fn load(&mut self, _: u64, _: f64, _: Duration) -> Result<(), String> {
        Err("`sample` has no load steps".into())
    }
}

fn print_summary(
    tool: &str,
    clock: &Clock,
    params: serde_json::Value,
    steps: serde_json::Value,
    extra: serde_json::Value,
) -> Result<()> {
    let v = json!({
        "tool": tool,
        "start_epoch_s": clock.start_epoch_s(),
        "params": params,
        "steps": steps,
        "result": extra,
    });
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &v)?;
    writeln!(out)?;
    Ok(())
}

// Long on purpose: one match over the harness's subcommands, each arm a few lines.
fn main() -> Result<()> {
    let cli = Cli::parse();
    let clock = Clock::start();
    let progress = Arc::new(Progress::default());
    match cli.cmd {
        Cmd::Server {
            listen,
            close,
            workers,
            duration,
        } => tcp::server(listen, close, workers, duration).map_err(|e| anyhow!(e)),
        Cmd::UdpEcho {
            listen,
            tag,
            duration,
        } => udp::echo(&listen, tag, duration).map_err(|e| anyhow!(e)),
        Cmd::TcpStorm {
            dst,
            rate,
            duration,
            connect_timeout,
            io_timeout,
            close,
            max_workers,
            steps,
            conn_log,
            sample,
        } => {
            let steps = if steps.is_empty() {
                let (Some(rate), Some(d)) = (rate, duration) else {
                    bail!("tcp-storm needs --step ... or both --rate and --duration");
                };
                let count = (rate * d.as_secs_f64()).round() as u64;
                vec![Step::parse(&format!("load:{count}@{rate}")).map_err(|e| anyhow!(e))?]
            } else {
                steps
            };
            if connect_timeout.is_zero() {
                bail!("--connect-timeout must be above 0");
            }
            let opts = tcp::TcpClientOpts {
                dsts: dst.clone(),
                connect_timeout,
                io_timeout,
                closer: close,
                max_workers,
            };
            let mut client = tcp::TcpClient::new(opts, clock, progress.clone());
            let summary =
                run_steps(&steps, clock, &progress, &sample, &mut client).map_err(|e| anyhow!(e))?;
            if let Some(p) = &conn_log {
                client.write_log(p).map_err(|e| anyhow!(e))?;
            }
            let params = json!({
                "dst": dst.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "connect_timeout_s": connect_timeout.as_secs_f64(),
                "io_timeout_s": io_timeout.as_secs_f64(),
                "close": close,
                "steps": steps.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>(),
            });
            let extra = json!({
                "outcomes": client.outcome_counts(),
                "max_start_lateness_s": client.max_lateness_s,
                "workers_used": client.workers_used,
            });
            print_summary("tcp-storm", &clock, params, summary, extra)
        }
        Cmd::SynProbe {
            dst,
            connect_timeout,
            poll,
            out,
        } => {
            let r = tcp::syn_probe(dst, connect_timeout, poll, &out, clock).map_err(|e| anyhow!(e))?;
            print_summary("syn-probe", &clock, json!({"dst": dst.to_string()}), json!([]), r)
        }
        Cmd::UdpFlood {
            src,
            sports,
            dst,
            dports,
            steps,
            sample,
        } => {
            let mut flood = udp::Flood::new(src, sports, dst, dports, clock, progress.clone());
            let summary = run_steps(&steps, clock, &progress, &sample, &mut flood).map_err(|e| anyhow!(e))?;
            let params = json!({
                "src": src.to_string(), "sports": [sports.first, sports.last],
                "dst": dst.to_string(), "dports": [dports.first, dports.last],
                "steps": steps.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>(),
            });
            let extra = json!({"bind_skips": flood.bind_skips, "send_errors": flood.errors});
            print_summary("udp-flood", &clock, params, summary, extra)
        }
        Cmd::UdpRace {
            dst,
            mode,
            reply_wait,
            steps,
            pair_log,
            sample,
        } => {
            let mut race = udp::Race::new(dst, mode, reply_wait, clock, progress.clone());
            let summary = run_steps(&steps, clock, &progress, &sample, &mut race).map_err(|e| anyhow!(e))?;
            if let Some(p) = &pair_log {
                race.write_log(p).map_err(|e| anyhow!(e))?;
            }
            let mut gaps: Vec<i64> = race.pairs.iter().map(|p| p.0.abs()).collect();
            gaps.sort_unstable();
            let pct = |q: f64| {
                gaps.get(((gaps.len().saturating_sub(1)) as f64 * q) as usize)
                    .copied()
            };
            let both = race.pairs.iter().filter(|p| p.1 > 0 && p.2 > 0).count();
            let params = json!({
                "dst": dst.to_string(), "mode": mode, "reply_wait_s": reply_wait.as_secs_f64(),
                "steps": steps.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>(),
            });
            let extra = json!({
                "pairs": race.pairs.len(),
                "pairs_with_both_answers": both,
                "send_gap_ns": {"p10": pct(0.1), "p50": pct(0.5), "p90": pct(0.9), "max": gaps.last()},
            });
            print_summary("udp-race", &clock, params, summary, extra)
        }
        Cmd::RacePairs {
            proto,
            dst,
            placement,
            gaps,
            cpus,
            src_ips,
            sport_base,
            reply_wait,
            ct_stat_file,
            steps,
            pair_log,
            sample,
        } => {
            let opts = race::RaceOpts {
                proto,
                dst,
                placement,
                gaps: gaps.clone(),
                cpus: [cpus[0], cpus[1]],
                src_ips: [src_ips[0], src_ips[1]],
                sport_base,
                reply_wait,
                ct_stat_file,
            };
            let mut race = race::PairRace::new(opts, clock, progress.clone()).map_err(|e| anyhow!(e))?;
            let summary = run_steps(&steps, clock, &progress, &sample, &mut race).map_err(|e| anyhow!(e))?;
            if let Some(p) = &pair_log {
                race.write_log(p).map_err(|e| anyhow!(e))?;
            }
            let params = json!({
                "proto": proto, "dst": dst.to_string(), "placement": placement,
                "gaps_ns": gaps.iter().map(Duration::as_nanos).collect::<Vec<_>>(),
                "cpus": cpus, "reply_wait_s": reply_wait.as_secs_f64(),
                "steps": steps.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>(),
            });
            print_summary("race-pairs", &clock, params, summary, race.summary())
        }
        Cmd::Sample { steps, sample } => {
            let summary = run_steps(&steps, clock, &progress, &sample, &mut NoLoad)
                .map_err(|e| anyhow!(e))
                .context("sampling")?;
            print_summary("sample", &clock, json!({}), summary, json!({}))
        }
    }
}
