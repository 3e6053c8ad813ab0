//! Executing a job graph: one task per source, parallel stage instance, sink and
//! dead-letter output, connected by bounded channels.
//!
//! Tasks that call plugins are CPU-bound and synchronous (a wasmtime call must not stall
//! an async worker), so every task runs on tokio's blocking pool and talks through tokio
//! channels. End of input travels as channel closure: a task ends when all its senders are
//! gone, finishes its operators, and drops its own senders, so the end flows downstream in
//! order after every batch.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::mpsc;

use super::partition::{Message, Output, Partitioning};
use super::{DeadLetter, Payload};

/// The dead-letter kind of records too late for their windows.
pub const LATE: &str = "late";
use crate::checkpoint::{
    self, Ack, CheckpointError, CheckpointMeta, Coordinator, CoordinatorHandle, OperatorSnapshot, PluginVersion,
    SourcePosition,
};
use crate::connectors::{self, ConnectorError, SinkSpec, SourceContext, SourceSpec};
use crate::graph::{self, GraphError, JobGraph};
use crate::operator::{DeadLetters, InstanceContext, JobState, Operator, OperatorError};
use crate::record::Batch;
use crate::time::{END_OF_TIME, TimeSignal, WatermarkTracker};

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
    fn is_secondary(&self) -> bool {
        matches!(self, RuntimeError::Connector(ConnectorError::Disconnected))
    }

    /// Whether restarting from a checkpoint may get past it (a failing connection, a sink
    /// that could not write, a plugin that failed), unlike a job that cannot start as built.
    fn is_restartable(&self) -> bool {
        if let RuntimeError::Connector(ConnectorError::Postgres(e)) = self {
            return e.is_transient();
        }
        !matches!(
            self,
            RuntimeError::Graph(_)
                | RuntimeError::Checkpoint(_)
                | RuntimeError::GaveUp { .. }
                | RuntimeError::Connector(ConnectorError::Position { .. })
        )
    }
}

/// What a finished job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobReport {
    pub name: String,
    /// Records the source emitted.
    pub records_in: u64,
    /// Records broadcast sources emitted (each reaches every instance of its step).
    pub broadcast_in: u64,
    /// Records the sink received.
    pub records_out: u64,
    pub dead_letters: u64,
    /// Records sent to the late-data output.
    pub late_records: u64,
    pub elapsed: Duration,
    /// Time tasks spent blocked on full channels, summed over tasks.
    pub backpressure: Duration,
}

/// What one task reports when it ends.
#[derive(Debug, Default)]
struct TaskStats {
    records_in: u64,
    broadcast_in: u64,
    records_out: u64,
    dead_letters: u64,
    late_records: u64,
    backpressure: Duration,
}

type TaskResult = Result<TaskStats, RuntimeError>;

/// Shared by a running job and whoever controls it: a cancellation request that the sources
/// check at every batch they ship (and socket reads at least every
/// [`connectors::POLL_INTERVAL`]), and live counters, one atomic add per batch.
#[derive(Debug, Default)]
pub struct JobControl {
    cancelled: AtomicBool,
    finished: AtomicBool,
    records_in: AtomicU64,
    records_out: AtomicU64,
    /// The newest checkpoint the coordinator asked for, and the newest complete one.
    checkpoint_requested: AtomicU64,
    checkpoint_completed: AtomicU64,
    /// The state of the job's external connectors (Kafka, PostgreSQL), for the metrics.
    connectors: connectors::ConnectorRegistry,
}

impl JobControl {
    /// Ask the sources to stop: each ships what it has batched and ends, so the job ends
    /// cleanly (windows fire, sinks flush) with every record read so far.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Whether every task of the job has ended.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Records the (non-broadcast) source shipped so far.
    pub fn records_in(&self) -> u64 {
        self.records_in.load(Ordering::Relaxed)
    }

    /// Records the sink received so far.
    pub fn records_out(&self) -> u64 {
        self.records_out.load(Ordering::Relaxed)
    }

    pub(crate) fn add_records_in(&self, n: u64) {
        self.records_in.fetch_add(n, Ordering::Relaxed);
    }

