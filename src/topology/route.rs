//! Routing tables with longest-prefix match (`fib_table_lookup`).

use super::id::DeviceId;
use crate::packet::Cidr;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// What a route does with a matching packet (`rtm_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum RouteKind {
    /// `RTN_UNICAST`: send out of `dev`, to `via` or directly to the destination.
    Unicast,
    /// `RTN_BLACKHOLE`: silently drop (Calico installs one per IPAM block it owns).
    Blackhole,
}

/// One route: `ip route add <dst> [via <via>] dev <dev> [src <src>]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Route {
    /// Destination prefix.
    pub dst: Cidr,
    /// Output device (for a blackhole route: the namespace's `lo`, unused).
    #[serde(skip)]
    pub dev: DeviceId,
    /// Gateway; `None` means the destination is on-link.
    pub via: Option<Ipv4Addr>,
    /// Preferred source address (`src`), used for locally generated packets and by
    /// MASQUERADE when set.
    pub src: Option<Ipv4Addr>,
    /// Unicast or blackhole.
    pub kind: RouteKind,
}

impl Route {
    /// A unicast route.
    #[must_use]
    pub fn unicast(dst: Cidr, dev: DeviceId, via: Option<Ipv4Addr>, src: Option<Ipv4Addr>) -> Route {
        Route {
            dst,
            dev,
            via,
            src,
            kind: RouteKind::Unicast,
        }
    }
}

/// A namespace's main routing table, looked up by longest-prefix match.
///
/// Routes are kept per prefix length, longest first, each length in a `BTreeMap`
/// keyed by network address: a lookup costs one map probe per prefix length present
/// (typically 3 to 5), and never allocates. One route per prefix (no metrics, no
/// multipath); the kernel's `local` table is modelled separately by the namespace's
/// local addresses, which are checked first (see [`Topology::route`](super::Topology::route)).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteTable {
    by_len: Vec<(u8, BTreeMap<u32, Route>)>,
}

impl RouteTable {
    /// An empty table.
    #[must_use]
    pub fn new() -> RouteTable {
        RouteTable::default()
    }

    /// Adds `route`, replacing (and returning) any route for the same prefix
    /// (`ip route replace`).
    pub fn insert(&mut self, route: Route) -> Option<Route> {
        let len = route.dst.len();
        let pos = match self.by_len.binary_search_by(|(l, _)| len.cmp(l)) {
            Ok(pos) => pos,
            Err(pos) => {
                self.by_len.insert(pos, (len, BTreeMap::new()));
                pos
            }
        };
        self.by_len[pos].1.insert(u32::from(route.dst.addr()), route)
    }

    /// The most specific route containing `dst`, if any (`fib_table_lookup`).
    #[must_use]
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<&Route> {
        let ip = u32::from(dst);
        self.by_len.iter().find_map(|(len, routes)| {
            let mask = if *len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(*len))
            };
            routes.get(&(ip & mask))
        })
    }

    /// Number of routes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_len.iter().map(|(_, r)| r.len()).sum()
    }

    /// Whether the table has no routes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_len.iter().all(|(_, r)| r.is_empty())
    }

    /// All routes, longest prefix first, then by address.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.by_len.iter().flat_map(|(_, r)| r.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn more_specific_route_wins_regardless_of_insertion_order() {
        let mut t = RouteTable::new();
        t.insert(Route::unicast(
            Cidr::ANY,
            DeviceId(0),
            Some(Ipv4Addr::new(10, 0, 0, 1)),
            None,
        ));
        t.insert(Route::unicast(cidr("10.244.0.0/16"), DeviceId(1), None, None));
        t.insert(Route::unicast(cidr("10.244.1.7/32"), DeviceId(3), None, None));
        t.insert(Route::unicast(cidr("10.244.1.0/24"), DeviceId(2), None, None));
        let dev = |ip: [u8; 4]| t.lookup(Ipv4Addr::from(ip)).unwrap().dev;
        assert_eq!(dev([10, 244, 1, 7]), DeviceId(3));
        assert_eq!(dev([10, 244, 1, 8]), DeviceId(2));
        assert_eq!(dev([10, 244, 2, 8]), DeviceId(1));
        assert_eq!(dev([8, 8, 8, 8]), DeviceId(0));
        assert_eq!(t.len(), 4);
        let lens: Vec<u8> = t.iter().map(|r| r.dst.len()).collect();
        assert_eq!(lens, vec![32, 24, 16, 0]);
    }

    #[test]
    fn no_default_route_means_no_match() {
        let mut t = RouteTable::new();
        t.insert(Route::unicast(cidr("10.244.1.0/24"), DeviceId(2), None, None));
        assert!(t.lookup(Ipv4Addr::new(10, 244, 2, 1)).is_none());
        assert!(RouteTable::new().is_empty());
    }

    #[test]
    fn insert_replaces_same_prefix() {
        let mut t = RouteTable::new();
        assert!(
            t.insert(Route::unicast(cidr("10.1.0.0/16"), DeviceId(1), None, None))
                .is_none()
        );
        let old = t.insert(Route::unicast(cidr("10.1.0.0/16"), DeviceId(2), None, None));
        assert_eq!(old.map(|r| r.dev), Some(DeviceId(1)));
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(Ipv4Addr::new(10, 1, 2, 3)).unwrap().dev, DeviceId(2));
    }
}
