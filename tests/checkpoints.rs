//! Checkpoints and exactly-once recovery, the way a user meets them: `weir run` on a job
//! file with `checkpoints:`, killed with SIGKILL at random moments and started again, and
//! `weir checkpoints`.
//!
//! The job under test keeps both kinds of state: keyed state in sled (a Rust process
//! function counts each user's clicks) and window state in memory (a tumbling window takes
//! the largest count per user and second), at parallelism 2, writing to the exactly-once
//! file sink. Its input comes from a rate-limited datagen source, so that the kills land
//! while it runs. The committed output after the kills must equal a crash-free run's, and
//! the crash-free run's must equal what this test computes from the input on its own.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::kill::*;
use common::*;

/// Rows the datagen source makes, and how fast.
const ROWS: u64 = 24_000;
const RATE: u64 = 6_000;
const USERS: i64 = 40;
/// Event time advances 5 ms per row, so a one-second window holds 200 rows.
const STEP_MS: i64 = 5;

fn datagen(rate: Option<u64>) -> String {
    let rate = rate.map(|r| format!("  rows-per-second: {r}\n")).unwrap_or_default();
    format!(
        "source:\n  connector: datagen\n  number-of-rows: {ROWS}\n{rate}  seed: 11\n  fields:\n    \
         seq: {{kind: sequence, start: 0}}\n    user: {{kind: random, min: 1, max: {USERS}}}\n    \
         ts: {{kind: event-time, start: 2026-01-01T00:00:00Z, step: {STEP_MS} ms}}\n"
    )
}

/// The job's steps: counts per user in keyed state, then the largest count per user and
/// second.
const PIPELINE: &str = "  - assign_timestamps: {field: ts, max_out_of_orderness: 0 s}\n  - key_by: user\n  \
                        - process: p.count_per_key\n  - key_by: key\n  \
                        - window: {tumbling: 1 s, aggregate: max, field: count}\n";

/// The job: counts per user in keyed state, then the largest count per user and second.
fn counting_job(dir: &Path, parallelism: usize, extra: &str) -> PathBuf {
    job_with_pipeline(dir, parallelism, extra, PIPELINE)
}

/// The counting job's source, checkpoints and sink around the steps `pipeline`.
fn job_with_pipeline(dir: &Path, parallelism: usize, extra: &str, pipeline: &str) -> PathBuf {
    write_job(
        dir,
        &format!(
            "name: exactly-once\nparallelism: {parallelism}\nplugins:\n  p: {}\n{}\
             pipeline:\n{pipeline}\
             checkpoints: {{interval: 100 ms, dir: ckpt, restart_attempts: 0{extra}}}\n\
             sink: {{connector: file, path: out, format: json}}\n",
            plugin_yaml("process-rust"),
            datagen(Some(RATE)),
        ),
    )
}

/// The expected output, computed here from the input rows: for each user and one-second
/// window of event time, the user's running count of clicks at the window's last click.
fn expected(rows: &[serde_json::Value]) -> Vec<String> {
    let mut counts: BTreeMap<i64, u64> = BTreeMap::new();
    let mut windows: BTreeMap<(i64, i64), u64> = BTreeMap::new();
    for row in rows {
        let user = row["user"].as_i64().unwrap();
        let ts = row["ts"].as_i64().unwrap();
        let n = counts.entry(user).or_default();
        *n += 1;
        let start = ts - ts.rem_euclid(1000);
        let max = windows.entry((user, start)).or_default();
        *max = (*max).max(*n);
    }
    let mut lines: Vec<String> = windows
        .into_iter()
        .map(|((user, start), max)| {
            serde_json::json!({"key": user, "window_start": start, "window_end": start + 1000, "max": max}).to_string()
        })
        .collect();
    lines.sort();
    lines
}

/// The input rows as datagen makes them (captured by a plain job that writes them out).
fn input_rows(dir: &Path) -> Vec<serde_json::Value> {
    let job = write_job(
        dir,
        &format!("name: capture\n{}sink: {{connector: file, path: rows.jsonl, format: json}}\n", datagen(None)),
    );
    run_job(&job).assert_ok();
    read_json_lines(&dir.join("rows.jsonl"))
}

