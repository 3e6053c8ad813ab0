//! A job started in the background ([`RunningJob`]) and what controls it while it runs
//! ([`JobHandle`]): hot deploys, rollbacks, cancellation, live counters.

use std::path::Path;
use std::sync::Arc;

use super::EnvError;
use crate::deploy::{DeployError, Targets, VersionRecord};
use crate::runtime::{JobReport, RuntimeError};
use crate::task::JobControl;

/// A job started with [`StreamEnvironment::start`].
pub struct RunningJob {
    pub(super) handle: JobHandle,
    pub(super) thread: std::thread::JoinHandle<Result<JobReport, RuntimeError>>,
}

/// A running job is controlled like its [`JobHandle`]: `job.deploy(..)`, `job.versions()`.
impl std::ops::Deref for RunningJob {
    type Target = JobHandle;

    fn deref(&self) -> &JobHandle {
        &self.handle
    }
}

impl RunningJob {
    /// A handle to control the job from elsewhere (a control API, a folder watcher) while
    /// this one waits for it.
    pub fn handle(&self) -> JobHandle {
        self.handle.clone()
    }

    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Wait for the job to end.
    pub fn wait(self) -> Result<JobReport, EnvError> {
        match self.thread.join() {
            Ok(result) => Ok(result?),
            Err(_) => Err(EnvError::Runtime(RuntimeError::Panic(format!("job `{}`", self.handle.name)))),
        }
    }
}

/// What controls a running job: hot deploys, rollbacks, cancellation and live counters.
/// Cheap to clone; clones control the same job.
#[derive(Clone)]
pub struct JobHandle {
    pub(super) name: String,
    pub(super) targets: Targets,
    pub(super) control: Arc<JobControl>,
}

impl JobHandle {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The steps that run plugins, each with every version it ran or was offered.
    pub fn versions(&self) -> Vec<(String, Vec<VersionRecord>)> {
        self.targets.0.iter().map(|t| (t.step.clone(), t.cell.history())).collect()
    }

    /// The steps whose plugin can be replaced.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// Replace the plugin of `step` (its name, or a part only it contains) with the component
    /// `bytes`: compiled and checked here, then run by every instance from its next batch.
    pub fn deploy(&self, step: &str, bytes: &[u8], origin: &Path) -> Result<VersionRecord, DeployError> {
        self.targets.deploy(step, bytes, origin)
    }

    /// Run the component `bytes` as a canary of `step` (a map, filter or flat-map) on about
    /// `fraction` of its batches: it replaces the current version once it has handled its
    /// probation's records without too many failures, and is dropped otherwise.
    pub fn deploy_canary(
        &self,
        step: &str,
        bytes: &[u8],
        origin: &Path,
        fraction: f64,
    ) -> Result<VersionRecord, DeployError> {
        self.targets.deploy_canary(step, bytes, origin, fraction)
    }

    /// Run the version of `step` before the current one again.
    pub fn rollback(&self, step: &str) -> Result<VersionRecord, DeployError> {
        self.targets.rollback(step)
    }

    /// Ask the job to end: its sources stop at their next batch and the job finishes
    /// cleanly with what they read.
    pub fn cancel(&self) {
        self.control.cancel();
    }

    /// The job's cancellation flag and live counters.
    pub fn control(&self) -> &JobControl {
        &self.control
    }
}
