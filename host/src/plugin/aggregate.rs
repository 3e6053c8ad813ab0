//! Calling a user-defined aggregate function (UDAF) through the `aggregate` interface.
//!
//! An [`Aggregator`] owns one instance for one UDAF, like a [`super::Transformer`]. The
//! accumulators are opaque bytes that the caller (the window operator) keeps per key and
//! window; the aggregator never holds one between calls, so an instance can be dropped and
//! rebuilt at any time without losing state.
//!
//! Failures are per value, as for transforms:
//! - a value the host cannot convert to the function's encoding fails before the call;
//! - an `add` (or `retract`) of a batch that errs, traps, times out or hits the memory cap is
//!   retried **value by value**, on fresh instances where the failed call poisoned one. Each
//!   retry starts from the accumulator as it was after the last value that went in, so every
//!   good value is folded in exactly once (`add` is not idempotent) and only the guilty ones
//!   come back as [`RowFailure`]s, for the dead-letter output. Accumulators are immutable
//!   bytes, so "the accumulator before the failed call" is just the bytes we passed in.
//! - `create`, `merge` and `get_result` have no values to blame: their failure is an
//!   [`AggregateError`] for the caller to handle (for a window: no result for that window).

use thiserror::Error;
use wasmtime::Store;

use super::bindings::{FunctionInfo, RowEncoding, WitBatch};
use super::call::{CallFailure, InstanceSlot, to_wire};
use super::instance::HostState;
use super::transform::{FailureKind, RowFailure};
use super::{Plugin, PluginError};
use crate::record::{self, Batch};

type AggregateGuest = super::bindings::exports::weir::plugin::aggregate::Guest;

/// A failed `create`, `merge` or `get_result`.
#[derive(Debug, Error)]
pub enum AggregateError {
    /// No instance could be created.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The call failed.
    #[error("`{function}` failed in {operation} ({kind}): {message}")]
    Call { function: String, operation: &'static str, kind: FailureKind, message: String },
}

impl AggregateError {
    /// The kind of a failed call (`None` when no instance could be created).
    pub fn kind(&self) -> Option<FailureKind> {
        match self {
            AggregateError::Plugin(_) => None,
            AggregateError::Call { kind, .. } => Some(*kind),
        }
    }
}

/// The result of folding a batch of values into an accumulator.
#[derive(Debug, Default)]
pub struct AddOutcome {
    /// The new accumulator: the old one with every value not in `failures` folded in once.
    pub accumulator: Vec<u8>,
    /// The values that failed, by index in the input batch, in index order.
    pub failures: Vec<RowFailure>,
    /// Instances dropped after a trap or timeout during this call.
    pub instances_rebuilt: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fold {
    Add,
    Retract,
}

impl Fold {
    fn operation(self) -> &'static str {
        match self {
            Fold::Add => "add",
            Fold::Retract => "retract",
        }
    }
}

/// One operator instance's handle on a UDAF.
pub struct Aggregator {
    slot: InstanceSlot,
    function: FunctionInfo,
}

impl Aggregator {
    pub(super) fn new(plugin: Plugin, function: FunctionInfo) -> Self {
        Self { slot: InstanceSlot::new(plugin, &function.name), function }
    }

    pub fn plugin(&self) -> &Plugin {
        self.slot.plugin()
    }

    pub fn function(&self) -> &FunctionInfo {
        &self.function
    }

    /// A new, empty accumulator.
    pub fn create(&mut self) -> Result<Vec<u8>, AggregateError> {
        let result = self.call(|guest, store, name, _| guest.call_create_accumulator(store, name))?;
        self.finish("create-accumulator", result)
    }

    /// Fold `values` (MessagePack rows) into `accumulator`. Never fails as a whole, except
    /// for an instance that cannot be created: failed values are in
    /// [`AddOutcome::failures`] and left out of the accumulator.
    pub fn add(&mut self, accumulator: &[u8], values: &Batch) -> Result<AddOutcome, PluginError> {
        self.fold(Fold::Add, accumulator, values)
    }

    /// Take `values` back out of `accumulator`, like [`Aggregator::add`]. A function without
    /// retraction fails every value with its "not supported" error.
    pub fn retract(&mut self, accumulator: &[u8], values: &Batch) -> Result<AddOutcome, PluginError> {
        self.fold(Fold::Retract, accumulator, values)
    }

    /// One accumulator holding the values of both (session windows merging).
    pub fn merge(&mut self, a: &[u8], b: &[u8]) -> Result<Vec<u8>, AggregateError> {
        let result = self.call(|guest, store, name, _| guest.call_merge(store, name, a, b))?;
        self.finish("merge", result)
    }

