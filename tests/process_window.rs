//! Process-window functions (Flink's `ProcessWindowFunction`, ABI 0.2's `process-window`)
//! from job files run by the CLI: `window: {..., process: plugin.function}` calls the
//! function with all the records of each key's window when it fires. Against
//! `plugins/process-rust` (`window_stats`: count and max amount) and
//! `plugins/process-python` (`window_summary`: count, first and last event time), with
//! outputs worked out by hand.

mod common;

use std::path::{Path, PathBuf};

use common::{plugin_yaml, read_json_lines, run_job, temp_dir, write_file, write_job};
use serde_json::{Value, json};

fn job(dir: &Path, plugin: &str, window: &str) -> PathBuf {
    write_file(dir, "input.jsonl", AMOUNTS);
    write_job(
        dir,
        &format!(
            "name: process window\nparallelism: 1\nbatch_size: 2\nplugins:\n  p: {}\n\
             source: {{connector: file, path: input.jsonl, format: json}}\n\
             pipeline:\n  - assign_timestamps: {{field: ts, max_out_of_orderness: 1 s}}\n  - key_by: user\n  - window: {window}\n\
             sink: {{connector: file, path: out.jsonl, format: json}}\n\
             dead_letter: {{connector: file, path: dead.jsonl}}\n",
            plugin_yaml(plugin),
        ),
    )
}

/// a: 3.0 at 1 s, 9.5 at 2.5 s (out of order after b's 4 s), 4.0 at 12 s; b: 1.0 at 4 s;
/// then a at 31 s, far enough to fire the 10 s windows before the end of input.
const AMOUNTS: &str = r#"{"user":"a","ts":1000,"amount":3.0}
{"user":"b","ts":4000,"amount":1.0}
{"user":"a","ts":2500,"amount":9.5}
{"user":"a","ts":12000,"amount":4.0}
{"user":"a","ts":31000,"amount":0.5}
"#;

fn sorted(mut rows: Vec<Value>) -> Vec<Value> {
    rows.sort_by_key(|r| r.to_string());
    rows
}

#[test]
fn a_rust_process_window_function_sees_every_record_of_its_window() {
    let dir = temp_dir();
    run_job(&job(dir.path(), "process-rust", "{tumbling: 10 s, process: p.window_stats}")).assert_ok();
    let rows = read_json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(
        sorted(rows),
        sorted(vec![
            json!({"key": "a", "start": 0, "end": 10000, "count": 2, "max": 9.5}),
            json!({"key": "b", "start": 0, "end": 10000, "count": 1, "max": 1.0}),
            json!({"key": "a", "start": 10000, "end": 20000, "count": 1, "max": 4.0}),
            json!({"key": "a", "start": 30000, "end": 40000, "count": 1, "max": 0.5}),
        ])
    );
    assert!(!dir.path().join("dead.jsonl").exists() || read_json_lines(&dir.path().join("dead.jsonl")).is_empty());
}

#[test]
fn session_windows_merge_their_records_before_the_function_sees_them() {
    // Gap 5 s: a's 1 s and 2.5 s merge into [1000, 7500); 12 s and 31 s are sessions of
    // their own; b's 4 s is [4000, 9000).
    let dir = temp_dir();
    run_job(&job(dir.path(), "process-rust", "{session: {gap: 5 s}, process: p.window_stats}")).assert_ok();
    let rows = read_json_lines(&dir.path().join("out.jsonl"));
    let counts: Vec<(String, i64, u64)> = sorted(rows)
        .iter()
        .map(|r| (r["key"].as_str().unwrap().to_string(), r["start"].as_i64().unwrap(), r["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(counts, [("a".into(), 1000, 2), ("a".into(), 12000, 1), ("a".into(), 31000, 1), ("b".into(), 4000, 1)]);
}

#[test]
fn a_python_process_window_function_gets_the_event_times_too() {
    let dir = temp_dir();
    run_job(&job(dir.path(), "process-python", "{tumbling: 10 s, process: p.window_summary}")).assert_ok();
    let rows = read_json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(
        sorted(rows),
        sorted(vec![
            json!({"key": "a", "start": 0, "end": 10000, "count": 2, "first_at": 1000, "last_at": 2500}),
            json!({"key": "b", "start": 0, "end": 10000, "count": 1, "first_at": 4000, "last_at": 4000}),
            json!({"key": "a", "start": 10000, "end": 20000, "count": 1, "first_at": 12000, "last_at": 12000}),
            json!({"key": "a", "start": 30000, "end": 40000, "count": 1, "first_at": 31000, "last_at": 31000}),
        ])
    );
}

#[test]
fn a_window_takes_an_aggregate_or_a_process_function_of_the_right_kind() {
    let dir = temp_dir();
    let out = run_job(&job(dir.path(), "process-rust", "{tumbling: 10 s, process: p.count_per_key}"));
    let error = out.assert_failed();
    assert!(error.contains("count_per_key") && error.contains("process_window"), "{error}");
    let out = run_job(&job(dir.path(), "process-rust", "{tumbling: 10 s, aggregate: count, process: p.window_stats}"));
    let error = out.assert_failed();
    assert!(error.contains("not both"), "{error}");
}

#[test]
fn the_builder_api_runs_a_process_window_function_behind_a_shuffle() {
    use std::time::Duration;
    use weir::env::StreamEnvironment;
    use weir::window::WindowAssigner;

    let dir = temp_dir();
    write_file(dir.path(), "input.jsonl", AMOUNTS);
    let env = StreamEnvironment::new();
    env.set_parallelism(2);
    env.set_cache_dir(common::shared_cache_dir());
    env.set_dead_letter(weir::connectors::SinkSpec::discard());
    let stats = env.load_plugin(common::plugin("process-rust")).unwrap();
    let collected = env
        .read_json_lines(dir.path().join("input.jsonl"))
        .shuffle()
        .assign_timestamps("ts", Duration::from_secs(1))
        .key_by("user")
        .window(WindowAssigner::tumbling(10_000, 0).unwrap())
        .process(stats.function("window_stats"))
        .collect();
    let report = env.execute("builder process window").unwrap();
    assert_eq!((report.records_in, report.dead_letters), (5, 0));
    let rows: Vec<Value> = collected.lock().unwrap().iter().map(|v| weir::record::json_of(v)).collect();
    let counts: Vec<(String, i64, u64)> = sorted(rows)
        .iter()
        .map(|r| (r["key"].as_str().unwrap().to_string(), r["start"].as_i64().unwrap(), r["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(counts, [("a".into(), 0, 2), ("a".into(), 10000, 1), ("a".into(), 30000, 1), ("b".into(), 0, 1)]);
}
