//! What a process function sees while it handles one input: [`Context`] (keyed elements and
//! timers), [`BroadcastContext`] (the broadcast side), [`TimerService`] and [`Collector`].
//!
//! The two contexts split what each side may do at compile time, as Flink's
//! `KeyedBroadcastProcessFunction` splits `ReadOnlyContext` and `Context`: the keyed side
//! reads and writes keyed state and timers and only reads broadcast state; the broadcast
//! side has no key, so no keyed state and no timers, and writes broadcast state.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::handles::{BroadcastState, ListState, MapState, ReadOnlyBroadcastState, ValueState, decode};
use super::host::ProcessHost;
use super::state::{StateDecl, StateKind, describe_type};
use super::{RowKind, TimeDomain};
use crate::batch::RowWriter;

/// Why a state, key or timer call failed. Every handle method returns it, so `?` passes it
/// on: an element whose function returns an error fails alone, into the dead-letter output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The host refused the call (a state the function did not declare, one of another kind):
    /// its message, as the host words it.
    #[error("{message}")]
    Host { state: String, message: String },
    /// Stored bytes (or the current key) do not decode as the type asked for.
    #[error("{what} does not decode as {ty}: {message}")]
    Decode { what: String, ty: &'static str, message: String },
    /// A value or map key cannot be encoded as MessagePack.
    #[error("cannot encode {what} as MessagePack: {message}")]
    Encode { what: String, message: String },
    /// The state is declared with other types than the call uses.
    #[error(
        "state `{state}` is declared with values of type {declared}, but used as {used}; use the declared types, or declare them"
    )]
    TypeMismatch { state: String, declared: String, used: String },
}

/// The context of one keyed element or timer: its key, its time, the key's state and timers.
///
/// ```
/// # use weir_sdk as weir;
/// # fn handle(ctx: &weir::process::Context<'_>) -> weir::process::ProcessResult {
/// let count = ctx.value::<u64>("count")?;
/// let n = count.get()?.unwrap_or(0) + 1;
/// count.set(&n)?;
/// if let Some(at) = ctx.timestamp() {
///     ctx.timer_service().register_event_time_timer(at + 60_000);
/// }
/// # Ok(()) }
/// ```
pub struct Context<'a> {
    host: &'a dyn ProcessHost,
    states: &'static [StateDecl],
    key: &'a [u8],
    timestamp: Option<i64>,
    timer: Option<TimeDomain>,
    extras: &'a Extras,
}

/// What one input of a call writes besides its main output rows: side-output rows and
/// the kinds of its rows. The dispatcher drops an input's extras when the input fails.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    /// `(output row index, kind)` of every row that is not an insert.
    pub kinds: RefCell<Vec<(usize, RowKind)>>,
    /// `(input index, tag, row)` of every side-output row.
    pub side: RefCell<Vec<(u32, String, Vec<u8>)>>,
    /// The input being handled.
    pub input: Cell<u32>,
}

impl Extras {
    /// Forget what input `input` wrote from output row `row` on (it failed).
    pub fn rollback(&self, input: u32, row: usize) {
        self.kinds.borrow_mut().retain(|&(r, _)| r < row);
        self.side.borrow_mut().retain(|(i, _, _)| *i != input);
    }
}

impl<'a> Context<'a> {
    pub(crate) fn new(
        host: &'a dyn ProcessHost,
        states: &'static [StateDecl],
        key: &'a [u8],
        timestamp: Option<i64>,
        timer: Option<TimeDomain>,
        extras: &'a Extras,
    ) -> Self {
        Context { host, states, key, timestamp, timer, extras }
    }

