//! Published targets checked through the scenario layer: table sizing (V20, V21).

use super::check::{Tolerance as T, Unit as U};
use super::{Rows, ValidateError};
use crate::kernel::{CtTimeouts, KernelProfile};
use crate::scenario::{ByteSize, Override, Scenario, kernel_default_sysctls};
use std::path::Path;

/// V20: kernel defaults (`nf_conntrack_init_start`, nf_conntrack-sysctl.rst).
pub(crate) fn v20() -> Rows {
    let mut rows = Rows::new("V20", "nf_conntrack-sysctl.rst; nf_conntrack_init_start; 6.18 VM");
    // (RAM GiB, buckets): above 4 GiB the kernel caps at 262,144 (verified on the
    // 24 GiB VM); between 1 and 4 GiB `nf_conntrack_init_start` sets 65,536.
    for (gib, buckets) in [(2u64, 65_536.0), (8, 262_144.0), (24, 262_144.0), (64, 262_144.0)] {
        let s = kernel_default_sysctls(KernelProfile::LINUX_6_18, ByteSize::from_gib(gib));
        rows.cmp(
            &format!("V20/{gib}GiB/buckets"),
            &format!("nf_conntrack_buckets, {gib} GiB, 6.18"),
            U::Count,
            buckets,
            f64::from(s.nf_conntrack_buckets),
            T::Abs(0.0),
        );
        rows.cmp(
            &format!("V20/{gib}GiB/max"),
            &format!("nf_conntrack_max = buckets, {gib} GiB, 6.18"),
            U::Count,
            buckets,
            f64::from(s.nf_conntrack_max),
            T::Abs(0.0),
        );
    }
    // Before 5.15 (`nf_conntrack_init_start`): 65,536 buckets above 4 GiB, max = 4 ×.
    let old = kernel_default_sysctls(KernelProfile::LINUX_5_4, ByteSize::from_gib(24));
    rows.cmp(
        "V20/24GiB/buckets-5.4",
        "nf_conntrack_buckets before 5.15 (24 GiB, 5.4)",
        U::Count,
        65_536.0,
        f64::from(old.nf_conntrack_buckets),
        T::Abs(0.0),
    );
    rows.cmp(
        "V20/24GiB/max-5.4",
        "nf_conntrack_max = 4 × buckets before 5.15 (24 GiB, 5.4)",
        U::Count,
        4.0 * 65_536.0,
        f64::from(old.nf_conntrack_max),
        T::Abs(0.0),
    );
    // The same default through the conntrack module's own sizing helper.
    let (max54, buckets54) = crate::conntrack::default_sizing(24 << 30, None, KernelProfile::LINUX_5_4);
    rows.cmp(
        "V20/24GiB/default-sizing-5.4",
        "conntrack::default_sizing buckets, 24 GiB, 5.4 (65,536 before 5.15)",
        U::Count,
        65_536.0,
        f64::from(buckets54),
        T::Abs(0.0),
    );
    rows.cmp(
        "V20/24GiB/default-sizing-max-5.4",
        "conntrack::default_sizing max, 24 GiB, 5.4 (4 × 65,536)",
        U::Count,
        262_144.0,
        f64::from(max54),
        T::Abs(0.0),
    );
    let t = CtTimeouts::default();
    let published: [(u64, u64); 14] = [
        (t.tcp_syn_sent.as_secs(), 120),
        (t.tcp_syn_recv.as_secs(), 60),
        (t.tcp_established.as_secs(), 432_000),
        (t.tcp_fin_wait.as_secs(), 120),
        (t.tcp_close_wait.as_secs(), 60),
        (t.tcp_last_ack.as_secs(), 30),
        (t.tcp_time_wait.as_secs(), 120),
        (t.tcp_close.as_secs(), 10),
        (t.tcp_max_retrans.as_secs(), 300),
        (t.tcp_unacknowledged.as_secs(), 300),
        (t.udp.as_secs(), 30),
        (t.udp_stream.as_secs(), 120),
        (t.icmp.as_secs(), 30),
        (t.generic.as_secs(), 600),
    ];
    let same = published.iter().filter(|(m, p)| m == p).count();
    rows.cmp(
        "V20/timeouts",
        "default timeouts equal to the published 14",
        U::Count,
        14.0,
        same as f64,
        T::Abs(0.0),
    );
    rows
}

