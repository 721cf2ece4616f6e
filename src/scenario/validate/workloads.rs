//! `workloads`: targets, rate profiles, connections, DNS settings, arrivals, `dnsOnly`.

use super::Checker;
use super::addresses::Addresses;
use super::nodes::NodeLookup;
use crate::conntrack::ThreadPlacement;
use crate::scenario::error::{FieldPath, PathSegment, ProblemKind};
use crate::scenario::file;
use crate::scenario::{
    ConnectionConfig, NodeId, RateStep, RetryPolicy, ServiceConfig, ServiceId, ServiceType, WorkloadConfig,
    WorkloadDns, WorkloadId, WorkloadTarget,
};
use crate::scenario::{ConnectionMode, DnsMode};
use crate::time::SimDuration;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};

/// `workloads`, each in order.
pub(super) fn check_workloads(
    c: &mut Checker,
    specs: &[file::WorkloadSpec],
    nodes: &NodeLookup<'_>,
    services: &[ServiceConfig],
    dns_service: Option<ServiceId>,
    addresses: &mut Addresses<'_>,
) -> Vec<WorkloadConfig> {
    let mut seen = BTreeSet::new();
    let mut workloads = Vec::new();
    for (i, w) in specs.iter().enumerate() {
        let at = |k: &str| fp!("workloads", i, k);
        let namespace = w.namespace.clone().unwrap_or_else(|| "default".into());
        if w.name.trim().is_empty() {
            c.value(at("name"), "name is empty");
        }
        if !seen.insert(w.name.clone()) {
            c.bad(
                ProblemKind::Duplicate,
                at("name"),
                format!("workload `{}` is declared twice", w.name),
            );
        }
        let names = w.node.names();
        if names.is_empty() {
            c.value(at("node"), "an empty list of nodes: name at least one");
        }
        let found: Vec<Option<usize>> = names.iter().map(|n| nodes.find(n)).collect();
        for (name, f) in names.iter().zip(&found) {
            if f.is_none() {
                c.bad(
                    ProblemKind::UnknownReference,
                    at("node"),
                    format!("unknown node `{name}` (nodes: {})", nodes.names()),
                );
            }
        }
        let pod_nodes: Vec<usize> = found.iter().flatten().copied().collect();
        let node = (pod_nodes.len() == names.len())
            .then(|| pod_nodes.first().copied())
            .flatten();
        if w.pods == 0 {
            c.value(at("pods"), "pods must be at least 1");
        }
        // Pod k on the (k mod n)-th node, its address from that node's podCIDR.
        let pod_ips: Vec<Ipv4Addr> = match node {
            Some(_) => (0..w.pods as usize)
                .map(|k| addresses.pod(c, pod_nodes[k % pod_nodes.len()], at("pods")))
                .collect(),
            None => Vec::new(),
        };
        let rate = match (w.rate, w.rate_profile.first()) {
            (Some(r), _) => r,
            (None, Some(first)) if first.at == SimDuration::ZERO => first.rate,
            (None, first) => {
                c.bad(
                    ProblemKind::MissingField,
                    at("rate"),
                    match first {
                        Some(f) => format!(
                            "missing: the rate before the first rateProfile step (at {}); give `rate`, or start rateProfile at 0s",
                            f.at
                        ),
                        None => "missing: give `rate` (such as 1k/s), or a rateProfile starting at 0s".to_owned(),
                    },
                );
                crate::scenario::Rate::from_milli_per_sec(0)
            }
        };
        let target = check_target(c, &w.target, &namespace, services, at("target"));
        let rate_profile = check_rate_profile(c, i, &w.rate_profile);
        let connection = check_connection(c, i, &w.connection);
        let timeout = w.timeout.unwrap_or(SimDuration::from_secs(1));
        if timeout == SimDuration::ZERO {
            c.value(at("timeout"), "timeout must be above 0s");
        }
        let dns = check_workload_dns(c, w, i, target, services, dns_service);
        workloads.push(WorkloadConfig {
            id: WorkloadId(u32::try_from(i).unwrap_or(u32::MAX)),
            name: w.name.clone(),
            namespace,
            node: NodeId(u32::try_from(node.unwrap_or(0)).unwrap_or(0)),
            nodes: pod_nodes
                .iter()
                .map(|n| NodeId(u32::try_from(*n).unwrap_or(0)))
                .collect(),
            pods: pod_ips,
            target: target.unwrap_or(WorkloadTarget::Address(SocketAddrV4::new(
                Ipv4Addr::UNSPECIFIED,
                0,
            ))),
            rate,
            rate_profile,
            connection,
            timeout,
            retries: RetryPolicy {
                max: w.retries.max,
                backoff: w.retries.backoff.unwrap_or(SimDuration::ZERO),
            },
            dns,
            arrivals: check_arrivals(c, i, w.arrivals.as_ref()),
            dns_only: check_dns_only(c, i, w),
        });
    }
    workloads
}

