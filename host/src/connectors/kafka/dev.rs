//! A Kafka cluster inside this process: librdkafka's mock cluster, which speaks the real
//! Kafka protocol (produce, fetch, offsets, consumer groups, transactions) over TCP on
//! loopback. For tests, benchmarks and `weir dev kafka`; it keeps everything in memory.
//!
//! The mock keeps at most 5 MiB (of compressed batches) or 100 000 batches per partition
//! and drops the oldest beyond that, as if by retention: spread big inputs over partitions
//! and compress them (the loaders here use lz4).
//!
//! One limit matters for exactly-once: the mock accepts transactions but does not hide
//! aborted records from `read_committed` consumers. Readers that must see only committed
//! output use the sink's commit markers ([`committed_records`]), which a real broker's
//! read_committed consumer would not need.

use std::path::Path;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::{ClientConfig, TopicPartitionList};

use super::{REQUEST_TIMEOUT, read_partition, send_waiting};

/// A message to produce: partition, key, value, timestamp (epoch ms).
pub type Outgoing<'a> = (i32, Option<&'a [u8]>, &'a [u8], Option<i64>);

/// The first delivery failure of a producer.
#[derive(Default)]
struct Acks {
    failed: std::sync::Mutex<Option<KafkaError>>,
}

impl rdkafka::ClientContext for Acks {}

impl rdkafka::producer::ProducerContext for Acks {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| e.clone());
        }
    }
}

pub struct DevCluster {
    cluster: MockCluster<'static, DefaultProducerContext>,
    bootstrap: String,
}

/// One message read back: partition, offset, key and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub timestamp: Option<i64>,
}

impl DevCluster {
    /// A cluster of `brokers` brokers on loopback ports chosen by the system.
    pub fn start(brokers: i32) -> Result<Self, KafkaError> {
        let cluster = MockCluster::new(brokers)?;
        let bootstrap = cluster.bootstrap_servers();
        Ok(Self { cluster, bootstrap })
    }

    /// The `bootstrap.servers` of the cluster.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), KafkaError> {
        self.cluster.create_topic(topic, partitions, 1)
    }

    /// Take broker `id` (1-based) down or bring it back: its connections drop.
    pub fn set_broker_up(&self, id: i32, up: bool) -> Result<(), KafkaError> {
        if up { self.cluster.broker_up(id) } else { self.cluster.broker_down(id) }
    }

    fn producer(&self) -> Result<BaseProducer<Acks>, KafkaError> {
        producer(&self.bootstrap)
    }

    /// Produce `(partition, key, value, timestamp)` messages and wait for them all.
    pub fn produce(&self, topic: &str, messages: &[Outgoing<'_>]) -> Result<(), KafkaError> {
        produce(&self.bootstrap, topic, messages)
    }

    /// Produce one message with headers (name, value) to `partition` of `topic`.
    pub fn produce_with_headers(
        &self,
        topic: &str,
        partition: i32,
        value: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<(), KafkaError> {
        let producer = self.producer()?;
        let mut owned = rdkafka::message::OwnedHeaders::new();
        for (key, v) in headers {
            owned = owned.insert(rdkafka::message::Header { key, value: Some(*v) });
        }
        producer
            .send(BaseRecord::<(), _>::to(topic).partition(partition).payload(value).headers(owned))
            .map_err(|(e, _)| e)?;
        producer.flush(Duration::from_secs(30))
    }

    /// Produce every line of `file` into `topic`, spread round-robin over its partitions.
    pub fn load_lines(&self, topic: &str, partitions: i32, file: &Path) -> std::io::Result<usize> {
        let text = std::fs::read_to_string(file)?;
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        let messages: Vec<_> =
            lines.iter().enumerate().map(|(i, l)| (i as i32 % partitions.max(1), None, l.as_bytes(), None)).collect();
        self.produce(topic, &messages).map_err(std::io::Error::other)?;
        Ok(lines.len())
    }

    /// The offsets consumer group `group` committed for the partitions of `topic`
    /// (partition, next offset; -1 for none).
    pub fn committed_offsets(&self, group: &str, topic: &str) -> Result<Vec<(i32, i64)>, KafkaError> {
        let consumer: BaseConsumer =
            ClientConfig::new().set("bootstrap.servers", &self.bootstrap).set("group.id", group).create()?;
        let metadata = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
        let mut tpl = TopicPartitionList::new();
        for t in metadata.topics().iter().filter(|t| t.name() == topic) {
            for p in t.partitions() {
                tpl.add_partition(topic, p.id());
            }
        }
        let committed = consumer.committed_offsets(tpl, REQUEST_TIMEOUT)?;
        Ok(committed.elements().iter().map(|e| (e.partition(), e.offset().to_raw().unwrap_or(-1))).collect())
    }

    /// Every message of `topic` as it is now, partition by partition.
    pub fn fetch_all(&self, topic: &str) -> Result<Vec<Fetched>, KafkaError> {
        fetch_all(&self.bootstrap, topic)
    }
}

fn producer(bootstrap: &str) -> Result<BaseProducer<Acks>, KafkaError> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        // The mock keeps 5 MiB per partition and drops the oldest beyond that.
        .set("compression.type", "lz4")
        .create_with_context(Acks::default())
}

/// Produce `(partition, key, value, timestamp)` messages to the cluster at `bootstrap`
/// and wait for them all (from any thread; the cluster itself stays on its own).
pub fn produce(bootstrap: &str, topic: &str, messages: &[Outgoing<'_>]) -> Result<(), KafkaError> {
    let producer = producer(bootstrap)?;
    for (partition, key, value, ts) in messages {
        let mut record = BaseRecord::to(topic).partition(*partition).payload(*value);
        if let Some(k) = key {
            record = record.key(*k);
        }
        if let Some(ts) = ts {
            record = record.timestamp(*ts);
        }
        send_waiting(&producer, record)?;
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30))?;
    match producer.context().failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Every message of `topic` on the cluster at `bootstrap`, partition by partition.
pub fn fetch_all(bootstrap: &str, topic: &str) -> Result<Vec<Fetched>, KafkaError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "weir-fetch")
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
    let mut out = Vec::new();
    for t in metadata.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            out.extend(read_partition(&consumer, topic, p.id())?.into_iter().map(|m| Fetched {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().unwrap_or_default().to_vec(),
                timestamp: m.timestamp().to_millis(),
            }));
        }
    }
    Ok(out)
}

/// The output of an exactly-once sink as committed: the messages of `topic` inside the
/// ranges named by the commit markers of `transactional_id` in `commit_topic`.
pub fn committed_records(
    bootstrap: &str,
    topic: &str,
    commit_topic: &str,
    transactional_id: &str,
) -> Result<Vec<Fetched>, KafkaError> {
    let properties = [("bootstrap.servers".to_string(), bootstrap.to_string())];
    let markers = super::sink::read_markers(&properties, commit_topic)?;
    let mut ranges = Vec::new();
    for (_, marker) in markers.iter().filter(|(k, m)| k == transactional_id && m["topic"] == topic) {
        for r in marker["ranges"].as_array().into_iter().flatten() {
            let field = |name: &str| r[name].as_i64().unwrap_or(-1);
            ranges.push((field("partition") as i32, field("from"), field("to")));
        }
    }
    let all = fetch_all(bootstrap, topic)?;
    Ok(all
        .into_iter()
        .filter(|m| ranges.iter().any(|(p, from, to)| m.partition == *p && (*from..*to).contains(&m.offset)))
        .collect())
}
