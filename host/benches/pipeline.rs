//! The pipeline benchmark: one run, one JSON document on stdout, progress on stderr.
//!
//!     cargo bench -p weir --bench pipeline
//!
//! Measures, against a native baseline in the same run:
//! 1. throughput of collection source -> map `upper_name` -> discard on 1,000,000 records,
//!    with the map as (a) a native Rust closure over raw rows, (b) the Rust Wasm plugin,
//!    (c) the Python Wasm plugin (python-marshal rows, converted by the host);
//! 2. the Rust plugin's throughput at batch sizes 64, 256, 1024, 4096;
//! 3. wall time of `weir run examples/first-program/job.yaml` (and `job-python.yaml`) with a
//!    warm component cache;
//! 4. the host's MessagePack<->marshal (and, for comparison, <->JSON) conversion cost per
//!    record and the plugin call cost per record without the pipeline around it, to say where
//!    the Python variant's time goes;
//! 5. peak RSS of this process.
//!
//! Every variant is checked for correctness once, outside the timing: a wrong answer fails
//! the benchmark (non-zero exit). Goals that are not reached are reported, not failed.
//!
//! Plugins must be built (`just plugins`, or `weir plugin build plugins/upper-rust` and
//! `plugins/upper-python`); the CLI must be built (`cargo build --release -p weir`, which
//! `cargo bench` does too).

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;
use weir::connectors::SourceSpec;
use weir::env::{PluginRef, StreamEnvironment};
use weir::plugin::FunctionKind;
use weir::record::{self, Batch};
use weir::runtime::JobReport;

type BenchResult<T> = Result<T, Box<dyn Error>>;

const RECORDS: usize = 1_000_000;
const WARMUP_RECORDS: usize = 50_000;
const CHECK_RECORDS: usize = 1_000;
const RUNS: usize = 3;
const CLI_RUNS: usize = 20;
const DEFAULT_BATCH: usize = 1024;
const BATCH_SIZES: [usize; 4] = [64, 256, 1024, 4096];
/// Records of the direct (no pipeline) plugin-call measurement.
const DIRECT_RECORDS: usize = 200_000;

// Goals of the issue.
const GOAL_RUST_WASM_VS_NATIVE: f64 = 0.5;
const GOAL_PYTHON_RECORDS_PER_S: f64 = 130_000.0;
const GOAL_CLI_MS: f64 = 200.0;

/// An input record, as the source emits it.
#[derive(Debug, Clone, Serialize)]
struct Person {
    id: u64,
    name: String,
    city: String,
    score: f64,
}

/// An input record, borrowed from its row (as the Rust plugin reads it).
#[derive(Deserialize)]
struct PersonRef<'a> {
    id: u64,
    #[serde(borrow)]
    name: &'a str,
    #[serde(borrow)]
    city: &'a str,
    score: f64,
}

/// An output record, borrowing what it does not change (as the Rust plugin writes it).
#[derive(Serialize)]
struct NamedPersonRef<'a> {
    id: u64,
    name: String,
    city: &'a str,
    score: f64,
    name_len: u32,
}

/// An output record, owned, to check results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct NamedPerson {
    id: u64,
    name: String,
    city: String,
    score: f64,
    name_len: u32,
}

const NAMES: [&str; 16] = [
    "alice",
    "bartholomew",
    "charlotte",
    "dorothea",
    "evelyn",
    "francesca",
    "gwendolyn",
    "hildegard",
    "ivanka",
    "judith",
    "mallory",
    "zoë",
    "jürgen",
    "straße",
    "olivia",
    "sebastian",
];
const CITIES: [&str; 10] =
    ["paris", "amsterdam", "berlin", "barcelona", "rome", "copenhagen", "oslo", "lisbon", "edinburgh", "zürich"];

fn person(i: usize) -> Person {
    Person {
        id: i as u64 + 1,
        name: NAMES[(i * 7) % NAMES.len()].to_string(),
        city: CITIES[(i * 13 + i / 7) % CITIES.len()].to_string(),
        // Never integral, so the JSON round trip of the Python variant keeps it a float.
        score: (i % 997) as f64 + 0.5,
    }
}

