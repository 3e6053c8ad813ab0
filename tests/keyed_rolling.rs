//! `key_by` and the rolling aggregations at parallelism 2: by a Wasm key selector
//! (words.first_letter) with `count`, and by a field of JSON records with `sum`. The
//! output is a changelog whose lines interleave across the parallel instances, so the
//! tests group it by key and check, per key, the whole sequence of updates (1, 2, .., n
//! for a count: each record counted exactly once, in order) against values computed here.
//! Also the `filter` step (words.is_long).

mod common;

use std::collections::BTreeMap;

use serde_json::{Value, json};

use common::{plugin, plugin_yaml, run_job, shared_cache_dir, temp_dir, write_file, write_job, yaml_path};

const WORDS: &[&str] = &[
    "stream",
    "Weir",
    "apache",
    "Flink",
    "window",
    "state",
    "key",
    "Batch",
    "operator",
    "sink",
    "source",
    "watermark",
    "checkpoint",
    "été",
    "Über",
    "a",
    "to",
    "be",
    "or",
    "not",
    "élan",
    "zebra",
    "2024",
    "x9",
];

/// Deterministic text: `lines` lines of words from [`WORDS`] with punctuation between.
fn text(lines: usize) -> String {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut out = String::new();
    for _ in 0..lines {
        let n = next() % 9;
        for j in 0..n {
            if j > 0 {
                out.push_str([" ", ", ", "; ", "  -- ", "!"][(next() % 5) as usize]);
            }
            out.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
        }
        out.push('\n');
    }
    out
}

/// words.split, written again here: runs of alphanumeric characters, lower-cased.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

fn first_letter(word: &str) -> String {
    word.chars().next().map(|c| c.to_lowercase().collect()).unwrap_or_default()
}

/// Each output line's JSON value.
fn parse_lines(stdout: &str) -> Vec<Value> {
    stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line: {l:?}: {e}"))).collect()
}

/// The values of `field` per key, in emission order.
fn updates_per_key(rows: &[Value], key_field: &str, field: &str) -> BTreeMap<String, Vec<i64>> {
    let mut per_key: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for row in rows {
        let key = row[key_field].as_str().unwrap_or_else(|| panic!("no string `{key_field}` in {row}")).to_string();
        let value = row[field].as_i64().unwrap_or_else(|| panic!("no integer `{field}` in {row}"));
        per_key.entry(key).or_default().push(value);
    }
    per_key
}

#[test]
fn count_per_first_letter_by_a_wasm_key_selector_at_parallelism_2() {
    let dir = temp_dir();
    let text = text(3000);
    let input = write_file(dir.path(), "words.txt", &text);
    let job = write_job(
        dir.path(),
        &format!(
            "name: letters\nparallelism: 2\nbatch_size: 100\nplugins:\n  words: {}\nsource:\n  connector: file\n  path: {}\npipeline:\n  - flat_map: words.split\n  - key_by: {{function: words.first_letter}}\n  - count\nsink:\n  connector: print\n",
            plugin_yaml("words-rust"),
            yaml_path(&input)
        ),
    );
    let out = run_job(&job);
    out.assert_ok();

    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for w in words(&text) {
        *expected.entry(first_letter(&w)).or_default() += 1;
    }
    let per_key = updates_per_key(&parse_lines(&out.stdout), "key", "count");
    let finals: BTreeMap<String, i64> = per_key.iter().map(|(k, v)| (k.clone(), *v.last().unwrap_or(&0))).collect();
    assert_eq!(finals, expected, "final count per key");
    for (key, counts) in &per_key {
        let one_by_one: Vec<i64> = (1..=counts.len() as i64).collect();
        assert_eq!(counts, &one_by_one, "the updates of key {key:?} should be 1, 2, .., n");
    }
    let total: i64 = expected.values().sum();
    let summary = out.summary();
    assert_eq!((summary.records_out, summary.dead_letters), (total as u64, 0));
}

#[test]
fn sum_per_user_by_a_field_at_parallelism_2() {
    let dir = temp_dir();
    let users = ["ann", "bob", "cy", "dee", "eve", "fay", "gus"];
    let mut lines = String::new();
    let mut expected: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for i in 0..5000i64 {
        let user = users[(i * 7 + i / 3) as usize % users.len()];
        let n = (i * 31) % 17 - 5;
        lines.push_str(&format!("{}\n", json!({"user": user, "n": n, "seq": i})));
        let running = expected.entry(user.to_string()).or_default();
        let before = running.last().copied().unwrap_or(0);
        running.push(before + n);
    }
    let input = write_file(dir.path(), "events.jsonl", lines);
    let job = write_job(
        dir.path(),
        &format!(
            "name: sums\nparallelism: 2\nbatch_size: 128\nsource:\n  connector: file\n  path: {}\n  format: json\npipeline:\n  - key_by: user\n  - sum: n\nsink:\n  connector: print\n",
            yaml_path(&input)
        ),
    );
    let out = run_job(&job);
    out.assert_ok();
    let rows = parse_lines(&out.stdout);
    // A rolling sum emits the key's first record with the field replaced (as Flink does).
    for row in &rows {
        let first_seq = rows.iter().find(|r| r["user"] == row["user"]).map(|r| r["seq"].clone());
        assert_eq!(Some(row["seq"].clone()), first_seq, "{row}");
    }
    assert_eq!(updates_per_key(&rows, "user", "n"), expected, "running sums per user");
}

