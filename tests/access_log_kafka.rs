//! examples/access-log-kafka as a user runs it: the sample access log loaded into a Kafka
//! topic (librdkafka's mock cluster, as `weir dev kafka --load` does), the table from the
//! example's schema.sql in a private PostgreSQL server, and `weir run` on the example's job
//! file with `KAFKA_BOOTSTRAP`, `DATABASE_URL` and `KAFKA_BOUNDED` set. The rows must be the
//! per-URL minute counts this test computes from the log itself; the line that is not an
//! access-log line must be in the dead-letter topic.

mod common;

use std::collections::BTreeMap;

use common::postgres::PgCluster;
use common::*;
use weir::connectors::kafka::dev::DevCluster;

/// (url path, "HH:MM") of an access-log line, or `None` for a line that is not one.
fn url_and_minute(line: &str) -> Option<(String, String)> {
    let time = line.split('[').nth(1)?.split(']').next()?; // 25/Nov/2026:10:00:05 +0000
    let minute = time.split(':').skip(1).take(2).collect::<Vec<_>>().join(":");
    let request = line.split('"').nth(1)?; // GET /cart?id=7 HTTP/1.1
    let url = request.split(' ').nth(1)?.split('?').next()?;
    (minute.len() == 5).then(|| (url.to_string(), minute))
}

#[test]
fn the_access_log_kafka_example_upserts_per_url_minute_counts_into_postgres() {
    let root = repo_root();
    let log = root.join("examples/access-log/access.log");
    let mut want: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut bad = 0;
    for line in read_file(&log).lines().filter(|l| !l.is_empty()) {
        match url_and_minute(line) {
            Some(k) => *want.entry(k).or_insert(0) += 1,
            None => bad += 1,
        }
    }
    assert_eq!(bad, 1, "the sample log has one line that is not an access-log line");

    let cluster = DevCluster::start(1).expect("mock cluster");
    cluster.create_topic("access-log", 2).unwrap();
    cluster.load_lines("access-log", 2, &log).unwrap();
    let pg = PgCluster::start(&[]);
    pg.psql(&read_file(&root.join("examples/access-log-kafka/schema.sql")));

    let state = temp_dir();
    let run = run(weir()
        .arg("run")
        .arg(root.join("examples/access-log-kafka/job.yaml"))
        .arg("--summary")
        .arg("--no-api")
        .env("KAFKA_BOOTSTRAP", cluster.bootstrap())
        .env("DATABASE_URL", pg.url())
        .env("KAFKA_BOUNDED", "latest-offset")
        .env("CHECKPOINT_DIR", state.path().join("checkpoints"))
        .current_dir(state.path()));
    run.assert_ok();
    assert_eq!(run.summary().dead_letters, 1);

    let rows = pg.rows(
        "SELECT key, to_char(to_timestamp(window_start / 1000) AT TIME ZONE 'UTC', 'HH24:MI'), count \
         FROM url_counts ORDER BY 1, 2",
    );
    let got: BTreeMap<(String, String), u64> = rows
        .iter()
        .map(|r| {
            let cols: Vec<&str> = r.split('|').collect();
            ((cols[0].to_string(), cols[1].to_string()), cols[2].parse().unwrap())
        })
        .collect();
    assert_eq!(got, want);
    let dead = cluster.fetch_all("access-log-dead").unwrap();
    assert_eq!(dead.len(), 1);
    let letter: serde_json::Value = serde_json::from_slice(&dead[0].value).unwrap();
    assert_eq!(letter["record"], "this line is not an access-log line", "{letter}");
    assert!(letter["error"].as_str().unwrap().contains("not an access-log line"), "{letter}");
}
