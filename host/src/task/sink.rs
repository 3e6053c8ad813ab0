//! The sink side of a task: [`SinkWriter`], what opening one needs ([`SinkContext`]), and
//! the sink task's loop ([`run_sink`]): barrier alignment over the last stage's instances,
//! a pre-commit at every aligned barrier (see [`super::checkpoint`] for the commit rule).

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{Ack, Alignment, Committer, ConnectorError, CoordinatorHandle, JobControl, Message, TaskStats};
use crate::record::Batch;

/// A sink's writer: gets every batch, then `finish` once.
pub trait SinkWriter: Send {
    fn write(&mut self, batch: &Batch) -> Result<(), ConnectorError>;

    /// Checkpoint barrier `id` reached the sink: make what came before it ready to commit
    /// when the checkpoint completes. Sinks that cannot commit (print, collect) do nothing:
    /// they are at-least-once.
    fn barrier(&mut self, _id: u64) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// What opening a sink needs to know of its job.
pub struct SinkContext<'a> {
    pub job: &'a str,
    pub control: &'a Arc<JobControl>,
    /// The first checkpoint of a checkpointed job (its sink commits per checkpoint);
    /// `None` without checkpoints, and for the dead-letter and late-data outputs.
    pub first_epoch: Option<u64>,
}

/// An open sink, and what commits its output when a checkpoint completes.
pub struct OpenedSink {
    pub writer: Box<dyn SinkWriter>,
    pub committer: Option<Box<dyn Committer>>,
}

/// The sink's input ended while the job goes on (a graph whose other sources still run):
/// what it wrote after its last barrier goes into the next checkpoint, as Flink takes
/// checkpoints after tasks finish, so that a failure after this sink ended cannot lose it.
/// Returns the last checkpoint the sink acknowledged. Once every source ended, the
/// coordinator's final checkpoint commits the rest instead.
fn final_checkpoint(
    sink: &mut dyn SinkWriter,
    mut last: u64,
    control: &JobControl,
    coordinator: &CoordinatorHandle,
) -> Result<u64, ConnectorError> {
    let aligned = last;
    while !control.input_ended() && !control.is_cancelled() && !control.run_failed() {
        if last > aligned && control.last_checkpoint() >= last {
            break;
        }
        let requested = control.checkpoint_requested();
        if requested > last {
            sink.barrier(requested)?;
            coordinator.send(Ack::Sink { id: requested });
            last = requested;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(last)
}

/// The sink task: batches from `inputs` upstream instances into `sink` until they all end;
/// at each aligned barrier the sink pre-commits and reports to the coordinator.
pub fn run_sink(
    sink: &mut dyn SinkWriter,
    mut rx: mpsc::Receiver<Message>,
    inputs: usize,
    control: &JobControl,
    coordinator: &CoordinatorHandle,
) -> Result<TaskStats, ConnectorError> {
    let mut stats = TaskStats::default();
    let mut align = Alignment::new(inputs);
    loop {
        let next = align.queued().or_else(|| rx.blocking_recv());
        let ended = next.is_none();
        match next {
            Some(message) => {
                if let Some(Message::Data { batch, .. }) = align.on_data(message, false) {
                    stats.records_out += batch.len() as u64;
                    sink.write(&batch)?;
                    control.add_records_out(batch.len() as u64);
                }
            }
            None => align.on_data_end(),
        }
        match align.take_aligned() {
            Some(id) => {
                sink.barrier(id)?;
                coordinator.send(Ack::Sink { id });
            }
            // Ended, and nothing held back is left to replay.
            None if ended => break,
            None => {}
        }
    }
    if coordinator.is_enabled() {
        let last = final_checkpoint(sink, align.last_aligned(), control, coordinator)?;
        coordinator.send(Ack::Finished { sink: true, last });
    }
    sink.finish()?;
    Ok(stats)
}
