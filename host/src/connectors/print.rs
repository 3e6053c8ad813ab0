//! The print sink: one record per line on stdout (or stderr for dead letters).

use std::io::Write;

use super::{LineFormat, write_line};
use crate::record::Batch;
use crate::task::{ConnectorError, SinkWriter};

pub struct PrintSink {
    stderr: bool,
}

impl PrintSink {
    pub fn stdout() -> Self {
        Self { stderr: false }
    }

    pub fn stderr() -> Self {
        Self { stderr: true }
    }

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