    pub(crate) fn extras(&self) -> &'a Extras {
        self.extras
    }

    /// Emits `value` to the side output `tag` (Flink's `ctx.output(outputTag, value)`): the
    /// job reads it as its own stream. A failed input's side rows are dropped with its output.
    pub fn output<T: Serialize + ?Sized>(&self, tag: &str, value: &T) -> Result<(), StateError> {
        let row = rmp_serde::to_vec_named(value).map_err(|e| StateError::Encode {
            what: format!("a row of side output `{tag}`"),
            message: e.to_string(),
        })?;
        self.extras.side.borrow_mut().push((self.extras.input.get(), tag.to_string(), row));
        Ok(())
    }

    /// The event time of the element (ms), or `None` when it has none (no timestamps were
    /// assigned upstream). In `on_timer`: the timer's time.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// In `on_timer`: which clock the timer followed. `None` while handling an element.
    pub fn time_domain(&self) -> Option<TimeDomain> {
        self.timer
    }

    /// The key of the element or timer, decoded as `K` (the type the job keys by: a string
    /// field gives a `String`).
    pub fn current_key<K: DeserializeOwned>(&self) -> Result<K, StateError> {
        decode(self.key, || "the current key".to_string())
    }

    /// The value state `name` of the current key.
    pub fn value<'n, T: Serialize + DeserializeOwned>(&self, name: &'n str) -> Result<ValueState<'n, T>, StateError>
    where
        'a: 'n,
    {
        check_types(self.states, name, StateKind::Value, None, std::any::type_name::<T>())?;
        Ok(ValueState::new(self.host, name))
    }

    /// The list state `name` of the current key.
    pub fn list<'n, T: Serialize + DeserializeOwned>(&self, name: &'n str) -> Result<ListState<'n, T>, StateError>
    where
        'a: 'n,
    {
        check_types(self.states, name, StateKind::List, None, std::any::type_name::<T>())?;
        Ok(ListState::new(self.host, name))
    }

    /// The map state `name` of the current key.
    pub fn map<'n, K, V>(&self, name: &'n str) -> Result<MapState<'n, K, V>, StateError>
    where
        'a: 'n,
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        let key = Some(std::any::type_name::<K>());
        check_types(self.states, name, StateKind::Map, key, std::any::type_name::<V>())?;
        Ok(MapState::new(self.host, name))
    }

    /// The broadcast state `name`, read-only: only the broadcast side writes it.
    pub fn broadcast<'n, K, V>(&self, name: &'n str) -> Result<ReadOnlyBroadcastState<'n, K, V>, StateError>
    where
        'a: 'n,
        K: Serialize + DeserializeOwned,
        V: DeserializeOwned,
    {
        let key = Some(std::any::type_name::<K>());
        check_types(self.states, name, StateKind::BroadcastMap, key, std::any::type_name::<V>())?;
        Ok(ReadOnlyBroadcastState::new(self.host, name))
    }

    /// Timers of the current key, and the clocks.
    pub fn timer_service(&self) -> TimerService<'a> {
        TimerService { host: self.host }
    }
}

/// The context of one broadcast element: no key, so no keyed state and no timers; broadcast
/// state is writable.
pub struct BroadcastContext<'a> {
    host: &'a dyn ProcessHost,
    states: &'static [StateDecl],
    timestamp: Option<i64>,
}

impl<'a> BroadcastContext<'a> {
    pub(crate) fn new(host: &'a dyn ProcessHost, states: &'static [StateDecl], timestamp: Option<i64>) -> Self {
        BroadcastContext { host, states, timestamp }
    }

    /// The event time of the broadcast element (ms), or `None`.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The broadcast state `name`, writable. Every parallel instance handles the same
    /// broadcast elements, so each one's copy holds the same entries.
    pub fn broadcast<'n, K, V>(&self, name: &'n str) -> Result<BroadcastState<'n, K, V>, StateError>
    where
        'a: 'n,
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        let key = Some(std::any::type_name::<K>());
        check_types(self.states, name, StateKind::BroadcastMap, key, std::any::type_name::<V>())?;
        Ok(BroadcastState::new(self.host, name))
    }

    /// The operator's watermark (ms), or `None` before the first one.
    pub fn current_watermark(&self) -> Option<i64> {
        self.host.current_watermark()
    }

    /// The wall clock (epoch ms), as processing-time timers see it.
    pub fn current_processing_time(&self) -> i64 {
        self.host.current_processing_time()
    }
}

