//! The checkpoint benchmark (issue 6's figures): what checkpoints every second cost, how
//! long and how big a checkpoint of 1 M keys is, and how long a killed job takes to give
//! output again. One JSON document on stdout, progress and a short table on stderr.
//!
//!     cargo bench --workspace --bench checkpoints                  (or `just bench`)
//!     cargo bench --workspace --bench checkpoints -- recovery      (only some parts:
//!                                                                   throughput, state, recovery)
//!     WEIR_BENCH_EVENTS=5000000 WEIR_BENCH_REPEATS=1 cargo bench --workspace --bench checkpoints
//!
//! 1. `throughput`: the keyed window job of `windows.rs` (datagen, a key drawn from 100 k,
//!    1,000 s tumbling windows, built-in count) with a file sink, run by `weir run JOB
//!    --summary` with checkpoints off and with `checkpoints: {interval: 1 s}` (the job file's
//!    way to `StreamEnvironment::enable_checkpointing`; the sink then writes part files
//!    committed per checkpoint). `WEIR_BENCH_EVENTS` events (default 20 M: 10-40 s a run on
//!    2 cores), `WEIR_BENCH_REPEATS` runs of each (default 3), interleaved off, on, off, ...
//!    Reported: the median events/s of each (events / the job's own time) and the loss in %,
//!    the goal being at most 5 %; the median CPU time per event (user + system, from
//!    `getrusage` of the reaped child: what other load on the machine skews least) and its
//!    overhead in %; each run's checkpoints (count, duration, file size).
//!    Checked: every run has the same output lines (count and an order-free digest), so
//!    the committed part files hold exactly what the plain file holds.
//! 2. `state`: the keyed count of `keyed_count.rs` (`process.count_per_key` of
//!    `plugins/process-rust`, value state per key in sled, parallelism 2) over
//!    `WEIR_BENCH_STATE_EVENTS` events (default 3 M, about a minute a run on 2 cores) drawn
//!    from `WEIR_BENCH_KEYS` keys (default 1 M: ~950 k of them occur), in a child process
//!    (this binary with `--child`) on the library API, off and with `enable_checkpointing`
//!    every 1 s (retaining every checkpoint, to read them all), `WEIR_BENCH_STATE_REPEATS`
//!    times each (default 1; every run takes dozens of checkpoints). Keyed state is not in
//!    the checkpoint file (only sources, plugins, in-memory operator state): each epoch's
//!    writes go to sled as a redo record, so the state directory is the checkpoint's bulk.
//!    Reported: per checkpoint, its duration (`duration_ms` of the metadata: request to
//!    complete, p50 and max) and its file size, read with `weir::checkpoint::read`; the
//!    size of `<dir>/state` at the end and its largest while running (sampled every 200 ms);
//!    events/s, CPU per event and peak RSS against the same job without checkpoints.
//!    Checked (first repeat): every key's count in sled is the same with and without
//!    checkpoints, and the counts add up to the events.
//! 3. `recovery`: the `weir` binary runs a job file with checkpoints every 1 s (datagen at
//!    200 k events/s over 1 M keys -> key_by -> `count_per_key` -> file sink, part files).
//!    When 2 checkpoints completed it gets SIGKILL (at a moment spread over the checkpoint
//!    interval) and is started again at once, `WEIR_BENCH_RECOVERIES` times (default 5, each
//!    restart killed in turn). Measured from the restart: the `resuming from checkpoint` log
//!    line, the first output written (the in-progress part file of the first new epoch),
//!    the first new committed part file (first output a reader sees: it needs the first
//!    checkpoint after the resume, so it includes the 1 s interval), and the first
//!    checkpoint completed after the resume. Checked: in the committed output every key's
//!    counts are 1, 2, .. n with none missing or twice, as in a run with no crash.
//!
//! Needs the CLI and the process plugin built: `just plugins` (or `cargo build --release
//! --workspace --all-targets` and `weir plugin build plugins/process-rust`).

mod common;
mod window_job;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use common::{BenchResult, env_count, round, run_measured};
use serde_json::{Value, json};
use weir::checkpoint::{self, CheckpointConfig};
use weir::connectors::{DatagenSpec, FieldGenerator};
use weir::env::StreamEnvironment;
use weir::state::{DEFAULT_MAX_PARALLELISM, key_group};
use weir::state::{KeyGroupRange, StateConfig, StateDescriptor, StateStore};
use window_job::{EVENTS_PER_WINDOW, KEYS, run_weir, weir_binary, yaml_path};

const DEFAULT_WINDOW_EVENTS: u64 = 20_000_000;
const DEFAULT_REPEATS: u64 = 3;
const INTERVAL_MS: u64 = 1_000;
/// The goal for the throughput loss with checkpoints every second.
const GOAL_LOSS_PCT: f64 = 5.0;

