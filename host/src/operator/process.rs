//! `process`: a keyed process function (Flink's `KeyedProcessFunction`) written as a Wasm
//! plugin, with its state and timers owned by the host in sled.
//!
//! The operator hands each batch to the plugin in one call, with every element's key and
//! event time; the plugin selects an element before touching its state, so the state and
//! timer calls it makes are scoped to that element's key ([`ProcessScope`]). Timers fire in
//! time order: event-time timers when the watermark passes them, processing-time timers when
//! the wall clock does (the runtime wakes the operator for them), all of them at the end of
//! a bounded input, as Flink does for event time. The output of an element carries the
//! element's event time; the output of a timer carries the timer's time.
//!
//! A call that traps is rolled back (every state write it made is undone, from an undo log
//! kept while the call runs) and retried element by element, so only the guilty elements go
//! to the dead-letter output and every other element changes state exactly once. Timer
//! registrations of a rolled-back call are kept: a timer registered twice is one timer.

use std::sync::{Arc, Mutex};

use crate::deploy::PluginCell;
use crate::plugin::{self, FunctionInfo, FunctionKind, ProcessHost, Processor, SharedProcessHost};
use crate::record::{Batch, NO_TIMESTAMP, RowMeta};
use crate::state::key_group;
use crate::state::{Entries, KeyedState, StateDescriptor, StateKind, TimeDomain};
use crate::task::DeadLetter;
use crate::task::{DeadLetters, InstanceContext, Operator, OperatorError};

/// Without checkpoints, flush buffered state writes to sled when this many are waiting
/// (with checkpoints state is written at barriers).
const FLUSH_AFTER_WRITES: usize = 50_000;

/// What the plugin is handling, which decides what it may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Elements,
    Timers,
    Broadcast,
}

/// One undoable write.
enum Undo {
    Value { state: String, key: (u16, Vec<u8>), old: Option<Vec<u8>> },
    List { state: String, key: (u16, Vec<u8>), old: Vec<Vec<u8>> },
    Map { state: String, key: (u16, Vec<u8>), user_key: Vec<u8>, old: Option<Vec<u8>> },
    Broadcast { state: String, user_key: Vec<u8>, old: Option<Vec<u8>> },
}

/// Which state a write is about to change, for [`ProcessScope::save`].
enum Saved<'a> {
    Value,
    List,
    Map(&'a [u8]),
}

/// The state and timers a process function's imports reach, scoped to the selected key.
pub struct ProcessScope {
    operator: String,
    state: KeyedState,
    max_parallelism: u16,
    phase: Phase,
    /// (key group, key) of each input of the current call.
    keys: Vec<(u16, Vec<u8>)>,
    selected: Option<usize>,
    watermark: Option<i64>,
    undo: Option<Vec<Undo>>,
}

impl ProcessScope {
    fn current(&self) -> Result<(u16, Vec<u8>), String> {
        selected_key(self.phase, self.selected, &self.keys).cloned()
    }

    /// The state, scoped to the selected key. An element's calls (a get, then the undo log's
    /// read and a set) share one key: it is set in the state only when it changes.
    fn keyed(&mut self) -> Result<&mut KeyedState, String> {
        let (group, key) = selected_key(self.phase, self.selected, &self.keys)?;
        if self.state.current_key() != Some((*group, key.as_slice())) {
            self.state.set_current_key(*group, key);
        }
        Ok(&mut self.state)
    }

    /// Before a write to `state` of the selected key during a call: note how to undo it.
    fn save(&mut self, state: &str, what: Saved<'_>) -> Result<(), String> {
        if self.undo.is_none() {
            return Ok(());
        }
        let key = self.current()?;
        let s = self.keyed()?;
        let entry = match what {
            Saved::Value => Undo::Value { old: s.value_get(state).map_err(text)?, state: state.into(), key },
            Saved::List => Undo::List { old: s.list_get(state).map_err(text)?, state: state.into(), key },
            Saved::Map(user_key) => {
                let old = s.map_get(state, user_key).map_err(text)?;
                Undo::Map { state: state.into(), key, user_key: user_key.to_vec(), old }
            }
        };
        self.undo.get_or_insert_with(Vec::new).push(entry);
        Ok(())
    }

