//! `services`: ClusterIPs, ports and node ports, endpoints (pinned or allocated) and
//! the backend server.

use super::Checker;
use super::addresses::Addresses;
use super::nodes::NodeLookup;
use crate::packet::Proto;
use crate::scenario::error::{FieldPath, PathSegment, ProblemKind};
use crate::scenario::file::{self, ProtocolSpec, ServiceTimeSpec};
use crate::scenario::{
    Endpoint, NodeId, ServerConfig, ServiceConfig, ServiceId, ServicePort, ServiceTime, ServiceType,
};
use crate::time::SimDuration;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// `services`: explicit addresses first, then each Service in order.
pub(super) fn check_services(
    c: &mut Checker,
    specs: &[file::ServiceSpec],
    nodes: &NodeLookup<'_>,
    addresses: &mut Addresses<'_>,
) -> Vec<ServiceConfig> {
    addresses.reserve_explicit(c, specs);
    reserve_pinned_endpoints(addresses, specs);
    let mut seen = BTreeSet::new();
    let mut services = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        services.push(check_service(c, i, s, &mut seen, nodes, addresses));
    }
    services
}

/// `services[i]`; `seen` holds the (namespace, name) pairs declared before it.
fn check_service(
    c: &mut Checker,
    i: usize,
    s: &file::ServiceSpec,
    seen: &mut BTreeSet<(String, String)>,
    nodes: &NodeLookup<'_>,
    addresses: &mut Addresses<'_>,
) -> ServiceConfig {
    let at = |k: &str| fp!("services", i, k);
    let namespace = s.namespace.clone().unwrap_or_else(|| "default".into());
    if s.name.trim().is_empty() {
        c.value(at("name"), "name is empty");
    }
    if !seen.insert((namespace.clone(), s.name.clone())) {
        c.bad(
            ProblemKind::Duplicate,
            at("name"),
            format!(
                "Service `{}` is declared twice in namespace `{namespace}`",
                s.name
            ),
        );
    }
    let cluster_ip = check_cluster_ip(c, i, s, addresses);
    if s.ports.is_empty() {
        c.value(at("ports"), "a Service needs at least one port");
    }
    let ports = check_service_ports(c, i, s, addresses);
    let mut endpoints = Vec::new();
    for (j, e) in s.endpoints.iter().enumerate() {
        let Some(node) = nodes.find(&e.node) else {
            c.bad(
                ProblemKind::UnknownReference,
                fp!("services", i, "endpoints", j, "node"),
                format!("unknown node `{}` (nodes: {})", e.node, nodes.names()),
            );
            continue;
        };
        for ip in endpoint_ips(c, i, j, e, node, addresses) {
            endpoints.push(Endpoint {
                node: NodeId(u32::try_from(node).unwrap_or(u32::MAX)),
                ip,
            });
        }
    }
    let server = check_server(c, s.server.as_ref(), i);
    ServiceConfig {
        id: ServiceId(u32::try_from(i).unwrap_or(u32::MAX)),
        name: s.name.clone(),
        namespace,
        service_type: s.service_type,
        cluster_ip,
        ports,
        endpoints,
        server,
    }
}

/// `services[i].clusterIP`: none for a Headless Service, the explicit one (inside
/// `serviceCIDR`), or the next free one.
fn check_cluster_ip(
    c: &mut Checker,
    i: usize,
    s: &file::ServiceSpec,
    addresses: &mut Addresses<'_>,
) -> Option<Ipv4Addr> {
    let at = || fp!("services", i, "clusterIP");
    match (s.service_type, s.cluster_ip.as_deref()) {
        (ServiceType::Headless, None | Some("None")) => None,
        (ServiceType::Headless, Some(t)) => {
            c.value(at(), format!("a Headless Service has no clusterIP (got `{t}`)"));
            None
        }
        (_, Some(t)) => c.ip(t, at()).inspect(|&ip| {
            let cidr = addresses.service_cidr;
            if !cidr.contains(ip) {
                c.value(
                    at(),
                    format!(
                        "clusterIP {ip} is outside serviceCIDR {}/{}",
                        cidr.addr(),
                        cidr.len()
                    ),
                );
            }
        }),
        (_, None) => {
            let ip = addresses.service_ip();
            if ip.is_none() {
                c.bad(ProblemKind::Exhausted, at(), "serviceCIDR has no address left");
            }
            ip
        }
    }
}

