//! Tests of the state backend through its public API: each state kind, TTL, timers,
//! broadcast state, key prefixes, persistence across a reopen, errors, and a model test.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use super::{flush, layout, ttl};
use crate::state::instance_for_key_group;

type TestResult = Result<(), StateError>;

const ALL: KeyGroupRange = KeyGroupRange { start: 0, end: 128 };

fn config(cache_bytes: usize) -> StateConfig {
    StateConfig { cache_bytes, ..StateConfig::default() }
}

fn descriptors() -> Vec<StateDescriptor> {
    vec![
        StateDescriptor::value("v"),
        StateDescriptor::list("l"),
        StateDescriptor::map("m"),
        StateDescriptor::broadcast_map("rules"),
    ]
}

fn temp_state(cache_bytes: usize) -> Result<(StateStore, KeyedState), StateError> {
    let store = StateStore::temporary(config(cache_bytes))?;
    let state = store.keyed("op", ALL, &descriptors())?;
    Ok((store, state))
}

fn bytes(items: &[&[u8]]) -> Vec<Vec<u8>> {
    items.iter().map(|b| b.to_vec()).collect()
}

#[test]
fn value_state_is_per_key_and_reads_its_own_buffered_writes() -> TestResult {
    let (_store, mut s) = temp_state(1 << 20)?;
    s.set_current_key(1, b"alice");
    assert_eq!(s.value_get("v")?, None);
    s.value_set("v", b"1")?;
    assert_eq!(s.value_get("v")?, Some(b"1".to_vec()));
    s.set_current_key(2, b"bob");
    assert_eq!(s.value_get("v")?, None);
    s.value_set("v", b"")?;
    assert_eq!(s.value_get("v")?, Some(Vec::new()), "an empty value is a value");
    s.flush()?;
    s.set_current_key(1, b"alice");
    assert_eq!(s.value_get("v")?, Some(b"1".to_vec()));
    s.value_set("v", b"2")?;
    assert_eq!(s.value_get("v")?, Some(b"2".to_vec()));
    s.value_clear("v")?;
    assert_eq!(s.value_get("v")?, None);
    s.flush()?;
    assert_eq!(s.value_get("v")?, None);
    assert_eq!(s.stats().buffered_writes, 0);
    Ok(())
}

#[test]
fn list_state_appends_in_order_across_flushes_and_clears() -> TestResult {
    // No cache: every append finds the next sequence number in sled and the buffer.
    for cache in [0, 1 << 20] {
        let (_store, mut s) = temp_state(cache)?;
        s.set_current_key(3, b"k");
        assert!(s.list_get("l")?.is_empty());
        s.list_append("l", b"a")?;
        s.list_append("l", b"b")?;
        s.flush()?;
        s.list_append("l", b"c")?;
        assert_eq!(s.list_get("l")?, bytes(&[b"a", b"b", b"c"]));
        s.list_clear("l")?;
        assert!(s.list_get("l")?.is_empty());
        s.list_append("l", b"d")?;
        assert_eq!(s.list_get("l")?, bytes(&[b"d"]));
        s.flush()?;
        s.list_append("l", b"e")?;
        assert_eq!(s.list_get("l")?, bytes(&[b"d", b"e"]), "cache {cache}");
        s.set_current_key(3, b"other");
        assert!(s.list_get("l")?.is_empty());
    }
    Ok(())
}

#[test]
fn list_append_writes_one_entry_not_the_whole_list() -> TestResult {
    let (_store, mut s) = temp_state(1 << 20)?;
    s.set_current_key(0, b"k");
    for i in 0..100u8 {
        s.list_append("l", &[i])?;
    }
    s.flush()?;
    s.list_append("l", b"x")?;
    let buffered = s.buffered();
    assert_eq!(buffered.len(), 1);
    assert_eq!(buffered.values().next(), Some(&Some(vec![0, b'x'])), "header byte + the element");
    Ok(())
}

#[test]
fn map_state_puts_gets_removes_and_iterates_in_key_order() -> TestResult {
    let (_store, mut s) = temp_state(1 << 20)?;
    s.set_current_key(5, b"k");
    s.map_put("m", b"b", b"2")?;
    s.map_put("m", b"a", b"1")?;
    s.map_put("m", b"", b"empty key")?;
    s.flush()?;
    s.map_put("m", b"c", b"3")?;
    s.map_remove("m", b"b")?;
    assert_eq!(s.map_get("m", b"a")?, Some(b"1".to_vec()));
    assert_eq!(s.map_get("m", b"b")?, None);
    assert!(s.map_contains("m", b"")?);
    assert!(!s.map_contains("m", b"zz")?);
    let want =
        vec![(b"".to_vec(), b"empty key".to_vec()), (b"a".to_vec(), b"1".to_vec()), (b"c".to_vec(), b"3".to_vec())];
    assert_eq!(s.map_entries("m")?, want);
    s.flush()?;
    assert_eq!(s.map_entries("m")?, want);
    s.map_clear("m")?;
    assert!(s.map_entries("m")?.is_empty());
    assert_eq!(s.map_get("m", b"a")?, None);
    Ok(())
}

