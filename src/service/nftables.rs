//! The `nftables` module models kube-proxy's nftables mode (`pkg/proxy/nftables/proxier.go`,
//! `syncProxyRules` and `setupNFTables`): the private `ip kube-proxy` table with its base
//! chains, the `services` dispatch chain (`ip daddr . meta l4proto . th dport vmap
//! @service-ips`), the `service-ips`, `service-nodeports`, `no-endpoint-*`, `firewall-ips`
//! verdict maps and `cluster-ips`/`nodeport-ips` sets, per-Service chains choosing an
//! endpoint with `numgen random mod N vmap`, per-endpoint chains with `dnat to`, and the
//! masquerade chains.
//!
//! The table is a structured value ([`NftTable`]) printable as an `nft` transaction (the
//! format of kube-proxy's `TestOverallNFTablesRules`, [`NftTable::to_transaction`]) and as
//! `nft list ruleset` output ([`NftTable::to_nft_text`]). [`NftablesProxy`] evaluates it for
//! a first packet, walking the base chains of each hook in priority order with nft's jump,
//! goto and return semantics, and counts rules tested and set/map lookups.
//!
//! Modelled: ClusterIP, external IPs, LoadBalancer IPs with source ranges, NodePorts on the
//! node addresses, `externalTrafficPolicy: Local` (local-policy chain, short-circuit rules),
//! ClientIP affinity (dynamic sets with timeout), Services without endpoints (reject/drop
//! via the `no-endpoint-*` maps), unallocated ClusterIPs (`cluster-ips-check`),
//! `--masquerade-all`. Not modelled: IPv6 (`ip6 kube-proxy`), `internalTrafficPolicy`,
//! terminating endpoints, partial syncs and stale-chain flushing, the 127.0.0.1 NodePort
//! (nftables mode never accepts it), SCTP. See `docs/model.md`.
//!
//! The parts (submodules, re-exported here): `table` is the value (chains, rules, sets,
//! maps), `print` writes it as a transaction or a listing, `generate` builds it from
//! Services as kube-proxy does, and `eval` walks a first packet through it.

mod eval;
mod generate;
mod print;
mod table;

pub use eval::{NftChainStep, NftablesProxy};
pub use generate::{NftablesConfig, endpoint_chain_base, generate, hash_and_truncate, service_chain_base};
pub use table::{
    BaseChain, ChainType, MapKey, NftAction, NftChain, NftChainId, NftCounts, NftElement, NftMap, NftMapId,
    NftMatch, NftRule, NftSet, NftSetId, NftTable, NftVerdict, VmapKey,
};

#[cfg(test)]
mod tests;
