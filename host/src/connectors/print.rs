//! The print sink: one record per line on stdout (or stderr for dead letters).

use std::io::Write;

use serde_norway::Value;

use super::{LineFormat, Sink, SinkSpec, write_line};
use crate::config::{Ctx, JobError, get, join};
use crate::record::Batch;
use crate::task::{ConnectorError, SinkWriter};

/// `sink: {connector: print, stream: stdout | stderr}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrintSpec {
    pub stderr: bool,
}

impl Sink for PrintSpec {
    fn name(&self) -> &'static str {
        "sink print"
    }

    fn open(&self) -> Result<Box<dyn SinkWriter>, ConnectorError> {
        Ok(Box::new(PrintSink { stderr: self.stderr }))
    }
}

/// The print sink's options; dead letters print to stderr unless told otherwise.
pub(super) fn parse_sink(ctx: &Ctx, v: &Value, key: &str) -> Result<SinkSpec, JobError> {
    let entries = ctx.map(v, key, &["connector", "stream"])?;
    let default = if key == "dead_letter" { "stderr" } else { "stdout" };
    match get(&entries, "stream")
        .map(|s| ctx.string(s, &join(key, "stream")))
        .transpose()?
        .as_deref()
        .unwrap_or(default)
    {
        "stdout" => Ok(SinkSpec::print()),
        "stderr" => Ok(SinkSpec::stderr()),
        other => Err(ctx.err(&join(key, "stream"), format!("unknown stream `{other}`; expected stdout or stderr"))),
    }
}

struct PrintSink {
    stderr: bool,
}

impl PrintSink {
    fn write_to(batch: &Batch, out: &mut impl Write) -> std::io::Result<()> {
        let mut buf = std::io::BufWriter::new(out);
        for (value, _) in batch.iter() {
            write_line(&mut buf, value, LineFormat::Text)?;
        }
        // Flushed per batch so a live stream shows its records as they come.
        buf.flush()
    }
}

impl SinkWriter for PrintSink {
    fn write(&mut self, batch: &Batch) -> Result<(), ConnectorError> {
        let result = if self.stderr {
            Self::write_to(batch, &mut std::io::stderr().lock())
        } else {
            Self::write_to(batch, &mut std::io::stdout().lock())
        };
        result.map_err(|source| ConnectorError::Io {
            what: "cannot print to",
            path: if self.stderr { "stderr" } else { "stdout" }.into(),
            source,
        })
    }
}
