//! Stage 2: checks a parsed [`ScenarioFile`] and builds the [`Scenario`], collecting
//! every problem instead of stopping at the first.
//!
//! One function per part of the file, called in this order: the top level
//! ([`check_top_level`]), `kubeProxy`, `cost`, `nodes`, `services`, `dns`, `workloads`,
//! `backgroundServices`, `variants`. Addresses are allocated in declaration order (nodes,
//! then Service endpoints, then workload pods, then background Services) from one
//! [`Addresses`] state, so the same file always gives the same addresses. A variant is
//! checked here for its own declaration only; checking it against the base (the whole
//! pipeline again, with its overrides) is the loader's job.
//!
//! This file holds the pipeline, the problem collector and the size limits; each part
//! of the file is checked in its own submodule:
//!
//! - [`top_level`] checks `name`, `duration`, `sampleInterval`, `kernel`, the CIDRs,
//!   `kubeProxy` and `cost`;
//! - [`addresses`] hands out pod addresses, ClusterIPs, node ports and the /24 blocks
//!   of `clusterCIDR`;
//! - [`nodes`] checks `nodes` (addresses, podCIDRs, sysctls, extra rules,
//!   `iptablesSave`, conntrack start) and `baseline`;
//! - [`services`] checks `services` (ClusterIPs, ports, endpoints, servers);
//! - [`dns`] checks `dns` and NodeLocal DNSCache, and adds the implicit kube-dns Service;
//! - [`workloads`] checks `workloads` (targets, rate profiles, connections, DNS,
//!   arrivals);
//! - [`background`] checks `backgroundServices`;
//! - [`variants`] checks `variants`.

use super::Scenario;
use super::error::{FieldPath, PathSegment, Pending, ProblemKind};
use super::file::ScenarioFile;
use super::source::SourceMap;
use crate::packet::Cidr;
use serde_norway::Value;
use std::net::Ipv4Addr;

macro_rules! fp {
    ($($s:expr),* $(,)?) => { FieldPath(vec![$(PathSegment::from($s)),*]) };
}

mod addresses;
mod background;
mod dns;
mod nodes;
mod services;
mod top_level;
mod variants;
mod workloads;

use addresses::Addresses;
use background::check_background_services;
use dns::{add_implicit_kube_dns, check_dns};
use nodes::{NodeLookup, check_baseline, check_nodes};
use services::check_services;
use top_level::{check_kube_proxy, check_top_level, cost_model};
use variants::check_variants;
use workloads::check_workloads;

/// Collects problems.
#[derive(Default)]
struct Checker {
    problems: Vec<Pending>,
}

impl Checker {
    fn bad(&mut self, kind: ProblemKind, field: FieldPath, message: impl Into<String>) {
        self.problems.push(Pending::new(kind, field, message));
    }

    fn value(&mut self, field: FieldPath, message: impl Into<String>) {
        self.bad(ProblemKind::BadValue, field, message);
    }

    /// Parses a CIDR, or reports it and returns `fallback` so checking goes on.
    fn cidr(&mut self, text: Option<&str>, fallback: &str, field: FieldPath) -> Cidr {
        let fb = fallback.parse().unwrap_or(Cidr::ANY);
        match text {
            None => fb,
            Some(t) => t.parse().unwrap_or_else(|e| {
                self.value(field, format!("{e}"));
                fb
            }),
        }
    }

    fn ip(&mut self, text: &str, field: FieldPath) -> Option<Ipv4Addr> {
        match text.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.value(field, format!("`{text}` is not an IPv4 address"));
                None
            }
        }
    }
}

/// What stage 2 found.
pub(crate) struct Checked {
    /// The scenario, or the problems of every part of the file but `variants`.
    pub(crate) base: Result<Scenario, Vec<Pending>>,
    /// One entry per variant, in file order (the scenario's `variants` in the same order).
    pub(crate) variants: Vec<VariantCheck>,
}

/// A variant's own problems: a duplicate name, `set` lines that do not parse.
pub(crate) struct VariantCheck {
    pub(crate) problems: Vec<Pending>,
    /// Every `set` line parsed, so the variant can be checked against the base.
    pub(crate) parsed: bool,
}

/// Most nodes a scenario may declare: Kubernetes' own limit for one cluster.
pub const MAX_CLUSTER_NODES: usize = 5_000;
/// Most Services a scenario may declare, named and background together (ten times the
/// 10,000 Services per cluster Kubernetes is tested with).
pub const MAX_SERVICES: u64 = 100_000;
/// Most pod addresses a scenario may ask for: Service endpoints, workload pods and
/// background endpoints together (Kubernetes is tested with 150,000 pods per cluster).
pub const MAX_PODS: u64 = 1_000_000;