#[test]
fn a_key_that_is_a_prefix_of_another_never_sees_its_entries() -> TestResult {
    let (_store, mut s) = temp_state(1 << 20)?;
    // "a" vs "ab" vs "a\0": keys one of which prefixes the other, and map user keys that
    // would collide with a longer key if keys were not length-prefixed.
    for key in [&b"ab"[..], b"a\0", b"a\0\0"] {
        s.set_current_key(9, key);
        s.value_set("v", key)?;
        s.list_append("l", key)?;
        s.map_put("m", b"x", key)?;
    }
    for flushed in [false, true] {
        s.set_current_key(9, b"a");
        assert_eq!(s.value_get("v")?, None, "flushed: {flushed}");
        assert!(s.list_get("l")?.is_empty());
        assert!(s.map_entries("m")?.is_empty());
        s.map_put("m", b"b", b"mine")?; // "a" + "b" must not be "ab"
        assert_eq!(s.map_entries("m")?, vec![(b"b".to_vec(), b"mine".to_vec())]);
        s.set_current_key(9, b"ab");
        assert_eq!(s.value_get("v")?, Some(b"ab".to_vec()));
        assert_eq!(s.list_get("l")?, bytes(&[b"ab"]));
        assert_eq!(s.map_entries("m")?, vec![(b"x".to_vec(), b"ab".to_vec())]);
        s.set_current_key(9, b"a");
        s.map_clear("m")?;
        s.flush()?;
    }
    Ok(())
}

#[test]
fn namespaces_scope_state_within_a_key() -> TestResult {
    let (_store, mut s) = temp_state(1 << 20)?;
    s.set_current_key(1, b"k");
    s.value_set("v", b"no namespace")?;
    s.set_current_namespace(b"window-1");
    assert_eq!(s.value_get("v")?, None);
    s.value_set("v", b"w1")?;
    s.set_current_key(1, b"k");
    assert_eq!(s.value_get("v")?, Some(b"no namespace".to_vec()));
    s.set_current_namespace(b"window-1");
    assert_eq!(s.value_get("v")?, Some(b"w1".to_vec()));
    Ok(())
}

#[test]
fn a_working_set_larger_than_the_cache_reads_back_every_key() -> TestResult {
    let (_store, mut s) = temp_state(4 << 10)?;
    for i in 0..2_000u32 {
        s.set_current_key((i % 128) as u16, &i.to_be_bytes());
        s.value_set("v", &(i * 7).to_be_bytes())?;
        if i % 500 == 0 {
            s.flush()?;
        }
    }
    s.flush()?;
    for i in (0..2_000u32).rev() {
        s.set_current_key((i % 128) as u16, &i.to_be_bytes());
        assert_eq!(s.value_get("v")?, Some((i * 7).to_be_bytes().to_vec()));
    }
    let stats = s.stats();
    assert!(stats.cached_bytes <= 4 << 10, "{stats:?}");
    assert!(stats.cache_misses > 1_000, "{stats:?}");
    Ok(())
}

// --- TTL ------------------------------------------------------------------------------------

fn ttl_state(clock: &ManualClock) -> Result<(StateStore, KeyedState), StateError> {
    let config = StateConfig { clock: Arc::new(clock.clone()), ..StateConfig::default() };
    let store = StateStore::temporary(config)?;
    let ttl = Duration::from_secs(10);
    let states = [
        StateDescriptor::value("v").with_ttl(ttl),
        StateDescriptor::list("l").with_ttl(ttl),
        StateDescriptor::map("m").with_ttl(ttl),
        StateDescriptor::value("forever"),
    ];
    let state = store.keyed("op", ALL, &states)?;
    Ok((store, state))
}

#[test]
fn ttl_values_expire_after_their_last_write_and_writes_renew_them() -> TestResult {
    let clock = ManualClock::new(1_000_000);
    let (_store, mut s) = ttl_state(&clock)?;
    s.set_current_key(0, b"k");
    s.value_set("v", b"x")?;
    s.value_set("forever", b"y")?;
    s.flush()?;
    clock.advance(Duration::from_millis(9_999));
    assert_eq!(s.value_get("v")?, Some(b"x".to_vec()), "reading does not renew (OnCreateAndWrite)");
    s.value_set("v", b"x2")?; // renews
    clock.advance(Duration::from_millis(9_999));
    assert_eq!(s.value_get("v")?, Some(b"x2".to_vec()));
    clock.advance(Duration::from_millis(1));
    assert_eq!(s.value_get("v")?, None, "expired exactly at write + ttl");
    assert_eq!(s.value_get("forever")?, Some(b"y".to_vec()));
    // The expired read left a deletion for the next flush.
    assert_eq!(s.buffered().values().filter(|v| v.is_none()).count(), 1);
    Ok(())
}

