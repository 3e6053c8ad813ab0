//! Event-time windows through the CLI, on out-of-order input whose output was worked out by
//! hand. Each case says why the output is what it is.
//!
//! Common setup: 10 s tumbling windows counting records per `url`, event time from `ts`
//! (ms), watermarks 2 s behind the largest timestamp seen (`max - 2000 - 1`), one record
//! per batch so that every record is followed by its watermark.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{URL_VIEWS, read_file, run_job, temp_dir, write_file, write_job};

fn job(dir: &std::path::Path, window: &str) -> std::path::PathBuf {
    write_file(dir, "access.jsonl", URL_VIEWS);
    write_job(
        dir,
        &format!(
            "name: windows\nparallelism: 1\nbatch_size: 1\nsource:\n  connector: file\n  path: access.jsonl\n  format: json\n\
             pipeline:\n  - assign_timestamps: {{field: ts, max_out_of_orderness: 2 s}}\n  - key_by: url\n  - window:\n{window}\n\
             sink:\n  connector: print\nlate_data:\n  connector: file\n  path: late.jsonl\n"
        ),
    )
}

fn row(url: &str, start: u64, end: u64, count: u64) -> String {
    format!(r#"{{"key":"{url}","window_start":{start},"window_end":{end},"count":{count}}}"#)
}

#[test]
fn tumbling_count_fires_on_watermarks_and_sends_late_records_aside() {
    let dir = temp_dir();
    let out = run_job(&job(dir.path(), "      tumbling: 10 s\n      aggregate: count"));
    out.assert_ok();
    // ts 12000 moves the watermark to 9999 = the last ms of [0,10000): that window fires
    // (/a: 1000 and 4000; /b: 9000). ts 8000 then belongs to a fired window and there is
    // no lateness: it goes to late.jsonl. ts 21000 moves the watermark to 18999: [10000,
    // 20000) fires (/a: 12000). The end of input fires [20000,30000) (/b: 21000).
    let expected =
        [row("/a", 0, 10000, 2), row("/b", 0, 10000, 1), row("/a", 10000, 20000, 1), row("/b", 20000, 30000, 1)];
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), expected, "stderr:\n{}", out.stderr);
    assert_eq!(read_file(&dir.path().join("late.jsonl")), "{\"url\":\"/a\",\"ts\":8000}\n");
    let s = out.summary();
    assert_eq!((s.records_in, s.records_out, s.late, s.dead_letters), (6, 4, 1, 0));
}

#[test]
fn allowed_lateness_updates_the_window_and_fires_it_again() {
    let dir = temp_dir();
    let out = run_job(&job(dir.path(), "      tumbling: 10 s\n      allowed_lateness: 5 s\n      aggregate: count"));
    out.assert_ok();
    // As above, but [0,10000) keeps its state until the watermark reaches 9999 + 5000:
    // ts 8000 (watermark 9999) is within lateness, so /a's window counts 3 and fires again
    // at once. Nothing is late.
    let expected = [
        row("/a", 0, 10000, 2),
        row("/b", 0, 10000, 1),
        row("/a", 0, 10000, 3),
        row("/a", 10000, 20000, 1),
        row("/b", 20000, 30000, 1),
    ];
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), expected, "stderr:\n{}", out.stderr);
    assert_eq!(read_file(&dir.path().join("late.jsonl")), "");
}

