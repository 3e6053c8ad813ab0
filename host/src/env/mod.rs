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
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::connectors::{
    Collected, DatagenSpec, FileSource, LineFormat, NexmarkSpec, SinkSpec, SocketSource, SourceSpec,
};
use crate::deploy::{DeployError, PluginCell, Requirement, RollbackPolicy, Target, Targets, VersionRecord};
use crate::graph::{BroadcastInput, JobConfig, JobGraph, Step, StepKind};
use crate::operator::{KeyByOperator, NativeMap, RollingAggregate, RollingKind, TransformKind, TransformOperator};
use crate::plugin::{FunctionKind, Plugin, PluginError, PluginRuntime, SandboxLimits, default_cache_dir};
use crate::runtime::{JobReport, RuntimeError};
use crate::task::{JobControl, Operator, OperatorError, OperatorFactory};

mod windowed;

pub use windowed::WindowedStream;

#[derive(Debug, Error)]
pub enum EnvError {
    #[error("plugin {path}: {source}")]
    Plugin { path: PathBuf, source: PluginError },
    #[error("{0}")]
    Build(String),
    #[error("the job has no sink: end the pipeline with print(), sink_to() or collect()")]
    NoSink,
    #[error("the job has two pipelines; one environment runs one source-to-sink pipeline for now")]
    TwoPipelines,
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
    pipelines: Vec<(SourceSpec, Vec<Step>, SinkSpec)>,
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
                pipelines: Vec::new(),
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
        DataStream { env: self.clone(), source, steps: Vec::new(), keyed: false }
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
        self.state().targets.0.push(Target { step: step.to_string(), cell: cell.clone(), requirement });
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
        let mut pipelines = std::mem::take(&mut state.pipelines);
        let (source, steps, sink) = match pipelines.len() {
            0 => return Err(EnvError::NoSink),
            1 => pipelines.remove(0),
            _ => return Err(EnvError::TwoPipelines),
        };
        Ok(JobGraph {
            name: name.to_string(),
            source,
            steps,
            sink,
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

/// A job started with [`StreamEnvironment::start`].
pub struct RunningJob {
    handle: JobHandle,
    thread: std::thread::JoinHandle<Result<JobReport, RuntimeError>>,
}

/// A running job is controlled like its [`JobHandle`]: `job.deploy(..)`, `job.versions()`.
impl std::ops::Deref for RunningJob {
    type Target = JobHandle;

    fn deref(&self) -> &JobHandle {
        &self.handle
    }
}

impl RunningJob {
    /// A handle to control the job from elsewhere (a control API, a folder watcher) while
    /// this one waits for it.
    pub fn handle(&self) -> JobHandle {
        self.handle.clone()
    }

    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Wait for the job to end.
    pub fn wait(self) -> Result<JobReport, EnvError> {
        match self.thread.join() {
            Ok(result) => Ok(result?),
            Err(_) => Err(EnvError::Runtime(RuntimeError::Panic(format!("job `{}`", self.handle.name)))),
        }
    }
}

/// What controls a running job: hot deploys, rollbacks, cancellation and live counters.
/// Cheap to clone; clones control the same job.
#[derive(Clone)]
pub struct JobHandle {
    name: String,
    targets: Targets,
    control: Arc<JobControl>,
}

impl JobHandle {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The steps that run plugins, each with every version it ran or was offered.
    pub fn versions(&self) -> Vec<(String, Vec<VersionRecord>)> {
        self.targets.0.iter().map(|t| (t.step.clone(), t.cell.history())).collect()
    }

    /// The steps whose plugin can be replaced.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// Replace the plugin of `step` (its name, or a part only it contains) with the component
    /// `bytes`: compiled and checked here, then run by every instance from its next batch.
    pub fn deploy(&self, step: &str, bytes: &[u8], origin: &Path) -> Result<VersionRecord, DeployError> {
        self.targets.deploy(step, bytes, origin)
    }

    /// Run the component `bytes` as a canary of `step` (a map, filter or flat-map) on about
    /// `fraction` of its batches: it replaces the current version once it has handled its
    /// probation's records without too many failures, and is dropped otherwise.
    pub fn deploy_canary(
        &self,
        step: &str,
        bytes: &[u8],
        origin: &Path,
        fraction: f64,
    ) -> Result<VersionRecord, DeployError> {
        self.targets.deploy_canary(step, bytes, origin, fraction)
    }

    /// Run the version of `step` before the current one again.
    pub fn rollback(&self, step: &str) -> Result<VersionRecord, DeployError> {
        self.targets.rollback(step)
    }

    /// Ask the job to end: its sources stop at their next batch and the job finishes
    /// cleanly with what they read.
    pub fn cancel(&self) {
        self.control.cancel();
    }

    /// The job's cancellation flag and live counters.
    pub fn control(&self) -> &JobControl {
        &self.control
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

/// How `key_by` finds keys.
#[derive(Clone)]
pub enum KeySelector {
    /// A field of map records.
    Field(String),
    /// A key-selector plugin function.
    Function(Function),
}

impl From<Function> for KeySelector {
    fn from(f: Function) -> Self {
        KeySelector::Function(f)
    }
}

impl From<&str> for KeySelector {
    fn from(field: &str) -> Self {
        KeySelector::Field(field.to_string())
    }
}

/// How watermarks are made from event time (Flink's `WatermarkStrategy`).
///
/// ```
/// use std::time::Duration;
/// use weir::env::WatermarkStrategy;
/// let s = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5)).with_idleness(Duration::from_secs(30));
/// assert_eq!(s.idleness, Some(Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatermarkStrategy {
    /// How late a record may be: the watermark trails the largest event time by this much.
    pub max_out_of_orderness: std::time::Duration,
    /// Processing time without records after which a parallel instance says it is idle,
    /// so downstream operators stop waiting for its watermark.
    pub idleness: Option<std::time::Duration>,
}

impl WatermarkStrategy {
    pub fn bounded_out_of_orderness(bound: std::time::Duration) -> Self {
        Self { max_out_of_orderness: bound, idleness: None }
    }

    pub fn with_idleness(mut self, timeout: std::time::Duration) -> Self {
        self.idleness = Some(timeout);
        self
    }
}

/// A stream being built: a source and the steps after it.
pub struct DataStream {
    env: StreamEnvironment,
    source: SourceSpec,
    steps: Vec<Step>,
    pub(crate) keyed: bool,
}

impl DataStream {
    pub(crate) fn push(mut self, name: String, kind: StepKind, factory: OperatorFactory) -> Self {
        self.keyed = kind == StepKind::KeyBy;
        self.steps.push(Step::new(name, kind, factory));
        self
    }

    /// This stream as the broadcast side of a connected stream (Flink's
    /// `DataStream.broadcast()`), for [`KeyedStream::connect`]. It must come straight from
    /// its source: transform broadcast records in the process function's
    /// `process-broadcast`.
    pub fn broadcast(self) -> BroadcastStream {
        let input = BroadcastInput { source: self.source.clone(), preload: false };
        if let Some(step) = self.steps.first() {
            let message = format!(
                "broadcast(): a broadcast stream takes its records straight from its source, but `{}` comes before it",
                step.name
            );
            self.fail(message);
        }
        BroadcastStream { input }
    }

    pub(crate) fn fail(self, message: String) -> Self {
        self.env.state().errors.push(message);
        self
    }

    fn transform(self, kind: TransformKind, f: Function) -> Self {
        let Function::Plugin { plugin, name } = f;
        let step_name = format!("{}[{}] {}.{}", kind.as_str(), self.steps.len(), plugin.label(), name);
        // Without the plugin's version: a new version of the plugin keeps the step's uid.
        let uid = format!("{}[{}] {}.{}", kind.as_str(), self.steps.len(), plugin.info().name, name);
        if let Err(e) = plugin.function(&name, &[kind.function_kind()]) {
            return self.fail(format!("{step_name}: {e}"));
        }
        let cell = self.env.deploy_target(&step_name, plugin, &name, &[kind.function_kind()]);
        let op_name = step_name.clone();
        let factory: OperatorFactory = Arc::new(move |_: &crate::task::InstanceContext| {
            let op = TransformOperator::new(op_name.clone(), kind, name.clone(), cell.clone())?;
            Ok(Box::new(op) as Box<dyn Operator>)
        });
        self.push(step_name, StepKind::Stateless, factory).uid_default(uid)
    }

    /// One output record per input record.
    pub fn map(self, f: Function) -> Self {
        self.transform(TransformKind::Map, f)
    }

    /// Keep the records the function accepts.
    pub fn filter(self, f: Function) -> Self {
        self.transform(TransformKind::Filter, f)
    }

    /// Any number of output records per input record.
    pub fn flat_map(self, f: Function) -> Self {
        self.transform(TransformKind::FlatMap, f)
    }

    /// A map by a native Rust closure over serde types (decoded and encoded as a Rust
    /// plugin would: structs as maps). The closure is cloned for each parallel instance.
    pub fn map_native<T, U, F>(self, name: &str, f: F) -> Self
    where
        T: DeserializeOwned + 'static,
        U: Serialize + 'static,
        F: Fn(T) -> U + Clone + Send + Sync + 'static,
    {
        let step_name = format!("map[{}] native {name}", self.steps.len());
        let op_name = step_name.clone();
        let factory: OperatorFactory = Arc::new(move |_: &crate::task::InstanceContext| {
            Ok(Box::new(NativeMap::typed(op_name.clone(), f.clone())) as Box<dyn Operator>)
        });
        self.push(step_name, StepKind::Stateless, factory)
    }

    /// A map by a native closure over raw MessagePack rows: it reads the input row and
    /// appends exactly one output row to the buffer (an `Err` sends the row to the
    /// dead-letter output). For hand-tuned native steps and baselines.
    pub fn map_native_raw<F>(self, name: &str, f: F) -> Self
    where
        F: Fn(&[u8], &mut Vec<u8>) -> Result<(), String> + Clone + Send + Sync + 'static,
    {
        let step_name = format!("map[{}] native {name}", self.steps.len());
        let op_name = step_name.clone();
        let factory: OperatorFactory = Arc::new(move |_: &crate::task::InstanceContext| {
            Ok(Box::new(NativeMap::new(op_name.clone(), f.clone())) as Box<dyn Operator>)
        });
        self.push(step_name, StepKind::Stateless, factory)
    }

    /// Event time from `field` (epoch ms, or an RFC 3339 string) and watermarks that allow
    /// records to arrive up to `max_out_of_orderness` late (Flink's
    /// `forBoundedOutOfOrderness`). Records without a readable time go to the dead letters.
    pub fn assign_timestamps(self, field: &str, max_out_of_orderness: std::time::Duration) -> Self {
        self.assign_timestamps_with(field, WatermarkStrategy::bounded_out_of_orderness(max_out_of_orderness))
    }

    /// Event time from `field`, watermarks by `strategy` (bound and idleness).
    pub fn assign_timestamps_with(self, field: &str, strategy: WatermarkStrategy) -> Self {
        let step_name = format!("assign_timestamps[{}] {field}", self.steps.len());
        let (op_name, field) = (step_name.clone(), field.to_string());
        let factory: OperatorFactory = Arc::new(move |_: &crate::task::InstanceContext| {
            let mut op =
                crate::operator::TimestampAssigner::new(op_name.clone(), &field, strategy.max_out_of_orderness);
            if let Some(timeout) = strategy.idleness {
                op = op.with_idleness(timeout);
            }
            Ok(Box::new(op) as Box<dyn Operator>)
        });
        self.push(step_name, StepKind::Stateless, factory)
    }

    /// Partition by key: records with the same key go to the same parallel instance of
    /// the keyed step that follows.
    pub fn key_by(self, selector: impl Into<KeySelector>) -> KeyedStream {
        let selector = selector.into();
        let index = self.steps.len();
        let stream = match selector {
            KeySelector::Field(field) => {
                let step_name = format!("key_by[{index}] field {field}");
                let op_name = step_name.clone();
                let factory: OperatorFactory = Arc::new(move |_: &crate::task::InstanceContext| {
                    let source = crate::operator::KeySource::Field(field.clone());
                    Ok(Box::new(KeyByOperator::new(op_name.clone(), source)) as Box<dyn Operator>)
                });
                self.push(step_name, StepKind::KeyBy, factory)
            }
            KeySelector::Function(Function::Plugin { plugin, name }) => {
                let step_name = format!("key_by[{index}] {}.{}", plugin.label(), name);
                let uid = format!("key_by[{index}] {}.{}", plugin.info().name, name);
                if let Err(e) = plugin.function(&name, &[FunctionKind::KeySelector]) {
                    return KeyedStream { stream: self.fail(format!("{step_name}: {e}")) };
                }
                let op_name = step_name.clone();
                let factory: OperatorFactory = Arc::new(move |_: &crate::task::InstanceContext| {
                    let t = plugin
                        .transformer(&name, &[FunctionKind::KeySelector])
                        .map_err(|source| OperatorError::Plugin { operator: op_name.clone(), source })?;
                    let source = crate::operator::KeySource::Selector(Box::new(t));
                    Ok(Box::new(KeyByOperator::new(op_name.clone(), source)) as Box<dyn Operator>)
                });
                self.push(step_name, StepKind::KeyBy, factory).uid_default(uid)
            }
        };
        KeyedStream { stream }
    }

    /// Parallelism of the last step (like Flink's `setParallelism` on an operator).
    pub fn set_parallelism(mut self, parallelism: usize) -> Self {
        match self.steps.last_mut() {
            Some(step) => step.parallelism = Some(parallelism),
            None => {
                return self.fail("set_parallelism: the source's parallelism is fixed at 1; set it on a step".into());
            }
        }
        self
    }

    /// Sets the last step's default uid (one that needs no check: the builder made it).
    fn uid_default(mut self, uid: String) -> Self {
        if let Some(step) = self.steps.last_mut() {
            step.uid = uid;
        }
        self
    }

    /// The stable id of the last step (Flink's `uid`): it keys the step's state in
    /// checkpoints and savepoints, so the state stays with the step when steps are added,
    /// removed or reordered, or its plugin renamed. Letters, digits, `_`, `-`, `.`, `:`.
    pub fn uid(mut self, uid: &str) -> Self {
        if let Err(e) = crate::graph::check_uid(uid) {
            return self.fail(format!("uid `{uid}`: {e}"));
        }
        match self.steps.last_mut() {
            Some(step) => step.uid = uid.to_string(),
            None => return self.fail(format!("uid `{uid}`: the source has no state to name; set it on a step")),
        }
        self
    }

    /// End the pipeline in a sink.
    pub fn sink_to(self, sink: SinkSpec) {
        let mut state = self.env.state();
        state.pipelines.push((self.source, self.steps, sink));
    }

    /// Print every record to stdout, one per line.
    pub fn print(self) {
        self.sink_to(SinkSpec::print());
    }

    /// Write every record to a file, one per line.
    pub fn write_to_file(self, path: impl Into<PathBuf>, format: LineFormat) {
        self.sink_to(SinkSpec::file(path, format));
    }

    /// Collect every record (MessagePack) into memory; read it after `execute`.
    pub fn collect(self) -> Collected {
        let into: Collected = Arc::default();
        self.sink_to(SinkSpec::collect(into.clone()));
        into
    }

    /// Throw records away (for benchmarks).
    pub fn discard(self) {
        self.sink_to(SinkSpec::discard());
    }
}

/// A stream partitioned by key, waiting for a keyed step.
pub struct KeyedStream {
    stream: DataStream,
}

impl KeyedStream {
    fn rolling(self, kind: RollingKind) -> DataStream {
        let stream = self.stream;
        if !stream.keyed {
            let message = format!("{}: needs a keyed stream: put `key_by` right before it", kind.as_str());
            return stream.fail(message);
        }
        let step_name = format!("{}[{}]", kind.as_str(), stream.steps.len());
        let op_name = step_name.clone();
        let factory: OperatorFactory = Arc::new(move |_: &crate::task::InstanceContext| {
            Ok(Box::new(RollingAggregate::new(op_name.clone(), kind.clone())) as Box<dyn Operator>)
        });
        stream.push(step_name, StepKind::Keyed, factory)
    }

    /// Windows of event time per key (tumbling, sliding or session), aggregated by the
    /// step that follows: `count()`, `sum(field)`, ... (Flink's `keyBy(..).window(..)`).
    pub fn window(self, assigner: crate::window::WindowAssigner) -> WindowedStream {
        WindowedStream::new(self.stream, assigner)
    }

    /// A keyed process function (Flink's `KeyedProcessFunction`): the Wasm function `f` (of
    /// kind `process`) handles each element with state and timers of its key, kept by the
    /// host.
    pub fn process(self, f: Function) -> DataStream {
        let stream = self.stream;
        let Function::Plugin { plugin, name } = f;
        let step_name = format!("process[{}] {}.{}", stream.steps.len(), plugin.info().name, name);
        if !stream.keyed {
            return stream.fail(format!("{step_name}: needs a keyed stream: put `key_by` right before it"));
        }
        if let Err(e) = plugin.function(&name, &[FunctionKind::Process]) {
            return stream.fail(format!("{step_name}: {e}"));
        }
        let cell = stream.env.deploy_target(&step_name, plugin, &name, &[FunctionKind::Process]);
        let op_name = step_name.clone();
        let factory: OperatorFactory = Arc::new(move |ctx: &crate::task::InstanceContext| {
            let op = crate::operator::ProcessOperator::new(op_name.clone(), cell.clone(), &name, ctx)?;
            Ok(Box::new(op) as Box<dyn Operator>)
        });
        stream.push(step_name, StepKind::Keyed, factory)
    }

    /// Connect a broadcast stream (Flink's `keyBy(..).connect(broadcastStream)`): the
    /// process function after it gets the keyed records in `process-element` and every
    /// broadcast record, in every parallel instance, in `process-broadcast`.
    pub fn connect(self, broadcast: BroadcastStream) -> BroadcastConnectedStream {
        BroadcastConnectedStream { keyed: self, broadcast }
    }

    /// A running count per key: emits `{"key": k, "count": n}` for every record.
    pub fn count(self) -> DataStream {
        self.rolling(RollingKind::Count)
    }

    /// A running sum of `field` per key.
    pub fn sum(self, field: &str) -> DataStream {
        self.rolling(RollingKind::Sum(field.to_string()))
    }

    pub fn min(self, field: &str) -> DataStream {
        self.rolling(RollingKind::Min(field.to_string()))
    }

    pub fn max(self, field: &str) -> DataStream {
        self.rolling(RollingKind::Max(field.to_string()))
    }

    /// A keyed stream from a stream whose last step is `key_by` (job files build steps one
    /// at a time); a stream without one is refused by the keyed step.
    pub(crate) fn from_keyed(stream: DataStream) -> Self {
        Self { stream }
    }

    /// The keyed stream as a plain stream (Flink's KeyedStream is a DataStream too).
    pub fn into_stream(self) -> DataStream {
        self.stream
    }

    /// The stable id of the `key_by` step (see [`DataStream::uid`]).
    pub fn uid(self, uid: &str) -> Self {
        Self { stream: self.stream.uid(uid) }
    }
}

/// A stream whose every record reaches every parallel instance of the step it is connected
/// to, made by [`DataStream::broadcast`]. It carries its source's records as they are.
pub struct BroadcastStream {
    input: BroadcastInput,
}

impl BroadcastStream {
    /// Let the keyed input wait until this (bounded) stream has ended, so that reference
    /// data (users, rules) is complete before the first keyed record is processed.
    pub fn preload(mut self) -> Self {
        self.input.preload = true;
        self
    }
}

/// A keyed stream connected to a broadcast stream: it continues with a process function.
pub struct BroadcastConnectedStream {
    keyed: KeyedStream,
    broadcast: BroadcastStream,
}

impl BroadcastConnectedStream {
    /// The process function `f` handles both inputs (Flink's `KeyedBroadcastProcessFunction`).
    pub fn process(self, f: Function) -> DataStream {
        let mut stream = self.keyed.process(f);
        if let Some(step) = stream.steps.last_mut() {
            step.broadcast = Some(self.broadcast.input);
        }
        stream
    }
}
