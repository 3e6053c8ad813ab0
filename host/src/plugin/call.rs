//! What a failed plugin call was: classifying a wasmtime error into a [`FailureKind`].
//!
//! A call that returns `Err(message)` is the function saying no; an error from wasmtime
//! itself is a trap (a panic, an uncaught exception), the epoch deadline (a timeout) or the
//! memory limiter. The last three poison the instance: it must be dropped, not entered again.
//!
//! It also holds the conversion of MessagePack rows into a function's row encoding, which
//! transforms and aggregates share.

use std::time::Duration;

use std::borrow::Cow;

use super::bindings::{RowEncoding, WitBatch};
use super::instance::Instance;
use super::limits::MemoryLimitExceeded;
use super::process::SharedProcessHost;
use super::transform::{FailureKind, RowFailure};
use super::{Plugin, PluginError};
use crate::record::{self, Batch};

/// One operator instance's plugin instance: created when first needed, dropped after a
/// call that poisoned it, and recycled between calls after `recycle_after_records` rows or
/// when its memory passes half the cap (never mid-call, so no row is lost or repeated).
/// Transformers and aggregators call their functions through it.
pub(super) struct InstanceSlot {
    plugin: Plugin,
    /// `plugin@version.function`, for logs.
    pub label: String,
    instance: Option<Instance>,
    rows_since_instantiation: u64,
    /// The batch argument, reused across calls (the WIT record owns its lists).
    arg: WitBatch,
    /// Where a process function's imports go (set into every instance made).
    process_host: Option<SharedProcessHost>,
}

impl InstanceSlot {
    pub fn new(plugin: Plugin, function: &str) -> Self {
        let label = format!("{}.{function}", plugin.label());
        Self {
            plugin,
            label,
            instance: None,
            rows_since_instantiation: 0,
            arg: WitBatch { data: Vec::new(), offsets: Vec::new() },
            process_host: None,
        }
    }

    /// Instances made from now on send their process imports to `host`.
    pub fn set_process_host(&mut self, host: SharedProcessHost) {
        self.process_host = Some(host);
        self.instance = None;
    }

    /// [`InstanceSlot::call`] for a process function: the element the guest selects as
    /// `i` is input `positions[i]`.
    pub fn call_with_positions<T>(
        &mut self,
        positions: &[usize],
        call: impl FnOnce(&mut Instance, &WitBatch) -> Result<wasmtime::Result<Result<T, String>>, PluginError>,
    ) -> Result<Result<T, CallFailure>, PluginError> {
        let positions = positions.to_vec();
        self.call(move |instance, arg| {
            instance.store.data_mut().process.positions = positions;
            call(instance, arg)
        })
    }

    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// Copy `batch` into the argument buffer that the next `call` passes on.
    pub fn fill_arg(&mut self, batch: &Batch) {
        let (data, offsets) = batch.parts();
        self.arg.data.clear();
        self.arg.data.extend_from_slice(data);
        self.arg.offsets.clear();
        self.arg.offsets.extend_from_slice(offsets);
    }

    /// One call on the instance (created if needed), with the time limit armed. `call` gets
    /// the instance and the argument buffer. The outer `Result` is an instance that cannot
    /// be created (or lacks the interface); the inner one a call that failed.
    pub fn call<T>(
        &mut self,
        call: impl FnOnce(&mut Instance, &WitBatch) -> Result<wasmtime::Result<Result<T, String>>, PluginError>,
    ) -> Result<Result<T, CallFailure>, PluginError> {
        let inner = &self.plugin.inner;
        let instance = match self.instance.as_mut() {
            Some(i) => i,
            None => {
                let host = self.process_host.clone();
                let i = Instance::new(&inner.runtime, &inner.pre, &inner.indices, inner.limits, &self.label, host)?;
                self.rows_since_instantiation = 0;
                self.instance.insert(i)
            }
        };
        instance.store.set_epoch_deadline(inner.limits.deadline_ticks());
        let result = call(instance, &self.arg)?;
        let stderr = instance.take_stderr();
        if result.is_ok() && !stderr.is_empty() {
            tracing::debug!(function = %self.label, "plugin stderr: {}", stderr.trim_end());
        }
        Ok(match result {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(message)) => Err(CallFailure::refused(message)),
            Err(trap) => {
                self.instance = None;
                Err(classify_trap(&trap, inner.limits.call_timeout, &stderr))
            }
        })
    }

    /// `rows` more rows went through: recycle the instance if it is due.
    pub fn recycle_after(&mut self, rows: usize) {
        self.rows_since_instantiation += rows as u64;
        let Some(instance) = &self.instance else { return };
        let limits = self.plugin.limits();
        let memory_high = instance.memory_in_use() > limits.memory_bytes / 2;
        if self.rows_since_instantiation >= limits.recycle_after_records || memory_high {
            tracing::debug!(
                function = %self.label, rows = self.rows_since_instantiation,
                memory = instance.memory_in_use(), "recycling plugin instance"
            );
            self.instance = None;
        }
    }
}