/// `services[i].ports`: numbers, protocols, names and node ports.
fn check_service_ports(
    c: &mut Checker,
    i: usize,
    s: &file::ServiceSpec,
    addresses: &mut Addresses<'_>,
) -> Vec<ServicePort> {
    let mut ports = Vec::new();
    let mut seen_ports = BTreeSet::new();
    for (j, p) in s.ports.iter().enumerate() {
        let pat = |k: &str| fp!("services", i, "ports", j, k);
        if p.port == 0 {
            c.value(pat("port"), "port 0 is not a port (1..65535)");
        }
        let target_port = p.target_port.unwrap_or(p.port);
        if target_port == 0 {
            c.value(pat("targetPort"), "targetPort 0 is not a port (1..65535)");
        }
        let protocol = match p.protocol {
            ProtocolSpec::Tcp => Proto::Tcp,
            ProtocolSpec::Udp => Proto::Udp,
        };
        if !seen_ports.insert((p.port, p.protocol == ProtocolSpec::Udp)) {
            c.bad(
                ProblemKind::Duplicate,
                pat("port"),
                format!("port {} is declared twice", p.port),
            );
        }
        if s.ports.len() > 1 && p.name.as_deref().is_none_or(str::is_empty) {
            c.value(pat("name"), "ports need names when a Service has more than one");
        }
        let node_port = match (s.service_type, p.node_port) {
            (ServiceType::NodePort, Some(np)) => {
                if !(30_000..=32_767).contains(&np) {
                    c.value(pat("nodePort"), format!("nodePort {np} is outside 30000-32767"));
                }
                Some(np)
            }
            (ServiceType::NodePort, None) => Some(addresses.node_port()),
            (_, Some(np)) => {
                c.value(
                    pat("nodePort"),
                    format!("nodePort {np} is set but the Service type is not NodePort"),
                );
                None
            }
            (_, None) => None,
        };
        ports.push(ServicePort {
            name: p.name.clone(),
            port: p.port,
            target_port,
            protocol,
            node_port,
        });
    }
    ports
}

fn check_server(c: &mut Checker, s: Option<&file::ServerSpec>, i: usize) -> ServerConfig {
    let Some(s) = s else {
        return ServerConfig {
            service_time: ServiceTime::Constant(SimDuration::from_millis(1)),
            concurrency: 64,
            backlog: None,
            capacity: None,
            behavior: crate::scenario::ServerBehavior::Normal,
        };
    };
    let service_time = match &s.service_time {
        None => ServiceTime::Constant(SimDuration::from_millis(1)),
        Some(ServiceTimeSpec::Constant { value }) => ServiceTime::Constant(*value),
        Some(ServiceTimeSpec::Exponential { mean }) => ServiceTime::Exponential { mean: *mean },
        Some(ServiceTimeSpec::Lognormal { median, sigma }) => {
            if !sigma.is_finite() || !(0.0..=10.0).contains(sigma) {
                c.value(
                    fp!("services", i, "server", "serviceTime", "sigma"),
                    format!("sigma {sigma} is not in 0..=10"),
                );
            }
            ServiceTime::Lognormal {
                median: *median,
                sigma: *sigma,
            }
        }
    };
    let concurrency = s.concurrency.unwrap_or(64);
    if concurrency == 0 {
        c.value(
            fp!("services", i, "server", "concurrency"),
            "concurrency must be at least 1",
        );
    }
    if s.capacity.is_some_and(crate::scenario::Rate::is_zero) {
        c.value(
            fp!("services", i, "server", "capacity"),
            "capacity must be above 0/s",
        );
    }
    ServerConfig {
        service_time,
        concurrency,
        backlog: s.backlog,
        capacity: s.capacity,
        behavior: s.behavior,
    }
}

