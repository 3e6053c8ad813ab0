//! The component export: wit-bindgen glue from the `plugin` world to the transform,
//! aggregate and process dispatchers, and the WIT imports as the process dispatcher's
//! [`ProcessHost`].
//!
//! Compiled only for `wasm32`, so a plugin crate builds and unit-tests natively without
//! wit-bindgen. The bindings are generated once, here, from the repository's `wit/` package;
//! `weir::plugin!` only names a type for them, which keeps the ABI in one place: a plugin
//! built with this SDK can never drift from the WIT the host links against.
//!
//! The guest traits are implemented once for [`Component<P>`], generic over the crate's
//! plugin table, because wit-bindgen's exports are static functions with no `self` to carry
//! the table.

use std::marker::PhantomData;

use crate::aggregate as udaf;
use crate::dispatch;
use crate::function::{FunctionKind, Plugin, SDK};
use crate::process::dispatch as keyed;
use crate::process::host::{Entries, ProcessHost};
use crate::process::{KeyState, ProcessKind, ProcessOutput, RowKind, StateDecl, StateKind, TimeDomain, Window};
use crate::signature::{Scalar, Signature, ValueType};
use bindings::exports::weir::plugin::{aggregate, describe, process, transform};
use bindings::weir::plugin::{broadcast, context, state, timers, types};

/// The wit-bindgen bindings of `weir:plugin/plugin`.
///
/// Every plugin built with this SDK exports `describe`, `transform`, `aggregate` and
/// `process`, whatever kinds of functions it has: the host calls a function through the
/// interface its `describe` kind names, and an interface with no functions behind it answers
/// "unknown function". One world rather than one per combination because wit-bindgen's
/// `pub_export_macro` exports its per-interface macros at the crate root, so two worlds
/// sharing `describe` cannot be generated in one crate. The world imports `context`, `state`,
/// `broadcast` and `timers` too; the host links them for every plugin and they answer with an
/// error outside a process function's calls.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__weir_export_plugin",
    });
}

/// Connects a crate's `static PLUGIN` to the export (implemented by `weir::plugin!`).
#[doc(hidden)]
pub trait Exported {
    fn plugin() -> &'static Plugin;
}

/// The type the component's exports are implemented on.
#[doc(hidden)]
pub struct Component<P>(PhantomData<P>);

fn wit_kind(kind: FunctionKind) -> types::FunctionKind {
    match kind {
        FunctionKind::Map => types::FunctionKind::Map,
        FunctionKind::Filter => types::FunctionKind::Filter,
        FunctionKind::FlatMap => types::FunctionKind::FlatMap,
        FunctionKind::KeySelector => types::FunctionKind::KeySelector,
        FunctionKind::TimestampAssigner => types::FunctionKind::TimestampAssigner,
    }
}

impl<P: Exported> describe::Guest for Component<P> {
    fn describe() -> types::PluginInfo {
        let plugin = P::plugin();
        let transforms = plugin.functions().iter().map(|f| types::FunctionInfo {
            name: f.name().to_string(),
            kind: wit_kind(f.kind()),
            encoding: types::RowEncoding::Msgpack,
            states: Vec::new(),
            signature: f.signature().map(wit_signature),
        });
        let aggregates = plugin.aggregates().iter().map(|f| types::FunctionInfo {
            name: f.name().to_string(),
            kind: types::FunctionKind::Aggregate,
            encoding: types::RowEncoding::Msgpack,
            states: Vec::new(),
            signature: None,
        });
        let processes = plugin.processes().iter().map(|f| types::FunctionInfo {
            name: f.name().to_string(),
            kind: match f.kind() {
                ProcessKind::Keyed => types::FunctionKind::Process,
                ProcessKind::Co => types::FunctionKind::CoProcess,
                ProcessKind::Window => types::FunctionKind::ProcessWindow,
            },
            encoding: types::RowEncoding::Msgpack,
            states: f.states().iter().map(wit_state).collect(),
            signature: Some(wit_signature(f.signature())),
        });
        types::PluginInfo {
            name: plugin.name().to_string(),
            version: plugin.version().to_string(),
            sdk: SDK.to_string(),
            functions: transforms.chain(aggregates).chain(processes).collect(),
        }
    }
}

fn wit_value_type(t: ValueType) -> types::ValueType {
    types::ValueType {
        scalar: match t.scalar {
            Scalar::Any => types::ScalarType::Any,
            Scalar::Bool => types::ScalarType::Bool,
            Scalar::Int => types::ScalarType::Int,
            Scalar::Float => types::ScalarType::Float,
            Scalar::String => types::ScalarType::String,
            Scalar::Bytes => types::ScalarType::Bytes,
            Scalar::Timestamp => types::ScalarType::Timestamp,
        },
        nullable: t.nullable,
        is_list: t.is_list,
    }
}

