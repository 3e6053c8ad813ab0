//! `keyed.window(assigner)`: a windowed stream waiting for its aggregate.

use std::sync::Arc;
use std::time::Duration;

use super::DataStream;
use crate::graph::StepKind;
use crate::operator::{Operator, OperatorFactory, WindowAggregate, WindowOperator};
use crate::window::{AggregateKind, WindowAssigner};

/// A keyed stream cut into windows (Flink's `WindowedStream`).
pub struct WindowedStream {
    stream: DataStream,
    assigner: WindowAssigner,
    allowed_lateness: i64,
}

impl WindowedStream {
    pub(super) fn new(stream: DataStream, assigner: WindowAssigner) -> Self {
        Self { stream, assigner, allowed_lateness: 0 }
    }

    /// Keep each window's state this long after it fired: a late record within it updates
    /// the window and fires it again; later ones go to the late-data output.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.allowed_lateness = i64::try_from(lateness.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// Aggregate each window; emits `{"key", "window_start", "window_end", <aggregate>}`.
    pub fn aggregate(self, aggregate: WindowAggregate) -> DataStream {
        let stream = self.stream;
        if !stream.keyed {
            return stream.fail("window: needs a keyed stream: put `key_by` right before it".into());
        }
        let step_name = format!("window[{}] {:?} {}", stream.steps.len(), self.assigner, aggregate.output_field());
        let op_name = step_name.clone();
        let (assigner, lateness) = (self.assigner, self.allowed_lateness);
        let factory: OperatorFactory = Arc::new(move || {
            Ok(Box::new(WindowOperator::new(op_name.clone(), assigner, lateness, aggregate.clone()))
                as Box<dyn Operator>)
        });
        stream.push(step_name, StepKind::Keyed, factory)
    }

    fn builtin(self, kind: AggregateKind, field: Option<&str>) -> DataStream {
        self.aggregate(WindowAggregate::Builtin { kind, field: field.map(str::to_string) })
    }

    pub fn count(self) -> DataStream {
        self.builtin(AggregateKind::Count, None)
    }

    pub fn sum(self, field: &str) -> DataStream {
        self.builtin(AggregateKind::Sum, Some(field))
    }

    pub fn min(self, field: &str) -> DataStream {
        self.builtin(AggregateKind::Min, Some(field))
    }

    pub fn max(self, field: &str) -> DataStream {
        self.builtin(AggregateKind::Max, Some(field))
    }

    pub fn avg(self, field: &str) -> DataStream {
        self.builtin(AggregateKind::Avg, Some(field))
    }
}
