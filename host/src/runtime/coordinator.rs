//! The checkpoint coordinator (Flink's `CheckpointCoordinator`): triggers checkpoints,
//! collects what every task reports at the barrier, and completes a checkpoint when all
//! have: state synced, `chk-<n>.meta` written, sinks told to commit, old checkpoints
//! deleted. It runs on its own thread and hears from tasks through one channel.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Instant;

use crate::checkpoint::{
    self as files, CheckpointConfig, CheckpointError, CheckpointMeta, OperatorSnapshot, PluginVersion, SourcePosition,
};
use crate::task::{Ack, Committer, CoordinatorHandle, JobControl, JobState};

struct Pending {
    id: u64,
    requested: Instant,
    sources: Vec<Option<SourcePosition>>,
    /// Whether a main source sent its barrier into the job (else, once they all ended, the
    /// checkpoint can never complete).
    injected: bool,
    instances: usize,
    sinks: usize,
    operators: Vec<OperatorSnapshot>,
}

pub struct Coordinator {
    config: CheckpointConfig,
    job: String,
    control: Arc<JobControl>,
    state: JobState,
    acks: mpsc::Receiver<Ack>,
    /// Final positions of the sources that finished.
    finished: Vec<Option<SourcePosition>>,
    /// Sources `0..main_sources` feed the job's streams; the rest are broadcast inputs.
    main_sources: usize,
    instances: usize,
    sinks: usize,
    /// Stage instances and sinks whose input ended while the job went on, with the last
    /// checkpoint each acknowledged: they count for every later one.
    finished_instances: Vec<u64>,
    finished_sinks: Vec<u64>,
    next_id: u64,
    pending: Option<Pending>,
    committers: Vec<Box<dyn Committer>>,
    plugins: Vec<PluginVersion>,
}