fn wit_signature(s: Signature) -> types::Signature {
    types::Signature {
        params: s.params.into_iter().map(|(name, t)| types::Field { name, type_: wit_value_type(t) }).collect(),
        result: wit_value_type(s.result),
    }
}

fn wit_state(decl: &StateDecl) -> types::StateDecl {
    types::StateDecl {
        name: decl.name().to_string(),
        kind: match decl.kind() {
            StateKind::Value => types::StateKind::Value,
            StateKind::List => types::StateKind::List,
            StateKind::Map => types::StateKind::Map,
            StateKind::BroadcastMap => types::StateKind::BroadcastMap,
        },
        value_type: decl.value_type(),
        ttl_ms: decl.ttl_ms(),
    }
}

impl<P: Exported> transform::Guest for Component<P> {
    fn apply(name: String, input: types::Batch) -> Result<transform::TransformOutput, String> {
        let output = dispatch::apply(P::plugin(), &name, &input.data, &input.offsets).map_err(|e| e.to_string())?;
        Ok(transform::TransformOutput {
            rows: types::Batch { data: output.data, offsets: output.offsets },
            counts: output.counts,
            errors: output.errors.into_iter().map(|e| types::RowError { index: e.index, message: e.message }).collect(),
        })
    }
}

impl<P: Exported> aggregate::Guest for Component<P> {
    fn create_accumulator(name: String) -> Result<Vec<u8>, String> {
        udaf::create_accumulator(P::plugin(), &name).map_err(|e| e.to_string())
    }

    fn add(name: String, accs: types::Batch, values: types::Batch, groups: Vec<u32>) -> Result<types::Batch, String> {
        udaf::add(P::plugin(), &name, (&accs.data, &accs.offsets), (&values.data, &values.offsets), &groups)
            .map(|(data, offsets)| types::Batch { data, offsets })
            .map_err(|e| e.to_string())
    }

    fn retract(
        name: String,
        accs: types::Batch,
        values: types::Batch,
        groups: Vec<u32>,
    ) -> Result<types::Batch, String> {
        udaf::retract(P::plugin(), &name, (&accs.data, &accs.offsets), (&values.data, &values.offsets), &groups)
            .map(|(data, offsets)| types::Batch { data, offsets })
            .map_err(|e| e.to_string())
    }

    fn merge(name: String, a: Vec<u8>, b: Vec<u8>) -> Result<Vec<u8>, String> {
        udaf::merge_accumulators(P::plugin(), &name, &a, &b).map_err(|e| e.to_string())
    }

    fn get_result(name: String, accumulator: Vec<u8>) -> Result<Vec<u8>, String> {
        udaf::get_result(P::plugin(), &name, &accumulator).map_err(|e| e.to_string())
    }
}

fn wit_process_output(out: ProcessOutput) -> process::ProcessOutput {
    process::ProcessOutput {
        rows: types::Batch { data: out.data, offsets: out.offsets },
        counts: out.counts,
        errors: out.errors.into_iter().map(|e| types::RowError { index: e.index, message: e.message }).collect(),
        kinds: out
            .kinds
            .into_iter()
            .map(|k| match k {
                RowKind::Insert => types::RowKind::Insert,
                RowKind::UpdateBefore => types::RowKind::UpdateBefore,
                RowKind::UpdateAfter => types::RowKind::UpdateAfter,
                RowKind::Delete => types::RowKind::Delete,
            })
            .collect(),
        side: out.side.into_iter().map(|(input, tag, row)| types::SideRow { tag, input, row }).collect(),
        state_writes: out
            .writes
            .into_iter()
            .map(|w| process::StateWrite {
                slot: w.slot,
                state: w.state,
                op: match w.value {
                    Some(v) => process::StateOp::Set(v),
                    None => process::StateOp::Clear,
                },
            })
            .collect(),
    }
}

fn key_state(state: process::KeyState) -> KeyState {
    KeyState { slots: state.slots, values: state.values }
}

impl<P: Exported> process::Guest for Component<P> {
    fn process_elements(
        name: String,
        input: u8,
        elements: types::Batch,
        keys: types::Batch,
        timestamps: Vec<i64>,
        state: process::KeyState,
    ) -> Result<process::ProcessOutput, String> {
        let elements = (elements.data.as_slice(), elements.offsets.as_slice());
        let keys = (keys.data.as_slice(), keys.offsets.as_slice());
        keyed::process_elements(P::plugin(), &WitHost, &name, input, elements, keys, &timestamps, key_state(state))
            .map(wit_process_output)
            .map_err(|e| e.to_string())
    }

