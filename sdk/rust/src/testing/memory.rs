//! In-memory keyed state, broadcast state and timers with the host's semantics, as the
//! [`ProcessHost`] of [`super::ProcessHarness`].
//!
//! What the host does and this mirrors:
//! - State is scoped to the key the dispatcher selected; a call on a state the function did
//!   not declare, or of another kind, is refused with the host's wording.
//! - TTL is processing time since the last write; an expired value, list element or map
//!   entry reads as absent and is dropped when read.
//! - Map and broadcast entries are ordered by their keys' MessagePack bytes.
//! - A timer is one per key, domain and time however often it is registered; due timers fire
//!   in time order, then key order (the host orders equal times by key group first).
//! - Broadcast state is written only by the broadcast side; the broadcast side has no key.
//!
//! A snapshot ([`MemoryHost::snapshot`]) is what the host's rollback undoes after a trap.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::process::host::{Entries, ProcessHost};
use crate::process::{StateDecl, StateKind, TimeDomain};

/// A stored value and the processing time of its last write.
#[derive(Debug, Clone)]
struct Stamped {
    written_ms: i64,
    bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
enum Slot {
    Value(Stamped),
    List(Vec<Stamped>),
    Map(BTreeMap<Vec<u8>, Stamped>),
}

/// Everything a call can change: what a trap rolls back.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    /// key -> state name -> its slot.
    keyed: HashMap<Vec<u8>, HashMap<String, Slot>>,
    broadcast: HashMap<String, BTreeMap<Vec<u8>, Vec<u8>>>,
    /// Per domain (event, processing): `(time, key)`.
    timers: [BTreeSet<(i64, Vec<u8>)>; 2],
}

/// Which side the running call handles, and the keys it may select.
#[derive(Debug, Default)]
enum Call {
    #[default]
    None,
    Keyed {
        keys: Vec<Vec<u8>>,
        current: Option<usize>,
    },
    Broadcast,
}

#[derive(Debug)]
struct Declared {
    name: String,
    kind: StateKind,
    ttl_ms: Option<i64>,
}

#[derive(Debug)]
struct Inner {
    operator: String,
    declared: Vec<Declared>,
    store: Snapshot,
    watermark: Option<i64>,
    processing_time: i64,
    call: Call,
}

/// The harness's state backend (see the module docs).
#[derive(Debug)]
pub(crate) struct MemoryHost {
    inner: RefCell<Inner>,
}

fn domain_index(domain: TimeDomain) -> usize {
    match domain {
        TimeDomain::EventTime => 0,
        TimeDomain::ProcessingTime => 1,
    }
}

/// The host's wording of a kind in messages.
fn kind_name(kind: StateKind) -> &'static str {
    match kind {
        StateKind::Value => "value",
        StateKind::List => "list",
        StateKind::Map => "map",
        StateKind::BroadcastMap => "broadcast map",
    }
}

fn live(stamped: &Stamped, ttl_ms: Option<i64>, now_ms: i64) -> bool {
    ttl_ms.is_none_or(|ttl| now_ms < stamped.written_ms.saturating_add(ttl))
}

