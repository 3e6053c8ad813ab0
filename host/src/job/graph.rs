//! The graph form of a job file: named `streams:` and `sinks:` naming their input.
//!
//! ```yaml
//! streams:
//!   clicks: {source: {connector: file, path: clicks.jsonl, format: json}, pipeline: [...]}
//!   buys:   {source: {...}, pipeline: [..., key_by: user]}
//!   both:   {union: [clicks, more_clicks]}
//!   per_user:
//!     connect: [clicks_by_user, buys]        # two keyed streams
//!     pipeline: [process: profile.merge]     # a co-process function first
//!   alerts: {from: clicks, pipeline: [...]}  # a stream read by several (fan-out)
//! sinks:
//!   profiles: {input: per_user, connector: file, path: profiles.jsonl}
//! ```
//!
//! Streams may come in any order: they are sorted so each comes after those it reads. A
//! name that is no stream, a cycle, a stream nothing reads and a connect of an unkeyed
//! stream are errors at their key, naming both ends.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_norway::Value;

use super::spec::{KeySpec, PipelineStep, StepSpec, parse_step};
use crate::config::{Ctx, JobError, describe, get, join};
use crate::connectors::{SinkSpec, SourceSpec, parse_sink, parse_source};

/// A stream of a job file: `streams.<name>`, or the one-pipeline form's `source`, `union`
/// and `pipeline`.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub name: String,
    /// The key its settings are under (`streams.clicks`; empty in the one-pipeline form).
    pub key: String,
    pub input: InputSpec,
    pub pipeline: Vec<PipelineStep>,
}

impl StreamSpec {
    /// The key of its `pipeline` (for errors).
    pub fn pipeline_key(&self) -> String {
        join(&self.key, "pipeline")
    }

    /// The key naming its input (`source`, `from`, `union`, `connect`, `join`, ...).
    pub fn input_key(&self) -> &'static str {
        self.input.key()
    }

    /// Whether its records leave it keyed: its last step is `key_by`.
    fn ends_keyed(&self) -> Option<bool> {
        self.pipeline.last().map(|s| matches!(s.step, StepSpec::KeyBy(_)))
    }
}

/// Where a stream's records come from.
#[derive(Debug, Clone)]
pub enum InputSpec {
    /// `source:` (and in the one-pipeline form the `union:` sources after it).
    Sources(Vec<SourceSpec>),
    /// `from: a` (one stream) or `union: [a, b]`.
    Streams(Vec<String>),
    /// `connect: [a, b]`: two keyed streams into a co-process function.
    Connect(String, String),
    /// `join:`, `interval_join:` or `temporal_join:` of two streams.
    Join(JoinSpec),
}

/// A join of two streams by key: `{left, right, where, equal_to, ...}`.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    pub kind: JoinKind,
    pub left: String,
    pub right: String,
    /// The left stream's key (`where`); `None`: the left stream ends with key_by.
    pub left_key: Option<KeySpec>,
    /// The right stream's key (`equal_to`); `None`: the right stream ends with key_by.
    pub right_key: Option<KeySpec>,
}

/// How a join matches.
#[derive(Debug, Clone)]
pub enum JoinKind {
    /// `join` with `window:`: pairs in the same event-time window.
    Window(crate::window::WindowAssigner),
    /// `join` without `window:`: every pair, forgotten `ttl_ms` after arriving if given.
    Regular { ttl_ms: Option<i64> },
    /// `interval_join` with `between: {lower, upper}`: `L.ts + lower <= R.ts <= L.ts + upper`.
    Interval { lower_ms: i64, upper_ms: i64 },
    /// `temporal_join`: each left record with the right record in force at its time.
    Temporal,
}

impl InputSpec {
    fn names(&self) -> Vec<&str> {
        match self {
            InputSpec::Sources(_) => Vec::new(),
            InputSpec::Streams(v) => v.iter().map(String::as_str).collect(),
            InputSpec::Connect(a, b) => vec![a, b],
            InputSpec::Join(j) => vec![&j.left, &j.right],
        }
    }

