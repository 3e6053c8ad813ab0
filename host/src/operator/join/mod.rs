//! Joins of two keyed streams, run natively in the host: Flink's interval join, window
//! join, regular (unbounded) join and event-time temporal join.
//!
//! A join is a two-input step: its first input is the **left** side
//! ([`Operator::process`](crate::task::Operator::process)), its second the **right**
//! ([`Operator::process_second`](crate::task::Operator::process_second)), and its event
//! time is the least watermark of both, which the runtime computes. Both inputs come
//! partitioned by key group, so an instance sees only its own keys, and a left row L meets
//! only right rows R of the same key (the key bytes `key_by` set).
//!
//! - [`IntervalJoin`] (Flink's `intervalJoin(..).between(lower, upper)`): L and R match when
//!   `L.ts + lower <= R.ts <= L.ts + upper`; a pair comes out when its second row arrives,
//!   at event time `max(L.ts, R.ts)`.
//! - [`WindowJoin`] (`join(..).where(..).equalTo(..).window(..)`): L and R in the same
//!   tumbling, sliding or session window; a window's pairs come out when the watermark
//!   reaches its end - 1, at that event time.
//! - [`RegularJoin`] (SQL's unbounded inner join, with `table.exec.state.ttl`): every L with
//!   every R while neither has expired; a pair comes out when its second row arrives, at
//!   `max(L.ts, R.ts)` when both have an event time.
//! - [`TemporalJoin`] (SQL's event-time `FOR SYSTEM_TIME AS OF l.ts`): L with the R of the
//!   latest event time at or before L.ts, when the watermark reaches L.ts, at event time
//!   L.ts.
//!
//! **Output.** A match is one row with the key of its inputs, its value the MessagePack map
//! `{<left name>: <left value>, <right name>: <right value>}`, the names from [`JoinSides`]
//! (a job names them after its streams). The two values are copied in as bytes, never
//! decoded: the map's header and names are encoded once, when the join is made.
//!
//! **State.** Rows are held in memory, per key and side in one buffer ordered by time
//! ([`rows`]); each key has a slot in a hash map keyed by its bytes, and a queue orders the
//! slots by when they next have work ([`keyed`]: Flink's per-key cleanup and firing
//! timers). A watermark visits only the keys that have something due, never every key.
//! What each join keeps, and until when, is in its module's docs; [`JoinStats`] counts the
//! rows held and the pairs emitted.
//!
//! **Late rows.** In the event-time joins, a row that can no longer take part goes to the
//! dead-letter output as [`LATE`](crate::task::LATE), which a job's `late_data` output
//! receives (from both sides, as they came). A row without an event time is a dead letter
//! of kind `missing-timestamp` whose message says to add `assign_timestamps`.
//!
//! **Checkpoints.** `Operator::snapshot` writes an instance's state as one blob: the kind
//! of join, its watermark, and an entry per key with the key's bytes. `Operator::restore`
//! reads the blobs of every instance of the step, at whatever parallelism they ran, and
//! keeps the keys its key groups own, as the window operator does.

mod interval;
mod keyed;
#[cfg(test)]
mod proptests;
mod regular;
mod rows;
mod temporal;
mod window;

use std::convert::Infallible;

use thiserror::Error;

pub use interval::{IntervalJoin, IntervalJoinConfig};
pub use regular::{RegularJoin, RegularJoinConfig};
pub use temporal::{TemporalJoin, TemporalJoinConfig};
pub use window::{WindowJoin, WindowJoinConfig};

use crate::record::{Batch, RowMeta};
use crate::task::{DeadLetter, OperatorError};

/// The names of a join's two sides: the keys of the output map (a job uses its streams'
/// names, e.g. `clicks` and `buys`) and how messages name the inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinSides {
    pub left: String,
    pub right: String,
}

impl JoinSides {
    pub fn new(left: impl Into<String>, right: impl Into<String>) -> Self {
        Self { left: left.into(), right: right.into() }
    }
}

/// A join that cannot be made as configured.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JoinConfigError {
    #[error("both sides of a join are named `{0}`: the output row is a map by side name, so give them different names")]
    SameNames(String),
    #[error("an interval join needs lower <= upper (got lower {lower} ms, upper {upper} ms)")]
    Interval { lower: i64, upper: i64 },
    #[error("a join's state TTL must be at least 1 ms (got {0} ms); leave it out to keep state forever")]
    Ttl(i64),
}

