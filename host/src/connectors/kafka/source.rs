//! The Kafka source: every partition of its topics assigned to one consumer, offsets in
//! Weir's checkpoints, per-partition watermarks from the messages' timestamps.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::format::record_of;
use super::{
    KafkaPosition, KafkaSourceSpec, KafkaWatermarks, PartitionOffset, REQUEST_TIMEOUT, StartupMode, client_config,
    retriable,
};
use crate::checkpoint::SourcePosition;
use crate::record::RowMeta;
use crate::task::{Backoff, ConnectorError, ConnectorHealth, SourceContext};
use crate::time::{TimeSignal, WatermarkGenerator, WatermarkTracker, now_ms};

const NAME: &str = "kafka source";
/// How often watermarks are sent (Flink's `autoWatermarkInterval`).
const WATERMARK_INTERVAL: Duration = Duration::from_millis(200);

/// Client errors (a broker gone, all brokers down) mark the source down in the metrics
/// while librdkafka reconnects; the next record marks it up again.
struct HealthContext(Arc<ConnectorHealth>);

impl ClientContext for HealthContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka source: client error; librdkafka retries");
        self.0.set_down(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for HealthContext {}

type KafkaConsumer = BaseConsumer<HealthContext>;

/// One assigned partition.
struct Partition {
    topic: String,
    partition: i32,
    /// The offset of the next record to read.
    next: i64,
    /// Bounded mode: the end offset seen at start.
    end: i64,
    /// Start by time where the broker cannot look offsets up by time: records before this
    /// time are skipped until the first one at or after it.
    skip_before: Option<i64>,
}

impl Partition {
    fn done(&self) -> bool {
        self.next >= self.end
    }
}

/// Event time per partition, combined into the source's watermark.
struct Watermarks {
    generators: Vec<WatermarkGenerator>,
    tracker: WatermarkTracker,
    last_emit: Instant,
}

impl Watermarks {
    fn new(spec: KafkaWatermarks, partitions: usize) -> Self {
        let generator = |_| {
            let g = WatermarkGenerator::new(spec.max_out_of_orderness);
            match spec.idleness {
                Some(idle) => g.with_idleness(idle),
                None => g,
            }
        };
        Self {
            generators: (0..partitions).map(generator).collect(),
            tracker: WatermarkTracker::new(partitions),
            last_emit: Instant::now(),
        }
    }

    /// A record of partition `p` at `timestamp`: the signals to send before it.
    fn on_event(&mut self, p: usize, timestamp: i64) -> Vec<TimeSignal> {
        match self.generators[p].on_event(timestamp) {
            Some(signal) => self.tracker.on_signal(p, signal),
            None => Vec::new(),
        }
    }

    /// The periodic tick: the combined watermark's changes.
    fn tick(&mut self) -> Vec<TimeSignal> {
        if self.last_emit.elapsed() < WATERMARK_INTERVAL {
            return Vec::new();
        }
        self.last_emit = Instant::now();
        let now = now_ms();
        let mut out = Vec::new();
        for p in 0..self.generators.len() {
            if let Some(signal) = self.generators[p].on_periodic_emit(now) {
                out.extend(self.tracker.on_signal(p, signal));
            }
        }
        out
    }
}

/// Read the topics until the end offsets (bounded) or until the job is cancelled.
pub fn run(
    spec: &KafkaSourceSpec,
    ctx: &mut SourceContext,
    start: Option<&[PartitionOffset]>,
) -> Result<SourcePosition, ConnectorError> {
    let health = ctx.connector_health(NAME);
    let mut config = client_config(&spec.properties);
    config.set("enable.auto.commit", "false").set("enable.partition.eof", "false");
    if config.get("group.id").is_none() {
        // librdkafka wants a group for offset lookups; the job assigns partitions itself.
        config.set("group.id", "weir");
    }
    if config.get("auto.offset.reset").is_none() {
        config.set("auto.offset.reset", "earliest");
    }
    let consumer: KafkaConsumer = config
        .create_with_context(HealthContext(health.clone()))
        .map_err(|e| kafka_error("creating the consumer", e))?;
    let mut partitions = Backoff::default()
        .retry(&health, "reading the topics' partitions", retriable, || assign(&consumer, spec, start))
        .map_err(|e| kafka_error("reading the topics' partitions", e))?;
    tracing::info!(topics = ?spec.topics, partitions = partitions.len(), "kafka source assigned");
    let mut watermarks = spec.watermarks.map(|w| Watermarks::new(w, partitions.len()));
    let index_of = |partitions: &[Partition], topic: &str, partition: i32| {
        partitions.iter().position(|p| p.partition == partition && p.topic == topic)
    };
    // Offsets of checkpoints taken but not known complete yet, committed to the consumer
    // group once they are (Flink's commit-on-checkpoint): for monitoring and
    // `group-offsets`; recovery uses the checkpoints.
    let commit_to_group = spec.properties.iter().any(|(k, _)| k == "group.id");
    let mut uncommitted: VecDeque<(u64, TopicPartitionList)> = VecDeque::new();
    loop {
        if let Some(id) = ctx.checkpoint_point(|| position(&partitions))?
            && commit_to_group
        {
            uncommitted.push_back((id, offsets(&partitions)));
        }
        let complete = ctx.last_checkpoint();
        let mut newest = None;
        while uncommitted.front().is_some_and(|(id, _)| *id <= complete) {
            newest = uncommitted.pop_front();
        }
        if let Some((id, tpl)) = newest
            && let Err(e) = consumer.commit(&tpl, CommitMode::Async)
        {
            tracing::warn!(checkpoint = id, error = %e, "kafka source: committing offsets to the group failed");
        }
        if spec.bounded && partitions.iter().all(Partition::done) {
            break;
        }
        if ctx.is_cancelled() {
            return Err(ConnectorError::Disconnected);
        }
        if let Some(w) = watermarks.as_mut() {
            for signal in w.tick() {
                ctx.emit_time(signal)?;
            }
        }
        let Some(polled) = consumer.poll(Duration::from_millis(100)) else {
            ctx.flush()?;
            continue;
        };
        let message = match polled {
            Ok(m) => m,
            Err(e) => {
                // librdkafka reconnects by itself; say so in the metrics until it does.
                if health.is_up() {
                    tracing::warn!(error = %e, "kafka source: polling failed; librdkafka retries");
                }
                health.set_down(e.to_string());
                continue;
            }
        };
        if !health.is_up() {
            health.set_up();
        }
        let Some(p) = index_of(&partitions, message.topic(), message.partition()) else { continue };
        if message.offset() < partitions[p].next {
            continue; // already read (a fetch retried after a broker came back)
        }
        partitions[p].next = message.offset() + 1;
        let timestamp = message.timestamp().to_millis();
        if let Some(from) = partitions[p].skip_before {
            if timestamp.is_some_and(|t| t < from) {
                continue;
            }
            partitions[p].skip_before = None;
        }
        let emitted = match (watermarks.as_mut(), timestamp) {
            (Some(w), Some(ts)) => {
                for signal in w.on_event(p, ts) {
                    ctx.emit_time(signal)?;
                }
                ctx.emit_with_meta(RowMeta { key: None, timestamp: Some(ts) }, |out| {
                    record_of(&message, spec.format, &spec.metadata, out)
                })?
            }
            _ => ctx.emit_with(|out| record_of(&message, spec.format, &spec.metadata, out))?,
        };
        if let Err(error) = emitted {
            let origin = format!("{}/{}@{}", message.topic(), message.partition(), message.offset());
            let raw = message.payload().unwrap_or_default().to_vec();
            ctx.dead_letter(NAME, "malformed", error, origin, raw)?;
        }
    }
    ctx.flush()?;
    Ok(position(&partitions))
}

fn offsets(partitions: &[Partition]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        // Offsets come from the broker and are never negative.
        let _ = tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next));
    }
    tpl
}

