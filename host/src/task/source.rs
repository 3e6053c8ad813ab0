//! The source side of a task: [`SourceContext`], what a source emits into, and the end of
//! a source's run ([`SourceContext::finish`]).

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{
    Ack, ConnectorError, ConnectorHealth, CoordinatorHandle, DeadLetter, Disconnected, JobControl, Output, Payload,
};
use crate::checkpoint::SourcePosition;
use crate::record::{Batch, RowMeta};

/// How long a source may block on quiet input before it checks whether the job was
/// cancelled.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// What a source emits into: batches records, ships dead letters.
///
/// A cancelled job's sources see [`Disconnected`] from the next batch they ship (after it
/// has gone out), as if downstream had stopped; [`SourceContext::finish`] turns that into a clean end.
pub struct SourceContext {
    output: Output,
    batch: Batch,
    batch_size: usize,
    dead: mpsc::Sender<Vec<DeadLetter>>,
    pub emitted: u64,
    control: Arc<JobControl>,
    /// Whether shipped records count as the job's input (not for broadcast sources).
    counts_input: bool,
    /// Checkpoints: where to report barriers, this source's index, the last barrier sent.
    coordinator: CoordinatorHandle,
    index: usize,
    barrier: u64,
}

impl SourceContext {
    pub fn new(output: Output, batch_size: usize, dead: mpsc::Sender<Vec<DeadLetter>>) -> Self {
        Self {
            output,
            batch: Batch::new(),
            batch_size: batch_size.max(1),
            dead,
            emitted: 0,
            control: Arc::default(),
            counts_input: false,
            coordinator: CoordinatorHandle::default(),
            index: 0,
            barrier: 0,
        }
    }

    /// Take part in checkpoints as source `index` of the job.
    pub fn with_checkpoints(mut self, coordinator: CoordinatorHandle, index: usize) -> Self {
        self.coordinator = coordinator;
        self.index = index;
        self
    }

    /// A point between two records where the source is at `position`: if a checkpoint was
    /// asked for, ship what is batched, send its barrier and report the position (and
    /// return the checkpoint's id). Sources call it before each record; it costs one atomic
    /// load when there is nothing to do.
    pub fn checkpoint_point(&mut self, position: impl FnOnce() -> SourcePosition) -> Result<Option<u64>, Disconnected> {
        let requested = self.control.checkpoint_requested();
        if requested <= self.barrier || !self.coordinator.is_enabled() {
            return Ok(None);
        }
        self.ship()?;
        self.output.broadcast_barrier(requested)?;
        self.barrier = requested;
        self.coordinator.send(Ack::Source { id: requested, source: self.index, position: position() });
        Ok(Some(requested))
    }

    /// The newest complete checkpoint of the job (0: none yet).
    pub fn last_checkpoint(&self) -> u64 {
        self.control.last_checkpoint()
    }

    /// Follow `control`'s cancellation, and count shipped records into its input counter
    /// when `counts_input`.
    pub fn with_control(mut self, control: Arc<JobControl>, counts_input: bool) -> Self {
        self.control = control;
        self.counts_input = counts_input;
        self
    }

    /// Whether the job was asked to stop; sources blocked on quiet input check it at least
    /// every [`POLL_INTERVAL`].
    pub fn is_cancelled(&self) -> bool {
        self.control.is_cancelled()
    }

    /// Emit a record whose MessagePack value `write` appends to the batch buffer; an error
    /// from `write` leaves the batch unchanged and is returned.
    pub fn emit_with<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<Result<(), E>, Disconnected> {
        self.emit_with_meta(RowMeta::default(), write)
    }

    /// [`Self::emit_with`] for a record with a key or event time (a source that assigns
    /// event time itself).
    pub fn emit_with_meta<E>(
        &mut self,
        meta: RowMeta<'_>,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<Result<(), E>, Disconnected> {
        if let Err(e) = self.batch.push_with_meta(meta, write) {
            return Ok(Err(e));
        }
        self.emitted += 1;
        if self.batch.len() >= self.batch_size {
            self.flush()?;
        }
        Ok(Ok(()))
    }

    pub fn emit(&mut self, value: &[u8]) -> Result<(), Disconnected> {
        self.emit_with(|buf| {
            buf.extend_from_slice(value);
            Ok::<(), std::convert::Infallible>(())
        })
        .map(|_| ())
    }

    /// Emit a string record.
    pub fn emit_str(&mut self, s: &str) -> Result<(), Disconnected> {
        self.emit_with(|buf| {
            crate::record::write_str(buf, s);
            Ok::<(), std::convert::Infallible>(())
        })
        .map(|_| ())
    }

    /// Send what is batched so far (at end of input, or when a live source goes quiet);
    /// `Disconnected` once it is sent if the job was cancelled.
    pub fn flush(&mut self) -> Result<(), Disconnected> {
        self.ship()?;
        if self.is_cancelled() { Err(Disconnected) } else { Ok(()) }
    }

    fn ship(&mut self) -> Result<(), Disconnected> {
        if !self.batch.is_empty() {
            let batch = std::mem::replace(&mut self.batch, Batch::with_capacity(self.batch_size, 0));
            let n = batch.len() as u64;
            self.output.send_blocking(batch)?;
            if self.counts_input {
                self.control.add_records_in(n);
            }
        }
        Ok(())
    }

    /// Send input that never became a record to the dead-letter output.
    pub fn dead_letter(
        &mut self,
        operator: &str,
        kind: &str,
        error: String,
        origin: String,
        raw: Vec<u8>,
    ) -> Result<(), Disconnected> {
        let d = DeadLetter {
            operator: operator.to_string(),
            uid: None,
            kind: kind.to_string(),
            error,
            origin: Some(origin),
            payload: Payload::Raw(raw),
            key: None,
        };
        self.dead.blocking_send(vec![d]).map_err(|_| Disconnected)
    }

    /// Send a watermark or idleness change downstream, after the records batched so far.
    pub fn emit_time(&mut self, signal: crate::time::TimeSignal) -> Result<(), Disconnected> {
        self.ship()?;
        self.output.broadcast_time(signal)
    }

    /// The state of connector `name` of this job, shown in the metrics.
    pub fn connector_health(&self, name: &str) -> Arc<ConnectorHealth> {
        self.control.connectors().register(name)
    }

    /// Time spent blocked on a full channel.
    pub fn backpressure(&self) -> std::time::Duration {
        self.output.blocked
    }

    /// The source `name` ended with `result` (its final position): ship what is batched
    /// and tell the coordinator where it ended. A source cut off by cancellation ends
    /// cleanly without a final position (the job resumes from its last checkpoint).
    pub fn finish(&mut self, name: &str, result: Result<SourcePosition, ConnectorError>) -> Result<(), ConnectorError> {
        let position = match result {
            Err(ConnectorError::Disconnected) if self.is_cancelled() => None,
            other => Some(other?),
        };
        self.ship()?;
        if position.is_some() {
            self.output.end()?;
        }
        if let Some(position) = position {
            self.coordinator.send(Ack::SourceFinished { source: self.index, position });
        }
        if self.is_cancelled() {
            tracing::info!(source = name, records = self.emitted, "job cancelled; source ended");
        }
        Ok(())
    }
}
