//! Writes waiting for the next flush, and reads that merge them over sled.
//!
//! Between two flushes (two checkpoint barriers) every write and deletion of an instance
//! waits here, ordered by key, so that a flush is one atomic sled batch and range reads (a
//! list, a map, due timers) can merge the buffer over sled without writing anything.

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::iter::Peekable;
use std::ops::Bound;

/// Buffered changes as `(key, stored bytes or None for a deletion)`.
pub(super) type Changes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// A buffered write: the stored bytes, or `None` for a deletion.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub value: Option<Vec<u8>>,
    /// Whether the entry is read by key (value and map entries, broadcast entries) and so
    /// worth keeping in the read cache once flushed; list entries and timers are only read
    /// by range.
    pub point: bool,
    /// The buffer's generation when it was last written (see [`WriteBuffer::seal`]).
    pub generation: u64,
}

/// Estimated bytes a buffered write costs beyond its key and value (B-tree slot, `Vec`
/// headers, allocator headers).
const PENDING_OVERHEAD: usize = 80;

#[derive(Default)]
pub(super) struct WriteBuffer {
    writes: BTreeMap<Vec<u8>, Pending>,
    bytes: usize,
    /// Writes since the last [`WriteBuffer::seal`] carry this generation.
    generation: u64,
}

impl WriteBuffer {
    pub fn get(&self, key: &[u8]) -> Option<&Pending> {
        self.writes.get(key)
    }

    pub fn put(&mut self, key: Vec<u8>, value: Option<Vec<u8>>, point: bool) {
        let key_len = key.len();
        let new = value_bytes(&value);
        match self.writes.insert(key, Pending { value, point, generation: self.generation }) {
            Some(old) => self.bytes = self.bytes - value_bytes(&old.value) + new,
            None => self.bytes += key_len + new + PENDING_OVERHEAD,
        }
    }

