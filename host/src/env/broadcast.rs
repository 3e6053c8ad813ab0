//! Broadcast streams (Flink's `BroadcastStream` and `BroadcastConnectedStream`): every record
//! reaches every parallel instance of the keyed step it is connected to.

use super::Function;
use super::{DataStream, KeyedStream};
use crate::graph::BroadcastInput;

/// A stream whose every record reaches every parallel instance of the step it is connected
/// to, made by [`DataStream::broadcast`]. It carries its source's records as they are.
pub struct BroadcastStream {
    pub(super) input: BroadcastInput,
}

impl BroadcastStream {
    /// Let the keyed input wait until this (bounded) stream has ended, so that reference
    /// data (users, rules) is complete before the first keyed record is processed.
    pub fn preload(mut self) -> Self {
        self.input.preload = true;
        self
    }
}

/// A keyed stream connected to a broadcast stream: it continues with a process function.
pub struct BroadcastConnectedStream {
    pub(super) keyed: KeyedStream,
    pub(super) broadcast: BroadcastStream,
}

impl BroadcastConnectedStream {
    /// The process function `f` handles both inputs (Flink's `KeyedBroadcastProcessFunction`).
    pub fn process(self, f: Function) -> DataStream {
        let stream = self.keyed.process(f);
        stream.with_step(|step| step.broadcast = Some(self.broadcast.input));
        stream
    }
}
