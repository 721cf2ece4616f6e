//! `resolv.conf` as a pod sees it, and glibc's search-path expansion.

use crate::time::SimDuration;
use std::net::Ipv4Addr;

/// glibc's caps on the options (`RES_MAXNDOTS`, `RES_MAXRETRANS`, `RES_MAXRETRY`).
pub(crate) const MAX_NDOTS: u8 = 15;
pub(crate) const MAX_TIMEOUT_SECS: u64 = 30;
pub(crate) const MAX_ATTEMPTS: u8 = 5;

/// Why a name cannot be looked up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The name is not a valid domain name.
    #[error("invalid DNS name `{name}`: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// A pod's `/etc/resolv.conf`, with glibc's defaults for what it leaves out.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ResolvConf {
    /// The single nameserver (Kubernetes writes one: the kube-dns ClusterIP, or the
    /// NodeLocal DNSCache address 169.254.20.10).
    pub nameserver: Ipv4Addr,
    /// Search suffixes, in order.
    pub search: Vec<String>,
    /// `options ndots:N` (glibc caps it at 15).
    pub ndots: u8,
    /// `options timeout:N`: the wait per try (glibc `RES_TIMEOUT` = 5 s, capped at 30 s).
    pub timeout: SimDuration,
    /// `options attempts:N`: tries per nameserver (glibc `RES_DFLRETRY` = 2, capped at
    /// 5; 0 is treated as 1).
    pub attempts: u8,
    /// `options single-request`: send AAAA only after the A answer, same socket.
    pub single_request: bool,
    /// `options single-request-reopen`: like `single-request`, but the AAAA query goes
    /// from a new socket (new source port).
    pub single_request_reopen: bool,
    /// `options use-vc`: queries over TCP.
    pub use_vc: bool,
}

impl ResolvConf {
    /// What the kubelet writes for a `ClusterFirst` pod in namespace `namespace`:
    /// `search <ns>.svc.<domain> svc.<domain> <domain>`, `options ndots:5`, glibc
    /// defaults otherwise. Append the node's own search suffixes (cloud DNS zones
    /// such as `ec2.internal`) with [`ResolvConf::with_search_suffix`].
    #[must_use]
    pub fn kubernetes(namespace: &str, cluster_domain: &str, nameserver: Ipv4Addr) -> ResolvConf {
        ResolvConf {
            nameserver,
            search: vec![
                format!("{namespace}.svc.{cluster_domain}"),
                format!("svc.{cluster_domain}"),
                cluster_domain.to_string(),
            ],
            ndots: 5,
            timeout: SimDuration::from_secs(5),
            attempts: 2,
            single_request: false,
            single_request_reopen: false,
            use_vc: false,
        }
    }

    /// Appends a search suffix (the kubelet copies the node's own search list after
    /// the cluster suffixes).
    #[must_use]
    pub fn with_search_suffix(mut self, suffix: &str) -> ResolvConf {
        self.search.push(suffix.trim_end_matches('.').to_string());
        self
    }

    /// The names glibc queries for `name`, in order (`__res_context_search`):
    /// - a trailing dot makes the name absolute: only the name itself;
    /// - with at least `ndots` dots: the name first, then each search suffix;
    /// - with fewer: each search suffix first, then the name as given.
    ///
    /// Names are returned without a trailing dot. An invalid name gives an empty
    /// list (see [`check_name`]).
    #[must_use]
    pub fn candidates(&self, name: &str) -> Vec<String> {
        if check_name(name).is_err() {
            return Vec::new();
        }
        let trailing_dot = name.ends_with('.');
        let bare = name.strip_suffix('.').unwrap_or(name);
        if trailing_dot {
            return vec![bare.to_string()];
        }
        // glibc counts every dot of the name as given.
        let dots = name.bytes().filter(|b| *b == b'.').count();
        let ndots = usize::from(self.ndots.min(MAX_NDOTS));
        let as_is_first = dots >= ndots;
        let mut out = Vec::with_capacity(self.search.len() + 1);
        if as_is_first {
            out.push(bare.to_string());
        }
        let mut root_on_list = false;
        // RES_DEFNAMES and RES_DNSRCH are on by default: search for any name without
        // a trailing dot.
        for suffix in &self.search {
            let s = suffix.trim_matches('.');
            if s.is_empty() {
                root_on_list = true;
                out.push(bare.to_string());
            } else {
                out.push(format!("{bare}.{s}"));
            }
        }
        if !as_is_first && !root_on_list {
            out.push(bare.to_string());
        }
        out
    }
}

/// Checks that `name` is a usable domain name: not empty, at most 253 bytes without
/// the trailing dot, labels of 1 to 63 bytes.
///
/// # Errors
/// [`DnsError::InvalidName`] naming the problem.
pub fn check_name(name: &str) -> Result<(), DnsError> {
    let err = |reason| {
        Err(DnsError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return err("empty name");
    }
    if bare.len() > 253 {
        return err("longer than 253 bytes");
    }
    for label in bare.split('.') {
        if label.is_empty() {
            return err("empty label");
        }
        if label.len() > 63 {
            return err("label longer than 63 bytes");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf() -> ResolvConf {
        ResolvConf::kubernetes("shop", "cluster.local", Ipv4Addr::new(10, 96, 0, 10))
            .with_search_suffix("ec2.internal")
    }

    #[test]
    fn kubernetes_defaults_follow_kubelet_and_glibc() {
        let c = conf();
        assert_eq!(
            c.search,
            vec![
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "ec2.internal"
            ]
        );
        assert_eq!(
            (c.ndots, c.attempts, c.timeout),
            (5, 2, SimDuration::from_secs(5))
        );
        assert!(!c.single_request_reopen && !c.use_vc);
    }

    #[test]
    fn short_name_tries_every_suffix_before_the_name_itself() {
        assert_eq!(
            conf().candidates("orders"),
            vec![
                "orders.shop.svc.cluster.local",
                "orders.svc.cluster.local",
                "orders.cluster.local",
                "orders.ec2.internal",
                "orders"
            ]
        );
    }

    #[test]
    fn external_name_below_ndots_is_searched_first() {
        let c = conf().candidates("api.example.com");
        assert_eq!(c.len(), 5);
        assert_eq!(c[0], "api.example.com.shop.svc.cluster.local");
        assert_eq!(c[4], "api.example.com");
    }

    #[test]
    fn trailing_dot_means_absolute() {
        assert_eq!(conf().candidates("api.example.com."), vec!["api.example.com"]);
        assert_eq!(conf().candidates("orders."), vec!["orders"]);
    }

    #[test]
    fn name_with_ndots_dots_is_tried_as_is_first() {
        let name = "a.b.c.d.example.com"; // 5 dots
        let c = conf().candidates(name);
        assert_eq!(c[0], name);
        assert_eq!(c[1], "a.b.c.d.example.com.shop.svc.cluster.local");
        assert_eq!(c.len(), 5);
        let mut low = conf();
        low.ndots = 1;
        assert_eq!(low.candidates("api.example.com")[0], "api.example.com");
    }

    #[test]
    fn invalid_names_are_rejected_with_a_reason() {
        assert!(check_name("").is_err());
        assert!(check_name(".").is_err());
        assert!(check_name("a..b").is_err());
        assert!(check_name(&"x".repeat(64)).is_err());
        assert!(check_name("ok.example.com.").is_ok());
        assert!(conf().candidates("a..b").is_empty());
    }
}
