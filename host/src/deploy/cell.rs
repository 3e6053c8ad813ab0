//! [`PluginCell`]: the plugin version a step runs, shared by its instances, and its history.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

use crate::plugin::Plugin;

/// What became of a deployed version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome", content = "reason")]
pub enum Outcome {
    /// The version the step runs now.
    Active,
    /// Replaced by a later deploy.
    Replaced,
    /// Replaced by a rollback to the version before it.
    RolledBack,
    /// Rolled back by itself: too many of its records failed while on probation.
    Failed(String),
    /// Refused before it ran (it does not fit the step).
    Rejected(String),
    /// Running as a canary on a sample of the batches, before it may replace the current
    /// version.
    Canary,
}

/// One version a step ran or was offered, in deploy order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionRecord {
    /// 1 for the version the job started with, then one more per deploy or rollback.
    pub generation: u64,
    /// `name@version` as the plugin describes itself.
    pub plugin: String,
    pub sha256: String,
    /// When it was deployed (epoch ms).
    pub deployed_at_ms: i64,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The version a step runs. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct PluginCell {
    inner: Arc<Inner>,
}

struct Inner {
    generation: AtomicU64,
    /// The id of the running canary, 0 for none.
    canary: AtomicU64,
    /// Mirrors `State::probation`, so that a report off probation (nearly every batch) takes
    /// no lock.
    on_probation: AtomicBool,
    state: Mutex<State>,
}

/// When a newly deployed version is rolled back by itself. A deployed version is on
/// probation for its first `probation_records` records; if, after at least `min_records`,
/// more than `max_failure_ratio` of them failed (traps, timeouts, rejected records), the
/// step goes back to the version before it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RollbackPolicy {
    pub min_records: u64,
    pub max_failure_ratio: f64,
    pub probation_records: u64,
}

impl Default for RollbackPolicy {
    fn default() -> Self {
        Self { min_records: 20, max_failure_ratio: 0.5, probation_records: 1_000 }
    }
}

/// What a step instance learns when it reports a batch's records ([`PluginCell::report`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not on probation: failures are ordinary dead letters.
    Steady,
    /// On probation: hold the failed records until the verdict.
    Probation,
    /// Probation passed: the held failures are dead letters after all.
    Passed,
    /// The version failed and was rolled back: run the held records on the version before.
    RolledBack,
}

struct State {
    current: Plugin,
    policy: RollbackPolicy,
    /// Records the current version handled and failed since it was swapped in.
    handled: u64,
    failed: u64,
    probation: bool,
    /// The versions that ran before the current one, newest last (for rollback).
    previous: Vec<Plugin>,
    history: Vec<VersionRecord>,
    canary: Option<Canary>,
    next_canary_id: u64,
}

/// A version running on one batch in `every` before it may replace the current one.
struct Canary {
    id: u64,
    plugin: Plugin,
    every: u64,
    handled: u64,
    failed: u64,
    /// Its entry in the history.
    record: usize,
}

impl std::fmt::Debug for PluginCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginCell").field("generation", &self.generation()).finish_non_exhaustive()
    }
}

