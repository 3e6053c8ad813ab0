//! `assign_timestamps`: event time from a record field, and watermarks with bounded
//! out-of-orderness (Flink's `WatermarkStrategy.forBoundedOutOfOrderness` with a
//! timestamp assigner).
//!
//! The watermark is computed after every batch (`max_timestamp - bound - 1`) and sent after
//! that batch's records, so a record is never overtaken by a watermark derived from it.
//! Upstream watermarks stop here (this operator makes event time now), except the final
//! one at the end of the input, which must reach every window.

use std::time::Duration;

use super::{DeadLetters, Operator, OperatorError};
use crate::record::{Batch, RowMeta};
use crate::runtime::DeadLetter;
use crate::time::{END_OF_TIME, TimeSignal, TimestampField, WatermarkGenerator};

pub struct TimestampAssigner {
    name: String,
    field: TimestampField,
    generator: WatermarkGenerator,
    pending: Option<i64>,
}

impl TimestampAssigner {
    pub fn new(name: String, field: &str, max_out_of_orderness: Duration) -> Self {
        Self {
            name,
            field: TimestampField::new(field),
            generator: WatermarkGenerator::new(max_out_of_orderness),
            pending: None,
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
                    self.generator.on_event(t);
                    out.push_record(input.value(i), RowMeta { timestamp: Some(t), ..input.meta(i) });
                }
                Err(e) => dead.push(DeadLetter::of_row(&self.name, "missing-timestamp", e.to_string(), &input, i)),
            }
        }
        // Batches are the emit interval: processing time does not matter for the bound.
        if let Some(TimeSignal::Watermark(w)) = self.generator.on_periodic_emit(0) {
            self.pending = Some(w);
        }
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

    fn take_watermark(&mut self) -> Option<i64> {
        self.pending.take()
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
        assert_eq!(op.take_watermark(), Some(1899));
        assert_eq!(op.take_watermark(), None);
        // Upstream watermarks stop here, except the end of time.
        assert_eq!(op.on_watermark(5, &mut out, &mut dead).unwrap(), None);
        assert_eq!(op.on_watermark(END_OF_TIME, &mut out, &mut dead).unwrap(), Some(END_OF_TIME));
    }
}
