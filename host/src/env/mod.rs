//! The builder API, shaped like Flink's DataStream API.
//!
//! ```no_run
//! use weir::env::StreamEnvironment;
//!
//! # fn main() -> Result<(), weir::env::EnvError> {
//! let env = StreamEnvironment::new();
//! let upper = env.load_plugin("plugins/upper-rust/upper-rust.wasm")?;
//! env.from_elements(["Hello", "World", "PyFlink", "Stream", "Processing"])
//!     .map(upper.function("upper"))
//!     .print();
//! env.execute("First Program")?;
//! # Ok(())
//! # }
//! ```
//!
//! Mistakes that can be caught while building (a function of the wrong kind, `count`
//! without `key_by`) are kept and returned by [`StreamEnvironment::execute`], so that a
//! pipeline reads as one chain of calls, as in Flink.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use thiserror::Error;

use crate::connectors::{DatagenSpec, FileSource, LineFormat, NexmarkSpec, SinkSpec, SocketSource, SourceSpec};
use crate::deploy::{PluginCell, Requirement, RollbackPolicy, Target, Targets};
use crate::graph::{JobConfig, JobGraph, SinkNode, Stream, StreamInput};
use crate::plugin::{FunctionKind, Plugin, PluginError, PluginRuntime, SandboxLimits, default_cache_dir};
use crate::runtime::{JobReport, RuntimeError};
use crate::task::JobControl;

mod broadcast;
mod data_stream;
mod join;
mod keyed;
mod running;
mod windowed;

pub use broadcast::{BroadcastConnectedStream, BroadcastStream};
pub use data_stream::{DataStream, KeySelector, WatermarkStrategy};
pub use join::JoinedStreams;
pub use keyed::{Connect, ConnectedStreams, KeyedStream};
pub use running::{JobHandle, RunningJob};
pub use windowed::WindowedStream;

#[derive(Debug, Error)]
pub enum EnvError {
    #[error("plugin {path}: {source}")]
    Plugin { path: PathBuf, source: PluginError },
    #[error("{0}")]
    Build(String),
    #[error("the job has no sink: end the pipeline with print(), sink_to() or collect()")]
    NoSink,
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot start the job's runtime: {0}")]
    Start(std::io::Error),
}

/// Where a job starts: its settings, its plugins, and the pipeline being built.
#[derive(Clone)]
pub struct StreamEnvironment {
    state: Arc<Mutex<EnvState>>,
}

struct EnvState {
    config: JobConfig,
    limits: SandboxLimits,
    cache_dir: PathBuf,
    runtime: Option<Arc<PluginRuntime>>,
    plugins: HashMap<PathBuf, Plugin>,
    dead_letter: SinkSpec,
    late_data: Option<SinkSpec>,
    /// The job's graph as built so far: every stream, after those it reads.
    streams: Vec<Stream>,
    sinks: Vec<SinkNode>,
    /// Steps whose plugin a hot deploy can replace.
    targets: Targets,
    rollback_policy: RollbackPolicy,
    errors: Vec<String>,
}

