//! The task layer: the vocabulary every task speaks, at the bottom of the engine.
//!
//! Arroyo keeps this in `arroyo-types` and `arroyo-operator`; Flink in `StreamTask` and its
//! `StreamOperator`. Operators and connectors are written against it and the runtime wires
//! it together, so imports run one way: this layer knows neither the operators, the
//! connectors, the graph nor the runtime (`tests/layers.rs` checks it).
//!
//! - [`Message`] and [`Output`]: what travels between tasks, in order (data, time signals,
//!   barriers), and where a task's output goes (forward, rebalance, broadcast, key groups).
//! - [`DeadLetter`]: a record that failed, with why; [`run_dead_letters`] the task that
//!   writes them.
//! - [`Operator`], [`OperatorFactory`], [`InstanceContext`]: what a stage runs; the stage's
//!   run loop is [`StageInstance`], with barrier alignment in [`Alignment`].
//! - [`SourceContext`] (what a source emits into) and [`SinkWriter`] with [`run_sink`].
//! - [`Ack`], [`CoordinatorHandle`], [`Committer`]: what tasks report to the checkpoint
//!   coordinator, and the sink commit rule.
//! - [`JobControl`] (cancellation, counters, checkpoint progress) and [`ConnectorHealth`].
//! - [`ConnectorError`], [`OperatorError`], [`TaskError`]: what stops a task.

mod alignment;
mod checkpoint;
mod control;
mod dead_letter;
mod error;
mod health;
mod operator;
mod partition;
mod sink;
mod source;
mod stage;

pub(crate) use alignment::Alignment;
pub use checkpoint::{Ack, Committer, CoordinatorHandle};
pub use control::JobControl;
pub use dead_letter::{DeadLetter, DeadLetters, LATE, Payload, run_dead_letters};
pub use error::{ConnectorError, TaskError};
pub use health::{Backoff, ConnectorHealth, HealthRegistry};
pub use operator::{InstanceContext, JobState, Operator, OperatorError, OperatorFactory, bad_snapshot};
pub use partition::{Disconnected, Message, Output, Partitioning};
pub use sink::{OpenedSink, SinkContext, SinkWriter, run_sink};
pub use source::{POLL_INTERVAL, SourceContext};
pub use stage::{BroadcastRx, StageInstance, TaskStats};
