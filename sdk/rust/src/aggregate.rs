//! User-defined aggregate functions (UDAFs): the [`Aggregate`] trait and its dispatcher.
//!
//! A UDAF is written like Flink's `AggregateFunction`: the accumulator is your own type,
//! `Default` is the empty accumulator, and you say how one value goes in, how two
//! accumulators merge and what the result is. The host keeps accumulators as opaque bytes
//! per key and window (so they are checkpointed and survive a plugin upgrade); between calls
//! they are MessagePack (structs as maps, [`rmp_serde::to_vec_named`]), so a plugin upgrade
//! that adds an `Option` field with `#[serde(default)]` still reads the old ones.
//!
//! Like [`crate::dispatch::apply`], the functions here are the only implementation of the
//! WIT `aggregate` interface: the component export and [`crate::testing::Harness`] both call
//! them.
//!
//! One `add` call folds a batch of values into many accumulators (one per key and window the
//! batch touches): value `i` goes into accumulator `groups[i]`, and every accumulator comes
//! back updated, so a batch spread over 1000 keys is still one call.
//!
//! Failure: a value that does not decode as [`Aggregate::Input`] fails the whole `add` call
//! (the WIT `add` returns one result for the batch); the host then retries value by value
//! from the accumulators it passed in, so only that value goes to the dead-letter output. A
//! panic in your `add` traps the instance and is handled the same way.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::batch::{BatchRef, RowWriter};
use crate::function::Plugin;

/// A UDAF, written on its accumulator type.
///
/// ```
/// use weir_sdk as weir;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Avg { sum: f64, count: u64 }
///
/// impl weir::Aggregate for Avg {
///     type Input = f64;
///     type Output = Option<f64>;
///     fn add(&mut self, value: f64) { self.sum += value; self.count += 1; }
///     fn merge(&mut self, other: Self) { self.sum += other.sum; self.count += other.count; }
///     fn result(&self) -> Option<f64> { (self.count > 0).then(|| self.sum / self.count as f64) }
/// }
///
/// weir::plugin! { name: "avg", version: "0.1.0", aggregates: [avg: Avg] }
///
/// # fn main() {
/// let harness = weir::testing::Harness::new(&PLUGIN);
/// assert_eq!(harness.aggregate::<_, Option<f64>>("avg", [1.0, 2.0, 6.0]), Some(3.0));
/// # }
/// ```
pub trait Aggregate: Default + Serialize + DeserializeOwned {
    /// One input value (a record, or the field the job selects), decoded from MessagePack.
    type Input: DeserializeOwned;
    /// The result, encoded as MessagePack.
    type Output: Serialize;

    /// Fold one value in.
    fn add(&mut self, value: Self::Input);

    /// Fold another accumulator in (session windows merging, parallel partial aggregates).
    fn merge(&mut self, other: Self);

    /// The result for the values folded in so far.
    fn result(&self) -> Self::Output;

    /// Take one value back out, for retracting aggregations. The default says the function
    /// does not support it.
    fn retract(&mut self, value: Self::Input) -> Result<(), String> {
        let _ = value;
        Err("this aggregate function does not support retract".to_string())
    }
}

