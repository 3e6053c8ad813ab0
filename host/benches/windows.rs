//! The window benchmark: a keyed tumbling-window count over generated events, with the
//! count built in, as a Rust UDAF and as a Python UDAF. One JSON object per variant on
//! stdout (one line each), progress on stderr.
//!
//!     cargo bench --workspace --bench windows
//!     WEIR_BENCH_EVENTS=1000000 cargo bench --workspace --bench windows
//!
//! Each variant is `weir run JOB --summary` in its own process, as a user runs it, on a job
//! file with the `datagen` source: `WEIR_BENCH_EVENTS` events (default 10 M; the Python
//! variant takes `WEIR_BENCH_PYTHON_EVENTS`, default the same) with a key drawn from 100 k,
//! event time 1 ms per event and up to 500 ms out of order (the watermark allows for it, so
//! no event is late) -> key_by key -> 1,000 s tumbling windows (1 M events, 10 per key,
//! per window) -> count -> blackhole. Measured per variant:
//!
//! - `events_per_s`: events in / the job's own time from the summary line (plugin loading
//!   and process start excluded; `process_ms` includes them, with a warm component cache);
//! - `peak_rss_mib`: the child's peak resident memory (`wait4`'s `ru_maxrss`, exact, not
//!   sampled);
//! - `vs_builtin`: events/s relative to the built-in count, the native baseline.
//!
//! `datagen_only` (source -> blackhole) says how much of the time is generating events.
//!
//! Before the timed runs, each variant runs once on a small input with a file sink and its
//! per-key, per-window counts are compared with counts this bench works out from the
//! generated rows themselves: a fast wrong answer fails the benchmark (non-zero exit).
//!
//! Needs the CLI and the stats plugins built: `just plugins` (or `cargo build --release
//! --workspace --all-targets` and `weir plugin build plugins/stats-rust` and
//! `plugins/stats-python`).

mod common;
mod window_job;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{BenchResult, env_count, round};
use serde_json::{Value, json};
use window_job::{EVENTS_PER_WINDOW, KEYS, run_weir, weir_binary, yaml_path};

const DEFAULT_EVENTS: u64 = 10_000_000;

/// The correctness run: small enough to check in a second, with several events per key
/// and window and windows that end mid-input.
const CHECK_EVENTS: u64 = 100_000;
const CHECK_KEYS: u64 = 1_000;
const CHECK_WINDOW_MS: u64 = 7_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    DatagenOnly,
    Builtin,
    RustUdaf,
    PythonUdaf,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::DatagenOnly => "datagen_only",
            Variant::Builtin => "builtin_count",
            Variant::RustUdaf => "rust_udaf",
            Variant::PythonUdaf => "python_udaf",
        }
    }

    fn aggregate(self) -> &'static str {
        match self {
            Variant::DatagenOnly => "none (datagen -> blackhole)",
            Variant::Builtin => "count (built in)",
            Variant::RustUdaf => "stats.count (Rust UDAF, plugins/stats-rust)",
            Variant::PythonUdaf => "stats.count (Python UDAF, plugins/stats-python)",
        }
    }

    fn plugin(self) -> Option<&'static str> {
        match self {
            Variant::RustUdaf => Some("stats-rust"),
            Variant::PythonUdaf => Some("stats-python"),
            _ => None,
        }
    }
}

/// The job file of `variant` over `events` events of `keys` keys in windows of `window_ms`.
fn job_yaml(repo: &Path, variant: Variant, events: u64, keys: u64, window_ms: u64, sink: &str) -> String {
    let plugins = match variant.plugin() {
        Some(dir) => {
            format!("plugins:\n  stats: {}\n", yaml_path(&repo.join("plugins").join(dir).join(format!("{dir}.wasm"))))
        }
        None => String::new(),
    };
    let aggregate = match variant {
        Variant::DatagenOnly => None,
        Variant::Builtin => Some("count"),
        _ => Some("stats.count"),
    };
    let name = format!("window bench {}", variant.name());
    window_job::job_yaml(&name, &plugins, aggregate, events, keys, window_ms, sink)
}

/// Per (key, window start) counts in a JSON-lines file of window results (`count` is the
/// field of the built-in and of `stats.count` alike).
fn window_counts(path: &Path) -> BenchResult<BTreeMap<(i64, i64), u64>> {
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(path)?.lines() {
        let w: Value = serde_json::from_str(line)?;
        let field = |f: &str| w[f].as_i64().ok_or_else(|| format!("no integer `{f}` in {line}"));
        let count = w["count"].as_u64().ok_or_else(|| format!("no count in {line}"))?;
        if counts.insert((field("key")?, field("window_start")?), count).is_some() {
            return Err(format!("a window fired twice: {line}").into());
        }
    }
    Ok(counts)
}

