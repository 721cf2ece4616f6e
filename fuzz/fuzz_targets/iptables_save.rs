//! `iptables-save` text: import never panics, and a dump that imports exports to text
//! that imports to a ruleset exporting the same text. (Not `==` on the rulesets: named
//! objects, nfacct counters and `recent` lists, are numbered in the order the text first
//! uses them, and the canonical export orders chains differently from the dump.)
#![no_main]

use k8s_netsim::netfilter::export::to_iptables_save;
use k8s_netsim::netfilter::import::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Ok(rs) => {
            let out = to_iptables_save(&rs);
            let again = parse(&out).unwrap_or_else(|e| panic!("export does not import: {e}\n{out}"));
            let twice = to_iptables_save(&again);
            assert_eq!(twice, out, "export then import changed the ruleset");
        }
        Err(e) => assert!(e.line >= 1 && e.column >= 1, "{e}"),
    }
});
