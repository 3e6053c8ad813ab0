//! Hot deploy through the public API: a new plugin version swapped into a running job, with
//! every record handled exactly once by one version, and keyed state kept.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use weir::connectors::{DatagenSpec, FieldGenerator, SinkSpec};
use weir::deploy::{DeployError, Outcome};
use weir::env::StreamEnvironment;

fn env() -> StreamEnvironment {
    let env = StreamEnvironment::new();
    env.set_cache_dir(common::shared_cache_dir());
    env.set_batch_size(50);
    env.set_parallelism(2);
    env.set_dead_letter(SinkSpec::discard());
    // Compile every version into the component cache now: a deploy then takes milliseconds,
    // as in a job whose new version was built and checked before (a cold compile of a new
    // version under load can outlast the short streams these tests run).
    for version in 1..=3 {
        env.load_plugin(common::plugin(&format!("versioned-v{version}-rust"))).expect("a built plugin (just plugins)");
    }
    env
}

fn component(version: u32) -> (Vec<u8>, std::path::PathBuf) {
    let path = common::plugin(&format!("versioned-v{version}-rust"));
    (std::fs::read(&path).expect("a built plugin (just plugins)"), path)
}

/// `rows` records `{"seq": 0..rows, "k": 0..=9}` at `rate` per second.
fn sequence(rows: u64, rate: u64) -> DatagenSpec {
    DatagenSpec::new()
        .field("seq", FieldGenerator::Sequence { start: 0, end: rows as i64 - 1 })
        .field("k", FieldGenerator::RandomInt { min: 0, max: 9 })
        .number_of_rows(rows)
        .rows_per_second(rate)
        .seed(11)
}

