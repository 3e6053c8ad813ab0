//! The process dispatcher: the only implementation of the WIT `process` interface.
//!
//! The component export calls it with the buffers wit-bindgen lifted and the WIT imports as
//! its [`ProcessHost`]; [`crate::testing::ProcessHarness`] calls it with buffers it encoded
//! and in-memory state. Per input it selects the input (`context.select(i)`, so the host
//! scopes the state and timer calls that follow to that input's key), builds the
//! [`Context`], and runs the function with its output rolled back if it fails.
//!
//! As for transforms, an input that does not decode or whose function returns `Err` is a
//! [`RowError`] and the call goes on; only a problem with the call itself (an unknown
//! function, batches that do not describe their rows or disagree in length) is a
//! [`ProcessError`].

use super::batched::{Batched, KeyState, StateWrite};
use super::context::{BroadcastContext, Context, Extras};
use super::host::ProcessHost;
use super::{ProcessFunction, ProcessKind, RowKind, TimeDomain, Window};
use crate::batch::{BatchRef, RowWriter};
use crate::dispatch::RowError;
use crate::function::Plugin;

/// The event time WIT callers pass for "none".
const NO_TIMESTAMP: i64 = i64::MIN;

/// Why a whole process call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    /// The host asked for a process function the plugin does not have.
    #[error(
        "plugin `{plugin}` has no process function `{name}` (it has: {known}); check the function name in the job file"
    )]
    UnknownFunction { plugin: &'static str, name: String, known: String },
    /// The host called a function through an export of another kind.
    #[error("process function `{name}` is a {kind} function, but was called as a {expected} function")]
    WrongKind { name: String, kind: &'static str, expected: String },
    /// The batches do not describe their rows, or disagree on how many inputs there are (a
    /// host or SDK bug, not a bad record).
    #[error("malformed input of process function `{function}`: {reason}")]
    MalformedBatch { function: String, reason: String },
}

/// The outcome of one call: the WIT `process-output` in plain Rust types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOutput {
    /// All output rows, in input order, in one buffer.
    pub data: Vec<u8>,
    /// Output row `j` is `data[offsets[j]..offsets[j + 1]]`.
    pub offsets: Vec<u32>,
    /// `counts[i]` output rows came from input `i` (element or timer).
    pub counts: Vec<u32>,
    /// The inputs that failed (they have a count of 0).
    pub errors: Vec<RowError>,
    /// The kind of each output row; empty when all are inserts.
    pub kinds: Vec<RowKind>,
    /// `(input index, tag, row)` of each side-output row.
    pub side: Vec<(u32, String, Vec<u8>)>,
    /// The value-state writes of the call, for the host to apply.
    pub writes: Vec<StateWrite>,
}

/// `process-elements`: element `i` of `elements` (of input `input`: 1, or 2 for a
/// co-process function's second input) has key `keys[i]` and event time `timestamps[i]`
/// (`i64::MIN`: none); `state` holds the value states of the keys. Batches are
/// `(data, offsets)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn process_elements(
    plugin: &Plugin,
    host: &dyn ProcessHost,
    name: &str,
    input: u8,
    elements: (&[u8], &[u32]),
    keys: (&[u8], &[u32]),
    timestamps: &[i64],
    state: KeyState,
) -> Result<ProcessOutput, ProcessError> {
    let function = find(plugin, name, &[ProcessKind::Keyed, ProcessKind::Co])?;
    let elements = batch(name, "elements", elements)?;
    let keys = batch(name, "keys", keys)?;
    same_length(name, &[("elements", elements.len()), ("keys", keys.len()), ("timestamps", timestamps.len())])?;
    let host = Batched::new(host, function.states, elements.len(), state).map_err(|reason| malformed(name, reason))?;
    let extras = Extras::default();
    let output = run(name, elements.len(), elements.data_len(), &extras, |index, out| {
        let row = elements.row(index).map_err(|reason| malformed(name, reason))?;
        let key = keys.row(index).map_err(|reason| malformed(name, reason))?;
        host.select(wit_index(index));
        let ctx = Context::new(&host, function.states, key, event_time(timestamps[index]), None, &extras);
        Ok((function.element)(&ctx, input, row, out))
    })?;
    Ok(ProcessOutput { writes: host.into_writes(), ..output })
}