impl Coordinator {
    /// A coordinator for a job with `sources` sources (the main one is 0), `instances` stage
    /// instances and one sink, whose first checkpoint is `first_id`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: CheckpointConfig,
        job: String,
        control: Arc<JobControl>,
        state: JobState,
        sources: usize,
        instances: usize,
        first_id: u64,
        plugins: Vec<PluginVersion>,
    ) -> (Self, CoordinatorHandle) {
        let (tx, acks) = mpsc::channel();
        let coordinator = Self {
            config,
            job,
            control,
            state,
            acks,
            finished: vec![None; sources],
            main_sources: 1,
            instances,
            sinks: 1,
            finished_instances: Vec::new(),
            finished_sinks: Vec::new(),
            next_id: first_id.max(1),
            pending: None,
            committers: Vec::new(),
            plugins,
        };
        (coordinator, CoordinatorHandle::new(tx))
    }

    /// The job's streams read sources `0..n`; the rest are broadcast inputs.
    pub fn set_main_sources(&mut self, n: usize) {
        self.main_sources = n.clamp(1, self.finished.len().max(1));
    }

    /// The job has `n` sinks.
    pub fn set_sinks(&mut self, n: usize) {
        self.sinks = n;
    }

    /// Every source of the job's streams ended: no barrier can enter the job any more.
    fn input_ended(&self) -> bool {
        self.finished[..self.main_sources.min(self.finished.len())].iter().all(Option::is_some)
    }

    pub fn add_committer(&mut self, committer: Box<dyn Committer>) {
        self.committers.push(committer);
    }

    /// Triggers and completes checkpoints until every task has ended (the channel closes).
    pub fn run(mut self) -> Self {
        // Checkpoints start `interval` apart; one that is due while another is still
        // running starts as soon as that one completes.
        let mut next = Instant::now() + self.config.interval;
        loop {
            let result = match self.pending {
                Some(_) if next <= Instant::now() => self.acks.recv().map_err(|_| RecvTimeoutError::Disconnected),
                _ => self.acks.recv_timeout(next.saturating_duration_since(Instant::now())),
            };
            match result {
                Ok(ack) => self.on_ack(ack),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return self,
            }
            if self.pending.is_none() && Instant::now() >= next {
                let started = Instant::now();
                self.trigger();
                next = (next + self.config.interval).max(started);
            }
        }
    }

    fn trigger(&mut self) {
        if self.pending.is_some() || self.input_ended() || self.control.is_cancelled() {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        tracing::debug!(checkpoint = id, "checkpoint triggered");
        self.pending = Some(Pending {
            id,
            requested: Instant::now(),
            sources: self.finished.clone(),
            injected: false,
            instances: 0,
            sinks: 0,
            operators: Vec::new(),
        });
        self.control.request_checkpoint(id);
    }

    fn on_ack(&mut self, ack: Ack) {
        if let Ack::Finished { sink, last } = ack {
            match sink {
                true => self.finished_sinks.push(last),
                false => self.finished_instances.push(last),
            }
        }
        let Some(p) = self.pending.as_mut() else {
            if let Ack::SourceFinished { source, position } = ack {
                self.finished[source] = Some(position);
                if self.input_ended() {
                    self.control.set_input_ended();
                }
            }
            return;
        };
        match ack {
            Ack::Finished { .. } => {}
            Ack::Source { id, source, position } if id == p.id => {
                p.injected |= source < self.main_sources;
                p.sources[source] = Some(position);
            }
            Ack::SourceFinished { source, position } => {
                if p.sources[source].is_none() {
                    // Ended before this barrier: the checkpoint has all its records.
                    p.sources[source] = Some(position.clone());
                }
                let injected = p.injected;
                self.finished[source] = Some(position);
                if self.input_ended() {
                    self.control.set_input_ended();
                }
                if !injected && self.input_ended() {
                    // The input ended before any source sent this barrier: it can never
                    // reach the job's tasks, so the checkpoint can never complete.
                    let id = self.pending.as_ref().map_or(0, |p| p.id);
                    tracing::debug!(checkpoint = id, "checkpoint dropped: the input ended first");
                    self.pending = None;
                    self.abandon(id);
                }
            }
            Ack::Instance { id, snapshots } if id == p.id => {
                p.instances += 1;
                p.operators.extend(snapshots);
            }
            Ack::Sink { id } if id == p.id => p.sinks += 1,
            other => tracing::debug!(?other, "report of an abandoned checkpoint ignored"),
        }
        let done = self.pending.as_ref().is_some_and(|p| {
            let before = |acked: &Vec<u64>| acked.iter().filter(|&&last| last < p.id).count();
            p.instances + before(&self.finished_instances) >= self.instances
                && p.sinks + before(&self.finished_sinks) >= self.sinks
                && p.sources.iter().all(Option::is_some)
        });
        if done && let Some(p) = self.pending.take() {
            let id = p.id;
            if let Err(e) = self.complete(p) {
                tracing::error!(checkpoint = id, error = %e, "checkpoint failed; the job goes on and tries again at the next one");
                self.abandon(id);
            }
        }
    }

    fn complete(&mut self, p: Pending) -> Result<(), CheckpointError> {
        let sources = p.sources.into_iter().map(|s| s.unwrap_or(SourcePosition::unreplayable())).collect();
        let duration_ms = p.requested.elapsed().as_millis() as u64;
        let (meta, bytes) = self.write_complete(p.id, false, sources, p.operators, duration_ms)?;
        tracing::info!(checkpoint = meta.id, duration_ms, bytes, "checkpoint complete");
        Ok(())
    }

    /// Checkpoint `id` has all it needs: state synced, its file written, then it is
    /// complete: sources learn it, sinks commit, old checkpoints go. Returns the file's size.
    fn write_complete(
        &mut self,
        id: u64,
        finished: bool,
        sources: Vec<SourcePosition>,
        operators: Vec<OperatorSnapshot>,
        duration_ms: u64,
    ) -> Result<(CheckpointMeta, u64), CheckpointError> {
        if let Some(store) = self.state.opened() {
            store.sync()?;
        }
        let meta = CheckpointMeta {
            id,
            job: self.job.clone(),
            completed_at_ms: crate::time::now_ms(),
            finished,
            sources,
            operators,
            plugins: self.plugins.clone(),
            duration_ms,
        };
        let path = files::write(&self.config.dir, &meta)?;
        self.control.complete_checkpoint(id);
        self.commit(id);
        files::retain(&self.config.dir, self.config.retained)?;
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Ok((meta, bytes))
    }

    fn commit(&mut self, id: u64) {
        for committer in &mut self.committers {
            if let Err(e) = committer.committed(id) {
                // The parts stay in progress; recovery commits them from this checkpoint.
                tracing::error!(checkpoint = id, error = %e, "committing a sink's output failed");
            }
        }
    }

    fn abandon(&mut self, id: u64) {
        for committer in &mut self.committers {
            committer.abandoned(id);
        }
    }

    /// Every task ended and the job's input is done: the last checkpoint, marked finished,
    /// then the sinks commit everything and keyed state gets its last writes.
    pub fn finish(mut self) -> Result<CheckpointMeta, CheckpointError> {
        while let Ok(ack) = self.acks.try_recv() {
            self.on_ack(ack);
        }
        if let Some(p) = self.pending.take() {
            self.abandon(p.id);
        }
        let sources = self.finished.iter().map(|s| s.clone().unwrap_or(SourcePosition::unreplayable())).collect();
        let (meta, _) = self.write_complete(self.next_id, true, sources, Vec::new(), 0)?;
        // Complete: the last sealed state can go to sled's keys.
        if let Some(store) = self.state.opened() {
            store.apply_checkpoints(u64::MAX)?;
        }
        let id = meta.id;
        tracing::info!(checkpoint = id, "job finished; last checkpoint written");
        Ok(meta)
    }
}
