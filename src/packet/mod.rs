//! The `packet` module holds the pure values every other layer speaks in: addresses and
//! CIDRs, protocols, 5-tuples, TCP flags, packet marks and the [`Packet`] itself.
//!
//! Nothing here has state or reads a clock. IPv4 only for now: addresses are
//! [`std::net::Ipv4Addr`] and every place that would change for IPv6 goes through
//! [`Tuple`] and [`Cidr`], so a family can be added there (see `docs/model.md`).

mod cidr;
mod tuple;

pub use cidr::{Cidr, CidrParseError};
pub use tuple::{Direction, Mark, Packet, Proto, TcpFlags, Tuple};