    fn rollback_entry(&mut self, entry: Undo) -> Result<(), crate::state::StateError> {
        match entry {
            Undo::Value { state, key, old } => {
                self.state.set_current_key(key.0, &key.1);
                match old {
                    Some(v) => self.state.value_set(&state, &v),
                    None => self.state.value_clear(&state),
                }
            }
            Undo::List { state, key, old } => {
                self.state.set_current_key(key.0, &key.1);
                self.state.list_clear(&state)?;
                old.iter().try_for_each(|v| self.state.list_append(&state, v))
            }
            Undo::Map { state, key, user_key, old } => {
                self.state.set_current_key(key.0, &key.1);
                match old {
                    Some(v) => self.state.map_put(&state, &user_key, &v),
                    None => self.state.map_remove(&state, &user_key),
                }
            }
            Undo::Broadcast { state, user_key, old } => match old {
                Some(v) => self.state.broadcast_put(&state, &user_key, &v),
                None => self.state.broadcast_remove(&state, &user_key),
            },
        }
    }
}

/// (key group, key) of the selected input (element or timer) of a call.
fn selected_key(phase: Phase, selected: Option<usize>, keys: &[(u16, Vec<u8>)]) -> Result<&(u16, Vec<u8>), String> {
    if phase == Phase::Broadcast {
        return Err("keyed state is not available while handling the broadcast stream".into());
    }
    let i = selected.ok_or("no element selected: call context.select(i) before using state")?;
    Ok(&keys[i])
}

fn text(e: crate::state::StateError) -> String {
    e.to_string()
}

impl ProcessHost for ProcessScope {
    fn select(&mut self, index: usize) -> Result<(), String> {
        if index >= self.keys.len() {
            return Err(format!("no input {index} in this call"));
        }
        self.selected = Some(index);
        Ok(())
    }

    fn value_get(&mut self, state: &str) -> Result<Option<Vec<u8>>, String> {
        self.keyed()?.value_get(state).map_err(text)
    }

    fn value_set(&mut self, state: &str, value: &[u8]) -> Result<(), String> {
        self.save(state, Saved::Value)?;
        self.keyed()?.value_set(state, value).map_err(text)
    }

    fn value_clear(&mut self, state: &str) -> Result<(), String> {
        self.save(state, Saved::Value)?;
        self.keyed()?.value_clear(state).map_err(text)
    }

    fn list_get(&mut self, state: &str) -> Result<Vec<Vec<u8>>, String> {
        self.keyed()?.list_get(state).map_err(text)
    }

    fn list_append(&mut self, state: &str, value: &[u8]) -> Result<(), String> {
        self.save(state, Saved::List)?;
        self.keyed()?.list_append(state, value).map_err(text)
    }

    fn list_clear(&mut self, state: &str) -> Result<(), String> {
        self.save(state, Saved::List)?;
        self.keyed()?.list_clear(state).map_err(text)
    }

    fn map_get(&mut self, state: &str, user_key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        self.keyed()?.map_get(state, user_key).map_err(text)
    }

    fn map_put(&mut self, state: &str, user_key: &[u8], value: &[u8]) -> Result<(), String> {
        self.save(state, Saved::Map(user_key))?;
        self.keyed()?.map_put(state, user_key, value).map_err(text)
    }

    fn map_remove(&mut self, state: &str, user_key: &[u8]) -> Result<(), String> {
        self.save(state, Saved::Map(user_key))?;
        self.keyed()?.map_remove(state, user_key).map_err(text)
    }

    fn map_contains(&mut self, state: &str, user_key: &[u8]) -> Result<bool, String> {
        self.keyed()?.map_contains(state, user_key).map_err(text)
    }

    fn map_entries(&mut self, state: &str) -> Result<Entries, String> {
        self.keyed()?.map_entries(state).map_err(text)
    }

    fn broadcast_get(&mut self, state: &str, user_key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        self.state.broadcast_get(state, user_key).map_err(text)
    }

    fn broadcast_put(&mut self, state: &str, user_key: &[u8], value: &[u8]) -> Result<(), String> {
        self.broadcast_write(state, user_key, Some(value))
    }

