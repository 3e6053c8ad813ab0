//! Jobs as graphs: named `streams:` read by several streams and sinks (fan-out), unions of
//! transformed streams, two keyed streams connected into a co-process function (Rust and
//! Python), a sink whose input ends while the job goes on, and the errors of a bad graph.
//! Through the CLI and the builder, as users run them.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::kill::committed;
use common::{plugin_yaml, read_file, read_json_lines, run, run_job, temp_dir, weir, write_file, write_job};
use serde_json::{Value, json};

fn sorted_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = read_file(path).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn a_stream_read_by_a_stream_and_a_sink_reaches_both_and_a_stage_feeds_two_sinks() {
    let dir = temp_dir();
    write_file(dir.path(), "words.txt", "apple\nbanana\ncherry\n");
    let job = write_job(
        dir.path(),
        &format!(
            "name: fan-out\nparallelism: 2\nplugins:\n  up: {}\n\
             streams:\n\
             \x20 words: {{source: {{connector: file, path: words.txt}}}}\n\
             \x20 loud: {{from: words, pipeline: [map: up.upper]}}\n\
             sinks:\n\
             \x20 raw: {{input: words, connector: file, path: raw.txt}}\n\
             \x20 loud: {{input: loud, connector: file, path: loud.txt}}\n\
             \x20 shout: {{input: loud, connector: print}}\n",
            plugin_yaml("upper-rust")
        ),
    );
    let checked = run(weir().arg("check").arg(&job));
    checked.assert_ok();
    let text = &checked.stdout;
    assert!(text.contains("source 1 (stream `words`): file"), "{text}");
    assert!(text.contains("sink raw: file") && text.contains("from source 1"), "{text}");
    assert!(text.contains("sink loud: file"), "{text}");
    let out = run_job(&job);
    out.assert_ok();
    assert_eq!(sorted_lines(&dir.path().join("raw.txt")), ["apple", "banana", "cherry"]);
    assert_eq!(sorted_lines(&dir.path().join("loud.txt")), ["APPLE", "BANANA", "CHERRY"]);
    let mut printed: Vec<&str> = out.stdout.lines().collect();
    printed.sort_unstable();
    assert_eq!(printed, ["APPLE", "BANANA", "CHERRY"]);
    let summary = out.summary();
    assert_eq!((summary.records_in, summary.records_out), (3, 9), "3 records in, each to 3 sinks");
    assert!(out.stderr.contains("  sink shout: print, from stage 1"), "the summary shows the graph: {}", out.stderr);
}

#[test]
fn a_union_of_transformed_streams_takes_every_record_once() {
    let dir = temp_dir();
    write_file(dir.path(), "a.txt", "apple\napricot\n");
    write_file(dir.path(), "b.txt", "banana\n");
    let job = write_job(
        dir.path(),
        &format!(
            "name: union-graph\nparallelism: 2\nplugins:\n  up: {}\n\
             streams:\n\
             \x20 a: {{source: {{connector: file, path: a.txt}}, pipeline: [map: up.upper]}}\n\
             \x20 b: {{source: {{connector: file, path: b.txt}}}}\n\
             \x20 both: {{union: [a, b], pipeline: [partition: rebalance, map: up.upper]}}\n\
             sinks:\n  out: {{input: both, connector: file, path: out.txt}}\n",
            plugin_yaml("upper-rust")
        ),
    );
    run_job(&job).assert_ok();
    assert_eq!(sorted_lines(&dir.path().join("out.txt")), ["APPLE", "APRICOT", "BANANA"]);
}

/// Orders and payments by order id: o1 and o2 are paid (o1 twice: whichever way the inputs
/// interleave, one pair comes out), o3 has no payment and o4's payment no order.
const ORDERS: &str =
    "{\"id\":\"o1\",\"amount\":10.0}\n{\"id\":\"o2\",\"amount\":20.0}\n{\"id\":\"o3\",\"amount\":30.0}\n";
const PAYMENTS: &str = "{\"id\":\"o2\",\"paid\":20.0}\n{\"id\":\"o1\",\"paid\":10.0}\n{\"id\":\"o1\",\"paid\":10.0}\n{\"id\":\"o4\",\"paid\":5.0}\n";

