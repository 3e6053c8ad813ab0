//! Job files: YAML with Flink's connector vocabulary, validated in full before anything
//! runs, with errors that name the file, the line and the key.
//!
//! ```yaml
//! name: First Program
//! plugins:
//!   upper: ../../plugins/upper-rust/upper-rust.wasm   # relative to this file
//! source:
//!   connector: collection
//!   elements: [Hello, World]
//! pipeline:
//!   - map: upper.upper                  # plugin.function
//! sink:
//!   connector: print
//! ```
//!
//! The file is read into a [`JobSpec`] (pure data, every path resolved against the job
//! file's folder), then [`JobSpec::build`] loads the plugins and builds the pipeline with
//! the builder API ([`crate::env`]), so both ways of writing a job run the same code.

mod graph;
mod spec;
mod state_query;
mod time;

use std::path::Path;

pub use crate::config::parse_duration_ms;
pub use crate::config::{JobError, Lines};
pub use graph::{InputSpec, JoinKind, JoinSpec, SinkEntry, StreamSpec};
pub use spec::{FnRef, JobSpec, KeySpec, PipelineStep, StepSpec};
pub use state_query::{StateQueryError, query as query_state};
pub use time::WindowSpec;

/// A job file's text read as `job.yaml` in the current folder (for tests of the parts of
/// job files).
#[cfg(test)]
pub(crate) fn parse_text(text: &str) -> Result<JobSpec, JobError> {
    spec::parse(text, Path::new("job.yaml"), Path::new("."))
}

/// Read and validate a job file.
pub fn load(path: &Path) -> Result<JobSpec, JobError> {
    let text = std::fs::read_to_string(path).map_err(|e| JobError {
        file: path.to_path_buf(),
        line: None,
        key: String::new(),
        message: format!("cannot read the job file: {e}"),
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    spec::parse(&text, path, &base)
}
