//! A scenario of the node a bundle was collected on: every derived field carries a
//! comment naming the evidence line it came from, every piece of evidence left out is
//! listed at the top, and the text is checked to validate before it is returned.
//!
//! What the scenario holds: the kernel profile nearest to `uname -r`; CPU count and
//! memory; the node's sysctls (those the model knows, by their Linux names); the
//! node's own `iptables-save` as its ruleset (iptables mode; the rules the model does
//! not implement commented out, so the node's rule cost is then a lower bound); the
//! Services recovered from kube-proxy's rules, with their endpoints on one simulated
//! node per endpoint /24 so workloads can target them by name; a warm start of the
//! table from `conntrack -L`; the observed counters as the report's baseline. It holds
//! no workload: the node's traffic is the user's question.
//!
//! `services` decides which recovered Services a scenario can hold and writes them;
//! `baseline` reads the observed counters and writes them.

mod baseline;
mod services;

use super::bundle::Bundle;
use super::ctstat;
use super::rules::{self, RecoveredPort};
use super::{EvidenceError, Skipped, kernel, sysctl, unsafe_in_yaml};
use crate::packet::Cidr;
use baseline::{counters, write_baseline};
use services::{outside_cluster_cidr, service_cidr_for, usable_ports, write_services};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// The bundle's `meta.txt` (`key=value` lines the collection script writes).
pub const META: &str = "meta.txt";
/// The script's list of what it skipped (`NAME: reason`).
pub const SKIPPED: &str = "skipped.txt";
/// `dmesg` lines about conntrack.
pub const DMESG: &str = "dmesg-conntrack.txt";
/// The node's host name.
pub const HOSTNAME: &str = "hostname.txt";
/// `conntrack -S` before the window (`--window`).
pub const CONNTRACK_S_BEFORE: &str = "conntrack-S.before.txt";
/// `/proc/net/stat/nf_conntrack` before the window.
pub const PROC_STAT_BEFORE: &str = "nf_conntrack-stat.before.txt";
/// kube-proxy's log.
pub const KUBE_PROXY_LOG: &str = "kube-proxy.log";

/// Options of an import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Slices per warm-start group (finer = closer to the listing's timeout spread).
    pub warm_slices: usize,
    /// The scenario's simulated duration.
    pub duration_s: u64,
}

impl Default for ImportOptions {
    fn default() -> ImportOptions {
        ImportOptions {
            warm_slices: 8,
            duration_s: 60,
        }
    }
}

/// The result: the scenario text, and everything left out or doubtful.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The scenario (YAML, comments included).
    pub yaml: String,
    /// The node's name in it.
    pub node: String,
    /// Everything left out, with file, line and why.
    pub skipped: Vec<Skipped>,
    /// Warnings (kernel backports, missing files, defaults taken).
    pub warnings: Vec<String>,
    /// Whether rules the model does not implement were left out (the node's rule cost
    /// is then a lower bound).
    pub cost_is_lower_bound: bool,
}