    fn broadcast_remove(&mut self, state: &str, user_key: &[u8]) -> Result<(), String> {
        self.broadcast_write(state, user_key, None)
    }

    fn broadcast_entries(&mut self, state: &str) -> Result<Entries, String> {
        self.state.broadcast_entries(state).map_err(text)
    }

    fn current_watermark(&self) -> Option<i64> {
        self.watermark
    }

    fn register_timer(&mut self, domain: TimeDomain, at_ms: i64) -> Result<(), String> {
        self.keyed()?.register_timer(domain, at_ms).map_err(text)
    }

    fn delete_timer(&mut self, domain: TimeDomain, at_ms: i64) -> Result<(), String> {
        self.keyed()?.delete_timer(domain, at_ms).map_err(text)
    }

    fn begin(&mut self) {
        self.undo = Some(Vec::new());
    }

    fn commit(&mut self) {
        self.undo = None;
    }

    fn rollback(&mut self) {
        let log = self.undo.take().unwrap_or_default();
        for entry in log.into_iter().rev() {
            if let Err(e) = self.rollback_entry(entry) {
                tracing::error!(operator = %self.operator, error = %e, "cannot undo a state write of a failed call");
            }
        }
    }
}

impl ProcessScope {
    fn broadcast_write(&mut self, state: &str, user_key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        if self.phase != Phase::Broadcast {
            return Err(format!(
                "broadcast state `{state}` is read-only here: only the broadcast side (process-broadcast) may write it"
            ));
        }
        if let Some(log) = self.undo.as_mut() {
            let old = self.state.broadcast_get(state, user_key).map_err(text)?;
            log.push(Undo::Broadcast { state: state.into(), user_key: user_key.to_vec(), old });
        }
        match value {
            Some(v) => self.state.broadcast_put(state, user_key, v),
            None => self.state.broadcast_remove(state, user_key),
        }
        .map_err(text)
    }
}

/// The states a function declared, as the state store describes them.
pub fn descriptors(function: &FunctionInfo) -> Vec<StateDescriptor> {
    use crate::plugin::StateKind as Wit;
    function
        .states
        .iter()
        .map(|s| {
            let kind = match s.kind {
                Wit::Value => StateKind::Value,
                Wit::List => StateKind::List,
                Wit::Map => StateKind::Map,
                Wit::BroadcastMap => StateKind::BroadcastMap,
            };
            let d = StateDescriptor::new(s.name.clone(), kind);
            match s.ttl_ms {
                Some(ms) => d.with_ttl(std::time::Duration::from_millis(ms)),
                None => d,
            }
        })
        .collect()
}

pub struct ProcessOperator {
    name: String,
    function: String,
    /// The plugin version to run, which a hot deploy may change between calls.
    cell: PluginCell,
    generation: u64,
    processor: Processor,
    scope: Arc<Mutex<ProcessScope>>,
    processing_time: fn() -> i64,
    checkpointing: bool,
}

/// What a process step runs: a keyed process function, or a co-process function of two
/// connected keyed streams (the second reaching it through `process_second`).
const PROCESS_KINDS: &[FunctionKind] = &[FunctionKind::Process, FunctionKind::CoProcess];

impl ProcessOperator {
    /// The process function `function` of the plugin in `cell`, with its state in the job's
    /// store.
    pub fn new(name: String, cell: PluginCell, function: &str, ctx: &InstanceContext) -> Result<Self, OperatorError> {
        let (generation, plugin) = cell.current();
        let failed = |message: String| OperatorError::Failed { operator: name.clone(), message };
        let info = plugin
            .function(function, PROCESS_KINDS)
            .map_err(|source| OperatorError::Plugin { operator: name.clone(), source })?
            .clone();
        let store = ctx.state.store().map_err(|e| failed(format!("cannot open the job's state: {e}")))?;
        // State belongs to the step (its uid), so a new plugin version takes it over.
        let state = store.keyed(&ctx.uid, ctx.key_groups(), &descriptors(&info)).map_err(|e| failed(e.to_string()))?;
        let scope = Arc::new(Mutex::new(ProcessScope {
            operator: name.clone(),
            state,
            max_parallelism: ctx.max_parallelism,
            phase: Phase::Idle,
            keys: Vec::new(),
            selected: None,
            watermark: None,
            undo: None,
        }));
        let host: SharedProcessHost = scope.clone();
        let processor = plugin
            .processor(function, host)
            .map_err(|source| OperatorError::Plugin { operator: name.clone(), source })?;
        Ok(Self {
            name,
            function: function.to_string(),
            cell,
            generation,
            processor,
            scope,
            processing_time: crate::time::now_ms,
            checkpointing: ctx.checkpointing,
        })
    }

