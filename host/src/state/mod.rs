//! Keyed state on sled: value, list and map state per key, timers, and broadcast state.
//!
//! Flink users keep per-key state (`ValueState`, `ListState`, `MapState`), react to timers and
//! share rules through broadcast state. In Weir that state lives in the host, so it survives a
//! plugin upgrade and is covered by checkpoints; plugins reach it through WIT imports, which
//! call the API here.
//!
//! - [`StateStore`]: one per job, the sled database under the job's data directory.
//! - [`KeyedState`]: the state of one parallel instance of one operator: its key groups,
//!   its declared states, a byte-bounded read cache and the writes buffered since the last
//!   [`KeyedState::flush`].
//!
//! # Layout
//! One sled tree per operator; every entry starts with a tag byte and, for keyed state,
//! `key_group (u16 BE) | len | key | len | namespace | state id | suffix`, so a key group is
//! one contiguous range and a key can never see another key's entries (see `layout.rs` and
//! `docs/decisions/0007-keyed-state-layout.md`).
//!
//! # Writes and reads
//! Writes go to an in-memory buffer until [`KeyedState::flush`], which applies them to sled
//! atomically (one batch, or a redo record and batches of 1 000: see `flush.rs`) and syncs the
//! database: the checkpoint of an epoch is one flush. Reads see the buffer first, then the
//! cache, then sled. A working set larger than the cache is correct, only slower.
//!
//! ```no_run
//! use weir::state::{KeyGroupRange, StateConfig, StateDescriptor, StateStore};
//!
//! # fn main() -> Result<(), weir::state::StateError> {
//! let store = StateStore::open("/tmp/job/state".as_ref(), StateConfig::default())?;
//! let mut state = store.keyed("count", KeyGroupRange::all(128), &[StateDescriptor::value("count")])?;
//! state.set_current_key(7, b"alice");
//! let n = state.value_get("count")?.map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])));
//! state.value_set("count", &(n + 1).to_be_bytes())?;
//! state.flush()?; // at a checkpoint barrier
//! # Ok(()) }
//! ```

mod broadcast;
mod buffer;
mod cache;
mod error;
mod flush;
mod inspect;
mod key_group;
mod keyed;
mod layout;
mod store;
mod timers;
mod ttl;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use error::StateError;
pub use inspect::{KeyReport, StoredState};
pub use key_group::{DEFAULT_MAX_PARALLELISM, instance_for_key_group, key_group};
pub use keyed::KeyedState;
pub use store::{ExportedTree, StateStore, copy_database};
pub use ttl::{Clock, ManualClock, SystemClock};

/// The entries of a map or broadcast state, `(user key, value)`, in user key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// What a named state holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateKind {
    /// One value per key (Flink's `ValueState`).
    Value,
    /// An append-only list per key (Flink's `ListState`).
    List,
    /// A map per key (Flink's `MapState`).
    Map,
    /// A map that is not keyed: written by the broadcast side, read by the keyed side; each
    /// parallel instance keeps its own copy (Flink's `BroadcastState`).
    BroadcastMap,
}

impl StateKind {
    pub(crate) fn code(self) -> u8 {
        match self {
            StateKind::Value => 1,
            StateKind::List => 2,
            StateKind::Map => 3,
            StateKind::BroadcastMap => 4,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => StateKind::Value,
            2 => StateKind::List,
            3 => StateKind::Map,
            4 => StateKind::BroadcastMap,
            _ => return None,
        })
    }
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateKind::Value => "value",
            StateKind::List => "list",
            StateKind::Map => "map",
            StateKind::BroadcastMap => "broadcast map",
        })
    }
}

/// A state an operator declares before it uses it (the plugin's `describe()` lists them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDescriptor {
    pub name: String,
    pub kind: StateKind,
    /// Time to live since the last write (Flink's `StateTtlConfig` with `OnCreateAndWrite`
    /// and `NeverReturnExpired`), in processing time. List and map entries expire one by one.
    /// Not allowed on broadcast state.
    pub ttl: Option<Duration>,
}

impl StateDescriptor {
    pub fn new(name: impl Into<String>, kind: StateKind) -> Self {
        Self { name: name.into(), kind, ttl: None }
    }