/// `workloads[i].rateProfile`: steps in time order, none starting inside the
/// previous step's ramp.
fn check_rate_profile(c: &mut Checker, i: usize, steps: &[file::RateStepSpec]) -> Vec<RateStep> {
    let mut rate_profile = Vec::new();
    let mut prev: Option<(SimDuration, SimDuration)> = None;
    for (j, s) in steps.iter().enumerate() {
        let ramp = s.ramp.unwrap_or(SimDuration::ZERO);
        if let Some((prev_at, prev_ramp)) = prev {
            if s.at <= prev_at {
                c.value(
                    fp!("workloads", i, "rateProfile", j, "at"),
                    format!("steps must be in time order: {} is not after {prev_at}", s.at),
                );
            } else if prev_at + prev_ramp > s.at {
                c.value(
                    fp!("workloads", i, "rateProfile", j, "at"),
                    format!(
                        "step at {} starts before the previous ramp ends at {}",
                        s.at,
                        prev_at + prev_ramp
                    ),
                );
            }
        }
        prev = Some((s.at, ramp));
        rate_profile.push(RateStep {
            at: s.at,
            rate: s.rate,
            ramp,
        });
    }
    rate_profile
}

/// `workloads[i].connection`.
fn check_connection(c: &mut Checker, i: usize, cn: &file::ConnectionSpec) -> ConnectionConfig {
    let pool_size = cn.pool_size.unwrap_or(10);
    if cn.mode == ConnectionMode::Pool && pool_size == 0 {
        c.value(
            fp!("workloads", i, "connection", "poolSize"),
            "poolSize must be at least 1",
        );
    }
    ConnectionConfig {
        mode: cn.mode,
        pool_size,
        max_requests_per_connection: cn.max_requests_per_connection.filter(|&m| m > 0),
        idle_timeout: cn.idle_timeout.unwrap_or(SimDuration::from_secs(90)),
        closer: cn.closer,
    }
}

