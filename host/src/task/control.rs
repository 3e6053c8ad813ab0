//! Job control: what a running job and whoever controls it (the CLI, the HTTP API, the
//! checkpoint coordinator) share.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::HealthRegistry;

/// Shared by a running job and whoever controls it: a cancellation request that the sources
/// check at every batch they ship (and socket reads at least every
/// [`super::POLL_INTERVAL`]), and live counters, one atomic add per batch.
#[derive(Debug, Default)]
pub struct JobControl {
    cancelled: AtomicBool,
    finished: AtomicBool,
    records_in: AtomicU64,
    records_out: AtomicU64,
    /// The newest checkpoint the coordinator asked for, and the newest complete one.
    checkpoint_requested: AtomicU64,
    checkpoint_completed: AtomicU64,
    /// Every source of the job's streams ended: no checkpoint will be triggered any more.
    input_ended: AtomicBool,
    /// A task of the current run failed: the run is ending (and may be restarted).
    run_failed: AtomicBool,
    /// The state of the job's external connectors (Kafka, PostgreSQL), for the metrics.
    connectors: HealthRegistry,
}

impl JobControl {
    /// Ask the sources to stop: each ships what it has batched and ends, so the job ends
    /// cleanly (windows fire, sinks flush) with every record read so far.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Whether every task of the job has ended.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Records the (non-broadcast) source shipped so far.
    pub fn records_in(&self) -> u64 {
        self.records_in.load(Ordering::Relaxed)
    }

    /// Records the sink received so far.
    pub fn records_out(&self) -> u64 {
        self.records_out.load(Ordering::Relaxed)
    }

    pub(crate) fn add_records_out(&self, n: u64) {
        self.records_out.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set_finished(&self) {
        self.finished.store(true, Ordering::Release);
    }

    pub(crate) fn add_records_in(&self, n: u64) {
        self.records_in.fetch_add(n, Ordering::Relaxed);
    }

    /// The health of the job's external connectors.
    pub fn connectors(&self) -> &HealthRegistry {
        &self.connectors
    }

    /// The newest checkpoint asked of the sources (0: none yet).
    pub fn checkpoint_requested(&self) -> u64 {
        self.checkpoint_requested.load(Ordering::Acquire)
    }

    /// The newest complete checkpoint (0: none yet).
    pub fn last_checkpoint(&self) -> u64 {
        self.checkpoint_completed.load(Ordering::Acquire)
    }

    pub(crate) fn request_checkpoint(&self, id: u64) {
        self.checkpoint_requested.fetch_max(id, Ordering::AcqRel);
    }

    /// Whether every source of the job's streams ended (no checkpoint will come any more).
    pub fn input_ended(&self) -> bool {
        self.input_ended.load(Ordering::Acquire)
    }

    pub(crate) fn set_input_ended(&self) {
        self.input_ended.store(true, Ordering::Release);
    }

    /// Whether a task of the current run failed (the others should end without waiting).
    pub fn run_failed(&self) -> bool {
        self.run_failed.load(Ordering::Acquire)
    }

    pub(crate) fn set_run_failed(&self) {
        self.run_failed.store(true, Ordering::Release);
    }

    /// A (re)start of the job: what the last run ended with is forgotten.
    pub(crate) fn start_run(&self) {
        self.input_ended.store(false, Ordering::Release);
        self.run_failed.store(false, Ordering::Release);
    }

    pub(crate) fn complete_checkpoint(&self, id: u64) {
        self.checkpoint_completed.fetch_max(id, Ordering::AcqRel);
    }
}