/// `on-timers`: timer `i` is for key `keys[i]` at `times[i]` in `domains[i]`.
pub(crate) fn on_timers(
    plugin: &Plugin,
    host: &dyn ProcessHost,
    name: &str,
    keys: (&[u8], &[u32]),
    times: &[i64],
    domains: &[TimeDomain],
    state: KeyState,
) -> Result<ProcessOutput, ProcessError> {
    let function = find(plugin, name, &[ProcessKind::Keyed, ProcessKind::Co])?;
    let keys = batch(name, "keys", keys)?;
    same_length(name, &[("keys", keys.len()), ("times", times.len()), ("domains", domains.len())])?;
    let host = Batched::new(host, function.states, times.len(), state).map_err(|reason| malformed(name, reason))?;
    let extras = Extras::default();
    let output = run(name, times.len(), 0, &extras, |index, out| {
        let key = keys.row(index).map_err(|reason| malformed(name, reason))?;
        host.select(wit_index(index));
        let at = times[index];
        let ctx = Context::new(&host, function.states, key, Some(at), Some(domains[index]), &extras);
        Ok((function.timer)(&ctx, at, out))
    })?;
    Ok(ProcessOutput { writes: host.into_writes(), ..output })
}

/// [`process_elements`] as a host written in Rust calls it (the test harness, this module's
/// tests): the value states of the keys read from `host` before the call, its writes
/// applied to `host` after it, as the Weir host does around a component call.
pub(crate) fn process_elements_local(
    plugin: &Plugin,
    host: &dyn ProcessHost,
    name: &str,
    input: u8,
    elements: (&[u8], &[u32]),
    keys: (&[u8], &[u32]),
    timestamps: &[i64],
) -> Result<ProcessOutput, ProcessError> {
    around_call(plugin, host, name, keys, |state| {
        process_elements(plugin, host, name, input, elements, keys, timestamps, state)
    })
}

/// [`on_timers`] as a host written in Rust calls it (see [`process_elements_local`]).
pub(crate) fn on_timers_local(
    plugin: &Plugin,
    host: &dyn ProcessHost,
    name: &str,
    keys: (&[u8], &[u32]),
    times: &[i64],
    domains: &[TimeDomain],
) -> Result<ProcessOutput, ProcessError> {
    around_call(plugin, host, name, keys, |state| on_timers(plugin, host, name, keys, times, domains, state))
}

/// What the Weir host does around a keyed call: read the key-state of `keys` through
/// `host`, make the call with it, and apply the call's value writes to `host`.
fn around_call(
    plugin: &Plugin,
    host: &dyn ProcessHost,
    name: &str,
    keys: (&[u8], &[u32]),
    call: impl FnOnce(KeyState) -> Result<ProcessOutput, ProcessError>,
) -> Result<ProcessOutput, ProcessError> {
    let states = find(plugin, name, &[ProcessKind::Keyed, ProcessKind::Co])?.states;
    let (state, first) = read_key_state(host, states, batch(name, "keys", keys)?).map_err(|r| malformed(name, r))?;
    let out = call(state)?;
    apply_writes(host, states, &first, &out.writes).map_err(|r| malformed(name, r))?;
    Ok(out)
}

