//! Running a job: its tasks wired on tokio, the checkpoint coordinator, recovery and the
//! restart strategy. What the tasks themselves do is the task layer ([`crate::task`]).
//!
//! - [`exec`]: spawning the tasks of a planned job (sources, stage instances, the sink and
//!   the dead-letter output) connected by bounded channels, and collecting their outcome.
//! - [`coordinator`]: the checkpoint coordinator (Flink's `CheckpointCoordinator`).
//! - [`recovery`]: what a checkpointed job resumes from.
//! - [`restart`]: [`execute`] and Flink's restart strategy.

mod coordinator;
mod exec;
mod recovery;
mod restart;

pub use exec::JobReport;
pub use restart::{RuntimeError, execute, execute_with};
