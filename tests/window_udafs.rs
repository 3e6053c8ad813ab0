//! Wasm UDAFs aggregating windows, from job files run by the CLI, with outputs worked out by
//! hand: `plugins/stats-rust` (avg, distinct_count) and the hostile `agg_trap`, which traps
//! on a value containing `boom`.
//!
//! Common setup: event time from `ts` (ms), watermarks trailing the largest timestamp by the
//! bound given, key by `url`.

mod common;

use std::path::{Path, PathBuf};

use common::{plugin_yaml, read_json_lines, run_job, temp_dir, write_file, write_job};
use serde_json::{Value, json};

fn job(dir: &Path, input: &str, batch_size: usize, bound: &str, window: &str) -> PathBuf {
    write_file(dir, "input.jsonl", input);
    write_job(
        dir,
        &format!(
            "name: window udafs\nparallelism: 1\nbatch_size: {batch_size}\nplugins:\n  stats: {}\n  hostile: {}\n\
             source: {{connector: file, path: input.jsonl, format: json}}\n\
             pipeline:\n  - assign_timestamps: {{field: ts, max_out_of_orderness: {bound}}}\n  - key_by: url\n  - window:\n{window}\n\
             sink: {{connector: file, path: out.jsonl, format: json}}\n\
             dead_letter: {{connector: file, path: dead.jsonl}}\n",
            plugin_yaml("stats-rust"),
            plugin_yaml("hostile-rust"),
        ),
    )
}

fn sorted(mut rows: Vec<Value>) -> Vec<Value> {
    rows.sort_by_key(|r| r.to_string());
    rows
}

const LATENCIES: &str = r#"{"url":"/a","ts":1000,"latency_ms":10}
{"url":"/b","ts":9000,"latency_ms":7}
{"url":"/a","ts":4000,"latency_ms":30}
{"url":"/a","ts":12000,"latency_ms":5}
{"url":"/a","ts":16000,"latency_ms":6}
"#;

#[test]
fn a_rust_udaf_aggregates_a_field_per_key_and_window_in_one_call_per_batch_or_per_record() {
    // 10 s tumbling windows, average latency: /a [0,10000) has 10 and 30 -> 20; /b [0,10000)
    // has 7; /a [10000,20000) has 5 and 6 -> 5.5. The same whether each record is its own
    // batch (one add call each) or all five are one batch (one grouped call for 3 windows).
    let window = "      tumbling: 10 s\n      aggregate: stats.avg\n      field: latency_ms";
    let expected = sorted(vec![
        json!({"key": "/a", "window_start": 0, "window_end": 10000, "avg": 20.0}),
        json!({"key": "/b", "window_start": 0, "window_end": 10000, "avg": 7.0}),
        json!({"key": "/a", "window_start": 10000, "window_end": 20000, "avg": 5.5}),
    ]);
    for batch_size in [1, 100] {
        let dir = temp_dir();
        let out = run_job(&job(dir.path(), LATENCIES, batch_size, "0 s", window));
        out.assert_ok();
        assert_eq!(sorted(read_json_lines(&dir.path().join("out.jsonl"))), expected, "batch_size {batch_size}");
        let s = out.summary();
        assert_eq!((s.records_in, s.records_out, s.dead_letters), (5, 3, 0));
    }
}

#[test]
fn with_one_record_per_batch_windows_fire_in_watermark_order() {
    // Bound 0: ts 12000 moves the watermark to 11999, which fires both [0,10000) windows (in
    // key order: /a, /b); the end of the input fires /a's [10000,20000).
    let dir = temp_dir();
    let window = "      tumbling: 10 s\n      aggregate: stats.avg\n      field: latency_ms";
    run_job(&job(dir.path(), LATENCIES, 1, "0 s", window)).assert_ok();
    let keys: Vec<(String, i64)> = read_json_lines(&dir.path().join("out.jsonl"))
        .iter()
        .map(|r| (r["key"].as_str().unwrap().to_string(), r["window_start"].as_i64().unwrap()))
        .collect();
    assert_eq!(keys, [("/a".into(), 0), ("/b".into(), 0), ("/a".into(), 10000)]);
}

