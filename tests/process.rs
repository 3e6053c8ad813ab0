//! Keyed process functions (`process: plugin.function` after `key_by`) through the CLI,
//! against `plugins/process-rust`, with state and timers kept by the host in sled. Each case
//! says why the output is what it is.

mod common;

use common::{
    CLICKS, CLICKS_WITH_BOOM, key_counts, plugin_yaml, process_job, read_json_lines, run_job, temp_dir, write_file,
    write_job,
};
use serde_json::{Value, json};

#[test]
fn value_state_counts_per_key_in_one_call_per_batch_or_per_record() {
    // Each element reads its key's count, adds one and emits it: a 1, b 1, a 2, a 3, b 2,
    // whether the five elements arrive one per call or all in one call.
    for batch_size in [1, 100] {
        let dir = temp_dir();
        let out = run_job(&process_job(dir.path(), "process-rust", CLICKS, batch_size, false, "count_per_key", ""));
        out.assert_ok();
        let rows = read_json_lines(&dir.path().join("out.jsonl"));
        let expected = [("a", 1), ("b", 1), ("a", 2), ("a", 3), ("b", 2)].map(|(k, n)| (k.to_string(), n));
        assert_eq!(key_counts(&rows), expected, "batch_size {batch_size}");
    }
}

#[test]
fn list_state_and_event_time_timers_close_sessions() {
    // A session closes 30 s of event time after its latest element (a timer, moved on each
    // element). One record per batch, so a watermark (ts - 1) follows every record, and, as
    // in Flink, a record is handled before the watermark it brings. a: 1000, 3000 -> timer
    // 33000. b: 2000 -> timer 32000. a: 50000 is handled first, so it joins a's session and
    // moves its timer to 80000; then watermark 49999 fires b's timer: b [2000, 2000]. b:
    // 90000 -> watermark 89999 fires a's timer: a [1000, 50000] with 3 events. The end of
    // input fires b's timer at 120000: b [90000, 90000].
    let dir = temp_dir();
    run_job(&process_job(dir.path(), "process-rust", CLICKS, 1, true, "sessionize", "")).assert_ok();
    let rows = read_json_lines(&dir.path().join("out.jsonl"));
    let sessions: Vec<(String, i64, i64, usize)> = rows
        .iter()
        .map(|r| {
            let key = r["key"].as_str().unwrap().to_string();
            (key, r["start"].as_i64().unwrap(), r["end"].as_i64().unwrap(), r["events"].as_array().unwrap().len())
        })
        .collect();
    assert_eq!(
        sessions,
        [("b".to_string(), 2000, 2000, 1), ("a".to_string(), 1000, 50000, 3), ("b".to_string(), 90000, 90000, 1),]
    );
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
    let dir = temp_dir();
    let out = run_job(&process_job(dir.path(), "process-rust", input, 100, false, "map_state_demo", ""));
    out.assert_ok();
    let rows = read_json_lines(&dir.path().join("out.jsonl"));
    // After each element, the key's map: removing "fig", which a never had, fails that
    // element alone; removing "apple" drops it.
    let maps: Vec<Value> = rows.iter().map(|r| r["counts"].clone()).collect();
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
    let dead = read_json_lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 1);
    assert!(dead[0]["error"].as_str().unwrap().contains("cannot remove item `fig`"), "{}", dead[0]["error"]);
}

#[test]
fn a_trap_rolls_back_the_calls_state_writes_and_only_the_guilty_element_fails() {
    // All five elements in one call: the element with "boom" writes a's count and then
    // traps. The host undoes every write of the call and retries element by element, so a
    // counts 1, (boom fails after its write is undone again), 2; b counts 1, 2.
    let input = CLICKS_WITH_BOOM;
    let dir = temp_dir();
    let out = run_job(&process_job(dir.path(), "process-rust", input, 100, false, "trap_after_write", ""));
    out.assert_ok();
    let rows = read_json_lines(&dir.path().join("out.jsonl"));
    let expected = [("a", 1), ("b", 1), ("a", 2), ("b", 2)].map(|(k, n)| (k.to_string(), n));
    assert_eq!(key_counts(&rows), expected);
    let dead = read_json_lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0]["kind"].as_str(), &dead[0]["record"]), (Some("trap"), &json!({"user": "a", "note": "boom"})));
}

