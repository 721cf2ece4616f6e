//! Which names exist: cluster Services (the CoreDNS `kubernetes` plugin) and external
//! names (forwarded upstream).

use super::lookup::{Answer, QType, Rcode};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Who produces an answer, which is what a DNS server's cost per query depends on.
/// KEP-1024's benchmark (docs/validation-targets.md §V12) measured CoreDNS under a 50m CPU
/// limit at about 850 QPS for cluster names (found or NXDOMAIN) and about 200 QPS for
/// external names; use the source to pick the per-query cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum AnswerSource {
    /// Answered from cluster state (the name is under the cluster domain).
    Cluster,
    /// Forwarded to the upstream resolver.
    Upstream,
}

/// What a name resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Record {
    /// A ClusterIP Service: one A record.
    Service(Ipv4Addr),
    /// A headless Service: one A record per ready pod.
    Headless(Vec<Ipv4Addr>),
    /// An external name with its addresses.
    External(Vec<Ipv4Addr>),
}

/// The answer the zone gives to one query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneAnswer<'a> {
    /// Response code.
    pub rcode: Rcode,
    /// Addresses (empty for AAAA: the modelled cluster is IPv4-only).
    pub addrs: &'a [Ipv4Addr],
    /// Who answered.
    pub source: AnswerSource,
}

impl ZoneAnswer<'_> {
    /// The answer as a resolver sees it.
    #[must_use]
    pub fn to_answer(&self) -> Answer {
        Answer {
            rcode: self.rcode,
            records: u16::try_from(self.addrs.len()).unwrap_or(u16::MAX),
        }
    }
}

/// The names a cluster's DNS answers for.
///
/// - `<svc>.<ns>.svc.<domain>`: NOERROR with the ClusterIP, or with the pod IPs for
///   a headless Service; AAAA gets NOERROR without records (IPv4-only cluster);
/// - any other name under the cluster domain: NXDOMAIN, answered by the cluster;
/// - names added with [`Zone::add_external`]: NOERROR from upstream;
/// - every other name: NXDOMAIN from upstream, or, after
///   [`Zone::with_unknown_external`], NOERROR with that address.
///
/// Names are case-insensitive and may carry a trailing dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    domain: String,
    names: BTreeMap<String, Record>,
    unknown_external: Option<[Ipv4Addr; 1]>,
}

impl Zone {
    /// An empty zone for cluster domain `domain` (usually `cluster.local`).
    #[must_use]
    pub fn new(domain: &str) -> Zone {
        Zone {
            domain: normalise(domain).into_owned(),
            names: BTreeMap::new(),
            unknown_external: None,
        }
    }

