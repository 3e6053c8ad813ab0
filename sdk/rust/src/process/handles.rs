//! Typed handles on host-owned state: [`ValueState`], [`ListState`], [`MapState`] and the two
//! faces of broadcast state, [`ReadOnlyBroadcastState`] and [`BroadcastState`].
//!
//! A handle is a state name and a type: every method is one host call, with values and map
//! keys encoded as MessagePack (structs as maps with field names, as everywhere in Weir).
//! Nothing is cached in the guest, so a handle never disagrees with the host, and a plugin
//! upgrade (a new instance) sees exactly what the old one wrote.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::StateError;
use super::host::ProcessHost;

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], what: impl FnOnce() -> String) -> Result<T, StateError> {
    rmp_serde::from_slice(bytes).map_err(|e| StateError::Decode {
        what: what(),
        ty: std::any::type_name::<T>(),
        message: e.to_string(),
    })
}

fn encode<T: Serialize + ?Sized>(value: &T, what: impl FnOnce() -> String) -> Result<Vec<u8>, StateError> {
    rmp_serde::to_vec_named(value).map_err(|e| StateError::Encode { what: what(), message: e.to_string() })
}

fn host<T>(state: &str, result: Result<T, String>) -> Result<T, StateError> {
    result.map_err(|message| StateError::Host { state: state.to_string(), message })
}

fn entries<K: DeserializeOwned, V: DeserializeOwned>(
    state: &str,
    kind: &str,
    raw: Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<Vec<(K, V)>, StateError> {
    raw.iter()
        .map(|(k, v)| {
            let key = decode(k, || format!("a key of {kind} state `{state}`"))?;
            let value = decode(v, || format!("a value of {kind} state `{state}`"))?;
            Ok((key, value))
        })
        .collect()
}

/// One value per key (Flink's `ValueState`): `ctx.value::<T>(name)`.
pub struct ValueState<'a, T> {
    host: &'a dyn ProcessHost,
    name: &'a str,
    _value: PhantomData<fn() -> T>,
}

impl<'a, T: Serialize + DeserializeOwned> ValueState<'a, T> {
    pub(crate) fn new(host: &'a dyn ProcessHost, name: &'a str) -> Self {
        ValueState { host, name, _value: PhantomData }
    }

    /// The current key's value, or `None` if it has none (never set, cleared, or expired).
    pub fn get(&self) -> Result<Option<T>, StateError> {
        let stored = host(self.name, self.host.value_get(self.name))?;
        stored.map(|bytes| decode(&bytes, || format!("the value of state `{}`", self.name))).transpose()
    }

    pub fn set(&self, value: &T) -> Result<(), StateError> {
        let bytes = encode(value, || format!("the value of state `{}`", self.name))?;
        host(self.name, self.host.value_set(self.name, &bytes))
    }

    pub fn clear(&self) -> Result<(), StateError> {
        host(self.name, self.host.value_clear(self.name))
    }
}

/// A list per key, appended to (Flink's `ListState`): `ctx.list::<T>(name)`.
pub struct ListState<'a, T> {
    host: &'a dyn ProcessHost,
    name: &'a str,
    _value: PhantomData<fn() -> T>,
}

impl<'a, T: Serialize + DeserializeOwned> ListState<'a, T> {
    pub(crate) fn new(host: &'a dyn ProcessHost, name: &'a str) -> Self {
        ListState { host, name, _value: PhantomData }
    }

    /// The current key's elements, in append order (empty if none).
    pub fn get(&self) -> Result<Vec<T>, StateError> {
        let stored = host(self.name, self.host.list_get(self.name))?;
        stored.iter().map(|bytes| decode(bytes, || format!("an element of list state `{}`", self.name))).collect()
    }

    /// Appends one element (the host writes it alone; the list is not rewritten).
    pub fn append(&self, value: &T) -> Result<(), StateError> {
        let bytes = encode(value, || format!("an element of list state `{}`", self.name))?;
        host(self.name, self.host.list_append(self.name, &bytes))
    }

    pub fn clear(&self) -> Result<(), StateError> {
        host(self.name, self.host.list_clear(self.name))
    }
}

/// A map per key (Flink's `MapState`): `ctx.map::<K, V>(name)`. Entries come back ordered
/// by the MessagePack bytes of their keys.
pub struct MapState<'a, K, V> {
    host: &'a dyn ProcessHost,
    name: &'a str,
    _entries: PhantomData<fn() -> (K, V)>,
}

