//! Calling a transform function (map, filter, flat-map, key selector) on batches.
//!
//! A [`Transformer`] owns one instance and turns its failures into per-row outcomes:
//! - a row the function rejects (`row-error`) fails alone; the rest of the call stands;
//! - a call that traps, times out or hits the memory cap poisons the instance: it is
//!   dropped, and the batch is retried **row by row** on fresh instances, so only the guilty
//!   rows fail and every other row is emitted exactly once, in order;
//! - rows the host cannot convert to the function's encoding fail before the call.
//!
//! Instances are also recycled between batches after `recycle_after_records` rows, or when
//! their linear memory passes half the cap (the componentize-py runtime's memory grows with
//! every record). Recycling happens only between calls, so it cannot lose or repeat a row.

use std::fmt;

use super::bindings::{FunctionInfo, RowEncoding, TransformOutput};
use super::call::{CallFailure, InstanceSlot, call_then_each, to_wire};
use super::{Plugin, PluginError};
use crate::record::{self, Batch};

/// Why a row failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The function returned an error for the row.
    Error,
    /// The function trapped (a panic, an exception that escaped the SDK, a bug).
    Trap,
    /// The call ran past `limits.call_timeout_ms`.
    Timeout,
    /// The instance grew past `limits.memory_mb`.
    MemoryLimit,
    /// The row could not be converted to or from the function's row encoding.
    Encoding,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Error => "error",
            FailureKind::Trap => "trap",
            FailureKind::Timeout => "timeout",
            FailureKind::MemoryLimit => "memory-limit",
            FailureKind::Encoding => "encoding",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed input row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFailure {
    /// Index of the row in the input batch.
    pub index: usize,
    pub kind: FailureKind,
    pub message: String,
}

/// The result of applying a function to a batch.
#[derive(Debug, Default)]
pub struct TransformOutcome {
    /// All output rows (MessagePack), in input order.
    pub rows: Batch,
    /// `counts[i]`: output rows produced by input row `i` (0 for failed rows).
    pub counts: Vec<u32>,
    pub failures: Vec<RowFailure>,
    /// Instances dropped after a trap or timeout during this call.
    pub instances_rebuilt: u32,
}

/// One operator instance's handle on a transform function.
pub struct Transformer {
    slot: InstanceSlot,
    function: FunctionInfo,
}

impl Transformer {
    pub(super) fn new(plugin: Plugin, function: FunctionInfo) -> Self {
        Self { slot: InstanceSlot::new(plugin, &function.name), function }
    }

    pub fn plugin(&self) -> &Plugin {
        self.slot.plugin()
    }

    pub fn function(&self) -> &FunctionInfo {
        &self.function
    }

    /// Apply the function to every row of `input` (MessagePack rows). Never fails as a whole:
    /// what goes wrong is reported per row in [`TransformOutcome::failures`], except an
    /// instance that cannot even be created.
    pub fn apply(&mut self, input: &Batch) -> Result<TransformOutcome, PluginError> {
        let mut outcome = TransformOutcome { counts: vec![0; input.len()], ..Default::default() };
        if input.is_empty() {
            return Ok(outcome);
        }
        let (wire, wire_rows) = to_wire(input, self.function.encoding, &mut outcome.failures);
        let wire = wire.as_ref();
        let label = self.slot.label.clone();
        let (failed, rebuilt) = call_then_each(&label, &wire_rows, |rows| {
            let out = if rows.len() == wire_rows.len() {
                self.call(wire)?
            } else {
                // One row of `wire` (in the function's encoding) on its own, after a failed call.
                let row = wire.value(wire_rows.binary_search(&rows[0]).unwrap_or_default());
                let mut single = Batch::with_capacity(1, row.len());
                single.push(row);
                self.call(&single)?
            };
            Ok(out.map(|out| self.reader().accept(rows, out.into(), &mut outcome)))
        })?;
        outcome.failures.extend(failed);
        outcome.instances_rebuilt += rebuilt;
        outcome.failures.sort_by_key(|f| f.index);
        self.slot.recycle_after(input.len());
        Ok(outcome)
    }

    fn reader(&self) -> OutputReader<'_> {
        OutputReader { label: &self.slot.label, encoding: self.function.encoding }
    }

    /// One call of `apply` on `wire` (see [`InstanceSlot::call`]).
    fn call(&mut self, wire: &Batch) -> Result<Result<TransformOutput, CallFailure>, PluginError> {
        self.slot.fill_arg(wire);
        let name = self.function.name.as_str();
        self.slot.call(|instance, arg| {
            let transform = instance.transform.as_ref().ok_or(PluginError::MissingInterface("transform"))?;
            Ok(transform.call_apply(&mut instance.store, name, arg))
        })
    }
}

/// A call's output rows, counts and row errors, as every output-producing interface returns them.
pub(super) struct RawOutput {
    pub data: Vec<u8>,
    pub offsets: Vec<u32>,
    pub counts: Vec<u32>,
    pub errors: Vec<super::bindings::RowError>,
}

impl From<TransformOutput> for RawOutput {
    fn from(out: TransformOutput) -> Self {
        RawOutput { data: out.rows.data, offsets: out.rows.offsets, counts: out.counts, errors: out.errors }
    }
}

