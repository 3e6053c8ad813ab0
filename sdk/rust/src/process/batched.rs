//! Value state that travels with the call (ABI 0.2): the host reads every declared value
//! state of a call's keys into `key-state` before the call; the function reads and writes
//! this copy, and the writes go back with the output as `state-write`s.
//!
//! [`Batched`] wraps the host's imports as a [`ProcessHost`]: value calls are served from the
//! copy (no import), every other call goes to the imports. Inputs of one key share a slot,
//! so a later element of the same key in the call sees an earlier one's writes.

use std::cell::{Cell, RefCell};

use super::TimeDomain;
use super::host::{Entries, ProcessHost};
use super::state::{StateDecl, StateKind};

/// The key-state of a call, as the host sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyState {
    /// Input `i` has key slot `slots[i]`.
    pub slots: Vec<u32>,
    /// `values[slot * states + s]`: the value of declared state `s` of the slot's key.
    pub values: Vec<Option<Vec<u8>>>,
}

/// A value-state write of the call: `None` clears the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateWrite {
    pub slot: u32,
    pub state: u32,
    pub value: Option<Vec<u8>>,
}

/// The process imports, with value state served from the call's key-state.
pub(crate) struct Batched<'h> {
    inner: &'h dyn ProcessHost,
    states: &'static [StateDecl],
    slots: Vec<u32>,
    values: RefCell<Vec<Option<Vec<u8>>>>,
    current: Cell<Option<u32>>,
    writes: RefCell<Vec<StateWrite>>,
}

impl<'h> Batched<'h> {
    /// Checks that `state` describes `inputs` inputs of a function with `states`.
    pub fn new(
        inner: &'h dyn ProcessHost,
        states: &'static [StateDecl],
        inputs: usize,
        state: KeyState,
    ) -> Result<Self, String> {
        if state.slots.len() != inputs {
            return Err(format!("key-state has {} slots for {inputs} inputs", state.slots.len()));
        }
        let slots_given = state.values.len().checked_div(states.len()).unwrap_or(0);
        if !states.is_empty() && !state.values.len().is_multiple_of(states.len()) {
            return Err(format!("key-state has {} values for {} declared states", state.values.len(), states.len()));
        }
        if let Some(slot) = state.slots.iter().find(|&&s| !states.is_empty() && s as usize >= slots_given) {
            return Err(format!("key slot {slot} of {slots_given}"));
        }
        Ok(Batched {
            inner,
            states,
            slots: state.slots,
            values: RefCell::new(state.values),
            current: Cell::new(None),
            writes: RefCell::new(Vec::new()),
        })
    }

    /// The writes of the call, the last per value only.
    pub fn into_writes(self) -> Vec<StateWrite> {
        let mut writes = self.writes.into_inner();
        let mut seen = std::collections::HashSet::new();
        writes.reverse();
        writes.retain(|w| seen.insert((w.slot, w.state)));
        writes.reverse();
        writes
    }

    /// The index of value state `name` and the selected slot.
    fn locate(&self, name: &str) -> Result<(usize, u32), String> {
        let index = self.states.iter().position(|d| d.name() == name && d.kind() == StateKind::Value);
        let Some(index) = index else {
            let declared: Vec<&str> = self.states.iter().map(|d| d.name()).collect();
            return Err(match self.states.iter().find(|d| d.name() == name) {
                Some(decl) => format!("state `{name}` is declared as {} state, not value state", decl.kind()),
                None => format!(
                    "used state `{name}`, which it did not declare (declared: {}); declare it in STATES",
                    if declared.is_empty() { "none".to_string() } else { declared.join(", ") }
                ),
            });
        };
        let slot = self.current.get().ok_or("no element selected: keyed state needs a key")?;
        Ok((index, slot))
    }

    fn write(&self, name: &str, value: Option<&[u8]>) -> Result<(), String> {
        let (index, slot) = self.locate(name)?;
        self.values.borrow_mut()[slot as usize * self.states.len() + index] = value.map(<[u8]>::to_vec);
        self.writes.borrow_mut().push(StateWrite { slot, state: index as u32, value: value.map(<[u8]>::to_vec) });
        Ok(())
    }
}

impl ProcessHost for Batched<'_> {
    fn select(&self, index: u32) {
        self.current.set(self.slots.get(index as usize).copied());
        self.inner.select(index);
    }

    fn value_get(&self, state: &str) -> Result<Option<Vec<u8>>, String> {
        let (index, slot) = self.locate(state)?;
        Ok(self.values.borrow()[slot as usize * self.states.len() + index].clone())
    }

    fn value_set(&self, state: &str, value: &[u8]) -> Result<(), String> {
        self.write(state, Some(value))
    }

    fn value_clear(&self, state: &str) -> Result<(), String> {
        self.write(state, None)
    }

    fn list_get(&self, state: &str) -> Result<Vec<Vec<u8>>, String> {
        self.inner.list_get(state)
    }
    fn list_append(&self, state: &str, value: &[u8]) -> Result<(), String> {
        self.inner.list_append(state, value)
    }
    fn list_clear(&self, state: &str) -> Result<(), String> {
        self.inner.list_clear(state)
    }
    fn map_get(&self, state: &str, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        self.inner.map_get(state, key)
    }
    fn map_put(&self, state: &str, key: &[u8], value: &[u8]) -> Result<(), String> {
        self.inner.map_put(state, key, value)
    }
    fn map_remove(&self, state: &str, key: &[u8]) -> Result<(), String> {
        self.inner.map_remove(state, key)
    }
    fn map_contains(&self, state: &str, key: &[u8]) -> Result<bool, String> {
        self.inner.map_contains(state, key)
    }
    fn map_entries(&self, state: &str) -> Result<Entries, String> {
        self.inner.map_entries(state)
    }
    fn broadcast_get(&self, state: &str, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        self.inner.broadcast_get(state, key)
    }
    fn broadcast_put(&self, state: &str, key: &[u8], value: &[u8]) -> Result<(), String> {
        self.inner.broadcast_put(state, key, value)
    }
    fn broadcast_remove(&self, state: &str, key: &[u8]) -> Result<(), String> {
        self.inner.broadcast_remove(state, key)
    }
    fn broadcast_entries(&self, state: &str) -> Result<Entries, String> {
        self.inner.broadcast_entries(state)
    }
    fn current_watermark(&self) -> Option<i64> {
        self.inner.current_watermark()
    }
    fn current_processing_time(&self) -> i64 {
        self.inner.current_processing_time()
    }
    fn register_timer(&self, domain: TimeDomain, at_ms: i64) {
        self.inner.register_timer(domain, at_ms)
    }
    fn delete_timer(&self, domain: TimeDomain, at_ms: i64) {
        self.inner.delete_timer(domain, at_ms)
    }
}
