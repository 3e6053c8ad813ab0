//! Broadcast connect (`process: {function, broadcast: {source, preload}}`) through the CLI:
//! rules on a broadcast stream reach every parallel instance of a keyed process function
//! (`fraud_detector` of plugins/process-rust, which reads its thresholds from broadcast
//! state `rules`).

mod common;

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{plugin_yaml, read_json_lines, run_job, temp_dir, write_file, write_job};
use serde_json::{Value, json};

/// A fraud-detection job at `parallelism` over `transactions`, with `rules` (JSON lines) on
/// a broadcast input (`preload` as given), output in out.jsonl and dead letters in dead.jsonl.
fn fraud_job(dir: &Path, parallelism: usize, transactions: &str, rules: &str, preload: bool) -> PathBuf {
    write_file(dir, "rules.jsonl", rules);
    fraud_job_from(dir, parallelism, transactions, "{connector: file, path: rules.jsonl, format: json}", preload)
}

/// [`fraud_job`] with the broadcast source given as YAML.
fn fraud_job_from(dir: &Path, parallelism: usize, transactions: &str, rules_source: &str, preload: bool) -> PathBuf {
    write_file(dir, "transactions.jsonl", transactions);
    write_job(
        dir,
        &format!(
            "name: fraud\nparallelism: {parallelism}\nplugins:\n  fraud: {}\n\
             source: {{connector: file, path: transactions.jsonl, format: json}}\n\
             pipeline:\n  - key_by: account\n  - process:\n      function: fraud.fraud_detector\n\
             \x20     broadcast: {{source: {rules_source}, preload: {preload}}}\n\
             sink: {{connector: file, path: out.jsonl, format: json}}\n\
             dead_letter: {{connector: file, path: dead.jsonl}}\n",
            plugin_yaml("process-rust"),
        ),
    )
}

