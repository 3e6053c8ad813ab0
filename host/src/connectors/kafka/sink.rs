//! The Kafka sink: at-least-once with an idempotent producer (everything acknowledged at
//! each checkpoint barrier), or exactly-once with one Kafka transaction per checkpoint.
//!
//! Exactly-once: the transaction that holds checkpoint `n`'s records also holds a commit
//! marker, a record keyed by the transactional id in the commit topic (partition 0) saying
//! `{"checkpoint": n, "topic": .., "ranges": [{"partition", "from", "to"}]}`. A resuming
//! job reads the last marker of its transactional id (read_committed) to learn which
//! checkpoint's output is in Kafka (see [`super::super::two_phase`]); the ranges name the
//! offsets each committed transaction wrote, which lets a reader check the output without
//! trusting transaction markers alone.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use super::format::key_of;
use super::{Delivery, KafkaSinkSpec, REQUEST_TIMEOUT, client_config, read_partition, retriable, send_waiting};
use crate::connectors::{Transaction, two_phase};
use crate::record::Batch;
use crate::task::{Backoff, ConnectorError, ConnectorHealth, OpenedSink, SinkContext, SinkWriter};

const NAME: &str = "kafka sink";
/// How long a flush or a transaction call may take.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// What the broker acknowledged since the last reset: offsets written per partition, and
/// the first failure.
#[derive(Default)]
struct Deliveries {
    ranges: BTreeMap<i32, (i64, i64)>,
    error: Option<String>,
}

struct SinkContextKafka {
    /// The sink's topic: the ranges are of its partitions (not of the commit markers').
    topic: String,
    deliveries: Mutex<Deliveries>,
    health: Arc<ConnectorHealth>,
}

impl ClientContext for SinkContextKafka {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka sink: client error; librdkafka retries");
        self.health.set_down(format!("{error}: {reason}"));
    }
}

