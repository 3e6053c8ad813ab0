//! [`ProcessHarness`]: a keyed process function with in-memory state and timers, driven
//! like Flink's `KeyedOneInputStreamOperatorTestHarness`.
//!
//! The harness calls the same dispatcher the component export calls, with a
//! [`MemoryHost`](super::memory) in place of the WIT imports, and plays the host's part
//! around it: it selects keys, fires due timers when the test moves a clock, keeps the output
//! rows, and treats a panic as the host treats a trap (the call's state and timer changes are
//! rolled back and its inputs retried one by one, so only the guilty one fails).
//!
//! ```
//! use weir_sdk as weir;
//! use weir::process::{Collector, Context, KeyedProcessFunction, NoBroadcast, ProcessResult, StateDecl};
//!
//! /// Emits the sum of a key's numbers one second (event time) after its first number.
//! #[derive(Default)]
//! struct DelayedSum;
//!
//! impl KeyedProcessFunction for DelayedSum {
//!     type Input = i64;
//!     type Output = i64;
//!     type Broadcast = NoBroadcast;
//!     const STATES: &'static [StateDecl] = &[StateDecl::value::<i64>("sum")];
//!
//!     fn process_element(&mut self, n: i64, ctx: &Context<'_>, _: &mut Collector<'_, i64>) -> ProcessResult {
//!         let sum = ctx.value::<i64>("sum")?;
//!         let at = ctx.timestamp().ok_or("DelayedSum needs event time")?;
//!         ctx.timer_service().register_event_time_timer(at / 1000 * 1000 + 1000);
//!         sum.set(&(sum.get()?.unwrap_or(0) + n))?;
//!         Ok(())
//!     }
//!
//!     fn on_timer(&mut self, _: i64, ctx: &Context<'_>, out: &mut Collector<'_, i64>) -> ProcessResult {
//!         let sum = ctx.value::<i64>("sum")?;
//!         out.collect(sum.get()?.unwrap_or(0));
//!         sum.clear()?;
//!         Ok(())
//!     }
//! }
//!
//! weir::plugin! { name: "sums", version: "0.1.0", processes: [delayed_sum: DelayedSum] }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut harness = weir::testing::ProcessHarness::new(&PLUGIN, "delayed_sum");
//! harness.process("a", 1, 100)?;
//! harness.process("a", 2, 900)?;
//! harness.process("b", 5, 950)?;
//! harness.advance_watermark(999)?;
//! assert!(harness.output::<i64>().is_empty());
//! harness.advance_watermark(1000)?; // both keys' timers fire, one each
//! assert_eq!(harness.take_output::<i64>(), [3, 5]);
//! assert_eq!(harness.value_state::<i64>("a", "sum"), None);
//! assert!(harness.process("a", 1, None).is_err()); // no event time: the element fails alone
//! # Ok(()) }
//! ```

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::memory::MemoryHost;
use crate::function::Plugin;
use crate::process::dispatch::{self, ProcessError, ProcessOutput};
use crate::process::{ProcessFunction, RowKind, TimeDomain, Window};

/// Rounds of timers a single clock move may fire before the harness gives up: a function
/// whose `on_timer` keeps registering due timers would otherwise never return.
const MAX_TIMER_ROUNDS: usize = 10_000;

/// One input (element, timer or broadcast element) that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFailure {
    /// What the input was, e.g. `element 0` or `event-time timer at 60000`.
    pub input: String,
    /// The error, as the dead-letter output would carry it.
    pub message: String,
    /// Whether the function panicked (a trap in the host): the input's state and timer
    /// changes were rolled back.
    pub trapped: bool,
}

impl fmt::Display for InputFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.trapped { "trapped (its changes were rolled back)" } else { "failed" };
        write!(f, "{} {how}: {}", self.input, self.message)
    }
}