impl Default for StreamEnvironment {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamEnvironment {
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(EnvState {
                config: JobConfig::default(),
                limits: SandboxLimits::default(),
                cache_dir: default_cache_dir(),
                runtime: None,
                plugins: HashMap::new(),
                dead_letter: SinkSpec::stderr(),
                late_data: None,
                streams: Vec::new(),
                sinks: Vec::new(),
                targets: Targets::default(),
                rollback_policy: RollbackPolicy::default(),
                errors: Vec::new(),
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, EnvState> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parallelism of keyed steps that do not set their own.
    pub fn set_parallelism(&self, parallelism: usize) -> &Self {
        self.state().config.default_parallelism = parallelism.max(1);
        self
    }

    /// Records per batch emitted by sources.
    pub fn set_batch_size(&self, rows: usize) -> &Self {
        self.state().config.batch_size = rows.max(1);
        self
    }

    pub fn set_max_parallelism(&self, key_groups: u16) -> &Self {
        self.state().config.max_parallelism = key_groups.max(1);
        self
    }

    /// Sandbox limits of every plugin instance; set before loading plugins.
    pub fn set_limits(&self, limits: SandboxLimits) -> &Self {
        self.state().limits = limits;
        self
    }

    /// Where compiled components are cached (default: `WEIR_CACHE_DIR` or ~/.cache/weir).
    pub fn set_cache_dir(&self, dir: impl Into<PathBuf>) -> &Self {
        self.state().cache_dir = dir.into();
        self
    }

    /// Where failed records go (default: stderr, one JSON line each).
    pub fn set_dead_letter(&self, sink: SinkSpec) -> &Self {
        self.state().dead_letter = sink;
        self
    }

    /// Where records too late for their windows go (Flink's late-data side output). Without
    /// it they are dead letters of kind `late`.
    pub fn set_late_data(&self, sink: SinkSpec) -> &Self {
        self.state().late_data = Some(sink);
        self
    }

    /// When a plugin version deployed into the running job is rolled back by itself (its
    /// probation); applies to the steps built after this call.
    pub fn set_rollback_policy(&self, policy: RollbackPolicy) -> &Self {
        self.state().rollback_policy = policy;
        self
    }

    /// Keep keyed state (sled) in `dir`, so it outlives the job; by default it lives in a
    /// temporary directory removed at the end.
    pub fn set_state_dir(&self, dir: impl Into<PathBuf>) -> &Self {
        self.state().config.state_dir = Some(dir.into());
        self
    }

    /// Take a checkpoint every `config.interval` (Flink's `enableCheckpointing`), and resume
    /// from the latest complete one when the job is started again after a crash.
    pub fn enable_checkpointing(&self, config: crate::checkpoint::CheckpointConfig) -> &Self {
        self.state().config.checkpoints = Some(config);
        self
    }

    /// Resume from a checkpoint or savepoint even if it holds state of steps (uids) this
    /// job no longer has, dropping that state (Flink's `--allowNonRestoredState`).
    pub fn allow_non_restored_state(&self, allow: bool) -> &Self {
        self.state().config.allow_non_restored_state = allow;
        self
    }

    /// Load (compile or fetch from the cache, check, describe) a plugin component.
    pub fn load_plugin(&self, path: impl AsRef<Path>) -> Result<PluginRef, EnvError> {
        let path = path.as_ref().to_path_buf();
        let mut state = self.state();
        if let Some(p) = state.plugins.get(&path) {
            return Ok(PluginRef { plugin: p.clone() });
        }
        let runtime = match &state.runtime {
            Some(r) => r.clone(),
            None => {
                let r = PluginRuntime::new(state.cache_dir.clone())
                    .map_err(|source| EnvError::Plugin { path: path.clone(), source })?;
                state.runtime = Some(r.clone());
                r
            }
        };
        let plugin =
            runtime.load(&path, state.limits).map_err(|source| EnvError::Plugin { path: path.clone(), source })?;
        state.plugins.insert(path, plugin.clone());
        Ok(PluginRef { plugin })
    }

    fn stream(&self, source: SourceSpec) -> DataStream {
        let node =
            self.add_stream(Stream { name: String::new(), input: StreamInput::Source(source), steps: Vec::new() });
        DataStream { env: self.clone(), node, keyed: false, partition: None }
    }

    /// Add a stream to the job's graph; its index.
    fn add_stream(&self, stream: Stream) -> usize {
        let mut state = self.state();
        state.streams.push(stream);
        state.streams.len() - 1
    }

    /// Write stream `node` to `sink`.
    fn add_sink(&self, node: usize, name: Option<String>, sink: SinkSpec) {
        let mut state = self.state();
        let name = name.unwrap_or_else(|| match state.sinks.len() {
            0 => "sink".to_string(),
            n => format!("sink{}", n + 1),
        });
        state.sinks.push(SinkNode { name, input: node, spec: sink });
    }

    /// A bounded stream of the given values (any serde type; structs become maps).
    pub fn from_elements<T: Serialize>(&self, elements: impl IntoIterator<Item = T>) -> DataStream {
        let mut encoded = Vec::new();
        for e in elements {
            match rmp_serde::to_vec_named(&e) {
                Ok(v) => encoded.push(v),
                Err(err) => self.state().errors.push(format!("from_elements: cannot encode an element: {err}")),
            }
        }
        self.stream(SourceSpec::collection(encoded))
    }

    /// Lines of a text file, or of every file in a directory.
    pub fn read_text_file(&self, path: impl Into<PathBuf>) -> DataStream {
        self.stream(SourceSpec::new(FileSource { path: path.into(), format: LineFormat::Text }))
    }

    /// JSON values, one per line, of a file or of every file in a directory.
    pub fn read_json_lines(&self, path: impl Into<PathBuf>) -> DataStream {
        self.stream(SourceSpec::new(FileSource { path: path.into(), format: LineFormat::Json }))
    }

    /// Text lines read from a TCP server until it closes the connection.
    pub fn socket_text_stream(&self, host: impl Into<String>, port: u16) -> DataStream {
        self.stream(SourceSpec::new(SocketSource { host: host.into(), port, format: LineFormat::Text }))
    }

    /// Rows generated from a schema, like Flink's datagen connector; a spec that cannot
    /// generate (no fields, `min > max`, ...) is reported by [`StreamEnvironment::execute`].
    ///
    /// ```no_run
    /// use weir::connectors::{DatagenSpec, FieldGenerator};
    /// use weir::env::StreamEnvironment;
    ///
    /// # fn main() -> Result<(), weir::env::EnvError> {
    /// let env = StreamEnvironment::new();
    /// let spec = DatagenSpec::new()
    ///     .field("user", FieldGenerator::RandomInt { min: 1, max: 100 })
    ///     .field("ts", FieldGenerator::EventTime { start_ms: 0, step_ms: 10, max_out_of_orderness_ms: 0 })
    ///     .number_of_rows(1_000)
    ///     .seed(7);
    /// env.from_datagen(spec).print();
    /// env.execute("generated")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_datagen(&self, spec: DatagenSpec) -> DataStream {
        if let Err(e) = spec.validate() {
            self.state().errors.push(format!("from_datagen: {e}"));
        }
        self.stream(SourceSpec::new(spec))
    }

    /// The Nexmark benchmark's auction events (persons, auctions, bids as flat maps with an
    /// `event_type` and a `date_time`); a spec that cannot generate (a rate of 0, ...) is
    /// reported by [`StreamEnvironment::execute`].
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use weir::connectors::NexmarkSpec;
    /// use weir::env::StreamEnvironment;
    ///
    /// # fn main() -> Result<(), weir::env::EnvError> {
    /// let env = StreamEnvironment::new();
    /// env.from_nexmark(NexmarkSpec::new(100_000).seed(1))
    ///     .assign_timestamps("date_time", Duration::from_secs(3))
    ///     .discard();
    /// env.execute("nexmark")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_nexmark(&self, spec: NexmarkSpec) -> DataStream {
        if let Err(e) = spec.validate() {
            self.state().errors.push(format!("from_nexmark: {e}"));
        }
        self.stream(SourceSpec::new(spec))
    }

