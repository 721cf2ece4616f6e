//! The Services recovered from kube-proxy's rules, as one scenario can hold them: the
//! ports it can take, one service range clear of the cluster (pod) CIDR, and the
//! `services:` section, where each pod address backs one Service.

use super::q;
use crate::evidence::Skipped;
use crate::evidence::rules::RecoveredPort;
use crate::packet::{Cidr, Proto};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// Writes the `services:` section: each Service recovered from the rules, by
/// (namespace, name), with its ClusterIP, its ports and its endpoints on the /24 nodes
/// inside `cluster_cidr`; what a scenario cannot hold is noted in `skipped`.
pub(super) fn write_services(
    y: &mut String,
    by_service: &BTreeMap<(String, String), Vec<&RecoveredPort>>,
    cluster_cidr: Cidr,
    skipped: &mut Vec<Skipped>,
) {
    if !by_service.is_empty() {
        let _ = writeln!(y, "services:");
    }
    let mut cluster_ips = std::collections::BTreeSet::new();
    // A pod address backs one Service in the scenario; a second Service selecting the
    // same pod (the same DNAT target) keeps its ports but not that endpoint.
    let mut claimed: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    for ((ns, svc), ports) in by_service {
        // Two Services on one ClusterIP (a garbled dump): the first keeps it.
        if !cluster_ips.insert(ports[0].cluster_ip) {
            skipped.push(Skipped::new(
                &ports[0].source,
                0,
                format!(
                    "Service {ns}/{svc}: clusterIP {} is already another Service's; this Service is left out",
                    ports[0].cluster_ip
                ),
            ));
            continue;
        }
        let _ = writeln!(y, "  - name: {}   # {}", q(svc), ports[0].source);
        let _ = writeln!(y, "    namespace: {}   # {}", q(ns), ports[0].source);
        let _ = writeln!(
            y,
            "    clusterIP: {}   # {}",
            ports[0].cluster_ip, ports[0].source
        );
        if ports.iter().any(|p| p.cluster_ip != ports[0].cluster_ip) {
            skipped.push(Skipped::new(
                &ports[0].source,
                0,
                format!(
                    "Service {ns}/{svc} has ports on several ClusterIPs; the first, {}, is used",
                    ports[0].cluster_ip
                ),
            ));
        }
        let _ = writeln!(y, "    ports:");
        let mut used_names = std::collections::BTreeSet::new();
        for (k, p) in ports.iter().enumerate() {
            let target = p.endpoints.first().map_or(p.port, |e| e.port());
            let mut pname = if p.port_name.is_empty() {
                format!("p{k}")
            } else {
                p.port_name.clone()
            };
            if !used_names.insert(pname.clone()) {
                pname = format!("{pname}-{k}");
                used_names.insert(pname.clone());
            }
            let name_field = if ports.len() > 1 || !p.port_name.is_empty() {
                format!("name: {}, ", q(&pname))
            } else {
                String::new()
            };
            let proto = if p.protocol == Proto::Udp { "UDP" } else { "TCP" };
            let _ = writeln!(
                y,
                "      - {{{name_field}port: {}, targetPort: {target}, protocol: {proto}}}   # {}",
                p.port, p.source
            );
        }
        let eps = endpoints_by_node(ns, svc, ports, cluster_cidr, &mut claimed, skipped);
        if !eps.is_empty() {
            let _ = writeln!(y, "    endpoints:");
            for (block, ips) in &eps {
                let o = block.octets();
                let list: Vec<String> = ips.iter().map(ToString::to_string).collect();
                let _ = writeln!(
                    y,
                    "      - {{node: pods-{}-{}-{}, ips: [{}]}}   # the KUBE-SEP DNAT targets of the ports' chains",
                    o[0],
                    o[1],
                    o[2],
                    list.join(", ")
                );
            }
        }
    }
}

/// A Service's endpoints by /24 node: the union over its ports' DNAT targets. An
/// endpoint outside the cluster CIDR has no simulated backend, and a pod address backs
/// one Service in the scenario: `claimed` holds each address's first Service, and a
/// later Service selecting the same address keeps its ports but not that endpoint; each
/// is noted in `skipped`.
fn endpoints_by_node(
    ns: &str,
    svc: &str,
    ports: &[&RecoveredPort],
    cluster_cidr: Cidr,
    claimed: &mut BTreeMap<Ipv4Addr, String>,
    skipped: &mut Vec<Skipped>,
) -> BTreeMap<Ipv4Addr, Vec<Ipv4Addr>> {
    let mut eps: BTreeMap<Ipv4Addr, Vec<Ipv4Addr>> = BTreeMap::new();
    for p in ports {
        for e in &p.endpoints {
            if !cluster_cidr.contains(*e.ip()) {
                skipped.push(Skipped::new(&p.source, 0, format!("endpoint {e} of {ns}/{svc} is outside clusterCIDR {cluster_cidr} (host network?): no simulated backend; connections to it go unanswered")));
                continue;
            }
            let owner = format!("{ns}/{svc}");
            match claimed.get(e.ip()) {
                Some(first) if *first != owner => {
                    skipped.push(Skipped::new(&p.source, 0, format!("endpoint {e} of {owner} is also an endpoint of Service {first}; a scenario's pod backs one Service, so it is left out here")));
                    continue;
                }
                Some(_) => {}
                None => {
                    claimed.insert(*e.ip(), owner);
                }
            }
            let block = Ipv4Addr::from(u32::from(*e.ip()) & 0xffff_ff00);
            let v = eps.entry(block).or_default();
            if !v.contains(e.ip()) {
                v.push(*e.ip());
            }
        }
    }
    eps
}

