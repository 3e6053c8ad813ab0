//! A join's state by key: one slot per key, found by hashing the key's bytes, and a queue of
//! slots by the time they next need attention (Flink's per-key timers).
//!
//! The queue is what keeps a watermark from scanning every key: a key is visited when its
//! earliest due time (a window's end, a row's expiry) is reached, and the join then asks
//! for its next one. Due times are buckets of a `BTreeMap`: keys that share a time (all
//! keys' tumbling window ends) share a bucket, so scheduling them is a push and firing them
//! a walk over one vector. Each slot has at most one live entry, at its `due` time;
//! scheduling an earlier time adds an entry and leaves the old one stale, and stale
//! entries (of another time, or of a slot since given to another key, told by its
//! generation) are skipped when they come up. A later time is not added: the earlier entry
//! comes up first and the join schedules again from its state.
//!
//! A key whose state empties (its window fired, its rows expired) is **idle**: it keeps its
//! slot and its place in the map, and the state's buffers keep their memory, because keys
//! mostly come back (the next window of the same user). Idle keys leave the map in one
//! sweep when they outnumber twice the most keys live at once since the last sweep (a key
//! space a little larger than what is live at once stays), so a stream of ever-new keys
//! does not grow the map past three times its peak; their slots, buffers included, then go
//! to new keys. So in the steady state a key costs no allocation and no map insert or
//! remove, even when all keys' windows fire at once.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash, Hasher};

/// The keys of one join instance and their states.
pub(super) struct Keyed<T> {
    index: HashMap<KeyBytes, u32, KeyHash>,
    /// Per slot: what the queue and the map need, kept dense (16 bytes a slot) so that
    /// checking a slot does not pull its state into the cache.
    meta: Vec<Meta>,
    states: Vec<T>,
    keys: Vec<Vec<u8>>,
    /// Slots without a key.
    free: Vec<u32>,
    /// Slots that went idle since the last sweep (some may be live again, some listed
    /// twice).
    idle: Vec<u32>,
    live: usize,
    /// The most keys live at once since the last sweep.
    peak: usize,
    /// Due time -> (slot, generation).
    queue: BTreeMap<i64, Vec<(u32, u32)>>,
    /// The bucket being walked by [`Keyed::pop_due`], of time `ready_at`.
    ready: Vec<(u32, u32)>,
    ready_at: i64,
    /// Emptied buckets, to reuse.
    spare: Vec<Vec<(u32, u32)>>,
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    /// When the slot is due, [`NOT_DUE`] if it is not scheduled.
    due: i64,
    generation: u32,
    status: Status,
}

/// No due time (no time is `i64::MIN`: that is "no timestamp").
const NOT_DUE: i64 = i64::MIN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Live,
    Idle,
    Free,
}

/// Idle keys are swept once there are at least this many and more than twice the most keys
/// that were live at once since the last sweep.
const SWEEP_AT: usize = 1024;

impl<T: Default> Default for Keyed<T> {
    fn default() -> Self {
        Self {
            index: HashMap::default(),
            meta: Vec::new(),
            states: Vec::new(),
            keys: Vec::new(),
            free: Vec::new(),
            idle: Vec::new(),
            live: 0,
            peak: 0,
            queue: BTreeMap::new(),
            ready: Vec::new(),
            ready_at: i64::MIN,
            spare: Vec::new(),
        }
    }
}

impl<T: Default> Keyed<T> {
    /// How many keys have state.
    pub fn len(&self) -> usize {
        self.live
    }

    /// The slot of `key` if it has state.
    pub fn get(&self, key: &[u8]) -> Option<u32> {
        self.index.get(key).copied().filter(|&slot| self.meta[slot as usize].status == Status::Live)
    }

