//! Executing a job graph: one task per source, parallel stage instance, sink and
//! dead-letter output, connected by bounded channels.
//!
//! Tasks that call plugins are CPU-bound and synchronous (a wasmtime call must not stall
//! an async worker), so every task runs on tokio's blocking pool and talks through tokio
//! channels. End of input travels as channel closure: a task ends when all its senders are
//! gone, finishes its operators, and drops its own senders, so the end flows downstream in
//! order after every batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::mpsc;

use super::partition::{Message, Output, Partitioning};
use super::{DeadLetter, Payload};

/// The dead-letter kind of records too late for their windows.
pub const LATE: &str = "late";
use crate::connectors::{self, ConnectorError, SourceContext, SourceSpec};
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
}

/// Run a job to completion (bounded sources) or until it fails.
pub async fn execute(graph: JobGraph) -> Result<JobReport, RuntimeError> {
    execute_with(graph, Arc::default()).await
}

/// [`execute`], controlled through `control` (cancel it, read its counters).
pub async fn execute_with(graph: JobGraph, control: Arc<JobControl>) -> Result<JobReport, RuntimeError> {
    let result = run_graph(graph, &control).await;
    control.finished.store(true, Ordering::Release);
    result
}

async fn run_graph(mut graph: JobGraph, control: &Arc<JobControl>) -> Result<JobReport, RuntimeError> {
    let started = Instant::now();
    let stages = graph::plan(&graph)?;
    let cap = graph.config.channel_capacity.max(1);
    let mut tasks = tokio::task::JoinSet::new();

    // Open the outputs first: a bad sink path fails before any record flows.
    let mut sink = connectors::open_sink(&graph.sink)?;
    let mut dead_sink = connectors::open_sink(&graph.dead_letter)?;

    let mut late_sink = graph.late_data.as_ref().map(connectors::open_sink).transpose()?;

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
    tasks.spawn_blocking(move || -> TaskResult {
        let mut stats = TaskStats::default();
        while let Some(message) = sink_rx.blocking_recv() {
            if let Message::Data(batch) = message {
                stats.records_out += batch.len() as u64;
                sink.write(&batch)?;
                sink_control.records_out.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        }
        sink.finish()?;
        Ok(stats)
    });

    let job_state = JobState::new(graph.config.state_dir.clone());
    // Stages from last to first, so each knows the senders of the one after it.
    let mut downstream: Vec<mpsc::Sender<Message>> = vec![sink_tx];
    let mut downstream_input = Partitioning::Rebalance;
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
                spawn_source(&mut tasks, input.source.clone(), output, &graph.config, &dead_tx, control, true);
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
            };
            let operators = stage.steps.iter().map(|s| (s.factory)(&ctx)).collect::<Result<Vec<_>, _>>()?;
            let output = Output::new(downstream.clone(), downstream_input, index);
            let dead = dead_tx.clone();
            let mut instance = StageInstance { operators, output, dead, letters: DeadLetters::default() };
            let broadcast = broadcast_rxs.next();
            tasks.spawn_blocking(move || instance.run(rx, inputs, broadcast));
        }
        downstream = txs;
        downstream_input = stage.input;
    }

    // The source task takes the spec: a collection's elements move instead of being copied
    // (a million-record collection took ~80 ms to clone, inside the job's time).
    let source = std::mem::replace(&mut graph.source, SourceSpec::Collection { elements: Vec::new() });
    let output = Output::new(downstream, downstream_input, 0);
    spawn_source(&mut tasks, source, output, &graph.config, &dead_tx, control, false);
    drop(dead_tx);

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
    report.elapsed = started.elapsed();
    match first_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// A source task: reads `source` into `output` until it ends.
fn spawn_source(
    tasks: &mut tokio::task::JoinSet<TaskResult>,
    source: SourceSpec,
    output: Output,
    config: &graph::JobConfig,
    dead: &mpsc::Sender<Vec<DeadLetter>>,
    control: &Arc<JobControl>,
    broadcast: bool,
) {
    let mut ctx = SourceContext::new(output, config.batch_size, dead.clone()).with_control(control.clone(), !broadcast);
    tasks.spawn_blocking(move || -> TaskResult {
        let result = connectors::run_source(&source, &mut ctx);
        let mut stats = TaskStats { backpressure: ctx.backpressure(), ..Default::default() };
        if broadcast {
            stats.broadcast_in = ctx.emitted;
        } else {
            stats.records_in = ctx.emitted;
        }
        result.map(|()| stats).map_err(RuntimeError::from)
    });
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
}

impl StageInstance {
    /// Batches and time signals from `inputs` upstream instances, and batches of the
    /// broadcast input if there is one, until they all end. While an operator has a
    /// processing-time timer, waiting for input is bounded by it.
    fn run(&mut self, input: mpsc::Receiver<Message>, inputs: usize, broadcast: Option<BroadcastRx>) -> TaskResult {
        let mut event_time = WatermarkTracker::new(inputs);
        let runtime = tokio::runtime::Handle::current();
        let mut data = Some(input);
        let mut broadcast = match broadcast {
            Some(mut b) if b.preload => {
                // The whole (bounded) broadcast input before the first keyed record.
                while let Some(message) = b.rx.blocking_recv() {
                    self.on_broadcast(message)?;
                }
                None
            }
            b => b.map(|b| b.rx),
        };
        while data.is_some() || broadcast.is_some() {
            let due = self.operators.iter().filter_map(|op| op.next_processing_timer()).min();
            let next = match (&mut data, &mut broadcast, due) {
                // The common case, without a runtime round trip.
                (Some(rx), None, None) => Next::Data(rx.blocking_recv()),
                (data, broadcast, due) => runtime.block_on(next_input(data.as_mut(), broadcast.as_mut(), due)),
            };
            let message = match next {
                Next::Timer => {
                    self.on_processing_time(crate::time::now_ms())?;
                    continue;
                }
                Next::Broadcast(Some(message)) => {
                    self.on_broadcast(message)?;
                    continue;
                }
                Next::Broadcast(None) => {
                    broadcast = None;
                    continue;
                }
                Next::Data(None) => {
                    data = None;
                    continue;
                }
                Next::Data(Some(message)) => message,
            };
            match message {
                Message::Data(batch) => {
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
        let Message::Data(batch) = message else { return Ok(()) };
        let Some(first) = self.operators.first_mut() else { return Ok(()) };
        let mut out = Batch::new();
        first.process_broadcast(batch, &mut out, &mut self.letters)?;
        let out = run_chain(&mut self.operators, 1, out, &mut self.letters)?;
        self.ship(out)?;
        self.forward_signals(0)
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
