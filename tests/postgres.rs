//! The PostgreSQL sink against a real server (a private cluster per test, see
//! `common/postgres.rs`), run the way users run it: `weir run` on a job file.
//!
//! Upserts of windowed counts (a window that fires again updates its row), plain inserts
//! of every supported type, exactly-once into a table without a key across `kill -9` of
//! `weir run`, a record that does not fit the table, and the database going away and
//! coming back while the job runs.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::kill::kill_repeatedly;
use common::postgres::PgCluster;
use common::*;

/// The server settings of these tests: no durability across an OS crash (fsync), which
/// no test makes, but every commit written before it is acknowledged
/// (`synchronous_commit` stays on), since `pg_ctl stop -m immediate` is a server crash.
const FAST: &[&str] = &["fsync = off", "full_page_writes = off"];

fn url_counts(pg: &PgCluster) {
    pg.psql(
        "CREATE TABLE url_counts (key text NOT NULL, window_start timestamptz, window_end timestamptz NOT NULL, \
         count bigint, PRIMARY KEY (key, window_end))",
    );
}

fn sink(pg: &PgCluster, table: &str, extra: &str) -> String {
    format!("sink:\n  connector: postgres\n  url: {}\n  table: {table}\n{extra}", pg.url())
}

#[test]
fn windowed_counts_are_upserted_and_a_window_that_fires_again_updates_its_row() {
    let pg = PgCluster::start(FAST);
    url_counts(&pg);
    let dir = temp_dir();
    write_file(dir.path(), "views.jsonl", URL_VIEWS);
    let job = write_job(
        dir.path(),
        &format!(
            "name: url-counts\nparallelism: 1\nbatch_size: 1\n\
             source: {{connector: file, path: views.jsonl, format: json}}\n\
             pipeline:\n  - assign_timestamps: {{field: ts, max_out_of_orderness: 2 s}}\n  - key_by: url\n  \
             - window: {{tumbling: 10 s, allowed_lateness: 5 s, aggregate: count}}\n{}",
            sink(&pg, "url_counts", "  key: [key, window_end]\n"),
        ),
    );
    let out = run_job(&job);
    let summary = out.assert_ok().summary();
    let rows = pg.rows(
        "SELECT key, (extract(epoch FROM window_start) * 1000)::bigint, (extract(epoch FROM window_end) * 1000)::bigint, \
         count FROM url_counts ORDER BY 3, 1",
    );
    // The late /a at 8000 is within the allowed lateness: [0, 10 s) fires again with 3.
    assert_eq!(rows, ["/a|0|10000|3", "/b|0|10000|1", "/a|10000|20000|1", "/b|20000|30000|1"], "{}", out.stderr);
    assert_eq!(summary.records_out, 5, "one more result than rows: the update of /a's first window");

    // A rolling count in large batches: a batch holds many updates of the same key, and
    // the table ends with the last of each.
    pg.psql("CREATE TABLE totals (key text PRIMARY KEY, count int)");
    let views: String = (0..3000).map(|i| format!("{{\"url\":\"/{}\"}}\n", ["a", "b", "c"][i % 3])).collect();
    write_file(dir.path(), "many.jsonl", views);
    let job = write_job(
        dir.path(),
        &format!(
            "name: totals\nbatch_size: 700\nsource: {{connector: file, path: many.jsonl, format: json}}\n\
             pipeline:\n  - key_by: url\n  - count\n{}",
            sink(&pg, "totals", "  key: key\n  batch_size: 200\n"),
        ),
    );
    assert_eq!(run_job(&job).assert_ok().summary().records_out, 3000);
    assert_eq!(pg.rows("SELECT key, count FROM totals ORDER BY key"), ["/a|1000", "/b|1000", "/c|1000"]);
}

#[test]
fn plain_inserts_convert_each_field_by_its_column_type() {
    let pg = PgCluster::start(FAST);
    pg.psql(
        "CREATE TABLE events (id int, name varchar(20), score double precision, price numeric(10,2), ok boolean, \
         at timestamptz, seen timestamp, tags jsonb, raw bytea, small smallint, ref uuid, note text DEFAULT 'none')",
    );
    let dir = temp_dir();
    write_file(
        dir.path(),
        "events.jsonl",
        r#"{"id":1,"name":"one","score":0.5,"price":12.5,"ok":true,"at":"2026-01-01T00:00:00Z","seen":0,"tags":{"a":[1,2]},"raw":"hi","small":7,"ref":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}
{"id":2,"name":"two","score":3,"price":"19.99","ok":false,"at":1767225600000,"tags":"x","note":"given"}
{"id":3,"name":null}
"#,
    );
    let job = write_job(
        dir.path(),
        &format!(
            "name: events\nsource: {{connector: file, path: events.jsonl, format: json}}\n{}",
            sink(&pg, "events", "  batch_size: 2\n")
        ),
    );
    assert_eq!(run_job(&job).assert_ok().summary().records_out, 3);
    let rows = pg.rows(
        "SET TIME ZONE 'UTC'; SELECT id, name, score, price, ok, at, seen, tags, raw, small, ref, note FROM events ORDER BY id",
    );
    assert_eq!(
        rows,
        [
            "1|one|0.5|12.50|t|2026-01-01 00:00:00+00|1970-01-01 00:00:00|{\"a\": [1, 2]}|\\x6869|7|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|none",
            "2|two|3|19.99|f|2026-01-01 00:00:00+00||\"x\"||||given",
            "3|||||||||||none",
        ]
    );
}

