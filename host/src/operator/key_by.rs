//! `key_by`: attach a key to every record, from a field or a Wasm key selector.
//!
//! The key travels with the record as MessagePack bytes; the exchange after this operator
//! routes on it (see `runtime::partition`), and keyed operators group by it.

use crate::plugin::Transformer;
use crate::record::{self, Batch, RowMeta};
use crate::task::DeadLetter;
use crate::task::{DeadLetters, Operator, OperatorError};

/// Where keys come from.
pub enum KeySource {
    /// The value of a field of map records.
    Field(String),
    /// A key-selector plugin function: one output row per input row, the key.
    Selector(Box<Transformer>),
}

pub struct KeyByOperator {
    name: String,
    source: KeySource,
}

impl KeyByOperator {
    pub fn new(name: String, source: KeySource) -> Self {
        Self { name, source }
    }
}

impl Operator for KeyByOperator {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        match &mut self.source {
            KeySource::Field(field) => {
                for i in 0..input.len() {
                    match record::field(input.value(i), field) {
                        Ok(key) => out.push_record(input.value(i), RowMeta { key: Some(&key), ..input.meta(i) }),
                        Err(e) => dead.push(DeadLetter::of_row(&self.name, "missing-field", e.to_string(), &input, i)),
                    }
                }
            }
            KeySource::Selector(selector) => {
                let outcome = selector
                    .apply(&input)
                    .map_err(|source| OperatorError::Plugin { operator: self.name.clone(), source })?;
                let failures = outcome.failures;
                let mut j = 0;
                let mut failed = failures.iter().peekable();
                for (i, &n) in outcome.counts.iter().enumerate() {
                    if let Some(f) = failed.next_if(|f| f.index == i) {
                        dead.push(DeadLetter::of_row(&self.name, f.kind.as_str(), f.message.clone(), &input, i));
                        continue;
                    }
                    if n != 1 {
                        let msg = format!("a key selector must return exactly one key per record, it returned {n}");
                        dead.push(DeadLetter::of_row(&self.name, "error", msg, &input, i));
                        j += n as usize;
                        continue;
                    }
                    out.push_record(input.value(i), RowMeta { key: Some(outcome.rows.value(j)), ..input.meta(i) });
                    j += 1;
                }
            }
        }
        Ok(())
    }
}