/// Waits until the sink has `n` records: deploys are paced by the job's progress, not by the
/// clock, so each one lands mid-stream however fast the machine is.
fn wait_for_output(collected: &weir::connectors::Collected, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while collected.lock().unwrap().len() < n {
        assert!(std::time::Instant::now() < deadline, "the job did not reach {n} output records");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until the history of the job's first step satisfies `done` (the job's own
/// decisions, such as an automatic rollback, take as long as its records do).
fn wait_for_history(
    job: &weir::env::RunningJob,
    done: impl Fn(&[weir::deploy::VersionRecord]) -> bool,
) -> Vec<weir::deploy::VersionRecord> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let history = job.versions().remove(0).1;
        if done(&history) {
            return history;
        }
        assert!(std::time::Instant::now() < deadline, "the history never got there: {history:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_map_swapped_ten_times_back_and_forth_handles_every_record_once() {
    // 12 000 records at 8 000/s; v2 and v1 deployed alternately each time 1 000 more
    // records have come out (more than the channels hold, so records of each version come
    // out before the next deploy). Output order is input order (one chain at parallelism 1),
    // so the versions form runs: each deploy starts a new one, alternating v1, v2, v1...
    let env = env();
    let v1 = env.load_plugin(common::plugin("versioned-v1-rust")).unwrap();
    let rows = 12_000;
    let collected = env.from_datagen(sequence(rows, 8_000)).map(v1.function("tag")).collect();
    let job = env.start("swap back and forth").unwrap();
    for i in 0..10 {
        wait_for_output(&collected, 1_000 * (i as usize + 1));
        let (bytes, path) = component(if i % 2 == 0 { 2 } else { 1 });
        let record = job.deploy("tag", &bytes, &path).expect("deploy");
        assert_eq!(record.generation, i + 2);
    }
    let steps = job.versions();
    let report = job.wait().expect("the job ends");
    assert_eq!((report.records_in, report.records_out, report.dead_letters), (rows, rows, 0));

    let rows_out: Vec<Value> = collected.lock().unwrap().iter().map(|v| weir::record::json_of(v)).collect();
    let seqs: Vec<u64> = rows_out.iter().map(|r| r["seq"].as_u64().expect("seq")).collect();
    assert_eq!(seqs, (0..rows).collect::<Vec<_>>(), "every record once, in order");
    let version = |r: &Value| match (r.get("v1"), r.get("version")) {
        (Some(Value::Bool(true)), None) => 1,
        (None, Some(v)) if v == 2 => 2,
        _ => panic!("neither v1 nor v2 format: {r}"),
    };
    let mut runs: Vec<(u64, u32)> = Vec::new(); // (first seq, version)
    for r in &rows_out {
        let v = version(r);
        if runs.last().is_none_or(|(_, last)| *last != v) {
            runs.push((r["seq"].as_u64().unwrap(), v));
        }
    }
    let versions: Vec<u32> = runs.iter().map(|(_, v)| *v).collect();
    let alternating: Vec<u32> = (0..versions.len()).map(|i| if i % 2 == 0 { 1 } else { 2 }).collect();
    assert_eq!(versions, alternating, "runs start with v1 and alternate: {runs:?}");
    assert_eq!(runs.len(), 11, "each of the 10 deploys starts a run: {runs:?}");
    for pair in runs.windows(2) {
        assert!(pair[1].0 > pair[0].0 + 100, "switch points are ordered and apart: {runs:?}");
    }

    let (step, history) = &steps[0];
    assert!(step.starts_with("map[0] versioned@1.0.0.tag"), "{step}");
    assert_eq!(history.len(), 11);
    assert_eq!(history.iter().filter(|r| r.outcome == Outcome::Active).count(), 1);
    assert_eq!(history.last().unwrap().plugin, "versioned@1.0.0");
}

#[test]
fn a_counting_process_function_upgraded_mid_stream_keeps_its_counts() {
    // Keyed by `k` (ten keys) over two instances. v2 of `count` is deployed mid-stream: each
    // key's counts go on 1, 2, 3, ... across the switch (state is the host's), each key
    // switches from v1 to v2 once, and the counts add up to the records.
    let env = env();
    let v1 = env.load_plugin(common::plugin("versioned-v1-rust")).unwrap();
    let rows = 8_000;
    let collected = env.from_datagen(sequence(rows, 8_000)).key_by("k").process(v1.function("count")).collect();
    let job = env.start("stateful upgrade").unwrap();
    wait_for_output(&collected, 2_000);
    let (bytes, path) = component(2);
    let record = job.deploy("count", &bytes, &path).expect("deploy v2");
    assert_eq!((record.generation, record.plugin.as_str()), (2, "versioned@2.0.0"));
    job.wait().expect("the job ends");

    let mut per_key: BTreeMap<i64, Vec<(u64, u64)>> = BTreeMap::new();
    for v in collected.lock().unwrap().iter() {
        let r = weir::record::json_of(v);
        per_key
            .entry(r["key"].as_i64().unwrap())
            .or_default()
            .push((r["count"].as_u64().unwrap(), r["v"].as_u64().unwrap()));
    }
    let total: usize = per_key.values().map(Vec::len).sum();
    assert_eq!(total as u64, rows);
    let mut switched = 0;
    for (key, counts) in &per_key {
        let ns: Vec<u64> = counts.iter().map(|(n, _)| *n).collect();
        assert_eq!(ns, (1..=counts.len() as u64).collect::<Vec<_>>(), "key {key} counts on across the deploy");
        let vs: Vec<u64> = counts.iter().map(|(_, v)| *v).collect();
        let first_v2 = vs.iter().position(|v| *v == 2).unwrap_or(vs.len());
        assert!(vs[..first_v2].iter().all(|v| *v == 1) && vs[first_v2..].iter().all(|v| *v == 2), "key {key}: {vs:?}");
        switched += usize::from(first_v2 > 0 && first_v2 < vs.len());
    }
    assert_eq!(switched, per_key.len(), "every key saw both versions");
}

#[test]
fn a_version_that_does_not_fit_is_refused_and_the_job_runs_on() {
    // v3's `count` declares state `count` as a String where v1 stored u64s; v3's `tag` is a
    // map that v1's process step cannot run. Both are refused, noted in the history, and
    // every record is counted by v1.
    let env = env();
    let v1 = env.load_plugin(common::plugin("versioned-v1-rust")).unwrap();
    let collected = env.from_datagen(sequence(2_000, 4_000)).key_by("k").process(v1.function("count")).collect();
    let job = env.start("refused").unwrap();
    let (bytes, path) = component(3);
    let err = job.deploy("count", &bytes, &path).unwrap_err();
    assert!(matches!(err, DeployError::Incompatible { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("state `count` holds `u64`") && text.contains("give the state a new name"), "{text}");
    let err = job.deploy("count", b"not wasm", std::path::Path::new("upload")).unwrap_err();
    assert!(err.to_string().contains("cannot be loaded"), "{err}");
    let err = job.deploy("nope", &bytes, &path).unwrap_err();
    assert!(err.to_string().contains("no step `nope`"), "{err}");
    let err = job.rollback("count").unwrap_err();
    assert!(err.to_string().contains("no earlier version"), "{err}");
    let history = job.versions().remove(0).1;
    assert_eq!(history.len(), 2);
    assert!(matches!(&history[1].outcome, Outcome::Rejected(r) if r.contains("state `count`")), "{history:?}");
    job.wait().expect("the job ends");
    let rows = collected.lock().unwrap();
    assert_eq!(rows.len(), 2_000);
    assert!(rows.iter().all(|v| weir::record::json_of(v)["v"] == 1));
}

#[test]
fn a_rollback_runs_the_previous_version_again() {
    let env = env();
    let v1 = env.load_plugin(common::plugin("versioned-v1-rust")).unwrap();
    let collected = env.from_datagen(sequence(6_000, 8_000)).map(v1.function("tag")).uid("tagger").collect();
    let job = env.start("rollback").unwrap();
    wait_for_output(&collected, 1_000);
    let (bytes, path) = component(2);
    // A step is found by its uid as well as by (a part of) its name.
    job.deploy("tagger", &bytes, &path).unwrap();
    wait_for_output(&collected, 3_000);
    let back = job.rollback("tag").unwrap();
    assert_eq!((back.generation, back.plugin.as_str()), (3, "versioned@1.0.0"));
    let history = job.versions().remove(0).1;
    let outcomes: Vec<&Outcome> = history.iter().map(|r| &r.outcome).collect();
    assert_eq!(outcomes, [&Outcome::Replaced, &Outcome::RolledBack, &Outcome::Active]);
    // The deployed version is kept by its hash, to be found again from the history.
    let kept = common::shared_cache_dir().join("components").join(format!("{}.wasm", history[1].sha256));
    assert_eq!(std::fs::read(&kept).expect("the deployed component is kept"), bytes);
    job.wait().unwrap();
    let rows: Vec<Value> = collected.lock().unwrap().iter().map(|v| weir::record::json_of(v)).collect();
    assert_eq!(rows.len(), 6_000);
    assert_eq!(rows.last().unwrap()["v1"], true, "the last records ran on v1 again");
    assert!(rows.iter().any(|r| r["version"] == 2));
}

#[test]
fn a_version_that_fails_its_records_is_rolled_back_by_itself_and_they_run_again() {
    // v3's `tag` traps on every record. It is on probation after the deploy: once more than
    // half of its first records have failed, the step goes back to v1 by itself, and the
    // records v3 failed run again on v1. Every record comes out exactly once, none is a dead
    // letter, and the history says why v3 went.
    let env = env();
    let dead = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    env.set_dead_letter(SinkSpec::collect(dead.clone()));
    let v1 = env.load_plugin(common::plugin("versioned-v1-rust")).unwrap();
    let rows = 6_000;
    let collected = env.from_datagen(sequence(rows, 8_000)).map(v1.function("tag")).collect();
    let job = env.start("auto rollback").unwrap();
    wait_for_output(&collected, 1_000);
    let (bytes, path) = component(3);
    assert_eq!(job.deploy("tag", &bytes, &path).unwrap().plugin, "versioned@3.0.0");
    let report_history = wait_for_history(&job, |h| h.len() == 3);
    let report = job.wait().unwrap();
    assert_eq!((report.records_out, report.dead_letters), (rows, 0), "{:?}", dead.lock().unwrap().len());
    let mut seqs: Vec<u64> =
        collected.lock().unwrap().iter().map(|v| weir::record::json_of(v)["seq"].as_u64().unwrap()).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..rows).collect::<Vec<_>>(), "every record once");
    let outcomes: Vec<&Outcome> = report_history.iter().map(|r| &r.outcome).collect();
    assert_eq!(outcomes.len(), 3, "{report_history:?}");
    assert!(
        matches!(outcomes[1], Outcome::Failed(why) if why.contains("rolled back by itself") && why.contains("records failed")),
        "{report_history:?}"
    );
    assert_eq!((report_history[2].plugin.as_str(), outcomes[2]), ("versioned@1.0.0", &Outcome::Active));
}

/// The version of each output record of `tag`, in output order.
fn tag_versions(collected: &weir::connectors::Collected) -> Vec<(u64, u32)> {
    collected
        .lock()
        .unwrap()
        .iter()
        .map(|v| {
            let r = weir::record::json_of(v);
            let version =
                if r.get("v1") == Some(&Value::Bool(true)) { 1 } else { r["version"].as_u64().unwrap() as u32 };
            (r["seq"].as_u64().unwrap(), version)
        })
        .collect()
}

#[test]
fn a_canary_runs_on_a_share_of_the_batches_then_replaces_the_current_version() {
    // v2 as a canary on a quarter of the batches: while it proves itself (1 000 records)
    // v1 and v2 records interleave; then v2 replaces v1 and every later record is v2.
    let env = env();
    let v1 = env.load_plugin(common::plugin("versioned-v1-rust")).unwrap();
    let rows = 12_000;
    let collected = env.from_datagen(sequence(rows, 8_000)).map(v1.function("tag")).collect();
    let job = env.start("canary passes").unwrap();
    wait_for_output(&collected, 1_000);
    let (bytes, path) = component(2);
    let record = job.deploy_canary("tag", &bytes, &path, 0.25).unwrap();
    assert_eq!((record.generation, &record.outcome), (0, &Outcome::Canary));
    let err = job.deploy_canary("tag", &bytes, &path, 0.25).unwrap_err();
    assert!(err.to_string().contains("a canary is already running"), "{err}");
    let history = wait_for_history(&job, |h| h[1].outcome == Outcome::Active);
    job.wait().unwrap();

    let outcomes: Vec<(u64, &Outcome)> = history.iter().map(|r| (r.generation, &r.outcome)).collect();
    assert_eq!(outcomes, [(1, &Outcome::Replaced), (2, &Outcome::Active)], "{history:?}");
    let versions = tag_versions(&collected);
    let mut seqs: Vec<u64> = versions.iter().map(|(s, _)| *s).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..rows).collect::<Vec<_>>(), "every record once");
    let switches = versions.windows(2).filter(|w| w[0].1 != w[1].1).count();
    assert!(switches > 4, "canary batches interleave with the current version's ({switches} switches)");
    let last_v1 = versions.iter().rposition(|(_, v)| *v == 1).unwrap();
    assert!(versions[last_v1 + 1..].iter().all(|(_, v)| *v == 2));
    assert!(versions.len() - last_v1 > 2_000, "after the canary passed only v2 ran");
    let canary_share = versions[..last_v1].iter().filter(|(_, v)| *v == 2).count();
    assert!(
        (900..=1_300).contains(&canary_share),
        "the canary ran on about its 1 000 records, then took over: {canary_share}"
    );
}

