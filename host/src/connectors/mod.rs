//! Sources and sinks.
//!
//! Sources: `collection` (from_elements), `file` (text or JSON lines; a file or a directory
//! of files), `socket` (TCP text lines, like Flink's `socketTextStream`), `datagen` (rows
//! generated from a schema, like Flink's `datagen` connector), `nexmark` (the Nexmark
//! benchmark's auction events), `kafka` (topics, offsets in checkpoints). Sinks: `print`,
//! `file` (part files committed per checkpoint in a checkpointed job), `collect` (into
//! memory, for the builder API and tests), `discard`, `kafka` and `postgres` (exactly-once
//! through a transaction per checkpoint, [`two_phase`]).
//!
//! Connectors are written against the task layer ([`crate::task::SourceContext`],
//! [`crate::task::SinkWriter`]); each encodes its own checkpoint position
//! ([`crate::checkpoint::SourcePosition`]). Sources and sinks run as blocking tasks: their I/O is plain `std::io` with buffering,
//! which is what line-oriented files and sockets want; batches leave through the same
//! bounded channels as everything else, so a slow sink slows the source (backpressure).
//! Input that cannot become a record (a line that is not JSON, bytes that are not UTF-8)
//! goes to the dead-letter output with its file and line; the job goes on.

mod collection;
mod datagen;
mod file_sink;
mod file_source;
pub mod kafka;
mod nexmark;
mod postgres;
mod print;
mod socket;
mod two_phase;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use datagen::{DatagenError, DatagenSpec, FieldError, FieldGenerator, MAX_STRING_LENGTH};
pub use file_sink::{commit_parts, recover_parts};
pub use nexmark::{Auction, Bid, Event as NexmarkEvent, NexmarkError, NexmarkGenerator, NexmarkSpec, Person};
pub use postgres::{DEFAULT_BATCH_SIZE as POSTGRES_BATCH_SIZE, PostgresError, PostgresSpec};
pub use two_phase::{Transaction, TwoPhaseCommitter, TwoPhaseSink, two_phase};

use crate::checkpoint::SourcePosition;
use crate::record::Batch;
use crate::task::{ConnectorError, ConnectorHealth, OpenedSink, SinkContext, SinkWriter, SourceContext};

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

/// Run a source to its end, until a downstream task stops, or until the job is cancelled
/// (then it ends cleanly with what it has read). A job resuming from a checkpoint passes
/// the source's position in it as `start`.
pub fn run_source(
    spec: &SourceSpec,
    ctx: &mut SourceContext,
    start: Option<&SourcePosition>,
) -> Result<(), ConnectorError> {
    let mismatch = |p: &SourcePosition| ConnectorError::Position { source_name: spec.name(), position: p.describe() };
    let records = |start: Option<&SourcePosition>| match start {
        None => Ok(0),
        Some(p) => p.as_records().ok_or_else(|| mismatch(p)),
    };
    let result = match spec {
        SourceSpec::Collection { elements } => {
            collection::run(elements, ctx, records(start)?).map_err(ConnectorError::from)
        }
        SourceSpec::File { path, format } => file_source::run(path, *format, ctx, start),
        SourceSpec::Socket { host, port, format } => socket::run(host, *port, *format, ctx),
        SourceSpec::Datagen(spec) => datagen::run(spec, ctx, records(start)?),
        SourceSpec::Nexmark(spec) => nexmark::run(spec, ctx, records(start)?.max(spec.start)),
        SourceSpec::Kafka(spec) => {
            let offsets = match start {
                None => None,
                Some(p) => match p.decode() {
                    Ok(kafka::KafkaPosition::Kafka { offsets }) => Some(offsets),
                    Err(_) => return Err(mismatch(p)),
                },
            };
            kafka::run_source(spec, ctx, offsets.as_deref())
        }
    };
    ctx.finish(spec.name(), result)
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