#[test]
fn sliding_and_session_windows() {
    let dir = temp_dir();
    // Sliding 10 s every 5 s: each record is in two windows. /a's records 1000, 4000 are in
    // [-5000,5000) and [0,10000); 8000 is late for [0,10000)? No: when it arrives the
    // watermark is 9999, [0,10000) fired and has no lateness, but [5000,15000) is still
    // open, so the record is not late (Flink: late only if late for ALL its windows): it
    // counts in [5000,15000) only.
    let out = run_job(&job(dir.path(), "      sliding: {size: 10 s, slide: 5 s}\n      aggregate: count"));
    out.assert_ok();
    let mut got: Vec<&str> = out.stdout.lines().collect();
    got.sort();
    let mut expected = vec![
        row("/a", 0, 10000, 2),
        row("/b", 0, 10000, 1),
        row("/b", 5000, 15000, 1),
        row("/a", 5000, 15000, 2),
        row("/a", 10000, 20000, 1),
        row("/b", 15000, 25000, 1),
        row("/b", 20000, 30000, 1),
    ];
    // [-5000,5000) holds /a's 1000 and 4000.
    expected.push(r#"{"key":"/a","window_start":-5000,"window_end":5000,"count":2}"#.to_string());
    expected.sort();
    assert_eq!(got, expected, "stderr:\n{}", out.stderr);
    assert_eq!(read_file(&dir.path().join("late.jsonl")), "");

    // Sessions with a 5 s gap: /a 1000 and 4000 form [1000,9000); 12000 starts
    // [12000,17000) and moves the watermark to 9999, past [1000,9000)'s last ms (8999):
    // that session fires with 2 and, with no lateness, is purged. 8000 then opens
    // [8000,13000), which is not late (it ends after the watermark) and merges with
    // [12000,17000) only (the purged session is gone): /a counts 2 in [8000,17000).
    // /b: 9000 alone [9000,14000), 21000 alone [21000,26000).
    let dir = temp_dir();
    let out = run_job(&job(dir.path(), "      session: {gap: 5 s}\n      aggregate: count"));
    out.assert_ok();
    let mut got: Vec<&str> = out.stdout.lines().collect();
    got.sort();
    let mut expected = vec![
        row("/a", 1000, 9000, 2),
        row("/a", 8000, 17000, 2),
        row("/b", 9000, 14000, 1),
        row("/b", 21000, 26000, 1),
    ];
    expected.sort();
    assert_eq!(got, expected, "stderr:\n{}", out.stderr);
}

#[test]
fn a_window_without_event_time_is_a_job_error() {
    let dir = temp_dir();
    write_file(dir.path(), "in.jsonl", URL_VIEWS);
    let job = write_job(
        dir.path(),
        "name: w\nsource:\n  connector: file\n  path: in.jsonl\n  format: json\npipeline:\n  - key_by: url\n  - window: {tumbling: 1 min, aggregate: count}\nsink:\n  connector: print\n",
    );
    let out = run_job(&job);
    let err = out.assert_failed();
    assert!(err.contains("job.yaml:8: pipeline[1].window: an event-time window needs `assign_timestamps`"), "{err}");
}

#[test]
fn the_windowed_counts_example_counts_per_url_and_minute() {
    let job = common::repo_root().join("examples/windowed-counts/job.yaml");
    let out = run_job(&job);
    out.assert_ok();
    // 10:00 holds "/" at :01, :02, :31, :40 (4; :20 arrives after 10:02:30 moved the
    // watermark past 10:00:59.999 + 10 s lateness, so it is late) and "/cart" at :07.
    let minute = |m: u64| 1_795_600_800_000 + m * 60_000;
    let mut got: Vec<&str> = out.stdout.lines().collect();
    got.sort();
    let mut expected = vec![
        format!(r#"{{"key":"/","window_start":{},"window_end":{},"count":4}}"#, minute(0), minute(1)),
        format!(r#"{{"key":"/","window_start":{},"window_end":{},"count":1}}"#, minute(1), minute(2)),
        format!(r#"{{"key":"/cart","window_start":{},"window_end":{},"count":1}}"#, minute(0), minute(1)),
        format!(r#"{{"key":"/cart","window_start":{},"window_end":{},"count":1}}"#, minute(1), minute(2)),
        format!(r#"{{"key":"/checkout","window_start":{},"window_end":{},"count":1}}"#, minute(2), minute(3)),
    ];
    expected.sort();
    assert_eq!(got, expected, "stderr:\n{}", out.stderr);
    assert_eq!(out.summary().late, 1);
}

#[test]
fn the_windowed_summary_example_gives_each_window_to_a_python_function() {
    // The same windows as the counting example (the late "/" at 10:00:20 is not in them),
    // each handed whole to plugins/process-python's window_summary.
    let job = common::repo_root().join("examples/windowed-counts/summary.yaml");
    let out = run_job(&job);
    out.assert_ok();
    let minute = |m: i64| 1_795_600_800_000 + m * 60_000;
    let at = |m: i64, s: i64| minute(m) + s * 1000;
    let mut got: Vec<serde_json::Value> =
        out.stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    got.sort_by_key(|v| v.to_string());
    let row = |key: &str, m: i64, count: u64, first: i64, last: i64| serde_json::json!({"key": key, "start": minute(m), "end": minute(m + 1), "count": count, "first_at": first, "last_at": last});
    let mut expected = vec![
        row("/", 0, 4, at(0, 1), at(0, 40)),
        row("/", 1, 1, at(1, 10), at(1, 10)),
        row("/cart", 0, 1, at(0, 7), at(0, 7)),
        row("/cart", 1, 1, at(1, 5), at(1, 5)),
        row("/checkout", 2, 1, at(2, 30), at(2, 30)),
    ];
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(got, expected, "stderr:\n{}", out.stderr);
    assert_eq!(out.summary().late, 1);
}

#[test]
fn processing_time_windows_count_by_arrival_and_fire_at_the_end_of_a_bounded_input() {
    // Processing time ignores `ts` (no assign_timestamps needed): every record lands in the
    // 1-hour window of the wall clock when it arrives. The run takes well under a second, so
    // each key's records are in one window, or two if the run straddles a full hour; either
    // way the counts add up to the records per key and windows are hour-aligned.
    let dir = temp_dir();
    write_file(dir.path(), "in.jsonl", URL_VIEWS);
    let job = write_job(
        dir.path(),
        "name: w\nsource: {connector: file, path: in.jsonl, format: json}\npipeline:\n\
         \x20 - key_by: url\n  - window: {tumbling: 1 h, time: processing, aggregate: count}\nsink: {connector: file, path: out.jsonl, format: json}\n",
    );
    run_job(&job).assert_ok();
    let rows = common::read_json_lines(&dir.path().join("out.jsonl"));
    let mut per_key = std::collections::BTreeMap::new();
    for r in &rows {
        let (start, end) = (r["window_start"].as_i64().unwrap(), r["window_end"].as_i64().unwrap());
        assert_eq!((start % 3_600_000, end - start), (0, 3_600_000), "{r}");
        *per_key.entry(r["key"].as_str().unwrap().to_string()).or_insert(0) += r["count"].as_i64().unwrap();
    }
    assert_eq!(per_key, [("/a".to_string(), 4), ("/b".to_string(), 2)].into());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!(rows.iter().all(|r| (r["window_start"].as_i64().unwrap() - now).abs() < 2 * 3_600_000), "{rows:?}");
}

#[test]
fn processing_time_with_allowed_lateness_is_a_job_error() {
    let dir = temp_dir();
    write_file(dir.path(), "in.jsonl", URL_VIEWS);
    let job = write_job(
        dir.path(),
        "name: w\nsource: {connector: file, path: in.jsonl, format: json}\npipeline:\n\
         \x20 - key_by: url\n  - window: {tumbling: 1 h, time: processing, allowed_lateness: 1 s, aggregate: count}\nsink: {connector: print}\n",
    );
    let err = run_job(&job).assert_failed().to_string();
    assert!(err.contains("window.allowed_lateness: processing-time windows have no late records"), "{err}");
}

/// A job on a live socket whose records all reach one of two parallel timestamp assigners:
/// the other never sees a record, so the windows after them wait for its watermark unless
/// it goes idle. Returns whether the first window fired while the socket was still open.
fn first_window_fires_while_the_stream_is_open(idleness: &str) -> (bool, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let dir = temp_dir();
    let job = write_job(
        dir.path(),
        &format!(
            "name: idle\nparallelism: 2\nsource: {{connector: socket, hostname: 127.0.0.1, port: {port}, format: json}}\n\
             pipeline:\n  - assign_timestamps: {{field: ts, max_out_of_orderness: 0 s, parallelism: 2{idleness}}}\n\
             \x20 - key_by: url\n  - window: {{tumbling: 10 s, aggregate: count}}\nsink: {{connector: print}}\n"
        ),
    );
    let mut child = common::weir()
        .arg("run")
        .arg(&job)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("weir run");
    let mut conn = common::accept_within(&listener, Duration::from_secs(60)).expect("the job connects");
    // Both lines in one write: the source ships them as one batch, to one assigner.
    conn.write_all(b"{\"url\":\"/a\",\"ts\":1000}\n{\"url\":\"/a\",\"ts\":12000}\n").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Long enough for a loaded machine (the test binary runs its tests in parallel).
    let deadline = Instant::now() + Duration::from_secs(8);
    let first = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    drop(conn); // end of stream: the job flushes and ends
    let status = child.wait().expect("wait");
    assert!(status.success());
    match first {
        Ok(line) => (true, line),
        Err(_) => (false, rx.try_iter().next().unwrap_or_default()),
    }
}

#[test]
fn an_idle_parallel_input_does_not_hold_back_the_windows() {
    // With `idleness: 300 ms` the quiet assigner says it is idle within 300 + 200 ms; the
    // windows then follow the busy one's watermark (11999) and [0,10000) fires while the
    // socket is still open.
    let (fired, line) = first_window_fires_while_the_stream_is_open(", idleness: 300 ms");
    assert!(fired, "the window did not fire while the stream was open");
    assert_eq!(line, row("/a", 0, 10000, 1));
    // Without idleness the same window waits for the quiet input until the stream ends.
    let (fired, line) = first_window_fires_while_the_stream_is_open("");
    assert!(!fired, "without idleness the window fired early: {line}");
    assert_eq!(line, row("/a", 0, 10000, 1), "it fires at the end of the stream instead");
}