    pub fn from_source(&self, source: SourceSpec) -> DataStream {
        self.stream(source)
    }

    /// A step that runs `function` of `plugin`: the cell its instances follow, so that a hot
    /// deploy can replace the plugin while the job runs.
    fn deploy_target(&self, step: &str, plugin: Plugin, function: &str, kinds: &[FunctionKind]) -> PluginCell {
        let cell = PluginCell::new(plugin);
        cell.set_policy(self.state().rollback_policy);
        let requirement = Requirement { function: function.to_string(), kinds: kinds.to_vec() };
        let target = Target { step: step.to_string(), uid: step.to_string(), cell: cell.clone(), requirement };
        self.state().targets.0.push(target);
        cell
    }

    /// Start the job in the background and return at once: the running job takes hot
    /// deploys ([`RunningJob::deploy`]) until it ends.
    pub fn start(&self, name: &str) -> Result<RunningJob, EnvError> {
        let graph = self.graph(name)?;
        let targets = self.state().targets.clone();
        let control = Arc::new(JobControl::default());
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(EnvError::Start)?;
        let job_control = control.clone();
        let thread = std::thread::Builder::new()
            .name(format!("weir-job-{name}"))
            .spawn(move || rt.block_on(crate::runtime::execute_with(graph, job_control)))
            .map_err(EnvError::Start)?;
        Ok(RunningJob { handle: JobHandle { name: name.to_string(), targets, control }, thread })
    }

    /// The job graph of what was built, checked.
    pub fn graph(&self, name: &str) -> Result<JobGraph, EnvError> {
        let mut state = self.state();
        if let Some(e) = state.errors.first() {
            return Err(EnvError::Build(e.clone()));
        }
        if state.sinks.is_empty() {
            return Err(EnvError::NoSink);
        }
        // A deploy may name a step by its uid, known now that the graph is built.
        let state = &mut *state;
        for target in &mut state.targets.0 {
            if let Some(step) = state.streams.iter().flat_map(|s| &s.steps).find(|s| s.name == target.step) {
                target.uid.clone_from(&step.uid);
            }
        }
        Ok(JobGraph {
            name: name.to_string(),
            streams: state.streams.clone(),
            sinks: state.sinks.clone(),
            dead_letter: state.dead_letter.clone(),
            late_data: state.late_data.clone(),
            config: state.config.clone(),
        })
    }

    /// Run the job to its end (bounded sources) and report what it did. Blocks; inside an
    /// async context use [`StreamEnvironment::execute_async`].
    pub fn execute(&self, name: &str) -> Result<JobReport, EnvError> {
        let graph = self.graph(name)?;
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(EnvError::Start)?;
        Ok(rt.block_on(crate::runtime::execute(graph))?)
    }

    pub async fn execute_async(&self, name: &str) -> Result<JobReport, EnvError> {
        let graph = self.graph(name)?;
        Ok(crate::runtime::execute(graph).await?)
    }
}

/// A loaded plugin, to pick functions from.
#[derive(Clone, Debug)]
pub struct PluginRef {
    plugin: Plugin,
}

impl PluginRef {
    /// The function `name` of this plugin (its kind is checked where it is used).
    pub fn function(&self, name: &str) -> Function {
        Function::Plugin { plugin: self.plugin.clone(), name: name.to_string() }
    }

    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }
}

/// A function a step runs.
#[derive(Clone)]
pub enum Function {
    Plugin { plugin: Plugin, name: String },
}
