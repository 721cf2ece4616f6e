//! `backgroundServices`: Services counted in the rules but not simulated, their
//! ClusterIPs after every other Service's and their endpoints on nodes not simulated.

use super::Checker;
use super::addresses::{Addresses, free_pod_blocks};
use crate::packet::Cidr;
use crate::scenario::BackgroundService;
use crate::scenario::error::{FieldPath, PathSegment, ProblemKind};
use crate::scenario::file;

/// `backgroundServices`: `count` ClusterIPs after every other Service's, and
/// `endpointsEach` endpoints each from the /24 blocks of `clusterCIDR` no node uses.
pub(super) fn check_background_services(
    c: &mut Checker,
    spec: Option<&file::BackgroundServicesSpec>,
    cluster_cidr: Cidr,
    addresses: &mut Addresses<'_>,
) -> Vec<BackgroundService> {
    let mut background_services = Vec::new();
    let Some(b) = spec else {
        return background_services;
    };
    let mut blocks = free_pod_blocks(cluster_cidr, addresses.nodes);
    let mut block: Option<(Cidr, u32)> = None;
    let mut out_of_pods = false;
    for k in 0..b.count {
        let Some(cluster_ip) = addresses.service_ip() else {
            c.bad(
                ProblemKind::Exhausted,
                fp!("backgroundServices", "count"),
                format!(
                    "serviceCIDR has room for only {k} background Services, not {}",
                    b.count
                ),
            );
            break;
        };
        let mut endpoints = Vec::with_capacity(b.endpoints_each as usize);
        for _ in 0..b.endpoints_each {
            // .2 ..= .254 of each free /24.
            let ip = loop {
                match block {
                    Some((cidr, n)) if n < 255 => {
                        block = Some((cidr, n + 1));
                        break cidr.nth(n);
                    }
                    _ => match blocks.next() {
                        Some(cidr) => block = Some((cidr, 2)),
                        None => break None,
                    },
                }
            };
            match ip {
                Some(ip) => endpoints.push(ip),
                None => out_of_pods = true,
            }
        }
        if out_of_pods {
            c.bad(
                ProblemKind::Exhausted,
                fp!("backgroundServices", "endpointsEach"),
                format!(
                    "clusterCIDR has no room left for {} × {} background endpoints beside the nodes' podCIDRs",
                    b.count, b.endpoints_each
                ),
            );
            break;
        }
        background_services.push(BackgroundService {
            cluster_ip,
            port: 80,
            endpoints,
        });
    }
    background_services
}
