//! The job graph: what a job is made of, and how it becomes parallel tasks.
//!
//! A [`JobGraph`] is the logical plan: one source (or a union of sources), a chain of steps,
//! one sink, and a dead-letter output; a keyed step may also have a broadcast input of its own. [`plan`] turns it into [`Stage`]s, the physical tasks:
//! - stateless steps are **fused** into one stage (one task per parallel instance, no
//!   channel between them), as Flink chains operators;
//! - a step with another parallelism starts a new stage fed by **rebalance**;
//! - `key_by` ends its stage; the keyed step after it starts a new stage fed by **key
//!   group** (at the job's default parallelism unless the step sets one);
//! - a step the job partitions (`partition: rebalance | rescale | shuffle | broadcast |
//!   global` before it) starts a new stage fed that way (at the job's default parallelism
//!   unless the step sets one).
//!
//! A step without its own parallelism keeps its input's, so `source -> map -> print` is one
//! ordered chain, as users of `from_elements(..).map(..).print()` expect. The graph knows
//! operators only as named factories: nothing here knows about plugins or wasmtime.

use thiserror::Error;

use crate::connectors::{SinkSpec, SourceSpec};
use crate::task::{OperatorFactory, Partitioning};

/// How a step relates to keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Works record by record (map, filter, flat_map).
    Stateless,
    /// Sets the key of every record; the stream after it is partitioned by key.
    KeyBy,
    /// Needs keyed input: must come right after `key_by`.
    Keyed,
}

/// One step of the pipeline.
#[derive(Clone)]
pub struct Step {
    /// Unique in the job, e.g. `map[0] upper@0.1.0.upper`: what logs, metrics and dead
    /// letters show.
    pub name: String,
    /// The step's stable id (Flink's operator uid): it keys the step's state in checkpoints,
    /// savepoints and the state store, so a job whose steps change keeps each step's state
    /// where the uids match. Set by `uid:` in a job file or `.uid()` in the builder; by
    /// default the step's place and function without the plugin's version (e.g.
    /// `process[2] fraud.detector`), so a new plugin version keeps its state.
    pub uid: String,
    pub kind: StepKind,
    /// Parallel instances; `None` inherits the input's (or the job default after key_by).
    pub parallelism: Option<usize>,
    pub factory: OperatorFactory,
    /// A broadcast stream connected to this step (Flink's `connect(broadcastStream)`): every
    /// parallel instance of the step gets every record of it.
    pub broadcast: Option<BroadcastInput>,
    /// How the step reads its input when the job says (`partition: rebalance` before it,
    /// Flink's `rebalance()`): the step then starts a stage of its own, at its own
    /// parallelism or the job's default. `None`: chained, or as `key_by` and parallelism say.
    pub input: Option<Partitioning>,
}

impl Step {
    /// A step whose uid is its name (for names without a plugin version).
    pub fn new(name: impl Into<String>, kind: StepKind, factory: OperatorFactory) -> Self {
        let name = name.into();
        Self { uid: name.clone(), name, kind, parallelism: None, factory, broadcast: None, input: None }
    }
}

/// The longest uid a user may give a step.
pub const MAX_UID_LENGTH: usize = 128;

/// Why `uid` cannot be a step's uid, if it cannot: uids are 1 to [`MAX_UID_LENGTH`]
/// characters of letters, digits, `_`, `-`, `.` and `:` (they name state in files and
/// metrics).
pub fn check_uid(uid: &str) -> Result<(), String> {
    if uid.is_empty() || uid.len() > MAX_UID_LENGTH {
        return Err(format!("a uid has 1 to {MAX_UID_LENGTH} characters"));
    }
    match uid.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))) {
        Some(c) => Err(format!("`{c}` cannot be in a uid: use letters, digits, `_`, `-`, `.` and `:`")),
        None => Ok(()),
    }
}

/// The broadcast side of a connected stream: a source whose records reach every parallel
/// instance of the step, in the same order, through `Operator::process_broadcast`.
#[derive(Debug, Clone)]
pub struct BroadcastInput {
    pub source: SourceSpec,
    /// Hold the keyed input back until the broadcast source ends: for a bounded reference
    /// table (users, rules) that must be complete before the first keyed record. Without
    /// it the two inputs interleave, broadcast records first when both are waiting.
    pub preload: bool,
}

