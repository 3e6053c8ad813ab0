//! Sandbox limits of one plugin instance: linear memory and time per call.
//!
//! Memory is capped by a [`ResourceLimiter`] that refuses growth past the cap with an
//! error (so the call traps with a message that names the limit, rather than the guest's
//! allocator aborting with an opaque `unreachable`), and records the peak it allowed, which
//! the runtime uses to recycle instances whose memory only grows (the componentize-py
//! runtime does, by ~56 B per record).
//!
//! Time is capped with epoch interruption: the [`super::PluginRuntime`] ticks the engine's
//! epoch every [`EPOCH_TICK`], and each call runs with a deadline of enough ticks.

use std::time::Duration;

use thiserror::Error;
use wasmtime::ResourceLimiter;

/// How often the engine's epoch advances: the resolution of the time cap.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Per-instance limits, set per job (`limits:` in the job file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Linear memory per instance, in bytes (all memories of the component together).
    pub memory_bytes: usize,
    /// Wall time one call (one batch) may take before it is interrupted.
    pub call_timeout: Duration,
    /// Rebuild an instance after it has processed this many records. Never mid-batch, so a
    /// recycle cannot lose or repeat a record.
    pub recycle_after_records: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self { memory_bytes: 64 << 20, call_timeout: Duration::from_secs(1), recycle_after_records: 100_000 }
    }
}

impl SandboxLimits {
    /// The epoch deadline for one call: the timeout in ticks, rounded up, plus one because
    /// the current tick may be about to end.
    pub fn deadline_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_millis().max(1);
        u64::try_from(self.call_timeout.as_millis().div_ceil(tick)).unwrap_or(u64::MAX / 2) + 1
    }
}

/// A plugin asked for more memory than its cap.
#[derive(Debug, Error)]
#[error(
    "plugin exceeded its memory limit of {limit} bytes (asked to grow to {desired} bytes); raise `limits.memory_mb` in the job file if the function really needs more"
)]
pub struct MemoryLimitExceeded {
    pub limit: usize,
    pub desired: usize,
}

/// The [`ResourceLimiter`] of one store.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit: usize,
    /// Total bytes of all linear memories, as last grown.
    total: usize,
}

impl MemoryLimiter {
    pub fn new(limit: usize) -> Self {
        Self { limit, total: 0 }
    }

    /// Bytes of linear memory the instance holds now.
    pub fn memory_in_use(&self) -> usize {
        self.total
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.total - current.min(self.total) + desired;
        if total > self.limit {
            return Err(MemoryLimitExceeded { limit: self.limit, desired: total }.into());
        }
        self.total = total;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Tables hold function references; a million entries is far past any real plugin.
        Ok(desired <= 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_growth_past_the_cap_and_tracks_the_total() {
        let mut l = MemoryLimiter::new(100);
        assert!(l.memory_growing(0, 60, None).unwrap());
        assert!(l.memory_growing(0, 30, None).unwrap()); // a second memory
        assert_eq!(l.memory_in_use(), 90);
        let err = l.memory_growing(60, 80, None).unwrap_err();
        assert!(err.downcast_ref::<MemoryLimitExceeded>().is_some());
        assert_eq!(l.memory_in_use(), 90);
        assert!(l.memory_growing(60, 70, None).unwrap());
        assert_eq!(l.memory_in_use(), 100);
    }

    #[test]
    fn deadline_rounds_up() {
        let limits = SandboxLimits { call_timeout: Duration::from_millis(15), ..Default::default() };
        assert_eq!(limits.deadline_ticks(), 3);
    }
}
