//! How large a run of a validated scenario will be, said before it starts: simulated
//! requests, engine events, time-series rows and memory, computed by arithmetic from
//! the [`Scenario`] alone (nothing is built), and checked against [`Limits`].
//!
//! The estimates are deliberately upper bounds of the model's own behaviour, not
//! predictions of a kernel. Each memory figure is a count the scenario fixes (rules per
//! node, conntrack buckets, connections alive at once, requests in flight, rows kept)
//! times a generous per-item cost; `docs/reliability.md` checks the totals against
//! real runs of the bundled scenarios. A run over a limit is refused with the fields that drive the
//! estimate, so the user knows what to change; the limits themselves come from the
//! caller (the command line reads the machine's memory, the library never does).

use super::{ConnectionMode, DnsMode, Scenario};
use std::fmt;

/// Engine events per simulated request, an upper bound over the bundled scenarios
/// (they measure 13.9 to 22.6 with short connections, the flash sale's full conntrack
/// table and DNS the highest; docs/reliability.md).
pub const EVENTS_PER_REQUEST: u64 = 32;
/// Memory the process needs whatever the scenario (code, allocator, the scenario).
pub const BASE_BYTES: u64 = 16 << 20;
/// Memory per Service endpoint per node: the proxy's rules or maps for it (iptables
/// mode is the largest).
pub const BYTES_PER_ENDPOINT_PER_NODE: u64 = 1_600;
/// Memory per Service per node (its chains or map entries).
pub const BYTES_PER_SERVICE_PER_NODE: u64 = 2_048;
/// Memory per simulated pod (sockets, ephemeral-port state).
pub const BYTES_PER_POD: u64 = 16 << 10;
/// Memory per connection alive at once (conntrack entries on the nodes crossed, both
/// sockets, TIME_WAIT).
pub const BYTES_PER_CONNECTION: u64 = 400;
/// Memory per request in flight (its events, packets queued for a CPU, retry state);
/// the largest part when a node's CPUs are saturated.
pub const BYTES_PER_REQUEST_IN_FLIGHT: u64 = 10 << 10;
/// Memory per conntrack hash bucket (`nf_conntrack_buckets`): the chain head and the
/// bucket's one-cache-line summary.
pub const BYTES_PER_BUCKET: u64 = 4 + 64;
/// Memory per NodeLocal DNSCache entry.
pub const BYTES_PER_DNS_CACHE_ENTRY: u64 = 256;
/// Time-series rows a run keeps in memory (for charts); beyond this the rows are
/// streamed to disk and the kept copy is thinned.
pub const ROWS_KEPT: u64 = 100_000;
/// How long a connection's state outlives it: conntrack's default TIME_WAIT timeout.
const CONNECTION_AFTERLIFE_S: u64 = 120;
/// How long a UDP DNS flow's conntrack entry lives (`nf_conntrack_udp_timeout_stream`).
const DNS_FLOW_LIFE_S: u64 = 120;

/// Limits a run must fit in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most memory, bytes (`--max-memory`).
    pub max_memory: u64,
    /// Most engine events (`--max-events`): the run's length in work.
    pub max_events: u64,
    /// Most time-series rows (`--max-rows`).
    pub max_rows: u64,
}

impl Default for Limits {
    /// 4 GiB, 10¹⁰ events (hours of computing), 10⁷ rows (a few GiB of CSV). The
    /// command line replaces the memory limit with half of the machine's memory.
    fn default() -> Limits {
        Limits {
            max_memory: 4 << 30,
            max_events: 10_000_000_000,
            max_rows: 10_000_000,
        }
    }
}

/// One part of the memory estimate: what it is, its bytes and the fields behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPart {
    /// What the memory holds (`proxy rules`, `requests in flight`, ...).
    pub what: &'static str,
    /// Bytes.
    pub bytes: u64,
    /// The scenario fields that set its size, as `--set` paths.
    pub fields: Vec<String>,
}

