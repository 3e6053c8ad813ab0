//! Write Weir stream functions in Rust; build them as WebAssembly components.
//!
//! A Weir job runs your functions inside Wasm components so the host can sandbox them and
//! swap a new version in while the job runs. The component ABI (`weir:plugin`, in the
//! repository's `wit/`) moves rows in MessagePack batches through a single `apply` call per
//! batch. This crate hides all of that: you write plain Rust functions over serde types,
//! mark them with an attribute, list them in [`plugin!`], and build with
//! `cargo build --release --target wasm32-wasip2`.
//!
//! ```
//! use weir_sdk as weir; // plugin crates depend on it as `weir = { package = "weir-sdk", .. }`
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize, Serialize)]
//! struct Order { id: u64, amount: f64 }
//!
//! #[weir::map]
//! fn upper(s: String) -> String {
//!     s.to_uppercase()
//! }
//!
//! #[weir::filter]
//! fn is_big(order: &Order) -> bool {
//!     order.amount > 100.0
//! }
//!
//! #[weir::flat_map]
//! fn words(line: &str) -> Vec<String> {
//!     line.split_whitespace().map(str::to_string).collect()
//! }
//!
//! #[weir::key_selector]
//! fn by_id(order: Order) -> u64 {
//!     order.id
//! }
//!
//! #[weir::map]
//! fn parse(s: String) -> Result<i64, std::num::ParseIntError> {
//!     s.parse() // an `Err` fails this row only, into the job's dead-letter output
//! }
//!
//! weir::plugin! {
//!     name: "example",
//!     version: "0.1.0",
//!     functions: [upper, is_big, words, by_id, parse],
//! }
//!
//! # fn main() {
//! // Functions stay plain functions...
//! assert_eq!(upper("a".into()), "A");
//! // ...and the harness runs them through the component's batch path.
//! let harness = weir::testing::Harness::new(&PLUGIN);
//! assert_eq!(harness.map::<_, String>("upper", ["a", "b"]), ["A", "B"]);
//! assert_eq!(harness.flat_map::<_, String>("words", ["x y"]), [vec!["x", "y"]]);
//! # }
//! ```
//!
//! # Functions
//!
//! Each attribute takes a function of exactly one argument, without generics:
//!
//! | attribute | returns (or `Result<_, E: Display>` of it) | output per input row |
//! |---|---|---|
//! | [`map`] | any `Serialize` | one row |
//! | [`filter`] | `bool` | the input row unchanged, or none |
//! | [`flat_map`] | any `IntoIterator` of `Serialize` (`Vec`, `Option`, ...) | zero or more rows |
//! | [`key_selector`] | any `Serialize` (the key) | one row |
//! | [`timestamp_assigner`] | `i64` (ms since the epoch) | one row |
//!
//! The argument is any `DeserializeOwned` type, a `&T` of one, or a borrowed `&str` /
//! `&[u8]` decoded without copying. A return type whose last path segment is `Result` is
//! taken as fallible: its `Err` becomes that row's error (its `Display` text), not a trap.
//! A row that does not decode as the argument type is also a row error, naming the function
//! and the serde message. A panic traps the component instance; the host then retries the
//! batch row by row and sends the guilty row to the dead-letter output.
//!
//! The function name is the name the job file refers to. The attribute leaves the function
//! as it is (call it from your tests) and adds a hidden constant `__weir_function_<name>`
//! next to it that [`plugin!`] picks up, so the function must be visible where `plugin!`
//! is invoked.
//!
//! # `plugin!`
//!
//! `weir::plugin! { name: "...", version: "x.y.z", functions: [path, ...] }` defines
//! `pub static PLUGIN: weir::Plugin` (the function table) and, when compiling for `wasm32`,
//! the component of the `plugin` world: it exports `describe`, `transform`, `aggregate` and
//! `process` (an interface with no functions of its kind answers "unknown function"), and
//! imports `log`, `context`, `state`, `broadcast` and `timers` (the host links them for
//! every plugin). Invoke it once per crate.
//!
//! # Aggregates (UDAFs)
//!
//! Implement [`Aggregate`] on an accumulator type (`Default + Serialize + Deserialize`) and
//! list it as `aggregates: [name: Type, ...]` in [`plugin!`] (`functions:` may then be left
//! out). See [`Aggregate`] for an example and
//! [`testing::Harness::aggregate`] for tests.
//!
//! # Keyed process functions
//!
//! Implement [`KeyedProcessFunction`] (Flink's `KeyedProcessFunction`, with an optional
//! broadcast side) on a `Default` type and list it as `processes: [name: Type, ...]` in
//! [`plugin!`]. Its state (value, list, map, broadcast map; optional TTL) and timers live in
//! the host, declared in [`KeyedProcessFunction::STATES`] and reached through typed handles
//! on the [`process::Context`]. See the [`process`] module for an example, and
//! [`testing::ProcessHarness`] for tests with in-memory state and timers.
//!
//! # Rows
//!
//! Rows are MessagePack. Structs are encoded as maps with field names, because the host
//! reads key and timestamp fields by name. Filters pass their input bytes through as they
//! came, so fields the filter's argument type does not declare are kept.

