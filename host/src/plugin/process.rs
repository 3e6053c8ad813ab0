//! Calling a keyed process function (Flink's `KeyedProcessFunction`) and serving its
//! imports: `context`, `state`, `broadcast` and `timers`.
//!
//! The plugin module knows nothing of where state lives: the operator that owns the state
//! hands a [`ProcessHost`] to its [`Processor`], and every import call of the plugin goes to
//! it. One `process-elements` call carries the elements of many keys; the guest calls
//! `context.select(i)` before handling element `i`, and the host scopes the list, map and
//! timer calls that follow to that element's key.
//!
//! Value state does not go through imports (ABI 0.2, decision 0013): before a call the
//! processor reads every declared value state of the call's distinct keys into the call's
//! `key-state`, and after it applies the `state-writes` the guest returns, inside the same
//! `begin`/`commit` as the imports' writes. A function over value state so makes no import
//! call per element.
//!
//! Failures, as for transforms: an element the function rejects fails alone (its state
//! changes made before the error stay, as in a Flink function that catches its own
//! exception); a call that traps, times out or hits the memory cap is rolled back
//! ([`ProcessHost::rollback`] undoes every state write of the call) and retried
//! element by element, so only the guilty elements go to the dead-letter output and every
//! other element changes state exactly once.

use std::sync::{Arc, Mutex, MutexGuard};

use std::collections::HashSet;

use super::bindings::{
    self, FunctionInfo, KeyState, ProcessOutput, RowError, RowKind, StateDecl, StateKind, StateOp, StateWrite,
    WitBatch, WitTimeDomain,
};
use super::call::{CallFailure, InstanceSlot, call_then_each, to_wire};
use super::instance::HostState;
use super::transform::{OutputReader, RawOutput, TransformOutcome};
use super::{Plugin, PluginError};
use crate::record::Batch;
use crate::state::{Entries, TimeDomain};

/// The state store's clock as the WIT interface names it (the guest's `on-timers`).
impl From<TimeDomain> for WitTimeDomain {
    fn from(d: TimeDomain) -> Self {
        match d {
            TimeDomain::EventTime => WitTimeDomain::EventTime,
            TimeDomain::ProcessingTime => WitTimeDomain::ProcessingTime,
        }
    }
}

/// What a process function's imports reach: the operator's keyed state, broadcast state
/// and timers. Errors are messages for the guest (an undeclared state name, a write to
/// broadcast state from the keyed side).
pub trait ProcessHost: Send {
    /// Scope the calls that follow to the key of input `index` (an element or a timer).
    fn select(&mut self, index: usize) -> Result<(), String>;
    fn value_get(&mut self, state: &str) -> Result<Option<Vec<u8>>, String>;
    fn value_set(&mut self, state: &str, value: &[u8]) -> Result<(), String>;
    fn value_clear(&mut self, state: &str) -> Result<(), String>;
    fn list_get(&mut self, state: &str) -> Result<Vec<Vec<u8>>, String>;
    fn list_append(&mut self, state: &str, value: &[u8]) -> Result<(), String>;
    fn list_clear(&mut self, state: &str) -> Result<(), String>;
    fn map_get(&mut self, state: &str, key: &[u8]) -> Result<Option<Vec<u8>>, String>;
    fn map_put(&mut self, state: &str, key: &[u8], value: &[u8]) -> Result<(), String>;
    fn map_remove(&mut self, state: &str, key: &[u8]) -> Result<(), String>;
    fn map_contains(&mut self, state: &str, key: &[u8]) -> Result<bool, String>;
    fn map_entries(&mut self, state: &str) -> Result<Entries, String>;
    fn broadcast_get(&mut self, state: &str, key: &[u8]) -> Result<Option<Vec<u8>>, String>;
    fn broadcast_put(&mut self, state: &str, key: &[u8], value: &[u8]) -> Result<(), String>;
    fn broadcast_remove(&mut self, state: &str, key: &[u8]) -> Result<(), String>;
    fn broadcast_entries(&mut self, state: &str) -> Result<Entries, String>;
    fn current_watermark(&self) -> Option<i64>;
    fn register_timer(&mut self, domain: TimeDomain, at_ms: i64) -> Result<(), String>;
    fn delete_timer(&mut self, domain: TimeDomain, at_ms: i64) -> Result<(), String>;
    /// A call starts: record what it changes, so it can be undone.
    fn begin(&mut self);
    /// The call succeeded: keep its changes.
    fn commit(&mut self);
    /// The call failed (trapped, timed out): undo every state write it made. Timer
    /// registrations and deletions of the call are kept (the state store cannot tell
    /// whether a timer existed before), so a retried element re-registers the same timer.
    fn rollback(&mut self);
}