fn expected(p: &Person) -> NamedPerson {
    NamedPerson {
        id: p.id,
        name: p.name.to_uppercase(),
        city: p.city.clone(),
        score: p.score,
        name_len: p.name.chars().count() as u32,
    }
}

/// The native baseline: what the Rust plugin's `upper_name` does, over raw rows.
fn upper_name_native(row: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let p: PersonRef<'_> = rmp_serde::from_slice(row).map_err(|e| e.to_string())?;
    let named = NamedPersonRef {
        id: p.id,
        name: p.name.to_uppercase(),
        city: p.city,
        score: p.score,
        name_len: u32::try_from(p.name.chars().count()).unwrap_or(u32::MAX),
    };
    rmp_serde::encode::write_named(out, &named).map_err(|e| e.to_string())
}

#[derive(Clone)]
enum Variant {
    Native,
    Plugin(PluginRef),
}

impl Variant {
    fn map(&self, stream: weir::env::DataStream) -> weir::env::DataStream {
        match self {
            Variant::Native => stream.map_native_raw("upper_name", upper_name_native),
            Variant::Plugin(p) => stream.map(p.function("upper_name")),
        }
    }
}

/// One job: the first `n` input rows -> map -> discard (or collect).
fn run_job(
    env: &StreamEnvironment,
    variant: &Variant,
    rows: &[Vec<u8>],
    batch: usize,
    collect: bool,
) -> BenchResult<(JobReport, Vec<Vec<u8>>)> {
    env.set_batch_size(batch);
    // Building the input is setup, not timed.
    let elements = rows.to_vec();
    let stream = variant.map(env.from_source(SourceSpec::collection(elements)));
    let collected = if collect {
        Some(stream.collect())
    } else {
        stream.discard();
        None
    };
    let report = env.execute("pipeline bench")?;
    if report.records_in != rows.len() as u64 || report.records_out != rows.len() as u64 || report.dead_letters != 0 {
        return Err(format!(
            "job lost records: {} in, {} out, {} dead letters for {} input rows",
            report.records_in,
            report.records_out,
            report.dead_letters,
            rows.len()
        )
        .into());
    }
    let out = match collected {
        Some(c) => std::mem::take(&mut *c.lock().unwrap_or_else(|p| p.into_inner())),
        None => Vec::new(),
    };
    Ok((report, out))
}

fn check(
    name: &str,
    env: &StreamEnvironment,
    variant: &Variant,
    rows: &[Vec<u8>],
    people: &[Person],
) -> BenchResult<()> {
    let (_, out) = run_job(env, variant, &rows[..CHECK_RECORDS], 100, true)?;
    if out.len() != CHECK_RECORDS {
        return Err(format!("{name}: {} output rows for {CHECK_RECORDS} inputs", out.len()).into());
    }
    for (i, row) in out.iter().enumerate() {
        let got: NamedPerson = rmp_serde::from_slice(row)
            .map_err(|e| format!("{name}: output row {i} does not decode ({e}): {}", record::display_value(row)))?;
        let want = expected(&people[i]);
        if got != want {
            return Err(format!("{name}: output row {i} is {got:?}, expected {want:?}").into());
        }
    }
    eprintln!("  {name}: {CHECK_RECORDS} output rows correct");
    Ok(())
}

fn median(xs: &[Duration]) -> Duration {
    let mut v = xs.to_vec();
    v.sort();
    v[v.len() / 2]
}

