//! The component export: wit-bindgen glue from the `transform-plugin` world to the dispatcher.
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

use crate::dispatch;
use crate::function::{FunctionKind, Plugin, SDK};

/// The wit-bindgen bindings of `weir:plugin/transform-plugin`.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "transform-plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__weir_export_transform_plugin",
    });
}

use bindings::exports::weir::plugin::{describe, transform};
use bindings::weir::plugin::types;

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
        types::PluginInfo {
            name: plugin.name().to_string(),
            version: plugin.version().to_string(),
            sdk: SDK.to_string(),
            functions: plugin
                .functions()
                .iter()
                .map(|f| types::FunctionInfo {
                    name: f.name().to_string(),
                    kind: wit_kind(f.kind()),
                    encoding: types::RowEncoding::Msgpack,
                })
                .collect(),
        }
    }
}

impl<P: Exported> transform::Guest for Component<P> {
    fn apply(
        name: String,
        input: types::Batch,
    ) -> Result<transform::TransformOutput, String> {
        let output = dispatch::apply(P::plugin(), &name, &input.data, &input.offsets)
            .map_err(|e| e.to_string())?;
        Ok(transform::TransformOutput {
            rows: types::Batch { data: output.data, offsets: output.offsets },
            counts: output.counts,
            errors: output
                .errors
                .into_iter()
                .map(|e| types::RowError { index: e.index, message: e.message })
                .collect(),
        })
    }
}
