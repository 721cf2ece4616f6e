//! The rule dumps of an evidence bundle: `iptables-save` (loaded leniently, kube-proxy's
//! Services recovered), `ipvsadm -Ln` and `nft list ruleset` get the same bytes. Each
//! gives a value or an error naming its file, never a panic; the lenient load's
//! `loadable` text imports strictly (the import's contract), every note names a line
//! of the text (or the line after the last, for a missing `COMMIT`), and every
//! recovered Service names its source line.
#![no_main]

use k8s_netsim::evidence::rules::{
    IPTABLES_SAVE, IPVSADM, NFT, RecoveredPort, parse_iptables_save, parse_ipvsadm, parse_nft,
};
use k8s_netsim::netfilter::import::parse;
use libfuzzer_sys::fuzz_target;

fn sourced(ports: &[RecoveredPort], file: &str, lines: usize) {
    for p in ports {
        let line: usize = p
            .source
            .strip_prefix(file)
            .and_then(|s| s.strip_prefix(':'))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("source `{}` is not {file}:N", p.source));
        assert!((1..=lines).contains(&line), "{} of {lines} lines", p.source);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count();
    match parse_iptables_save(text) {
        Ok(ev) => {
            if let Err(e) = parse(&ev.loadable) {
                panic!("the loadable text does not import: {e}\n{}", ev.loadable);
            }
            // A missing final COMMIT is noted at the line after the last.
            for s in &ev.skipped {
                assert!(s.file == IPTABLES_SAVE && s.line <= lines + 1, "{s}");
            }
            assert_eq!(ev.iptables_mode, !ev.services.is_empty());
            sourced(&ev.services, IPTABLES_SAVE, lines);
        }
        Err(e) => assert!(e.file == IPTABLES_SAVE && e.line <= lines + 1, "{e}"),
    }
    match parse_ipvsadm(text) {
        Ok(ports) => sourced(&ports, IPVSADM, lines),
        Err(e) => assert!(e.file == IPVSADM && (1..=lines).contains(&e.line), "{e}"),
    }
    match parse_nft(text) {
        Ok(ev) => {
            sourced(&ev.services, NFT, lines);
            for s in &ev.skipped {
                assert!(s.file == NFT && (1..=lines).contains(&s.line), "{s}");
            }
        }
        Err(e) => assert!(e.file == NFT && (1..=lines).contains(&e.line), "{e}"),
    }
});
