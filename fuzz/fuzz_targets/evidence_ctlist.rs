//! `conntrack -L` listings (and `/proc/net/nf_conntrack`), read line by line into the
//! warm-start summary with a small cap. Never a panic; at most `cap` entries are
//! summarised; the warm-start slices add up to the entries summarised, each group cut
//! into at most the slices asked for, each slice's timeouts in order; every note
//! names a line of the text (or the file as a whole).
#![no_main]

use k8s_netsim::evidence::ctlist::{CONNTRACK_L, parse_conntrack_list};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let cap = u64::from(knobs & 0x0f) * 4;
    let per_group = usize::from(knobs >> 4);
    let lines = text.lines().count();
    match parse_conntrack_list(text, cap) {
        Ok(s) => {
            assert!(s.entries() <= cap, "{} entries over the cap {cap}", s.entries());
            let slices = s.warm_slices(per_group);
            assert_eq!(slices.iter().map(|x| x.count).sum::<u64>(), s.entries());
            let mut groups = std::collections::BTreeMap::new();
            for x in &slices {
                assert!(x.count >= 1 && x.shortest_s <= x.longest_s, "{x:?}");
                *groups.entry(x.key.clone()).or_insert(0usize) += 1;
            }
            assert!(groups.values().all(|n| *n <= per_group.max(1)), "{groups:?}");
            for n in s.skipped() {
                assert!(n.file == CONNTRACK_L && n.line <= lines, "{n}");
            }
        }
        Err(e) => assert!(e.file == CONNTRACK_L && (1..=lines).contains(&e.line), "{e}"),
    }
});
