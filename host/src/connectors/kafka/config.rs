//! Job-file syntax of the Kafka source and sink, with the option names of Flink's Kafka
//! SQL connector; `properties.*` go to librdkafka as they are:
//!
//! ```yaml
//! source:
//!   connector: kafka
//!   topic: access-log                        # or a list of topics
//!   properties.bootstrap.servers: ${KAFKA_BOOTSTRAP:-127.0.0.1:9092}
//!   properties.group.id: access-log          # optional (group-offsets needs it)
//!   scan.startup.mode: earliest-offset       # (default) latest-offset, group-offsets, timestamp
//!   scan.startup.timestamp-millis: 1764000000000   # with `timestamp`
//!   scan.bounded.mode: latest-offset         # stop at the end seen at start; default unbounded
//!   format: text                             # raw, text, json (default), msgpack
//!   metadata: [key, timestamp, headers]      # each record becomes {value, key, timestamp, ..}
//!   watermarks: {max_out_of_orderness: 5 s, idleness: 10 s}   # event time = Kafka timestamp
//! sink:
//!   connector: kafka
//!   topic: url-counts
//!   properties.bootstrap.servers: ${KAFKA_BOOTSTRAP}
//!   format: json                             # json (default), text, msgpack, raw
//!   key.field: url                           # default: the stream's key_by key, if any
//!   sink.delivery-guarantee: exactly-once    # or at-least-once (default)
//!   sink.transactional-id: weir-url-counts   # default weir-<job name>
//!   sink.commit-topic: __weir_sink_commits
//! ```

use std::time::Duration;

use serde_norway::Value;

use crate::config::{Ctx, JobError, describe, duration, get, join};

use super::{
    DEFAULT_COMMIT_TOPIC, Delivery, KafkaSinkSpec, KafkaSourceSpec, KafkaWatermarks, MetadataField, StartupMode,
    ValueFormat,
};
use crate::connectors::{SinkSpec, SourceSpec};

const SOURCE_KEYS: &[&str] = &[
    "connector",
    "topic",
    "scan.startup.mode",
    "scan.startup.timestamp-millis",
    "scan.bounded.mode",
    "format",
    "value.format",
    "metadata",
    "watermarks",
];

const SINK_KEYS: &[&str] = &[
    "connector",
    "topic",
    "format",
    "value.format",
    "key.field",
    "sink.delivery-guarantee",
    "sink.transactional-id",
    "sink.commit-topic",
];

/// The entries of a Kafka connector's mapping: `properties.*` (and a `properties` mapping)
/// apart, every other key checked against `allowed`.
type Entries<'v> = (Vec<(&'v str, &'v Value)>, Vec<(String, String)>);

fn entries<'v>(ctx: &Ctx, v: &'v Value, key: &str, allowed: &[&str]) -> Result<Entries<'v>, JobError> {
    let Value::Mapping(m) = v else {
        return Err(ctx.err(key, format!("expected a mapping, found {}", describe(v))));
    };
    let (mut out, mut properties) = (Vec::new(), Vec::new());
    for (k, val) in m {
        let Some(k) = k.as_str() else {
            return Err(ctx.err(key, format!("keys must be strings, found {}", describe(k))));
        };
        let child = join(key, k);
        if let Some(name) = k.strip_prefix("properties.") {
            properties.push((name.to_string(), property(ctx, val, &child)?));
        } else if k == "properties" {
            let Value::Mapping(props) = val else {
                return Err(
                    ctx.err(&child, format!("expected a mapping of librdkafka settings, found {}", describe(val)))
                );
            };
            for (pk, pv) in props {
                let name = pk.as_str().ok_or_else(|| ctx.err(&child, "setting names must be strings"))?;
                properties.push((name.to_string(), property(ctx, pv, &join(&child, name))?));
            }
        } else if allowed.contains(&k) {
            out.push((k, val));
        } else {
            return Err(ctx.err(
                &child,
                format!("unknown key; expected one of: {}, or properties.<librdkafka setting>", allowed.join(", ")),
            ));
        }
    }
    if !properties.iter().any(|(k, _)| k == "bootstrap.servers") {
        return Err(ctx.err(
            key,
            "the kafka connector needs `properties.bootstrap.servers` (e.g. 127.0.0.1:9092, or what `weir dev kafka` prints)",
        ));
    }
    Ok((out, properties))
}

fn property(ctx: &Ctx, v: &Value, key: &str) -> Result<String, JobError> {
    match v {
        Value::String(_) => ctx.string(v, key),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(ctx.err(key, format!("expected a string, number or boolean, found {}", describe(other)))),
    }
}

fn format(ctx: &Ctx, entries: &[(&str, &Value)], key: &str, default: ValueFormat) -> Result<ValueFormat, JobError> {
    let (name, v) = match (get(entries, "format"), get(entries, "value.format")) {
        (Some(v), _) => ("format", v),
        (None, Some(v)) => ("value.format", v),
        (None, None) => return Ok(default),
    };
    let key = join(key, name);
    let s = ctx.string(v, &key)?;
    ValueFormat::parse(&s)
        .ok_or_else(|| ctx.err(&key, format!("unknown format `{s}`; expected raw, text, json or msgpack")))
}

