//! Kafka message values to records and back: raw bytes, UTF-8 text, JSON, MessagePack; and
//! the metadata fields a source can add to each record.

use rdkafka::message::{BorrowedMessage, Headers, Message};

use crate::record;

/// How a message value is read or written (`format` / `value.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueFormat {
    /// Bytes as they are: a binary record (source); binary or string records' bytes (sink).
    Raw,
    /// UTF-8 text, one record per message (a trailing newline is dropped).
    Text,
    Json,
    MessagePack,
}

impl ValueFormat {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "raw" => ValueFormat::Raw,
            "text" | "lines" => ValueFormat::Text,
            "json" => ValueFormat::Json,
            "msgpack" | "messagepack" => ValueFormat::MessagePack,
            _ => return None,
        })
    }

    /// Append the record of message value `bytes` (MessagePack) to `out`; an error says why
    /// the value is not of this format.
    pub fn decode(self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            ValueFormat::Raw => {
                let _ = rmp::encode::write_bin(out, bytes);
                Ok(())
            }
            ValueFormat::Text => {
                let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text: {e}"))?;
                let text = text.strip_suffix('\n').map_or(text, |t| t.strip_suffix('\r').unwrap_or(t));
                record::write_str(out, text);
                Ok(())
            }
            ValueFormat::Json => record::json_to_msgpack(bytes, out).map_err(|e| e.to_string()),
            ValueFormat::MessagePack => {
                let mut rest = bytes;
                rmpv::decode::read_value_ref(&mut rest).map_err(|e| format!("not MessagePack: {e}"))?;
                if !rest.is_empty() {
                    return Err(format!("not one MessagePack value: {} bytes follow it", rest.len()));
                }
                out.extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    /// The message value of a record (MessagePack `value`).
    pub fn encode(self, value: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            ValueFormat::Json => record::msgpack_to_json(value, out).map_err(|e| e.to_string()),
            ValueFormat::MessagePack => {
                out.extend_from_slice(value);
                Ok(())
            }
            ValueFormat::Text => {
                out.extend_from_slice(record::display_value(value).as_bytes());
                Ok(())
            }
            ValueFormat::Raw => match record::decode(value).map_err(|e| e.to_string())? {
                rmpv::Value::Binary(b) => {
                    out.extend_from_slice(&b);
                    Ok(())
                }
                rmpv::Value::String(s) => {
                    out.extend_from_slice(s.as_bytes());
                    Ok(())
                }
                other => Err(format!("the raw format writes binary or string records, not {other}")),
            },
        }
    }
}

/// Message metadata a source can put into its records (`metadata`, Flink's metadata
/// columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataField {
    /// The message key as a string (binary when not UTF-8), nil without one.
    Key,
    /// The message timestamp, epoch ms.
    Timestamp,
    /// A map of header name to value (string, or binary when not UTF-8).
    Headers,
    Topic,
    Partition,
    Offset,
}

impl MetadataField {
    pub const NAMES: &'static str = "key, timestamp, headers, topic, partition, offset";

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "key" => MetadataField::Key,
            "timestamp" => MetadataField::Timestamp,
            "headers" => MetadataField::Headers,
            "topic" => MetadataField::Topic,
            "partition" => MetadataField::Partition,
            "offset" => MetadataField::Offset,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            MetadataField::Key => "key",
            MetadataField::Timestamp => "timestamp",
            MetadataField::Headers => "headers",
            MetadataField::Topic => "topic",
            MetadataField::Partition => "partition",
            MetadataField::Offset => "offset",
        }
    }
}

