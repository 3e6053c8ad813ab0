//! Run a plugin's functions locally, through the same path the component takes.
//!
//! [`Harness`] runs transforms and aggregates; [`ProcessHarness`] runs a keyed process
//! function with in-memory state and timers (see [its module](process)).
//!
//! A [`Harness`] encodes your input values as MessagePack rows in one flat batch (structs as
//! maps, as the host sends them), calls the dispatcher the component export calls, and
//! decodes the output batch. So a unit test covers the row decoding, the function, the error
//! handling and the encoding, not just the function body, and needs no host and no Wasm.
//!
//! ```
//! use weir_sdk as weir;
//!
//! #[weir::map]
//! fn upper(s: String) -> String {
//!     s.to_uppercase()
//! }
//!
//! #[weir::map]
//! fn parse_int(s: String) -> Result<i64, std::num::ParseIntError> {
//!     s.trim().parse()
//! }
//!
//! #[weir::filter]
//! fn is_long(s: &str) -> bool {
//!     s.len() > 4
//! }
//!
//! weir::plugin! { name: "demo", version: "0.1.0", functions: [upper, parse_int, is_long] }
//!
//! # fn main() {
//! let harness = weir::testing::Harness::new(&PLUGIN);
//! // One output per row, panicking on a row error:
//! assert_eq!(harness.map::<_, String>("upper", ["a", "b"]), ["A", "B"]);
//! // Keep or drop, per input row:
//! assert_eq!(harness.filter("is_long", ["hi", "hello"]), [false, true]);
//! // Everything, including per-row errors:
//! let out = harness.apply::<_, i64>("parse_int", ["42", "x"]);
//! assert_eq!(out[0], Ok(vec![42]));
//! assert!(out[1].is_err());
//! # }
//! ```

pub(crate) mod memory;
pub mod process;

pub use process::{InputFailure, ProcessHarness, ProcessHarnessError};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::aggregate::{self, AggregateError};
use crate::dispatch::{self, ApplyError, TransformOutput};
use crate::function::Plugin;

