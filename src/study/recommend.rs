//! Recommendations computed from runs of the model, each verified by a re-run with the
//! recommended setting applied.
//!
//! - [`conntrack`]: `nf_conntrack_max` and `nf_conntrack_buckets` for the scenario's
//!   load: a measuring run with an unconstrained table gives the peak entries per node;
//!   max = peak × (1 + headroom), rounded up to a multiple of 65,536; buckets follow the
//!   profile's rule (kube-proxy's `max / 4` before 5.15, `max` on 5.15+ where the kernel
//!   sizes max = buckets; `src/conntrack/sizing.rs`).
//! - [`pool`]: a keep-alive pool per client pod by Little's law, `L = λ·W`, with λ the
//!   workload's rate per pod and W the p99 latency measured with a generous pool, times
//!   (1 + headroom); the idle timeout must exceed the gap between two requests on one
//!   connection.
//! - [`snat_ports`]: with `masqueradeAll`, the SNAT source ports nf_nat needs per
//!   destination (node address, endpoint ip:port): `rate / endpoints × (TIME_WAIT +
//!   lifetime) × (1 + headroom)` against 80 % of the port class MASQUERADE searches
//!   (64,512 for ephemeral ports), rate and lifetime measured; the number of endpoints
//!   that fits, re-run at the steady state. The client pods' `ip_local_port_range` is
//!   checked as a separate number.
//! - [`proxy_mode_crossover`]: runs per kube-proxy mode and number of Services; the
//!   smallest count at which another mode costs less CPU than iptables.
//!
//! Not modelled: memory limits other than the table's (256 B per entry), and the time a
//! change takes to apply (kube-proxy restarts, connection draining).

use std::fmt::Write as _;
use std::num::NonZeroUsize;

use serde::Serialize;

use super::horizon::Horizon;
use super::runner::{Job, run_jobs};
use crate::conntrack as sizing;
use crate::report::Report;
use crate::scenario::{Closer, Override, Scenario, ScenarioError, WorkloadTarget};
use crate::sim::SimError;
use crate::socket::TCP_TIMEWAIT_LEN;

/// Why a recommendation could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum RecommendError {
    /// A derived scenario does not validate.
    #[error("{what}: {source}")]
    Scenario {
        /// Which run.
        what: String,
        /// Why.
        source: ScenarioError,
    },
    /// A run could not be simulated.
    #[error("{what}: {source}")]
    Sim {
        /// Which run.
        what: String,
        /// Why.
        source: SimError,
    },
    /// The workload index does not exist.
    #[error("there is no workloads.{0}")]
    NoWorkload(usize),
    /// The workload targets a fixed address, not a Service with endpoints.
    #[error("workloads.{0} targets an address, not a Service: no endpoints to size")]
    NotAService(usize),
    /// Headroom outside 0..=1000 %.
    #[error("headroom {0}%: expected 0 to 1000")]
    Headroom(f64),
}

impl RecommendError {
    /// Whether the user's input caused it (see [`SimError::is_user_error`]).
    #[must_use]
    pub fn is_user_error(&self) -> bool {
        match self {
            RecommendError::Sim { source, .. } => source.is_user_error(),
            _ => true,
        }
    }
}

/// The re-run with the recommended setting.
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    /// `drop` summed over nodes.
    pub drop: u64,
    /// `insert_failed` summed over nodes.
    pub insert_failed: u64,
    /// Requests failed.
    pub failed: u64,
    /// Highest peak `nf_conntrack_count` / its max.
    pub peak: String,
    /// p99 latency, ms.
    pub p99_ms: f64,
    /// True when nothing was dropped and no request failed.
    pub holds: bool,
}

/// One recommendation.
#[derive(Clone, Debug, Serialize)]
pub struct Recommendation {
    /// What it sizes.
    pub topic: String,
    /// The settings, as `--set` overrides.
    pub settings: Vec<String>,
    /// The numbers behind it, `(name, value)`.
    pub numbers: Vec<(String, String)>,
    /// The re-run with `settings` applied (`None` for analytic-only ones).
    pub verified: Option<Verification>,
    /// How long the measuring run and the re-run lasted, and why.
    pub runs: RunLength,
}

