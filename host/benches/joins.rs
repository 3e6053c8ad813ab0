//! The join benchmark: Weir's window join (10 s tumbling) and interval join (-5 s..+10 s)
//! of two generated streams, beside Flink 2.3's SQL window join and interval join of the
//! same rows in the same run. One JSON object per join on stdout, progress on stderr.
//!
//!     just bench-joins                                   (sets up the Flink venv, then this)
//!     cargo bench --workspace --bench joins
//!     WEIR_BENCH_JOIN_ROWS=100000 WEIR_BENCH_JOIN_KEYS=1000 cargo bench --workspace --bench joins
//!
//! Sizes: `WEIR_BENCH_JOIN_ROWS` rows per stream (default 10 M), `WEIR_BENCH_JOIN_KEYS` keys
//! (default 1 M); `WEIR_BENCH_JOINS=window` or `interval` runs one; `WEIR_BENCH_NO_PEERS=1`
//! leaves Flink out; `WEIR_FLINK_VENV` is the PyFlink venv (default `.anchors/flink`).
//!
//! The data ([`join_data`]): streams `a` and `b`, each of rows `seq = 0..rows` with event
//! time `seq` ms (1 ms per row, in order, so no row is late) and a key `k` in `0..keys`
//! worked out from `seq` by an integer hash that Flink SQL computes too, so both engines join
//! the very same rows. On Weir each stream is a `datagen` source (`seq`: sequence, `ts`:
//! event-time, step 1 ms, no out-of-orderness), a native map that adds `k`,
//! `assign_timestamps` (no out-of-orderness) and `key_by: k`; the join (parallelism 1,
//! built with the builder API as a job file's `join`/`interval_join` would be) writes to a
//! blackhole. On Flink (`benches/peers/flink_joins.py`): two `datagen` tables with `k` and
//! `ts` as computed columns, `WATERMARK FOR ts AS ts`, the SQL joins, parallelism 1, HashMap
//! state backend, a `print` sink whose lines the script counts.
//!
//! Measured for Weir, in a child process per join (this binary with `--child JOIN ROWS KEYS`):
//! - `events_per_s`: rows of both streams / the job's own time;
//! - `cores` and `events_per_cpu_s`: the process's CPU time (user + system, `getrusage`)
//!   during the job over its time, and events per CPU-second;
//! - latency, `p50_ms` / `p99_ms` / `max_ms` (ingestion latency): for each match, from when
//!   the rows that make it due had both entered the pipeline (probes right after each
//!   source) to when the match left the join. For the interval join those are its own two
//!   rows; for the window join, the first row of each stream at or past the window's end
//!   (the watermark it brings fires the window), so the figure includes waiting for the
//!   window to end. Matches only the end of the input makes due are counted apart
//!   (`due_at_end`). The runs are unthrottled: latency at full load;
//! - `peak_state_rows` / `peak_state_keys`: the most rows (both sides) and keys the join
//!   held, sampled after every batch and watermark (`JoinStats`); `peak_rss_mib`: the child's
//!   peak resident memory (`wait4`);
//! - `matches` and `checksum` (an order-independent hash of the pairs' `seq`s).
//!
//! For Flink: events / the job's net runtime (Flink's `JobExecutionResult`: JVM start and SQL
//! planning excluded; `wall_ms` includes planning), the JVM's CPU time from the job's
//! submission to its end, matches and checksum. `ratio` is Weir over Flink.
//!
//! Checked (a fast wrong answer fails the bench with a non-zero exit): Weir's matches and
//! checksum equal the answer this bench works out from the rows themselves
//! ([`join_data::expected`]), with every row in, no dead letter and nothing late. Flink's
//! are compared with the same answer and reported (`matches_equal`), not enforced.

mod common;
mod join_data;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{BenchResult, env_count, round, run_measured};
use join_data::{Answer, Join, LOWER_MS, Side, UPPER_MS, WINDOW_MS};
use serde::Deserialize;
use serde_json::{Value, json};
use weir::connectors::{DatagenSpec, FieldGenerator};
use weir::env::StreamEnvironment;
use weir::graph::{JobGraph, Step, StepKind, StreamInput};
use weir::operator::{IntervalJoin, IntervalJoinConfig, JoinSides, JoinStats, WindowJoin, WindowJoinConfig};
use weir::record::Batch;
use weir::task::{DeadLetters, InstanceContext, Operator, OperatorError, OperatorFactory};
use weir::time::TimeSignal;
use weir::window::WindowAssigner;