// The macros emit `::weir_sdk::...` paths when used inside this package (its doctests and
// tests); this makes the same paths resolve in the library itself.
extern crate self as weir_sdk;

mod aggregate;
mod batch;
mod dispatch;
#[cfg(target_arch = "wasm32")]
mod export;
mod function;
pub mod log;
pub mod process;
pub mod signature;
pub mod testing;

pub use aggregate::{Aggregate, AggregateError, AggregateFunction};
pub use batch::RowWriter;
pub use dispatch::{ApplyError, RowError, TransformOutput, apply};
pub use function::{Function, FunctionKind, Plugin, RowInvoker, SDK};
pub use process::KeyedProcessFunction;

/// Marks a function as a Weir **map**: one output row per input row.
///
/// ```
/// # use weir_sdk as weir;
/// #[weir::map]
/// fn upper(s: String) -> String {
///     s.to_uppercase()
/// }
/// # fn main() { assert_eq!(upper("a".into()), "A"); }
/// ```
pub use weir_sdk_macros::map;

/// Marks a function as a Weir **filter**: returns `bool`; kept rows pass through unchanged.
///
/// ```
/// # use weir_sdk as weir;
/// #[weir::filter]
/// fn is_long(s: &str) -> bool {
///     s.len() > 4
/// }
/// # fn main() {}
/// ```
pub use weir_sdk_macros::filter;

/// Marks a function as a Weir **flat-map**: returns any `IntoIterator` of output rows.
///
/// ```
/// # use weir_sdk as weir;
/// #[weir::flat_map]
/// fn split(line: String) -> Vec<String> {
///     line.split(' ').map(str::to_string).collect()
/// }
/// # fn main() {}
/// ```
pub use weir_sdk_macros::flat_map;

/// Marks a function as a Weir **key selector**: returns the record's key.
///
/// ```
/// # use weir_sdk as weir;
/// #[weir::key_selector]
/// fn first_letter(s: String) -> String {
///     s.chars().next().map(String::from).unwrap_or_default()
/// }
/// # fn main() {}
/// ```
pub use weir_sdk_macros::key_selector;

/// Marks a function as a Weir **timestamp assigner**: returns the event time as `i64` ms.
///
/// ```
/// # use weir_sdk as weir;
/// #[derive(serde::Deserialize)]
/// struct Click { at_ms: i64 }
///
/// #[weir::timestamp_assigner]
/// fn click_time(c: Click) -> i64 {
///     c.at_ms
/// }
/// # fn main() {}
/// ```
pub use weir_sdk_macros::timestamp_assigner;

