//! The `datagen` source through the CLI: rows follow the schema and the seed, windows over
//! its event time count each row once (checked against counts the test works out itself
//! from the generated rows), the rate limit paces it, and a bad generator is reported at
//! its line; the builder API generates what the job file does.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{Run, repo_root, run, run_job, temp_dir, weir, write_job};
use serde_json::Value;

const FIELDS: &str = "    id: {kind: sequence, start: 1}\n    n: {kind: random, min: 10, max: 20}\n    x: {kind: random, min: 0.5, max: 1.5}\n    s: {kind: random, length: 5}\n    c: {kind: random, values: [a, b, c]}\n    ts: {kind: event-time, start: 1000, step: 10 ms, max-out-of-orderness: 30 ms}\n";

/// A job of `rows` generated rows with seed `seed`, then `pipeline` (YAML list items, may
/// be empty), printed.
fn job(dir: &Path, rows: u64, seed: u64, top: &str, pipeline: &str) -> std::path::PathBuf {
    let pipeline = if pipeline.is_empty() { String::new() } else { format!("pipeline:\n{pipeline}") };
    write_job(
        dir,
        &format!(
            "name: datagen\n{top}source:\n  connector: datagen\n  number-of-rows: {rows}\n  seed: {seed}\n  fields:\n{FIELDS}{pipeline}sink:\n  connector: print\n"
        ),
    )
}

fn json_lines(out: &Run) -> Vec<Value> {
    out.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}"))).collect()
}

fn int(v: &Value, field: &str) -> i64 {
    v[field].as_i64().unwrap_or_else(|| panic!("`{field}` is not an integer in {v}"))
}