fn kills_wanted() -> usize {
    std::env::var("WEIR_KILLS").ok().and_then(|k| k.parse().ok()).unwrap_or(20)
}

#[test]
fn killed_at_random_moments_the_job_commits_exactly_the_output_of_a_crash_free_run() {
    let input = temp_dir();
    let want = expected(&input_rows(input.path()));
    let windows = USERS as u64 * (ROWS * STEP_MS as u64 / 1000);
    assert!(want.len() as u64 > windows * 9 / 10, "most users click in most seconds: {} of {windows}", want.len());

    let clean = temp_dir();
    let job = counting_job(clean.path(), 2, "");
    let summary = run_job(&job).assert_ok().summary();
    assert_eq!(summary.records_in, ROWS);
    assert_eq!(committed(clean.path()), want, "the crash-free run is right");

    let crashed = temp_dir();
    let job = counting_job(crashed.path(), 2, "");
    let seed = std::env::var("WEIR_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261125);
    let kills = kills_wanted();
    let landed = kill_repeatedly(crashed.path(), &job, kills, seed);
    assert_eq!(landed, kills, "every kill hit the running job (seed {seed}); make the input longer");
    assert!(checkpoint_ids(crashed.path()).last().copied().unwrap_or(0) > 3, "the killed runs made progress");
    let last = run_job(&job).assert_ok().summary();
    assert!(last.records_in < ROWS, "the last run resumed instead of starting over: {last:?}");

    let got = committed(crashed.path());
    let missing: Vec<_> = want.iter().filter(|l| got.binary_search(l).is_err()).take(3).collect();
    let mut seen = got.clone();
    seen.dedup();
    assert_eq!(seen.len(), got.len(), "duplicated output after {kills} kills (seed {seed})");
    assert!(missing.is_empty(), "lost output after {kills} kills (seed {seed}): {missing:?}");
    assert_eq!(got, want, "{kills} kills (seed {seed})");
    assert!(
        !std::fs::read_dir(crashed.path().join("out")).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".inprogress")),
        "a finished job leaves no part in progress"
    );
}

#[test]
fn a_damaged_latest_checkpoint_is_detected_and_the_one_before_it_is_used() {
    let input = temp_dir();
    let want = expected(&input_rows(input.path()));
    let dir = temp_dir();
    let job = counting_job(dir.path(), 2, "");
    let mut child = run_until_checkpoints(dir.path(), &job, 3);
    child.kill().unwrap();
    child.wait().unwrap();
    let ids = checkpoint_ids(dir.path());
    let newest = *ids.last().expect("checkpoints were written");
    let path = dir.path().join("ckpt").join(format!("chk-{newest:010}.meta"));
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&path, &bytes).unwrap();

    let listed = run(weir().arg("checkpoints").arg(&job));
    listed.assert_ok();
    assert!(listed.stdout.contains("DAMAGED") && listed.stdout.contains("checksum mismatch"), "{}", listed.stdout);

    let resumed = run_job(&job);
    resumed.assert_ok();
    assert!(
        resumed.stderr.contains("damaged checkpoint skipped")
            && resumed.stderr.contains(&format!("checkpoint={newest}")),
        "the log says which checkpoint was skipped:\n{}",
        resumed.stderr
    );
    assert_eq!(committed(dir.path()), want);

    // A truncated file is caught the same way.
    let truncated = dir.path().join("ckpt").join(format!("chk-{:010}.meta", newest + 100));
    std::fs::write(&truncated, b"WEIRCHK1").unwrap();
    let listed = run(weir().arg("checkpoints").arg(&job).arg("--json"));
    let rows: serde_json::Value = serde_json::from_str(&listed.assert_ok().stdout).unwrap();
    assert!(rows[0]["damaged"].as_str().unwrap().contains("truncated"), "{rows}");
    assert_eq!(rows[1]["finished"], true, "the run ended with a finished checkpoint: {rows}");
}

