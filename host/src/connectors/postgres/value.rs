//! Record values into PostgreSQL column types.
//!
//! A record's field becomes a statement parameter of exactly its column's type, converted
//! here rather than by the server, so that a value that does not fit fails with the field,
//! the value and the column named, before anything is sent. Types without a conversion
//! here (uuid, date, enums, arrays, ...) travel as text and the server casts them
//! (`$1::text::uuid`), so they work too, with the server's error when they do not fit.

use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use rmpv::Value;

/// What the sink knows how to convert into, by the type's `pg_type.typname`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// Sent as text and cast: exact, whatever the precision.
    Numeric,
    /// text, varchar, bpchar, name, citext.
    Text,
    /// json and jsonb: any value, as its JSON.
    Json,
    /// timestamp and timestamptz: epoch milliseconds or an RFC 3339 string.
    Timestamp,
    Bytea,
    /// Any other type, sent as text and cast to it (its `format_type` name) by the server.
    Other(String),
}

impl ColumnType {
    /// The type of a column whose `pg_type.typname` is `typname` and whose
    /// `format_type(...)` is `sql_type`.
    pub fn of(typname: &str, sql_type: &str) -> Self {
        match typname {
            "bool" => ColumnType::Bool,
            "int2" => ColumnType::Int2,
            "int4" => ColumnType::Int4,
            "int8" => ColumnType::Int8,
            "float4" => ColumnType::Float4,
            "float8" => ColumnType::Float8,
            "numeric" => ColumnType::Numeric,
            "text" | "varchar" | "bpchar" | "name" | "citext" => ColumnType::Text,
            "json" | "jsonb" => ColumnType::Json,
            "timestamp" | "timestamptz" => ColumnType::Timestamp,
            "bytea" => ColumnType::Bytea,
            _ => ColumnType::Other(sql_type.to_string()),
        }
    }

    /// The placeholder of parameter `n` in a statement: cast when the value travels as text.
    pub fn placeholder(&self, n: usize) -> String {
        match self {
            ColumnType::Numeric => format!("${n}::text::numeric"),
            ColumnType::Other(sql_type) => format!("${n}::text::{sql_type}"),
            _ => format!("${n}"),
        }
    }
}

/// One statement parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Null,
    Bool(bool),
    I16(i16),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Text(String),
    Json(serde_json::Value),
    Time(SystemTime),
    Bytes(Vec<u8>),
}

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Param::Null => Ok(IsNull::Yes),
            Param::Bool(v) => v.to_sql(ty, out),
            Param::I16(v) => v.to_sql(ty, out),
            Param::I32(v) => v.to_sql(ty, out),
            Param::I64(v) => v.to_sql(ty, out),
            Param::F32(v) => v.to_sql(ty, out),
            Param::F64(v) => v.to_sql(ty, out),
            Param::Text(v) => v.to_sql(ty, out),
            Param::Json(v) => v.to_sql(ty, out),
            Param::Time(v) => v.to_sql(ty, out),
            Param::Bytes(v) => v.to_sql(ty, out),
        }
    }

    /// The statement's parameter types come from the table's columns, and [`convert`]
    /// made the value for exactly that type.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A value that does not fit its column: what it is, for the error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfit(pub String);

/// Convert `value` for a column of type `ty`.
pub fn convert(value: &Value, ty: &ColumnType) -> Result<Param, Unfit> {
    let unfit = || Unfit(describe(value));
    if value.is_nil() {
        return Ok(Param::Null);
    }
    Ok(match ty {
        ColumnType::Bool => Param::Bool(value.as_bool().ok_or_else(unfit)?),
        ColumnType::Int2 => Param::I16(value.as_i64().and_then(|i| i16::try_from(i).ok()).ok_or_else(unfit)?),
        ColumnType::Int4 => Param::I32(value.as_i64().and_then(|i| i32::try_from(i).ok()).ok_or_else(unfit)?),
        ColumnType::Int8 => Param::I64(value.as_i64().ok_or_else(unfit)?),
        ColumnType::Float4 => Param::F32(number(value).ok_or_else(unfit)? as f32),
        ColumnType::Float8 => Param::F64(number(value).ok_or_else(unfit)?),
        ColumnType::Numeric => match value {
            Value::Integer(i) => Param::Text(i.to_string()),
            Value::F32(_) | Value::F64(_) => Param::Text(number(value).ok_or_else(unfit)?.to_string()),
            Value::String(s) => match s.as_str() {
                Some(text) if text.trim().parse::<f64>().is_ok() => Param::Text(text.trim().to_string()),
                _ => return Err(unfit()),
            },
            _ => return Err(unfit()),
        },
        ColumnType::Text => Param::Text(value.as_str().ok_or_else(unfit)?.to_string()),
        ColumnType::Json => Param::Json(crate::record::to_json_value(value)),
        ColumnType::Timestamp => {
            let millis = match value {
                Value::Integer(i) => i.as_i64().ok_or_else(unfit)?,
                Value::String(s) => crate::time::parse_rfc3339(s.as_str().ok_or_else(unfit)?).map_err(|_| unfit())?,
                _ => return Err(unfit()),
            };
            Param::Time(epoch_millis(millis).ok_or_else(unfit)?)
        }
        ColumnType::Bytea => match value {
            Value::Binary(b) => Param::Bytes(b.clone()),
            Value::String(s) => Param::Bytes(s.as_bytes().to_vec()),
            _ => return Err(unfit()),
        },
        ColumnType::Other(_) => match value {
            Value::String(s) => Param::Text(s.as_str().ok_or_else(unfit)?.to_string()),
            other => Param::Text(crate::record::to_json_value(other).to_string()),
        },
    })
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(i) => i.as_f64(),
        Value::F32(f) => Some(f64::from(*f)),
        Value::F64(f) => Some(*f),
        _ => None,
    }
}

