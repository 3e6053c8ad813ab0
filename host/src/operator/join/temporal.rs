//! The event-time temporal join: Flink SQL's `FROM l JOIN r FOR SYSTEM_TIME AS OF l.ts ON
//! l.k = r.k`, where the right side is a versioned table (the rows of a key, each a version
//! from its event time on).
//!
//! A left row is held until the watermark reaches its event time, then joined with the
//! right version of its key in force at that time: the one with the latest event time at
//! or before the left row's. Holding it until then lets versions that arrive out of order
//! still be seen. The output row has the left row's event time. Rows due at the same
//! watermark come out in event-time order.
//!
//! This is an **inner** join: a left row for which the right side has no version at or
//! before its time is dropped, and counted in [`JoinStats::unmatched`].
//!
//! **Versions** of a key are kept ordered by event time; a version with the same event time
//! as a kept one replaces it (a table has one version per time). Once the watermark passes
//! a version's successor, no left row still to come can see it, so a key keeps only the
//! latest version at or before the watermark and those after it.
//!
//! **Late rows.** A left row below the watermark (`ts < watermark`, as the interval join)
//! goes to the late output: the versions it needs may be gone. A right row is never late:
//! a version older than the watermark still is the table's state from its time on, and is
//! kept if no later version at or before the watermark replaces it (then it goes at the
//! next watermark). At the final watermark every held row comes out and all state goes.

use serde_bytes::Bytes;

use super::keyed::Keyed;
use super::rows::Rows;
use super::{JoinConfigError, JoinSides, JoinStats, Pairs, Side, blob, missing_timestamp, row_key, too_large};
use crate::record::Batch;
use crate::task::{DeadLetter, DeadLetters, LATE, Operator, OperatorError};
use crate::time::END_OF_TIME;

const KIND: &str = "temporal join";

/// The sides of a [`TemporalJoin`]: the left stream probes the right side's versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporalJoinConfig {
    pub sides: JoinSides,
}

/// The temporal join operator; see the module docs.
pub struct TemporalJoin {
    name: String,
    pairs: Pairs,
    keys: Keyed<Versioned>,
    watermark: i64,
    stats: JoinStats,
}

/// A key's left rows waiting for the watermark and its versions, both by event time.
#[derive(Default)]
struct Versioned {
    held: Rows,
    versions: Rows,
}

impl Versioned {
    /// When the key next has work: a held row's time, or the time from which its oldest
    /// version is obsolete (its successor's).
    fn next_due(&self) -> Option<i64> {
        let obsolete = (self.versions.len() > 1).then(|| self.versions.get(1).0.at);
        self.held.first_at().into_iter().chain(obsolete).min()
    }
}

impl TemporalJoin {
    pub fn new(name: String, config: TemporalJoinConfig) -> Result<Self, JoinConfigError> {
        Ok(Self {
            name,
            pairs: Pairs::new(config.sides)?,
            keys: Keyed::default(),
            watermark: i64::MIN,
            stats: JoinStats::default(),
        })
    }

    pub fn stats(&self) -> JoinStats {
        JoinStats { keys: self.keys.len(), ..self.stats }
    }

    /// Left rows held and versions kept.
    pub fn state_rows(&self) -> usize {
        self.stats.state_rows
    }

    /// Pairs emitted.
    pub fn matches(&self) -> u64 {
        self.stats.matches
    }

    fn on_rows(&mut self, side: Side, input: &Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        for i in 0..input.len() {
            let key = row_key(&self.name, &self.pairs, side, input, i)?;
            let Some(ts) = input.timestamp(i) else {
                dead.push(missing_timestamp(&self.name, "a temporal join", input, i));
                continue;
            };
            if side == Side::Left && self.watermark != i64::MIN && ts < self.watermark {
                let message = format!(
                    "late row of `{}`: event time {ts} is before the watermark {}, and the version it \
                     needs may be gone",
                    self.pairs.name(side),
                    self.watermark
                );
                dead.push(DeadLetter::of_row(&self.name, LATE, message, input, i));
                self.stats.late += 1;
                continue;
            }
            let slot = self.keys.slot(key, |_| {});
            let v = self.keys.state(slot);
            let value = input.value(i);
            let full = |_| too_large(&self.name, self.pairs.name(side));
            let added = match side {
                Side::Left => v.held.insert(ts, ts, value).map(|()| true).map_err(full)?,
                Side::Right => !v.versions.upsert(ts, ts, value).map_err(full)?,
            };
            self.stats.state_rows += usize::from(added);
            if let Some(due) = v.next_due() {
                self.keys.schedule(slot, due);
            }
        }
        Ok(())
    }
}