/// Resolves `service:port`, `service.namespace:port` or `ip:port`.
fn check_target(
    c: &mut Checker,
    text: &str,
    namespace: &str,
    services: &[ServiceConfig],
    field: FieldPath,
) -> Option<WorkloadTarget> {
    if let Ok(addr) = text.parse::<SocketAddrV4>() {
        return Some(WorkloadTarget::Address(addr));
    }
    let Some((name, port)) = text.rsplit_once(':') else {
        c.value(
            field,
            format!("target `{text}` needs a port (`service:port` or `ip:port`)"),
        );
        return None;
    };
    let (svc, ns) = name.split_once('.').unwrap_or((name, namespace));
    let Some(s) = services.iter().find(|s| s.name == svc && s.namespace == ns) else {
        let elsewhere: Vec<&str> = services
            .iter()
            .filter(|s| s.name == svc)
            .map(|s| s.namespace.as_str())
            .collect();
        let hint = if let Some(other) = elsewhere.first() {
            format!("; it exists in namespace `{other}`: write `{svc}.{other}:{port}`")
        } else {
            let all: Vec<String> = services
                .iter()
                .map(|s| format!("{}.{}", s.name, s.namespace))
                .collect();
            format!(
                " (Services: {})",
                if all.is_empty() {
                    "none".into()
                } else {
                    all.join(", ")
                }
            )
        };
        c.bad(
            ProblemKind::UnknownReference,
            field,
            format!("unknown Service `{svc}` in namespace `{ns}`{hint}"),
        );
        return None;
    };
    let found = match port.parse::<u16>() {
        Ok(n) => s.ports.iter().position(|p| p.port == n),
        Err(_) => s.ports.iter().position(|p| p.name.as_deref() == Some(port)),
    };
    let Some(idx) = found else {
        let ports: Vec<String> = s.ports.iter().map(|p| p.port.to_string()).collect();
        c.bad(
            ProblemKind::UnknownReference,
            field,
            format!(
                "Service `{svc}` has no port `{port}` (ports: {})",
                ports.join(", ")
            ),
        );
        return None;
    };
    Some(WorkloadTarget::Service {
        service: s.id,
        port: idx,
    })
}

fn check_workload_dns(
    c: &mut Checker,
    w: &file::WorkloadSpec,
    i: usize,
    target: Option<WorkloadTarget>,
    services: &[ServiceConfig],
    dns_service: Option<ServiceId>,
) -> WorkloadDns {
    let d = &w.dns;
    let target_service = match target {
        Some(WorkloadTarget::Service { service, .. }) => services.get(service.0 as usize),
        _ => None,
    };
    let name = d.name.clone().or_else(|| target_service.map(|s| s.name.clone()));
    if d.mode != DnsMode::None {
        if dns_service.is_none() {
            c.bad(
                ProblemKind::UnknownReference,
                fp!("workloads", i, "dns", "mode"),
                format!(
                    "dns mode `{}` needs the cluster DNS Service (`kube-dns` in `kube-system`) in services",
                    if d.mode == DnsMode::Cached {
                        "cached"
                    } else {
                        "perRequest"
                    }
                ),
            );
        }
        if name.is_none() {
            c.value(
                fp!("workloads", i, "dns", "name"),
                "a name to resolve is needed when the target is an address",
            );
        }
    } else if target_service.is_some_and(|s| s.service_type == ServiceType::Headless) {
        c.value(
            fp!("workloads", i, "dns", "mode"),
            "a Headless Service has no clusterIP; clients find its pods through DNS (set dns.mode)",
        );
    }
    let ttl = d.ttl.unwrap_or(SimDuration::from_secs(30));
    if d.mode == DnsMode::Cached && ttl == SimDuration::ZERO {
        c.value(
            fp!("workloads", i, "dns", "ttl"),
            "ttl must be above 0s when dns mode is cached",
        );
    }
    if d.resolver_threads.is_some() {
        c.value(
            fp!("workloads", i, "dns", "resolverThreads"),
            "resolverThreads was replaced by threadPlacement: write `threadPlacement: same` for one thread \
             (resolverThreads: 1, glibc and musl) or `threadPlacement: scheduler` for two threads the scheduler \
             places (resolverThreads: 2); `different` pins the two threads to two CPUs",
        );
    }
    let thread_placement = match d.thread_placement.as_deref() {
        None => ThreadPlacement::Same,
        Some(t) => ThreadPlacement::parse(t).unwrap_or_else(|| {
            c.value(
                fp!("workloads", i, "dns", "threadPlacement"),
                format!("threadPlacement must be same, different or scheduler, not `{t}`"),
            );
            ThreadPlacement::Same
        }),
    };
    WorkloadDns {
        thread_placement,
        pair_gap: d.pair_gap.unwrap_or(SimDuration::from_micros(2)),
        mode: d.mode,
        name: name.unwrap_or_default(),
        ttl,
        parallel_aaaa: d.parallel_aaaa.unwrap_or(true),
        single_request_reopen: d.single_request_reopen.unwrap_or(false),
    }
}

