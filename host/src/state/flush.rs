//! The flush: an epoch's buffered changes written to sled atomically, without one giant
//! sled batch.
//!
//! sled 0.34 makes a batch atomic, but applies it under one epoch guard: every node copy the
//! batch makes stays allocated until it ends. 100 k writes in one batch grew the process by
//! about 1 GiB (1 M keys bench); in batches of [`CHUNK`] the growth is a few MiB and the
//! flush is no slower. So a flush of more than [`CHUNK`] changes first writes them all as one
//! **redo record** (`w | instance`, one insert: atomic), then applies them in chunks, then
//! removes the record. sled recovers a prefix of its log, so after a crash either the record
//! is absent (nothing of the flush happened, or all of it did) or it is present with some
//! chunks applied: [`recover`] applies it again (the changes are final values and deletions,
//! so applying twice is the same as once) when the operator is next opened.
//!
//! **With checkpoints** nothing is flushed between barriers. At barrier `n`
//! [`KeyedState::seal`] writes the epoch's changes as the record `w | instance | n`, which
//! the coordinator's sync makes durable before it declares `n` complete; the changes stay
//! in the write buffer for reads. [`KeyedState::apply_checkpoints`] applies the records of
//! epochs whose checkpoint and the next one completed, so sled's keys are never ahead of the
//! second-newest complete checkpoint. Recovery ([`recover`] with the restored checkpoint)
//! applies the records of complete checkpoints and drops the others.

use super::buffer::{Changes, Pending};
use super::cache::Cached;
use super::keyed::KeyedState;
use super::layout;
use super::ttl;
use super::{StateError, StateKind};

/// Changes per sled batch.
pub(super) const CHUNK: usize = 1_000;

const REDO_VERSION: u8 = 1;

/// One change: a key and its new stored bytes, or `None` to delete it.
type Change<'a> = (&'a [u8], Option<&'a [u8]>);

impl KeyedState {
    /// Writes every buffered change to sled atomically and syncs the database to disk: after
    /// it returns the changes survive a crash, and a crash before it keeps none of them (or,
    /// past the redo record, all of them). A checkpoint calls it once per epoch. It also
    /// deletes up to `StateConfig::ttl_cleanup_per_flush` expired entries. On error the
    /// changes stay buffered.
    pub fn flush(&mut self) -> Result<(), StateError> {
        self.cleanup_expired()?;
        let popped = self.timers.take_popped();
        if self.buffer.is_empty() && popped.is_empty() {
            return Ok(());
        }
        let writes = self.buffer.take();
        // Popped timers first: a timer registered again after it fired is in `writes`, later.
        let changes: Vec<Change<'_>> = popped
            .iter()
            .map(|k| (k.as_slice(), None))
            .chain(writes.iter().map(|(k, p)| (k.as_slice(), p.value.as_deref())))
            .collect();
        let redo_key = layout::redo_key(self.key_groups.start);
        if let Err(source) = commit(&self.tree, &redo_key, &changes) {
            self.buffer.restore(writes);
            self.timers.restore_popped(popped);
            return Err(StateError::Storage { operator: self.operator.clone(), action: "writing a flush", source });
        }
        self.timers.flushed();
        move_to_cache(self, writes);
        self.db.flush().map_err(StateError::storage(&self.operator, "syncing state to disk"))?;
        Ok(())
    }

    /// Deletes up to `ttl_cleanup_per_flush` expired entries of this instance's key groups,
    /// going round the key groups over successive flushes (Flink's incremental cleanup).
    fn cleanup_expired(&mut self) -> Result<(), StateError> {
        if self.ttl_cleanup_per_flush == 0 || !self.by_id.values().any(|info| info.ttl_ms.is_some()) {
            return Ok(());
        }
        let start = self.ttl_cursor.take().unwrap_or_else(|| layout::keyed_group_start(self.key_groups.start));
        let end = layout::keyed_groups_end(self.key_groups.end);
        let now = self.clock.now_ms();
        let mut expired = Vec::new();
        let mut scanned = 0;
        for item in self.tree.range::<&[u8], _>(start.as_slice()..end.as_slice()) {
            let (key, stored) = item.map_err(StateError::storage(&self.operator, "cleaning expired state"))?;
            let info = layout::decode_keyed(&key).and_then(|e| self.by_id.get(&e.state_id));
            if let Some(info) = info
                && info.ttl_ms.is_some()
            {
                let (written, _) = ttl::decode(&stored).ok_or_else(|| self.corrupt("a value header"))?;
                if ttl::expired(written, info.ttl_ms, now) && self.buffer.get(&key).is_none() {
                    expired.push((key.to_vec(), info.kind != StateKind::List));
                }
            }
            scanned += 1;
            if scanned == self.ttl_cleanup_per_flush {
                let mut next = key.to_vec();
                next.push(0);
                self.ttl_cursor = Some(next);
                break;
            }
        }
        if !expired.is_empty() {
            tracing::debug!(operator = %self.operator, expired = expired.len(), "removing expired state");
        }
        for (key, point) in expired {
            self.write(key, None, point);
        }
        Ok(())
    }
}

