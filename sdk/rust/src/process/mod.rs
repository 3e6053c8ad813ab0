//! Keyed process functions: Flink's `KeyedProcessFunction`, and the broadcast side of its
//! `KeyedBroadcastProcessFunction`, with state and timers the host owns.
//!
//! A process function sees one element at a time with the context of its key: named state
//! of that key ([`Context::value`], [`Context::list`], [`Context::map`]), timers
//! ([`Context::timer_service`]) that call [`KeyedProcessFunction::on_timer`] back later, and
//! broadcast state ([`Context::broadcast`]) that a second, broadcast stream writes through
//! [`KeyedProcessFunction::process_broadcast_element`]. It emits any number of records per
//! element or timer through a [`Collector`].
//!
//! # Where state lives
//!
//! In the host, not in the plugin: the host keeps it in its state store, scoped to the key,
//! checkpoints it, and hands it to the next version of the plugin. A plugin reaches it
//! through the WIT imports `state`, `broadcast` and `timers`, one call per handle method,
//! with values as MessagePack. So a function must declare every state it uses
//! ([`KeyedProcessFunction::STATES`]: name, kind, value type, optional TTL); the host
//! refuses calls on undeclared names, and the SDK refuses calls with other types than the
//! declared ones.
//!
//! A fresh `Self::default()` handles each element and each timer: fields are scratch space
//! for one call, never state (the host batches elements as it likes and retries them one by
//! one after a trap, so anything kept in fields would depend on batching).
//!
//! # Failure
//!
//! An element (or timer) whose function returns `Err` fails alone: its output is dropped, it
//! goes to the dead-letter output, and the state it wrote before failing stays written, as in
//! a Flink function that catches its own exception. A panic traps the instance; the host
//! undoes every state and timer change of the call and retries its elements one by one, so
//! every other element changes state exactly once.
//!
//! ```
//! use weir_sdk as weir;
//! use weir::process::{Collector, Context, KeyedProcessFunction, NoBroadcast, ProcessResult, StateDecl};
//!
//! /// Counts the elements of each key and emits the running count.
//! #[derive(Default)]
//! struct CountPerKey;
//!
//! impl KeyedProcessFunction for CountPerKey {
//!     type Input = serde::de::IgnoredAny; // any element
//!     type Output = (String, u64);
//!     type Broadcast = NoBroadcast;
//!     const STATES: &'static [StateDecl] = &[StateDecl::value::<u64>("count")];
//!
//!     fn process_element(&mut self, _: Self::Input, ctx: &Context<'_>, out: &mut Collector<'_, Self::Output>) -> ProcessResult {
//!         let count = ctx.value::<u64>("count")?;
//!         let n = count.get()?.unwrap_or(0) + 1;
//!         count.set(&n)?;
//!         out.collect((ctx.current_key()?, n));
//!         Ok(())
//!     }
//! }
//!
//! weir::plugin! { name: "counts", version: "0.1.0", processes: [count_per_key: CountPerKey] }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut harness = weir::testing::ProcessHarness::new(&PLUGIN, "count_per_key");
//! harness.process("a", "x", None)?;
//! harness.process("b", "y", None)?;
//! harness.process("a", "z", None)?;
//! assert_eq!(harness.output::<(String, u64)>(), [("a".into(), 1), ("b".into(), 1), ("a".into(), 2)]);
//! assert_eq!(harness.value_state::<u64>("a", "count"), Some(2));
//! # Ok(()) }
//! ```

mod batched;
mod context;
pub(crate) mod dispatch;
mod handles;
pub(crate) mod host;
mod state;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};

pub use batched::{KeyState, StateWrite};
pub(crate) use context::Extras;
pub use context::{BroadcastContext, Collector, Context, StateError, TimerService};
pub use dispatch::{ProcessError, ProcessOutput};
pub use handles::{BroadcastState, ListState, MapState, ReadOnlyBroadcastState, ValueState};
pub use state::{StateDecl, StateKind};

use crate::batch::RowWriter;
use crate::signature::{Signature, ValueType};

/// What an output row does to an updating result (Flink's `RowKind`); see
/// [`Collector::collect_kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowKind {
    Insert,
    /// The previous version of a row, withdrawn; an `UpdateAfter` follows.
    UpdateBefore,
    UpdateAfter,
    Delete,
}

