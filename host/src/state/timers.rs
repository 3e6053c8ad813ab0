//! Timers: state too, persisted in the operator's tree and restored with it.
//!
//! A timer is an entry `t | domain | key group | time | key | namespace` (see `layout.rs`):
//! registering the same timer twice writes the same entry, so it is one timer. The timers of
//! one key group and domain are one range in time order, as in Flink's key-group-partitioned
//! timer queues, so they move with their key group when a job is rescaled.
//!
//! In memory there is only an index: per domain and key group, the time of the earliest timer
//! (so [`KeyedState::next_timer`] and the "anything due?" check cost no I/O), and, until the
//! next flush, the entries popped since the last one. Popped timers are not tombstones in the
//! write buffer: they are listed apart and the key group's *floor* remembers that sled holds
//! nothing live at or before the last `up_to`. Otherwise each pop would walk again over every
//! timer popped since the last flush, still in sled and hidden by its tombstone.

use super::buffer::Merged;
use super::keyed::KeyedState;
use super::layout;
use super::{KeyGroupRange, StateError, TimeDomain, Timer};

const DOMAINS: [TimeDomain; 2] = [TimeDomain::EventTime, TimeDomain::ProcessingTime];

pub(super) struct TimerIndex {
    /// `[domain][key group - range start]`: time of the earliest live timer.
    next: [Vec<Option<i64>>; 2],
    /// `[domain][key group - range start]`: sled holds no live timer at or before this time
    /// (it was popped) until the next flush deletes the popped entries.
    floor: [Vec<Option<i64>>; 2],
    /// Keys of the timers popped since the last flush: deleted by the next one.
    popped: Vec<Vec<u8>>,
    popped_bytes: usize,
}

impl TimerIndex {
    /// Reads the earliest timer of each domain and key group of `range`; `Ok(None)` if a
    /// timer key cannot be decoded.
    pub fn load(tree: &sled::Tree, range: KeyGroupRange) -> Result<Option<Self>, sled::Error> {
        let mut next = [vec![None; range.len()], vec![None; range.len()]];
        for domain in DOMAINS {
            for (i, key_group) in range.iter().enumerate() {
                let Some((key, _)) =
                    tree.scan_prefix(layout::timer_group_prefix(domain, key_group)).next().transpose()?
                else {
                    continue;
                };
                let Some((_, at_ms, _, _)) = layout::decode_timer(&key) else { return Ok(None) };
                next[domain.index()][i] = Some(at_ms);
            }
        }
        let floor = [vec![None; range.len()], vec![None; range.len()]];
        Ok(Some(Self { next, floor, popped: Vec::new(), popped_bytes: 0 }))
    }

    pub fn take_popped(&mut self) -> Vec<Vec<u8>> {
        self.popped_bytes = 0;
        std::mem::take(&mut self.popped)
    }

    /// Puts back what [`TimerIndex::take_popped`] took, after a failed flush.
    pub fn restore_popped(&mut self, popped: Vec<Vec<u8>>) {
        self.popped_bytes += popped.iter().map(|k| k.len() + 24).sum::<usize>();
        self.popped.extend(popped);
    }

    /// The popped entries are gone from sled: scans may start at the beginning again.
    pub fn flushed(&mut self) {
        for floors in &mut self.floor {
            floors.iter_mut().for_each(|f| *f = None);
        }
    }

    pub fn popped_len(&self) -> usize {
        self.popped.len()
    }

    pub fn popped_bytes(&self) -> usize {
        self.popped_bytes
    }
}

impl KeyedState {
    /// Registers a timer of the current key (and namespace) at `at_ms`. Registering the same
    /// timer again is a no-op.
    pub fn register_timer(&mut self, domain: TimeDomain, at_ms: i64) -> Result<(), StateError> {
        self.check_current(|| "a timer".to_string())?;
        let c = &self.current;
        let key = layout::timer_key(domain, c.key_group, at_ms, &c.key, &c.namespace);
        let slot = usize::from(c.key_group - self.key_groups.start);
        self.write(key, Some(Vec::new()), false);
        let next = &mut self.timers.next[domain.index()][slot];
        *next = Some(next.map_or(at_ms, |n| n.min(at_ms)));
        Ok(())
    }