/// Nearest-rank percentile.
fn percentile(xs: &[Duration], p: f64) -> Duration {
    let mut v = xs.to_vec();
    v.sort();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e3 * 100.0).round() / 100.0
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Warm up each variant, then `RUNS` rounds of one timed run per variant on all rows
/// (round-robin, so load from other processes on a shared machine hits every variant alike),
/// and each variant's median.
fn throughput(
    variants: &[(&str, Variant)],
    env: &StreamEnvironment,
    rows: &[Vec<u8>],
    batch: usize,
    warm: bool,
) -> BenchResult<Vec<serde_json::Value>> {
    if warm {
        for (name, variant) in variants {
            let (r, _) = run_job(env, variant, &rows[..WARMUP_RECORDS], batch, false)?;
            eprintln!("  {name}: warm-up {WARMUP_RECORDS} records in {:.1} ms", ms(r.elapsed));
        }
    }
    let mut times = vec![Vec::new(); variants.len()];
    let mut backpressure = vec![Vec::new(); variants.len()];
    for run in 0..RUNS {
        for (k, (name, variant)) in variants.iter().enumerate() {
            let (r, _) = run_job(env, variant, rows, batch, false)?;
            eprintln!("  {name} batch {batch}: run {} {:.1} ms", run + 1, ms(r.elapsed));
            times[k].push(r.elapsed);
            backpressure[k].push(r.backpressure);
        }
    }
    let n = rows.len() as f64;
    Ok((0..variants.len())
        .map(|k| {
            let m = median(&times[k]);
            let best = *times[k].iter().min().unwrap_or(&m);
            json!({
                "batch_size": batch,
                "records": rows.len(),
                "median_ms": ms(m),
                "runs_ms": times[k].iter().map(|&t| ms(t)).collect::<Vec<_>>(),
                "records_per_s": (n / m.as_secs_f64()).round(),
                "ns_per_record": round(m.as_secs_f64() * 1e9 / n, 1),
                "best_records_per_s": (n / best.as_secs_f64()).round(),
                "backpressure_ms_median": ms(median(&backpressure[k])),
            })
        })
        .collect())
}

fn rps(v: &serde_json::Value) -> f64 {
    v["records_per_s"].as_f64().unwrap_or(0.0)
}

fn rps_best(v: &serde_json::Value) -> f64 {
    v["best_records_per_s"].as_f64().unwrap_or(0.0)
}

/// The host's per-record conversion cost for JSON-row plugins, in both directions.
fn conversion_costs(rows: &[Vec<u8>], people: &[Person]) -> BenchResult<serde_json::Value> {
    let n = rows.len().min(DIRECT_RECORDS);
    let mut buf = Vec::with_capacity(256);
    let started = Instant::now();
    let mut bytes = 0usize;
    for row in &rows[..n] {
        buf.clear();
        record::msgpack_to_json(row, &mut buf)?;
        bytes += buf.len();
    }
    let to_json = started.elapsed();
    // What the Python plugin returns, as JSON.
    let outputs: Vec<Vec<u8>> =
        people[..n].iter().map(|p| serde_json::to_vec(&expected(p))).collect::<Result<_, _>>()?;
    let started = Instant::now();
    for row in &outputs {
        buf.clear();
        record::json_to_msgpack(row, &mut buf)?;
    }
    let from_json = started.elapsed();
    let per = |d: Duration| round(d.as_secs_f64() * 1e9 / n as f64, 1);
    Ok(json!({
        "records": n,
        "msgpack_to_json_ns_per_record": per(to_json),
        "json_to_msgpack_ns_per_record": per(from_json),
        "total_ns_per_record": per(to_json + from_json),
        "input_json_bytes_per_record": round(bytes as f64 / n as f64, 1),
    }))
}

/// The host's per-record conversion cost for python-marshal plugins: rows to marshal, and a
/// packed output list (what the Python SDK returns) back to MessagePack rows.
fn marshal_conversion_costs(rows: &[Vec<u8>], people: &[Person]) -> BenchResult<serde_json::Value> {
    use weir::record::marshal::{msgpack_to_marshal, packed_marshal_to_msgpack};
    let n = rows.len().min(DIRECT_RECORDS);
    let mut buf = Vec::with_capacity(256);
    let started = Instant::now();
    let mut bytes = 0usize;
    for row in &rows[..n] {
        buf.clear();
        msgpack_to_marshal(row, &mut buf)?;
        bytes += buf.len();
    }
    let to_marshal = started.elapsed();
    // What the Python plugin returns: one packed marshal list per batch of outputs.
    let mut packed_batches = Vec::new();
    for chunk in people[..n].chunks(DEFAULT_BATCH) {
        let mut packed = vec![b'['];
        packed.extend_from_slice(&(chunk.len() as i32).to_le_bytes());
        for p in chunk {
            msgpack_to_marshal(&rmp_serde::to_vec_named(&expected(p))?, &mut packed)?;
        }
        packed_batches.push(packed);
    }
    let mut scratch = Vec::with_capacity(256);
    let started = Instant::now();
    let mut out_rows = 0usize;
    for packed in &packed_batches {
        let mut out = Batch::with_capacity(DEFAULT_BATCH, packed.len());
        packed_marshal_to_msgpack(packed, &mut scratch, |r| {
            out.push(r.expect("valid marshal"));
        })?;
        out_rows += out.len();
    }
    let from_marshal = started.elapsed();
    if out_rows != n {
        return Err(format!("marshal conversion: {out_rows} rows for {n}").into());
    }
    let per = |d: Duration| round(d.as_secs_f64() * 1e9 / n as f64, 1);
    Ok(json!({
        "records": n,
        "msgpack_to_marshal_ns_per_record": per(to_marshal),
        "packed_marshal_to_msgpack_ns_per_record": per(from_marshal),
        "total_ns_per_record": per(to_marshal + from_marshal),
        "input_marshal_bytes_per_record": round(bytes as f64 / n as f64, 1),
    }))
}

