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
//! Every connector is one folder or file here and one line in [`connectors()`] (Arroyo's
//! connector registry): its job-file options, its [`Source`] or [`Sink`] (what the runtime
//! runs), its recovery and its errors. The runtime knows sources and sinks only through
//! these traits, and a checkpoint knows a source's position only as an opaque value.
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
mod memory;
mod nexmark;
mod postgres;
mod print;
mod socket;
mod two_phase;

mod registry;

use std::any::Any;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use collection::CollectionSource;
pub use datagen::{DatagenError, DatagenSpec, FieldError, FieldGenerator, MAX_STRING_LENGTH};
pub use file_sink::FileSinkSpec;
pub use file_source::FileSource;
pub use memory::{CollectSink, DiscardSink};
pub use nexmark::{Auction, Bid, Event as NexmarkEvent, NexmarkError, NexmarkGenerator, NexmarkSpec, Person};
pub use postgres::{PostgresError, PostgresSpec};
pub use print::PrintSpec;
pub use registry::{Connector, connectors, parse_sink, parse_source};
pub use socket::SocketSource;
pub use two_phase::{Transaction, TwoPhaseCommitter, TwoPhaseSink, two_phase};

use serde_norway::Value;

use crate::checkpoint::SourcePosition;
use crate::config::{Ctx, JobError};
use crate::task::{ConnectorError, OpenedSink, SinkContext, SinkWriter, SourceContext};

/// Line formats of the file source and sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// Each line a string record (source); strings as they are, other values as JSON (sink).
    Text,
    /// Each line a JSON value.
    Json,
}

/// A source as a job configured it (Flink's `Source`): the runtime runs it in a task of
/// its own.
pub trait Source: Any + Send + Sync + fmt::Debug {
    /// `source kafka`: in logs, metrics, dead letters and errors.
    fn name(&self) -> &'static str;

    /// Whether records come with event time and watermarks from the source itself.
    fn has_event_time(&self) -> bool {
        false
    }

    /// Read into `ctx` from `start` (its position in the checkpoint the job resumes from;
    /// `None` from the beginning) to the end of the input, or until the job is cancelled
    /// ([`crate::task::Disconnected`] from `ctx`), and return the position it ended at.
    fn run(&self, ctx: &mut SourceContext, start: Option<&SourcePosition>) -> Result<SourcePosition, ConnectorError>;
}

/// A sink as a job configured it (Flink's `Sink`).
pub trait Sink: Any + Send + Sync + fmt::Debug {
    /// `sink postgres`: in logs and errors.
    fn name(&self) -> &'static str;

    /// A writer for a job without checkpoints, the dead-letter or the late-data output.
    /// Files are created (with their directory) now, so a bad path fails the job before
    /// any record flows.
    fn open(&self) -> Result<Box<dyn SinkWriter>, ConnectorError>;

    /// The job's sink. In a checkpointed job (`ctx.first_epoch`) a sink that can commits
    /// per checkpoint (decision 0012) and returns its committer; the default is
    /// [`Sink::open`], at-least-once after a restore.
    fn open_for_job(&self, _ctx: &SinkContext) -> Result<OpenedSink, ConnectorError> {
        Ok(OpenedSink { writer: self.open()?, committer: None })
    }

    /// The last checkpoint a transactional sink committed for `job`, for a job about to
    /// resume: it resumes from that checkpoint even if a later one is complete (see
    /// [`two_phase`]). `None` for sinks that commit by other means.
    fn committed_checkpoint(&self, _job: &str) -> Result<Option<u64>, ConnectorError> {
        Ok(None)
    }

    /// Make the output match checkpoint `restored` (0: none) before the job resumes:
    /// commit again what it covers, drop what came after it.
    fn recover(&self, _restored: u64) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// Why the sink, as configured, cannot run without checkpoints (exactly-once needs
    /// them), and the job-file key that says so.
    fn needs_checkpoints(&self) -> Option<(&'static str, &'static str)> {
        None
    }
}