#[test]
fn a_job_resumed_at_another_parallelism_moves_its_state_by_key_group() {
    let input = temp_dir();
    let want = expected(&input_rows(input.path()));
    let dir = temp_dir();
    let job = counting_job(dir.path(), 2, "");
    let mut child = run_until_checkpoints(dir.path(), &job, 4);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(committed(dir.path()).len() < want.len(), "killed before the end");
    let rescaled = counting_job(dir.path(), 3, "");
    run_job(&rescaled).assert_ok();
    assert_eq!(committed(dir.path()), want);
}

#[test]
fn a_process_window_functions_buffered_records_survive_a_kill_and_a_rescale() {
    // The records a process-window function's windows hold are checkpointed with them: a
    // job killed mid-way and resumed at another parallelism emits each user's and second's
    // count exactly once, as a crash-free run does.
    let input = temp_dir();
    let mut want: BTreeMap<(i64, i64), u64> = BTreeMap::new();
    for row in input_rows(input.path()) {
        let ts = row["ts"].as_i64().unwrap();
        *want.entry((row["user"].as_i64().unwrap(), ts - ts.rem_euclid(1000))).or_default() += 1;
    }
    let mut want: Vec<String> = want
        .into_iter()
        .map(|((user, start), count)| {
            serde_json::json!({"key": user, "start": start, "end": start + 1000, "count": count, "max": 0.0})
                .to_string()
        })
        .collect();
    want.sort();
    let pipeline = "  - assign_timestamps: {field: ts, max_out_of_orderness: 0 s}\n  - key_by: user\n  \
                    - window: {tumbling: 1 s, process: p.window_stats}\n";
    let dir = temp_dir();
    let mut child = run_until_checkpoints(dir.path(), &job_with_pipeline(dir.path(), 2, "", pipeline), 4);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(committed(dir.path()).len() < want.len(), "killed before the end");
    run_job(&job_with_pipeline(dir.path(), 3, "", pipeline)).assert_ok();
    assert_eq!(committed(dir.path()), want);
}

#[test]
fn a_finished_job_runs_again_from_the_start_and_a_bad_checkpoints_section_is_refused() {
    let dir = temp_dir();
    let job = write_job(
        dir.path(),
        "name: again\nsource: {connector: collection, elements: [1, 2, 3]}\n\
         checkpoints: {interval: 50 ms, dir: ckpt}\nsink: {connector: file, path: out, format: json}\n",
    );
    for _ in 0..2 {
        let summary = run_job(&job).assert_ok().summary();
        assert_eq!((summary.records_in, summary.records_out), (3, 3));
        assert_eq!(committed(dir.path()), vec!["1", "2", "3"]);
    }
    let listed = run(weir().arg("checkpoints").arg(&job));
    assert!(listed.assert_ok().stdout.contains("(finished)"), "{}", listed.stdout);

    for (section, message) in [
        ("{interval: 1 ms}", "checkpoints.interval: a checkpoint every 1 ms is too often"),
        ("{retained: 1}", "checkpoints.retained: expected a whole number from 2 to 1000"),
        ("{every: 1 s}", "checkpoints"),
        ("{interval: soon}", "expected a duration"),
    ] {
        let bad = write_job(
            dir.path(),
            &format!(
                "name: bad\nsource: {{connector: collection, elements: [1]}}\ncheckpoints: {section}\nsink: {{connector: print}}\n"
            ),
        );
        let err = run_job(&bad).assert_failed().to_string();
        assert!(err.contains(message) && err.contains("job.yaml:3"), "{section}: {err}");
    }
    let plain = write_job(
        dir.path(),
        "name: plain\nsource: {connector: collection, elements: [1]}\nsink: {connector: print}\n",
    );
    let err = run(weir().arg("checkpoints").arg(&plain)).assert_failed().to_string();
    assert!(err.contains("takes no checkpoints"), "{err}");
}