#[test]
fn a_udaf_that_traps_on_one_record_sends_it_to_the_dead_letters_and_the_window_still_fires() {
    // agg_trap collects the `word`s of a window and traps on one containing "boom". In one
    // batch of three records, the grouped add traps; the host retries value by value, so
    // "x" and "y" go in once each and the "boom" record alone is a dead letter.
    let input = r#"{"url":"/a","ts":1000,"word":"x"}
{"url":"/a","ts":2000,"word":"boom"}
{"url":"/b","ts":2500,"word":"z"}
{"url":"/a","ts":3000,"word":"y"}
"#;
    let dir = temp_dir();
    let window = "      tumbling: 10 s\n      aggregate: hostile.agg_trap\n      field: word";
    let out = run_job(&job(dir.path(), input, 100, "0 s", window));
    out.assert_ok();
    assert_eq!(
        sorted(read_json_lines(&dir.path().join("out.jsonl"))),
        sorted(vec![
            json!({"key": "/a", "window_start": 0, "window_end": 10000, "agg_trap": ["x", "y"]}),
            json!({"key": "/b", "window_start": 0, "window_end": 10000, "agg_trap": ["z"]}),
        ])
    );
    let dead = read_json_lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["kind"], "trap");
    assert_eq!(dead[0]["record"], json!({"url": "/a", "ts": 2000, "word": "boom"}));
    assert!(dead[0]["error"].as_str().unwrap().contains("trap on purpose"), "{}", dead[0]["error"]);
    assert_eq!(out.summary().dead_letters, 1);
}

#[test]
fn session_windows_merge_udaf_accumulators() {
    // Gap 5 s, distinct users per url. /a: 1000 (u1) opens [1000,6000), 9000 (u2) opens
    // [9000,14000); 4500 (u1) opens [4500,9500), which overlaps both: one session
    // [1000,14000) whose accumulator is the merge of all three -> {u1, u2} = 2. /b: 30000
    // (u3) alone -> [30000,35000) = 1. Bound 10 s keeps 4500 from being late.
    let input = r#"{"url":"/a","ts":1000,"user":"u1"}
{"url":"/a","ts":9000,"user":"u2"}
{"url":"/a","ts":4500,"user":"u1"}
{"url":"/b","ts":30000,"user":"u3"}
"#;
    let window = "      session: {gap: 5 s}\n      aggregate: stats.distinct_count\n      field: user";
    for batch_size in [1, 100] {
        let dir = temp_dir();
        run_job(&job(dir.path(), input, batch_size, "10 s", window)).assert_ok();
        assert_eq!(
            sorted(read_json_lines(&dir.path().join("out.jsonl"))),
            sorted(vec![
                json!({"key": "/a", "window_start": 1000, "window_end": 14000, "distinct_count": 2}),
                json!({"key": "/b", "window_start": 30000, "window_end": 35000, "distinct_count": 1}),
            ]),
            "batch_size {batch_size}"
        );
    }
}

#[test]
fn a_udaf_of_the_wrong_kind_or_an_undeclared_plugin_is_a_job_error() {
    let dir = temp_dir();
    let out = run_job(&job(dir.path(), LATENCIES, 1, "0 s", "      tumbling: 10 s\n      aggregate: stats.latency_ms"));
    let err = out.assert_failed();
    assert!(err.contains("pipeline[2].window.aggregate") && err.contains("is a map function"), "{err}");
    let out = run_job(&job(dir.path(), LATENCIES, 1, "0 s", "      tumbling: 10 s\n      aggregate: nope.avg"));
    let err = out.assert_failed();
    assert!(err.contains("plugin `nope` is not declared"), "{err}");
}

