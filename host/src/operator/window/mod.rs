//! Windows on a keyed stream, in event time or processing time, aggregated incrementally.
//!
//! Each record of a key is folded into the accumulator of each window it belongs to (one
//! for tumbling, `size / slide` for sliding, a merging session for session windows). The
//! accumulator is a built-in's or a Wasm UDAF's (see [`aggregation`]); UDAF values are
//! folded a batch at a time, one plugin call per batch. Only a window with a process-window
//! function keeps its records: the function gets them all when the window fires and emits
//! its own rows.
//!
//! **Event time**: a window fires when the watermark passes its end, emitting
//! `{"key", "window_start", "window_end", <aggregate>: result}` with event time
//! `window_end - 1` (Flink's `TimeWindow.maxTimestamp`). With allowed lateness, a window's
//! state is kept until `max_timestamp + allowed_lateness`, and a late record within it
//! updates the window and fires it again (once per batch that updates it); a record later
//! than that for all its windows goes to the late-data output (kind `late`). At the end of
//! the input the final watermark fires every window, as in Flink.
//!
//! **Processing time**: a record belongs to the windows of the wall-clock time it arrives
//! at, and a window fires when the clock passes its end (the runtime calls
//! [`Operator::on_processing_time`] when [`Operator::next_processing_timer`] is due).
//! Nothing is late. At the end of a bounded input every open window fires, so a short
//! bounded job still gets its results.
//!
//! A record the aggregate fails on (a UDAF that traps, a missing field) goes to the
//! dead-letter output; the window's result for the other records is still produced.
//!
//! State is in memory per parallel instance; a checkpoint stores it as one blob per
//! instance ([`Operator::snapshot`]), every entry with its key, so a job restored at another
//! parallelism gives each instance the windows of its key groups.

mod aggregation;

use std::collections::{BTreeSet, HashMap};

use rmpv::Value;

pub use aggregation::WindowAggregate;
use aggregation::{Acc, AccFailure, Aggregation, Fired, RowFailure};

use crate::record::{self, Batch, RowMeta};
use crate::task::{DeadLetter, Payload};
use crate::task::{DeadLetters, Operator, OperatorError};
use crate::window::trigger::{self, OnElement};
use crate::window::{SessionWindows, TimeWindow, WindowAssigner};

type Key = Vec<u8>;

/// Which clock a window follows.
#[derive(Debug, Clone, Copy)]
pub enum WindowTime {
    /// The records' event time and the watermarks.
    Event,
    /// The wall clock of the operator (epoch ms from `clock`).
    Processing { clock: fn() -> i64 },
}

impl WindowTime {
    /// Processing time on the system clock.
    pub fn processing() -> Self {
        WindowTime::Processing { clock: crate::time::now_ms }
    }

    fn is_event(self) -> bool {
        matches!(self, WindowTime::Event)
    }
}

pub struct WindowOperator {
    name: String,
    assigner: WindowAssigner,
    time: WindowTime,
    allowed_lateness: i64,
    output_field: String,
    aggregation: Aggregation,
    accumulators: HashMap<(Key, TimeWindow), Acc>,
    sessions: HashMap<Key, SessionWindows>,
    /// Timers: (time, key, window), fired in time order (event or processing time).
    fire_timers: BTreeSet<(i64, Key, TimeWindow)>,
    cleanup_timers: BTreeSet<(i64, Key, TimeWindow)>,
    watermark: i64,
    /// Windows a late record updated in this batch, fired again after it.
    fire_now: Vec<(Key, TimeWindow)>,
    windows: Vec<TimeWindow>,
    failures: Vec<RowFailure>,
}

impl WindowOperator {
    /// A window operator; fails when a UDAF cannot be instantiated.
    pub fn new(
        name: String,
        assigner: WindowAssigner,
        time: WindowTime,
        allowed_lateness: i64,
        aggregate: &WindowAggregate,
    ) -> Result<Self, OperatorError> {
        let aggregation =
            Aggregation::new(aggregate).map_err(|source| OperatorError::Plugin { operator: name.clone(), source })?;
        let allowed_lateness = if time.is_event() { allowed_lateness.max(0) } else { 0 };
        Ok(Self {
            name,
            assigner,
            time,
            allowed_lateness,
            output_field: aggregate.output_field().to_string(),
            aggregation,
            accumulators: HashMap::new(),
            sessions: HashMap::new(),
            fire_timers: BTreeSet::new(),
            cleanup_timers: BTreeSet::new(),
            watermark: i64::MIN,
            fire_now: Vec::new(),
            windows: Vec::new(),
            failures: Vec::new(),
        })
    }

