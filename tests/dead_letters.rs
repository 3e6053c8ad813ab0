//! Failing records and hostile plugins: a trap, an endless loop, unbounded allocation and a
//! per-row error each fail only the rows that cause them. Good and bad rows share ONE
//! batch, so the host must retry the batch row by row on fresh instances: every good row
//! reaches the sink exactly once and in order, every bad row lands in the dead-letter file
//! exactly once with the right kind, and the job succeeds.

mod common;

use std::path::Path;

use serde_json::{Value, json};

use common::{Run, plugin_yaml, read_file, read_json_lines, run_job, temp_dir, write_job};

/// What a job over `elements` with the single step `map: plugin.function` produced.
struct Outcome {
    run: Run,
    /// The sink file's lines.
    out: Vec<String>,
    dead: Vec<Value>,
}

fn run_map(plugin_dir: &str, function: &str, limits: &str, elements: &[Value]) -> Outcome {
    let dir = temp_dir();
    let out = dir.path().join("out.txt");
    let dead = dir.path().join("dead.jsonl");
    let alias = function_alias(plugin_dir);
    let elements = serde_json::to_string(elements).expect("elements as JSON (which is YAML)");
    let job = write_job(
        dir.path(),
        &format!(
            "name: dead letters\nbatch_size: 1024\n{limits}plugins:\n  {alias}: {}\nsource:\n  connector: collection\n  elements: {elements}\npipeline:\n  - map: {alias}.{function}\nsink:\n  connector: file\n  path: {}\ndead_letter:\n  connector: file\n  path: {}\n",
            plugin_yaml(plugin_dir),
            common::yaml_path(&out),
            common::yaml_path(&dead)
        ),
    );
    let run = run_job(&job);
    run.assert_ok();
    let lines = |p: &Path| {
        if p.exists() { read_file(p).lines().map(str::to_string).collect() } else { Vec::new() }
    };
    let dead = if dead.exists() { read_json_lines(&dead) } else { Vec::new() };
    Outcome { out: lines(&out), dead, run }
}

fn function_alias(plugin_dir: &str) -> &'static str {
    match plugin_dir {
        "hostile-rust" => "hostile",
        "words-rust" => "words",
        _ => "upper",
    }
}

fn strings(items: &[&str]) -> Vec<Value> {
    items.iter().map(|s| json!(s)).collect()
}

/// Check a hostile function over `rows`: the rows containing `marker` fail with `kind`.
fn check_hostile(function: &str, limits: &str, marker: &str, kind: &str) -> Outcome {
    let rows = ["first", "second", &format!("{marker} one"), "third", "fourth", &format!("and {marker} two"), "last"];
    let outcome = run_map("hostile-rust", function, limits, &strings(&rows));
    let good: Vec<&str> = rows.iter().filter(|r| !r.contains(marker)).copied().collect();
    assert_eq!(outcome.out, good, "good rows, exactly once and in order; stderr:\n{}", outcome.run.stderr);
    let bad: Vec<Value> = rows.iter().filter(|r| r.contains(marker)).map(|r| json!(r)).collect();
    let records: Vec<Value> = outcome.dead.iter().map(|d| d["record"].clone()).collect();
    assert_eq!(records, bad, "each bad row exactly once in the dead-letter file: {:#?}", outcome.dead);
    for d in &outcome.dead {
        assert_eq!(d["kind"], kind, "{d}");
        let operator = d["operator"].as_str().unwrap_or_default();
        assert!(operator.contains("hostile") && operator.contains(function), "operator names the plugin function: {d}");
        assert!(d["error"].as_str().is_some_and(|e| !e.is_empty()), "{d}");
    }
    let summary = outcome.run.summary();
    assert_eq!((summary.records_in, summary.records_out, summary.dead_letters), (7, 5, 2), "{}", outcome.run.stderr);
    outcome
}

#[test]
fn a_trap_fails_only_its_row() {
    let outcome = check_hostile("trap", "", "boom", "trap");
    for d in &outcome.dead {
        let error = d["error"].as_str().unwrap_or_default();
        assert!(error.contains("trap"), "{d}");
    }
}

