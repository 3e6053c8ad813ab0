//! The Kafka source and sink, run the way a user runs them (`weir run` on a job file),
//! against librdkafka's mock cluster started in this test process: the real Kafka protocol
//! over loopback TCP.
//!
//! The mock accepts transactions but shows aborted records to read_committed consumers, so
//! the exactly-once checks read the sink's output through its commit markers
//! (`committed_records`), which name the offsets each committed transaction wrote.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use common::kill::*;
use common::*;
use weir::connectors::kafka::DEFAULT_COMMIT_TOPIC;
use weir::connectors::kafka::dev::{DevCluster, Fetched, committed_records, produce};

fn json(v: &[u8]) -> serde_json::Value {
    serde_json::from_slice(v).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(v)))
}

/// Event time of the test records (librdkafka takes a timestamp of 0 as "now").
const T0: i64 = 1_764_000_000_000;

/// `n` JSON records `{"n": i}` spread over `partitions`, keyed `k<i>`, timestamped `T0 + 1000 * i`.
fn produce_numbers(cluster: &DevCluster, topic: &str, partitions: i32, n: usize) {
    let values: Vec<(Vec<u8>, Vec<u8>)> =
        (0..n).map(|i| (format!("k{i}").into_bytes(), format!("{{\"n\":{i}}}").into_bytes())).collect();
    let messages: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, (k, v))| (i as i32 % partitions, Some(k.as_slice()), v.as_slice(), Some(T0 + 1000 * i as i64)))
        .collect();
    cluster.produce(topic, &messages).expect("produce");
}

/// A mock cluster whose topic `topic` holds `n` numbers (see [`produce_numbers`]).
fn cluster_with_numbers(topic: &str, partitions: i32, n: usize) -> DevCluster {
    let cluster = DevCluster::start(1).expect("mock cluster");
    cluster.create_topic(topic, partitions).unwrap();
    produce_numbers(&cluster, topic, partitions, n);
    cluster
}

/// A job file `name` in `dir` whose source reads Kafka from `cluster` with the source
/// options `source` (indented lines) and whose other sections are `rest`.
fn kafka_job(dir: &Path, name: &str, cluster: &DevCluster, source: &str, rest: &str) -> PathBuf {
    let bs = cluster.bootstrap();
    let rest = rest.replace("{bs}", bs);
    let text =
        format!("name: {name}\nsource:\n  connector: kafka\n  properties.bootstrap.servers: {bs}\n{source}{rest}");
    write_job(dir, &text)
}

fn numbers(records: &[Fetched]) -> BTreeMap<i64, usize> {
    let mut seen = BTreeMap::new();
    for r in records {
        let n = json(&r.value)["n"].as_i64().unwrap_or_else(|| panic!("no n in {}", String::from_utf8_lossy(&r.value)));
        *seen.entry(n).or_insert(0) += 1;
    }
    seen
}

