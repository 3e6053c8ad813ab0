//! Event-time windows on a keyed stream, aggregated incrementally.
//!
//! Each record of a key is folded into the accumulator of each window it belongs to (one
//! for tumbling, `size / slide` for sliding, a merging session for session windows); no
//! window buffers its records. A window fires when the watermark passes its end, emitting
//! `{"key", "window_start", "window_end", <aggregate>: result}` with event time
//! `window_end - 1` (Flink's `TimeWindow.maxTimestamp`). With allowed lateness, a window's
//! state is kept until `max_timestamp + allowed_lateness`, and a late record within it
//! updates the window and fires it again at once; a record later than that for all its
//! windows goes to the late-data output (kind `late`). At the end of the input the final
//! watermark fires every window, as in Flink.
//!
//! State is in memory per parallel instance for now; keyed state in sled (issue 5) takes
//! the accumulators and timers over without changing this contract.

use std::collections::{BTreeSet, HashMap};

use rmpv::Value;

use super::{DeadLetters, Operator, OperatorError};
use crate::record::{self, Batch, RowMeta};
use crate::runtime::DeadLetter;
use crate::window::trigger::{self, OnElement};
use crate::window::{Accumulator, AggregateKind, SessionWindows, TimeWindow, WindowAssigner};

/// How a window's records are aggregated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowAggregate {
    /// A built-in aggregate over a numeric field (`count` needs none).
    Builtin { kind: AggregateKind, field: Option<String> },
}

impl WindowAggregate {
    /// The name of the result field in the output record.
    pub fn output_field(&self) -> &'static str {
        match self {
            WindowAggregate::Builtin { kind, .. } => match kind {
                AggregateKind::Count => "count",
                AggregateKind::Sum => "sum",
                AggregateKind::Min => "min",
                AggregateKind::Max => "max",
                AggregateKind::Avg => "avg",
            },
        }
    }
}

type Key = Vec<u8>;

pub struct WindowOperator {
    name: String,
    assigner: WindowAssigner,
    allowed_lateness: i64,
    aggregate: WindowAggregate,
    accumulators: HashMap<(Key, TimeWindow), Accumulator>,
    sessions: HashMap<Key, SessionWindows>,
    /// Event-time timers: (time, key, window), fired in time order.
    fire_timers: BTreeSet<(i64, Key, TimeWindow)>,
    cleanup_timers: BTreeSet<(i64, Key, TimeWindow)>,
    watermark: i64,
    windows: Vec<TimeWindow>,
}

impl WindowOperator {
    pub fn new(name: String, assigner: WindowAssigner, allowed_lateness: i64, aggregate: WindowAggregate) -> Self {
        Self {
            name,
            assigner,
            allowed_lateness: allowed_lateness.max(0),
            aggregate,
            accumulators: HashMap::new(),
            sessions: HashMap::new(),
            fire_timers: BTreeSet::new(),
            cleanup_timers: BTreeSet::new(),
            watermark: i64::MIN,
            windows: Vec::new(),
        }
    }

    fn dead(&self, input: &Batch, i: usize, kind: &str, error: String) -> DeadLetter {
        DeadLetter::of_row(&self.name, kind, error, input, i)
    }

    fn new_accumulator(&self) -> Accumulator {
        match &self.aggregate {
            WindowAggregate::Builtin { kind, .. } => Accumulator::new(*kind),
        }
    }

    fn add(&self, acc: &mut Accumulator, value: &[u8]) -> Result<(), String> {
        match &self.aggregate {
            WindowAggregate::Builtin { field, .. } => {
                acc.add_record(value, field.as_deref().unwrap_or("")).map_err(|e| e.to_string())
            }
        }
    }

    /// Fold a session's absorbed windows into `into` and drop their timers.
    fn merge_sessions(&mut self, key: &Key, into: TimeWindow, merged: &[TimeWindow]) -> Result<(), String> {
        let mut acc = self.accumulators.remove(&(key.clone(), into)).unwrap_or_else(|| self.new_accumulator());
        for w in merged.iter().filter(|w| **w != into) {
            if let Some(other) = self.accumulators.remove(&(key.clone(), *w)) {
                acc.merge(&other).map_err(|e| e.to_string())?;
            }
            self.forget_timers(key, w);
        }
        self.accumulators.insert((key.clone(), into), acc);
        Ok(())
    }

    fn forget_timers(&mut self, key: &Key, w: &TimeWindow) {
        self.fire_timers.remove(&(trigger::fire_time(w), key.clone(), *w));
        self.cleanup_timers.remove(&(trigger::cleanup_time(w, self.allowed_lateness), key.clone(), *w));
    }

    fn emit(&self, key: &Key, w: &TimeWindow, out: &mut Batch) {
        let Some(acc) = self.accumulators.get(&(key.clone(), *w)) else { return };
        let key_value = record::decode(key).unwrap_or_else(|_| Value::Binary(key.clone()));
        let row = Value::Map(vec![
            (Value::from("key"), key_value),
            (Value::from("window_start"), Value::from(w.start)),
            (Value::from("window_end"), Value::from(w.end)),
            (Value::from(self.aggregate.output_field()), acc.result()),
        ]);
        out.push_record(&record::encode(&row), RowMeta { key: None, timestamp: Some(w.max_timestamp()) });
    }