#[test]
fn rows_follow_the_schema_and_the_seed() {
    let dir = temp_dir();
    let out = run_job(&job(dir.path(), 300, 7, "", ""));
    out.assert_ok();
    let rows = json_lines(&out);
    assert_eq!(rows.len(), 300);
    let mut picked = std::collections::BTreeSet::new();
    for (i, row) in rows.iter().enumerate() {
        let names: Vec<_> = row.as_object().expect("a row is a map").keys().map(String::as_str).collect();
        assert_eq!(names, ["id", "n", "x", "s", "c", "ts"], "fields in schema order");
        assert_eq!(int(row, "id"), i as i64 + 1, "the sequence counts from 1");
        assert!((10..=20).contains(&int(row, "n")), "{row}");
        let x = row["x"].as_f64().expect("x is a number");
        assert!((0.5..=1.5).contains(&x), "{row}");
        let s = row["s"].as_str().expect("s is a string");
        assert!(s.len() == 5 && s.bytes().all(|b| b.is_ascii_alphanumeric()), "{row}");
        picked.insert(row["c"].as_str().expect("c is a string").to_string());
        let on_time = 1000 + 10 * i as i64;
        assert!(((on_time - 30).max(1000)..=on_time).contains(&int(row, "ts")), "{row}");
    }
    assert_eq!(picked.into_iter().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(out.summary().records_in, 300);

    // The same seed gives the same rows, whatever the batch size; another seed, others.
    let again = run_job(&job(dir.path(), 300, 7, "batch_size: 7\n", ""));
    assert_eq!(again.assert_ok().stdout, out.stdout);
    let other = run_job(&job(dir.path(), 300, 8, "", ""));
    assert_ne!(other.assert_ok().stdout, out.stdout);
}

#[test]
fn windows_over_generated_event_time_count_every_row_once() {
    let dir = temp_dir();
    let rows = json_lines(run_job(&job(dir.path(), 2_000, 11, "", "")).assert_ok());
    // 100 ms tumbling windows per `c`, worked out here from the rows themselves.
    let mut expected: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for row in &rows {
        let ts = int(row, "ts");
        *expected.entry((row["c"].as_str().unwrap_or("?").to_string(), ts - ts.rem_euclid(100))).or_default() += 1;
    }
    assert!(expected.len() > 200, "20 s of event time in 100 ms windows, 3 keys: {} windows", expected.len());

    // The watermark bound is the generator's out-of-orderness, so nothing is late, even
    // with a watermark after every record (batch_size: 1).
    let windowed = "  - assign_timestamps: {field: ts, max_out_of_orderness: 30 ms}\n  - key_by: c\n  - window: {tumbling: 100 ms, aggregate: count}\n";
    let out = run_job(&job(dir.path(), 2_000, 11, "parallelism: 2\nbatch_size: 1\n", windowed));
    out.assert_ok();
    let mut counted: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for w in json_lines(&out) {
        assert_eq!(int(&w, "window_end") - int(&w, "window_start"), 100, "{w}");
        let key = (w["key"].as_str().unwrap_or("?").to_string(), int(&w, "window_start"));
        let count = w["count"].as_u64().expect("a count");
        assert!(counted.insert(key, count).is_none(), "each window fires once: {w}");
    }
    assert_eq!(counted, expected);
    let s = out.summary();
    assert_eq!((s.records_in, s.late, s.dead_letters), (2_000, 0, 0));

    // A bound of 0 ms is tighter than the generator's 30: some rows are now late.
    let tight = windowed.replace("30 ms", "0 ms");
    let out = run_job(&job(dir.path(), 2_000, 11, "batch_size: 1\nlate_data:\n  connector: blackhole\n", &tight));
    let s = out.assert_ok().summary();
    assert!(s.late > 0, "{s:?}");
    assert_eq!(json_lines(&out).iter().map(|w| w["count"].as_u64().unwrap_or(0)).sum::<u64>() + s.late, 2_000);
}

#[test]
fn rows_per_second_paces_the_source() {
    let dir = temp_dir();
    let unpaced = run_job(&job(dir.path(), 50, 1, "", ""));
    unpaced.assert_ok();
    // 50 rows at 100 per second: the last is due 490 ms after the first.
    let text = std::fs::read_to_string(dir.path().join("job.yaml")).expect("the job file");
    let paced = run_job(&write_job(dir.path(), &text.replace("  seed: 1\n", "  seed: 1\n  rows-per-second: 100\n")));
    paced.assert_ok();
    assert_eq!(paced.stdout, unpaced.stdout, "pacing does not change the rows");
    let ms = elapsed_ms(&paced);
    assert!(ms >= 480.0, "50 rows at 100/s took {ms} ms");
}

/// The job's own time from the `--summary` line (`..., 123.4 ms (backpressure ...)`).
fn elapsed_ms(out: &Run) -> f64 {
    let line = out.stderr.lines().find(|l| l.contains(" finished: ")).expect("a summary line");
    let before = line.split(" ms (backpressure").next().unwrap_or_default();
    before.rsplit(", ").next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no time in {line}"))
}

#[test]
fn a_generator_that_cannot_generate_is_reported_at_its_line() {
    let dir = temp_dir();
    let text = std::fs::read_to_string(job(dir.path(), 5, 1, "", "")).expect("the job file");
    let bad =
        write_job(dir.path(), &text.replace("{kind: random, min: 10, max: 20}", "{kind: random, min: 20, max: 10}"));
    let out = run_job(&bad);
    let err = out.assert_failed();
    assert!(err.contains("job.yaml:8: source.fields.n: `min` (20) is larger than `max` (10)"), "{err}");
    let unknown = write_job(dir.path(), &text.replace("kind: sequence", "kind: counter"));
    let err = run(weir().arg("check").arg(&unknown)).assert_failed().to_string();
    assert!(err.contains("source.fields.id.kind: unknown generator kind `counter`"), "{err}");
}

#[test]
fn the_example_job_runs_and_gives_the_same_output_each_time() {
    let example = repo_root().join("examples/datagen/job.yaml");
    let out = run_job(&example);
    out.assert_ok();
    let windows = json_lines(&out);
    // 3000 rows, 100 ms apart: 5 minutes from 00:00:00, 4 URLs, one row per URL and minute.
    assert_eq!(windows.len(), 20, "{}", out.stdout);
    let start = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    for w in &windows {
        let minute = (int(w, "window_start") - start) / 60_000;
        assert!((0..5).contains(&minute), "{w}");
        assert!((0.5..=250.0).contains(&w["avg"].as_f64().expect("an average")), "{w}");
    }
    let s = out.summary();
    assert_eq!((s.records_in, s.records_out, s.late, s.dead_letters), (3000, 20, 0, 0));
    // Parallel window instances interleave their output: compare the lines, not their order.
    let sorted = |out: &Run| {
        let mut lines: Vec<String> = out.stdout.lines().map(String::from).collect();
        lines.sort();
        lines
    };
    assert_eq!(sorted(run_job(&example).assert_ok()), sorted(&out));
}

#[test]
fn the_builder_api_generates_what_the_job_file_does() {
    use weir::connectors::{DatagenSpec, FieldGenerator};
    use weir::env::StreamEnvironment;

    let dir = temp_dir();
    let from_file = run_job(&job(dir.path(), 40, 7, "", ""));
    let spec = DatagenSpec::new()
        .field("id", FieldGenerator::Sequence { start: 1, end: i64::MAX })
        .field("n", FieldGenerator::RandomInt { min: 10, max: 20 })
        .field("x", FieldGenerator::RandomFloat { min: 0.5, max: 1.5 })
        .field("s", FieldGenerator::RandomString { length: 5 })
        .field("c", FieldGenerator::pick(["a", "b", "c"]))
        .field("ts", FieldGenerator::EventTime { start_ms: 1000, step_ms: 10, max_out_of_orderness_ms: 30 })
        .number_of_rows(40)
        .seed(7);
    let env = StreamEnvironment::new();
    let rows = env.from_datagen(spec).collect();
    env.execute("datagen").expect("the job runs");
    let rows = rows.lock().expect("the collected rows");
    let lines: Vec<String> = rows.iter().map(|r| weir::record::display_value(r)).collect();
    assert_eq!(lines, from_file.assert_ok().stdout.lines().collect::<Vec<_>>());

    let env = StreamEnvironment::new();
    env.from_datagen(DatagenSpec::new().number_of_rows(3)).discard();
    let err = env.execute("no fields").expect_err("a spec without fields cannot run").to_string();
    assert_eq!(err, "from_datagen: a datagen source needs at least one field");
}
