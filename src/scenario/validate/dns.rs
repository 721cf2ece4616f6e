//! `dns`: the cluster DNS Service (added when needed and not declared) and NodeLocal
//! DNSCache.

use super::Checker;
use crate::packet::Cidr;
use crate::scenario::error::{FieldPath, PathSegment, ProblemKind};
use crate::scenario::file::{self, ScenarioFile};
use crate::scenario::{DnsConfig, NodeLocalDnsCache, ServiceConfig};
use crate::time::SimDuration;
use std::net::Ipv4Addr;

/// The cluster DNS Service kubeadm deploys, added when the scenario needs DNS (a workload
/// resolves names, or NodeLocal DNSCache is on) and declares no `kube-dns` in
/// `kube-system` nor another `dns.service`: the 10th address of the Service CIDR, port 53
/// over UDP and TCP, two CoreDNS replicas on the first node answering in 100 µs each.
/// Returns what was added, in words, for the report.
pub(super) fn add_implicit_kube_dns(f: &mut ScenarioFile, service_cidr: Cidr) -> Option<String> {
    let declared = f
        .services
        .iter()
        .any(|s| s.name == "kube-dns" && s.namespace.as_deref() == Some("kube-system"));
    let needs = f.workloads.iter().any(|w| w.dns.mode != file::DnsMode::None)
        || f.dns.node_local_dns_cache.as_ref().is_some_and(|n| n.enabled);
    let first = f.nodes.first().map(|n| n.name.clone())?;
    if declared || f.dns.service.is_some() || !needs {
        return None;
    }
    let ip = service_cidr.nth(10)?;
    let port = |protocol| file::ServicePortSpec {
        name: Some(format!(
            "dns{}",
            if protocol == file::ProtocolSpec::Tcp {
                "-tcp"
            } else {
                ""
            }
        )),
        port: 53,
        target_port: None,
        protocol,
        node_port: None,
    };
    f.services.push(file::ServiceSpec {
        name: "kube-dns".into(),
        namespace: Some("kube-system".into()),
        service_type: file::ServiceType::ClusterIP,
        cluster_ip: Some(ip.to_string()),
        ports: vec![port(file::ProtocolSpec::Udp), port(file::ProtocolSpec::Tcp)],
        endpoints: vec![file::EndpointsSpec {
            node: first.clone(),
            count: Some(2),
            ips: Vec::new(),
        }],
        server: Some(file::ServerSpec {
            service_time: Some(file::ServiceTimeSpec::Constant {
                value: SimDuration::from_micros(100),
            }),
            concurrency: None,
            backlog: None,
            capacity: None,
            behavior: file::ServerBehavior::default(),
        }),
    });
    Some(format!(
        "the scenario declares no kube-dns Service: an implicit one was added (kube-system/kube-dns {ip}:53 UDP and TCP, 2 CoreDNS pods on {first}, 100us per query, no capacity limit); declare it under services to change it"
    ))
}

/// `dns`: the cluster domain, `ndots`, the cluster DNS Service and NodeLocal DNSCache.
pub(super) fn check_dns(
    c: &mut Checker,
    spec: &file::DnsSpec,
    services: &[ServiceConfig],
    cluster_cidr: Cidr,
    service_cidr: Cidr,
) -> DnsConfig {
    let cluster_domain = spec
        .cluster_domain
        .clone()
        .unwrap_or_else(|| "cluster.local".into());
    if cluster_domain.is_empty() || cluster_domain.starts_with('.') || cluster_domain.ends_with('.') {
        c.value(
            fp!("dns", "clusterDomain"),
            format!("`{cluster_domain}` is not a domain (e.g. cluster.local)"),
        );
    }
    let ndots = spec.ndots.unwrap_or(5);
    if ndots > 15 {
        c.value(
            fp!("dns", "ndots"),
            format!("ndots {ndots} is above 15 (glibc caps it at 15)"),
        );
    }
    let service = {
        let wanted = spec.service.as_deref().unwrap_or("kube-dns");
        let (name, ns) = wanted.split_once('.').unwrap_or((wanted, "kube-system"));
        let found = services
            .iter()
            .find(|s| s.name == name && s.namespace == ns)
            .map(|s| s.id);
        if found.is_none() && spec.service.is_some() {
            c.bad(
                ProblemKind::UnknownReference,
                fp!("dns", "service"),
                format!("unknown Service `{name}` in namespace `{ns}`"),
            );
        }
        found
    };
    let node_local_cache = spec
        .node_local_dns_cache
        .as_ref()
        .and_then(|n| check_node_local_cache(c, n, cluster_cidr, service_cidr));
    DnsConfig {
        cluster_domain,
        ndots,
        service,
        node_local_cache,
    }
}

/// `dns.nodeLocalDNSCache`; `None` when it is not enabled (its fields are checked anyway).
fn check_node_local_cache(
    c: &mut Checker,
    n: &file::NodeLocalDnsSpec,
    cluster_cidr: Cidr,
    service_cidr: Cidr,
) -> Option<NodeLocalDnsCache> {
    let address = n
        .address
        .as_deref()
        .and_then(|a| c.ip(a, fp!("dns", "nodeLocalDNSCache", "address")))
        .unwrap_or(Ipv4Addr::new(169, 254, 20, 10));
    // The agent listens on its own local address; the iptables-mode deployment that
    // also binds the kube-dns ClusterIP is not modelled (docs/model.md), and a pod,
    // Service or unspecified address would silently bypass or shadow the cache.
    if n.enabled
        && (address.is_unspecified()
            || address.is_broadcast()
            || cluster_cidr.contains(address)
            || service_cidr.contains(address))
    {
        c.value(
            fp!("dns", "nodeLocalDNSCache", "address"),
            format!(
                "address {address} must be a node-local address outside clusterCIDR {cluster_cidr} and serviceCIDR {service_cidr} (node-local-dns uses 169.254.20.10; listening on the kube-dns ClusterIP is not modelled)"
            ),
        );
    }
    let ttl = n.ttl.unwrap_or(SimDuration::from_secs(30));
    if ttl == SimDuration::ZERO {
        c.value(fp!("dns", "nodeLocalDNSCache", "ttl"), "ttl must be above 0s");
    }
    let capacity = n.capacity.unwrap_or(9_984);
    if capacity == 0 {
        c.value(
            fp!("dns", "nodeLocalDNSCache", "capacity"),
            "capacity must be above 0",
        );
    }
    let upstream_expire = n.upstream_expire.unwrap_or(SimDuration::from_secs(10));
    if upstream_expire == SimDuration::ZERO {
        c.value(
            fp!("dns", "nodeLocalDNSCache", "upstreamExpire"),
            "upstreamExpire must be above 0s",
        );
    }
    n.enabled.then_some(NodeLocalDnsCache {
        address,
        ttl,
        capacity,
        force_tcp: n.force_tcp.unwrap_or(true),
        upstream_expire,
    })
}
