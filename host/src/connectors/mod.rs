//! Sources and sinks.
//!
//! Sources: `collection` (from_elements), `file` (text or JSON lines; a file or a directory
//! of files), `socket` (TCP text lines, like Flink's `socketTextStream`), `datagen` (rows
//! generated from a schema, like Flink's `datagen` connector), `nexmark` (the Nexmark
//! benchmark's auction events). Sinks: `print`,
//! `file`, `collect` (into memory, for the builder API and tests) and `discard`.
//!
//! Sources and sinks run as blocking tasks: their I/O is plain `std::io` with buffering,
//! which is what line-oriented files and sockets want; batches leave through the same
//! bounded channels as everything else, so a slow sink slows the source (backpressure).
//! Input that cannot become a record (a line that is not JSON, bytes that are not UTF-8)
//! goes to the dead-letter output with its file and line; the job goes on.

mod collection;
mod datagen;
mod file_sink;
mod file_source;
mod health;
pub mod kafka;
mod nexmark;
mod postgres;
mod print;
mod socket;
mod two_phase;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use thiserror::Error;
use tokio::sync::mpsc;

pub use datagen::{DatagenError, DatagenSpec, FieldError, FieldGenerator, MAX_STRING_LENGTH};
pub use file_sink::{commit_parts, recover_parts};
pub use health::{Backoff, ConnectorHealth, ConnectorRegistry};
pub use nexmark::{Auction, Bid, Event as NexmarkEvent, NexmarkError, NexmarkGenerator, NexmarkSpec, Person};
pub use postgres::{DEFAULT_BATCH_SIZE as POSTGRES_BATCH_SIZE, PostgresError, PostgresSpec};
pub use two_phase::{Transaction, TwoPhaseCommitter, TwoPhaseSink, two_phase};

use crate::checkpoint::{Ack, Committer, CoordinatorHandle, SourcePosition};
use crate::record::{Batch, RowMeta};
use crate::runtime::{DeadLetter, Disconnected, JobControl, Output, Payload};

/// How long a source may block on quiet input before it checks whether the job was
/// cancelled.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// Line formats of the file source and sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// Each line a string record (source); strings as they are, other values as JSON (sink).
    Text,
    /// Each line a JSON value.
    Json,
}

/// Where records come from.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// Records given in the job (MessagePack values).
    Collection { elements: Vec<Vec<u8>> },
    /// Lines of a file, or of every file in a directory (in name order).
    File { path: PathBuf, format: LineFormat },
    /// Text lines read from a TCP server, until it closes the connection.
    Socket { host: String, port: u16, format: LineFormat },
    /// Rows generated from a schema (sequences, random values, event time), optionally
    /// rate-limited; deterministic for a seed.
    Datagen(DatagenSpec),
    /// The Nexmark benchmark's Person / Auction / Bid stream; event `i` depends only on the
    /// spec and `i`.
    Nexmark(NexmarkSpec),
    /// Messages of Kafka topics.
    Kafka(kafka::KafkaSourceSpec),
}

impl SourceSpec {
    pub fn name(&self) -> &'static str {
        match self {
            SourceSpec::Collection { .. } => "source collection",
            SourceSpec::File { .. } => "source file",
            SourceSpec::Socket { .. } => "source socket",
            SourceSpec::Datagen(_) => "source datagen",
            SourceSpec::Nexmark(_) => "source nexmark",
            SourceSpec::Kafka(_) => "source kafka",
        }
    }

    /// Whether records come with event time and watermarks from the source itself.
    pub fn has_event_time(&self) -> bool {
        matches!(self, SourceSpec::Kafka(k) if k.watermarks.is_some())
    }
}

/// Records collected by a `collect` sink.
pub type Collected = Arc<Mutex<Vec<Vec<u8>>>>;

/// Where records go.
#[derive(Debug, Clone)]
pub enum SinkSpec {
    /// Standard output, one record per line.
    Print,
    /// Standard error, one record per line (the default dead-letter output).
    PrintStderr,
    File {
        path: PathBuf,
        format: LineFormat,
    },
    /// Into memory (MessagePack values), like Flink's `executeAndCollect`.
    Collect(Collected),
    Discard,
    /// A Kafka topic.
    Kafka(kafka::KafkaSinkSpec),
    /// Rows of a PostgreSQL table (insert or upsert); exactly-once in a checkpointed job.
    Postgres(PostgresSpec),
}

#[derive(Debug, Error)]
pub enum ConnectorError {
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: String, source: std::io::Error },
    #[error("the job was cancelled: a downstream task stopped")]
    Disconnected,
    #[error("datagen source: {0}")]
    Datagen(#[from] DatagenError),
    #[error(
        "{source_name}: the checkpoint's position {position} is not one of this source; was the job's source changed?"
    )]
    Position { source_name: &'static str, position: String },
    #[error("nexmark source: {0}")]
    Nexmark(#[from] NexmarkError),
    #[error("committing the sink's transaction failed: {0}; the job restarts from the checkpoint before it")]
    Commit(String),
    #[error("{0}")]
    Kafka(String),
    /// Not a `source`: the message says it all, and the CLI prints sources after it.
    #[error("postgres sink: {0}")]
    Postgres(PostgresError),
}

impl From<Disconnected> for ConnectorError {
    fn from(_: Disconnected) -> Self {
        ConnectorError::Disconnected
    }
}

/// What a source emits into: batches records, ships dead letters.
///
/// A cancelled job's sources see [`Disconnected`] from the next batch they ship (after it
/// has gone out), as if downstream had stopped; [`run_source`] turns that into a clean end.
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
}

