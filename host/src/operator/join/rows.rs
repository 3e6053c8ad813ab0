//! One key's rows on one side of a join: their values in one byte buffer, indexed in time
//! order.
//!
//! A row costs its value's bytes and 24 bytes of index; there is no allocation per row (the
//! buffer and the index grow by doubling). Rows leave from the front, oldest first, as
//! watermarks and TTLs pass them; their bytes stay in the buffer as dead bytes until those
//! outweigh the live ones, when the live rows are copied to a fresh buffer. That keeps a
//! removal O(1) amortized and the buffer at most twice the live bytes.
//!
//! The order is by a row's `at` time (event time for the event-time joins, arrival time for
//! the regular join's TTL); rows with equal `at` keep their arrival order. Rows mostly come
//! in order, so an insert is usually a push at the back.

use std::collections::VecDeque;
use std::fmt;

use serde::de::{Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_bytes::Bytes;

/// One stored row: its times and where its value is in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Row {
    /// What the rows are ordered by.
    pub at: i64,
    /// The row's event time, [`crate::record::NO_TIMESTAMP`] when it has none.
    pub ts: i64,
    start: u32,
    len: u32,
}

/// The rows of one key and side. See the module docs.
#[derive(Debug, Default)]
pub(super) struct Rows {
    data: Vec<u8>,
    index: VecDeque<Row>,
    /// Bytes in `data` of rows no longer in `index`.
    dead: usize,
}

/// A key's rows on one side outgrew the 4 GiB a buffer's offsets address.
#[derive(Debug)]
pub(super) struct TooLarge;

impl Rows {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Row `i` in time order and its value.
    pub fn get(&self, i: usize) -> (Row, &[u8]) {
        let row = self.index[i];
        (row, self.value(&row))
    }

    fn value(&self, row: &Row) -> &[u8] {
        &self.data[row.start as usize..row.start as usize + row.len as usize]
    }

    /// The earliest `at`, if any row is here.
    pub fn first_at(&self) -> Option<i64> {
        self.index.front().map(|r| r.at)
    }

    /// The indexes of the rows with `from <= at <= to` (both inclusive, so any i64 range can
    /// be asked for).
    pub fn between(&self, from: i64, to: i64) -> std::ops::Range<usize> {
        let start = self.index.partition_point(|r| r.at < from);
        let end = self.index.partition_point(|r| r.at <= to);
        start..end.max(start)
    }

    /// The index of the first row with `at >= from` (the number of rows before it).
    pub fn first_from(&self, from: i64) -> usize {
        self.index.partition_point(|r| r.at < from)
    }

    /// Add a row after the rows with the same or an earlier `at`.
    pub fn insert(&mut self, at: i64, ts: i64, value: &[u8]) -> Result<(), TooLarge> {
        let row = self.store(at, ts, value)?;
        match self.index.back() {
            Some(last) if last.at > at => {
                let i = self.index.partition_point(|r| r.at <= at);
                self.index.insert(i, row);
            }
            _ => self.index.push_back(row),
        }
        Ok(())
    }

    /// Add a row, replacing the last one with the same `at` if there is one (a versioned
    /// table keeps one version per time); returns whether one was replaced.
    pub fn upsert(&mut self, at: i64, ts: i64, value: &[u8]) -> Result<bool, TooLarge> {
        let i = self.index.partition_point(|r| r.at <= at);
        if i > 0 && self.index[i - 1].at == at {
            let row = self.store(at, ts, value)?;
            // `store` may have compacted: read the old length after it.
            self.dead += self.index[i - 1].len as usize;
            self.index[i - 1] = row;
            return Ok(true);
        }
        self.insert(at, ts, value).map(|()| false)
    }

    /// Append `value`'s bytes to the buffer.
    fn store(&mut self, at: i64, ts: i64, value: &[u8]) -> Result<Row, TooLarge> {
        let fits = |data: &Vec<u8>| u32::try_from(data.len() + value.len()).is_ok();
        if !fits(&self.data) {
            self.compact();
            if !fits(&self.data) {
                return Err(TooLarge);
            }
        }
        if self.data.capacity() == 0 {
            // Room for a few rows at once: a key's buffer otherwise grows by small steps.
            self.data.reserve(value.len() * 4);
        }
        let start = self.data.len() as u32;
        self.data.extend_from_slice(value);
        Ok(Row { at, ts, start, len: value.len() as u32 })
    }

