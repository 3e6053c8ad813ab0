//! The access-log job (`job.yaml`) written with the builder API, which mirrors Flink's
//! DataStream API: parse with a Wasm UDF and take event time from `ts` once, then read that
//! stream twice (a `DataStream` used twice feeds both, as in Flink): requests per URL per
//! minute, printed, and the 95th percentile latency per URL over 5 minutes sliding by 1,
//! from the `p95` Wasm UDAF on `latency_ms`, written to a file.
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
    let requests = env
        .read_text_file(repo.join("examples/access-log/access.log"))
        .map(access_log.function("parse"))
        .assign_timestamps("ts", Duration::from_secs(30));
    requests.clone().key_by("url").window(WindowAssigner::tumbling(minute, 0)?).count().print();
    requests
        .key_by("url")
        .window(WindowAssigner::sliding(5 * minute, minute, 0)?)
        .aggregate_with(stats.function("p95"), Some("latency_ms"))
        .write_to_file(repo.join("examples/access-log/out/p95.jsonl"), weir::connectors::LineFormat::Json);
    env.execute("Access log")?;
    Ok(())
}