#[test]
fn a_failing_canary_is_dropped_and_its_records_run_on_the_current_version() {
    // v3 traps on every record: as a canary it fails its first batches and is dropped; the
    // records it failed run again on v1, so all come out in v1's format, none dead.
    let env = env();
    let v1 = env.load_plugin(common::plugin("versioned-v1-rust")).unwrap();
    let rows = 6_000;
    let collected = env.from_datagen(sequence(rows, 8_000)).map(v1.function("tag")).collect();
    let job = env.start("canary fails").unwrap();
    wait_for_output(&collected, 1_000);
    let (bytes, path) = component(3);
    job.deploy_canary("tag", &bytes, &path, 0.5).unwrap();
    let history = wait_for_history(&job, |h| matches!(h[1].outcome, Outcome::Failed(_)));
    let report = job.wait().unwrap();
    assert_eq!((report.records_out, report.dead_letters), (rows, 0));
    assert_eq!(history.len(), 2);
    assert!(matches!(&history[1].outcome, Outcome::Failed(why) if why.contains("canary dropped")), "{history:?}");
    assert_eq!((history[0].generation, &history[0].outcome), (1, &Outcome::Active));
    let versions = tag_versions(&collected);
    assert!(versions.iter().all(|(_, v)| *v == 1));
    let mut seqs: Vec<u64> = versions.iter().map(|(s, _)| *s).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..rows).collect::<Vec<_>>(), "every record once");
}

