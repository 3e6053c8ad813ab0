//! State declarations: the names, kinds, value types and TTLs a process function uses.
//!
//! The host keeps state per operator, and refuses a call on a state the function did not
//! declare or of another kind; it also keeps each state's value type, so a new version of
//! the plugin must declare the same type to take the state over. Declarations are `const`
//! (a function lists them in [`KeyedProcessFunction::STATES`](super::KeyedProcessFunction::STATES)),
//! and [`check_states`] runs while `plugin!` builds its table, so two states of one name or a
//! TTL on broadcast state are compile errors, not job failures.

use std::fmt;
use std::time::Duration;

/// What a named state holds; mirrors the WIT `state-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateKind {
    /// One value per key (Flink's `ValueState`).
    Value,
    /// A list of values per key, appended to (`ListState`).
    List,
    /// A map of user keys to values per key (`MapState`).
    Map,
    /// A map that is not keyed: written by the broadcast side, read by the keyed side
    /// (`BroadcastState`).
    BroadcastMap,
}

impl StateKind {
    /// The WIT spelling, e.g. `broadcast-map`.
    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::Value => "value",
            StateKind::List => "list",
            StateKind::Map => "map",
            StateKind::BroadcastMap => "broadcast-map",
        }
    }
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type TypeName = fn() -> &'static str;

/// One piece of named state a process function uses: what `describe` reports in
/// `function-info.states`.
///
/// ```
/// use std::time::Duration;
/// use weir_sdk::process::StateDecl;
///
/// const STATES: &[StateDecl] = &[
///     StateDecl::value::<u64>("count"),
///     StateDecl::list::<String>("seen").with_ttl(Duration::from_secs(3600)),
///     StateDecl::map::<String, u64>("per_item"),
///     StateDecl::broadcast_map::<String, f64>("thresholds"),
/// ];
/// assert_eq!(STATES[2].value_type(), "alloc::string::String -> u64");
/// ```
#[derive(Clone, Copy)]
pub struct StateDecl {
    name: &'static str,
    kind: StateKind,
    /// The user-key type of map and broadcast-map state.
    key_type: Option<TypeName>,
    value_type: TypeName,
    ttl: Option<Duration>,
}

impl StateDecl {
    const fn new(name: &'static str, kind: StateKind, key_type: Option<TypeName>, value_type: TypeName) -> Self {
        StateDecl { name, kind, key_type, value_type, ttl: None }
    }

    /// Value state holding a `T` per key (`ctx.value::<T>(name)`).
    pub const fn value<T>(name: &'static str) -> Self {
        Self::new(name, StateKind::Value, None, std::any::type_name::<T>)
    }

    /// List state of `T` per key (`ctx.list::<T>(name)`).
    pub const fn list<T>(name: &'static str) -> Self {
        Self::new(name, StateKind::List, None, std::any::type_name::<T>)
    }

    /// Map state from `K` to `V` per key (`ctx.map::<K, V>(name)`).
    pub const fn map<K, V>(name: &'static str) -> Self {
        Self::new(name, StateKind::Map, Some(std::any::type_name::<K>), std::any::type_name::<V>)
    }

    /// Broadcast map state from `K` to `V` (`ctx.broadcast::<K, V>(name)`). It cannot have
    /// a TTL: every parallel instance must hold the same entries.
    pub const fn broadcast_map<K, V>(name: &'static str) -> Self {
        Self::new(name, StateKind::BroadcastMap, Some(std::any::type_name::<K>), std::any::type_name::<V>)
    }

    /// Values not written for `ttl` (processing time) read as absent and are dropped, as
    /// with Flink's state TTL (`OnCreateAndWrite`, `NeverReturnExpired`). List and map
    /// entries expire one by one.
    pub const fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The name calls refer to it by.
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn kind(&self) -> StateKind {
        self.kind
    }

    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// The TTL in ms, as the WIT `ttl-ms` carries it.
    pub fn ttl_ms(&self) -> Option<u64> {
        self.ttl.map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
    }