impl PluginCell {
    pub fn new(plugin: Plugin) -> Self {
        let record = record(&plugin, 1, Outcome::Active);
        let state = State {
            current: plugin,
            policy: RollbackPolicy::default(),
            handled: 0,
            failed: 0,
            probation: false,
            previous: Vec::new(),
            history: vec![record],
            canary: None,
            next_canary_id: 1,
        };
        let inner = Inner {
            generation: AtomicU64::new(1),
            canary: AtomicU64::new(0),
            on_probation: AtomicBool::new(false),
            state: Mutex::new(state),
        };
        Self { inner: Arc::new(inner) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes with every swap: instances compare it before each call (one atomic load).
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// The version to run, with its generation.
    pub fn current(&self) -> (u64, Plugin) {
        let state = self.state();
        (self.generation(), state.current.clone())
    }

    /// Every version the step ran or was offered, oldest first.
    pub fn history(&self) -> Vec<VersionRecord> {
        self.state().history.clone()
    }

    pub fn set_policy(&self, policy: RollbackPolicy) {
        self.state().policy = policy;
    }

    /// An instance ran `handled` records of a batch on `generation`, and `failed` of them
    /// failed. Decides the probation of a newly deployed version: see [`RollbackPolicy`].
    pub fn report(&self, generation: u64, handled: u64, failed: u64) -> Health {
        if !self.inner.on_probation.load(Ordering::Acquire) {
            return Health::Steady;
        }
        let mut state = self.state();
        if generation != self.generation() {
            // A report on a version already replaced: its instance will follow.
            return if state.probation { Health::Probation } else { Health::Steady };
        }
        if !state.probation {
            return Health::Steady;
        }
        state.handled += handled;
        state.failed += failed;
        let (handled, failed, policy) = (state.handled, state.failed, state.policy);
        if handled >= policy.min_records && failed as f64 > policy.max_failure_ratio * handled as f64 {
            let reason = format!(
                "rolled back by itself: {failed} of its first {handled} records failed (more than {:.0} %)",
                policy.max_failure_ratio * 100.0
            );
            if self.roll_back(&mut state, Outcome::Failed(reason)).is_some() {
                return Health::RolledBack;
            }
        }
        if handled >= policy.probation_records {
            self.set_probation(&mut state, false);
            tracing::info!(generation, handled, failed, "deployed plugin version passed its probation");
            return Health::Passed;
        }
        Health::Probation
    }

    /// Runs `plugin` from the next batch on; returns its record.
    pub fn swap(&self, plugin: Plugin) -> VersionRecord {
        let mut state = self.state();
        (state.handled, state.failed) = (0, 0);
        self.set_probation(&mut state, true);
        let generation = self.generation() + 1;
        if let Some(active) = state.history.iter_mut().rev().find(|r| r.outcome == Outcome::Active) {
            active.outcome = Outcome::Replaced;
        }
        let old = std::mem::replace(&mut state.current, plugin.clone());
        state.previous.push(old);
        let new = record(&plugin, generation, Outcome::Active);
        state.history.push(new.clone());
        self.inner.generation.store(generation, Ordering::Release);
        tracing::info!(generation, plugin = %plugin.label(), sha256 = %plugin.sha256(), "plugin version swapped in");
        new
    }

    /// Runs the version before the current one again; `None` if there is none.
    pub fn rollback(&self) -> Option<VersionRecord> {
        let mut state = self.state();
        self.roll_back(&mut state, Outcome::RolledBack)
    }

    fn roll_back(&self, state: &mut State, outcome: Outcome) -> Option<VersionRecord> {
        let back = state.previous.pop()?;
        let generation = self.generation() + 1;
        if let Some(active) = state.history.iter_mut().rev().find(|r| r.outcome == Outcome::Active) {
            tracing::warn!(plugin = %active.plugin, ?outcome, "plugin version rolled back");
            active.outcome = outcome;
        }
        (state.handled, state.failed) = (0, 0);
        self.set_probation(state, false);
        state.current = back.clone();
        let new = record(&back, generation, Outcome::Active);
        state.history.push(new.clone());
        self.inner.generation.store(generation, Ordering::Release);
        tracing::warn!(generation, plugin = %back.label(), "running the previous plugin version again");
        Some(new)
    }

    /// The running canary's id (0 for none): instances compare it before each batch.
    pub fn canary_id(&self) -> u64 {
        self.inner.canary.load(Ordering::Acquire)
    }

    /// The running canary: its id, one batch in how many it runs, and its version.
    pub fn canary(&self) -> Option<(u64, u64, Plugin)> {
        self.state().canary.as_ref().map(|c| (c.id, c.every, c.plugin.clone()))
    }

    /// Runs `plugin` as a canary on about `fraction` of the batches (at least one in 1 000):
    /// it replaces the current version if it passes [`RollbackPolicy`]'s probation on its
    /// share of the records, and is dropped if too many of them fail. `None` when a canary
    /// is already running.
    pub fn start_canary(&self, plugin: Plugin, fraction: f64) -> Option<VersionRecord> {
        let mut state = self.state();
        if state.canary.is_some() {
            return None;
        }
        let every = (1.0 / fraction.clamp(0.001, 1.0)).round().max(1.0) as u64;
        let id = state.next_canary_id;
        state.next_canary_id += 1;
        let r = record(&plugin, 0, Outcome::Canary);
        state.history.push(r.clone());
        let record = state.history.len() - 1;
        tracing::info!(plugin = %plugin.label(), every, "canary started: the new version runs on one batch in {every}");
        state.canary = Some(Canary { id, plugin, every, handled: 0, failed: 0, record });
        self.inner.canary.store(id, Ordering::Release);
        Some(r)
    }

    /// An instance ran `handled` records of a batch on canary `id` and `failed` of them
    /// failed: [`Health::Passed`] when the canary has just replaced the current version,
    /// [`Health::RolledBack`] when it has just been dropped (or is gone).
    pub fn report_canary(&self, id: u64, handled: u64, failed: u64) -> Health {
        let mut state = self.state();
        let policy = state.policy;
        let Some(canary) = state.canary.as_mut().filter(|c| c.id == id) else { return Health::RolledBack };
        canary.handled += handled;
        canary.failed += failed;
        let (handled, failed, at) = (canary.handled, canary.failed, canary.record);
        if handled >= policy.min_records && failed as f64 > policy.max_failure_ratio * handled as f64 {
            let reason = format!("canary dropped: {failed} of its first {handled} records failed");
            tracing::warn!(plugin = %state.history[at].plugin, %reason, "canary failed");
            state.history[at].outcome = Outcome::Failed(reason);
            state.canary = None;
            self.inner.canary.store(0, Ordering::Release);
            return Health::RolledBack;
        }
        if handled < policy.probation_records {
            return Health::Probation;
        }
        // Passed: the canary becomes the current version, already proven.
        let Some(canary) = state.canary.take() else { return Health::RolledBack };
        self.inner.canary.store(0, Ordering::Release);
        let generation = self.generation() + 1;
        if let Some(active) = state.history.iter_mut().rev().find(|r| r.outcome == Outcome::Active) {
            active.outcome = Outcome::Replaced;
        }
        let old = std::mem::replace(&mut state.current, canary.plugin);
        state.previous.push(old);
        (state.handled, state.failed) = (0, 0);
        self.set_probation(&mut state, false);
        state.history[at].generation = generation;
        state.history[at].outcome = Outcome::Active;
        self.inner.generation.store(generation, Ordering::Release);
        tracing::info!(generation, handled, failed, "canary passed and replaced the current version");
        Health::Passed
    }

    fn set_probation(&self, state: &mut State, on: bool) {
        state.probation = on;
        self.inner.on_probation.store(on, Ordering::Release);
    }

    /// Notes a version that was refused.
    pub fn reject(&self, plugin: &Plugin, reason: String) -> VersionRecord {
        let mut state = self.state();
        let r = record(plugin, 0, Outcome::Rejected(reason));
        state.history.push(r.clone());
        r
    }
}

fn record(plugin: &Plugin, generation: u64, outcome: Outcome) -> VersionRecord {
    VersionRecord {
        generation,
        plugin: plugin.label(),
        sha256: plugin.sha256().to_string(),
        deployed_at_ms: crate::time::now_ms(),
        outcome,
    }
}