    /// The newest checkpoint asked of the sources (0: none yet).
    pub fn connectors(&self) -> &connectors::ConnectorRegistry {
        &self.connectors
    }

    pub fn checkpoint_requested(&self) -> u64 {
        self.checkpoint_requested.load(Ordering::Acquire)
    }

    /// The newest complete checkpoint (0: none yet).
    pub fn last_checkpoint(&self) -> u64 {
        self.checkpoint_completed.load(Ordering::Acquire)
    }

    pub(crate) fn request_checkpoint(&self, id: u64) {
        self.checkpoint_requested.fetch_max(id, Ordering::AcqRel);
    }

    pub(crate) fn complete_checkpoint(&self, id: u64) {
        self.checkpoint_completed.fetch_max(id, Ordering::AcqRel);
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
    control.finished.store(true, Ordering::Release);
    result
}

async fn run_restarting(
    graph: JobGraph,
    control: &Arc<JobControl>,
    config: &checkpoint::CheckpointConfig,
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

async fn run_graph(mut graph: JobGraph, control: &Arc<JobControl>) -> Result<JobReport, RuntimeError> {
    let started = Instant::now();
    let stages = graph::plan(&graph)?;
    let cap = graph.config.channel_capacity.max(1);
    let mut tasks = tokio::task::JoinSet::new();

    // Checkpoints: what the job resumes from, and its state and output made to match it.
    let resume = match &graph.config.checkpoints {
        Some(config) => Some(prepare_checkpoints(config, &graph)?),
        None => None,
    };
    let restored = resume.as_ref().map(|r| r.as_ref().map_or(0, |m| m.id));
    let state_dir = graph.config.state_dir.clone().or_else(|| graph.config.checkpoints.as_ref().map(|c| c.state_dir()));
    let job_state = match restored {
        Some(id) => JobState::new(state_dir).restoring(id),
        None => JobState::new(state_dir),
    };
    // Open the outputs first: a bad sink path fails before any record flows.
    let sink_ctx = connectors::SinkContext { job: &graph.name, control, first_epoch: restored.map(|id| id + 1) };
    let connectors::OpenedSink { writer: mut sink, committer: mut sink_committer } =
        connectors::open_job_sink(&graph.sink, &sink_ctx)?;
    let mut dead_sink = connectors::open_sink(&graph.dead_letter)?;
    let mut late_sink = graph.late_data.as_ref().map(connectors::open_sink).transpose()?;

    let instances: usize = stages.iter().map(|s| s.parallelism).sum();
    let broadcasts = stages.iter().filter(|s| s.broadcast().is_some()).count();
    let (coordinator, handle) = match (&graph.config.checkpoints, restored) {
        (Some(config), Some(restored)) => {
            let plugins = plugin_versions(&stages);
            let (mut c, handle) = Coordinator::new(
                config.clone(),
                graph.name.clone(),
                control.clone(),
                job_state.clone(),
                1 + broadcasts,
                instances,
                restored + 1,
                plugins,
            );
            if let Some(committer) = sink_committer.take() {
                c.add_committer(committer);
            }
            (Some(c), handle)
        }
        _ => (None, CoordinatorHandle::default()),
    };
    let start_of =
        |source: usize| -> Option<SourcePosition> { resume.as_ref()?.as_ref()?.sources.get(source).cloned() };

    let (dead_tx, mut dead_rx) = mpsc::channel::<Vec<DeadLetter>>(cap);
    tasks.spawn_blocking(move || -> TaskResult {
        let mut stats = TaskStats::default();
        while let Some(letters) = dead_rx.blocking_recv() {
            let (mut dead, mut late) = (Batch::new(), Batch::new());
            for d in &letters {
                tracing::debug!(operator = %d.operator, kind = %d.kind, error = %d.error, "dead letter");
                match (&d.payload, late_sink.is_some() && d.kind == LATE) {
                    // Late records are data: the late-data output gets the records themselves.
                    (Payload::Record(v), true) => {
                        stats.late_records += 1;
                        late.push(v);
                    }
                    _ => {
                        stats.dead_letters += 1;
                        dead.push(&d.to_record());
                    }
                }
            }
            dead_sink.write(&dead)?;
            if let Some(sink) = late_sink.as_mut() {
                sink.write(&late)?;
            }
        }
        dead_sink.finish()?;
        if let Some(sink) = late_sink.as_mut() {
            sink.finish()?;
        }
        Ok(stats)
    });

    // The sink: a single task fed by every instance of the last stage.
    let (sink_tx, mut sink_rx) = mpsc::channel::<Message>(cap);
    let sink_control = control.clone();
    let sink_inputs = stages.last().map_or(1, |s| s.parallelism);
    let sink_coordinator = handle.clone();
    tasks.spawn_blocking(move || -> TaskResult {
        let mut stats = TaskStats::default();
        let mut align = Alignment::new(sink_inputs);
        loop {
            let next = align.queued().or_else(|| sink_rx.blocking_recv());
            let ended = next.is_none();
            match next {
                Some(message) => {
                    if let Some(Message::Data { batch, .. }) = align.on_data(message, false) {
                        stats.records_out += batch.len() as u64;
                        sink.write(&batch)?;
                        sink_control.records_out.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    }
                }
                None => align.on_data_end(),
            }
            match align.take_aligned() {
                Some(id) => {
                    sink.barrier(id)?;
                    sink_coordinator.send(Ack::Sink { id });
                }
                // Ended, and nothing held back is left to replay.
                None if ended => break,
                None => {}
            }
        }
        sink.finish()?;
        Ok(stats)
    });

    // Stages from last to first, so each knows the senders of the one after it.
    let mut downstream: Vec<mpsc::Sender<Message>> = vec![sink_tx];
    let mut downstream_input = Partitioning::Rebalance;
    let mut broadcast_index = broadcasts;
    for (k, stage) in stages.iter().enumerate().rev() {
        // Instances sending into this stage: the previous stage's, or the single source.
        let inputs = if k == 0 { 1 } else { stages[k - 1].parallelism };
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..stage.parallelism).map(|_| mpsc::channel::<Message>(cap)).unzip();
        // A broadcast input: its own source task, sending every batch to every instance.
        let mut broadcast_rxs = match stage.broadcast() {
            None => Vec::new(),
            Some(input) => {
                let (btxs, brxs): (Vec<_>, Vec<_>) =
                    (0..stage.parallelism).map(|_| mpsc::channel::<Message>(cap)).unzip();
                let output = Output::new(btxs, Partitioning::Broadcast, 0);
                let source = SourceTask {
                    spec: input.source.clone(),
                    index: broadcast_index,
                    start: start_of(broadcast_index),
                    broadcast: true,
                };
                broadcast_index -= 1;
                spawn_source(&mut tasks, source, output, &graph.config, &dead_tx, control, &handle);
                brxs.into_iter().map(|rx| BroadcastRx { rx, preload: input.preload }).collect()
            }
        }
        .into_iter();
        for (index, rx) in rxs.into_iter().enumerate() {
            let ctx = InstanceContext {
                index,
                parallelism: stage.parallelism,
                max_parallelism: graph.config.max_parallelism,
                state: job_state.clone(),
                checkpointing: restored.is_some(),
            };
            let mut operators = stage.steps.iter().map(|s| (s.factory)(&ctx)).collect::<Result<Vec<_>, _>>()?;
            if let Some(Some(meta)) = &resume {
                restore_operators(&mut operators, meta, k, &ctx)?;
            }
            let output = Output::new(downstream.clone(), downstream_input, index);
            let dead = dead_tx.clone();
            let mut instance = StageInstance {
                operators,
                output,
                dead,
                letters: DeadLetters::default(),
                stage: k,
                index,
                control: control.clone(),
                coordinator: handle.clone(),
            };
            let broadcast = broadcast_rxs.next();
            tasks.spawn_blocking(move || instance.run(rx, inputs, broadcast));
        }
        downstream = txs;
        downstream_input = stage.input;
    }

    // The source task takes the spec: a collection's elements move instead of being copied
    // (a million-record collection took ~80 ms to clone, inside the job's time).
    let spec = std::mem::replace(&mut graph.source, SourceSpec::Collection { elements: Vec::new() });
    let output = Output::new(downstream, downstream_input, 0);
    let source = SourceTask { spec, index: 0, start: start_of(0), broadcast: false };
    spawn_source(&mut tasks, source, output, &graph.config, &dead_tx, control, &handle);
    drop(dead_tx);
    drop(handle);
    let coordinator = coordinator.map(|c| std::thread::spawn(move || c.run()));

    let mut report = JobReport { name: graph.name.clone(), ..Default::default() };
    let mut first_error: Option<RuntimeError> = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.unwrap_or_else(|e| Err(RuntimeError::Panic(e.to_string())));
        match result {
            Ok(s) => {
                report.records_in += s.records_in;
                report.broadcast_in += s.broadcast_in;
                report.records_out += s.records_out;
                report.dead_letters += s.dead_letters;
                report.late_records += s.late_records;
                report.backpressure += s.backpressure;
            }
            Err(e) => {
                let replace = first_error.as_ref().is_none_or(|f| f.is_secondary() && !e.is_secondary());
                if replace {
                    first_error = Some(e);
                }
            }
        }
    }
    if let Some(coordinator) = coordinator {
        let coordinator = tokio::task::spawn_blocking(move || coordinator.join())
            .await
            .map_err(|e| RuntimeError::Panic(e.to_string()))?
            .map_err(|_| RuntimeError::Panic("the checkpoint coordinator panicked".into()))?;
        // A cancelled or failed job keeps its checkpoints: running it again resumes.
        if first_error.is_none() && !control.is_cancelled() {
            tokio::task::spawn_blocking(move || coordinator.finish())
                .await
                .map_err(|e| RuntimeError::Panic(e.to_string()))??;
        }
    }
    report.elapsed = started.elapsed();
    match first_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// What a checkpointed job starts from: its latest complete checkpoint, unless that is
/// the last one of a finished run (then the job starts afresh). The state and the file
/// sink's part files are made to match: state and parts of later epochs are dropped.
fn prepare_checkpoints(
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
fn step_id(stage: usize, step: usize) -> String {
    format!("{stage}/{step}")
}

/// The step names of the job (each names its plugin), for the checkpoint's record.
fn plugin_versions(stages: &[graph::Stage]) -> Vec<PluginVersion> {
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
fn restore_operators(
    operators: &mut [Box<dyn Operator>],
    meta: &CheckpointMeta,
    stage: usize,
    ctx: &InstanceContext,
) -> Result<(), OperatorError> {
    let (range, max) = (ctx.key_groups(), ctx.max_parallelism);
    let owns = move |key: &[u8]| range.contains(crate::runtime::key_group(key, max));
    for (i, op) in operators.iter_mut().enumerate() {
        let step = step_id(stage, i);
        let blobs: Vec<&[u8]> = meta.operators.iter().filter(|o| o.step == step).map(|o| o.data.as_slice()).collect();
        if !blobs.is_empty() {
            op.restore(&blobs, &owns)?;
        }
    }
    Ok(())
}

/// A source of the job: the main one (index 0) or a broadcast input.
struct SourceTask {
    spec: SourceSpec,
    index: usize,
    /// Where a resumed job's source starts.
    start: Option<SourcePosition>,
    broadcast: bool,
}

/// A source task: reads `source` into `output` until it ends.
fn spawn_source(
    tasks: &mut tokio::task::JoinSet<TaskResult>,
    source: SourceTask,
    output: Output,
    config: &graph::JobConfig,
    dead: &mpsc::Sender<Vec<DeadLetter>>,
    control: &Arc<JobControl>,
    coordinator: &CoordinatorHandle,
) {
    let mut ctx = SourceContext::new(output, config.batch_size, dead.clone())
        .with_control(control.clone(), !source.broadcast)
        .with_checkpoints(coordinator.clone(), source.index);
    tasks.spawn_blocking(move || -> TaskResult {
        let result = connectors::run_source(&source.spec, &mut ctx, source.start.as_ref());
        let mut stats = TaskStats { backpressure: ctx.backpressure(), ..Default::default() };
        if source.broadcast {
            stats.broadcast_in = ctx.emitted;
        } else {
            stats.records_in = ctx.emitted;
        }
        result.map(|()| stats).map_err(RuntimeError::from)
    });
}

/// Barrier alignment of a task's inputs (Flink's aligned checkpoints): once barrier `n` came
/// from an input, that input's later messages wait until `n` came from every input; then
/// the task snapshots, and the waiting messages go first.
struct Alignment {
    /// Which data inputs brought the barrier of the checkpoint being aligned.
    arrived: Vec<bool>,
    /// Whether the broadcast input brought it (or has none, or ended).
    broadcast_arrived: bool,
    current: Option<u64>,
    held: VecDeque<Message>,
    replay: VecDeque<Message>,
}

impl Alignment {
    fn new(inputs: usize) -> Self {
        Self {
            arrived: vec![false; inputs.max(1)],
            broadcast_arrived: true,
            current: None,
            held: VecDeque::new(),
            replay: VecDeque::new(),
        }
    }

    /// A message that waited during the last alignment, to handle before reading on.
    fn queued(&mut self) -> Option<Message> {
        self.replay.pop_front()
    }

    fn has_queued(&self) -> bool {
        !self.replay.is_empty()
    }

    /// A message of the data input: `Some` to handle now; `None` if it waits or was a barrier.
    fn on_data(&mut self, message: Message, broadcast_open: bool) -> Option<Message> {
        let from = message.from().min(self.arrived.len() - 1);
        if self.current.is_some() && self.arrived[from] {
            self.held.push_back(message);
            return None;
        }
        if let Message::Barrier { id, .. } = message {
            if self.start(id, broadcast_open) {
                self.arrived[from] = true;
            }
            return None;
        }
        Some(message)
    }

    /// Barrier `id` of the broadcast input.
    fn on_broadcast_barrier(&mut self, id: u64) {
        if self.start(id, true) {
            self.broadcast_arrived = true;
        }
    }

    /// Every data input ended: none will bring a barrier any more.
    fn on_data_end(&mut self) {
        self.arrived.fill(true);
    }

    fn on_broadcast_end(&mut self) {
        self.broadcast_arrived = true;
    }

    /// Whether the broadcast input must wait (it brought the barrier being aligned).
    fn broadcast_blocked(&self) -> bool {
        self.current.is_some() && self.broadcast_arrived
    }

    /// Starts aligning `id` if nothing is; whether `id` is the one being aligned.
    fn start(&mut self, id: u64, broadcast_open: bool) -> bool {
        match self.current {
            None => {
                self.current = Some(id);
                self.arrived.fill(false);
                self.broadcast_arrived = !broadcast_open;
                true
            }
            Some(current) => current == id,
        }
    }

    /// The checkpoint whose barrier came from every input, once: snapshot now.
    fn take_aligned(&mut self) -> Option<u64> {
        let id = self.current?;
        if !(self.broadcast_arrived && self.arrived.iter().all(|a| *a)) {
            return None;
        }
        self.current = None;
        let mut held = std::mem::take(&mut self.held);
        held.append(&mut self.replay);
        self.replay = held;
        Some(id)
    }
}

/// A stage instance's end of a broadcast input.
struct BroadcastRx {
    rx: mpsc::Receiver<Message>,
    preload: bool,
}

/// What a stage instance got while waiting.
enum Next {
    Data(Option<Message>),
    Broadcast(Option<Message>),
    /// The earliest processing-time timer is due.
    Timer,
}

/// Wait for the next message of either input, or for the processing-time timer `due`; a
/// waiting broadcast message goes first. Inputs that have ended are `None`.
async fn next_input(
    data: Option<&mut mpsc::Receiver<Message>>,
    broadcast: Option<&mut mpsc::Receiver<Message>>,
    due: Option<i64>,
) -> Next {
    async fn recv(rx: Option<&mut mpsc::Receiver<Message>>) -> Option<Message> {
        match rx {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    }
    let timer = async {
        match due {
            Some(due) => {
                let wait = Duration::from_millis(u64::try_from(due - crate::time::now_ms()).unwrap_or(0));
                tokio::time::sleep(wait).await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        m = recv(broadcast) => Next::Broadcast(m),
        m = recv(data) => Next::Data(m),
        () = timer => Next::Timer,
    }
}

/// One parallel instance of a stage: its fused operators, and where their output goes.
struct StageInstance {
    operators: Vec<Box<dyn Operator>>,
    output: Output,
    dead: mpsc::Sender<Vec<DeadLetter>>,
    letters: DeadLetters,
    /// Which stage and instance this is (names its snapshots).
    stage: usize,
    index: usize,
    control: Arc<JobControl>,
    coordinator: CoordinatorHandle,
}

impl StageInstance {
    /// Batches and time signals from `inputs` upstream instances, and batches of the
    /// broadcast input if there is one, until they all end. While an operator has a
    /// processing-time timer, waiting for input is bounded by it.
    fn run(&mut self, input: mpsc::Receiver<Message>, inputs: usize, broadcast: Option<BroadcastRx>) -> TaskResult {
        let mut event_time = WatermarkTracker::new(inputs);
        let runtime = tokio::runtime::Handle::current();
        let mut align = Alignment::new(inputs);
        let mut data = Some(input);
        let mut broadcast = match broadcast {
            Some(mut b) if b.preload => {
                // The whole (bounded) broadcast input before the first keyed record; its
                // barriers need no alignment since it ends before the data input starts.
                while let Some(message) = b.rx.blocking_recv() {
                    self.on_broadcast(message)?;
                }
                None
            }
            b => b.map(|b| b.rx),
        };
        while data.is_some() || broadcast.is_some() || align.has_queued() {
            let next = match align.queued() {
                Some(message) => Next::Data(Some(message)),
                None => {
                    let due = self.operators.iter().filter_map(|op| op.next_processing_timer()).min();
                    let waiting = if align.broadcast_blocked() { None } else { broadcast.as_mut() };
                    match (&mut data, waiting, due) {
                        // The common case, without a runtime round trip.
                        (Some(rx), None, None) => Next::Data(rx.blocking_recv()),
                        (data, waiting, due) => runtime.block_on(next_input(data.as_mut(), waiting, due)),
                    }
                }
            };
            let message = match next {
                Next::Timer => {
                    self.on_processing_time(crate::time::now_ms())?;
                    continue;
                }
                Next::Broadcast(Some(Message::Barrier { id, .. })) => {
                    align.on_broadcast_barrier(id);
                    self.maybe_checkpoint(&mut align)?;
                    continue;
                }
                Next::Broadcast(Some(message)) => {
                    self.on_broadcast(message)?;
                    continue;
                }
                Next::Broadcast(None) => {
                    broadcast = None;
                    align.on_broadcast_end();
                    self.maybe_checkpoint(&mut align)?;
                    continue;
                }
                Next::Data(None) => {
                    data = None;
                    align.on_data_end();
                    self.maybe_checkpoint(&mut align)?;
                    continue;
                }
                Next::Data(Some(message)) => match align.on_data(message, broadcast.is_some()) {
                    Some(message) => message,
                    None => {
                        self.maybe_checkpoint(&mut align)?;
                        continue;
                    }
                },
            };
            match message {
                Message::Data { batch, .. } => {
                    let out = run_chain(&mut self.operators, 0, batch, &mut self.letters)?;
                    self.ship(out)?;
                    self.forward_signals(0)?;
                }
                Message::Time { from, signal } => {
                    for signal in event_time.on_signal(from, signal) {
                        match signal {
                            TimeSignal::Watermark(w) => self.advance(0, w)?,
                            idle_or_active => {
                                self.output.broadcast_time(idle_or_active).map_err(ConnectorError::from)?
                            }
                        }
                    }
                }
                Message::Barrier { .. } => unreachable!("alignment takes the barriers"),
            }
        }
        // End of input: event time ends (every window fires), then operators flush.
        self.advance(0, END_OF_TIME)?;
        for i in 0..self.operators.len() {
            let mut held = Batch::new();
            self.operators[i].finish(&mut held, &mut self.letters)?;
            let out = run_chain(&mut self.operators, i + 1, held, &mut self.letters)?;
            self.ship(out)?;
        }
        Ok(TaskStats { backpressure: self.output.blocked, ..Default::default() })
    }

    /// A batch of the broadcast input goes to the first operator (the connected step);
    /// its watermarks do not move event time.
    fn on_broadcast(&mut self, message: Message) -> Result<(), RuntimeError> {
        let Message::Data { batch, .. } = message else { return Ok(()) };
        let Some(first) = self.operators.first_mut() else { return Ok(()) };
        let mut out = Batch::new();
        first.process_broadcast(batch, &mut out, &mut self.letters)?;
        let out = run_chain(&mut self.operators, 1, out, &mut self.letters)?;
        self.ship(out)?;
        self.forward_signals(0)
    }

    /// If barriers of a checkpoint came from every input: snapshot every operator, report
    /// to the coordinator, and send the barrier on. Operators also learn which checkpoints
    /// completed meanwhile.
    fn maybe_checkpoint(&mut self, align: &mut Alignment) -> Result<(), RuntimeError> {
        let Some(id) = align.take_aligned() else { return Ok(()) };
        let mut snapshots = Vec::new();
        for (i, op) in self.operators.iter_mut().enumerate() {
            if let Some(data) = op.snapshot(id)? {
                let step = step_id(self.stage, i);
                snapshots.push(OperatorSnapshot { step, instance: self.index as u32, data });
            }
        }
        self.ship(Batch::new())?;
        self.coordinator.send(Ack::Instance { id, snapshots });
        self.output.broadcast_barrier(id).map_err(ConnectorError::from)?;
        // After the barrier went on: applying an older epoch to sled is off the
        // checkpoint's path.
        let completed = self.control.last_checkpoint();
        for op in &mut self.operators {
            op.checkpoint_complete(completed)?;
        }
        Ok(())
    }

    /// The wall clock reached `now`: operators fire their processing-time timers.
    fn on_processing_time(&mut self, now: i64) -> Result<(), RuntimeError> {
        for i in 0..self.operators.len() {
            let mut released = Batch::new();
            self.operators[i].on_processing_time(now, &mut released, &mut self.letters)?;
            let out = run_chain(&mut self.operators, i + 1, released, &mut self.letters)?;
            self.ship(out)?;
        }
        self.forward_signals(0)
    }

    /// Time signals that operators from `from` on made (from the last batch or tick)
    /// follow what they released: watermarks flow through the operators after them,
    /// idleness goes straight downstream.
    fn forward_signals(&mut self, from: usize) -> Result<(), RuntimeError> {
        for i in from..self.operators.len() {
            while let Some(signal) = self.operators[i].take_time_signal() {
                match signal {
                    TimeSignal::Watermark(w) => self.advance(i + 1, w)?,
                    idle_or_active => self.output.broadcast_time(idle_or_active).map_err(ConnectorError::from)?,
                }
            }
        }
        Ok(())
    }

    /// Event time reached `watermark` at `operators[from]`: each operator releases what is
    /// due (flowing through the operators after it), then passes the watermark on, unless
    /// it makes event time itself; what comes out of the last one goes downstream.
    fn advance(&mut self, from: usize, watermark: i64) -> Result<(), RuntimeError> {
        let mut current = Some(watermark);
        for i in from..self.operators.len() {
            let Some(w) = current else { return Ok(()) };
            let mut released = Batch::new();
            current = self.operators[i].on_watermark(w, &mut released, &mut self.letters)?;
            let out = run_chain(&mut self.operators, i + 1, released, &mut self.letters)?;
            self.ship(out)?;
        }
        if let Some(w) = current {
            self.output.broadcast_time(TimeSignal::Watermark(w)).map_err(ConnectorError::from)?;
        }
        Ok(())
    }

    fn ship(&mut self, batch: Batch) -> Result<(), RuntimeError> {
        if !self.letters.is_empty() {
            self.dead.blocking_send(std::mem::take(&mut self.letters.0)).map_err(|_| ConnectorError::Disconnected)?;
        }
        self.output.send_blocking(batch).map_err(ConnectorError::from)?;
        Ok(())
    }
}

/// Pass a batch through `operators[from..]`.
fn run_chain(
    operators: &mut [Box<dyn Operator>],
    from: usize,
    mut batch: Batch,
    letters: &mut DeadLetters,
) -> Result<Batch, RuntimeError> {
    for op in operators.iter_mut().skip(from) {
        if batch.is_empty() {
            break;
        }
        let mut out = Batch::new();
        op.process(batch, &mut out, letters)?;
        batch = out;
    }
    Ok(batch)
}