#[test]
fn ttl_list_and_map_entries_expire_one_by_one() -> TestResult {
    let clock = ManualClock::new(0);
    let (_store, mut s) = ttl_state(&clock)?;
    s.set_current_key(0, b"k");
    s.list_append("l", b"old")?;
    s.map_put("m", b"old", b"1")?;
    s.flush()?;
    clock.advance(Duration::from_secs(6));
    s.list_append("l", b"new")?;
    s.map_put("m", b"new", b"2")?;
    clock.advance(Duration::from_secs(5));
    assert_eq!(s.list_get("l")?, bytes(&[b"new"]));
    assert_eq!(s.map_entries("m")?, vec![(b"new".to_vec(), b"2".to_vec())]);
    assert_eq!(s.map_get("m", b"old")?, None);
    assert!(!s.map_contains("m", b"old")?);
    clock.advance(Duration::from_secs(5));
    assert!(s.list_get("l")?.is_empty());
    assert!(s.map_entries("m")?.is_empty());
    Ok(())
}

#[test]
fn flush_cleans_expired_entries_nobody_reads() -> TestResult {
    let clock = ManualClock::new(0);
    let (store, mut s) = ttl_state(&clock)?;
    for i in 0..50u8 {
        s.set_current_key(u16::from(i), &[i]);
        s.value_set("v", b"x")?;
        s.value_set("forever", b"y")?;
    }
    s.flush()?;
    clock.advance(Duration::from_secs(11));
    s.flush()?; // cleanup: deletes the 50 expired values without reading them
    drop(s);
    let mut s = store.keyed("op", ALL, &ttl_descriptors())?;
    let raw = s.tree.iter().filter(|e| e.as_ref().is_ok_and(|(k, _)| k.first() == Some(&b'k'))).count();
    assert_eq!(raw, 50, "only the values without TTL are left in sled");
    s.set_current_key(3, &[3]);
    assert_eq!(s.value_get("forever")?, Some(b"y".to_vec()));
    Ok(())
}

fn ttl_descriptors() -> Vec<StateDescriptor> {
    let ttl = Duration::from_secs(10);
    vec![
        StateDescriptor::value("v").with_ttl(ttl),
        StateDescriptor::list("l").with_ttl(ttl),
        StateDescriptor::map("m").with_ttl(ttl),
        StateDescriptor::value("forever"),
    ]
}

#[test]
fn ttl_cleanup_resumes_where_the_last_flush_stopped() -> TestResult {
    let clock = ManualClock::new(0);
    let config = StateConfig { clock: Arc::new(clock.clone()), ttl_cleanup_per_flush: 10, ..StateConfig::default() };
    let store = StateStore::temporary(config)?;
    let mut s = store.keyed("op", ALL, &ttl_descriptors())?;
    for i in 0..35u8 {
        s.set_current_key(u16::from(i), &[i]);
        s.value_set("v", b"x")?;
    }
    s.flush()?;
    clock.advance(Duration::from_secs(60));
    let stored = |s: &KeyedState| s.tree.scan_prefix([b'k']).count();
    for left in [25, 15, 5, 0] {
        s.flush()?;
        assert_eq!(stored(&s), left);
    }
    Ok(())
}

// --- timers ---------------------------------------------------------------------------------

fn timer(at_ms: i64, key_group: u16, key: &[u8]) -> Timer {
    Timer { at_ms, key_group, key: key.to_vec(), namespace: Vec::new() }
}

#[test]
fn timers_fire_in_time_then_key_order_and_duplicates_are_one_timer() -> TestResult {
    let (_store, mut s) = temp_state(1 << 20)?;
    use TimeDomain::{EventTime, ProcessingTime};
    s.set_current_key(7, b"b");
    s.register_timer(EventTime, 300)?;
    s.register_timer(EventTime, 100)?;
    s.register_timer(EventTime, 100)?; // duplicate
    s.register_timer(ProcessingTime, 50)?;
    s.set_current_key(2, b"z");
    s.register_timer(EventTime, 100)?;
    s.register_timer(EventTime, -5)?;
    s.set_current_key(7, b"a");
    s.register_timer(EventTime, 100)?;
    s.flush()?;
    s.register_timer(EventTime, 200)?;
    assert_eq!(s.next_timer(EventTime), Some(-5));
    assert_eq!(s.next_timer(ProcessingTime), Some(50));
    let due = s.pop_due_timers(EventTime, 100)?;
    assert_eq!(due, vec![timer(-5, 2, b"z"), timer(100, 2, b"z"), timer(100, 7, b"a"), timer(100, 7, b"b")]);
    assert_eq!(s.pop_due_timers(EventTime, 100)?, vec![], "popped timers are gone");
    assert_eq!(s.next_timer(EventTime), Some(200));
    assert_eq!(s.pop_due_timers(EventTime, i64::MAX)?, vec![timer(200, 7, b"a"), timer(300, 7, b"b")]);
    assert_eq!(s.next_timer(EventTime), None);
    assert_eq!(s.pop_due_timers(ProcessingTime, 49)?, vec![]);
    assert_eq!(s.pop_due_timers(ProcessingTime, 50)?, vec![timer(50, 7, b"b")]);
    s.flush()?;
    assert_eq!(s.pop_due_timers(EventTime, i64::MAX)?, vec![]);
    Ok(())
}

