//! Sinks that commit through their system's own transactions, once per checkpoint (Flink's
//! `TwoPhaseCommitSinkFunction`): the Kafka sink with exactly-once delivery and the
//! PostgreSQL sink.
//!
//! Records between barriers `n - 1` and `n` go into one open transaction. Barrier `n`
//! pre-commits it (everything sent and acknowledged, only the commit missing); when
//! checkpoint `n` is complete, the coordinator commits it together with a marker saying
//! "checkpoint `n` is committed", in the same transaction. Records that arrive between the
//! barrier and the commit wait in memory, so that they land in the next transaction.
//!
//! The checkpoint's file is written before the commit, so a crash between the two leaves a
//! complete checkpoint `n` whose output was never committed (the system aborts the open
//! transaction). Recovery therefore asks the sink which checkpoint it committed last and
//! resumes from that one ([`crate::connectors::committed_checkpoint`]): the records of
//! epoch `n` are produced again, once.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::record::Batch;
use crate::task::{Committer, ConnectorError, SinkWriter};

/// One system's transactions, as a [`TwoPhaseSink`] drives them.
pub trait Transaction: Send + 'static {
    /// Write `batch` into the open transaction, beginning one if none is open.
    fn write(&mut self, batch: &Batch) -> Result<(), ConnectorError>;

    /// Make everything written so far durable in the open transaction, so that only the
    /// commit is missing (Kafka: flush and wait for the acknowledgements).
    fn precommit(&mut self) -> Result<(), ConnectorError>;

    /// Commit the open transaction (or an empty one) and record `checkpoint` as the last
    /// committed checkpoint, atomically.
    fn commit(&mut self, checkpoint: u64) -> Result<(), ConnectorError>;
}

struct Shared<T> {
    txn: T,
    /// The transaction is pre-committed for this checkpoint (0: for whichever completes
    /// next, once the input ended) and waits for it to complete.
    precommitted: Option<u64>,
    /// Records that came after the pre-commit, for the next transaction.
    held: Batch,
    /// The input ended: what is held is pre-committed as soon as it is in a transaction.
    finished: bool,
    /// A commit failed on the coordinator's thread; the sink task fails with it.
    failed: Option<String>,
}

impl<T: Transaction> Shared<T> {
    fn check(&self) -> Result<(), ConnectorError> {
        match &self.failed {
            Some(error) => Err(ConnectorError::Commit(error.clone())),
            None => Ok(()),
        }
    }

    /// Held records go into the (new) open transaction.
    fn release_held(&mut self) -> Result<(), ConnectorError> {
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            self.txn.write(&held)?;
        }
        if self.finished {
            self.txn.precommit()?;
            self.precommitted = Some(0);
        }
        Ok(())
    }
}

/// The sink task's half: writes, pre-commits at barriers.
pub struct TwoPhaseSink<T: Transaction> {
    shared: Arc<Mutex<Shared<T>>>,
}

/// The coordinator's half: commits when a checkpoint completes.
pub struct TwoPhaseCommitter<T: Transaction> {
    shared: Arc<Mutex<Shared<T>>>,
}

/// A sink writing through `txn` whose first checkpoint is `first_epoch`. The marker is set
/// to `first_epoch - 1` at once (the checkpoint the job resumes from, or 0 when it starts
/// afresh), so a marker left by an earlier run of the job never counts.
pub fn two_phase<T: Transaction>(
    mut txn: T,
    first_epoch: u64,
) -> Result<(TwoPhaseSink<T>, TwoPhaseCommitter<T>), ConnectorError> {
    txn.commit(first_epoch.saturating_sub(1))?;
    let shared =
        Arc::new(Mutex::new(Shared { txn, precommitted: None, held: Batch::new(), finished: false, failed: None }));
    Ok((TwoPhaseSink { shared: shared.clone() }, TwoPhaseCommitter { shared }))
}

fn lock<T>(shared: &Mutex<T>) -> MutexGuard<'_, T> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T: Transaction> SinkWriter for TwoPhaseSink<T> {
    fn write(&mut self, batch: &Batch) -> Result<(), ConnectorError> {
        let mut s = lock(&self.shared);
        s.check()?;
        if s.precommitted.is_some() {
            for i in 0..batch.len() {
                s.held.push_record(batch.value(i), batch.meta(i));
            }
            Ok(())
        } else {
            s.txn.write(batch)
        }
    }

    fn barrier(&mut self, id: u64) -> Result<(), ConnectorError> {
        let mut s = lock(&self.shared);
        s.check()?;
        // A barrier comes only after the checkpoint before it completed or was abandoned,
        // so nothing is pre-committed now; if it were, its records join this transaction.
        s.release_held()?;
        s.txn.precommit()?;
        s.precommitted = Some(id);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        let mut s = lock(&self.shared);
        s.check()?;
        s.finished = true;
        if s.precommitted.is_none() {
            s.release_held()?;
        }
        Ok(())
    }
}

