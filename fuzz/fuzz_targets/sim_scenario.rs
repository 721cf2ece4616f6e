//! The structured target: a random *valid* scenario (nodes, proxy mode, Services,
//! workloads, DNS, conntrack sizes, all drawn by `arbitrary`) is written as YAML, loaded
//! and simulated for at most 200 simulated milliseconds at at most 500 requests a second
//! per workload, twice (at most 300 requests a run: enough to fill the small conntrack
//! tables drawn here, cheap enough for a hundred or more inputs a second). Checked: no panic; the
//! scenario validates; the run succeeds (or is refused as unsupported); every node's
//! `nf_conntrack_count` stays within `nf_conntrack_max`; request outcomes add up; the
//! per-workload figures sum to the totals; the time series has one row per interval;
//! the second run is byte-identical to the first.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use k8s_netsim::scenario::Scenario;
use k8s_netsim::sim::{self, SimError};
use libfuzzer_sys::fuzz_target;
use std::fmt::Write as _;

const KERNELS: [&str; 3] = ["6.18", "5.4", "4.19"];
const MODES: [&str; 4] = ["iptables", "ipvs", "nftables", "ebpf"];
const SCHEDULERS: [&str; 3] = ["rr", "lc", "sh"];
/// Requests a second per workload, at most: with 200 ms and 3 workloads, at most 300
/// requests a run.
const MAX_RATE: u32 = 500;
const CNIS: [&str; 4] = ["flannel-vxlan", "calico-ipip", "calico-bgp", "cilium-native"];

#[derive(Debug)]
struct Gen {
    text: String,
}