/// Why a [`ProcessHarness`] step did not go through cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ProcessHarnessError {
    /// A key or value the test passed cannot be encoded as MessagePack.
    #[error("cannot encode the {what} as MessagePack: {message}")]
    Encode { what: &'static str, message: String },
    /// The whole call failed, as it would in the host.
    #[error(transparent)]
    Call(#[from] ProcessError),
    /// Inputs failed; the others went through (their output and state changes are kept).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Failed(Vec<InputFailure>),
    /// Timers kept registering timers that were due at once.
    #[error("timers still due after {MAX_TIMER_ROUNDS} rounds: does on_timer register a timer at or before the clock?")]
    TimerLoop,
}

impl ProcessHarnessError {
    /// The inputs that failed (empty for the other errors).
    pub fn failures(&self) -> &[InputFailure] {
        match self {
            ProcessHarnessError::Failed(failures) => failures,
            _ => &[],
        }
    }
}

/// The inputs of one call, encoded.
enum Inputs {
    Elements {
        input: u8,
        rows: Vec<Vec<u8>>,
        keys: Vec<Vec<u8>>,
        timestamps: Vec<i64>,
    },
    Timers {
        keys: Vec<Vec<u8>>,
        times: Vec<i64>,
        domains: Vec<TimeDomain>,
    },
    Broadcast {
        rows: Vec<Vec<u8>>,
        timestamps: Vec<i64>,
    },
    /// A fired window (called directly by `process_window`, never through `run`).
    Window,
}

impl Inputs {
    fn len(&self) -> usize {
        match self {
            Inputs::Elements { rows, .. } | Inputs::Broadcast { rows, .. } => rows.len(),
            Inputs::Timers { times, .. } => times.len(),
            Inputs::Window => 1,
        }
    }

    fn describe(&self, index: usize) -> String {
        match self {
            Inputs::Elements { .. } => format!("element {index}"),
            Inputs::Broadcast { .. } => format!("broadcast element {index}"),
            Inputs::Window => "the window".to_string(),
            Inputs::Timers { times, domains, .. } => {
                let domain = match domains[index] {
                    TimeDomain::EventTime => "event-time",
                    TimeDomain::ProcessingTime => "processing-time",
                };
                format!("{domain} timer at {}", times[index])
            }
        }
    }
}

/// Runs one process function of a plugin with in-memory state (see the module docs).
///
/// Steps return `Err` when an input fails ([`ProcessHarnessError::Failed`]); every other
/// input of the step still went through, as in the host. Inspecting state or output panics
/// on a mistake in the test (an undeclared state name, a type that does not decode).
pub struct ProcessHarness {
    plugin: &'static Plugin,
    function: &'static ProcessFunction,
    host: MemoryHost,
    output: Vec<Vec<u8>>,
    /// The kind of each output row.
    kinds: Vec<RowKind>,
    /// `(tag, row)` of each side-output row.
    side: Vec<(String, Vec<u8>)>,
}

impl fmt::Debug for ProcessHarness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessHarness")
            .field("function", &self.function.name())
            .field("output_rows", &self.output.len())
            .finish_non_exhaustive()
    }
}

fn encode<T: Serialize + ?Sized>(value: &T, what: &'static str) -> Result<Vec<u8>, ProcessHarnessError> {
    rmp_serde::to_vec_named(value).map_err(|e| ProcessHarnessError::Encode { what, message: e.to_string() })
}

#[track_caller]
fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> T {
    rmp_serde::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{what} does not decode as {}: {e}", std::any::type_name::<T>()))
}

fn flatten(rows: &[Vec<u8>]) -> (Vec<u8>, Vec<u32>) {
    let mut offsets = Vec::with_capacity(rows.len() + 1);
    offsets.push(0);
    let mut end = 0u32;
    for row in rows {
        end += u32::try_from(row.len()).unwrap_or(u32::MAX);
        offsets.push(end);
    }
    (rows.concat(), offsets)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the function panicked".to_string())
}