/// A [`ProcessHost`] shared by an operator and its plugin instances.
pub type SharedProcessHost = Arc<Mutex<dyn ProcessHost>>;

/// What a store holds for the process imports: the host, and the mapping from the indices
/// the guest selects (positions in the batch it was given) to input indices.
#[derive(Default)]
pub(super) struct ProcessImports {
    pub host: Option<SharedProcessHost>,
    pub positions: Vec<usize>,
}

impl ProcessImports {
    fn host(&self) -> Result<MutexGuard<'_, dyn ProcessHost + 'static>, String> {
        let host = self.host.as_ref().ok_or_else(|| {
            "state, broadcast state and timers are available only to process functions, during their calls".to_string()
        })?;
        host.lock().map_err(|_| "the state of this operator is poisoned by an earlier panic".to_string())
    }
}

impl bindings::weir::plugin::context::Host for HostState {
    fn select(&mut self, index: u32) {
        let imports = &self.process;
        let Some(&input) = imports.positions.get(index as usize) else {
            tracing::warn!(plugin = %self.label, index, "select: no such element in this call");
            return;
        };
        if let Err(e) = imports.host().and_then(|mut h| h.select(input)) {
            tracing::warn!(plugin = %self.label, index, "select: {e}");
        }
    }
}

impl bindings::weir::plugin::state::Host for HostState {
    fn list_get(&mut self, state: String) -> Result<Vec<Vec<u8>>, String> {
        self.process.host()?.list_get(&state)
    }
    fn list_append(&mut self, state: String, value: Vec<u8>) -> Result<(), String> {
        self.process.host()?.list_append(&state, &value)
    }
    fn list_clear(&mut self, state: String) -> Result<(), String> {
        self.process.host()?.list_clear(&state)
    }
    fn map_get(&mut self, state: String, key: Vec<u8>) -> Result<Option<Vec<u8>>, String> {
        self.process.host()?.map_get(&state, &key)
    }
    fn map_put(&mut self, state: String, key: Vec<u8>, value: Vec<u8>) -> Result<(), String> {
        self.process.host()?.map_put(&state, &key, &value)
    }
    fn map_remove(&mut self, state: String, key: Vec<u8>) -> Result<(), String> {
        self.process.host()?.map_remove(&state, &key)
    }
    fn map_contains(&mut self, state: String, key: Vec<u8>) -> Result<bool, String> {
        self.process.host()?.map_contains(&state, &key)
    }
    fn map_entries(&mut self, state: String) -> Result<Entries, String> {
        self.process.host()?.map_entries(&state)
    }
}

impl bindings::weir::plugin::broadcast::Host for HostState {
    fn get(&mut self, state: String, key: Vec<u8>) -> Result<Option<Vec<u8>>, String> {
        self.process.host()?.broadcast_get(&state, &key)
    }
    fn put(&mut self, state: String, key: Vec<u8>, value: Vec<u8>) -> Result<(), String> {
        self.process.host()?.broadcast_put(&state, &key, &value)
    }
    fn remove(&mut self, state: String, key: Vec<u8>) -> Result<(), String> {
        self.process.host()?.broadcast_remove(&state, &key)
    }
    fn entries(&mut self, state: String) -> Result<Entries, String> {
        self.process.host()?.broadcast_entries(&state)
    }
}

impl HostState {
    fn timer(&mut self, what: &str, change: impl FnOnce(&mut dyn ProcessHost) -> Result<(), String>) {
        if let Err(e) = self.process.host().and_then(|mut h| change(&mut *h)) {
            tracing::warn!(plugin = %self.label, "{what}: {e}");
        }
    }
}

impl bindings::weir::plugin::timers::Host for HostState {
    fn current_watermark(&mut self) -> Option<i64> {
        self.process.host().ok().and_then(|h| h.current_watermark())
    }
    fn current_processing_time(&mut self) -> i64 {
        crate::time::now_ms()
    }
    fn register_event_time(&mut self, at_ms: i64) {
        self.timer("register-event-time", |h| h.register_timer(TimeDomain::EventTime, at_ms));
    }
    fn register_processing_time(&mut self, at_ms: i64) {
        self.timer("register-processing-time", |h| h.register_timer(TimeDomain::ProcessingTime, at_ms));
    }
    fn delete_event_time(&mut self, at_ms: i64) {
        self.timer("delete-event-time", |h| h.delete_timer(TimeDomain::EventTime, at_ms));
    }
    fn delete_processing_time(&mut self, at_ms: i64) {
        self.timer("delete-processing-time", |h| h.delete_timer(TimeDomain::ProcessingTime, at_ms));
    }
}

