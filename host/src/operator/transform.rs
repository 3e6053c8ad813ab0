//! Map, filter and flat-map over a Wasm transform function.

use super::{DeadLetters, Operator, OperatorError};
use crate::deploy::PluginCell;
use crate::plugin::{FunctionKind, Transformer};
use crate::record::Batch;
use crate::runtime::DeadLetter;

/// Which transform a step is; the plugin function must be of the matching kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransformKind {
    Map,
    Filter,
    FlatMap,
}

impl TransformKind {
    pub fn function_kind(self) -> FunctionKind {
        match self {
            TransformKind::Map => FunctionKind::Map,
            TransformKind::Filter => FunctionKind::Filter,
            TransformKind::FlatMap => FunctionKind::FlatMap,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TransformKind::Map => "map",
            TransformKind::Filter => "filter",
            TransformKind::FlatMap => "flat_map",
        }
    }
}

/// A map, filter or flat-map step running a plugin function. Keys set by an earlier
/// `key_by` are carried to every output row of their input row. The step's plugin version
/// can change while the job runs (hot deploy): the operator follows its [`PluginCell`]
/// between batches.
pub struct TransformOperator {
    name: String,
    kind: TransformKind,
    function: String,
    cell: PluginCell,
    generation: u64,
    transformer: Transformer,
}

impl TransformOperator {
    pub fn new(name: String, kind: TransformKind, function: String, cell: PluginCell) -> Result<Self, OperatorError> {
        let (generation, plugin) = cell.current();
        let transformer = plugin
            .transformer(&function, &[kind.function_kind()])
            .map_err(|source| OperatorError::Plugin { operator: name.clone(), source })?;
        Ok(Self { name, kind, function, cell, generation, transformer })
    }

    /// Before a batch: take up a newly deployed version.
    fn follow_deploys(&mut self) -> Result<(), OperatorError> {
        if self.cell.generation() == self.generation {
            return Ok(());
        }
        let (generation, plugin) = self.cell.current();
        self.transformer = plugin
            .transformer(&self.function, &[self.kind.function_kind()])
            .map_err(|source| OperatorError::Plugin { operator: self.name.clone(), source })?;
        self.generation = generation;
        Ok(())
    }
}

impl Operator for TransformOperator {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.follow_deploys()?;
        let outcome = self
            .transformer
            .apply(&input)
            .map_err(|source| OperatorError::Plugin { operator: self.name.clone(), source })?;
        for f in &outcome.failures {
            dead.push(DeadLetter::of_row(&self.name, f.kind.as_str(), f.message.clone(), &input, f.index));
        }
        if out.is_empty() && !input.has_meta() {
            *out = outcome.rows;
            return Ok(());
        }
        let mut j = 0;
        for (i, &n) in outcome.counts.iter().enumerate() {
            for _ in 0..n {
                out.push_record(outcome.rows.value(j), input.meta(i));
                j += 1;
            }
        }
        Ok(())
    }
}