/// Claims every `endpoints[].ips` address before any pod address is allocated.
fn reserve_pinned_endpoints(addresses: &mut Addresses<'_>, specs: &[file::ServiceSpec]) {
    for s in specs {
        for e in &s.endpoints {
            for t in &e.ips {
                if let Ok(ip) = t.parse::<Ipv4Addr>() {
                    addresses.pods.pinned.insert(ip);
                }
            }
        }
    }
}

/// `services[i].endpoints[j]`: its `ips` (each inside the node's podCIDR, none used
/// twice) or `count` addresses allocated in order; both given must agree.
fn endpoint_ips(
    c: &mut Checker,
    i: usize,
    j: usize,
    e: &file::EndpointsSpec,
    node: usize,
    addresses: &mut Addresses<'_>,
) -> Vec<Ipv4Addr> {
    if e.ips.is_empty() {
        let Some(count) = e.count else {
            c.value(
                fp!("services", i, "endpoints", j, "count"),
                "give `count` or the pods' addresses in `ips`",
            );
            return Vec::new();
        };
        return (0..count)
            .map(|_| addresses.pod(c, node, fp!("services", i, "endpoints", j, "count")))
            .collect();
    }
    if let Some(count) = e.count
        && usize::try_from(count).ok() != Some(e.ips.len())
    {
        c.value(
            fp!("services", i, "endpoints", j, "count"),
            format!(
                "count {count} does not match the {} addresses in `ips`",
                e.ips.len()
            ),
        );
    }
    let cidr = addresses.nodes[node].pod_cidr;
    let mut out = Vec::new();
    for (k, t) in e.ips.iter().enumerate() {
        let field = fp!("services", i, "endpoints", j, "ips", k);
        let Some(ip) = c.ip(t, field.clone()) else {
            continue;
        };
        if !cidr.contains(ip) {
            c.value(
                field,
                format!(
                    "{ip} is outside node `{}`'s podCIDR {cidr}",
                    addresses.nodes[node].name
                ),
            );
            continue;
        }
        if !addresses.pods.pinned_used.insert(ip) {
            c.bad(
                ProblemKind::Duplicate,
                field,
                format!("pod address {ip} is used twice"),
            );
            continue;
        }
        out.push(ip);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load, problems};

    #[test]
    fn headless_services_have_no_cluster_ip_and_need_dns() {
        let p = problems(
            "services:\n  - {name: h, type: Headless, clusterIP: 10.96.0.5, ports: [{port: 80}]}\n  - {name: g, type: Headless, ports: [{port: 80}]}\nworkloads:\n  - {name: w, node: a, pods: 1, target: 'g:80', rate: 1/s}\n",
        );
        assert!(
            p.iter()
                .any(|(_, m)| m.contains("services[0].clusterIP: a Headless Service has no clusterIP"))
        );
        assert!(
            p.iter()
                .any(|(_, m)| m.contains("workloads[0].dns.mode: a Headless Service"))
        );
    }

    #[test]
    fn node_ports_are_allocated_and_range_checked() {
        let s = load("services:\n  - {name: n, type: NodePort, ports: [{port: 80}]}\n").unwrap();
        assert_eq!(s.services[0].ports[0].node_port, Some(30_000));
        let p = problems("services:\n  - {name: n, type: NodePort, ports: [{port: 80, nodePort: 80}]}\n");
        assert!(p[0].1.contains("nodePort 80 is outside 30000-32767"), "{p:?}");
    }

    /// docs/kernel-semantics.md (accept queue): the queue is bounded by min(backlog, somaxconn).
    #[test]
    fn listen_backlog_is_capped_by_somaxconn() {
        let s = load("services: [{name: x, ports: [{port: 80}], server: {backlog: 511}}, {name: y, ports: [{port: 80}]}]\n")
            .unwrap();
        assert_eq!(s.services[0].server.effective_backlog(4_096), 511);
        assert_eq!(s.services[0].server.effective_backlog(128), 128);
        assert_eq!(s.services[1].server.effective_backlog(4_096), 4_096);
    }
}