/// What a join has done and holds, for metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinStats {
    /// Pairs emitted.
    pub matches: u64,
    /// Rows held in state now, both sides (a temporal join's held left rows and versions).
    pub state_rows: usize,
    /// Keys with state now.
    pub keys: usize,
    /// Rows sent to the late output.
    pub late: u64,
    /// Temporal join: left rows dropped because the right side had no version for them.
    pub unmatched: u64,
}

/// Which input a row came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// Writes output rows: the map header and both names around the two values.
struct Pairs {
    /// Map header of two entries and the left name.
    head: Vec<u8>,
    /// The right name.
    right: Vec<u8>,
    sides: JoinSides,
}

impl Pairs {
    fn new(sides: JoinSides) -> Result<Self, JoinConfigError> {
        if sides.left == sides.right {
            return Err(JoinConfigError::SameNames(sides.left));
        }
        let mut head = Vec::with_capacity(sides.left.len() + 6);
        // Writing into a Vec cannot fail.
        let _ = rmp::encode::write_map_len(&mut head, 2);
        crate::record::write_str(&mut head, &sides.left);
        Ok(Self { head, right: crate::record::encode_str(&sides.right), sides })
    }

    fn name(&self, side: Side) -> &str {
        match side {
            Side::Left => &self.sides.left,
            Side::Right => &self.sides.right,
        }
    }

    /// Append the pair of `left` and `right` to `out`.
    fn emit(&self, out: &mut Batch, key: &[u8], timestamp: Option<i64>, left: &[u8], right: &[u8]) {
        let written = out.push_with_meta(RowMeta { key: Some(key), timestamp }, |buf| {
            buf.reserve(self.head.len() + left.len() + self.right.len() + right.len());
            buf.extend_from_slice(&self.head);
            buf.extend_from_slice(left);
            buf.extend_from_slice(&self.right);
            buf.extend_from_slice(right);
            Ok::<(), Infallible>(())
        });
        let Ok(()) = written;
    }

    /// [`Pairs::emit`] for a row of `side` (`mine`) and one of the other side.
    fn emit_from(&self, out: &mut Batch, side: Side, key: &[u8], ts: Option<i64>, mine: &[u8], other: &[u8]) {
        match side {
            Side::Left => self.emit(out, key, ts, mine, other),
            Side::Right => self.emit(out, key, ts, other, mine),
        }
    }
}

/// The key of row `i`, or the error of a join wired after an unkeyed stream.
fn row_key<'a>(name: &str, pairs: &Pairs, side: Side, input: &'a Batch, i: usize) -> Result<&'a [u8], OperatorError> {
    input.key(i).ok_or_else(|| OperatorError::Failed {
        operator: name.to_string(),
        message: format!(
            "a row of `{}` has no key: both inputs of a join must be keyed by the join key (key_by)",
            pairs.name(side)
        ),
    })
}

/// The dead letter of a row without event time in an event-time join.
fn missing_timestamp(name: &str, join: &str, input: &Batch, i: usize) -> DeadLetter {
    let message = format!("{join} needs event time: assign_timestamps before it");
    DeadLetter::of_row(name, "missing-timestamp", message, input, i)
}

/// The error of a key whose rows outgrew a buffer.
fn too_large(name: &str, side: &str) -> OperatorError {
    OperatorError::Failed {
        operator: name.to_string(),
        message: format!(
            "one key holds more than 4 GiB of `{side}` rows; the join cannot hold them (is the join key too coarse?)"
        ),
    }
}

/// A checkpoint blob: `[kind, watermark, entries]`, one entry per key starting with its bytes.
mod blob {
    use serde::{Deserialize, Serialize};

    use crate::task::OperatorError;

    #[derive(Serialize)]
    pub struct BlobRef<E> {
        pub kind: &'static str,
        pub watermark: i64,
        pub keys: Vec<E>,
    }

    #[derive(Deserialize)]
    pub struct Blob<E> {
        /// Checked by [`read`] before the rest is decoded.
        pub _kind: serde::de::IgnoredAny,
        pub watermark: i64,
        pub keys: Vec<E>,
    }