    /// The buffered writes with keys in `[start, end)` (`end` `None`: unbounded), in key order.
    pub fn range<'a>(&'a self, start: &[u8], end: Option<&[u8]>) -> btree_map::Range<'a, Vec<u8>, Pending> {
        let end = end.map_or(Bound::Unbounded, Bound::Excluded);
        self.writes.range::<[u8], _>((Bound::Included(start), end))
    }

    /// Removes a buffered write (not a deletion of the key: the key is no longer buffered).
    pub fn forget(&mut self, key: &[u8]) {
        if let Some((key, old)) = self.writes.remove_entry(key) {
            self.bytes -= key.len() + value_bytes(&old.value) + PENDING_OVERHEAD;
        }
    }

    /// Puts back writes that [`WriteBuffer::take`] took (a flush that failed); writes made
    /// since win.
    pub fn restore(&mut self, writes: BTreeMap<Vec<u8>, Pending>) {
        for (key, pending) in writes {
            if !self.writes.contains_key(&key) {
                self.put(key, pending.value, pending.point);
            }
        }
    }

    /// Takes every write out, leaving the buffer empty.
    pub fn take(&mut self) -> BTreeMap<Vec<u8>, Pending> {
        self.bytes = 0;
        std::mem::take(&mut self.writes)
    }

    /// Checkpoints: the writes since the last seal (the epoch a barrier closes), as `(key,
    /// stored bytes or None)`. They stay buffered, for reads, until
    /// [`WriteBuffer::forget_sealed`] with the returned generation.
    pub fn seal(&mut self) -> (u64, Changes) {
        let generation = self.generation;
        let sealed = self
            .writes
            .iter()
            .filter(|(_, p)| p.generation == generation)
            .map(|(k, p)| (k.clone(), p.value.clone()))
            .collect();
        self.generation += 1;
        (generation, sealed)
    }

    /// Removes the writes of generations up to `generation`, now in sled, and returns them
    /// (later writes of the same keys stay).
    pub fn forget_sealed(&mut self, generation: u64) -> Vec<(Vec<u8>, Pending)> {
        let keys: Vec<Vec<u8>> =
            self.writes.iter().filter(|(_, p)| p.generation <= generation).map(|(k, _)| k.clone()).collect();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some((key, pending)) = self.writes.remove_entry(&key) {
                self.bytes -= key.len() + value_bytes(&pending.value) + PENDING_OVERHEAD;
                out.push((key, pending));
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

fn value_bytes(value: &Option<Vec<u8>>) -> usize {
    value.as_ref().map_or(0, Vec::capacity)
}

/// The live entries in a key range: sled's, overridden by the buffer's writes and deletions.
pub(super) struct Merged<'a> {
    disk: Peekable<sled::Iter>,
    buffered: Peekable<btree_map::Range<'a, Vec<u8>, Pending>>,
}

impl<'a> Merged<'a> {
    pub fn new(tree: &sled::Tree, buffer: &'a WriteBuffer, start: &[u8], end: Option<&[u8]>) -> Self {
        Self::with_disk_from(tree, buffer, start, start, end)
    }

    /// Like [`Merged::new`], but reads sled only from `disk_start` on: the caller knows that
    /// sled holds nothing live before it (timers already popped, see `timers.rs`).
    pub fn with_disk_from(
        tree: &sled::Tree,
        buffer: &'a WriteBuffer,
        disk_start: &[u8],
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Self {
        let disk_start = disk_start.max(start);
        let disk = match end {
            Some(end) => tree.range::<&[u8], _>(disk_start.min(end)..end),
            None => tree.range::<&[u8], _>(disk_start..),
        };
        Self { disk: disk.peekable(), buffered: buffer.range(start, end).peekable() }
    }
}

impl Iterator for Merged<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>), sled::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let take_disk = match (self.disk.peek(), self.buffered.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) | (Some(Ok(_)), None) => true,
                (None, Some(_)) => false,
                (Some(Ok((disk_key, _))), Some((buffered_key, _))) => {
                    match disk_key.as_ref().cmp(buffered_key.as_slice()) {
                        std::cmp::Ordering::Less => true,
                        std::cmp::Ordering::Equal => {
                            // The buffered write wins: drop sled's version.
                            self.disk.next();
                            false
                        }
                        std::cmp::Ordering::Greater => false,
                    }
                }
            };
            if take_disk {
                return self.disk.next().map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())));
            }
            if let Some((key, pending)) = self.buffered.next()
                && let Some(value) = &pending.value
            {
                return Some(Ok((key.clone(), value.clone())));
            }
            // A deletion: nothing to yield, look further.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_range_overrides_and_deletes_sled_entries() -> Result<(), sled::Error> {
        let db = sled::Config::new().temporary(true).open()?;
        for k in [b"a1", b"a2", b"a3", b"b1"] {
            db.insert(k, &b"disk"[..])?;
        }
        let mut buffer = WriteBuffer::default();
        buffer.put(b"a2".to_vec(), Some(b"new".to_vec()), true);
        buffer.put(b"a3".to_vec(), None, true);
        buffer.put(b"a4".to_vec(), Some(b"mem".to_vec()), true);
        buffer.put(b"a0".to_vec(), None, true);
        let got: Vec<(Vec<u8>, Vec<u8>)> = Merged::new(&db, &buffer, b"a", Some(b"b")).collect::<Result<_, _>>()?;
        let want: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"a1".to_vec(), b"disk".to_vec()),
            (b"a2".to_vec(), b"new".to_vec()),
            (b"a4".to_vec(), b"mem".to_vec()),
        ];
        assert_eq!(got, want);
        let all = Merged::new(&db, &buffer, b"", None).count();
        assert_eq!(all, 4);
        Ok(())
    }

    #[test]
    fn buffered_bytes_follow_replacements() {
        let mut buffer = WriteBuffer::default();
        buffer.put(b"k".to_vec(), Some(vec![0; 100]), true);
        let one = buffer.bytes();
        buffer.put(b"k".to_vec(), Some(vec![0; 100]), true);
        assert_eq!(buffer.bytes(), one);
        buffer.put(b"k".to_vec(), None, true);
        assert_eq!(buffer.bytes(), one - 100);
        assert_eq!(buffer.len(), 1);
        buffer.take();
        assert_eq!((buffer.bytes(), buffer.is_empty()), (0, true));
    }
}
