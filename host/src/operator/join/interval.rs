//! The interval join: Flink's `KeyedStream.intervalJoin(other).between(lower, upper)`.
//!
//! A left row L and a right row R of the same key match when
//! `L.ts + lower <= R.ts <= L.ts + upper` (both bounds inclusive, as Flink's default; `lower`
//! and `upper` are signed milliseconds). Each row is buffered by key and side, probed
//! against the other side's buffer when it arrives, so a pair comes out when its second row
//! does, with event time `max(L.ts, R.ts)`.
//!
//! **Late rows and cleanup.** A row is late when its event time is below the current
//! watermark (Flink's `isLate`: `ts < watermark`), and goes to the late output. So a row
//! still to come has `ts >= watermark`, and:
//! - a buffered left row can still match one when `L.ts + upper >= watermark`: it is dropped
//!   once the watermark passes `L.ts + upper`;
//! - a buffered right row when `R.ts - lower >= watermark`: dropped once the watermark passes
//!   `R.ts - lower`.
//!
//! Flink drops at the watermark reaching `ts + max(upper, 0)` (left) and `ts + max(-lower,
//! 0)` (right). Reaching, not passing: a row at exactly the watermark is not late yet can
//! no longer meet a partner at that bound, so Flink misses that pair; here it is kept one
//! millisecond longer and the pair comes out. The `max(.., 0)` keeps rows Flink no longer
//! needs (with a negative `upper` a left row is past its last possible partner before its
//! own time); here they go as soon as they cannot match, and a row that cannot match any
//! row still to come is not stored at all (it has met the buffered ones).
//!
//! Each key is in the cleanup queue at the earliest time one of its rows expires, so a
//! watermark visits only keys with expired rows. At the final watermark everything goes.

use super::keyed::Keyed;
use super::rows::Rows;
use super::{JoinConfigError, JoinSides, JoinStats, Pairs, Side, blob, missing_timestamp, row_key, too_large};
use crate::record::Batch;
use crate::task::{DeadLetter, DeadLetters, LATE, Operator, OperatorError};
use crate::time::END_OF_TIME;

const KIND: &str = "interval join";

/// How an [`IntervalJoin`] matches: a left row L meets right rows R of its key with
/// `L.ts + lower <= R.ts <= L.ts + upper`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntervalJoinConfig {
    pub sides: JoinSides,
    /// Milliseconds, may be negative; at most `upper`.
    pub lower: i64,
    /// Milliseconds, may be negative.
    pub upper: i64,
}

/// The interval join operator; see the module docs.
pub struct IntervalJoin {
    name: String,
    bounds: Bounds,
    pairs: Pairs,
    keys: Keyed<Buffers>,
    watermark: i64,
    stats: JoinStats,
}

#[derive(Debug, Clone, Copy)]
struct Bounds {
    lower: i64,
    upper: i64,
}

impl Bounds {
    /// The other side's event times a row of `side` at `ts` meets, both inclusive.
    fn partners(self, side: Side, ts: i64) -> (i64, i64) {
        match side {
            Side::Left => (ts.saturating_add(self.lower), ts.saturating_add(self.upper)),
            Side::Right => (ts.saturating_sub(self.upper), ts.saturating_sub(self.lower)),
        }
    }

    /// The last event time a row of `side` at `ts` can still meet a row to come (see the
    /// module docs): it is dropped when the watermark passes it.
    fn last_useful(self, side: Side, ts: i64) -> i64 {
        match side {
            Side::Left => ts.saturating_add(self.upper),
            Side::Right => ts.saturating_sub(self.lower),
        }
    }

    /// When a key is next due for cleanup: the first watermark past one of its rows.
    fn next_cleanup(self, b: &Buffers) -> Option<i64> {
        let left = b.left.first_at().map(|ts| self.last_useful(Side::Left, ts));
        let right = b.right.first_at().map(|ts| self.last_useful(Side::Right, ts));
        left.into_iter().chain(right).min().map(|t| t.saturating_add(1))
    }
}

/// A key's rows of both sides, ordered by event time.
#[derive(Default)]
struct Buffers {
    left: Rows,
    right: Rows,
}