#[test]
fn filter_keeps_only_long_words_in_order() {
    let dir = temp_dir();
    let text = text(500);
    let input = write_file(dir.path(), "words.txt", &text);
    let job = write_job(
        dir.path(),
        &format!(
            "name: long\nbatch_size: 50\nplugins:\n  words: {}\nsource:\n  connector: file\n  path: {}\npipeline:\n  - flat_map: words.split\n  - filter: words.is_long\nsink:\n  connector: print\n",
            plugin_yaml("words-rust"),
            yaml_path(&input)
        ),
    );
    let out = run_job(&job);
    out.assert_ok();
    let expected: Vec<String> = words(&text).into_iter().filter(|w| w.chars().count() > 4).collect();
    assert!(expected.len() > 100, "the test text should have long words");
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn the_builder_api_counts_per_key_at_parallelism_2() {
    let env = weir::env::StreamEnvironment::new();
    env.set_cache_dir(shared_cache_dir());
    env.set_parallelism(2);
    env.set_batch_size(64);
    let words_plugin = env.load_plugin(plugin("words-rust")).expect("load the words plugin");
    let text = text(400);
    let lines: Vec<&str> = text.lines().collect();
    let collected = env
        .from_elements(lines)
        .flat_map(words_plugin.function("split"))
        .key_by(words_plugin.function("first_letter"))
        .count()
        .collect();
    env.execute("builder count").expect("the job runs");
    let rows: Vec<Value> = collected
        .lock()
        .expect("collected rows")
        .iter()
        .map(|v| serde_json::from_str(&weir::record::display_value(v)).expect("a JSON record"))
        .collect();
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for w in words(&text) {
        *expected.entry(first_letter(&w)).or_default() += 1;
    }
    let finals: BTreeMap<String, i64> =
        updates_per_key(&rows, "key", "count").into_iter().map(|(k, v)| (k, *v.last().unwrap_or(&0))).collect();
    assert_eq!(finals, expected);
}

#[test]
fn records_without_the_key_or_with_a_non_numeric_field_are_dead_letters() {
    let dir = temp_dir();
    let input = write_file(
        dir.path(),
        "events.jsonl",
        "{\"user\":\"a\",\"n\":1}\n{\"n\":5}\n{\"user\":\"a\",\"n\":\"x\"}\n\"just a string\"\n{\"user\":\"a\",\"n\":2}\n{\"user\":\"b\"}\n{\"user\":\"b\",\"n\":4}\n",
    );
    let dead = dir.path().join("dead.jsonl");
    let job = write_job(
        dir.path(),
        &format!(
            "name: bad keys\nparallelism: 2\nsource:\n  connector: file\n  path: {}\n  format: json\npipeline:\n  - key_by: user\n  - sum: n\nsink:\n  connector: print\ndead_letter:\n  connector: file\n  path: {}\n",
            yaml_path(&input),
            yaml_path(&dead)
        ),
    );
    let out = run_job(&job);
    out.assert_ok();
    let finals: BTreeMap<String, i64> = updates_per_key(&parse_lines(&out.stdout), "user", "n")
        .into_iter()
        .map(|(k, v)| (k, *v.last().unwrap_or(&0)))
        .collect();
    assert_eq!(finals, BTreeMap::from([("a".to_string(), 3), ("b".to_string(), 4)]));
    let mut letters: Vec<(String, Value)> = common::read_json_lines(&dead)
        .into_iter()
        .map(|d| (d["kind"].as_str().unwrap_or_default().to_string(), d["record"].clone()))
        .collect();
    letters.sort_by_key(|(kind, record)| (kind.clone(), record.to_string()));
    assert_eq!(
        letters,
        [
            ("error".to_string(), json!({"user": "a", "n": "x"})),
            ("missing-field".to_string(), json!("just a string")),
            ("missing-field".to_string(), json!({"n": 5})),
            ("missing-field".to_string(), json!({"user": "b"})),
        ]
    );
}