    fn on_timers(
        name: String,
        keys: types::Batch,
        times: Vec<i64>,
        domains: Vec<process::TimeDomain>,
        state: process::KeyState,
    ) -> Result<process::ProcessOutput, String> {
        let domains: Vec<TimeDomain> = domains
            .into_iter()
            .map(|d| match d {
                process::TimeDomain::EventTime => TimeDomain::EventTime,
                process::TimeDomain::ProcessingTime => TimeDomain::ProcessingTime,
            })
            .collect();
        let keys = (keys.data.as_slice(), keys.offsets.as_slice());
        keyed::on_timers(P::plugin(), &WitHost, &name, keys, &times, &domains, key_state(state))
            .map(wit_process_output)
            .map_err(|e| e.to_string())
    }

    fn process_broadcast(
        name: String,
        elements: types::Batch,
        timestamps: Vec<i64>,
    ) -> Result<process::ProcessOutput, String> {
        let elements = (elements.data.as_slice(), elements.offsets.as_slice());
        keyed::process_broadcast(P::plugin(), &WitHost, &name, elements, &timestamps)
            .map(wit_process_output)
            .map_err(|e| e.to_string())
    }

    fn process_window(
        name: String,
        key: Vec<u8>,
        window: process::WindowBounds,
        elements: types::Batch,
        timestamps: Vec<i64>,
    ) -> Result<process::ProcessOutput, String> {
        let elements = (elements.data.as_slice(), elements.offsets.as_slice());
        let window = Window { start: window.start, end: window.end };
        keyed::process_window(P::plugin(), &name, &key, window, elements, &timestamps)
            .map(wit_process_output)
            .map_err(|e| e.to_string())
    }
}

const VALUE_STATE: &str = "value state travels with the call in ABI 0.2, not through imports (an SDK bug)";

/// The WIT imports, as the process dispatcher reaches them.
struct WitHost;

impl ProcessHost for WitHost {
    fn select(&self, index: u32) {
        context::select(index);
    }

    // Value state travels with the call (`Batched` serves it); these are never reached.
    fn value_get(&self, _: &str) -> Result<Option<Vec<u8>>, String> {
        Err(VALUE_STATE.into())
    }
    fn value_set(&self, _: &str, _: &[u8]) -> Result<(), String> {
        Err(VALUE_STATE.into())
    }
    fn value_clear(&self, _: &str) -> Result<(), String> {
        Err(VALUE_STATE.into())
    }

    fn list_get(&self, name: &str) -> Result<Vec<Vec<u8>>, String> {
        state::list_get(name)
    }
    fn list_append(&self, name: &str, value: &[u8]) -> Result<(), String> {
        state::list_append(name, value)
    }
    fn list_clear(&self, name: &str) -> Result<(), String> {
        state::list_clear(name)
    }

    fn map_get(&self, name: &str, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        state::map_get(name, key)
    }
    fn map_put(&self, name: &str, key: &[u8], value: &[u8]) -> Result<(), String> {
        state::map_put(name, key, value)
    }
    fn map_remove(&self, name: &str, key: &[u8]) -> Result<(), String> {
        state::map_remove(name, key)
    }
    fn map_contains(&self, name: &str, key: &[u8]) -> Result<bool, String> {
        state::map_contains(name, key)
    }
    fn map_entries(&self, name: &str) -> Result<Entries, String> {
        state::map_entries(name)
    }

    fn broadcast_get(&self, name: &str, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        broadcast::get(name, key)
    }
    fn broadcast_put(&self, name: &str, key: &[u8], value: &[u8]) -> Result<(), String> {
        broadcast::put(name, key, value)
    }
    fn broadcast_remove(&self, name: &str, key: &[u8]) -> Result<(), String> {
        broadcast::remove(name, key)
    }
    fn broadcast_entries(&self, name: &str) -> Result<Entries, String> {
        broadcast::entries(name)
    }

    fn current_watermark(&self) -> Option<i64> {
        timers::current_watermark()
    }
    fn current_processing_time(&self) -> i64 {
        timers::current_processing_time()
    }
    fn register_timer(&self, domain: TimeDomain, at_ms: i64) {
        match domain {
            TimeDomain::EventTime => timers::register_event_time(at_ms),
            TimeDomain::ProcessingTime => timers::register_processing_time(at_ms),
        }
    }
    fn delete_timer(&self, domain: TimeDomain, at_ms: i64) {
        match domain {
            TimeDomain::EventTime => timers::delete_event_time(at_ms),
            TimeDomain::ProcessingTime => timers::delete_processing_time(at_ms),
        }
    }
}