#[test]
fn deleted_timers_do_not_fire_and_move_the_next_time() -> TestResult {
    let (_store, mut s) = temp_state(1 << 20)?;
    s.set_current_key(1, b"k");
    s.register_timer(TimeDomain::EventTime, 10)?;
    s.register_timer(TimeDomain::EventTime, 20)?;
    s.flush()?;
    s.delete_timer(TimeDomain::EventTime, 10)?;
    s.delete_timer(TimeDomain::EventTime, 99)?; // never registered: no-op
    assert_eq!(s.next_timer(TimeDomain::EventTime), Some(20));
    assert_eq!(s.pop_due_timers(TimeDomain::EventTime, 100)?, vec![timer(20, 1, b"k")]);
    Ok(())
}

#[test]
fn timers_registered_behind_the_last_pop_still_fire() -> TestResult {
    // The per-key-group floor skips popped entries still in sled; a timer registered at or
    // before it (e.g. behind the watermark) lives in the buffer and must still fire.
    let (_store, mut s) = temp_state(1 << 20)?;
    s.set_current_key(4, b"k");
    for t in [1, 2, 3] {
        s.register_timer(TimeDomain::EventTime, t)?;
    }
    s.flush()?;
    assert_eq!(s.pop_due_timers(TimeDomain::EventTime, 2)?.len(), 2);
    s.register_timer(TimeDomain::EventTime, 1)?; // again, behind the pop
    assert_eq!(s.next_timer(TimeDomain::EventTime), Some(1));
    assert_eq!(s.pop_due_timers(TimeDomain::EventTime, 5)?, vec![timer(1, 4, b"k"), timer(3, 4, b"k")]);
    s.register_timer(TimeDomain::EventTime, 2)?;
    s.flush()?;
    assert_eq!(s.pop_due_timers(TimeDomain::EventTime, 5)?, vec![timer(2, 4, b"k")]);
    Ok(())
}

#[test]
fn a_timer_registered_again_after_its_pop_was_flushed_fires_again() -> TestResult {
    let (_store, mut s) = temp_state(1 << 20)?;
    s.set_current_key(4, b"k");
    s.register_timer(TimeDomain::EventTime, 1)?;
    s.flush()?;
    assert_eq!(s.pop_due_timers(TimeDomain::EventTime, 1)?.len(), 1);
    s.flush()?;
    s.register_timer(TimeDomain::EventTime, 1)?;
    s.flush()?; // now in sled, at the time of the earlier pop
    assert_eq!(s.pop_due_timers(TimeDomain::EventTime, 5)?, vec![timer(1, 4, b"k")]);
    Ok(())
}

#[test]
fn timers_carry_their_namespace() -> TestResult {
    let (_store, mut s) = temp_state(1 << 20)?;
    s.set_current_key(1, b"k");
    s.set_current_namespace(b"w2");
    s.register_timer(TimeDomain::EventTime, 10)?;
    s.set_current_namespace(b"w1");
    s.register_timer(TimeDomain::EventTime, 10)?;
    let due = s.pop_due_timers(TimeDomain::EventTime, 10)?;
    let namespaces: Vec<&[u8]> = due.iter().map(|t| t.namespace.as_slice()).collect();
    assert_eq!(namespaces, vec![&b"w1"[..], b"w2"]);
    Ok(())
}

// --- persistence ----------------------------------------------------------------------------