/// Job-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobConfig {
    /// Parallelism of keyed steps that do not set their own (default: the number of cores).
    pub default_parallelism: usize,
    /// Number of key groups (the most instances a keyed step can have).
    pub max_parallelism: u16,
    /// Records per batch the sources emit.
    pub batch_size: usize,
    /// Batches a channel holds before its sender blocks (backpressure).
    pub channel_capacity: usize,
    /// Where keyed state lives (`None`: a temporary directory, gone after the job; with
    /// checkpoints, `state` in the checkpoint directory).
    pub state_dir: Option<std::path::PathBuf>,
    /// Periodic checkpoints, and resuming from the latest one (`None`: off).
    pub checkpoints: Option<crate::checkpoint::CheckpointConfig>,
    /// Resume even if the checkpoint holds state of steps the job no longer has (Flink's
    /// `--allowNonRestoredState`): that state is dropped.
    pub allow_non_restored_state: bool,
}

impl Default for JobConfig {
    fn default() -> Self {
        Self {
            default_parallelism: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_parallelism: crate::state::DEFAULT_MAX_PARALLELISM,
            batch_size: 1024,
            channel_capacity: 16,
            state_dir: None,
            checkpoints: None,
            allow_non_restored_state: false,
        }
    }
}

/// The logical plan of a job.
#[derive(Clone)]
pub struct JobGraph {
    pub name: String,
    pub source: SourceSpec,
    /// More sources whose records join the main source's before the first step (Flink's
    /// `union` of streams straight from their sources): the first stage reads them all, its
    /// watermark is the least of theirs, and a checkpoint waits for a barrier from each.
    pub union: Vec<SourceSpec>,
    pub steps: Vec<Step>,
    pub sink: SinkSpec,
    pub dead_letter: SinkSpec,
    /// Where records too late for their windows go (Flink's late-data side output);
    /// without one they are dead letters of kind `late`.
    pub late_data: Option<SinkSpec>,
    pub config: JobConfig,
}

impl JobGraph {
    /// The sources feeding the first stage: the main one and the union's.
    pub fn sources(&self) -> usize {
        1 + self.union.len()
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum GraphError {
    #[error("`{step}` needs a keyed stream: put `key_by` right before it")]
    NotKeyed { step: String },
    #[error(
        "`{step}` cannot take a broadcast input: only keyed `process` steps can be connected to a broadcast stream"
    )]
    BroadcastNotKeyed { step: String },
    #[error("`{step}` has parallelism {parallelism}; it must be between 1 and {max} (the job's max_parallelism)")]
    Parallelism { step: String, parallelism: usize, max: usize },
    #[error("steps `{first}` and `{second}` both have uid `{uid}`; a uid names one step's state: give each its own")]
    DuplicateUid { uid: String, first: String, second: String },
    #[error(
        "`{step}` comes right after key_by, whose records go by key to it: a `partition` cannot come between them (partition before key_by)"
    )]
    PartitionAfterKeyBy { step: String },
}

/// A physical stage: fused operators run by `parallelism` tasks.
#[derive(Clone)]
pub struct Stage {
    pub steps: Vec<Step>,
    pub parallelism: usize,
    pub input: Partitioning,
}

impl Stage {
    /// The broadcast input of the stage's first step, the only one that can have one.
    pub fn broadcast(&self) -> Option<&BroadcastInput> {
        self.steps.first().and_then(|s| s.broadcast.as_ref())
    }
}