/// An epoch sealed at a barrier, not yet applied to sled's keys.
pub(super) struct Sealed {
    checkpoint: u64,
    generation: u64,
    changes: Changes,
    /// Whether it deletes popped timers.
    pops_timers: bool,
}

impl KeyedState {
    /// Checkpoint barrier `checkpoint`: the writes since the last barrier become the epoch's
    /// redo record (durable with the coordinator's sync). Reads still see them.
    pub fn seal(&mut self, checkpoint: u64) -> Result<(), StateError> {
        self.cleanup_expired()?;
        let popped = self.timers.take_popped();
        let (generation, writes) = self.buffer.seal();
        let pops_timers = !popped.is_empty();
        let changes: Changes = popped.into_iter().map(|k| (k, None)).chain(writes).collect();
        if !changes.is_empty() {
            let key = layout::checkpoint_redo_key(self.key_groups.start, checkpoint);
            self.tree
                .insert(key, encode_redo(&borrowed(&changes)))
                .map_err(StateError::storage(&self.operator, "writing a checkpoint's state"))?;
        }
        self.sealed.push_back(Sealed { checkpoint, generation, changes, pops_timers });
        Ok(())
    }

    /// Applies to sled's keys the epochs sealed at checkpoints up to `checkpoint`, which
    /// must be complete, and drops their records.
    pub fn apply_checkpoints(&mut self, checkpoint: u64) -> Result<(), StateError> {
        while self.sealed.front().is_some_and(|s| s.checkpoint <= checkpoint) {
            let Some(sealed) = self.sealed.pop_front() else { break };
            let changes = borrowed(&sealed.changes);
            apply_in_chunks(&self.tree, &changes)
                .map_err(StateError::storage(&self.operator, "applying a checkpoint's state"))?;
            if !changes.is_empty() {
                self.tree
                    .remove(layout::checkpoint_redo_key(self.key_groups.start, sealed.checkpoint))
                    .map_err(StateError::storage(&self.operator, "applying a checkpoint's state"))?;
            }
            let applied = self.buffer.forget_sealed(sealed.generation);
            move_to_cache(self, applied);
        }
        if self.timers.popped_len() == 0 && !self.sealed.iter().any(|s| s.pops_timers) {
            self.timers.flushed();
        }
        Ok(())
    }
}

/// Flushed point entries are the hottest: they go (back) into the read cache.
fn move_to_cache(state: &mut KeyedState, writes: impl IntoIterator<Item = (Vec<u8>, Pending)>) {
    for (key, Pending { value, point, .. }) in writes {
        if point {
            state.cache.insert(key, Cached::Stored(value));
        }
    }
}

