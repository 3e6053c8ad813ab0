//! A join's state by key: one slot per key, found by hashing the key's bytes, and a queue of
//! slots by the time they next need attention (Flink's per-key timers).
//!
//! The queue is what keeps a watermark from scanning every key: a key is visited when its
//! earliest due time (a window's end, a row's expiry) is reached, and the join then asks
//! for its next one. Each slot keeps at most one live entry in the queue, its `due` time;
//! scheduling an earlier time pushes a new entry and leaves the old one stale, and stale
//! entries (of a later time, or of a freed and reused slot, told by its generation) are
//! skipped when they come up. A later time is not pushed: the earlier entry comes up
//! first and the join schedules again from its state.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, Hasher};

/// The keys of one join instance and their states.
pub(super) struct Keyed<T> {
    index: HashMap<Box<[u8]>, u32, KeyHash>,
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    /// (due time, slot, generation), earliest first.
    queue: BinaryHeap<Reverse<(i64, u32, u32)>>,
}

struct Slot<T> {
    key: Box<[u8]>,
    generation: u32,
    due: Option<i64>,
    state: Option<T>,
}

impl<T> Default for Keyed<T> {
    fn default() -> Self {
        Self { index: HashMap::default(), slots: Vec::new(), free: Vec::new(), queue: BinaryHeap::new() }
    }
}

impl<T> Keyed<T> {
    /// How many keys have state.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn get(&self, key: &[u8]) -> Option<u32> {
        self.index.get(key).copied()
    }

    /// The slot of `key`, made with `new` if the key has none.
    pub fn slot(&mut self, key: &[u8], new: impl FnOnce() -> T) -> u32 {
        if let Some(&slot) = self.index.get(key) {
            return slot;
        }
        let key: Box<[u8]> = key.into();
        let slot = match self.free.pop() {
            Some(slot) => {
                let s = &mut self.slots[slot as usize];
                s.key = key.clone();
                s.state = Some(new());
                slot
            }
            None => {
                let slot = u32::try_from(self.slots.len()).expect("fewer than 4 G keys per join instance");
                self.slots.push(Slot { key: key.clone(), generation: 0, due: None, state: Some(new()) });
                slot
            }
        };
        self.index.insert(key, slot);
        slot
    }

    /// The key of a slot and its state.
    ///
    /// Panics on a freed slot: slots come from [`Keyed::slot`] or [`Keyed::pop_due`] and
    /// stay valid until [`Keyed::remove`].
    pub fn parts(&mut self, slot: u32) -> (&[u8], &mut T) {
        let s = &mut self.slots[slot as usize];
        (&s.key, s.state.as_mut().expect("a live slot"))
    }

    pub fn state(&mut self, slot: u32) -> &mut T {
        self.parts(slot).1
    }

    /// When the slot is next due, if it is scheduled.
    pub fn due(&self, slot: u32) -> Option<i64> {
        self.slots[slot as usize].due
    }

    /// Have the slot come up from [`Keyed::pop_due`] once the time reaches `at`, or earlier
    /// if it already is due earlier.
    pub fn schedule(&mut self, slot: u32, at: i64) {
        let s = &mut self.slots[slot as usize];
        if s.due.is_none_or(|due| at < due) {
            s.due = Some(at);
            self.queue.push(Reverse((at, slot, s.generation)));
        }
    }

    /// A slot due at or before `time`, taken off the queue: it is no longer scheduled, so
    /// the caller schedules it again if it still has something to do.
    pub fn pop_due(&mut self, time: i64) -> Option<u32> {
        while let Some(&Reverse((at, slot, generation))) = self.queue.peek() {
            if at > time {
                return None;
            }
            self.queue.pop();
            let s = &mut self.slots[slot as usize];
            if s.generation == generation && s.due == Some(at) && s.state.is_some() {
                s.due = None;
                return Some(slot);
            }
        }
        None
    }

    /// The earliest time in the queue (possibly a stale entry's, which only makes the caller
    /// come back early once).
    pub fn next_due(&self) -> Option<i64> {
        self.queue.peek().map(|Reverse((at, ..))| *at)
    }

    /// Drop a key's state; its queue entries go stale.
    pub fn remove(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if s.state.take().is_some() {
            self.index.remove(&s.key);
            s.key = Box::default();
            s.generation = s.generation.wrapping_add(1);
            s.due = None;
            self.free.push(slot);
        }
    }

    /// Every key and its state, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &T)> {
        self.slots.iter().filter_map(|s| s.state.as_ref().map(|state| (&*s.key, state)))
    }

    /// The slots of every key.
    pub fn slots(&self) -> Vec<u32> {
        self.index.values().copied().collect()
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

/// Hashes a key's bytes with xxh3, seeded. The seed matters: key groups are `xxh3(key) %
/// max_parallelism` unseeded, so an instance's keys share low bits of that hash, and a map
/// bucketed by those bits would crowd into a fraction of its buckets.
#[derive(Clone, Copy, Default)]
pub(super) struct KeyHash;

const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

impl BuildHasher for KeyHash {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(SEED)
    }
}

pub(super) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }

    /// A slice's length prefix: the hash of its bytes covers it.
    fn write_usize(&mut self, _: usize) {}

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_gives_each_due_key_once_and_skips_stale_entries() {
        let mut keys: Keyed<u32> = Keyed::default();
        let a = keys.slot(b"a", || 1);
        let b = keys.slot(b"b", || 2);
        assert_eq!(keys.slot(b"a", || 99), a);
        keys.schedule(a, 10);
        keys.schedule(a, 5); // earlier: the entry at 10 goes stale
        keys.schedule(a, 7); // later than 5: nothing to do
        keys.schedule(b, 6);
        assert_eq!(keys.next_due(), Some(5));
        assert_eq!(keys.pop_due(4), None);
        assert_eq!(keys.pop_due(6), Some(a));
        assert_eq!(keys.pop_due(6), Some(b));
        assert_eq!(keys.pop_due(100), None, "a's entry at 10 is stale");
        // A freed slot is reused for another key; the old key's entries do not fire it.
        keys.schedule(b, 20);
        keys.remove(b);
        let c = keys.slot(b"c", || 3);
        assert_eq!(c, b);
        keys.schedule(c, 30);
        assert_eq!(keys.pop_due(25), None);
        assert_eq!(keys.pop_due(30), Some(c));
        assert_eq!((keys.len(), keys.get(b"b"), *keys.state(c)), (2, None, 3));
        let mut all: Vec<_> = keys.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
        all.sort();
        assert_eq!(all, [(b"a".to_vec(), 1), (b"c".to_vec(), 3)]);
    }
}
