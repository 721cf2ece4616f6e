//! The node's rule dumps: `iptables-save` loaded as far as the model understands it
//! (the rest commented out and listed), and the Services kube-proxy programmed,
//! recovered from its chains (`KUBE-SERVICES` → `KUBE-SVC-*` → `KUBE-SEP-*` with their
//! `ns/name:port` comments), from `ipvsadm -Ln`'s virtual servers, or from the
//! `kube-proxy` nftables table's `service-ips` map.

use super::{EvidenceError, Skipped};
use crate::netfilter::import;
use crate::packet::{Cidr, Proto};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

/// The `iptables-save` file of a bundle.
pub const IPTABLES_SAVE: &str = "iptables-save.txt";
/// The `ipvsadm -Ln` file of a bundle.
pub const IPVSADM: &str = "ipvsadm-Ln.txt";
/// The `nft list ruleset` file of a bundle.
pub const NFT: &str = "nft-ruleset.txt";

/// A Service port recovered from the node's rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveredPort {
    /// Namespace.
    pub namespace: String,
    /// Service name.
    pub name: String,
    /// Port name (`""` when unnamed).
    pub port_name: String,
    /// ClusterIP.
    pub cluster_ip: Ipv4Addr,
    /// Service port.
    pub port: u16,
    /// Protocol.
    pub protocol: Proto,
    /// Endpoints (pod address and target port), in rule order.
    pub endpoints: Vec<SocketAddrV4>,
    /// `file:line` of the rule that names it.
    pub source: String,
}

/// The node's `iptables-save`, ready for a scenario.
#[derive(Clone, Debug)]
pub struct IptablesEvidence {
    /// The dump with every line the model cannot load commented out (it parses).
    pub loadable: String,
    /// Rules loaded.
    pub rules_loaded: usize,
    /// Every rule left out, with why.
    pub skipped: Vec<Skipped>,
    /// ClusterIP Service ports behind `KUBE-SERVICES`.
    pub services: Vec<RecoveredPort>,
    /// The cluster CIDR from kube-proxy's `! -s CIDR -j KUBE-MARK-MASQ` rules, with the
    /// 1-based line of the first such rule.
    pub cluster_cidr: Option<(Cidr, usize)>,
    /// `KUBE-SERVICES` dispatches to `KUBE-SVC-*` chains (kube-proxy in iptables mode).
    pub iptables_mode: bool,
}

/// Splits a rule line into words, honouring double quotes (`--comment "a b"`).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The word after `opt` in `w`.
fn after<'a>(w: &'a [String], opt: &str) -> Option<&'a str> {
    w.iter()
        .position(|x| x == opt)
        .and_then(|i| w.get(i + 1))
        .map(String::as_str)
}

