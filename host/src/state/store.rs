//! [`StateStore`]: a job's sled database, and the registry of each operator's states.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::broadcast::{self, BroadcastCopy};
use super::flush;
use super::keyed::{KeyedState, StateInfo};
use super::layout;
use super::ttl;
use super::{KeyGroupRange, StateConfig, StateDescriptor, StateError, StateKind};

/// One operator's tree as a savepoint carries it: its name and its `(key, value)` entries.
pub type ExportedTree = (String, Vec<(Vec<u8>, Vec<u8>)>);

/// A job's keyed state: one sled database with one tree per operator. Cheap to clone (the
/// clones share the database); [`StateStore::keyed`] gives each parallel operator instance
/// its own [`KeyedState`].
#[derive(Clone)]
pub struct StateStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    path: PathBuf,
    config: StateConfig,
    /// The checkpoint the job resumed from: redo records of later ones are dropped.
    restored: Option<u64>,
    /// Operators opened by this process. The lock also serializes state registration.
    operators: Mutex<HashMap<String, Arc<Operator>>>,
}

struct Operator {
    tree: sled::Tree,
    /// The broadcast copy of the previous run, for instances that have none (see
    /// `broadcast.rs`).
    restored_broadcast: Option<(u16, BroadcastCopy)>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

impl StateStore {
    /// Opens (or creates) the database in `dir`, with the state and timers it holds.
    pub fn open(dir: &Path, config: StateConfig) -> Result<Self, StateError> {
        Self::open_at(dir, config, None)
    }

