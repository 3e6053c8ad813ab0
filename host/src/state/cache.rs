//! The read cache in front of sled: least recently used entries go first once the cache
//! holds more than its budget in bytes.
//!
//! It holds what sled holds (stored bytes, header included, or the absence of a key), never
//! buffered writes: those are read from the write buffer, which is checked first. The one
//! exception is a list's next sequence number, which already accounts for buffered appends
//! and only has to be at least one past the last entry (it never needs invalidating).

use lru::LruCache;

/// Estimated bytes an entry costs beyond its key and value: the LRU node (key and value
/// headers, two links), the hash table slot and the allocator's headers of two `Vec`s.
const ENTRY_OVERHEAD: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cached {
    /// A point entry as sled stores it, or `None` for a key sled does not have.
    Stored(Option<Vec<u8>>),
    /// The sequence number of a list's next append.
    ListNext(u64),
}

impl Cached {
    fn bytes(&self) -> usize {
        match self {
            Cached::Stored(Some(v)) => v.capacity(),
            Cached::Stored(None) | Cached::ListNext(_) => 0,
        }
    }
}

pub(super) struct ByteLru {
    entries: LruCache<Vec<u8>, Cached>,
    bytes: usize,
    capacity: usize,
    pub hits: u64,
    pub misses: u64,
}

impl ByteLru {
    pub fn new(capacity: usize) -> Self {
        Self { entries: LruCache::unbounded(), bytes: 0, capacity, hits: 0, misses: 0 }
    }

    pub fn get(&mut self, key: &[u8]) -> Option<&Cached> {
        let found = self.entries.get(key);
        if found.is_some() {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        found
    }

    /// Inserts or replaces `key`, then evicts the least recently used entries until the
    /// cache fits its budget. An entry larger than the whole budget is not kept.
    pub fn insert(&mut self, key: Vec<u8>, value: Cached) {
        let cost = entry_cost(&key, &value);
        if cost > self.capacity {
            self.remove(&key);
            return;
        }
        self.bytes += cost;
        if let Some((old_key, old)) = self.entries.push(key, value) {
            // `push` returns the replaced entry (same key) or, when bounded, an evicted one;
            // ours is unbounded, so this is the old value of the same key.
            self.bytes -= entry_cost(&old_key, &old);
        }
        while self.bytes > self.capacity {
            match self.entries.pop_lru() {
                Some((k, v)) => self.bytes -= entry_cost(&k, &v),
                None => break,
            }
        }
    }

    pub fn remove(&mut self, key: &[u8]) {
        if let Some((k, v)) = self.entries.pop_entry(key) {
            self.bytes -= entry_cost(&k, &v);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

fn entry_cost(key: &[u8], value: &Cached) -> usize {
    key.len() + value.bytes() + ENTRY_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(n: usize) -> Cached {
        Cached::Stored(Some(vec![0; n]))
    }

    #[test]
    fn evicts_least_recently_used_to_stay_within_budget() {
        let mut cache = ByteLru::new(3 * (ENTRY_OVERHEAD + 2 + 8));
        cache.insert(b"k1".to_vec(), stored(8));
        cache.insert(b"k2".to_vec(), stored(8));
        cache.insert(b"k3".to_vec(), stored(8));
        assert!(cache.get(b"k1").is_some()); // k2 is now the least recently used
        cache.insert(b"k4".to_vec(), stored(8));
        assert_eq!(cache.len(), 3);
        assert!(cache.get(b"k2").is_none());
        assert!(cache.get(b"k1").is_some());
        assert!(cache.bytes() <= cache.capacity());
    }

    #[test]
    fn replacing_and_removing_keep_the_byte_count_exact() {
        let mut cache = ByteLru::new(1 << 20);
        cache.insert(b"k".to_vec(), stored(100));
        cache.insert(b"k".to_vec(), stored(10));
        assert_eq!(cache.bytes(), ENTRY_OVERHEAD + 1 + 10);
        cache.insert(b"n".to_vec(), Cached::Stored(None));
        cache.remove(b"k");
        cache.remove(b"absent");
        assert_eq!(cache.bytes(), ENTRY_OVERHEAD + 1);
    }

    #[test]
    fn an_entry_larger_than_the_budget_is_not_kept_and_zero_turns_the_cache_off() {
        let mut cache = ByteLru::new(ENTRY_OVERHEAD + 10);
        cache.insert(b"k".to_vec(), stored(5));
        cache.insert(b"k".to_vec(), stored(1_000));
        assert!(cache.get(b"k").is_none());
        assert_eq!(cache.bytes(), 0);
        let mut off = ByteLru::new(0);
        off.insert(b"k".to_vec(), Cached::ListNext(1));
        assert_eq!(off.len(), 0);
    }
}
