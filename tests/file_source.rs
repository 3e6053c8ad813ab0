//! The file source and sink from job files: text lines, JSON lines through a plugin into a
//! JSON file, a folder of files in name order, and input that cannot become a record
//! (malformed JSON, bytes that are not UTF-8) going to the dead-letter file with its
//! file and line while every good record still comes out.

mod common;

use serde_json::{Value, json};

use common::{plugin_yaml, read_file, read_json_lines, run_job, temp_dir, write_file, write_job, yaml_path};

#[test]
fn text_lines_of_one_file_are_records() {
    let dir = temp_dir();
    let input = write_file(dir.path(), "in.txt", "alpha\nbeta gamma\n\ndelta\r\nlast line without newline");
    let job = write_job(
        dir.path(),
        &format!(
            "name: text\nplugins:\n  upper: {}\nsource:\n  connector: file\n  path: {}\n  format: text\npipeline:\n  - map: upper.upper\nsink:\n  connector: print\n",
            plugin_yaml("upper-rust"),
            yaml_path(&input)
        ),
    );
    let out = run_job(&job);
    out.assert_ok();
    // An empty line is an empty record; `\r\n` and a missing last newline are handled.
    assert_eq!(out.stdout, "ALPHA\nBETA GAMMA\n\nDELTA\nLAST LINE WITHOUT NEWLINE\n");
    let summary = out.summary();
    assert_eq!((summary.records_in, summary.records_out, summary.dead_letters), (5, 5, 0));
}

fn person(id: u64, name: &str, city: &str, score: f64) -> Value {
    json!({"id": id, "name": name, "city": city, "score": score})
}

#[test]
fn json_lines_through_upper_name_into_a_json_file() {
    let dir = temp_dir();
    let people = [
        person(1, "ada", "London", 9.5),
        person(2, "Grace Hopper", "New York", 7.25),
        person(3, "édouard", "Paris", 0.0),
        person(4, "", "Nowhere", -1.5),
    ];
    let lines: String = people.iter().map(|p| format!("{p}\n")).collect();
    let input = write_file(dir.path(), "people.jsonl", lines);
    let output = dir.path().join("out/people.jsonl");
    let job = write_job(
        dir.path(),
        &format!(
            "name: people\nplugins:\n  upper: {}\nsource:\n  connector: file\n  path: {}\n  format: json\npipeline:\n  - map: upper.upper_name\nsink:\n  connector: file\n  path: {}\n  format: json\n",
            plugin_yaml("upper-rust"),
            yaml_path(&input),
            yaml_path(&output)
        ),
    );
    let out = run_job(&job);
    out.assert_ok();
    let got = read_json_lines(&output);
    assert_eq!(got.len(), people.len(), "output file:\n{}", read_file(&output));
    for (p, g) in people.iter().zip(&got) {
        let name = p["name"].as_str().unwrap_or_default();
        assert_eq!(g["id"], p["id"], "{g}");
        assert_eq!(g["name"], json!(name.to_uppercase()), "{g}");
        assert_eq!(g["city"], p["city"], "{g}");
        assert_eq!(g["score"].as_f64(), p["score"].as_f64(), "{g}");
        assert_eq!(g["name_len"], json!(name.chars().count()), "{g}");
    }
    assert_eq!(out.summary().records_out, people.len() as u64);
}

#[test]
fn a_folder_is_read_file_by_file_in_name_order() {
    let dir = temp_dir();
    let input = dir.path().join("in");
    // Written out of order: the source sorts by name; hidden files are skipped.
    write_file(&input, "b.txt", "b1\nb2\n");
    write_file(&input, "c.txt", "c1\n");
    write_file(&input, "a.txt", "a1\na2\na3\n");
    write_file(&input, ".hidden", "never\n");
    let job = write_job(
        dir.path(),
        &format!(
            "name: folder\nsource:\n  connector: file\n  path: {}\nsink:\n  connector: print\n",
            yaml_path(&input)
        ),
    );
    let out = run_job(&job);
    out.assert_ok();
    assert_eq!(out.stdout, "a1\na2\na3\nb1\nb2\nc1\n");
}

