//! Recycling plugin instances: a Python map (whose runtime's memory only grows) with
//! `limits.recycle_after_records` is rebuilt between batches many times during one job,
//! and still outputs every record exactly once, in order.

mod common;

use serde_json::json;

use common::{plugin_yaml, read_json_lines, run, temp_dir, weir, write_file, write_job, yaml_path};

const RECORDS: u64 = 20_000;

#[test]
fn a_recycled_python_map_outputs_every_record_once_in_order() {
    let dir = temp_dir();
    let cities = ["Oslo", "Lima", "Pune", "Kyiv", "Baku"];
    let mut lines = String::new();
    for id in 0..RECORDS {
        let name = format!("person-{id}-{}", "é".repeat((id % 4) as usize));
        let record = json!({"id": id, "name": name, "city": cities[(id % 5) as usize], "score": id as f64 / 8.0});
        lines.push_str(&format!("{record}\n"));
    }
    let input = write_file(dir.path(), "people.jsonl", lines);
    let output = dir.path().join("out.jsonl");
    let job = write_job(
        dir.path(),
        &format!(
            "name: recycle\nbatch_size: 256\nlimits:\n  recycle_after_records: 1000\nplugins:\n  upper: {}\nsource:\n  connector: file\n  path: {}\n  format: json\npipeline:\n  - map: upper.upper_name\nsink:\n  connector: file\n  path: {}\n  format: json\n",
            plugin_yaml("upper-python"),
            yaml_path(&input),
            yaml_path(&output)
        ),
    );
    let out = run(weir().env("WEIR_LOG", "weir=debug").arg("run").arg(&job).arg("--summary"));
    out.assert_ok();

    let got = read_json_lines(&output);
    assert_eq!(got.len() as u64, RECORDS, "records out");
    for (id, row) in (0..RECORDS).zip(&got) {
        assert_eq!(row["id"], json!(id), "record {id} out of order, lost or repeated: {row}");
        let name = format!("person-{id}-{}", "é".repeat((id % 4) as usize));
        assert_eq!(row["name"], json!(name.to_uppercase()), "{row}");
        assert_eq!(row["name_len"], json!(name.chars().count()), "{row}");
        assert_eq!(row["city"], json!(cities[(id % 5) as usize]), "{row}");
    }
    let summary = out.summary();
    assert_eq!((summary.records_in, summary.records_out, summary.dead_letters), (RECORDS, RECORDS, 0));

    // 1000 records at 256 a batch: a recycle every 4 batches, so about 19 in this job.
    let recycles = out.stderr.lines().filter(|l| l.contains("recycling plugin instance")).count();
    assert!(recycles >= 10, "expected the instance to be recycled at least 10 times, saw {recycles}");
}