#[test]
fn an_undeclared_state_name_fails_each_element_with_a_clear_error() {
    let dir = temp_dir();
    let out = run_job(&process_job(dir.path(), "process-rust", CLICKS, 100, false, "undeclared", ""));
    out.assert_ok();
    assert!(read_json_lines(&dir.path().join("out.jsonl")).is_empty());
    let dead = read_json_lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 5);
    let error = dead[0]["error"].as_str().unwrap();
    assert!(error.contains("not_declared") && error.contains("count"), "{error}");
    // A dead letter names its operator's uid too: the step's name without the plugin version.
    assert_eq!(dead[0]["uid"], "process[1] process.undeclared", "{:?}", dead[0]);
}

#[test]
fn keyed_state_in_a_state_dir_survives_a_restart() {
    // With `state_dir`, the sled database outlives the job: a second run over the same
    // input goes on counting from where the first stopped (a 4 5 6, b 3 4).
    let dir = temp_dir();
    let job = process_job(dir.path(), "process-rust", CLICKS, 100, false, "count_per_key", "state_dir: state\n");
    run_job(&job).assert_ok();
    run_job(&job).assert_ok();
    let rows = read_json_lines(&dir.path().join("out.jsonl"));
    let expected = [("a", 4), ("b", 3), ("a", 5), ("a", 6), ("b", 4)].map(|(k, n)| (k.to_string(), n));
    assert_eq!(key_counts(&rows), expected);
    assert!(dir.path().join("state").is_dir());
}

#[test]
fn process_needs_a_keyed_stream_and_a_process_function() {
    let dir = temp_dir();
    write_file(dir.path(), "input.jsonl", CLICKS);
    let bad = |pipeline: &str| {
        let job = write_job(
            dir.path(),
            &format!(
                "name: p\nplugins:\n  p: {}\nsource: {{connector: file, path: input.jsonl, format: json}}\n\
                 pipeline:\n{pipeline}sink: {{connector: print}}\n",
                plugin_yaml("process-rust")
            ),
        );
        run_job(&job).assert_failed().to_string()
    };
    let err = bad("  - process: p.count_per_key\n");
    assert!(err.contains("pipeline[0].process: process needs a keyed stream"), "{err}");
    let err = bad("  - key_by: user\n  - process: p.nope\n");
    assert!(err.contains("has no function `nope`"), "{err}");
}

#[test]
fn the_fraud_alerts_example_flags_a_small_then_large_transaction_within_a_minute() {
    // Worked out in examples/fraud-alerts/README.md. The broadcast rules come first
    // (`preload`): account 2 alerts above 10.00, the rule for account 3 is inverted (a dead
    // letter), every other account uses the default (small under 1.00, large over 500.00).
    // Alerts in event-time order: account 2 (0.20 then 20.00), account 1 (0.50 then 700.00
    // 30 s later), account 4 (0.30 then 600.00). Account 3's two transactions are more than
    // a minute apart; account 5's amount is not a number: a dead letter.
    let out = run_job(&common::repo_root().join("examples/fraud-alerts/job.yaml"));
    out.assert_ok();
    let alerts: Vec<Value> = out.stdout.lines().map(|l| serde_json::from_str(l).expect("JSON alert")).collect();
    assert_eq!(
        alerts,
        [
            json!({"account": 2, "small": 0.2, "large": 20.0}),
            json!({"account": 1, "small": 0.5, "large": 700.0}),
            json!({"account": 4, "small": 0.3, "large": 600.0})
        ]
    );
    assert!(out.stderr.contains("\"account\":5"), "the bad transaction is a dead letter on stderr:\n{}", out.stderr);
    assert!(out.stderr.contains("rule `3`: small (900) must be a number not above large (100)"), "{}", out.stderr);
    let s = out.summary();
    assert_eq!((s.records_in, s.broadcast, s.records_out, s.dead_letters), (12, 3, 3, 2));
}

#[test]
fn plugin_inspect_lists_the_declared_states() {
    let out = common::run(common::weir().args(["plugin", "inspect"]).arg(common::plugin("process-rust")));
    out.assert_ok();
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    assert!(lines.contains(&"state count            value of u64, ttl 1000 ms"), "{}", out.stdout);
    assert!(lines.iter().any(|l| l.starts_with("state rules") && l.contains("broadcast map of")), "{}", out.stdout);
}