#[test]
fn reopening_the_store_finds_flushed_state_and_timers_but_not_unflushed_writes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let store = StateStore::open(dir.path(), config(1 << 20))?;
        let mut s = store.keyed("op", ALL, &descriptors())?;
        s.set_current_key(3, b"k");
        s.value_set("v", b"1")?;
        s.list_append("l", b"a")?;
        s.map_put("m", b"x", b"y")?;
        s.broadcast_put("rules", b"limit", b"100")?;
        s.register_timer(TimeDomain::EventTime, 42)?;
        s.register_timer(TimeDomain::ProcessingTime, 7)?;
        s.flush()?;
        s.value_set("v", b"unflushed")?;
        s.register_timer(TimeDomain::EventTime, 1)?;
    }
    let store = StateStore::open(dir.path(), config(1 << 20))?;
    let mut s = store.keyed("op", ALL, &descriptors())?;
    assert_eq!(s.next_timer(TimeDomain::EventTime), Some(42));
    assert_eq!(s.next_timer(TimeDomain::ProcessingTime), Some(7));
    s.set_current_key(3, b"k");
    assert_eq!(s.value_get("v")?, Some(b"1".to_vec()));
    assert_eq!(s.list_get("l")?, bytes(&[b"a"]));
    s.list_append("l", b"b")?;
    assert_eq!(s.list_get("l")?, bytes(&[b"a", b"b"]));
    assert_eq!(s.map_get("m", b"x")?, Some(b"y".to_vec()));
    assert_eq!(s.broadcast_get("rules", b"limit")?, Some(b"100".to_vec()));
    assert_eq!(s.pop_due_timers(TimeDomain::EventTime, 100)?, vec![timer(42, 3, b"k")]);
    Ok(())
}

#[test]
fn sealed_epochs_reach_sled_one_checkpoint_late_and_a_reopen_keeps_only_complete_ones() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let value = |store: &StateStore| -> anyhow::Result<Option<Vec<u8>>> {
        let mut s = store.keyed("op", ALL, &descriptors())?;
        s.set_current_key(3, b"k");
        Ok(s.value_get("v")?)
    };
    {
        let store = StateStore::open_at(dir.path(), config(0), Some(0))?;
        let mut s = store.keyed("op", ALL, &descriptors())?;
        s.set_current_key(3, b"k");
        s.value_set("v", b"1")?;
        s.register_timer(TimeDomain::EventTime, 10)?;
        s.seal(1)?;
        s.value_set("v", b"2")?;
        assert_eq!(s.pop_due_timers(TimeDomain::EventTime, 10)?, vec![timer(10, 3, b"k")]);
        s.seal(2)?;
        s.value_set("v", b"3")?;
        s.seal(3)?;
        assert_eq!(s.value_get("v")?, Some(b"3".to_vec()), "reads see sealed writes");
        // Checkpoint 2 completed: epoch 1 goes to sled's keys; 2 and 3 stay records.
        s.apply_checkpoints(1)?;
        assert_eq!(s.value_get("v")?, Some(b"3".to_vec()));
        assert_eq!(s.buffered_writes(), 1, "only the newest value of `v` is still buffered");
        assert!(s.pop_due_timers(TimeDomain::EventTime, 100)?.is_empty(), "a popped timer stays popped");
        store.sync()?;
    }
    // Resuming from checkpoint 2: epoch 2 applied, epoch 3 (never complete) dropped.
    let store = StateStore::open_at(dir.path(), config(0), Some(2))?;
    assert_eq!(value(&store)?, Some(b"2".to_vec()));
    let mut s = store.keyed("op", ALL, &descriptors())?;
    assert_eq!(s.next_timer(TimeDomain::EventTime), None, "the timer popped in epoch 2 is gone");
    assert!(s.pop_due_timers(TimeDomain::EventTime, 100)?.is_empty());
    drop(s);
    drop(store);
    // A fresh start of a checkpointed job drops every epoch record left.
    let store = StateStore::open_at(dir.path(), config(0), Some(0))?;
    assert_eq!(value(&store)?, Some(b"2".to_vec()), "what was applied stays: a fresh start clears the directory");
    Ok(())
}

#[test]
fn a_stored_state_keeps_its_id_when_declarations_change_order() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let store = StateStore::open(dir.path(), config(0))?;
        let mut s = store.keyed("op", ALL, &[StateDescriptor::value("a"), StateDescriptor::value("b")])?;
        s.set_current_key(0, b"k");
        s.value_set("a", b"A")?;
        s.value_set("b", b"B")?;
        s.flush()?;
    }
    let store = StateStore::open(dir.path(), config(0))?;
    let decl = [StateDescriptor::value("new"), StateDescriptor::value("b"), StateDescriptor::value("a")];
    let mut s = store.keyed("op", ALL, &decl)?;
    s.set_current_key(0, b"k");
    assert_eq!(s.value_get("a")?, Some(b"A".to_vec()));
    assert_eq!(s.value_get("b")?, Some(b"B".to_vec()));
    assert_eq!(s.value_get("new")?, None);
    Ok(())
}