#[test]
fn an_endless_loop_times_out_and_fails_only_its_row() {
    let outcome = check_hostile("spin", "limits:\n  call_timeout_ms: 200\n", "loop", "timeout");
    for d in &outcome.dead {
        assert!(d["error"].as_str().unwrap_or_default().contains("200 ms"), "the error names the limit: {d}");
    }
}

#[test]
fn unbounded_allocation_hits_the_memory_cap_and_fails_only_its_row() {
    check_hostile("hog", "limits:\n  memory_mb: 64\n", "hog", "memory-limit");
}

#[test]
fn a_row_error_fails_only_its_row() {
    let outcome = check_hostile("fail", "", "bad", "error");
    for d in &outcome.dead {
        assert_eq!(d["error"], "bad record", "{d}");
    }
}

#[test]
fn a_number_that_does_not_parse_is_a_row_error() {
    let outcome = run_map("words-rust", "parse_int", "", &strings(&["1", "two", " 3 ", "-4", "5x", "6"]));
    assert_eq!(outcome.out, ["1", "3", "-4", "6"], "stderr:\n{}", outcome.run.stderr);
    let records: Vec<&Value> = outcome.dead.iter().map(|d| &d["record"]).collect();
    assert_eq!(records, [&json!("two"), &json!("5x")]);
    for d in &outcome.dead {
        assert_eq!(d["kind"], "error", "{d}");
        assert!(d["error"].as_str().is_some_and(|e| e.contains("is not an integer")), "{d}");
    }
}

#[test]
fn a_record_of_the_wrong_shape_fails_alone_in_rust_and_in_python() {
    let person = |id: u64, name: &str| json!({"id": id, "name": name, "city": "Oslo", "score": 1.0});
    let rows = vec![person(1, "ada"), json!({"id": 2}), person(3, "bo"), json!("just a string"), person(5, "cy")];
    for plugin_dir in ["upper-rust", "upper-python"] {
        let outcome = run_map(plugin_dir, "upper_name", "", &rows);
        let names: Vec<Value> = outcome
            .out
            .iter()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{plugin_dir}: {l:?}: {e}"))["name"].clone()
            })
            .collect();
        assert_eq!(names, [json!("ADA"), json!("BO"), json!("CY")], "{plugin_dir}; stderr:\n{}", outcome.run.stderr);
        let records: Vec<&Value> = outcome.dead.iter().map(|d| &d["record"]).collect();
        assert_eq!(records, [&rows[1], &rows[3]], "{plugin_dir}: {:#?}", outcome.dead);
        for d in &outcome.dead {
            assert_eq!(d["kind"], "error", "{plugin_dir}: {d}");
        }
    }
}