/// The recovered ports a scenario can hold: port 0 (or a first endpoint on port 0)
/// and a Service's second port with the same number and protocol are left out, each
/// with a note.
pub(super) fn usable_ports(ports: Vec<RecoveredPort>, skipped: &mut Vec<Skipped>) -> Vec<RecoveredPort> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(ports.len());
    for p in ports {
        let why = if p.port == 0 || p.endpoints.first().is_some_and(|e| e.port() == 0) {
            Some("port 0 is not a port".to_string())
        } else if !seen.insert((p.namespace.clone(), p.name.clone(), p.port, p.protocol)) {
            let proto = if p.protocol == Proto::Udp { "UDP" } else { "TCP" };
            Some(format!(
                "port {} {proto} was already given by an earlier rule",
                p.port
            ))
        } else {
            None
        };
        match why {
            Some(why) => skipped.push(Skipped::new(
                &p.source,
                0,
                format!("Service {}/{}: {why}; this port is left out", p.namespace, p.name),
            )),
            None => out.push(p),
        }
    }
    out
}

/// The ports whose ClusterIPs one service range can hold without overlapping the
/// cluster (pod) CIDR, in order; each other port is left out with a note. A ClusterIP
/// inside the cluster CIDR, or one that would stretch the range the earlier ones share
/// over it, cannot be part of one `serviceCIDR` (the scenario has one, as a cluster
/// without multiple ServiceCIDRs does).
pub(super) fn outside_cluster_cidr(
    ports: Vec<RecoveredPort>,
    cluster: Cidr,
    skipped: &mut Vec<Skipped>,
) -> Vec<RecoveredPort> {
    let mut range: Option<Cidr> = None;
    let mut out = Vec::with_capacity(ports.len());
    for p in ports {
        let wider = widen(range, p.cluster_ip);
        if wider.overlaps(cluster) {
            skipped.push(Skipped::new(
                &p.source,
                0,
                format!(
                    "Service {}/{}: ClusterIP {} cannot share a service range with the ClusterIPs before it without overlapping the cluster CIDR {cluster}; this port is left out",
                    p.namespace, p.name, p.cluster_ip
                ),
            ));
        } else {
            range = Some(wider);
            out.push(p);
        }
    }
    out
}

/// The smallest prefix, at most a /24, holding `range` and `ip`.
fn widen(range: Option<Cidr>, ip: Ipv4Addr) -> Cidr {
    let (base, len) = match range {
        Some(r) => {
            let common = (u32::from(r.addr()) ^ u32::from(ip)).leading_zeros();
            (r.addr(), u32::from(r.len()).min(common))
        }
        None => (ip, 24),
    };
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    Cidr::new(
        Ipv4Addr::from(u32::from(base) & mask),
        u8::try_from(len).unwrap_or(24),
    )
    .unwrap_or(Cidr::ANY)
}

/// `10.96.0.0/12` when it holds every ClusterIP and not the cluster CIDR (kube's
/// default), else the smallest prefix (at most /24) holding them all, which
/// [`outside_cluster_cidr`] has kept clear of the cluster CIDR. With no ClusterIPs, the
/// first of a few private ranges clear of the cluster CIDR; `None` when the cluster CIDR
/// leaves no room for any.
pub(super) fn service_cidr_for(vips: &[Ipv4Addr], cluster: Cidr) -> Option<Cidr> {
    let default = Cidr::new(Ipv4Addr::new(10, 96, 0, 0), 12).ok()?;
    if !default.overlaps(cluster) && vips.iter().all(|ip| default.contains(*ip)) {
        return Some(default);
    }
    if let Some(range) = vips.iter().fold(None, |r, ip| Some(widen(r, *ip))) {
        return Some(range);
    }
    [
        Ipv4Addr::new(172, 30, 0, 0),
        Ipv4Addr::new(192, 168, 0, 0),
        Ipv4Addr::new(100, 64, 0, 0),
    ]
    .into_iter()
    .filter_map(|a| Cidr::new(a, 16).ok())
    .find(|c| !c.overlaps(cluster))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn the_service_range_is_the_default_or_the_smallest_prefix_clear_of_the_pods() {
        let pods = cidr("10.10.0.0/16");
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            service_cidr_for(&[ip("10.96.0.10")], pods),
            Some(cidr("10.96.0.0/12"))
        );
        assert_eq!(
            service_cidr_for(&[ip("172.30.1.1"), ip("172.30.7.2")], pods),
            Some(cidr("172.30.0.0/21"))
        );
        // The default overlaps these pods: the smallest prefix instead.
        assert_eq!(
            service_cidr_for(&[ip("10.96.0.10")], cidr("10.96.128.0/17")),
            Some(cidr("10.96.0.0/24"))
        );
        // No ClusterIPs: the default, else a private range clear of the pods.
        assert_eq!(service_cidr_for(&[], pods), Some(cidr("10.96.0.0/12")));
        assert_eq!(
            service_cidr_for(&[], cidr("10.0.0.0/8")),
            Some(cidr("172.30.0.0/16"))
        );
        assert_eq!(service_cidr_for(&[], cidr("0.0.0.0/0")), None);
    }
}
