//! Typed handles into a [`Topology`](super::Topology).

use std::fmt;

/// A cluster node (a host), as returned by
/// [`TopologyBuilder::add_node`](super::TopologyBuilder::add_node).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct NodeId(pub(crate) u32);

/// A network namespace: a node's host namespace or a pod's namespace.
///
/// Ids are stable for the life of the topology (the graph is a petgraph
/// `StableGraph` and nothing is removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct NetnsId(pub(crate) u32);

/// A network device (`eth0`, `cni0`, a veth end, `flannel.1`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct DeviceId(pub(crate) u32);

/// A link between two namespaces (a veth pair, or a host's attachment to the
/// underlay fabric).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct LinkId(pub(crate) u32);

macro_rules! id_impl {
    ($t:ident, $prefix:literal) => {
        impl $t {
            /// The dense index behind the id (for arrays indexed by id).
            #[must_use]
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id_impl!(NodeId, "node#");
id_impl!(NetnsId, "netns#");
id_impl!(DeviceId, "dev#");
id_impl!(LinkId, "link#");