/// Why an aggregate call failed (the WIT `err` string is its `Display`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    /// The host asked for an aggregate the plugin does not have.
    #[error(
        "plugin `{plugin}` has no aggregate function `{name}` (it has: {known}); check the function name in the job file"
    )]
    UnknownFunction { plugin: &'static str, name: String, known: String },
    /// The batch's offsets do not describe its data (a host or SDK bug, not a bad value).
    #[error("malformed input batch for aggregate `{function}`: {reason}")]
    MalformedBatch { function: String, reason: String },
    /// The accumulator bytes do not decode as the accumulator type.
    #[error("aggregate `{function}`: the accumulator does not decode as {ty}: {message}")]
    Accumulator { function: String, ty: &'static str, message: String },
    /// `groups` does not match the values or names an accumulator that is not there.
    #[error("aggregate `{function}`: bad groups: {reason}")]
    Groups { function: String, reason: String },
    /// A value does not decode as the input type, or `retract` refused it.
    #[error("aggregate `{function}`: value {index}: {message}")]
    Value { function: String, index: usize, message: String },
    /// The accumulator or the result cannot be encoded as MessagePack.
    #[error("aggregate `{function}`: cannot encode the {what} as MessagePack: {message}")]
    Encode { function: String, what: &'static str, message: String },
}

type Create = fn(&str) -> Result<Vec<u8>, AggregateError>;
type Fold = fn(&str, BatchRef<'_>, BatchRef<'_>, &[u32], bool) -> Result<Accumulators, AggregateError>;
type Merge = fn(&str, &[u8], &[u8]) -> Result<Vec<u8>, AggregateError>;
type Finish = fn(&str, &[u8]) -> Result<Vec<u8>, AggregateError>;

/// One registered UDAF of a plugin: its name and monomorphised entry points. Built by
/// `weir::plugin!` from `aggregates: [name: Type]`.
#[derive(Clone, Copy)]
pub struct AggregateFunction {
    name: &'static str,
    create: Create,
    fold: Fold,
    merge: Merge,
    result: Finish,
}

impl AggregateFunction {
    /// The aggregate `A`, called `name` by the host.
    pub const fn of<A: Aggregate>(name: &'static str) -> Self {
        AggregateFunction { name, create: create::<A>, fold: fold::<A>, merge: merge::<A>, result: result::<A> }
    }

    /// The name the host calls it by.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl std::fmt::Debug for AggregateFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateFunction").field("name", &self.name).finish_non_exhaustive()
    }
}

fn encode<T: Serialize>(value: &T, function: &str, what: &'static str) -> Result<Vec<u8>, AggregateError> {
    rmp_serde::to_vec_named(value).map_err(|e| AggregateError::Encode {
        function: function.to_string(),
        what,
        message: e.to_string(),
    })
}

fn decode_acc<A: Aggregate>(bytes: &[u8], function: &str) -> Result<A, AggregateError> {
    rmp_serde::from_slice(bytes).map_err(|e| AggregateError::Accumulator {
        function: function.to_string(),
        ty: std::any::type_name::<A>(),
        message: e.to_string(),
    })
}

fn create<A: Aggregate>(function: &str) -> Result<Vec<u8>, AggregateError> {
    encode(&A::default(), function, "accumulator")
}

/// Accumulators as they cross the boundary: one flat buffer plus offsets (`data`, `offsets`).
pub type Accumulators = (Vec<u8>, Vec<u32>);

fn fold<A: Aggregate>(
    function: &str,
    accumulators: BatchRef<'_>,
    values: BatchRef<'_>,
    groups: &[u32],
    retract: bool,
) -> Result<Accumulators, AggregateError> {
    let malformed = |reason| AggregateError::MalformedBatch { function: function.to_string(), reason };
    let bad_groups = |reason| AggregateError::Groups { function: function.to_string(), reason };
    if groups.len() != values.len() {
        return Err(bad_groups(format!("{} groups for {} values", groups.len(), values.len())));
    }
    let mut accs = (0..accumulators.len())
        .map(|i| decode_acc::<A>(accumulators.row(i).map_err(malformed)?, function))
        .collect::<Result<Vec<A>, _>>()?;
    for (index, &group) in groups.iter().enumerate() {
        let count = accs.len();
        let acc = accs
            .get_mut(group as usize)
            .ok_or_else(|| bad_groups(format!("value {index} goes to accumulator {group} of {count}")))?;
        let row = values.row(index).map_err(malformed)?;
        let value_error = |message| AggregateError::Value { function: function.to_string(), index, message };
        let value: A::Input = rmp_serde::from_slice(row)
            .map_err(|e| value_error(format!("does not decode as {}: {e}", std::any::type_name::<A::Input>())))?;
        if retract {
            acc.retract(value).map_err(value_error)?;
        } else {
            acc.add(value);
        }
    }
    let mut out = RowWriter::with_capacity(accs.len(), accumulators.data_len() + 16 * accs.len());
    for acc in &accs {
        out.push(acc).map_err(|message| AggregateError::Encode {
            function: function.to_string(),
            what: "accumulator",
            message,
        })?;
    }
    Ok(out.into_parts())
}

fn merge<A: Aggregate>(function: &str, a: &[u8], b: &[u8]) -> Result<Vec<u8>, AggregateError> {
    let mut a = decode_acc::<A>(a, function)?;
    a.merge(decode_acc::<A>(b, function)?);
    encode(&a, function, "accumulator")
}

fn result<A: Aggregate>(function: &str, acc: &[u8]) -> Result<Vec<u8>, AggregateError> {
    encode(&decode_acc::<A>(acc, function)?.result(), function, "result")
}

fn find<'p>(plugin: &'p Plugin, name: &str) -> Result<&'p AggregateFunction, AggregateError> {
    plugin.aggregate(name).ok_or_else(|| AggregateError::UnknownFunction {
        plugin: plugin.name(),
        name: name.to_string(),
        known: plugin.aggregates().iter().map(|f| f.name()).collect::<Vec<_>>().join(", "),
    })
}

