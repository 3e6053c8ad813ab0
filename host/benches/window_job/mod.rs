//! What the benches that run the keyed window job through the CLI share (`windows.rs`,
//! `checkpoints.rs`): the job file, the `weir` binary next to the bench, and running
//! `weir run JOB --summary` and reading its summary line.
//!
//! Each includes it with `mod window_job;` after `mod common;` (a folder, so that cargo does
//! not take it for a bench of its own).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{BenchResult, run_measured};

/// Keys the events are drawn from.
pub const KEYS: u64 = 100_000;
/// Event time advances 1 ms per event, so a window of this many ms holds this many events.
pub const EVENTS_PER_WINDOW: u64 = 1_000_000;
pub const OUT_OF_ORDERNESS_MS: u64 = 500;
pub const SEED: u64 = 2026;

/// The keyed window job: datagen (`events` events, a key drawn from `keys`, event time 1 ms
/// per event and up to 500 ms out of order) -> key_by key -> `window_ms` tumbling windows
/// -> `aggregate` -> `sink`; with no `aggregate`, datagen -> `sink`. `head` (plugins,
/// checkpoints) goes before the source.
pub fn job_yaml(
    name: &str,
    head: &str,
    aggregate: Option<&str>,
    events: u64,
    keys: u64,
    window_ms: u64,
    sink: &str,
) -> String {
    let pipeline = match aggregate {
        None => String::new(),
        Some(aggregate) => format!(
            "pipeline:\n  - assign_timestamps: {{field: ts, max_out_of_orderness: {OUT_OF_ORDERNESS_MS} ms}}\n  - key_by: key\n  - window: {{tumbling: {window_ms} ms, aggregate: {aggregate}}}\n"
        ),
    };
    format!(
        "name: {name}\n{head}source:\n  connector: datagen\n  number-of-rows: {events}\n  seed: {SEED}\n  fields:\n    key: {{kind: random, min: 0, max: {max_key}}}\n    ts: {{kind: event-time, start: 0, step: 1 ms, max-out-of-orderness: {OUT_OF_ORDERNESS_MS} ms}}\n{pipeline}sink:\n{sink}",
        max_key = keys - 1,
    )
}

/// A path as a single-quoted YAML string.
pub fn yaml_path(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}

/// What one `weir run --summary` did.
pub struct Run {
    pub records_in: u64,
    pub records_out: u64,
    pub dead_letters: u64,
    pub late: u64,
    pub job_ms: f64,
    pub process_ms: f64,
    pub peak_rss_kib: u64,
}

/// Run `weir run job --summary` in its own process (peak RSS by `wait4`).
pub fn run_weir(weir: &Path, job: &Path) -> BenchResult<Run> {
    let mut command = Command::new(weir);
    command.arg("run").arg(job).arg("--summary").env_remove("WEIR_LOG");
    let done = run_measured(&mut command)?;
    parse_summary(&done.stderr, done.process_ms, done.peak_rss_kib)
        .map_err(|e| format!("{e}\nstdout of weir:\n{}", done.stdout).into())
}

/// `job `x` finished: 10 records in, 3 out, 0 dead letters, 0 late, 12.3 ms (backpressure 0.0 ms)`.
fn parse_summary(stderr: &str, process_ms: f64, peak_rss_kib: u64) -> BenchResult<Run> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("job `") && l.contains(" finished: "))
        .ok_or_else(|| format!("no summary line from weir:\n{stderr}"))?;
    let after = line.split(" finished: ").nth(1).unwrap_or_default();
    let mut counters = BTreeMap::new();
    for part in after.split(", ") {
        if let Some((n, what)) = part.split_once(' ') {
            counters.insert(what.split(" (").next().unwrap_or(what).to_string(), n.parse::<f64>().unwrap_or(f64::NAN));
        }
    }
    let get = |what: &str| counters.get(what).copied().ok_or_else(|| format!("no `{what}` in: {line}"));
    Ok(Run {
        records_in: get("records in")? as u64,
        records_out: get("out")? as u64,
        dead_letters: get("dead letters")? as u64,
        late: get("late")? as u64,
        job_ms: get("ms")?,
        process_ms,
        peak_rss_kib,
    })
}

/// The `weir` CLI next to this bench (target/release/deps/<bench>-* -> target/release/weir).
pub fn weir_binary() -> BenchResult<PathBuf> {
    let exe = std::env::current_exe()?;
    let beside = exe.parent().and_then(Path::parent).map(|d| d.join("weir"));
    beside.into_iter().chain(option_env!("CARGO_BIN_EXE_weir").map(PathBuf::from)).find(|p| p.is_file()).ok_or_else(
        || "the weir CLI is not built next to this bench: run `cargo build --release --workspace --all-targets`".into(),
    )
}
