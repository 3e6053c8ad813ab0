//! Kafka source and sink (librdkafka through `rdkafka`), with Flink's Kafka connector's
//! option names where they exist.
//!
//! - The source assigns itself every partition of its topics (no consumer-group
//!   rebalancing: the job is the only reader that counts) and keeps its offsets in Weir's
//!   checkpoints; a resumed job reads on from there. Each partition has its own watermark
//!   generator, and a partition that goes quiet turns idle instead of holding the job's
//!   watermark back (Flink's per-partition watermarks with `withIdleness`).
//! - The sink produces with an idempotent producer; with exactly-once it runs one Kafka
//!   transaction per checkpoint (see [`sink`] and [`super::two_phase`]).
//! - [`dev::DevCluster`] is librdkafka's in-process mock cluster, for tests, benchmarks and
//!   `weir dev kafka`.

mod config;
pub mod dev;
mod format;
mod sink;
mod source;

use std::time::Duration;

use super::{Sink, Source, mismatch};
use crate::checkpoint::SourcePosition;
use crate::task::{ConnectorError, OpenedSink, SinkContext, SinkWriter, SourceContext};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage, ToBytes};
use rdkafka::producer::{BaseProducer, BaseRecord, ProducerContext};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub(super) use config::{parse_sink, parse_source};
pub use format::{MetadataField, ValueFormat};
pub use sink::KafkaTransaction;

/// How long a metadata or offsets request may take before it counts as failed.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The topic the exactly-once sink writes its commit markers to, by default.
pub const DEFAULT_COMMIT_TOPIC: &str = "__weir_sink_commits";

/// Where a source starts when it does not resume from a checkpoint (`scan.startup.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupMode {
    Earliest,
    Latest,
    /// The group's committed offsets (`properties.group.id`), else the earliest.
    GroupOffsets,
    /// The first record at or after this time (epoch ms) in each partition.
    Timestamp(i64),
}

/// Event time from the records' Kafka timestamps, watermarks per partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaWatermarks {
    pub max_out_of_orderness: Duration,
    /// A partition without records for this long goes idle.
    pub idleness: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSourceSpec {
    pub topics: Vec<String>,
    /// librdkafka settings (`properties.*` in the job file), `bootstrap.servers` among them.
    pub properties: Vec<(String, String)>,
    pub startup: StartupMode,
    /// Stop at the end offsets seen at start (`scan.bounded.mode: latest-offset`).
    pub bounded: bool,
    pub format: ValueFormat,
    /// With metadata, each record is a map of `value` and these fields.
    pub metadata: Vec<MetadataField>,
    pub watermarks: Option<KafkaWatermarks>,
}

/// The sink's delivery guarantee (`sink.delivery-guarantee`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Transactions committed when a checkpoint completes (needs checkpoints).
    ExactlyOnce,
    /// Every record acknowledged by the broker before a checkpoint completes.
    AtLeastOnce,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSinkSpec {
    pub topic: String,
    pub properties: Vec<(String, String)>,
    /// How record values are written (json, text, msgpack or raw).
    pub format: ValueFormat,
    /// The record field whose value is the Kafka key; without it, the key the stream was
    /// keyed by (`key_by`, a field or a key-selector plugin), if any.
    pub key_field: Option<String>,
    pub delivery: Delivery,
    /// Transactional id (exactly-once); `weir-<job name>` by default.
    pub transactional_id: Option<String>,
    /// Where exactly-once commit markers go.
    pub commit_topic: String,
}

impl Source for KafkaSourceSpec {
    fn name(&self) -> &'static str {
        "source kafka"
    }

    fn has_event_time(&self) -> bool {
        self.watermarks.is_some()
    }

    fn run(&self, ctx: &mut SourceContext, start: Option<&SourcePosition>) -> Result<SourcePosition, ConnectorError> {
        let offsets = match start {
            None => None,
            Some(p) => match p.decode() {
                Ok(KafkaPosition::Kafka { offsets }) => Some(offsets),
                Err(_) => return Err(mismatch(self, p)),
            },
        };
        source::run(self, ctx, offsets.as_deref())
    }
}

