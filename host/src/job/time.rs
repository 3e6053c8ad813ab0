//! Job-file syntax for event time and windows: `assign_timestamps`, `window`, durations.
//!
//! ```yaml
//! - assign_timestamps: {field: ts, max_out_of_orderness: 5 s, idleness: 1 min}   # idleness optional
//!   # (and `parallelism: n` to run n assigners, each with its own watermark)
//! - key_by: url
//! - window:
//!     tumbling: 1 min            # or sliding: {size: 5 min, slide: 1 min}, or session: {gap: 30 s}
//!     time: event                # or processing (the wall clock; no assign_timestamps needed)
//!     allowed_lateness: 10 s     # optional, event time only
//!     aggregate: count           # count | sum | min | max | avg, or plugin.function (a UDAF)
//!     field: latency_ms          # for sum, min, max, avg; for a UDAF, feed it only this field
//!     # or, instead of `aggregate`: process: plugin.function (a process-window function,
//!     # called with all of a window's records when it fires)
//! ```
//!
//! Durations are whole milliseconds (`5000`) or a number and a unit: `ms`, `s`, `min`
//! (or `m`), `h`, as in `5 s` or `1min`.

use serde_norway::Value;

use super::spec::{FnRef, parse_fn};
use crate::config::{Ctx, JobError, duration, get, join};
use crate::window::{AggregateKind, WindowAssigner};

/// A window step as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    pub assigner: WindowAssigner,
    pub processing_time: bool,
    pub allowed_lateness_ms: i64,
    pub aggregate: AggregateSpec,
}

/// A window's aggregate as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AggregateSpec {
    Builtin {
        kind: AggregateKind,
        field: Option<String>,
    },
    /// A UDAF, fed the whole record or one field.
    Udaf {
        function: FnRef,
        field: Option<String>,
    },
    /// A process-window function (`process: plugin.function`).
    Process {
        function: FnRef,
    },
}

/// `assign_timestamps` as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampsSpec {
    pub field: String,
    pub max_out_of_orderness_ms: i64,
    pub idleness_ms: Option<i64>,
}

/// `assign_timestamps: {field: ts, max_out_of_orderness: 5 s, idleness: 1 min, parallelism: 2}`
/// → the spec and the step's own parallelism, if set.
pub fn parse_assign_timestamps(ctx: &Ctx, v: &Value, key: &str) -> Result<(TimestampsSpec, Option<usize>), JobError> {
    let entries = ctx.map(v, key, &["field", "max_out_of_orderness", "idleness", "parallelism"])?;
    let parallelism =
        get(&entries, "parallelism").map(|p| ctx.number(p, &join(key, "parallelism"), 1, 1024)).transpose()?;
    let field = get(&entries, "field")
        .ok_or_else(|| ctx.err(key, "missing `field`: the record field holding the event time (ms or RFC 3339)"))?;
    let field = ctx.string(field, &join(key, "field"))?;
    let bound = match get(&entries, "max_out_of_orderness") {
        Some(b) => duration(ctx, b, &join(key, "max_out_of_orderness"))?,
        None => 0,
    };
    let idleness = get(&entries, "idleness").map(|i| duration(ctx, i, &join(key, "idleness"))).transpose()?;
    if idleness == Some(0) {
        return Err(ctx.err(&join(key, "idleness"), "an idle timeout must be longer than 0 ms"));
    }
    let spec = TimestampsSpec { field, max_out_of_orderness_ms: bound, idleness_ms: idleness };
    Ok((spec, parallelism.map(|p| p as usize)))
}

pub fn parse_window(
    ctx: &Ctx,
    v: &Value,
    key: &str,
    plugins: &[(String, std::path::PathBuf)],
) -> Result<WindowSpec, JobError> {
    let allowed =
        ["tumbling", "sliding", "session", "offset", "time", "allowed_lateness", "aggregate", "field", "process"];
    let entries = ctx.map(v, key, &allowed)?;
    let assigner = parse_assigner(ctx, &entries, key)?;
    let processing_time = match get(&entries, "time").map(|t| ctx.string(t, &join(key, "time"))).transpose()? {
        None => false,
        Some(t) if t == "event" => false,
        Some(t) if t == "processing" => true,
        Some(other) => {
            return Err(ctx.err(&join(key, "time"), format!("`{other}` is not a time; expected event or processing")));
        }
    };
    let allowed_lateness_ms = get(&entries, "allowed_lateness")
        .map(|l| duration(ctx, l, &join(key, "allowed_lateness")))
        .transpose()?
        .unwrap_or(0);
    if processing_time && allowed_lateness_ms > 0 {
        return Err(ctx.err(&join(key, "allowed_lateness"), "processing-time windows have no late records"));
    }
    let agg_key = join(key, "aggregate");
    let expected = "count, sum, min, max, avg, or plugin.function for a UDAF";
    if let Some(process) = get(&entries, "process") {
        let process_key = join(key, "process");
        if get(&entries, "aggregate").is_some() || get(&entries, "field").is_some() {
            return Err(ctx.err(
                &process_key,
                "a window has `aggregate` (with `field`) or `process`, not both: `process` gets the whole records",
            ));
        }
        let (function, _) = parse_fn(ctx, process, &process_key, plugins)?;
        let aggregate = AggregateSpec::Process { function };
        return Ok(WindowSpec { assigner, processing_time, allowed_lateness_ms, aggregate });
    }
    let name = get(&entries, "aggregate").ok_or_else(|| {
        ctx.err(
            key,
            format!("missing `aggregate` ({expected}), or `process: plugin.function` for a process-window function"),
        )
    })?;
    let field = get(&entries, "field").map(|f| ctx.string(f, &join(key, "field"))).transpose()?;
    let name = ctx.string(name, &agg_key)?;
    let kind = match name.as_str() {
        "count" => AggregateKind::Count,
        "sum" => AggregateKind::Sum,
        "min" => AggregateKind::Min,
        "max" => AggregateKind::Max,
        "avg" => AggregateKind::Avg,
        udaf if udaf.contains('.') => {
            let (function, _) = parse_fn(ctx, &Value::String(name.clone()), &agg_key, plugins)?;
            let aggregate = AggregateSpec::Udaf { function, field };
            return Ok(WindowSpec { assigner, processing_time, allowed_lateness_ms, aggregate });
        }
        other => {
            return Err(ctx.err(&agg_key, format!("unknown aggregate `{other}`; expected {expected}")));
        }
    };
    if kind != AggregateKind::Count && field.is_none() {
        return Err(ctx.err(&agg_key, "this aggregate needs `field`, the numeric field to aggregate"));
    }
    let aggregate = AggregateSpec::Builtin { kind, field };
    Ok(WindowSpec { assigner, processing_time, allowed_lateness_ms, aggregate })
}

/// The window of a `window:` (or a window join's `window:`) mapping's `entries`: exactly one
/// of `tumbling: <size>`, `sliding: {size, slide}` or `session: {gap}`, with an optional
/// `offset`.
pub(super) fn parse_assigner(ctx: &Ctx, entries: &[(&str, &Value)], key: &str) -> Result<WindowAssigner, JobError> {
    let offset = get(entries, "offset").map(|o| duration(ctx, o, &join(key, "offset"))).transpose()?.unwrap_or(0);
    let bad = |k: &str, e: crate::window::WindowConfigError| ctx.err(&join(key, k), e.to_string());
    let assigner = match (get(entries, "tumbling"), get(entries, "sliding"), get(entries, "session")) {
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
    Ok(assigner)
}
