//! Running user functions as WebAssembly components.
//!
//! One [`PluginRuntime`] per host process owns the wasmtime [`Engine`] (with epoch
//! interruption, ticked by a background thread), the [`Linker`] with what plugins may import
//! (an empty WASI: no files, sockets, environment or stdio; and `weir:plugin/log`), and the
//! on-disk cache of compiled components.
//!
//! [`PluginRuntime::load`] turns a `.wasm` file into a [`Plugin`]: compiled (or loaded from
//! the cache), its ABI checked, pre-instantiated, and described. Operators then create their
//! own [`Transformer`]s (and [`Aggregator`]s for UDAFs) from it: each owns a `Store` and an instance, never shared across
//! threads. This module knows nothing of channels or the dataflow graph.

mod abi;
mod aggregate;
mod bindings;
mod cache;
mod call;
mod instance;
mod limits;
mod process;
mod stderr;
mod transform;
mod window;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use thiserror::Error;
use wasmtime::component::{InstancePre, Linker};
use wasmtime::{Config, Engine, OptLevel};

pub use abi::{ABI_VERSION, Exports};
pub use aggregate::{AddOutcome, AggregateError, Aggregator, GroupedOutcome};
pub use bindings::{
    Field, FunctionInfo, FunctionKind, PluginInfo, RowEncoding, ScalarType, Signature, StateDecl, StateKind, ValueType,
};
pub use cache::{CacheOutcome, content_hash, default_cache_dir};
pub use limits::{EPOCH_TICK, MemoryLimitExceeded, SandboxLimits};
pub use process::{ProcessHost, Processor, SharedProcessHost};
pub use transform::{FailureKind, RowFailure, TransformOutcome, Transformer};
pub use window::WindowFunction;

use instance::HostState;

/// The largest component file Weir accepts (a componentize-py component is ~35 MB).
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;

#[derive(Debug, Error)]
pub enum PluginError {
    #[error("cannot read plugin {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("plugin {path} is {size} bytes, over the limit of {MAX_COMPONENT_BYTES} bytes")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("not a WebAssembly component: {0}; build plugins with `weir plugin build` (weir-sdk for Rust or Python)")]
    Invalid(String),
    #[error(
        "not a weir plugin: it exports {exports}, but a weir plugin exports weir:plugin/describe@{ABI_VERSION}; build it with weir-sdk"
    )]
    NotAPlugin { exports: String },
    #[error(
        "built for the weir:plugin ABI {found}, but this host speaks {ABI_VERSION}; rebuild the plugin with a weir-sdk for ABI {ABI_VERSION} (`weir plugin build <folder>` with weir-sdk 0.2)"
    )]
    AbiMismatch { found: String },
    #[error(
        "the plugin imports something Weir does not provide ({0}); plugins may import only WASI and weir:plugin interfaces"
    )]
    Imports(String),
    #[error("the plugin failed while starting or describing itself: {0}")]
    Describe(String),
    #[error("plugin `{plugin}` has no function `{function}`; it has: {available}")]
    NoSuchFunction { plugin: String, function: String, available: String },
    #[error("`{plugin}.{function}` is a {actual} function, but this step needs a function of kind {expected}")]
    WrongKind { plugin: String, function: String, actual: String, expected: String },
    #[error("the plugin does not export the weir:plugin/{0} interface its function needs")]
    MissingInterface(&'static str),
    #[error("cannot instantiate the plugin: {0}")]
    Instantiate(String),
    #[error("cannot read or write the keyed state of a process function call: {0}")]
    State(String),
}

/// The engine, linker and cache shared by every plugin of a host.
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: cache::ComponentCache,
    ticker_stop: Arc<AtomicBool>,
}

