//! Keyed rolling aggregations built into the host: `count`, `sum`, `min`, `max`.
//!
//! As in Flink's `KeyedStream.sum/min/max`, every input record updates its key's aggregate
//! and emits the updated value at once (a changelog, not a final result). For `sum`, `min`
//! and `max` the emitted record is the key's first record with the aggregated field
//! replaced, as Flink's aggregators do; `count` emits `{"key": .., "count": n}`.
//!
//! State is in memory, per parallel instance, and goes into checkpoints as a blob.

use std::collections::HashMap;

use rmpv::Value;

use crate::record::{self, Batch};
use crate::task::DeadLetter;
use crate::task::{DeadLetters, Operator, OperatorError};
use crate::window::Number;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollingKind {
    Count,
    Sum(String),
    Min(String),
    Max(String),
}

impl RollingKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            RollingKind::Count => "count",
            RollingKind::Sum(_) => "sum",
            RollingKind::Min(_) => "min",
            RollingKind::Max(_) => "max",
        }
    }
}

pub struct RollingAggregate {
    name: String,
    kind: RollingKind,
    counts: HashMap<Vec<u8>, u64>,
    records: HashMap<Vec<u8>, Value>,
}

impl RollingAggregate {
    pub fn new(name: String, kind: RollingKind) -> Self {
        Self { name, kind, counts: HashMap::new(), records: HashMap::new() }
    }

    /// Fold one record into its key's aggregate; the new aggregate, encoded.
    fn update(&mut self, key: &[u8], value: &[u8]) -> Result<Vec<u8>, (String, String)> {
        let field = match &self.kind {
            RollingKind::Count => {
                let n = self.counts.entry(key.to_vec()).or_insert(0);
                *n += 1;
                let key_value = record::decode(key).map_err(|e| ("malformed-input".into(), e.to_string()))?;
                return Ok(record::encode(&Value::Map(vec![
                    (Value::from("key"), key_value),
                    (Value::from("count"), Value::from(*n)),
                ])));
            }
            RollingKind::Sum(f) | RollingKind::Min(f) | RollingKind::Max(f) => f.clone(),
        };
        let incoming = record::decode(value).map_err(|e| ("malformed-input".into(), e.to_string()))?;
        let missing =
            || ("missing-field".to_string(), format!("record has no field `{field}` to {}", self.kind.as_str()));
        let x = field_of(&incoming, &field).ok_or_else(missing)?;
        let x = Number::of(&x.as_ref())
            .ok_or_else(|| ("error".to_string(), format!("field `{field}` is {x}, not a number")))?;
        let Some(acc) = self.records.get_mut(key) else {
            // The key's first record is its aggregate as it is.
            let encoded = record::encode(&incoming);
            self.records.insert(key.to_vec(), incoming);
            return Ok(encoded);
        };
        let slot = field_mut(acc, &field).ok_or_else(missing)?;
        let current = Number::of(&slot.as_ref()).unwrap_or(x);
        // Min and max compare as f64 and keep the current value on a tie (or a NaN), as
        // they always have; the window aggregates compare integers exactly.
        *slot = match &self.kind {
            RollingKind::Sum(_) => current + x,
            RollingKind::Min(_) if x.as_f64() < current.as_f64() => x,
            RollingKind::Max(_) if x.as_f64() > current.as_f64() => x,
            RollingKind::Min(_) | RollingKind::Max(_) | RollingKind::Count => current,
        }
        .to_value();
        Ok(record::encode(acc))
    }
}

