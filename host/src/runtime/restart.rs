//! Running a job with Flink's restart strategy: a checkpointed job that fails while running
//! starts again from its latest checkpoint, with a growing delay, unless its error is one
//! a restart cannot fix.

use std::sync::Arc;

use thiserror::Error;

use super::JobReport;
use super::exec::run_graph;
use crate::checkpoint::{CheckpointConfig, CheckpointError};
use crate::graph::{GraphError, JobGraph};
use crate::task::{ConnectorError, JobControl, OperatorError, TaskError};

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Operator(#[from] OperatorError),
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    #[error("a task of the job panicked: {0}")]
    Panic(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("the job failed again after {attempts} restarts from its checkpoints; last error: {last}")]
    GaveUp { attempts: u32, last: Box<RuntimeError> },
}

impl RuntimeError {
    /// Errors that are only a consequence of another task stopping.
    pub(super) fn is_secondary(&self) -> bool {
        matches!(self, RuntimeError::Connector(ConnectorError::Disconnected))
    }

    /// Whether restarting from a checkpoint may get past it (a failing connection, a sink
    /// that could not write, a plugin that failed), unlike a job that cannot start as built.
    fn is_restartable(&self) -> bool {
        match self {
            RuntimeError::Connector(e) => e.is_restartable(),
            RuntimeError::Graph(_) | RuntimeError::Checkpoint(_) | RuntimeError::GaveUp { .. } => false,
            RuntimeError::Operator(_) | RuntimeError::Panic(_) => true,
        }
    }
}

impl From<TaskError> for RuntimeError {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::Operator(e) => RuntimeError::Operator(e),
            TaskError::Connector(e) => RuntimeError::Connector(e),
        }
    }
}

/// Run a job to completion (bounded sources) or until it fails.
pub async fn execute(graph: JobGraph) -> Result<JobReport, RuntimeError> {
    execute_with(graph, Arc::default()).await
}

/// [`execute`], controlled through `control` (cancel it, read its counters).
///
/// A checkpointed job that fails while running is restarted from its latest checkpoint, up
/// to `restart_attempts` times with a growing delay (Flink's restart strategy); errors that
/// a restart cannot fix (a bad graph, a checkpoint of another job) fail at once.
pub async fn execute_with(graph: JobGraph, control: Arc<JobControl>) -> Result<JobReport, RuntimeError> {
    let result = match graph.config.checkpoints.clone() {
        Some(config) if config.restart_attempts > 0 => run_restarting(graph, &control, &config).await,
        _ => run_graph(graph, &control).await,
    };
    control.set_finished();
    result
}

async fn run_restarting(
    graph: JobGraph,
    control: &Arc<JobControl>,
    config: &CheckpointConfig,
) -> Result<JobReport, RuntimeError> {
    let attempts = config.restart_attempts;
    let mut attempt = 0;
    loop {
        match run_graph(graph.clone(), control).await {
            Err(e) if attempt < attempts && e.is_restartable() && !control.is_cancelled() => {
                attempt += 1;
                let delay = config.restart_delay(attempt);
                tracing::warn!(job = %graph.name, error = %e, attempt, of = attempts, delay_ms = delay.as_millis() as u64, "job failed; restarting from its latest checkpoint");
                tokio::time::sleep(delay).await;
            }
            Err(e) if attempt > 0 => return Err(RuntimeError::GaveUp { attempts: attempt, last: Box::new(e) }),
            other => return other,
        }
    }
}
