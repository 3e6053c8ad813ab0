//! Where a source stands in its input, as a checkpoint records it.

use serde::{Deserialize, Serialize};

/// A source's position after the last record before a barrier: where it resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourcePosition {
    /// Records emitted (collection elements, datagen rows): resume at this index.
    Records(u64),
    /// A file source: the file being read (its name in the directory, or the file itself)
    /// and the byte offset after the last line read; files before it in name order are done.
    File { file: String, offset: u64, line: u64 },
    /// A source that cannot rewind (a socket): it resumes wherever its input is.
    Unreplayable,
    /// A Kafka source: the next offset of each partition.
    Kafka { offsets: Vec<crate::connectors::kafka::PartitionOffset> },
}

impl SourcePosition {
    /// Human-readable, for logs and `weir checkpoints`.
    pub fn describe(&self) -> String {
        match self {
            SourcePosition::Records(n) => format!("record {n}"),
            SourcePosition::File { file, offset, line } => format!("{file} line {line} (byte {offset})"),
            SourcePosition::Unreplayable => "not replayable".into(),
            SourcePosition::Kafka { offsets } => {
                let parts: Vec<String> =
                    offsets.iter().map(|o| format!("{}/{}@{}", o.topic, o.partition, o.offset)).collect();
                format!("kafka {}", parts.join(" "))
            }
        }
    }
}
