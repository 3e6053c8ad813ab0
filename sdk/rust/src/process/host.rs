//! The host imports a process function reaches, behind one trait.
//!
//! The component implements [`ProcessHost`] with the WIT imports (`context`, `state`,
//! `broadcast`, `timers`), and [`crate::testing::ProcessHarness`] with in-memory maps. The
//! dispatcher, the [`Context`](super::Context) and the typed state handles only ever see this
//! trait, so the code a plugin's unit tests run is the code the host runs.
//!
//! The methods mirror the WIT functions one to one: bytes in, bytes out, and the host's
//! refusals as `Err(String)`. They take `&self` because a call is a message to the outside
//! world; an implementation with local state (the harness) keeps it in a `RefCell`.

use super::TimeDomain;

/// The entries of a map or broadcast-map state: `(user key, value)` as MessagePack bytes.
pub(crate) type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// What the host offers a process function during one call (see the module docs).
pub(crate) trait ProcessHost {
    /// State and timer calls that follow refer to the key of input `index` of the call.
    fn select(&self, index: u32);

    fn value_get(&self, state: &str) -> Result<Option<Vec<u8>>, String>;
    fn value_set(&self, state: &str, value: &[u8]) -> Result<(), String>;
    fn value_clear(&self, state: &str) -> Result<(), String>;

    fn list_get(&self, state: &str) -> Result<Vec<Vec<u8>>, String>;
    fn list_append(&self, state: &str, value: &[u8]) -> Result<(), String>;
    fn list_clear(&self, state: &str) -> Result<(), String>;

    fn map_get(&self, state: &str, key: &[u8]) -> Result<Option<Vec<u8>>, String>;
    fn map_put(&self, state: &str, key: &[u8], value: &[u8]) -> Result<(), String>;
    fn map_remove(&self, state: &str, key: &[u8]) -> Result<(), String>;
    fn map_contains(&self, state: &str, key: &[u8]) -> Result<bool, String>;
    fn map_entries(&self, state: &str) -> Result<Entries, String>;

    fn broadcast_get(&self, state: &str, key: &[u8]) -> Result<Option<Vec<u8>>, String>;
    fn broadcast_put(&self, state: &str, key: &[u8], value: &[u8]) -> Result<(), String>;
    fn broadcast_remove(&self, state: &str, key: &[u8]) -> Result<(), String>;
    fn broadcast_entries(&self, state: &str) -> Result<Entries, String>;

    fn current_watermark(&self) -> Option<i64>;
    fn current_processing_time(&self) -> i64;
    /// Registering a timer that exists is a no-op; the WIT gives timer calls no result (the
    /// host logs a refused one).
    fn register_timer(&self, domain: TimeDomain, at_ms: i64);
    fn delete_timer(&self, domain: TimeDomain, at_ms: i64);
}
