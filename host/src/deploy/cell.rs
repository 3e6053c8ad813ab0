//! [`PluginCell`]: the plugin version a step runs, shared by its instances, and its history.

use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Refused before it ran (it does not fit the step).
    Rejected(String),
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
    state: Mutex<State>,
}

struct State {
    current: Plugin,
    /// The versions that ran before the current one, newest last (for rollback).
    previous: Vec<Plugin>,
    history: Vec<VersionRecord>,
}

impl std::fmt::Debug for PluginCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginCell").field("generation", &self.generation()).finish_non_exhaustive()
    }
}

impl PluginCell {
    pub fn new(plugin: Plugin) -> Self {
        let record = record(&plugin, 1, Outcome::Active);
        let state = State { current: plugin, previous: Vec::new(), history: vec![record] };
        Self { inner: Arc::new(Inner { generation: AtomicU64::new(1), state: Mutex::new(state) }) }
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

    /// Runs `plugin` from the next batch on; returns its record.
    pub fn swap(&self, plugin: Plugin) -> VersionRecord {
        let mut state = self.state();
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
        let back = state.previous.pop()?;
        let generation = self.generation() + 1;
        if let Some(active) = state.history.iter_mut().rev().find(|r| r.outcome == Outcome::Active) {
            active.outcome = Outcome::RolledBack;
        }
        state.current = back.clone();
        let new = record(&back, generation, Outcome::Active);
        state.history.push(new.clone());
        self.inner.generation.store(generation, Ordering::Release);
        tracing::warn!(generation, plugin = %back.label(), "rolled back to the previous plugin version");
        Some(new)
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