pub(crate) fn validate(file: &str, mut f: ScenarioFile, raw: Value, map: SourceMap) -> Checked {
    let mut c = Checker::default();
    // Counts first, by arithmetic: everything below allocates per node, per Service and
    // per pod, so a hostile count is refused before any of it.
    if !check_sizes(&mut c, &f) {
        return Checked {
            base: Err(c.problems),
            variants: check_variants(&f.variants).1,
        };
    }
    let top = check_top_level(&mut c, &f);
    let implicit_kube_dns = add_implicit_kube_dns(&mut f, top.service_cidr);
    let kube_proxy = check_kube_proxy(&mut c, &f.kube_proxy);
    let cost = cost_model(&f.cost);
    let nodes = check_nodes(
        &mut c,
        &f.nodes,
        top.kernel,
        &kube_proxy,
        top.cluster_cidr,
        top.node_cidr,
    );
    let lookup = NodeLookup::new(&nodes);
    let mut addresses = Addresses::new(&nodes, top.service_cidr);
    let services = check_services(&mut c, &f.services, &lookup, &mut addresses);
    let dns = check_dns(&mut c, &f.dns, &services, top.cluster_cidr, top.service_cidr);
    let workloads = check_workloads(
        &mut c,
        &f.workloads,
        &lookup,
        &services,
        dns.service,
        &mut addresses,
    );
    let background_services = check_background_services(
        &mut c,
        f.background_services.as_ref(),
        top.cluster_cidr,
        &mut addresses,
    );
    let (variants, variant_checks) = check_variants(&f.variants);
    let baseline = check_baseline(&mut c, f.baseline.as_ref(), &lookup);
    let base = if c.problems.is_empty() {
        Ok(Scenario {
            file: file.to_string(),
            name: f.name,
            description: f.description,
            seed: f.seed,
            duration: f.duration,
            sample_interval: top.sample_interval,
            kernel: top.kernel,
            cni: f.cni,
            cluster_cidr: top.cluster_cidr,
            service_cidr: top.service_cidr,
            kube_proxy,
            cost,
            nodes,
            services,
            background_services,
            dns,
            workloads,
            variants,
            baseline,
            implicit_kube_dns,
            raw,
            map,
        })
    } else {
        Err(c.problems)
    };
    Checked {
        base,
        variants: variant_checks,
    }
}

/// Refuses node, Service and pod counts over [`MAX_CLUSTER_NODES`], [`MAX_SERVICES`] and
/// [`MAX_PODS`], each at the field that asks for the most; true when all fit.
fn check_sizes(c: &mut Checker, f: &ScenarioFile) -> bool {
    let before = c.problems.len();
    if f.nodes.len() > MAX_CLUSTER_NODES {
        c.bad(
            ProblemKind::TooLarge,
            fp!("nodes"),
            format!(
                "{} nodes: a scenario holds at most {MAX_CLUSTER_NODES} (Kubernetes' limit for one cluster)",
                f.nodes.len()
            ),
        );
    }
    let background = f.background_services.as_ref();
    let named = f.services.len() as u64;
    let services = named.saturating_add(background.map_or(0, |b| u64::from(b.count)));
    if services > MAX_SERVICES {
        let field = match background {
            Some(b) if u64::from(b.count) >= named => fp!("backgroundServices", "count"),
            _ => fp!("services"),
        };
        c.bad(
            ProblemKind::TooLarge,
            field,
            format!(
                "{services} Services: a scenario holds at most {MAX_SERVICES}, named and background together"
            ),
        );
    }
    // (field, pods asked for there), in file order.
    let mut asks: Vec<(FieldPath, u64)> = Vec::new();
    for (i, s) in f.services.iter().enumerate() {
        for (j, e) in s.endpoints.iter().enumerate() {
            // `count`, or one pod per listed address (`ips`).
            let pods = e.count.map_or(e.ips.len() as u64, u64::from);
            asks.push((fp!("services", i, "endpoints", j, "count"), pods));
        }
    }
    for (i, w) in f.workloads.iter().enumerate() {
        asks.push((fp!("workloads", i, "pods"), u64::from(w.pods)));
    }
    if let Some(b) = background {
        let field = if b.endpoints_each >= b.count {
            fp!("backgroundServices", "endpointsEach")
        } else {
            fp!("backgroundServices", "count")
        };
        asks.push((field, u64::from(b.count) * u64::from(b.endpoints_each)));
    }
    let pods = asks.iter().fold(0u64, |acc, (_, n)| acc.saturating_add(*n));
    if pods > MAX_PODS
        && let Some((field, most)) = asks.iter().rev().max_by_key(|(_, n)| *n)
    {
        c.bad(
            ProblemKind::TooLarge,
            field.clone(),
            format!(
                "{most} pods asked for here, {pods} in all: a scenario holds at most {MAX_PODS} pod addresses (Service endpoints, workload pods and background endpoints together)"
            ),
        );
    }
    c.problems.len() == before
}

#[cfg(test)]
mod tests;
