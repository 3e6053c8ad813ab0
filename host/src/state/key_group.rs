//! Key groups (Flink's `KeyGroupRangeAssignment`): keys map to **key groups**
//! (`hash(key) % max_parallelism`, 128 by default) and key groups to parallel instances in
//! contiguous ranges, so that state can be rescaled by moving whole key groups between
//! instances. The exchange between tasks routes by them; state is laid out by them.

/// Default number of key groups: the upper bound of a keyed operator's parallelism.
pub const DEFAULT_MAX_PARALLELISM: u16 = 128;

/// The key group of a key (its MessagePack bytes).
pub fn key_group(key: &[u8], max_parallelism: u16) -> u16 {
    // xxh3 is stable across platforms and releases, unlike std's SipHash keys.
    (xxhash_rust::xxh3::xxh3_64(key) % u64::from(max_parallelism.max(1))) as u16
}

/// The parallel instance that owns a key group (Flink's `computeOperatorIndexForKeyGroup`).
pub fn instance_for_key_group(key_group: u16, parallelism: usize, max_parallelism: u16) -> usize {
    usize::from(key_group) * parallelism / usize::from(max_parallelism.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn key_groups_map_to_valid_instances_in_contiguous_ranges(
            key in proptest::collection::vec(any::<u8>(), 0..32),
            parallelism in 1usize..=128,
        ) {
            let kg = key_group(&key, DEFAULT_MAX_PARALLELISM);
            prop_assert!(kg < DEFAULT_MAX_PARALLELISM);
            let i = instance_for_key_group(kg, parallelism, DEFAULT_MAX_PARALLELISM);
            prop_assert!(i < parallelism);
            // Contiguity: the next key group is owned by the same or the next instance.
            if kg + 1 < DEFAULT_MAX_PARALLELISM {
                let j = instance_for_key_group(kg + 1, parallelism, DEFAULT_MAX_PARALLELISM);
                prop_assert!(j == i || j == i + 1);
            }
        }
    }
}
