//! `union:` (Flink's `union` of streams straight from their sources): the first step reads
//! the records of every source. Through the CLI and the builder.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::kill::{checkpoint_ids, run_until_checkpoints};
use common::{plugin_yaml, read_file, read_json_lines, run, run_job, temp_dir, weir, write_file, write_job};

fn lines(dir: &Path, file: &str) -> Vec<String> {
    let mut lines: Vec<String> = read_file(&dir.join(file)).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn the_records_of_every_source_reach_the_steps_once() {
    let dir = temp_dir();
    write_file(dir.path(), "a.txt", "apple\napricot\n");
    write_file(dir.path(), "b.txt", "banana\n");
    write_file(dir.path(), "c.txt", "cherry\ncitron\ncoconut\n");
    let job = write_job(
        dir.path(),
        &format!(
            "name: union\nparallelism: 2\nplugins:\n  up: {}\n\
             source: {{connector: file, path: a.txt}}\n\
             union:\n  - {{connector: file, path: b.txt}}\n  - {{connector: file, path: c.txt}}\n\
             pipeline:\n  - partition: rebalance\n  - map: up.upper\n\
             sink: {{connector: file, path: out.txt}}\n",
            plugin_yaml("upper-rust"),
        ),
    );
    let summary = run_job(&job).assert_ok().summary();
    assert_eq!((summary.records_in, summary.records_out), (6, 6));
    assert_eq!(lines(dir.path(), "out.txt"), ["APPLE", "APRICOT", "BANANA", "CHERRY", "CITRON", "COCONUT"]);
    let check = run(weir().arg("check").arg(&job));
    let text = &check.assert_ok().stdout;
    assert!(
        text.contains("source 3: file")
            && text.contains("stage 1: parallelism 2, from source 1, source 2 and source 3, rebalance"),
        "{text}"
    );
}

#[test]
fn windows_count_the_records_of_both_sources_in_event_time() {
    let dir = temp_dir();
    write_file(
        dir.path(),
        "web.jsonl",
        "{\"user\":\"a\",\"ts\":1000}\n{\"user\":\"b\",\"ts\":4000}\n{\"user\":\"a\",\"ts\":12000}\n",
    );
    write_file(dir.path(), "app.jsonl", "{\"user\":\"a\",\"ts\":2000}\n{\"user\":\"a\",\"ts\":13000}\n");
    let job = write_job(
        dir.path(),
        "name: union windows\nsource: {connector: file, path: web.jsonl, format: json}\n\
         union: [{connector: file, path: app.jsonl, format: json}]\n\
         pipeline:\n  - assign_timestamps: {field: ts, max_out_of_orderness: 20 s}\n  - key_by: user\n  \
         - window: {tumbling: 10 s, aggregate: count}\n\
         sink: {connector: file, path: out.jsonl, format: json}\n",
    );
    run_job(&job).assert_ok();
    let mut counts: Vec<(String, i64, u64)> = read_json_lines(&dir.path().join("out.jsonl"))
        .iter()
        .map(|r| (r["key"].as_str().unwrap().into(), r["window_start"].as_i64().unwrap(), r["count"].as_u64().unwrap()))
        .collect();
    counts.sort();
    assert_eq!(counts, [("a".into(), 0, 2), ("a".into(), 10000, 2), ("b".into(), 0, 1)]);
}

#[test]
fn a_union_whose_short_source_ends_first_still_checkpoints_and_resumes_exactly_once() {
    // `short` ends after about a second; `long` runs on for about three more. Every
    // checkpoint after `short` ended must still complete (its end counts as its barriers),
    // and a job killed then resumed commits every row of both exactly once.
    let dir = temp_dir();
    let datagen = |rows: u64, rate: u64, seed: u64| {
        format!(
            "{{connector: datagen, number-of-rows: {rows}, rows-per-second: {rate}, seed: {seed}, fields: {{seq: {{kind: sequence, start: 0}}, from: {{kind: random, values: [s{seed}]}}}}}}"
        )
    };
    let job = write_job(
        dir.path(),
        &format!(
            "name: union exactly once\nparallelism: 2\nsource: {}\nunion: [{}]\n\
             checkpoints: {{interval: 100 ms, dir: ckpt, restart_attempts: 0}}\n\
             sink: {{connector: file, path: out, format: json}}\n",
            datagen(2_000, 2_000, 1),
            datagen(12_000, 3_000, 2),
        ),
    );
    // Killed after checkpoint 15 (about 1.5 s in: `short` ended, `long` has not).
    let mut child = run_until_checkpoints(dir.path(), &job, 1);
    let started = std::time::Instant::now();
    while checkpoint_ids(dir.path()).last().is_none_or(|&id| id < 15) && started.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let last = checkpoint_ids(dir.path()).last().copied().unwrap_or(0);
    assert!(last >= 15, "checkpoints went on after the short source ended (last: {last})");
    assert!(committed(dir.path()).len() < 14_000, "killed before the end");
    run_job(&job).assert_ok();
    let seen = committed(dir.path());
    assert_eq!(seen.len(), 14_000, "every row of both sources");
    assert!(seen.values().all(|&n| n == 1), "none twice: {:?}", seen.iter().find(|(_, n)| **n != 1));
}

/// How often each `(from, seq)` row is in the committed part files.
fn committed(dir: &Path) -> BTreeMap<(String, i64), u32> {
    let mut seen = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir.join("out")) else { return seen };
    for entry in entries.map(Result::unwrap) {
        if entry.file_name().to_string_lossy().starts_with("part-") {
            for line in read_file(&entry.path()).lines() {
                let row: serde_json::Value = serde_json::from_str(line).unwrap();
                *seen.entry((row["from"].as_str().unwrap().into(), row["seq"].as_i64().unwrap())).or_default() += 1;
            }
        }
    }
    seen
}

#[test]
fn the_builder_unions_streams_straight_from_their_sources() {
    use weir::env::StreamEnvironment;

    let env = StreamEnvironment::new();
    env.set_dead_letter(weir::connectors::SinkSpec::discard());
    let a = env.from_elements(["x", "y"]);
    let b = env.from_elements(["z"]);
    let collected = a.union([b]).collect();
    let report = env.execute("builder union").unwrap();
    assert_eq!(report.records_in, 3);
    let mut got: Vec<String> = collected.lock().unwrap().iter().map(|v| weir::record::display_value(v)).collect();
    got.sort();
    assert_eq!(got, ["x", "y", "z"]);
}