    fn fatal(&self, f: AccFailure) -> OperatorError {
        OperatorError::Failed { operator: self.name.clone(), message: format!("{} ({})", f.message, f.kind) }
    }

    /// Fold the UDAF values noted so far; failed rows of `input` become dead letters.
    fn flush(&mut self, input: &Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.aggregation
            .flush(&mut self.accumulators, &mut self.failures)
            .map_err(|source| OperatorError::Plugin { operator: self.name.clone(), source })?;
        for (i, kind, message) in self.failures.drain(..) {
            dead.push(DeadLetter::of_row(&self.name, kind, message, input, i));
        }
        Ok(())
    }

    /// Fold a session's absorbed windows into `into` and drop their timers.
    fn merge_sessions(&mut self, key: &Key, into: TimeWindow, merged: &[TimeWindow]) -> Result<(), AccFailure> {
        let mut acc = match self.accumulators.remove(&(key.clone(), into)) {
            Some(acc) => acc,
            None => self.aggregation.create()?,
        };
        let mut result = Ok(());
        for w in merged.iter().filter(|w| **w != into) {
            if let Some(other) = self.accumulators.remove(&(key.clone(), *w))
                && result.is_ok()
            {
                result = self.aggregation.merge(&mut acc, &other);
            }
            self.forget_timers(key, w);
        }
        self.accumulators.insert((key.clone(), into), acc);
        result
    }

    fn forget_timers(&mut self, key: &Key, w: &TimeWindow) {
        self.fire_timers.remove(&(trigger::fire_time(w), key.clone(), *w));
        self.cleanup_timers.remove(&(trigger::cleanup_time(w, self.allowed_lateness), key.clone(), *w));
    }

    fn emit(&mut self, key: &Key, w: &TimeWindow, out: &mut Batch, dead: &mut DeadLetters) {
        let Some(acc) = self.accumulators.get(&(key.clone(), *w)) else { return };
        let key_value = record::decode(key).unwrap_or_else(|_| Value::Binary(key.clone()));
        let mut row = vec![
            (Value::from("key"), key_value),
            (Value::from("window_start"), Value::from(w.start)),
            (Value::from("window_end"), Value::from(w.end)),
        ];
        let meta = RowMeta { key: None, timestamp: Some(w.max_timestamp()) };
        match self.aggregation.fire(key, w, acc) {
            Ok(Fired::Value(result)) => {
                row.push((Value::from(self.output_field.as_str()), result));
                out.push_record(&record::encode(&Value::Map(row)), meta);
            }
            Ok(Fired::Rows(rows)) => {
                for j in 0..rows.len() {
                    out.push_record(rows.value(j), meta);
                }
            }
            Err(f) => dead.push(DeadLetter {
                operator: self.name.clone(),
                uid: None,
                kind: f.kind.to_string(),
                error: format!("no result for this window: {}", f.message),
                origin: None,
                payload: Payload::Record(record::encode(&Value::Map(row))),
                key: Some(key.clone()),
            }),
        }
    }

