//! The first program (Flink's classic upper-case map) the three ways a user meets it: the
//! example job files with a Rust and with a Python plugin, and the builder API.

mod common;

use weir::env::StreamEnvironment;

use common::{plugin, repo_root, run, shared_cache_dir, weir};

const EXPECTED: &str = "HELLO\nWORLD\nPYFLINK\nSTREAM\nPROCESSING\n";

fn run_example(job: &str) {
    // Run from another folder: plugin paths in the job file are relative to the file.
    let cwd = common::temp_dir();
    let job = repo_root().join("examples/first-program").join(job);
    let out = run(weir().current_dir(cwd.path()).arg("run").arg(&job));
    out.assert_ok();
    assert_eq!(out.stdout, EXPECTED, "stdout of `weir run {}`; stderr:\n{}", job.display(), out.stderr);
}

#[test]
fn the_rust_job_file_prints_the_words_upper_cased() {
    plugin("upper-rust");
    run_example("job.yaml");
}

#[test]
fn the_python_job_file_prints_the_words_upper_cased() {
    plugin("upper-python");
    run_example("job-python.yaml");
}

fn run_with_builder(plugin_dir: &str) -> Vec<String> {
    let env = StreamEnvironment::new();
    env.set_cache_dir(shared_cache_dir());
    let upper = env.load_plugin(plugin(plugin_dir)).expect("load the upper plugin");
    let collected =
        env.from_elements(["Hello", "World", "PyFlink", "Stream", "Processing"]).map(upper.function("upper")).collect();
    let report = env.execute("First Program").expect("the job runs");
    assert_eq!((report.records_in, report.records_out, report.dead_letters), (5, 5, 0), "{report:?}");
    let rows = collected.lock().expect("collected rows").clone();
    rows.iter().map(|v| weir::record::display_value(v)).collect()
}

#[test]
fn the_builder_api_collects_the_same_values_in_order() {
    let expected: Vec<&str> = EXPECTED.lines().collect();
    assert_eq!(run_with_builder("upper-rust"), expected);
}

#[test]
fn the_builder_api_runs_the_python_plugin_too() {
    let expected: Vec<&str> = EXPECTED.lines().collect();
    assert_eq!(run_with_builder("upper-python"), expected);
}

#[test]
fn the_builder_api_writes_text_and_json_files() {
    let dir = common::temp_dir();
    for (format, file, expected) in [
        (weir::connectors::LineFormat::Text, "out.txt", EXPECTED.to_string()),
        (weir::connectors::LineFormat::Json, "out.jsonl", EXPECTED.lines().map(|l| format!("\"{l}\"\n")).collect()),
    ] {
        let env = StreamEnvironment::new();
        env.set_cache_dir(shared_cache_dir());
        let upper = env.load_plugin(plugin("upper-rust")).expect("load the upper plugin");
        let path = dir.path().join("sub").join(file);
        env.from_elements(["Hello", "World", "PyFlink", "Stream", "Processing"])
            .map(upper.function("upper"))
            .write_to_file(&path, format);
        env.execute("First Program to a file").expect("the job runs");
        let written = std::fs::read_to_string(&path).expect("the sink wrote the file");
        assert_eq!(written, expected, "{format:?}");
    }
}