/// Run a source to its end, until a downstream task stops, or until the job is cancelled
/// (then it ends cleanly with what it has read). A job resuming from a checkpoint passes
/// the source's position in it as `start`.
pub fn run_source(
    spec: &SourceSpec,
    ctx: &mut SourceContext,
    start: Option<&SourcePosition>,
) -> Result<(), ConnectorError> {
    let mismatch = || ConnectorError::Position { source_name: spec.name(), position: format!("{start:?}") };
    let records = |start: Option<&SourcePosition>| match start {
        None => Ok(0),
        Some(SourcePosition::Records(n)) => Ok(*n),
        Some(_) => Err(mismatch()),
    };
    let result = match spec {
        SourceSpec::Collection { elements } => {
            collection::run(elements, ctx, records(start)?).map_err(ConnectorError::from)
        }
        SourceSpec::File { path, format } => match start {
            None | Some(SourcePosition::File { .. }) => file_source::run(path, *format, ctx, start),
            Some(_) => Err(mismatch()),
        },
        SourceSpec::Socket { host, port, format } => socket::run(host, *port, *format, ctx),
        SourceSpec::Datagen(spec) => datagen::run(spec, ctx, records(start)?),
        SourceSpec::Nexmark(spec) => nexmark::run(spec, ctx, records(start)?.max(spec.start)),
        SourceSpec::Kafka(spec) => match start {
            None => kafka::run_source(spec, ctx, None),
            Some(SourcePosition::Kafka { offsets }) => kafka::run_source(spec, ctx, Some(offsets)),
            Some(_) => Err(mismatch()),
        },
    };
    let position = match result {
        Err(ConnectorError::Disconnected) if ctx.is_cancelled() => None,
        other => Some(other?),
    };
    ctx.ship()?;
    if let Some(position) = position {
        ctx.coordinator.send(Ack::SourceFinished { source: ctx.index, position });
    }
    if ctx.is_cancelled() {
        tracing::info!(source = spec.name(), records = ctx.emitted, "job cancelled; source ended");
    }
    Ok(())
}

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

/// Open a sink. Files are created (with their directory) now, so a bad path fails the job
/// before any record flows.
pub fn open_sink(spec: &SinkSpec) -> Result<Box<dyn SinkWriter>, ConnectorError> {
    Ok(match spec {
        SinkSpec::Print => Box::new(print::PrintSink::stdout()),
        SinkSpec::PrintStderr => Box::new(print::PrintSink::stderr()),
        SinkSpec::File { path, format } => Box::new(file_sink::FileSink::create(path, *format)?),
        SinkSpec::Collect(into) => Box::new(CollectSink(into.clone())),
        SinkSpec::Discard => Box::new(DiscardSink),
        SinkSpec::Kafka(kafka) => kafka::open_at_least_once(kafka)?,
        SinkSpec::Postgres(pg) => postgres::open(pg, Arc::new(ConnectorHealth::new("postgres output")))?,
    })
}

/// Open a job's sink. In a checkpointed job, the file sink writes part files committed per
/// checkpoint (exactly-once); other sinks are the same as without checkpoints
/// (at-least-once after a restore).
///
/// The postgres sink commits one database transaction per checkpoint (exactly-once).
pub fn open_job_sink(spec: &SinkSpec, ctx: &SinkContext) -> Result<OpenedSink, ConnectorError> {
    match (spec, ctx.first_epoch) {
        (SinkSpec::File { path, format }, Some(first_epoch)) => {
            let writer = Box::new(file_sink::PartFileSink::open(path, *format, first_epoch)?);
            let dir = path.clone();
            let committer = move |id| commit_parts(&dir, id).map(|_| ()).map_err(|e| format!("{}: {e}", dir.display()));
            Ok(OpenedSink { writer, committer: Some(Box::new(committer)) })
        }
        (SinkSpec::Kafka(kafka), _) => kafka::open_sink(kafka, ctx),
        (SinkSpec::Postgres(pg), _) => postgres::open_job_sink(pg, ctx),
        (other, _) => Ok(OpenedSink { writer: open_sink(other)?, committer: None }),
    }
}

/// The last checkpoint a transactional sink committed, for a job about to resume: it
/// resumes from that checkpoint even if a later one is complete (see [`two_phase`]).
/// `None` for sinks that commit by other means.
pub fn committed_checkpoint(spec: &SinkSpec, job: &str) -> Result<Option<u64>, ConnectorError> {
    match spec {
        SinkSpec::Kafka(kafka) => kafka::committed_checkpoint(kafka, job),
        SinkSpec::Print | SinkSpec::PrintStderr | SinkSpec::File { .. } | SinkSpec::Collect(_) | SinkSpec::Discard => {
            Ok(None)
        }
        SinkSpec::Postgres(pg) => postgres::committed_checkpoint(pg, job),
    }
}

struct CollectSink(Collected);

impl SinkWriter for CollectSink {
    fn write(&mut self, batch: &Batch) -> Result<(), ConnectorError> {
        let mut into = self.0.lock().unwrap_or_else(|p| p.into_inner());
        into.extend(batch.iter().map(|(v, _)| v.to_vec()));
        Ok(())
    }
}

struct DiscardSink;

impl SinkWriter for DiscardSink {
    fn write(&mut self, _batch: &Batch) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// Write one record as a line: strings as they are, other values as JSON (`Text`), or
/// every value as JSON (`Json`).
pub fn write_line(out: &mut impl std::io::Write, value: &[u8], format: LineFormat) -> std::io::Result<()> {
    match format {
        LineFormat::Text => out.write_all(crate::record::display_value(value).as_bytes())?,
        LineFormat::Json => out.write_all(crate::record::json_of(value).to_string().as_bytes())?,
    }
    out.write_all(b"\n")
}
