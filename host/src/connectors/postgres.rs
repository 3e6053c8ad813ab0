//! The PostgreSQL sink (Flink's JDBC connector): each record, a MessagePack map, becomes a
//! row of a table, its fields going to the columns of the same name.
//!
//! ```yaml
//! sink:
//!   connector: postgres
//!   url: postgres://weir@127.0.0.1:5432/analytics
//!   table: url_counts
//!   key: [url, window_end]     # optional: upsert on these columns; without it, INSERT
//!   batch_size: 500            # optional: rows per statement
//! ```
//!
//! At open the sink reads the table's columns from the catalog: a missing table, a key that
//! is not a unique index, and later a record whose field has no column or whose value does
//! not fit its column's type fail the job with a message naming the table, the column and
//! the value ([`table`], [`value`]). A record that does not fit is a configuration error,
//! as in Flink: it fails the job rather than going to the dead-letter output, since every
//! following record would most likely fail the same way.
//!
//! Delivery:
//! - Without checkpoints, at-least-once: every batch is written in autocommit statements;
//!   when the connection is lost the sink reconnects with [`Backoff`] and writes the batch
//!   again (with an upsert key, that is harmless; without one, rows may repeat).
//! - In a checkpointed job, exactly-once through [`two_phase`]: the records of an epoch go
//!   into one open PostgreSQL transaction as they arrive, and the checkpoint's commit
//!   upserts `(job, checkpoint)` into `weir_sink_checkpoints` and commits, in that same
//!   transaction, so the rows and the marker land together or not at all. Recovery
//!   resumes from the marker's checkpoint ([`committed_checkpoint`]). A connection lost
//!   with a transaction open loses that transaction (the server rolls it back): the sink
//!   fails, and the job's restart strategy restarts it from its checkpoint, connecting
//!   with [`Backoff`]; the epoch's records are produced again, once.
//!
//! The `postgres` crate is synchronous over a private tokio runtime of its own, which must
//! not run on a thread of the job's runtime: the sink's task runs on the blocking pool
//! (fine), and what runs on the job's async thread (opening, reading the marker, dropping
//! a connection) is moved to a thread of its own.

mod config;
mod table;
mod value;

use std::sync::Arc;

use postgres::{Client, Config, NoTls};
use thiserror::Error;

pub(super) use config::parse_sink;

use super::{Sink, Transaction, two_phase};
use crate::record::Batch;
use crate::task::{Backoff, ConnectorError, ConnectorHealth, OpenedSink, SinkContext, SinkWriter};
use table::{Table, TableWriter};

/// The name the sink's health goes by in the metrics.
const HEALTH: &str = "postgres sink";

/// Rows per statement unless the job says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 500;

/// Where exactly-once jobs record the checkpoint their output is committed up to.
const MARKERS: &str = "weir_sink_checkpoints";

/// A `sink: {connector: postgres, ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresSpec {
    /// `postgres://user:password@host:port/dbname` (or a `key=value` connection string).
    pub url: String,
    /// The table, optionally schema-qualified (`analytics.url_counts`).
    pub table: String,
    /// Upsert key columns; empty: plain `INSERT`.
    pub key: Vec<String>,
    /// Rows per statement.
    pub batch_size: usize,
}

impl PostgresSpec {
    /// The connection settings, or what is wrong with the url.
    pub fn config(&self) -> Result<Config, String> {
        self.url.parse::<Config>().map_err(|e| e.to_string())
    }
}