/// The estimate of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Estimate {
    /// Requests the workloads start (at their peak rates, over the whole duration).
    pub requests: u64,
    /// Engine events.
    pub events: u64,
    /// Time-series rows (duration / sampleInterval).
    pub rows: u64,
    /// Bytes of `timeseries.csv` (when written).
    pub csv_bytes: u64,
    /// Memory, by part, largest first.
    pub memory: Vec<MemoryPart>,
}

/// A run over one or more limits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct BudgetError {
    /// One line per limit exceeded.
    pub excesses: Vec<Excess>,
}

/// One limit exceeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Excess {
    /// The scenario fields that drive the estimate, as `--set` paths.
    pub fields: Vec<String>,
    /// The estimate, in words and numbers.
    pub estimate: String,
    /// The limit and the flag that raises it.
    pub limit: String,
}

impl BudgetError {
    fn render(&self) -> String {
        let lines: Vec<String> = self
            .excesses
            .iter()
            .map(|e| format!("{}: {}, over {}", e.fields.join(", "), e.estimate, e.limit))
            .collect();
        format!("the run is too large to start: {}", lines.join("; "))
    }
}

/// `a * b / c` in 128 bits, saturated to `u64`.
fn mul_div(a: u64, b: u64, c: u64) -> u64 {
    let v = u128::from(a) * u128::from(b) / u128::from(c.max(1));
    u64::try_from(v).unwrap_or(u64::MAX)
}

const NANOS_PER_SEC: u64 = 1_000_000_000;
const MILLI: u64 = 1_000;

