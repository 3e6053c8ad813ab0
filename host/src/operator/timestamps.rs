//! `assign_timestamps`: event time from a record field, and watermarks with bounded
//! out-of-orderness (Flink's `WatermarkStrategy.forBoundedOutOfOrderness` with a
//! timestamp assigner).
//!
//! The watermark is computed after every batch (`max_timestamp - bound - 1`) and sent after
//! that batch's records, so a record is never overtaken by a watermark derived from it.
//! Upstream watermarks stop here (this operator makes event time now), except the final
//! one at the end of the input, which must reach every window.
//!
//! With an idle timeout (Flink's `withIdleness`), an instance that gets no records for that
//! long of processing time says it is idle, so downstream operators stop waiting for its
//! watermark; its next record makes it active again. It checks every [`EMIT_INTERVAL_MS`]
//! (Flink's `autoWatermarkInterval`), so idleness is seen within one interval of the timeout.

use std::collections::VecDeque;
use std::time::Duration;

use crate::record::{Batch, RowMeta};
use crate::task::DeadLetter;
use crate::task::{DeadLetters, Operator, OperatorError};
use crate::time::{END_OF_TIME, TimeSignal, TimestampField, WatermarkGenerator};

/// How often an assigner with an idle timeout checks the clock.
pub const EMIT_INTERVAL_MS: i64 = 200;

pub struct TimestampAssigner {
    name: String,
    field: TimestampField,
    generator: WatermarkGenerator,
    idleness: bool,
    /// When the next idleness check is due (`None`: at once, to start the clock).
    next_check: Option<i64>,
    signals: VecDeque<TimeSignal>,
}

impl TimestampAssigner {
    pub fn new(name: String, field: &str, max_out_of_orderness: Duration) -> Self {
        Self {
            name,
            field: TimestampField::new(field),
            generator: WatermarkGenerator::new(max_out_of_orderness),
            idleness: false,
            next_check: None,
            signals: VecDeque::new(),
        }
    }

    /// Say this input is idle after `timeout` of processing time without records.
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.generator = self.generator.with_idleness(timeout);
        self.idleness = true;
        self
    }

    fn emit(&mut self, now: i64) {
        if let Some(signal) = self.generator.on_periodic_emit(now) {
            self.signals.push_back(signal);
        }
        if self.idleness {
            self.next_check = Some(now.saturating_add(EMIT_INTERVAL_MS));
        }
    }
}

impl Operator for TimestampAssigner {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        for i in 0..input.len() {
            match self.field.extract(input.value(i)) {
                Ok(t) => {
                    if let Some(active) = self.generator.on_event(t) {
                        self.signals.push_back(active);
                    }
                    out.push_record(input.value(i), RowMeta { timestamp: Some(t), ..input.meta(i) });
                }
                Err(e) => dead.push(DeadLetter::of_row(&self.name, "missing-timestamp", e.to_string(), &input, i)),
            }
        }
        // Batches are the emit interval: the clock only matters for idleness.
        self.emit(if self.idleness { crate::time::now_ms() } else { 0 });
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: i64,
        _out: &mut Batch,
        _dead: &mut DeadLetters,
    ) -> Result<Option<i64>, OperatorError> {
        Ok((watermark == END_OF_TIME).then_some(watermark))
    }

    fn take_time_signal(&mut self) -> Option<TimeSignal> {
        self.signals.pop_front()
    }

    fn next_processing_timer(&self) -> Option<i64> {
        (self.idleness && !self.generator.is_idle()).then(|| self.next_check.unwrap_or(0))
    }

    fn on_processing_time(&mut self, now: i64, _out: &mut Batch, _dead: &mut DeadLetters) -> Result<(), OperatorError> {
        if self.idleness {
            self.emit(now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::record::from_json as rec;

    #[test]
    fn stamps_records_and_emits_bounded_watermarks() {
        let mut op = TimestampAssigner::new("ts".into(), "t", Duration::from_millis(100));
        let mut input = Batch::new();
        for j in [r#"{"t":1000}"#, r#"{"t":"1970-01-01T00:00:02Z"}"#, r#"{"t":1500}"#, r#"{"x":1}"#] {
            input.push(&rec(j));
        }
        let (mut out, mut dead) = (Batch::new(), DeadLetters::default());
        op.process(input, &mut out, &mut dead).unwrap();
        assert_eq!((0..out.len()).map(|i| out.timestamp(i)).collect::<Vec<_>>(), [Some(1000), Some(2000), Some(1500)]);
        assert_eq!(dead.0.len(), 1);
        assert_eq!(dead.0[0].kind, "missing-timestamp");
        // max 2000 - bound 100 - 1
        assert_eq!(op.take_time_signal(), Some(TimeSignal::Watermark(1899)));
        assert_eq!(op.take_time_signal(), None);
        // Upstream watermarks stop here, except the end of time.
        assert_eq!(op.on_watermark(5, &mut out, &mut dead).unwrap(), None);
        assert_eq!(op.on_watermark(END_OF_TIME, &mut out, &mut dead).unwrap(), Some(END_OF_TIME));
    }

    #[test]
    fn with_idleness_says_idle_after_the_timeout_and_active_before_the_next_watermark() {
        let mut op = TimestampAssigner::new("ts".into(), "t", Duration::ZERO).with_idleness(Duration::from_secs(1));
        let (mut out, mut dead) = (Batch::new(), DeadLetters::default());
        // No batch yet: the first check is due at once and starts the clock.
        assert_eq!(op.next_processing_timer(), Some(0));
        op.on_processing_time(10_000, &mut out, &mut dead).unwrap();
        assert_eq!(op.next_processing_timer(), Some(10_000 + EMIT_INTERVAL_MS));
        op.on_processing_time(10_500, &mut out, &mut dead).unwrap();
        assert_eq!(op.take_time_signal(), None, "quiet for 500 ms of a 1 s timeout");
        op.on_processing_time(11_000, &mut out, &mut dead).unwrap();
        assert_eq!(op.take_time_signal(), Some(TimeSignal::Idle));
        assert_eq!(op.next_processing_timer(), None, "an idle input waits for records, not the clock");
        let mut input = Batch::new();
        input.push(&rec(r#"{"t":5}"#));
        op.process(input, &mut out, &mut dead).unwrap();
        assert_eq!(op.take_time_signal(), Some(TimeSignal::Active));
        assert_eq!(op.take_time_signal(), Some(TimeSignal::Watermark(4)));
    }
}
