//! Records and batches.
//!
//! A record's value is **MessagePack bytes**; the host decodes only what it must (a key field,
//! a value to print) and passes user payloads through untouched. Operators exchange
//! [`Batch`]es, which keep all values of a batch in one flat buffer with offsets: exactly
//! the shape of the plugin ABI's `batch` record, so a batch crosses into a Wasm plugin with
//! one copy and no per-record allocation. Keys (set by `key_by`) ride alongside in a second
//! flat buffer.

use std::fmt;

pub mod marshal;

use thiserror::Error;

/// Errors reading a value out of a record.
#[derive(Debug, Error)]
pub enum RecordError {
    #[error("record is not valid MessagePack: {0}")]
    Decode(String),
    #[error("record has no field `{field}` (it is {found})")]
    MissingField { field: String, found: String },
    #[error("cannot convert the record to JSON: {0}")]
    ToJson(String),
    #[error("cannot read JSON: {0}")]
    FromJson(String),
}

/// A batch of records: values in one flat buffer, row `i` at `data[offsets[i]..offsets[i+1]]`.
///
/// Invariant: `offsets` is non-empty, starts at 0, never decreases, and ends at `data.len()`;
/// `keys` and `timestamps`, when present, have exactly `len()` rows.
#[derive(Clone, PartialEq, Eq)]
pub struct Batch {
    data: Vec<u8>,
    offsets: Vec<u32>,
    keys: Option<Box<Batch>>,
    /// Event time per row in ms, [`NO_TIMESTAMP`] for rows without one.
    timestamps: Option<Vec<i64>>,
}

/// The event time of a record that has none (Flink's `Long.MIN_VALUE`).
pub const NO_TIMESTAMP: i64 = i64::MIN;

/// What travels with a record value: its key (after `key_by`) and its event time (after
/// `assign_timestamps`). Operators pass it on with every output row of an input row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowMeta<'a> {
    pub key: Option<&'a [u8]>,
    pub timestamp: Option<i64>,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(|(v, _)| crate::record::display_value(v))).finish()
    }
}