#[test]
fn a_canary_needs_a_stateless_step_and_a_share() {
    let env = env();
    let v1 = env.load_plugin(common::plugin("versioned-v1-rust")).unwrap();
    env.from_datagen(sequence(100, 1_000)).key_by("k").process(v1.function("count")).discard();
    let job = env.start("canary refused").unwrap();
    let (bytes, path) = component(2);
    let err = job.deploy_canary("count", &bytes, &path, 0.1).unwrap_err().to_string();
    assert!(err.contains("a canary runs on map, filter and flat-map steps only"), "{err}");
    job.wait().unwrap();
    let env = self::env();
    env.from_datagen(sequence(100, 1_000)).map(v1.function("tag")).discard();
    let job = env.start("canary share").unwrap();
    let err = job.deploy_canary("tag", &bytes, &path, 0.0).unwrap_err().to_string();
    assert!(err.contains("above 0 and at most 1"), "{err}");
    job.wait().unwrap();
}

#[test]
fn a_rollback_policy_that_tolerates_every_failure_keeps_the_new_version() {
    // With max_failure_ratio 1.0 no share of failures is "more than allowed": v3 stays, its
    // probation ends after 200 records, and the records it failed are dead letters.
    let env = env();
    env.set_rollback_policy(weir::deploy::RollbackPolicy {
        probation_records: 200,
        max_failure_ratio: 1.0,
        ..Default::default()
    });
    let dead = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    env.set_dead_letter(SinkSpec::collect(dead.clone()));
    let v1 = env.load_plugin(common::plugin("versioned-v1-rust")).unwrap();
    let rows = 3_000;
    let collected = env.from_datagen(sequence(rows, 8_000)).map(v1.function("tag")).collect();
    let job = env.start("tolerant").unwrap();
    wait_for_output(&collected, 1_000);
    let (bytes, path) = component(3);
    job.deploy("tag", &bytes, &path).unwrap();
    let handle = job.handle();
    let report = job.wait().unwrap();
    let history = handle.versions().remove(0).1;
    assert_eq!(
        history.last().map(|r| (&r.plugin, &r.outcome)),
        Some((&"versioned@3.0.0".to_string(), &Outcome::Active))
    );
    assert!(report.dead_letters > 0);
    assert_eq!(report.records_out + report.dead_letters, rows, "every record is an output or a dead letter");
    assert_eq!(dead.lock().unwrap().len() as u64, report.dead_letters);
}