/// Loads an `iptables-save` dump as far as the model understands it.
///
/// # Errors
/// A structural problem (a line outside any table, a malformed chain declaration, a
/// jump loop) or a control character: the dump cannot be trusted then; the error
/// names the line.
pub fn parse_iptables_save(text: &str) -> Result<IptablesEvidence, EvidenceError> {
    // The dump is carried into the scenario as it is, so a character YAML cannot hold
    // (iptables-save prints none: a corrupted file) is refused where it is.
    for (i, line) in text.lines().enumerate() {
        if let Some((col, c)) = line.chars().enumerate().find(|(_, c)| super::unsafe_in_yaml(*c)) {
            return Err(EvidenceError::new(
                IPTABLES_SAVE,
                i + 1,
                format!(
                    "column {}: control character U+{:04X}; iptables-save prints none (a corrupted file?)",
                    col + 1,
                    u32::from(c)
                ),
            ));
        }
    }
    let lenient = import::parse_lenient(text).map_err(|e| {
        EvidenceError::new(
            IPTABLES_SAVE,
            e.line,
            format!("column {}: {}", e.column, e.message),
        )
    })?;
    let left_out: BTreeMap<usize, String> = lenient
        .skipped
        .iter()
        .map(|e| (e.line, e.message.clone()))
        .collect();
    let mut loadable = String::with_capacity(text.len() + 64);
    let mut skipped = Vec::new();
    let mut foreign = false;
    let mut open_table = false;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let t = line.trim();
        if let Some(name) = t.strip_prefix('*') {
            let known = crate::netfilter::TableKind::parse(name.trim()).is_some();
            foreign = !known;
            open_table = known;
        }
        if foreign || left_out.contains_key(&n) {
            if let Some(why) = left_out.get(&n) {
                skipped.push(Skipped::new(IPTABLES_SAVE, n, why.clone()));
            }
            loadable.push_str("# left out by k8s-netsim import: ");
            loadable.push_str(line);
            loadable.push('\n');
            if t == "COMMIT" {
                foreign = false;
            }
            continue;
        }
        if t == "COMMIT" {
            open_table = false;
        }
        loadable.push_str(line);
        loadable.push('\n');
    }
    if open_table {
        loadable.push_str("COMMIT\n");
        if let Some(e) = lenient
            .skipped
            .iter()
            .find(|e| e.message.starts_with("missing COMMIT"))
        {
            skipped.push(Skipped::new(IPTABLES_SAVE, e.line, e.message.clone()));
        }
    }
    let rules_loaded = crate::netfilter::TableKind::ALL
        .iter()
        .map(|k| lenient.ruleset.table(*k).rule_count())
        .sum();
    let (services, cluster_cidr, iptables_mode) = kube_proxy_services(text);
    Ok(IptablesEvidence {
        loadable,
        rules_loaded,
        skipped,
        services,
        cluster_cidr,
        iptables_mode,
    })
}

/// kube-proxy's ClusterIP Services in an `iptables-save` dump's nat table.
fn kube_proxy_services(text: &str) -> (Vec<RecoveredPort>, Option<(Cidr, usize)>, bool) {
    let mut in_nat = false;
    let mut fronts: Vec<(String, RecoveredPort)> = Vec::new();
    let mut svc_seps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut sep_dnat: BTreeMap<String, SocketAddrV4> = BTreeMap::new();
    let mut cluster_cidr = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('*') {
            in_nat = name.trim() == "nat";
            continue;
        }
        if !in_nat || !t.starts_with("-A ") {
            continue;
        }
        let w = words(t);
        let (Some(chain), Some(jump)) = (w.get(1), after(&w, "-j")) else {
            continue;
        };
        if chain == "KUBE-SERVICES" && (jump.starts_with("KUBE-SVC-") || jump.starts_with("KUBE-SVL-")) {
            let ip = after(&w, "-d").and_then(|d| d.trim_end_matches("/32").parse::<Ipv4Addr>().ok());
            let port = after(&w, "--dport").and_then(|p| p.parse::<u16>().ok());
            let protocol = match after(&w, "-p") {
                Some("udp") => Proto::Udp,
                _ => Proto::Tcp,
            };
            let comment = after(&w, "--comment").unwrap_or_default();
            // "ns/name:port cluster IP" (kube-proxy) or "ns/name cluster IP".
            let id = comment.trim_end_matches(" cluster IP");
            let (nsname, port_name) = id.split_once(':').unwrap_or((id, ""));
            let (namespace, name) = nsname.split_once('/').unwrap_or(("default", nsname));
            if let (Some(ip), Some(port)) = (ip, port) {
                let fallback = format!(
                    "svc-{}",
                    jump.trim_start_matches("KUBE-SVC-").to_ascii_lowercase()
                );
                fronts.push((
                    jump.to_string(),
                    RecoveredPort {
                        namespace: namespace.to_string(),
                        name: if name.trim().is_empty() {
                            fallback
                        } else {
                            name.to_string()
                        },
                        port_name: port_name.to_string(),
                        cluster_ip: ip,
                        port,
                        protocol,
                        endpoints: Vec::new(),
                        source: format!("{IPTABLES_SAVE}:{}", i + 1),
                    },
                ));
            }
        } else if (chain.starts_with("KUBE-SVC-") || chain.starts_with("KUBE-SVL-"))
            && jump.starts_with("KUBE-SEP-")
        {
            svc_seps.entry(chain.clone()).or_default().push(jump.to_string());
        } else if (chain.starts_with("KUBE-SVC-") || chain.starts_with("KUBE-SVL-"))
            && jump == "KUBE-MARK-MASQ"
            && cluster_cidr.is_none()
            && let Some(pos) = w.iter().position(|x| x == "-s")
            && pos > 0
            && w[pos - 1] == "!"
            && let Some(c) = w.get(pos + 1).and_then(|c| c.parse::<Cidr>().ok())
        {
            cluster_cidr = Some((c, i + 1));
        } else if chain.starts_with("KUBE-SEP-")
            && jump == "DNAT"
            && let Some(to) = after(&w, "--to-destination").and_then(|d| d.parse::<SocketAddrV4>().ok())
        {
            sep_dnat.insert(chain.clone(), to);
        }
    }
    let iptables_mode = !fronts.is_empty();
    let services = fronts
        .into_iter()
        .map(|(svc, mut p)| {
            p.endpoints = svc_seps
                .get(&svc)
                .map(|seps| seps.iter().filter_map(|s| sep_dnat.get(s).copied()).collect())
                .unwrap_or_default();
            p
        })
        .collect();
    (services, cluster_cidr, iptables_mode)
}