/// Run every variant on a small input and compare its windows with counts worked out here
/// from the generated rows.
fn check(weir: &Path, repo: &Path, dir: &Path, variants: &[Variant]) -> BenchResult<usize> {
    let file_sink = |name: &str| format!("  connector: file\n  path: {name}\n  format: json\n");
    let rows_job = dir.join("check-rows.yaml");
    let yaml =
        job_yaml(repo, Variant::DatagenOnly, CHECK_EVENTS, CHECK_KEYS, CHECK_WINDOW_MS, &file_sink("rows.jsonl"));
    std::fs::write(&rows_job, yaml)?;
    run_weir(weir, &rows_job)?;
    let mut expected: BTreeMap<(i64, i64), u64> = BTreeMap::new();
    for line in std::fs::read_to_string(dir.join("rows.jsonl"))?.lines() {
        let row: Value = serde_json::from_str(line)?;
        let (key, ts) = (row["key"].as_i64(), row["ts"].as_i64());
        let (Some(key), Some(ts)) = (key, ts) else { return Err(format!("not a generated row: {line}").into()) };
        *expected.entry((key, ts - ts.rem_euclid(CHECK_WINDOW_MS as i64))).or_default() += 1;
    }
    if expected.values().sum::<u64>() != CHECK_EVENTS {
        return Err(format!("the check input has {} rows, not {CHECK_EVENTS}", expected.values().sum::<u64>()).into());
    }
    for &variant in variants.iter().filter(|v| **v != Variant::DatagenOnly) {
        let out = format!("check-{}.jsonl", variant.name());
        let job = dir.join(format!("check-{}.yaml", variant.name()));
        std::fs::write(&job, job_yaml(repo, variant, CHECK_EVENTS, CHECK_KEYS, CHECK_WINDOW_MS, &file_sink(&out)))?;
        let run = run_weir(weir, &job)?;
        let got = window_counts(&dir.join(&out))?;
        if got != expected || run.late != 0 || run.dead_letters != 0 {
            let differ = expected.iter().filter(|(k, v)| got.get(k) != Some(v)).count();
            return Err(format!(
                "{}: wrong windows ({} expected, {} got, {differ} differ; {} late, {} dead letters)",
                variant.name(),
                expected.len(),
                got.len(),
                run.late,
                run.dead_letters
            )
            .into());
        }
        eprintln!("  {}: {} windows, as worked out from the rows", variant.name(), got.len());
    }
    Ok(expected.len())
}

fn main() -> BenchResult<()> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize()?;
    let weir = weir_binary()?;
    let events = env_count("WEIR_BENCH_EVENTS", DEFAULT_EVENTS)?;
    let python_events = env_count("WEIR_BENCH_PYTHON_EVENTS", events)?;
    let variants = [Variant::DatagenOnly, Variant::Builtin, Variant::RustUdaf, Variant::PythonUdaf];
    for dir in variants.iter().filter_map(|v| v.plugin()) {
        let wasm = repo.join("plugins").join(dir).join(format!("{dir}.wasm"));
        if !wasm.is_file() {
            return Err(format!(
                "{} is missing: build it with `weir plugin build plugins/{dir}` (or `just plugins`)",
                wasm.display()
            )
            .into());
        }
    }
    let dir = tempfile::Builder::new().prefix("weir-bench-windows-").tempdir()?;

    eprintln!("checking correctness ({CHECK_EVENTS} events, {CHECK_KEYS} keys, {CHECK_WINDOW_MS} ms windows)");
    let checked_windows = check(&weir, &repo, dir.path(), &variants)?;

    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mut builtin_rate = None;
    let mut windows_out = None;
    for variant in variants {
        let n = if variant == Variant::PythonUdaf { python_events } else { events };
        let job = dir.path().join(format!("{}.yaml", variant.name()));
        std::fs::write(&job, job_yaml(&repo, variant, n, KEYS, EVENTS_PER_WINDOW, "  connector: blackhole\n"))?;
        if variant.plugin().is_some() {
            // Compile the component into the cache outside the timed run, as a second run would find it.
            let out = Command::new(&weir).arg("check").arg(&job).output()?;
            if !out.status.success() {
                return Err(format!("`weir check` failed: {}", String::from_utf8_lossy(&out.stderr)).into());
            }
        }
        eprintln!("{}: {n} events, {KEYS} keys ...", variant.name());
        let run = run_weir(&weir, &job)?;
        if run.records_in != n || run.late != 0 || run.dead_letters != 0 {
            return Err(format!(
                "{}: {} events in (expected {n}), {} late, {} dead letters",
                variant.name(),
                run.records_in,
                run.late,
                run.dead_letters
            )
            .into());
        }
        // The same input gives the same windows, whatever does the counting.
        if variant != Variant::DatagenOnly && n == events {
            match windows_out {
                None => windows_out = Some(run.records_out),
                Some(w) if w != run.records_out => {
                    return Err(format!("{}: {} windows, other variants {w}", variant.name(), run.records_out).into());
                }
                Some(_) => {}
            }
        }
        let rate = run.records_in as f64 / (run.job_ms / 1e3);
        if variant == Variant::Builtin {
            builtin_rate = Some(rate);
        }
        let report = json!({
            "bench": "windows",
            "variant": variant.name(),
            "aggregate": variant.aggregate(),
            "events": n,
            "keys": KEYS,
            "window": if variant == Variant::DatagenOnly { Value::Null } else {
                json!({ "tumbling_ms": EVENTS_PER_WINDOW, "events_per_window": EVENTS_PER_WINDOW, "windows": n.div_ceil(EVENTS_PER_WINDOW) })
            },
            "windows_out": run.records_out,
            "job_ms": round(run.job_ms, 1),
            "process_ms": round(run.process_ms, 1),
            "events_per_s": rate.round(),
            "peak_rss_mib": round(run.peak_rss_kib as f64 / 1024.0, 1),
            "vs_builtin": builtin_rate.filter(|_| variant != Variant::DatagenOnly).map(|b| round(rate / b, 3)),
            "correctness": { "checked_windows": checked_windows, "ok": true },
            "nproc": nproc,
        });
        eprintln!(
            "  {:.0} events/s, {:.1} s, peak {:.0} MiB",
            rate,
            run.job_ms / 1e3,
            run.peak_rss_kib as f64 / 1024.0
        );
        println!("{report}");
    }
    Ok(())
}
