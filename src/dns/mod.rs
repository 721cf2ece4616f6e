//! The `dns` module models the client side of Kubernetes DNS as pure logic a
//! simulation drives: a pod's `resolv.conf` ([`ResolvConf`]), glibc's search-path
//! expansion under `ndots`, a sans-I/O lookup state machine ([`Lookup`]) that says
//! which A/AAAA queries leave from which socket and when it gives up, a name-answer
//! model of the cluster ([`Zone`]) and a TTL cache ([`DnsCache`]) for NodeLocal
//! DNSCache or client-side caching.
//!
//! What is modelled: glibc's stub resolver (`resolv/res_query.c`
//! `__res_context_search` and `__res_context_query`, `resolv/res_send.c`
//! `__res_context_send` and `send_dg`): candidate order, A and AAAA in parallel from
//! one UDP socket, `single-request` / `single-request-reopen`, the 5 s per-try
//! timeout and 2 attempts, glibc's automatic fallback to single-request and then
//! reopen when one of the pair is lost (the 5/10/15 s steps of V05 and V07), a new
//! socket per name, SERVFAIL and NXDOMAIN handling. Query counts follow
//! docs/validation-targets.md §DNS query amplification: `2 × (suffixes tried + 1)`.
//!
//! What is not: musl's resolver (parallel queries to all nameservers, retry every
//! `timeout / attempts`, no fallback), more than one nameserver and `rotate`, TCP
//! fallback on truncation, `send_vc`'s own blocking behaviour (modelled with the UDP
//! timeout, one attempt), EDNS, the server side (CoreDNS capacity belongs to the
//! simulation; [`AnswerSource`] separates cluster from upstream answers for its cost
//! model), negative-caching TTL policy (the caller picks TTLs). See
//! `docs/model.md`.

mod cache;
mod lookup;
mod resolv;
#[cfg(test)]
mod tests;
mod zone;

pub use cache::{CacheLookup, CacheStats, DnsCache};
pub use lookup::{
    Action, Answer, AnswerUse, Lookup, LookupOutcome, LookupResult, QType, Query, QueryId, Rcode, SocketSlot,
    Transport,
};
pub use resolv::{DnsError, ResolvConf, check_name};
pub use zone::{AnswerSource, Zone, ZoneAnswer};
