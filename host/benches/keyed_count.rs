//! The keyed count benchmark: a running count per key in value state, as a Rust process
//! plugin and as a host-native operator doing exactly the same. One JSON document on
//! stdout, progress on stderr.
//!
//!     cargo bench --workspace --bench keyed_count        (or `just bench`)
//!     WEIR_BENCH_EVENTS=1000000 cargo bench --workspace --bench keyed_count
//!
//! The job: datagen (`WEIR_BENCH_EVENTS` rows, default 10 M, each `{key}` with a key drawn
//! from `WEIR_BENCH_KEYS`, default 1 M) -> key_by key -> count -> discard, with the keyed
//! step at `WEIR_BENCH_PARALLELISM` (default 2) and its state in sled (default state
//! config: 64 MiB read cache per instance, smaller than 1 M keys' working set). The count is:
//!
//! - `plugin`: `process.count_per_key` of `plugins/process-rust` (value state `count: u64`,
//!   emits `{key, count}` per element): `ProcessOperator`, the WIT state imports, the undo
//!   log, all of it;
//! - `native`: an [`Operator`] written here on the public API: per record,
//!   `KeyedState::value_get` + `value_set` of the same state (same MessagePack value, same
//!   step output, flushed after 50 k buffered writes like `ProcessOperator`).
//!
//! Each variant runs in its own child process (this binary with `--child`), so its peak RSS
//! (`wait4`'s `ru_maxrss`) is its own. Measured per variant: `events_per_s` (events / the
//! job's own time, plugin loading excluded), `peak_rss_mib`; for the native operator the
//! time inside the two state calls per event (`state_ns_per_op`: get and set, one op each).
//!
//! Checked, so that a fast wrong answer fails the bench (non-zero exit): the expected count
//! of every key is worked out here from the generated rows (a datagen -> tally job with no
//! state), then after each run the variant's sled store is opened and every key's `count`
//! must equal it (keys never generated must have none), and the job must have emitted one
//! record per event and no dead letter.
//!
//! Needs the process plugin built: `just plugins` (or `weir plugin build plugins/process-rust`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{BenchResult, env_count, round, run_measured};
use serde_json::{Value, json};
use weir::connectors::{DatagenSpec, FieldGenerator};
use weir::env::StreamEnvironment;
use weir::graph::{Step, StepKind};
use weir::record::{Batch, RowMeta};
use weir::state::{DEFAULT_MAX_PARALLELISM, key_group};
use weir::state::{KeyGroupRange, KeyedState, StateConfig, StateDescriptor, StateStore};
use weir::task::{DeadLetters, InstanceContext, Operator, OperatorError, OperatorFactory};

const DEFAULT_EVENTS: u64 = 10_000_000;
const DEFAULT_KEYS: u64 = 1_000_000;
const DEFAULT_PARALLELISM: u64 = 2;
const SEED: u64 = 2026;
const PLUGIN_DIR: &str = "process-rust";
const PLUGIN_FUNCTION: &str = "count_per_key";
/// `ProcessOperator`'s flush policy, so both variants write to sled as often.
const FLUSH_AFTER_WRITES: usize = 50_000;
const STATE: &str = "count";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Native,
    Plugin,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Native => "native",
            Variant::Plugin => "plugin",
        }
    }

    fn parse(name: &str) -> BenchResult<Self> {
        match name {
            "native" => Ok(Variant::Native),
            "plugin" => Ok(Variant::Plugin),
            _ => Err(format!("no variant `{name}` (native, plugin)").into()),
        }
    }
}

struct Sizes {
    events: u64,
    keys: u64,
    parallelism: usize,
}

impl Sizes {
    fn from_env() -> BenchResult<Self> {
        Ok(Self {
            events: env_count("WEIR_BENCH_EVENTS", DEFAULT_EVENTS)?,
            keys: env_count("WEIR_BENCH_KEYS", DEFAULT_KEYS)?,
            parallelism: usize::try_from(env_count("WEIR_BENCH_PARALLELISM", DEFAULT_PARALLELISM)?)?,
        })
    }

    fn datagen(&self) -> DatagenSpec {
        let max = i64::try_from(self.keys - 1).unwrap_or(i64::MAX);
        DatagenSpec::new()
            .field("key", FieldGenerator::RandomInt { min: 0, max })
            .number_of_rows(self.events)
            .seed(SEED)
    }
}

