//! Executing a job graph: one task per source, parallel stage instance, sink and
//! dead-letter output, connected by bounded channels.
//!
//! Tasks that call plugins are CPU-bound and synchronous (a wasmtime call must not stall
//! an async worker), so every task runs on tokio's blocking pool and talks through tokio
//! channels. End of input travels as channel closure: a task ends when all its senders are
//! gone, finishes its operators, and drops its own senders, so the end flows downstream in
//! order after every batch.

use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::mpsc;

use super::partition::{Output, Partitioning};
use super::DeadLetter;
use crate::connectors::{self, ConnectorError, SourceContext, SourceSpec};
use crate::graph::{self, GraphError, JobGraph};
use crate::operator::{DeadLetters, Operator, OperatorError};
use crate::record::Batch;

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
}

impl RuntimeError {
    /// Errors that are only a consequence of another task stopping.
    fn is_secondary(&self) -> bool {
        matches!(self, RuntimeError::Connector(ConnectorError::Disconnected))
    }
}

/// What a finished job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobReport {
    pub name: String,
    /// Records the source emitted.
    pub records_in: u64,
    /// Records the sink received.
    pub records_out: u64,
    pub dead_letters: u64,
    pub elapsed: Duration,
    /// Time tasks spent blocked on full channels, summed over tasks.
    pub backpressure: Duration,
}

/// What one task reports when it ends.
#[derive(Debug, Default)]
struct TaskStats {
    records_in: u64,
    records_out: u64,
    dead_letters: u64,
    backpressure: Duration,
}

type TaskResult = Result<TaskStats, RuntimeError>;

/// Run a job to completion (bounded sources) or until it fails.
pub async fn execute(mut graph: JobGraph) -> Result<JobReport, RuntimeError> {
    let started = Instant::now();
    let stages = graph::plan(&graph)?;
    let cap = graph.config.channel_capacity.max(1);
    let mut tasks = tokio::task::JoinSet::new();

    // Open the outputs first: a bad sink path fails before any record flows.
    let mut sink = connectors::open_sink(&graph.sink)?;
    let mut dead_sink = connectors::open_sink(&graph.dead_letter)?;

    let (dead_tx, mut dead_rx) = mpsc::channel::<Vec<DeadLetter>>(cap);
    tasks.spawn_blocking(move || -> TaskResult {
        let mut stats = TaskStats::default();
        while let Some(letters) = dead_rx.blocking_recv() {
            stats.dead_letters += letters.len() as u64;
            for d in &letters {
                tracing::debug!(operator = %d.operator, kind = %d.kind, error = %d.error, "dead letter");
            }
            let mut batch = Batch::new();
            for d in &letters {
                batch.push(&d.to_record());
            }
            dead_sink.write(&batch)?;
        }
        dead_sink.finish()?;
        Ok(stats)
    });

    // The sink: a single task fed by every instance of the last stage.
    let (sink_tx, mut sink_rx) = mpsc::channel::<Batch>(cap);
    tasks.spawn_blocking(move || -> TaskResult {
        let mut stats = TaskStats::default();
        while let Some(batch) = sink_rx.blocking_recv() {
            stats.records_out += batch.len() as u64;
            sink.write(&batch)?;
        }
        sink.finish()?;
        Ok(stats)
    });

    // Stages from last to first, so each knows the senders of the one after it.
    let mut downstream: Vec<mpsc::Sender<Batch>> = vec![sink_tx];
    let mut downstream_input = Partitioning::Rebalance;
    for stage in stages.iter().rev() {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..stage.parallelism).map(|_| mpsc::channel::<Batch>(cap)).unzip();
        for (index, rx) in rxs.into_iter().enumerate() {
            let operators = stage
                .steps
                .iter()
                .map(|s| (s.factory)())
                .collect::<Result<Vec<_>, _>>()?;
            let output = Output::new(downstream.clone(), downstream_input, index);
            let dead = dead_tx.clone();
            tasks.spawn_blocking(move || run_stage_instance(rx, operators, output, dead));
        }
        downstream = txs;
        downstream_input = stage.input;
    }

    // The source task takes the spec: a collection's elements move instead of being copied
    // (a million-record collection took ~80 ms to clone, inside the job's time).
    let source = std::mem::replace(&mut graph.source, SourceSpec::Collection { elements: Vec::new() });
    let mut ctx = SourceContext::new(Output::new(downstream, downstream_input, 0), graph.config.batch_size, dead_tx);
    tasks.spawn_blocking(move || -> TaskResult {
        let result = connectors::run_source(&source, &mut ctx);
        let stats = TaskStats { records_in: ctx.emitted, backpressure: ctx.backpressure(), ..Default::default() };
        result.map(|()| stats).map_err(RuntimeError::from)
    });

    let mut report = JobReport { name: graph.name.clone(), ..Default::default() };
    let mut first_error: Option<RuntimeError> = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.unwrap_or_else(|e| Err(RuntimeError::Panic(e.to_string())));
        match result {
            Ok(s) => {
                report.records_in += s.records_in;
                report.records_out += s.records_out;
                report.dead_letters += s.dead_letters;
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
    report.elapsed = started.elapsed();
    match first_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// One parallel instance of a stage: its fused operators, batch by batch.
fn run_stage_instance(
    mut input: mpsc::Receiver<Batch>,
    mut operators: Vec<Box<dyn Operator>>,
    mut output: Output,
    dead: mpsc::Sender<Vec<DeadLetter>>,
) -> TaskResult {
    let mut stats = TaskStats::default();
    let mut letters = DeadLetters::default();
    while let Some(batch) = input.blocking_recv() {
        let out = run_chain(&mut operators, 0, batch, &mut letters)?;
        ship(&mut output, &dead, out, &mut letters)?;
    }
    // End of input: each operator flushes what it holds through the operators after it.
    for i in 0..operators.len() {
        let mut held = Batch::new();
        operators[i].finish(&mut held, &mut letters)?;
        let out = run_chain(&mut operators, i + 1, held, &mut letters)?;
        ship(&mut output, &dead, out, &mut letters)?;
    }
    stats.backpressure = output.blocked;
    Ok(stats)
}

/// Pass a batch through `operators[from..]`.
fn run_chain(operators: &mut [Box<dyn Operator>], from: usize, mut batch: Batch, letters: &mut DeadLetters) -> Result<Batch, RuntimeError> {
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

fn ship(output: &mut Output, dead: &mpsc::Sender<Vec<DeadLetter>>, batch: Batch, letters: &mut DeadLetters) -> Result<(), RuntimeError> {
    if !letters.is_empty() {
        dead.blocking_send(std::mem::take(&mut letters.0)).map_err(|_| ConnectorError::Disconnected)?;
    }
    output.send_blocking(batch).map_err(ConnectorError::from)?;
    Ok(())
}