    /// Before a call: take up a newly deployed version. Its states were checked against the
    /// old version's when it was deployed; states it declares anew are registered here.
    fn follow_deploys(&mut self) -> Result<(), OperatorError> {
        if self.cell.generation() == self.generation {
            return Ok(());
        }
        let (generation, plugin) = self.cell.current();
        let info = plugin.function(&self.function, PROCESS_KINDS).map_err(|e| self.plugin_error(e))?.clone();
        self.scope().state.declare(&descriptors(&info)).map_err(|e| self.state_error(e))?;
        let host: SharedProcessHost = self.scope.clone();
        self.processor = plugin.processor(&self.function, host).map_err(|e| self.plugin_error(e))?;
        self.generation = generation;
        Ok(())
    }

    fn scope(&self) -> std::sync::MutexGuard<'_, ProcessScope> {
        self.scope.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn plugin_error(&self, source: crate::plugin::PluginError) -> OperatorError {
        OperatorError::Plugin { operator: self.name.clone(), source }
    }

    fn state_error(&self, e: crate::state::StateError) -> OperatorError {
        OperatorError::Failed { operator: self.name.clone(), message: e.to_string() }
    }

    /// Fire the timers of `domain` due at `up_to`, in time order.
    fn fire(
        &mut self,
        domain: TimeDomain,
        up_to: i64,
        out: &mut Batch,
        dead: &mut DeadLetters,
    ) -> Result<(), OperatorError> {
        self.follow_deploys()?;
        loop {
            let timers = self.scope().state.pop_due_timers(domain, up_to).map_err(|e| self.state_error(e))?;
            if timers.is_empty() {
                return Ok(());
            }
            let mut keys = Batch::with_capacity(timers.len(), 0);
            let times: Vec<i64> = timers.iter().map(|t| t.at_ms).collect();
            for t in &timers {
                keys.push(&t.key);
            }
            {
                let mut scope = self.scope();
                scope.phase = Phase::Timers;
                scope.keys = timers.into_iter().map(|t| (t.key_group, t.key)).collect();
                scope.selected = None;
            }
            let outcome = self.processor.on_timers(&keys, &times, &vec![domain; times.len()]);
            self.scope().phase = Phase::Idle;
            let outcome = outcome.map_err(|e| self.plugin_error(e))?;
            let mut next = 0;
            for (i, &n) in outcome.counts.iter().enumerate() {
                for j in next..next + n as usize {
                    out.push_record(outcome.rows.value(j), RowMeta { key: None, timestamp: Some(times[i]) });
                }
                next += n as usize;
            }
            for f in outcome.failures {
                let mut letter = DeadLetter::of_row(&self.name, f.kind.as_str(), f.message, &keys, f.index);
                letter.error = format!("timer at {} ms: {}", times[f.index], letter.error);
                dead.push(letter);
            }
            // Timers the handlers registered at or before `up_to` fire in the next round.
        }
    }

    /// Elements of input `which` (1; a co-process function's second input is 2).
    fn elements(
        &mut self,
        which: u8,
        input: Batch,
        out: &mut Batch,
        dead: &mut DeadLetters,
    ) -> Result<(), OperatorError> {
        self.follow_deploys()?;
        let mut keys = Batch::with_capacity(input.len(), 0);
        let mut timestamps = Vec::with_capacity(input.len());
        {
            let mut scope = self.scope();
            let max = scope.max_parallelism;
            scope.keys.clear();
            for i in 0..input.len() {
                let Some(key) = input.key(i) else {
                    return Err(OperatorError::Failed {
                        operator: self.name.clone(),
                        message: "got a record without a key; `process` must follow key_by".into(),
                    });
                };
                keys.push(key);
                scope.keys.push((key_group(key, max), key.to_vec()));
                timestamps.push(input.timestamp(i).unwrap_or(NO_TIMESTAMP));
            }
            scope.phase = Phase::Elements;
            scope.selected = None;
        }
        let outcome = self.processor.process_elements(which, &input, &keys, &timestamps);
        self.scope().phase = Phase::Idle;
        let outcome = outcome.map_err(|e| self.plugin_error(e))?;
        self.emit(&input, &outcome, out, dead);
        self.maybe_flush()
    }