/// Applies `changes` atomically: one batch if they fit in one, else through a redo record.
fn commit(tree: &sled::Tree, redo_key: &[u8], changes: &[Change<'_>]) -> Result<(), sled::Error> {
    if changes.len() <= CHUNK {
        return tree.apply_batch(batch(changes));
    }
    tree.insert(redo_key, encode_redo(changes))?;
    apply_in_chunks(tree, changes)?;
    tree.remove(redo_key)?;
    Ok(())
}

/// Applies `changes` in sled batches of [`CHUNK`] (each atomic, the whole not).
fn apply_in_chunks(tree: &sled::Tree, changes: &[Change<'_>]) -> Result<(), sled::Error> {
    changes.chunks(CHUNK).try_for_each(|chunk| tree.apply_batch(batch(chunk)))
}

/// `changes` as borrowed [`Change`]s.
fn borrowed(changes: &Changes) -> Vec<Change<'_>> {
    changes.iter().map(|(k, v)| (k.as_slice(), v.as_deref())).collect()
}

fn batch(changes: &[Change<'_>]) -> sled::Batch {
    let mut batch = sled::Batch::default();
    for (key, value) in changes {
        match value {
            Some(value) => batch.insert(*key, *value),
            None => batch.remove(*key),
        }
    }
    batch
}

/// Finishes the flushes a crash interrupted: applies every redo record of the operator's
/// tree, then removes it. Records of checkpoints after `restored` (a checkpoint that never
/// completed, or one newer than the one restored) are dropped instead; with `restored`
/// `None` (checkpoints off) all are applied. Called when the operator is first opened,
/// before any instance reads. Returns the number of records applied; `Ok(None)` if one
/// cannot be decoded.
pub(super) fn recover(tree: &sled::Tree, restored: Option<u64>) -> Result<Option<usize>, sled::Error> {
    let records: Vec<(sled::IVec, sled::IVec)> = tree.scan_prefix([layout::REDO]).collect::<Result<_, _>>()?;
    let mut applied = 0;
    for (key, record) in &records {
        let checkpoint = layout::redo_checkpoint(key);
        if let (Some(id), Some(restored)) = (checkpoint, restored)
            && id > restored
        {
            tree.remove(key)?;
            tracing::info!(checkpoint = id, "dropped the state of a checkpoint that did not complete");
            continue;
        }
        let Some(changes) = decode_redo(record) else { return Ok(None) };
        apply_in_chunks(tree, &changes)?;
        tree.remove(key)?;
        applied += 1;
        match checkpoint {
            Some(id) => tracing::debug!(checkpoint = id, changes = changes.len(), "applied a checkpoint's state"),
            None => tracing::info!(changes = changes.len(), "finished a state flush interrupted by a crash"),
        }
    }
    Ok(Some(applied))
}

pub(super) fn encode_redo(changes: &[Change<'_>]) -> Vec<u8> {
    let size: usize = changes.iter().map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len) + 8).sum();
    let mut out = Vec::with_capacity(1 + size);
    out.push(REDO_VERSION);
    for (key, value) in changes {
        layout::put_varint(&mut out, key.len());
        out.extend_from_slice(key);
        match value {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                layout::put_varint(&mut out, value.len());
                out.extend_from_slice(value);
            }
        }
    }
    out
}

fn decode_redo(record: &[u8]) -> Option<Vec<Change<'_>>> {
    let (&version, mut rest) = record.split_first()?;
    if version != REDO_VERSION {
        return None;
    }
    let mut changes = Vec::new();
    while !rest.is_empty() {
        let key = layout::take_bytes(&mut rest)?;
        let (&present, tail) = rest.split_first()?;
        rest = tail;
        let value = match present {
            0 => None,
            1 => Some(layout::take_bytes(&mut rest)?),
            _ => return None,
        };
        changes.push((key, value));
    }
    Some(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redo_records_round_trip() {
        let changes: Vec<Change<'_>> = vec![(b"a", Some(b"1")), (b"", None), (b"c", Some(b""))];
        assert_eq!(decode_redo(&encode_redo(&changes)), Some(changes));
        assert_eq!(decode_redo(&[REDO_VERSION, 1, b'a', 7]), None);
        assert_eq!(decode_redo(&[9]), None);
    }

    #[test]
    fn a_large_commit_leaves_no_redo_record_and_recovery_applies_a_left_over_one() -> Result<(), sled::Error> {
        let db = sled::Config::new().temporary(true).open()?;
        let keys: Vec<Vec<u8>> = (0..2_500u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let changes: Vec<Change<'_>> = keys.iter().map(|k| (k.as_slice(), Some(&b"v"[..]))).collect();
        commit(&db, &layout::redo_key(0), &changes)?;
        assert_eq!(db.len(), 2_500);
        assert_eq!(db.scan_prefix([layout::REDO]).count(), 0);

        // A crash after the record was written and one chunk applied.
        let deletes: Vec<Change<'_>> = keys.iter().map(|k| (k.as_slice(), None)).collect();
        db.insert(layout::redo_key(3), encode_redo(&deletes))?;
        db.apply_batch(batch(&deletes[..CHUNK]))?;
        assert_eq!(recover(&db, None)?, Some(1));
        assert_eq!(db.len(), 0, "every delete applied and the record removed");
        Ok(())
    }
}