#[test]
fn a_flush_larger_than_a_batch_survives_a_reopen_and_a_crash_inside_one_is_finished() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let select = |s: &mut KeyedState, i: u32| s.set_current_key((i % 128) as u16, &i.to_be_bytes());
    {
        let store = StateStore::open(dir.path(), config(1 << 10))?;
        let mut s = store.keyed("op", ALL, &descriptors())?;
        for i in 0..3_000u32 {
            select(&mut s, i);
            s.value_set("v", &i.to_le_bytes())?;
            if i % 3 == 0 {
                s.register_timer(TimeDomain::EventTime, i64::from(i))?;
            }
        }
        s.flush()?; // through a redo record: more changes than one batch
        assert_eq!(s.tree.scan_prefix([layout::REDO]).count(), 0);
        // A crash in the middle of the next flush: its redo record is written, no chunk yet.
        let mut key = Vec::new();
        layout::push_keyed_prefix(&mut key, 7, &7u32.to_be_bytes(), b"");
        layout::push_state_id(&mut key, s.state("v", StateKind::Value)?.id);
        let stored = ttl::encode(b"from the redo record", None);
        s.tree.insert(layout::redo_key(0), flush::encode_redo(&[(&key, Some(&stored))]))?;
    }
    let store = StateStore::open(dir.path(), config(1 << 10))?;
    let mut s = store.keyed("op", ALL, &descriptors())?;
    for i in (0..3_000u32).filter(|i| *i != 7) {
        select(&mut s, i);
        anyhow::ensure!(s.value_get("v")? == Some(i.to_le_bytes().to_vec()), "key {i}");
    }
    select(&mut s, 7);
    assert_eq!(s.value_get("v")?, Some(b"from the redo record".to_vec()));
    let due = s.pop_due_timers(TimeDomain::EventTime, i64::MAX)?;
    assert_eq!(due.len(), 1_000);
    assert!(due.windows(2).all(|w| w[0].at_ms < w[1].at_ms));
    Ok(())
}

// --- instances and broadcast ----------------------------------------------------------------

#[test]
fn key_group_ranges_match_the_partitioner() {
    proptest!(|(parallelism in 1usize..40, max in 1u16..300)| {
        let parallelism = parallelism.min(usize::from(max));
        let mut covered = 0;
        for index in 0..parallelism {
            let range = KeyGroupRange::for_instance(index, parallelism, max);
            covered += range.len();
            for kg in range.iter() {
                prop_assert_eq!(instance_for_key_group(kg, parallelism, max), index);
            }
        }
        prop_assert_eq!(covered, usize::from(max));
    });
}

#[test]
fn instances_of_one_operator_keep_their_own_timers_and_broadcast_copies() -> TestResult {
    let store = StateStore::temporary(config(1 << 20))?;
    let mut a = store.keyed("op", KeyGroupRange::for_instance(0, 2, 128), &descriptors())?;
    let mut b = store.keyed("op", KeyGroupRange::for_instance(1, 2, 128), &descriptors())?;
    a.set_current_key(1, b"k");
    a.register_timer(TimeDomain::EventTime, 10)?;
    a.broadcast_put("rules", b"r", b"a's")?;
    b.set_current_key(100, b"k");
    b.register_timer(TimeDomain::EventTime, 20)?;
    a.flush()?;
    b.flush()?;
    assert_eq!(b.broadcast_get("rules", b"r")?, None);
    assert_eq!(a.pop_due_timers(TimeDomain::EventTime, 100)?, vec![timer(10, 1, b"k")]);
    assert_eq!(b.pop_due_timers(TimeDomain::EventTime, 100)?, vec![timer(20, 100, b"k")]);
    b.set_current_key(1, b"k");
    let err = b.value_set("v", b"x").map(|_| ()).err();
    assert!(matches!(err, Some(StateError::ForeignKeyGroup { key_group: 1, .. })), "{err:?}");
    Ok(())
}

#[test]
fn a_rescaled_job_starts_new_instances_from_the_previous_broadcast_state() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let store = StateStore::open(dir.path(), config(1 << 20))?;
        for index in 0..2 {
            let mut s = store.keyed("op", KeyGroupRange::for_instance(index, 2, 128), &descriptors())?;
            s.broadcast_put("rules", b"limit", b"100")?;
            s.broadcast_put("rules", b"window", b"60")?;
            s.flush()?;
        }
    }
    let store = StateStore::open(dir.path(), config(1 << 20))?;
    let mut instances = (0..4)
        .map(|i| store.keyed("op", KeyGroupRange::for_instance(i, 4, 128), &descriptors()))
        .collect::<Result<Vec<_>, _>>()?;
    instances[0].broadcast_put("rules", b"limit", b"200")?; // a new element, after restore
    instances[0].flush()?;
    let want = vec![(b"limit".to_vec(), b"100".to_vec()), (b"window".to_vec(), b"60".to_vec())];
    for s in &mut instances[1..] {
        assert_eq!(s.broadcast_entries("rules")?, want);
    }
    Ok(())
}

// --- errors ---------------------------------------------------------------------------------

