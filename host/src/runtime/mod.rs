//! Running a job: tasks on tokio connected by bounded channels.
//!
//! - [`partition`]: where a task's output goes (forward, rebalance, key groups), and the
//!   backpressure it meets.
//! - [`exec`]: spawning the tasks of a planned job and collecting their outcome.
//! - [`dead_letter`]: the failed-record output.

mod dead_letter;
mod exec;
mod partition;

pub use dead_letter::{DeadLetter, Payload};
pub use exec::{JobControl, JobReport, LATE, RuntimeError, execute, execute_with};
pub use partition::{
    DEFAULT_MAX_PARALLELISM, Disconnected, Message, Output, Partitioning, instance_for_key_group, key_group,
};
