//! The Nexmark benchmark: every query of `benches/nexmark/` (q0..q8) on the same generated
//! stream, and the stateless ones (q0, q1, q2) also with native Rust closures in place of
//! the plugin. A table on stderr, one JSON document on stdout.
//!
//!     just bench-nexmark                                    (or cargo bench --workspace --bench nexmark)
//!     WEIR_NEXMARK_EVENTS=200000 just bench-nexmark         (events per query, default 800 k)
//!     WEIR_NEXMARK_QUERIES=q1,q5 just bench-nexmark         (a subset)
//!
//! The stateless queries' runs are short, and their plugin/native ratio is the point, so
//! each variant runs three times, alternating with the other, and the median run (by
//! events/s) is reported. Each run is a child process (this binary with `--child QUERY VARIANT`), so its peak RSS
//! (`wait4`'s `ru_maxrss`) is its own. The plugin variant is the job file itself
//! (`weir::job::load`, `JobSpec::build`), with `events` set and the source's delayed events
//! off (`prob-delayed-event: 0`, as Beam's batch mode: see latency below); the native
//! variant builds the same steps from native operators written here, over the same serde
//! types the plugin uses.
//!
//! Measured per run:
//! - `events_per_s`: events / the job's own time (plugin loading and compiling excluded);
//! - `cores` and `events_per_core_s`: the process's CPU time (user + system, `getrusage`)
//!   during the job, divided by the job's time, and events / that CPU time;
//! - latency, `p50_ms` / `p99_ms` / `max_ms`: for every output record, the time from when
//!   the input event that makes it due entered the pipeline (the first operator after the
//!   source, probed by a step inserted there) to when the output left the last operator (a
//!   step appended there). The due event is the first event whose event time is at or past
//!   the output's: the output's own input for a map, filter or join (its `date_time`), the
//!   first event past the window's end for a window or timer output (its timestamp), so that
//!   figure includes waiting for the watermark (3 s of event time, the job files'
//!   out-of-orderness bound). Outputs only the end of the input makes due (windows still
//!   open at the end) are counted apart (`due_at_end`), not in the percentiles. The runs are
//!   unthrottled, so this is latency at full load: it includes time in full channels.
//!   Event time maps to an event index because the bench's stream has no delayed events
//!   (event `i` has `date_time = base + i * 1000 / 10000`);
//! - `peak_rss_mib`: the child's peak resident memory.
//!
//! Checked (a fast wrong answer fails the bench with a non-zero exit): every run reads all
//! events with no dead letter and nothing late; a native variant emits the same records as
//! the plugin (count and an order-independent xxh3 checksum of the output bytes). The
//! results themselves are checked against independently computed answers by
//! `tests/nexmark.rs`.
//!
//! Needs the plugin built: `just plugins` (or `weir plugin build plugins/nexmark-rust`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::{BenchResult, env_count, round, run_measured};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weir::connectors::{NexmarkSpec, SinkSpec, SourceSpec};
use weir::graph::{JobGraph, Step, StepKind, StreamInput};
use weir::job::InputSpec;
use weir::operator::NativeMap;
use weir::record::Batch;
use weir::task::{DeadLetters, InstanceContext, Operator, OperatorError, OperatorFactory};
use weir_nexmark::Event;

const DEFAULT_EVENTS: u64 = 800_000;
/// The queries; `q3-join` is q3 on the host's regular join instead of a process function
/// (its output must equal q3's).
const QUERIES: [&str; 10] = ["q0", "q1", "q2", "q3", "q3-join", "q4", "q5", "q6", "q7", "q8"];
const STATELESS: [&str; 3] = ["q0", "q1", "q2"];
const PLUGIN_DIR: &str = "nexmark-rust";
/// Runs of each variant of a stateless query; the median one is reported.
const STATELESS_ROUNDS: usize = 3;
/// Latency histogram: bucket `floor(ln(1 + µs) * 100)`, about 1% wide.
const BUCKETS: usize = 2_200;