impl IntervalJoin {
    pub fn new(name: String, config: IntervalJoinConfig) -> Result<Self, JoinConfigError> {
        let IntervalJoinConfig { sides, lower, upper } = config;
        if lower > upper {
            return Err(JoinConfigError::Interval { lower, upper });
        }
        Ok(Self {
            name,
            bounds: Bounds { lower, upper },
            pairs: Pairs::new(sides)?,
            keys: Keyed::default(),
            watermark: i64::MIN,
            stats: JoinStats::default(),
        })
    }

    pub fn stats(&self) -> JoinStats {
        JoinStats { keys: self.keys.len(), ..self.stats }
    }

    /// Rows buffered, both sides.
    pub fn state_rows(&self) -> usize {
        self.stats.state_rows
    }

    /// Pairs emitted.
    pub fn matches(&self) -> u64 {
        self.stats.matches
    }

    fn on_rows(
        &mut self,
        side: Side,
        input: &Batch,
        out: &mut Batch,
        dead: &mut DeadLetters,
    ) -> Result<(), OperatorError> {
        for i in 0..input.len() {
            let key = row_key(&self.name, &self.pairs, side, input, i)?;
            let Some(ts) = input.timestamp(i) else {
                dead.push(missing_timestamp(&self.name, "an interval join", input, i));
                continue;
            };
            if self.watermark != i64::MIN && ts < self.watermark {
                let message = format!(
                    "late row of `{}`: event time {ts} is before the watermark {}, and the rows it could \
                     have met may be gone",
                    self.pairs.name(side),
                    self.watermark
                );
                dead.push(DeadLetter::of_row(&self.name, LATE, message, input, i));
                self.stats.late += 1;
                continue;
            }
            let (from, to) = self.bounds.partners(side, ts);
            let last_useful = self.bounds.last_useful(side, ts);
            let keep = last_useful >= self.watermark;
            let slot = match self.keys.get(key) {
                Some(slot) => slot,
                // Nothing to meet and nothing to wait for.
                None if !keep => continue,
                None => self.keys.slot(key, |_| {}),
            };
            let value = input.value(i);
            let (key, buffers) = self.keys.parts(slot);
            let (mine, other) = match side {
                Side::Left => (&mut buffers.left, &buffers.right),
                Side::Right => (&mut buffers.right, &buffers.left),
            };
            let range = other.between(from, to);
            self.stats.matches += range.len() as u64;
            for j in range {
                let (row, other_value) = other.get(j);
                self.pairs.emit_from(out, side, key, Some(ts.max(row.at)), value, other_value);
            }
            if keep {
                mine.insert(ts, ts, value).map_err(|_| too_large(&self.name, self.pairs.name(side)))?;
                self.stats.state_rows += 1;
                self.keys.schedule(slot, last_useful.saturating_add(1));
            }
        }
        Ok(())
    }
}

