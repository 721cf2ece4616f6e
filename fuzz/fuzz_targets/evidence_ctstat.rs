//! The conntrack counters of an evidence bundle: `conntrack -S` text and
//! `/proc/net/stat/nf_conntrack`'s hexadecimal table get the same bytes. A table or an
//! error naming its file and a line of the text, never a panic or an overflow; a table
//! has at least one CPU, no more CPUs than lines, and subtracting a snapshot from
//! itself gives zeros.
#![no_main]

use k8s_netsim::evidence::ctstat::{
    CONNTRACK_S, CounterTable, PROC_STAT, parse_conntrack_s, parse_proc_stat,
};
use libfuzzer_sys::fuzz_target;

fn check(t: &CounterTable, lines: usize) {
    assert!(
        t.cpus >= 1 && t.cpus <= lines,
        "{} CPUs from {lines} lines",
        t.cpus
    );
    let zero = t.since(t);
    assert!(zero.sums.values().all(|v| *v == 0), "{zero:?}");
    assert_eq!(zero.sums.len(), t.sums.len());
    for s in &t.skipped {
        assert!(s.line <= lines);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count();
    match parse_conntrack_s(text) {
        Ok(t) => {
            check(&t, lines);
            assert_eq!(t.entries, None, "conntrack -S has no entries column");
        }
        Err(e) => assert!(e.file == CONNTRACK_S && e.line <= lines, "{e}"),
    }
    match parse_proc_stat(text) {
        Ok(t) => {
            check(&t, lines);
            assert!(t.entries.is_some(), "the header names `entries`");
        }
        Err(e) => assert!(e.file == PROC_STAT && e.line <= lines, "{e}"),
    }
});
