//! Joins of two keyed streams (Flink's window join, interval join, and SQL's regular and
//! temporal joins), run natively by the host: `a.key_by(..).join(b.key_by(..))` then how.
//!
//! ```no_run
//! use weir::env::StreamEnvironment;
//! use weir::window::WindowAssigner;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let env = StreamEnvironment::new();
//! let clicks = env.read_json_lines("clicks.jsonl").assign_timestamps("ts", std::time::Duration::from_secs(5));
//! let buys = env.read_json_lines("buys.jsonl").assign_timestamps("ts", std::time::Duration::from_secs(5));
//! clicks
//!     .key_by("user")
//!     .join(buys.key_by("user"))
//!     .sides("click", "buy")                   // {"click": {...}, "buy": {...}}
//!     .between(-5_000, 10_000)                 // an interval join: buy.ts in click.ts - 5 s ..= + 10 s
//!     .print();
//! env.execute("clicks with buys")?;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use super::{DataStream, KeyedStream};
use crate::graph::{Step, StepKind, Stream, StreamInput};
use crate::operator::{
    IntervalJoin, IntervalJoinConfig, JoinSides, RegularJoin, RegularJoinConfig, TemporalJoin, TemporalJoinConfig,
    WindowJoin, WindowJoinConfig,
};
use crate::record::Batch;
use crate::task::{DeadLetters, Operator, OperatorError, OperatorFactory};
use crate::window::WindowAssigner;

/// Two keyed streams to join by key, waiting for how (Flink's `JoinedStreams`). Each match
/// is one record `{<left>: left record, <right>: right record}` with the key of both.
pub struct JoinedStreams {
    left: DataStream,
    right: DataStream,
    sides: JoinSides,
}

impl KeyedStream {
    /// Join this stream (the left side) with `other` (the right) by key: finish with
    /// [`JoinedStreams::window`], [`JoinedStreams::between`], [`JoinedStreams::unbounded`]
    /// or [`JoinedStreams::latest`].
    pub fn join(self, other: KeyedStream) -> JoinedStreams {
        JoinedStreams { left: self.stream, right: other.stream, sides: JoinSides::new("left", "right") }
    }
}

impl JoinedStreams {
    /// The names of the two sides in the output record (default `left` and `right`; a job
    /// file uses its streams' names).
    pub fn sides(mut self, left: &str, right: &str) -> Self {
        self.sides = JoinSides::new(left, right);
        self
    }

    /// A window join (Flink's `join(..).where(..).equalTo(..).window(..)`): every pair of a
    /// key in the same event-time window (tumbling, sliding or session), emitted when the
    /// watermark passes the window's end, at event time `end - 1`.
    pub fn window(self, assigner: WindowAssigner) -> DataStream {
        let what = format!("window {assigner}");
        let config = WindowJoinConfig { sides: self.sides.clone(), assigner };
        self.finish(what, move |name| Ok(Box::new(WindowJoin::new(name, config.clone())?)))
    }

    /// An interval join (Flink's `intervalJoin(..).between(lower, upper)`): a left record L
    /// and a right record R match when `L.ts + lower <= R.ts <= L.ts + upper` (milliseconds,
    /// either may be negative, both bounds inclusive); a pair comes out when its second
    /// record arrives, at event time `max(L.ts, R.ts)`. State is dropped once the watermark
    /// says no match can come.
    pub fn between(self, lower_ms: i64, upper_ms: i64) -> DataStream {
        let what = format!("interval {lower_ms}..={upper_ms} ms");
        let config = IntervalJoinConfig { sides: self.sides.clone(), lower: lower_ms, upper: upper_ms };
        self.finish(what, move |name| Ok(Box::new(IntervalJoin::new(name, config.clone())?)))
    }

    /// A regular join (SQL's unbounded inner join): every left record with every right
    /// record of its key, whenever they came; a pair comes out when its second record
    /// arrives. With `ttl`, a record is forgotten that long after it arrived (processing
    /// time, as Flink's `table.exec.state.ttl`); without, state grows with the keys.
    pub fn unbounded(self, ttl: Option<Duration>) -> DataStream {
        let ttl_ms = ttl.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let what = match ttl_ms {
            Some(ms) => format!("regular ttl {ms} ms"),
            None => "regular".to_string(),
        };
        let mut config = RegularJoinConfig::new(self.sides.clone());
        config.ttl = ttl_ms;
        self.finish(what, move |name| Ok(Box::new(RegularJoin::new(name, config.clone())?)))
    }

