//! Connection state of external connectors (Kafka, PostgreSQL) and retrying with backoff.
//!
//! A connector that loses its broker or database retries with exponential backoff and says
//! so in the job's metrics (`weir_connector_up`, `weir_connector_retries_total`); when the
//! retries run out the task fails, and the job's restart strategy restarts it from its
//! latest checkpoint, so nothing is lost either way.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One connector's state, shared with the metrics endpoint.
#[derive(Debug)]
pub struct ConnectorHealth {
    /// `kafka source`, `kafka sink`, `postgres sink`.
    pub name: String,
    up: AtomicBool,
    retries: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ConnectorHealth {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), up: AtomicBool::new(false), retries: AtomicU64::new(0), last_error: Mutex::new(None) }
    }

    /// Connected and working.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Retries since the job started.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_up(&self) {
        self.up.store(true, Ordering::Relaxed);
    }

    /// A failure that will be retried.
    pub fn set_down(&self, error: impl Into<String>) {
        self.up.store(false, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.into());
    }

    fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
}

/// The connectors of a job, for the metrics.
#[derive(Debug, Default)]
pub struct HealthRegistry(Mutex<Vec<Arc<ConnectorHealth>>>);

impl HealthRegistry {
    /// A new connector's state, listed from now on (a restarted job registers again under
    /// the same name and replaces the old entry).
    pub fn register(&self, name: &str) -> Arc<ConnectorHealth> {
        let health = Arc::new(ConnectorHealth::new(name));
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match all.iter_mut().find(|h| h.name == name) {
            Some(old) => {
                health.retries.store(old.retries(), Ordering::Relaxed);
                *old = health.clone();
            }
            None => all.push(health.clone()),
        }
        health
    }

    pub fn all(&self) -> Vec<Arc<ConnectorHealth>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Exponential backoff: `initial`, doubling up to `max`, for at most `attempts` tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub attempts: u32,
}

impl Default for Backoff {
    /// 100 ms doubling to 5 s, 10 tries: about 25 s of outage before the task fails.
    fn default() -> Self {
        Self { initial: Duration::from_millis(100), max: Duration::from_secs(5), attempts: 10 }
    }
}

impl Backoff {
    pub fn delay(&self, attempt: u32) -> Duration {
        self.initial.saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX)).min(self.max)
    }

    /// Run `f` until it succeeds, retrying failures that `retriable` accepts with growing
    /// delays and recording them in `health`; the last error when the tries run out.
    pub fn retry<T, E: std::fmt::Display>(
        &self,
        health: &ConnectorHealth,
        what: &str,
        retriable: impl Fn(&E) -> bool,
        mut f: impl FnMut() -> Result<T, E>,
    ) -> Result<T, E> {
        let mut attempt = 0;
        loop {
            match f() {
                Ok(v) => {
                    health.set_up();
                    return Ok(v);
                }
                Err(e) if attempt + 1 < self.attempts && retriable(&e) => {
                    let delay = self.delay(attempt);
                    tracing::warn!(connector = %health.name, error = %e, attempt = attempt + 1, delay_ms = delay.as_millis() as u64, "{what} failed; retrying");
                    health.set_down(e.to_string());
                    health.retried();
                    std::thread::sleep(delay);
                    attempt += 1;
                }
                Err(e) => {
                    health.set_down(e.to_string());
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_until_it_works_and_counts() {
        let health = ConnectorHealth::new("t");
        let backoff = Backoff { initial: Duration::from_millis(1), max: Duration::from_millis(2), attempts: 5 };
        let mut calls = 0;
        let v = backoff.retry(
            &health,
            "x",
            |_: &String| true,
            || {
                calls += 1;
                if calls < 3 { Err("down".to_string()) } else { Ok(7) }
            },
        );
        assert_eq!(v, Ok(7));
        assert_eq!(health.retries(), 2);
        assert!(health.is_up());
        assert_eq!(health.last_error().as_deref(), Some("down"));
    }

    #[test]
    fn gives_up_after_the_attempts_and_on_fatal_errors() {
        let health = ConnectorHealth::new("t");
        let backoff = Backoff { initial: Duration::from_millis(1), max: Duration::from_millis(1), attempts: 3 };
        let mut calls = 0;
        let r: Result<(), String> = backoff.retry(
            &health,
            "x",
            |_| true,
            || {
                calls += 1;
                Err("down".into())
            },
        );
        assert!(r.is_err());
        assert_eq!(calls, 3);
        let r: Result<(), String> = backoff.retry(&health, "x", |_| false, || Err("bad table".into()));
        assert_eq!(r, Err("bad table".into()));
        assert!(!health.is_up());
    }

    #[test]
    fn delays_double_up_to_the_max() {
        let b = Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(1), attempts: 10 };
        let d: Vec<u64> = (0..6).map(|a| b.delay(a).as_millis() as u64).collect();
        assert_eq!(d, [100, 200, 400, 800, 1000, 1000]);
    }
}
