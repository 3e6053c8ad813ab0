//! A plugin's stderr, kept as the tail of what it wrote.
//!
//! Plugins have no real stdio, but what a guest writes to stderr is the best clue to why it
//! trapped: a Rust panic prints its message there, an uncaught Python exception its
//! traceback. The host keeps the last [`TAIL_BYTES`] of it per instance, puts it in the
//! dead letter of a call that trapped, and forwards it to the debug log otherwise. Writes
//! never fail and never block, however much a plugin prints.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How much of a plugin's stderr is kept.
pub const TAIL_BYTES: usize = 4096;

#[derive(Clone, Default)]
pub struct StderrTail {
    buf: Arc<Mutex<Vec<u8>>>,
}

impl StderrTail {
    fn append(&self, bytes: &[u8]) {
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        buf.extend_from_slice(bytes);
        if buf.len() > TAIL_BYTES {
            let cut = buf.len() - TAIL_BYTES;
            buf.drain(..cut);
        }
    }

    /// What was written since the last `take`, as text; clears it.
    pub fn take(&self) -> String {
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(&buf).into_owned();
        buf.clear();
        text
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for StderrTail {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StderrTail {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for StderrTail {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The useful part of a plugin's stderr for an error message: without Rust's backtrace
/// hint, trimmed, at most a few hundred characters (the end, where the cause is).
pub fn summarize(stderr: &str) -> Option<String> {
    let text: Vec<&str> = stderr
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE=1`"))
        .collect();
    let text = text.join(" | ");
    if text.is_empty() {
        return None;
    }
    const MAX: usize = 600;
    Some(match text.char_indices().rev().nth(MAX) {
        Some((cut, _)) => format!("...{}", &text[cut..]),
        None => text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_tail() {
        let t = StderrTail::default();
        t.append(&vec![b'a'; TAIL_BYTES]);
        t.append(b"end");
        let s = t.take();
        assert_eq!(s.len(), TAIL_BYTES);
        assert!(s.ends_with("aend"));
        assert_eq!(t.take(), "");
    }

    #[test]
    fn summary_drops_the_backtrace_hint() {
        let s = "\nthread '<unnamed>' panicked at src/lib.rs:9:9:\nboom\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(summarize(s).unwrap(), "thread '<unnamed>' panicked at src/lib.rs:9:9: | boom");
        assert_eq!(summarize("\n \n"), None);
        assert!(summarize(&"x".repeat(5000)).unwrap().starts_with("..."));
    }
}
