//! The hot-swap benchmark (issue 7): how long a running job pauses when a new version of a
//! stateless map is deployed into it. One JSON document on stdout, progress on stderr.
//!
//!     cargo bench --workspace --bench hot_swap        (or `just bench`)
//!     WEIR_BENCH_PARALLELISM=1 WEIR_BENCH_SWAPS=20 cargo bench --workspace --bench hot_swap
//!
//! The job: datagen `{seq}` at `WEIR_BENCH_RATE` rows/s (default 50 k, batches of at most
//! `WEIR_BENCH_BATCH`, default 100) -> `stamp` (native: adds `t`, ns since the bench
//! started) -> key_by seq -> `tag` of `plugins/versioned-v1-rust` (passes `t` through) ->
//! `measure` (native: now - `t`) -> discard. `tag` and `measure` run fused at
//! `WEIR_BENCH_PARALLELISM` (default 2); `stamp` runs before the key exchange, so a record
//! held up by a swap waits *after* its stamp, in the channel, and its latency shows it.
//!
//! After a 1 s warm-up, `WEIR_BENCH_SWAPS` deploys (default 10, one every 500 ms) swap
//! `tag` v1 -> v2 -> v1 ... through [`Targets::deploy`] as `weir deploy` does. Reported:
//!
//! - `around_swap.latency`: of the records stamped within ± N ms of a swap (N =
//!   `WEIR_BENCH_WINDOW_MS`, default 50); `control_between_swaps.latency`: the same windows
//!   around the points midway between swaps (250 ms from any), the baseline; and
//!   `added_latency_ms` = around - control (p50, p99, max): the pause a swap adds, the
//!   figure the 10 ms goal is about;
//! - `records_per_s` of output in the 100 ms before (-150..-50 ms), during (±50 ms) and after
//!   (+50..+150 ms) each swap (and control point), and the emptiest 10 ms bin during;
//! - `tag_batch_ms`: how long `tag` takes per batch, for the first batch an instance runs
//!   after a swap (when it picks up the new version) and for the others;
//! - `deploy_ms`: the `deploy()` call (load from the compiled cache, describe, validate):
//!   off the job's tasks, so not part of the pause.
//!
//! Checked (non-zero exit otherwise): every `seq` comes out exactly once, each record in the
//! v1 (`{seq, v1: true, t}`) or v2 (`{seq, version: 2, t}`) format, no dead letter, and
//! every deploy was made while the job ran.
//!
//! Needs the plugins built: `just plugins` (or `weir plugin build plugins/versioned-v1-rust`
//! and `-v2-rust`).

#[allow(dead_code)] // `run_measured` is for the benches that run children.
mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{BenchResult, env_count, round};
use rmpv::Value;
use serde::{Deserialize, Serialize};
use serde_json::json;
use weir::connectors::{DatagenSpec, FieldGenerator, SinkSpec};
use weir::deploy::{PluginCell, Requirement, Target, Targets};
use weir::env::StreamEnvironment;
use weir::graph::{Step, StepKind};
use weir::operator::TransformKind;
use weir::operator::TransformOperator;
use weir::plugin::FunctionKind;
use weir::record::Batch;
use weir::task::JobControl;
use weir::task::{DeadLetters, InstanceContext, Operator, OperatorError, OperatorFactory};

const WARM_UP: Duration = Duration::from_secs(1);
const SWAP_INTERVAL: Duration = Duration::from_millis(500);
/// Output after the last swap, so its `after` window is full.
const TAIL: Duration = Duration::from_millis(600);
const FUNCTION: &str = "tag";
/// Width of the before / during / after throughput windows, and of the bins in `during`.
const RATE_WINDOW_NS: u64 = 100_000_000;
const BIN_NS: u64 = 10_000_000;

struct Config {
    rate: u64,
    batch: usize,
    parallelism: usize,
    swaps: u64,
    window_ns: u64,
}

