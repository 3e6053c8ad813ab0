//! What a window operator folds its records with: a built-in aggregate, run in the host, or
//! a Wasm UDAF, whose accumulators are opaque bytes the operator keeps per key and window.
//!
//! Built-ins fold each record at once. A UDAF folds a batch at a time: [`Aggregation::add`]
//! only notes which accumulator a value goes into, and [`Aggregation::flush`] folds all the
//! values noted since the last flush in one plugin call (value `i` into accumulator
//! `groups[i]`), however many keys and windows they touch. The operator flushes at the end
//! of every batch, and before anything that reads or moves an accumulator (a session merge,
//! a window firing), so nothing is buffered beyond the batch in flight.

use std::collections::HashMap;

use rmpv::Value;

use super::Key;
use crate::plugin::{Aggregator, Plugin, WindowFunction};
use crate::record::{self, Batch, RowMeta};
use crate::window::{Accumulator, AggregateKind, TimeWindow};

/// How a window's records are aggregated.
#[derive(Debug, Clone)]
pub enum WindowAggregate {
    /// A built-in aggregate over a numeric field (`count` needs none).
    Builtin { kind: AggregateKind, field: Option<String> },
    /// A Wasm UDAF (a function of kind `aggregate`), fed the whole record or one field, its
    /// result written as field `output`.
    Udaf { plugin: Plugin, function: String, field: Option<String>, output: String },
    /// A Wasm process-window function (Flink's `ProcessWindowFunction`): the window keeps
    /// its records, and the function gets all of them when it fires and emits its own rows.
    Process { plugin: Plugin, function: String },
}

impl WindowAggregate {
    /// The name of the result field in the output record.
    pub fn output_field(&self) -> &str {
        match self {
            WindowAggregate::Builtin { kind, .. } => match kind {
                AggregateKind::Count => "count",
                AggregateKind::Sum => "sum",
                AggregateKind::Min => "min",
                AggregateKind::Max => "max",
                AggregateKind::Avg => "avg",
            },
            WindowAggregate::Udaf { output, .. } => output,
            WindowAggregate::Process { function, .. } => function,
        }
    }
}

/// One key and window's accumulator.
#[derive(Debug, Clone)]
pub(super) enum Acc {
    Builtin(Accumulator),
    Bytes(Vec<u8>),
    /// A process-window function's window: its records (MessagePack) and their event times
    /// (`NO_TIMESTAMP` for none), in arrival order.
    Elements(Batch, Vec<i64>),
}

/// What a window gives when it fires.
pub(super) enum Fired {
    /// An aggregate's result, written into the window's row.
    Value(Value),
    /// A process-window function's output rows (MessagePack).
    Rows(Batch),
}