    fn on_record(
        &mut self,
        input: &Batch,
        i: usize,
        now: Option<i64>,
        dead: &mut DeadLetters,
    ) -> Result<(), OperatorError> {
        let Some(key) = input.key(i).map(<[u8]>::to_vec) else {
            return Err(OperatorError::Failed {
                operator: self.name.clone(),
                message: "got a record without a key; a window must follow key_by".into(),
            });
        };
        let Some(ts) = now.or_else(|| input.timestamp(i)) else {
            let msg = "the record has no event time; add `assign_timestamps` before `key_by`".to_string();
            dead.push(DeadLetter::of_row(&self.name, "missing-timestamp", msg, input, i));
            return Ok(());
        };
        let mut windows = std::mem::take(&mut self.windows);
        windows.clear();
        self.assigner.assign_into(ts, &mut windows);
        if now.is_none() && trigger::is_record_late(ts, &windows, self.watermark, self.allowed_lateness) {
            let msg = format!(
                "late record: event time {ts} is past its windows' end plus the allowed lateness of {} ms (watermark {})",
                self.allowed_lateness, self.watermark
            );
            dead.push(DeadLetter::of_row(&self.name, crate::task::LATE, msg, input, i));
            self.windows = windows;
            return Ok(());
        }
        for &assigned in &windows {
            let w = if self.assigner.is_merging() {
                let merge = self.sessions.entry(key.clone()).or_default().add(assigned);
                if merge.merged.iter().any(|m| *m != merge.into) {
                    // Values noted for the absorbed windows go in before they merge.
                    self.flush(input, dead)?;
                }
                if let Err(f) = self.merge_sessions(&key, merge.into, &merge.merged) {
                    dead.push(DeadLetter::of_row(&self.name, f.kind, f.message, input, i));
                    continue;
                }
                merge.into
            } else {
                assigned
            };
            if now.is_none() && trigger::is_window_late(&w, self.watermark, self.allowed_lateness) {
                continue;
            }
            let target = (key.clone(), w);
            let fresh = !self.accumulators.contains_key(&target);
            if fresh {
                let acc = self.aggregation.create().map_err(|f| self.fatal(f))?;
                self.accumulators.insert(target.clone(), acc);
            }
            let watermark = now.map_or(self.watermark, |n| n - 1);
            let on_element = trigger::on_element(&w, watermark);
            // Timers once per window (a merged session is a new window): with 100 k keys
            // sharing a window end, re-inserting them per record dominated the operator.
            if fresh || self.assigner.is_merging() {
                self.cleanup_timers.insert((trigger::cleanup_time(&w, self.allowed_lateness), key.clone(), w));
                if let OnElement::FireAt(t) = on_element {
                    self.fire_timers.insert((t, key.clone(), w));
                }
            }
            if let Err((row, kind, message)) = self.aggregation.add(&mut self.accumulators, target, input, i) {
                dead.push(DeadLetter::of_row(&self.name, kind, message, input, row));
                continue;
            }
            if on_element == OnElement::FireNow {
                self.fire_now.push((key.clone(), w));
            }
        }
        self.windows = windows;
        Ok(())
    }

    /// Fire the windows whose timers are at or before `time`, then drop the state of those
    /// whose cleanup time has come.
    fn fire_until(&mut self, time: i64, out: &mut Batch, dead: &mut DeadLetters) {
        while let Some(first) = self.fire_timers.first().filter(|(t, ..)| *t <= time).cloned() {
            self.fire_timers.remove(&first);
            let (_, key, w) = first;
            self.emit(&key, &w, out, dead);
        }
        while let Some(first) = self.cleanup_timers.first().filter(|(t, ..)| *t <= time).cloned() {
            self.cleanup_timers.remove(&first);
            let (_, key, w) = first;
            self.accumulators.remove(&(key.clone(), w));
            if let Some(sessions) = self.sessions.get_mut(&key) {
                sessions.remove(&w);
                if sessions.is_empty() {
                    self.sessions.remove(&key);
                }
            }
        }
    }
}