impl Config {
    fn from_env() -> BenchResult<Self> {
        Ok(Self {
            rate: env_count("WEIR_BENCH_RATE", 50_000)?,
            batch: usize::try_from(env_count("WEIR_BENCH_BATCH", 100)?)?,
            parallelism: usize::try_from(env_count("WEIR_BENCH_PARALLELISM", 2)?)?,
            swaps: env_count("WEIR_BENCH_SWAPS", 10)?,
            window_ns: env_count("WEIR_BENCH_WINDOW_MS", 50)? * 1_000_000,
        })
    }

    /// Enough rows for the warm-up, the swaps and the tail (the job must outlive the swaps).
    fn rows(&self) -> u64 {
        let span = WARM_UP + SWAP_INTERVAL * u32::try_from(self.swaps).unwrap_or(u32::MAX) + TAIL;
        (span.as_secs_f64() * self.rate as f64) as u64 + self.rate / 2
    }
}

fn plugin_path(repo: &Path, version: u32) -> PathBuf {
    let dir = format!("versioned-v{version}-rust");
    repo.join("plugins").join(&dir).join(format!("{dir}.wasm"))
}

/// Nanoseconds since `start` (the bench's one clock).
fn since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// One record at the end of the pipeline.
#[derive(Clone, Copy)]
struct Sample {
    seq: u64,
    /// When it was stamped, ns since start.
    stamped: u64,
    latency: u64,
}

/// One batch of `tag` in one instance.
#[derive(Clone, Copy)]
struct TagBatch {
    nanos: u64,
    /// The first batch after the instance saw a new generation (0: the first it ran at all).
    first_of_generation: Option<u64>,
}

/// `tag`'s operator, timed per batch. The generation it checks is the one the wrapped
/// operator follows before the batch, so a flagged batch is the one that took up a version.
struct Timed {
    inner: Box<dyn Operator>,
    cell: PluginCell,
    generation: u64,
    batches: Arc<Mutex<Vec<TagBatch>>>,
}

impl Operator for Timed {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn process(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        let generation = self.cell.generation();
        let first = (generation != self.generation).then_some(if self.generation == 0 { 0 } else { generation });
        self.generation = generation;
        let started = Instant::now();
        let result = self.inner.process(input, out, dead);
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if let Ok(mut batches) = self.batches.lock() {
            batches.push(TagBatch { nanos, first_of_generation: first });
        }
        result
    }

    fn on_watermark(&mut self, wm: i64, out: &mut Batch, dead: &mut DeadLetters) -> Result<Option<i64>, OperatorError> {
        self.inner.on_watermark(wm, out, dead)
    }

    fn finish(&mut self, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.inner.finish(out, dead)
    }
}

#[derive(Deserialize)]
struct Generated {
    seq: u64,
}

#[derive(Serialize)]
struct Stamped {
    seq: u64,
    t: u64,
}

/// `{seq, t}` if `row` is a v1 (`{seq, v1: true, t}`) or v2 (`{seq, version: 2, t}`)
/// output of `tag`, with nothing else in it.
fn read_tagged(row: &[u8]) -> Result<(u64, u64), String> {
    let value = rmpv::decode::read_value(&mut &row[..]).map_err(|e| e.to_string())?;
    let wrong = || format!("neither v1 nor v2 format: {value}");
    let map = value.as_map().ok_or_else(wrong)?;
    let get = |name: &str| map.iter().find(|(k, _)| k.as_str() == Some(name)).map(|(_, v)| v);
    let (seq, t) = (get("seq").and_then(Value::as_u64), get("t").and_then(Value::as_u64));
    let v1 = get("v1") == Some(&Value::Boolean(true));
    let v2 = get("version").and_then(Value::as_u64) == Some(2);
    match (seq, t) {
        (Some(seq), Some(t)) if map.len() == 3 && v1 != v2 => Ok((seq, t)),
        _ => Err(wrong()),
    }
}