/// A port nothing listens on (yet).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn socket_job(dir: &Path, port: u16, attempts: u32) -> PathBuf {
    write_job(
        dir,
        &format!(
            "name: restarts\nsource: {{connector: socket, hostname: 127.0.0.1, port: {port}}}\n\
             checkpoints: {{interval: 50 ms, dir: ckpt, restart_attempts: {attempts}, restart_delay: 150 ms}}\n\
             sink: {{connector: file, path: out, format: text}}\n"
        ),
    )
}

#[test]
fn a_failing_job_restarts_from_its_checkpoint_with_backoff_and_gives_up_after_its_attempts() {
    // The source's server comes up a while after the job starts: the first attempts fail
    // to connect, a restart gets through.
    let dir = temp_dir();
    let port = free_port();
    let job = socket_job(dir.path(), port, 6);
    let server = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is still free");
        let mut conn = accept_within(&listener, Duration::from_secs(30)).expect("the job connects");
        std::io::Write::write_all(&mut conn, b"one\ntwo\n").unwrap();
    });
    let ran = run_job(&job);
    server.join().unwrap();
    let summary = ran.assert_ok().summary();
    assert_eq!(summary.records_out, 2);
    assert!(ran.stderr.contains("restarting from its latest checkpoint"), "{}", ran.stderr);
    assert_eq!(committed(dir.path()), vec!["one", "two"]);

    let dir = temp_dir();
    let job = socket_job(dir.path(), free_port(), 2);
    let started = Instant::now();
    let err = run_job(&job).assert_failed().to_string();
    assert!(err.contains("failed again after 2 restarts") && err.contains("cannot connect"), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(150 + 300), "the delay doubles between attempts");
}