    fn on_record(
        &mut self,
        input: &Batch,
        i: usize,
        out: &mut Batch,
        dead: &mut DeadLetters,
    ) -> Result<(), OperatorError> {
        let Some(key) = input.key(i).map(<[u8]>::to_vec) else {
            return Err(OperatorError::Failed {
                operator: self.name.clone(),
                message: "got a record without a key; a window must follow key_by".into(),
            });
        };
        let Some(ts) = input.timestamp(i) else {
            let msg = "the record has no event time; add `assign_timestamps` before `key_by`".to_string();
            dead.push(self.dead(input, i, "missing-timestamp", msg));
            return Ok(());
        };
        let mut windows = std::mem::take(&mut self.windows);
        windows.clear();
        self.assigner.assign_into(ts, &mut windows);
        if trigger::is_record_late(ts, &windows, self.watermark, self.allowed_lateness) {
            let msg = format!(
                "late record: event time {ts} is past its windows' end plus the allowed lateness of {} ms (watermark {})",
                self.allowed_lateness, self.watermark
            );
            dead.push(self.dead(input, i, crate::runtime::LATE, msg));
            self.windows = windows;
            return Ok(());
        }
        for &assigned in &windows {
            let w = if self.assigner.is_merging() {
                let merge = self.sessions.entry(key.clone()).or_default().add(assigned);
                if let Err(e) = self.merge_sessions(&key, merge.into, &merge.merged) {
                    dead.push(self.dead(input, i, "error", e));
                    continue;
                }
                merge.into
            } else {
                assigned
            };
            if trigger::is_window_late(&w, self.watermark, self.allowed_lateness) {
                continue;
            }
            let mut acc = self.accumulators.remove(&(key.clone(), w)).unwrap_or_else(|| self.new_accumulator());
            let added = self.add(&mut acc, input.value(i));
            self.accumulators.insert((key.clone(), w), acc);
            if let Err(e) = added {
                dead.push(self.dead(input, i, "error", e));
                continue;
            }
            self.cleanup_timers.insert((trigger::cleanup_time(&w, self.allowed_lateness), key.clone(), w));
            match trigger::on_element(&w, self.watermark) {
                OnElement::FireNow => self.emit(&key, &w, out),
                OnElement::FireAt(t) => {
                    self.fire_timers.insert((t, key.clone(), w));
                }
            }
        }
        self.windows = windows;
        Ok(())
    }
}

impl Operator for WindowOperator {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        for i in 0..input.len() {
            self.on_record(&input, i, out, dead)?;
        }
        Ok(())
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
        while let Some(first) = self.fire_timers.first().filter(|(t, ..)| *t <= watermark).cloned() {
            self.fire_timers.remove(&first);
            let (_, key, w) = first;
            self.emit(&key, &w, out);
        }
        while let Some(first) = self.cleanup_timers.first().filter(|(t, ..)| *t <= watermark).cloned() {
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
        Ok(Some(watermark))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::END_OF_TIME;

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
        let mut op = WindowOperator::new("w".into(), WindowAssigner::tumbling(10, 0).unwrap(), 0, sum());
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
    fn late_records_within_lateness_refire_and_later_ones_go_to_the_late_output() {
        let mut op = WindowOperator::new("w".into(), WindowAssigner::tumbling(10, 0).unwrap(), 5, sum());
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
        let mut op = WindowOperator::new("w".into(), WindowAssigner::sliding(10, 5, 0).unwrap(), 0, count);
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
        let mut op = WindowOperator::new("w".into(), WindowAssigner::session(10).unwrap(), 0, sum());
        // Gap 10: t=1 opens [1,11), t=20 opens [20,30); t=10 opens [10,20), which overlaps
        // the first and touches the second (Flink merges touching sessions): one [1,30).
        let (out, _) = run(&mut op, &[("a", 1, 1), ("a", 20, 2), ("a", 10, 3)], Some(END_OF_TIME));
        assert_eq!(out, [r#"{"key":"a","window_start":1,"window_end":30,"sum":6}"#]);
        // t=15 opens [15,25), which neither [1,11) nor [30,40) reaches; t=20 then bridges
        // [15,25) and [30,40) into [15,40) while [1,11) stays alone.
        let mut op = WindowOperator::new("w".into(), WindowAssigner::session(10).unwrap(), 0, sum());
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
    fn records_without_event_time_are_dead_letters() {
        let mut op = WindowOperator::new("w".into(), WindowAssigner::tumbling(10, 0).unwrap(), 0, sum());
        let mut input = Batch::new();
        input.push_record(&record::encode_str("x"), RowMeta { key: Some(b"\xa1a"), timestamp: None });
        let (mut out, mut dead) = (Batch::new(), DeadLetters::default());
        op.process(input, &mut out, &mut dead).unwrap();
        assert_eq!(dead.0[0].kind, "missing-timestamp");
    }
}
