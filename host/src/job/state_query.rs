//! `weir state get JOB OPERATOR KEY`: what a job's operator keeps for one key, read-only.
//!
//! The job's state directory is copied to a temporary one and the copy is opened, so the
//! query never writes to the job's state and works while the job runs (it holds the
//! database's lock). The copy shows the state as of the job's last flush.

use std::path::PathBuf;

use serde_json::{Value, json};
use thiserror::Error;

use super::JobSpec;
use crate::state::{StateConfig, StateError, StateStore, StoredState, TimeDomain};

#[derive(Debug, Error)]
pub enum StateQueryError {
    #[error("job `{job}` keeps no state between runs: set `state_dir` in its job file to keep and query it")]
    NoStateDir { job: String },
    #[error("job `{job}` has no state yet: {} does not exist (run the job first)", dir.display())]
    NoState { job: String, dir: PathBuf },
    #[error("cannot copy the state in {} to read it: {source}", dir.display())]
    Copy { dir: PathBuf, source: std::io::Error },
    #[error("no operator of job `{job}` matches `{wanted}`; operators with state: {known}")]
    UnknownOperator { job: String, wanted: String, known: String },
    #[error("`{wanted}` matches several operators ({matches}): give more of the name")]
    AmbiguousOperator { wanted: String, matches: String },
    #[error("reading the state: {0} (if the job was writing, try again)")]
    State(#[from] StateError),
}

/// What `operator` (its full name, or a part of it that only one operator's name contains)
/// of the job keeps for `key` (JSON, e.g. `42` or `"u1"`; other text is a string key), as
/// JSON: `{operator, key, key_group, state: {name: value}, timers: [{domain, at}]}`.
pub fn query(spec: &JobSpec, operator: &str, key: &str) -> Result<Value, StateQueryError> {
    let job = spec.name.clone();
    let dir = spec
        .state_dir
        .clone()
        .or_else(|| spec.checkpoints.as_ref().map(|c| c.state_dir()))
        .ok_or_else(|| StateQueryError::NoStateDir { job: job.clone() })?;
    if !dir.is_dir() {
        return Err(StateQueryError::NoState { job, dir });
    }
    let copy = tempfile::tempdir().map_err(|source| StateQueryError::Copy { dir: dir.clone(), source })?;
    crate::state::copy_database(&dir, copy.path())
        .map_err(|source| StateQueryError::Copy { dir: dir.clone(), source })?;
    let store = StateStore::open(copy.path(), StateConfig::default())?;
    let name = find_operator(&store.operators(), operator, &job)?;

    let key_json: Value = serde_json::from_str(key).unwrap_or_else(|_| Value::String(key.to_string()));
    let mut key_bytes = Vec::new();
    crate::record::json_to_msgpack(key_json.to_string().as_bytes(), &mut key_bytes)
        .expect("a serde_json value is valid JSON");
    let max_parallelism = spec.max_parallelism.unwrap_or(crate::state::DEFAULT_MAX_PARALLELISM);
    let report = store.read_key(&name, &key_bytes, max_parallelism)?;

    let mut state = serde_json::Map::new();
    for (state_name, stored) in report.states {
        let shown = match stored {
            StoredState::Value(v) => v.as_deref().map_or(Value::Null, show),
            StoredState::List(items) => Value::Array(items.iter().map(|v| show(v)).collect()),
            StoredState::Map(entries) | StoredState::Broadcast(entries) => show_entries(&entries),
        };
        state.insert(state_name, shown);
    }
    let timers: Vec<Value> = report
        .timers
        .iter()
        .map(|(domain, at)| {
            let domain = match domain {
                TimeDomain::EventTime => "event-time",
                TimeDomain::ProcessingTime => "processing-time",
            };
            json!({"domain": domain, "at": at})
        })
        .collect();
    Ok(json!({"operator": name, "key": key_json, "key_group": report.key_group, "state": state, "timers": timers}))
}

/// The one operator named `wanted`, or whose name contains it.
fn find_operator(operators: &[String], wanted: &str, job: &str) -> Result<String, StateQueryError> {
    if let Some(exact) = operators.iter().find(|o| *o == wanted) {
        return Ok(exact.clone());
    }
    let matches: Vec<&String> = operators.iter().filter(|o| o.contains(wanted)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(StateQueryError::UnknownOperator {
            job: job.to_string(),
            wanted: wanted.to_string(),
            known: if operators.is_empty() { "none".into() } else { operators.join(", ") },
        }),
        many => Err(StateQueryError::AmbiguousOperator {
            wanted: wanted.to_string(),
            matches: many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// A stored value as JSON: plugins store MessagePack (Rust SDK) or CPython marshal (Python
/// SDK); JSON text is read too, and anything else is shown as escaped bytes.
fn show(bytes: &[u8]) -> Value {
    let mut rest = bytes;
    if let Ok(v) = rmpv::decode::read_value(&mut rest)
        && rest.is_empty()
    {
        return crate::record::to_json_value(&v);
    }
    if let Ok(v) = serde_json::from_slice(bytes) {
        return v;
    }
    let mut msgpack = Vec::new();
    if crate::record::marshal::marshal_to_msgpack(bytes, &mut msgpack).is_ok() {
        return show(&msgpack);
    }
    json!({"bytes": bytes.escape_ascii().to_string()})
}

/// Map entries as an object when every user key is a string, else as `[key, value]` pairs.
fn show_entries(entries: &[(Vec<u8>, Vec<u8>)]) -> Value {
    let shown: Vec<(Value, Value)> = entries.iter().map(|(k, v)| (show(k), show(v))).collect();
    if shown.iter().all(|(k, _)| k.is_string()) {
        let object = shown.into_iter().map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v)).collect();
        Value::Object(object)
    } else {
        Value::Array(shown.into_iter().map(|(k, v)| json!([k, v])).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_match_by_full_name_or_a_unique_part() {
        let ops = ["process[2] fraud.fraud_detector".to_string(), "process[4] fraud.count".to_string()];
        assert_eq!(find_operator(&ops, "fraud_detector", "j").unwrap(), ops[0]);
        assert_eq!(find_operator(&ops, "process[4] fraud.count", "j").unwrap(), ops[1]);
        assert!(matches!(find_operator(&ops, "process", "j"), Err(StateQueryError::AmbiguousOperator { .. })));
        let err = find_operator(&ops, "nope", "j").unwrap_err().to_string();
        assert!(err.contains("operators with state: process[2] fraud.fraud_detector, process[4] fraud.count"), "{err}");
    }

    #[test]
    fn values_show_as_json_whichever_sdk_stored_them() {
        assert_eq!(show(&rmp_serde::to_vec_named(&json!({"a": 1})).unwrap()), json!({"a": 1}));
        assert_eq!(show(br#"{"a": 1}"#), json!({"a": 1}));
        assert_eq!(show(&[0xc1, 0xc1]), json!({"bytes": "\\xc1\\xc1"}));
        // marshal.dumps(7, 2) and marshal.dumps("ab", 2), as the Python SDK stores them
        assert_eq!(show(&[0x69, 7, 0, 0, 0]), json!(7));
        assert_eq!(show(&[0x75, 2, 0, 0, 0, b'a', b'b']), json!("ab"));
        let entries = vec![(rmp_serde::to_vec(&"x").unwrap(), rmp_serde::to_vec(&2).unwrap())];
        assert_eq!(show_entries(&entries), json!({"x": 2}));
        let entries = vec![(rmp_serde::to_vec(&7).unwrap(), rmp_serde::to_vec(&2).unwrap())];
        assert_eq!(show_entries(&entries), json!([[7, 2]]));
    }
}
