//! The node-facts files of an evidence bundle: `sysctl -a` output, `/proc/meminfo`,
//! `nproc` and `uname -r`. Each parser gets the same bytes: a value or an error naming
//! its own file, never a panic; what parses is consistent with the text (sysctl names
//! have no whitespace, every line a value or a note comes from exists, a CPU count is
//! in 1..=4096, a kernel maps to one of the model's profiles).
#![no_main]

use k8s_netsim::evidence::kernel::{UNAME, parse_kernel_release};
use k8s_netsim::evidence::sysctl::{MEMINFO, NPROC, SYSCTL, parse_meminfo, parse_nproc, parse_sysctl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count();
    match parse_sysctl(text) {
        Ok(d) => {
            assert!(!d.values.is_empty(), "a dump with no value");
            for (k, v) in &d.values {
                assert!(
                    !k.is_empty() && k.contains('.') && !k.contains(char::is_whitespace),
                    "name `{k}`"
                );
                assert!(!v.value.contains(['\t', '\n']), "value `{}` keeps a tab", v.value);
                let line: usize = v
                    .source
                    .trim_start_matches("sysctl.txt:")
                    .parse()
                    .expect("source is sysctl.txt:N");
                assert!((1..=lines).contains(&line), "{} of {lines} lines", v.source);
            }
            for s in &d.skipped {
                assert!(
                    (1..=lines).contains(&s.line),
                    "note at line {} of {lines}",
                    s.line
                );
            }
        }
        Err(e) => assert_eq!(e.file, SYSCTL, "{e}"),
    }
    match parse_meminfo(text) {
        Ok(m) => assert!(m.value % 1024 == 0 || m.value == u64::MAX, "{} bytes", m.value),
        Err(e) => assert!(e.file == MEMINFO && e.line <= lines, "{e}"),
    }
    match parse_nproc(text) {
        Ok(n) => assert!((1..=4096).contains(&n.value)),
        Err(e) => assert_eq!(e.file, NPROC, "{e}"),
    }
    match parse_kernel_release(text) {
        Ok(k) => {
            assert!(!k.release.is_empty() && k.release.len() <= text.len());
            assert!(k.differences.len() <= 8);
        }
        Err(e) => assert_eq!((e.file.as_str(), e.line), (UNAME, 1), "{e}"),
    }
});
