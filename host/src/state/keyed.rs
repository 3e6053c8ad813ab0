//! [`KeyedState`]: value, list and map state of the current key, and the read path (buffer,
//! cache, sled) and write path (the buffer) that every kind of state goes through.

use std::collections::HashMap;
use std::sync::Arc;

use super::buffer::{Merged, WriteBuffer};
use super::cache::{ByteLru, Cached};
use super::layout;
use super::timers::TimerIndex;
use super::ttl::{self, Clock};
use super::{Entries, KeyGroupRange, StateConfig, StateError, StateKind, StateStats};

/// A declared state, resolved: its id in the keys, and its TTL in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StateInfo {
    pub id: u16,
    pub kind: StateKind,
    pub ttl_ms: Option<i64>,
}

/// The key that calls refer to, and the byte prefix of its entries.
#[derive(Default)]
pub(super) struct CurrentKey {
    pub set: bool,
    pub key_group: u16,
    pub key: Vec<u8>,
    pub namespace: Vec<u8>,
    /// `layout::push_keyed_prefix` of the three above.
    pub prefix: Vec<u8>,
}

impl CurrentKey {
    fn rebuild_prefix(&mut self) {
        self.prefix.clear();
        layout::push_keyed_prefix(&mut self.prefix, self.key_group, &self.key, &self.namespace);
    }
}

/// The state of one parallel instance of one operator: the key groups it owns, its declared
/// states, its timers and broadcast state, a read cache bounded in bytes, and the writes
/// buffered since the last [`KeyedState::flush`].
///
/// One per task: it is `Send` but not shared; two instances of an operator own disjoint key
/// groups and share nothing but the sled tree.
pub struct KeyedState {
    pub(super) operator: String,
    pub(super) db: sled::Db,
    pub(super) tree: sled::Tree,
    pub(super) key_groups: KeyGroupRange,
    /// Few states per operator: a linear search by name beats hashing the name.
    states: Vec<(String, StateInfo)>,
    pub(super) by_id: HashMap<u16, StateInfo>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) cache: ByteLru,
    pub(super) buffer: WriteBuffer,
    pub(super) current: CurrentKey,
    /// Reused for the key of each call, so a read allocates nothing until it misses.
    scratch: Vec<u8>,
    pub(super) timers: TimerIndex,
    /// Where the next flush's TTL cleanup resumes.
    pub(super) ttl_cursor: Option<Vec<u8>>,
    pub(super) ttl_cleanup_per_flush: usize,
    /// Epochs sealed at checkpoint barriers, oldest first, not yet in sled's keys.
    pub(super) sealed: std::collections::VecDeque<super::flush::Sealed>,
}

type Result<T> = std::result::Result<T, StateError>;

impl KeyedState {
    pub(super) fn new(
        operator: &str,
        db: sled::Db,
        tree: sled::Tree,
        key_groups: KeyGroupRange,
        states: Vec<(String, StateInfo)>,
        config: &StateConfig,
    ) -> Result<Self> {
        let timers = TimerIndex::load(&tree, key_groups)
            .map_err(|e| StateError::Storage { operator: operator.to_string(), action: "loading timers", source: e })?
            .ok_or_else(|| StateError::Corrupt { operator: operator.to_string(), detail: "a timer key".into() })?;
        Ok(Self {
            operator: operator.to_string(),
            db,
            tree,
            key_groups,
            by_id: states.iter().map(|(_, info)| (info.id, *info)).collect(),
            states,
            clock: config.clock.clone(),
            cache: ByteLru::new(config.cache_bytes),
            buffer: WriteBuffer::default(),
            current: CurrentKey::default(),
            scratch: Vec::new(),
            timers,
            ttl_cursor: None,
            ttl_cleanup_per_flush: config.ttl_cleanup_per_flush,
            sealed: Default::default(),
        })
    }

    /// Replaces the declared states (see [`KeyedState::declare`]).
    pub(super) fn set_states(&mut self, states: Vec<(String, StateInfo)>) {
        self.by_id = states.iter().map(|(_, info)| (info.id, *info)).collect();
        self.states = states;
    }

    /// The operator this state belongs to.
    pub fn operator(&self) -> &str {
        &self.operator
    }

    /// The key groups this instance owns.
    pub fn key_groups(&self) -> KeyGroupRange {
        self.key_groups
    }