fn connect_job(dir: &Path, extra_streams: &str) -> std::path::PathBuf {
    write_file(dir, "orders.jsonl", ORDERS);
    write_file(dir, "payments.jsonl", PAYMENTS);
    write_job(
        dir,
        &format!(
            "name: paid\nparallelism: 2\nplugins:\n  p: {}\n\
             streams:\n\
             \x20 orders: {{source: {{connector: file, path: orders.jsonl, format: json}}, pipeline: [key_by: id]}}\n\
             \x20 payments: {{source: {{connector: file, path: payments.jsonl, format: json}}, pipeline: [key_by: id]}}\n\
             {extra_streams}\
             sinks:\n  paid: {{input: paid, connector: file, path: paid.jsonl, format: json}}\n\
             dead_letter: {{connector: file, path: dead.jsonl}}\n",
            plugin_yaml("process-rust")
        ),
    )
}

#[test]
fn two_keyed_streams_meet_by_key_in_a_rust_co_process_function() {
    let dir = temp_dir();
    let job = connect_job(dir.path(), "  paid: {connect: [orders, payments], pipeline: [process: p.match_payments]}\n");
    let checked = run(weir().arg("check").arg(&job));
    checked.assert_ok();
    assert!(
        checked.stdout.contains("(first input) and stage 2 (second input), by key group: co_process[2]"),
        "{}",
        checked.stdout
    );
    let out = run_job(&job);
    out.assert_ok();
    let mut paid = read_json_lines(&dir.path().join("paid.jsonl"));
    paid.sort_by_key(|r| r["id"].as_str().unwrap_or_default().to_string());
    assert_eq!(
        paid,
        [json!({"id": "o1", "amount": 10.0, "paid": 10.0}), json!({"id": "o2", "amount": 20.0, "paid": 20.0})]
    );
    assert!(!dir.path().join("dead.jsonl").exists() || read_file(&dir.path().join("dead.jsonl")).is_empty());
}

#[test]
fn clicks_meet_their_profile_in_a_python_co_process_function_whichever_comes_first() {
    // Two clicks of u1 and one of u2; one profile, for u1. Whether a click comes before the
    // profile (it waits in list state) or after, each u1 click comes out once with it; u2
    // has no profile, so its click waits.
    let dir = temp_dir();
    write_file(
        dir.path(),
        "clicks.jsonl",
        "{\"user\":\"u1\",\"page\":\"/a\"}\n{\"user\":\"u2\",\"page\":\"/b\"}\n{\"user\":\"u1\",\"page\":\"/c\"}\n",
    );
    write_file(dir.path(), "profiles.jsonl", "{\"user\":\"u1\",\"name\":\"Ana\"}\n");
    let job = write_job(
        dir.path(),
        &format!(
            "name: enrich\nparallelism: 2\nplugins:\n  p: {}\n\
             streams:\n\
             \x20 clicks: {{source: {{connector: file, path: clicks.jsonl, format: json}}, pipeline: [key_by: user]}}\n\
             \x20 profiles: {{source: {{connector: file, path: profiles.jsonl, format: json}}, pipeline: [key_by: user]}}\n\
             \x20 enriched: {{connect: [clicks, profiles], pipeline: [process: p.enrich_clicks]}}\n\
             sinks:\n  out: {{input: enriched, connector: file, path: out.jsonl, format: json}}\n",
            plugin_yaml("process-python")
        ),
    );
    run_job(&job).assert_ok();
    let mut rows = read_json_lines(&dir.path().join("out.jsonl"));
    rows.sort_by_key(|r| r["click"]["page"].as_str().unwrap_or_default().to_string());
    let ana = json!({"user": "u1", "name": "Ana"});
    assert_eq!(
        rows,
        [
            json!({"key": "u1", "click": {"user": "u1", "page": "/a"}, "profile": ana}),
            json!({"key": "u1", "click": {"user": "u1", "page": "/c"}, "profile": ana}),
        ]
    );
}

