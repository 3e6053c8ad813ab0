//! Job-file syntax for event time and windows: `assign_timestamps`, `window`, durations.
//!
//! ```yaml
//! - assign_timestamps: {field: ts, max_out_of_orderness: 5 s}
//! - key_by: url
//! - window:
//!     tumbling: 1 min            # or sliding: {size: 5 min, slide: 1 min}, or session: {gap: 30 s}
//!     allowed_lateness: 10 s     # optional
//!     aggregate: count           # count | sum | min | max | avg
//!     field: latency_ms          # for sum, min, max, avg
//! ```
//!
//! Durations are whole milliseconds (`5000`) or a number and a unit: `ms`, `s`, `min`
//! (or `m`), `h`, as in `5 s` or `1min`.

use serde_norway::Value;

use super::JobError;
use super::spec::{Ctx, describe, get, join};
use crate::operator::WindowAggregate;
use crate::window::{AggregateKind, WindowAssigner};

/// A window step as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    pub assigner: WindowAssigner,
    pub allowed_lateness_ms: i64,
    pub aggregate: WindowAggregate,
}

/// Milliseconds in a duration like `5 s`, `1min`, `250 ms` or `5000`.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().ok()?;
    let per = match unit.trim() {
        "" | "ms" => 1,
        "s" | "sec" | "second" | "seconds" => 1_000,
        "m" | "min" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(per)
}

fn duration(ctx: &Ctx, v: &Value, key: &str) -> Result<i64, JobError> {
    let ms = match v {
        Value::Number(n) => n.as_i64().filter(|n| *n >= 0),
        Value::String(s) => parse_duration_ms(s),
        _ => None,
    };
    ms.ok_or_else(|| {
        ctx.err(
            key,
            format!(
                "expected a duration like `5 s`, `1 min` or `500 ms` (or whole milliseconds), found {}",
                describe(v)
            ),
        )
    })
}

/// `assign_timestamps: {field: ts, max_out_of_orderness: 5 s}` → (field, bound in ms).
pub fn parse_assign_timestamps(ctx: &Ctx, v: &Value, key: &str) -> Result<(String, i64), JobError> {
    let entries = ctx.map(v, key, &["field", "max_out_of_orderness"])?;
    let field = get(&entries, "field")
        .ok_or_else(|| ctx.err(key, "missing `field`: the record field holding the event time (ms or RFC 3339)"))?;
    let field = ctx.string(field, &join(key, "field"))?;
    let bound = match get(&entries, "max_out_of_orderness") {
        Some(b) => duration(ctx, b, &join(key, "max_out_of_orderness"))?,
        None => 0,
    };
    Ok((field, bound))
}

pub fn parse_window(ctx: &Ctx, v: &Value, key: &str) -> Result<WindowSpec, JobError> {
    let entries =
        ctx.map(v, key, &["tumbling", "sliding", "session", "offset", "allowed_lateness", "aggregate", "field"])?;
    let offset = get(&entries, "offset").map(|o| duration(ctx, o, &join(key, "offset"))).transpose()?.unwrap_or(0);
    let bad = |k: &str, e: crate::window::WindowConfigError| ctx.err(&join(key, k), e.to_string());
    let assigner = match (get(&entries, "tumbling"), get(&entries, "sliding"), get(&entries, "session")) {
        (Some(size), None, None) => WindowAssigner::tumbling(duration(ctx, size, &join(key, "tumbling"))?, offset)
            .map_err(|e| bad("tumbling", e))?,
        (None, Some(sliding), None) => {
            let k = join(key, "sliding");
            let s = ctx.map(sliding, &k, &["size", "slide"])?;
            let size = get(&s, "size").ok_or_else(|| ctx.err(&k, "missing `size`"))?;
            let slide = get(&s, "slide").ok_or_else(|| ctx.err(&k, "missing `slide`"))?;
            let (size, slide) = (duration(ctx, size, &join(&k, "size"))?, duration(ctx, slide, &join(&k, "slide"))?);
            WindowAssigner::sliding(size, slide, offset).map_err(|e| bad("sliding", e))?
        }
        (None, None, Some(session)) => {
            let k = join(key, "session");
            let s = ctx.map(session, &k, &["gap"])?;
            let gap = get(&s, "gap").ok_or_else(|| ctx.err(&k, "missing `gap`"))?;
            WindowAssigner::session(duration(ctx, gap, &join(&k, "gap"))?).map_err(|e| bad("session", e))?
        }
        _ => {
            return Err(ctx.err(
                key,
                "a window is exactly one of `tumbling: <size>`, `sliding: {size, slide}` or `session: {gap}`",
            ));
        }
    };
    let allowed_lateness_ms = get(&entries, "allowed_lateness")
        .map(|l| duration(ctx, l, &join(key, "allowed_lateness")))
        .transpose()?
        .unwrap_or(0);
    let agg_key = join(key, "aggregate");
    let name =
        get(&entries, "aggregate").ok_or_else(|| ctx.err(key, "missing `aggregate` (count, sum, min, max or avg)"))?;
    let kind = match ctx.string(name, &agg_key)?.as_str() {
        "count" => AggregateKind::Count,
        "sum" => AggregateKind::Sum,
        "min" => AggregateKind::Min,
        "max" => AggregateKind::Max,
        "avg" => AggregateKind::Avg,
        other => {
            return Err(ctx.err(&agg_key, format!("unknown aggregate `{other}`; expected count, sum, min, max or avg")));
        }
    };
    let field = get(&entries, "field").map(|f| ctx.string(f, &join(key, "field"))).transpose()?;
    if kind != AggregateKind::Count && field.is_none() {
        return Err(ctx.err(&agg_key, "this aggregate needs `field`, the numeric field to aggregate"));
    }
    Ok(WindowSpec { assigner, allowed_lateness_ms, aggregate: WindowAggregate::Builtin { kind, field } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("5000"), Some(5000));
        assert_eq!(parse_duration_ms("5 s"), Some(5000));
        assert_eq!(parse_duration_ms("1min"), Some(60_000));
        assert_eq!(parse_duration_ms("2 h"), Some(7_200_000));
        assert_eq!(parse_duration_ms("250 ms"), Some(250));
        assert_eq!(parse_duration_ms("5 weeks"), None);
        assert_eq!(parse_duration_ms("-5 s"), None);
        assert_eq!(parse_duration_ms("s"), None);
    }
}
