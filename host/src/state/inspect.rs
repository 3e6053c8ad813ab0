//! Reading what a database holds for one key, from outside the job (`weir state get`).
//!
//! The state registry in each operator's tree names its states and their kinds, so reading
//! needs neither the plugin nor the job's code. TTL is not known here: an expired value that
//! no flush has removed yet is shown.

use super::layout;
use super::{Entries, KeyGroupRange, StateDescriptor, StateError, StateKind, StateStore, TimeDomain};

/// What one state holds for the key (or, for broadcast state, for every key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredState {
    Value(Option<Vec<u8>>),
    List(Vec<Vec<u8>>),
    Map(Entries),
    Broadcast(Entries),
}

/// Everything an operator keeps for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyReport {
    pub key_group: u16,
    /// Each registered state, in registration order.
    pub states: Vec<(String, StoredState)>,
    /// The key's pending timers: (domain, time in ms).
    pub timers: Vec<(TimeDomain, i64)>,
}

const OPERATOR_TREE: &str = "operator/";

impl StateStore {
    /// The operators that have state in this database, by name.
    pub fn operators(&self) -> Vec<String> {
        let db = self.db();
        let mut names: Vec<String> = db
            .tree_names()
            .iter()
            .filter_map(|n| std::str::from_utf8(n).ok()?.strip_prefix(OPERATOR_TREE).map(str::to_string))
            .collect();
        names.sort();
        names
    }

    /// The states `operator` has registered (name and kind), in id order.
    pub fn registered_states(&self, operator: &str) -> Result<Vec<(String, StateKind)>, StateError> {
        let tree = self
            .db()
            .open_tree(format!("{OPERATOR_TREE}{operator}"))
            .map_err(StateError::storage(operator, "opening the operator's state"))?;
        let corrupt =
            || StateError::Corrupt { operator: operator.to_string(), detail: "a state registry entry".into() };
        let mut states = Vec::new();
        for item in tree.scan_prefix(layout::meta_states_prefix()) {
            let (key, value) = item.map_err(StateError::storage(operator, "reading the state registry"))?;
            let (name, kind, id) = layout::decode_meta_state(&key, &value).ok_or_else(corrupt)?;
            states.push((id, name.to_string(), StateKind::from_code(kind).ok_or_else(corrupt)?));
        }
        states.sort_by_key(|(id, ..)| *id);
        Ok(states.into_iter().map(|(_, name, kind)| (name, kind)).collect())
    }

    /// What `operator` keeps for `key` (MessagePack, as `key_by` makes keys) in a job with
    /// `max_parallelism` key groups. Broadcast state is the copy of the instance that the
    /// key's key group would start from.
    pub fn read_key(&self, operator: &str, key: &[u8], max_parallelism: u16) -> Result<KeyReport, StateError> {
        let registered = self.registered_states(operator)?;
        let descriptors: Vec<StateDescriptor> =
            registered.iter().map(|(name, kind)| StateDescriptor::new(name.clone(), *kind)).collect();
        let key_group = super::key_group(key, max_parallelism);
        let mut state = self.keyed(operator, KeyGroupRange::new(key_group, key_group + 1), &descriptors)?;
        state.set_current_key(key_group, key);
        let mut states = Vec::with_capacity(registered.len());
        for (name, kind) in registered {
            let stored = match kind {
                StateKind::Value => StoredState::Value(state.value_get(&name)?),
                StateKind::List => StoredState::List(state.list_get(&name)?),
                StateKind::Map => StoredState::Map(state.map_entries(&name)?),
                StateKind::BroadcastMap => StoredState::Broadcast(state.broadcast_entries(&name)?),
            };
            states.push((name, stored));
        }
        let mut timers = Vec::new();
        for domain in [TimeDomain::EventTime, TimeDomain::ProcessingTime] {
            for item in state.tree.scan_prefix(layout::timer_group_prefix(domain, key_group)) {
                let (entry, _) = item.map_err(StateError::storage(operator, "reading timers"))?;
                let corrupt = || StateError::Corrupt { operator: operator.to_string(), detail: "a timer key".into() };
                let (_, at_ms, timer_key, _) = layout::decode_timer(&entry).ok_or_else(corrupt)?;
                if timer_key == key {
                    timers.push((domain, at_ms));
                }
            }
        }
        Ok(KeyReport { key_group, states, timers })
    }
}