impl Estimate {
    /// The estimate of running `s` once.
    #[must_use]
    // Long on purpose: each resource's arithmetic (events, rows, memory per part) in one
    // place, so the refusal can name every part of the estimate together.
    pub fn of(s: &Scenario) -> Estimate {
        let duration_ns = s.duration.as_nanos();
        let duration_s = duration_ns.div_ceil(NANOS_PER_SEC);
        let rows = duration_ns / s.sample_interval.as_nanos().max(1);
        let nodes = s.nodes.len() as u64;
        let mut requests = 0u64;
        let mut conns = 0u64;
        let mut in_flight = 0u64;
        let mut rate_fields = Vec::new();
        for (i, w) in s.workloads.iter().enumerate() {
            let peak = w
                .rate_profile
                .iter()
                .map(|st| st.rate)
                .fold(w.rate, std::cmp::max)
                .as_milli_per_sec();
            if peak == 0 {
                continue;
            }
            rate_fields.push(format!("workloads.{i}.rate"));
            requests = requests.saturating_add(mul_div(peak, duration_ns, MILLI * NANOS_PER_SEC));
            // Connections opened per second: one per request, or one per
            // maxRequestsPerConnection requests from a pool.
            let (opened_milli, pooled) = match w.connection.mode {
                ConnectionMode::Short => (peak, 0),
                ConnectionMode::Pool => (
                    w.connection
                        .max_requests_per_connection
                        .map_or(0, |m| peak / u64::from(m.max(1))),
                    u64::from(w.connection.pool_size).saturating_mul(w.pods.len() as u64),
                ),
            };
            let lookups_milli = match w.dns.mode {
                DnsMode::PerRequest => peak.saturating_mul(2),
                DnsMode::Cached | DnsMode::None => 0,
            };
            let live_s = duration_s.min(CONNECTION_AFTERLIFE_S);
            let dns_s = duration_s.min(DNS_FLOW_LIFE_S);
            conns = conns
                .saturating_add(mul_div(opened_milli, live_s, MILLI))
                .saturating_add(mul_div(lookups_milli, dns_s, MILLI))
                .saturating_add(pooled);
            // A request lives at most its timeout per try, plus the backoffs.
            let tries = u64::from(w.retries.max).saturating_add(1);
            let life_ns = w
                .timeout
                .as_nanos()
                .saturating_mul(tries)
                .saturating_add(w.retries.backoff.as_nanos().saturating_mul(tries - 1))
                .min(duration_ns);
            in_flight =
                in_flight.saturating_add(mul_div(peak, life_ns, MILLI * NANOS_PER_SEC).saturating_add(1));
        }
        // Connections alive at once cannot outnumber every table's entries plus the
        // TIME_WAIT sockets the clients' nodes keep.
        let table_room = s.nodes.iter().fold(0u64, |acc, n| {
            let v = &n.sysctls.values;
            acc.saturating_add(u64::from(v.nf_conntrack_max))
                .saturating_add(u64::from(v.tcp_max_tw_buckets))
        });
        let conns = conns.min(table_room.saturating_add(in_flight));
        let events = requests
            .saturating_mul(EVENTS_PER_REQUEST)
            .saturating_add(rows.saturating_mul(1 + nodes));
        let endpoints: u64 = s
            .services
            .iter()
            .map(|sv| sv.endpoints.len() as u64)
            .chain(s.background_services.iter().map(|b| b.endpoints.len() as u64))
            .sum();
        let services = (s.services.len() + s.background_services.len()) as u64;
        let pods: u64 = s.workloads.iter().map(|w| w.pods.len() as u64).sum::<u64>()
            + s.services.iter().map(|sv| sv.endpoints.len() as u64).sum::<u64>();
        let per_node_buckets: Vec<u64> = s
            .nodes
            .iter()
            .map(|n| u64::from(n.sysctls.values.nf_conntrack_buckets).next_power_of_two())
            .collect();
        let most_buckets = per_node_buckets.iter().copied().max().unwrap_or(0);
        // The nodes with the largest tables.
        let buckets_fields: Vec<String> = per_node_buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| b.saturating_mul(2) >= most_buckets)
            .map(|(i, _)| format!("nodes.{i}.sysctl.net.netfilter.nf_conntrack_buckets"))
            .collect();
        let buckets = per_node_buckets.iter().fold(0u64, |acc, b| {
            acc.saturating_add(b.saturating_mul(BYTES_PER_BUCKET))
        });
        let mut rule_fields = Vec::new();
        if !s.background_services.is_empty() {
            rule_fields.push("backgroundServices".to_string());
        }
        rule_fields.extend(["services".to_string(), "nodes".to_string()]);
        let pod_fields: Vec<String> = (0..s.workloads.len())
            .map(|i| format!("workloads.{i}.pods"))
            .chain(
                s.services
                    .iter()
                    .enumerate()
                    .filter(|(_, sv)| !sv.endpoints.is_empty())
                    .map(|(i, _)| format!("services.{i}.endpoints")),
            )
            .collect();
        let dns_cache = s.dns.node_local_cache.map_or(0, |c| {
            // Success and denial caches on every node.
            u64::from(c.capacity)
                .saturating_mul(2 * nodes)
                .saturating_mul(BYTES_PER_DNS_CACHE_ENTRY)
        });
        let row_bytes = 160 + 140 * nodes;
        let mut time_fields = vec!["duration".to_string()];
        time_fields.extend(rate_fields.iter().cloned());
        let mut memory = vec![
            MemoryPart {
                what: "the process and the scenario",
                bytes: BASE_BYTES,
                fields: Vec::new(),
            },
            MemoryPart {
                what: "proxy rules",
                bytes: nodes.saturating_mul(
                    endpoints
                        .saturating_mul(BYTES_PER_ENDPOINT_PER_NODE)
                        .saturating_add(services.saturating_mul(BYTES_PER_SERVICE_PER_NODE)),
                ),
                fields: rule_fields,
            },
            MemoryPart {
                what: "pods",
                bytes: pods.saturating_mul(BYTES_PER_POD),
                fields: pod_fields,
            },
            MemoryPart {
                what: "conntrack hash buckets",
                bytes: buckets,
                fields: buckets_fields,
            },
            MemoryPart {
                what: "connections alive at once",
                bytes: conns.saturating_mul(BYTES_PER_CONNECTION),
                fields: time_fields.clone(),
            },
            MemoryPart {
                what: "requests in flight",
                bytes: in_flight.saturating_mul(BYTES_PER_REQUEST_IN_FLIGHT),
                fields: rate_fields
                    .iter()
                    .map(|f| f.replace(".rate", ".timeout"))
                    .chain(rate_fields.iter().cloned())
                    .collect(),
            },
            MemoryPart {
                what: "NodeLocal DNSCache entries",
                bytes: dns_cache,
                fields: vec!["dns.nodeLocalDNSCache.capacity".into()],
            },
            MemoryPart {
                what: "time-series rows kept for charts",
                bytes: rows.min(ROWS_KEPT).saturating_mul(row_bytes),
                fields: vec!["sampleInterval".into()],
            },
        ];
        memory.retain(|p| p.bytes > 0);
        memory.sort_by_key(|p| std::cmp::Reverse(p.bytes));
        Estimate {
            requests,
            events,
            rows,
            csv_bytes: rows.saturating_mul(40 + 100 * nodes),
            memory,
        }
    }

    /// The memory estimate in bytes.
    #[must_use]
    pub fn memory_bytes(&self) -> u64 {
        self.memory
            .iter()
            .fold(0u64, |acc, p| acc.saturating_add(p.bytes))
    }

    /// Checks the estimate against `limits`, with `parallel` runs of this size at once
    /// (a study's worker threads).
    ///
    /// # Errors
    /// [`BudgetError`] with one [`Excess`] per limit exceeded, naming the fields that
    /// drive it.
    pub fn check(&self, s: &Scenario, limits: &Limits, parallel: u64) -> Result<(), BudgetError> {
        let mut excesses = Vec::new();
        let rows_driven = self.rows.saturating_mul(1 + s.nodes.len() as u64) >= self.events / 2;
        if self.rows > limits.max_rows {
            excesses.push(Excess {
                fields: vec!["sampleInterval".into(), "duration".into()],
                estimate: format!(
                    "{} time-series rows (duration {} / sampleInterval {}, {} of timeseries.csv)",
                    self.rows,
                    s.duration,
                    s.sample_interval,
                    Bytes(self.csv_bytes)
                ),
                limit: format!("the limit of {} rows (--max-rows)", limits.max_rows),
            });
        }
        if self.events > limits.max_events {
            let fields = if rows_driven {
                vec!["sampleInterval".into(), "duration".into()]
            } else {
                let mut f = vec!["duration".to_string()];
                f.extend((0..s.workloads.len()).map(|i| format!("workloads.{i}.rate")));
                f
            };
            excesses.push(Excess {
                fields,
                estimate: format!(
                    "an estimated {} events ({} requests over {}, {} rows)",
                    Sci(self.events),
                    Sci(self.requests),
                    s.duration,
                    Sci(self.rows)
                ),
                limit: format!("the limit of {} events (--max-events)", Sci(limits.max_events)),
            });
        }
        let total = self.memory_bytes().saturating_mul(parallel.max(1));
        if total > limits.max_memory {
            let top = &self.memory[0];
            let parts: Vec<String> = self
                .memory
                .iter()
                .take(3)
                .map(|p| format!("{} {}", p.what, Bytes(p.bytes)))
                .collect();
            excesses.push(Excess {
                fields: if top.fields.is_empty() {
                    vec!["(the scenario as a whole)".into()]
                } else {
                    top.fields.clone()
                },
                estimate: format!(
                    "an estimated {} of memory{} ({})",
                    Bytes(total),
                    if parallel > 1 {
                        format!(" for {parallel} runs at once")
                    } else {
                        String::new()
                    },
                    parts.join(", ")
                ),
                limit: format!("the limit of {} (--max-memory)", Bytes(limits.max_memory)),
            });
        }
        if excesses.is_empty() {
            Ok(())
        } else {
            Err(BudgetError { excesses })
        }
    }
}