/// Call `attempt` on all `inputs` at once; if that call fails, on each input alone, so
/// only the guilty inputs fail. `attempt` makes the call and, when it succeeds, takes its
/// output in. Returns the inputs that failed alone, in order, with why, and how many
/// instances the failed calls poisoned. Transforms, aggregates and process functions all
/// isolate a bad row this way.
pub(super) fn call_then_each(
    label: &str,
    inputs: &[usize],
    mut attempt: impl FnMut(&[usize]) -> Result<Result<(), CallFailure>, PluginError>,
) -> Result<(Vec<RowFailure>, u32), PluginError> {
    let (mut failed, mut rebuilt) = (Vec::new(), 0);
    let mut fail = |index: usize, f: CallFailure, rebuilt: &mut u32| {
        *rebuilt += u32::from(f.poisoned);
        failed.push(RowFailure { index, kind: f.kind, message: f.message });
    };
    if inputs.is_empty() {
        return Ok((failed, rebuilt));
    }
    let Err(failure) = attempt(inputs)? else { return Ok((failed, rebuilt)) };
    if let [only] = inputs {
        fail(*only, failure, &mut rebuilt);
        return Ok((failed, rebuilt));
    }
    tracing::debug!(function = %label, inputs = inputs.len(), error = %failure.message, "call failed; retrying input by input");
    rebuilt += u32::from(failure.poisoned);
    for &index in inputs {
        if let Err(failure) = attempt(&[index])? {
            fail(index, failure, &mut rebuilt);
        }
    }
    Ok((failed, rebuilt))
}

/// A whole call that failed.
#[derive(Debug, Clone)]
pub(super) struct CallFailure {
    pub kind: FailureKind,
    pub message: String,
    /// The instance trapped and must be dropped.
    pub poisoned: bool,
}

impl CallFailure {
    /// The function returned `Err(message)`: the instance stays usable.
    pub fn refused(message: String) -> Self {
        Self { kind: FailureKind::Error, message, poisoned: false }
    }
}

/// The rows of `input` (MessagePack) in `encoding`, and the input index of each converted
/// row; rows that do not convert fail here, before the call.
pub(super) fn to_wire<'a>(
    input: &'a Batch,
    encoding: RowEncoding,
    failures: &mut Vec<RowFailure>,
) -> (Cow<'a, Batch>, Vec<usize>) {
    type Convert = fn(&[u8], &mut Vec<u8>) -> Result<(), String>;
    let (size_factor, convert): (usize, Convert) = match encoding {
        RowEncoding::Msgpack => return (Cow::Borrowed(input), (0..input.len()).collect()),
        RowEncoding::Json => (2, |v, buf| record::msgpack_to_json(v, buf).map_err(|e| e.to_string())),
        RowEncoding::PythonMarshal => (1, |v, buf| {
            record::marshal::msgpack_to_marshal(v, buf)
                .map_err(|e| format!("cannot convert the record to python-marshal: {e}"))
        }),
    };
    let mut converted = Batch::with_capacity(input.len(), input.byte_len() * size_factor);
    let mut rows = Vec::with_capacity(input.len());
    for i in 0..input.len() {
        match converted.push_with(|buf| convert(input.value(i), buf)) {
            Ok(()) => rows.push(i),
            Err(message) => failures.push(RowFailure { index: i, kind: FailureKind::Encoding, message }),
        }
    }
    (Cow::Owned(converted), rows)
}

/// A wasmtime error from a call (`Err` of the outer `Result`), with what the plugin wrote to
/// stderr during the call (a Rust panic message goes there).
pub(super) fn classify_trap(err: &wasmtime::Error, timeout: Duration, stderr: &str) -> CallFailure {
    let kind = if err.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
        FailureKind::Timeout
    } else if err.downcast_ref::<MemoryLimitExceeded>().is_some() {
        FailureKind::MemoryLimit
    } else {
        FailureKind::Trap
    };
    let mut message = match kind {
        FailureKind::Timeout => format!(
            "the call ran longer than the time limit of {} ms and was interrupted; raise `limits.call_timeout_ms` if the function is just slow",
            timeout.as_millis()
        ),
        FailureKind::MemoryLimit => err.root_cause().to_string(),
        _ => {
            // The backtrace is for plugin authors (debug log); the dead letter gets the cause.
            tracing::debug!(error = %format!("{err:?}"), "plugin trapped");
            format!("the plugin trapped: {} (a panic, an uncaught exception or a bug in the plugin)", err.root_cause())
        }
    };
    if let Some(said) = super::stderr::summarize(stderr) {
        message = format!("{message}; the plugin wrote to stderr: {said}");
    }
    CallFailure { kind, message, poisoned: true }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_millis(250);

    #[test]
    fn an_interrupt_is_a_timeout_naming_the_limit() {
        let f = classify_trap(&wasmtime::Error::from(wasmtime::Trap::Interrupt), TIMEOUT, "");
        assert_eq!(f.kind, FailureKind::Timeout);
        assert!(f.poisoned);
        assert!(f.message.contains("250 ms") && f.message.contains("call_timeout_ms"), "{}", f.message);
    }

    #[test]
    fn the_memory_limiter_is_a_memory_limit() {
        let err = wasmtime::Error::from(MemoryLimitExceeded { limit: 1 << 20, desired: 2 << 20 });
        let f = classify_trap(&err, TIMEOUT, "");
        assert_eq!(f.kind, FailureKind::MemoryLimit);
        assert!(f.poisoned);
    }

    #[test]
    fn other_traps_carry_what_the_plugin_wrote_to_stderr() {
        let stderr = "thread '<unnamed>' panicked at src/lib.rs:3:9:\nboom on purpose\n";
        let f = classify_trap(&wasmtime::Error::from(wasmtime::Trap::UnreachableCodeReached), TIMEOUT, stderr);
        assert_eq!(f.kind, FailureKind::Trap);
        assert!(f.poisoned);
        assert!(f.message.contains("boom on purpose"), "{}", f.message);
    }

    #[test]
    fn a_refusal_keeps_the_instance() {
        let f = CallFailure::refused("no".into());
        assert_eq!((f.kind, f.poisoned, f.message.as_str()), (FailureKind::Error, false, "no"));
    }
}
