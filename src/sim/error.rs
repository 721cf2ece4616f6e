//! Why a valid scenario could not be simulated: something the user asked for that the
//! model cannot do (or a name that does not exist), or an internal failure.
//!
//! Simulated failures (drops, timeouts, clashes) are never errors: they are counted in
//! the report.

use crate::conntrack::CtError;
use crate::netfilter::import::ImportError;
use crate::socket::SocketError;
use crate::topology::TopologyError;

/// Why a scenario cannot be simulated (the scenario itself was valid).
///
/// [`SimError::is_user_error`] separates what the user can fix (their input) from
/// failures of the simulator itself.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A feature the scenario asks for is not modelled yet (the user's input).
    #[error("not supported yet: {what}")]
    Unsupported {
        /// What.
        what: String,
    },
    /// A name given to a command (a node, a pod, a Service, a port) is not in the
    /// scenario (the user's input).
    #[error("{flag}: {message}")]
    UnknownName {
        /// The flag or argument that named it (`--from`, `--to`, `--node`).
        flag: &'static str,
        /// What is wrong, with the names that exist.
        message: String,
    },
    /// A node's conntrack settings cannot be used (the user's sysctls).
    #[error("node {node}: {source}")]
    Conntrack {
        /// The node.
        node: String,
        /// Why.
        source: CtError,
    },
    /// A pod's socket settings cannot be used (the user's sysctls).
    #[error("pod {pod}: {source}")]
    Socket {
        /// The pod.
        pod: String,
        /// Why.
        source: SocketError,
    },
    /// The topology built from a validated scenario was refused (a bug: validation
    /// should have caught it).
    #[error("internal: topology: {0}")]
    Topology(#[source] TopologyError),
    /// Rules the simulator generates itself did not parse (a bug).
    #[error("internal: generated {what} rules: {source}")]
    GeneratedRules {
        /// Whose rules.
        what: &'static str,
        /// The parser's complaint.
        source: ImportError,
    },
    /// Any other failure of the simulator itself.
    #[error("internal: {0}")]
    Internal(String),
}

impl SimError {
    /// Whether the user's input caused it (a CLI exits with 2), rather than the
    /// simulator (exit 1).
    #[must_use]
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            SimError::Unsupported { .. }
                | SimError::UnknownName { .. }
                | SimError::Conntrack { .. }
                | SimError::Socket { .. }
        )
    }
}