impl ProcessHarness {
    /// A harness over `plugin`'s process function `name`, with no state, no watermark and
    /// processing time 0. Panics if the plugin has no such process function.
    #[track_caller]
    pub fn new(plugin: &'static Plugin, name: &str) -> Self {
        let Some(function) = plugin.process(name) else {
            let known: Vec<&str> = plugin.processes().iter().map(|f| f.name()).collect();
            panic!("plugin `{}` has no process function `{name}` (it has: {})", plugin.name(), known.join(", "));
        };
        ProcessHarness {
            plugin,
            function,
            host: MemoryHost::new(function.name(), function.states()),
            output: Vec::new(),
            kinds: Vec::new(),
            side: Vec::new(),
        }
    }

    /// One element of a co-process function's second input (`process` feeds the first).
    pub fn process2<K: Serialize, I: Serialize>(
        &mut self,
        key: K,
        value: I,
        timestamp: impl Into<Option<i64>>,
    ) -> Result<(), ProcessHarnessError> {
        let keys = vec![encode(&key, "key")?];
        let rows = vec![encode(&value, "element")?];
        self.run(Inputs::Elements { input: 2, rows, keys, timestamps: vec![timestamp.into().unwrap_or(i64::MIN)] })
    }

    /// Calls a process-window function with the window `window` of `key` and its elements,
    /// as the host does when the window fires.
    pub fn process_window<K: Serialize, I: Serialize>(
        &mut self,
        key: K,
        window: Window,
        elements: impl IntoIterator<Item = I>,
    ) -> Result<(), ProcessHarnessError> {
        let key = encode(&key, "key")?;
        let rows = elements.into_iter().map(|e| encode(&e, "element")).collect::<Result<Vec<_>, _>>()?;
        let (data, offsets) = flatten(&rows);
        let timestamps = vec![i64::MIN; rows.len()];
        let output =
            dispatch::process_window(self.plugin, self.function.name(), &key, window, (&data, &offsets), &timestamps)
                .map_err(ProcessHarnessError::Call)?;
        let mut failures = Vec::new();
        self.accept(&Inputs::Window, &[0], output, &mut failures);
        if failures.is_empty() { Ok(()) } else { Err(ProcessHarnessError::Failed(failures)) }
    }

    /// The kind of every record emitted so far ([`RowKind::Insert`] unless the function used
    /// [`Collector::collect_kind`](crate::process::Collector::collect_kind)).
    pub fn output_kinds(&self) -> &[RowKind] {
        &self.kinds
    }

    /// Every record emitted to the side output `tag` so far, decoded as `O`.
    #[track_caller]
    pub fn side_output<O: DeserializeOwned>(&self, tag: &str) -> Vec<O> {
        self.side
            .iter()
            .filter(|(t, _)| t == tag)
            .enumerate()
            .map(|(i, (_, row))| decode(row, &format!("side output `{tag}` record {i}")))
            .collect()
    }

    /// One element with key `key` and event time `timestamp` (ms, or `None`), as one call.
    pub fn process<K: Serialize, I: Serialize>(
        &mut self,
        key: K,
        value: I,
        timestamp: impl Into<Option<i64>>,
    ) -> Result<(), ProcessHarnessError> {
        self.process_batch([(key, value, timestamp.into())])
    }

    /// `(key, value, timestamp)` elements as one call, as the host batches elements of many
    /// keys.
    pub fn process_batch<K: Serialize, I: Serialize>(
        &mut self,
        elements: impl IntoIterator<Item = (K, I, Option<i64>)>,
    ) -> Result<(), ProcessHarnessError> {
        let (mut rows, mut keys, mut timestamps) = (Vec::new(), Vec::new(), Vec::new());
        for (key, value, timestamp) in elements {
            keys.push(encode(&key, "key")?);
            rows.push(encode(&value, "element")?);
            timestamps.push(timestamp.unwrap_or(i64::MIN));
        }
        self.run(Inputs::Elements { input: 1, rows, keys, timestamps })
    }