impl Batch {
    pub fn new() -> Self {
        Self::with_capacity(0, 0)
    }

    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self { data: Vec::with_capacity(bytes), offsets, keys: None, timestamps: None }
    }

    /// A batch from the flat parts of a plugin's output.
    ///
    /// Fails when the offsets break the invariant, which only a buggy plugin does.
    pub fn from_parts(data: Vec<u8>, offsets: Vec<u32>) -> Result<Self, String> {
        let valid = offsets.first() == Some(&0)
            && offsets.windows(2).all(|w| w[0] <= w[1])
            && offsets.last().map(|&l| l as usize) == Some(data.len());
        if !valid {
            return Err(format!(
                "malformed batch: {} offsets over {} bytes (offsets must start at 0, never \
                 decrease and end at the data length)",
                offsets.len(),
                data.len()
            ));
        }
        Ok(Self { data, offsets, keys: None, timestamps: None })
    }

    /// The flat parts, to hand to a plugin.
    pub fn into_parts(self) -> (Vec<u8>, Vec<u32>) {
        (self.data, self.offsets)
    }

    pub fn parts(&self) -> (&[u8], &[u32]) {
        (&self.data, &self.offsets)
    }

    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of all values.
    pub fn byte_len(&self) -> usize {
        self.data.len()
    }

    pub fn value(&self, i: usize) -> &[u8] {
        &self.data[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    pub fn key(&self, i: usize) -> Option<&[u8]> {
        self.keys.as_ref().map(|k| k.value(i))
    }

    pub fn has_keys(&self) -> bool {
        self.keys.is_some()
    }

    /// The event time of row `i`, if it has one.
    pub fn timestamp(&self, i: usize) -> Option<i64> {
        self.timestamps.as_ref().map(|t| t[i]).filter(|&t| t != NO_TIMESTAMP)
    }

    /// Key and event time of row `i`.
    pub fn meta(&self, i: usize) -> RowMeta<'_> {
        RowMeta { key: self.key(i), timestamp: self.timestamp(i) }
    }

    /// Whether any row carries a key or an event time (so rows cannot be moved as bare values).
    pub fn has_meta(&self) -> bool {
        self.keys.is_some() || self.timestamps.is_some()
    }

    /// Values and keys, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> + '_ {
        (0..self.len()).map(|i| (self.value(i), self.key(i)))
    }

    /// Append a record without key or event time. Doing so into a batch with either is a bug.
    pub fn push(&mut self, value: &[u8]) {
        debug_assert!(!self.has_meta(), "push without key or time into a batch with them");
        self.push_value(value);
    }

    /// Append a record with its key and event time, keeping the columns aligned.
    pub fn push_record(&mut self, value: &[u8], meta: RowMeta<'_>) {
        let appended = self.push_with_meta(meta, |buf| {
            buf.extend_from_slice(value);
            Ok::<(), std::convert::Infallible>(())
        });
        let Ok(()) = appended;
    }

    /// Append a record whose value `write` writes straight into the buffer, with its key
    /// and event time; an error from `write` leaves the batch unchanged and is returned.
    pub fn push_with_meta<E>(
        &mut self,
        meta: RowMeta<'_>,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.data.len();
        if let Err(e) = write(&mut self.data) {
            self.data.truncate(start);
            return Err(e);
        }
        let rows = self.len();
        match meta.timestamp {
            Some(t) => self.timestamps.get_or_insert_with(|| vec![NO_TIMESTAMP; rows]).push(t),
            None => {
                if let Some(ts) = self.timestamps.as_mut() {
                    ts.push(NO_TIMESTAMP);
                }
            }
        }
        match meta.key {
            Some(k) => {
                let keys = self.keys.get_or_insert_with(|| {
                    // Earlier unkeyed rows get empty keys so the columns stay aligned.
                    let mut keys = Batch::with_capacity(rows, 0);
                    (0..rows).for_each(|_| keys.push_value(&[]));
                    Box::new(keys)
                });
                keys.push_value(k);
            }
            None => {
                if let Some(keys) = self.keys.as_mut() {
                    keys.push_value(&[]);
                }
            }
        }
        self.offsets.push(offset(self.data.len()));
        Ok(())
    }

    /// Append a value whose bytes are written by `write` straight into the buffer (no
    /// temporary allocation), e.g. an encoder writing MessagePack.
    pub fn push_with<E>(&mut self, write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<(), E> {
        debug_assert!(!self.has_meta(), "push_with into a batch with keys or times");
        self.push_with_meta(RowMeta::default(), write)
    }

    fn push_value(&mut self, value: &[u8]) {
        self.data.extend_from_slice(value);
        self.offsets.push(offset(self.data.len()));
    }

    /// Keep the first `rows` rows.
    pub fn truncate(&mut self, rows: usize) {
        if rows < self.len() {
            self.data.truncate(self.offsets[rows] as usize);
            self.offsets.truncate(rows + 1);
            if let Some(keys) = self.keys.as_mut() {
                keys.truncate(rows);
            }
            if let Some(ts) = self.timestamps.as_mut() {
                ts.truncate(rows);
            }
        }
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.offsets.truncate(1);
        self.keys = None;
        self.timestamps = None;
    }
}

fn offset(len: usize) -> u32 {
    // A batch is bounded far below 4 GiB by the sources' batch sizes; exceeding it is a bug.
    u32::try_from(len).expect("batch larger than 4 GiB")
}

/// Encode a string as a MessagePack record value.
pub fn encode_str(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 5);
    write_str(&mut out, s);
    out
}

/// Write a string as MessagePack into `out`.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_str(out, s);
}

/// Decode MessagePack bytes into a dynamic value.
pub fn decode(value: &[u8]) -> Result<rmpv::Value, RecordError> {
    rmpv::decode::read_value(&mut &value[..]).map_err(|e| RecordError::Decode(e.to_string()))
}