impl Operator for TemporalJoin {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, input: Batch, _out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.on_rows(Side::Left, &input, dead)
    }

    fn process_second(&mut self, input: Batch, _out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.on_rows(Side::Right, &input, dead)
    }

    fn on_watermark(
        &mut self,
        watermark: i64,
        out: &mut Batch,
        _dead: &mut DeadLetters,
    ) -> Result<Option<i64>, OperatorError> {
        if watermark <= self.watermark {
            return Ok(Some(watermark));
        }
        self.watermark = watermark;
        while let Some(slot) = self.keys.pop_due(watermark) {
            let (key, v) = self.keys.parts(slot);
            let due = v.held.between(i64::MIN, watermark).end;
            for i in 0..due {
                let (row, left) = v.held.get(i);
                match v.versions.between(i64::MIN, row.at).end.checked_sub(1) {
                    Some(j) => {
                        self.pairs.emit(out, key, Some(row.at), left, v.versions.get(j).1);
                        self.stats.matches += 1;
                    }
                    None => self.stats.unmatched += 1,
                }
            }
            v.held.drop_front(due);
            // Keep the latest version at or before the watermark and those after it.
            let obsolete = v.versions.between(i64::MIN, watermark).end.saturating_sub(1);
            v.versions.drop_front(obsolete);
            self.stats.state_rows -= due + obsolete;
            match v.next_due() {
                Some(at) => self.keys.schedule(slot, at),
                None if v.versions.is_empty() => self.keys.remove(slot),
                // One version, waiting for left rows.
                None => {}
            }
        }
        if watermark == END_OF_TIME {
            // Nothing comes after the final watermark: the versions are no longer needed.
            self.keys.clear();
            self.stats.state_rows = 0;
        }
        Ok(Some(watermark))
    }

    fn snapshot(&mut self, _id: u64) -> Result<Option<Vec<u8>>, OperatorError> {
        let keys = self.keys.iter().map(|(k, v)| (Bytes::new(k), &v.held, &v.versions)).collect();
        blob::write(&self.name, &blob::BlobRef { kind: KIND, watermark: self.watermark, keys })
    }

    fn restore(&mut self, blobs: &[&[u8]], owns: &dyn Fn(&[u8]) -> bool) -> Result<(), OperatorError> {
        for bytes in blobs {
            let snap: blob::Blob<(&Bytes, Rows, Rows)> = blob::read(&self.name, KIND, bytes)?;
            // Every instance had the same watermark or a lower one; event time only grows.
            self.watermark = self.watermark.max(snap.watermark);
            for (key, held, versions) in snap.keys.into_iter().filter(|e| owns(e.0)) {
                let slot = self.keys.slot(key, |_| {});
                let v = self.keys.state(slot);
                v.held.extend(&held).map_err(|_| too_large(&self.name, &self.pairs.sides.left))?;
                self.stats.state_rows += held.len();
                for i in 0..versions.len() {
                    let (row, value) = versions.get(i);
                    let replaced = v
                        .versions
                        .upsert(row.at, row.ts, value)
                        .map_err(|_| too_large(&self.name, &self.pairs.sides.right))?;
                    self.stats.state_rows += usize::from(!replaced);
                }
            }
        }
        for slot in self.keys.slots() {
            if let Some(due) = self.keys.state(slot).next_due() {
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

    fn join() -> TemporalJoin {
        TemporalJoin::new("join".into(), TemporalJoinConfig { sides: JoinSides::new("order", "rate") }).unwrap()
    }

    #[test]
    fn a_left_row_gets_the_version_in_force_at_its_time_once_the_watermark_reaches_it() {
        let mut op = join();
        // Versions at 10, 30 and 20, out of order; orders at 25, 5, 30, 15, out of order too.
        let (out, _) = step(
            &mut op,
            &[("a", Some(25), "25"), ("a", Some(5), "5"), ("a", Some(30), "30"), ("a", Some(15), "15")],
            &[("a", Some(10), r#""v10""#), ("a", Some(30), r#""v30""#), ("a", Some(20), r#""v20""#)],
            Some(29),
        );
        // Watermark 29: the orders at 5, 15, 25 are due, in event-time order; 5 has no
        // version at or before it (dropped, counted); 30 waits.
        assert_eq!(out, [r#"a @ 15: {"order":15,"rate":"v10"}"#, r#"a @ 25: {"order":25,"rate":"v20"}"#]);
        assert_eq!(op.stats().unmatched, 1);
        // v10 is obsolete (v20 is at or before 29); v20, v30 and the order at 30 stay.
        assert_eq!(op.state_rows(), 3);
        // A version exactly at the order's time is the one in force.
        let (out, late) = step(&mut op, &[("a", Some(28), "0")], &[], Some(30));
        assert_eq!(out, [r#"a @ 30: {"order":30,"rate":"v30"}"#]);
        assert_eq!(late, [LATE], "an order below the watermark is late");
        assert_eq!(op.state_rows(), 1, "only v30 is left");
        // An order held at 60, then a version at 55 that comes after it: the order sees it.
        // A version at the same time as a kept one replaces it.
        step(&mut op, &[("a", Some(60), "60")], &[("a", Some(55), r#""v55""#), ("a", Some(55), r#""v55b""#)], None);
        assert_eq!(op.state_rows(), 3);
        let (out, _) = step(&mut op, &[], &[], Some(60));
        assert_eq!(out, [r#"a @ 60: {"order":60,"rate":"v55b"}"#]);
        // A version older than the watermark is not late, only obsolete when a later one is
        // at or before the watermark: it goes at the next watermark.
        step(&mut op, &[], &[("a", Some(40), r#""v40""#), ("b", Some(40), r#""b40""#)], Some(61));
        assert_eq!(op.state_rows(), 2, "v55b for a, b40 for b");
        let (out, _) = step(&mut op, &[("b", Some(70), "70")], &[], Some(END_OF_TIME));
        assert_eq!(out, [r#"b @ 70: {"order":70,"rate":"b40"}"#]);
        assert_eq!((op.state_rows(), op.matches()), (0, 5));
    }

    #[test]
    fn a_snapshot_restores_into_two_instances_that_split_the_keys() {
        let mut op = join();
        step(
            &mut op,
            &[("a", Some(20), "20"), ("b", Some(20), "21")],
            &[("a", Some(10), r#""a10""#), ("a", Some(15), r#""a15""#), ("b", Some(5), r#""b5""#)],
            Some(12),
        );
        let blob = op.snapshot(1).unwrap().unwrap();
        let (mut only_a, mut only_b) = (join(), join());
        only_a.restore(&[&blob], &is("a")).unwrap();
        only_b.restore(&[&blob], &|k| !is("a")(k)).unwrap();
        assert_eq!((only_a.state_rows(), only_b.state_rows()), (3, 2));
        let (out, late) = step(&mut only_a, &[("a", Some(11), "0")], &[], Some(20));
        assert_eq!((out, late), (vec![r#"a @ 20: {"order":20,"rate":"a15"}"#.to_string()], vec![LATE.to_string()]));
        let (out, _) = step(&mut only_b, &[], &[], Some(20));
        assert_eq!(out, [r#"b @ 20: {"order":21,"rate":"b5"}"#]);
        let (_, dead) = step(&mut only_b, &[], &[("b", None, "0")], None);
        assert_eq!(dead, ["missing-timestamp"]);
    }
}