#[test]
fn undeclared_state_and_wrong_kind_say_what_to_do() -> TestResult {
    let (_store, mut s) = temp_state(1 << 20)?;
    s.set_current_key(0, b"k");
    let err = s.value_get("count").err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        err,
        "operator `op` used state `count`, which it did not declare (declared: v, l, m, rules); declare every \
         state in the plugin's describe() before using it"
    );
    let err = s.list_append("v", b"x").err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        err,
        "operator `op` declared `v` as value state but used it as list state; use the value state calls, or \
         declare it as list state under another name"
    );
    assert!(matches!(s.broadcast_get("m", b"x"), Err(StateError::WrongKind { .. })));
    Ok(())
}

#[test]
fn state_without_a_current_key_is_an_error() -> TestResult {
    let (_store, mut s) = temp_state(1 << 20)?;
    let err = s.value_get("v").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("used state `v` with no current key"), "{err}");
    assert!(matches!(s.register_timer(TimeDomain::EventTime, 1), Err(StateError::NoCurrentKey { .. })));
    assert_eq!(s.broadcast_get("rules", b"x")?, None, "broadcast state needs no key");
    Ok(())
}

#[test]
fn bad_declarations_are_refused() -> TestResult {
    let store = StateStore::temporary(config(0))?;
    let dup = store.keyed("op", ALL, &[StateDescriptor::value("a"), StateDescriptor::map("a")]);
    assert!(matches!(dup, Err(StateError::DuplicateState { .. })));
    let ttl = store.keyed("op", ALL, &[StateDescriptor::broadcast_map("r").with_ttl(Duration::from_secs(1))]);
    assert!(matches!(ttl, Err(StateError::InvalidDescriptor { .. })));
    store.keyed("op", ALL, &[StateDescriptor::value("a")])?;
    let changed = store.keyed("op", ALL, &[StateDescriptor::list("a")]).err().map(|e| e.to_string());
    assert_eq!(
        changed.as_deref(),
        Some(
            "operator `op` declares `a` as list state, but the stored state of that name is value state; rename \
             the state, or start the job without the old state"
        )
    );
    Ok(())
}

// --- model test -----------------------------------------------------------------------------

/// Keys of which some are prefixes of others, over three key groups.
const KEYS: [(u16, &[u8]); 6] = [(0, b""), (0, b"a"), (0, b"ab"), (1, b"a"), (2, b"\0"), (2, b"\0\0")];
const USER_KEYS: [&[u8]; 4] = [b"", b"x", b"xy", b"\0"];