#[test]
fn a_kafka_source_reads_values_and_metadata_and_sends_poison_messages_to_the_dead_letters() {
    let cluster = cluster_with_numbers("in", 2, 10);
    cluster.produce("in", &[(1, None, b"not json {", None)]).unwrap();
    let dir = temp_dir();
    let job = kafka_job(
        dir.path(),
        "kafka-read",
        &cluster,
        "  topic: in\n  scan.bounded.mode: latest-offset\n  metadata: [key, timestamp, partition, offset]\n",
        "sink:\n  connector: kafka\n  topic: echo\n  properties.bootstrap.servers: {bs}\n  key.field: key\n\
         dead_letter: {connector: file, path: dead.jsonl, format: json}\n",
    );
    let summary = run_job(&job).assert_ok().summary();
    assert_eq!((summary.records_in, summary.dead_letters), (10, 1));
    let echoed = cluster.fetch_all("echo").unwrap();
    assert_eq!(echoed.len(), 10);
    for r in &echoed {
        let v = json(&r.value);
        let n = v["value"]["n"].as_i64().unwrap();
        assert_eq!(r.key.as_deref(), Some(format!("k{n}").as_bytes()), "the key came from the `key` field");
        assert_eq!(v["key"], format!("k{n}"));
        assert_eq!(v["timestamp"], T0 + 1000 * n);
        assert_eq!(v["partition"], n % 2);
        assert_eq!(v["offset"], n / 2);
    }
    let dead = read_json_lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["origin"], "in/1@5");
    assert_eq!(dead[0]["raw"], "not json {");
    assert!(dead[0]["error"].as_str().unwrap().contains("JSON"), "{}", dead[0]);

    // The same topic as text lines, from a timestamp on, and as MessagePack values.
    let source = format!(
        "  topic: [in]\n  scan.bounded.mode: latest-offset\n  scan.startup.mode: timestamp\n  \
         scan.startup.timestamp-millis: {}\n  format: text\n",
        T0 + 6000
    );
    let text = kafka_job(dir.path(), "kafka-text", &cluster, &source, "sink: {connector: file, path: text.txt}\n");
    run_job(&text).assert_ok();
    let mut lines: Vec<String> = read_file(&dir.path().join("text.txt")).lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, ["not json {", r#"{"n":6}"#, r#"{"n":7}"#, r#"{"n":8}"#, r#"{"n":9}"#]);
}

#[test]
fn offsets_of_complete_checkpoints_are_committed_to_the_consumer_group() {
    let cluster = cluster_with_numbers("g", 2, 1000);
    let dir = temp_dir();
    let job = kafka_job(
        dir.path(),
        "kafka-group",
        &cluster,
        "  topic: g\n  properties.group.id: counters\n",
        "checkpoints: {interval: 100 ms, dir: ckpt}\nsink: {connector: blackhole}\n",
    );
    let mut child = run_until_checkpoints(dir.path(), &job, 3);
    let started = Instant::now();
    let mut committed = cluster.committed_offsets("counters", "g").unwrap();
    while committed != [(0, 500), (1, 500)] && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        committed = cluster.committed_offsets("counters", "g").unwrap();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(committed, [(0, 500), (1, 500)], "the group's offsets follow the completed checkpoints");
}

#[test]
fn the_key_by_key_becomes_the_kafka_key() {
    let cluster = cluster_with_numbers("in", 1, 20);
    let dir = temp_dir();
    let job = kafka_job(
        dir.path(),
        "kafka-keyed",
        &cluster,
        "  topic: in\n  scan.bounded.mode: latest-offset\n",
        "pipeline:\n  - key_by: n\nsink:\n  connector: kafka\n  topic: keyed\n  properties.bootstrap.servers: {bs}\n",
    );
    run_job(&job).assert_ok();
    let out = cluster.fetch_all("keyed").unwrap();
    assert_eq!(out.len(), 20);
    for r in out {
        let n = json(&r.value)["n"].as_i64().unwrap();
        assert_eq!(r.key, Some(n.to_string().into_bytes()), "keyed by the `key_by` field");
    }
}

#[test]
fn headers_reach_the_records_as_a_map() {
    let cluster = DevCluster::start(1).expect("mock cluster");
    cluster.create_topic("hdr", 1).unwrap();
    cluster.produce_with_headers("hdr", 0, b"GET /", &[("trace-id", b"abc"), ("raw", &[0xff, 0x00])]).unwrap();
    let dir = temp_dir();
    let job = kafka_job(
        dir.path(),
        "kafka-headers",
        &cluster,
        "  topic: hdr\n  scan.bounded.mode: latest-offset\n  format: text\n  metadata: [headers, key]\n",
        "sink: {connector: file, path: out.jsonl, format: json}\n",
    );
    run_job(&job).assert_ok();
    let out = read_json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(
        out,
        [serde_json::json!({"value": "GET /", "headers": {"trace-id": "abc", "raw": [255, 0]}, "key": null})],
        "UTF-8 header values are strings, others binary"
    );
}

