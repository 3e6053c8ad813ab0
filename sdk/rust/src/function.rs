//! The function table: what a plugin holds and how the dispatcher reaches each function.
//!
//! The attribute macros (`#[weir::map]` and friends) turn a plain Rust function into a
//! [`Function`]: its name, its [`FunctionKind`] and a monomorphised *row invoker* that
//! decodes one MessagePack row, calls the user's function and writes the result. Holding
//! plain `fn` pointers keeps the table `const`-constructible, so `plugin!` can build it as a
//! `static` with no start-up work inside the component, and the hot loop makes one
//! indirect call per row with no boxing.

use crate::aggregate::AggregateFunction;
use crate::batch::RowWriter;
use crate::process::ProcessFunction;
use crate::signature::Signature;

/// The SDK string reported by `describe`, e.g. `weir-sdk-rust 0.1.0`.
pub const SDK: &str = concat!("weir-sdk-rust ", env!("CARGO_PKG_VERSION"));

/// What a function does with each row; mirrors the WIT `function-kind` of the transform
/// interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FunctionKind {
    /// One output row per input row (`#[weir::map]`).
    Map,
    /// The input row, kept or dropped (`#[weir::filter]`).
    Filter,
    /// Any number of output rows per input row (`#[weir::flat_map]`).
    FlatMap,
    /// One output row per input row: the record's key (`#[weir::key_selector]`).
    KeySelector,
    /// One output row per input row: the event time in ms as an `i64`
    /// (`#[weir::timestamp_assigner]`).
    TimestampAssigner,
}

impl FunctionKind {
    /// The WIT spelling, e.g. `flat-map` (for messages and logs).
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionKind::Map => "map",
            FunctionKind::Filter => "filter",
            FunctionKind::FlatMap => "flat-map",
            FunctionKind::KeySelector => "key-selector",
            FunctionKind::TimestampAssigner => "timestamp-assigner",
        }
    }
}

impl std::fmt::Display for FunctionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Runs one function on one input row, appending its output rows to the writer.
///
/// An `Err` is that row's error message; the dispatcher rolls back whatever the invoker
/// wrote for the row, so a half-written flat-map never leaks output.
pub type RowInvoker = fn(row: &[u8], out: &mut RowWriter) -> Result<(), String>;

/// One registered function of a plugin. Built by the attribute macros; you rarely touch it.
#[derive(Clone, Copy)]
pub struct Function {
    name: &'static str,
    kind: FunctionKind,
    invoke: RowInvoker,
    signature: Option<fn() -> Signature>,
}

impl Function {
    /// A function named `name` of kind `kind` whose rows go through `invoke`.
    pub const fn new(name: &'static str, kind: FunctionKind, invoke: RowInvoker) -> Self {
        Function { name, kind, invoke, signature: None }
    }

    /// The same function, describing its types with `signature` (the attribute macros derive
    /// it from the function's argument and return types).
    pub const fn with_signature(mut self, signature: fn() -> Signature) -> Self {
        self.signature = Some(signature);
        self
    }

    /// Its argument and result types, when known.
    pub fn signature(&self) -> Option<Signature> {
        self.signature.map(|f| f())
    }

    /// The name the host calls it by (the Rust function's name).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// What it does with each row.
    pub fn kind(&self) -> FunctionKind {
        self.kind
    }

    pub(crate) fn invoker(&self) -> RowInvoker {
        self.invoke
    }
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function").field("name", &self.name).field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// A plugin: its name, version, and tables of transform functions, aggregates (UDAFs) and
/// process functions. `weir::plugin!` defines one as the `static PLUGIN` of your crate; the
/// component export and [`crate::testing`]'s harnesses all serve it.
#[derive(Debug)]
pub struct Plugin {
    name: &'static str,
    version: &'static str,
    functions: &'static [Function],
    aggregates: &'static [AggregateFunction],
    processes: &'static [ProcessFunction],
}

impl Plugin {
    /// A plugin from its parts (what `weir::plugin!` expands to).
    pub const fn new(name: &'static str, version: &'static str, functions: &'static [Function]) -> Self {
        Plugin { name, version, functions, aggregates: &[], processes: &[] }
    }

    /// A plugin with UDAFs too (what `weir::plugin!` expands to when it lists `aggregates`).
    pub const fn with_aggregates(
        name: &'static str,
        version: &'static str,
        functions: &'static [Function],
        aggregates: &'static [AggregateFunction],
    ) -> Self {
        Plugin { name, version, functions, aggregates, processes: &[] }
    }

    /// The same plugin with process functions (what `weir::plugin!` expands to when it lists
    /// `processes`).
    pub const fn with_processes(mut self, processes: &'static [ProcessFunction]) -> Self {
        self.processes = processes;
        self
    }

    /// Every process function, in the order `plugin!` listed them.
    pub fn processes(&self) -> &'static [ProcessFunction] {
        self.processes
    }

    /// The process function called `name`, if the plugin has one.
    pub fn process(&self, name: &str) -> Option<&'static ProcessFunction> {
        self.processes.iter().find(|f| f.name() == name)
    }

    /// Every aggregate function, in the order `plugin!` listed them.
    pub fn aggregates(&self) -> &'static [AggregateFunction] {
        self.aggregates
    }

    /// The aggregate function called `name`, if the plugin has one.
    pub fn aggregate(&self, name: &str) -> Option<&'static AggregateFunction> {
        self.aggregates.iter().find(|f| f.name() == name)
    }

    /// Plugin name, e.g. `upper`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Plugin version (semver), e.g. `0.1.0`.
    pub fn version(&self) -> &'static str {
        self.version
    }

    /// Every function, in the order `plugin!` listed them.
    pub fn functions(&self) -> &'static [Function] {
        self.functions
    }

    /// The function called `name`, if the plugin has one.
    ///
    /// A linear scan: a plugin holds a handful of functions and the lookup happens once per
    /// batch, not per row.
    pub fn function(&self, name: &str) -> Option<&'static Function> {
        self.functions.iter().find(|f| f.name == name)
    }
}
