//! Table sizing rules: kernel defaults (`nf_conntrack_init_start`,
//! `nf_ct_alloc_hashtable`) and kube-proxy's (`pkg/proxy/conntrack`, `SetMax`).

use crate::kernel::KernelProfile;

/// Slab object size of `struct nf_conn` on x86_64 6.18 (docs/kernel-semantics.md §Sizing).
pub const KERNEL_BYTES_PER_ENTRY: u64 = 256;
/// One `hlist_nulls_head` per bucket.
pub const KERNEL_BYTES_PER_BUCKET: u64 = 8;

/// kube-proxy's `nf_conntrack_max`: `max(max_per_core × cpus, min)` (defaults 32,768
/// and 131,072).
#[must_use]
pub fn kube_proxy_max(cpus: u32, max_per_core: u32, min: u32) -> u32 {
    max_per_core.saturating_mul(cpus).max(min)
}

/// kube-proxy's `SetMax`: raises the hash size to `max / 4` when it is smaller.
#[must_use]
pub fn kube_proxy_buckets(max: u32, current_buckets: u32) -> u32 {
    current_buckets.max(max / 4)
}

/// `nf_ct_alloc_hashtable` rounds the bucket count up to a page of heads (512 on
/// x86_64); at least one page.
#[must_use]
pub fn round_buckets(buckets: u32) -> u32 {
    buckets.max(1).div_ceil(512).saturating_mul(512)
}

/// Kernel defaults `(nf_conntrack_max, nf_conntrack_buckets)` for a 64-bit host with
/// `ram_bytes` of memory, with or without the `nf_conntrack.hashsize` parameter
/// (`nf_conntrack_init_start`): buckets = RAM / 16 KiB / 8, 262,144 above 4 GiB,
/// 65,536 above 1 GiB, at least 1,024; max = buckets on 5.15+ (4 × buckets before),
/// and 8 × hashsize when the parameter is given.
#[must_use]
pub fn default_sizing(ram_bytes: u64, hashsize: Option<u32>, profile: KernelProfile) -> (u32, u32) {
    const GIB: u64 = 1 << 30;
    if let Some(h) = hashsize {
        let b = round_buckets(h);
        return (h.saturating_mul(8), b);
    }
    // nf_conntrack_htable_size = RAM / 16 KiB / sizeof(hlist_head), then capped.
    let by_formula = u32::try_from(ram_bytes >> 17).unwrap_or(u32::MAX);
    let (b, factor) = if profile.max_equals_buckets {
        // 5.15+ "sanitize table size default settings": 262,144 above 4 GiB,
        // 65,536 above 1 GiB, at least 1,024; max = buckets.
        let b = if ram_bytes > 4 * GIB {
            262_144
        } else if ram_bytes > GIB {
            65_536
        } else {
            by_formula.max(1_024)
        };
        (b, 1)
    } else {
        // Before: 65,536 above 4 GiB, 16,384 above 1 GiB, at least 32; max = 4 x buckets.
        let b = if ram_bytes > 4 * GIB {
            65_536
        } else if ram_bytes > GIB {
            16_384
        } else {
            by_formula.max(32)
        };
        (b, 4)
    };
    (b.saturating_mul(factor), round_buckets(b))
}

/// Kernel memory for a full table: 256 B per entry plus 8 B per bucket.
#[must_use]
pub fn kernel_memory_bytes(max: u32, buckets: u32) -> u64 {
    u64::from(max) * KERNEL_BYTES_PER_ENTRY + u64::from(buckets) * KERNEL_BYTES_PER_BUCKET
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/kernel-semantics.md §Sizing: kube-proxy max = max(32768 × CPUs, 131072).
    #[test]
    fn kube_proxy_max_matches_published_sizes() {
        let rows = [
            (1, 131_072),
            (4, 131_072),
            (8, 262_144),
            (16, 524_288),
            (32, 1_048_576),
        ];
        for (cpus, want) in rows {
            assert_eq!(kube_proxy_max(cpus, 32_768, 131_072), want);
        }
        assert_eq!(kube_proxy_buckets(1_048_576, 262_144), 262_144);
        assert_eq!(kube_proxy_buckets(1_048_576, 65_536), 262_144);
    }

    /// docs/kernel-semantics.md §Sizing: buckets = max = 262,144 on a 24 GiB 6.18
    /// host; 8 × hashsize when given; 4 × buckets on older kernels.
    #[test]
    fn kernel_defaults_by_profile_and_ram() {
        let gib = 1u64 << 30;
        assert_eq!(
            default_sizing(24 * gib, None, KernelProfile::LINUX_6_18),
            (262_144, 262_144)
        );
        // Before 5.15: 65,536 buckets above 4 GiB, max 4 x buckets (validation V20).
        assert_eq!(
            default_sizing(24 * gib, None, KernelProfile::LINUX_5_4),
            (262_144, 65_536)
        );
        assert_eq!(
            default_sizing(2 * gib, None, KernelProfile::LINUX_6_18),
            (65_536, 65_536)
        );
        assert_eq!(
            default_sizing(24 * gib, Some(65_536), KernelProfile::LINUX_6_18),
            (524_288, 65_536)
        );
        assert_eq!(default_sizing(64 << 20, None, KernelProfile::LINUX_6_18).1, 1_024);
        assert_eq!(round_buckets(1_000), 1_024);
        assert_eq!(kernel_memory_bytes(262_144, 262_144), 262_144 * 264);
    }
}
