//! SNAT source ports per destination with `masqueradeAll`: how many endpoints keep each
//! (node address, endpoint) under the share of the port class nf_nat can search, from a
//! measuring run and verified by a re-run at the steady state.

use std::num::NonZeroUsize;

use super::{RecommendError, Recommendation, RunLength, check_headroom, derive, run_all, verification};
use crate::scenario::budget::Limits;
use crate::scenario::{Closer, Scenario, WorkloadTarget};
use crate::socket::TCP_TIMEWAIT_LEN;

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
    limits: &Limits,
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
        limits,
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
        limits,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Override;
    use crate::study::recommend::tests::small;

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
            snat_ports(&base, 0, 25.0, NonZeroUsize::MIN, &Limits::default()),
            Err(RecommendError::NotAService(0))
        ));
    }
}
