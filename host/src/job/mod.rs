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

mod datagen;
mod kafka;
mod locate;
mod nexmark;
mod postgres;
mod spec;
mod state_query;
mod time;

use std::fmt;
use std::path::{Path, PathBuf};

pub use locate::Lines;
pub use spec::{FnRef, JobSpec, KeySpec, PipelineStep, StepSpec};
pub use state_query::{StateQueryError, query as query_state};
pub use time::{WindowSpec, parse_duration_ms};

/// An error in a job file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// The key the error is about, e.g. `pipeline[0].map`; empty for the whole file.
    pub key: String,
    pub message: String,
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for JobError {}

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