impl Operator for WindowOperator {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        let now = match self.time {
            WindowTime::Event => None,
            WindowTime::Processing { clock } => Some(clock()),
        };
        for i in 0..input.len() {
            self.on_record(&input, i, now, dead)?;
        }
        self.flush(&input, dead)?;
        let mut fire_now = std::mem::take(&mut self.fire_now);
        fire_now.sort();
        fire_now.dedup();
        for (key, w) in fire_now.drain(..) {
            self.emit(&key, &w, out, dead);
        }
        self.fire_now = fire_now;
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: i64,
        out: &mut Batch,
        dead: &mut DeadLetters,
    ) -> Result<Option<i64>, OperatorError> {
        if !self.time.is_event() || watermark <= self.watermark {
            return Ok(Some(watermark));
        }
        self.watermark = watermark;
        self.fire_until(watermark, out, dead);
        Ok(Some(watermark))
    }

    fn next_processing_timer(&self) -> Option<i64> {
        match self.time {
            WindowTime::Event => None,
            WindowTime::Processing { .. } => self.fire_timers.first().map(|(t, ..)| *t),
        }
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        if !self.time.is_event() {
            self.fire_until(now, out, dead);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        if !self.time.is_event() {
            self.fire_until(i64::MAX, out, dead);
        }
        Ok(())
    }

    fn snapshot(&mut self, _id: u64) -> Result<Option<Vec<u8>>, OperatorError> {
        // Encoded straight from the operator's maps, nothing cloned: with 100 k keys the
        // snapshot runs on the task's thread at every barrier.
        let snap = snapshot::SnapshotRef {
            watermark: self.watermark,
            windows: self.accumulators.iter().map(|((k, w), acc)| snapshot::WindowRef(k, *w, acc.into())).collect(),
            // Event-time timers follow from the windows and the watermark (see `restore`):
            // leaving them out halves the blob.
            fire: if self.time.is_event() { Vec::new() } else { timer_refs(&self.fire_timers) },
            cleanup: if self.time.is_event() { Vec::new() } else { timer_refs(&self.cleanup_timers) },
            sessions: self.sessions.iter().map(|(k, s)| (serde_bytes::Bytes::new(k), s)).collect(),
        };
        rmp_serde::to_vec(&snap).map(Some).map_err(|e| crate::task::bad_snapshot(&self.name, e))
    }

    fn restore(&mut self, blobs: &[&[u8]], owns: &dyn Fn(&[u8]) -> bool) -> Result<(), OperatorError> {
        for blob in blobs {
            let snap: snapshot::Snapshot =
                rmp_serde::from_slice(blob).map_err(|e| crate::task::bad_snapshot(&self.name, e))?;
            // Every instance had the same watermark or a lower one; event time only grows.
            self.watermark = self.watermark.max(snap.watermark);
            for snapshot::Window(key, window, acc) in snap.windows.into_iter().filter(|w| owns(&w.0)) {
                let key = key.into_vec();
                if self.time.is_event() {
                    // In event time a window's cleanup timer lives as long as its state, and
                    // its firing timer until the watermark passes it.
                    self.cleanup_timers.insert((
                        trigger::cleanup_time(&window, self.allowed_lateness),
                        key.clone(),
                        window,
                    ));
                    let fire = trigger::fire_time(&window);
                    if fire > snap.watermark {
                        self.fire_timers.insert((fire, key.clone(), window));
                    }
                }
                self.accumulators.insert((key, window), acc.into());
            }
            let mine = |timers: Vec<snapshot::Timer>| {
                timers.into_iter().filter(|t| owns(&t.1)).map(|snapshot::Timer(at, key, w)| (at, key.into_vec(), w))
            };
            self.fire_timers.extend(mine(snap.fire));
            self.cleanup_timers.extend(mine(snap.cleanup));
            self.sessions.extend(snap.sessions.into_iter().filter(|(k, _)| owns(k)).map(|(k, s)| (k.into_vec(), s)));
        }
        Ok(())
    }
}

fn timer_refs(set: &BTreeSet<(i64, Key, TimeWindow)>) -> Vec<snapshot::TimerRef<'_>> {
    set.iter().map(|(t, k, w)| snapshot::TimerRef(*t, k, *w)).collect()
}

/// What a window operator's checkpoint blob holds: written from borrowed data (`*Ref`),
/// read back into owned data of the same layout.
mod snapshot {
    use serde::{Deserialize, Serialize};
    use serde_bytes::{ByteBuf, Bytes};

    use super::aggregation::Acc;
    use crate::window::{Accumulator, SessionWindows, TimeWindow};