    /// The output of a call on `input`: each element's records carry its event time; its
    /// failures become dead letters carrying the element. The failures count towards the
    /// probation of a newly deployed version, which may roll it back (its failed elements
    /// stay dead letters: their state writes may not all have been undone, so running them
    /// again could apply them twice).
    fn emit(&self, input: &Batch, outcome: &plugin::TransformOutcome, out: &mut Batch, dead: &mut DeadLetters) {
        self.cell.report(self.generation, input.len() as u64, outcome.failures.len() as u64);
        let mut next = 0;
        for (i, &n) in outcome.counts.iter().enumerate() {
            let timestamp = input.timestamp(i);
            for j in next..next + n as usize {
                out.push_record(outcome.rows.value(j), RowMeta { key: None, timestamp });
            }
            next += n as usize;
        }
        for f in &outcome.failures {
            dead.push(DeadLetter::of_row(&self.name, f.kind.as_str(), f.message.clone(), input, f.index));
        }
    }

    fn maybe_flush(&mut self) -> Result<(), OperatorError> {
        if self.checkpointing {
            return Ok(());
        }
        let mut scope = self.scope();
        if scope.state.buffered_writes() >= FLUSH_AFTER_WRITES {
            scope
                .state
                .flush()
                .map_err(|e| OperatorError::Failed { operator: self.name.clone(), message: e.to_string() })?;
        }
        Ok(())
    }
}