fn repo() -> BenchResult<PathBuf> {
    Ok(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize()?)
}

// --- the native variants: the plugin's logic over the same types --------------------------

#[derive(Deserialize)]
struct Kind {
    event_type: String,
}

#[derive(Deserialize)]
struct BidPrice {
    auction: u64,
    bidder: u64,
    price: u64,
    date_time: i64,
    extra: String,
}

#[derive(Serialize)]
struct EuroBid {
    auction: u64,
    bidder: u64,
    price: f64,
    date_time: i64,
    extra: String,
}

#[derive(Deserialize)]
struct MaybeBid {
    event_type: String,
    #[serde(default)]
    auction: Option<u64>,
}

fn is_bid(row: &[u8]) -> Result<bool, String> {
    let k: Kind = rmp_serde::from_slice(row).map_err(|e| e.to_string())?;
    Ok(k.event_type == "bid")
}

fn q2(row: &[u8]) -> Result<bool, String> {
    let e: MaybeBid = rmp_serde::from_slice(row).map_err(|e| e.to_string())?;
    Ok(e.event_type == "bid" && e.auction.is_some_and(|a| a.is_multiple_of(123)))
}

/// A filter by a native function over raw rows (the builder API has native maps only).
struct NativeFilter {
    name: String,
    keep: fn(&[u8]) -> Result<bool, String>,
}

impl Operator for NativeFilter {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        for i in 0..input.len() {
            match (self.keep)(input.value(i)) {
                Ok(true) => out.push_record(input.value(i), input.meta(i)),
                Ok(false) => {}
                Err(e) => dead.push(weir::task::DeadLetter::of_row(&self.name, "error", e, &input, i)),
            }
        }
        Ok(())
    }
}

fn step(name: &str, factory: OperatorFactory) -> Step {
    Step::new(name, StepKind::Stateless, factory)
}

fn filter_step(name: &str, keep: fn(&[u8]) -> Result<bool, String>) -> Step {
    let op_name = name.to_string();
    step(
        name,
        Arc::new(move |_: &InstanceContext| {
            Ok(Box::new(NativeFilter { name: op_name.clone(), keep }) as Box<dyn Operator>)
        }),
    )
}

fn map_step<T, U>(name: &str, f: fn(T) -> U) -> Step
where
    T: serde::de::DeserializeOwned + 'static,
    U: Serialize + 'static,
{
    let op_name = name.to_string();
    step(
        name,
        Arc::new(move |_: &InstanceContext| Ok(Box::new(NativeMap::typed(op_name.clone(), f)) as Box<dyn Operator>)),
    )
}

/// The native steps of a stateless query.
fn native_steps(query: &str) -> BenchResult<Vec<Step>> {
    Ok(match query {
        "q0" => vec![map_step("map[0] native q0", |e: Event| e)],
        "q1" => vec![
            filter_step("filter[0] native is_bid", is_bid),
            map_step("map[1] native q1", |b: BidPrice| EuroBid {
                auction: b.auction,
                bidder: b.bidder,
                price: 0.908 * b.price as f64,
                date_time: b.date_time,
                extra: b.extra,
            }),
        ],
        "q2" => vec![filter_step("filter[0] native q2", q2)],
        other => return Err(format!("no native variant of {other}").into()),
    })
}

// --- probes ---------------------------------------------------------------------------------

/// What the probes share: when events entered, and what came out.
#[derive(Default)]
struct Probes {
    /// After each batch the head probe saw: (events seen so far, µs since `start`).
    entered: Mutex<Vec<(u64, u64)>>,
    start: Mutex<Option<Instant>>,
    results: Mutex<Tally>,
}

#[derive(Clone)]
struct Tally {
    histogram: Vec<u64>,
    due_at_end: u64,
    outputs: u64,
    checksum: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Self { histogram: vec![0; BUCKETS], due_at_end: 0, outputs: 0, checksum: 0 }
    }
}