fn plugin_path(repo: &Path) -> PathBuf {
    repo.join("plugins").join(PLUGIN_DIR).join(format!("{PLUGIN_DIR}.wasm"))
}

/// The key as `key_by` makes it from the generated integer.
fn key_bytes(k: u64) -> Vec<u8> {
    weir::record::encode(&rmpv::Value::from(k))
}

/// The count as the plugin stores it (`rmp_serde` of a `u64`: the shortest uint).
fn encode_count(n: u64, out: &mut Vec<u8>) {
    out.clear();
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_uint(out, n);
}

fn decode_count(bytes: &[u8]) -> Option<u64> {
    rmp::decode::read_int(&mut &bytes[..]).ok()
}

fn runtime() -> BenchResult<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

// --- the native operator ----------------------------------------------------------------

/// Time spent in state calls and their number, summed over the native instances.
#[derive(Default)]
struct StateTiming {
    nanos: AtomicU64,
    ops: AtomicU64,
}

/// The keyed count the plugin does, natively: value state `count` per key, `{key, count}`
/// out per record.
struct NativeCount {
    name: String,
    state: KeyedState,
    max_parallelism: u16,
    value: Vec<u8>,
    row: Vec<u8>,
    in_state: Duration,
    ops: u64,
    timing: Arc<StateTiming>,
}

impl NativeCount {
    fn failed(&self, message: impl std::fmt::Display) -> OperatorError {
        OperatorError::Failed { operator: self.name.clone(), message: message.to_string() }
    }
}

impl Operator for NativeCount {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, input: Batch, out: &mut Batch, _dead: &mut DeadLetters) -> Result<(), OperatorError> {
        for i in 0..input.len() {
            let Some(key) = input.key(i) else { return Err(self.failed("a record without a key")) };
            self.state.set_current_key(key_group(key, self.max_parallelism), key);
            let started = Instant::now();
            let old = self.state.value_get(STATE).map_err(|e| self.failed(e))?;
            let n = match old {
                Some(bytes) => decode_count(&bytes).ok_or_else(|| self.failed("a count that is not an integer"))?,
                None => 0,
            } + 1;
            encode_count(n, &mut self.value);
            self.state.value_set(STATE, &self.value).map_err(|e| self.failed(e))?;
            self.in_state += started.elapsed();
            self.ops += 2;
            // `{key, count}`, as the plugin's `KeyCount` serializes.
            self.row.clear();
            let _ = rmp::encode::write_map_len(&mut self.row, 2);
            let _ = rmp::encode::write_str(&mut self.row, "key");
            self.row.extend_from_slice(key);
            let _ = rmp::encode::write_str(&mut self.row, "count");
            let _ = rmp::encode::write_uint(&mut self.row, n);
            out.push_record(&self.row, RowMeta { key: None, timestamp: input.timestamp(i) });
        }
        if self.state.buffered_writes() >= FLUSH_AFTER_WRITES {
            self.state.flush().map_err(|e| self.failed(e))?;
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Batch, _dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.state.flush().map_err(|e| self.failed(e))?;
        let nanos = u64::try_from(self.in_state.as_nanos()).unwrap_or(u64::MAX);
        self.timing.nanos.fetch_add(nanos, Ordering::Relaxed);
        self.timing.ops.fetch_add(self.ops, Ordering::Relaxed);
        Ok(())
    }
}

fn native_step(name: &str, timing: Arc<StateTiming>) -> Step {
    let op_name = name.to_string();
    let factory: OperatorFactory = Arc::new(move |ctx: &InstanceContext| {
        let failed = |message: String| OperatorError::Failed { operator: op_name.clone(), message };
        let store = ctx.state.store().map_err(failed)?;
        let state = store
            .keyed(&op_name, ctx.key_groups(), &[StateDescriptor::value(STATE)])
            .map_err(|e| failed(e.to_string()))?;
        Ok(Box::new(NativeCount {
            name: op_name.clone(),
            state,
            max_parallelism: ctx.max_parallelism,
            value: Vec::new(),
            row: Vec::new(),
            in_state: Duration::ZERO,
            ops: 0,
            timing: timing.clone(),
        }) as Box<dyn Operator>)
    });
    Step::new(name, StepKind::Keyed, factory)
}

// --- one variant, in a child process ---------------------------------------------------

