//! What a failed plugin call was: classifying a wasmtime error into a [`FailureKind`].
//!
//! A call that returns `Err(message)` is the function saying no; an error from wasmtime
//! itself is a trap (a panic, an uncaught exception), the epoch deadline (a timeout) or the
//! memory limiter. The last three poison the instance: it must be dropped, not entered again.
//!
//! `transform.rs` has its own copy of this classification (`classify`); both should use this
//! module once the transform side can be edited.

use std::time::Duration;

use super::limits::MemoryLimitExceeded;
use super::transform::FailureKind;

/// A whole call that failed.
#[derive(Debug, Clone)]
pub(super) struct CallFailure {
    pub kind: FailureKind,
    pub message: String,
    /// The instance trapped and must be dropped.
    pub poisoned: bool,
}

impl CallFailure {
    /// The function returned `Err(message)`: the instance stays usable.
    pub fn refused(message: String) -> Self {
        Self { kind: FailureKind::Error, message, poisoned: false }
    }
}

/// A wasmtime error from a call (`Err` of the outer `Result`), with what the plugin wrote to
/// stderr during the call (a Rust panic message goes there).
pub(super) fn classify_trap(err: &wasmtime::Error, timeout: Duration, stderr: &str) -> CallFailure {
    let kind = if err.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
        FailureKind::Timeout
    } else if err.downcast_ref::<MemoryLimitExceeded>().is_some() {
        FailureKind::MemoryLimit
    } else {
        FailureKind::Trap
    };
    let mut message = match kind {
        FailureKind::Timeout => format!(
            "the call ran longer than the time limit of {} ms and was interrupted; raise `limits.call_timeout_ms` if the function is just slow",
            timeout.as_millis()
        ),
        FailureKind::MemoryLimit => err.root_cause().to_string(),
        _ => {
            // The backtrace is for plugin authors (debug log); the dead letter gets the cause.
            tracing::debug!(error = %format!("{err:?}"), "plugin trapped");
            format!("the plugin trapped: {} (a panic, an uncaught exception or a bug in the plugin)", err.root_cause())
        }
    };
    if let Some(said) = super::stderr::summarize(stderr) {
        message = format!("{message}; the plugin wrote to stderr: {said}");
    }
    CallFailure { kind, message, poisoned: true }
}