    pub fn value(name: impl Into<String>) -> Self {
        Self::new(name, StateKind::Value)
    }

    pub fn list(name: impl Into<String>) -> Self {
        Self::new(name, StateKind::List)
    }

    pub fn map(name: impl Into<String>) -> Self {
        Self::new(name, StateKind::Map)
    }

    pub fn broadcast_map(name: impl Into<String>) -> Self {
        Self::new(name, StateKind::BroadcastMap)
    }

    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// The clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeDomain {
    /// Fires when the operator's watermark passes the timer's time.
    EventTime,
    /// Fires when the wall clock passes the timer's time.
    ProcessingTime,
}

impl TimeDomain {
    pub(crate) fn code(self) -> u8 {
        match self {
            TimeDomain::EventTime => 0,
            TimeDomain::ProcessingTime => 1,
        }
    }

    pub(crate) fn index(self) -> usize {
        usize::from(self.code())
    }
}

/// A due timer, as [`KeyedState::pop_due_timers`] returns it. Timers order by time, then key
/// group, key and namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timer {
    pub at_ms: i64,
    pub key_group: u16,
    pub key: Vec<u8>,
    /// Empty for process functions; windows will put the window here.
    pub namespace: Vec<u8>,
}

/// The key groups `start..end` one parallel instance owns (Flink's `KeyGroupRange`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyGroupRange {
    pub start: u16,
    /// Exclusive.
    pub end: u16,
}

impl KeyGroupRange {
    pub fn new(start: u16, end: u16) -> Self {
        Self { start, end: end.max(start) }
    }

    /// Every key group: one instance owns them all.
    pub fn all(max_parallelism: u16) -> Self {
        Self::new(0, max_parallelism.max(1))
    }

    /// The key groups of instance `index` out of `parallelism`: exactly those for which
    /// [`instance_for_key_group`] returns `index` (Flink's
    /// `computeKeyGroupRangeForOperatorIndex`).
    pub fn for_instance(index: usize, parallelism: usize, max_parallelism: u16) -> Self {
        let max = usize::from(max_parallelism.max(1));
        let parallelism = parallelism.max(1);
        let bound = |i: usize| (i * max).div_ceil(parallelism).min(max) as u16;
        Self::new(bound(index), bound(index + 1))
    }

    pub fn contains(&self, key_group: u16) -> bool {
        self.start <= key_group && key_group < self.end
    }

    pub fn len(&self) -> usize {
        usize::from(self.end - self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn iter(&self) -> std::ops::Range<u16> {
        self.start..self.end
    }
}

impl fmt::Display for KeyGroupRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// How a [`StateStore`] uses memory and time.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// Bytes of the read cache of each [`KeyedState`] (each parallel operator instance has its
    /// own cache). Default 64 MiB; 0 turns the cache off.
    pub cache_bytes: usize,
    /// Bytes of sled's own page cache, shared by the whole database. Default 64 MiB (sled's
    /// default is 1 GiB).
    pub sled_cache_bytes: u64,
    /// Entries checked for expiry (and removed) by each flush, resuming where the last one
    /// stopped, like Flink's incremental TTL cleanup. Default 10 000; 0 turns it off.
    pub ttl_cleanup_per_flush: usize,
    /// Processing time for TTL; tests inject a [`ManualClock`].
    pub clock: Arc<dyn Clock>,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            cache_bytes: 64 << 20,
            sled_cache_bytes: 64 << 20,
            ttl_cleanup_per_flush: 10_000,
            clock: Arc::new(SystemClock),
        }
    }
}

/// Memory and storage figures of one [`KeyedState`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateStats {
    pub cached_entries: usize,
    /// Estimated bytes held by the cache (keys, values and per-entry overhead).
    pub cached_bytes: usize,
    pub cache_capacity_bytes: usize,
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Writes (and deletions) waiting for the next flush.
    pub buffered_writes: usize,
    /// Estimated bytes held by those writes.
    pub buffered_bytes: usize,
    /// Size of the whole job database on disk, if sled could tell.
    pub disk_bytes: Option<u64>,
}