    /// Calls below refer to this key, until the next call; the namespace goes back to empty.
    /// `key_group` is the key's group ([`crate::state::key_group`]), computed by the
    /// caller, who has it already; it must be one of this instance's key groups.
    pub fn set_current_key(&mut self, key_group: u16, key: &[u8]) {
        let c = &mut self.current;
        c.set = true;
        c.key_group = key_group;
        c.key.clear();
        c.key.extend_from_slice(key);
        c.namespace.clear();
        c.rebuild_prefix();
    }

    /// Scopes the current key's state and timers further, e.g. to one window. Process
    /// functions leave it empty.
    pub fn set_current_namespace(&mut self, namespace: &[u8]) {
        let c = &mut self.current;
        c.namespace.clear();
        c.namespace.extend_from_slice(namespace);
        c.rebuild_prefix();
    }

    /// The current key group and key, if one was set.
    pub fn current_key(&self) -> Option<(u16, &[u8])> {
        self.current.set.then_some((self.current.key_group, self.current.key.as_slice()))
    }

    // --- value state ----------------------------------------------------------------------

    pub fn value_get(&mut self, state: &str) -> Result<Option<Vec<u8>>> {
        let info = self.state(state, StateKind::Value)?;
        let key = self.keyed_key(state, info, &[])?;
        let found = self.read_point(&key, info.ttl_ms);
        self.scratch = key;
        found
    }

    pub fn value_set(&mut self, state: &str, value: &[u8]) -> Result<()> {
        let info = self.state(state, StateKind::Value)?;
        let key = self.keyed_key(state, info, &[])?;
        let stored = ttl::encode(value, self.stamp(info));
        self.write(key, Some(stored), true);
        Ok(())
    }

    pub fn value_clear(&mut self, state: &str) -> Result<()> {
        let info = self.state(state, StateKind::Value)?;
        let key = self.keyed_key(state, info, &[])?;
        self.write(key, None, true);
        Ok(())
    }

    // --- list state -----------------------------------------------------------------------

    /// The list's elements in append order (expired ones left out, and deleted).
    pub fn list_get(&mut self, state: &str) -> Result<Vec<Vec<u8>>> {
        let info = self.state(state, StateKind::List)?;
        let base = self.keyed_key(state, info, &[])?;
        let live = self.scan_live(&base, info, false);
        self.scratch = base;
        Ok(live?.into_iter().map(|(_, v)| v).collect())
    }

    /// Appends one element: one new entry (`prefix | seq`), the list is not rewritten.
    pub fn list_append(&mut self, state: &str, value: &[u8]) -> Result<()> {
        let info = self.state(state, StateKind::List)?;
        let base = self.keyed_key(state, info, &[])?;
        let seq = match self.cache.get(&base) {
            Some(Cached::ListNext(next)) => *next,
            _ => self.list_next_seq(&base)?,
        };
        let mut entry = base.clone();
        layout::push_seq(&mut entry, seq);
        self.cache.insert(base, Cached::ListNext(seq + 1));
        let stored = ttl::encode(value, self.stamp(info));
        self.write(entry, Some(stored), false);
        Ok(())
    }

    pub fn list_clear(&mut self, state: &str) -> Result<()> {
        let info = self.state(state, StateKind::List)?;
        let base = self.keyed_key(state, info, &[])?;
        self.delete_range(&base, false)?;
        self.scratch = base;
        Ok(())
    }

    /// One past the highest sequence number sled or the buffer has for the list (deleted
    /// ones included: numbers only need to grow, not to be dense).
    fn list_next_seq(&self, base: &[u8]) -> Result<u64> {
        let end = layout::prefix_end(base);
        let disk = match &end {
            Some(end) => self.tree.range::<&[u8], _>(base..end.as_slice()).next_back(),
            None => self.tree.range::<&[u8], _>(base..).next_back(),
        };
        let disk = disk.transpose().map_err(StateError::storage(&self.operator, "reading a list"))?;
        let last_disk = disk.map(|(k, _)| self.seq_of(&k)).transpose()?;
        let last_buffered =
            self.buffer.range(base, end.as_deref()).next_back().map(|(k, _)| self.seq_of(k)).transpose()?;
        Ok(last_disk.max(last_buffered).map_or(0, |last| last + 1))
    }

    fn seq_of(&self, entry: &[u8]) -> Result<u64> {
        layout::decode_seq(entry).ok_or_else(|| self.corrupt("a list entry key"))
    }

    // --- map state ------------------------------------------------------------------------