#[test]
fn a_record_that_does_not_fit_the_table_fails_the_job_naming_the_column_and_value() {
    let pg = PgCluster::start(FAST);
    pg.psql("CREATE TABLE url_counts (url text PRIMARY KEY, hits bigint)");
    let dir = temp_dir();
    let attempt = |records: &str, sink_extra: &str, extra: &str| {
        write_file(dir.path(), "in.jsonl", records);
        let job = write_job(
            dir.path(),
            &format!(
                "name: misfit\nsource: {{connector: file, path: in.jsonl, format: json}}\n{extra}{}",
                sink(&pg, "url_counts", sink_extra)
            ),
        );
        let started = Instant::now();
        let ran = run_job(&job);
        (ran.assert_failed().to_string(), started.elapsed())
    };
    let (err, _) = attempt("{\"url\":\"/a\",\"hits\":1}\n{\"url\":\"/b\",\"hits\":\"abc\"}\n", "", "");
    assert!(
        err.contains(
            "record field `hits` is text `abc` but column url_counts.hits is bigint; change the table or the pipeline"
        ),
        "{err}"
    );
    // A checkpointed job fails at once: restarting cannot fix a table.
    let (err, took) = attempt(
        "{\"url\":\"/a\",\"clicks\":1}\n",
        "",
        "checkpoints: {interval: 100 ms, dir: ckpt, restart_attempts: 3, restart_delay: 1 s}\n",
    );
    assert!(err.contains("record field `clicks` has no column in table url_counts (its columns: url, hits)"), "{err}");
    assert!(!err.contains("restarts") && took < Duration::from_secs(5), "no restarts: {took:?} {err}");
    let (err, _) = attempt("{\"url\":\"/a\"}\n", "  key: [path]\n", "");
    assert!(err.contains("the key column `path` is not a column of table url_counts"), "{err}");
    let (err, _) = attempt("{\"url\":\"/a\"}\n", "  key: [hits]\n", "");
    assert!(err.contains("needs a primary key or unique index on exactly those columns"), "{err}");
    let job = write_job(
        dir.path(),
        &format!("name: missing\nsource: {{connector: collection, elements: [1]}}\n{}", sink(&pg, "nowhere", "")),
    );
    let err = run_job(&job).assert_failed().to_string();
    assert!(err.contains("table `nowhere` does not exist in the database; create it first"), "{err}");
    assert_eq!(pg.rows("SELECT count(*) FROM url_counts"), ["0"], "the first run's batch failed as a whole");
}

/// Rows the datagen source makes for the exactly-once tests, and how fast.
const ROWS: u64 = 6_000;
const RATE: u64 = 2_000;

fn events_table(pg: &PgCluster, key: &str) {
    pg.psql(&format!("CREATE TABLE clicks (seq bigint{key}, \"user\" int, ts timestamptz)"));
}

/// A job writing `ROWS` datagen rows into `clicks`, `RATE` a second, checkpointed.
fn clicks_job(dir: &Path, pg: &PgCluster, checkpoints: &str, sink_extra: &str) -> PathBuf {
    write_job(
        dir,
        &format!(
            "name: clicks\nparallelism: 2\nbatch_size: 50\nsource:\n  connector: datagen\n  number-of-rows: {ROWS}\n  \
             rows-per-second: {RATE}\n  seed: 7\n  fields:\n    seq: {{kind: sequence, start: 0}}\n    \
             user: {{kind: random, min: 1, max: 50}}\n    \
             ts: {{kind: event-time, start: 2026-01-01T00:00:00Z, step: 5 ms}}\n{checkpoints}{}",
            sink(pg, "clicks", sink_extra)
        ),
    )
}