/// The inputs of one call, in the host's encoding.
enum Inputs<'a> {
    /// Elements of input `input` (1, or 2 for a co-process function's second).
    Elements {
        input: u8,
        elements: &'a Batch,
        keys: &'a Batch,
        timestamps: &'a [i64],
    },
    Timers {
        keys: &'a Batch,
        times: &'a [i64],
        domains: &'a [TimeDomain],
    },
    Broadcast {
        elements: &'a Batch,
        timestamps: &'a [i64],
    },
}

impl Inputs<'_> {
    fn len(&self) -> usize {
        match self {
            Inputs::Elements { elements, .. } | Inputs::Broadcast { elements, .. } => elements.len(),
            Inputs::Timers { times, .. } => times.len(),
        }
    }
}

/// One operator instance's handle on a process function.
pub struct Processor {
    slot: InstanceSlot,
    function: FunctionInfo,
    host: SharedProcessHost,
    /// Side-output tags already warned about.
    unread_tags: HashSet<String>,
}

impl Processor {
    pub(super) fn new(plugin: Plugin, function: FunctionInfo, host: SharedProcessHost) -> Self {
        let mut slot = InstanceSlot::new(plugin, &function.name);
        slot.set_process_host(host.clone());
        Self { slot, function, host, unread_tags: HashSet::new() }
    }

    pub fn function(&self) -> &FunctionInfo {
        &self.function
    }

    /// Handle `elements` (MessagePack rows) of input `input` (1; a co-process function's
    /// second input is 2): element `i` has key `keys[i]` (MessagePack) and event time
    /// `timestamps[i]` ([`crate::record::NO_TIMESTAMP`] for none). The outcome's counts and
    /// failures are per element.
    pub fn process_elements(
        &mut self,
        input: u8,
        elements: &Batch,
        keys: &Batch,
        timestamps: &[i64],
    ) -> Result<TransformOutcome, PluginError> {
        self.run(Inputs::Elements { input, elements, keys, timestamps })
    }

    /// Timers that fired: timer `i` is for key `keys[i]` at `times[i]` in `domains[i]`.
    pub fn on_timers(
        &mut self,
        keys: &Batch,
        times: &[i64],
        domains: &[TimeDomain],
    ) -> Result<TransformOutcome, PluginError> {
        self.run(Inputs::Timers { keys, times, domains })
    }

    /// Elements of the broadcast stream.
    pub fn process_broadcast(&mut self, elements: &Batch, timestamps: &[i64]) -> Result<TransformOutcome, PluginError> {
        self.run(Inputs::Broadcast { elements, timestamps })
    }

