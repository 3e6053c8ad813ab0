//! State time-to-live: the clock, and the header that stamps a stored value with the time
//! of its last write.
//!
//! Flink's `StateTtlConfig` with update type `OnCreateAndWrite` and visibility
//! `NeverReturnExpired`: a value written at `t` with a TTL of `d` reads as absent from
//! `t + d` on (processing time), and is deleted when it is read, iterated over, or reached by
//! a flush's incremental cleanup.
//!
//! Every stored value starts with one header byte: `0` (no timestamp) or `1` followed by the
//! write time in ms (`i64` BE). Values of a state without TTL carry no timestamp; a state that
//! gains a TTL later treats its old, unstamped values as never expiring until they are
//! written again.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NO_TIMESTAMP: u8 = 0;
const TIMESTAMP: u8 = 1;

/// Processing time in ms since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now_ms(&self) -> i64;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that moves only when told to, for tests. Clones share the time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(now_ms: i64) -> Self {
        Self(Arc::new(AtomicI64::new(now_ms)))
    }

    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::Relaxed);
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(duration_ms(by), Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub(super) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The stored form of `value`: header, then the user's bytes.
pub(super) fn encode(value: &[u8], written_at: Option<i64>) -> Vec<u8> {
    match written_at {
        None => {
            let mut out = Vec::with_capacity(1 + value.len());
            out.push(NO_TIMESTAMP);
            out.extend_from_slice(value);
            out
        }
        Some(at) => {
            let mut out = Vec::with_capacity(9 + value.len());
            out.push(TIMESTAMP);
            out.extend_from_slice(&at.to_be_bytes());
            out.extend_from_slice(value);
            out
        }
    }
}

/// `(write time, user bytes)` of a stored value; `None` if the header is damaged.
pub(super) fn decode(stored: &[u8]) -> Option<(Option<i64>, &[u8])> {
    match stored.split_first()? {
        (&NO_TIMESTAMP, rest) => Some((None, rest)),
        (&TIMESTAMP, rest) => {
            let (at, value) = rest.split_at_checked(8)?;
            Some((Some(i64::from_be_bytes(at.try_into().ok()?)), value))
        }
        _ => None,
    }
}

/// Whether a value written at `written_at` has outlived `ttl_ms` at `now_ms`.
pub(super) fn expired(written_at: Option<i64>, ttl_ms: Option<i64>, now_ms: i64) -> bool {
    match (written_at, ttl_ms) {
        (Some(at), Some(ttl)) => now_ms >= at.saturating_add(ttl),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_with_and_without_timestamp() {
        assert_eq!(decode(&encode(b"v", None)), Some((None, &b"v"[..])));
        assert_eq!(decode(&encode(b"", Some(-5))), Some((Some(-5), &b""[..])));
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[1, 0, 0]), None);
        assert_eq!(decode(&[7]), None);
    }

    #[test]
    fn a_value_expires_exactly_ttl_after_its_write() {
        assert!(!expired(Some(1_000), Some(500), 1_499));
        assert!(expired(Some(1_000), Some(500), 1_500));
        assert!(!expired(None, Some(500), i64::MAX));
        assert!(!expired(Some(0), None, i64::MAX));
        assert!(!expired(Some(i64::MAX - 1), Some(i64::MAX), i64::MAX - 2));
    }

    #[test]
    fn manual_clock_clones_share_the_time() {
        let clock = ManualClock::new(10);
        let other = clock.clone();
        clock.advance(Duration::from_secs(1));
        assert_eq!(other.now_ms(), 1_010);
    }
}
