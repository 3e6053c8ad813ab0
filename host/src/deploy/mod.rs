//! Hot deploy: a new version of a plugin replaces the running one in a step, while the job
//! runs, with no record lost or handled twice and keyed state kept (issue 7).
//!
//! Every step that runs a plugin function holds a [`PluginCell`], shared by its parallel
//! instances: the version it runs, a generation number, and the history of versions. A
//! deploy loads (compiles, off the hot path) and [`validate`]s the new component, then sets
//! it in the cell. Each instance checks the generation (one atomic load) before each batch,
//! timer round and watermark it hands to the plugin, and when it changed builds its plugin
//! instance from the new version: the swap happens at a **batch boundary**, between two
//! calls, so every record is handled by exactly one version. State lives in the host, so a
//! process function's new version finds its keyed state, timers and broadcast state as the
//! old one left them. In a checkpointed job the swap is at a batch boundary too: state
//! lives in the host and is sealed at barriers whatever version wrote it, and each
//! checkpoint records the plugin version of every step.

mod cell;

pub use cell::{Health, Outcome, PluginCell, RollbackPolicy, VersionRecord};

use thiserror::Error;

use crate::plugin::{FunctionInfo, FunctionKind, Plugin, PluginError, kind_name};

#[derive(Debug, Error)]
pub enum DeployError {
    #[error("job has no step `{wanted}` that runs a plugin; steps: {known}")]
    UnknownStep { wanted: String, known: String },
    #[error("`{wanted}` matches several steps ({matches}): give more of the name")]
    AmbiguousStep { wanted: String, matches: String },
    #[error("the new component cannot be loaded: {0}")]
    Load(#[from] PluginError),
    #[error("the new version does not fit step `{step}`: {reason}")]
    Incompatible { step: String, reason: String },
    #[error("step `{step}` has no earlier version to roll back to")]
    NothingToRollBack { step: String },
}

/// What a step needs of a plugin: the function it calls and the kinds it accepts.
#[derive(Debug, Clone)]
pub struct Requirement {
    pub function: String,
    pub kinds: Vec<FunctionKind>,
}

/// Checks that `new` can replace `old` in a step that calls `required`: the function exists
/// with an accepted kind, and, for a process function, every state both versions declare
/// keeps its kind and value type (new states may be added, old ones dropped, as Flink
/// allows when restoring from a savepoint).
pub fn validate(old: &Plugin, new: &Plugin, required: &Requirement) -> Result<(), String> {
    let new_fn = new.function(&required.function, &required.kinds).map_err(|e| e.to_string())?;
    let Ok(old_fn) = old.function(&required.function, &required.kinds) else { return Ok(()) };
    if old_fn.kind != new_fn.kind {
        return Err(format!(
            "`{}` was a {} function and is now a {} one",
            required.function,
            kind_name(old_fn.kind),
            kind_name(new_fn.kind)
        ));
    }
    compatible_states(old_fn, new_fn)
}

fn compatible_states(old: &FunctionInfo, new: &FunctionInfo) -> Result<(), String> {
    for n in &new.states {
        let Some(o) = old.states.iter().find(|o| o.name == n.name) else { continue };
        if o.kind != n.kind {
            return Err(format!("state `{}` was {:?} state and is declared {:?} state", n.name, o.kind, n.kind));
        }
        if o.value_type != n.value_type {
            return Err(format!(
                "state `{}` holds `{}`, and the new version declares `{}`: the stored values would not decode \
                 (give the state a new name to start it afresh)",
                n.name, o.value_type, n.value_type
            ));
        }
    }
    Ok(())
}

/// A step whose plugin can be replaced while the job runs.
#[derive(Debug, Clone)]
pub struct Target {
    /// The step's name, e.g. `map[0] upper@0.1.0.upper`.
    pub step: String,
    /// The step's uid (see [`crate::graph::Step::uid`]), once the job is built.
    pub uid: String,
    pub cell: PluginCell,
    pub requirement: Requirement,
}

impl Target {
    /// Loads `bytes` with the current version's runtime and limits (compiled here, off the
    /// job's tasks), checks that it fits the step (a misfit is noted in the history as
    /// rejected), and keeps the component by its hash.
    fn load_checked(&self, bytes: &[u8], origin: &std::path::Path) -> Result<Plugin, DeployError> {
        let (_, old) = self.cell.current();
        let new = old.runtime().load_bytes(bytes, origin, old.limits())?;
        if let Err(reason) = validate(&old, &new, &self.requirement) {
            self.cell.reject(&new, reason.clone());
            tracing::warn!(step = %self.step, plugin = %new.label(), %reason, "deploy refused");
            return Err(DeployError::Incompatible { step: self.step.clone(), reason });
        }
        if let Some(kept) = old.runtime().keep_component(new.sha256(), bytes) {
            tracing::info!(step = %self.step, plugin = %new.label(), path = %kept.display(), "component kept");
        }
        Ok(new)
    }
}

/// The steps of a job that run plugins, to deploy to.
#[derive(Debug, Clone, Default)]
pub struct Targets(pub Vec<Target>);

impl Targets {
    /// The step whose uid is `wanted`, or that is named `wanted`, or the only one whose
    /// name contains it.
    pub fn find(&self, wanted: &str) -> Result<&Target, DeployError> {
        if let Some(t) = self.0.iter().find(|t| t.uid == wanted).or_else(|| self.0.iter().find(|t| t.step == wanted)) {
            return Ok(t);
        }
        let matches: Vec<&Target> = self.0.iter().filter(|t| t.step.contains(wanted)).collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(DeployError::UnknownStep {
                wanted: wanted.to_string(),
                known: if self.0.is_empty() {
                    "none".into()
                } else {
                    self.0.iter().map(|t| t.step.as_str()).collect::<Vec<_>>().join(", ")
                },
            }),
            many => Err(DeployError::AmbiguousStep {
                wanted: wanted.to_string(),
                matches: many.iter().map(|t| t.step.as_str()).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// Loads `bytes` (a component; compiled here, off the job's tasks), checks it fits the
    /// step `step`, and swaps it in: every instance runs it from its next batch on.
    pub fn deploy(&self, step: &str, bytes: &[u8], origin: &std::path::Path) -> Result<VersionRecord, DeployError> {
        let target = self.find(step)?;
        let new = target.load_checked(bytes, origin)?;
        Ok(target.cell.swap(new))
    }

    /// Like [`Targets::deploy`], but the new version first runs as a canary on about
    /// `fraction` of the batches of a map, filter or flat-map step (see
    /// [`PluginCell::start_canary`]).
    pub fn deploy_canary(
        &self,
        step: &str,
        bytes: &[u8],
        origin: &std::path::Path,
        fraction: f64,
    ) -> Result<VersionRecord, DeployError> {
        let target = self.find(step)?;
        let incompatible = |reason: String| DeployError::Incompatible { step: target.step.clone(), reason };
        if target.requirement.kinds.iter().any(|k| matches!(k, FunctionKind::Process | FunctionKind::CoProcess)) {
            return Err(incompatible(
                "a canary runs on map, filter and flat-map steps only (a process function's state would be written \
                 by two versions at once); deploy it without one"
                    .into(),
            ));
        }
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(incompatible(format!("the canary's share must be above 0 and at most 1, not {fraction}")));
        }
        let new = target.load_checked(bytes, origin)?;
        target.cell.start_canary(new, fraction).ok_or_else(|| incompatible("a canary is already running".into()))
    }

    /// Runs the version before the current one again.
    pub fn rollback(&self, step: &str) -> Result<VersionRecord, DeployError> {
        let target = self.find(step)?;
        target.cell.rollback().ok_or_else(|| DeployError::NothingToRollBack { step: target.step.clone() })
    }
}
