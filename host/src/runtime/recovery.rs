//! Recovery: what a checkpointed job resumes from, and the state, output and operators made
//! to match it.

use super::RuntimeError;
use crate::checkpoint::{self, CheckpointError, CheckpointMeta, PluginVersion, SourcePosition};
use crate::connectors::{self, SinkSpec};
use crate::graph::{self, JobGraph};
use crate::task::{ConnectorError, InstanceContext, Operator, OperatorError};

/// What a checkpointed job starts from: its latest complete checkpoint, unless that is
/// the last one of a finished run (then the job starts afresh). The state and the file
/// sink's part files are made to match: state and parts of later epochs are dropped.
pub(super) fn prepare_checkpoints(
    config: &checkpoint::CheckpointConfig,
    graph: &JobGraph,
) -> Result<Option<CheckpointMeta>, RuntimeError> {
    let latest = checkpoint::read_latest(&config.dir)?;
    let mut resume = latest.filter(|m| !m.finished);
    // A transactional sink commits after the checkpoint is written: if the job stopped in
    // between, the sink's last commit is one checkpoint older, and the job resumes there.
    if let Some(meta) = &resume
        && let Some(committed) = connectors::committed_checkpoint(&graph.sink, &graph.name)?
        && committed < meta.id
    {
        tracing::warn!(job = %graph.name, latest = meta.id, committed, "the sink did not commit the latest checkpoint; resuming from the one it committed");
        resume = match committed {
            0 => None,
            id => Some(
                checkpoint::read_at_most(&config.dir, id)?
                    .filter(|m| m.id == id)
                    .ok_or(CheckpointError::SinkAhead { committed: id, dir: config.dir.clone() })?,
            ),
        };
        checkpoint::discard_after(&config.dir, committed)?;
    }
    match &resume {
        Some(meta) => {
            tracing::info!(job = %graph.name, checkpoint = meta.id, sources = ?meta.sources.iter().map(SourcePosition::describe).collect::<Vec<_>>(), "resuming from checkpoint");
        }
        None => {
            // Nothing to resume: no checkpoint yet, or the last run finished.
            checkpoint::clear(&config.dir)?;
            if graph.config.state_dir.is_none() {
                let state = config.state_dir();
                if state.exists() {
                    std::fs::remove_dir_all(&state)
                        .map_err(|source| CheckpointError::Io { path: state.clone(), source })?;
                }
            }
        }
    }
    // The output parts the restored checkpoint covers are committed, later ones deleted
    // (all of them when starting afresh).
    if let SinkSpec::File { path, .. } = &graph.sink {
        connectors::recover_parts(path, resume.as_ref().map_or(0, |m| m.id)).map_err(|source| ConnectorError::Io {
            what: "cannot recover the output parts in",
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(resume)
}

/// How a checkpoint names step `step` of stage `stage`: by place, so that a new plugin
/// version (another step name) still finds its state.
pub(super) fn step_id(stage: usize, step: usize) -> String {
    format!("{stage}/{step}")
}

/// The step names of the job (each names its plugin), for the checkpoint's record.
pub(super) fn plugin_versions(stages: &[graph::Stage]) -> Vec<PluginVersion> {
    stages
        .iter()
        .enumerate()
        .flat_map(|(k, stage)| {
            stage
                .steps
                .iter()
                .enumerate()
                .map(move |(i, step)| PluginVersion { step: step_id(k, i), name: step.name.clone() })
        })
        .collect()
}

/// Hands each operator of stage `stage` the blobs its step left in `meta`.
pub(super) fn restore_operators(
    operators: &mut [Box<dyn Operator>],
    meta: &CheckpointMeta,
    stage: usize,
    ctx: &InstanceContext,
) -> Result<(), OperatorError> {
    let (range, max) = (ctx.key_groups(), ctx.max_parallelism);
    let owns = move |key: &[u8]| range.contains(crate::state::key_group(key, max));
    for (i, op) in operators.iter_mut().enumerate() {
        let step = step_id(stage, i);
        let blobs: Vec<&[u8]> = meta.operators.iter().filter(|o| o.step == step).map(|o| o.data.as_slice()).collect();
        if !blobs.is_empty() {
            op.restore(&blobs, &owns)?;
        }
    }
    Ok(())
}
