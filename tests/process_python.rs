//! Keyed process functions written in Python (`plugins/process-python`, `@weir.process`)
//! through the CLI: the same jobs as `tests/process.rs` runs against `plugins/process-rust`,
//! with the same hand-worked output, and the Python plugin's output compared with the Rust
//! plugin's on the same input. Broadcast state through a job file is in tests/broadcast.rs
//! (the Python fraud detector against the Rust one), and in the plugin's pytest tests.

mod common;

use common::{CLICKS, CLICKS_WITH_BOOM, key_counts, process_job, read_json_lines, run_job, temp_dir};
use serde_json::{Value, json};

/// The output and dead letters of `function` of `plugin` over `input`.
fn run(plugin: &str, input: &str, batch_size: usize, timestamps: bool, function: &str) -> (Vec<Value>, Vec<Value>) {
    let dir = temp_dir();
    run_job(&process_job(dir.path(), plugin, input, batch_size, timestamps, function, "")).assert_ok();
    let dead = dir.path().join("dead.jsonl");
    let dead = if dead.is_file() { read_json_lines(&dead) } else { Vec::new() };
    (read_json_lines(&dir.path().join("out.jsonl")), dead)
}

#[test]
fn value_state_counts_per_key_as_the_rust_plugin_does() {
    // Each element reads its key's count, adds one and emits it: a 1, b 1, a 2, a 3, b 2,
    // whether the five elements arrive one per call or all in one call, and the records are
    // the Rust plugin's, field for field.
    for batch_size in [1, 100] {
        let (python, dead) = run("process-python", CLICKS, batch_size, false, "count_per_key");
        let expected = [("a", 1), ("b", 1), ("a", 2), ("a", 3), ("b", 2)].map(|(k, n)| (k.to_string(), n));
        assert_eq!(key_counts(&python), expected, "batch_size {batch_size}");
        assert!(dead.is_empty(), "{dead:?}");
        let (rust, _) = run("process-rust", CLICKS, batch_size, false, "count_per_key");
        assert_eq!(python, rust, "batch_size {batch_size}");
    }
}

#[test]
fn list_state_and_event_time_timers_close_sessions_as_the_rust_plugin_does() {
    // Worked out in tests/process.rs (one record per batch, so a watermark follows every
    // record): b's timer fires at watermark 49999 (b [2000]), a's at 89999 (a [1000, 3000,
    // 50000]), and the end of input fires b's last one (b [90000]).
    let (python, dead) = run("process-python", CLICKS, 1, true, "sessionize");
    assert!(dead.is_empty(), "{dead:?}");
    let event = |user: &str, ts: i64| json!({"user": user, "ts": ts});
    assert_eq!(
        python,
        [
            json!({"key": "b", "start": 2000, "end": 2000, "events": [event("b", 2000)]}),
            json!({"key": "a", "start": 1000, "end": 50000, "events": [event("a", 1000), event("a", 3000), event("a", 50000)]}),
            json!({"key": "b", "start": 90000, "end": 90000, "events": [event("b", 90000)]}),
        ]
    );
    let (rust, _) = run("process-rust", CLICKS, 1, true, "sessionize");
    assert_eq!(python, rust);
}

#[test]
fn map_state_counts_items_per_key_and_a_bad_removal_fails_alone() {
    let input = r#"{"user":"a","item":"pear"}
{"user":"a","item":"apple"}
{"user":"b","item":"pear"}
{"user":"a","item":"pear"}
{"user":"a","item":"fig","remove":true}
{"user":"a","item":"apple","remove":true}
"#;
    let (python, dead) = run("process-python", input, 100, false, "map_state_demo");
    let maps: Vec<Value> = python.iter().map(|r| r["counts"].clone()).collect();
    assert_eq!(
        maps,
        [
            json!({"pear": 1}),
            json!({"pear": 1, "apple": 1}),
            json!({"pear": 1}),
            json!({"pear": 2, "apple": 1}),
            json!({"pear": 2}),
        ]
    );
    assert_eq!(dead.len(), 1);
    assert!(dead[0]["error"].as_str().unwrap().contains("cannot remove item `fig`"), "{}", dead[0]["error"]);
    let (rust, _) = run("process-rust", input, 100, false, "map_state_demo");
    assert_eq!(python, rust);
}

#[test]
fn an_exception_fails_its_element_alone_and_drops_its_state_write() {
    // All five elements in one call. The element with "boom" reads a's count (1), writes 2,
    // emits, then raises: it goes to the dead letters, and its write and output are dropped,
    // so a counts 1, 2 and b 1, 2, each element once. No trap: the call goes on.
    let input = CLICKS_WITH_BOOM;
    let (rows, dead) = run("process-python", input, 100, false, "fail_on_boom");
    let expected = [("a", 1), ("b", 1), ("a", 2), ("b", 2)].map(|(k, n)| (k.to_string(), n));
    assert_eq!(key_counts(&rows), expected);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0]["kind"].as_str(), &dead[0]["record"]), (Some("error"), &json!({"user": "a", "note": "boom"})));
    let error = dead[0]["error"].as_str().unwrap();
    assert!(
        error.contains(
            "process function `fail_on_boom`: RuntimeError: fail_on_boom: failing on purpose after writing count 2"
        ),
        "{error}"
    );
}

#[test]
fn an_undeclared_state_name_fails_each_element_with_a_clear_error() {
    let (rows, dead) = run("process-python", CLICKS, 100, false, "undeclared");
    assert!(rows.is_empty(), "{rows:?}");
    assert_eq!(dead.len(), 5);
    let error = dead[0]["error"].as_str().unwrap();
    assert!(
        error.contains(
            "process function `undeclared` used state `not_declared`, which it does not declare (declared: count); \
             declare it as a class attribute, e.g. `not_declared = weir.ValueState(int)`"
        ),
        "{error}"
    );
}

#[test]
fn plugin_inspect_lists_the_declared_states() {
    let out = common::run(common::weir().args(["plugin", "inspect"]).arg(common::plugin("process-python")));
    out.assert_ok();
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    for expected in [
        "state count            value of int",
        "state events           list of dict",
        "state counts           map of str -> int",
        "state rules            broadcast map of str -> dict",
    ] {
        assert!(lines.contains(&expected), "no `{expected}` in:\n{}", out.stdout);
    }
    assert!(out.stdout.contains("python-marshal rows"), "{}", out.stdout);
}