/// The SDK knows the declared value types, which the host keeps only as text: a call with
/// other types on a declared state is refused here. Undeclared names and other kinds are
/// left to the host, which refuses them with the operator's declarations in the message.
fn check_types(
    states: &[StateDecl],
    name: &str,
    kind: StateKind,
    key: Option<&'static str>,
    value: &'static str,
) -> Result<(), StateError> {
    match states.iter().find(|d| d.name() == name && d.kind() == kind) {
        Some(decl) if !decl.holds(key, value) => Err(StateError::TypeMismatch {
            state: name.to_string(),
            declared: decl.value_type(),
            used: describe_type(key, value),
        }),
        _ => Ok(()),
    }
}

/// Timers of the current key, and the clocks (Flink's `TimerService`).
///
/// A timer fires once per key and time, however often it was registered; it calls
/// `on_timer` with the key's context. Event-time timers fire when the watermark reaches
/// their time, processing-time timers when the wall clock does. Timers are state: they
/// survive a restart.
#[derive(Clone, Copy)]
pub struct TimerService<'a> {
    host: &'a dyn ProcessHost,
}

impl TimerService<'_> {
    /// The operator's watermark (ms), or `None` before the first one.
    pub fn current_watermark(&self) -> Option<i64> {
        self.host.current_watermark()
    }

    /// The wall clock (epoch ms), as processing-time timers see it.
    pub fn current_processing_time(&self) -> i64 {
        self.host.current_processing_time()
    }

    pub fn register_event_time_timer(&self, at_ms: i64) {
        self.host.register_timer(TimeDomain::EventTime, at_ms);
    }

    pub fn register_processing_time_timer(&self, at_ms: i64) {
        self.host.register_timer(TimeDomain::ProcessingTime, at_ms);
    }

    /// Deleting a timer that does not exist is a no-op.
    pub fn delete_event_time_timer(&self, at_ms: i64) {
        self.host.delete_timer(TimeDomain::EventTime, at_ms);
    }

    pub fn delete_processing_time_timer(&self, at_ms: i64) {
        self.host.delete_timer(TimeDomain::ProcessingTime, at_ms);
    }
}

/// Where a process function emits its output records (Flink's `Collector`).
///
/// Records are encoded as MessagePack maps with field names as they are collected. A record
/// that cannot be encoded fails the input it came from, with everything it emitted.
pub struct Collector<'w, O> {
    out: &'w mut RowWriter,
    error: Option<String>,
    extras: &'w Extras,
    _output: PhantomData<fn(O)>,
}

impl<'w, O: Serialize> Collector<'w, O> {
    pub(crate) fn new(out: &'w mut RowWriter, extras: &'w Extras) -> Self {
        Collector { out, error: None, extras, _output: PhantomData }
    }

    /// Emits one record of an updating result: `RowKind::UpdateBefore` withdraws a row's
    /// previous version, `UpdateAfter` gives the new one, `Delete` withdraws it (Flink's
    /// `RowKind`). [`Collector::collect`] emits inserts.
    pub fn collect_kind(&mut self, kind: RowKind, record: O) {
        let row = self.out.len();
        self.collect(record);
        if kind != RowKind::Insert && self.error.is_none() {
            self.extras.kinds.borrow_mut().push((row, kind));
        }
    }

    /// Emits one record.
    pub fn collect(&mut self, record: O) {
        if self.error.is_none()
            && let Err(e) = self.out.push(&record)
        {
            self.error = Some(e);
        }
    }

    /// The input's outcome: the function's own error first, else an encoding failure.
    pub(crate) fn finish(self, result: super::ProcessResult) -> Result<(), String> {
        result.map_err(|e| e.to_string())?;
        self.error.map_or(Ok(()), Err)
    }
}