/// A scenario with one node per CPU count, for kube-proxy's sizing.
fn v21_scenario(cpus: &[u32]) -> String {
    let mut y = String::from("version: 1\nname: v21-sizing\nduration: 1s\nkernel: \"6.18\"\nnodes:\n");
    for c in cpus {
        y.push_str(&format!("  - {{name: n{c}, cpus: {c}, memory: 64Gi}}\n"));
    }
    y
}

/// V21: kube-proxy's conntrack settings from the node shape.
pub(crate) fn v21() -> Result<Rows, ValidateError> {
    let mut rows = Rows::new(
        "V21",
        "kube-proxy defaults (pkg/proxy/apis/config/v1alpha1, pkg/proxy/conntrack)",
    );
    let cpus = [1u32, 2, 4, 8, 16, 32, 64];
    let text = v21_scenario(&cpus);
    let sc = Scenario::from_bytes("v21-sizing (built in)", text.as_bytes(), &[]).map_err(|e| {
        ValidateError::Scenario {
            file: "v21-sizing (built in)".to_owned(),
            what: e.to_string(),
        }
    })?;
    for (c, node) in cpus.iter().zip(&sc.nodes) {
        let published = f64::from((32_768 * c).max(131_072));
        let v = &node.sysctls.values;
        rows.cmp(
            &format!("V21/{c}cpu/max"),
            &format!("nf_conntrack_max, {c} vCPU"),
            U::Count,
            published,
            f64::from(v.nf_conntrack_max),
            T::Abs(0.0),
        );
        rows.cmp(
            &format!("V21/{c}cpu/buckets"),
            &format!("nf_conntrack_buckets ≥ max / 4 (hashsize raised), {c} vCPU"),
            U::Count,
            (published / 4.0).max(262_144.0),
            f64::from(v.nf_conntrack_buckets),
            T::Abs(0.0),
        );
    }
    if let Some(node) = sc.nodes.first() {
        let t = node.sysctls.values.ct_timeouts;
        rows.cmp(
            "V21/established",
            "nf_conntrack_tcp_timeout_established (24 h)",
            U::Seconds,
            86_400.0,
            t.tcp_established.as_secs_f64(),
            T::Abs(0.0),
        );
        rows.cmp(
            "V21/close-wait",
            "nf_conntrack_tcp_timeout_close_wait (1 h)",
            U::Seconds,
            3_600.0,
            t.tcp_close_wait.as_secs_f64(),
            T::Abs(0.0),
        );
    }
    Ok(rows)
}

/// Node CPU of one node of a run, as a fraction of one core.
fn core_fraction(out: &crate::sim::Outcome, node: usize) -> f64 {
    let r = &out.report;
    r.nodes
        .get(node)
        .map_or(f64::NAN, |n| n.cpu.busy_core_s / r.duration_s)
}