/// Every row once: as many rows as sequence numbers, and all of them.
fn assert_exactly_once(pg: &PgCluster, what: &str) {
    let counts = pg.rows("SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM clicks");
    assert_eq!(counts, [format!("{ROWS}|{ROWS}|0|{}", ROWS - 1)], "rows, distinct, min, max {what}");
}

#[test]
fn killed_with_sigkill_again_and_again_every_row_lands_exactly_once() {
    let pg = PgCluster::start(FAST);
    events_table(&pg, "");
    let dir = temp_dir();
    let job = clicks_job(dir.path(), &pg, "checkpoints: {interval: 100 ms, dir: ckpt, restart_attempts: 0}\n", "");
    let kills: usize = std::env::var("WEIR_PG_KILLS").ok().and_then(|k| k.parse().ok()).unwrap_or(6);
    let seed = std::env::var("WEIR_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261204);
    let landed = kill_repeatedly(dir.path(), &job, kills, seed);
    assert_eq!(landed, kills, "every kill hit the running job (seed {seed}); slow the source");
    let committed: u64 =
        pg.psql("SELECT checkpoint FROM weir_sink_checkpoints WHERE job = 'clicks'").trim().parse().unwrap();
    assert!(committed > 3, "the killed runs committed checkpoints: {committed}");
    let rows: u64 = pg.psql("SELECT count(*) FROM clicks").trim().parse().unwrap();
    assert!(rows > 0 && rows < ROWS, "killed before the end: {rows}");
    let last = run_job(&job);
    let summary = last.assert_ok().summary();
    assert!(summary.records_in < ROWS, "the last run resumed instead of starting over: {summary:?}");
    assert_exactly_once(&pg, &format!("after {kills} kills"));
}

/// Run `job` (named `clicks`) and stop the server for 1.5 s once a fifth of the rows are
/// in `clicks`; the sink's health in the metrics goes down meanwhile. The run, which must
/// succeed.
fn run_through_an_outage(pg: &PgCluster, job: &Path) -> Run {
    let run_dir = job.parent().expect("the job's folder").join("run");
    let mut child = weir()
        .env("WEIR_RUN_DIR", &run_dir)
        .arg("run")
        .arg(job)
        .arg("--summary")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir starts");
    let mut pipe = child.stderr.take().expect("piped stderr");
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    let health = |up: u8| format!("weir_connector_up{{job=\"clicks\",connector=\"postgres sink\"}} {up}");
    let started = Instant::now();
    while pg.psql("SELECT count(*) FROM clicks").trim().parse::<u64>().unwrap_or(0) < ROWS / 5
        && started.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = metrics(&run_dir, "clicks").unwrap_or_default();
    assert!(before.contains(&health(1)), "the sink is up in the metrics:\n{before}");
    pg.stop();
    let stopped = Instant::now();
    let mut seen_down = false;
    while !seen_down && stopped.elapsed() < Duration::from_millis(1500) {
        seen_down = metrics(&run_dir, "clicks").is_some_and(|m| m.contains(&health(0)));
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(stopped.elapsed()));
    pg.start_again();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        match child.try_wait().expect("wait") {
            Some(status) => break status,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            None => {
                let _ = child.kill();
                panic!("the job did not finish within 60 s of the outage");
            }
        }
    };
    let ran = Run { code: status.code(), stdout: String::new(), stderr: stderr.join().unwrap_or_default() };
    ran.assert_ok();
    assert!(seen_down, "the metrics showed the sink down during the outage:\n{}", ran.stderr);
    ran
}

#[test]
fn the_database_going_away_and_coming_back_loses_no_row() {
    let pg = PgCluster::start(FAST);
    events_table(&pg, "");
    let dir = temp_dir();
    // Exactly-once: the failed transaction is rolled back, the job restarts from its checkpoint.
    let job = clicks_job(
        dir.path(),
        &pg,
        "checkpoints: {interval: 100 ms, dir: ckpt, restart_attempts: 5, restart_delay: 200 ms}\n",
        "",
    );
    let ran = run_through_an_outage(&pg, &job);
    assert!(ran.stderr.contains("restarting from its latest checkpoint"), "the job restarted:\n{}", ran.stderr);
    assert_exactly_once(&pg, "with checkpoints, across the outage");

    // Without checkpoints, at-least-once: the sink reconnects and writes the batch again;
    // an upsert key makes that exact.
    pg.psql("DROP TABLE clicks");
    events_table(&pg, " PRIMARY KEY");
    let dir = temp_dir();
    let job = clicks_job(dir.path(), &pg, "", "  key: [seq]\n");
    let ran = run_through_an_outage(&pg, &job);
    assert!(ran.stderr.contains("retrying"), "the sink retried:\n{}", ran.stderr);
    assert_exactly_once(&pg, "without checkpoints, upserted, across the outage");
}