    /// The key naming the inputs, under the stream's key.
    fn key(&self) -> &'static str {
        match self {
            InputSpec::Sources(_) => "source",
            InputSpec::Streams(v) if v.len() == 1 => "from",
            InputSpec::Streams(_) => "union",
            InputSpec::Connect(..) => "connect",
            InputSpec::Join(j) => match j.kind {
                JoinKind::Interval { .. } => "interval_join",
                JoinKind::Temporal => "temporal_join",
                _ => "join",
            },
        }
    }
}

/// A sink and the stream it writes.
#[derive(Debug, Clone)]
pub struct SinkEntry {
    pub name: String,
    pub key: String,
    pub input: String,
    pub spec: SinkSpec,
}

const STREAM_KEYS: &[&str] =
    &["source", "from", "union", "connect", "join", "interval_join", "temporal_join", "pipeline"];
const INPUTS: [&str; 7] = ["source", "from", "union", "connect", "join", "interval_join", "temporal_join"];

/// `streams:` and `sinks:`: the streams sorted so each comes after those it reads.
pub(super) fn parse(
    ctx: &Ctx,
    streams: &Value,
    sinks: &Value,
    plugins: &[(String, PathBuf)],
) -> Result<(Vec<StreamSpec>, Vec<SinkEntry>), JobError> {
    let Value::Mapping(m) = streams else {
        return Err(ctx.err(
            "streams",
            format!(
                "expected a mapping of stream name to its source or inputs and pipeline, found {}",
                describe(streams)
            ),
        ));
    };
    let mut parsed = Vec::new();
    for (k, v) in m {
        let name = k.as_str().ok_or_else(|| ctx.err("streams", "stream names must be strings"))?;
        parsed.push(parse_stream(ctx, name, v, plugins)?);
    }
    if parsed.is_empty() {
        return Err(ctx.err("streams", "a job needs at least one stream, e.g. `clicks: {source: {...}}`"));
    }
    let sinks = parse_sinks(ctx, sinks)?;
    check_names(ctx, &parsed, &sinks)?;
    let sorted = sort(ctx, parsed)?;
    check_read(ctx, &sorted, &sinks)?;
    check_keys(ctx, &sorted)?;
    Ok((sorted, sinks))
}

fn parse_stream(ctx: &Ctx, name: &str, v: &Value, plugins: &[(String, PathBuf)]) -> Result<StreamSpec, JobError> {
    let key = format!("streams.{name}");
    if !super::spec::valid_name(name) {
        return Err(ctx.err(&key, "a stream name may use letters, digits, `-` and `_` only"));
    }
    let entries = ctx.map(v, &key, STREAM_KEYS)?;
    let inputs: Vec<&str> = INPUTS.into_iter().filter(|k| get(&entries, k).is_some()).collect();
    let names = |k: &str, v: &Value| -> Result<Vec<String>, JobError> {
        let key = join(&key, k);
        match v {
            Value::Sequence(items) => items.iter().map(|i| ctx.string(i, &key)).collect(),
            other => Err(ctx.err(&key, format!("expected a list of stream names, found {}", describe(other)))),
        }
    };
    let input = match inputs[..] {
        ["source"] => InputSpec::Sources(vec![parse_source(
            ctx,
            get(&entries, "source").unwrap_or(&Value::Null),
            &join(&key, "source"),
        )?]),
        ["from"] => {
            let from = get(&entries, "from").unwrap_or(&Value::Null);
            InputSpec::Streams(vec![ctx.string(from, &join(&key, "from"))?])
        }
        ["union"] => {
            let v = names("union", get(&entries, "union").unwrap_or(&Value::Null))?;
            if v.len() < 2 {
                return Err(ctx.err(&join(&key, "union"), "a union takes two streams or more; to read one, use `from`"));
            }
            InputSpec::Streams(v)
        }
        ["connect"] => match &names("connect", get(&entries, "connect").unwrap_or(&Value::Null))?[..] {
            [a, b] => InputSpec::Connect(a.clone(), b.clone()),
            _ => {
                return Err(
                    ctx.err(&join(&key, "connect"), "connect takes two keyed streams, e.g. `connect: [clicks, buys]`")
                );
            }
        },
        [kind @ ("join" | "interval_join" | "temporal_join")] => {
            let v = get(&entries, kind).unwrap_or(&Value::Null);
            InputSpec::Join(parse_join(ctx, kind, v, &join(&key, kind), plugins)?)
        }
        _ => {
            return Err(ctx.err(
                &key,
                "a stream takes its records from exactly one of `source`, `from` (a stream), `union` (streams), `connect` (two keyed streams), `join`, `interval_join` or `temporal_join` (two streams)",
            ));
        }
    };
    let mut pipeline = Vec::new();
    if let Some(v) = get(&entries, "pipeline") {
        let pkey = join(&key, "pipeline");
        let Value::Sequence(steps) = v else {
            return Err(ctx.err(&pkey, format!("expected a list of steps, found {}", describe(v))));
        };
        for (i, step) in steps.iter().enumerate() {
            pipeline.push(parse_step(ctx, step, &format!("{pkey}[{i}]"), plugins)?);
        }
    }
    Ok(StreamSpec { name: name.to_string(), key, input, pipeline })
}