    /// One element of the broadcast stream (no event time), as one call.
    pub fn broadcast<B: Serialize>(&mut self, value: B) -> Result<(), ProcessHarnessError> {
        let rows = vec![encode(&value, "broadcast element")?];
        self.run(Inputs::Broadcast { rows, timestamps: vec![i64::MIN] })
    }

    /// Moves the watermark to `watermark` (a lower one is ignored: watermarks never go back)
    /// and fires every event-time timer at or before it, by time then key, including timers
    /// that firing timers register at or before it.
    pub fn advance_watermark(&mut self, watermark: i64) -> Result<(), ProcessHarnessError> {
        let up_to = self.host.advance_watermark(watermark);
        self.fire(TimeDomain::EventTime, up_to)
    }

    /// Moves processing time to `now` (ms; never back) and fires every processing-time timer
    /// at or before it. Processing time is also the clock of state TTL.
    pub fn advance_processing_time(&mut self, now: i64) -> Result<(), ProcessHarnessError> {
        let up_to = self.host.advance_processing_time(now);
        self.fire(TimeDomain::ProcessingTime, up_to)
    }

    /// The current watermark, `None` before the first.
    pub fn watermark(&self) -> Option<i64> {
        self.host.watermark()
    }

    /// The current processing time (starts at 0).
    pub fn processing_time(&self) -> i64 {
        self.host.processing_time()
    }

    /// Every record emitted so far, decoded as `O`. Panics if one does not decode.
    #[track_caller]
    pub fn output<O: DeserializeOwned>(&self) -> Vec<O> {
        self.output.iter().enumerate().map(|(i, row)| decode(row, &format!("output record {i}"))).collect()
    }

    /// Like [`output`](Self::output), and forgets them: the next call returns only newer ones.
    #[track_caller]
    pub fn take_output<O: DeserializeOwned>(&mut self) -> Vec<O> {
        let output = self.output();
        self.output.clear();
        output
    }

    /// The value state `name` of `key`. Panics on an undeclared name or a type mismatch.
    #[track_caller]
    pub fn value_state<T: DeserializeOwned>(&self, key: impl Serialize, name: &str) -> Option<T> {
        let found = self.host.value_of(&self.key(&key), name).unwrap_or_else(|e| panic!("{e}"));
        found.map(|bytes| decode(&bytes, &format!("the value of state `{name}`")))
    }

    /// The list state `name` of `key`, in append order.
    #[track_caller]
    pub fn list_state<T: DeserializeOwned>(&self, key: impl Serialize, name: &str) -> Vec<T> {
        let found = self.host.list_of(&self.key(&key), name).unwrap_or_else(|e| panic!("{e}"));
        found.iter().map(|bytes| decode(bytes, &format!("an element of list state `{name}`"))).collect()
    }

    /// The map state `name` of `key`, ordered by the MessagePack bytes of the map's keys.
    #[track_caller]
    pub fn map_state<K: DeserializeOwned, V: DeserializeOwned>(&self, key: impl Serialize, name: &str) -> Vec<(K, V)> {
        let found = self.host.map_of(&self.key(&key), name).unwrap_or_else(|e| panic!("{e}"));
        found.iter().map(|(k, v)| (decode(k, "a map key"), decode(v, "a map value"))).collect()
    }

    /// The broadcast state `name`, ordered by the MessagePack bytes of its keys.
    #[track_caller]
    pub fn broadcast_state<K: DeserializeOwned, V: DeserializeOwned>(&self, name: &str) -> Vec<(K, V)> {
        let found = self.host.broadcast_of(name).unwrap_or_else(|e| panic!("{e}"));
        found.iter().map(|(k, v)| (decode(k, "a broadcast key"), decode(v, "a broadcast value"))).collect()
    }

    /// The pending timers of `key`: event-time ones first, each by time.
    #[track_caller]
    pub fn timers(&self, key: impl Serialize) -> Vec<(TimeDomain, i64)> {
        self.host.timers_of(&self.key(&key))
    }