    /// Deletes a timer of the current key (and namespace); deleting one that does not exist
    /// is a no-op.
    pub fn delete_timer(&mut self, domain: TimeDomain, at_ms: i64) -> Result<(), StateError> {
        self.check_current(|| "a timer".to_string())?;
        let c = &self.current;
        let key_group = c.key_group;
        let key = layout::timer_key(domain, key_group, at_ms, &c.key, &c.namespace);
        let slot = usize::from(key_group - self.key_groups.start);
        self.write(key, None, false);
        if self.timers.next[domain.index()][slot] == Some(at_ms) {
            self.timers.next[domain.index()][slot] = self.earliest_timer(domain, key_group, slot)?;
        }
        Ok(())
    }

    /// Removes and returns the timers of `domain` at or before `up_to`, of every key of this
    /// instance, ordered by time, then key group, key and namespace. The removal is buffered
    /// like any write: a crash before the next flush brings the timers back.
    pub fn pop_due_timers(&mut self, domain: TimeDomain, up_to: i64) -> Result<Vec<Timer>, StateError> {
        let d = domain.index();
        let mut due = Vec::new();
        for (slot, key_group) in self.key_groups.iter().enumerate() {
            if self.timers.next[d][slot].is_none_or(|next| next > up_to) {
                continue;
            }
            let start = layout::timer_group_prefix(domain, key_group);
            let end = layout::timer_due_end(domain, key_group, up_to);
            let disk_start = self.timer_disk_start(domain, key_group, slot);
            let found: Vec<(Vec<u8>, Vec<u8>)> =
                Merged::with_disk_from(&self.tree, &self.buffer, &disk_start, &start, end.as_deref())
                    .collect::<Result<_, _>>()
                    .map_err(StateError::storage(&self.operator, "reading timers"))?;
            for (key, _) in found {
                let (key_group, at_ms, user_key, namespace) =
                    layout::decode_timer(&key).ok_or_else(|| self.corrupt("a timer key"))?;
                due.push(Timer { at_ms, key_group, key: user_key.to_vec(), namespace: namespace.to_vec() });
                self.buffer.forget(&key);
                self.timers.popped_bytes += key.len() + 24;
                self.timers.popped.push(key);
            }
            let floor = &mut self.timers.floor[d][slot];
            *floor = Some(floor.map_or(up_to, |f| f.max(up_to)));
            self.timers.next[d][slot] = self.earliest_timer(domain, key_group, slot)?;
        }
        due.sort_unstable();
        Ok(due)
    }

    /// The time of the earliest timer of `domain` of this instance.
    pub fn next_timer(&self, domain: TimeDomain) -> Option<i64> {
        self.timers.next[domain.index()].iter().flatten().min().copied()
    }

    /// Where sled may still hold live timers of a key group: after its floor, if any.
    fn timer_disk_start(&self, domain: TimeDomain, key_group: u16, slot: usize) -> Vec<u8> {
        let start = layout::timer_group_prefix(domain, key_group);
        match self.timers.floor[domain.index()][slot] {
            Some(floor) => layout::timer_due_end(domain, key_group, floor).unwrap_or(start),
            None => start,
        }
    }

    fn earliest_timer(&self, domain: TimeDomain, key_group: u16, slot: usize) -> Result<Option<i64>, StateError> {
        let start = layout::timer_group_prefix(domain, key_group);
        let end = layout::prefix_end(&start);
        let disk_start = self.timer_disk_start(domain, key_group, slot);
        let first = Merged::with_disk_from(&self.tree, &self.buffer, &disk_start, &start, end.as_deref())
            .next()
            .transpose()
            .map_err(StateError::storage(&self.operator, "reading timers"))?;
        match first {
            None => Ok(None),
            Some((key, _)) => match layout::decode_timer(&key) {
                Some((_, at_ms, _, _)) => Ok(Some(at_ms)),
                None => Err(self.corrupt("a timer key")),
            },
        }
    }
}