    /// The slot of `key`; a key without state gets one, an empty state the join emptied
    /// (or a new one), which `init` sets up.
    pub fn slot(&mut self, key: &[u8], init: impl FnOnce(&mut T)) -> u32 {
        if let Some(&slot) = self.index.get(key) {
            let meta = &mut self.meta[slot as usize];
            if meta.status == Status::Idle {
                meta.status = Status::Live;
                self.live += 1;
                self.peak = self.peak.max(self.live);
                init(&mut self.states[slot as usize]);
            }
            return slot;
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                // 4 G keys would take hundreds of GB before this.
                let slot = u32::try_from(self.meta.len()).expect("fewer than 4 G keys per join instance");
                self.meta.push(Meta { due: NOT_DUE, generation: 0, status: Status::Free });
                self.states.push(T::default());
                self.keys.push(Vec::new());
                slot
            }
        };
        let i = slot as usize;
        self.keys[i].clear();
        self.keys[i].extend_from_slice(key);
        self.meta[i].status = Status::Live;
        init(&mut self.states[i]);
        self.live += 1;
        self.peak = self.peak.max(self.live);
        self.index.insert(KeyBytes::new(key), slot);
        slot
    }

    /// The key of a live slot and its state (slots come from [`Keyed::slot`] or
    /// [`Keyed::pop_due`] and stay live until [`Keyed::remove`]).
    pub fn parts(&mut self, slot: u32) -> (&[u8], &mut T) {
        debug_assert_eq!(self.meta[slot as usize].status, Status::Live);
        (&self.keys[slot as usize], &mut self.states[slot as usize])
    }

    pub fn state(&mut self, slot: u32) -> &mut T {
        &mut self.states[slot as usize]
    }

    /// When the slot is next due, if it is scheduled.
    pub fn due(&self, slot: u32) -> Option<i64> {
        Some(self.meta[slot as usize].due).filter(|&due| due != NOT_DUE)
    }

    /// Have the slot come up from [`Keyed::pop_due`] once the time reaches `at`, or earlier
    /// if it already is due earlier.
    pub fn schedule(&mut self, slot: u32, at: i64) {
        let at = at.max(NOT_DUE + 1);
        let meta = &mut self.meta[slot as usize];
        if meta.due == NOT_DUE || at < meta.due {
            meta.due = at;
            let spare = &mut self.spare;
            self.queue.entry(at).or_insert_with(|| spare.pop().unwrap_or_default()).push((slot, meta.generation));
        }
    }

    /// A slot due at or before `time`, taken off the queue: it is no longer scheduled, so
    /// the caller schedules it again if it still has something to do. Call until `None`.
    pub fn pop_due(&mut self, time: i64) -> Option<u32> {
        loop {
            while let Some((slot, generation)) = self.ready.pop() {
                let meta = &mut self.meta[slot as usize];
                if meta.generation == generation && meta.due == self.ready_at && meta.status == Status::Live {
                    meta.due = NOT_DUE;
                    return Some(slot);
                }
            }
            let bucket = self.queue.first_entry().filter(|e| *e.key() <= time)?;
            self.ready_at = *bucket.key();
            let walked = std::mem::replace(&mut self.ready, bucket.remove());
            if self.spare.len() < 64 {
                self.spare.push(walked);
            }
        }
    }

    /// The earliest time in the queue (possibly a stale entry's, which only makes the caller
    /// come back early once).
    pub fn next_due(&self) -> Option<i64> {
        self.queue.first_key_value().map(|(at, _)| *at)
    }

    /// The join emptied this key's state: the key goes idle (see the module docs).
    pub fn remove(&mut self, slot: u32) {
        let meta = &mut self.meta[slot as usize];
        if meta.status != Status::Live {
            return;
        }
        meta.status = Status::Idle;
        meta.due = NOT_DUE;
        self.live -= 1;
        self.idle.push(slot);
        // Keys in the map without state; the list may also hold keys live again, or one
        // key twice.
        let idle = self.index.len() - self.live;
        if idle >= SWEEP_AT && idle > 2 * self.peak {
            self.sweep();
        } else if self.idle.len() > 2 * self.index.len() + SWEEP_AT {
            let meta = &self.meta;
            self.idle.retain(|&slot| meta[slot as usize].status == Status::Idle);
            self.idle.sort_unstable();
            self.idle.dedup();
        }
    }

    /// Take the idle keys out of the map; their slots (and buffers) go to new keys.
    fn sweep(&mut self) {
        self.peak = self.live;
        for slot in self.idle.drain(..) {
            let meta = &mut self.meta[slot as usize];
            if meta.status == Status::Idle {
                self.index.remove(self.keys[slot as usize].as_slice());
                meta.status = Status::Free;
                meta.generation = meta.generation.wrapping_add(1);
                self.free.push(slot);
            }
        }
    }

    /// Every key with state and its state, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &T)> {
        self.slots().into_iter().map(|slot| (self.keys[slot as usize].as_slice(), &self.states[slot as usize]))
    }

    /// The slots of every key with state.
    pub fn slots(&self) -> Vec<u32> {
        (0..self.meta.len() as u32).filter(|&i| self.meta[i as usize].status == Status::Live).collect()
    }

    /// Drop every key, state and timer.
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

