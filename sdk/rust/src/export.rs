//! The component export: wit-bindgen glue from the `transform-aggregate-plugin` world to the
//! transform and aggregate dispatchers.
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
use bindings::exports::weir::plugin::{aggregate, describe, transform};
use bindings::weir::plugin::types;

/// The wit-bindgen bindings of `weir:plugin/transform-aggregate-plugin`.
///
/// Every plugin built with this SDK exports `describe`, `transform` and `aggregate`, whether
/// it has functions of both kinds or not: the host calls a function through the interface
/// its `describe` kind names, and an interface with no functions behind it answers "unknown
/// function". One world rather than one per combination because wit-bindgen's
/// `pub_export_macro` exports its per-interface macros at the crate root, so two worlds
/// sharing `describe` cannot be generated in one crate. (The `plugin` world would also import
/// `state` and `timers`, which only process functions need and the host does not link.)
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "transform-aggregate-plugin",
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
        });
        let aggregates = plugin.aggregates().iter().map(|f| types::FunctionInfo {
            name: f.name().to_string(),
            kind: types::FunctionKind::Aggregate,
            encoding: types::RowEncoding::Msgpack,
        });
        types::PluginInfo {
            name: plugin.name().to_string(),
            version: plugin.version().to_string(),
            sdk: SDK.to_string(),
            functions: transforms.chain(aggregates).collect(),
        }
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