#[test]
fn a_bad_graph_is_an_error_at_its_key_naming_both_ends() {
    let dir = temp_dir();
    let check = |streams: &str, sinks: &str| -> String {
        let job = write_job(
            dir.path(),
            &format!("name: bad\nplugins:\n  p: {}\nstreams:\n{streams}sinks:\n{sinks}", plugin_yaml("process-rust")),
        );
        run(weir().arg("check").arg(&job)).assert_failed().to_string()
    };
    let src = "{connector: collection, elements: [1]}";
    let out = "  out: {input: a, connector: print}\n";
    let err = check(&format!("  a: {{from: b}}\n  b: {{from: a}}\n  c: {{source: {src}}}\n"), out);
    assert!(err.contains("job.yaml:6: streams.b.from: streams `b` and `a` read each other"), "{err}");
    let err = check(&format!("  a: {{source: {src}}}\n  b: {{from: clicks}}\n"), out);
    assert!(err.contains("job.yaml:6: streams.b.from: there is no stream `clicks` (the streams are: a, b)"), "{err}");
    let err = check(&format!("  a: {{source: {src}}}\n  lonely: {{source: {src}}}\n"), out);
    assert!(err.contains("job.yaml:6: streams.lonely: stream `lonely` is read by no stream and no sink"), "{err}");
    let err = check(
        &format!(
            "  k: {{source: {src}, pipeline: [key_by: x]}}\n  u: {{source: {src}}}\n  a: {{connect: [k, u], pipeline: [process: p.match_payments]}}\n"
        ),
        out,
    );
    assert!(err.contains("streams.a.connect: `u` is not keyed: connect joins two keyed streams (with `k`)"), "{err}");
    let err = check(&format!("  a: {{source: {src}}}\n"), "  out: {input: nope, connector: print}\n");
    assert!(err.contains("sinks.out.input: there is no stream `nope`"), "{err}");
    let err = check(&format!("  a: {{source: {src}, from: a}}\n"), out);
    assert!(err.contains("streams.a: a stream takes its records from exactly one of"), "{err}");
}

#[test]
fn a_sink_whose_input_ended_commits_its_output_while_the_job_goes_on() {
    // Two branches with checkpoints: a bounded collection into an exactly-once file sink,
    // and a socket that stays open into print. The file sink's input ends at once; its
    // records must be committed by a checkpoint taken after that, while the socket still
    // runs, not only when the whole job ends.
    let dir = temp_dir();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let mut conn = common::accept_within(&listener, Duration::from_secs(60)).expect("the job connects");
        std::io::Write::write_all(&mut conn, b"tick\n").unwrap();
        std::thread::sleep(Duration::from_secs(4));
        std::io::Write::write_all(&mut conn, b"tock\n").unwrap();
    });
    let job = write_job(
        dir.path(),
        &format!(
            "name: branches\n\
             checkpoints: {{interval: 100 ms, dir: ckpt}}\n\
             streams:\n\
             \x20 bounded: {{source: {{connector: collection, elements: [a, b, c]}}}}\n\
             \x20 live: {{source: {{connector: socket, hostname: 127.0.0.1, port: {port}}}}}\n\
             sinks:\n\
             \x20 files: {{input: bounded, connector: file, path: out, format: text}}\n\
             \x20 console: {{input: live, connector: print}}\n"
        ),
    );
    let mut child = weir().arg("run").arg(&job).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while committed(dir.path()).len() < 3 && started.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let early = committed(dir.path());
    let still_running = child.try_wait().unwrap().is_none();
    server.join().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(still_running, "the socket kept the job running");
    assert_eq!(early, ["a", "b", "c"], "committed while the other branch still ran");
    assert_eq!(committed(dir.path()), ["a", "b", "c"], "and only once");
}

#[test]
fn the_builder_connects_two_keyed_streams_and_sends_a_stream_to_two_sinks() {
    use weir::env::StreamEnvironment;

    let dir = temp_dir();
    write_file(dir.path(), "orders.jsonl", ORDERS);
    write_file(dir.path(), "payments.jsonl", PAYMENTS);
    let env = StreamEnvironment::new();
    env.set_parallelism(2);
    env.set_cache_dir(common::shared_cache_dir());
    let p = env.load_plugin(common::plugin("process-rust")).unwrap();
    let orders = env.read_json_lines(dir.path().join("orders.jsonl")).key_by("id");
    let payments = env.read_json_lines(dir.path().join("payments.jsonl")).key_by("id");
    let paid = orders.connect(payments).process(p.function("match_payments"));
    let all = paid.clone().collect();
    let ids = paid.collect();
    let report = env.execute("paid").unwrap();
    assert_eq!(report.records_out, 4);
    for collected in [all, ids] {
        let mut rows: Vec<Value> = collected.lock().unwrap().iter().map(|v| weir::record::json_of(v)).collect();
        rows.sort_by_key(|r| r["id"].as_str().unwrap_or_default().to_string());
        assert_eq!(rows.iter().map(|r| r["id"].clone()).collect::<Vec<_>>(), [json!("o1"), json!("o2")]);
    }
}
