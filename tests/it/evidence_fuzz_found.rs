//! Inputs the fuzz targets found that broke the evidence import (each kept in
//! `fuzz/corpus/` under a `regression-` name): every one now imports to a scenario that
//! validates, with what it cannot hold left out and noted, or gives a clear error.

use crate::evidence::fixture;
use k8s_netsim::evidence::bundle::Bundle;
use k8s_netsim::evidence::import::{ImportOptions, import};
use k8s_netsim::scenario::Scenario;
use std::collections::BTreeMap;

/// The fixture bundle's files in memory, with `changes` (file → new text; `None`
/// removes it).
fn files_with(changes: &[(&str, Option<&str>)]) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(fixture()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        files.insert(name, std::fs::read_to_string(&p).unwrap());
    }
    for (name, text) in changes {
        match text {
            Some(t) => files.insert((*name).to_string(), (*t).to_string()),
            None => files.remove(*name),
        };
    }
    files
}

/// Found by the `evidence_import` fuzz target: a control character in a column name of
/// `/proc/net/stat/nf_conntrack` went into the scenario's header note as it was, and
/// the scenario did not parse ("found unprintable character"). Such text is escaped in
/// notes and strings now, and refused in `iptables-save` (which is carried as it is).
#[test]
fn control_characters_in_evidence_are_escaped_in_the_scenario_and_refused_in_rules() {
    let header = "entries  clash\u{19}res found\u{7f} drop\u{9f}x\n00000001 00000000 00000002 00000003\n";
    let b = Bundle::from_files(
        "odd\u{1b}[31morigin",
        files_with(&[
            ("conntrack-S.txt", None),
            ("nf_conntrack-stat.txt", Some(header)),
            ("nf_conntrack-stat.before.txt", None),
            (
                "kube-proxy.log",
                Some("I1 Using iptables Proxier\u{0}\u{2028}.\n"),
            ),
        ]),
        1_000,
    );
    let imported = import(&b, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let sc = Scenario::from_bytes("imported.yaml", imported.yaml.as_bytes(), &[])
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.yaml));
    assert!(
        imported
            .yaml
            .contains("column `clash\\u{19}res` has no `conntrack -S` counter"),
        "{}",
        imported.yaml
    );
    assert!(imported.yaml.contains("Using iptables Proxier\\u{0}\\u{2028}."));
    assert!(
        sc.description.contains("odd\u{1b}[31morigin"),
        "a string keeps the text, escaped in YAML and read back: {}",
        sc.description
    );

    let ipt =
        "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m comment --comment \"a\u{1}b\" -j ACCEPT\nCOMMIT\n";
    let b = Bundle::from_files("x", files_with(&[("iptables-save.txt", Some(ipt))]), 1_000);
    let e = import(&b, &ImportOptions::default()).unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("iptables-save.txt", 3), "{e}");
    assert!(e.message.contains("column 38: control character U+0001"), "{e}");
}

/// The recorded bundle's `iptables-save.txt` and its `KUBE-SERVICES` rule for echo:http.
fn fixture_dump_and_echo_rule() -> (String, String) {
    let fixture_dump = std::fs::read_to_string(fixture().join("iptables-save.txt")).unwrap();
    let rule = fixture_dump
        .lines()
        .find(|l| l.starts_with("-A KUBE-SERVICES -d ") && l.contains("--dport 80 "))
        .expect("the fixture's echo:http rule")
        .to_string();
    (fixture_dump, rule)
}

/// Found by the `evidence_import` fuzz target: a dump naming the same Service port
/// twice (the same `KUBE-SERVICES` rules twice) gave a scenario with the port declared
/// twice, which does not validate. The second is left out, with a note, and so is a
/// port 0.
#[test]
fn a_service_port_given_twice_or_port_zero_is_left_out_with_a_note() {
    let (fixture_dump, rule) = fixture_dump_and_echo_rule();
    let zero = rule
        .replace("--dport 80 ", "--dport 0 ")
        .replace("echo:http", "echo:zero");
    let dump = fixture_dump.replacen(&rule, &format!("{rule}\n{rule}\n{zero}"), 1);
    let b = Bundle::from_files("x", files_with(&[("iptables-save.txt", Some(&dump))]), 1_000);
    let imported = import(&b, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    Scenario::from_bytes("imported.yaml", imported.yaml.as_bytes(), &[])
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.yaml));
    let notes: Vec<String> = imported.skipped.iter().map(ToString::to_string).collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("default/echo: port 80 TCP was already given by an earlier rule")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("default/echo: port 0 is not a port")),
        "{notes:?}"
    );
}

