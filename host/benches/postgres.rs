//! The PostgreSQL sink's throughput: rows/s into a private PostgreSQL server (started here
//! as the tests start theirs, `tests/common/postgres.rs`), with the server's default
//! durability settings. One JSON document on stdout, a short table on stderr.
//!
//!     cargo bench --workspace --bench postgres                   (or `just bench`)
//!     WEIR_BENCH_EVENTS=1000000 cargo bench --workspace --bench postgres
//!
//! `WEIR_BENCH_EVENTS` rows (default 200 k) of `{seq, user, value, ts}` in batches of 1 000
//! records, written through the sink as a job's sink task writes them, `batch_size: 500`:
//! - `insert`: plain INSERTs, autocommit (a job without checkpoints);
//! - `upsert_new`: the same rows upserted on `seq` into an empty table;
//! - `upsert_update`: the same rows again, so every row conflicts and is updated;
//! - `exactly_once`: plain INSERTs in one transaction per checkpoint, a checkpoint every
//!   50 000 rows (barrier, then the commit with the marker, as the coordinator does);
//! - `copy_baseline`: the same rows with `COPY ... FROM STDIN` on the `postgres` crate
//!   directly, the fastest way into a table: the sink's figures are also given as a ratio
//!   of it.
//!
//! Checked: every mode leaves exactly the rows written.

// The tests' server harness; the bench uses part of it.
#[allow(dead_code)]
#[path = "../../tests/common/postgres.rs"]
mod pg;

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use weir::connectors::{PostgresSpec, SinkSpec};
use weir::record::Batch;
use weir::task::{JobControl, SinkContext};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

const DEFAULT_ROWS: u64 = 200_000;
const BATCH: u64 = 1_000;
const CHECKPOINT_EVERY: u64 = 50_000;
const TABLE: &str = "CREATE TABLE {} (seq bigint PRIMARY KEY, \"user\" text, value double precision, ts timestamptz)";

fn rows_wanted() -> BenchResult<u64> {
    match std::env::var("WEIR_BENCH_EVENTS") {
        Ok(v) => {
            v.replace('_', "").parse().ok().filter(|n| *n > 0).ok_or_else(|| format!("WEIR_BENCH_EVENTS={v}").into())
        }
        Err(_) => Ok(DEFAULT_ROWS),
    }
}