const DEFAULT_STATE_EVENTS: u64 = 3_000_000;
const DEFAULT_STATE_REPEATS: u64 = 1;
const DEFAULT_STATE_KEYS: u64 = 1_000_000;
const PARALLELISM: usize = 2;
const SEED: u64 = 2026;
const PLUGIN_DIR: &str = "process-rust";
const PLUGIN_FUNCTION: &str = "count_per_key";
const STATE: &str = "count";
/// Enough that no checkpoint of a run is deleted before it is read.
const RETAIN_ALL: usize = 1_000;

const DEFAULT_RECOVERIES: u64 = 5;
const RECOVERY_RATE: u64 = 200_000;
const RECOVERY_KEYS: u64 = 1_000_000;
/// A restarted job that shows nothing for this long failed.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(120);

fn plugin_path(repo: &Path) -> PathBuf {
    repo.join("plugins").join(PLUGIN_DIR).join(format!("{PLUGIN_DIR}.wasm"))
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NAN, f64::max)
}

fn mib(bytes: u64) -> f64 {
    round(bytes as f64 / (1 << 20) as f64, 1)
}

/// The machine's 1-minute load average (other work on the machine skews the figures).
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// CPU time (user + system) of the children reaped so far, in ms. Taken before and after a
/// child runs, it gives that child's CPU time, which other work on the machine skews much
/// less than its wall-clock time.
fn children_cpu_ms() -> f64 {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct, and getrusage only
    // writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is valid for writes.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return f64::NAN;
    }
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

/// Bytes under `dir`: apparent (file lengths) and allocated on disk (blocks).
fn dir_size(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut len, mut disk) = (0, 0);
    let Ok(entries) = std::fs::read_dir(dir) else { return (0, 0) };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            let (l, d) = dir_size(&entry.path());
            len += l;
            disk += d;
        } else {
            len += meta.len();
            disk += meta.blocks() * 512;
        }
    }
    (len, disk)
}

/// Duration (ms) and file size of each complete checkpoint of `dir` taken while the job ran
/// (not the last one a finished job writes). Read one file at a time: a window job's files
/// hold megabytes of snapshots, and a bench process grown by them would pass its high-water
/// RSS on to the next child it forks (`ru_maxrss` counts it).
fn checkpoints_of(dir: &Path) -> BenchResult<Vec<(u64, u64)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !(name.starts_with("chk-") && name.ends_with(".meta")) {
            continue;
        }
        let meta = checkpoint::read(&path)?;
        if !meta.finished {
            found.push((meta.duration_ms, std::fs::metadata(&path)?.len()));
        }
    }
    Ok(found)
}

/// Count, duration (p50, max) and file size (p50, max) of checkpoints.
fn checkpoint_figures(found: &[(u64, u64)]) -> Value {
    let ms: Vec<f64> = found.iter().map(|(ms, _)| *ms as f64).collect();
    let bytes: Vec<f64> = found.iter().map(|(_, b)| *b as f64).collect();
    json!({
        "count": found.len(),
        "duration_ms_p50": median(&ms),
        "duration_ms_max": max(&ms),
        "file_bytes_p50": median(&bytes),
        "file_bytes_max": max(&bytes),
    })
}

// --- 1. throughput of the keyed window job, checkpoints off and every second ----------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    Every1s,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Every1s => "every_1s",
        }
    }
}

/// Lines and an order-free digest (wrapping sum of each line's hash) of a file sink's output:
/// the file itself, or the committed part files of a directory (none may be left in progress).
fn output_digest(out: &Path) -> BenchResult<(u64, u64)> {
    let files = if out.is_dir() {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(out)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.ends_with(".inprogress") {
                return Err(format!("{}: part {name} is still in progress after the job ended", out.display()).into());
            }
            if name.starts_with("part-") {
                files.push(out.join(name));
            }
        }
        files
    } else {
        vec![out.to_path_buf()]
    };
    let (mut lines, mut digest) = (0u64, 0u64);
    for file in files {
        for line in BufReader::with_capacity(1 << 20, std::fs::File::open(&file)?).split(b'\n') {
            digest = digest.wrapping_add(xxhash_rust::xxh3::xxh3_64(&line?));
            lines += 1;
        }
    }
    Ok((lines, digest))
}

