//! Dead letters: records that failed, with why, so that nothing is lost silently.
//!
//! A record goes here when a plugin rejects it, traps or times out on it, when it cannot be
//! decoded (a malformed input line), or when a host operator cannot read it (a missing key
//! field). The shape follows fluvio's `SmartModuleRuntimeError`: where it failed, what kind of
//! failure, the error text, and the record itself.

use serde::Serialize;
use tokio::sync::mpsc;

use super::{ConnectorError, SinkWriter, TaskStats};
use crate::record::{self, Batch};

/// One failed record.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The operator it failed in, e.g. `map[0] upper@0.1.0.upper` or `source file`.
    pub operator: String,
    /// The operator's uid (stable across plugin versions and edits of the job), stamped by
    /// the stage that ships the letter; `None` for sources.
    pub uid: Option<String>,
    /// `error`, `trap`, `timeout`, `memory-limit`, `encoding`, `malformed-input`, `missing-field`.
    pub kind: String,
    pub error: String,
    /// Where the record came from when the source knows (e.g. `access.log:17`).
    pub origin: Option<String>,
    pub payload: Payload,
    pub key: Option<Vec<u8>>,
}

/// The failed record's bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A MessagePack record value.
    Record(Vec<u8>),
    /// Raw input that never became a record (a line that is not valid JSON).
    Raw(Vec<u8>),
}

/// Failed records of one batch, collected by operators and shipped by the task.
#[derive(Debug, Default)]
pub struct DeadLetters(pub Vec<DeadLetter>);

impl DeadLetters {
    pub fn push(&mut self, d: DeadLetter) {
        self.0.push(d);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The dead-letter kind of records too late for their windows.
pub const LATE: &str = "late";

#[derive(Serialize)]
struct Line<'a> {
    operator: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<&'a str>,
    kind: &'a str,
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<String>,
}

impl DeadLetter {
    /// Row `i` of `batch` failed in `operator`: the letter carries the row and its key.
    pub fn of_row(operator: &str, kind: &str, error: String, batch: &crate::record::Batch, i: usize) -> Self {
        DeadLetter {
            operator: operator.to_string(),
            uid: None,
            kind: kind.to_string(),
            error,
            origin: None,
            payload: Payload::Record(batch.value(i).to_vec()),
            key: batch.key(i).map(<[u8]>::to_vec),
        }
    }

    /// The dead letter as a record (a MessagePack map), for the dead-letter sink: sinks
    /// write it as one JSON object per line whatever their format.
    pub fn to_record(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(&self.line())
            .unwrap_or_else(|e| crate::record::encode_str(&format!("cannot encode a dead letter: {e}")))
    }

    /// The dead letter as one line of JSON.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(&self.line())
            .unwrap_or_else(|e| format!("{{\"error\":\"cannot serialize dead letter: {e}\"}}"))
    }

    fn line(&self) -> Line<'_> {
        let (record, raw) = match &self.payload {
            Payload::Record(v) => (Some(record::json_of(v)), None),
            Payload::Raw(bytes) => (None, Some(String::from_utf8_lossy(bytes).into_owned())),
        };
        Line {
            operator: &self.operator,
            uid: self.uid.as_deref(),
            kind: &self.kind,
            error: &self.error,
            origin: self.origin.as_deref(),
            key: self.key.as_deref().map(record::json_of),
            record,
            raw,
        }
    }
}

/// The dead-letter task: letters from every task into `dead_sink`, records too late for
/// their windows into `late_sink` when the job has one (as data: the records themselves).
pub fn run_dead_letters(
    mut letters: mpsc::Receiver<Vec<DeadLetter>>,
    dead_sink: &mut dyn SinkWriter,
    mut late_sink: Option<&mut Box<dyn SinkWriter>>,
) -> Result<TaskStats, ConnectorError> {
    let mut stats = TaskStats::default();
    while let Some(letters) = letters.blocking_recv() {
        let (mut dead, mut late) = (Batch::new(), Batch::new());
        for d in &letters {
            tracing::debug!(operator = %d.operator, kind = %d.kind, error = %d.error, "dead letter");
            match (&d.payload, late_sink.is_some() && d.kind == LATE) {
                (Payload::Record(v), true) => {
                    stats.late_records += 1;
                    late.push(v);
                }
                _ => {
                    stats.dead_letters += 1;
                    dead.push(&d.to_record());
                }
            }
        }
        dead_sink.write(&dead)?;
        if let Some(sink) = late_sink.as_mut() {
            sink.write(&late)?;
        }
    }
    dead_sink.finish()?;
    if let Some(sink) = late_sink {
        sink.finish()?;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_has_the_record_and_the_error() {
        let d = DeadLetter {
            operator: "map[0] hostile@0.1.0.trap".into(),
            uid: Some("map[0] hostile.trap".into()),
            kind: "trap".into(),
            error: "boom".into(),
            origin: None,
            payload: Payload::Record(record::encode_str("boom!")),
            key: None,
        };
        let v: serde_json::Value = serde_json::from_str(&d.to_json_line()).unwrap();
        assert_eq!(v["record"], "boom!");
        assert_eq!(v["kind"], "trap");
        assert_eq!(v["uid"], "map[0] hostile.trap");
        assert!(v.get("raw").is_none());
        assert_eq!(record::display_value(&d.to_record()), d.to_json_line());
        let raw = DeadLetter { payload: Payload::Raw(b"{oops".to_vec()), origin: Some("in.jsonl:3".into()), ..d };
        let v: serde_json::Value = serde_json::from_str(&raw.to_json_line()).unwrap();
        assert_eq!(v["raw"], "{oops");
        assert_eq!(v["origin"], "in.jsonl:3");
    }
}