/// The records, in the sink's batches.
fn batches(rows: u64) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut batch = Batch::new();
    for seq in 0..rows {
        let record = json!({"seq": seq, "user": format!("user-{}", seq % 10_000), "value": seq as f64 * 0.5,
            "ts": 1_767_225_600_000u64 + seq});
        let mut value = Vec::new();
        weir::record::json_to_msgpack(record.to_string().as_bytes(), &mut value).expect("JSON becomes a record");
        batch.push(&value);
        if batch.len() as u64 == BATCH {
            out.push(std::mem::take(&mut batch));
        }
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

fn spec(cluster: &pg::PgCluster, table: &str, key: &[&str]) -> PostgresSpec {
    PostgresSpec {
        url: cluster.url(),
        table: table.to_string(),
        key: key.iter().map(|k| k.to_string()).collect(),
        batch_size: 500,
    }
}

/// Rows/s of writing every batch through the at-least-once sink.
fn autocommit(batches: &[Batch], spec: PostgresSpec) -> BenchResult<f64> {
    let mut sink = SinkSpec::new(spec).open()?;
    let started = Instant::now();
    for batch in batches {
        sink.write(batch)?;
    }
    sink.finish()?;
    Ok(started.elapsed().as_secs_f64())
}

/// Seconds to write every batch through the exactly-once sink, committing per checkpoint.
fn exactly_once(batches: &[Batch], spec: PostgresSpec) -> BenchResult<f64> {
    let control = Arc::new(JobControl::default());
    let ctx = SinkContext { job: "bench", control: &control, first_epoch: Some(1) };
    let opened = SinkSpec::new(spec).open_for_job(&ctx)?;
    let (mut sink, mut committer) = (opened.writer, opened.committer.ok_or("the sink commits per checkpoint")?);
    let started = Instant::now();
    let (mut written, mut checkpoint) = (0, 0);
    for batch in batches {
        sink.write(batch)?;
        written += batch.len() as u64;
        if written % CHECKPOINT_EVERY == 0 {
            checkpoint += 1;
            sink.barrier(checkpoint)?;
            committer.committed(checkpoint)?;
        }
    }
    sink.finish()?;
    committer.committed(checkpoint + 1)?;
    Ok(started.elapsed().as_secs_f64())
}

/// Seconds to load the same rows with COPY, the native baseline.
fn copy_baseline(cluster: &pg::PgCluster, rows: u64) -> BenchResult<f64> {
    let mut client = postgres::Client::connect(&cluster.url(), postgres::NoTls)?;
    let started = Instant::now();
    let mut writer = client.copy_in("COPY copied (seq, \"user\", value, ts) FROM STDIN")?;
    let mut line = Vec::new();
    for seq in 0..rows {
        line.clear();
        let ts = weir::time::format_rfc3339(1_767_225_600_000 + seq as i64).ok_or("a time in range")?;
        writeln!(line, "{seq}\tuser-{}\t{}\t{ts}", seq % 10_000, seq as f64 * 0.5)?;
        writer.write_all(&line)?;
    }
    writer.finish()?;
    Ok(started.elapsed().as_secs_f64())
}

fn count(cluster: &pg::PgCluster, table: &str) -> BenchResult<u64> {
    Ok(cluster.psql(&format!("SELECT count(*) FROM {table}")).trim().parse()?)
}

fn main() -> BenchResult<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let rows = rows_wanted()?;
    let cluster = pg::PgCluster::start(&[]);
    for table in ["inserted", "upserted", "transactional", "copied"] {
        cluster.psql(&TABLE.replace("{}", table));
    }
    let data = batches(rows);
    eprintln!("postgres sink: {rows} rows in batches of {BATCH}, 500 rows per statement ...");

    let mut figures = serde_json::Map::new();
    let mut measure = |mode: &str, table: &str, seconds: f64| -> BenchResult<f64> {
        let rows_in = count(&cluster, table)?;
        if rows_in != rows {
            return Err(format!("{mode}: {rows_in} rows in {table}, expected {rows}").into());
        }
        let per_second = rows as f64 / seconds;
        eprintln!("  {mode:<14} {:>10.0} rows/s  ({seconds:.2} s)", per_second);
        figures.insert(
            mode.into(),
            json!({"seconds": (seconds * 1e3).round() / 1e3, "rows_per_s": per_second.round() as u64}),
        );
        Ok(per_second)
    };
    let copy = measure("copy_baseline", "copied", copy_baseline(&cluster, rows)?)?;
    let insert = measure("insert", "inserted", autocommit(&data, spec(&cluster, "inserted", &[]))?)?;
    let upsert_new = measure("upsert_new", "upserted", autocommit(&data, spec(&cluster, "upserted", &["seq"]))?)?;
    let upsert_update = measure("upsert_update", "upserted", autocommit(&data, spec(&cluster, "upserted", &["seq"]))?)?;
    let exactly = measure("exactly_once", "transactional", exactly_once(&data, spec(&cluster, "transactional", &[]))?)?;
    let ratio = |x: f64| (x / copy * 1000.0).round() / 1000.0;
    let out = json!({
        "bench": "postgres_sink",
        "rows": rows,
        "batch_size": 500,
        "checkpoint_every_rows": CHECKPOINT_EVERY,
        "modes": figures,
        "ratio_to_copy": {
            "insert": ratio(insert),
            "upsert_new": ratio(upsert_new),
            "upsert_update": ratio(upsert_update),
            "exactly_once": ratio(exactly),
        },
    });
    println!("{out}");
    Ok(())
}