/// A failure to blame on one input row: (row index in the input batch, kind, message).
pub(super) type RowFailure = (usize, &'static str, String);

/// A failure with no row to blame (creating, merging or reading an accumulator).
#[derive(Debug)]
pub(super) struct AccFailure {
    pub kind: &'static str,
    pub message: String,
}

/// Values noted for a UDAF since the last flush.
#[derive(Default)]
pub(super) struct Pending {
    values: Batch,
    targets: Vec<(Key, TimeWindow)>,
    /// Input row of each value (a sliding window repeats a row once per window).
    rows: Vec<usize>,
}

pub(super) enum Aggregation {
    Builtin {
        kind: AggregateKind,
        field: String,
    },
    Udaf {
        aggregator: Box<Aggregator>,
        field: Option<String>,
        /// `create-accumulator`'s result, asked once: accumulators are immutable bytes.
        empty: Option<Vec<u8>>,
        pending: Pending,
    },
    Process {
        function: Box<WindowFunction>,
    },
}

impl Aggregation {
    pub fn new(spec: &WindowAggregate) -> Result<Self, crate::plugin::PluginError> {
        Ok(match spec {
            WindowAggregate::Builtin { kind, field } => {
                Aggregation::Builtin { kind: *kind, field: field.clone().unwrap_or_default() }
            }
            WindowAggregate::Udaf { plugin, function, field, .. } => Aggregation::Udaf {
                aggregator: Box::new(plugin.aggregator(function)?),
                field: field.clone(),
                empty: None,
                pending: Pending::default(),
            },
            WindowAggregate::Process { plugin, function } => {
                Aggregation::Process { function: Box::new(plugin.window_function(function)?) }
            }
        })
    }

    /// A new, empty accumulator.
    pub fn create(&mut self) -> Result<Acc, AccFailure> {
        match self {
            Aggregation::Builtin { kind, .. } => Ok(Acc::Builtin(Accumulator::new(*kind))),
            Aggregation::Udaf { aggregator, empty, .. } => {
                if empty.is_none() {
                    *empty = Some(aggregator.create().map_err(|e| AccFailure {
                        kind: e.kind().map_or("error", |k| k.as_str()),
                        message: e.to_string(),
                    })?);
                }
                Ok(Acc::Bytes(empty.clone().unwrap_or_default()))
            }
            Aggregation::Process { .. } => Ok(Acc::Elements(Batch::new(), Vec::new())),
        }
    }

    /// Fold row `i` of `input` into the accumulator of `(key, w)`, which must exist: at
    /// once for a built-in, at the next [`Aggregation::flush`] for a UDAF.
    pub fn add(
        &mut self,
        accs: &mut HashMap<(Key, TimeWindow), Acc>,
        target: (Key, TimeWindow),
        input: &Batch,
        i: usize,
    ) -> Result<(), RowFailure> {
        match self {
            Aggregation::Builtin { field, .. } => {
                let Some(Acc::Builtin(acc)) = accs.get_mut(&target) else {
                    return Err((i, "error", "window state lost its accumulator".into()));
                };
                acc.add_record(input.value(i), field).map_err(|e| (i, "error", e.to_string()))
            }
            Aggregation::Udaf { field, pending, .. } => {
                let meta = RowMeta { key: None, timestamp: None };
                match field {
                    None => pending.values.push_record(input.value(i), meta),
                    Some(f) => {
                        let value =
                            record::field(input.value(i), f).map_err(|e| (i, "missing-field", e.to_string()))?;
                        pending.values.push_record(&value, meta);
                    }
                }
                pending.targets.push(target);
                pending.rows.push(i);
                Ok(())
            }
            Aggregation::Process { .. } => {
                let Some(Acc::Elements(rows, times)) = accs.get_mut(&target) else {
                    return Err((i, "error", "window state lost its elements".into()));
                };
                rows.push(input.value(i));
                times.push(input.timestamp(i).unwrap_or(record::NO_TIMESTAMP));
                Ok(())
            }
        }
    }

    /// Fold the values noted since the last flush, in one call; failed values come back
    /// as failures of their input rows (once per row), the rest are in their accumulators.
    pub fn flush(
        &mut self,
        accs: &mut HashMap<(Key, TimeWindow), Acc>,
        failures: &mut Vec<RowFailure>,
    ) -> Result<(), crate::plugin::PluginError> {
        let Aggregation::Udaf { aggregator, pending, .. } = self else { return Ok(()) };
        if pending.targets.is_empty() {
            return Ok(());
        }
        let Pending { values, targets, rows } = std::mem::take(pending);
        let mut slots: HashMap<&(Key, TimeWindow), u32> = HashMap::new();
        let mut order: Vec<&(Key, TimeWindow)> = Vec::new();
        let mut current = Batch::new();
        let mut groups = Vec::with_capacity(targets.len());
        for target in &targets {
            let slot = *slots.entry(target).or_insert_with(|| {
                order.push(target);
                match accs.get(target) {
                    Some(Acc::Bytes(bytes)) => current.push(bytes),
                    _ => current.push(&[]),
                }
                (order.len() - 1) as u32
            });
            groups.push(slot);
        }
        let outcome = aggregator.add_grouped(&current, &values, &groups)?;
        for (slot, target) in order.into_iter().enumerate() {
            accs.insert(target.clone(), Acc::Bytes(outcome.accumulators.value(slot).to_vec()));
        }
        let mut last_row = None;
        for f in outcome.failures {
            let row = rows[f.index];
            if last_row != Some(row) {
                failures.push((row, f.kind.as_str(), f.message));
                last_row = Some(row);
            }
        }
        Ok(())
    }

    /// One accumulator holding what both hold (session windows merging).
    pub fn merge(&mut self, into: &mut Acc, other: &Acc) -> Result<(), AccFailure> {
        match (self, into, other) {
            (Aggregation::Builtin { .. }, Acc::Builtin(a), Acc::Builtin(b)) => {
                a.merge(b).map_err(|e| AccFailure { kind: "error", message: e.to_string() })
            }
            (Aggregation::Udaf { aggregator, .. }, Acc::Bytes(a), Acc::Bytes(b)) => {
                *a = aggregator.merge(a, b).map_err(|e| AccFailure {
                    kind: e.kind().map_or("error", |k| k.as_str()),
                    message: e.to_string(),
                })?;
                Ok(())
            }
            (Aggregation::Process { .. }, Acc::Elements(rows, times), Acc::Elements(more, more_times)) => {
                (0..more.len()).for_each(|j| rows.push(more.value(j)));
                times.extend(more_times);
                Ok(())
            }
            _ => Err(AccFailure { kind: "error", message: "accumulators of different aggregates".into() }),
        }
    }

    /// What the window of `key` gives when it fires.
    pub fn fire(&mut self, key: &[u8], w: &TimeWindow, acc: &Acc) -> Result<Fired, AccFailure> {
        match (self, acc) {
            (Aggregation::Process { function }, Acc::Elements(elements, times)) => {
                match function.call(key, (w.start, w.end), elements, times) {
                    Ok(Ok(rows)) => Ok(Fired::Rows(rows)),
                    Ok(Err(f)) => Err(AccFailure { kind: f.kind.as_str(), message: f.message }),
                    Err(e) => Err(AccFailure { kind: "error", message: e.to_string() }),
                }
            }
            (aggregation, acc) => aggregation.result(acc).map(Fired::Value),
        }
    }

    /// The window's result value.
    fn result(&mut self, acc: &Acc) -> Result<Value, AccFailure> {
        match (self, acc) {
            (Aggregation::Builtin { .. }, Acc::Builtin(a)) => Ok(a.result()),
            (Aggregation::Udaf { aggregator, .. }, Acc::Bytes(a)) => {
                let row = aggregator.get_result(a).map_err(|e| AccFailure {
                    kind: e.kind().map_or("error", |k| k.as_str()),
                    message: e.to_string(),
                })?;
                record::decode(&row).map_err(|e| AccFailure {
                    kind: "encoding",
                    message: format!("the result of get-result is not one MessagePack value: {e}"),
                })
            }
            _ => Err(AccFailure { kind: "error", message: "accumulator of another aggregate".into() }),
        }
    }
}
