//! One plugin instance: a `Store` with its sandbox, and the exports the host calls.
//!
//! An instance that trapped (a panic, a timeout, the memory cap) must not be entered again:
//! its state may be half-updated. The owner drops it and builds a new one from the
//! [`InstancePre`], which for a pre-initialized component is a memory copy, not a restart.

use wasmtime::component::{HasSelf, InstancePre, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{self, AggregateIndices, DescribeIndices, PluginInfo, ProcessIndices, TransformIndices};
use super::limits::{MemoryLimiter, SandboxLimits};
use super::process::{ProcessImports, SharedProcessHost};
use super::stderr::StderrTail;
use super::{Exports, PluginError, PluginRuntime};

/// What a plugin's store holds.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    stderr: StderrTail,
    /// `name@version` of the plugin, for its log lines.
    pub(super) label: String,
    /// Where the process imports (state, timers) go.
    pub(super) process: ProcessImports,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl bindings::weir::plugin::log::Host for HostState {
    fn log(&mut self, level: bindings::weir::plugin::log::Level, message: String) {
        use bindings::weir::plugin::log::Level;
        let plugin = self.label.as_str();
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

/// The linker every plugin is instantiated with: WASI with an empty context (the guest
/// toolchains import it even for pure functions), the `log` interface, and the process
/// imports (`context`, `state`, `broadcast`, `timers`), which answer with an error outside a
/// process function's calls.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    use bindings::weir::plugin::{broadcast, context, log, state, timers};
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    log::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    context::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    state::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    broadcast::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    timers::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// Export lookups resolved once per plugin, before any instance exists.
#[derive(Clone)]
pub struct Indices {
    describe: DescribeIndices,
    transform: Option<TransformIndices>,
    aggregate: Option<AggregateIndices>,
    process: Option<ProcessIndices>,
}

impl Indices {
    pub fn new(pre: &InstancePre<HostState>, exports: &Exports) -> Result<Self, PluginError> {
        let bad =
            |e: wasmtime::Error| PluginError::Invalid(format!("its exports do not match the weir:plugin ABI: {e:#}"));
        Ok(Self {
            describe: DescribeIndices::new(pre).map_err(bad)?,
            transform: if exports.transform { Some(TransformIndices::new(pre).map_err(bad)?) } else { None },
            aggregate: if exports.aggregate { Some(AggregateIndices::new(pre).map_err(bad)?) } else { None },
            process: if exports.process { Some(ProcessIndices::new(pre).map_err(bad)?) } else { None },
        })
    }
}

/// A live instance with the exports the host calls.
pub struct Instance {
    pub store: Store<HostState>,
    describe: bindings::exports::weir::plugin::describe::Guest,
    pub transform: Option<bindings::exports::weir::plugin::transform::Guest>,
    pub aggregate: Option<bindings::exports::weir::plugin::aggregate::Guest>,
    pub process: Option<bindings::exports::weir::plugin::process::Guest>,
}

impl Instance {
    pub fn new(
        runtime: &PluginRuntime,
        pre: &InstancePre<HostState>,
        indices: &Indices,
        limits: SandboxLimits,
        label: &str,
        process_host: Option<SharedProcessHost>,
    ) -> Result<Self, PluginError> {
        let stderr = StderrTail::default();
        let state = HostState {
            wasi: WasiCtx::builder().stderr(stderr.clone()).build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits.memory_bytes),
            stderr,
            label: label.to_string(),
            process: ProcessImports { host: process_host, positions: Vec::new() },
        };
        let mut store = Store::new(runtime.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(limits.deadline_ticks());
        let fail = |e: wasmtime::Error| PluginError::Instantiate(format!("{e:#}"));
        let instance = pre.instantiate(&mut store).map_err(fail)?;
        let describe = indices.describe.load(&mut store, &instance).map_err(fail)?;
        let transform = match &indices.transform {
            Some(t) => Some(t.load(&mut store, &instance).map_err(fail)?),
            None => None,
        };
        let aggregate = match &indices.aggregate {
            Some(a) => Some(a.load(&mut store, &instance).map_err(fail)?),
            None => None,
        };
        let process = match &indices.process {
            Some(p) => Some(p.load(&mut store, &instance).map_err(fail)?),
            None => None,
        };
        Ok(Self { store, describe, transform, aggregate, process })
    }

    /// What the plugin wrote to stderr since the last call of this.
    pub fn take_stderr(&self) -> String {
        self.store.data().stderr.take()
    }

    /// Bytes of linear memory the instance holds.
    pub fn memory_in_use(&self) -> usize {
        self.store.data().limiter.memory_in_use()
    }

    pub fn describe(&mut self) -> wasmtime::Result<PluginInfo> {
        self.describe.call_describe(&mut self.store)
    }
}

/// Instantiate once and ask the plugin what it is.
pub fn describe(
    runtime: &PluginRuntime,
    pre: &InstancePre<HostState>,
    indices: &Indices,
    limits: SandboxLimits,
) -> Result<PluginInfo, PluginError> {
    let mut instance = Instance::new(runtime, pre, indices, limits, "describe", None)?;
    let info = instance.describe().map_err(|e| PluginError::Describe(format!("{e:#}")))?;
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = info.functions.iter().find(|f| !seen.insert(f.name.as_str())) {
        return Err(PluginError::Describe(format!("it lists the function `{}` twice", dup.name)));
    }
    Ok(info)
}
