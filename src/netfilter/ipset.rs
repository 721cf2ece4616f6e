//! ipsets matched by `-m set --match-set` (kube-proxy's IPVS mode uses them).

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use crate::packet::{Proto, Tuple};

use super::rule::SetDirs;

/// The set types modelled (`ipset create NAME TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpSetKind {
    /// `hash:ip`: one address.
    HashIp,
    /// `hash:ip,port`: address, protocol and port (KUBE-CLUSTER-IP).
    HashIpPort,
    /// `hash:ip,port,ip`: address, protocol, port and a second address (KUBE-LOOP-BACK).
    HashIpPortIp,
    /// `bitmap:port`: a port (KUBE-NODE-PORT-TCP).
    BitmapPort,
}

impl IpSetKind {
    /// The number of dimensions a member has.
    #[must_use]
    pub fn dimensions(self) -> usize {
        match self {
            IpSetKind::HashIp | IpSetKind::BitmapPort => 1,
            IpSetKind::HashIpPort => 2,
            IpSetKind::HashIpPortIp => 3,
        }
    }

    /// The type name `ipset` uses.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            IpSetKind::HashIp => "hash:ip",
            IpSetKind::HashIpPort => "hash:ip,port",
            IpSetKind::HashIpPortIp => "hash:ip,port,ip",
            IpSetKind::BitmapPort => "bitmap:port",
        }
    }
}

impl fmt::Display for IpSetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member of a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpSetEntry {
    /// A `hash:ip` member.
    Ip(Ipv4Addr),
    /// A `hash:ip,port` member (`10.96.0.10,udp:53`).
    IpPort(Ipv4Addr, Proto, u16),
    /// A `hash:ip,port,ip` member.
    IpPortIp(Ipv4Addr, Proto, u16, Ipv4Addr),
    /// A `bitmap:port` member.
    Port(u16),
}

impl IpSetEntry {
    fn kind(self) -> IpSetKind {
        match self {
            IpSetEntry::Ip(_) => IpSetKind::HashIp,
            IpSetEntry::IpPort(..) => IpSetKind::HashIpPort,
            IpSetEntry::IpPortIp(..) => IpSetKind::HashIpPortIp,
            IpSetEntry::Port(_) => IpSetKind::BitmapPort,
        }
    }
}

/// Why a set operation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IpSetError {
    /// The member does not have the set's type.
    #[error("set `{set}` has type {kind}; member {entry:?} does not fit")]
    WrongKind {
        /// The set.
        set: String,
        /// Its type.
        kind: IpSetKind,
        /// The member offered.
        entry: IpSetEntry,
    },
}

/// A named set of addresses/ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpSet {
    name: String,
    kind: IpSetKind,
    entries: BTreeSet<IpSetEntry>,
}

impl IpSet {
    /// An empty set.
    #[must_use]
    pub fn new(name: impl Into<String>, kind: IpSetKind) -> IpSet {
        IpSet {
            name: name.into(),
            kind,
            entries: BTreeSet::new(),
        }
    }

    /// The set's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The set's type.
    #[must_use]
    pub fn kind(&self) -> IpSetKind {
        self.kind
    }

    /// Number of members.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set has no members.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a member (`ipset add`).
    ///
    /// # Errors
    /// When the member's shape does not fit the set type.
    pub fn insert(&mut self, entry: IpSetEntry) -> Result<bool, IpSetError> {
        if entry.kind() != self.kind {
            return Err(IpSetError::WrongKind {
                set: self.name.clone(),
                kind: self.kind,
                entry,
            });
        }
        Ok(self.entries.insert(entry))
    }

    /// Whether `entry` is a member.
    #[must_use]
    pub fn contains(&self, entry: &IpSetEntry) -> bool {
        self.entries.contains(entry)
    }

    /// Members in order.
    pub fn entries(&self) -> impl Iterator<Item = &IpSetEntry> {
        self.entries.iter()
    }

    /// Whether the packet matches, taking each dimension from the side `dirs` names
    /// (`ip_set_test` with the `xt_set` flags). Fewer directions than dimensions never match
    /// here (the kernel would reject the rule).
    #[must_use]
    pub fn matches(&self, tuple: &Tuple, dirs: SetDirs) -> bool {
        if dirs.len() < self.kind.dimensions() {
            return false;
        }
        let addr = |i: usize| if dirs.is_src(i) { tuple.src } else { tuple.dst };
        let port = |i: usize| if dirs.is_src(i) { tuple.sport } else { tuple.dport };
        let entry = match self.kind {
            IpSetKind::HashIp => IpSetEntry::Ip(addr(0)),
            IpSetKind::HashIpPort => IpSetEntry::IpPort(addr(0), tuple.proto, port(1)),
            IpSetKind::HashIpPortIp => IpSetEntry::IpPortIp(addr(0), tuple.proto, port(1), addr(2)),
            IpSetKind::BitmapPort => IpSetEntry::Port(port(0)),
        };
        self.entries.contains(&entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ip_port_matches_destination_address_and_port() {
        let mut s = IpSet::new("KUBE-CLUSTER-IP", IpSetKind::HashIpPort);
        let vip = Ipv4Addr::new(10, 96, 0, 10);
        s.insert(IpSetEntry::IpPort(vip, Proto::Udp, 53)).unwrap();
        assert!(s.insert(IpSetEntry::Port(53)).is_err());
        let t = Tuple::new(Proto::Udp, Ipv4Addr::new(10, 244, 0, 5), 40000, vip, 53);
        let dst2 = SetDirs::new(&[false, false]).unwrap();
        assert!(s.matches(&t, dst2));
        assert!(!s.matches(&t, SetDirs::new(&[true, true]).unwrap()));
        assert!(!s.matches(&t, SetDirs::new(&[false]).unwrap()));
        let tcp = Tuple {
            proto: Proto::Tcp,
            ..t
        };
        assert!(!s.matches(&tcp, dst2));
    }
}