impl Operator for IntervalJoin {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.on_rows(Side::Left, &input, out, dead)
    }

    fn process_second(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.on_rows(Side::Right, &input, out, dead)
    }

    fn on_watermark(
        &mut self,
        watermark: i64,
        _out: &mut Batch,
        _dead: &mut DeadLetters,
    ) -> Result<Option<i64>, OperatorError> {
        if watermark <= self.watermark {
            return Ok(Some(watermark));
        }
        self.watermark = watermark;
        if watermark == END_OF_TIME {
            // Nothing comes after the final watermark.
            self.keys.clear();
            self.stats.state_rows = 0;
            return Ok(Some(watermark));
        }
        let bounds = self.bounds;
        while let Some(slot) = self.keys.pop_due(watermark) {
            let b = self.keys.state(slot);
            let gone = b.left.drop_while(|ts| bounds.last_useful(Side::Left, ts) < watermark)
                + b.right.drop_while(|ts| bounds.last_useful(Side::Right, ts) < watermark);
            self.stats.state_rows -= gone;
            match bounds.next_cleanup(b) {
                Some(due) => self.keys.schedule(slot, due),
                None => self.keys.remove(slot),
            }
        }
        Ok(Some(watermark))
    }

    fn snapshot(&mut self, _id: u64) -> Result<Option<Vec<u8>>, OperatorError> {
        let keys = self.keys.iter().map(|(k, b)| (serde_bytes::Bytes::new(k), &b.left, &b.right)).collect();
        blob::write(&self.name, &blob::BlobRef { kind: KIND, watermark: self.watermark, keys })
    }

    fn restore(&mut self, blobs: &[&[u8]], owns: &dyn Fn(&[u8]) -> bool) -> Result<(), OperatorError> {
        for bytes in blobs {
            let snap: blob::Blob<(&serde_bytes::Bytes, Rows, Rows)> = blob::read(&self.name, KIND, bytes)?;
            // Every instance had the same watermark or a lower one; event time only grows.
            self.watermark = self.watermark.max(snap.watermark);
            for (key, left, right) in snap.keys.into_iter().filter(|e| owns(e.0)) {
                let slot = self.keys.slot(key, |_| {});
                let b = self.keys.state(slot);
                b.left.extend(&left).map_err(|_| too_large(&self.name, &self.pairs.sides.left))?;
                b.right.extend(&right).map_err(|_| too_large(&self.name, &self.pairs.sides.right))?;
                self.stats.state_rows += left.len() + right.len();
            }
        }
        // Cleanup times follow from the rows.
        for slot in self.keys.slots() {
            let b = self.keys.state(slot);
            if let Some(due) = self.bounds.next_cleanup(b) {
                self.keys.schedule(slot, due);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{is, step};
    use super::*;

    fn join(lower: i64, upper: i64) -> IntervalJoin {
        IntervalJoin::new("join".into(), IntervalJoinConfig { sides: JoinSides::new("l", "r"), lower, upper }).unwrap()
    }

    #[test]
    fn pairs_within_the_bounds_match_whichever_side_comes_first() {
        let mut op = join(-5, 10);
        // Out of order on both sides. Left a@20 meets right a@15..=30.
        let (out, _) = step(&mut op, &[("a", Some(20), "1"), ("b", Some(100), "2")], &[], None);
        assert!(out.is_empty());
        let (out, _) = step(
            &mut op,
            &[],
            &[
                ("a", Some(30), r#""upper""#),  // 20 + 10: exactly the upper bound, matches
                ("a", Some(15), r#""lower""#),  // 20 - 5: exactly the lower bound, matches
                ("a", Some(31), r#""past""#),   // one past: no
                ("a", Some(14), r#""before""#), // one before: no
                ("b", Some(100), r#""b""#),
            ],
            None,
        );
        assert_eq!(
            out,
            [r#"a @ 30: {"l":1,"r":"upper"}"#, r#"a @ 20: {"l":1,"r":"lower"}"#, r#"b @ 100: {"l":2,"r":"b"}"#]
        );
        // A left row arriving after the right ones meets those in its interval, in time order.
        let (out, _) = step(&mut op, &[("a", Some(24), "3"), ("c", Some(24), "4")], &[], None);
        // a@24 meets rights in [19, 34]: 30 and 31, not 15 or 14.
        assert_eq!(out, [r#"a @ 30: {"l":3,"r":"upper"}"#, r#"a @ 31: {"l":3,"r":"past"}"#]);
        assert_eq!((op.matches(), op.state_rows()), (5, 9));
    }

    #[test]
    fn rows_leave_when_the_watermark_passes_their_last_partner_and_late_rows_go_to_the_late_output() {
        let mut op = join(-5, 10);
        // Left at 20 can meet rights up to 30; right at 20 can meet lefts up to 25.
        step(&mut op, &[("a", Some(20), r#""L""#)], &[("b", Some(20), r#""R""#)], Some(25));
        assert_eq!(op.state_rows(), 2);
        // Watermark 25: a left at 25 is not late and meets the right at 20 (20 - 25 = -5).
        let (out, late) = step(&mut op, &[("b", Some(25), r#""L2""#)], &[], Some(26));
        assert_eq!(out, [r#"b @ 25: {"l":"L2","r":"R"}"#]);
        assert!(late.is_empty());
        // Watermark 26 passed 20 - (-5) = 25: the right at 20 is gone; the lefts stay
        // (20 + 10 = 30, 25 + 10 = 35).
        assert_eq!(op.state_rows(), 2);
        // Watermark 30 reaches but does not pass 30: a right at 30 still meets the left at 20.
        let (out, _) = step(&mut op, &[], &[("a", Some(30), r#""R2""#)], Some(30));
        assert_eq!(out, [r#"a @ 30: {"l":"L","r":"R2"}"#]);
        // A row on each side below the watermark is late.
        let (out, late) = step(&mut op, &[("a", Some(29), "0")], &[("a", Some(29), "0")], None);
        assert!(out.is_empty());
        assert_eq!(late, [LATE, LATE]);
        assert_eq!(op.stats().late, 2);
        // Past every row's last partner (35 for the left at 25, 30 - (-5) = 35 for the right
        // at 30): all state is gone.
        step(&mut op, &[], &[], Some(36));
        assert_eq!(op.state_rows(), 0);
        assert_eq!(op.keys.len(), 0);
    }

    #[test]
    fn a_row_that_can_meet_nothing_to_come_is_not_kept() {
        // Upper -5: a left row meets only rights at least 5 ms older.
        let mut op = join(-10, -5);
        step(&mut op, &[], &[("a", Some(12), "1")], Some(14));
        // Left at 17 meets the right at 12 (17 - 5); nothing at or after the watermark 14 can
        // still be in [7, 12], so it is not stored. The right at 12 waits for lefts up to 22.
        let (out, _) = step(&mut op, &[("a", Some(17), "2")], &[], None);
        assert_eq!(out, [r#"a @ 17: {"l":2,"r":1}"#]);
        assert_eq!(op.state_rows(), 1);
        step(&mut op, &[], &[], Some(23));
        assert_eq!(op.state_rows(), 0);
    }

    #[test]
    fn rows_without_event_time_are_dead_letters_and_the_end_of_time_clears_all() {
        let mut op = join(0, 0);
        let (_, dead) = step(&mut op, &[("a", None, "1")], &[("a", Some(1), "2")], None);
        assert_eq!(dead, ["missing-timestamp"]);
        step(&mut op, &[("a", Some(i64::MAX), "3")], &[], None);
        assert_eq!(op.state_rows(), 2);
        step(&mut op, &[], &[], Some(END_OF_TIME));
        assert_eq!(op.state_rows(), 0);
        assert!(
            IntervalJoin::new("j".into(), IntervalJoinConfig { sides: JoinSides::new("l", "r"), lower: 1, upper: 0 })
                .is_err()
        );
    }

    #[test]
    fn a_snapshot_restores_into_two_instances_that_split_the_keys() {
        let mut op = join(0, 10);
        step(
            &mut op,
            &[("a", Some(10), r#""a1""#), ("b", Some(10), r#""b1""#)],
            &[("a", Some(5), r#""old""#)],
            Some(4),
        );
        let blob = op.snapshot(1).unwrap().unwrap();
        let (mut only_a, mut only_b) = (join(0, 10), join(0, 10));
        only_a.restore(&[&blob], &is("a")).unwrap();
        only_b.restore(&[&blob], &|k| !is("a")(k)).unwrap();
        assert_eq!((only_a.state_rows(), only_b.state_rows()), (2, 1));
        // Each goes on with its keys' rows and the watermark: a right at 15 meets its key's
        // left at 10; a row at 3 is late.
        let (out, _) = step(&mut only_a, &[], &[("a", Some(15), r#""a2""#)], None);
        assert_eq!(out, [r#"a @ 15: {"l":"a1","r":"a2"}"#]);
        let (out, late) = step(&mut only_b, &[], &[("b", Some(15), r#""b2""#), ("b", Some(3), "0")], None);
        assert_eq!((out, late), (vec![r#"b @ 15: {"l":"b1","r":"b2"}"#.to_string()], vec![LATE.to_string()]));
        // Cleanup times came back too: the right at 5 (last partner at 5) goes once the
        // watermark passes 5; the rows at 10 and 15 once it passes 20 and 15.
        step(&mut only_a, &[], &[], Some(9));
        assert_eq!(only_a.state_rows(), 2);
        step(&mut only_a, &[], &[], Some(26));
        assert_eq!(only_a.state_rows(), 0);
        // Another kind's state is refused by name.
        let err = super::super::WindowJoin::new(
            "w".into(),
            super::super::WindowJoinConfig {
                sides: JoinSides::new("l", "r"),
                assigner: crate::window::WindowAssigner::tumbling(10, 0).unwrap(),
            },
        )
        .unwrap()
        .restore(&[&blob], &|_| true)
        .unwrap_err();
        assert!(err.to_string().contains("interval join's state"), "{err}");
    }
}