impl Operator for RollingAggregate {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        for i in 0..input.len() {
            let Some(key) = input.key(i) else {
                return Err(OperatorError::Failed {
                    operator: self.name.clone(),
                    message: "got a record without a key; a rolling aggregation must follow key_by".into(),
                });
            };
            match self.update(key, input.value(i)) {
                Ok(v) => out.push(&v),
                Err((kind, error)) => dead.push(DeadLetter::of_row(&self.name, &kind, error, &input, i)),
            }
        }
        Ok(())
    }

    fn snapshot(&mut self, _id: u64) -> Result<Option<Vec<u8>>, OperatorError> {
        let counts: Vec<(serde_bytes::ByteBuf, u64)> =
            self.counts.iter().map(|(k, n)| (serde_bytes::ByteBuf::from(k.clone()), *n)).collect();
        let records: Vec<(serde_bytes::ByteBuf, serde_bytes::ByteBuf)> = self
            .records
            .iter()
            .map(|(k, v)| (serde_bytes::ByteBuf::from(k.clone()), serde_bytes::ByteBuf::from(record::encode(v))))
            .collect();
        rmp_serde::to_vec(&(counts, records)).map(Some).map_err(|e| crate::task::bad_snapshot(&self.name, e))
    }

    fn restore(&mut self, blobs: &[&[u8]], owns: &dyn Fn(&[u8]) -> bool) -> Result<(), OperatorError> {
        type Stored = (Vec<(serde_bytes::ByteBuf, u64)>, Vec<(serde_bytes::ByteBuf, serde_bytes::ByteBuf)>);
        for blob in blobs {
            let (counts, records): Stored =
                rmp_serde::from_slice(blob).map_err(|e| crate::task::bad_snapshot(&self.name, e))?;
            self.counts.extend(counts.into_iter().filter(|(k, _)| owns(k)).map(|(k, n)| (k.into_vec(), n)));
            for (k, v) in records.into_iter().filter(|(k, _)| owns(k)) {
                let v = record::decode(&v).map_err(|e| crate::task::bad_snapshot(&self.name, e))?;
                self.records.insert(k.into_vec(), v);
            }
        }
        Ok(())
    }
}

fn field_of<'a>(v: &'a Value, field: &str) -> Option<&'a Value> {
    v.as_map()?.iter().find(|(k, _)| k.as_str() == Some(field)).map(|(_, v)| v)
}

fn field_mut<'a>(v: &'a mut Value, field: &str) -> Option<&'a mut Value> {
    match v {
        Value::Map(entries) => entries.iter_mut().find(|(k, _)| k.as_str() == Some(field)).map(|(_, v)| v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::record::from_json as rec;

    fn run(kind: RollingKind, rows: &[(&str, &str)]) -> (Vec<String>, DeadLetters) {
        let mut op = RollingAggregate::new("agg".into(), kind);
        let mut input = Batch::new();
        for (k, v) in rows {
            input.push_record(&rec(v), record::RowMeta { key: Some(&record::encode_str(k)), timestamp: None });
        }
        let (mut out, mut dead) = (Batch::new(), DeadLetters::default());
        op.process(input, &mut out, &mut dead).unwrap();
        (out.iter().map(|(v, _)| record::display_value(v)).collect(), dead)
    }

    #[test]
    fn count_emits_a_running_count_per_key() {
        let (out, _) = run(RollingKind::Count, &[("a", "1"), ("b", "1"), ("a", "1")]);
        assert_eq!(out, [r#"{"key":"a","count":1}"#, r#"{"key":"b","count":1}"#, r#"{"key":"a","count":2}"#]);
    }

    #[test]
    fn sum_keeps_the_first_record_and_sums_the_field() {
        let rows =
            [("a", r#"{"w":"a","n":2,"t":1}"#), ("a", r#"{"w":"a","n":3,"t":2}"#), ("a", r#"{"w":"a","n":0.5,"t":3}"#)];
        let (out, _) = run(RollingKind::Sum("n".into()), &rows);
        assert_eq!(out, [r#"{"w":"a","n":2,"t":1}"#, r#"{"w":"a","n":5,"t":1}"#, r#"{"w":"a","n":5.5,"t":1}"#]);
    }

    #[test]
    fn min_and_max() {
        let rows = [("a", r#"{"n":2}"#), ("a", r#"{"n":-3}"#), ("a", r#"{"n":7}"#)];
        assert_eq!(run(RollingKind::Min("n".into()), &rows).0, [r#"{"n":2}"#, r#"{"n":-3}"#, r#"{"n":-3}"#]);
        assert_eq!(run(RollingKind::Max("n".into()), &rows).0, [r#"{"n":2}"#, r#"{"n":2}"#, r#"{"n":7}"#]);
    }

    #[test]
    fn a_record_without_the_field_is_a_dead_letter_and_the_rest_goes_on() {
        let rows = [("a", r#"{"n":1}"#), ("a", r#"{"m":1}"#), ("a", r#"{"n":"x"}"#), ("a", r#"{"n":1}"#)];
        let (out, dead) = run(RollingKind::Sum("n".into()), &rows);
        assert_eq!(out, [r#"{"n":1}"#, r#"{"n":2}"#]);
        assert_eq!(dead.0.iter().map(|d| d.kind.as_str()).collect::<Vec<_>>(), ["missing-field", "error"]);
    }

    #[test]
    fn integer_overflow_turns_into_a_float() {
        assert_eq!(Number::Int(i64::MAX) + Number::Int(1), Number::Float(i64::MAX as f64 + 1.0));
    }
}