/// The key-state of a call's keys, read through `host`, and the first input of each slot.
fn read_key_state(
    host: &dyn ProcessHost,
    states: &[super::StateDecl],
    keys: BatchRef<'_>,
) -> Result<(KeyState, Vec<u32>), String> {
    let mut seen: std::collections::HashMap<&[u8], u32> = std::collections::HashMap::new();
    let mut first = Vec::new();
    let mut slots = Vec::with_capacity(keys.len());
    for i in 0..keys.len() {
        let slot = *seen.entry(keys.row(i)?).or_insert_with(|| {
            first.push(wit_index(i));
            wit_index(first.len() - 1)
        });
        slots.push(slot);
    }
    let mut values = Vec::with_capacity(first.len() * states.len());
    for &input in &first {
        host.select(input);
        for decl in states {
            values.push(if decl.kind() == super::StateKind::Value { host.value_get(decl.name())? } else { None });
        }
    }
    Ok((KeyState { slots, values }, first))
}

fn apply_writes(
    host: &dyn ProcessHost,
    states: &[super::StateDecl],
    first: &[u32],
    writes: &[StateWrite],
) -> Result<(), String> {
    for w in writes {
        let input = *first.get(w.slot as usize).ok_or_else(|| format!("key slot {} of {}", w.slot, first.len()))?;
        let decl = states.get(w.state as usize).ok_or_else(|| format!("state {} of {}", w.state, states.len()))?;
        host.select(input);
        match &w.value {
            Some(value) => host.value_set(decl.name(), value)?,
            None => host.value_clear(decl.name())?,
        }
    }
    Ok(())
}

/// `process-broadcast`: elements of the broadcast stream. They have no key, so nothing is
/// selected.
pub(crate) fn process_broadcast(
    plugin: &Plugin,
    host: &dyn ProcessHost,
    name: &str,
    elements: (&[u8], &[u32]),
    timestamps: &[i64],
) -> Result<ProcessOutput, ProcessError> {
    let function = find(plugin, name, &[ProcessKind::Keyed])?;
    let elements = batch(name, "elements", elements)?;
    same_length(name, &[("elements", elements.len()), ("timestamps", timestamps.len())])?;
    let extras = Extras::default();
    run(name, elements.len(), elements.data_len(), &extras, |index, out| {
        let row = elements.row(index).map_err(|reason| malformed(name, reason))?;
        let ctx = BroadcastContext::new(host, function.states, event_time(timestamps[index]));
        Ok((function.broadcast)(&ctx, row, out))
    })
}

/// `process-window`: the elements of key `key`'s window `window`, in arrival order. One
/// input: the window.
pub(crate) fn process_window(
    plugin: &Plugin,
    name: &str,
    key: &[u8],
    window: Window,
    elements: (&[u8], &[u32]),
    timestamps: &[i64],
) -> Result<ProcessOutput, ProcessError> {
    let function = find(plugin, name, &[ProcessKind::Window])?;
    let elements = batch(name, "elements", elements)?;
    same_length(name, &[("elements", elements.len()), ("timestamps", timestamps.len())])?;
    let rows = (0..elements.len())
        .map(|i| elements.row(i).map_err(|reason| malformed(name, reason)))
        .collect::<Result<Vec<_>, _>>()?;
    let extras = Extras::default();
    run(name, 1, elements.data_len(), &extras, |_, out| Ok((function.window)(key, window, &rows, out, &extras)))
}

fn find<'p>(plugin: &'p Plugin, name: &str, kinds: &[ProcessKind]) -> Result<&'p ProcessFunction, ProcessError> {
    let function = plugin.process(name).ok_or_else(|| ProcessError::UnknownFunction {
        plugin: plugin.name(),
        name: name.to_string(),
        known: plugin.processes().iter().map(|f| f.name()).collect::<Vec<_>>().join(", "),
    })?;
    if !kinds.contains(&function.kind()) {
        let expected: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        return Err(ProcessError::WrongKind {
            name: name.to_string(),
            kind: function.kind().as_str(),
            expected: expected.join(" or "),
        });
    }
    Ok(function)
}