impl MemoryHost {
    /// State for the function `operator` with the declarations `states`.
    pub(crate) fn new(operator: &str, states: &[StateDecl]) -> Self {
        let declared = states
            .iter()
            .map(|d| Declared {
                name: d.name().to_string(),
                kind: d.kind(),
                ttl_ms: d.ttl_ms().map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)),
            })
            .collect();
        let inner = Inner {
            operator: operator.to_string(),
            declared,
            store: Snapshot::default(),
            watermark: None,
            processing_time: 0,
            call: Call::None,
        };
        MemoryHost { inner: RefCell::new(inner) }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        self.inner.borrow().store.clone()
    }

    pub(crate) fn restore(&self, snapshot: Snapshot) {
        self.inner.borrow_mut().store = snapshot;
    }

    /// A keyed call starts: `select(i)` picks `keys[i]`.
    pub(crate) fn begin_keyed(&self, keys: Vec<Vec<u8>>) {
        self.inner.borrow_mut().call = Call::Keyed { keys, current: None };
    }

    /// A broadcast call starts: no key, broadcast state writable.
    pub(crate) fn begin_broadcast(&self) {
        self.inner.borrow_mut().call = Call::Broadcast;
    }

    pub(crate) fn end_call(&self) {
        self.inner.borrow_mut().call = Call::None;
    }

    pub(crate) fn watermark(&self) -> Option<i64> {
        self.inner.borrow().watermark
    }

    pub(crate) fn processing_time(&self) -> i64 {
        self.inner.borrow().processing_time
    }

    /// Moves the watermark forward (never back, as the operator's never goes back).
    pub(crate) fn advance_watermark(&self, to: i64) -> i64 {
        let mut inner = self.inner.borrow_mut();
        let watermark = inner.watermark.map_or(to, |w| w.max(to));
        inner.watermark = Some(watermark);
        watermark
    }

    /// Moves processing time forward (never back).
    pub(crate) fn advance_processing_time(&self, to: i64) -> i64 {
        let mut inner = self.inner.borrow_mut();
        inner.processing_time = inner.processing_time.max(to);
        inner.processing_time
    }

    /// Removes and returns the timers of `domain` at or before `up_to`, by time then key.
    pub(crate) fn pop_due(&self, domain: TimeDomain, up_to: i64) -> Vec<(i64, Vec<u8>)> {
        let timers = &mut self.inner.borrow_mut().store.timers[domain_index(domain)];
        let mut due = Vec::new();
        while timers.first().is_some_and(|(at, _)| *at <= up_to) {
            due.extend(timers.pop_first());
        }
        due
    }

    /// The timers of `key`, by domain then time.
    pub(crate) fn timers_of(&self, key: &[u8]) -> Vec<(TimeDomain, i64)> {
        let inner = self.inner.borrow();
        [TimeDomain::EventTime, TimeDomain::ProcessingTime]
            .into_iter()
            .flat_map(|d| {
                inner.store.timers[domain_index(d)].iter().filter(|(_, k)| k == key).map(move |(at, _)| (d, *at))
            })
            .collect()
    }

    pub(crate) fn timer_count(&self, domain: TimeDomain) -> usize {
        self.inner.borrow().store.timers[domain_index(domain)].len()
    }

    /// Value state `name` of `key`, for a test to look at.
    pub(crate) fn value_of(&self, key: &[u8], name: &str) -> Result<Option<Vec<u8>>, String> {
        self.inner.borrow_mut().value_get(key, name)
    }

    pub(crate) fn list_of(&self, key: &[u8], name: &str) -> Result<Vec<Vec<u8>>, String> {
        self.inner.borrow_mut().list_get(key, name)
    }

    pub(crate) fn map_of(&self, key: &[u8], name: &str) -> Result<Entries, String> {
        self.inner.borrow_mut().map_entries(key, name)
    }

    pub(crate) fn broadcast_of(&self, name: &str) -> Result<Entries, String> {
        self.inner.borrow_mut().broadcast_entries(name)
    }

    /// Runs `f` on the state with the current key (or the host's refusal).
    fn keyed<T>(&self, state: &str, f: impl FnOnce(&mut Inner, &[u8]) -> Result<T, String>) -> Result<T, String> {
        let mut inner = self.inner.borrow_mut();
        let key = inner.current_key(state)?;
        f(&mut inner, &key)
    }
}

impl Inner {
    fn current_key(&self, what: &str) -> Result<Vec<u8>, String> {
        match &self.call {
            Call::Keyed { keys, current: Some(index) } => keys
                .get(*index)
                .cloned()
                .ok_or_else(|| format!("operator `{}`: select({index}) names no input of this call", self.operator)),
            _ => Err(format!(
                "operator `{}` used {what} with no current key; keyed state and timers can only be used while an \
                 element or a timer of a key is handled",
                self.operator
            )),
        }
    }