/// `--child VARIANT STATE_DIR`: run the job once and print its figures as one JSON line.
fn child(variant: Variant, state_dir: &Path) -> BenchResult<()> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize()?;
    let sizes = Sizes::from_env()?;
    let env = StreamEnvironment::new();
    env.set_parallelism(sizes.parallelism).set_state_dir(state_dir);
    let keyed = env.from_datagen(sizes.datagen()).key_by("key");
    let timing = Arc::new(StateTiming::default());
    let graph = match variant {
        Variant::Plugin => {
            let plugin = env.load_plugin(plugin_path(&repo))?;
            keyed.process(plugin.function(PLUGIN_FUNCTION)).discard();
            env.graph("keyed count plugin")?
        }
        Variant::Native => {
            keyed.into_stream().discard();
            let mut graph = env.graph("keyed count native")?;
            let name = format!("count[{}] native", graph.steps().count());
            let written = graph.sinks[0].input;
            graph.streams[written].steps.push(native_step(&name, timing.clone()));
            graph
        }
    };
    let step = graph.steps().last().map(|s| s.name.clone()).ok_or("the job has no steps")?;
    let report = runtime()?.block_on(weir::runtime::execute(graph))?;
    let ops = timing.ops.load(Ordering::Relaxed);
    let out = json!({
        "step": step,
        "records_in": report.records_in,
        "records_out": report.records_out,
        "dead_letters": report.dead_letters,
        "job_ms": report.elapsed.as_secs_f64() * 1e3,
        "state_ops": ops,
        "state_ns_per_op": (ops > 0).then(|| timing.nanos.load(Ordering::Relaxed) as f64 / ops as f64),
    });
    println!("{out}");
    Ok(())
}

// --- the parent: expected counts, runs, checks ----------------------------------------

/// How many rows of each key datagen generates, tallied from the rows themselves by a job
/// with no keyed state.
fn expected_counts(sizes: &Sizes) -> BenchResult<Vec<u32>> {
    let tally = Arc::new(Mutex::new(vec![0u32; usize::try_from(sizes.keys)?]));
    let env = StreamEnvironment::new();
    let counts = tally.clone();
    env.from_datagen(sizes.datagen())
        .map_native_raw("tally", move |row, out| {
            let v = rmpv::decode::read_value(&mut &row[..]).map_err(|e| e.to_string())?;
            let key = v
                .as_map()
                .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some("key")))
                .and_then(|(_, k)| k.as_u64());
            let key = key.ok_or_else(|| format!("no integer key in {v}"))?;
            let mut counts = counts.lock().map_err(|_| "the tally is poisoned".to_string())?;
            let slot = counts.get_mut(key as usize).ok_or_else(|| format!("key {key} out of range"))?;
            *slot += 1;
            out.extend_from_slice(row);
            Ok(())
        })
        .discard();
    let report = runtime()?.block_on(env.execute_async("keyed count: expected counts"))?;
    if report.records_in != sizes.events || report.dead_letters != 0 {
        return Err(format!("the tally saw {} rows ({} dead letters)", report.records_in, report.dead_letters).into());
    }
    drop(env);
    let counts = std::mem::take(&mut *tally.lock().map_err(|_| "poisoned")?);
    Ok(counts)
}

/// Every key's `count` in the variant's store against the expected counts; keys with none
/// expected must have no state. Returns the keys checked.
fn check_state(state_dir: &Path, step: &str, expected: &[u32]) -> BenchResult<u64> {
    let store = StateStore::open(state_dir, StateConfig::default())?;
    let mut state = store.keyed(step, KeyGroupRange::all(DEFAULT_MAX_PARALLELISM), &[StateDescriptor::value(STATE)])?;
    let (mut wrong, mut first_wrong) = (0u64, None);
    for (k, &want) in expected.iter().enumerate() {
        let key = key_bytes(k as u64);
        state.set_current_key(key_group(&key, DEFAULT_MAX_PARALLELISM), &key);
        let got = state.value_get(STATE)?.map(|b| decode_count(&b).ok_or("a stored count is not an integer"));
        let got = got.transpose()?;
        let want = (want > 0).then_some(u64::from(want));
        if got != want {
            wrong += 1;
            first_wrong.get_or_insert((k, got, want));
        }
    }
    if let Some((k, got, want)) = first_wrong {
        return Err(format!("{step}: {wrong} keys have a wrong count (key {k}: {got:?}, expected {want:?})").into());
    }
    Ok(expected.len() as u64)
}