    /// Remove the first `n` rows.
    pub fn drop_front(&mut self, n: usize) {
        if n >= self.index.len() {
            self.clear();
            return;
        }
        for row in self.index.drain(..n) {
            self.dead += row.len as usize;
        }
        if self.dead > self.data.len() - self.dead {
            self.compact();
        }
    }

    /// Remove the leading rows whose `at` satisfies `pred` (which must hold for a prefix:
    /// true, then false); returns how many went.
    pub fn drop_while(&mut self, pred: impl Fn(i64) -> bool) -> usize {
        let n = self.index.partition_point(|r| pred(r.at));
        self.drop_front(n);
        n
    }

    pub fn clear(&mut self) {
        self.index.clear();
        self.data.clear();
        self.dead = 0;
        // A key that once held many rows should not pin their memory.
        if self.data.capacity() > 64 * 1024 {
            self.data.shrink_to_fit();
            self.index.shrink_to_fit();
        }
    }

    /// Copy the live rows into a fresh buffer, in time order.
    fn compact(&mut self) {
        let mut data = Vec::with_capacity(self.data.len() - self.dead);
        for row in self.index.iter_mut() {
            let start = data.len() as u32;
            data.extend_from_slice(&self.data[row.start as usize..row.start as usize + row.len as usize]);
            row.start = start;
        }
        self.data = data;
        self.dead = 0;
    }

    /// Add every row of `other` (a restore that finds a key in two blobs).
    pub fn extend(&mut self, other: &Rows) -> Result<(), TooLarge> {
        for i in 0..other.len() {
            let (row, value) = other.get(i);
            self.insert(row.at, row.ts, value)?;
        }
        Ok(())
    }
}

/// In a checkpoint, rows are a sequence of `(at, ts, value bytes)`, written from the buffer
/// without copies.
impl Serialize for Rows {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.index.iter().map(|r| (r.at, r.ts, Bytes::new(self.value(r)))))
    }
}

impl<'de> Deserialize<'de> for Rows {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RowsVisitor;
        impl<'de> Visitor<'de> for RowsVisitor {
            type Value = Rows;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sequence of (time, event time, value) rows")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Rows, A::Error> {
                let mut rows = Rows::default();
                while let Some((at, ts, value)) = seq.next_element::<(i64, i64, &'de Bytes)>()? {
                    rows.insert(at, ts, value)
                        .map_err(|TooLarge| A::Error::custom("a key holds over 4 GiB of rows"))?;
                }
                Ok(rows)
            }
        }
        deserializer.deserialize_seq(RowsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ats(rows: &Rows) -> Vec<(i64, Vec<u8>)> {
        (0..rows.len()).map(|i| (rows.get(i).0.at, rows.get(i).1.to_vec())).collect()
    }

    #[test]
    fn rows_stay_in_time_order_and_compact_as_they_leave() {
        let mut rows = Rows::default();
        for (at, v) in [(5, "e"), (1, "a"), (5, "f"), (3, "c"), (9, "i")] {
            rows.insert(at, at, v.as_bytes()).unwrap();
        }
        let want = |s: &[(i64, &str)]| s.iter().map(|(a, v)| (*a, v.as_bytes().to_vec())).collect::<Vec<_>>();
        assert_eq!(ats(&rows), want(&[(1, "a"), (3, "c"), (5, "e"), (5, "f"), (9, "i")]));
        assert_eq!(rows.between(3, 5), 1..4);
        assert_eq!(rows.between(6, 8), 4..4);
        assert_eq!(rows.between(i64::MIN, i64::MAX), 0..5);
        assert_eq!(rows.between(9, 2), 4..4, "an empty range stays empty");
        assert_eq!(rows.drop_while(|at| at < 5), 2);
        // Two of five one-byte rows gone: not yet more dead bytes than live ones.
        assert_eq!((rows.dead, rows.data.len()), (2, 5));
        rows.drop_front(1);
        assert_eq!((rows.dead, rows.data.len()), (0, 2), "compacted");
        assert_eq!(ats(&rows), want(&[(5, "f"), (9, "i")]));
        assert!(rows.upsert(9, 9, b"I").unwrap());
        assert!(!rows.upsert(7, 7, b"g").unwrap());
        assert_eq!(ats(&rows), want(&[(5, "f"), (7, "g"), (9, "I")]));
        let blob = rmp_serde::to_vec(&rows).unwrap();
        let back: Rows = rmp_serde::from_slice(&blob).unwrap();
        assert_eq!(ats(&back), ats(&rows));
        rows.drop_front(10);
        assert!(rows.is_empty() && rows.data.is_empty() && rows.first_at().is_none());
    }
}