/// A YAML double-quoted string; characters a YAML document may not hold are escaped
/// (`\uXXXX`), so any evidence text gives a valid scalar.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if unsafe_in_yaml(c) => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Evidence text for a YAML comment: on one line, characters a YAML document may not
/// hold written as `\u{..}` (a garbled file's bytes stay visible in the note).
fn comment_text(s: &str) -> String {
    s.chars()
        .map(|c| {
            if unsafe_in_yaml(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A name usable as a scenario node name.
fn node_name(raw: &str) -> String {
    let n: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if n.is_empty() { "node".into() } else { n }
}

/// `key=value` lines.
fn meta(text: Option<&str>) -> BTreeMap<String, String> {
    text.unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Builds the scenario of the bundle's node.
///
/// # Errors
/// A file that is present but garbled or truncated beyond use (the error names it and
/// the line), or a scenario that does not validate (a bug; the message says so).
#[allow(clippy::too_many_lines)] // one section of the scenario after another, in file order
pub fn import(b: &Bundle, opts: &ImportOptions) -> Result<Imported, EvidenceError> {
    let mut warnings = Vec::new();
    let mut skipped = b.skipped.clone();
    for (i, l) in b.file(SKIPPED).unwrap_or_default().lines().enumerate() {
        if !l.trim().is_empty() {
            skipped.push(Skipped::new(
                SKIPPED,
                i + 1,
                format!("the collection script skipped {}", l.trim()),
            ));
        }
    }
    let meta = meta(b.file(META));
    let name = node_name(
        b.file(HOSTNAME)
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .or(meta.get("hostname").map(String::as_str))
            .unwrap_or("node"),
    );

    // Kernel.
    let kernel = match b.file(kernel::UNAME) {
        Some(t) => Some(kernel::parse_kernel_release(t)?),
        None => {
            warnings.push(format!("{} is missing: the model follows 6.18", kernel::UNAME));
            None
        }
    };
    if let Some(k) = &kernel {
        warnings.extend(k.warnings.iter().cloned());
    }
    let cpus = match b.file(sysctl::NPROC) {
        Some(t) => sysctl::parse_nproc(t)?,
        None => {
            warnings.push(format!("{} is missing: 2 CPUs assumed", sysctl::NPROC));
            super::Sourced::new(2, "default", 0)
        }
    };
    let memory = match b.file(sysctl::MEMINFO) {
        Some(t) => sysctl::parse_meminfo(t)?,
        None => {
            warnings.push(format!("{} is missing: 4Gi assumed", sysctl::MEMINFO));
            super::Sourced::new(4 << 30, "default", 0)
        }
    };
    let sysctls = match b.file(sysctl::SYSCTL) {
        Some(t) => {
            let d = sysctl::parse_sysctl(t)?;
            skipped.extend(d.skipped.iter().cloned());
            Some(d)
        }
        None => {
            warnings.push(format!(
                "{} is missing: kernel and kube-proxy defaults apply",
                sysctl::SYSCTL
            ));
            None
        }
    };

    // Rules and Services.
    let ipt = b
        .file(rules::IPTABLES_SAVE)
        .map(rules::parse_iptables_save)
        .transpose()?;
    let ipvs = b
        .file(rules::IPVSADM)
        .map(rules::parse_ipvsadm)
        .transpose()?
        .unwrap_or_default();
    let nft = b
        .file(rules::NFT)
        .map(rules::parse_nft)
        .transpose()?
        .unwrap_or_default();
    let (mode, mode_source, services): (&str, String, Vec<RecoveredPort>) = match &ipt {
        Some(i) if i.iptables_mode => (
            "iptables",
            format!(
                "{}: KUBE-SERVICES jumps to KUBE-SVC-* chains",
                rules::IPTABLES_SAVE
            ),
            i.services.clone(),
        ),
        _ if !ipvs.is_empty() => (
            "ipvs",
            format!("{}: {} virtual servers", rules::IPVSADM, ipvs.len()),
            ipvs.clone(),
        ),
        _ if !nft.services.is_empty() => (
            "nftables",
            format!("{}: table kube-proxy", rules::NFT),
            nft.services.clone(),
        ),
        _ => (
            "iptables",
            "no kube-proxy Service rules found; iptables assumed".into(),
            Vec::new(),
        ),
    };
    let services = usable_ports(services, &mut skipped);
    let mut cost_is_lower_bound = false;
    if let Some(i) = &ipt {
        if mode == "iptables" {
            cost_is_lower_bound |= !i.skipped.is_empty();
            skipped.extend(i.skipped.iter().cloned());
        } else {
            cost_is_lower_bound = true;
            skipped.push(Skipped::new(
                rules::IPTABLES_SAVE,
                0,
                format!("in {mode} mode the model programs kube-proxy's own iptables rules; the node's other {} iptables rules are not loaded: the node's rule cost is a lower bound", i.rules_loaded),
            ));
        }
    }
    cost_is_lower_bound |= nft.lower_bound;
    skipped.extend(nft.skipped.iter().cloned());
    if mode != "ipvs" && !ipvs.is_empty() {
        skipped.push(Skipped::new(
            rules::IPVSADM,
            0,
            format!(
                "{} IPVS virtual servers, but kube-proxy runs in {mode} mode: not loaded",
                ipvs.len()
            ),
        ));
    }

    // Addresses: clusterCIDR from kube-proxy's masquerade rule, else a default that
    // holds the endpoints.
    let cluster = ipt.as_ref().and_then(|i| i.cluster_cidr);
    let (cluster_cidr, cluster_source) = match cluster {
        Some((c, line)) => {
            // A node's pods get a /24 of the cluster CIDR, so a narrower prefix (a
            // garbled or hand-edited masquerade rule naming one address) cannot be it.
            if c.len() > 24 {
                return Err(EvidenceError::new(
                    rules::IPTABLES_SAVE,
                    line,
                    format!(
                        "the cluster CIDR {c} in kube-proxy's masquerade rule (`! -s {c} -j KUBE-MARK-MASQ`) is narrower than the /24 the import gives the node's pods; the import needs the rule to name the cluster's pod range (a node whose kube-proxy names its own pod range, `--detect-local-mode=NodeCIDR`, with fewer than 256 addresses cannot be imported yet)"
                    ),
                ));
            }
            (
                c,
                format!("{}:{line}: `! -s {c} -j KUBE-MARK-MASQ`", rules::IPTABLES_SAVE),
            )
        }
        None => {
            let c: Cidr = "10.244.0.0/16".parse().unwrap_or(Cidr::ANY);
            (
                c,
                "default (no kube-proxy masquerade rule names the cluster CIDR)".into(),
            )
        }
    };
    let services = outside_cluster_cidr(services, cluster_cidr, &mut skipped);
    // Services grouped by (namespace, name); endpoints on /24 nodes inside the CIDR.
    let mut by_service: BTreeMap<(String, String), Vec<&RecoveredPort>> = BTreeMap::new();
    for p in &services {
        by_service
            .entry((p.namespace.clone(), p.name.clone()))
            .or_default()
            .push(p);
    }
    let mut pod_blocks: BTreeMap<Ipv4Addr, ()> = BTreeMap::new();
    for p in &services {
        for e in &p.endpoints {
            if cluster_cidr.contains(*e.ip()) {
                pod_blocks.insert(Ipv4Addr::from(u32::from(*e.ip()) & 0xffff_ff00), ());
            }
        }
    }
    let node_block = (0..=u32::MAX >> 8)
        .filter_map(|k| cluster_cidr.nth(k << 8))
        .find(|b| !pod_blocks.contains_key(b));
    let Some(node_block) = node_block else {
        return Err(EvidenceError::new(
            rules::IPTABLES_SAVE,
            0,
            format!("cluster CIDR {cluster_cidr} has no /24 left for the node's own pods"),
        ));
    };
    let vips: Vec<Ipv4Addr> = services.iter().map(|p| p.cluster_ip).collect();
    let Some(service_cidr) = service_cidr_for(&vips, cluster_cidr) else {
        return Err(EvidenceError::new(
            rules::IPTABLES_SAVE,
            0,
            format!("cluster CIDR {cluster_cidr} leaves no room for a service range"),
        ));
    };

    // ---- the text ----
    if let Some(ct) = &b.ctlist {
        ct.check()?;
        skipped.extend(ct.skipped());
    }
    let observed = counters(b, &mut warnings, &mut skipped)?;
    let mut y = String::new();
    let _ = writeln!(y, "version: 1");
    let _ = writeln!(y, "name: {}", q(&format!("{name}-imported")));
    let _ = writeln!(
        y,
        "description: {}",
        q(&format!("node {name} as collected in {}", b.origin))
    );
    let _ = writeln!(y, "seed: 1");
    let _ = writeln!(y, "duration: {}s", opts.duration_s.max(1));
    match &kernel {
        Some(k) => {
            let diff = if k.differences.is_empty() {
                String::new()
            } else {
                format!("; differs in: {}", k.differences.join(", "))
            };
            let _ = writeln!(
                y,
                "kernel: {}   # {}:1: {} (nearest profile{diff})",
                q(k.profile.name),
                kernel::UNAME,
                comment_text(&k.release)
            );
        }
        None => {
            let _ = writeln!(y, "kernel: \"6.18\"   # default: {} missing", kernel::UNAME);
        }
    }
    let _ = writeln!(y, "clusterCIDR: {cluster_cidr}   # {cluster_source}");
    let _ = writeln!(
        y,
        "serviceCIDR: {service_cidr}   # covers the {} ClusterIPs found",
        vips.len()
    );
    let _ = writeln!(y, "kubeProxy:");
    let _ = writeln!(y, "  mode: {mode}   # {mode_source}");

    // Nodes.
    let _ = writeln!(y, "nodes:");
    let _ = writeln!(
        y,
        "  - name: {}   # {}",
        q(&name),
        if b.file(HOSTNAME).is_some() {
            format!("{HOSTNAME}:1")
        } else {
            "default".into()
        }
    );
    let _ = writeln!(y, "    cpus: {}   # {}", cpus.value, cpus.source);
    let _ = writeln!(y, "    memory: {}Ki   # {}", memory.value / 1024, memory.source);
    let _ = writeln!(
        y,
        "    podCIDR: {node_block}/24   # the first /24 of clusterCIDR no endpoint uses (where added workloads' pods go)"
    );
    if let Some(d) = &sysctls {
        let known: std::collections::BTreeSet<&str> =
            crate::scenario::known_sysctl_names().into_iter().collect();
        let mut any = false;
        for (k, v) in &d.values {
            if !known.contains(k.as_str()) {
                continue;
            }
            if let Err(why) = crate::scenario::check_sysctl_text(k, &v.value) {
                skipped.push(Skipped::new(
                    &v.source,
                    0,
                    format!("{k}: {why}; left out (the default applies)"),
                ));
                continue;
            }
            if !any {
                let _ = writeln!(y, "    sysctl:");
                any = true;
            }
            // A number as YAML reads one (no leading zeros), as check_sysctl_text has it.
            let val = if v
                .value
                .parse::<i64>()
                .is_ok_and(|n| n >= 0 && n.to_string() == v.value)
            {
                v.value.clone()
            } else {
                q(&v.value)
            };
            let _ = writeln!(y, "      {k}: {val}   # {}", v.source);
        }
    }
    if let Some(ct) = &b.ctlist {
        // TCP states the model does not have (a garbled listing) are left out, noted.
        let (slices, unknown): (Vec<_>, Vec<_>) =
            ct.warm_slices(opts.warm_slices).into_iter().partition(|s| {
                s.key
                    .state
                    .as_deref()
                    .is_none_or(|st| crate::conntrack::CtState::from_name(st).is_some())
            });
        let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
        for s in unknown {
            *by_state.entry(s.key.state.unwrap_or_default()).or_insert(0) += s.count;
        }
        for (state, n) in by_state {
            skipped.push(Skipped::new(
                super::ctlist::CONNTRACK_L,
                0,
                format!(
                    "{n} TCP entries in state `{state}`, which the model does not have: not warm-started"
                ),
            ));
        }
        if !slices.is_empty() {
            let _ = writeln!(y, "    conntrack:");
            let _ = writeln!(
                y,
                "      warmStart:   # {}: {} entries",
                super::ctlist::CONNTRACK_L,
                ct.entries()
            );
            for s in slices {
                let state = s
                    .key
                    .state
                    .as_ref()
                    .map(|st| format!(", state: {st}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    y,
                    "        - {{protocol: {}{state}, assured: {}, count: {}, expiresIn: [{}s, {}s]}}",
                    s.key.protocol, s.key.assured, s.count, s.shortest_s, s.longest_s
                );
            }
        }
    }
    if mode == "iptables"
        && let Some(i) = &ipt
    {
        let _ = writeln!(
            y,
            "    iptablesSave: |   # {}: {} rules loaded, {} left out",
            rules::IPTABLES_SAVE,
            i.rules_loaded,
            i.skipped.len()
        );
        for l in i.loadable.lines() {
            let l = l.trim();
            if l.is_empty() {
                let _ = writeln!(y);
            } else {
                let _ = writeln!(y, "      {l}");
            }
        }
    }
    for block in pod_blocks.keys() {
        let o = block.octets();
        let _ = writeln!(
            y,
            "  - name: pods-{}-{}-{}   # holds the endpoints in {block}/24 (not in the evidence)",
            o[0], o[1], o[2]
        );
        let _ = writeln!(y, "    cpus: {}", cpus.value);
        let _ = writeln!(y, "    memory: {}Ki", memory.value / 1024);
        let _ = writeln!(y, "    podCIDR: {block}/24");
    }

    // Services.
    write_services(&mut y, &by_service, cluster_cidr, &mut skipped);
    let _ = writeln!(y, "workloads: []   # the node's traffic: add it here");

    // Baseline.
    write_baseline(&mut y, observed, &meta, sysctls.as_ref(), &name);

    // The header, now that every note is known.
    let mut h = String::new();
    let _ = writeln!(
        h,
        "# Scenario of node `{name}`, imported by `k8s-netsim import` from {}.",
        comment_text(&b.origin)
    );
    let _ = writeln!(
        h,
        "# Every derived field names the evidence line it came from. Add the node's traffic"
    );
    let _ = writeln!(
        h,
        "# under `workloads` (targets can name the Services below) and set `duration`."
    );
    if cost_is_lower_bound {
        let _ = writeln!(
            h,
            "# Rules the model does not implement were left out (listed below): the node's"
        );
        let _ = writeln!(h, "# per-connection rule cost in this scenario is a LOWER BOUND.");
    }
    for w in &warnings {
        let _ = writeln!(h, "# WARNING: {}", comment_text(w));
    }
    if !skipped.is_empty() {
        let _ = writeln!(h, "# Left out of the evidence ({}):", skipped.len());
        for s in &skipped {
            let _ = writeln!(h, "#   {}", comment_text(&s.to_string()));
        }
    }
    if let Some(d) = b.file(DMESG) {
        let full = d.lines().filter(|l| l.contains("table full")).count();
        let suppressed: u64 = d
            .lines()
            .filter_map(|l| l.split("net_ratelimit:").nth(1))
            .filter_map(|r| r.split_whitespace().next()?.parse::<u64>().ok())
            .fold(0, u64::saturating_add);
        let _ = writeln!(
            h,
            "# {DMESG}: {full} `table full, dropping packet` lines, {suppressed} more suppressed by net_ratelimit"
        );
    }
    if let Some(log) = b.file(KUBE_PROXY_LOG) {
        for (i, l) in log.lines().enumerate() {
            if l.contains("Setting nf_conntrack_max")
                || l.contains("Using iptables Proxier")
                || l.contains("Using ipvs Proxier")
                || l.contains("Using nftables Proxier")
            {
                let _ = writeln!(
                    h,
                    "# {KUBE_PROXY_LOG}:{}: {}",
                    i + 1,
                    comment_text(&ctstat::clip(l.trim()))
                );
            }
        }
    }
    let y = h + &y;

    // The scenario must validate: it is the import's contract.
    if let Err(e) = crate::scenario::Scenario::from_bytes("imported.yaml", y.as_bytes(), &[]) {
        return Err(EvidenceError::new(
            &b.origin,
            0,
            format!(
                "the imported scenario does not validate (a bug in the import; please report it with the bundle): {e}"
            ),
        ));
    }
    Ok(Imported {
        yaml: y,
        node: name,
        skipped,
        warnings,
        cost_is_lower_bound,
    })
}