/// `join: {left, right, where, equal_to, window | ttl}`, `interval_join: {..., between:
/// {lower, upper}}` or `temporal_join: {...}`.
fn parse_join(
    ctx: &Ctx,
    kind: &str,
    v: &Value,
    key: &str,
    plugins: &[(String, PathBuf)],
) -> Result<JoinSpec, JobError> {
    let allowed: &[&str] = match kind {
        "join" => &["left", "right", "where", "equal_to", "window", "ttl"],
        "interval_join" => &["left", "right", "where", "equal_to", "between"],
        _ => &["left", "right", "where", "equal_to"],
    };
    let entries = ctx.map(v, key, allowed)?;
    let side = |k: &str| -> Result<String, JobError> {
        let v = get(&entries, k).ok_or_else(|| {
            ctx.err(
                key,
                format!("a join names its two streams: `left: <stream>` and `right: <stream>` (missing `{k}`)"),
            )
        })?;
        ctx.string(v, &join(key, k))
    };
    let (left, right) = (side("left")?, side("right")?);
    if left == right {
        return Err(ctx.err(&join(key, "right"), "a join reads two different streams (to join a stream with itself, read it with `from:` into a second stream)"));
    }
    let key_of = |k: &str| -> Result<Option<KeySpec>, JobError> {
        get(&entries, k).map(|v| super::spec::parse_key(ctx, v, &join(key, k), plugins)).transpose()
    };
    let (left_key, right_key) = (key_of("where")?, key_of("equal_to")?);
    let kind = match kind {
        "join" => match (get(&entries, "window"), get(&entries, "ttl")) {
            (Some(w), None) => {
                let wkey = join(key, "window");
                let w = ctx.map(w, &wkey, &["tumbling", "sliding", "session", "offset"])?;
                JoinKind::Window(super::time::parse_assigner(ctx, &w, &wkey)?)
            }
            (None, ttl) => {
                let ttl_ms = ttl.map(|t| crate::config::duration(ctx, t, &join(key, "ttl"))).transpose()?;
                if ttl_ms.is_some_and(|ms| ms < 1) {
                    return Err(ctx.err(
                        &join(key, "ttl"),
                        "a join's state TTL is at least 1 ms; leave it out to keep state for good",
                    ));
                }
                JoinKind::Regular { ttl_ms }
            }
            (Some(_), Some(_)) => {
                return Err(ctx.err(
                    &join(key, "ttl"),
                    "a window join forgets each window when it fires: `ttl` goes with a join without `window` only",
                ));
            }
        },
        "interval_join" => {
            let bkey = join(key, "between");
            let between = get(&entries, "between").ok_or_else(|| {
                ctx.err(
                    key,
                    "an interval join needs `between: {lower: -5 s, upper: 10 s}` (right.ts - left.ts within them)",
                )
            })?;
            let b = ctx.map(between, &bkey, &["lower", "upper"])?;
            let bound = |k: &str| -> Result<i64, JobError> {
                let v = get(&b, k)
                    .ok_or_else(|| ctx.err(&bkey, format!("missing `{k}` (a signed duration, e.g. `-5 s`)")))?;
                signed_duration(ctx, v, &join(&bkey, k))
            };
            let (lower_ms, upper_ms) = (bound("lower")?, bound("upper")?);
            if lower_ms > upper_ms {
                return Err(ctx.err(&bkey, format!("`lower` ({lower_ms} ms) is after `upper` ({upper_ms} ms)")));
            }
            JoinKind::Interval { lower_ms, upper_ms }
        }
        _ => JoinKind::Temporal,
    };
    Ok(JoinSpec { kind, left, right, left_key, right_key })
}

