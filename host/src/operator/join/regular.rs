//! The regular join: Flink SQL's unbounded inner equi-join (`SELECT .. FROM a JOIN b ON
//! a.k = b.k` on two append-only streams).
//!
//! Every left row meets every right row of its key, whenever either came: a row is stored,
//! and meets the other side's stored rows when it arrives, so each pair comes out once,
//! when its second row does. Event time plays no part: nothing is late, watermarks pass
//! through, and an output row's event time is `max(L.ts, R.ts)` when both rows have one,
//! none otherwise (downstream of a regular join, rows may be behind the watermark, as in
//! Flink, where its output loses its time attribute).
//!
//! **State** grows with the input unless it has a **TTL** (Flink's `table.exec.state.ttl`):
//! a row then expires `ttl` ms of processing time after it arrived, and an expired row
//! meets nothing more. Expired rows go lazily (a key's expired rows when a row of the key
//! arrives) and on a processing-time timer at the earliest expiry
//! ([`Operator::next_processing_timer`]), so a key that stops receiving rows does not keep
//! them. Arrival times are wall-clock ms and are checkpointed: after a restore a row
//! expires when it would have.

use serde_bytes::Bytes;

use super::keyed::Keyed;
use super::rows::Rows;
use super::{JoinConfigError, JoinSides, JoinStats, Pairs, Side, blob, row_key, too_large};
use crate::record::{Batch, NO_TIMESTAMP};
use crate::task::{DeadLetters, Operator, OperatorError};

const KIND: &str = "regular join";

/// How a [`RegularJoin`] keeps its rows.
#[derive(Debug, Clone)]
pub struct RegularJoinConfig {
    pub sides: JoinSides,
    /// Processing time (ms) a row is kept after it arrived; `None` keeps rows forever.
    pub ttl: Option<i64>,
    /// The wall clock (epoch ms): [`crate::time::now_ms`], or a test's.
    pub clock: fn() -> i64,
}

impl RegularJoinConfig {
    /// A join that keeps its rows forever, on the system clock.
    pub fn new(sides: JoinSides) -> Self {
        Self { sides, ttl: None, clock: crate::time::now_ms }
    }

    /// Rows expire `ttl_ms` after they arrived.
    pub fn with_ttl(mut self, ttl_ms: i64) -> Self {
        self.ttl = Some(ttl_ms);
        self
    }
}

/// The regular join operator; see the module docs.
pub struct RegularJoin {
    name: String,
    ttl: Option<i64>,
    clock: fn() -> i64,
    pairs: Pairs,
    /// Each key's rows per side, ordered by arrival time.
    keys: Keyed<Buffers>,
    stats: JoinStats,
}

#[derive(Default)]
struct Buffers {
    left: Rows,
    right: Rows,
}

impl RegularJoin {
    pub fn new(name: String, config: RegularJoinConfig) -> Result<Self, JoinConfigError> {
        if let Some(ttl) = config.ttl.filter(|t| *t < 1) {
            return Err(JoinConfigError::Ttl(ttl));
        }
        Ok(Self {
            name,
            ttl: config.ttl,
            clock: config.clock,
            pairs: Pairs::new(config.sides)?,
            keys: Keyed::default(),
            stats: JoinStats::default(),
        })
    }

    pub fn stats(&self) -> JoinStats {
        JoinStats { keys: self.keys.len(), ..self.stats }
    }

    /// Rows held, both sides.
    pub fn state_rows(&self) -> usize {
        self.stats.state_rows
    }

    /// Pairs emitted.
    pub fn matches(&self) -> u64 {
        self.stats.matches
    }

    /// Drop a key's rows expired at `now`; when the next one expires.
    fn expire(ttl: i64, b: &mut Buffers, now: i64) -> (usize, Option<i64>) {
        let expired = |arrived: i64| arrived.saturating_add(ttl) <= now;
        let gone = b.left.drop_while(expired) + b.right.drop_while(expired);
        let next = b.left.first_at().into_iter().chain(b.right.first_at()).min().map(|a| a.saturating_add(ttl));
        (gone, next)
    }