    /// The declared state `name`, checked to be of kind `used_as`: its TTL.
    fn declared(&self, name: &str, used_as: StateKind) -> Result<Option<i64>, String> {
        match self.declared.iter().find(|d| d.name == name) {
            Some(d) if d.kind == used_as => Ok(d.ttl_ms),
            Some(d) => Err(format!(
                "operator `{}` declared `{name}` as {declared} state but used it as {used} state; use the {declared} \
                 state calls, or declare it as {used} state under another name",
                self.operator,
                declared = kind_name(d.kind),
                used = kind_name(used_as),
            )),
            None => {
                let names: Vec<&str> = self.declared.iter().map(|d| d.name.as_str()).collect();
                let names = if names.is_empty() { "none".to_string() } else { names.join(", ") };
                Err(format!(
                    "operator `{}` used state `{name}`, which it did not declare (declared: {names}); declare every \
                     state in the plugin's describe() before using it",
                    self.operator
                ))
            }
        }
    }

    fn slot(&mut self, key: &[u8], name: &str) -> Option<&mut Slot> {
        self.store.keyed.get_mut(key).and_then(|states| states.get_mut(name))
    }

    fn put_slot(&mut self, key: &[u8], name: &str, slot: Option<Slot>) {
        match slot {
            Some(slot) => {
                self.store.keyed.entry(key.to_vec()).or_default().insert(name.to_string(), slot);
            }
            None => {
                if let Some(states) = self.store.keyed.get_mut(key) {
                    states.remove(name);
                    if states.is_empty() {
                        self.store.keyed.remove(key);
                    }
                }
            }
        }
    }

    fn stamp(&self, bytes: &[u8]) -> Stamped {
        Stamped { written_ms: self.processing_time, bytes: bytes.to_vec() }
    }