/// Encode a dynamic value as MessagePack.
pub fn encode(value: &rmpv::Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, value);
    out
}

/// The MessagePack bytes of field `field` of a map record.
pub fn field(value: &[u8], field: &str) -> Result<Vec<u8>, RecordError> {
    let v = decode(value)?;
    let found = match &v {
        rmpv::Value::Map(entries) => {
            let hit = entries.iter().find(|(k, _)| k.as_str() == Some(field));
            if let Some((_, fv)) = hit {
                return Ok(encode(fv));
            }
            "a map without it".to_string()
        }
        other => format!("{} {}", kind_name(other), to_json_value(other)),
    };
    Err(RecordError::MissingField { field: field.to_string(), found })
}

fn kind_name(v: &rmpv::Value) -> &'static str {
    match v {
        rmpv::Value::Nil => "nil",
        rmpv::Value::Boolean(_) => "a boolean",
        rmpv::Value::Integer(_) | rmpv::Value::F32(_) | rmpv::Value::F64(_) => "a number",
        rmpv::Value::String(_) => "a string",
        rmpv::Value::Binary(_) => "binary",
        rmpv::Value::Array(_) => "an array",
        rmpv::Value::Map(_) => "a map",
        rmpv::Value::Ext(..) => "an extension value",
    }
}

/// Transcode MessagePack bytes to JSON text, appending to `out`.
pub fn msgpack_to_json(value: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
    let mut de = rmp_serde::Deserializer::from_read_ref(value);
    let mut ser = serde_json::Serializer::new(out);
    serde_transcode::transcode(&mut de, &mut ser).map_err(|e| RecordError::ToJson(e.to_string()))
}

/// Transcode JSON text to MessagePack, appending to `out`. Maps keep their field names.
pub fn json_to_msgpack(json: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let mut ser = rmp_serde::Serializer::new(out).with_struct_map();
    serde_transcode::transcode(&mut de, &mut ser).map_err(|e| RecordError::FromJson(e.to_string()))?;
    de.end().map_err(|e| RecordError::FromJson(e.to_string()))
}

/// A record from JSON text, for tests across the crate.
#[cfg(test)]
pub(crate) fn from_json(json: &str) -> Vec<u8> {
    let mut out = Vec::new();
    json_to_msgpack(json.as_bytes(), &mut out).expect("test JSON is valid");
    out
}

/// A value as JSON, for humans and dead-letter records (lossy for binary and ext values).
pub fn to_json_value(v: &rmpv::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        rmpv::Value::Nil => J::Null,
        rmpv::Value::Boolean(b) => J::Bool(*b),
        rmpv::Value::Integer(i) => i.as_i64().map(J::from).or_else(|| i.as_u64().map(J::from)).unwrap_or(J::Null),
        rmpv::Value::F32(f) => J::from(f64::from(*f)),
        rmpv::Value::F64(f) => J::from(*f),
        rmpv::Value::String(s) => J::String(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        rmpv::Value::Binary(b) => J::Array(b.iter().map(|x| J::from(*x)).collect()),
        rmpv::Value::Array(a) => J::Array(a.iter().map(to_json_value).collect()),
        rmpv::Value::Map(m) => J::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = match k.as_str() {
                        Some(s) => s.to_string(),
                        None => to_json_value(k).to_string(),
                    };
                    (key, to_json_value(v))
                })
                .collect(),
        ),
        rmpv::Value::Ext(_, bytes) => J::Array(bytes.iter().map(|x| J::from(*x)).collect()),
    }
}