    pub fn write<E: Serialize>(operator: &str, blob: &BlobRef<E>) -> Result<Option<Vec<u8>>, OperatorError> {
        rmp_serde::to_vec(blob).map(Some).map_err(|e| crate::task::bad_snapshot(operator, e))
    }

    /// Read a blob of join kind `kind` (another kind's blob is refused by name).
    pub fn read<'de, E: Deserialize<'de>>(
        operator: &str,
        kind: &str,
        bytes: &'de [u8],
    ) -> Result<Blob<E>, OperatorError> {
        let mut rd = bytes;
        let found = rmp::decode::read_array_len(&mut rd)
            .ok()
            .and_then(|_| rmp::decode::read_str_from_slice(rd).ok())
            .map(|(s, _)| s);
        match found {
            Some(found) if found == kind => {}
            Some(found) => {
                return Err(crate::task::bad_snapshot(operator, format!("it holds a {found}'s state, not a {kind}'s")));
            }
            None => return Err(crate::task::bad_snapshot(operator, "it is not a join's state")),
        }
        rmp_serde::from_slice(bytes).map_err(|e| crate::task::bad_snapshot(operator, e))
    }
}

/// Helpers for the joins' tests: rows in, rows out as JSON text.
#[cfg(test)]
mod testing {
    use super::*;
    use crate::record;
    use crate::task::{DeadLetters, Operator};

    /// A batch of `(key, event time, value as JSON)` rows.
    pub fn batch(rows: &[(&str, Option<i64>, &str)]) -> Batch {
        let mut b = Batch::new();
        for (key, ts, json) in rows {
            b.push_record(&record::from_json(json), RowMeta { key: Some(&record::encode_str(key)), timestamp: *ts });
        }
        b
    }

    /// Output rows as `key @ ts: value`, in order.
    pub fn show(out: &Batch) -> Vec<String> {
        (0..out.len())
            .map(|i| {
                let key = out.key(i).map(record::display_value).unwrap_or_default();
                let ts = out.timestamp(i).map_or("-".to_string(), |t| t.to_string());
                format!("{key} @ {ts}: {}", record::display_value(out.value(i)))
            })
            .collect()
    }

    /// Feed `left` then `right` rows and then a watermark; what came out, and the kinds of
    /// the dead letters.
    pub fn step(
        op: &mut dyn Operator,
        left: &[(&str, Option<i64>, &str)],
        right: &[(&str, Option<i64>, &str)],
        watermark: Option<i64>,
    ) -> (Vec<String>, Vec<String>) {
        let (mut out, mut dead) = (Batch::new(), DeadLetters::default());
        if !left.is_empty() {
            op.process(batch(left), &mut out, &mut dead).unwrap();
        }
        if !right.is_empty() {
            op.process_second(batch(right), &mut out, &mut dead).unwrap();
        }
        if let Some(w) = watermark {
            assert_eq!(op.on_watermark(w, &mut out, &mut dead).unwrap(), Some(w));
        }
        (show(&out), dead.0.iter().map(|d| d.kind.clone()).collect())
    }

    /// Whether a key (as a string) is one instance's: for restoring into two instances.
    pub fn is(key: &'static str) -> impl Fn(&[u8]) -> bool {
        move |k| k == record::encode_str(key).as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_a_map_of_both_values_copied_as_they_are() {
        let pairs = Pairs::new(JoinSides::new("clicks", "buys")).unwrap();
        let mut out = Batch::new();
        let (l, r) = (crate::record::from_json(r#"{"url":"/a"}"#), crate::record::from_json("[1,2.5]"));
        pairs.emit(&mut out, b"\xa1k", Some(7), &l, &r);
        assert_eq!(testing::show(&out), [r#"k @ 7: {"clicks":{"url":"/a"},"buys":[1,2.5]}"#]);
        let value = out.value(0);
        assert!(value.ends_with(&r) && value.windows(l.len()).any(|w| w == l.as_slice()), "verbatim bytes");
        assert_eq!(
            Pairs::new(JoinSides::new("s", "s")).err().map(|e| e.to_string()),
            Some(JoinConfigError::SameNames("s".into()).to_string())
        );
    }
}
