//! Host bindings generated from the `weir:plugin` WIT package (`wit/` at the repository root).
//!
//! The host binds the `plugin` world, which includes every plugin kind, but links and loads
//! interfaces one by one: a component exports only the kinds it implements, and imports
//! only what it uses.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
});

pub use self::exports::weir::plugin::aggregate::GuestIndices as AggregateIndices;
pub use self::exports::weir::plugin::describe::GuestIndices as DescribeIndices;
pub use self::exports::weir::plugin::process::{
    GuestIndices as ProcessIndices, KeyState, ProcessOutput, StateOp, StateWrite, TimeDomain as WitTimeDomain,
    WindowBounds,
};
pub use self::exports::weir::plugin::transform::{GuestIndices as TransformIndices, TransformOutput};
pub use self::weir::plugin::types::{
    Batch as WitBatch, Field, FunctionInfo, FunctionKind, PluginInfo, RowEncoding, RowError, RowKind, ScalarType,
    Signature, StateDecl, StateKind, ValueType,
};