const DEFAULT_ROWS: u64 = 10_000_000;
const DEFAULT_KEYS: u64 = 1_000_000;

fn repo() -> BenchResult<PathBuf> {
    Ok(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize()?)
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// --- the Weir job -----------------------------------------------------------------------------

/// A stream's datagen rows `{seq, ts}`.
fn datagen(side: Side, rows: u64) -> DatagenSpec {
    DatagenSpec::new()
        .field("seq", FieldGenerator::Sequence { start: 0, end: rows as i64 - 1 })
        .field("ts", FieldGenerator::EventTime { start_ms: 0, step_ms: 1, max_out_of_orderness_ms: 0 })
        .seed(if side == Side::A { 1 } else { 2 })
}

/// `{seq, ts}` -> `{k, seq, ts}`: the key written in front, the rest copied as it is.
fn with_key(side: Side, keys: u64, row: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let bad = |e: &dyn std::fmt::Display| format!("not a datagen row {{seq, ts}}: {e}");
    let mut rest = row;
    let fields = rmp::decode::read_map_len(&mut rest).map_err(|e| bad(&e))?;
    let entries = rest;
    let (name, mut rest) = rmp::decode::read_str_from_slice(rest).map_err(|e| bad(&e))?;
    if name != "seq" {
        return Err(bad(&format!("its first field is `{name}`")));
    }
    let seq: u64 = rmp::decode::read_int(&mut rest).map_err(|e| bad(&e))?;
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_map_len(out, fields + 1);
    let _ = rmp::encode::write_str(out, "k");
    let _ = rmp::encode::write_uint(out, join_data::key(side, seq, keys));
    out.extend_from_slice(entries);
    Ok(())
}

/// The join as a job builds it: both streams keyed by `k`, joined, into a blackhole.
fn build(join: Join, rows: u64, keys: u64) -> BenchResult<JobGraph> {
    let env = StreamEnvironment::new();
    env.set_parallelism(1);
    let stream = |side: Side| {
        env.from_datagen(datagen(side, rows))
            .map_native_raw("k", move |row, out| with_key(side, keys, row, out))
            .assign_timestamps("ts", Duration::ZERO)
            .key_by("k")
    };
    let joined = stream(Side::A).join(stream(Side::B)).sides(Side::A.name(), Side::B.name());
    match join {
        Join::Window => joined.window(tumbling()),
        Join::Interval => joined.between(LOWER_MS, UPPER_MS),
    }
    .discard();
    Ok(env.graph(&format!("join bench {}", join.name()))?)
}

fn tumbling() -> WindowAssigner {
    WindowAssigner::Tumbling { size: WINDOW_MS as i64, offset: 0 }
}

// --- probes -----------------------------------------------------------------------------------

/// What the probes share: when each stream's batches entered, and what the join did.
struct Probes {
    start: Instant,
    /// Per stream (a, b): rows seen after each batch, and when it entered (µs since start).
    entered: [Mutex<Vec<(u64, u64)>>; 2],
    join: Mutex<Option<Observed>>,
    tail: Mutex<Option<Tally>>,
}

impl Probes {
    fn micros(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// First operator after a source: notes when each batch entered.
struct Head {
    probes: Arc<Probes>,
    side: usize,
    seen: u64,
}

impl Operator for Head {
    fn name(&self) -> &str {
        "probe head"
    }

    fn process(&mut self, input: Batch, out: &mut Batch, _: &mut DeadLetters) -> Result<(), OperatorError> {
        self.seen += input.len() as u64;
        let now = self.probes.micros();
        locked(&self.probes.entered[self.side]).push((self.seen, now));
        *out = input;
        Ok(())
    }
}

/// The join's figures: its own counters at the end and the most it held.
#[derive(Debug, Clone, Copy, Default)]
struct Observed {
    last: JoinStats,
    peak_rows: usize,
    peak_keys: usize,
}

/// A join operator that has [`JoinStats`].
trait WithStats: Operator {
    fn join_stats(&self) -> JoinStats;
}

impl WithStats for WindowJoin {
    fn join_stats(&self) -> JoinStats {
        self.stats()
    }
}

impl WithStats for IntervalJoin {
    fn join_stats(&self) -> JoinStats {
        self.stats()
    }
}

/// The join itself, every call passed through, its state sampled after each.
struct Measured<J> {
    join: J,
    seen: Observed,
    probes: Arc<Probes>,
}

impl<J: WithStats> Measured<J> {
    fn sample<T>(&mut self, result: T) -> T {
        let s = self.join.join_stats();
        self.seen = Observed {
            last: s,
            peak_rows: self.seen.peak_rows.max(s.state_rows),
            peak_keys: self.seen.peak_keys.max(s.keys),
        };
        result
    }
}

impl<J: WithStats> Operator for Measured<J> {
    fn name(&self) -> &str {
        self.join.name()
    }

    fn process(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        let r = self.join.process(input, out, dead);
        self.sample(r)
    }

    fn process_broadcast(
        &mut self,
        input: Batch,
        out: &mut Batch,
        dead: &mut DeadLetters,
    ) -> Result<(), OperatorError> {
        self.join.process_broadcast(input, out, dead)
    }

    fn process_second(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        let r = self.join.process_second(input, out, dead);
        self.sample(r)
    }

    fn on_watermark(&mut self, w: i64, out: &mut Batch, dead: &mut DeadLetters) -> Result<Option<i64>, OperatorError> {
        let r = self.join.on_watermark(w, out, dead);
        self.sample(r)
    }

    fn take_time_signal(&mut self) -> Option<TimeSignal> {
        self.join.take_time_signal()
    }

    fn next_processing_timer(&self) -> Option<i64> {
        self.join.next_processing_timer()
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.join.on_processing_time(now, out, dead)
    }

    fn snapshot(&mut self, id: u64) -> Result<Option<Vec<u8>>, OperatorError> {
        self.join.snapshot(id)
    }

    fn checkpoint_complete(&mut self, id: u64) -> Result<(), OperatorError> {
        self.join.checkpoint_complete(id)
    }

    fn restore(&mut self, blobs: &[&[u8]], owns: &dyn Fn(&[u8]) -> bool) -> Result<(), OperatorError> {
        self.join.restore(blobs, owns)
    }

    fn finish(&mut self, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        let r = self.join.finish(out, dead);
        let r = self.sample(r);
        *locked(&self.probes.join) = Some(self.seen);
        r
    }
}

/// What the tail saw: each match's latency, the matches and their checksum.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    due_at_end: u64,
    answer: Answer,
}

#[derive(Deserialize)]
struct Pair {
    a: Row,
    b: Row,
}

#[derive(Deserialize)]
struct Row {
    seq: u64,
}

/// Last operator, right after the join: each match's latency and checksum.
struct Tail {
    probes: Arc<Probes>,
    join: Join,
    rows: u64,
    tally: Tally,
}

impl Operator for Tail {
    fn name(&self) -> &str {
        "probe tail"
    }

    fn process(&mut self, input: Batch, out: &mut Batch, _: &mut DeadLetters) -> Result<(), OperatorError> {
        let now = self.probes.micros();
        let failed = |message: String| OperatorError::Failed { operator: "probe tail".into(), message };
        let entered = [locked(&self.probes.entered[0]), locked(&self.probes.entered[1])];
        // When row `i` of stream `s` entered, if it is a row of the input.
        let entered_at = |s: usize, i: u64| {
            let batches = &entered[s];
            batches.get(batches.partition_point(|(seen, _)| *seen <= i)).map(|&(_, us)| us)
        };
        for i in 0..input.len() {
            let pair: Pair = rmp_serde::from_slice(input.value(i)).map_err(|e| failed(format!("not a match: {e}")))?;
            self.tally.answer.matches += 1;
            let hash = join_data::pair_hash(pair.a.seq, pair.b.seq);
            self.tally.answer.checksum = self.tally.answer.checksum.wrapping_add(hash);
            // The rows whose arrival makes the match due: ts = row number on both streams.
            let due = match self.join {
                Join::Interval => [pair.a.seq, pair.b.seq],
                Join::Window => {
                    let end = input.timestamp(i).ok_or_else(|| failed("a match without event time".into()))? + 1;
                    [end as u64; 2]
                }
            };
            match (entered_at(0, due[0]), entered_at(1, due[1])) {
                (Some(a), Some(b)) if due[0] < self.rows && due[1] < self.rows => {
                    self.tally.latencies_us.push(now.saturating_sub(a.max(b)));
                }
                _ => self.tally.due_at_end += 1,
            }
        }
        *out = input;
        Ok(())
    }

    fn finish(&mut self, _: &mut Batch, _: &mut DeadLetters) -> Result<(), OperatorError> {
        *locked(&self.probes.tail) = Some(std::mem::take(&mut self.tally));
        Ok(())
    }
}

/// The stream a chain of one-input streams starts from.
fn source_of(graph: &JobGraph, mut node: usize) -> Option<usize> {
    loop {
        match &graph.streams[node].input {
            StreamInput::Source(_) => return Some(node),
            StreamInput::Streams(inputs) if inputs.len() == 1 => node = inputs[0],
            _ => return None,
        }
    }
}

/// A probe head after each source, the join measured, and a probe tail after it.
fn add_probes(graph: &mut JobGraph, probes: &Arc<Probes>, join: Join, rows: u64) -> BenchResult<()> {
    let connect = graph.streams.iter().enumerate().find_map(|(j, s)| match s.input {
        StreamInput::Connect(left, right) => Some((j, left, right)),
        _ => None,
    });
    let Some((j, left, right)) = connect else { return Err("the job has no join".into()) };
    for (side, input) in [left, right].into_iter().enumerate() {
        let source = source_of(graph, input).ok_or("a join input that is not a line from a source")?;
        let p = probes.clone();
        let head: OperatorFactory = Arc::new(move |_: &InstanceContext| {
            Ok(Box::new(Head { probes: p.clone(), side, seen: 0 }) as Box<dyn Operator>)
        });
        graph.streams[source].steps.insert(0, Step::new(format!("probe head {side}"), StepKind::Stateless, head));
    }
    let (name, p) = (graph.streams[j].steps[0].name.clone(), probes.clone());
    let sides = JoinSides::new(Side::A.name(), Side::B.name());
    graph.streams[j].steps[0].factory = Arc::new(move |_: &InstanceContext| {
        let failed = |e: weir::operator::JoinConfigError| OperatorError::Failed {
            operator: name.clone(),
            message: e.to_string(),
        };
        let probes = p.clone();
        let op: Box<dyn Operator> = match join {
            Join::Window => {
                let config = WindowJoinConfig { sides: sides.clone(), assigner: tumbling() };
                let join = WindowJoin::new(name.clone(), config).map_err(failed)?;
                Box::new(Measured { join, seen: Observed::default(), probes })
            }
            Join::Interval => {
                let config = IntervalJoinConfig { sides: sides.clone(), lower: LOWER_MS, upper: UPPER_MS };
                let join = IntervalJoin::new(name.clone(), config).map_err(failed)?;
                Box::new(Measured { join, seen: Observed::default(), probes })
            }
        };
        Ok(op)
    });
    let p = probes.clone();
    let tail: OperatorFactory = Arc::new(move |_: &InstanceContext| {
        Ok(Box::new(Tail { probes: p.clone(), join, rows, tally: Tally::default() }) as Box<dyn Operator>)
    });
    graph.streams[j].steps.push(Step::new("probe tail", StepKind::Stateless, tail));
    Ok(())
}

// --- one run, in a child process --------------------------------------------------------------

fn cpu_micros() -> u64 {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let us = |t: libc::timeval| (t.tv_sec as u64) * 1_000_000 + t.tv_usec as u64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// The `q` quantile of sorted latencies, in ms.
fn quantile_ms(sorted_us: &[u64], q: f64) -> Option<f64> {
    let last = sorted_us.len().checked_sub(1)?;
    Some(sorted_us[((last as f64) * q).round() as usize] as f64 / 1e3)
}

/// `--child JOIN ROWS KEYS`: run once, print the figures as one JSON line.
fn child(join: Join, rows: u64, keys: u64) -> BenchResult<()> {
    let mut graph = build(join, rows, keys)?;
    let probes = Arc::new(Probes {
        start: Instant::now(),
        entered: Default::default(),
        join: Mutex::new(None),
        tail: Mutex::new(None),
    });
    add_probes(&mut graph, &probes, join, rows)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let cpu_before = cpu_micros();
    let report = rt.block_on(weir::runtime::execute(graph))?;
    let cpu_us = cpu_micros() - cpu_before;
    let observed = locked(&probes.join).take().ok_or("the join never finished")?;
    let mut tally = locked(&probes.tail).take().ok_or("the probe tail never finished")?;
    tally.latencies_us.sort_unstable();
    let line = json!({
        "records_in": report.records_in,
        "records_out": report.records_out,
        "dead_letters": report.dead_letters,
        "late": report.late_records,
        "job_ms": report.elapsed.as_secs_f64() * 1e3,
        "cpu_ms": cpu_us as f64 / 1e3,
        "p50_ms": quantile_ms(&tally.latencies_us, 0.5),
        "p99_ms": quantile_ms(&tally.latencies_us, 0.99),
        "max_ms": quantile_ms(&tally.latencies_us, 1.0),
        "latency_samples": tally.latencies_us.len(),
        "due_at_end": tally.due_at_end,
        "matches": tally.answer.matches,
        "checksum": tally.answer.checksum,
        "join_matches": observed.last.matches,
        "join_late": observed.last.late,
        "peak_state_rows": observed.peak_rows,
        "peak_state_keys": observed.peak_keys,
    });
    println!("{line}");
    Ok(())
}

// --- the parent -------------------------------------------------------------------------------

/// Weir's run of `join`, checked against the answer.
fn run_weir(join: Join, rows: u64, keys: u64, expected: Answer) -> BenchResult<Value> {
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("--child").arg(join.name()).arg(rows.to_string()).arg(keys.to_string()).env_remove("WEIR_LOG");
    let done = run_measured(&mut command)?;
    let line =
        done.stdout.lines().last().ok_or_else(|| format!("no figures from weir {}:\n{}", join.name(), done.stderr))?;
    let f: Value = serde_json::from_str(line)?;
    let num = |k: &str| f[k].as_f64().ok_or_else(|| format!("weir {}: no `{k}` in {line}", join.name()));
    let int = |k: &str| f[k].as_u64().ok_or_else(|| format!("weir {}: no `{k}` in {line}", join.name()));
    let events = 2 * rows;
    let got = Answer { matches: int("matches")?, checksum: int("checksum")? };
    let (records_in, dead, late, out) = (int("records_in")?, int("dead_letters")?, int("late")?, int("records_out")?);
    if records_in != events
        || dead != 0
        || late != 0
        || got != expected
        || out != got.matches
        || int("join_matches")? != got.matches
    {
        return Err(format!(
            "weir {}: {records_in} rows in (expected {events}), {dead} dead letters, {late} late, {got:?} \
             (expected {expected:?}), {out} out\n{}",
            join.name(),
            done.stderr
        )
        .into());
    }
    let (job_ms, cpu_ms) = (num("job_ms")?, num("cpu_ms")?);
    Ok(json!({
        "events_per_s": (events as f64 / (job_ms / 1e3)).round(),
        "events_per_cpu_s": (events as f64 / (cpu_ms / 1e3)).round(),
        "cores": round(cpu_ms / job_ms, 2),
        "job_ms": round(job_ms, 1),
        "cpu_ms": round(cpu_ms, 1),
        "process_ms": round(done.process_ms, 1),
        "p50_ms": f["p50_ms"].as_f64().map(|v| round(v, 2)),
        "p99_ms": f["p99_ms"].as_f64().map(|v| round(v, 2)),
        "max_ms": f["max_ms"].as_f64().map(|v| round(v, 2)),
        "latency_samples": f["latency_samples"],
        "due_at_end": f["due_at_end"],
        "peak_state_rows": f["peak_state_rows"],
        "peak_state_keys": f["peak_state_keys"],
        "peak_rss_mib": round(done.peak_rss_kib as f64 / 1024.0, 1),
        "matches": got.matches,
        "checksum": got.checksum,
    }))
}

/// Flink's run of `join` (`benches/peers/flink_joins.py` in the venv `venv`).
fn run_flink(venv: &Path, join: Join, rows: u64, keys: u64) -> BenchResult<Value> {
    let script = repo()?.join("benches/peers/flink_joins.py");
    let bin = venv.join("bin");
    // PyFlink finds its launcher scripts on PATH.
    let path = std::env::join_paths(
        std::iter::once(bin.clone()).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )?;
    let mut command = Command::new(bin.join("python"));
    command.arg(&script).arg(rows.to_string()).arg(keys.to_string()).arg(join.name()).env("PATH", path);
    let done = run_measured(&mut command)?;
    let line =
        done.stdout.lines().last().ok_or_else(|| format!("no figures from flink {}:\n{}", join.name(), done.stderr))?;
    let f: Value = serde_json::from_str(line)?;
    let num = |k: &str| f[k].as_f64().ok_or_else(|| format!("flink {}: no `{k}` in {line}", join.name()));
    let events = 2 * rows;
    let (net_s, cpu_s) = (num("net_runtime_s")?, num("cpu_s")?);
    Ok(json!({
        "events_per_s": (events as f64 / net_s).round(),
        "events_per_cpu_s": if cpu_s > 0.0 { Some((events as f64 / cpu_s).round()) } else { None },
        "cores": round(cpu_s / net_s.max(1e-3), 2),
        "net_runtime_ms": round(net_s * 1e3, 1),
        "wall_ms": round(num("wall_s")? * 1e3, 1),
        "cpu_ms": round(cpu_s * 1e3, 1),
        "process_ms": round(done.process_ms, 1),
        "matches": f["matches"],
        "checksum": f["checksum"],
    }))
}

fn ratio(weir: &Value, flink: &Value, field: &str) -> Option<f64> {
    Some(round(weir[field].as_f64()? / flink[field].as_f64()?, 3))
}

fn main() -> BenchResult<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let usage = "--child window|interval ROWS KEYS";
        let join = args.get(i + 1).and_then(|j| Join::parse(j)).ok_or(usage)?;
        let number = |n: Option<&String>| n.and_then(|n| n.parse().ok()).ok_or(usage);
        return child(join, number(args.get(i + 2))?, number(args.get(i + 3))?);
    }
    let rows = env_count("WEIR_BENCH_JOIN_ROWS", DEFAULT_ROWS)?;
    let keys = env_count("WEIR_BENCH_JOIN_KEYS", DEFAULT_KEYS)?;
    if rows > u64::from(u32::MAX) {
        return Err(format!("WEIR_BENCH_JOIN_ROWS={rows}: at most {} rows per stream", u32::MAX).into());
    }
    let joins = match std::env::var("WEIR_BENCH_JOINS") {
        Ok(list) => list
            .split(',')
            .map(|j| Join::parse(j.trim()).ok_or_else(|| format!("WEIR_BENCH_JOINS: no join `{j}` (window, interval)")))
            .collect::<Result<Vec<_>, _>>()?,
        Err(_) => vec![Join::Window, Join::Interval],
    };
    let peers = std::env::var("WEIR_BENCH_NO_PEERS").map_or(true, |v| v.is_empty() || v == "0");
    let venv = std::env::var_os("WEIR_FLINK_VENV")
        .map_or_else(|| repo().map(|r| r.join(".anchors/flink")), |v| Ok(PathBuf::from(v)))?;
    if peers && !venv.join("bin/python").is_file() {
        return Err(format!(
            "no PyFlink venv at {}: run `just bench-joins` (it makes one), set WEIR_FLINK_VENV, or WEIR_BENCH_NO_PEERS=1",
            venv.display()
        )
        .into());
    }
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    for join in joins {
        let what = join.as_job_file();
        eprintln!("{}: {rows} rows per stream, {keys} keys: {what}", join.name());
        let started = Instant::now();
        let expected = join_data::expected(join, rows, keys);
        eprintln!("  expected: {} matches (worked out in {:.1} s)", expected.matches, started.elapsed().as_secs_f64());
        let weir = run_weir(join, rows, keys, expected)?;
        eprintln!(
            "  weir:  {} events/s, {} per CPU-s, p99 {} ms, peak {} rows held",
            weir["events_per_s"], weir["events_per_cpu_s"], weir["p99_ms"], weir["peak_state_rows"]
        );
        let flink = if peers {
            let flink = run_flink(&venv, join, rows, keys)?;
            eprintln!(
                "  flink: {} events/s, {} per CPU-s, {} matches",
                flink["events_per_s"], flink["events_per_cpu_s"], flink["matches"]
            );
            flink
        } else {
            Value::Null
        };
        let answer = |v: &Value| Some(Answer { matches: v["matches"].as_u64()?, checksum: v["checksum"].as_u64()? });
        let flink_equal = answer(&flink).map(|a| a == expected);
        let report = json!({
            "bench": "joins",
            "join": join.name(),
            "job": what,
            "rows_per_stream": rows,
            "events": 2 * rows,
            "keys": keys,
            "event_time": "1 ms per row, in order, both streams",
            "parallelism": 1,
            "weir": weir,
            "flink": flink,
            "expected": { "matches": expected.matches, "checksum": expected.checksum },
            "matches_equal": { "weir": true, "flink": flink_equal },
            "ratio": {
                "events_per_s": ratio(&weir, &flink, "events_per_s"),
                "events_per_cpu_s": ratio(&weir, &flink, "events_per_cpu_s"),
            },
            "latency": "ingestion: from the due rows entering (after their sources) to the match leaving the join",
            "nproc": nproc,
        });
        println!("{report}");
    }
    Ok(())
}