/// The job, with `tag` built here (timed, its cell deployable through the returned targets).
fn build(
    config: &Config,
    repo: &Path,
    start: Instant,
    samples: Arc<Mutex<Vec<Sample>>>,
    batches: Arc<Mutex<Vec<TagBatch>>>,
) -> BenchResult<(weir::graph::JobGraph, Targets)> {
    let env = StreamEnvironment::new();
    env.set_batch_size(config.batch).set_parallelism(config.parallelism).set_dead_letter(SinkSpec::discard());
    let v1 = env.load_plugin(plugin_path(repo, 1))?.plugin().clone();
    // Loaded once so that every deploy finds its compiled component in the cache.
    env.load_plugin(plugin_path(repo, 2))?;
    let datagen = DatagenSpec::new()
        .field("seq", FieldGenerator::Sequence { start: 0, end: i64::try_from(config.rows())? - 1 })
        .rows_per_second(config.rate);
    env.from_datagen(datagen)
        .map_native("stamp", move |g: Generated| Stamped { seq: g.seq, t: since(start) })
        .key_by("seq")
        .into_stream()
        .map_native_raw("measure", move |row, out| {
            let now = since(start);
            let (seq, stamped) = read_tagged(row)?;
            let sample = Sample { seq, stamped, latency: now.saturating_sub(stamped) };
            samples.lock().map_err(|_| "the samples are poisoned".to_string())?.push(sample);
            out.extend_from_slice(row);
            Ok(())
        })
        .discard();
    let mut graph = env.graph("hot swap")?;
    if graph.steps().nth(1).map(|s| s.kind) != Some(StepKind::KeyBy) {
        return Err("the job should be stamp, key_by, measure".into());
    }
    let step = format!("map[2] {}.{FUNCTION}", v1.label());
    let cell = PluginCell::new(v1);
    let (name, tag_cell) = (step.clone(), cell.clone());
    let factory: OperatorFactory = Arc::new(move |_: &InstanceContext| {
        let op = TransformOperator::new(name.clone(), TransformKind::Map, FUNCTION.into(), tag_cell.clone())?;
        let timed = Timed { inner: Box::new(op), cell: tag_cell.clone(), generation: 0, batches: batches.clone() };
        Ok(Box::new(timed) as Box<dyn Operator>)
    });
    // Before `measure`, the first step of the stream after key_by's.
    let measure = graph.streams.iter_mut().filter(|s| !s.steps.is_empty()).nth(2).ok_or("no measure step")?;
    measure.steps.insert(0, Step::new(step.clone(), StepKind::Stateless, factory));
    let requirement = Requirement { function: FUNCTION.into(), kinds: vec![FunctionKind::Map] };
    Ok((graph, Targets(vec![Target { uid: step.clone(), step, cell, requirement }])))
}

/// The `q` quantile of sorted `xs` (nearest rank), in ms.
fn quantile_ms(xs: &[u64], q: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    round(xs[rank - 1] as f64 / 1e6, 3)
}

fn summary(mut xs: Vec<u64>) -> serde_json::Value {
    xs.sort_unstable();
    json!({
        "records": xs.len(),
        "p50_ms": quantile_ms(&xs, 0.5),
        "p99_ms": quantile_ms(&xs, 0.99),
        "max_ms": quantile_ms(&xs, 1.0),
    })
}