/// Runs `job` until it has completed 3 checkpoints, takes a savepoint while it runs, kills
/// it, and leaves the savepoint as all there is: the checkpoints are deleted, and the output
/// committed after the savepoint's checkpoint too. The output of a run from the savepoint,
/// added to what is left, is then the whole output.
fn savepoint_of_a_running_job(dir: &Path, job: &Path) -> PathBuf {
    let mut child = run_until_checkpoints(dir, job, 3);
    // Taken while the job runs (its state is read from a copy).
    let savepoint = dir.join("sp.weir");
    let took = run(weir().arg("savepoint").arg(job).arg("-o").arg(&savepoint));
    took.assert_ok();
    assert!(
        took.stdout.contains("savepoint of checkpoint") && took.stdout.contains("keyed entries"),
        "{}",
        took.stdout
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let at: u64 = took.stdout.split("checkpoint ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    std::fs::remove_dir_all(dir.join("ckpt")).unwrap();
    for entry in std::fs::read_dir(dir.join("out")).unwrap().map(Result::unwrap) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let epoch: u64 = name
            .trim_start_matches(".part-")
            .trim_start_matches("part-")
            .trim_end_matches(".inprogress")
            .parse()
            .unwrap();
        if epoch > at {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    savepoint
}

#[test]
fn a_savepoint_of_a_running_job_starts_it_again_elsewhere_at_another_parallelism() {
    let input = temp_dir();
    let want = expected(&input_rows(input.path()));
    let dir = temp_dir();
    let job = counting_job(dir.path(), 2, "");
    let savepoint = savepoint_of_a_running_job(dir.path(), &job);
    let rescaled = counting_job(dir.path(), 3, "");
    let resumed = run(weir().arg("run").arg(&rescaled).arg("--summary").arg("--from-savepoint").arg(&savepoint));
    let summary = resumed.assert_ok().summary();
    assert!(summary.records_in < ROWS, "resumed from the savepoint's positions: {summary:?}");
    assert_eq!(committed(dir.path()), want);

    let mut bytes = std::fs::read(&savepoint).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&savepoint, &bytes).unwrap();
    let err = run(weir().arg("run").arg(&rescaled).arg("--from-savepoint").arg(&savepoint)).assert_failed().to_string();
    assert!(err.contains("cannot start job `exactly-once` from") && err.contains("checksum mismatch"), "{err}");
}

/// The counting job with uids on its stateful steps, and a step inserted before them:
/// every step after it has another place.
const WITH_UIDS: &str = "  - assign_timestamps: {field: ts, max_out_of_orderness: 0 s}\n  - key_by: user\n  \
                         - process: p.count_per_key\n    uid: clicks-per-user\n  - key_by: key\n  \
                         - window: {tumbling: 1 s, aggregate: max, field: count}\n    uid: max-per-second\n";

#[test]
fn state_follows_each_step_by_uid_when_a_step_is_inserted_before_it() {
    let input = temp_dir();
    let want = expected(&input_rows(input.path()));
    let dir = temp_dir();
    let job = job_with_pipeline(dir.path(), 2, "", WITH_UIDS);
    let savepoint = savepoint_of_a_running_job(dir.path(), &job);

    // A second timestamp assigner (the same event time) moves every later step one place on.
    let inserted = format!("  - assign_timestamps: {{field: ts, max_out_of_orderness: 0 s}}\n{WITH_UIDS}");
    let changed = job_with_pipeline(dir.path(), 2, "", &inserted);
    let resumed = run(weir().arg("run").arg(&changed).arg("--summary").arg("--from-savepoint").arg(&savepoint));
    let summary = resumed.assert_ok().summary();
    assert!(summary.records_in < ROWS, "resumed from the savepoint's positions: {summary:?}");
    assert_eq!(committed(dir.path()), want, "the counts went on from the savepoint's state");
}

#[test]
fn state_no_step_takes_over_is_refused_unless_allowed() {
    let dir = temp_dir();
    let job = counting_job(dir.path(), 1, "");
    let savepoint = savepoint_of_a_running_job(dir.path(), &job);

    // Without uids the stateful steps are known by place: after an inserted step, no step
    // has the uids the savepoint's state belongs to.
    let inserted = format!("  - assign_timestamps: {{field: ts, max_out_of_orderness: 0 s}}\n{PIPELINE}");
    let changed = job_with_pipeline(dir.path(), 1, "", &inserted);
    let err = run(weir().arg("run").arg(&changed).arg("--from-savepoint").arg(&savepoint)).assert_failed().to_string();
    assert!(
        err.contains("holds state of `process[2] process.count_per_key`, `window[4] tumbling 1 s max`, which no step of this job has")
            && err.contains("--allow-non-restored-state"),
        "{err}"
    );

    // Allowed, the job drops that state and runs; its steps start empty.
    let started = run(weir()
        .arg("run")
        .arg(&changed)
        .arg("--summary")
        .arg("--allow-non-restored-state")
        .arg("--from-savepoint")
        .arg(&savepoint));
    let summary = started.assert_ok().summary();
    assert!(summary.records_in < ROWS, "resumed from the savepoint's positions: {summary:?}");
}

#[test]
fn the_builder_names_steps_by_uid_and_refuses_two_steps_with_one() {
    let env = weir::env::StreamEnvironment::new();
    let doubled = env.from_elements([1i64, 2, 3]).map_native("double", |x: i64| x * 2).uid("double");
    let collected = doubled.map_native("same", |x: i64| x).uid("same").collect();
    env.execute("uids").expect("distinct uids run");
    assert_eq!(collected.lock().unwrap().len(), 3);

    let env = weir::env::StreamEnvironment::new();
    let twice = env.from_elements([1i64]).map_native("a", |x: i64| x).uid("x").map_native("b", |x: i64| x).uid("x");
    twice.collect();
    let err = env.execute("uids").unwrap_err().to_string();
    assert!(err.contains("both have uid `x`"), "{err}");

    let env = weir::env::StreamEnvironment::new();
    env.from_elements([1i64]).map_native("a", |x: i64| x).uid("a b").collect();
    let err = env.execute("uids").unwrap_err().to_string();
    assert!(err.contains("uid `a b`: ` ` cannot be in a uid"), "{err}");
}
