//! Executing a job graph: one task per source, parallel stage instance, sink and
//! dead-letter output, connected by bounded channels.
//!
//! Tasks that call plugins are CPU-bound and synchronous (a wasmtime call must not stall
//! an async worker), so every task runs on tokio's blocking pool and talks through tokio
//! channels. End of input travels as channel closure: a task ends when all its senders are
//! gone, finishes its operators, and drops its own senders, so the end flows downstream in
//! order after every batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::RuntimeError;
use super::coordinator::Coordinator;
use super::recovery::{match_steps, plugin_versions, prepare_checkpoints, restore_operators, sink_id, uids};
use crate::checkpoint::{CheckpointError, SourcePosition};
use crate::connectors::SourceSpec;
use crate::graph::{self, JobGraph, Producer};
use crate::task::{
    BroadcastRx, CoordinatorHandle, DeadLetter, DeadLetters, InstanceContext, JobControl, JobState, Message, Output,
    Partitioning, SourceContext, StageInstance, TaskStats,
};

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

type TaskResult = Result<TaskStats, RuntimeError>;

pub(super) async fn run_graph(graph: JobGraph, control: &Arc<JobControl>) -> Result<JobReport, RuntimeError> {
    let started = Instant::now();
    control.start_run();
    let plan = graph::plan(&graph)?;
    let stages = &plan.stages;
    let cap = graph.config.channel_capacity.max(1);
    let mut tasks = tokio::task::JoinSet::new();

    // Checkpoints: what the job resumes from, and its state and output made to match it.
    let mut resume = match &graph.config.checkpoints {
        Some(config) => Some(prepare_checkpoints(config, &graph)?),
        None => None,
    };
    let restored = resume.as_ref().map(|r| r.as_ref().map_or(0, |m| m.id));
    let state_dir = graph.config.state_dir.clone().or_else(|| graph.config.checkpoints.as_ref().map(|c| c.state_dir()));
    let has_state = state_dir.as_ref().is_some_and(|d| d.is_dir());
    let job_state = match restored {
        Some(id) => JobState::new(state_dir).restoring(id),
        None => JobState::new(state_dir),
    };
    // The restored state must belong to the job's steps: matched by uid.
    let uids = uids(stages);
    if let Some(Some(meta)) = &mut resume {
        let trees = match has_state {
            true => job_state
                .store()
                .map_err(|detail| CheckpointError::Mismatch {
                    id: meta.id,
                    detail: format!("cannot open the state: {detail}"),
                })?
                .operators(),
            false => Vec::new(),
        };
        match_steps(meta, &uids, &trees, graph.config.allow_non_restored_state)?;
    }
    // Open the outputs first: a bad sink path fails before any record flows.
    let mut sinks = Vec::with_capacity(graph.sinks.len());
    for node in &graph.sinks {
        let id = sink_id(&graph, node);
        let ctx = crate::task::SinkContext { job: &id, control, first_epoch: restored.map(|id| id + 1) };
        sinks.push(node.spec.open_for_job(&ctx)?);
    }
    let mut dead_sink = graph.dead_letter.open()?;
    let mut late_sink = graph.late_data.as_ref().map(|s| s.open()).transpose()?;

    let instances: usize = stages.iter().map(|s| s.parallelism).sum();
    let broadcasts = stages.iter().filter(|s| s.broadcast().is_some()).count();
    // Source indices: the streams' sources first, then the broadcast inputs.
    let main_sources = plan.sources.len();
    if let Some(Some(meta)) = &resume
        && meta.sources.len() != main_sources + broadcasts
    {
        return Err(CheckpointError::Mismatch {
            id: meta.id,
            detail: format!(
                "it holds the positions of {} sources, but the job reads {}; a job resumes only with the sources it had",
                meta.sources.len(),
                main_sources + broadcasts
            ),
        }
        .into());
    }
    let (coordinator, handle) = match (&graph.config.checkpoints, restored) {
        (Some(config), Some(restored)) => {
            let plugins = plugin_versions(stages);
            let (mut c, handle) = Coordinator::new(
                config.clone(),
                graph.name.clone(),
                control.clone(),
                job_state.clone(),
                main_sources + broadcasts,
                instances,
                restored + 1,
                plugins,
            );
            c.set_main_sources(main_sources);
            c.set_sinks(sinks.len());
            for sink in &mut sinks {
                if let Some(committer) = sink.committer.take() {
                    c.add_committer(committer);
                }
            }
            (Some(c), handle)
        }
        _ => (None, CoordinatorHandle::default()),
    };
    let start_of =
        |source: usize| -> Option<SourcePosition> { resume.as_ref()?.as_ref()?.sources.get(source).cloned() };

    let (dead_tx, dead_rx) = mpsc::channel::<Vec<DeadLetter>>(cap);
    tasks.spawn_blocking(move || -> TaskResult {
        Ok(crate::task::run_dead_letters(dead_rx, dead_sink.as_mut(), late_sink.as_mut())?)
    });

    // The channels into every stage instance and every sink, and who sends into each.
    let Channels { stage_rx, sink_rx, readers } = Channels::new(&plan, cap);
    for (planned, (opened, rx)) in plan.sinks.iter().zip(sinks.into_iter().zip(sink_rx)) {
        let inputs = plan.senders(&planned.inputs);
        let sink_control = control.clone();
        let sink_coordinator = handle.clone();
        let mut writer = opened.writer;
        tasks.spawn_blocking(move || -> TaskResult {
            Ok(crate::task::run_sink(writer.as_mut(), rx, inputs, &sink_control, &sink_coordinator)?)
        });
    }

    let mut broadcast_index = main_sources;
    for ((k, stage), rxs) in stages.iter().enumerate().zip(stage_rx) {
        let inputs = plan.senders(&stage.inputs);
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
                broadcast_index += 1;
                spawn_source(&mut tasks, source, output, &graph.config, &dead_tx, control, &handle);
                brxs.into_iter().map(|rx| BroadcastRx { rx, preload: input.preload }).collect()
            }
        }
        .into_iter();
        for (index, rx) in rxs.into_iter().enumerate() {
            let mut ctx = InstanceContext {
                uid: String::new(),
                index,
                parallelism: stage.parallelism,
                max_parallelism: graph.config.max_parallelism,
                state: job_state.clone(),
                checkpointing: restored.is_some(),
            };
            let mut operators = Vec::with_capacity(stage.steps.len());
            for step in &stage.steps {
                ctx.uid.clone_from(&step.uid);
                operators.push((step.factory)(&ctx)?);
            }
            if let Some(Some(meta)) = &resume {
                restore_operators(&mut operators, meta, &uids[k], &ctx)?;
            }
            let mut instance = StageInstance {
                operators,
                step_ids: uids[k].clone(),
                output: output(&readers, Producer::Stage(k), index),
                dead: dead_tx.clone(),
                letters: DeadLetters::default(),
                index,
                second: stage.second,
                control: control.clone(),
                coordinator: handle.clone(),
            };
            let broadcast = broadcast_rxs.next();
            tasks.spawn_blocking(move || instance.run(rx, inputs, broadcast).map_err(RuntimeError::from));
        }
    }

    // The spec is shared, not copied: a million-record collection took ~80 ms to clone.
    for (index, spec) in plan.sources.iter().enumerate() {
        let output = output(&readers, Producer::Source(index), 0);
        let source = SourceTask { spec: spec.clone(), index, start: start_of(index), broadcast: false };
        spawn_source(&mut tasks, source, output, &graph.config, &dead_tx, control, &handle);
    }
    drop(readers);
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
                control.set_run_failed();
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