fn main() -> BenchResult<()> {
    let config = Config::from_env()?;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize()?;
    for version in [1, 2] {
        if !plugin_path(&repo, version).is_file() {
            let hint =
                format!("build it with `weir plugin build plugins/versioned-v{version}-rust` (or `just plugins`)");
            return Err(format!("{} is missing: {hint}", plugin_path(&repo, version).display()).into());
        }
    }
    let components = [1, 2].map(|v| std::fs::read(plugin_path(&repo, v)));
    let [Ok(v1_bytes), Ok(v2_bytes)] = components else { return Err("cannot read the plugins".into()) };

    let start = Instant::now();
    let samples = Arc::new(Mutex::new(Vec::with_capacity(usize::try_from(config.rows())?)));
    let batches = Arc::new(Mutex::new(Vec::new()));
    let (graph, targets) = build(&config, &repo, start, samples.clone(), batches.clone())?;
    eprintln!(
        "hot swap: {} rows at {} rows/s, batches of at most {}, parallelism {}, {} swaps every {} ms",
        config.rows(),
        config.rate,
        config.batch,
        config.parallelism,
        config.swaps,
        SWAP_INTERVAL.as_millis()
    );
    let control = Arc::new(JobControl::default());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let job_control = control.clone();
    let job = std::thread::spawn(move || runtime.block_on(weir::runtime::execute_with(graph, job_control)));

    while control.records_out() == 0 {
        if job.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let first_out = since(start);
    let (mut swaps, mut deploy_ns) = (Vec::new(), Vec::new());
    for i in 0..config.swaps {
        let due = Duration::from_nanos(first_out) + WARM_UP + SWAP_INTERVAL * u32::try_from(i)?;
        std::thread::sleep(due.saturating_sub(start.elapsed()));
        let (bytes, version) = if i % 2 == 0 { (&v2_bytes, 2) } else { (&v1_bytes, 1) };
        let before = since(start);
        let record = targets.deploy(FUNCTION, bytes, &plugin_path(&repo, version))?;
        let after = since(start);
        if control.is_finished() {
            return Err(format!("the job ended before swap {i}: give it more rows").into());
        }
        eprintln!(
            "  swap {i}: {} (generation {}) in {:.1} ms",
            record.plugin,
            record.generation,
            (after - before) as f64 / 1e6
        );
        // The cell swaps as the last thing deploy() does.
        swaps.push(after);
        deploy_ns.push(after - before);
    }
    let report = job.join().map_err(|_| "the job thread panicked")??;
    let samples = std::mem::take(&mut *samples.lock().map_err(|_| "poisoned")?);
    let batches = std::mem::take(&mut *batches.lock().map_err(|_| "poisoned")?);

    // Every record exactly once (formats were checked in `measure`: a wrong one is a dead letter).
    let rows = config.rows();
    let mut seen = vec![0u8; usize::try_from(rows)?];
    for s in &samples {
        let slot = seen.get_mut(usize::try_from(s.seq)?).ok_or_else(|| format!("seq {} was never generated", s.seq))?;
        *slot = slot.saturating_add(1);
    }
    let missing = seen.iter().filter(|&&n| n == 0).count();
    let repeated = seen.iter().filter(|&&n| n > 1).count();
    if report.records_in != rows || report.records_out != rows || report.dead_letters != 0 || missing + repeated > 0 {
        return Err(format!(
            "{} rows in, {} out, {} dead letters (expected {rows}, {rows}, 0); {missing} seqs missing, {repeated} repeated",
            report.records_in, report.records_out, report.dead_letters
        )
        .into());
    }

    // Control points midway between swaps (and after the last one, in the tail): the same
    // windows, measured where no swap happens.
    let half_interval = u64::try_from(SWAP_INTERVAL.as_nanos() / 2)?;
    let controls: Vec<u64> = swaps.iter().map(|&s| s + half_interval).collect();
    let (around, control) =
        (Windows::at(&swaps, &samples, config.window_ns), Windows::at(&controls, &samples, config.window_ns));
    let added = |field: &str| {
        round(around.latency[field].as_f64().unwrap_or(f64::NAN) - control.latency[field].as_f64().unwrap_or(0.0), 3)
    };

    let normal: Vec<u64> = batches.iter().filter(|b| b.first_of_generation.is_none()).map(|b| b.nanos).collect();
    let after_swap: Vec<u64> =
        batches.iter().filter(|b| b.first_of_generation.is_some_and(|g| g > 0)).map(|b| b.nanos).collect();
    let at_start: Vec<u64> = batches.iter().filter(|b| b.first_of_generation == Some(0)).map(|b| b.nanos).collect();
    let (normal, after_swap, at_start) =
        (summary_batches(normal), summary_batches(after_swap), summary_batches(at_start));
    let extra = |field: &str| {
        round(after_swap[field].as_f64().unwrap_or(f64::NAN) - normal["p50_ms"].as_f64().unwrap_or(0.0), 3)
    };
    let added_p99 = added("p99_ms");
    deploy_ns.sort_unstable();

    let result = json!({
        "bench": "hot_swap",
        "job": "datagen {seq} -> stamp t (native) -> key_by seq -> tag (versioned v1/v2, passes t) -> measure now - t (native) -> discard",
        "rate_rows_per_s": config.rate,
        "batch_size": config.batch,
        "parallelism": config.parallelism,
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "swaps": config.swaps,
        "swap_interval_ms": SWAP_INTERVAL.as_millis(),
        "window_ms": config.window_ns / 1_000_000,
        "around_swap": around.report(),
        "control_between_swaps": control.report(),
        "added_latency_ms": { "p50": added("p50_ms"), "p99": added_p99, "max": added("max_ms") },
        "tag_batch_ms": {
            "steady": normal,
            "first_after_swap": after_swap,
            "first_at_start": at_start,
            "first_after_swap_extra_ms": { "p50": extra("p50_ms"), "max": extra("max_ms") },
        },
        "deploy_ms": { "p50": quantile_ms(&deploy_ns, 0.5), "max": quantile_ms(&deploy_ns, 1.0) },
        "goal": { "p99_added_latency_ms_below": 10, "met": added_p99 < 10.0 },
        "correctness": { "records": rows, "every_seq_once": true, "formats": "v1 or v2", "dead_letters": 0, "ok": true },
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}

/// Latency and output rate in windows around some points in time (swaps, or control points).
struct Windows {
    /// Latency of the records stamped within ± the window of a point.
    latency: serde_json::Value,
    /// The largest latency near each point, ms.
    max_per_point: Vec<f64>,
    /// Output records/s in the 100 ms before, around and after the points.
    before: f64,
    during: f64,
    after: f64,
    /// The fewest records that came out in a 10 ms bin of a `during` window, per second.
    emptiest_bin: f64,
}

impl Windows {
    fn at(points: &[u64], samples: &[Sample], window_ns: u64) -> Self {
        let near = |p: u64| samples.iter().filter(move |s| s.stamped.abs_diff(p) <= window_ns);
        let latency = summary(points.iter().flat_map(|&p| near(p).map(|s| s.latency)).collect());
        let max_per_point =
            points.iter().map(|&p| round(near(p).map(|s| s.latency).max().unwrap_or(0) as f64 / 1e6, 2)).collect();
        // By the time each record came out.
        let mut out_at: Vec<u64> = samples.iter().map(|s| s.stamped + s.latency).collect();
        out_at.sort_unstable();
        let count = |from: u64, to: u64| out_at.partition_point(|&o| o < to) - out_at.partition_point(|&o| o < from);
        let rate = |from: fn(u64) -> u64| {
            let n: usize = points.iter().map(|&p| count(from(p), from(p) + RATE_WINDOW_NS)).sum();
            (n as f64 / (RATE_WINDOW_NS as f64 / 1e9 * points.len() as f64)).round()
        };
        let emptiest = points
            .iter()
            .flat_map(|&p| (0..RATE_WINDOW_NS / BIN_NS).map(move |b| p - RATE_WINDOW_NS / 2 + b * BIN_NS))
            .map(|from| count(from, from + BIN_NS))
            .min()
            .unwrap_or(0);
        Self {
            latency,
            max_per_point,
            before: rate(|p| p - RATE_WINDOW_NS * 3 / 2),
            during: rate(|p| p - RATE_WINDOW_NS / 2),
            after: rate(|p| p + RATE_WINDOW_NS / 2),
            emptiest_bin: (emptiest as f64 / (BIN_NS as f64 / 1e9)).round(),
        }
    }

    fn report(&self) -> serde_json::Value {
        json!({
            "latency": self.latency,
            "max_latency_ms_per_point": self.max_per_point,
            "records_per_s": {
                "before": self.before,
                "during": self.during,
                "after": self.after,
                "during_emptiest_10ms_bin": self.emptiest_bin,
            },
        })
    }
}

fn summary_batches(xs: Vec<u64>) -> serde_json::Value {
    let mut s = summary(xs);
    if let Some(map) = s.as_object_mut()
        && let Some(n) = map.remove("records")
    {
        map.insert("batches".into(), n);
    }
    s
}