pub(in crate::connectors) fn parse_source(ctx: &Ctx, v: &Value, key: &str) -> Result<SourceSpec, JobError> {
    let (entries, properties) = entries(ctx, v, key, SOURCE_KEYS)?;
    let topic_key = join(key, "topic");
    let topics = match get(&entries, "topic") {
        None => return Err(ctx.err(key, "the kafka source needs `topic`, a topic or a list of topics")),
        Some(Value::Sequence(items)) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, t)| ctx.string(t, &format!("{topic_key}[{i}]")))
            .collect::<Result<_, _>>()?,
        Some(t) => vec![ctx.string(t, &topic_key)?],
    };
    let mode_key = join(key, "scan.startup.mode");
    let mode = get(&entries, "scan.startup.mode").map(|m| ctx.string(m, &mode_key)).transpose()?;
    let timestamp_key = join(key, "scan.startup.timestamp-millis");
    let timestamp = get(&entries, "scan.startup.timestamp-millis")
        .map(|t| ctx.number(t, &timestamp_key, 0, i64::MAX as u64))
        .transpose()?;
    let startup = match mode.as_deref().unwrap_or("earliest-offset") {
        "earliest-offset" => StartupMode::Earliest,
        "latest-offset" => StartupMode::Latest,
        "group-offsets" => StartupMode::GroupOffsets,
        "timestamp" => match timestamp {
            Some(ms) => StartupMode::Timestamp(ms as i64),
            None => return Err(ctx.err(&mode_key, "`timestamp` needs `scan.startup.timestamp-millis`")),
        },
        other => {
            return Err(ctx.err(
                &mode_key,
                format!("unknown mode `{other}`; expected earliest-offset, latest-offset, group-offsets or timestamp"),
            ));
        }
    };
    let bounded_key = join(key, "scan.bounded.mode");
    let bounded = match get(&entries, "scan.bounded.mode").map(|b| ctx.string(b, &bounded_key)).transpose()?.as_deref()
    {
        None | Some("unbounded") => false,
        Some("latest-offset") => true,
        Some(other) => {
            return Err(ctx.err(&bounded_key, format!("unknown mode `{other}`; expected unbounded or latest-offset")));
        }
    };
    let mut metadata = Vec::new();
    if let Some(m) = get(&entries, "metadata") {
        let metadata_key = join(key, "metadata");
        let Value::Sequence(items) = m else {
            return Err(ctx.err(&metadata_key, format!("expected a list of {}", MetadataField::NAMES)));
        };
        for (i, item) in items.iter().enumerate() {
            let k = format!("{metadata_key}[{i}]");
            let name = ctx.string(item, &k)?;
            let field = MetadataField::parse(&name)
                .ok_or_else(|| ctx.err(&k, format!("unknown metadata `{name}`; expected {}", MetadataField::NAMES)))?;
            metadata.push(field);
        }
    }
    let watermarks =
        get(&entries, "watermarks").map(|w| parse_watermarks(ctx, w, &join(key, "watermarks"))).transpose()?;
    Ok(SourceSpec::new(KafkaSourceSpec {
        topics,
        properties,
        startup,
        bounded,
        format: format(ctx, &entries, key, ValueFormat::Json)?,
        metadata,
        watermarks,
    }))
}

fn parse_watermarks(ctx: &Ctx, v: &Value, key: &str) -> Result<KafkaWatermarks, JobError> {
    let entries = ctx.map(v, key, &["max_out_of_orderness", "idleness"])?;
    let ms = |name: &str| -> Result<Option<Duration>, JobError> {
        get(&entries, name)
            .map(|d| duration(ctx, d, &join(key, name)).map(|ms| Duration::from_millis(ms as u64)))
            .transpose()
    };
    Ok(KafkaWatermarks {
        max_out_of_orderness: ms("max_out_of_orderness")?.unwrap_or_default(),
        idleness: ms("idleness")?,
    })
}

pub(in crate::connectors) fn parse_sink(ctx: &Ctx, v: &Value, key: &str) -> Result<SinkSpec, JobError> {
    let (entries, properties) = entries(ctx, v, key, SINK_KEYS)?;
    let string = |name: &str| get(&entries, name).map(|s| ctx.string(s, &join(key, name))).transpose();
    let topic = string("topic")?.ok_or_else(|| ctx.err(key, "the kafka sink needs `topic`"))?;
    let delivery_key = join(key, "sink.delivery-guarantee");
    let delivery = match string("sink.delivery-guarantee")?.as_deref() {
        None | Some("at-least-once") => Delivery::AtLeastOnce,
        Some("exactly-once") => Delivery::ExactlyOnce,
        Some(other) => {
            return Err(
                ctx.err(&delivery_key, format!("unknown guarantee `{other}`; expected exactly-once or at-least-once"))
            );
        }
    };
    Ok(SinkSpec::new(KafkaSinkSpec {
        topic,
        properties,
        format: format(ctx, &entries, key, ValueFormat::Json)?,
        key_field: string("key.field")?,
        delivery,
        transactional_id: string("sink.transactional-id")?,
        commit_topic: string("sink.commit-topic")?.unwrap_or_else(|| DEFAULT_COMMIT_TOPIC.to_string()),
    }))
}