/// `workloads[i].arrivals`.
fn check_arrivals(
    c: &mut Checker,
    i: usize,
    spec: Option<&file::ArrivalsSpec>,
) -> crate::scenario::ArrivalProcess {
    match spec {
        None | Some(file::ArrivalsSpec::Poisson {}) => crate::scenario::ArrivalProcess::Poisson,
        Some(file::ArrivalsSpec::Paced {}) => crate::scenario::ArrivalProcess::Paced,
        Some(file::ArrivalsSpec::Bursts { size }) => {
            if *size == 0 || *size > 1_000_000 {
                c.value(
                    fp!("workloads", i, "arrivals", "size"),
                    format!("burst size {size} is not in 1..=1000000"),
                );
            }
            crate::scenario::ArrivalProcess::Bursts { size: (*size).max(1) }
        }
    }
}

/// `workloads[i].dnsOnly`: needs a DNS mode that resolves on every request.
fn check_dns_only(c: &mut Checker, i: usize, w: &file::WorkloadSpec) -> bool {
    if w.dns_only && w.dns.mode != DnsMode::PerRequest {
        c.value(
            fp!("workloads", i, "dnsOnly"),
            "a DNS-only workload resolves on every request: set dns.mode: perRequest",
        );
    }
    if w.dns_only && w.connection.mode != ConnectionMode::Short {
        c.value(
            fp!("workloads", i, "dnsOnly"),
            "a DNS-only workload opens no connection: remove connection.mode: pool",
        );
    }
    w.dns_only
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load, problems};
    use crate::scenario::{Rate, WorkloadTarget};
    use crate::time::SimTime;

    #[test]
    fn rate_profile_steps_and_ramps_linearly() {
        let s = load(
            "services: [{name: x, ports: [{port: 80}]}]\nworkloads:\n  - {name: w, node: a, pods: 1, target: 'x:80', rate: 1k/s, rateProfile: [{at: 2s, rate: 2k/s}, {at: 4s, rate: 4k/s, ramp: 2s}]}\n",
        )
        .unwrap();
        let w = &s.workloads[0];
        let at = |ms| w.rate_at(SimTime::from_millis(ms));
        assert_eq!(at(0), Rate::per_sec(1_000));
        assert_eq!(at(2_000), Rate::per_sec(2_000));
        assert_eq!(at(5_000), Rate::per_sec(3_000));
        assert_eq!(at(6_000), Rate::per_sec(4_000));
        assert_eq!(at(60_000), Rate::per_sec(4_000));
        assert_eq!(
            w.target,
            WorkloadTarget::Service {
                service: s.services[0].id,
                port: 0
            }
        );
    }

    #[test]
    fn overlapping_ramps_and_unordered_steps_are_rejected() {
        let p = problems(
            "services: [{name: x, ports: [{port: 80}]}]\nworkloads:\n  - {name: w, node: a, pods: 1, target: 'x:80', rate: 1k/s, rateProfile: [{at: 2s, rate: 2k/s, ramp: 5s}, {at: 4s, rate: 4k/s}, {at: 3s, rate: 1k/s}]}\n",
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].1
                .contains("rateProfile[1].at: step at 4s starts before the previous ramp ends at 7s")
        );
        assert!(p[1].1.contains("rateProfile[2].at: steps must be in time order"));
    }

    #[test]
    fn target_in_another_namespace_gets_a_hint() {
        let p = problems(
            "services: [{name: x, namespace: shop, ports: [{port: 80, name: http}]}]\nworkloads:\n  - {name: w, node: a, pods: 1, target: 'x:80', rate: 1/s}\n  - {name: v, namespace: shop, node: a, pods: 1, target: 'x:grpc', rate: 1/s}\n",
        );
        assert!(p[0].1.contains("write `x.shop:80`"), "{p:?}");
        assert!(
            p[1].1.contains("Service `x` has no port `grpc` (ports: 80)"),
            "{p:?}"
        );
    }
}
