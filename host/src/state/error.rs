//! What can go wrong with state, said so that the reader knows what to do.

use std::path::PathBuf;

use super::{KeyGroupRange, StateKind};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "cannot open the state database at {path}: {source}; check that the directory is writable and that no \
         other weir process is running the same job"
    )]
    Open { path: PathBuf, source: sled::Error },

    #[error(
        "state storage failed while {action} for operator `{operator}`: {source}; the job's data directory may be full or damaged"
    )]
    Storage { operator: String, action: &'static str, source: sled::Error },

    #[error(
        "operator `{operator}` used state `{name}`, which it did not declare (declared: {}); declare every \
         state in the plugin's describe() before using it",
        list(declared)
    )]
    UndeclaredState { operator: String, name: String, declared: Vec<String> },

    #[error(
        "operator `{operator}` declared `{name}` as {declared} state but used it as {used_as} state; use the \
         {declared} state calls, or declare it as {used_as} state under another name"
    )]
    WrongKind { operator: String, name: String, declared: StateKind, used_as: StateKind },

    #[error("operator `{operator}` declares state `{name}` twice; give each state its own name")]
    DuplicateState { operator: String, name: String },

    #[error(
        "operator `{operator}` declares `{name}` as {declared} state, but the stored state of that name is \
         {stored} state; rename the state, or start the job without the old state"
    )]
    IncompatibleState { operator: String, name: String, stored: StateKind, declared: StateKind },

    #[error("operator `{operator}` declares an invalid state `{name}`: {reason}")]
    InvalidDescriptor { operator: String, name: String, reason: &'static str },

    #[error(
        "operator `{operator}` used {what} with no current key; keyed state and timers can only be used while \
         an element or a timer of a key is handled"
    )]
    NoCurrentKey { operator: String, what: String },

    #[error(
        "key group {key_group} does not belong to this instance of operator `{operator}`, which owns key groups \
         {owned}; records must be routed by key group to the instance that owns it"
    )]
    ForeignKeyGroup { operator: String, key_group: u16, owned: KeyGroupRange },

    #[error(
        "an instance of operator `{operator}` was given no key groups; an operator's parallelism cannot exceed its \
         max parallelism (128 key groups by default)"
    )]
    NoKeyGroups { operator: String },

    #[error("operator `{operator}` declares more than {max} states; merge some into a map state", max = u16::MAX - 1)]
    TooManyStates { operator: String },

    #[error(
        "a stored entry of operator `{operator}` is damaged ({detail}); the data directory was changed by \
         something other than this weir version: restore the job from a checkpoint or a savepoint"
    )]
    Corrupt { operator: String, detail: String },
}

fn list(names: &[String]) -> String {
    if names.is_empty() { "none".to_string() } else { names.join(", ") }
}

impl StateError {
    pub(super) fn storage<'a>(operator: &'a str, action: &'static str) -> impl FnOnce(sled::Error) -> StateError + 'a {
        move |source| StateError::Storage { operator: operator.to_string(), action, source }
    }
}
