//! Address allocation: pod pools per node, ClusterIPs, node ports, and the /24 block
//! arithmetic of `clusterCIDR`, handed out in declaration order.

use super::Checker;
use crate::packet::Cidr;
use crate::scenario::error::{FieldPath, PathSegment, ProblemKind};
use crate::scenario::file;
use crate::scenario::{NodeConfig, ServiceType};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// The number of addresses in `c`.
pub(super) fn size_of(c: Cidr) -> u64 {
    1u64 << (32 - u32::from(c.len()))
}

/// Whether two prefixes share an address.
pub(super) fn overlaps(a: Cidr, b: Cidr) -> bool {
    a.contains(b.addr()) || b.contains(a.addr())
}

/// Hands out pod addresses from each node's pod CIDR: `.0` is the network, `.1` the
/// bridge/gateway (flannel's `cni0`), the last address the broadcast.
pub(super) struct PodPool {
    next: Vec<u64>,
    exhausted: BTreeSet<usize>,
    /// Addresses given explicitly (`endpoints[].ips`): allocation skips them.
    pub(super) pinned: BTreeSet<Ipv4Addr>,
    /// Of those, the ones already given to an endpoint.
    pub(super) pinned_used: BTreeSet<Ipv4Addr>,
}

impl PodPool {
    fn take(&mut self, node: usize, cidr: Cidr) -> Option<Ipv4Addr> {
        let n = self.next.get_mut(node)?;
        loop {
            if *n + 1 >= size_of(cidr) {
                return None;
            }
            let ip = cidr.nth(u32::try_from(*n).ok()?)?;
            *n += 1;
            if !self.pinned.contains(&ip) {
                return Some(ip);
            }
        }
    }
}

/// The address state shared by the parts of the file that place things in the
/// cluster (Services, workloads, background Services), handed out in declaration
/// order: pod addresses per node, ClusterIPs from `serviceCIDR`, node ports from 30000.
pub(super) struct Addresses<'a> {
    pub(super) nodes: &'a [NodeConfig],
    pub(super) pods: PodPool,
    pub(super) service_cidr: Cidr,
    used_service_ips: BTreeSet<Ipv4Addr>,
    next_service_ip: u64,
    used_node_ports: BTreeSet<u16>,
    next_node_port: u16,
}