#[test]
fn failures_across_many_batches_parallel_instances_and_recycles_lose_and_repeat_nothing() {
    let dir = temp_dir();
    let rows: Vec<String> = (0..300)
        .map(|i| match i % 7 {
            3 => format!("boom {i}"),
            5 => format!("bad {i}"),
            _ => format!("row {i}"),
        })
        .collect();
    let input = common::write_file(dir.path(), "in.txt", rows.join("\n") + "\n");
    let out = dir.path().join("out.txt");
    let dead = dir.path().join("dead.jsonl");
    // trap at parallelism 2 (fed by rebalance), then fail; small batches; frequent recycling.
    let job = write_job(
        dir.path(),
        &format!(
            "name: many\nbatch_size: 16\nlimits:\n  recycle_after_records: 50\nplugins:\n  hostile: {}\nsource:\n  connector: file\n  path: {}\npipeline:\n  - map: {{function: hostile.trap, parallelism: 2}}\n  - map: hostile.fail\nsink:\n  connector: file\n  path: {}\ndead_letter:\n  connector: file\n  path: {}\n",
            plugin_yaml("hostile-rust"),
            common::yaml_path(&input),
            common::yaml_path(&out),
            common::yaml_path(&dead)
        ),
    );
    let run = run_job(&job);
    run.assert_ok();
    // Two parallel instances may reorder rows between them: compare as sorted lists, which
    // still catches a lost or a repeated row.
    let mut got: Vec<String> = read_file(&out).lines().map(str::to_string).collect();
    got.sort();
    let mut good: Vec<String> = rows.iter().filter(|r| r.starts_with("row")).cloned().collect();
    good.sort();
    assert_eq!(got, good);
    let letters = read_json_lines(&dead);
    let mut failed: Vec<(String, String)> = letters
        .iter()
        .map(|d| {
            (d["record"].as_str().unwrap_or_default().to_string(), d["kind"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    failed.sort();
    let mut expected: Vec<(String, String)> = rows
        .iter()
        .filter(|r| !r.starts_with("row"))
        .map(|r| (r.clone(), if r.starts_with("boom") { "trap" } else { "error" }.to_string()))
        .collect();
    expected.sort();
    assert_eq!(failed, expected);
    let summary = run.summary();
    assert_eq!(
        (summary.records_in, summary.records_out, summary.dead_letters),
        (300, good.len() as u64, expected.len() as u64)
    );
}

#[test]
fn the_builder_api_sends_failures_to_its_dead_letter_sink() {
    let env = weir::env::StreamEnvironment::new();
    env.set_cache_dir(common::shared_cache_dir());
    let dead: weir::connectors::Collected = Default::default();
    env.set_dead_letter(weir::connectors::SinkSpec::collect(dead.clone()));
    let hostile = env.load_plugin(common::plugin("hostile-rust")).expect("load the hostile plugin");
    let out = env.from_elements(["ok", "boom", "fine"]).map(hostile.function("trap")).collect();
    let report = env.execute("builder dead letters").expect("the job runs");
    assert_eq!((report.records_out, report.dead_letters), (2, 1), "{report:?}");
    let values: Vec<String> = out.lock().expect("rows").iter().map(|v| weir::record::display_value(v)).collect();
    assert_eq!(values, ["ok", "fine"]);
    let letters: Vec<Value> = dead
        .lock()
        .expect("dead letters")
        .iter()
        .map(|v| serde_json::from_str(&weir::record::display_value(v)).expect("a dead letter is a JSON line"))
        .collect();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!((&letters[0]["kind"], &letters[0]["record"]), (&json!("trap"), &json!("boom")));
}

/// A job whose `fail` step rejects `bad`, with `dead_letter` as given.
fn job_with_dead_letter(dir: &Path, dead_letter: &str) -> std::path::PathBuf {
    write_job(
        dir,
        &format!(
            "name: dead letter output\nplugins:\n  hostile: {}\nsource:\n  connector: collection\n  elements: [a, bad, c]\npipeline:\n  - map: hostile.fail\nsink:\n  connector: print\ndead_letter:\n{dead_letter}",
            plugin_yaml("hostile-rust")
        ),
    )
}

#[test]
fn a_print_dead_letter_output_writes_to_stderr_not_into_the_records() {
    let dir = temp_dir();
    let run = run_job(&job_with_dead_letter(dir.path(), "  connector: print\n"));
    run.assert_ok();
    assert_eq!(run.stdout, "a\nc\n", "dead letters must not mix with the job's records on stdout");
    let letter = run
        .stderr
        .lines()
        .find(|l| l.starts_with('{') && l.contains("bad record"))
        .unwrap_or_else(|| panic!("no dead letter on stderr:\n{}", run.stderr));
    let letter: Value = serde_json::from_str(letter).expect("a dead letter is a JSON line");
    assert_eq!(letter["record"], "bad");
}

#[test]
fn a_json_dead_letter_file_holds_one_object_per_line() {
    let dir = temp_dir();
    let dead = dir.path().join("dead.jsonl");
    let yaml = format!("  connector: file\n  path: {}\n  format: json\n", common::yaml_path(&dead));
    let run = run_job(&job_with_dead_letter(dir.path(), &yaml));
    run.assert_ok();
    let letters = read_json_lines(&dead);
    assert_eq!(letters.len(), 1);
    assert!(letters[0].is_object(), "a dead letter should be a JSON object, not {}", letters[0]);
    assert_eq!((&letters[0]["kind"], &letters[0]["record"]), (&json!("error"), &json!("bad")));
}