#[test]
fn a_value_with_a_ttl_expires_a_second_after_its_last_write() {
    // `ttl_count` keeps its count with a TTL of 1 s (processing time since the last write,
    // as in Flink). Over a socket: a, a; 0.6 s later a (its count is still there: 3) and b;
    // 1.2 s after that a again: expired, so a counts from 1.
    use std::io::Write as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let port = listener.local_addr().expect("local address").port();
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let mut conn = common::accept_within(&listener, std::time::Duration::from_secs(60))?;
        let pause = |ms| std::thread::sleep(std::time::Duration::from_millis(ms));
        conn.write_all(b"{\"user\":\"a\"}\n{\"user\":\"a\"}\n")?;
        pause(600);
        conn.write_all(b"{\"user\":\"a\"}\n{\"user\":\"b\"}\n")?;
        pause(1_200);
        conn.write_all(b"{\"user\":\"a\"}\n")?;
        conn.shutdown(std::net::Shutdown::Write)
    });
    let dir = temp_dir();
    let job = write_job(
        dir.path(),
        &format!(
            "name: ttl\nparallelism: 1\nbatch_size: 1\nplugins:\n  p: {}\n\
             source: {{connector: socket, hostname: 127.0.0.1, port: {port}, format: json}}\n\
             pipeline:\n  - key_by: user\n  - process: p.ttl_count\n\
             sink: {{connector: file, path: out.jsonl, format: json}}\n",
            plugin_yaml("process-rust"),
        ),
    );
    run_job(&job).assert_ok();
    server.join().expect("server thread").expect("server wrote its lines");
    let rows = read_json_lines(&dir.path().join("out.jsonl"));
    let expected = [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("a", 1)].map(|(k, n)| (k.to_string(), n));
    assert_eq!(key_counts(&rows), expected);
}

#[test]
fn one_value_state_read_per_key_serves_a_batch_of_many_elements_of_that_key() {
    // ABI 0.2 batches value state: a batch of 200 elements of two keys reads each key's count
    // once before the call and writes it once after. The counts still go up one by one.
    let dir = temp_dir();
    let input: String =
        (0..200).map(|i| format!("{{\"user\":\"{}\"}}\n", if i % 4 == 0 { "b" } else { "a" })).collect();
    run_job(&process_job(dir.path(), "process-rust", &input, 200, false, "count_per_key", "")).assert_ok();
    let counts = key_counts(&read_json_lines(&dir.path().join("out.jsonl")));
    let last = |key: &str| counts.iter().filter(|(k, _)| k == key).map(|(_, n)| *n).collect::<Vec<_>>();
    assert_eq!(last("a"), (1..=150).collect::<Vec<u64>>());
    assert_eq!(last("b"), (1..=50).collect::<Vec<u64>>());
}

#[test]
fn an_update_row_fails_its_element_while_streams_carry_inserts_only() {
    // latest_amount inserts a key's first amount and updates it after (update-before,
    // update-after). No sink takes updates yet, so the updating elements go to the
    // dead-letter output with a message that says why; the inserts go through.
    let dir = temp_dir();
    let input = "{\"user\":\"a\",\"amount\":1.0}\n{\"user\":\"b\",\"amount\":2.0}\n{\"user\":\"a\",\"amount\":3.0}\n";
    run_job(&process_job(dir.path(), "process-rust", input, 100, false, "latest_amount", "")).assert_ok();
    let rows = read_json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(rows, [json!({"key": "a", "amount": 1.0}), json!({"key": "b", "amount": 2.0})]);
    let dead = read_json_lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    let error = dead[0]["error"].as_str().unwrap();
    assert!(error.contains("UpdateBefore") && error.contains("inserts only"), "{error}");
}

#[test]
fn a_co_process_or_process_window_function_is_refused_in_a_process_step() {
    for function in ["match_payments", "window_stats"] {
        let dir = temp_dir();
        let out = run_job(&process_job(dir.path(), "process-rust", CLICKS, 100, false, function, ""));
        let error = out.assert_failed();
        assert!(error.contains(function) && error.contains("needs a function of kind process"), "{error}");
    }
}