/// Found by the `evidence_rules` fuzz target: a table header inside a table the model
/// does not have (its `COMMIT` missing) was skipped by the lenient reader but loaded by
/// the import, whose text then did not parse. It is a structural error now, as inside
/// a modelled table.
#[test]
fn a_table_header_inside_an_unmodelled_table_is_a_structural_error() {
    let dump = "*security\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n";
    let e = k8s_netsim::evidence::rules::parse_iptables_save(dump).unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("iptables-save.txt", 4), "{e}");
    assert!(
        e.message
            .contains("table `security` is not committed before `*filter`"),
        "{e}"
    );
}

/// Found by the `evidence_import` fuzz target: a garbled `sysctl.txt` line gave a
/// known sysctl a value it does not take (`nf_conntrack_icmp_timeout = 3onntrack...`),
/// and the imported scenario did not validate. Such a value is left out with a note now,
/// and the default applies. So is one with leading zeros (`05`), which YAML reads as a
/// string, not a number of seconds.
#[test]
fn a_sysctl_value_the_scenario_would_refuse_is_left_out_with_a_note() {
    let sysctl = std::fs::read_to_string(fixture().join("sysctl.txt")).unwrap()
        + "net.netfilter.nf_conntrack_icmp_timeout = 3onntrack_tcp_timeout_max_retrans = 300\n\
           net.netfilter.nf_conntrack_buckets = 99999999999999999999999\n\
           net.netfilter.nf_conntrack_tcp_timeout_close = 05\n";
    let b = Bundle::from_files("x", files_with(&[("sysctl.txt", Some(&sysctl))]), 1_000);
    let imported = import(&b, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    Scenario::from_bytes("imported.yaml", imported.yaml.as_bytes(), &[])
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.yaml));
    let refused = [
        "nf_conntrack_icmp_timeout",
        "nf_conntrack_buckets",
        "nf_conntrack_tcp_timeout_close",
    ];
    for name in refused {
        let set = format!("net.netfilter.{name}:");
        assert!(
            !imported.yaml.lines().any(|l| l.trim_start().starts_with(&set)),
            "{name} is set:\n{}",
            imported.yaml
        );
    }
    let notes: Vec<String> = imported.skipped.iter().map(ToString::to_string).collect();
    for name in refused {
        assert!(
            notes
                .iter()
                .any(|n| n.contains(name) && n.contains("left out (the default applies)")),
            "{name}: {notes:?}"
        );
    }
}

/// Found by the `evidence_import` fuzz target: a listing line in a TCP state the model
/// does not have (`TAME_WAIT`) became a warm-start group the scenario refuses. Such
/// entries are left out of the warm start, with a note counting them.
#[test]
fn warm_start_entries_in_a_state_the_model_does_not_have_are_left_out_with_a_note() {
    let listing = std::fs::read_to_string(fixture().join("conntrack-L.txt")).unwrap()
        + "tcp      6 115 TAME_WAIT src=10.10.1.2 dst=10.96.0.10 sport=1 dport=80 src=10.10.2.2 dst=10.10.1.2 sport=8080 dport=1 [ASSURED] mark=0 use=1\n";
    let b = Bundle::from_files("x", files_with(&[("conntrack-L.txt", Some(&listing))]), 1_000_000);
    let imported = import(&b, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    Scenario::from_bytes("imported.yaml", imported.yaml.as_bytes(), &[])
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.yaml));
    assert!(!imported.yaml.contains("state: TAME_WAIT"), "{}", imported.yaml);
    assert!(
        imported.skipped.iter().any(|n| n
            .to_string()
            .contains("1 TCP entries in state `TAME_WAIT`, which the model does not have")),
        "{:?}",
        imported.skipped
    );
}