/// The virtual servers of `ipvsadm -Ln`, as Service ports named after their address
/// (IPVS keeps no names).
///
/// # Errors
/// A real-server line before any virtual server, or an address that does not parse;
/// each names the line.
pub fn parse_ipvsadm(text: &str) -> Result<Vec<RecoveredPort>, EvidenceError> {
    let mut out: Vec<RecoveredPort> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let t = line.trim();
        if t.is_empty()
            || t.starts_with("IP Virtual Server")
            || t.starts_with("Prot ")
            || t.starts_with("-> RemoteAddress")
        {
            continue;
        }
        let w: Vec<&str> = t.split_whitespace().collect();
        if let Some(addr) = t.strip_prefix("->").map(str::trim) {
            let Some(vs) = out.last_mut() else {
                return Err(EvidenceError::new(
                    IPVSADM,
                    n,
                    "a real server before any virtual server",
                ));
            };
            let a = addr.split_whitespace().next().unwrap_or_default();
            let rs: SocketAddrV4 = a
                .parse()
                .map_err(|_| EvidenceError::new(IPVSADM, n, format!("`{a}` is not IP:PORT")))?;
            vs.endpoints.push(rs);
            continue;
        }
        let protocol = match w.first() {
            Some(&"TCP") => Proto::Tcp,
            Some(&"UDP") => Proto::Udp,
            _ => {
                return Err(EvidenceError::new(
                    IPVSADM,
                    n,
                    format!(
                        "expected `TCP|UDP VIP:PORT SCHEDULER` or `-> IP:PORT ...`, found `{}`",
                        super::ctstat::clip(t)
                    ),
                ));
            }
        };
        let vip: SocketAddrV4 = w
            .get(1)
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| EvidenceError::new(IPVSADM, n, "the virtual server's address is not IP:PORT"))?;
        let name = format!("vs-{}", vip.ip().to_string().replace('.', "-"));
        out.push(RecoveredPort {
            namespace: "default".into(),
            name,
            port_name: format!(
                "{}-{}",
                if protocol == Proto::Udp { "udp" } else { "tcp" },
                vip.port()
            ),
            cluster_ip: *vip.ip(),
            port: vip.port(),
            protocol,
            endpoints: Vec::new(),
            source: format!("{IPVSADM}:{n}"),
        });
    }
    Ok(out)
}

/// What `nft list ruleset` holds: kube-proxy's Services (its `kube-proxy` table's
/// `service-ips` map and `endpoint-*` chains) and the other tables, which the model
/// does not load (listed).
#[derive(Clone, Debug, Default)]
pub struct NftEvidence {
    /// Service ports of the `kube-proxy` table.
    pub services: Vec<RecoveredPort>,
    /// Tables left out.
    pub skipped: Vec<Skipped>,
    /// Some IPv4 table other than kube-proxy's and iptables-nft's was left out.
    pub lower_bound: bool,
}