    pub fn map_get(&mut self, state: &str, user_key: &[u8]) -> Result<Option<Vec<u8>>> {
        let info = self.state(state, StateKind::Map)?;
        let key = self.keyed_key(state, info, user_key)?;
        let found = self.read_point(&key, info.ttl_ms);
        self.scratch = key;
        found
    }

    pub fn map_put(&mut self, state: &str, user_key: &[u8], value: &[u8]) -> Result<()> {
        let info = self.state(state, StateKind::Map)?;
        let key = self.keyed_key(state, info, user_key)?;
        let stored = ttl::encode(value, self.stamp(info));
        self.write(key, Some(stored), true);
        Ok(())
    }

    pub fn map_remove(&mut self, state: &str, user_key: &[u8]) -> Result<()> {
        let info = self.state(state, StateKind::Map)?;
        let key = self.keyed_key(state, info, user_key)?;
        self.write(key, None, true);
        Ok(())
    }

    pub fn map_contains(&mut self, state: &str, user_key: &[u8]) -> Result<bool> {
        Ok(self.map_get(state, user_key)?.is_some())
    }

    /// Every entry of the map, ordered by user key bytes (expired ones left out, and deleted).
    pub fn map_entries(&mut self, state: &str) -> Result<Entries> {
        let info = self.state(state, StateKind::Map)?;
        let base = self.keyed_key(state, info, &[])?;
        let live = self.scan_live(&base, info, true);
        let prefix_len = base.len();
        self.scratch = base;
        Ok(live?.into_iter().map(|(mut k, v)| (k.split_off(prefix_len), v)).collect())
    }

    pub fn map_clear(&mut self, state: &str) -> Result<()> {
        let info = self.state(state, StateKind::Map)?;
        let base = self.keyed_key(state, info, &[])?;
        self.delete_range(&base, true)?;
        self.scratch = base;
        Ok(())
    }

    // --- figures --------------------------------------------------------------------------

    /// Memory and disk figures. `disk_bytes` asks sled, which reads file sizes.
    pub fn stats(&self) -> StateStats {
        StateStats {
            cached_entries: self.cache.len(),
            cached_bytes: self.cache.bytes(),
            cache_capacity_bytes: self.cache.capacity(),
            cache_hits: self.cache.hits,
            cache_misses: self.cache.misses,
            buffered_writes: self.buffer.len() + self.timers.popped_len(),
            buffered_bytes: self.buffer.bytes() + self.timers.popped_bytes(),
            disk_bytes: self.db.size_on_disk().ok(),
        }
    }

    /// Writes (and deletions) waiting for the next flush: `stats().buffered_writes`, without
    /// asking sled for its size on disk, for operators that check it after every batch.
    pub fn buffered_writes(&self) -> usize {
        self.buffer.len() + self.timers.popped_len()
    }

    // --- the read and write paths -----------------------------------------------------------

    /// The declared state `name`, checked to be of kind `used_as`.
    pub(super) fn state(&self, name: &str, used_as: StateKind) -> Result<StateInfo> {
        match self.states.iter().find(|(n, _)| n == name) {
            Some((_, info)) if info.kind == used_as => Ok(*info),
            Some((_, info)) => Err(StateError::WrongKind {
                operator: self.operator.clone(),
                name: name.to_string(),
                declared: info.kind,
                used_as,
            }),
            None => Err(StateError::UndeclaredState {
                operator: self.operator.clone(),
                name: name.to_string(),
                declared: self.states.iter().map(|(n, _)| n.clone()).collect(),
            }),
        }
    }

    /// Checks that there is a current key this instance owns.
    pub(super) fn check_current(&self, what: impl FnOnce() -> String) -> Result<()> {
        if !self.current.set {
            return Err(StateError::NoCurrentKey { operator: self.operator.clone(), what: what() });
        }
        if !self.key_groups.contains(self.current.key_group) {
            return Err(StateError::ForeignKeyGroup {
                operator: self.operator.clone(),
                key_group: self.current.key_group,
                owned: self.key_groups,
            });
        }
        Ok(())
    }

    /// `prefix | state id | suffix` of the current key, in the reused scratch buffer (give it
    /// back with `self.scratch = key` when it is not moved into the write buffer).
    fn keyed_key(&mut self, name: &str, info: StateInfo, suffix: &[u8]) -> Result<Vec<u8>> {
        self.check_current(|| format!("state `{name}`"))?;
        let mut key = std::mem::take(&mut self.scratch);
        key.clear();
        key.extend_from_slice(&self.current.prefix);
        layout::push_state_id(&mut key, info.id);
        key.extend_from_slice(suffix);
        Ok(key)
    }