fn malformed(function: &str, reason: String) -> ProcessError {
    ProcessError::MalformedBatch { function: function.to_string(), reason }
}

fn batch<'a>(function: &str, what: &str, (data, offsets): (&'a [u8], &'a [u32])) -> Result<BatchRef<'a>, ProcessError> {
    BatchRef::new(data, offsets).map_err(|reason| malformed(function, format!("{what}: {reason}")))
}

fn same_length(function: &str, lengths: &[(&str, usize)]) -> Result<(), ProcessError> {
    match lengths.split_first() {
        Some(((_, n), rest)) if rest.iter().any(|(_, m)| m != n) => {
            let listed = lengths.iter().map(|(what, n)| format!("{n} {what}")).collect::<Vec<_>>().join(", ");
            Err(malformed(function, format!("the inputs disagree in length: {listed}")))
        }
        _ => Ok(()),
    }
}

fn event_time(timestamp: i64) -> Option<i64> {
    (timestamp != NO_TIMESTAMP).then_some(timestamp)
}

/// `index` < a WIT list's length, which is a u32.
fn wit_index(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

/// Runs `handle` on inputs `0..inputs`, collecting their rows, counts and errors. `handle`
/// returns the input's own outcome inside a call-level `Result`.
fn run(
    function: &str,
    inputs: usize,
    input_bytes: usize,
    extras: &Extras,
    mut handle: impl FnMut(usize, &mut RowWriter) -> Result<Result<(), String>, ProcessError>,
) -> Result<ProcessOutput, ProcessError> {
    let mut out = RowWriter::with_capacity(inputs, input_bytes + 64);
    let mut counts = Vec::with_capacity(inputs);
    let mut errors = Vec::new();
    for index in 0..inputs {
        extras.input.set(wit_index(index));
        let mark = out.mark();
        let first_row = out.len();
        let count = match handle(index, &mut out)? {
            Ok(()) => out.rows_since(mark),
            Err(message) => {
                out.rollback(mark);
                extras.rollback(wit_index(index), first_row);
                errors.push(RowError {
                    index: wit_index(index),
                    message: format!("process function `{function}`: {message}"),
                });
                0
            }
        };
        counts.push(u32::try_from(count).unwrap_or(u32::MAX));
    }
    let rows = out.len();
    let (data, offsets) = out.into_parts();
    let marked = extras.kinds.take();
    let kinds = if marked.is_empty() {
        Vec::new()
    } else {
        let mut kinds = vec![RowKind::Insert; rows];
        for (row, kind) in marked {
            kinds[row] = kind;
        }
        kinds
    };
    Ok(ProcessOutput { data, offsets, counts, errors, kinds, side: extras.side.take(), writes: Vec::new() })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use serde::Deserialize;

    use super::*;
    use crate::process::host::Entries;
    use crate::process::{
        BroadcastContext, Collector, KeyedProcessFunction, NoBroadcast, ProcessResult, StateDecl, TimeDomain,
    };
    use crate::testing::memory::MemoryHost;

    #[derive(Deserialize)]
    struct Add {
        n: i64,
        #[serde(default)]
        fail: bool,
    }

    /// Sums per key, emits `key sum=.. at=..`, then fails when told to.
    #[derive(Default)]
    struct Sum;

    impl KeyedProcessFunction for Sum {
        type Input = Add;
        type Output = String;
        type Broadcast = NoBroadcast;
        const STATES: &'static [StateDecl] = &[StateDecl::value::<i64>("sum")];

        fn process_element(&mut self, add: Add, ctx: &Context<'_>, out: &mut Collector<'_, String>) -> ProcessResult {
            let sum = ctx.value::<i64>("sum")?;
            let total = sum.get()?.unwrap_or(0) + add.n;
            sum.set(&total)?;
            out.collect(format!("{} sum={total} at={:?}", ctx.current_key::<String>()?, ctx.timestamp()));
            if add.fail { Err("refused on purpose".into()) } else { Ok(()) }
        }

        fn on_timer(&mut self, at: i64, ctx: &Context<'_>, out: &mut Collector<'_, String>) -> ProcessResult {
            let key = ctx.current_key::<String>()?;
            out.collect(format!("{key} timer={at} {:?} at={:?}", ctx.time_domain(), ctx.timestamp()));
            Ok(())
        }
    }

    /// Reads `sum` with another type than it declares.
    #[derive(Default)]
    struct Mistyped;

    impl KeyedProcessFunction for Mistyped {
        type Input = i64;
        type Output = i64;
        type Broadcast = String;
        const STATES: &'static [StateDecl] = &[StateDecl::value::<i64>("sum")];

        fn process_element(&mut self, _: i64, ctx: &Context<'_>, _: &mut Collector<'_, i64>) -> ProcessResult {
            ctx.value::<u32>("sum")?.get()?;
            Ok(())
        }

        fn process_broadcast_element(
            &mut self,
            value: String,
            ctx: &BroadcastContext<'_>,
            out: &mut Collector<'_, i64>,
        ) -> ProcessResult {
            out.collect(value.len() as i64 + ctx.timestamp().unwrap_or(0));
            Ok(())
        }
    }

    crate::plugin! { name: "process-test", version: "0.0.1", processes: [sum: Sum, mistyped: Mistyped] }

    /// A [`MemoryHost`] that logs the calls it gets.
    struct Recording {
        memory: MemoryHost,
        log: RefCell<Vec<String>>,
    }

    impl Recording {
        fn new(keys: &[&str]) -> Self {
            let memory = MemoryHost::new("sum", Sum::STATES);
            memory.begin_keyed(keys.iter().map(|k| rmp_serde::to_vec(k).expect("a string encodes")).collect());
            Recording { memory, log: RefCell::new(Vec::new()) }
        }

        fn note(&self, call: String) {
            self.log.borrow_mut().push(call);
        }
    }

    impl ProcessHost for Recording {
        fn select(&self, index: u32) {
            self.note(format!("select {index}"));
            self.memory.select(index);
        }
        fn value_get(&self, state: &str) -> Result<Option<Vec<u8>>, String> {
            self.note(format!("get {state}"));
            self.memory.value_get(state)
        }
        fn value_set(&self, state: &str, value: &[u8]) -> Result<(), String> {
            self.note(format!("set {state}"));
            self.memory.value_set(state, value)
        }
        fn value_clear(&self, state: &str) -> Result<(), String> {
            self.memory.value_clear(state)
        }
        fn list_get(&self, state: &str) -> Result<Vec<Vec<u8>>, String> {
            self.memory.list_get(state)
        }
        fn list_append(&self, state: &str, value: &[u8]) -> Result<(), String> {
            self.memory.list_append(state, value)
        }
        fn list_clear(&self, state: &str) -> Result<(), String> {
            self.memory.list_clear(state)
        }
        fn map_get(&self, state: &str, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
            self.memory.map_get(state, key)
        }
        fn map_put(&self, state: &str, key: &[u8], value: &[u8]) -> Result<(), String> {
            self.memory.map_put(state, key, value)
        }
        fn map_remove(&self, state: &str, key: &[u8]) -> Result<(), String> {
            self.memory.map_remove(state, key)
        }
        fn map_contains(&self, state: &str, key: &[u8]) -> Result<bool, String> {
            self.memory.map_contains(state, key)
        }
        fn map_entries(&self, state: &str) -> Result<Entries, String> {
            self.memory.map_entries(state)
        }
        fn broadcast_get(&self, state: &str, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
            self.memory.broadcast_get(state, key)
        }
        fn broadcast_put(&self, state: &str, key: &[u8], value: &[u8]) -> Result<(), String> {
            self.memory.broadcast_put(state, key, value)
        }
        fn broadcast_remove(&self, state: &str, key: &[u8]) -> Result<(), String> {
            self.memory.broadcast_remove(state, key)
        }
        fn broadcast_entries(&self, state: &str) -> Result<Entries, String> {
            self.memory.broadcast_entries(state)
        }
        fn current_watermark(&self) -> Option<i64> {
            self.memory.current_watermark()
        }
        fn current_processing_time(&self) -> i64 {
            self.memory.current_processing_time()
        }
        fn register_timer(&self, domain: TimeDomain, at_ms: i64) {
            self.memory.register_timer(domain, at_ms)
        }
        fn delete_timer(&self, domain: TimeDomain, at_ms: i64) {
            self.memory.delete_timer(domain, at_ms)
        }
    }

    fn batch<T: serde::Serialize>(values: &[T]) -> (Vec<u8>, Vec<u32>) {
        let mut data = Vec::new();
        let mut offsets = vec![0];
        for value in values {
            rmp_serde::encode::write_named(&mut data, value).expect("test values encode");
            offsets.push(data.len() as u32);
        }
        (data, offsets)
    }

    fn rows(output: &ProcessOutput) -> Vec<String> {
        output
            .offsets
            .windows(2)
            .map(|w| rmp_serde::from_slice(&output.data[w[0] as usize..w[1] as usize]).expect("a string row"))
            .collect()
    }

    #[derive(serde::Serialize)]
    struct AddRow {
        n: i64,
        fail: bool,
    }

    fn add(n: i64) -> AddRow {
        AddRow { n, fail: false }
    }

    #[test]
    fn value_state_is_read_once_per_key_before_the_call_and_written_once_after() {
        let host = Recording::new(&["a", "b", "a"]);
        let (data, offsets) = batch(&[add(1), add(2), add(3)]);
        let (keys, key_offsets) = batch(&["a", "b", "a"]);
        let out = process_elements_local(
            &PLUGIN,
            &host,
            "sum",
            1,
            (&data, &offsets),
            (&keys, &key_offsets),
            &[5, i64::MIN, 7],
        )
        .expect("the call goes through");
        // Keys a and b are read before the call (slots 0 and 1), each element is selected
        // during it (for list, map and timer imports) without a value call, and the last
        // write of each key is applied after it.
        assert_eq!(
            host.log.borrow().as_slice(),
            [
                "select 0", "get sum", "select 1", "get sum", "select 0", "select 1", "select 2", "select 1",
                "set sum", "select 0", "set sum"
            ]
        );
        assert_eq!(out.writes.len(), 2);
        assert_eq!(rows(&out), ["a sum=1 at=Some(5)", "b sum=2 at=None", "a sum=4 at=Some(7)"]);
        assert_eq!((out.counts, out.errors), (vec![1, 1, 1], vec![]));
    }

    #[test]
    fn a_failing_element_emits_nothing_keeps_its_state_writes_and_the_rest_go_on() {
        let host = Recording::new(&["a", "a", "a"]);
        let (data, offsets) = batch(&[add(1), AddRow { n: 10, fail: true }, add(100)]);
        let (keys, key_offsets) = batch(&["a", "a", "a"]);
        let out =
            process_elements_local(&PLUGIN, &host, "sum", 1, (&data, &offsets), (&keys, &key_offsets), &[0, 0, 0])
                .expect("the call goes through");
        assert_eq!(rows(&out), ["a sum=1 at=Some(0)", "a sum=111 at=Some(0)"]);
        assert_eq!(out.counts, [1, 0, 1]);
        assert_eq!(out.errors, [RowError { index: 1, message: "process function `sum`: refused on purpose".into() }]);
    }

    #[test]
    fn an_element_that_does_not_decode_fails_alone_with_the_type_it_needed() {
        let host = Recording::new(&["a", "a"]);
        let (mut data, _) = batch(&["not a record"]);
        let first = data.len() as u32;
        data.extend(batch(&[add(1)]).0);
        let offsets = [0, first, data.len() as u32];
        let (keys, key_offsets) = batch(&["a", "a"]);
        let out = process_elements_local(&PLUGIN, &host, "sum", 1, (&data, &offsets), (&keys, &key_offsets), &[0, 0])
            .expect("the call goes through");
        assert_eq!(out.counts, [0, 1]);
        let message = &out.errors[0].message;
        assert!(message.starts_with("process function `sum`: the element does not decode as "), "{message}");
        assert!(message.contains("Add"), "{message}");
    }

    #[test]
    fn timers_are_selected_and_carry_their_time_and_domain() {
        let host = Recording::new(&["b", "a"]);
        let (keys, key_offsets) = batch(&["b", "a"]);
        let domains = [TimeDomain::EventTime, TimeDomain::ProcessingTime];
        let out =
            on_timers_local(&PLUGIN, &host, "sum", (&keys, &key_offsets), &[10, 20], &domains).expect("goes through");
        assert_eq!(
            host.log.borrow().as_slice(),
            ["select 0", "get sum", "select 1", "get sum", "select 0", "select 1"]
        );
        assert_eq!(
            rows(&out),
            ["b timer=10 Some(EventTime) at=Some(10)", "a timer=20 Some(ProcessingTime) at=Some(20)"]
        );
    }

    #[test]
    fn broadcast_elements_select_nothing_and_need_a_broadcast_side() {
        let host = Recording::new(&[]);
        let (data, offsets) = batch(&["abc"]);
        let out = process_broadcast(&PLUGIN, &host, "mistyped", (&data, &offsets), &[4]).expect("goes through");
        assert_eq!(out.counts, [1]);
        let out = process_broadcast(&PLUGIN, &host, "sum", (&data, &offsets), &[i64::MIN]).expect("goes through");
        assert!(host.log.borrow().is_empty());
        assert_eq!(out.counts, [0]);
        assert!(out.errors[0].message.contains("this process function has no broadcast side"), "{:?}", out.errors);
    }

    #[test]
    fn state_used_with_another_type_than_declared_is_refused() {
        let host = Recording::new(&["a"]);
        let (data, offsets) = batch(&[1]);
        let (keys, key_offsets) = batch(&["a"]);
        let out = process_elements_local(&PLUGIN, &host, "mistyped", 1, (&data, &offsets), (&keys, &key_offsets), &[0])
            .expect("goes through");
        assert_eq!(
            out.errors[0].message,
            "process function `mistyped`: state `sum` is declared with values of type i64, but used as u32; use the \
             declared types, or declare them"
        );
        assert!(out.writes.is_empty(), "refused before any write: {:?}", out.writes);
    }

    #[test]
    fn calls_that_do_not_describe_their_inputs_fail_whole() {
        let host = Recording::new(&["a"]);
        let (data, offsets) = batch(&[add(1)]);
        let (keys, key_offsets) = batch(&["a"]);
        let error = process_elements_local(&PLUGIN, &host, "sum", 1, (&data, &offsets), (&keys, &key_offsets), &[0, 1])
            .expect_err("two timestamps for one element");
        assert_eq!(
            error.to_string(),
            "malformed input of process function `sum`: the inputs disagree in length: 1 elements, 1 keys, 2 timestamps"
        );
        let error = on_timers_local(&PLUGIN, &host, "sum", (&keys, &[1, 2]), &[0], &[TimeDomain::EventTime])
            .expect_err("offsets start at 1");
        assert!(matches!(error, ProcessError::MalformedBatch { .. }), "{error}");
        let error = process_broadcast(&PLUGIN, &host, "nope", (&[], &[0]), &[]).expect_err("no such function");
        assert_eq!(
            error.to_string(),
            "plugin `process-test` has no process function `nope` (it has: sum, mistyped); check the function name in \
             the job file"
        );
    }
}