#[derive(Debug, Clone)]
enum Op {
    Key(usize),
    ValueSet(u8),
    ValueGet,
    ValueClear,
    ListAppend(u8),
    ListGet,
    ListClear,
    MapPut(usize, u8),
    MapRemove(usize),
    MapGet(usize),
    MapEntries,
    BroadcastPut(usize, u8),
    BroadcastRemove(usize),
    BroadcastEntries,
    Register(bool, i64),
    Delete(bool, i64),
    Pop(bool, i64),
    Flush,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let uk = 0..USER_KEYS.len();
    prop_oneof![
        3 => (0..KEYS.len()).prop_map(Op::Key),
        2 => any::<u8>().prop_map(Op::ValueSet),
        2 => Just(Op::ValueGet),
        1 => Just(Op::ValueClear),
        2 => any::<u8>().prop_map(Op::ListAppend),
        1 => Just(Op::ListGet),
        1 => Just(Op::ListClear),
        2 => (uk.clone(), any::<u8>()).prop_map(|(k, v)| Op::MapPut(k, v)),
        1 => uk.clone().prop_map(Op::MapRemove),
        2 => uk.clone().prop_map(Op::MapGet),
        1 => Just(Op::MapEntries),
        1 => (uk.clone(), any::<u8>()).prop_map(|(k, v)| Op::BroadcastPut(k, v)),
        1 => uk.prop_map(Op::BroadcastRemove),
        1 => Just(Op::BroadcastEntries),
        3 => (any::<bool>(), 0i64..8).prop_map(|(d, t)| Op::Register(d, t)),
        1 => (any::<bool>(), 0i64..8).prop_map(|(d, t)| Op::Delete(d, t)),
        2 => (any::<bool>(), 0i64..8).prop_map(|(d, t)| Op::Pop(d, t)),
        2 => Just(Op::Flush),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Model {
    values: HashMap<usize, Vec<u8>>,
    lists: HashMap<usize, Vec<Vec<u8>>>,
    maps: HashMap<usize, BTreeMap<Vec<u8>, Vec<u8>>>,
    broadcast: BTreeMap<Vec<u8>, Vec<u8>>,
    timers: [BTreeSet<Timer>; 2],
}

fn domain(event: bool) -> TimeDomain {
    if event { TimeDomain::EventTime } else { TimeDomain::ProcessingTime }
}

fn run_model(ops: &[Op], cache_bytes: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let open = || -> Result<KeyedState, StateError> {
        StateStore::open(dir.path(), config(cache_bytes))?.keyed("op", ALL, &descriptors())
    };
    let mut s = open()?;
    let mut model = Model::default();
    let mut durable = Model::default();
    let mut key = 0;
    s.set_current_key(KEYS[0].0, KEYS[0].1);
    for (step, op) in ops.iter().enumerate() {
        let ctx = || format!("step {step}: {op:?}");
        match op {
            Op::Key(k) => {
                key = *k;
                s.set_current_key(KEYS[key].0, KEYS[key].1);
            }
            Op::ValueSet(v) => {
                s.value_set("v", &[*v])?;
                model.values.insert(key, vec![*v]);
            }
            Op::ValueGet => anyhow::ensure!(s.value_get("v")? == model.values.get(&key).cloned(), "{}", ctx()),
            Op::ValueClear => {
                s.value_clear("v")?;
                model.values.remove(&key);
            }
            Op::ListAppend(v) => {
                s.list_append("l", &[*v])?;
                model.lists.entry(key).or_default().push(vec![*v]);
            }
            Op::ListGet => {
                let want = model.lists.get(&key).cloned().unwrap_or_default();
                anyhow::ensure!(s.list_get("l")? == want, "{}", ctx());
            }
            Op::ListClear => {
                s.list_clear("l")?;
                model.lists.remove(&key);
            }
            Op::MapPut(k, v) => {
                s.map_put("m", USER_KEYS[*k], &[*v])?;
                model.maps.entry(key).or_default().insert(USER_KEYS[*k].to_vec(), vec![*v]);
            }
            Op::MapRemove(k) => {
                s.map_remove("m", USER_KEYS[*k])?;
                model.maps.entry(key).or_default().remove(USER_KEYS[*k]);
            }
            Op::MapGet(k) => {
                let want = model.maps.get(&key).and_then(|m| m.get(USER_KEYS[*k])).cloned();
                anyhow::ensure!(s.map_get("m", USER_KEYS[*k])? == want, "{}", ctx());
                anyhow::ensure!(s.map_contains("m", USER_KEYS[*k])? == want.is_some(), "{}", ctx());
            }
            Op::MapEntries => {
                let want: Vec<_> = model.maps.get(&key).map(|m| m.clone().into_iter().collect()).unwrap_or_default();
                anyhow::ensure!(s.map_entries("m")? == want, "{}", ctx());
            }
            Op::BroadcastPut(k, v) => {
                s.broadcast_put("rules", USER_KEYS[*k], &[*v])?;
                model.broadcast.insert(USER_KEYS[*k].to_vec(), vec![*v]);
            }
            Op::BroadcastRemove(k) => {
                s.broadcast_remove("rules", USER_KEYS[*k])?;
                model.broadcast.remove(USER_KEYS[*k]);
            }
            Op::BroadcastEntries => {
                let want: Vec<_> = model.broadcast.clone().into_iter().collect();
                anyhow::ensure!(s.broadcast_entries("rules")? == want, "{}", ctx());
            }
            Op::Register(d, t) => {
                s.register_timer(domain(*d), *t)?;
                model.timers[usize::from(!*d)].insert(timer(*t, KEYS[key].0, KEYS[key].1));
            }
            Op::Delete(d, t) => {
                s.delete_timer(domain(*d), *t)?;
                model.timers[usize::from(!*d)].remove(&timer(*t, KEYS[key].0, KEYS[key].1));
            }
            Op::Pop(d, t) => {
                let timers = &mut model.timers[usize::from(!*d)];
                let due: Vec<Timer> = timers.iter().filter(|x| x.at_ms <= *t).cloned().collect();
                timers.retain(|x| x.at_ms > *t);
                anyhow::ensure!(s.pop_due_timers(domain(*d), *t)? == due, "{}", ctx());
            }
            Op::Flush => {
                s.flush()?;
                durable = model.clone();
            }
            Op::Reopen => {
                drop(s);
                s = open()?;
                s.set_current_key(KEYS[key].0, KEYS[key].1);
                model = durable.clone();
            }
        }
        for (i, d) in [TimeDomain::EventTime, TimeDomain::ProcessingTime].into_iter().enumerate() {
            let want = model.timers[i].iter().map(|t| t.at_ms).min();
            anyhow::ensure!(s.next_timer(d) == want, "next {d:?} timer after {}", ctx());
        }
        anyhow::ensure!(s.stats().cached_bytes <= cache_bytes, "cache over budget after {}", ctx());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random operations against a model made of maps, with random flushes and reopens (a
    /// reopen loses what was not flushed) and a cache of a few entries, so that reads go to
    /// the buffer, the cache and sled in every combination.
    #[test]
    fn state_behaves_like_a_model(ops in proptest::collection::vec(op(), 1..80), cache in prop_oneof![Just(0usize), Just(600usize), Just(1usize << 20)]) {
        if let Err(e) = run_model(&ops, cache) {
            return Err(TestCaseError::fail(format!("{e:#}")));
        }
    }
}