    /// The aggregate's result for `accumulator`, as one MessagePack value.
    pub fn get_result(&mut self, accumulator: &[u8]) -> Result<Vec<u8>, AggregateError> {
        let result = self.call(|guest, store, name, _| guest.call_get_result(store, name, accumulator))?;
        let row = self.finish("get-result", result)?;
        let mut out = Vec::with_capacity(row.len());
        let converted = match self.function.encoding {
            RowEncoding::Msgpack => return Ok(row),
            RowEncoding::Json => {
                record::json_to_msgpack(&row, &mut out).map_err(|e| format!("the result is not valid JSON: {e}"))
            }
            RowEncoding::PythonMarshal => record::marshal::marshal_to_msgpack(&row, &mut out)
                .map_err(|e| format!("the result is not python-marshal: {e}")),
        };
        converted.map_err(|message| AggregateError::Call {
            function: self.slot.label.clone(),
            operation: "get-result",
            kind: FailureKind::Encoding,
            message,
        })?;
        Ok(out)
    }

    fn finish(&self, operation: &'static str, result: Result<Vec<u8>, CallFailure>) -> Result<Vec<u8>, AggregateError> {
        result.map_err(|f| AggregateError::Call {
            function: self.slot.label.clone(),
            operation,
            kind: f.kind,
            message: f.message,
        })
    }

    fn fold(&mut self, op: Fold, accumulator: &[u8], values: &Batch) -> Result<AddOutcome, PluginError> {
        let mut outcome = AddOutcome { accumulator: accumulator.to_vec(), ..Default::default() };
        if values.is_empty() {
            return Ok(outcome);
        }
        let (wire, wire_rows) = to_wire(values, self.function.encoding, &mut outcome.failures);
        let wire = wire.as_ref();
        if !wire_rows.is_empty() {
            match self.fold_call(op, accumulator, wire)? {
                Ok(acc) => outcome.accumulator = acc,
                Err(failure) => {
                    if failure.poisoned {
                        outcome.instances_rebuilt += 1;
                    }
                    if wire_rows.len() == 1 {
                        outcome.failures.push(RowFailure {
                            index: wire_rows[0],
                            kind: failure.kind,
                            message: failure.message,
                        });
                    } else {
                        tracing::debug!(
                            function = %self.slot.label, values = wire_rows.len(), error = %failure.message,
                            "{} of a batch failed; retrying value by value", op.operation()
                        );
                        self.retry_one_by_one(op, wire, &wire_rows, &mut outcome)?;
                    }
                }
            }
        }
        outcome.failures.sort_by_key(|f| f.index);
        self.slot.recycle_after(values.len());
        Ok(outcome)
    }

    /// Each value of `wire` on its own, chaining the accumulator through the ones that go in.
    fn retry_one_by_one(
        &mut self,
        op: Fold,
        wire: &Batch,
        wire_rows: &[usize],
        outcome: &mut AddOutcome,
    ) -> Result<(), PluginError> {
        for (pos, &index) in wire_rows.iter().enumerate() {
            let mut single = Batch::with_capacity(1, wire.value(pos).len());
            single.push(wire.value(pos));
            match self.fold_call(op, &outcome.accumulator, &single)? {
                Ok(acc) => outcome.accumulator = acc,
                Err(failure) => {
                    if failure.poisoned {
                        outcome.instances_rebuilt += 1;
                    }
                    outcome.failures.push(RowFailure { index, kind: failure.kind, message: failure.message });
                }
            }
        }
        Ok(())
    }

    fn fold_call(
        &mut self,
        op: Fold,
        accumulator: &[u8],
        wire: &Batch,
    ) -> Result<Result<Vec<u8>, CallFailure>, PluginError> {
        self.slot.fill_arg(wire);
        self.call(|guest, store, name, arg| match op {
            Fold::Add => guest.call_add(store, name, accumulator, arg),
            Fold::Retract => guest.call_retract(store, name, accumulator, arg),
        })
    }

    /// One call on the instance (see [`InstanceSlot::call`]): `call` gets the aggregate
    /// guest, the store, the function name and the values argument (filled by the caller,
    /// if it has values).
    fn call<T>(
        &mut self,
        call: impl FnOnce(&AggregateGuest, &mut Store<HostState>, &str, &WitBatch) -> wasmtime::Result<Result<T, String>>,
    ) -> Result<Result<T, CallFailure>, PluginError> {
        let name = self.function.name.as_str();
        self.slot.call(|instance, arg| {
            let guest = instance.aggregate.as_ref().ok_or(PluginError::MissingInterface("aggregate"))?;
            Ok(call(guest, &mut instance.store, name, arg))
        })
    }
}