/// The record of `message`: its decoded value, or with `metadata` a map of `value` and the
/// metadata fields.
pub fn record_of(
    message: &BorrowedMessage<'_>,
    format: ValueFormat,
    metadata: &[MetadataField],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let payload = message.payload().unwrap_or_default();
    if metadata.is_empty() {
        return format.decode(payload, out);
    }
    let _ = rmp::encode::write_map_len(out, 1 + metadata.len() as u32);
    record::write_str(out, "value");
    format.decode(payload, out)?;
    for field in metadata {
        record::write_str(out, field.name());
        match field {
            MetadataField::Key => match message.key() {
                Some(key) => write_text_or_bin(out, key),
                None => {
                    let _ = rmp::encode::write_nil(out);
                }
            },
            MetadataField::Timestamp => match message.timestamp().to_millis() {
                Some(ms) => {
                    let _ = rmp::encode::write_sint(out, ms);
                }
                None => {
                    let _ = rmp::encode::write_nil(out);
                }
            },
            MetadataField::Headers => {
                let headers = message.headers();
                let count = headers.map_or(0, |h| h.count());
                let _ = rmp::encode::write_map_len(out, count as u32);
                for header in headers.iter().flat_map(|h| h.iter()) {
                    record::write_str(out, header.key);
                    match header.value {
                        Some(v) => write_text_or_bin(out, v),
                        None => {
                            let _ = rmp::encode::write_nil(out);
                        }
                    }
                }
            }
            MetadataField::Topic => record::write_str(out, message.topic()),
            MetadataField::Partition => {
                let _ = rmp::encode::write_sint(out, i64::from(message.partition()));
            }
            MetadataField::Offset => {
                let _ = rmp::encode::write_sint(out, message.offset());
            }
        }
    }
    Ok(())
}

fn write_text_or_bin(out: &mut Vec<u8>, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => record::write_str(out, s),
        Err(_) => {
            let _ = rmp::encode::write_bin(out, bytes);
        }
    }
}

/// The Kafka key of a record: field `field` of a map record, or the stream's key (the
/// MessagePack key of `key_by`); strings as their bytes, other values as JSON.
pub fn key_of(value: &[u8], field: Option<&str>, stream_key: Option<&[u8]>) -> Result<Option<Vec<u8>>, String> {
    let key = match field {
        Some(f) => record::field(value, f).map_err(|e| e.to_string())?,
        None => match stream_key {
            Some(k) if !k.is_empty() => k.to_vec(),
            _ => return Ok(None),
        },
    };
    Ok(Some(record::display_value(&key).into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(format: ValueFormat, bytes: &[u8]) -> Result<serde_json::Value, String> {
        let mut out = Vec::new();
        format.decode(bytes, &mut out)?;
        Ok(record::json_of(&out))
    }

    #[test]
    fn values_decode_by_format_and_bad_ones_say_why() {
        assert_eq!(decoded(ValueFormat::Json, br#"{"a":1}"#).unwrap(), serde_json::json!({"a": 1}));
        assert!(decoded(ValueFormat::Json, b"{not json").unwrap_err().contains("JSON"));
        assert_eq!(decoded(ValueFormat::Text, b"GET /\r\n").unwrap(), serde_json::json!("GET /"));
        assert!(decoded(ValueFormat::Text, &[0xff, 0xfe]).unwrap_err().contains("UTF-8"));
        assert_eq!(decoded(ValueFormat::Raw, &[1, 2]).unwrap(), serde_json::json!([1, 2]));
        let packed = record::from_json(r#"{"n":3}"#);
        assert_eq!(decoded(ValueFormat::MessagePack, &packed).unwrap(), serde_json::json!({"n": 3}));
        assert!(decoded(ValueFormat::MessagePack, &[0x92, 0x01]).is_err());
        let mut trailing = packed.clone();
        trailing.push(1);
        assert!(decoded(ValueFormat::MessagePack, &trailing).unwrap_err().contains("follow"));
    }

    #[test]
    fn records_encode_by_format_and_keys_come_from_a_field_or_the_stream() {
        let rec = record::from_json(r#"{"url":"/a","n":2}"#);
        let mut out = Vec::new();
        ValueFormat::Json.encode(&rec, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"url":"/a","n":2}"#);
        let mut out = Vec::new();
        assert!(ValueFormat::Raw.encode(&rec, &mut out).unwrap_err().contains("raw"));
        assert_eq!(key_of(&rec, Some("url"), None).unwrap(), Some(b"/a".to_vec()));
        assert_eq!(key_of(&rec, Some("n"), None).unwrap(), Some(b"2".to_vec()));
        assert!(key_of(&rec, Some("nope"), None).is_err());
        assert_eq!(key_of(&rec, None, Some(&record::encode_str("k"))).unwrap(), Some(b"k".to_vec()));
        assert_eq!(key_of(&rec, None, None).unwrap(), None);
    }
}