/// Which kind of process function a [`ProcessFunction`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessKind {
    /// [`KeyedProcessFunction`]: one keyed input (and an optional broadcast side).
    Keyed,
    /// [`KeyedCoProcessFunction`]: two connected keyed inputs.
    Co,
    /// [`ProcessWindowFunction`]: all the elements of a window at once.
    Window,
}

impl ProcessKind {
    /// The WIT spelling (`process`, `co-process`, `process-window`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessKind::Keyed => "process",
            ProcessKind::Co => "co-process",
            ProcessKind::Window => "process-window",
        }
    }
}

/// What the methods of a [`KeyedProcessFunction`] return: `?` works on [`StateError`] and
/// on any other error, and `Err("message".into())` rejects the input with that message.
pub type ProcessResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Which clock a timer follows; mirrors the WIT `time-domain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimeDomain {
    /// Fires when the watermark reaches the timer's time.
    EventTime,
    /// Fires when the wall clock reaches the timer's time.
    ProcessingTime,
}

/// A keyed process function (see the [module docs](self)), registered with
/// `weir::plugin! { ..., processes: [name: Type] }`.
pub trait KeyedProcessFunction: Default {
    /// An element of the keyed stream, decoded from MessagePack.
    type Input: DeserializeOwned;
    /// An output record, encoded as MessagePack.
    type Output: Serialize;
    /// An element of the broadcast stream; [`NoBroadcast`] for a function without one.
    type Broadcast: DeserializeOwned;

    /// Every state the function uses; `describe` reports them and the host refuses others.
    const STATES: &'static [StateDecl] = &[];

    /// Handles one element of the current key.
    fn process_element(
        &mut self,
        value: Self::Input,
        ctx: &Context<'_>,
        out: &mut Collector<'_, Self::Output>,
    ) -> ProcessResult;

    /// A timer of the current key fired at `timestamp` (ms; `ctx.time_domain()` says which
    /// clock). The default does nothing.
    fn on_timer(&mut self, timestamp: i64, ctx: &Context<'_>, out: &mut Collector<'_, Self::Output>) -> ProcessResult {
        let _ = (timestamp, ctx, out);
        Ok(())
    }

    /// Handles one element of the broadcast stream: it may write broadcast state, which every
    /// keyed element then reads. The default refuses: the function has no broadcast side.
    fn process_broadcast_element(
        &mut self,
        value: Self::Broadcast,
        ctx: &BroadcastContext<'_>,
        out: &mut Collector<'_, Self::Output>,
    ) -> ProcessResult {
        let _ = (value, ctx, out);
        Err(NO_BROADCAST_SIDE.into())
    }
}

const NO_BROADCAST_SIDE: &str = "this process function has no broadcast side (it does not implement \
     process_broadcast_element); connect a broadcast stream only to a function that does";

/// The broadcast element type of a function without a broadcast side: nothing decodes as it,
/// so a broadcast element sent to such a function fails with a message that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoBroadcast {}

impl<'de> Deserialize<'de> for NoBroadcast {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(D::Error::custom(NO_BROADCAST_SIDE))
    }
}

/// Handles one input with a fresh function value, writing its output rows.
type ElementInvoker = fn(&Context<'_>, u8, &[u8], &mut RowWriter) -> Result<(), String>;
type TimerInvoker = fn(&Context<'_>, i64, &mut RowWriter) -> Result<(), String>;
type BroadcastInvoker = fn(&BroadcastContext<'_>, &[u8], &mut RowWriter) -> Result<(), String>;
type WindowInvoker = fn(&[u8], Window, &[&[u8]], &mut RowWriter, &Extras) -> Result<(), String>;

/// One registered process function of a plugin: its name, its states and monomorphised
/// entry points. Built by `weir::plugin!` from `processes: [name: Type]`,
/// `co_processes: [...]` and `process_windows: [...]`.
#[derive(Clone, Copy)]
pub struct ProcessFunction {
    name: &'static str,
    kind: ProcessKind,
    states: &'static [StateDecl],
    element: ElementInvoker,
    timer: TimerInvoker,
    broadcast: BroadcastInvoker,
    window: WindowInvoker,
    signature: fn() -> Signature,
}

impl ProcessFunction {
    /// The process function `F`, called `name` by the host. Panics (a compile error in
    /// `plugin!`) on state declarations the host would refuse.
    pub const fn of<F: KeyedProcessFunction>(name: &'static str) -> Self {
        state::check_states(F::STATES);
        ProcessFunction {
            name,
            kind: ProcessKind::Keyed,
            states: F::STATES,
            element: element::<F>,
            timer: timer::<F>,
            broadcast: broadcast::<F>,
            window: no_window,
            signature: signature::<F::Input, F::Output>,
        }
    }

    /// The co-process function `F` (two keyed inputs).
    pub const fn co<F: KeyedCoProcessFunction>(name: &'static str) -> Self {
        state::check_states(F::STATES);
        ProcessFunction {
            name,
            kind: ProcessKind::Co,
            states: F::STATES,
            element: co_element::<F>,
            timer: co_timer::<F>,
            broadcast: no_broadcast,
            window: no_window,
            signature: co_signature::<F>,
        }
    }

    /// The process-window function `F`.
    pub const fn window<F: ProcessWindowFunction>(name: &'static str) -> Self {
        ProcessFunction {
            name,
            kind: ProcessKind::Window,
            states: &[],
            element: no_element,
            timer: no_timer,
            broadcast: no_broadcast,
            window: window::<F>,
            signature: window_signature::<F>,
        }
    }

    /// The name the host calls it by.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Which kind of process function it is.
    pub fn kind(&self) -> ProcessKind {
        self.kind
    }

    /// The states it declares (what `describe` reports).
    pub fn states(&self) -> &'static [StateDecl] {
        self.states
    }

    /// Its element and output types.
    pub fn signature(&self) -> Signature {
        (self.signature)()
    }
}

fn signature<I, O>() -> Signature {
    Signature { params: vec![("value".into(), ValueType::of::<I>())], result: ValueType::of::<O>() }
}

fn co_signature<F: KeyedCoProcessFunction>() -> Signature {
    Signature {
        params: vec![("value1".into(), ValueType::of::<F::Input1>()), ("value2".into(), ValueType::of::<F::Input2>())],
        result: ValueType::of::<F::Output>(),
    }
}

fn window_signature<F: ProcessWindowFunction>() -> Signature {
    Signature {
        params: vec![("key".into(), ValueType::of::<F::Key>()), ("elements".into(), ValueType::of::<Vec<F::Input>>())],
        result: ValueType::of::<F::Output>(),
    }
}

/// A keyed process function over two connected streams (Flink's `KeyedCoProcessFunction`):
/// both inputs share the key's state and timers. Register it as
/// `co_processes: [name: Type]` in `weir::plugin!`.
pub trait KeyedCoProcessFunction: Default {
    /// An element of the first input.
    type Input1: DeserializeOwned;
    /// An element of the second input.
    type Input2: DeserializeOwned;
    type Output: Serialize;
    const STATES: &'static [StateDecl] = &[];

    fn process_element1(
        &mut self,
        value: Self::Input1,
        ctx: &Context<'_>,
        out: &mut Collector<'_, Self::Output>,
    ) -> ProcessResult;

    fn process_element2(
        &mut self,
        value: Self::Input2,
        ctx: &Context<'_>,
        out: &mut Collector<'_, Self::Output>,
    ) -> ProcessResult;

    /// A timer of the current key fired. The default does nothing.
    fn on_timer(&mut self, timestamp: i64, ctx: &Context<'_>, out: &mut Collector<'_, Self::Output>) -> ProcessResult {
        let _ = (timestamp, ctx, out);
        Ok(())
    }
}

/// The bounds of a window: `[start, end)` in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    /// The largest timestamp in the window (`end - 1`), as Flink's `maxTimestamp`.
    pub fn max_timestamp(&self) -> i64 {
        self.end - 1
    }
}

/// A function called with all the elements of a key's window when it fires (Flink's
/// `ProcessWindowFunction`). Register it as `process_windows: [name: Type]`.
pub trait ProcessWindowFunction: Default {
    /// The key, as the job keys by it.
    type Key: DeserializeOwned;
    type Input: DeserializeOwned;
    type Output: Serialize;

    fn process(
        &mut self,
        key: Self::Key,
        window: Window,
        elements: Vec<Self::Input>,
        out: &mut Collector<'_, Self::Output>,
    ) -> ProcessResult;
}

impl std::fmt::Debug for ProcessFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessFunction")
            .field("name", &self.name)
            .field("states", &self.states)
            .finish_non_exhaustive()
    }
}

fn decode_input<T: DeserializeOwned>(row: &[u8], what: &str) -> Result<T, String> {
    rmp_serde::from_slice(row).map_err(|e| format!("the {what} does not decode as {}: {e}", std::any::type_name::<T>()))
}

fn element<F: KeyedProcessFunction>(
    ctx: &Context<'_>,
    input: u8,
    row: &[u8],
    out: &mut RowWriter,
) -> Result<(), String> {
    if input != 1 {
        return Err(format!("a process function has one input, but got an element of input {input}"));
    }
    let value = decode_input::<F::Input>(row, "element")?;
    let mut collector = Collector::new(out, ctx.extras());
    let result = F::default().process_element(value, ctx, &mut collector);
    collector.finish(result)
}

fn timer<F: KeyedProcessFunction>(ctx: &Context<'_>, at_ms: i64, out: &mut RowWriter) -> Result<(), String> {
    let mut collector = Collector::new(out, ctx.extras());
    let result = F::default().on_timer(at_ms, ctx, &mut collector);
    collector.finish(result)
}

fn broadcast<F: KeyedProcessFunction>(
    ctx: &BroadcastContext<'_>,
    row: &[u8],
    out: &mut RowWriter,
) -> Result<(), String> {
    let value = decode_input::<F::Broadcast>(row, "broadcast element")?;
    let extras = Extras::default();
    let mut collector = Collector::new(out, &extras);
    let result = F::default().process_broadcast_element(value, ctx, &mut collector);
    collector.finish(result)
}

fn co_element<F: KeyedCoProcessFunction>(
    ctx: &Context<'_>,
    input: u8,
    row: &[u8],
    out: &mut RowWriter,
) -> Result<(), String> {
    let mut collector = Collector::new(out, ctx.extras());
    let result = match input {
        1 => F::default().process_element1(decode_input::<F::Input1>(row, "element of input 1")?, ctx, &mut collector),
        2 => F::default().process_element2(decode_input::<F::Input2>(row, "element of input 2")?, ctx, &mut collector),
        _ => return Err(format!("a co-process function has inputs 1 and 2, not {input}")),
    };
    collector.finish(result)
}

fn co_timer<F: KeyedCoProcessFunction>(ctx: &Context<'_>, at_ms: i64, out: &mut RowWriter) -> Result<(), String> {
    let mut collector = Collector::new(out, ctx.extras());
    let result = F::default().on_timer(at_ms, ctx, &mut collector);
    collector.finish(result)
}

fn window<F: ProcessWindowFunction>(
    key: &[u8],
    bounds: Window,
    rows: &[&[u8]],
    out: &mut RowWriter,
    extras: &Extras,
) -> Result<(), String> {
    let key = decode_input::<F::Key>(key, "window's key")?;
    let elements = rows.iter().map(|row| decode_input::<F::Input>(row, "element")).collect::<Result<Vec<_>, _>>()?;
    let mut collector = Collector::new(out, extras);
    let result = F::default().process(key, bounds, elements, &mut collector);
    collector.finish(result)
}

const NOT_KEYED: &str = "this is a process-window function: the host calls it through process-window only";

fn no_element(_: &Context<'_>, _: u8, _: &[u8], _: &mut RowWriter) -> Result<(), String> {
    Err(NOT_KEYED.into())
}

fn no_timer(_: &Context<'_>, _: i64, _: &mut RowWriter) -> Result<(), String> {
    Err(NOT_KEYED.into())
}

fn no_broadcast(_: &BroadcastContext<'_>, _: &[u8], _: &mut RowWriter) -> Result<(), String> {
    Err(NO_BROADCAST_SIDE.into())
}

fn no_window(_: &[u8], _: Window, _: &[&[u8]], _: &mut RowWriter, _: &Extras) -> Result<(), String> {
    Err("this is not a process-window function".into())
}
