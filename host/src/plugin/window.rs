//! Calling a process-window function (Flink's `ProcessWindowFunction`): all the elements of
//! one key's window at once, when it fires, through the `process-window` export.
//!
//! One call per fired window. What fails fails the window: an element or key the host
//! cannot convert to the function's encoding, the function's `Err`, a trap (the instance is
//! dropped and the next window gets a fresh one). The window operator turns a failure into
//! one dead letter for the window.

use std::collections::HashSet;

use super::bindings::{FunctionInfo, WindowBounds};
use super::call::{InstanceSlot, to_wire};
use super::process::output_of;
use super::transform::{FailureKind, OutputReader, RowFailure, TransformOutcome};
use super::{Plugin, PluginError};
use crate::record::Batch;

/// One operator instance's handle on a process-window function.
pub struct WindowFunction {
    slot: InstanceSlot,
    function: FunctionInfo,
    unread_tags: HashSet<String>,
}

impl WindowFunction {
    pub(super) fn new(plugin: Plugin, function: FunctionInfo) -> Self {
        Self { slot: InstanceSlot::new(plugin, &function.name), function, unread_tags: HashSet::new() }
    }

    /// Call the function with the window `[start, end)` of `key` (MessagePack) and its
    /// elements (MessagePack rows, in arrival order, with their event times): its output
    /// rows (MessagePack), or why the window failed.
    pub fn call(
        &mut self,
        key: &[u8],
        (start, end): (i64, i64),
        elements: &Batch,
        timestamps: &[i64],
    ) -> Result<Result<Batch, RowFailure>, PluginError> {
        let encoding = self.function.encoding;
        let fail = |kind, message: String| Ok(Err(RowFailure { index: 0, kind, message }));
        let mut failures = Vec::new();
        let (wire, _) = to_wire(elements, encoding, &mut failures);
        if let Some(f) = failures.first() {
            return fail(FailureKind::Encoding, format!("element {}: {}", f.index, f.message));
        }
        let mut one = Batch::with_capacity(1, key.len());
        one.push(key);
        let (key_wire, _) = to_wire(&one, encoding, &mut failures);
        if let Some(f) = failures.first() {
            return fail(FailureKind::Encoding, format!("the key: {}", f.message));
        }
        let key_wire = key_wire.value(0).to_vec();
        self.slot.fill_arg(&wire);
        let name = self.function.name.as_str();
        let window = WindowBounds { start, end };
        let result = self.slot.call(|instance, arg| {
            let process = instance.process.as_ref().ok_or(PluginError::MissingInterface("process"))?;
            Ok(process.call_process_window(&mut instance.store, name, &key_wire, window, arg, timestamps))
        })?;
        self.slot.recycle_after(elements.len().max(1));
        let out = match result {
            Ok(out) => out,
            Err(failure) => return fail(failure.kind, failure.message),
        };
        let raw = output_of(&self.slot.label, &mut self.unread_tags, out);
        let mut outcome = TransformOutcome { counts: vec![0], ..Default::default() };
        OutputReader { label: &self.slot.label, encoding }.accept(&[0], raw, &mut outcome);
        Ok(match outcome.failures.into_iter().next() {
            Some(f) => Err(f),
            None => Ok(outcome.rows),
        })
    }
}