    fn value_get(&mut self, key: &[u8], name: &str) -> Result<Option<Vec<u8>>, String> {
        let ttl = self.declared(name, StateKind::Value)?;
        let now = self.processing_time;
        match self.slot(key, name) {
            Some(Slot::Value(v)) if live(v, ttl, now) => Ok(Some(v.bytes.clone())),
            Some(_) => {
                self.put_slot(key, name, None);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn list_get(&mut self, key: &[u8], name: &str) -> Result<Vec<Vec<u8>>, String> {
        let ttl = self.declared(name, StateKind::List)?;
        let now = self.processing_time;
        let Some(Slot::List(items)) = self.slot(key, name) else { return Ok(Vec::new()) };
        items.retain(|item| live(item, ttl, now));
        let out = items.iter().map(|item| item.bytes.clone()).collect::<Vec<_>>();
        if out.is_empty() {
            self.put_slot(key, name, None);
        }
        Ok(out)
    }

    fn map_live(&mut self, key: &[u8], name: &str) -> Result<Option<&mut BTreeMap<Vec<u8>, Stamped>>, String> {
        let ttl = self.declared(name, StateKind::Map)?;
        let now = self.processing_time;
        Ok(match self.slot(key, name) {
            Some(Slot::Map(entries)) => {
                entries.retain(|_, v| live(v, ttl, now));
                Some(entries)
            }
            _ => None,
        })
    }

    fn map_entries(&mut self, key: &[u8], name: &str) -> Result<Entries, String> {
        let entries = self.map_live(key, name)?;
        Ok(entries.map(|e| e.iter().map(|(k, v)| (k.clone(), v.bytes.clone())).collect()).unwrap_or_default())
    }

    fn broadcast_map(&mut self, name: &str) -> Result<&mut BTreeMap<Vec<u8>, Vec<u8>>, String> {
        self.declared(name, StateKind::BroadcastMap)?;
        Ok(self.store.broadcast.entry(name.to_string()).or_default())
    }

    fn broadcast_entries(&mut self, name: &str) -> Result<Entries, String> {
        Ok(self.broadcast_map(name)?.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    fn broadcast_writable(&self, name: &str) -> Result<(), String> {
        match self.call {
            Call::Broadcast => Ok(()),
            _ => Err(format!(
                "operator `{}`: broadcast state `{name}` is read-only while handling keyed elements and timers; \
                 write it from the broadcast side",
                self.operator
            )),
        }
    }
}

impl ProcessHost for MemoryHost {
    fn select(&self, index: u32) {
        if let Call::Keyed { current, .. } = &mut self.inner.borrow_mut().call {
            *current = Some(index as usize);
        }
    }

    fn value_get(&self, state: &str) -> Result<Option<Vec<u8>>, String> {
        self.keyed(state, |inner, key| inner.value_get(key, state))
    }

    fn value_set(&self, state: &str, value: &[u8]) -> Result<(), String> {
        self.keyed(state, |inner, key| {
            inner.declared(state, StateKind::Value)?;
            let slot = Slot::Value(inner.stamp(value));
            inner.put_slot(key, state, Some(slot));
            Ok(())
        })
    }

    fn value_clear(&self, state: &str) -> Result<(), String> {
        self.keyed(state, |inner, key| {
            inner.declared(state, StateKind::Value)?;
            inner.put_slot(key, state, None);
            Ok(())
        })
    }

    fn list_get(&self, state: &str) -> Result<Vec<Vec<u8>>, String> {
        self.keyed(state, |inner, key| inner.list_get(key, state))
    }

    fn list_append(&self, state: &str, value: &[u8]) -> Result<(), String> {
        self.keyed(state, |inner, key| {
            inner.declared(state, StateKind::List)?;
            let item = inner.stamp(value);
            match inner.slot(key, state) {
                Some(Slot::List(items)) => items.push(item),
                _ => inner.put_slot(key, state, Some(Slot::List(vec![item]))),
            }
            Ok(())
        })
    }

    fn list_clear(&self, state: &str) -> Result<(), String> {
        self.keyed(state, |inner, key| {
            inner.declared(state, StateKind::List)?;
            inner.put_slot(key, state, None);
            Ok(())
        })
    }

    fn map_get(&self, state: &str, user_key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        self.keyed(state, |inner, key| {
            Ok(inner.map_live(key, state)?.and_then(|m| m.get(user_key)).map(|v| v.bytes.clone()))
        })
    }

    fn map_put(&self, state: &str, user_key: &[u8], value: &[u8]) -> Result<(), String> {
        self.keyed(state, |inner, key| {
            inner.declared(state, StateKind::Map)?;
            let entry = inner.stamp(value);
            match inner.slot(key, state) {
                Some(Slot::Map(entries)) => {
                    entries.insert(user_key.to_vec(), entry);
                }
                _ => inner.put_slot(key, state, Some(Slot::Map(BTreeMap::from([(user_key.to_vec(), entry)])))),
            }
            Ok(())
        })
    }

    fn map_remove(&self, state: &str, user_key: &[u8]) -> Result<(), String> {
        self.keyed(state, |inner, key| {
            if let Some(entries) = inner.map_live(key, state)? {
                entries.remove(user_key);
            }
            Ok(())
        })
    }

    fn map_contains(&self, state: &str, user_key: &[u8]) -> Result<bool, String> {
        self.keyed(state, |inner, key| Ok(inner.map_live(key, state)?.is_some_and(|m| m.contains_key(user_key))))
    }

    fn map_entries(&self, state: &str) -> Result<Entries, String> {
        self.keyed(state, |inner, key| inner.map_entries(key, state))
    }

    fn broadcast_get(&self, state: &str, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        Ok(self.inner.borrow_mut().broadcast_map(state)?.get(key).cloned())
    }

    fn broadcast_put(&self, state: &str, key: &[u8], value: &[u8]) -> Result<(), String> {
        let mut inner = self.inner.borrow_mut();
        inner.broadcast_writable(state)?;
        inner.broadcast_map(state)?.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn broadcast_remove(&self, state: &str, key: &[u8]) -> Result<(), String> {
        let mut inner = self.inner.borrow_mut();
        inner.broadcast_writable(state)?;
        inner.broadcast_map(state)?.remove(key);
        Ok(())
    }

    fn broadcast_entries(&self, state: &str) -> Result<Entries, String> {
        self.inner.borrow_mut().broadcast_entries(state)
    }

    fn current_watermark(&self) -> Option<i64> {
        self.watermark()
    }

    fn current_processing_time(&self) -> i64 {
        self.processing_time()
    }

    /// Like the host, a refused timer call is logged, not returned (the WIT gives it no result).
    fn register_timer(&self, domain: TimeDomain, at_ms: i64) {
        let mut inner = self.inner.borrow_mut();
        match inner.current_key("a timer") {
            Ok(key) => {
                inner.store.timers[domain_index(domain)].insert((at_ms, key));
            }
            Err(e) => crate::log::warn(&format!("register timer: {e}")),
        }
    }

    fn delete_timer(&self, domain: TimeDomain, at_ms: i64) {
        let mut inner = self.inner.borrow_mut();
        match inner.current_key("a timer") {
            Ok(key) => {
                inner.store.timers[domain_index(domain)].remove(&(at_ms, key));
            }
            Err(e) => crate::log::warn(&format!("delete timer: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const STATES: &[StateDecl] = &[
        StateDecl::value::<u8>("v"),
        StateDecl::list::<u8>("l").with_ttl(Duration::from_millis(100)),
        StateDecl::map::<u8, u8>("m").with_ttl(Duration::from_millis(100)),
        StateDecl::broadcast_map::<u8, u8>("b"),
    ];

    fn host_with_keys(keys: &[&[u8]]) -> MemoryHost {
        let host = MemoryHost::new("op", STATES);
        host.begin_keyed(keys.iter().map(|k| k.to_vec()).collect());
        host
    }

    #[test]
    fn state_is_scoped_to_the_selected_key() {
        let host = host_with_keys(&[b"a", b"b"]);
        host.select(0);
        host.value_set("v", b"1").expect("declared");
        host.map_put("m", b"k", b"x").expect("declared");
        host.select(1);
        assert_eq!(host.value_get("v"), Ok(None));
        assert_eq!(host.map_contains("m", b"k"), Ok(false));
        host.select(0);
        assert_eq!(host.value_get("v"), Ok(Some(b"1".to_vec())));
        assert_eq!(host.value_of(b"a", "v"), Ok(Some(b"1".to_vec())));
        host.value_clear("v").expect("declared");
        assert_eq!(host.value_of(b"a", "v"), Ok(None));
    }

    #[test]
    fn undeclared_and_wrong_kind_calls_are_refused_as_the_host_words_them() {
        let host = host_with_keys(&[b"a"]);
        host.select(0);
        let undeclared = host.value_get("nope").expect_err("undeclared");
        assert_eq!(
            undeclared,
            "operator `op` used state `nope`, which it did not declare (declared: v, l, m, b); declare every state \
             in the plugin's describe() before using it"
        );
        let wrong = host.list_append("v", b"1").expect_err("wrong kind");
        assert!(wrong.contains("declared `v` as value state but used it as list state"), "{wrong}");
    }

    #[test]
    fn keyed_state_needs_a_selected_key_and_broadcast_state_the_broadcast_side() {
        let host = host_with_keys(&[b"a"]);
        let error = host.value_get("v").expect_err("nothing selected");
        assert!(error.contains("with no current key"), "{error}");
        host.select(0);
        let error = host.broadcast_put("b", b"k", b"v").expect_err("keyed side");
        assert!(error.contains("read-only while handling keyed elements"), "{error}");
        host.begin_broadcast();
        host.broadcast_put("b", b"k", b"v").expect("broadcast side");
        assert!(host.value_get("v").is_err(), "no key on the broadcast side");
        host.register_timer(TimeDomain::EventTime, 5);
        assert_eq!(host.timer_count(TimeDomain::EventTime), 0, "no key, no timer");
        assert_eq!(host.broadcast_get("b", b"k"), Ok(Some(b"v".to_vec())));
    }

    #[test]
    fn entries_expire_one_by_one_after_their_ttl_in_processing_time() {
        let host = host_with_keys(&[b"a"]);
        host.select(0);
        host.list_append("l", b"1").expect("declared");
        host.map_put("m", b"x", b"1").expect("declared");
        host.advance_processing_time(60);
        host.list_append("l", b"2").expect("declared");
        host.map_put("m", b"y", b"2").expect("declared");
        host.advance_processing_time(99);
        assert_eq!(host.list_get("l").expect("declared").len(), 2);
        host.advance_processing_time(100);
        assert_eq!(host.list_get("l"), Ok(vec![b"2".to_vec()]));
        assert_eq!(host.map_entries("m"), Ok(vec![(b"y".to_vec(), b"2".to_vec())]));
        host.advance_processing_time(160);
        assert_eq!(host.list_get("l"), Ok(vec![]));
        assert_eq!(host.map_get("m", b"y"), Ok(None));
        host.value_set("v", b"1").expect("declared");
        host.advance_processing_time(i64::MAX);
        assert_eq!(host.value_get("v"), Ok(Some(b"1".to_vec())), "no TTL: never expires");
    }

    #[test]
    fn timers_are_one_per_key_and_time_and_pop_in_time_then_key_order() {
        let host = host_with_keys(&[b"b", b"a"]);
        host.select(0);
        host.register_timer(TimeDomain::EventTime, 20);
        host.register_timer(TimeDomain::EventTime, 10);
        host.register_timer(TimeDomain::EventTime, 10);
        host.register_timer(TimeDomain::ProcessingTime, 10);
        host.select(1);
        host.register_timer(TimeDomain::EventTime, 20);
        host.register_timer(TimeDomain::EventTime, 30);
        host.delete_timer(TimeDomain::EventTime, 30);
        assert_eq!(
            host.timers_of(b"b"),
            [(TimeDomain::EventTime, 10), (TimeDomain::EventTime, 20), (TimeDomain::ProcessingTime, 10)]
        );
        assert_eq!(
            host.pop_due(TimeDomain::EventTime, 20),
            [(10, b"b".to_vec()), (20, b"a".to_vec()), (20, b"b".to_vec())]
        );
        assert_eq!(host.timer_count(TimeDomain::EventTime), 0);
        assert_eq!(host.timer_count(TimeDomain::ProcessingTime), 1);
    }

    #[test]
    fn a_snapshot_restores_state_and_timers() {
        let host = host_with_keys(&[b"a"]);
        host.select(0);
        host.value_set("v", b"1").expect("declared");
        let before = host.snapshot();
        host.value_set("v", b"2").expect("declared");
        host.register_timer(TimeDomain::EventTime, 1);
        host.restore(before);
        assert_eq!(host.value_get("v"), Ok(Some(b"1".to_vec())));
        assert_eq!(host.timer_count(TimeDomain::EventTime), 0);
    }

    #[test]
    fn clocks_only_move_forward() {
        let host = MemoryHost::new("op", STATES);
        assert_eq!(host.watermark(), None);
        assert_eq!(host.advance_watermark(10), 10);
        assert_eq!(host.advance_watermark(5), 10);
        assert_eq!(host.advance_processing_time(7), 7);
        assert_eq!(host.advance_processing_time(3), 7);
    }
}