/// How long a recommendation's runs lasted: at least what its question needs
/// ([`Horizon`]), lengthened from the scenario's own duration when that is shorter.
#[derive(Clone, Debug, Serialize)]
pub struct RunLength {
    /// Simulated seconds of each run.
    pub duration_s: f64,
    /// The scenario's own duration when the runs were lengthened past it.
    pub lengthened_from_s: Option<f64>,
    /// What the question needs, in words.
    pub reason: String,
}

impl RunLength {
    /// The runs of a question needing `h` for a scenario of `scenario_s` seconds.
    fn of(h: &Horizon, scenario_s: f64) -> RunLength {
        let duration_s = scenario_s.max(h.steady_s);
        RunLength {
            duration_s,
            lengthened_from_s: (duration_s > scenario_s).then_some(scenario_s),
            reason: h.check(duration_s).reason,
        }
    }

    fn render(&self) -> String {
        match self.lengthened_from_s {
            Some(from) => format!(
                "{:.0} s, lengthened from the scenario's {from:.0} s ({})",
                self.duration_s, self.reason
            ),
            None => format!("{:.0} s ({})", self.duration_s, self.reason),
        }
    }
}

impl Recommendation {
    /// Text: the settings, the numbers, the verification.
    #[must_use]
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}:", self.topic);
        for set in &self.settings {
            let _ = writeln!(s, "  --set {set}");
        }
        for (k, v) in &self.numbers {
            let _ = writeln!(s, "  {k}: {v}");
        }
        let _ = writeln!(s, "  runs: {}", self.runs.render());
        match &self.verified {
            Some(v) => {
                let _ = writeln!(
                    s,
                    "  re-run with these settings: drop {}, insert_failed {}, failed {}, peak {}, p99 {:.1} ms: {}",
                    v.drop,
                    v.insert_failed,
                    v.failed,
                    v.peak,
                    v.p99_ms,
                    if v.holds { "holds" } else { "DOES NOT HOLD" }
                );
            }
            None => {
                let _ = writeln!(s, "  (analytic; not re-run)");
            }
        }
        s
    }
}