    /// A temporal join (SQL's event-time `FOR SYSTEM_TIME AS OF`): the right stream is a
    /// versioned table (per key, its records by event time); each left record comes out,
    /// once the watermark reaches it, with the right record of its key in force at its event
    /// time (the latest at or before it). A left record with no such version is dropped
    /// (an inner join).
    pub fn latest(self) -> DataStream {
        let config = TemporalJoinConfig { sides: self.sides.clone() };
        self.finish("temporal".into(), move |name| Ok(Box::new(TemporalJoin::new(name, config.clone())?)))
    }

    /// The join step on a stream reading both sides.
    fn finish(
        self,
        what: String,
        make: impl Fn(String) -> Result<Box<dyn Operator>, crate::operator::JoinConfigError> + Send + Sync + 'static,
    ) -> DataStream {
        let (left, right) = (self.left, self.right);
        let name = format!("join[{}] {what}", left.next_index());
        if !left.keyed || !right.keyed {
            return left.fail(format!("{name}: joins two keyed streams: key_by each side before join"));
        }
        if self.sides.left == self.sides.right {
            let message = format!("{name}: both sides are named `{}`; give them different names", self.sides.left);
            return left.fail(message);
        }
        // A bad configuration (lower > upper, ...) is reported when the job is built.
        if let Err(e) = make(name.clone()) {
            return left.fail(format!("{name}: {e}"));
        }
        let op_name = name.clone();
        let factory: OperatorFactory = Arc::new(move |_: &crate::task::InstanceContext| {
            let join = make(op_name.clone())
                .map_err(|e| OperatorError::Failed { operator: op_name.clone(), message: e.to_string() })?;
            Ok(Box::new(KeyKinds { join, seen: [None, None], warned: false }) as Box<dyn Operator>)
        });
        let env = left.env.clone();
        let node = env.add_stream(Stream {
            name: String::new(),
            input: StreamInput::Connect(left.node, right.node),
            steps: vec![Step::new(name, StepKind::Keyed, factory)],
        });
        DataStream { env, node, keyed: false, partition: None }
    }
}

/// What kind of MessagePack value a key is: keys of different kinds (`1` and `"1"`) never
/// meet in a join, which is almost always a mistake in one side's data or key.
fn key_kind(key: &[u8]) -> &'static str {
    match key.first().copied().unwrap_or(0xc0) {
        0x00..=0x7f | 0xe0..=0xff | 0xcc..=0xd3 => "an integer",
        0xa0..=0xbf | 0xd9..=0xdb => "a string",
        0xca | 0xcb => "a float",
        0xc2 | 0xc3 => "a boolean",
        0xc0 => "nil",
        0xc4..=0xc6 => "bytes",
        0x90..=0x9f | 0xdc | 0xdd => "an array",
        _ => "a map",
    }
}

/// A join that logs one warning when its two sides' keys are of different kinds.
struct KeyKinds {
    join: Box<dyn Operator>,
    /// The kind of the first key seen on each side.
    seen: [Option<&'static str>; 2],
    warned: bool,
}

impl KeyKinds {
    fn look(&mut self, side: usize, input: &Batch) {
        if self.warned || self.seen[side].is_some() {
            return;
        }
        let Some(key) = (0..input.len()).find_map(|i| input.key(i)) else { return };
        self.seen[side] = Some(key_kind(key));
        if let [Some(left), Some(right)] = self.seen
            && left != right
        {
            self.warned = true;
            tracing::warn!(
                join = %self.join.name(),
                "the left side's keys are {left} and the right side's {right}: such keys never match (1 is not \"1\"); check the key fields of both sides"
            );
        }
    }
}

impl Operator for KeyKinds {
    fn name(&self) -> &str {
        self.join.name()
    }

    fn process(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.look(0, &input);
        self.join.process(input, out, dead)
    }

    fn process_second(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.look(1, &input);
        self.join.process_second(input, out, dead)
    }

    fn on_watermark(
        &mut self,
        watermark: i64,
        out: &mut Batch,
        dead: &mut DeadLetters,
    ) -> Result<Option<i64>, OperatorError> {
        self.join.on_watermark(watermark, out, dead)
    }

    fn next_processing_timer(&self) -> Option<i64> {
        self.join.next_processing_timer()
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.join.on_processing_time(now, out, dead)
    }

    fn snapshot(&mut self, id: u64) -> Result<Option<Vec<u8>>, OperatorError> {
        self.join.snapshot(id)
    }

    fn checkpoint_complete(&mut self, id: u64) -> Result<(), OperatorError> {
        self.join.checkpoint_complete(id)
    }

    fn restore(&mut self, blobs: &[&[u8]], owns: &dyn Fn(&[u8]) -> bool) -> Result<(), OperatorError> {
        self.join.restore(blobs, owns)
    }

    fn finish(&mut self, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.join.finish(out, dead)
    }
}
