//! Which core owns a key: xxh3 of the key, mapped onto `0..cores` by multiply-shift (no modulo
//! bias worth the name, no division on the hot path). Every core computes the same answer, so a
//! request can be handed straight to its owner.

use xxhash_rust::xxh3::xxh3_64;

/// Seedless on purpose: the placement must be the same in every process and across restarts.
pub fn route(key: &[u8], cores: usize) -> usize {
    assert!(cores > 0);
    route_hash(xxh3_64(key), cores)
}

pub fn route_hash(hash: u64, cores: usize) -> usize {
    ((hash as u128 * cores as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_in_range() {
        // Pinned values: changing the hash or the mapping moves every object; that must be deliberate.
        assert_eq!(route(b"bucket/key", 1), 0);
        let a = route(b"bucket/key", 7);
        assert_eq!(a, route(b"bucket/key", 7));
        assert_eq!(xxh3_64(b""), 0x2D06_8005_38D3_94C2);
        for cores in 1..=64 {
            for i in 0..200u32 {
                assert!(route(&i.to_le_bytes(), cores) < cores);
            }
        }
    }

    #[test]
    fn spreads_evenly() {
        let cores = 16;
        let n = 160_000u32;
        let mut counts = vec![0u32; cores];
        for i in 0..n {
            counts[route(format!("bucket/object-{i}").as_bytes(), cores)] += 1;
        }
        let expected = n / cores as u32;
        for (core, c) in counts.iter().enumerate() {
            // 5 sigma of a binomial(160000, 1/16) is ~ 480.
            assert!(c.abs_diff(expected) < 500, "core {core} got {c}, expected ~{expected}");
        }
    }
}