/// The plugin call alone (Transformer::apply on ready batches, no source, channels or
/// sink), and what creating an instance costs.
fn direct_calls(plugin: &PluginRef, rows: &[Vec<u8>]) -> BenchResult<serde_json::Value> {
    let n = rows.len().min(DIRECT_RECORDS);
    let batches = batches_of(&rows[..n]);
    let mut one = Batch::new();
    one.push(&rows[0]);
    // Instantiation: a fresh transformer's first call on one row, minus a warm call on one row.
    let mut t = plugin.plugin().transformer("upper_name", &[FunctionKind::Map])?;
    let started = Instant::now();
    t.apply(&one)?;
    let first = started.elapsed();
    let started = Instant::now();
    t.apply(&one)?;
    let warm_one = started.elapsed();
    let mut t = plugin.plugin().transformer("upper_name", &[FunctionKind::Map])?;
    t.apply(&one)?;
    let started = Instant::now();
    let mut out_rows = 0usize;
    for b in &batches {
        let outcome = t.apply(b)?;
        if !outcome.failures.is_empty() {
            return Err(format!(
                "direct call: {} failed rows, first: {:?}",
                outcome.failures.len(),
                outcome.failures[0]
            )
            .into());
        }
        out_rows += outcome.rows.len();
    }
    let elapsed = started.elapsed();
    if out_rows != n {
        return Err(format!("direct call: {out_rows} output rows for {n} inputs").into());
    }
    Ok(json!({
        "records": n,
        "batch_size": DEFAULT_BATCH,
        "ns_per_record": round(elapsed.as_secs_f64() * 1e9 / n as f64, 1),
        "records_per_s": (n as f64 / elapsed.as_secs_f64()).round(),
        "instantiate_ms": ms(first.saturating_sub(warm_one)),
        "recycle_after_records": plugin.plugin().limits().recycle_after_records,
    }))
}

/// The native closure alone, over the same batches as [`direct_calls`].
fn direct_native(rows: &[Vec<u8>]) -> BenchResult<serde_json::Value> {
    let n = rows.len().min(DIRECT_RECORDS);
    let batches = batches_of(&rows[..n]);
    let started = Instant::now();
    let mut out_rows = 0usize;
    for b in &batches {
        let mut out = Batch::new();
        for i in 0..b.len() {
            out.push_with(|o| upper_name_native(b.value(i), o))?;
        }
        out_rows += out.len();
    }
    let elapsed = started.elapsed();
    if out_rows != n {
        return Err(format!("direct native: {out_rows} output rows for {n} inputs").into());
    }
    Ok(json!({
        "records": n,
        "batch_size": DEFAULT_BATCH,
        "ns_per_record": round(elapsed.as_secs_f64() * 1e9 / n as f64, 1),
        "records_per_s": (n as f64 / elapsed.as_secs_f64()).round(),
    }))
}

fn batches_of(rows: &[Vec<u8>]) -> Vec<Batch> {
    rows.chunks(DEFAULT_BATCH)
        .map(|chunk| {
            let mut b = Batch::with_capacity(chunk.len(), chunk.iter().map(Vec::len).sum());
            chunk.iter().for_each(|r| b.push(r));
            b
        })
        .collect()
}