impl<'a> Addresses<'a> {
    pub(super) fn new(nodes: &'a [NodeConfig], service_cidr: Cidr) -> Addresses<'a> {
        Addresses {
            nodes,
            pods: PodPool {
                next: vec![2; nodes.len()],
                exhausted: BTreeSet::new(),
                pinned: BTreeSet::new(),
                pinned_used: BTreeSet::new(),
            },
            service_cidr,
            used_service_ips: BTreeSet::new(),
            next_service_ip: 2,
            used_node_ports: BTreeSet::new(),
            next_node_port: 30_000,
        }
    }

    /// Claims the explicit ClusterIPs and node ports first, so allocation skips them,
    /// and reports the ones used twice.
    pub(super) fn reserve_explicit(&mut self, c: &mut Checker, services: &[file::ServiceSpec]) {
        for (i, s) in services.iter().enumerate() {
            if let Some(t) = s.cluster_ip.as_deref()
                && s.service_type != ServiceType::Headless
                && let Ok(ip) = t.parse::<Ipv4Addr>()
                && !self.used_service_ips.insert(ip)
            {
                c.bad(
                    ProblemKind::Duplicate,
                    fp!("services", i, "clusterIP"),
                    format!("clusterIP {ip} is used twice"),
                );
            }
            for (j, p) in s.ports.iter().enumerate() {
                if let Some(np) = p.node_port
                    && !self.used_node_ports.insert(np)
                {
                    c.bad(
                        ProblemKind::Duplicate,
                        fp!("services", i, "ports", j, "nodePort"),
                        format!("nodePort {np} is used twice"),
                    );
                }
            }
        }
    }

    /// The next pod address on `node`. A full podCIDR is reported once per node (at
    /// `field`); then `0.0.0.0` stands in so checking goes on.
    pub(super) fn pod(&mut self, c: &mut Checker, node: usize, field: FieldPath) -> Ipv4Addr {
        let cidr = self.nodes[node].pod_cidr;
        self.pods.take(node, cidr).unwrap_or_else(|| {
            if self.pods.exhausted.insert(node) {
                c.bad(
                    ProblemKind::Exhausted,
                    field,
                    format!(
                        "node `{}` has no pod address left in its podCIDR {}/{} ({} pods fit)",
                        self.nodes[node].name,
                        cidr.addr(),
                        cidr.len(),
                        size_of(cidr).saturating_sub(3)
                    ),
                );
            }
            Ipv4Addr::UNSPECIFIED
        })
    }

    /// The next free ClusterIP (from `.2` of `serviceCIDR`), or `None` when it is full.
    pub(super) fn service_ip(&mut self) -> Option<Ipv4Addr> {
        while self.next_service_ip + 1 < size_of(self.service_cidr) {
            let ip = self.service_cidr.nth(u32::try_from(self.next_service_ip).ok()?)?;
            self.next_service_ip += 1;
            if self.used_service_ips.insert(ip) {
                return Some(ip);
            }
        }
        None
    }

    /// The next free node port from 30000 (32767 once the range is used up).
    pub(super) fn node_port(&mut self) -> u16 {
        while self.used_node_ports.contains(&self.next_node_port) && self.next_node_port < 32_767 {
            self.next_node_port += 1;
        }
        self.used_node_ports.insert(self.next_node_port);
        self.next_node_port
    }
}

/// The next /24 of `cluster` from block `*next_block` on that no podCIDR in `taken`
/// touches (kube-controller-manager's `--node-cidr-mask-size` default 24).
pub(super) fn next_free_pod_block(
    cluster: Cidr,
    taken: &[(usize, Cidr)],
    next_block: &mut u32,
) -> Option<Cidr> {
    let b = first_free_block(cluster, taken.iter().map(|(_, q)| *q), u64::from(*next_block))?;
    *next_block = u32::try_from(b + 1).unwrap_or(u32::MAX);
    block_cidr(cluster, b)
}

/// The index of the first /24 block of `cluster`, from block `from` on, that no CIDR of
/// `taken` touches. A taken range is jumped over at once, so the cost grows with the
/// number of taken ranges, not with the size of `cluster` (a `/1` has 8 million blocks).
fn first_free_block<I>(cluster: Cidr, taken: I, from: u64) -> Option<u64>
where
    I: Iterator<Item = Cidr> + Clone,
{
    if cluster.len() > 24 {
        return None;
    }
    let blocks = size_of(cluster) >> 8;
    let start = u64::from(u32::from(cluster.addr()));
    let mut b = from;
    while b < blocks {
        let lo = start + (b << 8);
        let hi = lo + 255;
        let hit = taken.clone().find_map(|q| {
            let qa = u64::from(u32::from(q.addr()));
            let qz = qa + size_of(q) - 1;
            (qa <= hi && qz >= lo).then_some(qz)
        });
        match hit {
            None => return Some(b),
            // The first block that starts after the taken range.
            Some(qz) => b = (qz + 1 - start).div_ceil(256).max(b + 1),
        }
    }
    None
}

/// Block `b` (a /24) of `cluster`.
fn block_cidr(cluster: Cidr, b: u64) -> Option<Cidr> {
    let base = cluster.nth(u32::try_from(b << 8).ok()?)?;
    Cidr::new(base, 24).ok()
}

/// /24 blocks of `cluster` that no node's podCIDR touches (for background endpoints,
/// which live on nodes the scenario does not simulate).
pub(super) fn free_pod_blocks(cluster: Cidr, nodes: &[NodeConfig]) -> impl Iterator<Item = Cidr> + '_ {
    let mut next = 0u64;
    std::iter::from_fn(move || {
        let b = first_free_block(cluster, nodes.iter().map(|n| n.pod_cidr), next)?;
        next = b + 1;
        block_cidr(cluster, b)
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{BASE, load};
    use crate::scenario::{ProblemKind, Scenario};

    use std::net::Ipv4Addr;

    #[test]
    fn addresses_are_allocated_in_order_skipping_explicit_ones() {
        let s = load(
            "services:\n  - {name: x, ports: [{port: 80}], endpoints: [{node: b, count: 2}, {node: a, count: 1}]}\n  - {name: y, clusterIP: 10.96.0.2, ports: [{port: 80}]}\n",
        )
        .unwrap();
        // Node b claimed .10 and 10.244.0.0/24 explicitly; a gets the next free ones.
        assert_eq!(s.nodes[0].ip, Ipv4Addr::new(192, 168, 0, 11));
        assert_eq!(s.nodes[0].pod_cidr.to_string(), "10.244.1.0/24");
        assert_eq!(s.services[0].cluster_ip, Some(Ipv4Addr::new(10, 96, 0, 3)));
        let ips: Vec<Ipv4Addr> = s.services[0].endpoints.iter().map(|e| e.ip).collect();
        assert_eq!(
            ips,
            [
                Ipv4Addr::new(10, 244, 0, 2),
                Ipv4Addr::new(10, 244, 0, 3),
                Ipv4Addr::new(10, 244, 1, 2)
            ]
        );
        let again = load(
            "services:\n  - {name: x, ports: [{port: 80}], endpoints: [{node: b, count: 2}, {node: a, count: 1}]}\n  - {name: y, clusterIP: 10.96.0.2, ports: [{port: 80}]}\n",
        )
        .unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn full_pod_cidr_is_reported_once_naming_the_node() {
        let text = BASE.replace("podCIDR: 10.244.0.0/24", "podCIDR: 10.244.0.0/30");
        let e = Scenario::from_bytes(
            "p.yaml",
            format!(
                "{text}services: [{{name: x, ports: [{{port: 80}}], endpoints: [{{node: b, count: 5}}]}}]\n"
            )
            .as_bytes(),
            &[],
        )
        .unwrap_err();
        assert_eq!(e.problems().len(), 1, "{e}");
        assert_eq!(e.problems()[0].kind, ProblemKind::Exhausted);
        assert!(
            e.to_string()
                .contains("node `b` has no pod address left in its podCIDR 10.244.0.0/30 (1 pods fit)"),
            "{e}"
        );
    }
}
