//! The stage task's run loop (Arroyo keeps it beside its operator trait, as here): one
//! parallel instance of a chain of fused operators, reading data, time signals and
//! barriers from its inputs and a broadcast input, firing processing-time timers, aligning
//! barriers and snapshotting, and shipping what the chain releases.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{
    Ack, Alignment, CoordinatorHandle, DeadLetter, DeadLetters, Disconnected, JobControl, Message, Operator, Output,
    TaskError,
};
use crate::checkpoint::OperatorSnapshot;
use crate::record::Batch;
use crate::time::{END_OF_TIME, TimeSignal, WatermarkTracker};

/// What one task reports when it ends.
#[derive(Debug, Default)]
pub struct TaskStats {
    pub records_in: u64,
    pub broadcast_in: u64,
    pub records_out: u64,
    pub dead_letters: u64,
    pub late_records: u64,
    pub backpressure: Duration,
}

/// A stage instance's end of a broadcast input.
pub struct BroadcastRx {
    pub rx: mpsc::Receiver<Message>,
    /// Read the whole (bounded) broadcast input before the first data record.
    pub preload: bool,
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
pub struct StageInstance {
    pub operators: Vec<Box<dyn Operator>>,
    /// The uid of each operator's step, which names its snapshots and its dead letters.
    pub step_ids: Vec<String>,
    pub output: Output,
    pub dead: mpsc::Sender<Vec<DeadLetter>>,
    pub letters: DeadLetters,
    /// This instance's index among the stage's.
    pub index: usize,
    /// For a two-input step (a join, a co-process): its senders from this one on bring the
    /// second input, which goes to the first operator's `process_second`.
    pub second: Option<usize>,
    pub control: Arc<JobControl>,
    pub coordinator: CoordinatorHandle,
}

impl StageInstance {
    /// Batches and time signals from `inputs` upstream instances, and batches of the
    /// broadcast input if there is one, until they all end. While an operator has a
    /// processing-time timer, waiting for input is bounded by it.
    pub fn run(
        &mut self,
        input: mpsc::Receiver<Message>,
        inputs: usize,
        broadcast: Option<BroadcastRx>,
    ) -> Result<TaskStats, TaskError> {
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
                Message::Data { from, batch } if self.second.is_some_and(|s| from >= s) => {
                    let mut out = Batch::new();
                    if let Some(first) = self.operators.first_mut() {
                        first.process_second(batch, &mut out, &mut self.letters)?;
                    }
                    let out = run_chain(&mut self.operators, 1, out, &mut self.letters)?;
                    self.ship(out)?;
                    self.forward_signals(0)?;
                }
                Message::Data { batch, .. } => {
                    let out = run_chain(&mut self.operators, 0, batch, &mut self.letters)?;
                    self.ship(out)?;
                    self.forward_signals(0)?;
                }
                Message::Time { from, signal } => self.on_time(&mut event_time, from, signal)?,
                // An input that ended holds event time back no more (a union's source that
                // finished first), as Flink's finished inputs.
                Message::End { from } => {
                    self.on_time(&mut event_time, from, TimeSignal::Watermark(END_OF_TIME))?;
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
        self.output.end()?;
        // Checkpoints after this one count it as done (its input ended: nothing changes).
        self.coordinator.send(Ack::Finished { sink: false, last: align.last_aligned() });
        Ok(TaskStats { backpressure: self.output.blocked, ..Default::default() })
    }

    /// Event time from input `from`: the watermarks it moves go through the operators, idle
    /// and active signals on downstream.
    fn on_time(&mut self, event_time: &mut WatermarkTracker, from: usize, signal: TimeSignal) -> Result<(), TaskError> {
        for signal in event_time.on_signal(from, signal) {
            match signal {
                TimeSignal::Watermark(w) => self.advance(0, w)?,
                idle_or_active => self.output.broadcast_time(idle_or_active)?,
            }
        }
        Ok(())
    }

    /// A batch of the broadcast input goes to the first operator (the connected step);
    /// its watermarks do not move event time.
    fn on_broadcast(&mut self, message: Message) -> Result<(), TaskError> {
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
    fn maybe_checkpoint(&mut self, align: &mut Alignment) -> Result<(), TaskError> {
        let Some(id) = align.take_aligned() else { return Ok(()) };
        let mut snapshots = Vec::new();
        for (i, op) in self.operators.iter_mut().enumerate() {
            if let Some(data) = op.snapshot(id)? {
                let step = self.step_ids[i].clone();
                snapshots.push(OperatorSnapshot { step, instance: self.index as u32, data });
            }
        }
        self.ship(Batch::new())?;
        self.coordinator.send(Ack::Instance { id, snapshots });
        self.output.broadcast_barrier(id)?;
        // After the barrier went on: applying an older epoch to sled is off the
        // checkpoint's path.
        let completed = self.control.last_checkpoint();
        for op in &mut self.operators {
            op.checkpoint_complete(completed)?;
        }
        Ok(())
    }

    /// The wall clock reached `now`: operators fire their processing-time timers.
    fn on_processing_time(&mut self, now: i64) -> Result<(), TaskError> {
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
    fn forward_signals(&mut self, from: usize) -> Result<(), TaskError> {
        for i in from..self.operators.len() {
            while let Some(signal) = self.operators[i].take_time_signal() {
                match signal {
                    TimeSignal::Watermark(w) => self.advance(i + 1, w)?,
                    idle_or_active => self.output.broadcast_time(idle_or_active)?,
                }
            }
        }
        Ok(())
    }

    /// Event time reached `watermark` at `operators[from]`: each operator releases what is
    /// due (flowing through the operators after it), then passes the watermark on, unless
    /// it makes event time itself; what comes out of the last one goes downstream.
    fn advance(&mut self, from: usize, watermark: i64) -> Result<(), TaskError> {
        let mut current = Some(watermark);
        for i in from..self.operators.len() {
            let Some(w) = current else { return Ok(()) };
            let mut released = Batch::new();
            current = self.operators[i].on_watermark(w, &mut released, &mut self.letters)?;
            let out = run_chain(&mut self.operators, i + 1, released, &mut self.letters)?;
            self.ship(out)?;
        }
        if let Some(w) = current {
            self.output.broadcast_time(TimeSignal::Watermark(w))?;
        }
        Ok(())
    }

    fn ship(&mut self, batch: Batch) -> Result<(), TaskError> {
        if !self.letters.is_empty() {
            let mut letters = std::mem::take(&mut self.letters.0);
            for letter in letters.iter_mut().filter(|l| l.uid.is_none()) {
                // The fused operator that wrote it, by name: its step's uid.
                let at = self.operators.iter().position(|op| op.name() == letter.operator);
                letter.uid = at.and_then(|i| self.step_ids.get(i)).cloned();
            }
            self.dead.blocking_send(letters).map_err(|_| Disconnected)?;
        }
        self.output.send_blocking(batch)?;
        Ok(())
    }
}

/// Pass a batch through `operators[from..]`.
fn run_chain(
    operators: &mut [Box<dyn Operator>],
    from: usize,
    mut batch: Batch,
    letters: &mut DeadLetters,
) -> Result<Batch, TaskError> {
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
