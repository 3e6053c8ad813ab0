//! Calling a user-defined aggregate function (UDAF) through the `aggregate` interface.
//!
//! An [`Aggregator`] owns one instance for one UDAF, like a [`super::Transformer`]. The
//! accumulators are opaque bytes that the caller (the window operator) keeps per key and
//! window; the aggregator never holds one between calls, so an instance can be dropped and
//! rebuilt at any time without losing state.
//!
//! [`Aggregator::add_grouped`] folds a batch into many accumulators in one call (value `i`
//! into accumulator `groups[i]`), so a batch of records spread over many keys and windows
//! costs one call, not one per key (decision 0006).
//!
//! Failures are per value, as for transforms:
//! - a value the host cannot convert to the function's encoding fails before the call;
//! - an `add` (or `retract`) of a batch that errs, traps, times out or hits the memory cap is
//!   retried **value by value**, on fresh instances where the failed call poisoned one. Each
//!   retry starts from the accumulator as it was after the last value that went in, so every
//!   good value is folded in exactly once (`add` is not idempotent) and only the guilty ones
//!   come back as [`RowFailure`]s, for the dead-letter output. Accumulators are immutable
//!   bytes, so "the accumulators before the failed call" are just the bytes we passed in.
//! - `create`, `merge` and `get_result` have no values to blame: their failure is an
//!   [`AggregateError`] for the caller to handle (for a window: no result for that window).

use thiserror::Error;
use wasmtime::Store;

use super::bindings::{FunctionInfo, RowEncoding, WitBatch};
use super::call::{CallFailure, InstanceSlot, call_then_each, to_wire};
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

/// The result of folding a batch of values into one accumulator.
#[derive(Debug, Default)]
pub struct AddOutcome {
    /// The new accumulator: the old one with every value not in `failures` folded in once.
    pub accumulator: Vec<u8>,
    /// The values that failed, by index in the input batch, in index order.
    pub failures: Vec<RowFailure>,
    /// Instances dropped after a trap or timeout during this call.
    pub instances_rebuilt: u32,
}

/// The result of folding a batch of values into several accumulators.
#[derive(Debug, Default)]
pub struct GroupedOutcome {
    /// Every accumulator, in the order given: each with the values of its group that are
    /// not in `failures` folded in once, in input order.
    pub accumulators: Batch,
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
    /// The accumulators argument, reused across calls.
    accumulators_arg: WitBatch,
}

impl Aggregator {
    pub(super) fn new(plugin: Plugin, function: FunctionInfo) -> Self {
        let accumulators_arg = WitBatch { data: Vec::new(), offsets: Vec::new() };
        Self { slot: InstanceSlot::new(plugin, &function.name), function, accumulators_arg }
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
        self.fold_one(Fold::Add, accumulator, values)
    }

    /// Take `values` back out of `accumulator`, like [`Aggregator::add`]. A function without
    /// retraction fails every value with its "not supported" error.
    pub fn retract(&mut self, accumulator: &[u8], values: &Batch) -> Result<AddOutcome, PluginError> {
        self.fold_one(Fold::Retract, accumulator, values)
    }

    /// Fold value `i` of `values` into accumulator `groups[i]` of `accumulators`, all in
    /// one call; failed values are left out, as for [`Aggregator::add`].
    ///
    /// # Panics
    /// If `groups` is not one index per value, each below `accumulators.len()`.
    pub fn add_grouped(
        &mut self,
        accumulators: &Batch,
        values: &Batch,
        groups: &[u32],
    ) -> Result<GroupedOutcome, PluginError> {
        self.fold(Fold::Add, accumulators, values, groups)
    }