impl PluginRuntime {
    /// A runtime caching compiled components under `cache_dir` (see [`default_cache_dir`]).
    pub fn new(cache_dir: PathBuf) -> Result<Arc<Self>, PluginError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.cranelift_opt_level(OptLevel::Speed);
        let engine = Engine::new(&config).map_err(|e| PluginError::Instantiate(e.to_string()))?;
        let linker = instance::linker(&engine).map_err(|e| PluginError::Instantiate(e.to_string()))?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.clone(), ticker_stop.clone());
        let cache = cache::ComponentCache::new(&engine, cache_dir);
        Ok(Arc::new(Self { engine, linker, cache, ticker_stop }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Load a plugin file: read, compile or fetch from the cache, check the ABI,
    /// pre-instantiate, and call `describe`.
    pub fn load(self: &Arc<Self>, path: &Path, limits: SandboxLimits) -> Result<Plugin, PluginError> {
        let read_err = |source| PluginError::Read { path: path.to_path_buf(), source };
        let size = std::fs::metadata(path).map_err(read_err)?.len();
        if size > MAX_COMPONENT_BYTES {
            return Err(PluginError::TooLarge { path: path.to_path_buf(), size });
        }
        let bytes = std::fs::read(path).map_err(read_err)?;
        self.load_bytes(&bytes, path, limits)
    }

    /// [`PluginRuntime::load`] on bytes already read; `origin` names them in logs.
    pub fn load_bytes(
        self: &Arc<Self>,
        bytes: &[u8],
        origin: &Path,
        limits: SandboxLimits,
    ) -> Result<Plugin, PluginError> {
        let started = Instant::now();
        if !bytes.starts_with(b"\0asm") {
            return Err(PluginError::Invalid("the file does not start with the `\\0asm` magic bytes".into()));
        }
        let hash = content_hash(bytes);
        let (component, outcome) = self
            .cache
            .load_or_compile(&self.engine, &hash, bytes)
            .map_err(|e| PluginError::Invalid(format!("{e:#}")))?;
        let exports = abi::check(&self.engine, &component)?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| PluginError::Imports(format!("{e:#}")))?;
        let indices = instance::Indices::new(&pre, &exports)?;
        let info = instance::describe(self, &pre, &indices, limits)?;
        tracing::info!(
            plugin = %info.name, version = %info.version, sdk = %info.sdk, file = %origin.display(),
            sha256 = %hash, cache = ?outcome, elapsed_ms = started.elapsed().as_millis() as u64,
            "plugin loaded"
        );
        Ok(Plugin {
            inner: Arc::new(PluginInner {
                runtime: self.clone(),
                path: origin.to_path_buf(),
                hash,
                cache_outcome: outcome,
                exports,
                pre,
                indices,
                info,
                limits,
            }),
        })
    }

    /// Keeps a deployed component's bytes by their hash (see
    /// [`cache::ComponentCache::keep_component`]).
    pub fn keep_component(&self, hash: &str, bytes: &[u8]) -> Option<PathBuf> {
        self.cache.keep_component(hash, bytes)
    }

    /// Directory of the compiled-component cache.
    pub fn cache_dir(&self) -> &Path {
        self.cache.dir()
    }
}

impl Drop for PluginRuntime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until `stop` is set: the clock behind
/// every plugin call's deadline.
fn spawn_epoch_ticker(engine: Engine, stop: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new().name("weir-epoch".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(EPOCH_TICK);
            engine.increment_epoch();
        }
    });
    if let Err(e) = spawned {
        // Without the ticker no call can time out; a loud error beats a silent hang later.
        tracing::error!(error = %e, "cannot start the epoch ticker thread: plugin time limits are off");
    }
}

/// A loaded plugin: compiled, checked and described. Cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    runtime: Arc<PluginRuntime>,
    path: PathBuf,
    hash: String,
    cache_outcome: CacheOutcome,
    exports: Exports,
    pre: InstancePre<HostState>,
    indices: instance::Indices,
    info: PluginInfo,
    limits: SandboxLimits,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Plugin({}@{} from {})", self.inner.info.name, self.inner.info.version, self.inner.path.display())
    }
}

impl Plugin {
    pub fn info(&self) -> &PluginInfo {
        &self.inner.info
    }

    /// `name@version`, as logs and dead-letter records name it.
    pub fn label(&self) -> String {
        format!("{}@{}", self.inner.info.name, self.inner.info.version)
    }

    pub fn sha256(&self) -> &str {
        &self.inner.hash
    }

    pub fn cache_outcome(&self) -> CacheOutcome {
        self.inner.cache_outcome
    }

    pub fn exports(&self) -> &Exports {
        &self.inner.exports
    }

    pub fn limits(&self) -> SandboxLimits {
        self.inner.limits
    }