    fn run(&mut self, inputs: Inputs<'_>) -> Result<TransformOutcome, PluginError> {
        let n = inputs.len();
        let mut outcome = TransformOutcome { counts: vec![0; n], ..Default::default() };
        if n == 0 {
            return Ok(outcome);
        }
        // Rows in the function's encoding; an input whose element or key does not convert
        // fails before the call.
        let encoding = self.function.encoding;
        let mut failures = Vec::new();
        let (elements, element_rows) = match &inputs {
            Inputs::Elements { elements, .. } | Inputs::Broadcast { elements, .. } => {
                let (wire, rows) = to_wire(elements, encoding, &mut failures);
                (Some(wire), rows)
            }
            Inputs::Timers { .. } => (None, (0..n).collect()),
        };
        let (keys, key_rows) = match &inputs {
            Inputs::Elements { keys, .. } | Inputs::Timers { keys, .. } => {
                let (wire, rows) = to_wire(keys, encoding, &mut failures);
                (Some(wire), rows)
            }
            Inputs::Broadcast { .. } => (None, (0..n).collect()),
        };
        outcome.failures = failures;
        let ok: Vec<usize> = element_rows.iter().copied().filter(|i| key_rows.binary_search(i).is_ok()).collect();
        let wire = |rows: &[usize]| -> Wire {
            let pick = |batch: &Option<std::borrow::Cow<'_, Batch>>, positions: &[usize]| {
                batch.as_ref().map(|b| {
                    let mut out = Batch::with_capacity(rows.len(), 0);
                    for &i in rows {
                        let pos = positions.binary_search(&i).unwrap_or(0);
                        out.push(b.value(pos));
                    }
                    out
                })
            };
            Wire { rows: rows.to_vec(), elements: pick(&elements, &element_rows), keys: pick(&keys, &key_rows) }
        };
        let label = self.slot.label.clone();
        let (failed, rebuilt) = call_then_each(&label, &ok, |rows| {
            let out = self.call(&inputs, &wire(rows))?;
            Ok(out.map(|out| self.reader().accept(rows, out, &mut outcome)))
        })?;
        outcome.failures.extend(failed);
        outcome.instances_rebuilt += rebuilt;
        outcome.failures.sort_by_key(|f| f.index);
        self.slot.recycle_after(n);
        Ok(outcome)
    }

    fn reader(&self) -> OutputReader<'_> {
        OutputReader { label: &self.slot.label, encoding: self.function.encoding }
    }

    /// One call on the inputs `wire.rows`, rolled back in the host if it fails.
    fn call(&mut self, inputs: &Inputs<'_>, wire: &Wire) -> Result<Result<RawOutput, CallFailure>, PluginError> {
        if let Some(elements) = &wire.elements {
            self.slot.fill_arg(elements);
        }
        let keys = wire.keys.as_ref().map(|k| {
            let (data, offsets) = k.parts();
            WitBatch { data: data.to_vec(), offsets: offsets.to_vec() }
        });
        let name = self.function.name.as_str();
        let slots = wire.keys.as_ref().map(|k| KeySlots::new(k, &wire.rows));
        lock(&self.host).begin();
        let key_state = match &slots {
            Some(slots) => match slots.read(&mut *lock(&self.host), &self.function.states) {
                Ok(state) => state,
                Err(e) => {
                    lock(&self.host).rollback();
                    return Err(PluginError::State(e));
                }
            },
            None => KeyState { slots: Vec::new(), values: Vec::new() },
        };
        let result = self.slot.call_with_positions(&wire.rows, |instance, arg| {
            let process = instance.process.as_ref().ok_or(PluginError::MissingInterface("process"))?;
            let store = &mut instance.store;
            let no_keys = WitBatch { data: Vec::new(), offsets: vec![0] };
            let keys = keys.as_ref().unwrap_or(&no_keys);
            Ok(match inputs {
                Inputs::Elements { input, timestamps, .. } => {
                    let ts: Vec<i64> = wire.rows.iter().map(|&i| timestamps[i]).collect();
                    process.call_process_elements(store, name, *input, arg, keys, &ts, &key_state)
                }
                Inputs::Timers { times, domains, .. } => {
                    let times: Vec<i64> = wire.rows.iter().map(|&i| times[i]).collect();
                    let domains: Vec<WitTimeDomain> = wire.rows.iter().map(|&i| domains[i].into()).collect();
                    process.call_on_timers(store, name, keys, &times, &domains, &key_state)
                }
                Inputs::Broadcast { timestamps, .. } => {
                    let ts: Vec<i64> = wire.rows.iter().map(|&i| timestamps[i]).collect();
                    process.call_process_broadcast(store, name, arg, &ts)
                }
            })
        });
        let mut result = result?;
        let mut host = lock(&self.host);
        let applied = match (&result, &slots) {
            (Ok(out), Some(slots)) => slots.write(&mut *host, &self.function.states, &out.state_writes),
            (Ok(out), None) if !out.state_writes.is_empty() => Err("the broadcast side wrote keyed value state".into()),
            _ => Ok(()),
        };
        match (&mut result, applied) {
            (Ok(_), Ok(())) => host.commit(),
            (Ok(out), Err(e)) => {
                host.rollback();
                let message = format!("the plugin returned a bad state write: {e}");
                let n = wire.rows.len() as u32;
                out.errors = (0..n).map(|index| RowError { index, message: message.clone() }).collect();
            }
            (Err(_), _) => host.rollback(),
        }
        drop(host);
        let (label, unread_tags) = (&self.slot.label, &mut self.unread_tags);
        Ok(result.map(|out| output_of(label, unread_tags, out)))
    }
}