fn derive(base: &Scenario, what: &str, set: &[String]) -> Result<Job, RecommendError> {
    let overrides = set
        .iter()
        .map(|t| Override::parse(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RecommendError::Sim {
            what: what.to_owned(),
            source: SimError::Internal(format!("a derived override does not parse: {e}")),
        })?;
    let scenario = base
        .with_overrides(&overrides)
        .map_err(|source| RecommendError::Scenario {
            what: what.to_owned(),
            source,
        })?;
    Ok(Job {
        label: what.to_owned(),
        scenario,
    })
}

fn run_all(jobs: &[Job], threads: NonZeroUsize) -> Result<Vec<Report>, RecommendError> {
    run_jobs(jobs, threads, &|_, _| {})
        .into_iter()
        .zip(jobs)
        .map(|(o, j)| {
            o.map(|o| o.report).map_err(|source| RecommendError::Sim {
                what: j.label.clone(),
                source,
            })
        })
        .collect()
}

fn verification(r: &Report) -> Verification {
    let drop = r.nodes.iter().map(|n| n.conntrack.stats.drop).sum();
    let insert_failed = r.nodes.iter().map(|n| n.conntrack.stats.insert_failed).sum();
    let peak = r
        .nodes
        .iter()
        .max_by_key(|n| n.conntrack.count_peak)
        .map_or_else(String::new, |n| {
            format!("{}/{} on {}", n.conntrack.count_peak, n.conntrack.max, n.name)
        });
    Verification {
        drop,
        insert_failed,
        failed: r.requests.failed,
        peak,
        p99_ms: r.latency_ms.p99,
        holds: drop == 0 && insert_failed == 0 && r.requests.failed == 0,
    }
}

fn check_headroom(pct: f64) -> Result<f64, RecommendError> {
    if (0.0..=1_000.0).contains(&pct) {
        Ok(pct / 100.0)
    } else {
        Err(RecommendError::Headroom(pct))
    }
}

/// A table large enough that a measuring run never fills it.
const UNCONSTRAINED_MAX: u32 = 16 * 1_048_576;

/// `nf_conntrack_max` and `nf_conntrack_buckets` for every node, for the scenario's load
/// with `headroom_pct` percent of headroom over the measured peak.
///
/// # Errors
/// [`RecommendError`] when a derived run does not validate or cannot be simulated.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
pub fn conntrack(
    base: &Scenario,
    headroom_pct: f64,
    threads: NonZeroUsize,
) -> Result<Recommendation, RecommendError> {
    let headroom = check_headroom(headroom_pct)?;
    let sysctl = |i: usize, name: &str, v: u64| format!("nodes.{i}.sysctl.net.netfilter.{name}={v}");
    // Both runs last until the table's steady state (TIME_WAIT + lifetime after the load
    // settles): a shorter measuring run sees a table still filling and sizes it too small.
    let horizon = Horizon::of(base);
    let runs = RunLength::of(&horizon, base.duration.as_secs_f64());
    let lengthen = horizon.lengthen(base.duration);
    let mut measure: Vec<String> = (0..base.nodes.len())
        .flat_map(|i| {
            let m = u64::from(UNCONSTRAINED_MAX);
            [
                sysctl(i, "nf_conntrack_max", m),
                sysctl(i, "nf_conntrack_buckets", m / 4),
            ]
        })
        .collect();
    measure.extend(lengthen.clone());
    let measured = run_all(
        &[derive(base, "measuring run (unconstrained table)", &measure)?],
        threads,
    )?;
    let r = &measured[0];
    let peak = r.nodes.iter().map(|n| n.conntrack.count_peak).max().unwrap_or(0);
    let want = (peak as f64 * (1.0 + headroom)).ceil() as u64;
    let max = want.max(1).div_ceil(65_536) * 65_536;
    let buckets = if base.kernel.max_equals_buckets {
        u64::from(sizing::round_buckets(u32::try_from(max).unwrap_or(u32::MAX)))
    } else {
        max / 4
    };
    let settings: Vec<String> = (0..base.nodes.len())
        .flat_map(|i| {
            [
                sysctl(i, "nf_conntrack_max", max),
                sysctl(i, "nf_conntrack_buckets", buckets),
            ]
        })
        .collect();
    let mut check_set = settings.clone();
    check_set.extend(lengthen);
    let check = run_all(
        &[derive(base, "re-run with the recommended table", &check_set)?],
        threads,
    )?;
    let mut numbers = vec![
        (
            "measured peak nf_conntrack_count (unconstrained)".to_owned(),
            peak.to_string(),
        ),
        ("headroom".to_owned(), format!("{headroom_pct}%")),
        (
            "nf_conntrack_max".to_owned(),
            format!("{max} = peak x {:.2}, rounded up to 65536", 1.0 + headroom),
        ),
        (
            "nf_conntrack_buckets".to_owned(),
            if base.kernel.max_equals_buckets {
                format!("{buckets} (= max, as the kernel sizes it since 5.15)")
            } else {
                format!("{buckets} (= max / 4, kube-proxy's hashsize rule on pre-5.15 kernels)")
            },
        ),
        (
            "kernel memory per node".to_owned(),
            format!(
                "{:.0} MiB",
                sizing::kernel_memory_bytes(
                    u32::try_from(max).unwrap_or(u32::MAX),
                    u32::try_from(buckets).unwrap_or(u32::MAX)
                ) as f64
                    / 1_048_576.0
            ),
        ),
    ];
    for n in &r.nodes {
        numbers.push((
            format!("{}: peak / current max", n.name),
            format!(
                "{} / {}",
                n.conntrack.count_peak,
                base.node_by_name(&n.name)
                    .map_or(0, |c| c.sysctls.values.nf_conntrack_max)
            ),
        ));
    }
    Ok(Recommendation {
        topic: "conntrack table size".to_owned(),
        settings,
        numbers,
        verified: Some(verification(&check[0])),
        runs,
    })
}

/// A keep-alive pool for workload `workload`: pool size per pod and idle timeout.
///
/// # Errors
/// [`RecommendError`].
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
pub fn pool(
    base: &Scenario,
    workload: usize,
    headroom_pct: f64,
    threads: NonZeroUsize,
) -> Result<Recommendation, RecommendError> {
    let headroom = check_headroom(headroom_pct)?;
    let w = base
        .workloads
        .get(workload)
        .ok_or(RecommendError::NoWorkload(workload))?;
    let p = |k: &str, v: &str| format!("workloads.{workload}.connection.{k}={v}");
    let generous = 256;
    let measure = [p("mode", "pool"), p("poolSize", &generous.to_string())];
    let r = &run_all(
        &[derive(base, "measuring run (generous pool)", &measure)?],
        threads,
    )?[0];
    let pods = w.pods.len().max(1) as f64;
    let rate_per_pod = w.rate.as_per_sec_f64() / pods;
    let w_s = r.latency_ms.p99 / 1_000.0;
    let in_flight = rate_per_pod * w_s;
    let size = ((in_flight * (1.0 + headroom)).ceil() as u64).max(1);
    let gap_s = size as f64 / rate_per_pod.max(f64::MIN_POSITIVE);
    let idle_s = (gap_s * 4.0).ceil().max(30.0) as u64;
    let settings = vec![
        p("mode", "pool"),
        p("poolSize", &size.to_string()),
        p("idleTimeout", &format!("{idle_s}s")),
    ];
    // The re-run lasts until the pooled table's steady state (closed pool connections
    // hold TIME_WAIT entries too).
    let pooled = derive(base, "re-run with the recommended pool", &settings)?;
    let horizon = Horizon::of(&pooled.scenario);
    let runs = RunLength::of(&horizon, base.duration.as_secs_f64());
    let mut check_set = settings.clone();
    check_set.extend(horizon.lengthen(base.duration));
    let check = run_all(
        &[derive(base, "re-run with the recommended pool", &check_set)?],
        threads,
    )?;
    Ok(Recommendation {
        topic: format!("keep-alive pool for {}", w.name),
        settings,
        numbers: vec![
            (
                "rate per pod".to_owned(),
                format!(
                    "{rate_per_pod:.1}/s ({})",
                    super::count(w.pods.len(), "pod", "pods")
                ),
            ),
            (
                "p99 latency with a generous pool (W)".to_owned(),
                format!("{:.1} ms", r.latency_ms.p99),
            ),
            (
                "in flight per pod, L = rate x W".to_owned(),
                format!("{in_flight:.2}"),
            ),
            (
                "pool size".to_owned(),
                format!("{size} = ceil(L x {:.2})", 1.0 + headroom),
            ),
            (
                "idle timeout".to_owned(),
                format!(
                    "{idle_s}s (at least 4 x the {gap_s:.3} s between requests on one connection, at least 30 s)"
                ),
            ),
            (
                "new connections: short vs pooled".to_owned(),
                format!(
                    "{} with short connections' rate; {} in the pooled run",
                    w.rate, r.requests.new_connections
                ),
            ),
        ],
        verified: Some(verification(&check[0])),
        runs,
    })
}

/// Share of a SNAT port range that can be held before the port search starts failing.
///
/// `nf_nat_l4proto_unique_tuple` scans consecutive ports from a random offset in rounds of 128,
/// 64, 32, 16 and 8 probes (248 in all, docs/kernel-semantics.md §NAT port search), so taken
/// ports cluster as in linear probing and a search can give up while the range still has free
/// ports. Filling 64,512 ports from empty, the first failure came at 78-88 % in the model
/// (`scenarios/snat-exhaustion.yaml`: ~87 %); with ports released in FIFO order at a constant
/// occupancy, failures appeared from ~85 % (none in 300,000 searches at 80 %). Sizing stops at
/// 80 %; the headroom is on top of that.
pub const SNAT_USABLE_SHARE: f64 = 0.8;

/// Endpoint multiplier of the measuring run, so that it does not run out of SNAT ports.
const MEASURE_SPREAD: u64 = 8;

/// The port range `nf_nat_l4proto_unique_tuple` searches for a MASQUERADE/SNAT without
/// `--to-ports`: the class of the original source port (1-511, 600-1023, 1024-65535).
#[must_use]
pub fn snat_port_class(sport: u16) -> (u16, u16) {
    if sport < 512 {
        (1, 511)
    } else if sport < 1024 {
        (600, 1023)
    } else {
        (1024, 65_535)
    }
}

/// SNAT source ports towards each destination for workload `workload`, and the fix when
/// they run out, verified by a re-run.
///
/// With `kubeProxy.masqueradeAll`, a connection to a ClusterIP is DNATed to one endpoint and
/// MASQUERADEd to the client node's address; nf_nat then needs a free source port per (node
/// address, endpoint ip:port, TCP) from the class of the pod's port (1024-65535 for ephemeral
/// ports: 64,512) and the port stays held for the life of the conntrack entry, i.e.
/// `nf_conntrack_tcp_timeout_time_wait` (120 s) after the close (docs/kernel-semantics.md §NAT
/// port search). Flows per destination are `rate / endpoints × (TIME_WAIT + lifetime)`
/// (kube-proxy picks endpoints uniformly), with the new-connection rate and the lifetime
/// measured in a run whose endpoints are multiplied by 8 (so it does not run out itself). The
/// recommendation is the number of endpoints that keeps each destination under
/// [`SNAT_USABLE_SHARE`] of the range with `headroom_pct` on top, verified by a re-run at least
/// `TIME_WAIT + lifetime + 10 s` long (the steady state). `masqueradeAll: false` and a
/// keep-alive pool are listed as alternatives with their numbers; the client pods' own
/// ephemeral ports (`ip_local_port_range`, towards the ClusterIP) are checked separately.
///
/// # Errors
/// [`RecommendError`]; [`RecommendError::NotAService`] when the workload targets an
/// address instead of a Service.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    clippy::too_many_lines
)]
pub fn snat_ports(
    base: &Scenario,
    workload: usize,
    headroom_pct: f64,
    threads: NonZeroUsize,
) -> Result<Recommendation, RecommendError> {
    let headroom = check_headroom(headroom_pct)?;
    let w = base
        .workloads
        .get(workload)
        .ok_or(RecommendError::NoWorkload(workload))?;
    let WorkloadTarget::Service { service, .. } = w.target else {
        return Err(RecommendError::NotAService(workload));
    };
    let svc = base.service(service);
    let s_idx = service.0 as usize;
    // The file's endpoint groups (`services.S.endpoints.J.count`), as overrides address them.
    let groups: Vec<u64> = (0..)
        .map_while(|j| {
            base.value_at(&format!("services.{s_idx}.endpoints.{j}.count"))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .collect();
    let endpoints = (svc.endpoints.len() as u64).max(1);
    let set_groups = |total: u64| -> Vec<String> {
        let have: u64 = groups.iter().sum::<u64>().max(1);
        groups
            .iter()
            .enumerate()
            .map(|(j, c)| {
                format!(
                    "services.{s_idx}.endpoints.{j}.count={}",
                    (c * total).div_ceil(have).max(*c)
                )
            })
            .collect()
    };
    let node = base.node(w.node);
    let sys = &node.sysctls.values;
    let tw = sys.ct_timeouts.tcp_time_wait.as_secs_f64();

    // Measuring run: the same load spread over 8x the endpoints, so SNAT does not run out.
    let measure = set_groups(endpoints * MEASURE_SPREAD);
    let runs = run_all(
        &[
            derive(base, "measuring run (endpoints x 8)", &measure)?,
            derive(base, "the scenario as given", &[])?,
        ],
        threads,
    )?;
    let (r, given) = (&runs[0], &runs[1]);
    let conn_rate = r.requests.new_connections as f64 / r.duration_s.max(f64::MIN_POSITIVE);
    let lifetime = r.latency_ms.mean / 1_000.0;
    let hold = tw + lifetime;

    // The SNAT port space per destination.
    let (lo, hi) = sys.ip_local_port_range;
    let (class_lo, class_hi) = snat_port_class(lo);
    let space = u64::from(class_hi - class_lo) + 1;
    let usable = (space as f64 * SNAT_USABLE_SHARE).floor();
    let flows_total = conn_rate * hold;
    let flows_per_dest = flows_total / endpoints as f64;
    let need_per_dest = (flows_per_dest * (1.0 + headroom)).ceil();
    let dests_needed = ((flows_total * (1.0 + headroom) / usable).ceil() as u64).max(1);
    let snat_applies = base.kube_proxy.masquerade_all;

    // The client pods' own ephemeral ports towards the ClusterIP: socket TIME_WAIT
    // (TCP_TIMEWAIT_LEN, 60 s) on the active closer, tcp_tw_reuse aside.
    let pods = w.pods.len().max(1) as f64;
    let client_hold = if w.connection.closer == Closer::Client {
        TCP_TIMEWAIT_LEN.as_secs_f64() + lifetime
    } else {
        lifetime
    };
    let per_pod = conn_rate / pods * client_hold;
    let local = u64::from(hi.saturating_sub(lo)) + 1;

    let settings = if snat_applies && dests_needed > endpoints {
        set_groups(dests_needed)
    } else {
        Vec::new()
    };
    let min_s = (hold + 10.0).ceil() as u64;
    let mut check_set = settings.clone();
    if base.duration.as_secs_f64() < hold + 10.0 {
        check_set.push(format!("duration={min_s}s"));
    }
    let runs = {
        let scenario_s = base.duration.as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let duration_s = scenario_s.max(min_s as f64);
        RunLength {
            duration_s,
            lengthened_from_s: (duration_s > scenario_s).then_some(scenario_s),
            reason: format!(
                "the re-run needs the SNAT ports' steady state: conntrack TIME_WAIT {tw:.0} s + lifetime {:.1} ms + 10 s",
                lifetime * 1_000.0
            ),
        }
    };
    let check = run_all(
        &[derive(base, "re-run with the recommended endpoints", &check_set)?],
        threads,
    )?;
    let before = verification(given);
    let pct = |x: f64| 100.0 * x / space as f64;
    let mut numbers = vec![
        (
            "new connections (measuring run, endpoints x 8)".to_owned(),
            format!(
                "{conn_rate:.1}/s over {} endpoint(s) of {}: {:.1}/s per destination",
                endpoints,
                svc.name,
                conn_rate / endpoints as f64
            ),
        ),
        (
            "port held per connection".to_owned(),
            format!(
                "{hold:.3} s = conntrack TIME_WAIT {tw:.0} s + lifetime {:.1} ms",
                lifetime * 1_000.0
            ),
        ),
        (
            "SNAT port space per destination".to_owned(),
            if snat_applies {
                format!(
                    "{space} ({class_lo}-{class_hi}: MASQUERADE without --to-ports keeps the class of the pod's port {lo}-{hi}), usable {usable:.0} ({:.0} %: the 248-probe search fails earlier)",
                    SNAT_USABLE_SHARE * 100.0
                )
            } else {
                format!(
                    "not used: kubeProxy.masqueradeAll is false, pod-to-ClusterIP traffic from {} is not SNATed",
                    base.cluster_cidr
                )
            },
        ),
        (
            "SNAT ports held per destination (incl. TIME_WAIT)".to_owned(),
            format!(
                "{flows_per_dest:.0} ({:.0} % of the space), {need_per_dest:.0} with {headroom_pct}% headroom: {}",
                pct(flows_per_dest),
                if !snat_applies {
                    "no SNAT"
                } else if need_per_dest <= usable {
                    "enough"
                } else {
                    "runs out"
                }
            ),
        ),
    ];
    if snat_applies {
        numbers.push((
            "destinations needed (the recommendation)".to_owned(),
            format!(
                "{dests_needed} endpoints = ceil({flows_total:.0} x {:.2} / {usable:.0}); {} per destination ({:.0} %)",
                1.0 + headroom,
                (flows_total / dests_needed.max(endpoints) as f64).round(),
                pct(flows_total / dests_needed.max(endpoints) as f64)
            ),
        ));
        numbers.push((
            "alternative: kubeProxy.masqueradeAll=false".to_owned(),
            "no SNAT for pod traffic, each pod then uses its own ports (next line); not re-run \
             (`recommend --for snat --set kubeProxy.masqueradeAll=false` checks it)"
                .to_owned(),
        ));
        numbers.push((
            "alternative: keep-alive pool".to_owned(),
            "ports held = pool size per pod instead of rate x TIME_WAIT (`recommend --for pool`)".to_owned(),
        ));
    }
    numbers.push((
        "client pod ephemeral ports (ip_local_port_range, per pod to the ClusterIP)".to_owned(),
        format!(
            "{per_pod:.0} held = {:.1}/s x {client_hold:.1} s (socket TIME_WAIT 60 s on the closing client) of {local} ({lo}-{hi}): {}",
            conn_rate / pods,
            if per_pod * (1.0 + headroom) <= local as f64 {
                "enough"
            } else {
                "too small: widen it or spread over more pods"
            }
        ),
    ));
    numbers.push((
        "the scenario as given".to_owned(),
        format!(
            "insert_failed {}, drop {}, failed {} ({})",
            before.insert_failed, before.drop, before.failed, given.verdict.text
        ),
    ));
    if base.duration.as_secs_f64() < hold + 10.0 {
        numbers.push((
            "re-run duration".to_owned(),
            format!("{min_s}s (TIME_WAIT + lifetime + 10 s: the ports' steady state)"),
        ));
    }
    Ok(Recommendation {
        topic: format!("SNAT source ports for {} to {}", w.name, svc.name),
        settings,
        numbers,
        verified: Some(verification(&check[0])),
        runs,
    })
}

/// One cell of the proxy-mode crossover.
#[derive(Clone, Debug, Serialize)]
pub struct ModeCell {
    /// kube-proxy mode.
    pub mode: String,
    /// Number of background Services.
    pub services: u64,
    /// Packet-processing busy time, core-seconds summed over nodes; `None` when this
    /// build does not simulate the mode.
    pub busy_core_s: Option<f64>,
    /// Mean rules evaluated per new connection on the client node.
    pub rules_per_new_connection: Option<f64>,
    /// p99 latency, ms.
    pub p99_ms: Option<f64>,
    /// Why it was not simulated.
    pub not_simulated: Option<String>,
}

/// The proxy modes compared against iptables at each number of Services, and the
/// smallest count at which each costs less CPU than iptables.
#[derive(Clone, Debug, Serialize)]
pub struct Crossover {
    /// Every run.
    pub cells: Vec<ModeCell>,
    /// `(mode, smallest Service count where it beats iptables)`, `None` when it never
    /// does in the range or was not simulated.
    pub crossover: Vec<(String, Option<u64>)>,
    /// How long each run lasted, and why.
    pub runs: RunLength,
}

/// Seconds of load at its final rate the CPU cost per connection is measured over.
pub const CPU_SETTLE_S: f64 = 10.0;

impl Crossover {
    /// Text table.
    #[must_use]
    pub fn render_text(&self) -> String {
        let mut s =
            String::from("proxy mode crossover (CPU busy core-seconds, rules per new connection, p99):\n");
        let _ = writeln!(s, "  runs: {}", self.runs.render());
        for c in &self.cells {
            match (c.busy_core_s, &c.not_simulated) {
                (Some(b), _) => {
                    let _ = writeln!(
                        s,
                        "  {:9} {:>6} Services: {b:.3} core-s, {:.0} rules/conn, p99 {:.1} ms",
                        c.mode,
                        c.services,
                        c.rules_per_new_connection.unwrap_or(0.0),
                        c.p99_ms.unwrap_or(0.0)
                    );
                }
                (None, reason) => {
                    let _ = writeln!(
                        s,
                        "  {:9} {:>6} Services: not simulated on this build ({})",
                        c.mode,
                        c.services,
                        reason.as_deref().unwrap_or("")
                    );
                }
            }
        }
        for (mode, at) in &self.crossover {
            let _ = writeln!(
                s,
                "  {mode}: {}",
                at.map_or_else(
                    || "never cheaper than iptables in this range (or not simulated)".to_owned(),
                    |n| format!("cheaper than iptables from {n} Services")
                )
            );
        }
        s
    }
}

/// Runs `modes` (plus `iptables`) at each Service count and finds where each mode's CPU
/// cost drops below iptables'. Modes this build does not simulate are reported as such.
///
/// # Errors
/// [`RecommendError`] for runs that fail other than with [`SimError::Unsupported`].
pub fn proxy_mode_crossover(
    base: &Scenario,
    modes: &[&str],
    service_counts: &[u64],
    threads: NonZeroUsize,
) -> Result<Crossover, RecommendError> {
    let mut all: Vec<&str> = vec!["iptables"];
    all.extend(modes.iter().filter(|m| **m != "iptables"));
    // The question is the CPU a new connection costs: it needs the load at its final rate
    // for CPU_SETTLE_S, not the table's steady state.
    let settled = Horizon::of(base).load_settled_s;
    let needed = (settled + CPU_SETTLE_S).ceil();
    let scenario_s = base.duration.as_secs_f64();
    let duration_s = scenario_s.max(needed);
    let runs = RunLength {
        duration_s,
        lengthened_from_s: (duration_s > scenario_s).then_some(scenario_s),
        reason: format!(
            "the CPU cost per new connection needs {CPU_SETTLE_S:.0} s of load at its final rate (from {settled:.0} s)"
        ),
    };
    let mut jobs = Vec::new();
    for &m in &all {
        for &n in service_counts {
            let mut set = vec![
                format!("kubeProxy.mode={m}"),
                format!("backgroundServices.count={n}"),
            ];
            if runs.lengthened_from_s.is_some() {
                set.push(format!("duration={needed:.0}s"));
            }
            jobs.push(derive(base, &format!("{m} with {n} Services"), &set)?);
        }
    }
    let outs = run_jobs(&jobs, threads, &|_, _| {});
    let mut cells = Vec::new();
    for ((job, out), (m, n)) in jobs.iter().zip(outs).zip(
        all.iter()
            .flat_map(|m| service_counts.iter().map(move |n| (*m, *n))),
    ) {
        cells.push(match out {
            Ok(o) => ModeCell {
                mode: m.to_owned(),
                services: n,
                busy_core_s: Some(o.report.nodes.iter().map(|x| x.cpu.busy_core_s).sum()),
                rules_per_new_connection: o.report.nodes.first().map(|x| x.rules.mean_per_new_connection),
                p99_ms: Some(o.report.latency_ms.p99),
                not_simulated: None,
            },
            Err(SimError::Unsupported { what }) => ModeCell {
                mode: m.to_owned(),
                services: n,
                busy_core_s: None,
                rules_per_new_connection: None,
                p99_ms: None,
                not_simulated: Some(what),
            },
            Err(source) => {
                return Err(RecommendError::Sim {
                    what: job.label.clone(),
                    source,
                });
            }
        });
    }
    let busy = |m: &str, n: u64| {
        cells
            .iter()
            .find(|c| c.mode == m && c.services == n)
            .and_then(|c| c.busy_core_s)
    };
    let crossover = all
        .iter()
        .skip(1)
        .map(|&m| {
            let at = service_counts
                .iter()
                .copied()
                .find(|&n| matches!((busy(m, n), busy("iptables", n)), (Some(a), Some(b)) if a < b));
            (m.to_owned(), at)
        })
        .collect();
    Ok(Crossover {
        cells,
        crossover,
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Scenario {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/small.yaml");
        Scenario::load(path, &[Override::parse("duration=2s").unwrap()]).unwrap()
    }

    #[test]
    fn headroom_outside_the_range_is_refused() {
        let t = NonZeroUsize::MIN;
        assert!(matches!(
            conntrack(&small(), -1.0, t),
            Err(RecommendError::Headroom(_))
        ));
        assert!(matches!(
            pool(&small(), 7, 10.0, t),
            Err(RecommendError::NoWorkload(7))
        ));
    }

    /// docs/kernel-semantics.md §NAT port search: without `--to-ports` the search keeps the
    /// port's class.
    #[test]
    fn snat_without_to_ports_searches_the_class_of_the_original_port() {
        assert_eq!(snat_port_class(32_768), (1_024, 65_535));
        assert_eq!(snat_port_class(1_024), (1_024, 65_535));
        assert_eq!(snat_port_class(700), (600, 1_023));
        assert_eq!(snat_port_class(80), (1, 511));
    }

    #[test]
    fn snat_for_a_workload_that_targets_an_address_is_refused() {
        let base = small();
        let base = base
            .with_overrides(&[
                Override::parse("workloads.0.target=10.0.0.1:80").unwrap(),
                Override::parse("workloads.0.dns.mode=none").unwrap(),
            ])
            .unwrap();
        assert!(matches!(
            snat_ports(&base, 0, 25.0, NonZeroUsize::MIN),
            Err(RecommendError::NotAService(0))
        ));
    }

    #[test]
    fn unsupported_proxy_modes_are_reported_not_failed() {
        let c = proxy_mode_crossover(&small(), &["ipvs"], &[10], NonZeroUsize::MIN).unwrap();
        assert_eq!(c.cells.len(), 2);
        assert!(c.cells[0].busy_core_s.is_some(), "iptables runs");
        let text = c.render_text();
        assert!(text.contains("iptables"), "{text}");
    }
}
