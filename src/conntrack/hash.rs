//! The keyed tuple hash of `hash_conntrack_raw` and `reciprocal_scale`.
//!
//! The kernel hashes the tuple with SipHash keyed by `nf_conntrack_hash_rnd ^
//! net_hash_mix(net)`; we use SipHash-1-3 over the packed IPv4 tuple with a key drawn
//! from the table's [`SimRng`](crate::rng::SimRng) stream, so runs are deterministic.

use crate::packet::Tuple;
use crate::rng::mix64;

/// SipHash key (two 64-bit halves).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HashKey {
    k0: u64,
    k1: u64,
}

impl HashKey {
    pub(crate) const fn new(k0: u64, k1: u64) -> HashKey {
        HashKey { k0, k1 }
    }
}

#[inline]
fn sipround(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// SipHash-1-3 of two 64-bit words (16 bytes).
#[inline]
fn siphash13(k0: u64, k1: u64, m: [u64; 2]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    for w in m {
        v[3] ^= w;
        sipround(&mut v);
        v[0] ^= w;
    }
    let b = 16u64 << 56;
    v[3] ^= b;
    sipround(&mut v);
    v[0] ^= b;
    v[2] ^= 0xff;
    sipround(&mut v);
    sipround(&mut v);
    sipround(&mut v);
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// `hash_conntrack_raw`: the 32-bit hash of `tuple` in namespace `ns`.
#[inline]
pub(crate) fn tuple_hash(key: HashKey, ns: u16, tuple: &Tuple) -> u32 {
    let w0 = (u64::from(tuple.src.to_bits()) << 32) | u64::from(tuple.dst.to_bits());
    let w1 =
        (u64::from(tuple.sport) << 48) | (u64::from(tuple.dport) << 32) | u64::from(tuple.proto.number());
    let h = siphash13(key.k0 ^ mix64(u64::from(ns) + 1), key.k1, [w0, w1]);
    // The kernel keeps a u32 hash; fold the halves.
    #[allow(clippy::cast_possible_truncation)]
    let folded = (h ^ (h >> 32)) as u32;
    folded
}

/// `reciprocal_scale(val, n)`: maps a 32-bit hash uniformly onto `0..n`.
#[inline]
pub(crate) const fn reciprocal_scale(val: u32, n: u32) -> u32 {
    #[allow(clippy::cast_possible_truncation)]
    let r = ((val as u64 * n as u64) >> 32) as u32;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bucket must move with the key, the namespace and every tuple field.
    #[test]
    fn hash_depends_on_key_namespace_and_every_field() {
        use crate::packet::Proto;
        use std::net::Ipv4Addr;
        let t = Tuple::new(
            Proto::Tcp,
            Ipv4Addr::new(10, 0, 0, 1),
            1000,
            Ipv4Addr::new(10, 0, 0, 2),
            80,
        );
        let k = HashKey::new(1, 2);
        let h = tuple_hash(k, 0, &t);
        assert_ne!(h, tuple_hash(HashKey::new(3, 2), 0, &t));
        assert_ne!(h, tuple_hash(k, 1, &t));
        assert_ne!(h, tuple_hash(k, 0, &Tuple { sport: 1001, ..t }));
        assert_ne!(h, tuple_hash(k, 0, &Tuple { dport: 81, ..t }));
        assert_ne!(
            h,
            tuple_hash(
                k,
                0,
                &Tuple {
                    proto: Proto::Udp,
                    ..t
                }
            )
        );
        assert_ne!(h, tuple_hash(k, 0, &t.reversed()));
    }

    #[test]
    fn reciprocal_scale_spreads_evenly() {
        let n = 512u32;
        let mut counts = vec![0u32; n as usize];
        for i in 0..(n * 200) {
            let h = mix64(u64::from(i)) as u32;
            counts[reciprocal_scale(h, n) as usize] += 1;
        }
        let (lo, hi) = (*counts.iter().min().unwrap(), *counts.iter().max().unwrap());
        assert!(lo > 130 && hi < 270, "bucket spread {lo}..{hi}");
        assert_eq!(reciprocal_scale(u32::MAX, n), n - 1);
        assert_eq!(reciprocal_scale(0, n), 0);
    }
}