/// A key's bytes in the map: inline up to 22 bytes (MessagePack numbers, short strings), so
/// that comparing a key does not read another cache line; boxed beyond.
#[derive(Clone)]
enum KeyBytes {
    Inline { len: u8, bytes: [u8; INLINE] },
    Boxed(Box<[u8]>),
}

const INLINE: usize = 22;

impl KeyBytes {
    fn new(key: &[u8]) -> Self {
        if key.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..key.len()].copy_from_slice(key);
            KeyBytes::Inline { len: key.len() as u8, bytes }
        } else {
            KeyBytes::Boxed(key.into())
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            KeyBytes::Inline { len, bytes } => &bytes[..usize::from(*len)],
            KeyBytes::Boxed(b) => b,
        }
    }
}

impl Borrow<[u8]> for KeyBytes {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

/// As the bytes, so that a map of `KeyBytes` can be searched with a `&[u8]`.
impl Hash for KeyBytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl PartialEq for KeyBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for KeyBytes {}

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
        let a = keys.slot(b"a", |s| *s = 1);
        let b = keys.slot(b"b", |s| *s = 2);
        assert_eq!(keys.slot(b"a", |s| *s = 99), a, "init only for a key without state");
        keys.schedule(a, 10);
        keys.schedule(a, 5); // earlier: the entry at 10 goes stale
        keys.schedule(a, 7); // later than 5: nothing to do
        keys.schedule(b, 5);
        assert_eq!(keys.next_due(), Some(5));
        assert_eq!(keys.pop_due(4), None);
        let mut due = [keys.pop_due(6).unwrap(), keys.pop_due(6).unwrap()];
        due.sort();
        assert_eq!(due, [a, b]);
        assert_eq!(keys.pop_due(100), None, "a's entry at 10 is stale");
        assert_eq!((keys.len(), *keys.state(a)), (2, 1));
        // An idle key keeps its slot and state for when it comes back; its old entries
        // stay stale.
        keys.schedule(b, 20);
        keys.remove(b);
        assert_eq!((keys.len(), keys.get(b"b")), (1, None));
        assert_eq!(keys.pop_due(25), None);
        assert_eq!(keys.slot(b"b", |s| *s += 1), b);
        assert_eq!(*keys.state(b), 3);
        let all: Vec<_> = keys.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
        assert_eq!(all, [(b"a".to_vec(), 1), (b"b".to_vec(), 3)]);
    }

    #[test]
    fn idle_keys_are_swept_once_they_outnumber_twice_the_peak_of_live_ones() {
        let mut keys: Keyed<u64> = Keyed::default();
        let live = keys.slot(b"live", |_| {});
        for i in 0..SWEEP_AT as u64 {
            let slot = keys.slot(&i.to_le_bytes(), |s| *s = i);
            keys.schedule(slot, 1);
            keys.remove(slot);
        }
        assert_eq!((keys.len(), keys.index.len(), keys.free.len()), (1, 1, SWEEP_AT));
        // A new key takes a swept slot; the old key's entry in the queue does not fire it.
        let new = keys.slot(b"new", |s| *s += 1);
        assert_ne!(new, live);
        assert_eq!(keys.pop_due(1), None);
        assert_eq!(keys.len(), 2);
    }
}