impl<T: Transaction> Committer for TwoPhaseCommitter<T> {
    fn committed(&mut self, id: u64) -> Result<(), String> {
        let mut s = lock(&self.shared);
        if s.failed.is_some() {
            return Ok(());
        }
        if s.precommitted.is_none_or(|p| p > id) {
            // The sink never saw this checkpoint's barrier: nothing to commit yet.
            return Ok(());
        }
        let result = s.txn.commit(id).and_then(|()| {
            s.precommitted = None;
            s.release_held()
        });
        result.map_err(|e| {
            let message = format!("checkpoint {id}: {e}");
            s.failed = Some(message.clone());
            message
        })
    }

    fn abandoned(&mut self, id: u64) {
        let mut s = lock(&self.shared);
        if s.precommitted == Some(id) {
            s.precommitted = None;
            if let Err(e) = s.release_held() {
                s.failed = Some(format!("after checkpoint {id} was abandoned: {e}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory transactional store: what is committed, what is open.
    #[derive(Default)]
    struct Store {
        committed: Vec<String>,
        open: Vec<String>,
        precommitted: bool,
        marker: u64,
    }

    #[derive(Clone, Default)]
    struct Txn(Arc<Mutex<Store>>);

    impl Transaction for Txn {
        fn write(&mut self, batch: &Batch) -> Result<(), ConnectorError> {
            let mut s = lock(&self.0);
            // Writing after a pre-commit is allowed (an abandoned checkpoint), and undoes it.
            s.precommitted = false;
            s.open.extend(batch.iter().map(|(v, _)| crate::record::display_value(v)));
            Ok(())
        }
        fn precommit(&mut self) -> Result<(), ConnectorError> {
            lock(&self.0).precommitted = true;
            Ok(())
        }
        fn commit(&mut self, checkpoint: u64) -> Result<(), ConnectorError> {
            let mut s = lock(&self.0);
            let open = std::mem::take(&mut s.open);
            s.committed.extend(open);
            s.precommitted = false;
            s.marker = checkpoint;
            Ok(())
        }
    }

    fn batch(values: &[&str]) -> Batch {
        let mut b = Batch::new();
        for v in values {
            b.push(&crate::record::encode_str(v));
        }
        b
    }

    #[test]
    fn records_after_a_barrier_wait_for_the_commit() {
        let txn = Txn::default();
        let (mut sink, mut committer) = two_phase(txn.clone(), 1).unwrap();
        sink.write(&batch(&["a", "b"])).unwrap();
        sink.barrier(1).unwrap();
        sink.write(&batch(&["c"])).unwrap();
        assert!(lock(&txn.0).committed.is_empty());
        assert!(lock(&txn.0).open.len() == 2, "c is held, not in the pre-committed transaction");
        committer.committed(1).unwrap();
        let s = lock(&txn.0);
        assert_eq!(s.committed, ["a", "b"]);
        assert_eq!(s.open, ["c"]);
        assert_eq!(s.marker, 1);
    }

    #[test]
    fn an_abandoned_checkpoint_commits_with_the_next() {
        let txn = Txn::default();
        let (mut sink, mut committer) = two_phase(txn.clone(), 1).unwrap();
        sink.write(&batch(&["a"])).unwrap();
        sink.barrier(1).unwrap();
        sink.write(&batch(&["b"])).unwrap();
        committer.abandoned(1);
        sink.barrier(2).unwrap();
        committer.committed(2).unwrap();
        assert_eq!(lock(&txn.0).committed, ["a", "b"]);
        assert_eq!(lock(&txn.0).marker, 2);
    }

    #[test]
    fn the_end_of_input_commits_with_the_final_checkpoint() {
        let txn = Txn::default();
        let (mut sink, mut committer) = two_phase(txn.clone(), 5).unwrap();
        assert_eq!(lock(&txn.0).marker, 4, "the marker starts at the restored checkpoint");
        sink.write(&batch(&["a"])).unwrap();
        sink.barrier(5).unwrap();
        sink.write(&batch(&["b"])).unwrap();
        sink.finish().unwrap();
        // Checkpoint 5 completes after the input ended, then the final one, 6.
        committer.committed(5).unwrap();
        assert_eq!(lock(&txn.0).committed, ["a"]);
        committer.committed(6).unwrap();
        assert_eq!(lock(&txn.0).committed, ["a", "b"]);
        assert_eq!(lock(&txn.0).marker, 6);
    }

    #[test]
    fn a_commit_that_is_not_due_does_nothing() {
        let txn = Txn::default();
        let (mut sink, mut committer) = two_phase(txn.clone(), 1).unwrap();
        sink.write(&batch(&["a"])).unwrap();
        committer.committed(1).unwrap();
        assert!(lock(&txn.0).committed.is_empty());
    }
}