    fn on_rows(&mut self, side: Side, input: &Batch, out: &mut Batch) -> Result<(), OperatorError> {
        let now = (self.clock)();
        for i in 0..input.len() {
            let key = row_key(&self.name, &self.pairs, side, input, i)?;
            let ts = input.timestamp(i);
            let value = input.value(i);
            let slot = self.keys.slot(key, |_| {});
            let (key, b) = self.keys.parts(slot);
            if let Some(ttl) = self.ttl {
                self.stats.state_rows -= Self::expire(ttl, b, now).0;
            }
            let (mine, other) = match side {
                Side::Left => (&mut b.left, &b.right),
                Side::Right => (&mut b.right, &b.left),
            };
            self.stats.matches += other.len() as u64;
            for j in 0..other.len() {
                let (row, other_value) = other.get(j);
                let ts = ts.filter(|_| row.ts != NO_TIMESTAMP).map(|t| t.max(row.ts));
                self.pairs.emit_from(out, side, key, ts, value, other_value);
            }
            mine.insert(now, ts.unwrap_or(NO_TIMESTAMP), value)
                .map_err(|_| too_large(&self.name, self.pairs.name(side)))?;
            self.stats.state_rows += 1;
            if let Some(ttl) = self.ttl {
                self.keys.schedule(slot, now.saturating_add(ttl));
            }
        }
        Ok(())
    }
}