#[derive(Debug, Error)]
pub enum PostgresError {
    #[error("cannot connect to PostgreSQL at {target}: {message}; is the server running and the sink's `url` right?")]
    Connect { target: String, message: String, transient: bool },
    #[error("the sink's `url` is not a PostgreSQL connection url: {0}")]
    Url(String),
    #[error("table `{table}` does not exist in the database; create it first, or fix the sink's `table`")]
    NoTable { table: String },
    #[error(
        "the key column `{column}` is not a column of table {table} (its columns: {columns}); fix the sink's `key`"
    )]
    NoKeyColumn { table: String, column: String, columns: String },
    #[error(
        "upserting on ({key}) needs a primary key or unique index on exactly those columns of table {table}; \
         add one (ALTER TABLE {table} ADD PRIMARY KEY ({key})) or fix the sink's `key`"
    )]
    NoUniqueKey { table: String, key: String },
    #[error(
        "record field `{field}` has no column in table {table} (its columns: {columns}); \
         add the column or drop the field in the pipeline"
    )]
    NoColumn { table: String, field: String, columns: String },
    #[error(
        "record field `{column}` is {found} but column {table}.{column} is {sql_type}; change the table or the pipeline"
    )]
    Mismatch { table: String, column: String, sql_type: String, found: String },
    #[error("a record for table {table} must be a map of column names to values, found {found}")]
    NotAMap { table: String, found: String },
    #[error(
        "record {record} has no value for the key column `{column}` of table {table}; an upsert needs every key column"
    )]
    MissingKey { table: String, column: String, record: String },
    #[error("reading the catalog for table {table} failed: {message}")]
    Query { table: String, message: String, transient: bool },
    #[error("writing into table {table} failed: {message}")]
    Write { table: String, message: String, transient: bool },
    #[error("the checkpoint marker in {MARKERS}: {message}")]
    Marker { message: String, transient: bool },
}

/// A sink failure: restartable when the error is transient.
fn failed(error: PostgresError) -> ConnectorError {
    let restartable = error.is_transient();
    ConnectorError::Failed { message: format!("postgres sink: {error}"), restartable }
}

impl PostgresError {
    /// Whether trying again on a new connection may succeed (the connection was lost, the
    /// server is restarting), unlike a bad table or record.
    pub fn is_transient(&self) -> bool {
        match self {
            PostgresError::Connect { transient, .. }
            | PostgresError::Query { transient, .. }
            | PostgresError::Write { transient, .. }
            | PostgresError::Marker { transient, .. } => *transient,
            _ => false,
        }
    }

    fn query(table: &str, e: postgres::Error) -> Self {
        PostgresError::Query { table: table.to_string(), transient: transient(&e), message: message(&e) }
    }

    fn write(table: &str, e: postgres::Error) -> Self {
        PostgresError::Write { table: table.to_string(), transient: transient(&e), message: message(&e) }
    }

    fn marker(e: postgres::Error) -> Self {
        PostgresError::Marker { transient: transient(&e), message: message(&e) }
    }
}

/// Connection lost, or the server shutting down or starting up (SQLSTATE class 08, 57P0x).
fn transient(e: &postgres::Error) -> bool {
    if e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()) {
        return true;
    }
    e.code().is_some_and(|c| c.code().starts_with("08") || c.code().starts_with("57P") || c.code() == "53300")
}

fn message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let detail = db.detail().map(|d| format!(" ({d})")).unwrap_or_default();
            format!("{}{detail} [SQLSTATE {}]", db.message(), db.code().code())
        }
        // "error connecting to server" alone does not say why: add the cause.
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// `host:port/dbname` of a connection, for messages (never the password).
fn target(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or(config.get_user().unwrap_or("")))
}

/// A connection that reconnects on demand, and is safe to drop on any thread.
struct Connection {
    client: Option<Client>,
    config: Config,
    health: Arc<ConnectorHealth>,
    backoff: Backoff,
}

impl Connection {
    /// Connect, retrying with backoff while the server cannot be reached.
    fn open(spec: &PostgresSpec, health: Arc<ConnectorHealth>) -> Result<Self, PostgresError> {
        let mut config = spec.config().map_err(PostgresError::Url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("weir");
        }
        let mut conn = Connection { client: None, config, health, backoff: Backoff::default() };
        conn.connect()?;
        Ok(conn)
    }

    /// The open connection, or one new connection attempt.
    fn connect_once(&mut self) -> Result<&mut Client, PostgresError> {
        let client = match self.client.take() {
            Some(client) => client,
            None => self.config.connect(NoTls).map_err(|e| PostgresError::Connect {
                target: target(&self.config),
                transient: transient(&e) || e.code().is_none(),
                message: message(&e),
            })?,
        };
        Ok(self.client.insert(client))
    }