struct Measured {
    report: Value,
    events_per_s: f64,
}

fn run_variant(variant: Variant, sizes: &Sizes, expected: &[u32], dir: &Path) -> BenchResult<Measured> {
    let state_dir = dir.join(format!("state-{}", variant.name()));
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("--child").arg(variant.name()).arg(&state_dir).env_remove("WEIR_LOG");
    let done = run_measured(&mut command)?;
    let figures = common::child_figures(&done, sizes.events, variant.name())?;
    let step = figures["step"].as_str().ok_or("no step name")?;
    let checked_started = Instant::now();
    let checked_keys = check_state(&state_dir, step, expected)?;
    let job_ms = figures["job_ms"].as_f64().ok_or("no job_ms")?;
    let events_per_s = sizes.events as f64 / (job_ms / 1e3);
    eprintln!(
        "  {events_per_s:.0} events/s, {:.1} s, peak {:.0} MiB; {checked_keys} keys' counts checked in {:.1} s",
        job_ms / 1e3,
        done.peak_rss_kib as f64 / 1024.0,
        checked_started.elapsed().as_secs_f64()
    );
    let report = json!({
        "step": step,
        "events_per_s": events_per_s.round(),
        "job_ms": round(job_ms, 1),
        "process_ms": round(done.process_ms, 1),
        "peak_rss_mib": round(done.peak_rss_kib as f64 / 1024.0, 1),
        "state_ns_per_op": figures["state_ns_per_op"].as_f64().map(|ns| round(ns, 1)),
        "records_out": sizes.events,
        "checked_keys": checked_keys,
    });
    std::fs::remove_dir_all(&state_dir)?;
    Ok(Measured { report, events_per_s })
}

fn main() -> BenchResult<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let variant = Variant::parse(args.get(i + 1).ok_or("--child VARIANT STATE_DIR")?)?;
        let dir = args.get(i + 2).ok_or("--child VARIANT STATE_DIR")?;
        return child(variant, Path::new(dir));
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize()?;
    let wasm = plugin_path(&repo);
    if !wasm.is_file() {
        let hint = format!("build it with `weir plugin build plugins/{PLUGIN_DIR}` (or `just plugins`)");
        return Err(format!("{} is missing: {hint}", wasm.display()).into());
    }
    let sizes = Sizes::from_env()?;
    let dir = tempfile::Builder::new().prefix("weir-bench-keyed-count-").tempdir()?;

    eprintln!("expected counts: tallying {} generated rows over {} keys", sizes.events, sizes.keys);
    let expected = expected_counts(&sizes)?;
    let keys_seen = expected.iter().filter(|&&n| n > 0).count();

    let mut results = serde_json::Map::new();
    let mut rates = Vec::new();
    for variant in [Variant::Native, Variant::Plugin] {
        eprintln!(
            "{}: {} events, {} keys, parallelism {} ...",
            variant.name(),
            sizes.events,
            sizes.keys,
            sizes.parallelism
        );
        let measured = run_variant(variant, &sizes, &expected, dir.path())?;
        rates.push(measured.events_per_s);
        results.insert(variant.name().to_string(), measured.report);
    }
    let (native, plugin) = (rates[0], rates[1]);
    let report = json!({
        "bench": "keyed_count",
        "job": "datagen -> key_by key -> count (value state per key, {key, count} out per event) -> discard",
        "events": sizes.events,
        "keys": sizes.keys,
        "keys_generated": keys_seen,
        "parallelism": sizes.parallelism,
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "state": { "backend": "sled", "cache_mib_per_instance": StateConfig::default().cache_bytes >> 20, "flush_after_writes": FLUSH_AFTER_WRITES },
        "plugin_function": format!("plugins/{PLUGIN_DIR}: process.{PLUGIN_FUNCTION}"),
        "native": results.remove("native"),
        "plugin": results.remove("plugin"),
        "plugin_vs_native": round(plugin / native, 3),
        "native_vs_plugin": round(native / plugin, 2),
        "plugin_overhead_ns_per_event": round(1e9 / plugin - 1e9 / native, 1),
        "correctness": { "checked_keys": sizes.keys, "ok": true },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