/// A successful call's output as the transform path reads it. Side outputs are not
/// routed yet (the graph's named streams will read them): their rows are dropped with a
/// warning per tag (`unread_tags` remembers the tags warned about), as Flink drops a side
/// output no stream reads. A row of another kind than `insert` fails its input: the streams
/// of a job carry inserts only so far.
pub(super) fn output_of(label: &str, unread_tags: &mut HashSet<String>, mut out: ProcessOutput) -> RawOutput {
    for side in &out.side {
        if unread_tags.insert(side.tag.clone()) {
            tracing::warn!(
                function = %label,
                tag = %side.tag,
                "the function writes to side output `{}`, which no stream of this job reads; its rows are dropped",
                side.tag
            );
        }
    }
    if !out.kinds.is_empty() {
        reject_updates(&mut out);
    }
    RawOutput { data: out.rows.data, offsets: out.rows.offsets, counts: out.counts, errors: out.errors }
}

/// Fail every input whose output holds a row of another kind than `insert` (or all of them
/// when the kinds do not match the rows).
fn reject_updates(out: &mut ProcessOutput) {
    let rows = out.rows.offsets.len().saturating_sub(1);
    let mut failed: Vec<u32> = out.errors.iter().map(|e| e.index).collect();
    let mut fail = |index: u32, message: String| {
        if !failed.contains(&index) {
            failed.push(index);
            out.errors.push(RowError { index, message });
        }
    };
    if out.kinds.len() != rows {
        let message = format!("the plugin returned {} row kinds for {rows} output rows", out.kinds.len());
        (0..out.counts.len() as u32).for_each(|i| fail(i, message.clone()));
        return;
    }
    let mut next = 0usize;
    for (input, &n) in out.counts.iter().enumerate() {
        let kinds = out.kinds.get(next..next + n as usize).unwrap_or_default();
        next += n as usize;
        if let Some(kind) = kinds.iter().find(|k| !matches!(k, RowKind::Insert)) {
            fail(
                input as u32,
                format!(
                    "the function emitted a row of kind {kind:?}, but the streams of this job carry inserts only \
                     (updating results need an updating sink, which Weir does not have yet); emit plain rows"
                ),
            );
        }
    }
}

/// The distinct keys of a call's inputs: input `pos` (of the call) has slot `slots[pos]`,
/// and slot `s` is first selected as input `first[s]` of the operator.
struct KeySlots {
    slots: Vec<u32>,
    first: Vec<usize>,
}

impl KeySlots {
    fn new(keys: &Batch, rows: &[usize]) -> Self {
        let mut seen: std::collections::HashMap<&[u8], u32> = std::collections::HashMap::with_capacity(keys.len());
        let mut slots = Vec::with_capacity(keys.len());
        let mut first = Vec::new();
        for (pos, &input) in rows.iter().enumerate() {
            let slot = *seen.entry(keys.value(pos)).or_insert_with(|| {
                first.push(input);
                (first.len() - 1) as u32
            });
            slots.push(slot);
        }
        Self { slots, first }
    }

    /// Every declared value state of every slot (`none` for other kinds of state).
    fn read(&self, host: &mut dyn ProcessHost, states: &[StateDecl]) -> Result<KeyState, String> {
        let mut values = Vec::with_capacity(self.first.len() * states.len());
        for &input in &self.first {
            host.select(input)?;
            for decl in states {
                values.push(match decl.kind {
                    StateKind::Value => host.value_get(&decl.name)?,
                    _ => None,
                });
            }
        }
        Ok(KeyState { slots: self.slots.clone(), values })
    }

    /// Apply the guest's value writes, in order; any write to a slot or state that does not
    /// exist (an SDK bug) fails them all before the first is applied.
    fn write(&self, host: &mut dyn ProcessHost, states: &[StateDecl], writes: &[StateWrite]) -> Result<(), String> {
        for w in writes {
            if w.slot as usize >= self.first.len() {
                return Err(format!("key slot {} of {}", w.slot, self.first.len()));
            }
            match states.get(w.state as usize) {
                Some(decl) if decl.kind == StateKind::Value => {}
                Some(decl) => return Err(format!("state `{}` is not a value state", decl.name)),
                None => return Err(format!("state {} of {}", w.state, states.len())),
            }
        }
        for w in writes {
            host.select(self.first[w.slot as usize])?;
            let name = &states[w.state as usize].name;
            match &w.op {
                StateOp::Set(value) => host.value_set(name, value)?,
                StateOp::Clear => host.value_clear(name)?,
            }
        }
        Ok(())
    }
}

/// The inputs of one call: their indices, and their elements and keys in the function's
/// encoding (`None` when the call has none).
struct Wire {
    rows: Vec<usize>,
    elements: Option<Batch>,
    keys: Option<Batch>,
}

fn lock(host: &SharedProcessHost) -> MutexGuard<'_, dyn ProcessHost + 'static> {
    host.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
