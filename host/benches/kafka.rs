//! The Kafka benchmark (issue 8): Kafka -> Wasm map -> Kafka throughput against librdkafka's
//! mock cluster (the real protocol over loopback, in this process), with at-least-once and
//! with exactly-once delivery. One JSON document on stdout, progress on stderr.
//!
//!     cargo bench --workspace --bench kafka        (or `just bench`)
//!     WEIR_BENCH_EVENTS=2000000 cargo bench --workspace --bench kafka
//!
//! Input: `WEIR_BENCH_EVENTS` access-log lines (default 1 M) in an 8-partition topic. The
//! job: kafka source (text, bounded at the end offsets) -> `access_log.parse`
//! (plugins/access-log-rust, Wasm) -> kafka sink (JSON, key = url) into an 8-partition
//! topic (lz4); exactly-once adds checkpoints every second and one transaction per checkpoint.
//! Reported per mode: records/s over the job's run time (from `weir run --summary`), that
//! time, the process's wall time and peak RSS. Checked (non-zero exit otherwise): every
//! line comes out, none as a dead letter, and the output topic holds exactly the events
//! (exactly-once: as committed, read through the sink's commit markers).
//!
//! Needs the plugins built: `just plugins` (or `weir plugin build plugins/access-log-rust`).

mod common;
#[allow(dead_code)] // the window job's builders are for the other benches
mod window_job;

use std::path::Path;

use common::{BenchResult, env_count, round};
use serde_json::json;
use weir::connectors::kafka::DEFAULT_COMMIT_TOPIC;
use weir::connectors::kafka::dev::{DevCluster, committed_records};
use window_job::{run_weir, weir_binary, yaml_path};

/// librdkafka's mock keeps 5 MiB of (lz4-compressed) batches per partition.
const PARTITIONS: i32 = 8;
const URLS: u64 = 50;

fn line(i: u64) -> String {
    let (m, s) = ((i / 60) % 60, i % 60);
    format!(
        "10.0.{}.{} - - [25/Nov/2026:10:{m:02}:{s:02} +0000] \"GET /page/{} HTTP/1.1\" 200 {} \"-\" \"bench/1.0\" 0.0{}",
        (i / 250) % 250,
        i % 250,
        i % URLS,
        500 + i % 1000,
        i % 90 + 10
    )
}

fn job(dir: &Path, name: &str, bootstrap: &str, out: &str, exactly_once: bool) -> BenchResult<std::path::PathBuf> {
    let plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/access-log-rust/access-log-rust.wasm");
    if !plugin.is_file() {
        return Err(format!("{} is not built: run `just plugins`", plugin.display()).into());
    }
    let (checkpoints, delivery) = if exactly_once {
        (format!("checkpoints: {{interval: 1 s, dir: {}}}\n", yaml_path(&dir.join(name))), "exactly-once")
    } else {
        (String::new(), "at-least-once")
    };
    let text = format!(
        "name: {name}\nplugins:\n  access_log: {plugin}\n{checkpoints}source:\n  connector: kafka\n  topic: lines\n  \
         properties.bootstrap.servers: {bootstrap}\n  scan.bounded.mode: latest-offset\n  format: text\n\
         pipeline:\n  - map: access_log.parse\n\
         sink:\n  connector: kafka\n  topic: {out}\n  properties.bootstrap.servers: {bootstrap}\n  key.field: url\n  \
         sink.delivery-guarantee: {delivery}\n  properties.linger.ms: 20\n  properties.compression.type: lz4\n",
        plugin = yaml_path(&plugin),
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

fn main() -> BenchResult<()> {
    let events = env_count("WEIR_BENCH_EVENTS", 1_000_000)?;
    let weir = weir_binary()?;
    let cluster = DevCluster::start(1)?;
    cluster.create_topic("lines", PARTITIONS)?;
    eprintln!("producing {events} access-log lines into the mock cluster");
    let lines: Vec<String> = (0..events).map(line).collect();
    for (chunk_index, chunk) in lines.chunks(100_000).enumerate() {
        let base = chunk_index * 100_000;
        let messages: Vec<_> =
            chunk.iter().enumerate().map(|(i, l)| ((base + i) as i32 % PARTITIONS, None, l.as_bytes(), None)).collect();
        cluster.produce("lines", &messages)?;
    }
    drop(lines);
    let dir = tempfile::tempdir()?;
    let mut figures = serde_json::Map::new();
    for (mode, exactly_once) in [("at_least_once", false), ("exactly_once", true)] {
        let out = format!("out-{mode}");
        cluster.create_topic(&out, PARTITIONS)?;
        let name = format!("kafka-bench-{mode}");
        let job = job(dir.path(), &name, cluster.bootstrap(), &out, exactly_once)?;
        eprintln!("running {mode}");
        let run = run_weir(&weir, &job)?;
        if run.records_in != events || run.records_out != events || run.dead_letters != 0 {
            return Err(format!(
                "{mode}: {} in, {} out, {} dead letters (expected {events} in and out)",
                run.records_in, run.records_out, run.dead_letters
            )
            .into());
        }
        let written = if exactly_once {
            committed_records(cluster.bootstrap(), &out, DEFAULT_COMMIT_TOPIC, &format!("weir-{name}"))?.len()
        } else {
            cluster.fetch_all(&out)?.len()
        };
        if written as u64 != events {
            return Err(format!("{mode}: the output topic holds {written} records, expected {events}").into());
        }
        figures.insert(
            mode.to_string(),
            json!({
                "records_per_s": round(events as f64 / (run.job_ms / 1e3), 0),
                "job_ms": round(run.job_ms, 1),
                "process_ms": round(run.process_ms, 1),
                "peak_rss_mib": round(run.peak_rss_kib as f64 / 1024.0, 1),
            }),
        );
    }
    let doc = json!({
        "bench": "kafka",
        "events": events,
        "pipeline": "kafka (text, 8 partitions) -> map access_log.parse (Wasm) -> kafka (json, key url, lz4, 8 partitions)",
        "cluster": "librdkafka mock cluster, 1 broker, in the bench process",
        "modes": figures,
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