    #[derive(Serialize)]
    pub struct SnapshotRef<'a> {
        pub watermark: i64,
        pub windows: Vec<WindowRef<'a>>,
        pub fire: Vec<TimerRef<'a>>,
        pub cleanup: Vec<TimerRef<'a>>,
        pub sessions: Vec<(&'a Bytes, &'a SessionWindows)>,
    }

    #[derive(Deserialize)]
    pub struct Snapshot {
        pub watermark: i64,
        pub windows: Vec<Window>,
        pub fire: Vec<Timer>,
        pub cleanup: Vec<Timer>,
        pub sessions: Vec<(ByteBuf, SessionWindows)>,
    }

    /// A key and window with its accumulator.
    #[derive(Serialize)]
    pub struct WindowRef<'a>(#[serde(with = "serde_bytes")] pub &'a [u8], pub TimeWindow, pub AccRef<'a>);

    #[derive(Deserialize)]
    pub struct Window(pub ByteBuf, pub TimeWindow, pub StoredAcc);

    /// A timer: its time, key and window.
    #[derive(Serialize)]
    pub struct TimerRef<'a>(pub i64, #[serde(with = "serde_bytes")] pub &'a [u8], pub TimeWindow);

    #[derive(Deserialize)]
    pub struct Timer(pub i64, pub ByteBuf, pub TimeWindow);

    #[derive(Serialize)]
    pub enum AccRef<'a> {
        Builtin(&'a Accumulator),
        Bytes(#[serde(with = "serde_bytes")] &'a [u8]),
        Elements(Vec<&'a Bytes>, &'a [i64]),
    }

    #[derive(Deserialize)]
    pub enum StoredAcc {
        Builtin(Accumulator),
        Bytes(ByteBuf),
        Elements(Vec<ByteBuf>, Vec<i64>),
    }

    impl<'a> From<&'a Acc> for AccRef<'a> {
        fn from(acc: &'a Acc) -> Self {
            match acc {
                Acc::Builtin(a) => AccRef::Builtin(a),
                Acc::Bytes(b) => AccRef::Bytes(b),
                Acc::Elements(rows, times) => {
                    AccRef::Elements((0..rows.len()).map(|i| Bytes::new(rows.value(i))).collect(), times)
                }
            }
        }
    }

    impl From<StoredAcc> for Acc {
        fn from(acc: StoredAcc) -> Self {
            match acc {
                StoredAcc::Builtin(a) => Acc::Builtin(a),
                StoredAcc::Bytes(b) => Acc::Bytes(b.into_vec()),
                StoredAcc::Elements(rows, times) => {
                    let mut batch = crate::record::Batch::with_capacity(rows.len(), rows.iter().map(|r| r.len()).sum());
                    rows.iter().for_each(|r| batch.push(r));
                    Acc::Elements(batch, times)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::END_OF_TIME;
    use crate::window::AggregateKind;

    fn run(op: &mut WindowOperator, rows: &[(&str, i64, i64)], watermark: Option<i64>) -> (Vec<String>, Vec<String>) {
        let mut input = Batch::new();
        for (k, ts, n) in rows {
            let v = record::encode(&Value::Map(vec![(Value::from("n"), Value::from(*n))]));
            input.push_record(&v, RowMeta { key: Some(&record::encode_str(k)), timestamp: Some(*ts) });
        }
        let (mut out, mut dead) = (Batch::new(), DeadLetters::default());
        op.process(input, &mut out, &mut dead).unwrap();
        if let Some(w) = watermark {
            op.on_watermark(w, &mut out, &mut dead).unwrap();
        }
        let rows = out.iter().map(|(v, _)| record::display_value(v)).collect();
        (rows, dead.0.iter().map(|d| d.kind.clone()).collect())
    }

    fn sum() -> WindowAggregate {
        WindowAggregate::Builtin { kind: AggregateKind::Sum, field: Some("n".into()) }
    }

    #[test]
    fn tumbling_windows_fire_when_the_watermark_passes_their_end() {
        let mut op =
            WindowOperator::new("w".into(), WindowAssigner::tumbling(10, 0).unwrap(), WindowTime::Event, 0, &sum())
                .unwrap();
        // [0,10) gets 1+2 for a, [10,20) gets 4; b has 3 in [0,10). Watermark 9 = end - 1
        // of [0,10): that window is complete, [10,20) is not.
        let (out, _) = run(&mut op, &[("a", 1, 1), ("a", 9, 2), ("b", 5, 3), ("a", 12, 4)], Some(9));
        let mut out = out;
        out.sort();
        assert_eq!(
            out,
            [
                r#"{"key":"a","window_start":0,"window_end":10,"sum":3}"#,
                r#"{"key":"b","window_start":0,"window_end":10,"sum":3}"#
            ]
        );
        let (out, _) = run(&mut op, &[], Some(END_OF_TIME));
        assert_eq!(out, [r#"{"key":"a","window_start":10,"window_end":20,"sum":4}"#]);
    }

    #[test]
    fn a_snapshot_restores_windows_timers_and_sessions_split_by_key() {
        let sessions = || WindowAssigner::session(10).unwrap();
        let mut op = WindowOperator::new("w".into(), sessions(), WindowTime::Event, 5, &sum()).unwrap();
        run(&mut op, &[("a", 1, 1), ("a", 8, 2), ("b", 5, 3), ("a", 40, 4)], Some(3));
        let blob = op.snapshot(1).unwrap().expect("window state");
        // Two new instances, one owning `a`, one owning `b`: together they go on as one.
        let (mut only_a, mut only_b) = (
            WindowOperator::new("w".into(), sessions(), WindowTime::Event, 5, &sum()).unwrap(),
            WindowOperator::new("w".into(), sessions(), WindowTime::Event, 5, &sum()).unwrap(),
        );
        let is_a = |k: &[u8]| k == record::encode_str("a").as_slice();
        only_a.restore(&[&blob], &is_a).unwrap();
        only_b.restore(&[&blob], &|k| !is_a(k)).unwrap();
        // A record at 12 bridges a's session [1,18) to [12,22): they merge.
        let (out, _) = run(&mut only_a, &[("a", 12, 10)], Some(END_OF_TIME));
        assert_eq!(
            out,
            [
                r#"{"key":"a","window_start":1,"window_end":22,"sum":13}"#,
                r#"{"key":"a","window_start":40,"window_end":50,"sum":4}"#
            ]
        );
        let (out, _) = run(&mut only_b, &[], Some(END_OF_TIME));
        assert_eq!(out, [r#"{"key":"b","window_start":5,"window_end":15,"sum":3}"#]);
        // The watermark came along: a record of the fired session is too late.
        let mut fresh = WindowOperator::new("w".into(), sessions(), WindowTime::Event, 0, &sum()).unwrap();
        run(&mut fresh, &[("c", 1, 1)], Some(100));
        let mut restored = WindowOperator::new("w".into(), sessions(), WindowTime::Event, 0, &sum()).unwrap();
        restored.restore(&[&fresh.snapshot(2).unwrap().unwrap()], &|_| true).unwrap();
        let (_, late) = run(&mut restored, &[("c", 2, 1)], None);
        assert_eq!(late, ["late"]);
    }

    #[test]
    fn late_records_within_lateness_refire_and_later_ones_go_to_the_late_output() {
        let mut op =
            WindowOperator::new("w".into(), WindowAssigner::tumbling(10, 0).unwrap(), WindowTime::Event, 5, &sum())
                .unwrap();
        let (out, _) = run(&mut op, &[("a", 3, 1)], Some(9));
        assert_eq!(out, [r#"{"key":"a","window_start":0,"window_end":10,"sum":1}"#]);
        // Watermark 12: [0,10) is complete but within lateness (cleanup at 9 + 5 = 14):
        // a record at 4 updates it and fires it again at once.
        let (out, late) = run(&mut op, &[("a", 4, 10)], Some(12));
        assert_eq!(out, [r#"{"key":"a","window_start":0,"window_end":10,"sum":11}"#]);
        assert!(late.is_empty());
        // Watermark 14 reaches the cleanup time: the window is gone, a record at 5 is late.
        let (out, late) = run(&mut op, &[], Some(14));
        assert!(out.is_empty());
        let (out, late2) = run(&mut op, &[("a", 5, 100)], None);
        assert!(out.is_empty());
        assert!(late.is_empty());
        assert_eq!(late2, ["late"]);
    }

    #[test]
    fn sliding_windows_count_a_record_in_every_window_it_falls_in() {
        let count = WindowAggregate::Builtin { kind: AggregateKind::Count, field: None };
        let mut op =
            WindowOperator::new("w".into(), WindowAssigner::sliding(10, 5, 0).unwrap(), WindowTime::Event, 0, &count)
                .unwrap();
        // t=7 is in [0,10) and [5,15); t=12 in [5,15) and [10,20).
        let (mut out, _) = run(&mut op, &[("a", 7, 0), ("a", 12, 0)], Some(END_OF_TIME));
        out.sort();
        assert_eq!(
            out,
            [
                r#"{"key":"a","window_start":0,"window_end":10,"count":1}"#,
                r#"{"key":"a","window_start":10,"window_end":20,"count":1}"#,
                r#"{"key":"a","window_start":5,"window_end":15,"count":2}"#,
            ]
        );
    }

    #[test]
    fn sessions_merge_when_a_record_bridges_them() {
        let mut op =
            WindowOperator::new("w".into(), WindowAssigner::session(10).unwrap(), WindowTime::Event, 0, &sum())
                .unwrap();
        // Gap 10: t=1 opens [1,11), t=20 opens [20,30); t=10 opens [10,20), which overlaps
        // the first and touches the second (Flink merges touching sessions): one [1,30).
        let (out, _) = run(&mut op, &[("a", 1, 1), ("a", 20, 2), ("a", 10, 3)], Some(END_OF_TIME));
        assert_eq!(out, [r#"{"key":"a","window_start":1,"window_end":30,"sum":6}"#]);
        // t=15 opens [15,25), which neither [1,11) nor [30,40) reaches; t=20 then bridges
        // [15,25) and [30,40) into [15,40) while [1,11) stays alone.
        let mut op =
            WindowOperator::new("w".into(), WindowAssigner::session(10).unwrap(), WindowTime::Event, 0, &sum())
                .unwrap();
        let (out, _) = run(&mut op, &[("a", 1, 1), ("a", 30, 2), ("a", 15, 3), ("a", 20, 4)], Some(END_OF_TIME));
        assert_eq!(
            out,
            [
                r#"{"key":"a","window_start":1,"window_end":11,"sum":1}"#,
                r#"{"key":"a","window_start":15,"window_end":40,"sum":9}"#
            ]
        );
    }

    #[test]
    fn processing_time_windows_follow_the_clock_and_flush_at_the_end() {
        static NOW: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
        fn clock() -> i64 {
            NOW.load(std::sync::atomic::Ordering::SeqCst)
        }
        let time = WindowTime::Processing { clock };
        let mut op =
            WindowOperator::new("w".into(), WindowAssigner::tumbling(10, 0).unwrap(), time, 0, &sum()).unwrap();
        // Event times are ignored: the records arrive at clock 3, so they are in [0,10).
        NOW.store(3, std::sync::atomic::Ordering::SeqCst);
        let (out, _) = run(&mut op, &[("a", 500, 1), ("a", -7, 2)], Some(END_OF_TIME));
        assert!(out.is_empty(), "watermarks do not fire processing-time windows");
        assert_eq!(op.next_processing_timer(), Some(9));
        NOW.store(12, std::sync::atomic::Ordering::SeqCst);
        run(&mut op, &[("a", 0, 4)], None);
        let (mut out, mut dead) = (Batch::new(), DeadLetters::default());
        op.on_processing_time(9, &mut out, &mut dead).unwrap();
        assert_eq!(record::display_value(out.value(0)), r#"{"key":"a","window_start":0,"window_end":10,"sum":3}"#);
        let mut out = Batch::new();
        op.finish(&mut out, &mut dead).unwrap();
        assert_eq!(record::display_value(out.value(0)), r#"{"key":"a","window_start":10,"window_end":20,"sum":4}"#);
        assert_eq!(op.next_processing_timer(), None);
    }

    #[test]
    fn records_without_event_time_are_dead_letters() {
        let mut op =
            WindowOperator::new("w".into(), WindowAssigner::tumbling(10, 0).unwrap(), WindowTime::Event, 0, &sum())
                .unwrap();
        let mut input = Batch::new();
        input.push_record(&record::encode_str("x"), RowMeta { key: Some(b"\xa1a"), timestamp: None });
        let (mut out, mut dead) = (Batch::new(), DeadLetters::default());
        op.process(input, &mut out, &mut dead).unwrap();
        assert_eq!(dead.0[0].kind, "missing-timestamp");
    }
}
