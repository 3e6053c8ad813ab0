//! Native Rust functions as operators: the builder API's closures (and the baseline every
//! Wasm benchmark is compared with).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::record::Batch;
use crate::task::DeadLetter;
use crate::task::{DeadLetters, Operator, OperatorError};

type RowFn = dyn FnMut(&[u8], &mut Vec<u8>) -> Result<(), String> + Send;

/// A map over MessagePack rows by a native closure that writes its output row into a buffer.
pub struct NativeMap {
    name: String,
    f: Box<RowFn>,
}

impl NativeMap {
    pub fn new(name: String, f: impl FnMut(&[u8], &mut Vec<u8>) -> Result<(), String> + Send + 'static) -> Self {
        Self { name, f: Box::new(f) }
    }

    /// A map over serde types, decoded and encoded like a Rust plugin does (struct maps).
    pub fn typed<T, U>(name: String, mut f: impl FnMut(T) -> U + Send + 'static) -> Self
    where
        T: DeserializeOwned,
        U: Serialize,
    {
        Self::new(name, move |row, out| {
            let input: T = rmp_serde::from_slice(row).map_err(|e| format!("cannot decode the record: {e}"))?;
            let output = f(input);
            output
                .serialize(&mut rmp_serde::Serializer::new(out).with_struct_map())
                .map_err(|e| format!("cannot encode the result: {e}"))
        })
    }
}

impl Operator for NativeMap {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        let keyed = input.has_meta();
        let mut buf = Vec::new();
        for i in 0..input.len() {
            let result = if keyed {
                buf.clear();
                (self.f)(input.value(i), &mut buf).map(|()| out.push_record(&buf, input.meta(i)))
            } else {
                out.push_with(|o| (self.f)(input.value(i), o))
            };
            if let Err(error) = result {
                dead.push(DeadLetter::of_row(&self.name, "error", error, &input, i));
            }
        }
        Ok(())
    }
}
