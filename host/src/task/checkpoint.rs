//! What tasks tell the checkpoint coordinator ([`Ack`]), the way they tell it
//! ([`CoordinatorHandle`]), and what a sink leaves it to do when a checkpoint completes
//! ([`Committer`]).
//!
//! The sink commit rule (decision 0012): a sink **pre-commits** at the barrier (closes
//! what it wrote for checkpoint `n`: a part file, a Kafka or PostgreSQL transaction
//! prepared), **commits** when the coordinator reports `n` complete (its metadata file is
//! written), and on recovery **re-commits idempotently** what the restored checkpoint
//! covers and aborts what came after it.

use std::sync::mpsc;

use crate::checkpoint::{OperatorSnapshot, SourcePosition};

/// What a task reports to the coordinator.
#[derive(Debug)]
pub enum Ack {
    /// A source sent barrier `id` after the record before `position`.
    Source { id: u64, source: usize, position: SourcePosition },
    /// A source reached the end of its input at `position` (and sends no more barriers).
    SourceFinished { source: usize, position: SourcePosition },
    /// A stage instance had barrier `id` from all its inputs and snapshotted its operators.
    Instance { id: u64, snapshots: Vec<OperatorSnapshot> },
    /// The sink closed what it wrote before barrier `id` (to commit when `id` completes).
    Sink { id: u64 },
    /// A stage instance (or a sink, if `sink`) whose inputs all ended while the job goes on
    /// (a stream of a graph whose sources finished): it acknowledged checkpoints up to
    /// `last` and counts as having acknowledged every later one (nothing in it changes).
    Finished { sink: bool, last: u64 },
}

/// A task's way to the coordinator; without a coordinator (checkpoints off) it drops reports.
#[derive(Debug, Clone, Default)]
pub struct CoordinatorHandle {
    tx: Option<mpsc::Sender<Ack>>,
}

impl CoordinatorHandle {
    /// A handle reporting into `tx` (the coordinator's end).
    pub fn new(tx: mpsc::Sender<Ack>) -> Self {
        Self { tx: Some(tx) }
    }

    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub fn send(&self, ack: Ack) {
        if let Some(tx) = &self.tx {
            // The coordinator only stops after every task: a failed send means the job ends.
            let _ = tx.send(ack);
        }
    }
}

/// Commits a sink's output up to a complete checkpoint (renames part files, commits a Kafka
/// or PostgreSQL transaction), on the coordinator's thread.
pub trait Committer: Send {
    /// Checkpoint `id` is complete (its file is written): commit what came before its barrier.
    fn committed(&mut self, id: u64) -> Result<(), String>;

    /// Checkpoint `id` will not complete (its input ended first, or writing it failed): what
    /// the sink made ready for it is committed with the next one instead.
    fn abandoned(&mut self, _id: u64) {}
}

impl<F: FnMut(u64) -> Result<(), String> + Send> Committer for F {
    fn committed(&mut self, id: u64) -> Result<(), String> {
        self(id)
    }
}
