//! Built-in window aggregates: `count`, `sum`, `min`, `max` and `avg` over a numeric field.
//!
//! They follow the UDAF contract of the plugin ABI (create an accumulator, add, merge, get
//! the result) so the window operator treats built-ins and Wasm UDAFs alike, but run in
//! the host with no plugin call. An [`Accumulator`] is plain data with serde, so it is
//! stored per key and window in keyed state and checkpointed like a UDAF's bytes.
//!
//! Numbers keep their kind: integers sum exactly as `i64` and only fall back to `f64` on
//! overflow or when a float joins in; `avg` is always a float, as Flink SQL's AVG on
//! doubles. The result of `min`, `max` or `avg` over no records is nil.

use std::cmp::Ordering;
use std::ops::Add;

use rmpv::{Value, ValueRef};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Which built-in aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AggregateKind {
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

/// Why a record could not be aggregated, naming the field and the value.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AggregateError {
    #[error("record is not valid MessagePack, so field `{field}` cannot be aggregated: {reason}")]
    Decode { field: String, reason: String },
    #[error("record has no field `{field}` to aggregate")]
    MissingField { field: String },
    #[error("field `{field}` holds {value}, not a number")]
    NotANumber { field: String, value: String },
    #[error("cannot merge a {left:?} accumulator with a {right:?} one (state from another aggregate?)")]
    Mismatch { left: AggregateKind, right: AggregateKind },
}

/// A number as the record had it: integers stay integers until a float joins in or a sum
/// overflows. The window aggregates here and the rolling aggregates
/// (`operator::rolling`) both count with it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    /// A MessagePack number as a `Number` (an integer beyond `i64` as a float); `None` for
    /// any other value.
    pub fn of(value: &ValueRef<'_>) -> Option<Number> {
        match value {
            ValueRef::Integer(i) => {
                Some(i.as_i64().map_or_else(|| Number::Float(i.as_f64().unwrap_or(f64::NAN)), Number::Int))
            }
            ValueRef::F32(f) => Some(Number::Float(f64::from(*f))),
            ValueRef::F64(f) => Some(Number::Float(*f)),
            _ => None,
        }
    }

    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }

    fn cmp(self, other: Number) -> Ordering {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a.cmp(&b),
            (a, b) => a.as_f64().total_cmp(&b.as_f64()),
        }
    }

    /// The number as a MessagePack value, of the kind it has.
    pub fn to_value(self) -> Value {
        match self {
            Number::Int(i) => Value::from(i),
            Number::Float(f) => Value::F64(f),
        }
    }

    /// The number in field `field` of a MessagePack map record.
    pub fn from_field(record: &[u8], field: &str) -> Result<Number, AggregateError> {
        let value = rmpv::decode::read_value_ref(&mut &record[..])
            .map_err(|e| AggregateError::Decode { field: field.to_string(), reason: e.to_string() })?;
        let found = match &value {
            ValueRef::Map(entries) => {
                entries.iter().find(|(k, _)| matches!(k, ValueRef::String(s) if s.as_bytes() == field.as_bytes()))
            }
            _ => None,
        };
        let Some((_, found)) = found else {
            return Err(AggregateError::MissingField { field: field.to_string() });
        };
        Number::of(found).ok_or_else(|| AggregateError::NotANumber {
            field: field.to_string(),
            value: crate::record::to_json_value(&found.to_owned()).to_string(),
        })
    }
}

/// The sum, exact while both are integers and it fits in `i64`, else a float.
impl Add for Number {
    type Output = Number;

    fn add(self, other: Number) -> Number {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => {
                a.checked_add(b).map_or(Number::Float(a as f64 + b as f64), Number::Int)
            }
            (a, b) => Number::Float(a.as_f64() + b.as_f64()),
        }
    }
}

/// A built-in aggregate's running state for one key and window.
///
/// ```
/// use weir::window::{Accumulator, AggregateKind, Number};
/// let mut a = Accumulator::new(AggregateKind::Avg);
/// a.add(Number::Int(2));
/// let mut b = Accumulator::new(AggregateKind::Avg);
/// b.add(Number::Float(5.0));
/// a.merge(&b).unwrap(); // two sessions became one
/// assert_eq!(a.result(), rmpv::Value::F64(3.5));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Accumulator {
    Count(u64),
    Sum(Number),
    Min(Option<Number>),
    Max(Option<Number>),
    Avg { sum: f64, count: u64 },
}

impl Accumulator {
    /// The empty accumulator (the UDAF contract's `create-accumulator`).
    pub fn new(kind: AggregateKind) -> Self {
        match kind {
            AggregateKind::Count => Accumulator::Count(0),
            AggregateKind::Sum => Accumulator::Sum(Number::Int(0)),
            AggregateKind::Min => Accumulator::Min(None),
            AggregateKind::Max => Accumulator::Max(None),
            AggregateKind::Avg => Accumulator::Avg { sum: 0.0, count: 0 },
        }
    }

    pub fn kind(&self) -> AggregateKind {
        match self {
            Accumulator::Count(_) => AggregateKind::Count,
            Accumulator::Sum(_) => AggregateKind::Sum,
            Accumulator::Min(_) => AggregateKind::Min,
            Accumulator::Max(_) => AggregateKind::Max,
            Accumulator::Avg { .. } => AggregateKind::Avg,
        }
    }