/// Split a job's steps into stages.
pub fn plan(graph: &JobGraph) -> Result<Vec<Stage>, GraphError> {
    let cfg = &graph.config;
    let max = usize::from(cfg.max_parallelism);
    let mut stages: Vec<Stage> = Vec::new();
    // The stage being filled; the source has parallelism 1.
    let mut current = Stage { steps: Vec::new(), parallelism: 1, input: Partitioning::Forward };
    let mut after_key_by = false;
    for (i, step) in graph.steps.iter().enumerate() {
        if let Some(first) = graph.steps[..i].iter().find(|s| s.uid == step.uid) {
            return Err(GraphError::DuplicateUid {
                uid: step.uid.clone(),
                first: first.name.clone(),
                second: step.name.clone(),
            });
        }
        if let Some(p) = step.parallelism
            && (p == 0 || p > max)
        {
            return Err(GraphError::Parallelism { step: step.name.clone(), parallelism: p, max });
        }
        if step.kind == StepKind::Keyed && !after_key_by {
            return Err(GraphError::NotKeyed { step: step.name.clone() });
        }
        // A keyed step starts its stage, so its broadcast input feeds that stage's instances.
        if step.broadcast.is_some() && step.kind != StepKind::Keyed {
            return Err(GraphError::BroadcastNotKeyed { step: step.name.clone() });
        }
        if let Some(input) = step.input {
            if after_key_by {
                return Err(GraphError::PartitionAfterKeyBy { step: step.name.clone() });
            }
            // The step reads its input as the job says: a stage of its own.
            let p = step.parallelism.unwrap_or(cfg.default_parallelism.clamp(1, max));
            let upstream =
                if current.steps.is_empty() && stages.is_empty() { graph.sources() } else { current.parallelism };
            let input = match input {
                Partitioning::Rescale { .. } => Partitioning::Rescale { upstream },
                other => other,
            };
            stages.push(std::mem::replace(&mut current, Stage { steps: Vec::new(), parallelism: p, input }));
        } else if after_key_by {
            // Start the keyed stage.
            let p = step.parallelism.unwrap_or(cfg.default_parallelism.clamp(1, max));
            stages.push(std::mem::replace(
                &mut current,
                Stage {
                    steps: Vec::new(),
                    parallelism: p,
                    input: Partitioning::KeyGroups { max_parallelism: cfg.max_parallelism },
                },
            ));
        } else if let Some(p) = step.parallelism
            && p != current.parallelism
        {
            if current.steps.is_empty() && stages.is_empty() {
                // First stage: its parallelism is whatever its first step asks for.
                current.parallelism = p;
            } else {
                stages.push(std::mem::replace(
                    &mut current,
                    Stage { steps: Vec::new(), parallelism: p, input: Partitioning::Rebalance },
                ));
            }
        }
        current.steps.push(step.clone());
        after_key_by = step.kind == StepKind::KeyBy;
    }
    stages.push(current);
    stages.retain(|s| !s.steps.is_empty());
    // The source is a single task: a first stage wider than 1 is fed by rebalance.
    if let Some(first) = stages.first_mut()
        && first.parallelism > 1
        && first.input == Partitioning::Forward
    {
        first.input = Partitioning::Rebalance;
    }
    Ok(stages)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::task::OperatorError;

    fn step(name: &str, kind: StepKind, parallelism: Option<usize>) -> Step {
        let factory: OperatorFactory = Arc::new(|_: &crate::task::InstanceContext| {
            Err(OperatorError::Failed { operator: "test".into(), message: "unused".into() })
        });
        Step { parallelism, ..Step::new(name, kind, factory) }
    }

    fn graph(steps: Vec<Step>) -> JobGraph {
        JobGraph {
            name: "t".into(),
            source: SourceSpec::collection(vec![]),
            union: Vec::new(),
            steps,
            sink: SinkSpec::discard(),
            dead_letter: SinkSpec::discard(),
            late_data: None,
            config: JobConfig { default_parallelism: 4, ..Default::default() },
        }
    }

    fn shape(stages: &[Stage]) -> Vec<(Vec<String>, usize, Partitioning)> {
        stages.iter().map(|s| (s.steps.iter().map(|x| x.name.clone()).collect(), s.parallelism, s.input)).collect()
    }

    #[test]
    fn two_steps_cannot_share_a_uid() {
        let mut b = step("b", StepKind::Stateless, None);
        b.uid = "a".into();
        let err = plan(&graph(vec![step("a", StepKind::Stateless, None), b])).err().unwrap();
        assert_eq!(err, GraphError::DuplicateUid { uid: "a".into(), first: "a".into(), second: "b".into() });
    }

    #[test]
    fn uids_are_plain_names() {
        assert!(check_uid("fraud-detector_v2.1:x").is_ok());
        assert!(check_uid("").is_err());
        assert!(check_uid("a/b").unwrap_err().contains("`/`"));
        assert!(check_uid(&"x".repeat(MAX_UID_LENGTH + 1)).is_err());
    }

    #[test]
    fn stateless_steps_fuse_into_one_ordered_stage() {
        let g = graph(vec![step("map", StepKind::Stateless, None), step("filter", StepKind::Stateless, None)]);
        assert_eq!(shape(&plan(&g).unwrap()), vec![(vec!["map".into(), "filter".into()], 1, Partitioning::Forward)]);
    }

    #[test]
    fn key_by_splits_and_the_keyed_stage_takes_the_default_parallelism() {
        let g = graph(vec![
            step("map", StepKind::Stateless, None),
            step("key_by", StepKind::KeyBy, None),
            step("count", StepKind::Keyed, None),
            step("map2", StepKind::Stateless, None),
        ]);
        let kg = Partitioning::KeyGroups { max_parallelism: 128 };
        assert_eq!(
            shape(&plan(&g).unwrap()),
            vec![
                (vec!["map".into(), "key_by".into()], 1, Partitioning::Forward),
                (vec!["count".into(), "map2".into()], 4, kg),
            ]
        );
    }

    #[test]
    fn another_parallelism_starts_a_rebalanced_stage() {
        let g = graph(vec![
            step("a", StepKind::Stateless, Some(2)),
            step("b", StepKind::Stateless, None),
            step("c", StepKind::Stateless, Some(3)),
        ]);
        assert_eq!(
            shape(&plan(&g).unwrap()),
            vec![
                (vec!["a".into(), "b".into()], 2, Partitioning::Rebalance),
                (vec!["c".into()], 3, Partitioning::Rebalance)
            ]
        );
    }

    #[test]
    fn a_partitioned_step_starts_a_stage_read_as_the_job_says() {
        let mut shuffled = step("b", StepKind::Stateless, None);
        shuffled.input = Some(Partitioning::Shuffle);
        let mut rescaled = step("c", StepKind::Stateless, Some(2));
        rescaled.input = Some(Partitioning::Rescale { upstream: 0 });
        let g = graph(vec![step("a", StepKind::Stateless, None), shuffled, rescaled]);
        assert_eq!(
            shape(&plan(&g).unwrap()),
            vec![
                (vec!["a".into()], 1, Partitioning::Forward),
                (vec!["b".into()], 4, Partitioning::Shuffle),
                (vec!["c".into()], 2, Partitioning::Rescale { upstream: 4 }),
            ]
        );
        let mut after_key_by = step("m", StepKind::Stateless, None);
        after_key_by.input = Some(Partitioning::Rebalance);
        let g = graph(vec![step("key_by", StepKind::KeyBy, None), after_key_by]);
        assert!(matches!(plan(&g), Err(GraphError::PartitionAfterKeyBy { .. })));
    }

    #[test]
    fn keyed_steps_need_key_by_right_before() {
        let g = graph(vec![step("count", StepKind::Keyed, None)]);
        assert!(matches!(plan(&g), Err(GraphError::NotKeyed { .. })));
        let g = graph(vec![
            step("key_by", StepKind::KeyBy, None),
            step("m", StepKind::Stateless, None),
            step("count", StepKind::Keyed, None),
        ]);
        assert!(matches!(plan(&g), Err(GraphError::NotKeyed { .. })));
        let g = graph(vec![step("m", StepKind::Stateless, Some(0))]);
        assert!(matches!(plan(&g), Err(GraphError::Parallelism { .. })));
    }

    #[test]
    fn a_broadcast_input_belongs_to_the_keyed_step_that_starts_a_stage() {
        let rules = BroadcastInput { source: SourceSpec::collection(vec![]), preload: false };
        let mut process = step("process", StepKind::Keyed, None);
        process.broadcast = Some(rules.clone());
        let g = graph(vec![step("key_by", StepKind::KeyBy, None), process, step("m", StepKind::Stateless, None)]);
        let stages = plan(&g).unwrap();
        assert!(stages[0].broadcast().is_none());
        assert!(stages[1].broadcast().is_some());
        let mut map = step("m", StepKind::Stateless, None);
        map.broadcast = Some(rules);
        assert!(matches!(plan(&graph(vec![map])), Err(GraphError::BroadcastNotKeyed { .. })));
    }
}