/// Why a harness call could not produce per-row results.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// An input value could not be encoded as MessagePack.
    #[error("cannot encode input row {index} as MessagePack: {message}")]
    Encode { index: usize, message: String },
    /// The whole call failed, as it would in the host.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// An aggregate call failed, as it would in the host (the host would then retry the
    /// values one by one).
    #[error(transparent)]
    Aggregate(#[from] AggregateError),
    /// An aggregate's result did not decode as the type the test asked for.
    #[error("the result of `{function}` does not decode as {ty}: {message}")]
    DecodeResult { function: String, ty: &'static str, message: String },
    /// An output row did not decode as the type the test asked for.
    #[error("output row {output} (from input row {input}) does not decode as {ty}: {message}")]
    Decode { input: usize, output: usize, ty: &'static str, message: String },
}

/// Runs the functions of one plugin table (the `PLUGIN` static that `weir::plugin!` defines).
///
/// The convenience methods ([`map`](Self::map), [`filter`](Self::filter),
/// [`flat_map`](Self::flat_map)) panic on a row error, which is what a test wants when it
/// expects none; use [`apply`](Self::apply) to look at errors.
#[derive(Debug, Clone, Copy)]
pub struct Harness {
    plugin: &'static Plugin,
}

impl Harness {
    /// A harness over `plugin`'s functions.
    pub fn new(plugin: &'static Plugin) -> Self {
        Harness { plugin }
    }

    /// The plugin under test (name, version, functions: what `describe` reports).
    pub fn plugin(&self) -> &'static Plugin {
        self.plugin
    }

    /// Applies function `name` to `rows` as one batch and returns the raw output batch.
    pub fn apply_encoded<I: Serialize>(
        &self,
        name: &str,
        rows: impl IntoIterator<Item = I>,
    ) -> Result<TransformOutput, HarnessError> {
        let (data, offsets) = encode_batch(rows)?;
        Ok(dispatch::apply(self.plugin, name, &data, &offsets)?)
    }

    /// A new accumulator of the aggregate `name` (its MessagePack bytes, as the host holds it).
    pub fn create_accumulator(&self, name: &str) -> Result<Vec<u8>, HarnessError> {
        Ok(aggregate::create_accumulator(self.plugin, name)?)
    }

    /// `values` folded into `accumulator` as one batch, as the host's `add` call does.
    pub fn add<I: Serialize>(
        &self,
        name: &str,
        accumulator: &[u8],
        values: impl IntoIterator<Item = I>,
    ) -> Result<Vec<u8>, HarnessError> {
        self.fold_one(name, accumulator, values, aggregate::add)
    }

    /// `values` taken back out of `accumulator` (an error unless the aggregate supports it).
    pub fn retract<I: Serialize>(
        &self,
        name: &str,
        accumulator: &[u8],
        values: impl IntoIterator<Item = I>,
    ) -> Result<Vec<u8>, HarnessError> {
        self.fold_one(name, accumulator, values, aggregate::retract)
    }

    /// Each `(group, value)` folded into `accumulators[group]` in one call, as the host
    /// folds a batch that touches several keys or windows; returns every accumulator.
    pub fn add_grouped<I: Serialize>(
        &self,
        name: &str,
        accumulators: &[Vec<u8>],
        values: impl IntoIterator<Item = (u32, I)>,
    ) -> Result<Vec<Vec<u8>>, HarnessError> {
        let (groups, values): (Vec<u32>, Vec<I>) = values.into_iter().unzip();
        let (acc_data, acc_offsets) = flatten(accumulators);
        let (data, offsets) = encode_batch(values)?;
        let (out, out_offsets) =
            aggregate::add(self.plugin, name, (&acc_data, &acc_offsets), (&data, &offsets), &groups)?;
        Ok(out_offsets.windows(2).map(|w| out[w[0] as usize..w[1] as usize].to_vec()).collect())
    }

    fn fold_one<I: Serialize>(
        &self,
        name: &str,
        accumulator: &[u8],
        values: impl IntoIterator<Item = I>,
        fold: FoldFn,
    ) -> Result<Vec<u8>, HarnessError> {
        let (data, offsets) = encode_batch(values)?;
        let groups = vec![0; offsets.len() - 1];
        let acc_offsets = [0, accumulator.len() as u32];
        let (out, _) = fold(self.plugin, name, (accumulator, &acc_offsets), (&data, &offsets), &groups)?;
        Ok(out)
    }

    /// Two accumulators merged into one.
    pub fn merge(&self, name: &str, a: &[u8], b: &[u8]) -> Result<Vec<u8>, HarnessError> {
        Ok(aggregate::merge_accumulators(self.plugin, name, a, b)?)
    }

    /// The result of `accumulator`, decoded as `O`.
    pub fn result<O: DeserializeOwned>(&self, name: &str, accumulator: &[u8]) -> Result<O, HarnessError> {
        let row = aggregate::get_result(self.plugin, name, accumulator)?;
        rmp_serde::from_slice(&row).map_err(|e| HarnessError::DecodeResult {
            function: name.to_string(),
            ty: std::any::type_name::<O>(),
            message: e.to_string(),
        })
    }

    /// The result of the aggregate `name` over `values` (create, add as one batch, result).
    /// Panics on any error.
    #[track_caller]
    pub fn aggregate<I: Serialize, O: DeserializeOwned>(&self, name: &str, values: impl IntoIterator<Item = I>) -> O {
        let run = || {
            let acc = self.create_accumulator(name)?;
            let acc = self.add(name, &acc, values)?;
            self.result(name, &acc)
        };
        run().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The result of `name` over each group of `values` aggregated separately and then
    /// merged, as session windows do. Panics on any error.
    #[track_caller]
    pub fn aggregate_merged<I: Serialize, O: DeserializeOwned>(
        &self,
        name: &str,
        groups: impl IntoIterator<Item = impl IntoIterator<Item = I>>,
    ) -> O {
        let run = || {
            let mut merged = self.create_accumulator(name)?;
            for group in groups {
                let acc = self.create_accumulator(name)?;
                let acc = self.add(name, &acc, group)?;
                merged = self.merge(name, &merged, &acc)?;
            }
            self.result(name, &merged)
        };
        run().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Applies function `name` to `rows`; for each input row, its output rows or its error.
    pub fn try_apply<I: Serialize, O: DeserializeOwned>(
        &self,
        name: &str,
        rows: impl IntoIterator<Item = I>,
    ) -> Result<Vec<Result<Vec<O>, String>>, HarnessError> {
        let output = self.apply_encoded(name, rows)?;
        let mut errors = output.errors.into_iter().peekable();
        let mut results = Vec::with_capacity(output.counts.len());
        let mut next = 0usize;
        for (input, &count) in output.counts.iter().enumerate() {
            if let Some(error) = errors.next_if(|e| e.index as usize == input) {
                results.push(Err(error.message));
                continue;
            }
            let mut rows = Vec::with_capacity(count as usize);
            for output_index in next..next + count as usize {
                let start = output.offsets[output_index] as usize;
                let end = output.offsets[output_index + 1] as usize;
                let value = rmp_serde::from_slice(&output.data[start..end]).map_err(|e| HarnessError::Decode {
                    input,
                    output: output_index,
                    ty: std::any::type_name::<O>(),
                    message: e.to_string(),
                })?;
                rows.push(value);
            }
            next += count as usize;
            results.push(Ok(rows));
        }
        Ok(results)
    }

    /// Like [`try_apply`](Self::try_apply), panicking if the whole call fails (an unknown
    /// function, say).
    #[track_caller]
    pub fn apply<I: Serialize, O: DeserializeOwned>(
        &self,
        name: &str,
        rows: impl IntoIterator<Item = I>,
    ) -> Vec<Result<Vec<O>, String>> {
        self.try_apply(name, rows).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The one output row of each input row, for maps, key selectors and timestamp assigners.
    /// Panics on a row error or on a count other than one.
    #[track_caller]
    pub fn map<I: Serialize, O: DeserializeOwned>(&self, name: &str, rows: impl IntoIterator<Item = I>) -> Vec<O> {
        self.apply(name, rows)
            .into_iter()
            .enumerate()
            .map(|(index, result)| match result {
                Ok(mut rows) if rows.len() == 1 => rows.remove(0),
                Ok(rows) => panic!("`{name}` gave {} rows for input row {index}, not 1", rows.len()),
                Err(e) => panic!("`{name}` failed on input row {index}: {e}"),
            })
            .collect()
    }

    /// Whether a filter kept each input row. Panics on a row error.
    #[track_caller]
    pub fn filter<I: Serialize>(&self, name: &str, rows: impl IntoIterator<Item = I>) -> Vec<bool> {
        let output = self.apply_encoded(name, rows).unwrap_or_else(|e| panic!("{e}"));
        if let Some(error) = output.errors.first() {
            panic!("`{name}` failed on input row {}: {}", error.index, error.message);
        }
        output.counts.iter().map(|&count| count > 0).collect()
    }

    /// The output rows of each input row, for flat-maps. Panics on a row error.
    #[track_caller]
    pub fn flat_map<I: Serialize, O: DeserializeOwned>(
        &self,
        name: &str,
        rows: impl IntoIterator<Item = I>,
    ) -> Vec<Vec<O>> {
        self.apply(name, rows)
            .into_iter()
            .enumerate()
            .map(|(index, result)| result.unwrap_or_else(|e| panic!("`{name}` failed on input row {index}: {e}")))
            .collect()
    }
}

/// `rows` as one MessagePack batch (structs as maps), as the host sends them.
type FoldFn =
    fn(&Plugin, &str, (&[u8], &[u32]), (&[u8], &[u32]), &[u32]) -> Result<aggregate::Accumulators, AggregateError>;

/// Already encoded rows as one flat batch.
fn flatten(rows: &[Vec<u8>]) -> (Vec<u8>, Vec<u32>) {
    let mut offsets = vec![0u32];
    for row in rows {
        offsets.push(offsets[offsets.len() - 1] + row.len() as u32);
    }
    (rows.concat(), offsets)
}

fn encode_batch<I: Serialize>(rows: impl IntoIterator<Item = I>) -> Result<(Vec<u8>, Vec<u32>), HarnessError> {
    let mut data = Vec::new();
    let mut offsets = vec![0u32];
    for (index, row) in rows.into_iter().enumerate() {
        rmp_serde::encode::write_named(&mut data, &row)
            .map_err(|e| HarnessError::Encode { index, message: e.to_string() })?;
        let end = u32::try_from(data.len())
            .map_err(|_| HarnessError::Encode { index, message: "the batch exceeds 4 GiB".into() })?;
        offsets.push(end);
    }
    Ok((data, offsets))
}
