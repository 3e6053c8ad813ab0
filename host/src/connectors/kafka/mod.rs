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

pub mod dev;
mod format;
mod sink;
mod source;

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

pub use format::{MetadataField, ValueFormat};
pub use sink::{KafkaTransaction, committed_checkpoint, open as open_sink, open_at_least_once};
pub use source::run as run_source;

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