/// Reads a call's output back into MessagePack rows and per-input outcomes.
pub(super) struct OutputReader<'a> {
    pub label: &'a str,
    pub encoding: RowEncoding,
}

impl OutputReader<'_> {
    /// Merge a successful call's output for the input rows `rows` into `outcome`.
    pub fn accept(&self, rows: &[usize], out: RawOutput, outcome: &mut TransformOutcome) {
        // The output rows as MessagePack, and per output row why it could not be converted
        // (`bad` is empty when every row converted).
        let (produced, bad) = match self.convert_output(out.data, out.offsets) {
            Ok(p) => p,
            Err(e) => return self.fail_all(rows, &format!("the plugin returned a {e}"), outcome),
        };
        let total: u64 = out.counts.iter().map(|&c| u64::from(c)).sum();
        if out.counts.len() != rows.len() || total != produced.len() as u64 {
            let msg = format!(
                "the plugin returned {} counts summing to {total} for {} input rows and {} output rows",
                out.counts.len(),
                rows.len(),
                produced.len()
            );
            return self.fail_all(rows, &msg, outcome);
        }
        if out.errors.is_empty() && bad.is_empty() && outcome.rows.is_empty() {
            // The common case: take the (converted) output buffer as it is, no per-row copy.
            for (&index, &n) in rows.iter().zip(&out.counts) {
                outcome.counts[index] = n;
            }
            outcome.rows = produced;
            return;
        }
        let mut failed = vec![false; rows.len()];
        for e in out.errors {
            match rows.get(e.index as usize) {
                Some(&index) => {
                    failed[e.index as usize] = true;
                    outcome.failures.push(RowFailure { index, kind: FailureKind::Error, message: e.message });
                }
                None => {
                    tracing::warn!(function = %self.label, index = e.index, "plugin reported an error for a row it was not given")
                }
            }
        }
        let mut next = 0usize;
        for (pos, &index) in rows.iter().enumerate() {
            let n = out.counts[pos] as usize;
            let produced_rows = next..next + n;
            next += n;
            if failed[pos] {
                continue;
            }
            let start = outcome.rows.len();
            let mut ok = true;
            for j in produced_rows {
                if let Some(Some(e)) = bad.get(j) {
                    ok = false;
                    outcome.failures.push(RowFailure {
                        index,
                        kind: FailureKind::Encoding,
                        message: format!("output row: {e}"),
                    });
                    break;
                }
                outcome.rows.push(produced.value(j));
            }
            if ok {
                outcome.counts[index] = u32::try_from(n).unwrap_or(u32::MAX);
            } else {
                outcome.rows.truncate(start);
            }
        }
    }

    fn fail_all(&self, rows: &[usize], message: &str, outcome: &mut TransformOutcome) {
        for &index in rows {
            outcome.failures.push(RowFailure { index, kind: FailureKind::Error, message: message.to_string() });
        }
    }

    /// A plugin's output batch as MessagePack rows, plus why each row that could not be
    /// converted failed (empty when all converted; a failed row is left empty in the batch).
    /// `Err` for a malformed batch.
    fn convert_output(&self, data: Vec<u8>, offsets: Vec<u32>) -> Result<(Batch, Vec<Option<String>>), String> {
        let mut bad: Vec<Option<String>> = Vec::new();
        let note = |bad: &mut Vec<Option<String>>, j: usize, e: String| {
            bad.resize(j + 1, None);
            bad[j] = Some(e);
        };
        match self.encoding {
            RowEncoding::Msgpack => Ok((Batch::from_parts(data, offsets)?, bad)),
            RowEncoding::Json => {
                let wire = Batch::from_parts(data, offsets)?;
                let mut out = Batch::with_capacity(wire.len(), wire.byte_len());
                for j in 0..wire.len() {
                    if let Err(e) = out.push_with(|buf| record::json_to_msgpack(wire.value(j), buf)) {
                        out.push(&[]);
                        note(&mut bad, j, e.to_string());
                    }
                }
                Ok((out, bad))
            }
            RowEncoding::PythonMarshal if offsets.is_empty() => {
                // Packed: one marshal list of all rows.
                let mut out = Batch::with_capacity(0, data.len());
                let mut scratch = Vec::with_capacity(256);
                let mut j = 0;
                record::marshal::packed_marshal_to_msgpack(&data, &mut scratch, |row| {
                    match row {
                        Ok(bytes) => out.push(bytes),
                        Err(e) => {
                            out.push(&[]);
                            note(&mut bad, j, format!("cannot read python-marshal: {e}"));
                        }
                    }
                    j += 1;
                })
                .map_err(|e| format!("malformed packed python-marshal batch: {e}"))?;
                Ok((out, bad))
            }
            RowEncoding::PythonMarshal => {
                let wire = Batch::from_parts(data, offsets)?;
                let mut out = Batch::with_capacity(wire.len(), wire.byte_len());
                for j in 0..wire.len() {
                    if let Err(e) = out.push_with(|buf| record::marshal::marshal_to_msgpack(wire.value(j), buf)) {
                        out.push(&[]);
                        note(&mut bad, j, format!("cannot read python-marshal: {e}"));
                    }
                }
                Ok((out, bad))
            }
        }
    }
}
