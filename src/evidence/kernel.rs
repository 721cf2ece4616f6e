//! A kernel release (`uname -r`) mapped to the nearest behaviour profile.
//!
//! Each profile switch is tied to the release that changed it (docs/model.md, "Kernel
//! profiles"). The release's own values of the switches are derived from its version,
//! and the profile with the fewest differing switches is the nearest; the differences
//! are named. Distribution kernels that backport conntrack fixes (Enterprise Linux
//! `.elN`, Amazon Linux `amzn`, Oracle `uek`) get a warning: their version alone does
//! not say which behaviour they have.

use super::EvidenceError;
use crate::kernel::KernelProfile;

/// The `uname -r` file of a bundle.
pub const UNAME: &str = "uname-r.txt";

/// A release and its nearest profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelMatch {
    /// The release as printed.
    pub release: String,
    /// Its major and minor version.
    pub version: (u32, u32),
    /// The nearest profile.
    pub profile: KernelProfile,
    /// Switches where the release differs from the profile.
    pub differences: Vec<&'static str>,
    /// Warnings (backports, releases outside the profiles' range).
    pub warnings: Vec<String>,
}

/// The switches of a `major.minor` release: (name, value) in profile order.
fn switches_of(v: (u32, u32)) -> [(&'static str, u32); 8] {
    let at_least = |maj: u32, min: u32| u32::from(v >= (maj, min));
    [
        ("tcp_syn_linear_timeouts (6.5)", at_least(6, 5) * 4),
        ("UDP clash merge (4.19)", at_least(4, 19)),
        ("reply-only clash insertion (5.6)", at_least(5, 6)),
        ("SNAT eviction of TIME_WAIT entries (6.5)", at_least(6, 5)),
        ("shared SNAT port rover (before 5.0)", 1 - at_least(5, 0)),
        ("nf_conntrack_max = buckets by default (5.15)", at_least(5, 15)),
        ("adaptive gc interval (5.15)", at_least(5, 15)),
        ("tcp_tw_reuse default 2 (5.3)", at_least(5, 3) * 2),
    ]
}

fn switches_of_profile(p: &KernelProfile) -> [u32; 8] {
    [
        u32::from(p.syn_linear_timeouts),
        u32::from(p.udp_clash_merge),
        u32::from(p.udp_clash_reply_only),
        u32::from(p.snat_evict_time_wait),
        u32::from(p.nat_sequential_rover),
        u32::from(p.max_equals_buckets),
        u32::from(p.gc_adaptive),
        u32::from(p.tcp_tw_reuse_default),
    ]
}

/// Maps a `uname -r` text to the nearest profile.
///
/// # Errors
/// A text that does not start with `MAJOR.MINOR` (an unknown or garbled release).
pub fn parse_kernel_release(text: &str) -> Result<KernelMatch, EvidenceError> {
    let release = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    let mut parts = release.split(['.', '-']);
    let major = parts.next().and_then(|m| m.parse::<u32>().ok());
    let minor = parts.next().and_then(|m| {
        m.trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse::<u32>()
            .ok()
    });
    let (Some(major), Some(minor)) = (major, minor) else {
        return Err(EvidenceError::new(
            UNAME,
            1,
            format!(
                "`{}` is not a kernel release (`MAJOR.MINOR...`, e.g. 6.1.0-18-amd64)",
                super::ctstat::clip(release)
            ),
        ));
    };
    let version = (major, minor);
    let own = switches_of(version);
    let mut best: Option<(usize, KernelProfile)> = None;
    for p in KernelProfile::ALL {
        let diff = own
            .iter()
            .zip(switches_of_profile(&p))
            .filter(|((_, a), b)| a != b)
            .count();
        if best.is_none_or(|(d, _)| diff < d) {
            best = Some((diff, p));
        }
    }
    let profile = best.map_or(KernelProfile::LINUX_6_18, |(_, p)| p);
    let differences = own
        .iter()
        .zip(switches_of_profile(&profile))
        .filter(|((_, a), b)| a != b)
        .map(|((n, _), _)| *n)
        .collect();
    let mut warnings = Vec::new();
    let lower = release.to_ascii_lowercase();
    let backport = [".el", "amzn", "uek"].iter().find(|m| lower.contains(*m));
    if let Some(m) = backport {
        warnings.push(format!(
            "`{release}` is a distribution kernel (`{}`) that backports conntrack fixes: its version alone does not say which behaviour it has; check the release notes and set `kernel` by behaviour",
            m.trim_start_matches('.')
        ));
    }
    if version < (4, 19) {
        warnings.push(format!(
            "{major}.{minor} is older than every profile (4.19 is the oldest); the model follows 4.19"
        ));
    }
    if version > (6, 18) {
        warnings.push(format!(
            "{major}.{minor} is newer than every profile; the model follows 6.18"
        ));
    }
    Ok(KernelMatch {
        release: release.to_string(),
        version,
        profile,
        differences,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_map_to_the_profile_with_the_fewest_differences() {
        let m = parse_kernel_release("6.18.44\n").unwrap();
        assert_eq!(
            (m.profile.name, m.differences.len(), m.warnings.len()),
            ("6.18", 0, 0)
        );
        assert_eq!(
            parse_kernel_release("5.10.0-28-amd64").unwrap().profile.name,
            "5.4"
        );
        assert_eq!(
            parse_kernel_release("5.15.0-1034-aws").unwrap().profile.name,
            "6.18"
        );
        let el7 = parse_kernel_release("3.10.0-1160.el7.x86_64").unwrap();
        assert_eq!(el7.profile.name, "4.19");
        assert_eq!(el7.warnings.len(), 2, "{:?}", el7.warnings);
        let amzn = parse_kernel_release("4.14.355-275.570.amzn2.x86_64").unwrap();
        assert!(amzn.warnings[0].contains("backports"));
    }

    #[test]
    fn an_unknown_release_is_an_error_naming_the_file() {
        let e = parse_kernel_release("Linux\n").unwrap_err();
        assert_eq!((e.file.as_str(), e.line), (UNAME, 1));
        assert!(parse_kernel_release("").is_err());
    }
}