impl Sink for KafkaSinkSpec {
    fn name(&self) -> &'static str {
        "sink kafka"
    }

    fn open(&self) -> Result<Box<dyn SinkWriter>, ConnectorError> {
        sink::open_at_least_once(self)
    }

    fn open_for_job(&self, ctx: &SinkContext) -> Result<OpenedSink, ConnectorError> {
        sink::open(self, ctx)
    }

    fn committed_checkpoint(&self, job: &str) -> Result<Option<u64>, ConnectorError> {
        sink::committed_checkpoint(self, job)
    }

    fn needs_checkpoints(&self) -> Option<(&'static str, &'static str)> {
        (self.delivery == Delivery::ExactlyOnce).then_some((
            "sink.delivery-guarantee",
            "exactly-once commits a Kafka transaction per checkpoint: add `checkpoints: {interval: 1 s}` to the job",
        ))
    }
}

impl KafkaSinkSpec {
    pub fn transactional_id(&self, job: &str) -> String {
        self.transactional_id.clone().unwrap_or_else(|| {
            let safe: String =
                job.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
            format!("weir-{safe}")
        })
    }
}

/// The position of a Kafka source in a checkpoint: the next offset of every partition.
/// (An enum of one variant: checkpoints written before positions were opaque hold it in
/// this form.)
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum KafkaPosition {
    Kafka { offsets: Vec<PartitionOffset> },
}

/// The next offset of one partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// A client configuration from the user's properties.
pub(crate) fn client_config(properties: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (k, v) in properties {
        config.set(k, v);
    }
    config
}

/// Failures worth retrying: the broker is away or busy, not the request wrong.
pub(crate) fn retriable(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    match e.rdkafka_error_code() {
        Some(code) => matches!(
            code,
            C::BrokerTransportFailure
                | C::AllBrokersDown
                | C::OperationTimedOut
                | C::RequestTimedOut
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
                | C::NetworkException
                | C::CoordinatorLoadInProgress
                | C::CoordinatorNotAvailable
                | C::NotCoordinator
                | C::Resolve
                | C::QueueFull
                | C::ConcurrentTransactions
        ),
        None => matches!(e, KafkaError::MetadataFetch(_) | KafkaError::OffsetFetch(_)),
    }
}

/// Send `record`, waiting while the producer's local queue is full (backpressure): delivery
/// reports are served meanwhile.
pub(crate) fn send_waiting<C, K, P>(
    producer: &BaseProducer<C>,
    record: BaseRecord<'_, K, P, C::DeliveryOpaque>,
) -> Result<(), KafkaError>
where
    C: ProducerContext,
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    let mut pending = record;
    loop {
        match producer.send(pending) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                pending = back;
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Every message of `partition` of `topic` as it is now (from the low to the high
/// watermark), with `consumer`'s isolation level; read_committed stops early at an aborted
/// tail. Gives up after 30 s.
pub(crate) fn read_partition<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Result<Vec<OwnedMessage>, KafkaError> {
    let (low, high) = consumer.fetch_watermarks(topic, partition, REQUEST_TIMEOUT)?;
    let mut out = Vec::new();
    if high <= low {
        return Ok(out);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(low))?;
    consumer.assign(&tpl)?;
    let mut next = low;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while next < high && std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                next = m.offset() + 1;
                out.push(m.detach());
            }
            Some(Err(e)) => tracing::warn!(error = %e, topic, partition, "reading a partition"),
            None => {
                let position = consumer.position()?;
                if position.find_partition(topic, partition).and_then(|e| e.offset().to_raw()) >= Some(high) {
                    break;
                }
            }
        }
    }
    Ok(out)
}
