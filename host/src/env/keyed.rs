//! [`KeyedStream`]: a stream partitioned by key (Flink's `KeyedStream`): rolling
//! aggregates, windows, keyed process functions, a connected broadcast stream.

use std::sync::Arc;

use super::Function;
use super::{BroadcastConnectedStream, BroadcastStream, DataStream, WindowedStream};
use crate::graph::StepKind;
use crate::operator::{RollingAggregate, RollingKind};
use crate::plugin::FunctionKind;
use crate::task::{Operator, OperatorFactory};

/// What a keyed stream can be connected to: a [`BroadcastStream`] or another [`KeyedStream`].
pub trait Connect {
    type Connected;
    fn connected_to(self, keyed: KeyedStream) -> Self::Connected;
}

impl Connect for BroadcastStream {
    type Connected = BroadcastConnectedStream;
    fn connected_to(self, keyed: KeyedStream) -> BroadcastConnectedStream {
        BroadcastConnectedStream { keyed, broadcast: self }
    }
}

impl Connect for KeyedStream {
    type Connected = ConnectedStreams;
    fn connected_to(self, keyed: KeyedStream) -> ConnectedStreams {
        ConnectedStreams { first: keyed, second: self }
    }
}

/// Two keyed streams connected (Flink's `ConnectedStreams` of two `KeyedStream`s): records
/// of either with the same key meet in one co-process function.
pub struct ConnectedStreams {
    first: KeyedStream,
    second: KeyedStream,
}

impl ConnectedStreams {
    /// The Wasm co-process function `f` (kind `co_process`, Flink's
    /// `KeyedCoProcessFunction`): the first stream's records reach its `process-element1`,
    /// the second's its `process-element2`, with the state and timers of their key shared;
    /// event time is the least of both streams'.
    pub fn process(self, f: Function) -> DataStream {
        let (first, second) = (self.first.stream, self.second.stream);
        let Function::Plugin { plugin, name } = f;
        let step_name = format!("co_process[{}] {}.{}", first.next_index(), plugin.info().name, name);
        if !first.keyed || !second.keyed {
            return first.fail(format!("{step_name}: connects two keyed streams: key_by each before connect"));
        }
        if let Err(e) = plugin.function(&name, &[FunctionKind::CoProcess]) {
            return first.fail(format!("{step_name}: {e}"));
        }
        let env = first.env.clone();
        let cell = env.deploy_target(&step_name, plugin, &name, &[FunctionKind::CoProcess]);
        let op_name = step_name.clone();
        let factory: OperatorFactory = Arc::new(move |ctx: &crate::task::InstanceContext| {
            let op = crate::operator::ProcessOperator::new(op_name.clone(), cell.clone(), &name, ctx)?;
            Ok(Box::new(op) as Box<dyn Operator>)
        });
        let step = crate::graph::Step::new(step_name, StepKind::Keyed, factory);
        let node = env.add_stream(crate::graph::Stream {
            name: String::new(),
            input: crate::graph::StreamInput::Connect(first.node, second.node),
            steps: vec![step],
        });
        DataStream { env, node, keyed: false, partition: None }
    }
}

/// A stream partitioned by key, waiting for a keyed step.
pub struct KeyedStream {
    pub(super) stream: DataStream,
}

impl KeyedStream {
    fn rolling(self, kind: RollingKind) -> DataStream {
        let stream = self.stream;
        if !stream.keyed {
            let message = format!("{}: needs a keyed stream: put `key_by` right before it", kind.as_str());
            return stream.fail(message);
        }
        let step_name = format!("{}[{}]", kind.as_str(), stream.next_index());
        let op_name = step_name.clone();
        let factory: OperatorFactory = Arc::new(move |_: &crate::task::InstanceContext| {
            Ok(Box::new(RollingAggregate::new(op_name.clone(), kind.clone())) as Box<dyn Operator>)
        });
        stream.push(step_name, StepKind::Keyed, factory)
    }

    /// Windows of event time per key (tumbling, sliding or session), aggregated by the
    /// step that follows: `count()`, `sum(field)`, ... (Flink's `keyBy(..).window(..)`).
    pub fn window(self, assigner: crate::window::WindowAssigner) -> WindowedStream {
        WindowedStream::new(self.stream, assigner)
    }

    /// A keyed process function (Flink's `KeyedProcessFunction`): the Wasm function `f` (of
    /// kind `process`) handles each element with state and timers of its key, kept by the
    /// host.
    pub fn process(self, f: Function) -> DataStream {
        let stream = self.stream;
        let Function::Plugin { plugin, name } = f;
        let step_name = format!("process[{}] {}.{}", stream.next_index(), plugin.info().name, name);
        if !stream.keyed {
            return stream.fail(format!("{step_name}: needs a keyed stream: put `key_by` right before it"));
        }
        if let Err(e) = plugin.function(&name, &[FunctionKind::Process]) {
            return stream.fail(format!("{step_name}: {e}"));
        }
        let cell = stream.env.deploy_target(&step_name, plugin, &name, &[FunctionKind::Process]);
        let op_name = step_name.clone();
        let factory: OperatorFactory = Arc::new(move |ctx: &crate::task::InstanceContext| {
            let op = crate::operator::ProcessOperator::new(op_name.clone(), cell.clone(), &name, ctx)?;
            Ok(Box::new(op) as Box<dyn Operator>)
        });
        stream.push(step_name, StepKind::Keyed, factory)
    }

    /// Connect another stream (Flink's `connect`): a broadcast stream, whose every record
    /// reaches the process function after it in every parallel instance
    /// (`process-broadcast`), or another keyed stream, whose records meet this one's by key
    /// in a co-process function (`process-element2`, state and timers shared per key).
    pub fn connect<S: Connect>(self, other: S) -> S::Connected {
        other.connected_to(self)
    }

    /// A running count per key: emits `{"key": k, "count": n}` for every record.
    pub fn count(self) -> DataStream {
        self.rolling(RollingKind::Count)
    }

    /// A running sum of `field` per key.
    pub fn sum(self, field: &str) -> DataStream {
        self.rolling(RollingKind::Sum(field.to_string()))
    }

    pub fn min(self, field: &str) -> DataStream {
        self.rolling(RollingKind::Min(field.to_string()))
    }

    pub fn max(self, field: &str) -> DataStream {
        self.rolling(RollingKind::Max(field.to_string()))
    }

    /// A keyed stream from a stream whose last step is `key_by` (job files build steps one
    /// at a time); a stream without one is refused by the keyed step.
    pub(crate) fn from_keyed(stream: DataStream) -> Self {
        Self { stream }
    }

    /// The keyed stream as a plain stream (Flink's KeyedStream is a DataStream too).
    pub fn into_stream(self) -> DataStream {
        self.stream
    }

    /// The stable id of the `key_by` step (see [`DataStream::uid`]).
    pub fn uid(self, uid: &str) -> Self {
        Self { stream: self.stream.uid(uid) }
    }
}