    fn stamp(&self, info: StateInfo) -> Option<i64> {
        info.ttl_ms.map(|_| self.clock.now_ms())
    }

    /// The user bytes of a point entry (value, map or broadcast entry): from the buffer, else
    /// the cache, else sled (then cached). An expired entry reads as absent and is deleted.
    pub(super) fn read_point(&mut self, key: &[u8], ttl_ms: Option<i64>) -> Result<Option<Vec<u8>>> {
        let now = if ttl_ms.is_some() { self.clock.now_ms() } else { 0 };
        let found = if let Some(pending) = self.buffer.get(key) {
            live_value(pending.value.as_deref(), ttl_ms, now)
        } else if let Some(Cached::Stored(stored)) = self.cache.get(key) {
            live_value(stored.as_deref(), ttl_ms, now)
        } else {
            let stored = self.tree.get(key).map_err(StateError::storage(&self.operator, "reading state"))?;
            let stored = stored.map(|v| v.to_vec());
            let found = live_value(stored.as_deref(), ttl_ms, now);
            self.cache.insert(key.to_vec(), Cached::Stored(stored));
            found
        };
        match found {
            Some(Live::Value(v)) => Ok(Some(v)),
            Some(Live::Expired) => {
                self.write(key.to_vec(), None, true);
                Ok(None)
            }
            None => Ok(None),
            Some(Live::Corrupt) => Err(self.corrupt("a value header")),
        }
    }

    /// Buffers a write (`None`: a deletion). A point entry leaves the cache until the flush
    /// puts it back: the buffer answers for it meanwhile.
    pub(super) fn write(&mut self, key: Vec<u8>, stored: Option<Vec<u8>>, point: bool) {
        if point {
            self.cache.remove(&key);
        }
        self.buffer.put(key, stored, point);
    }

    /// The live entries under `prefix` as `(entry key, user bytes)`; expired ones are deleted.
    pub(super) fn scan_live(&mut self, prefix: &[u8], info: StateInfo, point: bool) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let entries = self.scan(prefix)?;
        let now = if info.ttl_ms.is_some() { self.clock.now_ms() } else { 0 };
        let mut live = Vec::with_capacity(entries.len());
        let mut expired = Vec::new();
        for (key, mut stored) in entries {
            let (written, value) = ttl::decode(&stored).ok_or_else(|| self.corrupt("a value header"))?;
            if ttl::expired(written, info.ttl_ms, now) {
                expired.push(key);
            } else {
                let header = stored.len() - value.len();
                stored.drain(..header);
                live.push((key, stored));
            }
        }
        for key in expired {
            self.write(key, None, point);
        }
        Ok(live)
    }

    /// Every entry under `prefix`, buffer merged over sled, as stored.
    pub(super) fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let end = layout::prefix_end(prefix);
        Merged::new(&self.tree, &self.buffer, prefix, end.as_deref())
            .collect::<std::result::Result<_, _>>()
            .map_err(StateError::storage(&self.operator, "reading state"))
    }

    fn delete_range(&mut self, prefix: &[u8], point: bool) -> Result<()> {
        for (key, _) in self.scan(prefix)? {
            self.write(key, None, point);
        }
        Ok(())
    }

    pub(super) fn corrupt(&self, what: &str) -> StateError {
        StateError::Corrupt { operator: self.operator.clone(), detail: format!("{what} cannot be decoded") }
    }

    /// Test hook: the buffered writes, to check what a flush would write.
    #[cfg(test)]
    pub(super) fn buffered(&self) -> std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        self.buffer.range(&[], None).map(|(k, p)| (k.clone(), p.value.clone())).collect()
    }
}

impl Drop for KeyedState {
    fn drop(&mut self) {
        let unflushed = self.buffer.len() + self.timers.popped_len();
        if unflushed > 0 {
            tracing::debug!(operator = %self.operator, unflushed, "keyed state dropped with unflushed writes");
        }
    }
}

enum Live {
    Value(Vec<u8>),
    Expired,
    Corrupt,
}

/// What a stored point entry reads as: `None` when absent.
fn live_value(stored: Option<&[u8]>, ttl_ms: Option<i64>, now_ms: i64) -> Option<Live> {
    let stored = stored?;
    Some(match ttl::decode(stored) {
        None => Live::Corrupt,
        Some((written, _)) if ttl::expired(written, ttl_ms, now_ms) => Live::Expired,
        Some((_, value)) => Live::Value(value.to_vec()),
    })
}