impl Operator for ProcessOperator {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.elements(1, input, out, dead)
    }

    /// The second input of a co-process function (its `process_element2`).
    fn process_second(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.elements(2, input, out, dead)
    }

    fn process_broadcast(
        &mut self,
        input: Batch,
        out: &mut Batch,
        dead: &mut DeadLetters,
    ) -> Result<(), OperatorError> {
        self.follow_deploys()?;
        let timestamps: Vec<i64> = (0..input.len()).map(|i| input.timestamp(i).unwrap_or(NO_TIMESTAMP)).collect();
        {
            let mut scope = self.scope();
            scope.keys.clear();
            scope.selected = None;
            scope.phase = Phase::Broadcast;
        }
        let outcome = self.processor.process_broadcast(&input, &timestamps);
        self.scope().phase = Phase::Idle;
        let outcome = outcome.map_err(|e| self.plugin_error(e))?;
        self.emit(&input, &outcome, out, dead);
        self.maybe_flush()
    }

    fn on_watermark(
        &mut self,
        watermark: i64,
        out: &mut Batch,
        dead: &mut DeadLetters,
    ) -> Result<Option<i64>, OperatorError> {
        self.scope().watermark = Some(watermark);
        self.fire(TimeDomain::EventTime, watermark, out, dead)?;
        self.maybe_flush()?;
        Ok(Some(watermark))
    }

    fn next_processing_timer(&self) -> Option<i64> {
        self.scope().state.next_timer(TimeDomain::ProcessingTime)
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.fire(TimeDomain::ProcessingTime, now, out, dead)?;
        self.maybe_flush()
    }

    fn finish(&mut self, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        // A bounded input ends: processing-time timers due by now fire; later ones stay in
        // state for a restarted job (Flink drops them at the end of a bounded job).
        let now = (self.processing_time)();
        self.fire(TimeDomain::ProcessingTime, now, out, dead)?;
        let checkpointing = self.checkpointing;
        let mut scope = self.scope();
        // With checkpoints the last writes wait, sealed, for the job's last checkpoint.
        let result = if checkpointing { scope.state.seal(u64::MAX) } else { scope.state.flush() };
        result.map_err(|e| OperatorError::Failed { operator: self.name.clone(), message: e.to_string() })
    }

    fn snapshot(&mut self, id: u64) -> Result<Option<Vec<u8>>, OperatorError> {
        let mut scope = self.scope();
        scope
            .state
            .seal(id)
            .map_err(|e| OperatorError::Failed { operator: self.name.clone(), message: e.to_string() })?;
        Ok(None)
    }

    fn checkpoint_complete(&mut self, id: u64) -> Result<(), OperatorError> {
        // Sled's keys stay one checkpoint behind, so a damaged latest checkpoint can fall
        // back to the one before.
        let mut scope = self.scope();
        scope
            .state
            .apply_checkpoints(id.saturating_sub(1))
            .map_err(|e| OperatorError::Failed { operator: self.name.clone(), message: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{KeyGroupRange, StateConfig, StateStore};

    fn scope(store: &StateStore) -> ProcessScope {
        let states = [
            StateDescriptor::value("v"),
            StateDescriptor::list("l"),
            StateDescriptor::map("m"),
            StateDescriptor::broadcast_map("rules"),
        ];
        ProcessScope {
            operator: "p".into(),
            state: store.keyed("p", KeyGroupRange::all(128), &states).unwrap(),
            max_parallelism: 128,
            phase: Phase::Elements,
            keys: vec![(1, b"a".to_vec()), (2, b"b".to_vec())],
            selected: None,
            watermark: None,
            undo: None,
        }
    }

    #[test]
    fn calls_are_scoped_to_the_selected_key() {
        let store = StateStore::temporary(StateConfig::default()).unwrap();
        let mut s = scope(&store);
        assert!(s.value_get("v").unwrap_err().contains("no element selected"));
        s.select(0).unwrap();
        s.value_set("v", b"1").unwrap();
        s.select(1).unwrap();
        assert_eq!(s.value_get("v").unwrap(), None);
        s.value_set("v", b"2").unwrap();
        s.select(0).unwrap();
        assert_eq!(s.value_get("v").unwrap(), Some(b"1".to_vec()));
        assert!(s.select(2).is_err());
        assert!(s.value_get("nope").unwrap_err().contains("nope"));
    }

    #[test]
    fn rollback_undoes_every_write_of_the_call_and_commit_keeps_them() {
        let store = StateStore::temporary(StateConfig::default()).unwrap();
        let mut s = scope(&store);
        s.select(0).unwrap();
        s.value_set("v", b"before").unwrap();
        s.list_append("l", b"x").unwrap();
        s.map_put("m", b"k", b"old").unwrap();

        s.begin();
        s.value_set("v", b"during").unwrap();
        s.value_set("v", b"again").unwrap();
        s.list_append("l", b"y").unwrap();
        s.map_put("m", b"k", b"new").unwrap();
        s.map_put("m", b"k2", b"added").unwrap();
        s.select(1).unwrap();
        s.value_set("v", b"other key").unwrap();
        s.rollback();

        s.select(0).unwrap();
        assert_eq!(s.value_get("v").unwrap(), Some(b"before".to_vec()));
        assert_eq!(s.list_get("l").unwrap(), [b"x".to_vec()]);
        assert_eq!(s.map_entries("m").unwrap(), [(b"k".to_vec(), b"old".to_vec())]);
        s.select(1).unwrap();
        assert_eq!(s.value_get("v").unwrap(), None);

        s.begin();
        s.value_set("v", b"kept").unwrap();
        s.commit();
        s.rollback(); // nothing left to undo
        assert_eq!(s.value_get("v").unwrap(), Some(b"kept".to_vec()));
    }

    #[test]
    fn broadcast_state_is_written_only_from_the_broadcast_side() {
        let store = StateStore::temporary(StateConfig::default()).unwrap();
        let mut s = scope(&store);
        s.select(0).unwrap();
        let err = s.broadcast_put("rules", b"r", b"1").unwrap_err();
        assert!(err.contains("read-only"), "{err}");
        s.phase = Phase::Broadcast;
        s.broadcast_put("rules", b"r", b"1").unwrap();
        assert!(s.value_get("v").unwrap_err().contains("broadcast stream"));
        s.phase = Phase::Elements;
        assert_eq!(s.broadcast_get("rules", b"r").unwrap(), Some(b"1".to_vec()));
    }
}