    /// How many timers of `domain` are pending, over all keys.
    pub fn timer_count(&self, domain: TimeDomain) -> usize {
        self.host.timer_count(domain)
    }

    #[track_caller]
    fn key(&self, key: &impl Serialize) -> Vec<u8> {
        encode(key, "key").unwrap_or_else(|e| panic!("{e}"))
    }

    fn fire(&mut self, domain: TimeDomain, up_to: i64) -> Result<(), ProcessHarnessError> {
        let mut failures = Vec::new();
        for _ in 0..MAX_TIMER_ROUNDS {
            let due = self.host.pop_due(domain, up_to);
            if due.is_empty() {
                return if failures.is_empty() { Ok(()) } else { Err(ProcessHarnessError::Failed(failures)) };
            }
            let domains = vec![domain; due.len()];
            let (times, keys) = due.into_iter().unzip();
            match self.run(Inputs::Timers { keys, times, domains }) {
                Ok(()) => {}
                Err(ProcessHarnessError::Failed(more)) => failures.extend(more),
                Err(other) => return Err(other),
            }
        }
        Err(ProcessHarnessError::TimerLoop)
    }

    /// One host call on every input, then, if it trapped, one call per input (as the host
    /// retries), keeping the output of the inputs that went through.
    fn run(&mut self, inputs: Inputs) -> Result<(), ProcessHarnessError> {
        let all: Vec<usize> = (0..inputs.len()).collect();
        let mut failures = Vec::new();
        match self.call(&inputs, &all)? {
            Ok(output) => self.accept(&inputs, &all, output, &mut failures),
            Err(panic) if all.len() == 1 => {
                failures.push(InputFailure { input: inputs.describe(0), message: panic, trapped: true });
            }
            Err(_) => {
                for &index in &all {
                    match self.call(&inputs, &[index])? {
                        Ok(output) => self.accept(&inputs, &[index], output, &mut failures),
                        Err(panic) => {
                            failures.push(InputFailure { input: inputs.describe(index), message: panic, trapped: true })
                        }
                    }
                }
            }
        }
        if failures.is_empty() { Ok(()) } else { Err(ProcessHarnessError::Failed(failures)) }
    }

    /// Keeps a call's output rows and turns its row errors into failures.
    fn accept(&mut self, inputs: &Inputs, which: &[usize], output: ProcessOutput, failures: &mut Vec<InputFailure>) {
        let rows: Vec<Vec<u8>> =
            output.offsets.windows(2).map(|w| output.data[w[0] as usize..w[1] as usize].to_vec()).collect();
        if output.kinds.is_empty() {
            self.kinds.extend(std::iter::repeat_n(RowKind::Insert, rows.len()));
        } else {
            self.kinds.extend(output.kinds);
        }
        self.output.extend(rows);
        self.side.extend(output.side.into_iter().map(|(_, tag, row)| (tag, row)));
        for error in output.errors {
            let index = which.get(error.index as usize).copied().unwrap_or(error.index as usize);
            failures.push(InputFailure { input: inputs.describe(index), message: error.message, trapped: false });
        }
    }

