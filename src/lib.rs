//! # k8s-netsim
//!
//! A deterministic simulator of the network data path of Kubernetes nodes, faithful enough
//! to plan capacity with: network namespaces, veth pairs, bridges and CNI overlays; the
//! netfilter hooks with kube-proxy's iptables rules; one bounded conntrack table per node
//! with NAT, following the Linux kernel (`nf_conntrack_core.c`, `nf_nat_core.c`); sockets
//! (ephemeral ports, TIME_WAIT, SYN retransmission, listen queues); DNS (glibc's resolver,
//! CoreDNS); clients with timeouts, retries and pools; all on a discrete-event engine with
//! integer-nanosecond time.
//!
//! The question it answers: *replay this traffic on these nodes — when do `conntrack -S`'s
//! `drop`, `insert_failed` and `early_drop` start, on which node, and why?*
//!
//! ## The packet path
//!
//! ```text
//!  pod netns                 host netns of the node (conntrack + kube-proxy rules)
//!  connect() ─ SYN ─ veth ─▶ PREROUTING  raw ─ conntrack in (-200) ─ mangle ─ nat: DNAT (KUBE-SERVICES)
//!                            routing decision on the DNATed destination
//!                            FORWARD     mangle ─ filter (KUBE-FORWARD, NEW-guarded chains)
//!                            POSTROUTING mangle ─ nat: KUBE-POSTROUTING / MASQUERADE ─ confirm (INT_MAX)
//!                              └─▶ flannel.1 / tunl0 / underlay ─▶ other node's host netns ─▶ backend pod
//!  reply packets find the entry under its REPLY tuple and are un-NATed; the nat table
//!  runs only for the first packet of a connection.
//! ```
//!
//! An entry is allocated (and counted) at the first hook and confirmed at the last; the
//! simulation puts the packet's CPU time in between, which is where the kernel's insertion
//! clashes (`insert_failed`, `clash_resolve`) come from.
//!
//! ## Layers
//!
//! | Layer | Modules |
//! |---|---|
//! | 0 values | [`time`], [`packet`], [`rng`], [`kernel`] |
//! | 1 mechanisms | [`netfilter`], [`conntrack`], [`topology`], [`dns`], [`socket`] |
//! | 2 composition | [`service`] (kube-proxy rule generation), [`datapath`], [`engine`] |
//! | 3 input | [`scenario`], [`traffic`] |
//! | 4 simulation | [`sim`], [`report`], [`validate`] |
//! | 5 studies | [`study`] (compare, sweeps, capacity plans: many runs in parallel) |
//!
//! Modules import only from their own layer or below (`tests/it/layering.rs`).
//!
//! ## Determinism
//!
//! Simulated time is integer nanoseconds; every random choice draws from a ChaCha8 stream
//! derived from (scenario seed, component name); events at equal times run in scheduling
//! order; no hash-map iteration order reaches a decision or an output. The same scenario and
//! seed give byte-identical reports.
//!
//! ## Quick start
//!
//! ```
//! use k8s_netsim::scenario::{Override, Scenario};
//!
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/small.yaml");
//! let sc = Scenario::load(path, &[Override::parse("duration=2s").unwrap()]).unwrap();
//! let outcome = k8s_netsim::sim::run(&sc, &mut |_, _| {}).unwrap();
//! let report = outcome.report;
//! assert_eq!(report.verdict.kind, "none");
//! assert!(report.requests.ok > 1_000);
//! assert_eq!(report.nodes[0].conntrack.max, 131_072); // kube-proxy's sizing rule
//! ```

#![doc(test(attr(deny(warnings))))]

// Layer 0: pure values.
pub mod kernel;
pub mod packet;
pub mod rng;
pub mod time;

// Layer 1: state machines and structures.
pub mod conntrack;
pub mod dns;
pub mod netfilter;
pub mod socket;
pub mod topology;

// Layer 2: composition and the engine.
pub mod datapath;
pub mod engine;
pub mod service;

// Layer 3: configuration and traffic.
pub mod evidence;
pub mod scenario;
pub mod traffic;

// Layer 4: the node simulation and its report.
pub mod report;
pub mod sim;
pub mod validate;

// Layer 5: studies over many runs (compare, sweep, plan).
pub mod study;
