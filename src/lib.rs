//! # k8s-netsim
//!
//! A deterministic simulator of the network data path of Kubernetes nodes: network
//! namespaces, veth pairs and bridges, netfilter hooks and iptables rules, a bounded
//! conntrack table with NAT that follows the Linux kernel, kube-proxy's data planes,
//! DNS, sockets and clients, driven by a discrete-event engine.
//!
//! (Crate overview being written; see README.md.)

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

// Layer 2: services and the engine.
pub mod datapath;
pub mod engine;
pub mod service;

// Layer 3: configuration and traffic.
pub mod scenario;
pub mod traffic;

// Layer 4: the node simulation and its report.
pub mod report;
pub mod sim;
pub mod validate;
