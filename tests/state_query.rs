//! `weir state get JOB OPERATOR KEY`: reading what a job keeps for one key, from outside.

mod common;

use std::path::{Path, PathBuf};

use common::{run, run_job, temp_dir, weir, write_job};
use serde_json::{Value, json};

/// examples/user-profile with its state kept in `dir`/state and its output discarded.
fn profile_job(dir: &Path) -> PathBuf {
    let example = common::repo_root().join("examples/user-profile");
    let job = std::fs::read_to_string(example.join("job.yaml")).expect("the example's job file");
    let job = job
        .replace("../../plugins/user-profile-rust/user-profile-rust.wasm", &common::plugin_yaml("user-profile-rust"))
        .replace("path: events.jsonl", &format!("path: {}", common::yaml_path(&example.join("events.jsonl"))))
        .replace("path: users.jsonl", &format!("path: {}", common::yaml_path(&example.join("users.jsonl"))))
        .replace("sink:\n  connector: print", "sink:\n  connector: blackhole")
        .replace("path: out/dead.jsonl", "path: dead.jsonl");
    write_job(dir, &format!("{job}state_dir: state\n"))
}

fn state_get(job: &Path, operator: &str, key: &str) -> Value {
    let out = run(weir().args(["state", "get"]).arg(job).args([operator, key]));
    out.assert_ok();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", out.stdout))
}

#[test]
fn state_get_shows_a_keys_value_map_and_broadcast_state() {
    // After the example: u1 viewed, carted and bought books (24.90) at 09:00, 09:02, 09:04.
    let dir = temp_dir();
    let job = profile_job(dir.path());
    run_job(&job).assert_ok();
    let got = state_get(&job, "user_profile", "u1");
    assert_eq!(got["operator"], "process[2] user-profile.user_profile");
    assert_eq!(got["key"], "u1");
    assert_eq!(
        got["state"]["activity"],
        json!({"views": 1, "carts": 1, "purchases": 1, "spent": 24.9, "last_seen": 1_795_597_440_000_i64})
    );
    assert_eq!(got["state"]["categories"], json!({"books": 3}));
    let users = &got["state"]["users"];
    assert_eq!(users.as_object().map(|u| u.len()), Some(3), "{users}");
    assert_eq!(users["u2"]["city"], "Berlin");
    assert_eq!(got["timers"], json!([]));
    // A key the job never saw: no values, the same broadcast state.
    let nobody = state_get(&job, "user_profile", "\"nobody\"");
    assert_eq!((&nobody["state"]["activity"], &nobody["state"]["categories"]), (&Value::Null, &json!({})));
    assert_eq!(nobody["state"]["users"], *users);
}

#[test]
fn state_get_reads_while_the_job_holds_the_database() {
    // A running job holds sled's lock on its state; the query reads a copy instead.
    let dir = temp_dir();
    let job = profile_job(dir.path());
    run_job(&job).assert_ok();
    let held = weir::state::StateStore::open(&dir.path().join("state"), weir::state::StateConfig::default())
        .expect("open the job's state");
    let got = state_get(&job, "user_profile", "u3");
    assert_eq!(got["state"]["activity"]["views"], 2);
    drop(held);
}

#[test]
fn state_get_says_what_is_wrong() {
    let dir = temp_dir();
    let job = profile_job(dir.path());
    let fails =
        |args: &[&str], job: &Path| run(weir().args(["state", "get"]).arg(job).args(args)).assert_failed().to_string();
    let err = fails(&["user_profile", "u1"], &job);
    assert!(err.contains("has no state yet") && err.contains("run the job first"), "{err}");
    run_job(&job).assert_ok();
    let err = fails(&["nope", "u1"], &job);
    assert!(err.contains("no operator of job `User profiles` matches `nope`; operators with state: process[2] user-profile.user_profile"), "{err}");
    let stateless =
        write_job(dir.path(), "name: s\nsource: {connector: collection, elements: [1]}\nsink: {connector: print}\n");
    let err = fails(&["x", "1"], &stateless);
    assert!(err.contains("keeps no state between runs: set `state_dir`"), "{err}");
}

#[test]
fn state_get_shows_a_keys_pending_timers() {
    // Without event time the fraud detector's minute is processing time: after a small
    // transaction the flag is set and a processing-time timer a minute away is pending when
    // the bounded job ends (it stays in state for the next run).
    let dir = temp_dir();
    common::write_file(dir.path(), "t.jsonl", "{\"account\":\"a1\",\"amount\":0.25}\n");
    let job = write_job(
        dir.path(),
        &format!(
            "name: fraud\nplugins:\n  fraud: {}\nsource: {{connector: file, path: t.jsonl, format: json}}\n\
             pipeline:\n  - key_by: account\n  - process: fraud.fraud_detector\n\
             sink: {{connector: blackhole}}\nstate_dir: state\n",
            common::plugin_yaml("process-rust")
        ),
    );
    let before = weir_now_ms();
    run_job(&job).assert_ok();
    let got = state_get(&job, "fraud_detector", "a1");
    assert_eq!(got["state"]["flag"], 0.25);
    let at = got["state"]["timer"]["at"].as_i64().expect("the pending timer's time");
    assert!((before + 60_000..before + 120_000).contains(&at), "timer at {at}, job started at {before}");
    assert_eq!(got["timers"], json!([{"domain": "processing-time", "at": at}]));
}

fn weir_now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970");
    i64::try_from(now.as_millis()).expect("ms fit in i64")
}