    /// The open connection, or a new one (retried with backoff).
    fn connect(&mut self) -> Result<&mut Client, PostgresError> {
        if self.client.is_none() {
            let (backoff, health) = (self.backoff, self.health.clone());
            backoff.retry(&health, "connecting to PostgreSQL", PostgresError::is_transient, || {
                self.connect_once().map(|_| ())
            })?;
        }
        self.connect_once()
    }

    /// Forget a connection that failed; the next use connects again.
    fn lost(&mut self, error: &PostgresError) {
        if error.is_transient() {
            self.health.set_down(error.to_string());
            drop_off_runtime(self.client.take());
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        drop_off_runtime(self.client.take());
    }
}

/// Closing a client blocks on its own runtime, which panics on a thread of another one.
fn drop_off_runtime(client: Option<Client>) {
    if let Some(client) = client {
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::spawn(move || drop(client));
        } else {
            drop(client);
        }
    }
}

/// Run `f` on a thread of its own: the job's async thread must not block on the client's
/// runtime.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join()).unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn open_writer(spec: &PostgresSpec, health: Arc<ConnectorHealth>) -> Result<(Connection, TableWriter), PostgresError> {
    let mut conn = Connection::open(spec, health)?;
    let table = Table::read(conn.connect()?, &spec.table, &spec.key)?;
    tracing::info!(table = %spec.table, columns = table.columns.len(), key = ?spec.key, target = %target(&conn.config), "postgres sink open");
    Ok((conn, TableWriter::new(table, spec.batch_size)))
}

impl Sink for PostgresSpec {
    fn name(&self) -> &'static str {
        "sink postgres"
    }

    fn open(&self) -> Result<Box<dyn SinkWriter>, ConnectorError> {
        open(self, Arc::new(ConnectorHealth::new("postgres output")))
    }

    fn open_for_job(&self, ctx: &SinkContext) -> Result<OpenedSink, ConnectorError> {
        open_job_sink(self, ctx)
    }

    fn committed_checkpoint(&self, job: &str) -> Result<Option<u64>, ConnectorError> {
        committed_checkpoint(self, job)
    }
}

/// An at-least-once sink (no checkpoints, or the dead-letter output).
fn open(spec: &PostgresSpec, health: Arc<ConnectorHealth>) -> Result<Box<dyn SinkWriter>, ConnectorError> {
    let (conn, writer) = off_runtime(|| open_writer(spec, health)).map_err(failed)?;
    Ok(Box::new(AutocommitSink { conn, writer }))
}

/// A job's sink: exactly-once when the job checkpoints.
fn open_job_sink(spec: &PostgresSpec, ctx: &SinkContext) -> Result<OpenedSink, ConnectorError> {
    let health = ctx.control.connectors().register(HEALTH);
    let Some(first_epoch) = ctx.first_epoch else {
        return Ok(OpenedSink { writer: open(spec, health)?, committer: None });
    };
    let job = ctx.job.to_string();
    off_runtime(move || {
        let prepare = || -> Result<_, PostgresError> {
            let (mut conn, writer) = open_writer(spec, health)?;
            conn.connect()?
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {MARKERS} (job text PRIMARY KEY, checkpoint bigint NOT NULL, \
                     committed_at timestamptz NOT NULL DEFAULT now())"
                ))
                .map_err(PostgresError::marker)?;
            Ok((conn, writer))
        };
        let (conn, writer) = prepare().map_err(failed)?;
        let txn = PostgresTransaction { conn, writer, job, open: false };
        let (sink, committer) = two_phase(txn, first_epoch)?;
        Ok(OpenedSink { writer: Box::new(sink), committer: Some(Box::new(committer)) })
    })
}