impl<'a, K, V> MapState<'a, K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    pub(crate) fn new(host: &'a dyn ProcessHost, name: &'a str) -> Self {
        MapState { host, name, _entries: PhantomData }
    }

    fn key(&self, key: &K) -> Result<Vec<u8>, StateError> {
        encode(key, || format!("a key of map state `{}`", self.name))
    }

    pub fn get(&self, key: &K) -> Result<Option<V>, StateError> {
        let stored = host(self.name, self.host.map_get(self.name, &self.key(key)?))?;
        stored.map(|bytes| decode(&bytes, || format!("a value of map state `{}`", self.name))).transpose()
    }

    pub fn put(&self, key: &K, value: &V) -> Result<(), StateError> {
        let value = encode(value, || format!("a value of map state `{}`", self.name))?;
        host(self.name, self.host.map_put(self.name, &self.key(key)?, &value))
    }

    /// Removing a key that is not there is a no-op.
    pub fn remove(&self, key: &K) -> Result<(), StateError> {
        host(self.name, self.host.map_remove(self.name, &self.key(key)?))
    }

    pub fn contains(&self, key: &K) -> Result<bool, StateError> {
        host(self.name, self.host.map_contains(self.name, &self.key(key)?))
    }

    /// Every entry of the current key's map.
    pub fn entries(&self) -> Result<Vec<(K, V)>, StateError> {
        entries(self.name, "map", host(self.name, self.host.map_entries(self.name))?)
    }
}

/// Broadcast state as the keyed side sees it: read-only (`ctx.broadcast::<K, V>(name)` in
/// `process_element` and `on_timer`).
pub struct ReadOnlyBroadcastState<'a, K, V> {
    host: &'a dyn ProcessHost,
    name: &'a str,
    _entries: PhantomData<fn() -> (K, V)>,
}

impl<'a, K, V> ReadOnlyBroadcastState<'a, K, V>
where
    K: Serialize + DeserializeOwned,
    V: DeserializeOwned,
{
    pub(crate) fn new(host: &'a dyn ProcessHost, name: &'a str) -> Self {
        ReadOnlyBroadcastState { host, name, _entries: PhantomData }
    }

    pub fn get(&self, key: &K) -> Result<Option<V>, StateError> {
        broadcast_get(self.host, self.name, key)
    }

    pub fn contains(&self, key: &K) -> Result<bool, StateError> {
        Ok(broadcast_get::<K, V>(self.host, self.name, key)?.is_some())
    }

    /// Every entry, ordered by the MessagePack bytes of their keys.
    pub fn entries(&self) -> Result<Vec<(K, V)>, StateError> {
        entries(self.name, "broadcast", host(self.name, self.host.broadcast_entries(self.name))?)
    }
}

/// Broadcast state as the broadcast side sees it: writable
/// (`ctx.broadcast::<K, V>(name)` in `process_broadcast_element`).
pub struct BroadcastState<'a, K, V> {
    host: &'a dyn ProcessHost,
    name: &'a str,
    _entries: PhantomData<fn() -> (K, V)>,
}

impl<'a, K, V> BroadcastState<'a, K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    pub(crate) fn new(host: &'a dyn ProcessHost, name: &'a str) -> Self {
        BroadcastState { host, name, _entries: PhantomData }
    }

    pub fn get(&self, key: &K) -> Result<Option<V>, StateError> {
        broadcast_get(self.host, self.name, key)
    }

    pub fn contains(&self, key: &K) -> Result<bool, StateError> {
        Ok(broadcast_get::<K, V>(self.host, self.name, key)?.is_some())
    }

    pub fn put(&self, key: &K, value: &V) -> Result<(), StateError> {
        let key = encode(key, || format!("a key of broadcast state `{}`", self.name))?;
        let value = encode(value, || format!("a value of broadcast state `{}`", self.name))?;
        host(self.name, self.host.broadcast_put(self.name, &key, &value))
    }

    /// Removing a key that is not there is a no-op.
    pub fn remove(&self, key: &K) -> Result<(), StateError> {
        let key = encode(key, || format!("a key of broadcast state `{}`", self.name))?;
        host(self.name, self.host.broadcast_remove(self.name, &key))
    }

    /// Every entry, ordered by the MessagePack bytes of their keys.
    pub fn entries(&self) -> Result<Vec<(K, V)>, StateError> {
        entries(self.name, "broadcast", host(self.name, self.host.broadcast_entries(self.name))?)
    }
}

fn broadcast_get<K: Serialize, V: DeserializeOwned>(
    h: &dyn ProcessHost,
    name: &str,
    key: &K,
) -> Result<Option<V>, StateError> {
    let key = encode(key, || format!("a key of broadcast state `{name}`"))?;
    let stored = host(name, h.broadcast_get(name, &key))?;
    stored.map(|bytes| decode(&bytes, || format!("a value of broadcast state `{name}`"))).transpose()
}