    /// The runtime that loaded it (to load its next version with).
    pub fn runtime(&self) -> &Arc<PluginRuntime> {
        &self.inner.runtime
    }

    /// The function `name`, checked to be of one of the `expected` kinds.
    pub fn function(&self, name: &str, expected: &[FunctionKind]) -> Result<&FunctionInfo, PluginError> {
        let info = &self.inner.info;
        let f = info.functions.iter().find(|f| f.name == name).ok_or_else(|| PluginError::NoSuchFunction {
            plugin: info.name.clone(),
            function: name.to_string(),
            available: if info.functions.is_empty() {
                "no functions".into()
            } else {
                info.functions
                    .iter()
                    .map(|f| format!("{} ({})", f.name, kind_name(f.kind)))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })?;
        if !expected.contains(&f.kind) {
            return Err(PluginError::WrongKind {
                plugin: info.name.clone(),
                function: name.to_string(),
                actual: kind_name(f.kind).into(),
                expected: expected.iter().map(|k| kind_name(*k)).collect::<Vec<_>>().join(" or "),
            });
        }
        Ok(f)
    }

    /// A new transformer for function `name` (already checked with [`Plugin::function`]).
    pub fn transformer(&self, name: &str, expected: &[FunctionKind]) -> Result<Transformer, PluginError> {
        let f = self.function(name, expected)?.clone();
        if !self.inner.exports.transform {
            return Err(PluginError::MissingInterface("transform"));
        }
        Ok(Transformer::new(self.clone(), f))
    }

    /// A new processor for the process (or co-process) function `name`, whose state and
    /// timer calls go to `host`.
    pub fn processor(&self, name: &str, host: SharedProcessHost) -> Result<Processor, PluginError> {
        let f = self.function(name, &[FunctionKind::Process, FunctionKind::CoProcess])?.clone();
        if !self.inner.exports.process {
            return Err(PluginError::MissingInterface("process"));
        }
        Ok(Processor::new(self.clone(), f, host))
    }

    /// A new handle on the process-window function `name`.
    pub fn window_function(&self, name: &str) -> Result<WindowFunction, PluginError> {
        let f = self.function(name, &[FunctionKind::ProcessWindow])?.clone();
        if !self.inner.exports.process {
            return Err(PluginError::MissingInterface("process"));
        }
        Ok(WindowFunction::new(self.clone(), f))
    }

    /// A new aggregator for the UDAF `name` (a function of kind `aggregate`).
    pub fn aggregator(&self, name: &str) -> Result<Aggregator, PluginError> {
        let f = self.function(name, &[FunctionKind::Aggregate])?.clone();
        if !self.inner.exports.aggregate {
            return Err(PluginError::MissingInterface("aggregate"));
        }
        Ok(Aggregator::new(self.clone(), f))
    }
}

/// A function's signature as `weir plugin inspect` prints it, e.g.
/// `(line: string) -> list<string>`.
pub fn signature_text(signature: &Signature) -> String {
    let params: Vec<String> =
        signature.params.iter().map(|f| format!("{}: {}", f.name, value_type_text(&f.type_))).collect();
    format!("({}) -> {}", params.join(", "), value_type_text(&signature.result))
}

fn value_type_text(t: &ValueType) -> String {
    let scalar = match t.scalar {
        ScalarType::Any => "any",
        ScalarType::Bool => "bool",
        ScalarType::Int => "int",
        ScalarType::Float => "float",
        ScalarType::String => "string",
        ScalarType::Bytes => "bytes",
        ScalarType::Timestamp => "timestamp",
    };
    let one = if t.is_list { format!("list<{scalar}>") } else { scalar.to_string() };
    if t.nullable { format!("{one}?") } else { one }
}

/// A function kind as users write it in job files.
pub fn kind_name(kind: FunctionKind) -> &'static str {
    match kind {
        FunctionKind::Map => "map",
        FunctionKind::Filter => "filter",
        FunctionKind::FlatMap => "flat_map",
        FunctionKind::KeySelector => "key_selector",
        FunctionKind::TimestampAssigner => "timestamp_assigner",
        FunctionKind::Aggregate => "aggregate",
        FunctionKind::Process => "process",
        FunctionKind::CoProcess => "co_process",
        FunctionKind::ProcessWindow => "process_window",
    }
}