fn window_throughput(weir: &Path, dir: &Path, events: u64, repeats: u64) -> BenchResult<Value> {
    let mut runs = Vec::new();
    let mut rates: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut cpu: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut expected_output: Option<(u64, u64)> = None;
    for rep in 0..repeats {
        for mode in [Mode::Off, Mode::Every1s] {
            let run_dir = dir.join(format!("window-{}-{rep}", mode.name()));
            std::fs::create_dir_all(&run_dir)?;
            let (out, head) = match mode {
                Mode::Off => (run_dir.join("out.jsonl"), String::new()),
                Mode::Every1s => {
                    let chk = yaml_path(&run_dir.join("checkpoints"));
                    let head =
                        format!("checkpoints: {{interval: {INTERVAL_MS} ms, dir: {chk}, retained: {RETAIN_ALL}}}\n");
                    (run_dir.join("out"), head)
                }
            };
            let sink = format!("  connector: file\n  path: {}\n  format: json\n", yaml_path(&out));
            let name = format!("checkpoint bench window {}", mode.name());
            let yaml = window_job::job_yaml(&name, &head, Some("count"), events, KEYS, EVENTS_PER_WINDOW, &sink);
            let job = run_dir.join("job.yaml");
            std::fs::write(&job, yaml)?;
            eprintln!("window, checkpoints {} (run {} of {repeats}): {events} events ...", mode.name(), rep + 1);
            let cpu_before = children_cpu_ms();
            let run = run_weir(weir, &job)?;
            let cpu_ms = children_cpu_ms() - cpu_before;
            if run.records_in != events || run.late != 0 || run.dead_letters != 0 {
                return Err(format!(
                    "window {}: {} events in (expected {events}), {} late, {} dead letters",
                    mode.name(),
                    run.records_in,
                    run.late,
                    run.dead_letters
                )
                .into());
            }
            let output = output_digest(&out)?;
            if output.0 != run.records_out {
                return Err(
                    format!("window {}: {} lines written, {} out", mode.name(), output.0, run.records_out).into()
                );
            }
            match expected_output {
                None => expected_output = Some(output),
                Some(e) if e != output => {
                    return Err(format!(
                        "window {}: output differs from the first run's ({} lines, digest {:x}; first {} lines, {:x})",
                        mode.name(),
                        output.0,
                        output.1,
                        e.0,
                        e.1
                    )
                    .into());
                }
                Some(_) => {}
            }
            let rate = events as f64 / (run.job_ms / 1e3);
            let checkpoints = match mode {
                Mode::Off => Value::Null,
                Mode::Every1s => checkpoint_figures(&checkpoints_of(&run_dir.join("checkpoints"))?),
            };
            eprintln!(
                "  {rate:.0} events/s, {:.1} s, {:.0} ns CPU per event, peak {:.0} MiB{}",
                run.job_ms / 1e3,
                cpu_ms * 1e6 / events as f64,
                run.peak_rss_kib as f64 / 1024.0,
                match &checkpoints {
                    Value::Null => String::new(),
                    c => format!(
                        "; {} checkpoints, {} ms p50, {} ms max, {} bytes p50",
                        c["count"], c["duration_ms_p50"], c["duration_ms_max"], c["file_bytes_p50"]
                    ),
                }
            );
            rates.entry(mode.name()).or_default().push(rate);
            cpu.entry(mode.name()).or_default().push(cpu_ms * 1e6 / events as f64);
            runs.push(json!({
                "checkpoints": mode.name(),
                "repeat": rep + 1,
                "events_per_s": rate.round(),
                "cpu_ns_per_event": round(cpu_ms * 1e6 / events as f64, 1),
                "job_ms": round(run.job_ms, 1),
                "process_ms": round(run.process_ms, 1),
                "peak_rss_mib": round(run.peak_rss_kib as f64 / 1024.0, 1),
                "checkpoints_taken": checkpoints,
            }));
            std::fs::remove_dir_all(&run_dir)?;
        }
    }
    let off = median(&rates[Mode::Off.name()]);
    let on = median(&rates[Mode::Every1s.name()]);
    let loss = (1.0 - on / off) * 100.0;
    let (cpu_off, cpu_on) = (median(&cpu[Mode::Off.name()]), median(&cpu[Mode::Every1s.name()]));
    let (lines, _) = expected_output.unwrap_or_default();
    Ok(json!({
        "job": "datagen -> assign_timestamps -> key_by key -> 1,000 s tumbling window count (built in) -> file sink (JSON lines; part files with checkpoints)",
        "events": events,
        "keys": KEYS,
        "interval_ms": INTERVAL_MS,
        "repeats": repeats,
        "events_per_s_median": { "off": off.round(), "every_1s": on.round() },
        "loss_pct": round(loss, 2),
        "cpu_ns_per_event_median": { "off": round(cpu_off, 1), "every_1s": round(cpu_on, 1) },
        "cpu_overhead_pct": round((cpu_on / cpu_off - 1.0) * 100.0, 2),
        "goal_loss_pct": GOAL_LOSS_PCT,
        "meets_goal": loss <= GOAL_LOSS_PCT,
        "runs": runs,
        "correctness": { "windows_out": lines, "same_output_every_run": true },
    }))
}

