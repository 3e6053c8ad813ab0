//! [`DataStream`]: a stream being built, a source and the steps after it (Flink's
//! `DataStream`), with how `key_by` finds keys and how watermarks are made.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use std::path::PathBuf;

use super::{BroadcastStream, KeyedStream};
use super::{Function, StreamEnvironment};
use crate::connectors::{Collected, LineFormat, SinkSpec, SourceSpec};
use crate::graph::{BroadcastInput, Step, StepKind, Stream, StreamInput};
use crate::operator::{KeyByOperator, NativeMap, TransformKind, TransformOperator};
use crate::plugin::FunctionKind;
use crate::task::{Operator, OperatorError, OperatorFactory, Partitioning};

/// How `key_by` finds keys.
#[derive(Clone)]
pub enum KeySelector {
    /// A field of map records.
    Field(String),
    /// A key-selector plugin function.
    Function(Function),
}

impl From<Function> for KeySelector {
    fn from(f: Function) -> Self {
        KeySelector::Function(f)
    }
}

impl From<&str> for KeySelector {
    fn from(field: &str) -> Self {
        KeySelector::Field(field.to_string())
    }
}

/// How watermarks are made from event time (Flink's `WatermarkStrategy`).
///
/// ```
/// use std::time::Duration;
/// use weir::env::WatermarkStrategy;
/// let s = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5)).with_idleness(Duration::from_secs(30));
/// assert_eq!(s.idleness, Some(Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatermarkStrategy {
    /// How late a record may be: the watermark trails the largest event time by this much.
    pub max_out_of_orderness: std::time::Duration,
    /// Processing time without records after which a parallel instance says it is idle,
    /// so downstream operators stop waiting for its watermark.
    pub idleness: Option<std::time::Duration>,
}

impl WatermarkStrategy {
    pub fn bounded_out_of_orderness(bound: std::time::Duration) -> Self {
        Self { max_out_of_orderness: bound, idleness: None }
    }

    pub fn with_idleness(mut self, timeout: std::time::Duration) -> Self {
        self.idleness = Some(timeout);
        self
    }
}

/// A stream being built (Flink's `DataStream`): a handle on one stream of the job's graph,
/// a source or the output of a step. Using one twice (it is `Clone`) sends its records to
/// both users, as in Flink.
#[derive(Clone)]
pub struct DataStream {
    pub(super) env: StreamEnvironment,
    /// The stream of the graph this handle stands for.
    pub(super) node: usize,
    pub(crate) keyed: bool,
    /// How the next step reads this stream, when the job said (`rebalance()` and friends).
    pub(super) partition: Option<Partitioning>,
}

impl DataStream {
    /// A stream whose records are the step's output on this stream's records.
    pub(crate) fn push(mut self, name: String, kind: StepKind, factory: OperatorFactory) -> Self {
        let mut step = Step::new(name, kind, factory);
        step.input = self.partition.take();
        let node = self.env.add_stream(Stream {
            name: String::new(),
            input: StreamInput::Streams(vec![self.node]),
            steps: vec![step],
        });
        Self { env: self.env, node, keyed: kind == StepKind::KeyBy, partition: None }
    }

    /// The place of the next step among the job's steps, which names it (`map[3]`): for a
    /// line of steps, its place after the source.
    pub(super) fn next_index(&self) -> usize {
        self.env.state().streams.iter().map(|s| s.steps.len()).sum()
    }

    /// Name this stream in the job's graph (what `weir check` and graph errors show).
    pub(crate) fn named(self, name: &str) -> Self {
        self.env.state().streams[self.node].name = name.to_string();
        self
    }

    /// Change the step that made this stream (its uid, parallelism, broadcast input).
    pub(super) fn with_step<T>(&self, change: impl FnOnce(&mut Step) -> T) -> Option<T> {
        self.env.state().streams[self.node].steps.last_mut().map(change)
    }

