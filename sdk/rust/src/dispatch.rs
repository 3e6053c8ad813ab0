//! The transform dispatcher: one batch in, every function's rows out.
//!
//! This is the only implementation of `transform.apply`. The component export calls it with
//! the buffers wit-bindgen lifted, and [`crate::testing::Harness`] calls it with buffers it
//! encoded itself, so a plugin's unit tests exercise exactly the code the host will run.
//!
//! Failure is split in two on purpose. A row that cannot be decoded, or for which the user's
//! function returns `Err`, becomes a [`RowError`] and the rest of the batch goes on (one bad
//! record fails alone). Only a problem with the call itself (an unknown function, offsets
//! that do not describe the data) is an [`ApplyError`], which fails the whole call.

use crate::batch::{BatchRef, RowWriter};
use crate::function::Plugin;

/// Why a whole `apply` call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The host asked for a function the plugin does not have.
    #[error("plugin `{plugin}` has no function `{name}` (it has: {known}); check the function name in the job file")]
    UnknownFunction { plugin: &'static str, name: String, known: String },
    /// The batch's offsets do not describe its data (a host or SDK bug, not a bad record).
    #[error("malformed input batch for function `{function}`: {reason}")]
    MalformedBatch { function: String, reason: String },
}

/// One failed input row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// Index of the row in the input batch.
    pub index: u32,
    /// What went wrong, for the dead-letter output.
    pub message: String,
}

/// The outcome of one `apply`: the WIT `transform-output` in plain Rust types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformOutput {
    /// All output rows, in input order, in one buffer.
    pub data: Vec<u8>,
    /// Output row `j` is `data[offsets[j]..offsets[j + 1]]`.
    pub offsets: Vec<u32>,
    /// `counts[i]` output rows came from input row `i`.
    pub counts: Vec<u32>,
    /// The input rows that failed (they have a count of 0).
    pub errors: Vec<RowError>,
}

/// Applies `plugin`'s function `name` to every row of the batch `data` + `offsets`.
pub fn apply(plugin: &Plugin, name: &str, data: &[u8], offsets: &[u32]) -> Result<TransformOutput, ApplyError> {
    let function = plugin.function(name).ok_or_else(|| ApplyError::UnknownFunction {
        plugin: plugin.name(),
        name: name.to_string(),
        known: plugin.functions().iter().map(|f| f.name()).collect::<Vec<_>>().join(", "),
    })?;
    let malformed = |reason| ApplyError::MalformedBatch { function: name.to_string(), reason };
    let batch = BatchRef::new(data, offsets).map_err(malformed)?;
    let rows = batch.len();
    let invoke = function.invoker();

    // Sized for a map that grows each row a little; flat-maps grow the buffer as they go.
    let mut out = RowWriter::with_capacity(rows, batch.data_len() + batch.data_len() / 4);
    let mut counts = Vec::with_capacity(rows);
    let mut errors = Vec::new();
    for index in 0..rows {
        let row = batch.row(index).map_err(malformed)?;
        let mark = out.mark();
        let count = match invoke(row, &mut out) {
            Ok(()) => out.rows_since(mark),
            Err(message) => {
                out.rollback(mark);
                // `rows < offsets.len()`, and a WIT list length is a u32.
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                errors.push(RowError { index, message });
                0
            }
        };
        counts.push(u32::try_from(count).unwrap_or(u32::MAX));
    }
    let (data, offsets) = out.into_parts();
    Ok(TransformOutput { data, offsets, counts, errors })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Harness;

    /// Serialises as its number, except 13, which fails to encode.
    struct Unlucky(u32);

    impl serde::Serialize for Unlucky {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            if self.0 == 13 {
                Err(serde::ser::Error::custom("13 is unlucky"))
            } else {
                serializer.serialize_u32(self.0)
            }
        }
    }

    #[weir_sdk::flat_map]
    fn count_to(n: u32) -> impl Iterator<Item = Unlucky> {
        (0..n).map(Unlucky)
    }

    crate::plugin! { name: "dispatch-test", version: "0.0.1", functions: [count_to] }

    fn encode(values: &[u32]) -> (Vec<u8>, Vec<u32>) {
        let mut data = Vec::new();
        let mut offsets = vec![0];
        for value in values {
            rmp_serde::encode::write(&mut data, value).expect("u32 encodes");
            offsets.push(data.len() as u32);
        }
        (data, offsets)
    }

    #[test]
    fn a_row_failing_half_way_leaves_no_output() {
        let (data, offsets) = encode(&[2, 14, 1]);
        let out = apply(&PLUGIN, "count_to", &data, &offsets).expect("call succeeds");
        assert_eq!(out.counts, [2, 0, 1]);
        assert_eq!(out.offsets.len(), 4, "three rows: 0, 1 and 0");
        assert_eq!(out.errors.len(), 1);
        assert_eq!(out.errors[0].index, 1);
        assert!(out.errors[0].message.contains("13 is unlucky"), "{}", out.errors[0].message);
        let rows = Harness::new(&PLUGIN).apply::<_, u32>("count_to", [2u32, 14, 1]);
        assert_eq!(rows[0], Ok(vec![0, 1]));
        assert_eq!(rows[2], Ok(vec![0]));
    }

    #[test]
    fn an_empty_batch_is_fine() {
        let out = apply(&PLUGIN, "count_to", &[], &[0]).expect("call succeeds");
        assert_eq!((out.data.len(), out.offsets, out.counts.len()), (0, vec![0], 0));
    }

    #[test]
    fn malformed_batches_fail_the_call() {
        let (data, _) = encode(&[1, 2]);
        for offsets in [vec![], vec![1, 2], vec![0, 5], vec![0, 2, 1]] {
            let error = apply(&PLUGIN, "count_to", &data, &offsets).expect_err("malformed");
            assert!(matches!(error, ApplyError::MalformedBatch { .. }), "{offsets:?}: {error}");
        }
    }

    #[test]
    fn an_unknown_function_names_the_known_ones() {
        let error = apply(&PLUGIN, "nope", &[], &[0]).expect_err("unknown");
        assert_eq!(
            error.to_string(),
            "plugin `dispatch-test` has no function `nope` (it has: count_to); check the function name in the job file"
        );
    }
}