fn position(partitions: &[Partition]) -> SourcePosition {
    let offsets =
        partitions.iter().map(|p| PartitionOffset { topic: p.topic.clone(), partition: p.partition, offset: p.next });
    SourcePosition::encode(&KafkaPosition::Kafka { offsets: offsets.collect() })
}

/// Find the topics' partitions, decide where each starts, and assign them.
fn assign(
    consumer: &KafkaConsumer,
    spec: &KafkaSourceSpec,
    start: Option<&[PartitionOffset]>,
) -> Result<Vec<Partition>, KafkaError> {
    let mut partitions = Vec::new();
    for topic in &spec.topics {
        let metadata = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
        let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else { continue };
        if let Some(e) = t.error() {
            return Err(KafkaError::MetadataFetch(e.into()));
        }
        for p in t.partitions() {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), REQUEST_TIMEOUT)?;
            partitions.push((topic.clone(), p.id(), low, high));
        }
    }
    let resumed =
        |topic: &str, partition| start?.iter().find(|o| o.topic == topic && o.partition == partition).map(|o| o.offset);
    let committed = match (start, spec.startup) {
        (None, StartupMode::GroupOffsets) => {
            let mut tpl = TopicPartitionList::new();
            for (topic, p, ..) in &partitions {
                tpl.add_partition(topic, *p);
            }
            Some(consumer.committed_offsets(tpl, REQUEST_TIMEOUT)?)
        }
        _ => None,
    };
    let by_time = match (start, spec.startup) {
        (None, StartupMode::Timestamp(ms)) => {
            let mut tpl = TopicPartitionList::new();
            for (topic, p, ..) in &partitions {
                tpl.add_partition_offset(topic, *p, Offset::Offset(ms))?;
            }
            match consumer.offsets_for_times(tpl, REQUEST_TIMEOUT) {
                Ok(found) => Some(found),
                Err(e) => {
                    tracing::warn!(error = %e, "kafka source: the broker cannot look offsets up by time; reading from the earliest and skipping older records");
                    None
                }
            }
        }
        _ => None,
    };
    let mut assigned = TopicPartitionList::new();
    let mut out = Vec::new();
    for (topic, partition, low, high) in partitions {
        let found = |tpl: &Option<TopicPartitionList>| {
            tpl.as_ref()?.find_partition(&topic, partition).and_then(|e| e.offset().to_raw()).filter(|o| *o >= 0)
        };
        // A partition the checkpoint does not know (added since) starts at its beginning.
        let next = match (start.is_some(), spec.startup) {
            (true, _) => resumed(&topic, partition).unwrap_or(low),
            (false, StartupMode::Earliest) => low,
            (false, StartupMode::Latest) => high,
            (false, StartupMode::GroupOffsets) => found(&committed).unwrap_or(low),
            (false, StartupMode::Timestamp(_)) => found(&by_time).unwrap_or(low),
        };
        // No offset found: a broker that cannot look up by time (librdkafka's mock), or no
        // record that late (then every record is skipped, as a lookup would have).
        let skip_before = match (start, spec.startup) {
            (None, StartupMode::Timestamp(ms)) if found(&by_time).is_none() => Some(ms),
            _ => None,
        };
        let next = next.clamp(low, high.max(low));
        assigned.add_partition_offset(&topic, partition, Offset::Offset(next))?;
        out.push(Partition { topic, partition, next, end: high, skip_before });
    }
    if out.is_empty() {
        return Err(KafkaError::MetadataFetch(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition));
    }
    consumer.assign(&assigned)?;
    Ok(out)
}

fn kafka_error(what: &str, e: KafkaError) -> ConnectorError {
    ConnectorError::failed(format!("{NAME}: {what}: {e}; check `properties.bootstrap.servers` and the topics"))
}