#[test]
fn malformed_json_lines_are_dead_letters_with_file_and_line() {
    let dir = temp_dir();
    let input = write_file(
        dir.path(),
        "mixed.jsonl",
        "{\"n\": 1}\n{oops\n{\"n\": 2}\n\n[1, 2\n{\"n\": 3}\nnot json at all\n{\"n\": 4}\n",
    );
    let dead = dir.path().join("dead.jsonl");
    let job = write_job(
        dir.path(),
        &format!(
            "name: mixed\nsource:\n  connector: file\n  path: {}\n  format: json\nsink:\n  connector: print\ndead_letter:\n  connector: file\n  path: {}\n",
            yaml_path(&input),
            yaml_path(&dead)
        ),
    );
    let out = run_job(&job);
    out.assert_ok();
    let good: Vec<Value> =
        out.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"))).collect();
    assert_eq!(good, [json!({"n": 1}), json!({"n": 2}), json!({"n": 3}), json!({"n": 4})]);

    let letters = read_json_lines(&dead);
    let origins: Vec<String> = letters.iter().map(|d| d["origin"].as_str().unwrap_or_default().to_string()).collect();
    let at = |line: u32| format!("{}:{line}", input.display());
    assert_eq!(origins, [at(2), at(5), at(7)], "dead letters:\n{}", read_file(&dead));
    let raws: Vec<&str> = letters.iter().map(|d| d["raw"].as_str().unwrap_or_default()).collect();
    assert_eq!(raws, ["{oops", "[1, 2", "not json at all"]);
    for d in &letters {
        assert_eq!(d["kind"], "malformed-input", "{d}");
        assert_eq!(d["operator"], "source file", "{d}");
        assert!(d["error"].as_str().is_some_and(|e| e.contains("not valid JSON")), "{d}");
    }
    let summary = out.summary();
    assert_eq!((summary.records_out, summary.dead_letters), (4, 3), "{}", out.stderr);
}

#[test]
fn text_lines_that_are_not_utf8_are_dead_letters() {
    let dir = temp_dir();
    let mut bytes = b"first\n".to_vec();
    bytes.extend_from_slice(b"caf\xe9 latin-1\n");
    bytes.extend_from_slice(b"second\n\xff\xfe\n");
    bytes.extend_from_slice("third \u{e9}t\u{e9}\n".as_bytes());
    let input = write_file(dir.path(), "latin.txt", bytes);
    let output = dir.path().join("out.txt");
    let dead = dir.path().join("dead.jsonl");
    let job = write_job(
        dir.path(),
        &format!(
            "name: utf8\nplugins:\n  upper: {}\nsource:\n  connector: file\n  path: {}\npipeline:\n  - map: upper.upper\nsink:\n  connector: file\n  path: {}\ndead_letter:\n  connector: file\n  path: {}\n",
            plugin_yaml("upper-rust"),
            yaml_path(&input),
            yaml_path(&output),
            yaml_path(&dead)
        ),
    );
    let out = run_job(&job);
    out.assert_ok();
    assert_eq!(read_file(&output), "FIRST\nSECOND\nTHIRD \u{c9}T\u{c9}\n");
    let letters = read_json_lines(&dead);
    let origins: Vec<&str> = letters.iter().map(|d| d["origin"].as_str().unwrap_or_default()).collect();
    assert_eq!(origins, [format!("{}:2", input.display()), format!("{}:4", input.display())], "{}", read_file(&dead));
    for d in &letters {
        assert_eq!(d["kind"], "malformed-input", "{d}");
        assert!(d["error"].as_str().is_some_and(|e| e.contains("UTF-8")), "{d}");
    }
    let summary = out.summary();
    assert_eq!((summary.records_in, summary.records_out, summary.dead_letters), (3, 3, 2), "{}", out.stderr);
}
