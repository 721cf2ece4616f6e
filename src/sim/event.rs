//! The events of the node simulation and why each packet travels.

use crate::dns::{QType, Rcode};
use crate::packet::{Packet, Tuple};
use std::net::Ipv4Addr;

/// Events of the node simulation. Order of variants is irrelevant: the engine orders
/// by (time, sequence).
#[derive(Clone, Copy, Debug)]
pub(super) enum Event {
    /// Next request of a workload.
    Arrival { wl: u16 },
    /// A deferred packet starts its processing on a node CPU.
    HopStart { inflight: u32, waited: bool },
    /// A new-entry packet's processing ends: conntrack confirm.
    Confirm { inflight: u32 },
    /// A packet reached the namespace it was going to.
    Deliver { purpose: Purpose, pkt: Packet },
    /// A SYN retransmission timer of a connection.
    SynTimer { flow: u32, epoch: u32 },
    /// The deadline of a request attempt.
    Deadline { req: u32, epoch: u32 },
    /// Start the next attempt of a request after its backoff.
    Retry { req: u32, epoch: u32 },
    /// A server worker finished a request.
    ServerDone { flow: u32, epoch: u32, server: u32 },
    /// A DNS lookup's try deadline.
    DnsTimer { lookup: u32, epoch: u32 },
    /// A CoreDNS pod answers a query.
    DnsAnswer {
        dns_pod: u32,
        lookup: u32,
        query: u32,
        epoch: u32,
        qtype: QType,
        tuple: Tuple,
        /// The NodeLocal DNSCache forward this answers (`u32::MAX`: a pod's query).
        fwd: u32,
    },
    /// A NodeLocal DNSCache upstream connection's timer: SYN retransmission while
    /// connecting, read timeout while a query is out, idle expiry otherwise.
    UpTimer { conn: u32, epoch: u32 },
    /// The conntrack gc worker of a node.
    Gc { node: u16 },
    /// Record one time-series row.
    Sample,
}

/// Why a packet is travelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Purpose {
    /// A connection's SYN.
    Syn { flow: u32, epoch: u32 },
    /// The SYN-ACK answer.
    SynAck { flow: u32, epoch: u32 },
    /// The handshake ACK carrying the request (or a request on a pooled connection).
    Request { flow: u32, epoch: u32 },
    /// The response.
    Response { flow: u32, epoch: u32 },
    /// A DNS query.
    DnsQuery {
        lookup: u32,
        query: u32,
        epoch: u32,
        qtype: QType,
    },
    /// A DNS answer.
    DnsReply {
        lookup: u32,
        query: u32,
        epoch: u32,
        rcode: Rcode,
        records: u16,
        /// First A record (after CoreDNS `loadbalance` shuffled them), `0.0.0.0` if none.
        first: Ipv4Addr,
    },
    /// NodeLocal DNSCache → kube-dns: the upstream connection's SYN.
    UpSyn { conn: u32, epoch: u32 },
    /// Its SYN-ACK.
    UpSynAck { conn: u32, epoch: u32 },
    /// A forwarded query on an upstream connection.
    UpQuery { conn: u32, epoch: u32, fwd: u32 },
    /// CoreDNS's answer to a forwarded query.
    UpReply {
        conn: u32,
        epoch: u32,
        fwd: u32,
        rcode: Rcode,
        records: u16,
        first: Ipv4Addr,
    },
    /// A packet whose arrival needs no action (teardown segments).
    Silent,
}