    /// What the values hold, as `describe` reports it: the Rust type name, `K -> V` for maps.
    pub fn value_type(&self) -> String {
        describe_type(self.key_type.map(|k| k()), (self.value_type)())
    }

    /// Whether this declaration holds `key` / `value` types (`key` for maps only).
    pub(crate) fn holds(&self, key: Option<&'static str>, value: &'static str) -> bool {
        self.key_type.map(|k| k()) == key && (self.value_type)() == value
    }
}

/// `K -> V` for maps, `T` otherwise.
pub(crate) fn describe_type(key: Option<&str>, value: &str) -> String {
    match key {
        Some(key) => format!("{key} -> {value}"),
        None => value.to_string(),
    }
}

impl fmt::Debug for StateDecl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateDecl")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("value_type", &self.value_type())
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl PartialEq for StateDecl {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.kind == other.kind
            && self.ttl == other.ttl
            && self.key_type.map(|k| k()) == other.key_type.map(|k| k())
            && (self.value_type)() == (other.value_type)()
    }
}

/// Panics (a compile error when `plugin!` evaluates it) on declarations the host would
/// refuse: an empty name, a name declared twice, a TTL on broadcast state.
pub(crate) const fn check_states(states: &[StateDecl]) {
    let mut i = 0;
    while i < states.len() {
        let decl = &states[i];
        if decl.name.is_empty() {
            panic!("a process function declares a state with an empty name");
        }
        if matches!(decl.kind, StateKind::BroadcastMap) && decl.ttl.is_some() {
            panic!("broadcast state cannot have a TTL: every parallel instance must hold the same entries");
        }
        let mut j = i + 1;
        while j < states.len() {
            if str_eq(decl.name, states[j].name) {
                panic!("a process function declares two states with the same name; give each state its own name");
            }
            j += 1;
        }
        i += 1;
    }
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panic_message(states: &'static [StateDecl]) -> Option<String> {
        let result = std::panic::catch_unwind(|| check_states(states));
        result.err().map(|p| p.downcast_ref::<&str>().map(|s| s.to_string()).unwrap_or_default())
    }

    #[test]
    fn declarations_report_their_types_and_ttl() {
        let decl = StateDecl::list::<Vec<u8>>("seen").with_ttl(Duration::from_millis(1500));
        assert_eq!((decl.name(), decl.kind(), decl.ttl_ms()), ("seen", StateKind::List, Some(1500)));
        assert_eq!(decl.value_type(), "alloc::vec::Vec<u8>");
        assert_eq!(StateDecl::broadcast_map::<u32, bool>("b").value_type(), "u32 -> bool");
        assert!(StateDecl::map::<u32, bool>("m").holds(Some("u32"), "bool"));
        assert!(!StateDecl::map::<u32, bool>("m").holds(None, "bool"));
        assert!(!StateDecl::value::<u32>("v").holds(None, "u64"));
    }

    #[test]
    fn valid_declarations_pass() {
        const OK: &[StateDecl] = &[
            StateDecl::value::<u64>("a"),
            StateDecl::value::<u64>("ab"),
            StateDecl::map::<String, u64>("b").with_ttl(Duration::from_secs(1)),
        ];
        assert_eq!(panic_message(OK), None);
    }

    #[test]
    fn invalid_declarations_are_refused() {
        const TWICE: &[StateDecl] = &[StateDecl::value::<u64>("count"), StateDecl::list::<u64>("count")];
        const EMPTY: &[StateDecl] = &[StateDecl::value::<u64>("")];
        const TTL: &[StateDecl] = &[StateDecl::broadcast_map::<u8, u8>("r").with_ttl(Duration::from_secs(1))];
        assert!(panic_message(TWICE).is_some_and(|m| m.contains("two states with the same name")));
        assert!(panic_message(EMPTY).is_some_and(|m| m.contains("empty name")));
        assert!(panic_message(TTL).is_some_and(|m| m.contains("cannot have a TTL")));
    }
}