    /// [`Aggregator::add_grouped`] taking the values back out.
    pub fn retract_grouped(
        &mut self,
        accumulators: &Batch,
        values: &Batch,
        groups: &[u32],
    ) -> Result<GroupedOutcome, PluginError> {
        self.fold(Fold::Retract, accumulators, values, groups)
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

    fn fold_one(&mut self, op: Fold, accumulator: &[u8], values: &Batch) -> Result<AddOutcome, PluginError> {
        let mut one = Batch::with_capacity(1, accumulator.len());
        one.push(accumulator);
        let outcome = self.fold(op, &one, values, &vec![0; values.len()])?;
        Ok(AddOutcome {
            accumulator: outcome.accumulators.value(0).to_vec(),
            failures: outcome.failures,
            instances_rebuilt: outcome.instances_rebuilt,
        })
    }

    fn fold(
        &mut self,
        op: Fold,
        accumulators: &Batch,
        values: &Batch,
        groups: &[u32],
    ) -> Result<GroupedOutcome, PluginError> {
        assert_eq!(groups.len(), values.len(), "one group per value");
        assert!(groups.iter().all(|&g| (g as usize) < accumulators.len()), "groups index the accumulators");
        let mut outcome = GroupedOutcome { accumulators: accumulators.clone(), ..Default::default() };
        if values.is_empty() {
            return Ok(outcome);
        }
        let (wire, wire_rows) = to_wire(values, self.function.encoding, &mut outcome.failures);
        let wire = wire.as_ref();
        let label = self.slot.label.clone();
        let current = &mut outcome.accumulators;
        // After a failed call, each value goes in on its own into its accumulator, chaining
        // every accumulator through the values that go in (split out of `current` for that).
        let mut split: Option<Vec<Vec<u8>>> = None;
        let (failed, rebuilt) = call_then_each(&label, &wire_rows, |rows| {
            if rows.len() == wire_rows.len() {
                let wire_groups: Vec<u32> = wire_rows.iter().map(|&i| groups[i]).collect();
                return Ok(self.fold_call(op, accumulators, wire, &wire_groups)?.map(|accs| *current = accs));
            }
            let accs = split.get_or_insert_with(|| current.iter().map(|(v, _)| v.to_vec()).collect());
            let group = groups[rows[0]] as usize;
            let mut acc = Batch::with_capacity(1, accs[group].len());
            acc.push(&accs[group]);
            let row = wire.value(wire_rows.binary_search(&rows[0]).unwrap_or_default());
            let mut single = Batch::with_capacity(1, row.len());
            single.push(row);
            Ok(self.fold_call(op, &acc, &single, &[0])?.map(|new| accs[group] = new.value(0).to_vec()))
        })?;
        if let Some(accs) = split {
            let mut rebuilt = Batch::with_capacity(accs.len(), accs.iter().map(Vec::len).sum());
            for acc in &accs {
                rebuilt.push(acc);
            }
            outcome.accumulators = rebuilt;
        }
        outcome.failures.extend(failed);
        outcome.instances_rebuilt += rebuilt;
        outcome.failures.sort_by_key(|f| f.index);
        self.slot.recycle_after(values.len());
        Ok(outcome)
    }

    fn fold_call(
        &mut self,
        op: Fold,
        accumulators: &Batch,
        wire: &Batch,
        groups: &[u32],
    ) -> Result<Result<Batch, CallFailure>, PluginError> {
        self.slot.fill_arg(wire);
        let (data, offsets) = accumulators.parts();
        let mut accs =
            std::mem::replace(&mut self.accumulators_arg, WitBatch { data: Vec::new(), offsets: Vec::new() });
        accs.data.clear();
        accs.data.extend_from_slice(data);
        accs.offsets.clear();
        accs.offsets.extend_from_slice(offsets);
        let expected = accumulators.len();
        let result = self.call(|guest, store, name, arg| match op {
            Fold::Add => guest.call_add(store, name, &accs, arg, groups),
            Fold::Retract => guest.call_retract(store, name, &accs, arg, groups),
        });
        self.accumulators_arg = accs;
        Ok(result?.and_then(|out| {
            let batch = Batch::from_parts(out.data, out.offsets).map_err(|e| {
                CallFailure::refused(format!("{} returned a malformed accumulator batch: {e}", op.operation()))
            })?;
            if batch.len() != expected {
                let message = format!("{} returned {} accumulators for {expected}", op.operation(), batch.len());
                return Err(CallFailure::refused(message));
            }
            Ok(batch)
        }))
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