impl ProducerContext for SinkContextKafka {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut d = self.deliveries.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(m) if m.topic() != self.topic => {}
            Ok(m) => {
                let r = d.ranges.entry(m.partition()).or_insert((m.offset(), m.offset() + 1));
                r.0 = r.0.min(m.offset());
                r.1 = r.1.max(m.offset() + 1);
                self.health.set_up();
            }
            Err((e, _)) => {
                d.error.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// A producer for the sink's topic. Delivery reports are served on the calling thread (a
/// `BaseProducer` polled here), so a flush returns with every report counted.
struct Writer {
    producer: BaseProducer<SinkContextKafka>,
    topic: String,
    key_field: Option<String>,
    format: super::ValueFormat,
    value: Vec<u8>,
}

impl Writer {
    fn create(
        spec: &KafkaSinkSpec,
        health: Arc<ConnectorHealth>,
        txn_id: Option<&str>,
    ) -> Result<Self, ConnectorError> {
        let mut config = client_config(&spec.properties);
        config.set("enable.idempotence", "true");
        if let Some(id) = txn_id {
            config.set("transactional.id", id);
        }
        let context = SinkContextKafka { topic: spec.topic.clone(), deliveries: Mutex::default(), health };
        let producer = config.create_with_context(context).map_err(|e| kafka_error("creating the producer", e))?;
        Ok(Self {
            producer,
            topic: spec.topic.clone(),
            key_field: spec.key_field.clone(),
            format: spec.format,
            value: Vec::new(),
        })
    }

    fn send(&mut self, batch: &Batch) -> Result<(), ConnectorError> {
        for i in 0..batch.len() {
            let (value, meta) = (batch.value(i), batch.meta(i));
            let key = key_of(value, self.key_field.as_deref(), meta.key).map_err(|e| record_error(&self.topic, &e))?;
            self.value.clear();
            self.format.encode(value, &mut self.value).map_err(|e| record_error(&self.topic, &e))?;
            let mut record = BaseRecord::to(&self.topic).payload(&self.value);
            if let Some(key) = &key {
                record = record.key(key);
            }
            if let Some(ts) = meta.timestamp {
                record = record.timestamp(ts);
            }
            send_waiting(&self.producer, record).map_err(|e| kafka_error("producing a record", e))?;
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    /// Wait until everything sent is acknowledged; the first delivery failure, if any.
    fn flush(&self) -> Result<(), ConnectorError> {
        self.producer.flush(TXN_TIMEOUT).map_err(|e| kafka_error("flushing", e))?;
        match self.producer.context().deliveries.lock().unwrap_or_else(|p| p.into_inner()).error.take() {
            Some(e) => Err(ConnectorError::failed(format!("{NAME}: a record was not delivered: {e}"))),
            None => Ok(()),
        }
    }

    fn take_ranges(&self) -> BTreeMap<i32, (i64, i64)> {
        std::mem::take(&mut self.producer.context().deliveries.lock().unwrap_or_else(|p| p.into_inner()).ranges)
    }
}

/// At-least-once: records go out as they come; each barrier and the end wait for them all.
struct AtLeastOnce(Writer);

impl SinkWriter for AtLeastOnce {
    fn write(&mut self, batch: &Batch) -> Result<(), ConnectorError> {
        self.0.send(batch)
    }

    fn barrier(&mut self, _id: u64) -> Result<(), ConnectorError> {
        self.0.flush()
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        self.0.flush()
    }
}

/// One Kafka transaction per checkpoint.
pub struct KafkaTransaction {
    writer: Writer,
    txn_id: String,
    commit_topic: String,
    open: bool,
    health: Arc<ConnectorHealth>,
}

impl KafkaTransaction {
    /// A transactional producer; initialising it fences off (and aborts the open
    /// transaction of) an earlier producer with the same id, e.g. a killed run of the job.
    fn create(spec: &KafkaSinkSpec, job: &str, health: Arc<ConnectorHealth>) -> Result<Self, ConnectorError> {
        let txn_id = spec.transactional_id(job);
        let writer = Writer::create(spec, health.clone(), Some(&txn_id))?;
        Backoff::default()
            .retry(&health, "initialising transactions", retriable_txn, || {
                writer.producer.init_transactions(TXN_TIMEOUT)
            })
            .map_err(|e| kafka_error("initialising transactions", e))?;
        Ok(Self { writer, txn_id, commit_topic: spec.commit_topic.clone(), open: false, health })
    }

    fn begin(&mut self) -> Result<(), ConnectorError> {
        if !self.open {
            self.writer.producer.begin_transaction().map_err(|e| kafka_error("beginning a transaction", e))?;
            self.writer.take_ranges();
            self.open = true;
        }
        Ok(())
    }

    fn marker(&self, checkpoint: u64, ranges: &BTreeMap<i32, (i64, i64)>) -> String {
        let ranges: Vec<_> =
            ranges.iter().map(|(p, (from, to))| serde_json::json!({"partition": p, "from": from, "to": to})).collect();
        serde_json::json!({"checkpoint": checkpoint, "topic": self.writer.topic, "ranges": ranges}).to_string()
    }
}

impl Transaction for KafkaTransaction {
    fn write(&mut self, batch: &Batch) -> Result<(), ConnectorError> {
        self.begin()?;
        self.writer.send(batch)
    }

    fn precommit(&mut self) -> Result<(), ConnectorError> {
        self.writer.flush()
    }

    fn commit(&mut self, checkpoint: u64) -> Result<(), ConnectorError> {
        self.begin()?;
        self.writer.flush()?;
        let marker = self.marker(checkpoint, &self.writer.take_ranges());
        let record = BaseRecord::to(&self.commit_topic).partition(0).key(&self.txn_id).payload(&marker);
        self.writer.producer.send(record).map_err(|(e, _)| kafka_error("writing the commit marker", e))?;
        let producer = &self.writer.producer;
        let committed = Backoff::default().retry(&self.health, "committing the transaction", retriable_txn, || {
            producer.commit_transaction(TXN_TIMEOUT)
        });
        self.open = false;
        if let Err(e) = committed {
            // The transaction is lost; the job restarts from the checkpoint before it.
            let _ = producer.abort_transaction(TXN_TIMEOUT);
            return Err(kafka_error(&format!("committing checkpoint {checkpoint}"), e));
        }
        tracing::debug!(checkpoint, transactional_id = %self.txn_id, "kafka sink: transaction committed");
        Ok(())
    }
}

fn retriable_txn(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(err) => err.is_retriable(),
        other => retriable(other),
    }
}

/// Open the Kafka sink of a job: transactional with exactly-once in a checkpointed job,
/// otherwise at-least-once.
pub fn open(spec: &KafkaSinkSpec, ctx: &SinkContext) -> Result<OpenedSink, ConnectorError> {
    let health = ctx.control.connectors().register(NAME);
    match (spec.delivery, ctx.first_epoch) {
        (Delivery::ExactlyOnce, Some(first_epoch)) => {
            let txn = KafkaTransaction::create(spec, ctx.job, health)?;
            let (writer, committer) = two_phase(txn, first_epoch)?;
            Ok(OpenedSink { writer: Box::new(writer), committer: Some(Box::new(committer)) })
        }
        _ => {
            let writer = Writer::create(spec, health, None)?;
            Ok(OpenedSink { writer: Box::new(AtLeastOnce(writer)), committer: None })
        }
    }
}

/// An at-least-once Kafka writer outside a job's main sink (dead letters, late data).
pub fn open_at_least_once(spec: &KafkaSinkSpec) -> Result<Box<dyn SinkWriter>, ConnectorError> {
    let health = Arc::new(ConnectorHealth::new(NAME));
    Ok(Box::new(AtLeastOnce(Writer::create(spec, health, None)?)))
}

/// The last checkpoint whose transaction the exactly-once sink of `job` committed, from
/// its markers; `None` when it never committed one.
pub fn committed_checkpoint(spec: &KafkaSinkSpec, job: &str) -> Result<Option<u64>, ConnectorError> {
    if spec.delivery != Delivery::ExactlyOnce {
        return Ok(None);
    }
    // Fence the earlier run first: its open transaction is aborted, so read_committed
    // reads to the end instead of waiting for the transaction to time out.
    let health = Arc::new(ConnectorHealth::new(NAME));
    drop(KafkaTransaction::create(spec, job, health)?);
    let txn_id = spec.transactional_id(job);
    let markers = read_markers(&spec.properties, &spec.commit_topic)
        .map_err(|e| kafka_error(&format!("reading the commit markers in {}", spec.commit_topic), e))?;
    let last =
        markers.into_iter().filter(|(key, _)| *key == txn_id).filter_map(|(_, v)| v["checkpoint"].as_u64()).next_back();
    Ok(last)
}

/// Every commit marker in `topic` (read_committed), as (transactional id, marker).
pub fn read_markers(
    properties: &[(String, String)],
    topic: &str,
) -> Result<Vec<(String, serde_json::Value)>, KafkaError> {
    let mut config = client_config(properties);
    config.set("isolation.level", "read_committed").set("enable.auto.commit", "false");
    if config.get("group.id").is_none() {
        config.set("group.id", "weir");
    }
    let consumer: BaseConsumer = config.create()?;
    let metadata = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
    let exists =
        metadata.topics().iter().any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
    if !exists {
        return Ok(Vec::new());
    }
    let markers = read_partition(&consumer, topic, 0)?.into_iter().filter_map(|m| {
        let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
        m.payload().and_then(|p| serde_json::from_slice(p).ok()).map(|v| (key, v))
    });
    Ok(markers.collect())
}

fn record_error(topic: &str, error: &str) -> ConnectorError {
    ConnectorError::failed(format!(
        "{NAME} ({topic}): a record cannot be written: {error}; check the sink's `format` and `key.field`"
    ))
}

fn kafka_error(what: &str, e: KafkaError) -> ConnectorError {
    ConnectorError::failed(format!(
        "{NAME}: {what}: {e}; check `properties.bootstrap.servers` and that the broker is up"
    ))
}