/// Found by the `evidence_import` fuzz target: two Services on one ClusterIP (a
/// garbled dump) gave a scenario with the ClusterIP used twice. The later Service is
/// left out, with a note.
#[test]
fn a_second_service_on_the_same_cluster_ip_is_left_out_with_a_note() {
    let (fixture_dump, rule) = fixture_dump_and_echo_rule();
    let other = rule.replace("default/echo:http", "default/other:http");
    let dump = fixture_dump.replacen(&rule, &format!("{rule}\n{other}"), 1);
    let b = Bundle::from_files("x", files_with(&[("iptables-save.txt", Some(&dump))]), 1_000);
    let imported = import(&b, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let sc = Scenario::from_bytes("imported.yaml", imported.yaml.as_bytes(), &[])
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.yaml));
    assert!(sc.services.iter().any(|s| s.name == "echo"));
    assert!(!sc.services.iter().any(|s| s.name == "other"));
    assert!(
        imported.skipped.iter().any(|n| n
            .to_string()
            .contains("Service default/other: clusterIP 10.96.0.10 is already another Service's")),
        "{:?}",
        imported.skipped
    );
}

/// Found by the `evidence_import` fuzz target: a garbled ClusterIP (`11.96.0.10`) made
/// the smallest range holding every ClusterIP `10.0.0.0/7`, which overlaps the cluster
/// CIDR `10.10.0.0/16`, and the scenario did not validate. A ClusterIP that cannot share
/// one service range with the earlier ones clear of the cluster CIDR, or lies inside
/// it, is left out with a note.
#[test]
fn a_cluster_ip_that_would_stretch_the_service_range_over_the_pods_is_left_out() {
    let (fixture_dump, rule) = fixture_dump_and_echo_rule();
    let far = rule
        .replace("default/echo:http", "default/far:http")
        .replace("10.96.0.10", "11.96.0.10");
    let inside = rule
        .replace("default/echo:http", "default/inside:http")
        .replace("10.96.0.10", "10.10.9.9");
    let dump = fixture_dump.replacen(&rule, &format!("{rule}\n{far}\n{inside}"), 1);
    let b = Bundle::from_files("x", files_with(&[("iptables-save.txt", Some(&dump))]), 1_000);
    let imported = import(&b, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let sc = Scenario::from_bytes("imported.yaml", imported.yaml.as_bytes(), &[])
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.yaml));
    assert!(sc.services.iter().any(|s| s.name == "echo"));
    assert!(!sc.services.iter().any(|s| s.name == "far" || s.name == "inside"));
    assert!(
        imported.yaml.contains("serviceCIDR: 10.96.0.0/12"),
        "{}",
        imported.yaml
    );
    for (name, ip) in [("far", "11.96.0.10"), ("inside", "10.10.9.9")] {
        let note = format!(
            "Service default/{name}: ClusterIP {ip} cannot share a service range with the ClusterIPs before it without overlapping the cluster CIDR 10.10.0.0/16"
        );
        assert!(
            imported.skipped.iter().any(|n| n.to_string().contains(&note)),
            "{note}: {:?}",
            imported.skipped
        );
    }
}

