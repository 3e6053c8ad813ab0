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

use super::spec::{PipelineStep, StepSpec, parse_step};
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
}

impl InputSpec {
    fn names(&self) -> Vec<&str> {
        match self {
            InputSpec::Sources(_) => Vec::new(),
            InputSpec::Streams(v) => v.iter().map(String::as_str).collect(),
            InputSpec::Connect(a, b) => vec![a, b],
        }
    }

    /// The key naming the inputs, under the stream's key.
    fn key(&self) -> &'static str {
        match self {
            InputSpec::Sources(_) => "source",
            InputSpec::Streams(v) if v.len() == 1 => "from",
            InputSpec::Streams(_) => "union",
            InputSpec::Connect(..) => "connect",
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

const STREAM_KEYS: &[&str] = &["source", "from", "union", "connect", "pipeline"];

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
    let inputs: Vec<&str> =
        ["source", "from", "union", "connect"].into_iter().filter(|k| get(&entries, k).is_some()).collect();
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
        _ => {
            return Err(ctx.err(
                &key,
                "a stream takes its records from exactly one of `source`, `from` (a stream), `union` (streams) or `connect` (two keyed streams)",
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
            _ => {}
        }
    }
    Ok(())
}