fn pick<'a>(u: &mut Unstructured<'_>, from: &[&'a str]) -> arbitrary::Result<&'a str> {
    Ok(*u.choose(from)?)
}

impl<'a> Arbitrary<'a> for Gen {
    #[allow(clippy::too_many_lines)]
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Gen> {
        let mut t = String::new();
        let duration_ms = u.int_in_range(20u32..=200)?;
        let interval_ms = u.int_in_range(10u32..=duration_ms.min(100))?;
        let mode = pick(u, &MODES)?;
        let _ = writeln!(t, "version: 1\nname: fuzz\nseed: {}", u.arbitrary::<u64>()?);
        let _ = writeln!(t, "duration: {duration_ms}ms\nsampleInterval: {interval_ms}ms");
        let _ = writeln!(t, "kernel: \"{}\"\ncni: {}", pick(u, &KERNELS)?, pick(u, &CNIS)?);
        let _ = writeln!(t, "kubeProxy:\n  mode: {mode}");
        let _ = writeln!(
            t,
            "  masqueradeAll: {}\n  randomFully: {}",
            u.arbitrary::<bool>()?,
            u.arbitrary::<bool>()?
        );
        if mode == "ipvs" {
            let _ = writeln!(t, "  ipvs: {{scheduler: {}}}", pick(u, &SCHEDULERS)?);
        }
        if mode == "ebpf" {
            let _ = writeln!(
                t,
                "  ebpf: {{notrack: {}, ctGlobalTcpMax: {}, ctGlobalAnyMax: {}}}",
                u.arbitrary::<bool>()?,
                u.int_in_range(16u32..=4096)?,
                u.int_in_range(16u32..=4096)?
            );
        }
        let nodes = u.int_in_range(1usize..=3)?;
        t.push_str("nodes:\n");
        for i in 0..nodes {
            let _ = writeln!(
                t,
                "  - name: n{i}\n    cpus: {}\n    memory: 4Gi",
                u.int_in_range(1u32..=4)?
            );
            if u.arbitrary::<bool>()? {
                let max = u.int_in_range(8u32..=2048)?;
                let _ = writeln!(t, "    sysctl:\n      net.netfilter.nf_conntrack_max: {max}");
                let _ = writeln!(
                    t,
                    "      net.netfilter.nf_conntrack_buckets: {}",
                    u.int_in_range(1u32..=1024)?
                );
                let lo = u.int_in_range(1024u16..=60000)?;
                let hi = u.int_in_range(lo..=lo.saturating_add(2000))?;
                let _ = writeln!(t, "      net.ipv4.ip_local_port_range: \"{lo} {hi}\"");
                let _ = writeln!(t, "      net.ipv4.tcp_tw_reuse: {}", u.int_in_range(0u8..=2)?);
                let _ = writeln!(
                    t,
                    "      net.netfilter.nf_conntrack_tcp_timeout_time_wait: {}s",
                    u.int_in_range(0u8..=120)?
                );
            }
        }
        let services = u.int_in_range(1usize..=3)?;
        t.push_str("services:\n");
        for s in 0..services {
            let _ = writeln!(
                t,
                "  - name: s{s}\n    ports: [{{port: 80, targetPort: 8080}}]\n    endpoints:"
            );
            for n in 0..nodes {
                let _ = writeln!(t, "      - {{node: n{n}, count: {}}}", u.int_in_range(0u32..=3)?);
            }
            let _ = writeln!(
                t,
                "    server: {{serviceTime: {{distribution: exponential, mean: {}us}}, concurrency: {}}}",
                u.int_in_range(10u32..=5000)?,
                u.int_in_range(1u32..=64)?
            );
        }
        let with_dns = u.arbitrary::<bool>()?;
        if with_dns {
            let _ = writeln!(
                t,
                "  - name: kube-dns\n    namespace: kube-system\n    ports: [{{port: 53, protocol: UDP}}]\n    endpoints: [{{node: n0, count: {}}}]\n    server: {{serviceTime: {{distribution: constant, value: 100us}}, capacity: {}/s}}",
                u.int_in_range(1u32..=2)?,
                u.int_in_range(10u32..=2000)?
            );
            if u.arbitrary::<bool>()? {
                let _ = writeln!(
                    t,
                    "dns:\n  nodeLocalDNSCache: {{enabled: true, forceTcp: {}}}",
                    u.arbitrary::<bool>()?
                );
            }
        }
        if u.arbitrary::<bool>()? {
            let _ = writeln!(
                t,
                "backgroundServices: {{count: {}, endpointsEach: {}}}",
                u.int_in_range(0u32..=40)?,
                u.int_in_range(0u32..=4)?
            );
        }
        let workloads = u.int_in_range(1usize..=3)?;
        t.push_str("workloads:\n");
        for w in 0..workloads {
            let _ = writeln!(
                t,
                "  - name: w{w}\n    node: n{}\n    pods: {}\n    target: s{}:80\n    rate: {}/s\n    timeout: {}ms",
                u.int_in_range(0..=nodes - 1)?,
                u.int_in_range(1u32..=4)?,
                u.int_in_range(0..=services - 1)?,
                u.int_in_range(1u32..=MAX_RATE)?,
                u.int_in_range(20u32..=300)?
            );
            let _ = writeln!(
                t,
                "    retries: {{max: {}, backoff: {}ms}}",
                u.int_in_range(0u8..=2)?,
                u.int_in_range(0u16..=100)?
            );
            if u.arbitrary::<bool>()? {
                let _ = writeln!(
                    t,
                    "    connection: {{mode: pool, poolSize: {}, closer: {}}}",
                    u.int_in_range(1u32..=8)?,
                    pick(u, &["client", "server"])?
                );
            }
            if with_dns && u.arbitrary::<bool>()? {
                let _ = writeln!(
                    t,
                    "    dns: {{mode: {}, threadPlacement: {}}}",
                    pick(u, &["perRequest", "cached"])?,
                    pick(u, &["same", "different", "scheduler"])?
                );
            }
            if u.arbitrary::<bool>()? {
                let _ = writeln!(
                    t,
                    "    rateProfile: [{{at: 0s, rate: {}/s}}, {{at: {}ms, rate: {}/s, ramp: {}ms}}]",
                    u.int_in_range(0u32..=MAX_RATE)?,
                    u.int_in_range(1u32..=duration_ms)?,
                    u.int_in_range(0u32..=MAX_RATE)?,
                    u.int_in_range(0u32..=200)?
                );
            }
        }
        Ok(Gen { text: t })
    }
}

fuzz_target!(|g: Gen| {
    let s = match Scenario::from_bytes("gen.yaml", g.text.as_bytes(), &[]) {
        Ok(s) => s,
        Err(e) => panic!("a generated scenario does not validate:\n{e}\n{}", g.text),
    };
    let one = match sim::run(&s, &mut |_, _| {}) {
        Ok(o) => o,
        Err(SimError::Unsupported { .. }) => return,
        Err(e) => panic!("run failed: {e}\n{}", g.text),
    };
    let r = &one.report;
    for n in &r.nodes {
        let ct = &n.conntrack;
        assert!(
            ct.count_peak <= ct.max,
            "{}: peak {} over max {}\n{}",
            n.name,
            ct.count_peak,
            ct.max,
            g.text
        );
        assert!(ct.count_end <= ct.count_peak.max(ct.count_end) && ct.count_end <= ct.max);
    }
    let q = &r.requests;
    assert_eq!(
        q.ok + q.failed + q.in_flight_at_end,
        q.sent,
        "requests do not add up: {q:?}\n{}",
        g.text
    );
    let sum = |f: fn(&k8s_netsim::report::RequestReport) -> u64| {
        r.workloads.iter().map(|w| f(&w.requests)).sum::<u64>()
    };
    assert_eq!(sum(|w| w.sent), q.sent);
    assert_eq!(sum(|w| w.ok), q.ok);
    assert_eq!(sum(|w| w.failed), q.failed);
    let rows = s.duration.as_nanos() / s.sample_interval.as_nanos();
    assert_eq!(one.timeseries.samples.len() as u64, rows, "rows\n{}", g.text);
    for row in &one.timeseries.samples {
        for (i, c) in row.count.iter().enumerate() {
            assert!(*c <= r.nodes[i].conntrack.max);
        }
    }
    let two = sim::run(&s, &mut |_, _| {}).expect("the second run fails where the first did not");
    let json = |o: &sim::Outcome| serde_json::to_string(&o.report).expect("report serialises");
    assert_eq!(json(&one), json(&two), "not deterministic\n{}", g.text);
    assert_eq!(
        one.timeseries.to_csv(),
        two.timeseries.to_csv(),
        "time series not deterministic"
    );
});
