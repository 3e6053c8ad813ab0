//! Event time from a record field.
//!
//! Users of Flink write a `TimestampAssigner`; the common case, a field that already holds
//! the time, needs no plugin here: [`TimestampField`] reads epoch milliseconds (an integer,
//! or a float such as `1795600800123.0` from a JSON source) or an RFC 3339 string. The
//! record is walked with borrowed MessagePack values, so strings are not copied.

use rmpv::ValueRef;
use thiserror::Error;

use super::rfc3339::{Rfc3339Error, parse_rfc3339};

/// Why a record has no usable event time. Each names the field and shows the value, so a
/// dead-letter record says what to fix.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TimestampError {
    #[error("record is not valid MessagePack, so timestamp field `{field}` cannot be read: {reason}")]
    Decode { field: String, reason: String },
    #[error("record has no timestamp field `{field}` (it is {found})")]
    MissingField { field: String, found: String },
    #[error("timestamp field `{field}` holds {value}, which is neither epoch milliseconds nor an RFC 3339 string")]
    WrongType { field: String, value: String },
    #[error("timestamp field `{field}` holds {value}, outside the i64 millisecond range")]
    OutOfRange { field: String, value: String },
    #[error("timestamp field `{field}`: {source}")]
    Rfc3339 { field: String, source: Rfc3339Error },
}

/// Reads a record's event time from one top-level field of a MessagePack map.
///
/// ```
/// use weir::time::TimestampField;
/// let ts = TimestampField::new("at");
/// let record = weir::record::encode(&rmpv::Value::Map(vec![
///     ("at".into(), "2026-11-25T10:00:00.123Z".into()),
/// ]));
/// assert_eq!(ts.extract(&record), Ok(1_795_600_800_123));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampField {
    field: String,
}

impl TimestampField {
    pub fn new(field: impl Into<String>) -> Self {
        Self { field: field.into() }
    }

    pub fn field(&self) -> &str {
        &self.field
    }

    /// The event time of `record` in epoch milliseconds. Floats are floored, so a
    /// fractional millisecond belongs to the millisecond it started in.
    pub fn extract(&self, record: &[u8]) -> Result<i64, TimestampError> {
        let field = || self.field.clone();
        let value = rmpv::decode::read_value_ref(&mut &record[..])
            .map_err(|e| TimestampError::Decode { field: field(), reason: e.to_string() })?;
        let found = match &value {
            ValueRef::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, ValueRef::String(s) if s.as_bytes() == self.field.as_bytes()))
                .map(|(_, v)| v),
            _ => None,
        };
        let Some(found) = found else {
            let found = match value {
                ValueRef::Map(_) => "a map without it".to_string(),
                other => format!("not a map but {}", show(&other)),
            };
            return Err(TimestampError::MissingField { field: field(), found });
        };
        match found {
            ValueRef::Integer(i) => {
                i.as_i64().ok_or_else(|| TimestampError::OutOfRange { field: field(), value: show(found) })
            }
            ValueRef::F32(_) | ValueRef::F64(_) => {
                let f = match found {
                    ValueRef::F32(f) => f64::from(*f),
                    ValueRef::F64(f) => *f,
                    _ => f64::NAN,
                };
                // `as` saturates, so check the range first: NaN and infinities fail here too.
                let floored = f.floor();
                if floored.is_finite() && floored >= i64::MIN as f64 && floored < i64::MAX as f64 {
                    Ok(floored as i64)
                } else {
                    Err(TimestampError::OutOfRange { field: field(), value: show(found) })
                }
            }
            ValueRef::String(s) => match s.as_str() {
                Some(text) => parse_rfc3339(text).map_err(|source| TimestampError::Rfc3339 { field: field(), source }),
                None => Err(TimestampError::WrongType { field: field(), value: show(found) }),
            },
            other => Err(TimestampError::WrongType { field: field(), value: show(other) }),
        }
    }
}

/// A value for an error message, as compact JSON, cut short if long.
fn show(value: &ValueRef<'_>) -> String {
    let mut text = crate::record::to_json_value(&value.to_owned()).to_string();
    if text.len() > 80 {
        let cut = (0..=77).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::encode;
    use rmpv::Value;

    fn record(v: Value) -> Vec<u8> {
        encode(&Value::Map(vec![(Value::from("user"), Value::from("ada")), (Value::from("ts"), v)]))
    }

    #[test]
    fn reads_millis_floats_and_rfc3339() {
        let ts = TimestampField::new("ts");
        assert_eq!(ts.extract(&record(Value::from(1_795_600_800_123i64))), Ok(1_795_600_800_123));
        assert_eq!(ts.extract(&record(Value::from(-5))), Ok(-5));
        assert_eq!(ts.extract(&record(Value::F64(1_795_600_800_123.9))), Ok(1_795_600_800_123));
        // Floor, not truncation: -0.5 ms started in millisecond -1.
        assert_eq!(ts.extract(&record(Value::F64(-0.5))), Ok(-1));
        assert_eq!(ts.extract(&record(Value::F32(2.0))), Ok(2));
        assert_eq!(ts.extract(&record(Value::from("2026-11-25T11:00:00.123+01:00"))), Ok(1_795_600_800_123));
    }

    #[test]
    fn errors_name_the_field_and_the_value() {
        let ts = TimestampField::new("ts");
        let cases = [
            (record(Value::from("yesterday")), "timestamp field `ts`: `yesterday` is not an RFC 3339"),
            (record(Value::from(u64::MAX)), "holds 18446744073709551615, outside"),
            (record(Value::F64(f64::NAN)), "outside the i64 millisecond range"),
            (record(Value::F64(1e300)), "outside the i64 millisecond range"),
            (record(Value::Boolean(true)), "holds true, which is neither"),
            (record(Value::Nil), "holds null, which is neither"),
            (encode(&Value::Map(vec![])), "no timestamp field `ts` (it is a map without it)"),
            (encode(&Value::from(7)), "no timestamp field `ts` (it is not a map but 7)"),
            (vec![0x92, 0x01], "not valid MessagePack"),
        ];
        for (input, expected) in cases {
            let err = ts.extract(&input).expect_err(expected).to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let ts = TimestampField::new("ts");
        let err = ts.extract(&record(Value::Array(vec![Value::from("é"); 100]))).expect_err("array").to_string();
        assert!(err.contains("...") && err.len() < 250, "{err}");
    }
}
