//! Map, filter and flat-map over a Wasm transform function.

use super::{DeadLetters, Operator, OperatorError};
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
/// `key_by` are carried to every output row of their input row.
pub struct TransformOperator {
    name: String,
    transformer: Transformer,
}

impl TransformOperator {
    pub fn new(name: String, transformer: Transformer) -> Self {
        Self { name, transformer }
    }
}

impl Operator for TransformOperator {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
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
