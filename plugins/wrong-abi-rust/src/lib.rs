//! A component for the previous ABI, `weir:plugin@0.1.0` (what weir-sdk 0.1 built): the
//! host, which speaks 0.2.0, must reject it with a message naming both versions and the fix
//! instead of failing somewhere deeper.
//!
//! It exports the same interfaces as a real plugin (an identity map named `identity`), so
//! the only thing wrong with it is the version.
//!
//! Only meaningful as a component: on other targets the crate is empty (its exports' names
//! are not valid native symbol names).
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({
    world: "transform-plugin",
    path: "wit",
});

use exports::weir::plugin::describe;
use exports::weir::plugin::transform;
use weir::plugin::types;

struct WrongAbi;

impl describe::Guest for WrongAbi {
    fn describe() -> types::PluginInfo {
        types::PluginInfo {
            name: "wrong-abi".into(),
            version: "9.0.0".into(),
            sdk: "wrong-abi-rust 0.1.0".into(),
            functions: vec![types::FunctionInfo {
                name: "identity".into(),
                kind: types::FunctionKind::Map,
                encoding: types::RowEncoding::Msgpack,
            }],
        }
    }
}

impl transform::Guest for WrongAbi {
    fn apply(name: String, input: types::Batch) -> Result<transform::TransformOutput, String> {
        if name != "identity" {
            return Err(format!("no function `{name}`"));
        }
        let counts = vec![1; input.offsets.len().saturating_sub(1)];
        Ok(transform::TransformOutput { rows: input, counts, errors: Vec::new() })
    }
}

export!(WrongAbi);