fn epoch_millis(ms: i64) -> Option<SystemTime> {
    let offset = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 { SystemTime::UNIX_EPOCH.checked_add(offset) } else { SystemTime::UNIX_EPOCH.checked_sub(offset) }
}

/// A value for an error message: `text `abc``, `the number 5`, `null`.
pub fn describe(value: &Value) -> String {
    let json = crate::record::to_json_value(value);
    let short =
        |s: String| if s.chars().count() > 80 { format!("{}…", s.chars().take(80).collect::<String>()) } else { s };
    match value {
        Value::Nil => "null".to_string(),
        Value::Boolean(b) => format!("the boolean {b}"),
        Value::Integer(_) | Value::F32(_) | Value::F64(_) => format!("the number {json}"),
        Value::String(s) => format!("text `{}`", short(String::from_utf8_lossy(s.as_bytes()).into_owned())),
        Value::Binary(b) => format!("{} bytes of binary", b.len()),
        Value::Array(_) => format!("the list {}", short(json.to_string())),
        Value::Map(_) => format!("the map {}", short(json.to_string())),
        Value::Ext(..) => "an extension value".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(i: i64) -> Value {
        Value::from(i)
    }

    #[test]
    fn integers_fit_by_range() {
        assert_eq!(convert(&int(7), &ColumnType::Int2), Ok(Param::I16(7)));
        assert_eq!(convert(&int(70_000), &ColumnType::Int4), Ok(Param::I32(70_000)));
        assert_eq!(convert(&int(70_000), &ColumnType::Int2), Err(Unfit("the number 70000".into())));
        assert_eq!(convert(&Value::from("abc"), &ColumnType::Int8), Err(Unfit("text `abc`".into())));
        assert_eq!(convert(&Value::from(1.5), &ColumnType::Int8), Err(Unfit("the number 1.5".into())));
        assert_eq!(convert(&Value::Nil, &ColumnType::Int8), Ok(Param::Null));
    }

    #[test]
    fn numbers_floats_and_numerics() {
        assert_eq!(convert(&int(2), &ColumnType::Float8), Ok(Param::F64(2.0)));
        assert_eq!(convert(&Value::from(0.25), &ColumnType::Numeric), Ok(Param::Text("0.25".into())));
        assert_eq!(convert(&Value::from(" 12.50"), &ColumnType::Numeric), Ok(Param::Text("12.50".into())));
        assert!(convert(&Value::from("twelve"), &ColumnType::Numeric).is_err());
        assert_eq!(ColumnType::Numeric.placeholder(3), "$3::text::numeric");
        assert_eq!(ColumnType::of("uuid", "uuid").placeholder(1), "$1::text::uuid");
    }

    #[test]
    fn timestamps_from_millis_and_rfc3339() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(convert(&int(1_500), &ColumnType::Timestamp), Ok(Param::Time(at)));
        assert_eq!(convert(&Value::from("1970-01-01T00:00:01.5Z"), &ColumnType::Timestamp), Ok(Param::Time(at)));
        let before = SystemTime::UNIX_EPOCH - Duration::from_millis(1_000);
        assert_eq!(convert(&int(-1_000), &ColumnType::Timestamp), Ok(Param::Time(before)));
        assert!(convert(&Value::from("yesterday"), &ColumnType::Timestamp).is_err());
    }

    #[test]
    fn json_takes_anything_text_only_strings() {
        let map = Value::Map(vec![(Value::from("a"), int(1))]);
        assert_eq!(convert(&map, &ColumnType::Json), Ok(Param::Json(serde_json::json!({"a": 1}))));
        assert_eq!(convert(&map, &ColumnType::Text), Err(Unfit("the map {\"a\":1}".into())));
        assert_eq!(convert(&Value::from("x"), &ColumnType::Bytea), Ok(Param::Bytes(b"x".to_vec())));
        assert_eq!(convert(&Value::from(true), &ColumnType::Bool), Ok(Param::Bool(true)));
    }
}
