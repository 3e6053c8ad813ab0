//! The first program with Weir's builder API, which mirrors Flink's DataStream API:
//!
//!     cargo run --release -p weir --example first_program
//!
//! (after `just plugins`, which builds the plugin it loads).

use std::path::Path;

use weir::env::StreamEnvironment;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let env = StreamEnvironment::new();
    let upper = env.load_plugin(repo.join("plugins/upper-rust/upper-rust.wasm"))?;
    env.from_elements(["Hello", "World", "PyFlink", "Stream", "Processing"]).map(upper.function("upper")).print();
    env.execute("First Program")?;
    Ok(())
}