    /// [`StateStore::open`] for a job resuming from checkpoint `restored` (`Some(0)`: a
    /// checkpointed job starting afresh): the state of later checkpoints is dropped.
    pub fn open_at(dir: &Path, config: StateConfig, restored: Option<u64>) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StateError::Open { path: dir.to_path_buf(), source: sled::Error::Io(e) })?;
        Self::with_sled(sled_config(&config).path(dir), dir.to_path_buf(), config, restored)
    }

    /// A database in the system's temporary directory, deleted when the last clone is dropped.
    pub fn temporary(config: StateConfig) -> Result<Self, StateError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let name =
            format!("weir-state-{}-{}-{}", std::process::id(), nanos.as_nanos(), NEXT.fetch_add(1, Ordering::Relaxed));
        let dir = std::env::temp_dir().join(name);
        Self::with_sled(sled_config(&config).path(&dir).temporary(true), dir, config, None)
    }

    fn with_sled(
        sled: sled::Config,
        path: PathBuf,
        config: StateConfig,
        restored: Option<u64>,
    ) -> Result<Self, StateError> {
        let db = open_waiting_for_lock(&sled).map_err(|source| StateError::Open { path: path.clone(), source })?;
        tracing::debug!(path = %path.display(), recovered = db.was_recovered(), "state database opened");
        Ok(Self { inner: Arc::new(Inner { db, path, config, restored, operators: Mutex::new(HashMap::new()) }) })
    }

    pub(super) fn db(&self) -> &sled::Db {
        &self.inner.db
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Makes every write so far durable (sled's `flush`): the coordinator's step before it
    /// declares a checkpoint complete.
    pub fn sync(&self) -> Result<(), StateError> {
        self.inner.db.flush().map(|_| ()).map_err(StateError::storage("*", "syncing state to disk"))
    }

    /// Applies the sealed state of every checkpoint up to `checkpoint` in every operator's
    /// tree (the job has ended: no instance holds state any more).
    pub fn apply_checkpoints(&self, checkpoint: u64) -> Result<(), StateError> {
        for (_, tree) in self.operator_trees()? {
            flush::recover(&tree, Some(checkpoint)).map_err(StateError::storage("*", "applying checkpoint state"))?;
        }
        self.sync()
    }

    /// Every entry of every operator's tree but redo records, tree by tree: the keyed state
    /// a savepoint carries (after [`StateStore::apply_checkpoints`]).
    pub fn export(&self) -> Result<Vec<ExportedTree>, StateError> {
        let mut trees = Vec::new();
        for (name, tree) in self.operator_trees()? {
            let mut entries = Vec::new();
            for item in tree.iter() {
                let (key, value) = item.map_err(StateError::storage("*", "reading state"))?;
                if key.first() != Some(&layout::REDO) {
                    entries.push((key.to_vec(), value.to_vec()));
                }
            }
            trees.push((name, entries));
        }
        Ok(trees)
    }

    /// Every operator's tree, with its name (`operator/<step>`).
    fn operator_trees(&self) -> Result<Vec<(String, sled::Tree)>, StateError> {
        let names = self.inner.db.tree_names();
        let names = names.iter().filter_map(|n| std::str::from_utf8(n).ok()).filter(|n| n.starts_with("operator/"));
        names
            .map(|name| {
                let tree = self.inner.db.open_tree(name).map_err(StateError::storage(name, "opening state"))?;
                Ok((name.to_string(), tree))
            })
            .collect()
    }

    /// Writes trees [`StateStore::export`] made into this (empty) database, and syncs it.
    pub fn import(&self, trees: &[ExportedTree]) -> Result<(), StateError> {
        for (name, entries) in trees {
            let tree = self.inner.db.open_tree(name).map_err(StateError::storage(name, "creating state"))?;
            for chunk in entries.chunks(flush::CHUNK) {
                let mut batch = sled::Batch::default();
                for (key, value) in chunk {
                    batch.insert(key.as_slice(), value.as_slice());
                }
                tree.apply_batch(batch).map_err(StateError::storage(name, "writing state"))?;
            }
        }
        self.sync()
    }

    /// The size of the database on disk.
    pub fn size_on_disk(&self) -> Result<u64, StateError> {
        self.inner.db.size_on_disk().map_err(StateError::storage("*", "measuring the database"))
    }

    /// The state of one parallel instance of `operator`, which owns `key_groups` (see
    /// [`KeyGroupRange::for_instance`]) and declares `states`. States are registered on first
    /// use and keep their kind: declaring a stored state as another kind is an error. Each
    /// instance of an operator calls this once, from its own task.
    pub fn keyed(
        &self,
        operator: &str,
        key_groups: KeyGroupRange,
        states: &[StateDescriptor],
    ) -> Result<KeyedState, StateError> {
        validate(operator, states)?;
        if key_groups.is_empty() {
            return Err(StateError::NoKeyGroups { operator: operator.to_string() });
        }
        let (operator_state, registered) = {
            let mut operators = self.inner.operators.lock().unwrap_or_else(PoisonError::into_inner);
            let op = match operators.get(operator) {
                Some(op) => op.clone(),
                None => {
                    let tree = self
                        .inner
                        .db
                        .open_tree(format!("operator/{operator}"))
                        .map_err(StateError::storage(operator, "opening the operator's state"))?;
                    let recovered = flush::recover(&tree, self.inner.restored)
                        .map_err(StateError::storage(operator, "finishing an interrupted flush"))?;
                    if recovered.is_none() {
                        let detail = "a redo record cannot be decoded".to_string();
                        return Err(StateError::Corrupt { operator: operator.to_string(), detail });
                    }
                    let restored_broadcast = broadcast::read_restored_copy(&tree)
                        .map_err(StateError::storage(operator, "reading broadcast state"))?;
                    let op = Arc::new(Operator { tree, restored_broadcast });
                    operators.insert(operator.to_string(), op.clone());
                    op
                }
            };
            let registered = {
                let _serial = REGISTRATION.lock().unwrap_or_else(PoisonError::into_inner);
                register(&op.tree, operator, states)?
            };
            (op, registered)
        };
        let mut keyed = KeyedState::new(
            operator,
            self.inner.db.clone(),
            operator_state.tree.clone(),
            key_groups,
            registered,
            &self.inner.config,
        )?;
        keyed.adopt_broadcast(operator_state.restored_broadcast.as_ref())?;
        Ok(keyed)
    }
}

/// Copies a state directory file by file (to read the state of a running job, whose
/// database is locked: sled recovers the copy as it would after a crash).
pub fn copy_database(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_database(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// How long [`StateStore::open`] waits for the database lock.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Opens the database, waiting up to [`LOCK_WAIT`] for its lock. sled's background threads
/// keep the lock file open for a moment after the last handle is dropped, so a job that
/// restarts in the same process (or a test that reopens a store) would otherwise find its
/// own database locked.
fn open_waiting_for_lock(sled: &sled::Config) -> sled::Result<sled::Db> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match sled.open() {
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                if started.elapsed() >= LOCK_WAIT {
                    return Err(sled::Error::Io(e));
                }
                tracing::debug!(error = %e, "state database locked, waiting");
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            result => return result,
        }
    }
}

fn sled_config(config: &StateConfig) -> sled::Config {
    // sled's default mode (LowSpace): HighThroughput measured no faster in the state bench.
    sled::Config::new().cache_capacity(config.sled_cache_bytes)
}

fn validate(operator: &str, states: &[StateDescriptor]) -> Result<(), StateError> {
    let invalid = |name: &str, reason| StateError::InvalidDescriptor {
        operator: operator.to_string(),
        name: name.to_string(),
        reason,
    };
    for (i, state) in states.iter().enumerate() {
        if state.name.is_empty() {
            return Err(invalid("", "a state needs a name"));
        }
        if states[..i].iter().any(|s| s.name == state.name) {
            return Err(StateError::DuplicateState { operator: operator.to_string(), name: state.name.clone() });
        }
        match state.ttl {
            Some(_) if state.kind == StateKind::BroadcastMap => {
                return Err(invalid(&state.name, "broadcast state cannot have a TTL (as in Flink)"));
            }
            Some(ttl) if ttl.as_millis() == 0 => {
                return Err(invalid(&state.name, "a TTL must be at least 1 ms"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Serializes state registration across operators and instances of this process (two
/// instances declaring the same new state must get the same id).
static REGISTRATION: Mutex<()> = Mutex::new(());

impl KeyedState {
    /// Declares the states again, for a new version of the operator's function (a hot
    /// deploy): states not stored yet are registered, stored ones must keep their kind.
    pub fn declare(&mut self, states: &[StateDescriptor]) -> Result<(), StateError> {
        validate(&self.operator, states)?;
        let registered = {
            let _serial = REGISTRATION.lock().unwrap_or_else(PoisonError::into_inner);
            register(&self.tree, &self.operator, states)?
        };
        self.set_states(registered);
        Ok(())
    }
}

/// Gives each declared state its id: the stored one, or the next free one (stored now).
fn register(
    tree: &sled::Tree,
    operator: &str,
    states: &[StateDescriptor],
) -> Result<Vec<(String, StateInfo)>, StateError> {
    let mut stored: HashMap<String, (StateKind, u16)> = HashMap::new();
    let mut max_id = 0u16;
    for item in tree.scan_prefix(layout::meta_states_prefix()) {
        let (key, value) = item.map_err(StateError::storage(operator, "reading the state registry"))?;
        let corrupt =
            || StateError::Corrupt { operator: operator.to_string(), detail: "a state registry entry".into() };
        let (name, kind, id) = layout::decode_meta_state(&key, &value).ok_or_else(corrupt)?;
        let kind = StateKind::from_code(kind).ok_or_else(corrupt)?;
        max_id = max_id.max(id);
        stored.insert(name.to_string(), (kind, id));
    }
    let mut batch = sled::Batch::default();
    let mut new = 0;
    let mut registered = Vec::with_capacity(states.len());
    for state in states {
        let id = match stored.get(&state.name) {
            Some(&(kind, id)) if kind == state.kind => id,
            Some(&(kind, _)) => {
                return Err(StateError::IncompatibleState {
                    operator: operator.to_string(),
                    name: state.name.clone(),
                    stored: kind,
                    declared: state.kind,
                });
            }
            None => {
                max_id = max_id
                    .checked_add(1)
                    .filter(|id| *id < u16::MAX)
                    .ok_or_else(|| StateError::TooManyStates { operator: operator.to_string() })?;
                batch.insert(layout::meta_state_key(&state.name), layout::encode_meta_state(state.kind.code(), max_id));
                new += 1;
                max_id
            }
        };
        let ttl_ms = state.ttl.map(ttl::duration_ms);
        registered.push((state.name.clone(), StateInfo { id, kind: state.kind, ttl_ms }));
    }
    if new > 0 {
        tree.apply_batch(batch).map_err(StateError::storage(operator, "registering states"))?;
        tracing::debug!(operator, new, "states registered");
    }
    Ok(registered)
}