/// A duration that may be negative: `-5 s`, `10 s`, `0`.
fn signed_duration(ctx: &Ctx, v: &Value, key: &str) -> Result<i64, JobError> {
    if let Some(text) = v.as_str()
        && let Some(rest) = text.trim().strip_prefix('-')
    {
        let ms = crate::config::parse_duration_ms(rest.trim())
            .ok_or_else(|| ctx.err(key, format!("`{text}` is not a duration, e.g. `-5 s`")))?;
        return Ok(-ms);
    }
    if let Some(n) = v.as_i64() {
        return Ok(n);
    }
    crate::config::duration(ctx, v, key)
}

/// `sinks: {name: {input: stream, connector: ..., ...}}`.
fn parse_sinks(ctx: &Ctx, v: &Value) -> Result<Vec<SinkEntry>, JobError> {
    let Value::Mapping(m) = v else {
        return Err(ctx.err(
            "sinks",
            format!("expected a mapping of sink name to `{{input: stream, connector: ...}}`, found {}", describe(v)),
        ));
    };
    let mut sinks = Vec::new();
    for (k, v) in m {
        let name = k.as_str().ok_or_else(|| ctx.err("sinks", "sink names must be strings"))?;
        let key = format!("sinks.{name}");
        if !super::spec::valid_name(name) {
            return Err(ctx.err(&key, "a sink name may use letters, digits, `-` and `_` only"));
        }
        let mut v = v.clone();
        let input = match &mut v {
            Value::Mapping(m) => m.remove("input"),
            _ => None,
        };
        let Some(input) = input else {
            return Err(ctx.err(&key, "a sink names the stream it writes: `input: <stream>`"));
        };
        let input = ctx.string(&input, &join(&key, "input"))?;
        let spec = parse_sink(ctx, &v, &key)?;
        sinks.push(SinkEntry { name: name.to_string(), key, input, spec });
    }
    if sinks.is_empty() {
        return Err(ctx.err("sinks", "a job needs at least one sink"));
    }
    Ok(sinks)
}

/// Every name a stream or sink reads is a stream.
fn check_names(ctx: &Ctx, streams: &[StreamSpec], sinks: &[SinkEntry]) -> Result<(), JobError> {
    let known: Vec<&str> = streams.iter().map(|s| s.name.as_str()).collect();
    let unknown = |key: String, name: &str| {
        ctx.err(&key, format!("there is no stream `{name}` (the streams are: {})", known.join(", ")))
    };
    for s in streams {
        for name in s.input.names() {
            if !known.contains(&name) {
                return Err(unknown(join(&s.key, s.input.key()), name));
            }
            if name == s.name {
                return Err(ctx.err(&join(&s.key, s.input.key()), format!("stream `{name}` cannot read itself")));
            }
        }
    }
    for sink in sinks {
        if !known.contains(&sink.input.as_str()) {
            return Err(unknown(join(&sink.key, "input"), &sink.input));
        }
    }
    Ok(())
}