// --- 2. the keyed count over 1 M keys, in a child process -----------------------------

struct StateSizes {
    events: u64,
    keys: u64,
}

impl StateSizes {
    fn from_env() -> BenchResult<Self> {
        Ok(Self {
            events: env_count("WEIR_BENCH_STATE_EVENTS", DEFAULT_STATE_EVENTS)?,
            keys: env_count("WEIR_BENCH_KEYS", DEFAULT_STATE_KEYS)?,
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

/// `--child keyed MODE DIR`: the keyed count once, state in `DIR/state` (and checkpoints in
/// `DIR`); its figures as one JSON line.
fn child(mode: Mode, dir: &Path) -> BenchResult<()> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize()?;
    let sizes = StateSizes::from_env()?;
    let env = StreamEnvironment::new();
    env.set_parallelism(PARALLELISM);
    match mode {
        Mode::Off => {
            env.set_state_dir(dir.join("state"));
        }
        Mode::Every1s => {
            let mut config = CheckpointConfig::new(dir);
            config.interval = Duration::from_millis(INTERVAL_MS);
            config.retained = RETAIN_ALL;
            env.enable_checkpointing(config);
        }
    }
    let plugin = env.load_plugin(plugin_path(&repo))?;
    env.from_datagen(sizes.datagen()).key_by("key").process(plugin.function(PLUGIN_FUNCTION)).discard();
    let graph = env.graph("checkpoint bench keyed count")?;
    let step = graph.steps().last().map(|s| s.name.clone()).ok_or("the job has no steps")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(weir::runtime::execute(graph))?;
    let out = json!({
        "step": step,
        "records_in": report.records_in,
        "records_out": report.records_out,
        "dead_letters": report.dead_letters,
        "job_ms": report.elapsed.as_secs_f64() * 1e3,
    });
    println!("{out}");
    Ok(())
}

/// Runs the child for `mode` in `dir`, sampling the size of `dir/state` while it runs.
fn keyed_run(mode: Mode, sizes: &StateSizes, dir: &Path) -> BenchResult<(Value, f64, String)> {
    let state_dir = dir.join("state");
    let stop = Arc::new(AtomicBool::new(false));
    let largest = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, largest, state_dir) = (stop.clone(), largest.clone(), state_dir.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                largest.fetch_max(dir_size(&state_dir).1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("--child").arg("keyed").arg(mode.name()).arg(dir).env_remove("WEIR_LOG");
    let cpu_before = children_cpu_ms();
    let done = run_measured(&mut command);
    let cpu_ms = children_cpu_ms() - cpu_before;
    stop.store(true, Ordering::Relaxed);
    sampler.join().map_err(|_| "the size sampler panicked")?;
    let done = done?;
    let figures = common::child_figures(&done, sizes.events, &format!("keyed {}", mode.name()))?;
    let job_ms = figures["job_ms"].as_f64().ok_or("no job_ms")?;
    let rate = sizes.events as f64 / (job_ms / 1e3);
    let (state_len, state_disk) = dir_size(&state_dir);
    let checkpoints = match mode {
        Mode::Off => Value::Null,
        Mode::Every1s => checkpoint_figures(&checkpoints_of(dir)?),
    };
    eprintln!(
        "  {rate:.0} events/s, {:.1} s, {:.0} ns CPU per event, peak {:.0} MiB, state {:.0} MiB on disk (largest {:.0} MiB){}",
        job_ms / 1e3,
        cpu_ms * 1e6 / sizes.events as f64,
        done.peak_rss_kib as f64 / 1024.0,
        mib(state_disk),
        mib(largest.load(Ordering::Relaxed).max(state_disk)),
        match &checkpoints {
            Value::Null => String::new(),
            c => format!(
                "; {} checkpoints, {} ms p50, {} ms max, {} bytes p50",
                c["count"], c["duration_ms_p50"], c["duration_ms_max"], c["file_bytes_p50"]
            ),
        }
    );
    let report = json!({
        "checkpoints": mode.name(),
        "events_per_s": rate.round(),
        "cpu_ns_per_event": round(cpu_ms * 1e6 / sizes.events as f64, 1),
        "job_ms": round(job_ms, 1),
        "process_ms": round(done.process_ms, 1),
        "peak_rss_mib": round(done.peak_rss_kib as f64 / 1024.0, 1),
        "state_dir_mib": { "on_disk": mib(state_disk), "apparent": mib(state_len), "largest_while_running": mib(largest.load(Ordering::Relaxed).max(state_disk)) },
        "checkpoints_taken": checkpoints,
    });
    let step = figures["step"].as_str().ok_or("no step name")?.to_string();
    Ok((report, rate, step))
}

/// Every key's count in the two stores is the same, and the counts add up to the events.
fn same_state(off: &Path, on: &Path, step: &str, sizes: &StateSizes) -> BenchResult<u64> {
    let open = |dir: &Path| -> BenchResult<_> {
        let store = StateStore::open(dir, StateConfig::default())?;
        let range = KeyGroupRange::all(DEFAULT_MAX_PARALLELISM);
        Ok(store.keyed(step, range, &[StateDescriptor::value(STATE)])?)
    };
    let (mut a, mut b) = (open(off)?, open(on)?);
    let (mut total, mut keys) = (0u64, 0u64);
    for k in 0..sizes.keys {
        let key = weir::record::encode(&rmpv::Value::from(k));
        let group = key_group(&key, DEFAULT_MAX_PARALLELISM);
        a.set_current_key(group, &key);
        b.set_current_key(group, &key);
        let (x, y) = (a.value_get(STATE)?, b.value_get(STATE)?);
        if x != y {
            return Err(format!("key {k}: count {x:?} without checkpoints, {y:?} with").into());
        }
        if let Some(bytes) = x {
            total += rmp::decode::read_int::<u64, _>(&mut &bytes[..]).map_err(|e| format!("key {k}: {e}"))?;
            keys += 1;
        }
    }
    if total != sizes.events {
        return Err(format!("the counts add up to {total}, not {}", sizes.events).into());
    }
    Ok(keys)
}

fn keyed_state(dir: &Path) -> BenchResult<Value> {
    let sizes = StateSizes::from_env()?;
    let repeats = env_count("WEIR_BENCH_STATE_REPEATS", DEFAULT_STATE_REPEATS)?;
    let mut runs = Vec::new();
    let mut rates: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut checked_keys = None;
    let mut ms = Vec::new();
    let mut files = Vec::new();
    for rep in 0..repeats {
        let mut step = String::new();
        for mode in [Mode::Off, Mode::Every1s] {
            let run_dir = dir.join(format!("keyed-{}-{rep}", mode.name()));
            eprintln!(
                "keyed count, checkpoints {} (run {} of {repeats}): {} events, {} keys ...",
                mode.name(),
                rep + 1,
                sizes.events,
                sizes.keys
            );
            let (report, rate, s) = keyed_run(mode, &sizes, &run_dir)?;
            if mode == Mode::Every1s {
                for (duration_ms, bytes) in checkpoints_of(&run_dir)? {
                    ms.push(duration_ms as f64);
                    files.push(bytes as f64);
                }
            }
            rates.entry(mode.name()).or_default().push(rate);
            runs.push(json!({ "repeat": rep + 1, "run": report }));
            step = s;
        }
        let (off, on) = (dir.join(format!("keyed-off-{rep}")), dir.join(format!("keyed-every_1s-{rep}")));
        if checked_keys.is_none() {
            let started = Instant::now();
            checked_keys = Some(same_state(&off.join("state"), &on.join("state"), &step, &sizes)?);
            eprintln!(
                "  same count for every key with and without checkpoints ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
        }
        std::fs::remove_dir_all(off)?;
        std::fs::remove_dir_all(on)?;
    }
    let off = median(&rates[Mode::Off.name()]);
    let on = median(&rates[Mode::Every1s.name()]);
    // The share of keys a uniform draw of `events` from `keys` hits at least once.
    let distinct = sizes.keys as f64 * (1.0 - (1.0 - 1.0 / sizes.keys as f64).powf(sizes.events as f64));
    Ok(json!({
        "job": format!("datagen -> key_by key -> process plugins/{PLUGIN_DIR} {PLUGIN_FUNCTION} (value state per key in sled) -> discard"),
        "events": sizes.events,
        "keys": sizes.keys,
        "keys_expected_distinct": distinct.round(),
        "parallelism": PARALLELISM,
        "interval_ms": INTERVAL_MS,
        "repeats": repeats,
        "checkpoint_duration_ms": { "p50": median(&ms), "max": max(&ms), "count": ms.len() },
        "checkpoint_file_bytes": { "p50": median(&files), "max": max(&files) },
        "events_per_s_median": { "off": off.round(), "every_1s": on.round() },
        "loss_pct": round((1.0 - on / off) * 100.0, 2),
        "runs": runs,
        "correctness": { "keys_with_state": checked_keys, "same_state_as_without_checkpoints": true },
    }))
}

// --- 3. recovery: SIGKILL the weir binary, start it again ------------------------------

/// `weir run JOB` in the background with info logs; its stderr lines, as they come, with
/// the time each arrived.
struct Running {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl Running {
    fn start(weir: &Path, job: &Path, run_dir: &Path) -> BenchResult<Self> {
        let mut child = Command::new(weir)
            .arg("run")
            .arg(job)
            .arg("--no-api")
            .env("WEIR_LOG", "info")
            .env("NO_COLOR", "1")
            .env("WEIR_RUN_DIR", run_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), strip_ansi(&line))).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, lines })
    }

    /// Fails if the job ended by itself.
    fn check_alive(&mut self) -> BenchResult<()> {
        if let Some(status) = self.child.try_wait()? {
            let said: Vec<String> = self.lines.try_iter().map(|(_, l)| l).collect();
            return Err(format!("weir ended by itself ({status}):\n{}", said.join("\n")).into());
        }
        Ok(())
    }

    fn kill(&mut self) -> BenchResult<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The number after `field=` in a log line.
fn log_field(line: &str, field: &str) -> Option<u64> {
    let at = line.find(&format!(" {field}="))? + field.len() + 2;
    let digits: String = line[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The newest complete checkpoint of `dir` (0: none).
fn latest_checkpoint(dir: &Path) -> BenchResult<u64> {
    Ok(checkpoint::read_latest(dir)?.map_or(0, |m| m.id))
}

/// Part files of epochs after `restored` in `out` written since `since` (the killed run's
/// in-progress parts are older): (one exists, a committed one exists).
fn new_parts(out: &Path, restored: u64, since: SystemTime) -> BenchResult<(bool, bool)> {
    let (mut written, mut committed) = (false, false);
    for entry in std::fs::read_dir(out)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let (epoch, open) = match name.strip_prefix(".part-").and_then(|r| r.strip_suffix(".inprogress")) {
            Some(epoch) => (epoch, true),
            None => match name.strip_prefix("part-") {
                Some(epoch) => (epoch, false),
                None => continue,
            },
        };
        // A part can be renamed or deleted under us: then it is not new output.
        let fresh = || entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t >= since);
        if epoch.parse::<u64>().is_ok_and(|e| e > restored) && fresh() {
            written = true;
            committed |= !open;
        }
    }
    Ok((written, committed))
}

/// Every key's counts in the committed parts are 1..=n, each once. Returns (lines, keys).
fn check_counts(out: &Path) -> BenchResult<(u64, usize)> {
    let mut seen: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut lines = 0u64;
    for entry in std::fs::read_dir(out)? {
        let path = entry?.path();
        if !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-")) {
            continue;
        }
        for line in BufReader::new(std::fs::File::open(&path)?).lines() {
            let line = line?;
            let row: Value = serde_json::from_str(&line)?;
            let (Some(key), Some(count)) = (row["key"].as_u64(), row["count"].as_u64()) else {
                return Err(format!("not a key count: {line}").into());
            };
            seen.entry(key).or_default().push(count);
            lines += 1;
        }
    }
    for (key, counts) in &mut seen {
        counts.sort_unstable();
        if let Some((i, c)) = counts.iter().enumerate().find(|(i, c)| **c != *i as u64 + 1) {
            return Err(format!(
                "key {key}: committed counts are not 1..{} ({c} at place {}): output lost or duplicated",
                counts.len(),
                i + 1
            )
            .into());
        }
    }
    Ok((lines, seen.len()))
}

fn recovery(weir: &Path, repo: &Path, dir: &Path, recoveries: u64) -> BenchResult<Value> {
    let (chk, out, run_dir) = (dir.join("checkpoints"), dir.join("out"), dir.join("run"));
    let job = dir.join("recovery.yaml");
    let yaml = format!(
        "name: checkpoint recovery bench\nparallelism: {PARALLELISM}\nplugins:\n  p: {plugin}\ncheckpoints: {{interval: {INTERVAL_MS} ms, dir: {chk}}}\nsource:\n  connector: datagen\n  rows-per-second: {RECOVERY_RATE}\n  seed: {SEED}\n  fields:\n    key: {{kind: random, min: 0, max: {max_key}}}\npipeline:\n  - key_by: key\n  - process: p.{PLUGIN_FUNCTION}\nsink:\n  connector: file\n  path: {out}\n  format: json\n",
        plugin = yaml_path(&plugin_path(repo)),
        chk = yaml_path(&chk),
        out = yaml_path(&out),
        max_key = RECOVERY_KEYS - 1,
    );
    std::fs::write(&job, yaml)?;
    // The component compiled into the cache before, as a restarted job finds it.
    let checked = Command::new(weir).arg("check").arg(&job).output()?;
    if !checked.status.success() {
        return Err(format!("`weir check` failed: {}", String::from_utf8_lossy(&checked.stderr)).into());
    }
    eprintln!("recovery: {RECOVERY_RATE} events/s over {RECOVERY_KEYS} keys, {recoveries} kills ...");
    let mut running = Running::start(weir, &job, &run_dir)?;
    let mut resumed_from = 0;
    let mut results = Vec::new();
    for rep in 0..recoveries {
        // Two checkpoints after the (re)start, then a kill somewhere in the interval.
        let waiting = Instant::now();
        while latest_checkpoint(&chk)? < resumed_from + 2 {
            running.check_alive()?;
            if waiting.elapsed() > RECOVERY_TIMEOUT {
                return Err(format!("no 2 checkpoints after checkpoint {resumed_from} in {RECOVERY_TIMEOUT:?}").into());
            }
            while running.lines.try_recv().is_ok() {}
            std::thread::sleep(Duration::from_millis(20));
        }
        let offset_ms = (rep * INTERVAL_MS / recoveries.max(1) + 137) % INTERVAL_MS;
        std::thread::sleep(Duration::from_millis(offset_ms));
        running.check_alive()?;
        let killed = Instant::now();
        running.kill()?;
        let restored = latest_checkpoint(&chk)?;
        let (restarted, restarted_at) = (Instant::now(), SystemTime::now());
        running = Running::start(weir, &job, &run_dir)?;
        let (mut resume_log, mut written, mut committed, mut first_checkpoint) = (None, None, None, None);
        while resume_log.is_none() || written.is_none() || committed.is_none() || first_checkpoint.is_none() {
            running.check_alive()?;
            if restarted.elapsed() > RECOVERY_TIMEOUT {
                return Err(format!("the job restarted from checkpoint {restored} showed no output in time").into());
            }
            for (at, line) in running.lines.try_iter() {
                if line.contains("resuming from checkpoint") {
                    if log_field(&line, "checkpoint") != Some(restored) {
                        return Err(format!("expected a resume from checkpoint {restored}: {line}").into());
                    }
                    resume_log.get_or_insert(at);
                } else if line.contains("checkpoint complete")
                    && log_field(&line, "checkpoint").is_some_and(|id| id > restored)
                {
                    first_checkpoint.get_or_insert(at);
                }
            }
            let (w, c) = new_parts(&out, restored, restarted_at)?;
            let now = Instant::now();
            if w {
                written.get_or_insert(now);
            }
            if c {
                written.get_or_insert(now);
                committed.get_or_insert(now);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let ms = |t: Option<Instant>| t.map(|t| round(t.duration_since(restarted).as_secs_f64() * 1e3, 1));
        let result = json!({
            "kill": rep + 1,
            "killed_ms_into_interval": offset_ms,
            "resumed_from_checkpoint": restored,
            "kill_to_restart_ms": round(restarted.duration_since(killed).as_secs_f64() * 1e3, 1),
            "restart_to_resume_log_ms": ms(resume_log),
            "restart_to_first_output_written_ms": ms(written),
            "restart_to_first_committed_part_ms": ms(committed),
            "kill_to_first_committed_part_ms": committed.map(|t| round(t.duration_since(killed).as_secs_f64() * 1e3, 1)),
            "restart_to_first_checkpoint_ms": ms(first_checkpoint),
        });
        eprintln!(
            "  kill {} (from checkpoint {restored}): resume log {} ms, first output written {} ms, first committed part {} ms, first checkpoint {} ms",
            rep + 1,
            result["restart_to_resume_log_ms"],
            result["restart_to_first_output_written_ms"],
            result["restart_to_first_committed_part_ms"],
            result["restart_to_first_checkpoint_ms"]
        );
        results.push(result);
        resumed_from = restored;
    }
    running.kill()?;
    let (lines, keys) = check_counts(&out)?;
    eprintln!("  committed output: {lines} counts of {keys} keys, each key's 1..n once");
    let med = |field: &str| median(&results.iter().filter_map(|r| r[field].as_f64()).collect::<Vec<_>>());
    Ok(json!({
        "job": format!("weir run: datagen {RECOVERY_RATE} events/s, {RECOVERY_KEYS} keys -> key_by -> process {PLUGIN_FUNCTION} -> file sink (part files), parallelism {PARALLELISM}, checkpoints every {INTERVAL_MS} ms; SIGKILL after 2 checkpoints, restarted at once"),
        "kills": recoveries,
        "median_ms": {
            "restart_to_resume_log": med("restart_to_resume_log_ms"),
            "restart_to_first_output_written": med("restart_to_first_output_written_ms"),
            "restart_to_first_committed_part": med("restart_to_first_committed_part_ms"),
            "kill_to_first_committed_part": med("kill_to_first_committed_part_ms"),
            "restart_to_first_checkpoint": med("restart_to_first_checkpoint_ms"),
        },
        "kills_detail": results,
        "correctness": { "committed_counts": lines, "keys": keys, "no_count_lost_or_twice": true },
    }))
}

fn main() -> BenchResult<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let usage = "--child keyed off|every_1s DIR";
        let mode = match args.get(i + 2).map(String::as_str) {
            Some("off") => Mode::Off,
            Some("every_1s") => Mode::Every1s,
            _ => return Err(usage.into()),
        };
        return child(mode, Path::new(args.get(i + 3).ok_or(usage)?));
    }
    // `cargo bench` adds `--bench`; other words pick the parts to run.
    let parts: Vec<&str> = args.iter().skip(1).filter(|a| !a.starts_with("--")).map(String::as_str).collect();
    let all = ["throughput", "state", "recovery"];
    if let Some(bad) = parts.iter().find(|p| !all.contains(p)) {
        return Err(format!("no part `{bad}` (throughput, state, recovery)").into());
    }
    let runs = |part: &str| parts.is_empty() || parts.contains(&part);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize()?;
    let weir = weir_binary()?;
    // Another checkout building into the same target directory can leave its own weir there.
    if !Command::new(&weir).args(["checkpoints", "--help"]).output()?.status.success() {
        return Err(format!(
            "{} has no `checkpoints` command (built from other sources?): run `cargo build --release --workspace --all-targets`",
            weir.display()
        )
        .into());
    }
    let wasm = plugin_path(&repo);
    if !wasm.is_file() {
        let hint = format!("build it with `weir plugin build plugins/{PLUGIN_DIR}` (or `just plugins`)");
        return Err(format!("{} is missing: {hint}", wasm.display()).into());
    }
    let events = env_count("WEIR_BENCH_EVENTS", DEFAULT_WINDOW_EVENTS)?;
    let repeats = env_count("WEIR_BENCH_REPEATS", DEFAULT_REPEATS)?;
    let recoveries = env_count("WEIR_BENCH_RECOVERIES", DEFAULT_RECOVERIES)?;
    let dir = tempfile::Builder::new().prefix("weir-bench-checkpoints-").tempdir()?;
    // Runs use a copy, so that a build replacing target/release/weir meanwhile cannot mix binaries.
    let weir = {
        let copy = dir.path().join("weir");
        std::fs::copy(&weir, &copy)?;
        copy
    };
    let load_before = load_average();

    let throughput =
        if runs("throughput") { Some(window_throughput(&weir, dir.path(), events, repeats)?) } else { None };
    let state = if runs("state") { Some(keyed_state(dir.path())?) } else { None };
    let recovered = if runs("recovery") {
        let recovery_dir = dir.path().join("recovery");
        std::fs::create_dir_all(&recovery_dir)?;
        Some(recovery(&weir, &repo, &recovery_dir, recoveries)?)
    } else {
        None
    };

    let report = json!({
        "bench": "checkpoints",
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "load_average_1m": { "before": load_before, "after": load_average() },
        "window_throughput": throughput,
        "state_1m_keys": state,
        "recovery": recovered,
    });
    eprintln!("\n== checkpoints (load average {:?} -> {:?})", load_before, load_average());
    if let Some(t) = &report["window_throughput"].as_object() {
        eprintln!(
            "window job, events/s median: off {}, every 1 s {}: loss {} % (goal <= {GOAL_LOSS_PCT} %); CPU per event {} %",
            t["events_per_s_median"]["off"], t["events_per_s_median"]["every_1s"], t["loss_pct"], t["cpu_overhead_pct"]
        );
    }
    if let Some(s) = &report["state_1m_keys"].as_object() {
        eprintln!(
            "{} keys: checkpoint {} ms p50, {} ms max, file {} bytes; events/s off {}, every 1 s {} (loss {} %)",
            s["keys"],
            s["checkpoint_duration_ms"]["p50"],
            s["checkpoint_duration_ms"]["max"],
            s["checkpoint_file_bytes"]["p50"],
            s["events_per_s_median"]["off"],
            s["events_per_s_median"]["every_1s"],
            s["loss_pct"]
        );
        if let Some(run) = s["runs"].as_array().and_then(|r| r.get(1)) {
            eprintln!("  state dir {} MiB on disk at the end", run["run"]["state_dir_mib"]["on_disk"]);
        }
    }
    if let Some(r) = &report["recovery"].as_object() {
        let m = &r["median_ms"];
        eprintln!(
            "recovery, median ms from restart: resume log {}, first output written {}, first committed part {} (from kill {}), first checkpoint {}",
            m["restart_to_resume_log"],
            m["restart_to_first_output_written"],
            m["restart_to_first_committed_part"],
            m["kill_to_first_committed_part"],
            m["restart_to_first_checkpoint"]
        );
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