/// A byte count in binary units (`1.5 GiB`).
#[derive(Clone, Copy, Debug)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    #[allow(clippy::cast_precision_loss)]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        let mut v = self.0 as f64;
        let mut u = 0;
        while v >= 1024.0 && u + 1 < units.len() {
            v /= 1024.0;
            u += 1;
        }
        if u == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{v:.1} {}", units[u])
        }
    }
}

/// A large count, exact below a million, else in scientific notation (`3.2e13`).
#[derive(Clone, Copy, Debug)]
struct Sci(u64);

impl fmt::Display for Sci {
    #[allow(clippy::cast_precision_loss)]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 1_000_000 {
            write!(f, "{}", self.0)
        } else {
            write!(f, "{:.1e}", self.0 as f64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Override;

    fn small(set: &[&str]) -> Scenario {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/small.yaml");
        let o: Vec<Override> = set.iter().map(|s| Override::parse(s).unwrap()).collect();
        Scenario::load(path, &o).unwrap()
    }

    #[test]
    fn the_bundled_small_scenario_fits_the_default_limits() {
        let s = small(&[]);
        let e = Estimate::of(&s);
        assert_eq!(e.rows, 200);
        assert_eq!(e.requests, 20_000);
        assert!(e.events >= 282_070, "at least what a run measures: {}", e.events);
        assert!(e.memory_bytes() >= 14 << 20, "at least what a run measures");
        assert!(e.check(&s, &Limits::default(), 1).is_ok());
    }

    #[test]
    fn a_tiny_sample_interval_is_refused_naming_it_and_the_rows() {
        let s = small(&["sampleInterval=1ns"]);
        let e = Estimate::of(&s);
        assert_eq!(e.rows, 20_000_000_000);
        let err = e.check(&s, &Limits::default(), 1).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("sampleInterval") && text.contains("20000000000 time-series rows"),
            "{text}"
        );
        assert!(text.contains("--max-rows"), "{text}");
        // Rows drive the events too: the events line blames sampleInterval.
        assert_eq!(err.excesses[1].fields[0], "sampleInterval", "{text}");
    }

    #[test]
    fn a_long_duration_is_refused_naming_it_and_the_events() {
        let s = small(&["duration=1000000000s"]);
        let err = Estimate::of(&s).check(&s, &Limits::default(), 1).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("duration") && text.contains("events"), "{text}");
        assert!(
            text.contains("2.0e10 events") || text.contains("3.2e13 events"),
            "{text}"
        );
    }

    #[test]
    fn memory_names_the_largest_part_and_scales_with_parallel_runs() {
        let s = small(&["workloads.0.rate=200k/s"]);
        let e = Estimate::of(&s);
        let one = e.memory_bytes();
        let limits = Limits {
            max_memory: one + 1,
            ..Limits::default()
        };
        assert!(e.check(&s, &limits, 1).is_ok());
        let err = e.check(&s, &limits, 2).unwrap_err().to_string();
        assert!(
            err.contains("for 2 runs at once") && err.contains("--max-memory"),
            "{err}"
        );
        assert!(err.contains("workloads.0.rate"), "{err}");
    }

    #[test]
    fn conntrack_buckets_count_and_name_their_sysctl() {
        let s = small(&["nodes.1.sysctl.net.netfilter.nf_conntrack_buckets=1000000000"]);
        let e = Estimate::of(&s);
        assert_eq!(e.memory[0].what, "conntrack hash buckets");
        assert!(e.memory[0].bytes >= 4_000_000_000);
        let limits = Limits {
            max_memory: 1 << 30,
            ..Limits::default()
        };
        let err = e.check(&s, &limits, 1).unwrap_err().to_string();
        assert!(
            err.contains("nodes.1.sysctl.net.netfilter.nf_conntrack_buckets"),
            "{err}"
        );
    }

    #[test]
    fn byte_and_count_formats() {
        assert_eq!(Bytes(512).to_string(), "512 B");
        assert_eq!(Bytes(3 << 29).to_string(), "1.5 GiB");
        assert_eq!(Sci(999_999).to_string(), "999999");
        assert_eq!(Sci(32_000_000_000_000).to_string(), "3.2e13");
    }
}