/// `create-accumulator`: an empty accumulator of `plugin`'s aggregate `name`.
pub fn create_accumulator(plugin: &Plugin, name: &str) -> Result<Vec<u8>, AggregateError> {
    let f = find(plugin, name)?;
    (f.create)(f.name)
}

/// `add`: value `i` of the batch `values` folded into accumulator `groups[i]` of the batch
/// `accumulators` (each batch is `(data, offsets)`); returns every accumulator, updated.
pub fn add(
    plugin: &Plugin,
    name: &str,
    accumulators: (&[u8], &[u32]),
    values: (&[u8], &[u32]),
    groups: &[u32],
) -> Result<Accumulators, AggregateError> {
    fold_batch(plugin, name, accumulators, values, groups, false)
}

/// `retract`: like [`add`], taking the values back out.
pub fn retract(
    plugin: &Plugin,
    name: &str,
    accumulators: (&[u8], &[u32]),
    values: (&[u8], &[u32]),
    groups: &[u32],
) -> Result<Accumulators, AggregateError> {
    fold_batch(plugin, name, accumulators, values, groups, true)
}

fn fold_batch(
    plugin: &Plugin,
    name: &str,
    accumulators: (&[u8], &[u32]),
    values: (&[u8], &[u32]),
    groups: &[u32],
    retract: bool,
) -> Result<Accumulators, AggregateError> {
    let f = find(plugin, name)?;
    let malformed = |what: &str, reason: String| AggregateError::MalformedBatch {
        function: name.to_string(),
        reason: format!("{what}: {reason}"),
    };
    let accs = BatchRef::new(accumulators.0, accumulators.1).map_err(|r| malformed("accumulators", r))?;
    let values = BatchRef::new(values.0, values.1).map_err(|r| malformed("values", r))?;
    (f.fold)(f.name, accs, values, groups, retract)
}

/// `merge`: one accumulator holding what `a` and `b` hold.
pub fn merge_accumulators(plugin: &Plugin, name: &str, a: &[u8], b: &[u8]) -> Result<Vec<u8>, AggregateError> {
    let f = find(plugin, name)?;
    (f.merge)(f.name, a, b)
}

/// `get-result`: the result row (MessagePack) of `accumulator`.
pub fn get_result(plugin: &Plugin, name: &str, accumulator: &[u8]) -> Result<Vec<u8>, AggregateError> {
    let f = find(plugin, name)?;
    (f.result)(f.name, accumulator)
}