/// The streams in an order where each comes after the streams it reads; a cycle is an
/// error naming two streams on it.
fn sort(ctx: &Ctx, streams: Vec<StreamSpec>) -> Result<Vec<StreamSpec>, JobError> {
    let index: HashMap<&str, usize> = streams.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    // 0: not visited, 1: on the current path, 2: placed.
    let mut mark = vec![0u8; streams.len()];
    let mut order = Vec::with_capacity(streams.len());
    fn visit(
        i: usize,
        streams: &[StreamSpec],
        index: &HashMap<&str, usize>,
        mark: &mut [u8],
        order: &mut Vec<usize>,
    ) -> Result<(), (usize, usize)> {
        mark[i] = 1;
        for name in streams[i].input.names() {
            let j = index[name];
            match mark[j] {
                1 => return Err((i, j)),
                0 => visit(j, streams, index, mark, order)?,
                _ => {}
            }
        }
        mark[i] = 2;
        order.push(i);
        Ok(())
    }
    for i in 0..streams.len() {
        if mark[i] == 0
            && let Err((from, to)) = visit(i, &streams, &index, &mut mark, &mut order)
        {
            let (a, b) = (&streams[from], &streams[to]);
            return Err(ctx.err(
                &join(&a.key, a.input.key()),
                format!(
                    "streams `{}` and `{}` read each other (through the streams between them): a job's streams cannot form a cycle",
                    a.name, b.name
                ),
            ));
        }
    }
    let mut slots: Vec<Option<StreamSpec>> = streams.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

/// Every stream is read by a stream or a sink.
fn check_read(ctx: &Ctx, streams: &[StreamSpec], sinks: &[SinkEntry]) -> Result<(), JobError> {
    for s in streams {
        let read = streams.iter().any(|o| o.input.names().contains(&s.name.as_str()))
            || sinks.iter().any(|k| k.input == s.name);
        if !read {
            return Err(ctx.err(
                &s.key,
                format!(
                    "stream `{}` is read by no stream and no sink: write it to a sink (`sinks: {{out: {{input: {}, connector: print}}}}`) or remove it",
                    s.name, s.name
                ),
            ));
        }
    }
    Ok(())
}

/// Whether stream `name` leaves keyed (its last step is key_by, or it has no steps and
/// reads one keyed stream).
pub(super) fn keyed(streams: &[StreamSpec], name: &str) -> bool {
    let Some(s) = streams.iter().find(|s| s.name == name) else { return false };
    match (s.ends_keyed(), &s.input) {
        (Some(k), _) => k,
        (None, InputSpec::Streams(v)) if v.len() == 1 => keyed(streams, &v[0]),
        _ => false,
    }
}

/// A union takes unkeyed streams; connect takes two keyed streams into a process step.
fn check_keys(ctx: &Ctx, streams: &[StreamSpec]) -> Result<(), JobError> {
    for s in streams {
        match &s.input {
            InputSpec::Streams(v) if v.len() > 1 => {
                if let Some(k) = v.iter().find(|n| keyed(streams, n)) {
                    return Err(ctx.err(
                        &join(&s.key, "union"),
                        format!("stream `{k}` is keyed (it ends with key_by) but a union is not: key_by after the union, in `{}`", s.name),
                    ));
                }
            }
            InputSpec::Connect(a, b) => {
                let key = join(&s.key, "connect");
                match (keyed(streams, a), keyed(streams, b)) {
                    (true, true) => {}
                    (ka, _) => {
                        let (unkeyed, other) = if ka { (b, a) } else { (a, b) };
                        return Err(ctx.err(
                            &key,
                            format!(
                                "`{unkeyed}` is not keyed: connect joins two keyed streams (with `{other}`); end `{unkeyed}`'s pipeline with `- key_by: <field>`"
                            ),
                        ));
                    }
                }
                if !matches!(s.pipeline.first().map(|p| &p.step), Some(StepSpec::Process(_, None))) {
                    return Err(ctx.err(
                        &s.pipeline_key(),
                        "a connected stream starts with the co-process function that reads both inputs: `- process: plugin.function`",
                    ));
                }
            }
            InputSpec::Join(j) => {
                for (name, side_key, k) in [(&j.left, &j.left_key, "where"), (&j.right, &j.right_key, "equal_to")] {
                    if side_key.is_none() && !keyed(streams, name) {
                        return Err(ctx.err(
                            &join(&s.key, s.input.key()),
                            format!("stream `{name}` is not keyed: give its key with `{k}: <field>` (or end its pipeline with key_by)"),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}
