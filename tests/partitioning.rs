//! `partition: rebalance | rescale | shuffle | broadcast | global` (Flink's `rebalance()`,
//! `rescale()`, `shuffle()`, `broadcast()`, `global()`): the step after it reads the stream
//! that way, in a stage of its own. Through the CLI, against `plugins/upper-rust`.

mod common;

use std::path::{Path, PathBuf};

use common::{plugin_yaml, read_file, run, run_job, temp_dir, weir, write_file, write_job};

fn job(dir: &Path, partition: &str, parallelism: usize) -> PathBuf {
    let lines: String = (0..500).map(|i| format!("w{i}\n")).collect();
    write_file(dir, "words.txt", &lines);
    write_job(
        dir,
        &format!(
            "name: partitioned\nparallelism: {parallelism}\nbatch_size: 16\nplugins:\n  up: {}\n\
             source: {{connector: file, path: words.txt}}\n\
             pipeline:\n  - partition: {partition}\n  - map: up.upper\n\
             sink: {{connector: file, path: out.txt}}\n",
            plugin_yaml("upper-rust"),
        ),
    )
}

fn output(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = read_file(&dir.join("out.txt")).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

fn expected(copies: usize) -> Vec<String> {
    let mut lines: Vec<String> = (0..500).flat_map(|i| std::iter::repeat_n(format!("W{i}"), copies)).collect();
    lines.sort();
    lines
}

#[test]
fn rebalance_rescale_shuffle_and_global_deliver_every_record_once() {
    for partition in ["rebalance", "rescale", "shuffle", "global"] {
        let dir = temp_dir();
        let summary = run_job(&job(dir.path(), partition, 3)).assert_ok().summary();
        assert_eq!((summary.records_in, summary.records_out), (500, 500), "{partition}");
        assert_eq!(output(dir.path()), expected(1), "{partition}");
    }
}

#[test]
fn broadcast_gives_every_instance_every_record() {
    let dir = temp_dir();
    run_job(&job(dir.path(), "broadcast", 3)).assert_ok();
    assert_eq!(output(dir.path()), expected(3));
}

#[test]
fn weir_check_prints_the_stages_and_how_each_reads_its_input() {
    let dir = temp_dir();
    let out = run(weir().arg("check").arg(job(dir.path(), "shuffle", 3)));
    let text = &out.assert_ok().stdout;
    assert!(text.contains("stage 1: parallelism 3, from source 1, shuffle: map[0] upper@"), "{text}");
    assert!(
        text.lines().last().is_some_and(|l| l.starts_with("sink sink: file") && l.ends_with("from stage 1")),
        "{text}"
    );
}

#[test]
fn a_partition_after_key_by_at_the_end_or_of_an_unknown_kind_is_a_job_error() {
    let dir = temp_dir();
    let path = job(dir.path(), "sideways", 2);
    let original = read_file(&path);
    let error = run_job(&path).assert_failed().to_string();
    assert!(error.contains("pipeline[0].partition") && error.contains("rebalance, rescale, shuffle"), "{error}");

    let yaml = original
        .replace("  - partition: sideways\n  - map: up.upper\n", "  - map: up.upper\n  - partition: rebalance\n");
    let error = run_job(&write_job(dir.path(), &yaml)).assert_failed().to_string();
    assert!(error.contains("a step must follow `partition`"), "{error}");

    let yaml =
        original.replace("  - partition: sideways\n", "  - key_by: word\n  - partition: rebalance\n  - count:\n");
    let error = run_job(&write_job(dir.path(), &yaml)).assert_failed().to_string();
    assert!(error.contains("partition before key_by"), "{error}");
}