impl Tally {
    fn merge(&mut self, other: &Tally) {
        for (a, b) in self.histogram.iter_mut().zip(&other.histogram) {
            *a += b;
        }
        self.due_at_end += other.due_at_end;
        self.outputs += other.outputs;
        self.checksum = self.checksum.wrapping_add(other.checksum);
    }

    /// The upper bound (ms) of the bucket holding quantile `q`.
    fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.histogram.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, n) in self.histogram.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(((b as f64 + 1.0) / 100.0).exp_m1() / 1e3);
            }
        }
        None
    }
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Probes {
    fn micros(&self) -> u64 {
        let start = *locked(&self.start).get_or_insert_with(Instant::now);
        u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// First operator: notes when each batch of events entered.
struct Head {
    probes: Arc<Probes>,
    seen: u64,
}

impl Operator for Head {
    fn name(&self) -> &str {
        "probe head"
    }

    fn process(&mut self, input: Batch, out: &mut Batch, _: &mut DeadLetters) -> Result<(), OperatorError> {
        self.seen += input.len() as u64;
        let now = self.probes.micros();
        locked(&self.probes.entered).push((self.seen, now));
        *out = input;
        Ok(())
    }
}

/// Last operator: each output's latency and checksum.
struct Tail {
    probes: Arc<Probes>,
    spec: NexmarkSpec,
    tally: Tally,
}

impl Tail {
    /// The first event whose event time is at or past `t` (the stream has no delays).
    fn due_event(&self, t: i64) -> u64 {
        let d = i128::from(t) - i128::from(self.spec.base_time_ms);
        if d <= 0 {
            return 0;
        }
        let rate = i128::from(self.spec.event_rate());
        u64::try_from((d * rate + 999) / 1000).unwrap_or(u64::MAX)
    }
}

impl Operator for Tail {
    fn name(&self) -> &str {
        "probe tail"
    }

    fn process(&mut self, input: Batch, out: &mut Batch, _: &mut DeadLetters) -> Result<(), OperatorError> {
        let now = self.probes.micros();
        {
            let entered = locked(&self.probes.entered);
            for i in 0..input.len() {
                let value = input.value(i);
                self.tally.outputs += 1;
                self.tally.checksum = self.tally.checksum.wrapping_add(xxhash_rust::xxh3::xxh3_64(value));
                let t = input.timestamp(i).or_else(|| date_time(value));
                let Some(t) = t else {
                    return Err(OperatorError::Failed {
                        operator: "probe tail".into(),
                        message: "an output with neither a timestamp nor a `date_time`".into(),
                    });
                };
                let due = self.due_event(t);
                let at = entered.partition_point(|(seen, _)| *seen <= due);
                match entered.get(at) {
                    Some(&(_, entered_us)) if due < self.spec.events => {
                        let us = now.saturating_sub(entered_us) as f64;
                        let bucket = ((us.ln_1p() * 100.0) as usize).min(BUCKETS - 1);
                        self.tally.histogram[bucket] += 1;
                    }
                    _ => self.tally.due_at_end += 1,
                }
            }
        }
        if out.is_empty() {
            *out = input;
        } else {
            for i in 0..input.len() {
                out.push_record(input.value(i), input.meta(i));
            }
        }
        Ok(())
    }

    fn finish(&mut self, _: &mut Batch, _: &mut DeadLetters) -> Result<(), OperatorError> {
        locked(&self.probes.results).merge(&self.tally);
        self.tally = Tally::default();
        Ok(())
    }
}

/// The `date_time` of a flat map of strings and numbers, read in place (the probe must cost
/// little next to what it measures); `None` if there is none or the map holds other values.
fn date_time(mut row: &[u8]) -> Option<i64> {
    use rmp::Marker;
    let entries = rmp::decode::read_map_len(&mut row).ok()?;
    for _ in 0..entries {
        let key_len = rmp::decode::read_str_len(&mut row).ok()? as usize;
        let key = row.get(..key_len)?;
        row = &row[key_len..];
        if key == b"date_time" {
            return rmp::decode::read_int(&mut row).ok();
        }
        let marker = Marker::from_u8(*row.first()?);
        let skip = match marker {
            Marker::FixStr(n) => 1 + n as usize,
            Marker::Str8 => 2 + *row.get(1)? as usize,
            Marker::Str16 => 3 + u16::from_be_bytes([*row.get(1)?, *row.get(2)?]) as usize,
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::True | Marker::False | Marker::Null => 1,
            Marker::U8 | Marker::I8 => 2,
            Marker::U16 | Marker::I16 => 3,
            Marker::U32 | Marker::I32 | Marker::F32 => 5,
            Marker::U64 | Marker::I64 | Marker::F64 => 9,
            _ => return None,
        };
        row = row.get(skip..)?;
    }
    None
}

fn add_probes(graph: &mut JobGraph, probes: &Arc<Probes>, spec: &NexmarkSpec) {
    let p = probes.clone();
    let head: OperatorFactory =
        Arc::new(move |_: &InstanceContext| Ok(Box::new(Head { probes: p.clone(), seen: 0 }) as Box<dyn Operator>));
    // The head on the source's own stream runs first after it; the tail on the stream the
    // sink writes runs last.
    let source = graph.streams.iter().position(|s| matches!(s.input, StreamInput::Source(_))).expect("a source");
    graph.streams[source].steps.insert(0, step("probe head", head));
    let (p, spec) = (probes.clone(), spec.clone());
    let tail: OperatorFactory = Arc::new(move |_: &InstanceContext| {
        Ok(Box::new(Tail { probes: p.clone(), spec: spec.clone(), tally: Tally::default() }) as Box<dyn Operator>)
    });
    let written = graph.sinks[0].input;
    graph.streams[written].steps.push(step("probe tail", tail));
}

// --- one run, in a child process --------------------------------------------------------------

fn cpu_micros() -> u64 {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct, and the pointer is
    // valid for the call.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let us = |t: libc::timeval| (t.tv_sec as u64) * 1_000_000 + t.tv_usec as u64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// `--child QUERY VARIANT`: run once, print the figures as one JSON line.
fn child(query: &str, variant: &str) -> BenchResult<()> {
    let events = env_count("WEIR_NEXMARK_EVENTS", DEFAULT_EVENTS)?;
    let job_file = repo()?.join(format!("benches/nexmark/{query}.yaml"));
    let mut job = weir::job::load(&job_file)?;
    let Some(spec) = job.source().get::<NexmarkSpec>() else {
        return Err(format!("{}: not a nexmark source", job_file.display()).into());
    };
    let spec = NexmarkSpec { events, ..spec.clone() }.delays(0.0, 0);
    if let InputSpec::Sources(sources) = &mut job.streams[0].input {
        sources[0] = SourceSpec::new(spec.clone());
    }
    let name = format!("nexmark {query} {variant}");
    let mut graph = match variant {
        "plugin" => job.build()?.graph(&name)?,
        "native" => {
            let source = SourceSpec::new(spec.clone());
            JobGraph::line(&name, source, Vec::new(), native_steps(query)?, SinkSpec::discard())
        }
        other => return Err(format!("no variant `{other}` (plugin, native)").into()),
    };
    let probes = Arc::new(Probes::default());
    add_probes(&mut graph, &probes, &spec);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let cpu_before = cpu_micros();
    let report = rt.block_on(weir::runtime::execute(graph))?;
    let cpu_us = cpu_micros() - cpu_before;
    let tally = locked(&probes.results).clone();
    let line = json!({
        "records_in": report.records_in,
        "records_out": report.records_out,
        "dead_letters": report.dead_letters,
        "late": report.late_records,
        "job_ms": report.elapsed.as_secs_f64() * 1e3,
        "cpu_ms": cpu_us as f64 / 1e3,
        "p50_ms": tally.quantile_ms(0.5),
        "p99_ms": tally.quantile_ms(0.99),
        "max_ms": tally.quantile_ms(1.0),
        "latency_samples": tally.histogram.iter().sum::<u64>(),
        "due_at_end": tally.due_at_end,
        "outputs": tally.outputs,
        "checksum": tally.checksum,
    });
    println!("{line}");
    Ok(())
}

// --- the parent -------------------------------------------------------------------------------

#[derive(Clone)]
struct Run {
    query: String,
    variant: &'static str,
    figures: Value,
    events_per_s: f64,
}

fn run(query: &str, variant: &'static str, events: u64) -> BenchResult<Run> {
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("--child").arg(query).arg(variant).env_remove("WEIR_LOG");
    let done = run_measured(&mut command)?;
    let line =
        done.stdout.lines().last().ok_or_else(|| format!("no figures from {query} {variant}:\n{}", done.stderr))?;
    let f: Value = serde_json::from_str(line)?;
    let num = |k: &str| f[k].as_f64().ok_or_else(|| format!("{query} {variant}: no `{k}` in {line}"));
    let (records_in, dead, late) = (num("records_in")?, num("dead_letters")?, num("late")?);
    if records_in as u64 != events || dead != 0.0 || late != 0.0 {
        return Err(format!(
            "{query} {variant}: {records_in} events in (expected {events}), {dead} dead letters, {late} late\n{}",
            done.stderr
        )
        .into());
    }
    let (job_ms, cpu_ms) = (num("job_ms")?, num("cpu_ms")?);
    let events_per_s = events as f64 / (job_ms / 1e3);
    let cores = cpu_ms / job_ms;
    let figures = json!({
        "events_per_s": events_per_s.round(),
        "cores": round(cores, 2),
        "events_per_core_s": (events as f64 / (cpu_ms / 1e3)).round(),
        "p50_ms": f["p50_ms"].as_f64().map(|v| round(v, 2)),
        "p99_ms": f["p99_ms"].as_f64().map(|v| round(v, 2)),
        "max_ms": f["max_ms"].as_f64().map(|v| round(v, 2)),
        "latency_samples": f["latency_samples"],
        "due_at_end": f["due_at_end"],
        "peak_rss_mib": round(done.peak_rss_kib as f64 / 1024.0, 1),
        "job_ms": round(job_ms, 1),
        "process_ms": round(done.process_ms, 1),
        "records_out": f["records_out"],
        "checksum": f["checksum"],
    });
    Ok(Run { query: query.to_string(), variant, figures, events_per_s })
}

fn main() -> BenchResult<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let (Some(query), Some(variant)) = (args.get(i + 1), args.get(i + 2)) else {
            return Err("--child QUERY VARIANT".into());
        };
        return child(query, variant);
    }
    let wasm = repo()?.join("plugins").join(PLUGIN_DIR).join(format!("{PLUGIN_DIR}.wasm"));
    if !wasm.is_file() {
        let hint = format!("build it with `weir plugin build plugins/{PLUGIN_DIR}` (or `just plugins`)");
        return Err(format!("{} is missing: {hint}", wasm.display()).into());
    }
    let events = env_count("WEIR_NEXMARK_EVENTS", DEFAULT_EVENTS)?;
    let queries: Vec<String> = match std::env::var("WEIR_NEXMARK_QUERIES") {
        Ok(list) => list.split(',').map(|q| q.trim().to_string()).filter(|q| !q.is_empty()).collect(),
        Err(_) => QUERIES.iter().map(|q| q.to_string()).collect(),
    };
    if let Some(bad) = queries.iter().find(|q| !QUERIES.contains(&q.as_str())) {
        return Err(format!("WEIR_NEXMARK_QUERIES: no query `{bad}` (q0..q8, q3-join)").into());
    }
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let started = Instant::now();
    let mut runs = Vec::new();
    for query in &queries {
        if !STATELESS.contains(&query.as_str()) {
            eprintln!("{query} plugin: {events} events ...");
            runs.push(run(query, "plugin", events)?);
            continue;
        }
        // Short runs, compared with each other: alternate the variants and keep each one's
        // median run, so that a burst of other load on the machine does not make the ratio.
        let mut tries: Vec<Run> = Vec::new();
        for round in 1..=STATELESS_ROUNDS {
            for variant in ["plugin", "native"] {
                eprintln!("{query} {variant} ({round}/{STATELESS_ROUNDS}): {events} events ...");
                tries.push(run(query, variant, events)?);
            }
        }
        for variant in ["plugin", "native"] {
            let mut mine: Vec<Run> = tries.iter().filter(|r| r.variant == variant).cloned().collect();
            mine.sort_by(|a, b| a.events_per_s.total_cmp(&b.events_per_s));
            let median = mine.swap_remove(mine.len() / 2);
            runs.push(median);
        }
    }

    // The two versions of q3 give one output.
    let q3 = |query: &str| runs.iter().find(|r| r.query == query && r.variant == "plugin");
    if let (Some(a), Some(b)) = (q3("q3"), q3("q3-join"))
        && (a.figures["records_out"] != b.figures["records_out"] || a.figures["checksum"] != b.figures["checksum"])
    {
        return Err("q3-join: the join's output differs from q3's process function".into());
    }

    let mut results = serde_json::Map::new();
    eprintln!();
    eprintln!(
        "{:<6} {:<7} {:>12} {:>6} {:>14} {:>9} {:>9} {:>9} {:>9}",
        "query", "variant", "events/s", "cores", "events/s/core", "p50 ms", "p99 ms", "RSS MiB", "vs native"
    );
    for r in &runs {
        let native = runs.iter().find(|n| n.query == r.query && n.variant == "native");
        let ratio = match (r.variant, native) {
            ("plugin", Some(n)) => {
                let same = n.figures["records_out"] == r.figures["records_out"]
                    && n.figures["checksum"] == r.figures["checksum"];
                if !same {
                    return Err(format!("{}: the native variant's output differs from the plugin's", r.query).into());
                }
                Some(round(r.events_per_s / n.events_per_s, 3))
            }
            _ => None,
        };
        let f = &r.figures;
        let ms = |k: &str| f[k].as_f64().map_or("-".to_string(), |v| format!("{v:.2}"));
        eprintln!(
            "{:<6} {:<7} {:>12.0} {:>6.2} {:>14.0} {:>9} {:>9} {:>9.1} {:>9}",
            r.query,
            r.variant,
            r.events_per_s,
            f["cores"].as_f64().unwrap_or(0.0),
            f["events_per_core_s"].as_f64().unwrap_or(0.0),
            ms("p50_ms"),
            ms("p99_ms"),
            f["peak_rss_mib"].as_f64().unwrap_or(0.0),
            ratio.map_or(String::new(), |x| format!("{x:.3}")),
        );
        let mut figures = f.clone();
        if let Some(obj) = figures.as_object_mut() {
            obj.remove("checksum");
            if let Some(x) = ratio {
                obj.insert("plugin_vs_native".into(), json!(x));
            }
        }
        let entry = results.entry(r.query.clone()).or_insert_with(|| json!({}));
        if let Some(obj) = entry.as_object_mut() {
            obj.insert(r.variant.to_string(), figures);
        }
    }
    let report = json!({
        "bench": "nexmark",
        "events": events,
        "seed": 42,
        "nproc": nproc,
        "event_time": "10,000 events per second of event time; no delayed events (see the bench's docs)",
        "latency": "from the due input event entering the first operator to the output leaving the last one, unthrottled",
        "wall_s": round(started.elapsed().as_secs_f64(), 1),
        "stateless_runs": format!("q0..q2: the median of {STATELESS_ROUNDS} alternating runs of each variant"),
        "queries": results,
        "correctness": "every run read all events without dead letters or late records; native variants matched the plugin's output (count and checksum)",
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