#[test]
fn messagepack_values_are_records_as_they_are_and_bad_ones_are_dead_letters() {
    let cluster = DevCluster::start(1).expect("mock cluster");
    cluster.create_topic("mp", 1).unwrap();
    // {"url": "/a", "hits": 3} in MessagePack, then a truncated value.
    let packed = [0x82, 0xa3, b'u', b'r', b'l', 0xa2, b'/', b'a', 0xa4, b'h', b'i', b't', b's', 0x03];
    cluster.produce("mp", &[(0, None, &packed, None), (0, None, &packed[..5], None)]).unwrap();
    let dir = temp_dir();
    let job = kafka_job(
        dir.path(),
        "kafka-mp",
        &cluster,
        "  topic: mp\n  scan.bounded.mode: latest-offset\n  format: msgpack\n",
        "sink: {connector: file, path: out.jsonl, format: json}\n\
         dead_letter: {connector: file, path: dead.jsonl, format: json}\n",
    );
    run_job(&job).assert_ok();
    assert_eq!(read_json_lines(&dir.path().join("out.jsonl")), [serde_json::json!({"url": "/a", "hits": 3})]);
    let dead = read_json_lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["origin"], "mp/0@1");
}

/// Starts `weir run` with stdout read line by line on a thread.
fn spawn_reading(job: &Path) -> (Child, mpsc::Receiver<String>) {
    let mut child = run_command(job).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("weir starts");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn lines_within(rx: &mpsc::Receiver<String>, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    let mut lines = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    lines
}

/// Clicks on partition 0 of `topic` only, one every 100 ms of processing time and 500 ms
/// of event time from `T0`, on a thread, until `stop` is set.
fn click_until(bootstrap: String, topic: &'static str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut i = 0i64;
        while !stop.load(Ordering::Relaxed) {
            produce(&bootstrap, topic, &[(0, None, br#"{"url":"/a"}"#, Some(T0 + 500 * i))]).unwrap();
            i += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

#[test]
fn a_partition_without_data_goes_idle_and_does_not_hold_back_event_time_windows() {
    let cluster = DevCluster::start(1).expect("mock cluster");
    let dir = temp_dir();
    let job = |topic: &str, idleness: &str| {
        cluster.create_topic(topic, 2).unwrap();
        let source = format!("  topic: {topic}\n  watermarks: {{max_out_of_orderness: 0 s{idleness}}}\n");
        let rest =
            "pipeline:\n  - key_by: url\n  - window: {tumbling: 1 s, aggregate: count}\nsink: {connector: print}\n";
        kafka_job(dir.path(), topic, &cluster, &source, rest)
    };
    // Without idleness the silent partition 1 holds the watermark at its start: no window
    // fires while partition 0 has 3 s of clicks (6 s of event time).
    let (mut child, rx) = spawn_reading(&job("held", ""));
    let stop = Arc::new(AtomicBool::new(false));
    let clicks = click_until(cluster.bootstrap().to_string(), "held", stop.clone());
    let held = lines_within(&rx, Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    clicks.join().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(held.is_empty(), "windows fired although a partition had no watermark: {held:?}");
    // With idleness it drops out of the minimum while partition 0 goes on: windows fire,
    // in order, two clicks each.
    let (mut child, rx) = spawn_reading(&job("idle", ", idleness: 300 ms"));
    let stop = Arc::new(AtomicBool::new(false));
    let clicks = click_until(cluster.bootstrap().to_string(), "idle", stop.clone());
    let mut fired = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while fired.len() < 4 && Instant::now() < deadline {
        fired.extend(lines_within(&rx, Duration::from_millis(200)));
    }
    stop.store(true, Ordering::Relaxed);
    clicks.join().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(fired.len() >= 4, "windows fire while a partition is idle: {fired:?}");
    for (i, line) in fired.iter().take(4).enumerate() {
        let start = T0 + 1000 * i as i64;
        let want = serde_json::json!({"key": "/a", "window_start": start, "window_end": start + 1000, "count": 2});
        assert_eq!(json(line.as_bytes()), want);
    }
}

const IN: usize = 300_000;

fn exactly_once_job(dir: &Path, cluster: &DevCluster) -> PathBuf {
    let rest = "batch_size: 200\ncheckpoints: {interval: 100 ms, dir: ckpt, restart_attempts: 0}\n\
                sink:\n  connector: kafka\n  topic: out\n  properties.bootstrap.servers: {bs}\n  \
                sink.delivery-guarantee: exactly-once\n";
    kafka_job(dir, "kafka-eos", cluster, "  topic: in\n  scan.bounded.mode: latest-offset\n", rest)
}

fn assert_exactly_once(cluster: &DevCluster, what: &str) {
    let out = committed_records(cluster.bootstrap(), "out", DEFAULT_COMMIT_TOPIC, "weir-kafka-eos").unwrap();
    let seen = numbers(&out);
    let duplicated: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).take(5).collect();
    assert!(duplicated.is_empty(), "{what}: duplicated records, e.g. {duplicated:?}");
    let missing: Vec<_> = (0..IN as i64).filter(|n| !seen.contains_key(n)).take(5).collect();
    assert!(missing.is_empty(), "{what}: lost records, e.g. {missing:?} ({} of {IN} committed)", seen.len());
}

#[test]
fn killed_at_random_moments_the_kafka_to_kafka_job_commits_every_record_once() {
    let cluster = cluster_with_numbers("in", 3, IN);
    cluster.create_topic("out", 2).unwrap();
    let dir = temp_dir();
    let job = exactly_once_job(dir.path(), &cluster);
    let seed = std::env::var("WEIR_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let kills = 3;
    let landed = kill_repeatedly(dir.path(), &job, kills, seed);
    assert!(landed >= 2, "only {landed} kills hit the running job (seed {seed}); make the input longer");
    let all = cluster.fetch_all("out").unwrap();
    if landed == kills {
        run_job(&job).assert_ok();
    } // else the last run finished on its own (running a finished job again starts afresh)
    assert_exactly_once(&cluster, &format!("{landed} kills (seed {seed})"));
    // The killed runs left uncommitted records that a read_committed consumer of a real
    // broker skips; the mock shows them, and the markers leave them out.
    assert!(!all.is_empty(), "the killed runs had written something");
}

#[test]
fn a_broker_that_goes_away_and_comes_back_loses_nothing() {
    let cluster = cluster_with_numbers("in", 2, IN);
    cluster.create_topic("out", 2).unwrap();
    let dir = temp_dir();
    let job = exactly_once_job(dir.path(), &cluster);
    let run_dir = dir.path().join("run");
    let mut child = weir()
        .env("WEIR_RUN_DIR", &run_dir)
        .arg("run")
        .arg(&job)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("weir starts");
    let started = Instant::now();
    while checkpoint_ids(dir.path()).len() < 2 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let up = |connector: &str, up: u8| format!("weir_connector_up{{job=\"kafka-eos\",connector=\"{connector}\"}} {up}");
    let before = metrics(&run_dir, "kafka-eos").unwrap_or_default();
    assert!(before.contains(&up("kafka source", 1)) && before.contains(&up("kafka sink", 1)), "up:\n{before}");
    cluster.set_broker_up(1, false).unwrap();
    let down_since = Instant::now();
    let mut seen_down = String::new();
    while seen_down.is_empty() && down_since.elapsed() < Duration::from_secs(2) {
        let now = metrics(&run_dir, "kafka-eos").unwrap_or_default();
        if now.contains(&up("kafka source", 0)) || now.contains(&up("kafka sink", 0)) {
            seen_down = now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(2).saturating_sub(down_since.elapsed()));
    assert!(child.try_wait().unwrap().is_none(), "the job was still running while the broker was away");
    cluster.set_broker_up(1, true).unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "the job did not finish after the broker came back");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "the job failed: {status}");
    assert!(!seen_down.is_empty(), "the metrics showed a connector down while the broker was away");
    assert_exactly_once(&cluster, "broker down for 2 s");
}