#[test]
fn the_access_log_example_counts_per_minute_and_computes_the_sliding_p95_in_one_job() {
    let dir = common::repo_root().join("examples/access-log");
    let minute = |m: i64| 1_795_600_800_000 + m * 60_000; // 2026-11-25T10:00Z + m minutes
    let row = |url: &str, start: i64, end: i64, field: &str, v: Value| json!({"key": url, "window_start": minute(start), "window_end": minute(end), field: v});

    // One job reads the log once and writes two sinks: the counts printed, the p95 to a file.
    let out = run_job(&dir.join("job.yaml"));
    out.assert_ok();
    assert_eq!(out.summary().records_out, 8 + 20, "both sinks' records");
    // 10:00: "/" at :05 :20 :45; "/cart" at :10 and :55 (15 s out of order, within the 30 s
    // bound); "/api" at :30. 10:01: "/" :10 :40, "/cart" :00 :50, "/api" :15. 10:02: "/" :05
    // :45, "/api" :30. The "/" request at 10:00:40 comes last, when the watermark is
    // 10:02:14.999: its minute has fired, so it is late. Line 10 does not parse.
    let got: Vec<Value> = out.stdout.lines().map(|l| serde_json::from_str(l).expect("JSON row")).collect();
    let count = |url, m: i64, n: i64| row(url, m, m + 1, "count", json!(n));
    assert_eq!(
        sorted(got),
        sorted(vec![
            count("/", 0, 3),
            count("/cart", 0, 2),
            count("/api", 0, 1),
            count("/", 1, 2),
            count("/cart", 1, 2),
            count("/api", 1, 1),
            count("/", 2, 2),
            count("/api", 2, 1),
        ])
    );
    let late = read_json_lines(&dir.join("out/late.jsonl"));
    assert_eq!((late.len(), &late[0]["latency_ms"]), (1, &json!(999.0)));
    let dead = read_json_lines(&dir.join("out/dead.jsonl"));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["record"], "this line is not an access-log line");
    assert!(dead[0]["error"].as_str().unwrap().starts_with("not an access-log line"), "{}", dead[0]["error"]);

    let rows = read_json_lines(&dir.join("out/p95.jsonl"));
    // Every request is in the five 5-minute windows starting in the 5 minutes up to it:
    // "/" (10:00-10:02) and "/api" (10:00-10:02) in 7 windows each, "/cart" (10:00-10:01) in 6.
    assert_eq!(rows.len(), 20, "{rows:?}");
    let p95 = |url: &str, start: i64| {
        rows.iter()
            .find(|r| r["key"] == url && r["window_start"] == minute(start))
            .map(|r| r["p95"].clone())
            .unwrap_or_else(|| panic!("no window {url} at {start}"))
    };
    // Nearest rank over n < 20 values is the largest value. [09:56, 10:01) holds "/" at 12,
    // 15 and 11 ms; the late 999 ms request missed it, since it had fired. [09:58, 10:03)
    // was still open, so it has the 999. [10:01, 10:06) holds 20, 14, 13 and 30.
    assert_eq!(p95("/", -4), json!(15.0));
    assert_eq!(p95("/", -3), json!(20.0));
    assert_eq!(p95("/", -2), json!(999.0));
    assert_eq!(p95("/", 1), json!(30.0));
    assert_eq!(p95("/cart", 1), json!(60.0)); // 60 and 55 (10:01)
    assert_eq!(p95("/api", 2), json!(90.0));
}

/// The access-log example's `job.yaml`, run in a temporary folder with `stats` pointing at
/// the plugin `stats_plugin` (`stats-rust` or `stats-python`): its windows, sorted.
fn run_p95_example(stats_plugin: &str) -> Vec<Value> {
    let example = common::repo_root().join("examples/access-log");
    let dir = temp_dir();
    let job = std::fs::read_to_string(example.join("job.yaml")).unwrap();
    let stats = common::plugin(stats_plugin).display().to_string();
    let job = job.replace("../../plugins/stats-rust/stats-rust.wasm", &stats);
    let job = job.replace("../../plugins/", &format!("{}/plugins/", common::repo_root().display()));
    let job = job.replace("path: access.log", &format!("path: {}", example.join("access.log").display()));
    run_job(&write_job(dir.path(), &job)).assert_ok();
    sorted(read_json_lines(&dir.path().join("out/p95.jsonl")))
}

#[test]
fn the_builder_api_gives_the_same_windows_as_the_job_file() {
    use std::time::Duration;
    use weir::env::StreamEnvironment;
    use weir::window::WindowAssigner;

    let example = common::repo_root().join("examples/access-log");
    let from_job_file = run_p95_example("stats-rust");

    let env = StreamEnvironment::new();
    env.set_batch_size(1);
    env.set_cache_dir(common::shared_cache_dir());
    let access_log = env.load_plugin(common::plugin("access-log-rust")).unwrap();
    let stats = env.load_plugin(common::plugin("stats-rust")).unwrap();
    let collected = env
        .read_text_file(example.join("access.log"))
        .map(access_log.function("parse"))
        .assign_timestamps("ts", Duration::from_secs(30))
        .key_by("url")
        .window(WindowAssigner::sliding(300_000, 60_000, 0).unwrap())
        .aggregate_with(stats.function("p95"), Some("latency_ms"))
        .collect();
    let report = env.execute("p95").unwrap();
    assert_eq!((report.records_in, report.dead_letters), (16, 1));
    let rows = collected.lock().unwrap().iter().map(|v| weir::record::json_of(v)).collect();
    assert_eq!(sorted(rows), from_job_file);
    assert_eq!(from_job_file.len(), 20);
}

#[test]
fn a_python_udaf_gives_the_rust_udafs_windows() {
    // The access-log p95 job with `stats` pointing at the Python plugin: the same 20 windows
    // with the same percentiles as the Rust plugin's (the job-file test above checks those).
    let rust = run_p95_example("stats-rust");
    assert_eq!(rust.len(), 20);
    assert_eq!(run_p95_example("stats-python"), rust);
}
