//! Unit strings as operators write them (durations, rates, sizes, port ranges, CIDRs):
//! parsing never panics, and whatever parses prints back to text that parses to the
//! same value.
#![no_main]

use k8s_netsim::packet::Cidr;
use k8s_netsim::scenario::{ByteSize, PortRange, Rate};
use k8s_netsim::time::SimDuration;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Rate::parse(text) {
        assert_eq!(Rate::parse(&r.to_string()), Ok(r), "rate `{text}` -> `{r}`");
    }
    if let Ok(b) = ByteSize::parse(text) {
        assert_eq!(ByteSize::parse(&b.to_string()), Ok(b), "size `{text}` -> `{b}`");
    }
    if let Ok(p) = PortRange::parse(text) {
        assert_eq!(PortRange::parse(&p.to_string()), Ok(p), "ports `{text}` -> `{p}`");
        assert!(p.len() >= 1);
    }
    if let Ok(d) = SimDuration::parse(text) {
        assert_eq!(
            SimDuration::parse(&d.to_string()),
            Ok(d),
            "duration `{text}` -> `{d}`"
        );
    }
    if let Ok(c) = text.parse::<Cidr>() {
        assert_eq!(
            c.to_string().parse::<Cidr>().ok(),
            Some(c),
            "cidr `{text}` -> `{c}`"
        );
    }
});
