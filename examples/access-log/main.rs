//! The access-log p95 job (`p95.yaml`) written with the builder API, which mirrors Flink's
//! DataStream API: parse with a Wasm UDF, event time from `ts`, key by URL, a 5-minute
//! window sliding by 1 minute aggregated by the `p95` Wasm UDAF on `latency_ms`.
//!
//!     cargo run --release -p weir --example access_log
//!
//! (after `just plugins`, which builds the plugins it loads).

use std::path::Path;
use std::time::Duration;

use weir::env::StreamEnvironment;
use weir::window::WindowAssigner;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let env = StreamEnvironment::new();
    env.set_batch_size(1); // one line per batch: the watermark advances line by line
    let access_log = env.load_plugin(repo.join("plugins/access-log-rust/access-log-rust.wasm"))?;
    let stats = env.load_plugin(repo.join("plugins/stats-rust/stats-rust.wasm"))?;
    let minute = Duration::from_secs(60).as_millis() as i64;
    env.read_text_file(repo.join("examples/access-log/access.log"))
        .map(access_log.function("parse"))
        .assign_timestamps("ts", Duration::from_secs(30))
        .key_by("url")
        .window(WindowAssigner::sliding(5 * minute, minute, 0)?)
        .aggregate_with(stats.function("p95"), Some("latency_ms"))
        .print();
    env.execute("Access log p95 latency")?;
    Ok(())
}
