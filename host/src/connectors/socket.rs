//! The socket source: text lines from a TCP server, like Flink's `socketTextStream`.
//!
//! Weir connects as a client and reads until the server closes the connection (then the
//! stream ends, and the job with it, as in Flink). Batching must not add latency to a live
//! stream: a batch is sent as soon as no more bytes are waiting, not only when it is full.
//! Delivery is at-most-once: what a crash loses is lost.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;

use super::file_source::{emit_line, trim_newline};
use super::{ConnectorError, LineFormat, SourceContext};

const NAME: &str = "source socket";

pub fn run(host: &str, port: u16, format: LineFormat, ctx: &mut SourceContext) -> Result<(), ConnectorError> {
    let addr = format!("{host}:{port}");
    let stream = TcpStream::connect(&addr).map_err(|source| ConnectorError::Io {
        what: "cannot connect to",
        path: addr.clone(),
        source,
    })?;
    tracing::info!(%addr, "socket source connected");
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(|source| ConnectorError::Io {
            what: "cannot read from",
            path: addr.clone(),
            source,
        })?;
        if n == 0 {
            break;
        }
        number += 1;
        emit_line(ctx, NAME, format, trim_newline(&line), || format!("{addr} line {number}"))?;
        if reader.buffer().is_empty() {
            // Nothing more is waiting: ship what we have rather than wait for a full batch.
            ctx.flush()?;
        }
    }
    tracing::info!(%addr, lines = number, "socket closed by the server; end of stream");
    Ok(())
}
