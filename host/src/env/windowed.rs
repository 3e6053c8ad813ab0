//! `keyed.window(assigner)`: a windowed stream waiting for its aggregate.

use std::sync::Arc;
use std::time::Duration;

use super::DataStream;
use super::Function;
use crate::graph::StepKind;
use crate::operator::{WindowAggregate, WindowOperator, WindowTime};
use crate::plugin::FunctionKind;
use crate::task::{Operator, OperatorFactory};
use crate::window::{AggregateKind, WindowAssigner};

/// A keyed stream cut into windows (Flink's `WindowedStream`).
pub struct WindowedStream {
    stream: DataStream,
    assigner: WindowAssigner,
    time: WindowTime,
    allowed_lateness: i64,
}

impl WindowedStream {
    pub(super) fn new(stream: DataStream, assigner: WindowAssigner) -> Self {
        Self { stream, assigner, time: WindowTime::Event, allowed_lateness: 0 }
    }

    /// Keep each window's state this long after it fired: a late record within it updates
    /// the window and fires it again; later ones go to the late-data output.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.allowed_lateness = i64::try_from(lateness.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// Follow the wall clock instead of event time (Flink's `*ProcessingTimeWindows`): a
    /// record belongs to the windows of the time it arrives, and a window fires when the
    /// clock passes its end. No `assign_timestamps` is needed, and nothing is late.
    pub fn processing_time(mut self) -> Self {
        self.time = WindowTime::processing();
        self
    }

    /// Aggregate each window with the Wasm UDAF `f` (a function of kind `aggregate`), fed
    /// each record whole or, with `field`, that field's value; emits
    /// `{"key", "window_start", "window_end", <function name>: result}`.
    pub fn aggregate_with(self, f: Function, field: Option<&str>) -> DataStream {
        let Function::Plugin { plugin, name } = f;
        if let Err(e) = plugin.function(&name, &[FunctionKind::Aggregate]) {
            return self.stream.fail(format!("window aggregate {}.{name}: {e}", plugin.label()));
        }
        let output = name.clone();
        self.aggregate(WindowAggregate::Udaf { plugin, function: name, field: field.map(str::to_string), output })
    }

    /// Call the Wasm process-window function `f` (kind `process_window`, Flink's
    /// `ProcessWindowFunction`) with all the records of each key's window when it fires: it
    /// gets the key, the window's bounds and the records, and emits its own rows (event time
    /// `window_end - 1`). The window keeps its records until then, where an aggregate keeps
    /// one accumulator.
    pub fn process(self, f: Function) -> DataStream {
        let Function::Plugin { plugin, name } = f;
        if let Err(e) = plugin.function(&name, &[FunctionKind::ProcessWindow]) {
            return self.stream.fail(format!("window process {}.{name}: {e}", plugin.label()));
        }
        self.aggregate(WindowAggregate::Process { plugin, function: name })
    }

    /// Aggregate each window; emits `{"key", "window_start", "window_end", <aggregate>}`.
    pub fn aggregate(self, aggregate: WindowAggregate) -> DataStream {
        let stream = self.stream;
        if !stream.keyed {
            return stream.fail("window: needs a keyed stream: put `key_by` right before it".into());
        }
        // The uid leaves the UDAF's version out: a new version keeps the windows' state.
        let (what, what_uid) = match &aggregate {
            WindowAggregate::Udaf { plugin, function, .. } | WindowAggregate::Process { plugin, function } => {
                (format!("{}.{function}", plugin.label()), format!("{}.{function}", plugin.info().name))
            }
            builtin => (builtin.output_field().to_string(), builtin.output_field().to_string()),
        };
        let index = stream.next_index();
        let step_name = format!("window[{index}] {} {what}", self.assigner);
        let uid = format!("window[{index}] {} {what_uid}", self.assigner);
        let op_name = step_name.clone();
        let (assigner, time, lateness) = (self.assigner, self.time, self.allowed_lateness);
        let factory: OperatorFactory = Arc::new(move |_: &crate::task::InstanceContext| {
            let op = WindowOperator::new(op_name.clone(), assigner, time, lateness, &aggregate)?;
            Ok(Box::new(op) as Box<dyn Operator>)
        });
        stream.push(step_name, StepKind::Keyed, factory).uid_default(uid)
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