/// A record value for humans: a string as itself, anything else as compact JSON, bytes that
/// are not MessagePack as an escaped byte string. This is what the print sink writes.
pub fn display_value(value: &[u8]) -> String {
    match decode(value) {
        Ok(rmpv::Value::String(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Ok(v) => to_json_value(&v).to_string(),
        Err(_) => format!("<{} bytes, not MessagePack: {}>", value.len(), value.escape_ascii()),
    }
}

/// A record value as JSON for dead-letter output.
pub fn json_of(value: &[u8]) -> serde_json::Value {
    match decode(value) {
        Ok(v) => to_json_value(&v),
        Err(_) => serde_json::Value::String(value.escape_ascii().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_rows_round_trip() {
        let mut b = Batch::new();
        b.push(b"a");
        b.push(b"");
        b.push(b"ccc");
        assert_eq!(b.len(), 3);
        assert_eq!(b.value(0), b"a");
        assert_eq!(b.value(1), b"");
        assert_eq!(b.value(2), b"ccc");
        let (data, offsets) = b.clone().into_parts();
        assert_eq!(offsets, vec![0, 1, 1, 4]);
        assert_eq!(Batch::from_parts(data, offsets).unwrap(), b);
        b.truncate(1);
        assert_eq!(b.parts(), (&b"a"[..], &[0u32, 1][..]));
    }

    #[test]
    fn from_parts_rejects_bad_offsets() {
        assert!(Batch::from_parts(b"abc".to_vec(), vec![0, 2, 1, 3]).is_err());
        assert!(Batch::from_parts(b"abc".to_vec(), vec![0, 2]).is_err());
        assert!(Batch::from_parts(b"abc".to_vec(), vec![]).is_err());
        assert!(Batch::from_parts(b"abc".to_vec(), vec![1, 3]).is_err());
    }

    #[test]
    fn keys_and_times_stay_aligned() {
        let mut b = Batch::new();
        b.push_record(b"x", RowMeta::default());
        b.push_record(b"y", RowMeta { key: Some(b"k"), timestamp: None });
        b.push_record(b"z", RowMeta { key: None, timestamp: Some(7) });
        assert_eq!(b.key(0), Some(&b""[..]));
        assert_eq!(b.key(1), Some(&b"k"[..]));
        assert_eq!(b.key(2), Some(&b""[..]));
        assert_eq!((b.timestamp(0), b.timestamp(1), b.timestamp(2)), (None, None, Some(7)));
        b.truncate(2);
        assert_eq!(b.meta(1), RowMeta { key: Some(b"k"), timestamp: None });
    }

    #[test]
    fn json_round_trip_keeps_field_names() {
        let mut mp = Vec::new();
        json_to_msgpack(br#"{"name":"ada","n":[1,2.5,null,true]}"#, &mut mp).unwrap();
        let mut json = Vec::new();
        msgpack_to_json(&mp, &mut json).unwrap();
        assert_eq!(std::str::from_utf8(&json).unwrap(), r#"{"name":"ada","n":[1,2.5,null,true]}"#);
        assert_eq!(display_value(&mp), r#"{"name":"ada","n":[1,2.5,null,true]}"#);
    }

    #[test]
    fn json_with_trailing_garbage_is_an_error() {
        assert!(json_to_msgpack(br#"{"a":1} x"#, &mut Vec::new()).is_err());
    }

    #[test]
    fn field_reads_one_field_and_names_what_is_missing() {
        let mut mp = Vec::new();
        json_to_msgpack(br#"{"user":"ada","n":3}"#, &mut mp).unwrap();
        assert_eq!(field(&mp, "user").unwrap(), encode_str("ada"));
        let err = field(&mp, "url").unwrap_err().to_string();
        assert!(err.contains("no field `url`"), "{err}");
        let err = field(&encode_str("hi"), "url").unwrap_err().to_string();
        assert!(err.contains("a string \"hi\""), "{err}");
    }

    #[test]
    fn display_strings_raw_and_others_as_json() {
        assert_eq!(display_value(&encode_str("HELLO")), "HELLO");
        assert_eq!(display_value(&encode(&rmpv::Value::from(42))), "42");
        assert!(display_value(&[0x92, 0x01]).contains("not MessagePack"));
    }
}
