//! The socket source: text lines from a TCP server, like Flink's `socketTextStream`.
//!
//! Weir connects as a client and reads until the server closes the connection (then the
//! stream ends, and the job with it, as in Flink). Batching must not add latency to a live
//! stream: a batch is sent as soon as no more bytes are waiting, not only when it is full.
//! Delivery is at-most-once: what a crash loses is lost.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;

use serde_norway::Value;

use super::file_source::{emit_line, trim_newline};
use super::{LineFormat, Source, SourceSpec, line_format};
use crate::checkpoint::SourcePosition;
use crate::config::{Ctx, JobError, get, join};
use crate::task::{ConnectorError, SourceContext};

const NAME: &str = "source socket";

/// Text lines read from a TCP server, until it closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSource {
    pub host: String,
    pub port: u16,
    pub format: LineFormat,
}

impl Source for SocketSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &mut SourceContext, _start: Option<&SourcePosition>) -> Result<SourcePosition, ConnectorError> {
        run(&self.host, self.port, self.format, ctx)
    }
}

/// `source: {connector: socket, hostname, port, format}`.
pub(super) fn parse_source(ctx: &Ctx, v: &Value, key: &str) -> Result<SourceSpec, JobError> {
    let entries = ctx.map(v, key, &["connector", "hostname", "port", "format"])?;
    let host = match get(&entries, "hostname") {
        Some(h) => ctx.string(h, &join(key, "hostname"))?,
        None => "localhost".to_string(),
    };
    let port = get(&entries, "port").ok_or_else(|| ctx.err(key, "the socket connector needs `port`"))?;
    let port = ctx.number(port, &join(key, "port"), 1, 65535)? as u16;
    let format = line_format(ctx, get(&entries, "format"), &join(key, "format"))?;
    Ok(SourceSpec::new(SocketSource { host, port, format }))
}

/// Reads lines until the server closes the connection. A socket cannot rewind, so with
/// checkpoints it is at-most-once: a resumed job reads what the server sends from then on.
fn run(host: &str, port: u16, format: LineFormat, ctx: &mut SourceContext) -> Result<SourcePosition, ConnectorError> {
    let addr = format!("{host}:{port}");
    let stream = TcpStream::connect(&addr).map_err(|source| ConnectorError::Io {
        what: "cannot connect to",
        path: addr.clone(),
        source,
    })?;
    tracing::info!(%addr, "socket source connected");
    // Reads wake up at least this often on a quiet stream, to see whether the job was cancelled.
    stream.set_read_timeout(Some(crate::task::POLL_INTERVAL)).map_err(|source| ConnectorError::Io {
        what: "cannot set a read timeout on",
        path: addr.clone(),
        source,
    })?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        // A timed-out read keeps the part of the line it read in `line`: go on from there.
        match reader.read_until(b'\n', &mut line) {
            Ok(0) if line.is_empty() => break,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if ctx.is_cancelled() {
                    // The partial line (if any) is dropped: it was never a whole record.
                    tracing::info!(%addr, lines = number, "job cancelled; socket source stops reading");
                    return Ok(SourcePosition::unreplayable());
                }
                if line.is_empty() {
                    ctx.checkpoint_point(SourcePosition::unreplayable)?;
                }
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(ConnectorError::Io { what: "cannot read from", path: addr.clone(), source }),
        }
        number += 1;
        ctx.checkpoint_point(SourcePosition::unreplayable)?;
        emit_line(ctx, NAME, format, trim_newline(&line), || format!("{addr} line {number}"))?;
        line.clear();
        if reader.buffer().is_empty() {
            // Nothing more is waiting: ship what we have rather than wait for a full batch.
            ctx.flush()?;
        }
    }
    tracing::info!(%addr, lines = number, "socket closed by the server; end of stream");
    Ok(SourcePosition::unreplayable())
}