/// Where records come from: a [`Source`], shared by the job graph and its runs.
#[derive(Debug, Clone)]
pub struct SourceSpec(Arc<dyn Source>);

impl SourceSpec {
    pub fn new(source: impl Source) -> Self {
        Self(Arc::new(source))
    }

    /// Records given in the job (MessagePack values), like Flink's `fromElements`.
    pub fn collection(elements: Vec<Vec<u8>>) -> Self {
        Self::new(CollectionSource { elements })
    }

    /// The source as its own type, when it is one.
    pub fn get<T: Source>(&self) -> Option<&T> {
        let any: &dyn Any = self.0.as_ref();
        any.downcast_ref()
    }

    /// The source's task: [`Source::run`] to its end, until a downstream task stops, or
    /// until the job is cancelled (then it ends cleanly with what it has read), then the
    /// end reported to the coordinator. A job resuming from a checkpoint passes the
    /// source's position in it as `start`.
    pub fn run_to_end(&self, ctx: &mut SourceContext, start: Option<&SourcePosition>) -> Result<(), ConnectorError> {
        let result = self.0.run(ctx, start);
        ctx.finish(self.0.name(), result)
    }
}

impl std::ops::Deref for SourceSpec {
    type Target = dyn Source;

    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

/// The record index a source that counts records starts at: 0, or its position in the
/// checkpoint the job resumes from.
pub fn start_index(source: &dyn Source, start: Option<&SourcePosition>) -> Result<u64, ConnectorError> {
    match start {
        None => Ok(0),
        Some(p) => p.as_records().ok_or_else(|| mismatch(source, p)),
    }
}

/// A checkpoint's position that is not one of `source`'s.
pub fn mismatch(source: &dyn Source, position: &SourcePosition) -> ConnectorError {
    ConnectorError::Position { source_name: source.name(), position: position.describe() }
}

/// Records collected by a `collect` sink.
pub type Collected = Arc<Mutex<Vec<Vec<u8>>>>;

/// Where records go: a [`Sink`], shared by the job graph and its runs.
#[derive(Debug, Clone)]
pub struct SinkSpec(Arc<dyn Sink>);

impl SinkSpec {
    pub fn new(sink: impl Sink) -> Self {
        Self(Arc::new(sink))
    }

    /// Standard output, one record per line.
    pub fn print() -> Self {
        Self::new(PrintSpec { stderr: false })
    }

    /// Standard error, one record per line (the default dead-letter output).
    pub fn stderr() -> Self {
        Self::new(PrintSpec { stderr: true })
    }

    /// Lines of a file, text or JSON (a directory of part files in a checkpointed job).
    pub fn file(path: impl Into<PathBuf>, format: LineFormat) -> Self {
        Self::new(FileSinkSpec { path: path.into(), format })
    }

    /// Into memory (MessagePack values), like Flink's `executeAndCollect`.
    pub fn collect(into: Collected) -> Self {
        Self::new(CollectSink(into))
    }

    /// Nowhere (Flink's `blackhole`).
    pub fn discard() -> Self {
        Self::new(DiscardSink)
    }

    /// The sink as its own type, when it is one.
    pub fn get<T: Sink>(&self) -> Option<&T> {
        let any: &dyn Any = self.0.as_ref();
        any.downcast_ref()
    }
}

impl std::ops::Deref for SinkSpec {
    type Target = dyn Sink;

    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

/// `format:` of the file and socket connectors: `text` (or `raw`, the default) or `json`.
pub fn line_format(ctx: &Ctx, v: Option<&Value>, key: &str) -> Result<LineFormat, JobError> {
    match v.map(|v| ctx.string(v, key)).transpose()?.as_deref() {
        None | Some("text") | Some("raw") => Ok(LineFormat::Text),
        Some("json") => Ok(LineFormat::Json),
        Some(other) => Err(ctx.err(key, format!("unknown format `{other}`; expected text or json"))),
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