impl Operator for RegularJoin {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, input: Batch, out: &mut Batch, _dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.on_rows(Side::Left, &input, out)
    }

    fn process_second(&mut self, input: Batch, out: &mut Batch, _dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.on_rows(Side::Right, &input, out)
    }

    fn next_processing_timer(&self) -> Option<i64> {
        self.ttl.and_then(|_| self.keys.next_due())
    }

    fn on_processing_time(&mut self, now: i64, _out: &mut Batch, _dead: &mut DeadLetters) -> Result<(), OperatorError> {
        let Some(ttl) = self.ttl else { return Ok(()) };
        while let Some(slot) = self.keys.pop_due(now) {
            let (gone, next) = Self::expire(ttl, self.keys.state(slot), now);
            self.stats.state_rows -= gone;
            match next {
                Some(at) => self.keys.schedule(slot, at),
                None => self.keys.remove(slot),
            }
        }
        Ok(())
    }

    fn snapshot(&mut self, _id: u64) -> Result<Option<Vec<u8>>, OperatorError> {
        let keys = self.keys.iter().map(|(k, b)| (Bytes::new(k), &b.left, &b.right)).collect();
        // A regular join has no event time of its own.
        blob::write(&self.name, &blob::BlobRef { kind: KIND, watermark: i64::MIN, keys })
    }

    fn restore(&mut self, blobs: &[&[u8]], owns: &dyn Fn(&[u8]) -> bool) -> Result<(), OperatorError> {
        for bytes in blobs {
            let snap: blob::Blob<(&Bytes, Rows, Rows)> = blob::read(&self.name, KIND, bytes)?;
            for (key, left, right) in snap.keys.into_iter().filter(|e| owns(e.0)) {
                let slot = self.keys.slot(key, |_| {});
                let b = self.keys.state(slot);
                b.left.extend(&left).map_err(|_| too_large(&self.name, &self.pairs.sides.left))?;
                b.right.extend(&right).map_err(|_| too_large(&self.name, &self.pairs.sides.right))?;
                self.stats.state_rows += left.len() + right.len();
            }
        }
        if let Some(ttl) = self.ttl {
            for slot in self.keys.slots() {
                let b = self.keys.state(slot);
                if let Some(first) = b.left.first_at().into_iter().chain(b.right.first_at()).min() {
                    self.keys.schedule(slot, first.saturating_add(ttl));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::super::testing::{is, step};
    use super::*;

    #[test]
    fn every_left_row_meets_every_right_row_of_its_key_once() {
        let mut op = RegularJoin::new("join".into(), RegularJoinConfig::new(JoinSides::new("l", "r"))).unwrap();
        let (out, _) = step(&mut op, &[("a", Some(5), "1"), ("b", None, "2")], &[("a", Some(3), r#""x""#)], None);
        assert_eq!(out, [r#"a @ 5: {"l":1,"r":"x"}"#]);
        // Event time plays no part: a row far behind the watermark still joins; the pair's
        // time is the later of both, or none when one has none.
        let (out, late) = step(&mut op, &[("a", Some(1), "3")], &[("b", Some(9), r#""y""#)], Some(100));
        assert!(late.is_empty());
        assert_eq!(out, [r#"a @ 3: {"l":3,"r":"x"}"#, r#"b @ -: {"l":2,"r":"y"}"#]);
        let (out, _) = step(&mut op, &[], &[("a", None, r#""z""#)], None);
        assert_eq!(out, [r#"a @ -: {"l":1,"r":"z"}"#, r#"a @ -: {"l":3,"r":"z"}"#]);
        assert_eq!((op.matches(), op.state_rows()), (5, 6));
        assert_eq!(op.next_processing_timer(), None, "no TTL, no timer");
    }

    static NOW: AtomicI64 = AtomicI64::new(0);
    fn clock() -> i64 {
        NOW.load(Ordering::SeqCst)
    }

    fn with_ttl(ttl: i64) -> RegularJoin {
        let config = RegularJoinConfig { clock, ..RegularJoinConfig::new(JoinSides::new("l", "r")) }.with_ttl(ttl);
        RegularJoin::new("join".into(), config).unwrap()
    }

    #[test]
    fn rows_expire_after_the_ttl_lazily_and_on_the_timer_and_survive_a_restore() {
        let mut op = with_ttl(100);
        NOW.store(1_000, Ordering::SeqCst);
        step(&mut op, &[("a", None, "1"), ("b", None, "2")], &[], None);
        assert_eq!(op.next_processing_timer(), Some(1_100));
        NOW.store(1_050, Ordering::SeqCst);
        step(&mut op, &[("a", None, "3")], &[], None);
        // At 1_099 the first rows are still live; at 1_100 they have expired (arrival + TTL
        // <= now), lazily on arrival of a row of their key: the right row meets only 3.
        NOW.store(1_099, Ordering::SeqCst);
        let (out, _) = step(&mut op, &[], &[("b", None, r#""x""#)], None);
        assert_eq!(out, [r#"b @ -: {"l":2,"r":"x"}"#]);
        NOW.store(1_100, Ordering::SeqCst);
        let (out, _) = step(&mut op, &[], &[("a", None, r#""y""#)], None);
        assert_eq!(out, [r#"a @ -: {"l":3,"r":"y"}"#]);
        // b's left row 2 expired too, but only the timer removes it: b got no row since.
        assert_eq!(op.state_rows(), 4);
        let (mut out, mut dead) = (Batch::new(), DeadLetters::default());
        op.on_processing_time(1_100, &mut out, &mut dead).unwrap();
        assert_eq!(op.state_rows(), 3, "a: 3 (arrived at 1_050) and y (1_100); b: x (1_099)");
        // A snapshot keeps arrival times: restored into two instances, the rows expire when
        // they would have.
        let blob = op.snapshot(1).unwrap().unwrap();
        let (mut only_a, mut only_b) = (with_ttl(100), with_ttl(100));
        only_a.restore(&[&blob], &is("a")).unwrap();
        only_b.restore(&[&blob], &|k| !is("a")(k)).unwrap();
        assert_eq!((only_a.state_rows(), only_b.state_rows()), (2, 1));
        assert_eq!((only_a.next_processing_timer(), only_b.next_processing_timer()), (Some(1_150), Some(1_199)));
        only_a.on_processing_time(1_150, &mut out, &mut dead).unwrap();
        assert_eq!(only_a.state_rows(), 1);
        only_a.on_processing_time(1_200, &mut out, &mut dead).unwrap();
        only_b.on_processing_time(1_200, &mut out, &mut dead).unwrap();
        assert_eq!((only_a.state_rows(), only_b.state_rows(), only_a.next_processing_timer()), (0, 0, None));
        assert!(out.is_empty());
        assert!(RegularJoin::new("j".into(), RegularJoinConfig::new(JoinSides::new("l", "r")).with_ttl(0)).is_err());
    }
}