    /// The next step reads this stream partitioned by `partitioning` (one of `Rebalance`,
    /// `Rescale`, `Shuffle`, `Broadcast`, `Global`; Flink's `rebalance()`, `rescale()`,
    /// `shuffle()`, `broadcast()`, `global()`): it starts a stage of its own, at its own
    /// parallelism or the job's default.
    pub fn partition(mut self, partitioning: Partitioning) -> Self {
        if self.keyed {
            return self.fail(format!(
                "partition {}: a keyed stream goes by key to the step after key_by; partition before key_by",
                partitioning.name()
            ));
        }
        if matches!(partitioning, Partitioning::Forward | Partitioning::KeyGroups { .. }) {
            return self.fail(format!("partition {}: use key_by to partition by key", partitioning.name()));
        }
        self.partition = Some(partitioning);
        self
    }

    /// This stream and `others` as one (Flink's `union`): the steps after it get the records
    /// of all of them, in no particular order between streams; event time is the least of
    /// theirs, and a stream that ends holds nothing back. Keyed streams cannot be united:
    /// key_by after the union.
    pub fn union(self, others: impl IntoIterator<Item = DataStream>) -> Self {
        let mut inputs = vec![self.node];
        for other in others {
            if other.keyed || self.keyed {
                return self.fail("union(): a union is not keyed; key_by after the union".into());
            }
            inputs.push(other.node);
        }
        let node =
            self.env.add_stream(Stream { name: String::new(), input: StreamInput::Streams(inputs), steps: Vec::new() });
        Self { env: self.env, node, keyed: false, partition: None }
    }

    /// Whole batches round-robin over the next step's instances (Flink's `rebalance()`).
    pub fn rebalance(self) -> Self {
        self.partition(Partitioning::Rebalance)
    }

    /// Round-robin over a share of the next step's instances, without crossing between
    /// shares (Flink's `rescale()`).
    pub fn rescale(self) -> Self {
        self.partition(Partitioning::Rescale { upstream: 0 })
    }

    /// Each record to a random instance of the next step (Flink's `shuffle()`).
    pub fn shuffle(self) -> Self {
        self.partition(Partitioning::Shuffle)
    }

    /// Every record to the first instance of the next step (Flink's `global()`).
    pub fn global(self) -> Self {
        self.partition(Partitioning::Global)
    }

    /// This stream as the broadcast side of a connected stream (Flink's
    /// `DataStream.broadcast()`), for [`KeyedStream::connect`]. It must come straight from
    /// its source: transform broadcast records in the process function's
    /// `process-broadcast`.
    pub fn broadcast(self) -> BroadcastStream {
        let source = {
            let state = self.env.state();
            let stream = &state.streams[self.node];
            match &stream.input {
                StreamInput::Source(spec) if stream.steps.is_empty() => Some(spec.clone()),
                _ => None,
            }
        };
        match source {
            Some(source) => BroadcastStream { input: BroadcastInput { source, preload: false } },
            None => {
                let input = BroadcastInput { source: SourceSpec::collection(Vec::new()), preload: false };
                self.fail(
                    "broadcast(): a broadcast stream takes its records straight from its source (one source); transform them in the process function's `process-broadcast`".into(),
                );
                BroadcastStream { input }
            }
        }
    }

    pub(crate) fn fail(self, message: String) -> Self {
        self.env.state().errors.push(message);
        self
    }

    fn transform(self, kind: TransformKind, f: Function) -> Self {
        let Function::Plugin { plugin, name } = f;
        let index = self.next_index();
        let step_name = format!("{}[{index}] {}.{}", kind.as_str(), plugin.label(), name);
        // Without the plugin's version: a new version of the plugin keeps the step's uid.
        let uid = format!("{}[{index}] {}.{}", kind.as_str(), plugin.info().name, name);
        if let Err(e) = plugin.function(&name, &[kind.function_kind()]) {
            return self.fail(format!("{step_name}: {e}"));
        }
        let cell = self.env.deploy_target(&step_name, plugin, &name, &[kind.function_kind()]);
        let op_name = step_name.clone();
        let factory: OperatorFactory = Arc::new(move |_: &crate::task::InstanceContext| {
            let op = TransformOperator::new(op_name.clone(), kind, name.clone(), cell.clone())?;
            Ok(Box::new(op) as Box<dyn Operator>)
        });
        self.push(step_name, StepKind::Stateless, factory).uid_default(uid)
    }

