//! The operator trait (Arroyo's `ArrowOperator`, Flink's `StreamOperator`): what a task
//! calls for data, event time, processing time and checkpoints, and the context an
//! instance is made in. The task's run loop that calls it is [`super::StageInstance`].

use thiserror::Error;

use super::DeadLetters;
use crate::record::Batch;
use crate::time::TimeSignal;

/// An error that stops the job (as opposed to a failed record, which is a dead letter).
#[derive(Debug, Error)]
pub enum OperatorError {
    #[error("{operator}: {source}")]
    Plugin { operator: String, source: crate::plugin::PluginError },
    #[error("{operator}: {message}")]
    Failed { operator: String, message: String },
}

/// One operator of a task.
pub trait Operator: Send {
    /// Name in logs, metrics and dead letters, e.g. `map[0] upper@0.1.0.upper`.
    fn name(&self) -> &str;

    /// Process one batch, appending results to `out` and failures to `dead`.
    fn process(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError>;

    /// Process one batch of the broadcast stream connected to this operator (Flink's
    /// `connect(broadcastStream)`). Only operators that take a broadcast input override it.
    fn process_broadcast(
        &mut self,
        _input: Batch,
        _out: &mut Batch,
        _dead: &mut DeadLetters,
    ) -> Result<(), OperatorError> {
        Err(OperatorError::Failed {
            operator: self.name().to_string(),
            message: "this step takes no broadcast input: only `process` steps can be connected to a broadcast stream"
                .into(),
        })
    }

    /// Process one batch of the second input of a two-input step (Flink's
    /// `processElement2`: the right side of a join, the second stream of `connect`). The
    /// first input comes through [`Operator::process`]; event time is the least of both.
    /// Only two-input operators override it.
    fn process_second(
        &mut self,
        _input: Batch,
        _out: &mut Batch,
        _dead: &mut DeadLetters,
    ) -> Result<(), OperatorError> {
        Err(OperatorError::Failed {
            operator: self.name().to_string(),
            message: "this step takes one input: only joins and co-process steps read two streams".into(),
        })
    }

    /// Event time reached `watermark` at this operator's input: release into `out` what
    /// is now due (windows that fire), and return the watermark to pass on: the same by
    /// default, `None` for an operator that makes event time itself (a timestamp assigner).
    fn on_watermark(
        &mut self,
        watermark: i64,
        _out: &mut Batch,
        _dead: &mut DeadLetters,
    ) -> Result<Option<i64>, OperatorError> {
        Ok(Some(watermark))
    }

    /// A time signal this operator generated (timestamp assigners): a watermark from the
    /// last batch, sent on after its records, or that its input went idle or active.
    /// The runtime takes signals until `None`.
    fn take_time_signal(&mut self) -> Option<TimeSignal> {
        None
    }

    /// The wall-clock time (epoch ms) at which this operator next wants
    /// [`Operator::on_processing_time`] called, if any.
    fn next_processing_timer(&self) -> Option<i64> {
        None
    }

    /// The wall clock reached `now` (epoch ms): fire what is due (processing-time windows,
    /// idleness).
    fn on_processing_time(
        &mut self,
        _now: i64,
        _out: &mut Batch,
        _dead: &mut DeadLetters,
    ) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Checkpoint barrier `id` reached this operator (from all inputs): seal keyed state for
    /// the checkpoint and return the state it keeps in memory, if any, to store with it.
    /// The blob must let [`Operator::restore`] of any instance pick its key groups.
    fn snapshot(&mut self, _id: u64) -> Result<Option<Vec<u8>>, OperatorError> {
        Ok(None)
    }

    /// Checkpoint `id` and those before it are complete.
    fn checkpoint_complete(&mut self, _id: u64) -> Result<(), OperatorError> {
        Ok(())
    }

    /// The job resumes from a checkpoint: `blobs` are what [`Operator::snapshot`] returned in
    /// every instance of this step (another parallelism may have written them); keep the
    /// entries whose key `owns` (the key groups of this instance).
    fn restore(&mut self, _blobs: &[&[u8]], _owns: &dyn Fn(&[u8]) -> bool) -> Result<(), OperatorError> {
        Ok(())
    }

    /// The input has ended (after the final watermark): emit anything held back.
    fn finish(&mut self, _out: &mut Batch, _dead: &mut DeadLetters) -> Result<(), OperatorError> {
        Ok(())
    }
}

/// A snapshot blob that cannot be read back: the checkpoint does not belong to this job.
pub fn bad_snapshot(operator: &str, e: impl std::fmt::Display) -> OperatorError {
    OperatorError::Failed {
        operator: operator.to_string(),
        message: format!("cannot restore this step's state from the checkpoint ({e}); was the job file changed?"),
    }
}

/// Makes one operator per parallel instance. Factories are what the job graph holds, so the
/// graph knows nothing of plugins: only of named, parallelizable operators.
pub type OperatorFactory =
    std::sync::Arc<dyn Fn(&InstanceContext) -> Result<Box<dyn Operator>, OperatorError> + Send + Sync>;

/// Where an operator instance runs: its step's uid, its index among the step's parallel
/// instances, the key groups, and the job's state store (opened on first use).
pub struct InstanceContext {
    /// The uid of the step (see [`crate::graph::Step::uid`]): what keys its state.
    pub uid: String,
    pub index: usize,
    pub parallelism: usize,
    pub max_parallelism: u16,
    pub state: JobState,
    /// Whether the job takes checkpoints: keyed state is then written at barriers only.
    pub checkpointing: bool,
}

impl InstanceContext {
    /// The key groups this instance owns.
    pub fn key_groups(&self) -> crate::state::KeyGroupRange {
        crate::state::KeyGroupRange::for_instance(self.index, self.parallelism, self.max_parallelism)
    }
}

/// The job's keyed state store, opened when the first stateful operator asks for it: in
/// `dir`, or in a temporary directory deleted at the end of the job.
#[derive(Clone, Default)]
pub struct JobState {
    dir: Option<std::path::PathBuf>,
    /// The checkpoint the job resumes from (see [`crate::state::StateStore::open_at`]).
    restored: Option<u64>,
    store: std::sync::Arc<std::sync::OnceLock<Result<crate::state::StateStore, String>>>,
}

impl JobState {
    pub fn new(dir: Option<std::path::PathBuf>) -> Self {
        Self { dir, restored: None, store: Default::default() }
    }

    /// State for a checkpointed job that resumes from checkpoint `restored` (0: none).
    pub fn restoring(mut self, restored: u64) -> Self {
        self.restored = Some(restored);
        self
    }

    /// The store, if an operator opened it.
    pub fn opened(&self) -> Option<crate::state::StateStore> {
        self.store.get().and_then(|s| s.as_ref().ok()).cloned()
    }

    pub fn store(&self) -> Result<crate::state::StateStore, String> {
        self.store
            .get_or_init(|| {
                let config = crate::state::StateConfig::default();
                match &self.dir {
                    Some(dir) => crate::state::StateStore::open_at(dir, config, self.restored),
                    None => crate::state::StateStore::temporary(config),
                }
                .map_err(|e| e.to_string())
            })
            .clone()
    }
}