    /// Fold in one record's value (`count` ignores it).
    pub fn add(&mut self, x: Number) {
        match self {
            Accumulator::Count(n) => *n = n.saturating_add(1),
            Accumulator::Sum(s) => *s = *s + x,
            Accumulator::Min(m) => *m = Some(m.map_or(x, |m| if x.cmp(m).is_lt() { x } else { m })),
            Accumulator::Max(m) => *m = Some(m.map_or(x, |m| if x.cmp(m).is_gt() { x } else { m })),
            Accumulator::Avg { sum, count } => {
                *sum += x.as_f64();
                *count = count.saturating_add(1);
            }
        }
    }

    /// Fold in one record, reading `field` unless this is a `count`.
    pub fn add_record(&mut self, record: &[u8], field: &str) -> Result<(), AggregateError> {
        let x = match self {
            Accumulator::Count(_) => Number::Int(0),
            _ => Number::from_field(record, field)?,
        };
        self.add(x);
        Ok(())
    }

    /// Fold in another accumulator of the same kind (session windows merging).
    pub fn merge(&mut self, other: &Accumulator) -> Result<(), AggregateError> {
        match (self, other) {
            (Accumulator::Count(a), Accumulator::Count(b)) => *a = a.saturating_add(*b),
            (Accumulator::Sum(a), Accumulator::Sum(b)) => *a = *a + *b,
            (a @ Accumulator::Min(_), Accumulator::Min(Some(b)))
            | (a @ Accumulator::Max(_), Accumulator::Max(Some(b))) => a.add(*b),
            (Accumulator::Min(_), Accumulator::Min(None)) | (Accumulator::Max(_), Accumulator::Max(None)) => {}
            (Accumulator::Avg { sum, count }, Accumulator::Avg { sum: s, count: c }) => {
                *sum += s;
                *count = count.saturating_add(*c);
            }
            (a, b) => return Err(AggregateError::Mismatch { left: a.kind(), right: b.kind() }),
        }
        Ok(())
    }

    /// The window's result as a MessagePack value.
    pub fn result(&self) -> Value {
        match self {
            Accumulator::Count(n) => Value::from(*n),
            Accumulator::Sum(s) => s.to_value(),
            Accumulator::Min(m) | Accumulator::Max(m) => m.map_or(Value::Nil, Number::to_value),
            Accumulator::Avg { count: 0, .. } => Value::Nil,
            Accumulator::Avg { sum, count } => Value::F64(sum / *count as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::encode;
    use AggregateKind::*;
    use proptest::prelude::*;

    fn rec(v: Value) -> Vec<u8> {
        encode(&Value::Map(vec![(Value::from("ms"), v)]))
    }

    #[test]
    fn aggregates_a_field() {
        let records = [rec(Value::from(120)), rec(Value::from(80)), rec(Value::F64(100.0))];
        let run = |kind| {
            let mut a = Accumulator::new(kind);
            records.iter().try_for_each(|r| a.add_record(r, "ms")).map(|()| a.result())
        };
        assert_eq!(run(Count), Ok(Value::from(3u64)));
        assert_eq!(run(Sum), Ok(Value::F64(300.0)), "a float turns the sum into a float");
        assert_eq!(run(Min), Ok(Value::from(80)), "min keeps the integer as it was");
        assert_eq!(run(Max), Ok(Value::from(120)));
        assert_eq!(run(Avg), Ok(Value::F64(100.0)), "(120 + 80 + 100) / 3");
        assert_eq!(Accumulator::new(Avg).result(), Value::Nil, "no records, no average");
        assert_eq!(Accumulator::new(Sum).result(), Value::from(0));
    }

    #[test]
    fn integer_sums_are_exact_until_they_overflow() {
        let mut a = Accumulator::new(Sum);
        a.add(Number::Int(i64::MAX - 1));
        a.add(Number::Int(1));
        assert_eq!(a.result(), Value::from(i64::MAX));
        a.add(Number::Int(1));
        assert_eq!(a.result(), Value::F64(i64::MAX as f64 + 1.0));
    }

    #[test]
    fn errors_name_field_and_value() {
        let mut a = Accumulator::new(Sum);
        let err = a.add_record(&rec(Value::from("fast")), "ms").unwrap_err().to_string();
        assert_eq!(err, "field `ms` holds \"fast\", not a number");
        let err = a.add_record(&rec(Value::from(1)), "latency").unwrap_err().to_string();
        assert_eq!(err, "record has no field `latency` to aggregate");
        assert!(Accumulator::new(Count).add_record(b"\xc1", "ms").is_ok(), "count reads no field");
        assert!(a.merge(&Accumulator::new(Min)).is_err());
    }

    #[test]
    fn accumulators_round_trip_through_messagepack() {
        let mut a = Accumulator::new(Max);
        a.add(Number::Float(2.5));
        let bytes = rmp_serde::to_vec(&a).expect("serialize");
        assert_eq!(rmp_serde::from_slice::<Accumulator>(&bytes).ok(), Some(a));
    }

    proptest! {
        #[test]
        fn merge_equals_adding_everything_to_one(kind in prop_oneof![Just(Count), Just(Sum), Just(Min), Just(Max), Just(Avg)], xs in prop::collection::vec(-1_000_000i64..1_000_000, 0..50), split in 0usize..50) {
            let split = split.min(xs.len());
            let (mut whole, mut left, mut right) = (Accumulator::new(kind), Accumulator::new(kind), Accumulator::new(kind));
            xs.iter().for_each(|&x| whole.add(Number::Int(x)));
            xs[..split].iter().for_each(|&x| left.add(Number::Int(x)));
            xs[split..].iter().for_each(|&x| right.add(Number::Int(x)));
            left.merge(&right).expect("same kind");
            prop_assert_eq!(left.result(), whole.result());
        }
    }
}