    /// One output record per input record.
    pub fn map(self, f: Function) -> Self {
        self.transform(TransformKind::Map, f)
    }

    /// Keep the records the function accepts.
    pub fn filter(self, f: Function) -> Self {
        self.transform(TransformKind::Filter, f)
    }

    /// Any number of output records per input record.
    pub fn flat_map(self, f: Function) -> Self {
        self.transform(TransformKind::FlatMap, f)
    }

    /// A map by a native Rust closure over serde types (decoded and encoded as a Rust
    /// plugin would: structs as maps). The closure is cloned for each parallel instance.
    pub fn map_native<T, U, F>(self, name: &str, f: F) -> Self
    where
        T: DeserializeOwned + 'static,
        U: Serialize + 'static,
        F: Fn(T) -> U + Clone + Send + Sync + 'static,
    {
        let step_name = format!("map[{}] native {name}", self.next_index());
        let op_name = step_name.clone();
        let factory: OperatorFactory = Arc::new(move |_: &crate::task::InstanceContext| {
            Ok(Box::new(NativeMap::typed(op_name.clone(), f.clone())) as Box<dyn Operator>)
        });
        self.push(step_name, StepKind::Stateless, factory)
    }

    /// A map by a native closure over raw MessagePack rows: it reads the input row and
    /// appends exactly one output row to the buffer (an `Err` sends the row to the
    /// dead-letter output). For hand-tuned native steps and baselines.
    pub fn map_native_raw<F>(self, name: &str, f: F) -> Self
    where
        F: Fn(&[u8], &mut Vec<u8>) -> Result<(), String> + Clone + Send + Sync + 'static,
    {
        let step_name = format!("map[{}] native {name}", self.next_index());
        let op_name = step_name.clone();
        let factory: OperatorFactory = Arc::new(move |_: &crate::task::InstanceContext| {
            Ok(Box::new(NativeMap::new(op_name.clone(), f.clone())) as Box<dyn Operator>)
        });
        self.push(step_name, StepKind::Stateless, factory)
    }

    /// Event time from `field` (epoch ms, or an RFC 3339 string) and watermarks that allow
    /// records to arrive up to `max_out_of_orderness` late (Flink's
    /// `forBoundedOutOfOrderness`). Records without a readable time go to the dead letters.
    pub fn assign_timestamps(self, field: &str, max_out_of_orderness: std::time::Duration) -> Self {
        self.assign_timestamps_with(field, WatermarkStrategy::bounded_out_of_orderness(max_out_of_orderness))
    }

    /// Event time from `field`, watermarks by `strategy` (bound and idleness).
    pub fn assign_timestamps_with(self, field: &str, strategy: WatermarkStrategy) -> Self {
        let step_name = format!("assign_timestamps[{}] {field}", self.next_index());
        let (op_name, field) = (step_name.clone(), field.to_string());
        let factory: OperatorFactory = Arc::new(move |_: &crate::task::InstanceContext| {
            let mut op =
                crate::operator::TimestampAssigner::new(op_name.clone(), &field, strategy.max_out_of_orderness);
            if let Some(timeout) = strategy.idleness {
                op = op.with_idleness(timeout);
            }
            Ok(Box::new(op) as Box<dyn Operator>)
        });
        self.push(step_name, StepKind::Stateless, factory)
    }