fn load_run(
    dir: &Path,
    file: &str,
    set: &[&str],
) -> Result<Result<crate::sim::Outcome, crate::sim::SimError>, ValidateError> {
    let path = dir.join(file);
    let bad = |what: String| ValidateError::Scenario {
        file: path.display().to_string(),
        what,
    };
    let overrides = set
        .iter()
        .map(|s| Override::parse(s).map_err(|e| bad(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let sc = Scenario::load(&path, &overrides).map_err(|e| bad(e.to_string()))?;
    Ok(crate::sim::run(&sc, &mut |_, _| {}))
}

/// V23: node CPU of iptables kube-proxy at 10,000 Services × 10 endpoints and 1,000
/// new connections/s (Tigera).
pub(crate) fn v23(scenarios: &Path) -> Result<Rows, ValidateError> {
    let mut rows = Rows::new("V23", "Tigera, \"Comparing kube-proxy modes: iptables or IPVS?\"");
    let file = "v23-iptables-10k.yaml";
    let short = load_run(scenarios, file, &[])?.map_err(|e| ValidateError::Scenario {
        file: file.to_owned(),
        what: e.to_string(),
    })?;
    let pool = load_run(
        scenarios,
        file,
        &[
            "workloads.0.connection.mode=pool",
            "workloads.0.connection.poolSize=10",
            "workloads.0.connection.maxRequestsPerConnection=100",
        ],
    )?
    .map_err(|e| ValidateError::Scenario {
        file: file.to_owned(),
        what: e.to_string(),
    })?;
    let (cs, cp) = (core_fraction(&short, 0), core_fraction(&pool, 0));
    rows.cmp(
        "V23/iptables-short",
        "client-node CPU, iptables, no keep-alive (share of one core)",
        U::Fraction,
        0.35,
        cs,
        T::Rel(0.3),
    );
    rows.cmp(
        "V23/iptables-keepalive",
        "client-node CPU, iptables, 100 requests per connection",
        U::Fraction,
        0.02,
        cp,
        T::Rel(0.3),
    );
    rows.cmp(
        "V23/keepalive-ratio",
        "CPU without / with keep-alive (shape, independent of the per-rule cost)",
        U::Count,
        0.35 / 0.02,
        cs / cp,
        T::Rel(0.3),
    );
    match load_run(scenarios, file, &["kubeProxy.mode=ipvs"])? {
        Ok(out) => rows.cmp(
            "V23/ipvs-short",
            "client-node CPU, IPVS, no keep-alive",
            U::Fraction,
            0.08,
            core_fraction(&out, 0),
            T::Rel(0.3),
        ),
        Err(crate::sim::SimError::Unsupported { .. }) => {
            rows.not_modelled(
                "V23/ipvs-short",
                "client-node CPU, IPVS, no keep-alive",
                U::Fraction,
                0.08,
            );
        }
        Err(e) => {
            return Err(ValidateError::Scenario {
                file: file.to_owned(),
                what: e.to_string(),
            });
        }
    }
    Ok(rows)
}

/// V11: NodeLocal DNSCache removes pod DNS from conntrack (KEP-1024; docs/kernel-semantics.md
/// §Kubernetes nodes): the client node's entries to port 53 with the cache on and off,
/// per flow (`dns_udp_entries_end`, `dns_tcp_entries_end`).
pub(crate) fn v11(scenarios: &Path) -> Result<Rows, ValidateError> {
    let mut rows = Rows::new("V11", "KEP-1024 NodeLocal DNSCache");
    let file = "v11-nodelocal-dns.yaml";
    let run = |set: &[&str]| {
        load_run(scenarios, file, set)?.map_err(|e| ValidateError::Scenario {
            file: file.to_owned(),
            what: e.to_string(),
        })
    };
    let on = run(&[])?;
    let off = run(&["dns.nodeLocalDNSCache.enabled=false"])?;
    let client = |o: &crate::sim::Outcome| {
        o.report.nodes.first().map_or((0.0, 0.0), |n| {
            (
                n.conntrack.dns_udp_entries_end as f64,
                n.conntrack.dns_tcp_entries_end as f64,
            )
        })
    };
    let (on_udp, on_tcp) = client(&on);
    let (off_udp, off_tcp) = client(&off);
    let off_total = (off_udp + off_tcp).max(1.0);
    rows.cmp(
        "V11/pod-dns-entries",
        "pod DNS entries (UDP/53) left on the client node with the cache on, per cache-off entry (≈ 0: NOTRACK)",
        U::Fraction,
        0.0,
        on_udp / off_total,
        T::Within { lo: 0.0, hi: 0.0 },
    );
    rows.cmp(
        "V11/dns-entries",
        "share of the client node's DNS entries the cache removes, upstream TCP connections counted (≈ 1: QPS × 30 s → about 0)",
        U::Fraction,
        1.0,
        (off_total - on_udp - on_tcp) / off_total,
        T::Within { lo: 0.95, hi: 1.0 },
    );
    Ok(rows)
}

/// V01: XING's SNAT race, MASQUERADE on the 4.19 profile with and without
/// `--random-fully`: the share of new connections whose insertion failed.
pub(crate) fn v01() -> Result<Rows, ValidateError> {
    let mut rows = Rows::new(
        "V01",
        "XING engineering blog (2018); maxlaverse/snat-race-conn-test",
    );
    for k in [10u32, 40, 80] {
        for random_fully in [false, true] {
            let ratio = xing_race(k, random_fully)?;
            let (id, q, tol, real) = if random_fully {
                (
                    format!("V01/{k}/random-fully"),
                    format!(
                        "insert_failed per new connection, {k} connectors, --random-fully (0 in the test)"
                    ),
                    T::Within { lo: 0.0, hi: 0.001 },
                    0.0,
                )
            } else {
                (
                    format!("V01/{k}/default"),
                    format!("insert_failed per new connection, {k} connectors, default MASQUERADE (2-4 %)"),
                    T::Within { lo: 0.01, hi: 0.08 },
                    0.03,
                )
            };
            rows.cmp(&id, &q, U::Fraction, real, ratio, tol);
        }
    }
    Ok(rows)
}

/// The XING setup as a conntrack-level replay (every constant documented in
/// `docs/model.md`): `k` containers (own source address each) open
/// connections to one `ip:port` through MASQUERADE to the node address, each every
/// 200 ms at a random phase, for 10 s; SYNs less than 2 µs apart race (both allocated
/// and NATed before either confirms, on two CPUs). Returns insert_failed / SYNs.
fn xing_race(k: u32, random_fully: bool) -> Result<f64, ValidateError> {
    use super::replay::{Begun, Node, Sent};
    use crate::conntrack::{DstNat, SrcNat};
    use crate::packet::{Packet, Proto, TcpFlags, Tuple};
    use crate::rng::SimRng;
    use crate::time::{SimDuration, SimTime};
    use std::net::Ipv4Addr;
    // 5 connections/s per connector for 10 s: at most 400/s to the destination, below
    // the ~537/s that 64,512 ports held 120 s in TIME_WAIT allow (else the ports run
    // out, which is exhaustion, not the race).
    const ROUND_NS: u64 = 200_000_000;
    const ROUNDS: u64 = 50;
    const WINDOW_NS: u64 = 2_000;
    let node_ip = Ipv4Addr::new(192, 168, 0, 10);
    let dst = Ipv4Addr::new(10, 0, 0, 1);
    let mut node = Node::new(
        262_144,
        262_144,
        250,
        KernelProfile::LINUX_4_19,
        super::SEED + u64::from(k),
    )?;
    node.enable(0, CtTimeouts::default());
    let mut rng = SimRng::stream(super::SEED + u64::from(k), "validate-xing");
    // Each container's ephemeral ports: its own random start, step 2.
    let mut next_port: Vec<u16> = (0..k).map(|_| 32_768 + 2 * rng.below(14_116) as u16).collect();
    let nat = Some((
        DstNat::Null,
        SrcNat::Masquerade {
            addr: node_ip,
            ports: None,
            random: false,
            random_fully,
        },
    ));
    let mut syns = 0u64;
    for round in 0..ROUNDS {
        let mut starts: Vec<(u64, u32)> = (0..k)
            .map(|c| (round * ROUND_NS + rng.below(ROUND_NS), c))
            .collect();
        starts.sort_unstable();
        let mut i = 0;
        while i < starts.len() {
            // A group of SYNs each within the window of the previous one races.
            let mut j = i + 1;
            while j < starts.len() && starts[j].0 - starts[j - 1].0 < WINDOW_NS {
                j += 1;
            }
            let mut pending = Vec::new();
            for (n, &(t, c)) in starts[i..j].iter().enumerate() {
                let p = next_port[c as usize];
                next_port[c as usize] = if p >= 60_997 { 32_768 } else { p + 2 };
                let src = Ipv4Addr::new(172, 17, (c / 250) as u8, (2 + c % 250) as u8);
                let pkt = Packet {
                    len: 40,
                    seq: rng.next_u32(),
                    ..Packet::new(Tuple::new(Proto::Tcp, src, p, dst, 80), TcpFlags::SYN)
                };
                syns += 1;
                let cpu = (n % 2) as u16;
                if let Begun::Pending(id) = node.begin(0, cpu, &pkt, nat, SimTime::from_nanos(t))? {
                    pending.push((id, cpu, t));
                }
            }
            for (id, cpu, t) in pending {
                let _: Sent = node.finish(
                    id,
                    cpu,
                    SimTime::from_nanos(t) + SimDuration::from_nanos(WINDOW_NS),
                )?;
            }
            i = j;
        }
    }
    Ok(node.stats(0).insert_failed as f64 / syns.max(1) as f64)
}
