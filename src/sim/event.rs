//! The events of the node simulation and why each packet travels.

use super::slab::{FlightId, FlowId, FwdId, LookupId, ReqId, UpConnId};
use crate::dns::{QType, QueryId, Rcode};
use crate::packet::{Packet, Tuple};
use std::net::Ipv4Addr;

/// Events of the node simulation. Order of variants is irrelevant: the engine orders
/// by (time, sequence).
#[derive(Clone, Copy, Debug)]
pub(super) enum Event {
    /// Next request of a workload.
    Arrival { wl: u16 },
    /// A deferred packet starts its processing on a node CPU.
    HopStart { flight: FlightId, waited: bool },
    /// A new-entry packet's processing ends: conntrack confirm.
    Confirm { flight: FlightId },
    /// A packet reached the namespace it was going to.
    Deliver { purpose: Purpose, pkt: Packet },
    /// A SYN retransmission timer of a connection.
    SynTimer { flow: FlowId },
    /// The deadline of a request attempt.
    Deadline { req: ReqId, attempt: Attempt },
    /// Start the next attempt of a request after its backoff.
    Retry { req: ReqId, attempt: Attempt },
    /// A server worker finished a request.
    ServerDone { flow: FlowId, server: u32 },
    /// A DNS lookup's try deadline.
    DnsTimer { lookup: LookupId },
    /// A CoreDNS pod answers a query.
    DnsAnswer {
        dns_pod: u32,
        query: QueryOf,
        qtype: QType,
        tuple: Tuple,
    },
    /// A NodeLocal DNSCache upstream connection's timer: SYN retransmission while
    /// connecting, read timeout while a query is out, idle expiry otherwise.
    UpTimer { conn: UpConnId, turn: Turn },
    /// The conntrack gc worker of a node.
    Gc { node: u16 },
    /// Record one time-series row.
    Sample,
}

impl Event {
    /// Every kind of event, in report order.
    pub(super) const KINDS: [&'static str; 13] = [
        "arrival",
        "hop_start",
        "confirm",
        "deliver",
        "syn_timer",
        "deadline",
        "retry",
        "server_done",
        "dns_timer",
        "dns_answer",
        "upstream_timer",
        "gc",
        "sample",
    ];

    /// This event's index in [`Event::KINDS`].
    pub(super) fn kind(&self) -> usize {
        match self {
            Event::Arrival { .. } => 0,
            Event::HopStart { .. } => 1,
            Event::Confirm { .. } => 2,
            Event::Deliver { .. } => 3,
            Event::SynTimer { .. } => 4,
            Event::Deadline { .. } => 5,
            Event::Retry { .. } => 6,
            Event::ServerDone { .. } => 7,
            Event::DnsTimer { .. } => 8,
            Event::DnsAnswer { .. } => 9,
            Event::UpTimer { .. } => 10,
            Event::Gc { .. } => 11,
            Event::Sample => 12,
        }
    }
}

/// Which attempt of a request a timer belongs to: a request's deadline and its retry
/// are stale once the request has moved on to another attempt (or to its backoff).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Attempt(pub(super) u32);

/// Which turn of a NodeLocal DNSCache upstream connection (connecting, a query out,
/// idle) a timer or packet belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Turn(pub(super) u32);

/// Whose question a DNS query is: a pod's lookup, or a NodeLocal DNSCache forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum QueryOf {
    /// Query `query` of a pod's lookup (straight to CoreDNS or to the node's cache).
    Lookup { lookup: LookupId, query: QueryId },
    /// A query the node's cache agent forwards upstream.
    Forward(FwdId),
}

/// What a DNS answer says, as far as its asker cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Answer {
    pub(super) rcode: Rcode,
    pub(super) records: u16,
    /// First A record (after CoreDNS `loadbalance` shuffled them), if any.
    pub(super) first: Option<Ipv4Addr>,
}

/// Why a packet is travelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Purpose {
    /// A connection's SYN.
    Syn { flow: FlowId },
    /// The SYN-ACK answer.
    SynAck { flow: FlowId },
    /// The handshake ACK carrying the request (or a request on a pooled connection).
    Request { flow: FlowId },
    /// The response.
    Response { flow: FlowId },
    /// A pod's DNS query.
    DnsQuery {
        lookup: LookupId,
        query: QueryId,
        qtype: QType,
    },
    /// A DNS answer to a pod.
    DnsReply {
        lookup: LookupId,
        query: QueryId,
        answer: Answer,
    },
    /// NodeLocal DNSCache → kube-dns: the upstream connection's SYN.
    UpSyn { conn: UpConnId, turn: Turn },
    /// Its SYN-ACK.
    UpSynAck { conn: UpConnId, turn: Turn },
    /// A forwarded query on an upstream connection.
    UpQuery { conn: UpConnId, turn: Turn, fwd: FwdId },
    /// CoreDNS's answer to a forwarded query.
    UpReply {
        conn: UpConnId,
        turn: Turn,
        fwd: FwdId,
        answer: Answer,
    },
    /// A backend's RST answering a SYN (`server.behavior: reset`).
    Reset { flow: FlowId },
    /// A packet whose arrival needs no action (teardown segments).
    Silent,
}