/// The `weir` CLI next to this bench (target/release/deps/pipeline-* -> target/release/weir).
fn weir_binary() -> BenchResult<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut candidates = Vec::new();
    if let Some(dir) = exe.parent().and_then(Path::parent) {
        candidates.push(dir.join("weir"));
    }
    if let Some(p) = option_env!("CARGO_BIN_EXE_weir") {
        candidates.push(PathBuf::from(p));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| "the weir CLI is not built next to this bench: run `cargo build --release -p weir`".into())
}

fn cli_wall_time(weir: &Path, repo: &Path, job: &str) -> BenchResult<serde_json::Value> {
    let expected = "HELLO\nWORLD\nPYFLINK\nSTREAM\nPROCESSING\n";
    let run = || -> BenchResult<Duration> {
        let started = Instant::now();
        let out = Command::new(weir).arg("run").arg(job).current_dir(repo).output()?;
        let elapsed = started.elapsed();
        if !out.status.success() {
            return Err(
                format!("`weir run {job}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr)).into()
            );
        }
        if out.stdout != expected.as_bytes() {
            return Err(format!(
                "`weir run {job}` printed {:?}, expected {expected:?}",
                String::from_utf8_lossy(&out.stdout)
            )
            .into());
        }
        Ok(elapsed)
    };
    let warm = run()?;
    let times = (0..CLI_RUNS).map(|_| run()).collect::<BenchResult<Vec<_>>>()?;
    let (med, p95) = (median(&times), percentile(&times, 95.0));
    eprintln!("  weir run {job}: warm-up {:.1} ms, median {:.1} ms, p95 {:.1} ms", ms(warm), ms(med), ms(p95));
    Ok(json!({
        "job": job,
        "runs": CLI_RUNS,
        "warmup_ms": ms(warm),
        "median_ms": ms(med),
        "p95_ms": ms(p95),
        "min_ms": ms(*times.iter().min().unwrap_or(&Duration::ZERO)),
        "output_ok": true,
        "goal_under_200ms": ms(med) < GOAL_CLI_MS,
    }))
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn wasmtime_version() -> String {
    let lock = include_str!("../../Cargo.lock");
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l == "name = \"wasmtime\""
            && let Some(v) = lines.next().and_then(|v| v.strip_prefix("version = \""))
        {
            return v.trim_end_matches('"').to_string();
        }
    }
    "unknown".into()
}

fn main() -> BenchResult<()> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize()?;
    let rust_wasm = repo.join("plugins/upper-rust/upper-rust.wasm");
    let python_wasm = repo.join("plugins/upper-python/upper-python.wasm");
    for p in [&rust_wasm, &python_wasm] {
        if !p.is_file() {
            return Err(format!(
                "{} is missing: build it with `weir plugin build {}`",
                p.display(),
                p.parent().unwrap_or(p).display()
            )
            .into());
        }
    }
    let weir = weir_binary()?;

    eprintln!("building {RECORDS} input records");
    let people: Vec<Person> = (0..RECORDS).map(person).collect();
    let rows: Vec<Vec<u8>> = people.iter().map(rmp_serde::to_vec_named).collect::<Result<_, _>>()?;
    let row_bytes = rows.iter().map(Vec::len).sum::<usize>() as f64 / RECORDS as f64;
    // What `execute` does to the collection before the first record flows (it clones the
    // source spec), measured here because it is inside every job's timing.
    let started = Instant::now();
    let copy = rows.clone();
    let clone_ms = ms(started.elapsed());
    drop(copy);

    let env = StreamEnvironment::new();
    eprintln!("loading plugins (compiled components come from the cache after the first run)");
    let started = Instant::now();
    let rust = env.load_plugin(&rust_wasm)?;
    let rust_load = started.elapsed();
    let started = Instant::now();
    let python = env.load_plugin(&python_wasm)?;
    let python_load = started.elapsed();
    let variants = [
        ("native", Variant::Native),
        ("rust_wasm", Variant::Plugin(rust.clone())),
        ("python_wasm", Variant::Plugin(python.clone())),
    ];

    eprintln!("checking correctness");
    for (name, v) in &variants {
        check(name, &env, v, &rows, &people)?;
    }

    eprintln!("throughput: source -> map upper_name -> discard, {RECORDS} records, median of {RUNS}");
    let mut results = serde_json::Map::new();
    for ((name, _), r) in variants.iter().zip(throughput(&variants, &env, &rows, DEFAULT_BATCH, true)?) {
        results.insert(name.to_string(), r);
    }
    let native = rps(&results["native"]);
    let rust_rps = rps(&results["rust_wasm"]);
    let python_rps = rps(&results["python_wasm"]);

    eprintln!("batch size sensitivity (Rust plugin)");
    let rust_variant = Variant::Plugin(rust.clone());
    let mut batches = Vec::new();
    for &b in &BATCH_SIZES {
        let r = throughput(&[("rust_wasm", rust_variant.clone())], &env, &rows, b, false)?.remove(0);
        batches.push(json!({
            "batch_size": b,
            "records_per_s": r["records_per_s"],
            "ns_per_record": r["ns_per_record"],
            "median_ms": r["median_ms"],
        }));
    }

    eprintln!("where the time goes (no pipeline)");
    let conversion = conversion_costs(&rows, &people)?;
    let marshal_conversion = marshal_conversion_costs(&rows, &people)?;
    let direct_native = direct_native(&rows)?;
    let direct_rust = direct_calls(&rust, &rows)?;
    let direct_python = direct_calls(&python, &rows)?;
    eprintln!(
        "  msgpack->marshal {} ns, packed marshal->msgpack {} ns per record",
        marshal_conversion["msgpack_to_marshal_ns_per_record"],
        marshal_conversion["packed_marshal_to_msgpack_ns_per_record"],
    );
    eprintln!(
        "  msgpack->json {} ns, json->msgpack {} ns per record; map alone: native {} ns, rust {} ns, python {} ns per record",
        conversion["msgpack_to_json_ns_per_record"],
        conversion["json_to_msgpack_ns_per_record"],
        direct_native["ns_per_record"],
        direct_rust["ns_per_record"],
        direct_python["ns_per_record"]
    );

    eprintln!("CLI wall time, warm component cache");
    let cli_rust = cli_wall_time(&weir, &repo, "examples/first-program/job.yaml")?;
    let cli_python = cli_wall_time(&weir, &repo, "examples/first-program/job-python.yaml")?;

    let python_ns = 1e9 / python_rps;
    let conv_ns = marshal_conversion["total_ns_per_record"].as_f64().unwrap_or(0.0);
    let report = json!({
        "bench": "pipeline",
        "machine": {
            "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
        },
        "wasmtime_version": wasmtime_version(),
        "input": {
            "records": RECORDS,
            "msgpack_bytes_per_record": round(row_bytes, 1),
            "example": record::display_value(&rows[0]),
            "collection_clone_ms": clone_ms,
        },
        "plugin_load_ms": { "rust_wasm": ms(rust_load), "python_wasm": ms(python_load) },
        "correctness": { "records_checked_per_variant": CHECK_RECORDS, "ok": true },
        "throughput": results,
        "ratios": {
            "rust_wasm_vs_native": round(rust_rps / native, 3),
            "python_wasm_vs_native": round(python_rps / native, 3),
            "rust_wasm_vs_native_best_runs": round(rps_best(&results["rust_wasm"]) / rps_best(&results["native"]), 3),
        },
        "goals": {
            "rust_wasm_at_least_0_5x_native": rust_rps / native >= GOAL_RUST_WASM_VS_NATIVE,
            "python_at_least_130k_records_per_s": python_rps >= GOAL_PYTHON_RECORDS_PER_S,
            "cli_rust_median_under_200ms": cli_rust["goal_under_200ms"],
            "cli_python_median_under_200ms": cli_python["goal_under_200ms"],
        },
        "batch_size_rust_wasm": batches,
        "breakdown": {
            "marshal_conversion": marshal_conversion,
            "marshal_conversion_share_of_python_pipeline": round(conv_ns / python_ns, 3),
            "json_conversion": conversion,
            "direct_native": direct_native,
            "direct_call_rust_wasm": direct_rust,
            "direct_call_python_wasm": direct_python,
        },
        "cli": { "rust": cli_rust, "python": cli_python },
        "peak_rss_mib": peak_rss_kib().map(|k| round(k as f64 / 1024.0, 1)),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