    /// The cluster domain.
    #[must_use]
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Makes every unlisted external name resolve to `addr` (an "the internet
    /// answers" model), instead of NXDOMAIN.
    #[must_use]
    pub fn with_unknown_external(mut self, addr: Ipv4Addr) -> Zone {
        self.unknown_external = Some([addr]);
        self
    }

    /// Adds a ClusterIP Service `name` in `namespace`; returns its FQDN.
    pub fn add_service(&mut self, namespace: &str, name: &str, cluster_ip: Ipv4Addr) -> String {
        let fqdn = self.service_fqdn(namespace, name);
        self.names.insert(fqdn.clone(), Record::Service(cluster_ip));
        fqdn
    }

    /// Adds a headless Service whose ready pods have `pod_ips`; returns its FQDN.
    pub fn add_headless_service(&mut self, namespace: &str, name: &str, pod_ips: Vec<Ipv4Addr>) -> String {
        let fqdn = self.service_fqdn(namespace, name);
        self.names.insert(fqdn.clone(), Record::Headless(pod_ips));
        fqdn
    }

    /// Adds an external name with its addresses.
    pub fn add_external(&mut self, name: &str, addrs: Vec<Ipv4Addr>) {
        self.names
            .insert(normalise(name).into_owned(), Record::External(addrs));
    }

    fn service_fqdn(&self, namespace: &str, name: &str) -> String {
        normalise(&format!("{name}.{namespace}.svc.{}", self.domain)).into_owned()
    }

    /// Whether `name` is under the cluster domain.
    #[must_use]
    pub fn is_cluster_name(&self, name: &str) -> bool {
        let n = normalise(name);
        n == self.domain
            || n.strip_suffix(self.domain.as_str())
                .is_some_and(|rest| rest.ends_with('.'))
    }

    /// The answer to a `qtype` query for `name`. Allocation-free for lowercase names.
    #[must_use]
    pub fn answer(&self, name: &str, qtype: QType) -> ZoneAnswer<'_> {
        let n = normalise(name);
        let source = if self.is_cluster_name(&n) {
            AnswerSource::Cluster
        } else {
            AnswerSource::Upstream
        };
        let found: Option<&[Ipv4Addr]> = match self.names.get(n.as_ref()) {
            Some(Record::Service(ip)) => Some(std::slice::from_ref(ip)),
            Some(Record::Headless(ips) | Record::External(ips)) => Some(ips),
            None if source == AnswerSource::Upstream => self.unknown_external.as_ref().map(|a| a.as_slice()),
            None => None,
        };
        match found {
            Some(addrs) => ZoneAnswer {
                rcode: Rcode::NoError,
                addrs: if qtype == QType::A { addrs } else { &[] },
                source,
            },
            None => ZoneAnswer {
                rcode: Rcode::NxDomain,
                addrs: &[],
                source,
            },
        }
    }
}

/// Lowercase without trailing dot; borrows when already normal.
fn normalise(name: &str) -> Cow<'_, str> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(bare.to_ascii_lowercase())
    } else {
        Cow::Borrowed(bare)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_resolve_and_other_cluster_names_do_not() {
        let mut z = Zone::new("cluster.local");
        let fqdn = z.add_service("shop", "orders", Ipv4Addr::new(10, 96, 3, 4));
        assert_eq!(fqdn, "orders.shop.svc.cluster.local");
        let a = z.answer("Orders.shop.svc.cluster.local.", QType::A);
        assert_eq!(
            (a.rcode, a.addrs, a.source),
            (
                Rcode::NoError,
                &[Ipv4Addr::new(10, 96, 3, 4)][..],
                AnswerSource::Cluster
            )
        );
        let aaaa = z.answer(&fqdn, QType::Aaaa);
        assert_eq!((aaaa.rcode, aaaa.addrs.len()), (Rcode::NoError, 0));
        let nx = z.answer("orders.svc.cluster.local", QType::A);
        assert_eq!((nx.rcode, nx.source), (Rcode::NxDomain, AnswerSource::Cluster));
    }

    #[test]
    fn headless_services_answer_with_every_pod_ip() {
        let mut z = Zone::new("cluster.local");
        let ips = vec![Ipv4Addr::new(10, 244, 0, 5), Ipv4Addr::new(10, 244, 1, 7)];
        let fqdn = z.add_headless_service("shop", "db", ips.clone());
        assert_eq!(z.answer(&fqdn, QType::A).addrs, &ips[..]);
        assert_eq!(z.answer(&fqdn, QType::A).to_answer().records, 2);
    }

    #[test]
    fn external_names_come_from_upstream() {
        let mut z = Zone::new("cluster.local");
        z.add_external("api.example.com", vec![Ipv4Addr::new(93, 184, 216, 34)]);
        let a = z.answer("api.example.com", QType::A);
        assert_eq!((a.rcode, a.source), (Rcode::NoError, AnswerSource::Upstream));
        let nx = z.answer("api.example.com.ec2.internal", QType::A);
        assert_eq!((nx.rcode, nx.source), (Rcode::NxDomain, AnswerSource::Upstream));
        let open = z.clone().with_unknown_external(Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!(
            open.answer("anything.example.org", QType::A).rcode,
            Rcode::NoError
        );
        // The cluster domain stays authoritative.
        assert_eq!(open.answer("nope.cluster.local", QType::A).rcode, Rcode::NxDomain);
        assert!(!z.is_cluster_name("notcluster.local"));
    }
}