/// Found by the `evidence_import` fuzz target: two Services whose rules DNAT to the same
/// pod (a garbled dump; in a cluster, two Services selecting one pod) gave a scenario
/// using the pod address twice, which does not validate. The later Service keeps its
/// ports and loses that endpoint, with a note.
#[test]
fn an_endpoint_shared_by_two_services_backs_the_first_only() {
    let (fixture_dump, _) = fixture_dump_and_echo_rule();
    let twin = fixture_dump
        .lines()
        .filter(|l| l.contains("default/echo:http"))
        .map(|l| {
            l.replace("default/echo:http", "default/twin:http")
                .replace("10.96.0.10", "10.96.0.11")
                .replace("KUBE-SVC-KHFWJ2CCLDUXD4NQ", "KUBE-SVC-TWINTWINTWINTWIN")
                .replace("KUBE-SEP-7ZB4JWBQFS3NR4XT", "KUBE-SEP-TWINTWINTWINTWIN")
        })
        .collect::<Vec<_>>();
    assert!(twin.len() >= 4, "{twin:?}");
    let chains: Vec<String> = ["KUBE-SVC-TWINTWINTWINTWIN", "KUBE-SEP-TWINTWINTWINTWIN"]
        .iter()
        .map(|c| format!(":{c} - [0:0]"))
        .collect();
    // Into the nat table, before its COMMIT.
    let at = fixture_dump.find("*nat").unwrap();
    let (head, tail) = fixture_dump.split_at(at);
    let added = format!("{}\n{}\nCOMMIT", chains.join("\n"), twin.join("\n"));
    let dump = format!("{head}{}", tail.replacen("COMMIT", &added, 1));
    let b = Bundle::from_files("x", files_with(&[("iptables-save.txt", Some(&dump))]), 1_000);
    let imported = import(&b, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let sc = Scenario::from_bytes("imported.yaml", imported.yaml.as_bytes(), &[])
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.yaml));
    assert!(sc.services.iter().any(|s| s.name == "echo"));
    assert!(sc.services.iter().any(|s| s.name == "twin"), "{}", imported.yaml);
    assert!(
        imported.skipped.iter().any(|n| n
            .to_string()
            .contains("of default/twin is also an endpoint of Service default/echo")),
        "{:?}\n{}",
        imported.skipped,
        imported.yaml
    );
}

/// Found by the `evidence_import` fuzz target: a masquerade rule naming one address
/// (`! -s 10.6.0.10/32`) was taken as the cluster CIDR, and the node's pod block, the
/// first /24 of it, fell outside it, so the imported scenario did not validate. A cluster
/// CIDR narrower than a /24 is now an error naming the rule's line.
#[test]
fn a_cluster_cidr_narrower_than_a_node_block_is_an_error_naming_the_rule() {
    let (fixture_dump, _) = fixture_dump_and_echo_rule();
    let (line, _) = fixture_dump
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("! -s 10.10.0.0/16"))
        .unwrap();
    let dump = fixture_dump.replace("! -s 10.10.0.0/16", "! -s 10.6.0.10/32");
    let b = Bundle::from_files("x", files_with(&[("iptables-save.txt", Some(&dump))]), 1_000);
    let e = import(&b, &ImportOptions::default()).unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("iptables-save.txt", line + 1), "{e}");
    assert!(
        e.message.contains("the cluster CIDR 10.6.0.10/32") && e.message.contains("narrower than the /24"),
        "{e}"
    );
    // A /24 is still a cluster CIDR (one node's block); here the endpoints fill it.
    let dump = fixture_dump.replace("! -s 10.10.0.0/16", "! -s 10.10.2.0/24");
    let b = Bundle::from_files("x", files_with(&[("iptables-save.txt", Some(&dump))]), 1_000);
    let e = import(&b, &ImportOptions::default()).unwrap_err();
    assert!(
        e.message.contains("has no /24 left for the node's own pods"),
        "{e}"
    );
}

/// Found by the `evidence_import` fuzz target (built with overflow checks): `dmesg`
/// lines whose `net_ratelimit: N callbacks suppressed` counts add up past 2^64 overflowed
/// the sum for the scenario's header note. The count saturates now.
#[test]
fn net_ratelimit_counts_past_two_to_the_64_saturate() {
    let dmesg = "[ 1.0] net_ratelimit: 18446744073709551615 callbacks suppressed\n\
                 [ 2.0] net_ratelimit: 18446744073709551615 callbacks suppressed\n\
                 [ 3.0] nf_conntrack: nf_conntrack: table full, dropping packet\n";
    let b = Bundle::from_files("x", files_with(&[("dmesg-conntrack.txt", Some(dmesg))]), 1_000);
    let imported = import(&b, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        imported
            .yaml
            .contains("1 `table full, dropping packet` lines, 18446744073709551615 more suppressed"),
        "{}",
        imported.yaml
    );
}