/// Who reads each producer (a source or a stage), as `(senders, partitioning, offset)`:
/// the reader's channels, how the producer's records are spread over them, and where the
/// producer's instances start among the reader's senders.
type Readers = Vec<(Vec<mpsc::Sender<Message>>, Partitioning, usize)>;

/// The channels of a job: into every stage instance and sink, by who sends into them.
struct Channels {
    stage_rx: Vec<Vec<mpsc::Receiver<Message>>>,
    sink_rx: Vec<mpsc::Receiver<Message>>,
    readers: std::collections::HashMap<Producer, Readers>,
}

impl Channels {
    fn new(plan: &graph::Plan, cap: usize) -> Self {
        let mut consumers: std::collections::HashMap<Producer, Readers> = Default::default();
        let mut stage_rx = Vec::with_capacity(plan.stages.len());
        for stage in &plan.stages {
            let (txs, rxs): (Vec<_>, Vec<_>) = (0..stage.parallelism).map(|_| mpsc::channel::<Message>(cap)).unzip();
            let mut offset = 0;
            for &producer in &stage.inputs {
                consumers.entry(producer).or_default().push((txs.clone(), stage.input, offset));
                offset += plan.parallelism(producer);
            }
            stage_rx.push(rxs);
        }
        let mut sink_rx = Vec::with_capacity(plan.sinks.len());
        for sink in &plan.sinks {
            let (tx, rx) = mpsc::channel::<Message>(cap);
            let mut offset = 0;
            for &producer in &sink.inputs {
                consumers.entry(producer).or_default().push((vec![tx.clone()], Partitioning::Rebalance, offset));
                offset += plan.parallelism(producer);
            }
            sink_rx.push(rx);
        }
        Self { stage_rx, sink_rx, readers: consumers }
    }
}

/// The output of instance `index` of `producer`: into each of its readers.
fn output(readers: &std::collections::HashMap<Producer, Readers>, producer: Producer, index: usize) -> Output {
    let readers = readers.get(&producer).map(Vec::as_slice).unwrap_or_default();
    Output::fan_out(readers.iter().map(|(txs, how, offset)| (txs.clone(), *how, offset + index)), index)
}

/// A source of the job: the main one (index 0), one of its union, or a broadcast input.
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
        let result = source.spec.run_to_end(&mut ctx, source.start.as_ref());
        let mut stats = TaskStats { backpressure: ctx.backpressure(), ..Default::default() };
        if source.broadcast {
            stats.broadcast_in = ctx.emitted;
        } else {
            stats.records_in = ctx.emitted;
        }
        result.map(|()| stats).map_err(RuntimeError::from)
    });
}