/// Accounts 0..n, each with a small (0.50) then a medium (50.00) transaction: no alert with
/// the default thresholds (large is over 500.00), an alert under a rule with large 10.00.
fn small_then_medium(accounts: u32) -> String {
    let mut text = String::new();
    for a in 0..accounts {
        writeln!(text, r#"{{"account":"acct-{a}","amount":0.50}}"#).unwrap();
    }
    for a in 0..accounts {
        writeln!(text, r#"{{"account":"acct-{a}","amount":50.00}}"#).unwrap();
    }
    text
}

fn alerted_accounts(dir: &Path) -> Vec<String> {
    let mut accounts: Vec<String> = read_json_lines(&dir.join("out.jsonl"))
        .iter()
        .map(|a| a["account"].as_str().expect("account").to_string())
        .collect();
    accounts.sort();
    accounts
}

#[test]
fn preloaded_rules_reach_every_parallel_instance() {
    // 64 accounts spread over 4 instances by key group. The default rule (large over 10.00)
    // makes every account's 50.00 an alert, so each instance must hold the rule; the rule
    // for acct-7 (large over 100.00) spares that one account only.
    let dir = temp_dir();
    let rules =
        "{\"name\":\"default\",\"small\":1.0,\"large\":10.0}\n{\"name\":\"acct-7\",\"small\":1.0,\"large\":100.0}\n";
    let job = fraud_job(dir.path(), 4, &small_then_medium(64), rules, true);
    let out = run_job(&job);
    out.assert_ok();
    let mut expected: Vec<String> = (0..64).filter(|&a| a != 7).map(|a| format!("acct-{a}")).collect();
    expected.sort();
    assert_eq!(alerted_accounts(dir.path()), expected);
    let s = out.summary();
    assert_eq!((s.records_in, s.broadcast, s.records_out, s.dead_letters), (128, 2, 63, 0));
}

/// A socket server that accepts one connection, waits `delay`, then writes `lines` and
/// closes: rules that arrive well after the transactions file has been read.
fn late_rules_server(lines: &'static str, delay: Duration) -> (u16, std::thread::JoinHandle<std::io::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let port = listener.local_addr().expect("local address").port();
    let handle = std::thread::spawn(move || {
        let mut conn = common::accept_within(&listener, Duration::from_secs(60))?;
        std::thread::sleep(delay);
        conn.write_all(lines.as_bytes())?;
        conn.shutdown(std::net::Shutdown::Write)
    });
    (port, handle)
}

#[test]
fn preload_holds_the_keyed_input_until_the_broadcast_input_ends() {
    // The rules come from a socket 700 ms after it is opened; the transactions are a file,
    // read at once. With preload every transaction waits for the rules: all 16 accounts
    // alert. Without it the transactions are handled before the rules arrive: none does.
    const RULES: &str = "{\"name\":\"default\",\"small\":1.0,\"large\":10.0}\n";
    for (preload, alerts) in [(true, 16), (false, 0)] {
        let dir = temp_dir();
        let (port, server) = late_rules_server(RULES, Duration::from_millis(700));
        let source = format!("{{connector: socket, hostname: 127.0.0.1, port: {port}, format: json}}");
        let out = run_job(&fraud_job_from(dir.path(), 2, &small_then_medium(16), &source, preload));
        out.assert_ok();
        server.join().expect("server thread").expect("server wrote the rules");
        assert_eq!(alerted_accounts(dir.path()).len(), alerts, "preload: {preload}");
        assert_eq!(out.summary().broadcast, 1);
    }
}

#[test]
fn without_rules_the_defaults_hold_and_with_parallelism_one_the_same_rules_apply() {
    // The same input with no rule: no alert (50.00 is not over 500.00). With one instance
    // the rules give the same 63 alerts as with four.
    let dir = temp_dir();
    run_job(&fraud_job(dir.path(), 2, &small_then_medium(64), "", true)).assert_ok();
    assert_eq!(alerted_accounts(dir.path()), Vec::<String>::new());
    let rules =
        "{\"name\":\"default\",\"small\":1.0,\"large\":10.0}\n{\"name\":\"acct-7\",\"small\":1.0,\"large\":100.0}\n";
    run_job(&fraud_job(dir.path(), 1, &small_then_medium(64), rules, true)).assert_ok();
    assert_eq!(alerted_accounts(dir.path()).len(), 63);
}

#[test]
fn without_preload_both_inputs_run_to_their_end_and_a_bad_rule_is_a_dead_letter() {
    // The inputs interleave, so which transactions see the rules depends on timing: only
    // what does not is checked. The job ends when both inputs have ended, every broadcast
    // record reached the function (the inverted rule is a dead letter once per instance,
    // since every instance handles it), and every alert is one the rules allow.
    let dir = temp_dir();
    let rules = "{\"name\":\"default\",\"small\":1.0,\"large\":10.0}\n{\"name\":\"bad\",\"small\":5.0,\"large\":1.0}\n";
    let out = run_job(&fraud_job(dir.path(), 2, &small_then_medium(200), rules, false));
    out.assert_ok();
    let s = out.summary();
    assert_eq!((s.records_in, s.broadcast, s.dead_letters), (400, 2, 2));
    let dead = read_json_lines(&dir.path().join("dead.jsonl"));
    assert!(dead.iter().all(|d| d["error"].as_str().unwrap_or_default().contains("rule `bad`")), "{dead:?}");
    let alerts = read_json_lines(&dir.path().join("out.jsonl"));
    assert!(alerts.iter().all(|a| a["small"] == 0.5 && a["large"] == 50.0), "{alerts:?}");
    assert!(alerts.len() <= 200);
}

#[test]
fn a_broadcast_input_without_a_source_is_a_job_error() {
    let dir = temp_dir();
    write_file(dir.path(), "t.jsonl", "");
    let job = write_job(
        dir.path(),
        &format!(
            "name: p\nplugins:\n  fraud: {}\nsource: {{connector: file, path: t.jsonl, format: json}}\n\
             pipeline:\n  - key_by: account\n  - process:\n      function: fraud.fraud_detector\n\
             \x20     broadcast: {{preload: true}}\nsink: {{connector: print}}\n",
            plugin_yaml("process-rust")
        ),
    );
    let err = run_job(&job).assert_failed().to_string();
    assert!(err.contains("job.yaml:9: pipeline[1].process.broadcast: a broadcast input needs `source`"), "{err}");
}

#[test]
fn a_bad_broadcast_record_goes_to_the_dead_letters_and_the_rest_apply() {
    // A rule that is not a rule (no thresholds) fails alone; the good rule still applies.
    let dir = temp_dir();
    let rules = "{\"name\":\"default\"}\n{\"name\":\"default\",\"small\":1.0,\"large\":10.0}\n";
    let out = run_job(&fraud_job(dir.path(), 1, &small_then_medium(3), rules, true));
    out.assert_ok();
    assert_eq!(alerted_accounts(dir.path()), ["acct-0", "acct-1", "acct-2"]);
    let dead: Vec<Value> = read_json_lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["record"]["name"], "default");
}

/// The profiles examples/user-profile must give, per user in event order, worked out by hand
/// from events.jsonl and users.jsonl: (user, name, views, carts, purchases, spent,
/// favourite category, last seen at 09:MM).
fn expected_profiles() -> Vec<Value> {
    let profile =
        |user: &str, name: Option<(&str, &str, &str)>, counts: (u64, u64, u64), spent: f64, fav: &str, minute: i64| {
            let (name, city, segment) = match name {
                Some((n, c, s)) => (json!(n), json!(c), json!(s)),
                None => (Value::Null, Value::Null, Value::Null),
            };
            json!({
                "user_id": user, "name": name, "city": city, "segment": segment,
                "views": counts.0, "carts": counts.1, "purchases": counts.2, "spent": spent,
                "favourite_category": fav,
                // 2026-11-25T09:MM:00Z in epoch ms
                "last_seen": 1_795_597_200_000_i64 + minute * 60_000,
            })
        };
    let ana = Some(("Ana", "Lisbon", "premium"));
    let ben = Some(("Ben", "Berlin", "standard"));
    let chen = Some(("Chen", "Singapore", "new"));
    vec![
        // u1: view books, cart books, purchase books 24.90.
        profile("u1", ana, (1, 0, 0), 0.0, "books", 0),
        profile("u1", ana, (1, 1, 0), 0.0, "books", 2),
        profile("u1", ana, (1, 1, 1), 24.9, "books", 4),
        // u2: view garden; the purchase without a price is a dead letter; view toys (a tie:
        // garden first by name); purchase toys 15.00 (toys 2, garden 1).
        profile("u2", ben, (1, 0, 0), 0.0, "garden", 1),
        profile("u2", ben, (2, 0, 0), 0.0, "garden", 7),
        profile("u2", ben, (2, 0, 1), 15.0, "toys", 8),
        // u3: view toys; a malformed line (a dead letter at the source); view toys.
        profile("u3", chen, (1, 0, 0), 0.0, "toys", 3),
        profile("u3", chen, (2, 0, 0), 0.0, "toys", 9),
        // u9 is not in users.jsonl: a profile without base information.
        profile("u9", None, (1, 0, 0), 0.0, "books", 6),
    ]
}

/// Rows grouped by user, each user's in the order they came (instances interleave users).
fn by_user(mut rows: Vec<Value>) -> Vec<Value> {
    rows.sort_by_key(|r| r["user_id"].as_str().unwrap_or_default().to_string());
    rows
}

#[test]
fn the_user_profile_example_enriches_every_event_with_the_users_data() {
    let out = run_job(&common::repo_root().join("examples/user-profile/job.yaml"));
    out.assert_ok();
    let rows: Vec<Value> = out.stdout.lines().map(|l| serde_json::from_str(l).expect("JSON profile")).collect();
    assert_eq!(by_user(rows), expected_profiles());
    let s = out.summary();
    assert_eq!((s.records_in, s.broadcast, s.records_out, s.dead_letters), (10, 3, 9, 2));
}

#[test]
fn the_builder_api_connects_a_broadcast_stream_like_the_job_file() {
    use weir::env::StreamEnvironment;

    let example = common::repo_root().join("examples/user-profile");
    let env = StreamEnvironment::new();
    env.set_parallelism(2);
    env.set_cache_dir(common::shared_cache_dir());
    env.set_dead_letter(weir::connectors::SinkSpec::discard());
    let profile = env.load_plugin(common::plugin("user-profile-rust")).unwrap();
    let users = env.read_json_lines(example.join("users.jsonl")).broadcast().preload();
    let collected = env
        .read_json_lines(example.join("events.jsonl"))
        .assign_timestamps("ts", Duration::ZERO)
        .key_by("user_id")
        .connect(users)
        .process(profile.function("user_profile"))
        .collect();
    let report = env.execute("profiles").unwrap();
    assert_eq!((report.records_in, report.broadcast_in, report.dead_letters), (10, 3, 2));
    let rows = collected.lock().unwrap().iter().map(|v| weir::record::json_of(v)).collect();
    assert_eq!(by_user(rows), expected_profiles());
}

#[test]
fn a_broadcast_stream_must_come_straight_from_its_source() {
    use weir::env::StreamEnvironment;

    let env = StreamEnvironment::new();
    env.set_cache_dir(common::shared_cache_dir());
    let profile = env.load_plugin(common::plugin("user-profile-rust")).unwrap();
    let upper = env.load_plugin(common::plugin("upper-rust")).unwrap();
    let users = env.from_elements(["u1"]).map(upper.function("upper")).broadcast();
    env.from_elements(["e"]).key_by("user_id").connect(users).process(profile.function("user_profile")).discard();
    let err = env.execute("bad").unwrap_err().to_string();
    assert!(err.contains("a broadcast stream takes its records straight from its source"), "{err}");
}

#[test]
fn the_python_fraud_detector_takes_the_same_broadcast_rules_as_the_rust_one() {
    // examples/fraud-alerts with plugins/process-python's `fraud_detector`: the same rules
    // on the broadcast input give the same three alerts and the same two dead letters.
    let example = common::repo_root().join("examples/fraud-alerts");
    let dir = temp_dir();
    let job = std::fs::read_to_string(example.join("job.yaml"))
        .expect("the example's job file")
        .replace("../../plugins/process-rust/process-rust.wasm", &plugin_yaml("process-python"))
        .replace(
            "path: transactions.jsonl",
            &format!("path: {}", common::yaml_path(&example.join("transactions.jsonl"))),
        )
        .replace("path: rules.jsonl", &format!("path: {}", common::yaml_path(&example.join("rules.jsonl"))));
    let python = run_job(&write_job(dir.path(), &job));
    python.assert_ok();
    let rust = run_job(&example.join("job.yaml"));
    rust.assert_ok();
    let alerts =
        |out: &str| -> Vec<Value> { out.lines().map(|l| serde_json::from_str(l).expect("JSON alert")).collect() };
    assert_eq!(alerts(&python.stdout), alerts(&rust.stdout));
    assert_eq!(alerts(&python.stdout).len(), 3);
    let s = python.summary();
    assert_eq!((s.records_in, s.broadcast, s.records_out, s.dead_letters), (12, 3, 3, 2));
}