    /// Partition by key: records with the same key go to the same parallel instance of
    /// the keyed step that follows.
    pub fn key_by(self, selector: impl Into<KeySelector>) -> KeyedStream {
        let selector = selector.into();
        let index = self.next_index();
        let stream = match selector {
            KeySelector::Field(field) => {
                let step_name = format!("key_by[{index}] field {field}");
                let op_name = step_name.clone();
                let factory: OperatorFactory = Arc::new(move |_: &crate::task::InstanceContext| {
                    let source = crate::operator::KeySource::Field(field.clone());
                    Ok(Box::new(KeyByOperator::new(op_name.clone(), source)) as Box<dyn Operator>)
                });
                self.push(step_name, StepKind::KeyBy, factory)
            }
            KeySelector::Function(Function::Plugin { plugin, name }) => {
                let step_name = format!("key_by[{index}] {}.{}", plugin.label(), name);
                let uid = format!("key_by[{index}] {}.{}", plugin.info().name, name);
                if let Err(e) = plugin.function(&name, &[FunctionKind::KeySelector]) {
                    return KeyedStream { stream: self.fail(format!("{step_name}: {e}")) };
                }
                let op_name = step_name.clone();
                let factory: OperatorFactory = Arc::new(move |_: &crate::task::InstanceContext| {
                    let t = plugin
                        .transformer(&name, &[FunctionKind::KeySelector])
                        .map_err(|source| OperatorError::Plugin { operator: op_name.clone(), source })?;
                    let source = crate::operator::KeySource::Selector(Box::new(t));
                    Ok(Box::new(KeyByOperator::new(op_name.clone(), source)) as Box<dyn Operator>)
                });
                self.push(step_name, StepKind::KeyBy, factory).uid_default(uid)
            }
        };
        KeyedStream { stream }
    }

    /// Parallelism of the last step (like Flink's `setParallelism` on an operator).
    pub fn set_parallelism(self, parallelism: usize) -> Self {
        if self.with_step(|step| step.parallelism = Some(parallelism)).is_none() {
            return self.fail("set_parallelism: the source's parallelism is fixed at 1; set it on a step".into());
        }
        self
    }

    /// Sets the last step's default uid (one that needs no check: the builder made it).
    pub(super) fn uid_default(self, uid: String) -> Self {
        self.with_step(|step| step.uid = uid);
        self
    }

    /// The stable id of the last step (Flink's `uid`): it keys the step's state in
    /// checkpoints and savepoints, so the state stays with the step when steps are added,
    /// removed or reordered, or its plugin renamed. Letters, digits, `_`, `-`, `.`, `:`.
    pub fn uid(self, uid: &str) -> Self {
        if let Err(e) = crate::graph::check_uid(uid) {
            return self.fail(format!("uid `{uid}`: {e}"));
        }
        if self.with_step(|step| step.uid = uid.to_string()).is_none() {
            return self.fail(format!("uid `{uid}`: the source has no state to name; set it on a step"));
        }
        self
    }

    /// End the pipeline in a sink.
    pub fn sink_to(self, sink: SinkSpec) {
        if let Some(p) = self.partition {
            self.env.state().errors.push(format!(
                "partition {}: a step must follow it (the sink reads every instance of the last step)",
                p.name()
            ));
        }
        self.env.add_sink(self.node, None, sink);
    }

    /// End the stream in a sink named `name` (what names its commits and its line in
    /// `weir check`; the job file's `sinks:` keys).
    pub fn sink_to_named(self, name: &str, sink: SinkSpec) {
        self.env.add_sink(self.node, Some(name.to_string()), sink);
    }

    /// Print every record to stdout, one per line.
    pub fn print(self) {
        self.sink_to(SinkSpec::print());
    }

    /// Write every record to a file, one per line.
    pub fn write_to_file(self, path: impl Into<PathBuf>, format: LineFormat) {
        self.sink_to(SinkSpec::file(path, format));
    }

    /// Collect every record (MessagePack) into memory; read it after `execute`.
    pub fn collect(self) -> Collected {
        let into: Collected = Arc::default();
        self.sink_to(SinkSpec::collect(into.clone()));
        into
    }

    /// Throw records away (for benchmarks).
    pub fn discard(self) {
        self.sink_to(SinkSpec::discard());
    }
}