    /// One dispatcher call on the inputs `which`: its output, or the panic message after
    /// rolling back what the call changed.
    fn call(&self, inputs: &Inputs, which: &[usize]) -> Result<Result<ProcessOutput, String>, ProcessError> {
        let pick = |rows: &[Vec<u8>]| flatten(&which.iter().map(|&i| rows[i].clone()).collect::<Vec<_>>());
        let pick_scalars = |values: &[i64]| which.iter().map(|&i| values[i]).collect::<Vec<_>>();
        let before = self.host.snapshot();
        let (plugin, host, name) = (self.plugin, &self.host, self.function.name());
        let result = catch_unwind(AssertUnwindSafe(|| match inputs {
            Inputs::Elements { input, rows, keys, timestamps } => {
                let (data, offsets) = pick(rows);
                let (key_data, key_offsets) = pick(keys);
                host.begin_keyed(which.iter().map(|&i| keys[i].clone()).collect());
                let timestamps = pick_scalars(timestamps);
                dispatch::process_elements_local(
                    plugin,
                    host,
                    name,
                    *input,
                    (&data, &offsets),
                    (&key_data, &key_offsets),
                    &timestamps,
                )
            }
            Inputs::Timers { keys, times, domains } => {
                let (key_data, key_offsets) = pick(keys);
                host.begin_keyed(which.iter().map(|&i| keys[i].clone()).collect());
                let domains: Vec<TimeDomain> = which.iter().map(|&i| domains[i]).collect();
                dispatch::on_timers_local(plugin, host, name, (&key_data, &key_offsets), &pick_scalars(times), &domains)
            }
            Inputs::Broadcast { rows, timestamps } => {
                let (data, offsets) = pick(rows);
                host.begin_broadcast();
                dispatch::process_broadcast(plugin, host, name, (&data, &offsets), &pick_scalars(timestamps))
            }
            Inputs::Window => unreachable!("windows are called by process_window"),
        }));
        self.host.end_call();
        match result {
            Ok(output) => output.map(Ok),
            Err(payload) => {
                self.host.restore(before);
                Ok(Err(panic_message(payload.as_ref())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::process::{
        BroadcastContext, Collector, Context, KeyedProcessFunction, ProcessResult, StateDecl, TimeDomain,
    };

    /// Appends each element to `seen` (TTL 100 ms), emits `key:element`, panics on `boom`
    /// after writing; `later` registers an event-time timer at the element's time, `loop` a
    /// timer that re-registers itself. Broadcast elements become prefixes in `prefix`.
    #[derive(Default)]
    struct Probe;

    impl KeyedProcessFunction for Probe {
        type Input = String;
        type Output = String;
        type Broadcast = String;
        const STATES: &'static [StateDecl] = &[
            StateDecl::list::<String>("seen").with_ttl(Duration::from_millis(100)),
            StateDecl::broadcast_map::<String, String>("prefix"),
        ];

        fn process_element(&mut self, s: String, ctx: &Context<'_>, out: &mut Collector<'_, String>) -> ProcessResult {
            ctx.list::<String>("seen")?.append(&s)?;
            let prefix = ctx.broadcast::<String, String>("prefix")?.get(&"p".to_string())?.unwrap_or_default();
            out.collect(format!("{prefix}{}:{s}", ctx.current_key::<String>()?));
            let timers = ctx.timer_service();
            match s.as_str() {
                "boom" => panic!("boom on purpose"),
                "later" | "loop" => timers.register_event_time_timer(ctx.timestamp().ok_or("no time")?),
                "wall" => timers.register_processing_time_timer(timers.current_processing_time() + 10),
                _ => {}
            }
            Ok(())
        }

        fn on_timer(&mut self, at: i64, ctx: &Context<'_>, out: &mut Collector<'_, String>) -> ProcessResult {
            let seen = ctx.list::<String>("seen")?.get()?;
            if seen.iter().any(|s| s == "loop") {
                ctx.timer_service().register_event_time_timer(at);
            }
            out.collect(format!("{}@{at}:{}", ctx.current_key::<String>()?, seen.join(",")));
            Ok(())
        }

        fn process_broadcast_element(
            &mut self,
            prefix: String,
            ctx: &BroadcastContext<'_>,
            _: &mut Collector<'_, String>,
        ) -> ProcessResult {
            ctx.broadcast::<String, String>("prefix")?.put(&"p".to_string(), &prefix)?;
            Ok(())
        }
    }

    crate::plugin! { name: "harness-test", version: "0.0.1", processes: [probe: Probe] }

    fn harness() -> ProcessHarness {
        ProcessHarness::new(&PLUGIN, "probe")
    }

    #[test]
    fn a_panic_rolls_back_its_call_and_the_others_of_a_batch_go_through_once() {
        let mut h = harness();
        h.process("a", "x", None).expect("x goes through");
        let error = h.process_batch([("a", "y", None), ("a", "boom", None), ("b", "z", None)]).expect_err("boom traps");
        let failures = error.failures();
        assert_eq!(failures.len(), 1, "{error}");
        assert_eq!((failures[0].input.as_str(), failures[0].trapped), ("element 1", true));
        assert!(failures[0].message.contains("boom on purpose"), "{error}");
        assert_eq!(h.list_state::<String>("a", "seen"), ["x", "y"], "boom's append is rolled back, y kept once");
        assert_eq!(h.list_state::<String>("b", "seen"), ["z"]);
        assert_eq!(h.output::<String>(), ["a:x", "a:y", "b:z"]);
    }

    #[test]
    fn timers_fire_once_in_time_then_key_order_when_the_watermark_passes() {
        let mut h = harness();
        h.process_batch([("b", "later", Some(20)), ("a", "later", Some(20)), ("a", "later", Some(10))])
            .expect("elements go through");
        h.process("a", "later", 20).expect("registered again: still one timer");
        assert_eq!(h.timers("a"), [(TimeDomain::EventTime, 10), (TimeDomain::EventTime, 20)]);
        h.take_output::<String>();
        h.advance_watermark(9).expect("nothing due");
        assert!(h.output::<String>().is_empty());
        h.advance_watermark(20).expect("timers fire");
        assert_eq!(h.take_output::<String>(), ["a@10:later,later,later", "a@20:later,later,later", "b@20:later"]);
        h.advance_watermark(5).expect("a lower watermark is ignored");
        assert_eq!((h.watermark(), h.timer_count(TimeDomain::EventTime)), (Some(20), 0));
    }

    #[test]
    fn processing_time_fires_its_timers_and_expires_state() {
        let mut h = harness();
        h.advance_processing_time(50).expect("nothing due");
        h.process("a", "wall", None).expect("registers at 60");
        h.advance_processing_time(59).expect("not yet");
        assert!(h.output::<String>()[1..].is_empty());
        h.advance_processing_time(60).expect("fires");
        assert_eq!(h.take_output::<String>(), ["a:wall", "a@60:wall"]);
        h.advance_processing_time(150).expect("nothing due");
        assert_eq!(h.list_state::<String>("a", "seen"), Vec::<String>::new(), "written at 50, TTL 100");
    }

    #[test]
    fn broadcast_state_is_written_by_the_broadcast_side_and_read_by_every_key() {
        let mut h = harness();
        h.broadcast("!").expect("broadcast side writes");
        h.process_batch([("a", "x", None), ("b", "y", None)]).expect("keyed side reads");
        assert_eq!(h.output::<String>(), ["!a:x", "!b:y"]);
        assert_eq!(h.broadcast_state::<String, String>("prefix"), [("p".to_string(), "!".to_string())]);
    }

    #[test]
    fn element_failures_name_the_input_and_keep_other_inputs() {
        let mut h = harness();
        let error = h.process("a", "later", None).expect_err("no event time");
        assert_eq!(error.to_string(), "element 0 failed: process function `probe`: no time");
        assert_eq!(h.list_state::<String>("a", "seen"), ["later"], "an Err keeps the writes before it");
        assert!(h.output::<String>().is_empty(), "an Err drops the input's output");
    }

    #[test]
    fn a_timer_that_keeps_registering_itself_is_stopped() {
        let mut h = harness();
        h.process("a", "loop", 1).expect("registers");
        assert!(matches!(h.advance_watermark(1), Err(ProcessHarnessError::TimerLoop)));
    }

    #[test]
    #[should_panic(expected = "plugin `harness-test` has no process function `nope` (it has: probe)")]
    fn an_unknown_function_is_a_test_bug() {
        ProcessHarness::new(&PLUGIN, "nope");
    }

    #[test]
    #[should_panic(expected = "used state `nope`, which it did not declare (declared: seen, prefix)")]
    fn inspecting_an_undeclared_state_is_a_test_bug() {
        harness().value_state::<u64>("a", "nope");
    }
}
