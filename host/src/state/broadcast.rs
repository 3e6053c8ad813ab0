//! Broadcast state: a map that is not keyed, written by the broadcast side of a connected
//! stream and read by the keyed side. As in Flink, every parallel instance keeps its own copy
//! (they all see the same broadcast elements, so the copies agree) and no instance reads
//! another's: the keyed side needs no coordination.
//!
//! An instance's copy is the entries `b | instance | state id | user key`, where the instance
//! is named by the first key group it owns. A job restored at another parallelism has
//! instances with no copy of their own: each starts from the copy of the lowest instance of
//! the previous run, as it was when this process first opened the operator (before any
//! instance of this run could change it), and the broadcast stream replays from there.

use super::keyed::KeyedState;
use super::layout;
use super::ttl;
use super::{Entries, StateError, StateKind};

/// The broadcast entries of one instance of a previous run: `(state id | user key, stored)`.
pub(super) type BroadcastCopy = Vec<(Vec<u8>, Vec<u8>)>;

/// The copy of the lowest instance that has one, read when the operator is first opened.
pub(super) fn read_restored_copy(tree: &sled::Tree) -> Result<Option<(u16, BroadcastCopy)>, sled::Error> {
    let Some((first, _)) = tree.scan_prefix([layout::BROADCAST]).next().transpose()? else {
        return Ok(None);
    };
    let Some(instance) = layout::decode_broadcast_instance(&first) else { return Ok(None) };
    let prefix = layout::broadcast_instance_prefix(instance);
    let entries = tree
        .scan_prefix(&prefix)
        .map(|item| item.map(|(k, v)| (k[prefix.len()..].to_vec(), v.to_vec())))
        .collect::<Result<_, _>>()?;
    Ok(Some((instance, entries)))
}

impl KeyedState {
    /// This instance's name in broadcast keys.
    fn instance(&self) -> u16 {
        self.key_groups.start
    }

    fn broadcast_key(&self, state: &str, user_key: &[u8]) -> Result<Vec<u8>, StateError> {
        let info = self.state(state, StateKind::BroadcastMap)?;
        let mut key = layout::broadcast_state_prefix(self.instance(), info.id);
        key.extend_from_slice(user_key);
        Ok(key)
    }

    pub fn broadcast_get(&mut self, state: &str, user_key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let key = self.broadcast_key(state, user_key)?;
        self.read_point(&key, None)
    }

    pub fn broadcast_contains(&mut self, state: &str, user_key: &[u8]) -> Result<bool, StateError> {
        Ok(self.broadcast_get(state, user_key)?.is_some())
    }

    /// Writes an entry of this instance's copy (the broadcast side calls it in every instance).
    pub fn broadcast_put(&mut self, state: &str, user_key: &[u8], value: &[u8]) -> Result<(), StateError> {
        let key = self.broadcast_key(state, user_key)?;
        self.write(key, Some(ttl::encode(value, None)), true);
        Ok(())
    }

    pub fn broadcast_remove(&mut self, state: &str, user_key: &[u8]) -> Result<(), StateError> {
        let key = self.broadcast_key(state, user_key)?;
        self.write(key, None, true);
        Ok(())
    }

    /// Every entry of this instance's copy, ordered by user key bytes.
    pub fn broadcast_entries(&mut self, state: &str) -> Result<Entries, StateError> {
        let info = self.state(state, StateKind::BroadcastMap)?;
        let prefix = layout::broadcast_state_prefix(self.instance(), info.id);
        let live = self.scan_live(&prefix, info, true)?;
        Ok(live.into_iter().map(|(mut k, v)| (k.split_off(prefix.len()), v)).collect())
    }

    /// Starts this instance from a previous run's copy if it has none of its own (a rescaled
    /// job). The copy is buffered like any write, so it is kept by the next flush.
    pub(super) fn adopt_broadcast(&mut self, restored: Option<&(u16, BroadcastCopy)>) -> Result<(), StateError> {
        let Some((from, entries)) = restored else { return Ok(()) };
        let me = self.instance();
        if *from == me {
            return Ok(());
        }
        let own = layout::broadcast_instance_prefix(me);
        let has_own = self
            .tree
            .scan_prefix(&own)
            .next()
            .transpose()
            .map_err(StateError::storage(&self.operator, "reading broadcast state"))?
            .is_some();
        if has_own {
            return Ok(());
        }
        tracing::info!(operator = %self.operator, from, to = me, entries = entries.len(), "broadcast state copied to a new instance");
        for (rest, stored) in entries {
            let mut key = own.clone();
            key.extend_from_slice(rest);
            self.write(key, Some(stored.clone()), true);
        }
        Ok(())
    }
}
