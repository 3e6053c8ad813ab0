//! Checkpoints: what they hold and how they are stored (checkpoint files, savepoints,
//! source positions). The coordinator that takes them runs with the job
//! (`runtime::coordinator`); what tasks report to it is task vocabulary
//! ([`crate::task::Ack`]).
//!
//! Weir follows Flink's aligned checkpoints (Chandy-Lamport). Every `interval` the
//! coordinator asks the sources for checkpoint `n`; each source ships what it has batched,
//! sends `Barrier(n)` down every channel and reports its position. A task snapshots when
//! barrier `n` has come from all its inputs (messages from inputs that are already past the
//! barrier wait), then sends the barrier on. So a checkpoint is the state after exactly the
//! records before the sources' positions. When every task has reported, the coordinator
//! syncs the state database and writes `chk-<n>.meta` (checksummed, written to a temporary
//! file and renamed): only then is `n` complete.
//!
//! - **Keyed state** (sled): an instance's writes of an epoch are sealed at the barrier into
//!   one redo record `w | instance | n` and stay in its write buffer for reads. They reach
//!   the main keys when checkpoint `n + 1` completes, so the state in sled is never ahead of
//!   the previous complete checkpoint and a damaged last checkpoint can fall back to the one
//!   before it. Recovery applies the records of complete checkpoints and drops the others.
//! - **Operator state in memory** (window accumulators, rolling aggregates) goes into the
//!   checkpoint file as one blob per instance, with the key of every entry, so another
//!   parallelism can take it over by key group.
//! - **Sinks**: the file sink writes a part file per epoch, in progress until the checkpoint
//!   covering it completes; then the coordinator renames it (two-phase commit, as Flink's
//!   `FileSink`). Recovery commits the parts of the restored checkpoint and deletes the rest.
//! - **Sources** resume from their positions: collection and datagen by record index, file
//!   by file and byte offset. The socket source cannot rewind and is at-most-once.
//!
//! A job whose input ended writes a last, `finished` checkpoint; running it again starts it
//! afresh, as a new Flink job would. A job that was killed resumes from its latest complete
//! checkpoint.

mod files;
mod position;
pub mod savepoint;

pub use files::{
    CheckpointError, CheckpointMeta, CheckpointSummary, OperatorSnapshot, PluginVersion, clear, discard_after, list,
    read, read_at_most, read_latest, retain, write,
};
pub use position::SourcePosition;

use std::path::PathBuf;
use std::time::Duration;

/// Checkpointing of one job (the job file's `checkpoints:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// Time between two checkpoints (Flink's `execution.checkpointing.interval`).
    pub interval: Duration,
    /// Complete checkpoints kept (the older ones are deleted); at least 2, so a damaged
    /// latest one can fall back to the one before.
    pub retained: usize,
    /// Where checkpoint files go; keyed state goes to `dir/state` unless the job sets
    /// `state_dir`.
    pub dir: PathBuf,
    /// Restart strategy (Flink's exponential-delay): a job that fails while running starts
    /// again from its latest checkpoint up to this many times...
    pub restart_attempts: u32,
    /// ...first after this delay, doubling each time (at most 30 s).
    pub restart_delay: Duration,
}

impl CheckpointConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            interval: Duration::from_secs(1),
            retained: 3,
            dir: dir.into(),
            restart_attempts: 3,
            restart_delay: Duration::from_secs(1),
        }
    }

    /// Where keyed state lives unless the job sets `state_dir`.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// The delay before restart number `attempt` (1-based).
    pub fn restart_delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.restart_delay.saturating_mul(factor).min(Duration::from_secs(30))
    }
}