/// The checkpoint the job's output is committed up to (`None`: no marker yet).
fn committed_checkpoint(spec: &PostgresSpec, job: &str) -> Result<Option<u64>, ConnectorError> {
    let read = || -> Result<Option<u64>, PostgresError> {
        let mut conn = Connection::open(spec, Arc::new(ConnectorHealth::new(HEALTH)))?;
        let client = conn.connect()?;
        let exists =
            client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&MARKERS]).map_err(PostgresError::marker)?;
        if !exists.get::<_, bool>(0) {
            return Ok(None);
        }
        let row = client
            .query_opt(&format!("SELECT checkpoint FROM {MARKERS} WHERE job = $1"), &[&job])
            .map_err(PostgresError::marker)?;
        Ok(row.map(|r| r.get::<_, i64>(0).max(0) as u64))
    };
    off_runtime(read).map_err(failed)
}

/// Autocommit statements; a lost connection is retried with the whole batch.
struct AutocommitSink {
    conn: Connection,
    writer: TableWriter,
}

impl SinkWriter for AutocommitSink {
    fn write(&mut self, batch: &Batch) -> Result<(), ConnectorError> {
        let Self { conn, writer } = self;
        let (backoff, health) = (conn.backoff, conn.health.clone());
        backoff
            .retry(&health, "writing into PostgreSQL", PostgresError::is_transient, || {
                let result = conn.connect_once().and_then(|client| writer.write(client, batch));
                if let Err(e) = &result {
                    conn.lost(e);
                    writer.forget_statements();
                }
                result
            })
            .map(|_| ())
            .map_err(failed)
    }
}

/// One PostgreSQL transaction per checkpoint epoch, as [`two_phase`] drives it.
struct PostgresTransaction {
    conn: Connection,
    writer: TableWriter,
    job: String,
    /// A transaction is open on the connection.
    open: bool,
}

impl PostgresTransaction {
    /// The connection with a transaction open on it. Connecting (with backoff) is only
    /// safe when no transaction was open: an open one died with its connection.
    fn begin<'c>(conn: &'c mut Connection, open: &mut bool) -> Result<&'c mut Client, PostgresError> {
        if !*open {
            // Nothing is pending: a connection lost since the last commit is replaced.
            let (backoff, health) = (conn.backoff, conn.health.clone());
            backoff.retry(&health, "beginning a transaction in PostgreSQL", PostgresError::is_transient, || {
                let begun = conn.connect_once().and_then(|c| c.batch_execute("BEGIN").map_err(PostgresError::marker));
                if let Err(e) = &begun {
                    conn.lost(e);
                }
                begun
            })?;
            *open = true;
        }
        // Invariant: a transaction is open only on a live client (`failed` clears both).
        let config = &conn.config;
        conn.client.as_mut().ok_or_else(|| PostgresError::Connect {
            target: target(config),
            message: "the connection was lost".into(),
            transient: true,
        })
    }

    fn failed(&mut self, error: PostgresError) -> ConnectorError {
        // Whatever was open is rolled back by the server when the connection goes.
        self.open = false;
        self.conn.health.set_down(error.to_string());
        drop_off_runtime(self.conn.client.take());
        self.writer.forget_statements();
        failed(error)
    }
}

impl Transaction for PostgresTransaction {
    fn write(&mut self, batch: &Batch) -> Result<(), ConnectorError> {
        let result =
            Self::begin(&mut self.conn, &mut self.open).and_then(|client| self.writer.write(client, batch).map(|_| ()));
        result.map_err(|e| self.failed(e))
    }

    /// Every statement was executed when `write` returned: only the commit is missing.
    fn precommit(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn commit(&mut self, checkpoint: u64) -> Result<(), ConnectorError> {
        let job = &self.job;
        let result = Self::begin(&mut self.conn, &mut self.open).and_then(|client| {
            let marker = format!(
                "INSERT INTO {MARKERS} (job, checkpoint, committed_at) VALUES ($1, $2, now()) \
                 ON CONFLICT (job) DO UPDATE SET checkpoint = EXCLUDED.checkpoint, committed_at = EXCLUDED.committed_at"
            );
            client.execute(&marker, &[job, &(checkpoint as i64)]).map_err(PostgresError::marker)?;
            client.batch_execute("COMMIT").map_err(PostgresError::marker)
        });
        match result {
            Ok(()) => {
                self.open = false;
                self.conn.health.set_up();
                Ok(())
            }
            Err(e) => Err(self.failed(e)),
        }
    }
}