/// Declares the plugin: `weir::plugin! { name: "upper", version: "0.1.0", functions: [upper] }`,
/// with UDAFs `weir::plugin! { ..., functions: [...], aggregates: [avg: Avg] }`, with keyed
/// process functions `weir::plugin! { ..., processes: [count: CountPerKey] }` (`functions:`
/// may be left out when `aggregates:` or `processes:` is given).
///
/// Defines `pub static PLUGIN: weir::Plugin` and, for `wasm32`, the component exports. See
/// the [crate docs](crate#plugin) for details.
pub use weir_sdk_macros::plugin;

/// What the macros expand to. Not a stable API.
#[doc(hidden)]
pub mod __private {
    use std::fmt::Display;

    use serde::{Deserialize, Serialize};

    use crate::batch::RowWriter;
    use crate::signature::{Scalar, Signature, ValueType};

    #[cfg(target_arch = "wasm32")]
    pub use crate::export::{Component, Exported, bindings};

    /// Decodes one input row as the function's argument type.
    #[inline]
    pub fn decode<'de, T: Deserialize<'de>>(row: &'de [u8], function: &str) -> Result<T, String> {
        rmp_serde::from_slice(row).map_err(|e| {
            format!("function `{function}`: the input row does not decode as {}: {e}", std::any::type_name::<T>())
        })
    }

    /// Turns the user's `Err` into the row's error message.
    #[inline]
    pub fn user_result<T, E: Display>(result: Result<T, E>) -> Result<T, String> {
        result.map_err(|e| e.to_string())
    }

    #[inline]
    pub fn emit_one<T: Serialize + ?Sized>(out: &mut RowWriter, value: &T, function: &str) -> Result<(), String> {
        out.push(value).map_err(|e| format!("function `{function}`: {e}"))
    }

    #[inline]
    pub fn emit_filter(out: &mut RowWriter, row: &[u8], keep: bool) -> Result<(), String> {
        if keep { out.push_raw(row) } else { Ok(()) }
    }

    #[inline]
    pub fn emit_many<I>(out: &mut RowWriter, items: I, function: &str) -> Result<(), String>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        items.into_iter().try_for_each(|item| emit_one(out, &item, function))
    }

    /// The signature of a function returning one value (map, key selector).
    pub fn signature_one<A, R>(_: fn(A) -> R, param: &str) -> Signature {
        Signature { params: vec![(param.to_string(), ValueType::of::<A>())], result: ValueType::of::<R>() }
    }

    /// [`signature_one`] of a function returning a `Result`.
    pub fn signature_one_ok<A, T, E>(_: fn(A) -> Result<T, E>, param: &str) -> Signature {
        Signature { params: vec![(param.to_string(), ValueType::of::<A>())], result: ValueType::of::<T>() }
    }

    /// The signature of a flat-map: its result is the type of one output row.
    pub fn signature_many<A, R: IntoIterator>(_: fn(A) -> R, param: &str) -> Signature {
        Signature { params: vec![(param.to_string(), ValueType::of::<A>())], result: ValueType::of::<R::Item>() }
    }

    /// [`signature_many`] of a function returning a `Result`.
    pub fn signature_many_ok<A, R: IntoIterator, E>(_: fn(A) -> Result<R, E>, param: &str) -> Signature {
        Signature { params: vec![(param.to_string(), ValueType::of::<A>())], result: ValueType::of::<R::Item>() }
    }

    /// A filter passes its input row on: its result is its argument.
    pub fn signature_filter<A, R>(_: fn(A) -> R, param: &str) -> Signature {
        let arg = ValueType::of::<A>();
        Signature { params: vec![(param.to_string(), arg)], result: arg }
    }

    /// A timestamp assigner returns the event time.
    pub fn signature_timestamp<A, R>(_: fn(A) -> R, param: &str) -> Signature {
        Signature {
            params: vec![(param.to_string(), ValueType::of::<A>())],
            result: ValueType::scalar(Scalar::Timestamp),
        }
    }

    #[inline]
    pub fn emit_timestamp(out: &mut RowWriter, millis: i64, function: &str) -> Result<(), String> {
        emit_one(out, &millis, function)
    }
}
