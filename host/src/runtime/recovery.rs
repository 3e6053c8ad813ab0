//! Recovery: what a checkpointed job resumes from, and the state, output and operators made
//! to match it.

use super::RuntimeError;
use crate::checkpoint::{self, CheckpointError, CheckpointMeta, PluginVersion, SourcePosition};
use crate::graph::{self, JobGraph};
use crate::task::{InstanceContext, Operator, OperatorError};

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
    // between, the sink's last commit is one checkpoint older, and the job resumes there
    // (the oldest such commit, with several sinks).
    let mut oldest: Option<u64> = None;
    for sink in &graph.sinks {
        if let Some(committed) = sink.spec.committed_checkpoint(&sink_id(graph, sink))? {
            oldest = Some(oldest.map_or(committed, |o| o.min(committed)));
        }
    }
    if let Some(meta) = &resume
        && let Some(committed) = oldest
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
    for sink in &graph.sinks {
        sink.spec.recover(resume.as_ref().map_or(0, |m| m.id))?;
    }
    Ok(resume)
}

/// What names a sink's commits (a PostgreSQL row, a Kafka transactional id): the job's
/// name, and with several sinks the sink's name after it.
pub(super) fn sink_id(graph: &JobGraph, sink: &graph::SinkNode) -> String {
    match graph.sinks.len() {
        1 => graph.name.clone(),
        _ => format!("{}.{}", graph.name, sink.name),
    }
}

/// The uid of every step, stage by stage (`[stage][step]`).
pub(super) fn uids(stages: &[graph::Stage]) -> Vec<Vec<String>> {
    stages.iter().map(|stage| stage.steps.iter().map(|step| step.uid.clone()).collect()).collect()
}

/// The steps of the job (each names its plugin), by uid, for the checkpoint's record.
pub(super) fn plugin_versions(stages: &[graph::Stage]) -> Vec<PluginVersion> {
    let steps = stages.iter().flat_map(|stage| &stage.steps);
    steps.map(|step| PluginVersion { step: step.uid.clone(), name: step.name.clone() }).collect()
}

/// A step id of a checkpoint written before operator uids: `stage/step`, by place.
fn legacy_place(step: &str) -> Option<(usize, usize)> {
    let (stage, step) = step.split_once('/')?;
    Some((stage.parse().ok()?, step.parse().ok()?))
}

/// Matches the state in checkpoint `meta` (operator snapshots by uid, and the keyed state
/// trees `trees` of the state store) with the job's steps `uids` (`[stage][step]`).
///
/// A checkpoint written before operator uids named steps by place (`stage/step`): its
/// steps are renamed to the uids of the steps at those places, which is how it was
/// restored before. State that matches no step fails the restore (Flink's rule), unless
/// `allow_non_restored` (`--allow-non-restored-state`) drops it.
pub(super) fn match_steps(
    meta: &mut CheckpointMeta,
    uids: &[Vec<String>],
    trees: &[String],
    allow_non_restored: bool,
) -> Result<(), CheckpointError> {
    let at = |step: &str| legacy_place(step).and_then(|(k, i)| uids.get(k)?.get(i)).cloned();
    if !meta.plugins.is_empty() && meta.plugins.iter().all(|p| legacy_place(&p.step).is_some()) {
        tracing::info!(checkpoint = meta.id, "the checkpoint predates operator uids: its steps are matched by place");
        for plugin in &mut meta.plugins {
            if let Some(uid) = at(&plugin.step) {
                plugin.step = uid;
            }
        }
        for snapshot in &mut meta.operators {
            if let Some(uid) = at(&snapshot.step) {
                snapshot.step = uid;
            }
        }
    }
    let known = |uid: &str| uids.iter().flatten().any(|u| u == uid);
    let mut unmatched: Vec<&str> = meta.operators.iter().map(|o| o.step.as_str()).filter(|s| !known(s)).collect();
    unmatched.extend(trees.iter().map(String::as_str).filter(|t| !known(t)));
    unmatched.sort_unstable();
    unmatched.dedup();
    if unmatched.is_empty() {
        return Ok(());
    }
    let list = |names: &mut dyn Iterator<Item = &str>| names.map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    let unmatched = list(&mut unmatched.into_iter());
    if allow_non_restored {
        tracing::warn!(checkpoint = meta.id, steps = %unmatched, "dropping state no step of the job has (--allow-non-restored-state)");
        return Ok(());
    }
    Err(CheckpointError::NonRestoredState {
        id: meta.id,
        unmatched,
        steps: list(&mut uids.iter().flatten().map(String::as_str)),
    })
}

/// Hands each operator of a stage the blobs its step (by uid: `uids[i]` is operator `i`'s)
/// left in `meta`.
pub(super) fn restore_operators(
    operators: &mut [Box<dyn Operator>],
    meta: &CheckpointMeta,
    uids: &[String],
    ctx: &InstanceContext,
) -> Result<(), OperatorError> {
    let (range, max) = (ctx.key_groups(), ctx.max_parallelism);
    let owns = move |key: &[u8]| range.contains(crate::state::key_group(key, max));
    for (op, uid) in operators.iter_mut().zip(uids) {
        let blobs: Vec<&[u8]> = meta.operators.iter().filter(|o| &o.step == uid).map(|o| o.data.as_slice()).collect();
        if !blobs.is_empty() {
            op.restore(&blobs, &owns)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::OperatorSnapshot;

    fn meta(plugins: &[&str], operators: &[&str]) -> CheckpointMeta {
        CheckpointMeta {
            id: 7,
            job: "j".into(),
            completed_at_ms: 0,
            finished: false,
            sources: Vec::new(),
            operators: operators
                .iter()
                .map(|s| OperatorSnapshot { step: s.to_string(), instance: 0, data: vec![1] })
                .collect(),
            plugins: plugins
                .iter()
                .map(|s| PluginVersion { step: s.to_string(), name: format!("name of {s}") })
                .collect(),
            duration_ms: 0,
        }
    }

    fn uids(stages: &[&[&str]]) -> Vec<Vec<String>> {
        stages.iter().map(|s| s.iter().map(|u| u.to_string()).collect()).collect()
    }

    #[test]
    fn a_checkpoint_from_before_uids_is_matched_by_place() {
        let mut m = meta(&["0/0", "0/1", "1/0"], &["1/0"]);
        match_steps(&mut m, &uids(&[&["map", "key_by"], &["window"]]), &[], false).unwrap();
        assert_eq!(m.operators[0].step, "window");
        assert_eq!(m.plugins.iter().map(|p| p.step.as_str()).collect::<Vec<_>>(), ["map", "key_by", "window"]);
    }

    #[test]
    fn state_of_no_step_is_refused_unless_allowed() {
        let steps = uids(&[&["map", "key_by"], &["counts"]]);
        let mut m = meta(&["map", "key_by", "counts"], &["counts"]);
        match_steps(&mut m, &steps, &["counts".into()], false).unwrap();

        let mut m = meta(&["map", "key_by", "old"], &["old"]);
        let err = match_steps(&mut m, &steps, &["gone".into()], false).unwrap_err().to_string();
        assert!(err.starts_with("checkpoint 7 holds state of `gone`, `old`, which no step of this job has"), "{err}");
        assert!(err.contains("(its steps: `map`, `key_by`, `counts`)"), "{err}");
        match_steps(&mut m, &steps, &["gone".into()], true).unwrap();

        // A step that moved past the end of a legacy checkpoint's places is unmatched too.
        let mut m = meta(&["0/0", "0/1", "2/0"], &["2/0"]);
        assert!(match_steps(&mut m, &steps, &[], false).is_err());
    }
}