/// Reads `nft list ruleset`.
///
/// # Errors
/// A `service-ips` element that does not parse (`IP . PROTO . PORT : goto CHAIN`).
pub fn parse_nft(text: &str) -> Result<NftEvidence, EvidenceError> {
    let mut ev = NftEvidence::default();
    let mut table: Option<String> = None;
    let mut in_map = false;
    let mut in_elements = false;
    let mut endpoints: BTreeMap<String, Vec<SocketAddrV4>> = BTreeMap::new();
    let mut fronts: Vec<(String, RecoveredPort)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("table ") {
            let name = rest.trim_end_matches('{').trim().to_string();
            let iptables_nft =
                ["ip filter", "ip nat", "ip mangle", "ip raw", "ip security"].contains(&name.as_str());
            if name.starts_with("ip6 ") {
                ev.skipped.push(Skipped::new(
                    NFT,
                    n,
                    format!("nftables table `{name}`: IPv6 is not modelled"),
                ));
            } else if !name.ends_with(" kube-proxy") && !iptables_nft {
                // iptables-nft's own tables hold what iptables-save printed.
                ev.lower_bound = true;
                ev.skipped.push(Skipped::new(
                    NFT,
                    n,
                    format!("nftables table `{name}` is not loaded (the model loads kube-proxy's own table only): the node's rule cost is a lower bound"),
                ));
            }
            table = Some(name);
            in_map = false;
            in_elements = false;
            continue;
        }
        if !table.as_deref().is_some_and(|t| t.ends_with(" kube-proxy")) {
            continue;
        }
        if let Some(rest) = t.strip_prefix("chain endpoint-") {
            // endpoint-HASH-ns/name/proto/port__IP/PORT
            let name = rest.trim_end_matches('{').trim();
            if let Some((svc, addr)) = name.split_once("__")
                && let Some((ip, port)) = addr.split_once('/')
                && let (Ok(ip), Ok(port)) = (ip.parse::<Ipv4Addr>(), port.parse::<u16>())
            {
                let key = svc.split_once('-').map_or(svc, |(_, k)| k).to_string();
                endpoints
                    .entry(key)
                    .or_default()
                    .push(SocketAddrV4::new(ip, port));
            }
            continue;
        }
        if t.starts_with("map service-ips") {
            in_map = true;
            continue;
        }
        if in_map && t.starts_with('}') {
            in_map = false;
            in_elements = false;
            continue;
        }
        if in_map && t.starts_with("elements = {") {
            in_elements = true;
        }
        if !in_elements {
            continue;
        }
        let body = t.strip_prefix("elements = {").unwrap_or(t);
        if !body.contains(" . ") {
            if body.trim_start().starts_with('}') {
                in_elements = false;
            }
            continue;
        }
        for el in body.trim_end_matches('}').split(',') {
            let el = el.trim();
            if el.is_empty() {
                continue;
            }
            let bad = || {
                EvidenceError::new(
                    NFT,
                    n,
                    format!(
                        "service-ips element `{}` is not `IP . PROTO . PORT : goto CHAIN`",
                        super::ctstat::clip(el)
                    ),
                )
            };
            let (key, verdict) = el.split_once(':').ok_or_else(bad)?;
            let parts: Vec<&str> = key.split(" . ").map(str::trim).collect();
            let [ip, proto, port] = parts.as_slice() else {
                return Err(bad());
            };
            let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
            let port: u16 = port.parse().map_err(|_| bad())?;
            let protocol = if *proto == "udp" { Proto::Udp } else { Proto::Tcp };
            let chain = verdict.trim().trim_start_matches("goto ").trim();
            // service-HASH-ns/name/proto/portname
            let id = chain.trim_start_matches("service-");
            let id = id.split_once('-').map_or(id, |(_, k)| k);
            let mut f = id.split('/');
            let (namespace, name, _, port_name) = (f.next(), f.next(), f.next(), f.next());
            fronts.push((
                id.to_string(),
                RecoveredPort {
                    namespace: namespace.unwrap_or("default").to_string(),
                    name: name.unwrap_or(id).to_string(),
                    port_name: port_name.unwrap_or_default().to_string(),
                    cluster_ip: ip,
                    port,
                    protocol,
                    endpoints: Vec::new(),
                    source: format!("{NFT}:{n}"),
                },
            ));
        }
        if t.ends_with('}') {
            in_elements = false;
        }
    }
    ev.services = fronts
        .into_iter()
        .map(|(id, mut p)| {
            p.endpoints = endpoints.get(&id).cloned().unwrap_or_default();
            p
        })
        .collect();
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = include_str!("../netfilter/testdata/three-endpoint-clusterip.iptables-save");

    #[test]
    fn kube_proxy_services_come_back_with_their_endpoints() {
        let ev = parse_iptables_save(DUMP).unwrap();
        assert!(ev.iptables_mode);
        assert_eq!(ev.services.len(), 1);
        let s = &ev.services[0];
        assert_eq!(
            (s.namespace.as_str(), s.name.as_str(), s.port),
            ("ns1", "svc1", 80)
        );
        assert_eq!(s.cluster_ip, Ipv4Addr::new(172, 30, 1, 1));
        assert_eq!(s.endpoints.len(), 3);
        assert_eq!(
            ev.cluster_cidr.as_ref().map(|(c, _)| c.to_string()),
            Some("10.0.0.0/8".into())
        );
        assert!(ev.skipped.is_empty());
    }

    #[test]
    fn rules_the_model_does_not_implement_are_commented_out_and_listed() {
        let text = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m hashlimit --hashlimit-above 10/sec -j DROP\n-A INPUT -s 10.0.0.0/8 -j DROP\nCOMMIT\n*security\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -d 10.96.0.1/32 -p tcp -j DNAT --to-destination 10.244.0.2:80\n";
        let ev = parse_iptables_save(text).unwrap();
        let lines: Vec<usize> = ev.skipped.iter().map(|s| s.line).collect();
        assert!(lines.contains(&3), "{:?}", ev.skipped);
        assert!(lines.contains(&8), "{:?}", ev.skipped);
        assert!(
            ev.skipped.iter().any(|s| s.why.contains("missing COMMIT")),
            "{:?}",
            ev.skipped
        );
        assert_eq!(ev.rules_loaded, 2);
        // What is left parses strictly.
        crate::netfilter::import::parse(&ev.loadable).unwrap();
    }

    #[test]
    fn structural_garbage_is_an_error_with_its_line() {
        let e = parse_iptables_save("-A INPUT -j DROP\n").unwrap_err();
        assert_eq!((e.file.as_str(), e.line), (IPTABLES_SAVE, 1));
    }

    #[test]
    fn ipvsadm_and_nft_listings_give_services() {
        let ipvs = "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nTCP  10.96.0.10:80 rr\n  -> 10.244.1.5:8080              Masq    1      0          0\n  -> 10.244.2.5:8080              Masq    1      0          0\n";
        let s = parse_ipvsadm(ipvs).unwrap();
        assert_eq!((s.len(), s[0].endpoints.len()), (1, 2));
        assert_eq!(
            parse_ipvsadm("  -> 10.0.0.1:80 Masq 1 0 0\n").unwrap_err().line,
            1
        );
        let nft = "table ip kube-proxy {\n\tmap service-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t\telements = { 10.96.0.10 . tcp . 80 : goto service-ULMVA6XW-default/echo/tcp/http }\n\t}\n\tchain endpoint-5OJB2KTY-default/echo/tcp/http__10.244.1.5/8080 {\n\t}\n}\ntable inet filter {\n}\n";
        let ev = parse_nft(nft).unwrap();
        assert_eq!(ev.services.len(), 1);
        assert_eq!(ev.services[0].name, "echo");
        assert_eq!(ev.services[0].endpoints, vec!["10.244.1.5:8080".parse().unwrap()]);
        assert_eq!(ev.skipped.len(), 1);
        assert!(ev.lower_bound);
        let only_iptables_nft = parse_nft("table ip nat {\n}\ntable ip6 filter {\n}\n").unwrap();
        assert!(!only_iptables_nft.lower_bound);
        assert_eq!(only_iptables_nft.skipped.len(), 1, "IPv6 is listed");
    }
}
