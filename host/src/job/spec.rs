//! The job file's schema, and its validation into a [`JobSpec`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_norway::Value;

use super::graph::{InputSpec, JoinKind, SinkEntry, StreamSpec};
use super::time::{AggregateSpec, TimestampsSpec, WindowSpec};
use crate::checkpoint::CheckpointConfig;
use crate::config::{Ctx, JobError, Lines, describe, get, join};
use crate::connectors::{SinkSpec, SourceSpec, parse_sink, parse_source};
use crate::deploy::RollbackPolicy;
use crate::env::{DataStream, EnvError, KeySelector, KeyedStream, PluginRef, StreamEnvironment};
use crate::graph::BroadcastInput;
use crate::plugin::{FunctionKind, SandboxLimits};

/// `plugin.function`, as written in a pipeline step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FnRef {
    pub plugin: String,
    pub function: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySpec {
    Field(String),
    Function(FnRef),
}

/// One step of `pipeline:`, with its parallelism and uid if the file sets them.
#[derive(Debug, Clone)]
pub struct PipelineStep {
    pub step: StepSpec,
    pub parallelism: Option<usize>,
    /// `uid:` beside the step's kind (Flink's operator uid): what keys its state.
    pub uid: Option<String>,
}

#[derive(Debug, Clone)]
pub enum StepSpec {
    Map(FnRef),
    Filter(FnRef),
    FlatMap(FnRef),
    KeyBy(KeySpec),
    Count,
    Sum(String),
    Min(String),
    Max(String),
    /// Event time from a field, with a bound on out-of-orderness and idleness.
    AssignTimestamps(TimestampsSpec),
    Window(WindowSpec),
    /// A keyed process function, optionally connected to a broadcast stream.
    Process(FnRef, Option<BroadcastInput>),
    /// How the next step reads the stream: `partition: rebalance | rescale | shuffle |
    /// broadcast | global` (Flink's `rebalance()` and friends).
    Partition(crate::task::Partitioning),
}

/// A validated job file. Paths are resolved against the job file's folder.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub file: PathBuf,
    lines: Lines,
    pub name: String,
    pub parallelism: Option<usize>,
    pub max_parallelism: Option<u16>,
    pub batch_size: Option<usize>,
    pub limits: SandboxLimits,
    /// Alias and file of each plugin, in file order.
    pub plugins: Vec<(String, PathBuf)>,
    /// The job's streams, each after those it reads: `streams:`, or the one stream of the
    /// `source:` (+ `union:`) and `pipeline:` form, named `main`.
    pub streams: Vec<StreamSpec>,
    /// `sinks:`, or the one `sink:` (named `sink`, writing `main`).
    pub sinks: Vec<SinkEntry>,
    pub dead_letter: SinkSpec,
    pub late_data: Option<SinkSpec>,
    /// Where keyed state lives (sled); `None`: a temporary directory, gone after the job.
    pub state_dir: Option<PathBuf>,
    /// When a deployed plugin version is rolled back by itself (`hot_deploy:`).
    pub rollback_policy: RollbackPolicy,
    /// Periodic checkpoints (`checkpoints:`); `None`: off.
    pub checkpoints: Option<CheckpointConfig>,
}

const TOP_KEYS: &[&str] = &[
    "name",
    "parallelism",
    "max_parallelism",
    "batch_size",
    "limits",
    "plugins",
    "source",
    "union",
    "pipeline",
    "sink",
    "streams",
    "sinks",
    "dead_letter",
    "late_data",
    "state_dir",
    "hot_deploy",
    "checkpoints",
];
const STEP_KINDS: &str =
    "map, filter, flat_map, key_by, count, sum, min, max, assign_timestamps, window, process, partition";

pub(super) fn parse(text: &str, file: &Path, base: &Path) -> Result<JobSpec, JobError> {
    let doc: Value = serde_norway::from_str(text).map_err(|e| JobError {
        file: file.to_path_buf(),
        line: e.location().map(|l| l.line()),
        key: String::new(),
        message: format!("not valid YAML: {e}"),
    })?;
    let ctx = Ctx::new(file, base, Lines::index(text));
    let top = ctx.map(&doc, "", TOP_KEYS)?;
    let required = |key: &str| get(&top, key).ok_or_else(|| ctx.err("", format!("missing the required key `{key}`")));

    let name = ctx.string(required("name")?, "name")?;
    let parallelism =
        get(&top, "parallelism").map(|v| ctx.number(v, "parallelism", 1, 1024)).transpose()?.map(|n| n as usize);
    let max_parallelism =
        get(&top, "max_parallelism").map(|v| ctx.number(v, "max_parallelism", 1, 32768)).transpose()?.map(|n| n as u16);
    let batch_size =
        get(&top, "batch_size").map(|v| ctx.number(v, "batch_size", 1, 1 << 20)).transpose()?.map(|n| n as usize);
    let limits = match get(&top, "limits") {
        Some(v) => parse_limits(&ctx, v)?,
        None => SandboxLimits::default(),
    };
    let mut plugins = Vec::new();
    if let Some(v) = get(&top, "plugins") {
        let Value::Mapping(m) = v else {
            return Err(
                ctx.err("plugins", format!("expected a mapping of plugin name to .wasm file, found {}", describe(v)))
            );
        };
        for (k, p) in m {
            let alias = k.as_str().ok_or_else(|| ctx.err("plugins", "plugin names must be strings"))?;
            let key = format!("plugins.{alias}");
            if !valid_name(alias) {
                return Err(ctx.err(&key, "a plugin name may use letters, digits, `-` and `_` only"));
            }
            plugins.push((alias.to_string(), ctx.path(&ctx.string(p, &key)?)));
        }
    }
    let (streams, sinks) = match get(&top, "streams") {
        Some(streams) => {
            if let Some(k) = ["source", "union", "pipeline", "sink"].into_iter().find(|k| get(&top, k).is_some()) {
                return Err(ctx.err(
                    k,
                    "a job with `streams:` names its sources under each stream and writes `sinks:`; move this into a stream (or a sink)",
                ));
            }
            let sinks = get(&top, "sinks").ok_or_else(|| {
                ctx.err(
                    "",
                    "a job with `streams:` needs `sinks:`, e.g. `sinks: {out: {input: <stream>, connector: print}}`",
                )
            })?;
            super::graph::parse(&ctx, streams, sinks, &plugins)?
        }
        None => {
            if get(&top, "sinks").is_some() {
                return Err(ctx.err("sinks", "`sinks:` go with `streams:`; a job with one `pipeline:` has one `sink:`"));
            }
            let mut sources = vec![parse_source(&ctx, required("source")?, "source")?];
            if let Some(v) = get(&top, "union") {
                let Value::Sequence(list) = v else {
                    return Err(ctx.err(
                        "union",
                        format!("expected a list of sources whose records join the source's, found {}", describe(v)),
                    ));
                };
                for (i, s) in list.iter().enumerate() {
                    sources.push(parse_source(&ctx, s, &format!("union[{i}]"))?);
                }
            }
            let mut pipeline = Vec::new();
            if let Some(v) = get(&top, "pipeline") {
                let Value::Sequence(steps) = v else {
                    return Err(
                        ctx.err("pipeline", format!("expected a list of steps ({STEP_KINDS}), found {}", describe(v)))
                    );
                };
                for (i, step) in steps.iter().enumerate() {
                    pipeline.push(parse_step(&ctx, step, &format!("pipeline[{i}]"), &plugins)?);
                }
            }
            let sink = parse_sink(&ctx, required("sink")?, "sink")?;
            let main =
                StreamSpec { name: "main".into(), key: String::new(), input: InputSpec::Sources(sources), pipeline };
            let sink = SinkEntry { name: "sink".into(), key: "sink".into(), input: "main".into(), spec: sink };
            (vec![main], vec![sink])
        }
    };
    let dead_letter = match get(&top, "dead_letter") {
        Some(v) => parse_sink(&ctx, v, "dead_letter")?,
        None => SinkSpec::stderr(),
    };
    let late_data = get(&top, "late_data").map(|v| parse_sink(&ctx, v, "late_data")).transpose()?;
    let state_dir = get(&top, "state_dir").map(|v| ctx.string(v, "state_dir").map(|d| ctx.path(&d))).transpose()?;
    let rollback_policy = match get(&top, "hot_deploy") {
        Some(v) => parse_hot_deploy(&ctx, v)?,
        None => RollbackPolicy::default(),
    };
    let checkpoints = get(&top, "checkpoints").map(|v| parse_checkpoints(&ctx, v, &name)).transpose()?;
    for sink in &sinks {
        if let Some((key, why)) = sink.spec.needs_checkpoints()
            && checkpoints.is_none()
        {
            return Err(ctx.err(&join(&sink.key, key), why));
        }
    }
    Ok(JobSpec {
        file: file.to_path_buf(),
        lines: ctx.into_lines(),
        name,
        parallelism,
        max_parallelism,
        batch_size,
        limits,
        plugins,
        streams,
        sinks,
        dead_letter,
        late_data,
        state_dir,
        rollback_policy,
        checkpoints,
    })
}

/// `checkpoints: {interval: 1 s, retained: 3, dir: checkpoints, restart_attempts: 3,
/// restart_delay: 1 s}`; `dir` defaults to `.weir/<job name>/checkpoints` next to the job file.
fn parse_checkpoints(ctx: &Ctx, v: &Value, job: &str) -> Result<CheckpointConfig, JobError> {
    let mut config = CheckpointConfig::new(ctx.path(&format!(".weir/{job}/checkpoints")));
    let keys = ["interval", "retained", "dir", "restart_attempts", "restart_delay"];
    for (k, val) in ctx.map(v, "checkpoints", &keys)? {
        let key = join("checkpoints", k);
        match k {
            "interval" => {
                let ms = crate::config::duration(ctx, val, &key)?;
                if ms < 10 {
                    return Err(ctx.err(&key, format!("a checkpoint every {ms} ms is too often; use at least 10 ms")));
                }
                config.interval = Duration::from_millis(ms as u64);
            }
            "retained" => config.retained = ctx.number(val, &key, 2, 1000)? as usize,
            "restart_attempts" => config.restart_attempts = ctx.number(val, &key, 0, 1000)? as u32,
            "restart_delay" => {
                config.restart_delay = Duration::from_millis(crate::config::duration(ctx, val, &key)? as u64)
            }
            _ => config.dir = ctx.path(&ctx.string(val, &key)?),
        }
    }
    Ok(config)
}

/// `hot_deploy: {probation_records, min_records, max_failure_ratio}`.
fn parse_hot_deploy(ctx: &Ctx, v: &Value) -> Result<RollbackPolicy, JobError> {
    let mut policy = RollbackPolicy::default();
    for (k, val) in ctx.map(v, "hot_deploy", &["probation_records", "min_records", "max_failure_ratio"])? {
        let key = join("hot_deploy", k);
        match k {
            "probation_records" => policy.probation_records = ctx.number(val, &key, 1, u64::MAX)?,
            "min_records" => policy.min_records = ctx.number(val, &key, 1, u64::MAX)?,
            _ => {
                policy.max_failure_ratio = match val.as_f64() {
                    Some(r) if (0.0..=1.0).contains(&r) => r,
                    _ => {
                        let found = describe(val);
                        return Err(ctx.err(&key, format!("expected a share from 0 to 1 (e.g. 0.5), found {found}")));
                    }
                }
            }
        }
    }
    Ok(policy)
}

pub(super) fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn parse_limits(ctx: &Ctx, v: &Value) -> Result<SandboxLimits, JobError> {
    let mut limits = SandboxLimits::default();
    for (k, val) in ctx.map(v, "limits", &["memory_mb", "call_timeout_ms", "recycle_after_records"])? {
        let key = join("limits", k);
        match k {
            "memory_mb" => limits.memory_bytes = (ctx.number(val, &key, 1, 4096)? as usize) << 20,
            "call_timeout_ms" => limits.call_timeout = Duration::from_millis(ctx.number(val, &key, 1, 3_600_000)?),
            _ => limits.recycle_after_records = ctx.number(val, &key, 1, u64::MAX)?,
        }
    }
    Ok(limits)
}

pub(super) fn parse_step(
    ctx: &Ctx,
    v: &Value,
    key: &str,
    plugins: &[(String, PathBuf)],
) -> Result<PipelineStep, JobError> {
    // `uid:` may stand beside the step's kind: `- map: upper.upper` / `  uid: upper`.
    let mut v = v.clone();
    let uid = match &mut v {
        Value::Mapping(m) if m.len() > 1 => m.remove("uid"),
        _ => None,
    };
    let uid = uid
        .map(|u| {
            let uid_key = join(key, "uid");
            let uid = ctx.string(&u, &uid_key)?;
            crate::graph::check_uid(&uid).map_err(|e| ctx.err(&uid_key, e))?;
            Ok(uid)
        })
        .transpose()?;
    let (step, parallelism) = parse_step_kind(ctx, &v, key, plugins)?;
    Ok(PipelineStep { step, parallelism, uid })
}

fn parse_step_kind(
    ctx: &Ctx,
    v: &Value,
    key: &str,
    plugins: &[(String, PathBuf)],
) -> Result<(StepSpec, Option<usize>), JobError> {
    // `- count` (a bare word) or `- map: upper.upper` (a one-key mapping).
    let (kind, arg) = match v {
        Value::String(s) => (s.as_str(), &Value::Null),
        Value::Mapping(m) if m.len() == 1 => {
            let (k, a) = m.iter().next().ok_or_else(|| ctx.err(key, "empty step"))?;
            (k.as_str().ok_or_else(|| ctx.err(key, "a step's kind must be a string"))?, a)
        }
        _ => {
            return Err(ctx.err(
                key,
                format!("a step is one of {STEP_KINDS}, e.g. `- map: plugin.function`, found {}", describe(v)),
            ));
        }
    };
    let key = join(key, kind);
    let key = key.as_str();
    let fn_step = |make: fn(FnRef) -> StepSpec| -> Result<(StepSpec, Option<usize>), JobError> {
        let (f, p) = parse_fn(ctx, arg, key, plugins)?;
        Ok((make(f), p))
    };
    let field = |what: &str| -> Result<String, JobError> {
        ctx.string(arg, key)
            .map_err(|_| ctx.err(key, format!("{what} needs the name of a numeric field, e.g. `{what}: amount`")))
    };
    Ok(match kind {
        "map" => fn_step(StepSpec::Map)?,
        "filter" => fn_step(StepSpec::Filter)?,
        "flat_map" => fn_step(StepSpec::FlatMap)?,
        "key_by" => (StepSpec::KeyBy(parse_key(ctx, arg, key, plugins)?), None),
        "count" => match arg {
            Value::Null => (StepSpec::Count, None),
            Value::Mapping(m) if m.is_empty() => (StepSpec::Count, None),
            other => return Err(ctx.err(key, format!("count takes no arguments, found {}", describe(other)))),
        },
        "sum" => (StepSpec::Sum(field("sum")?), None),
        "min" => (StepSpec::Min(field("min")?), None),
        "max" => (StepSpec::Max(field("max")?), None),
        "assign_timestamps" => {
            let (spec, parallelism) = super::time::parse_assign_timestamps(ctx, arg, key)?;
            (StepSpec::AssignTimestamps(spec), parallelism)
        }
        "window" => (StepSpec::Window(super::time::parse_window(ctx, arg, key, plugins)?), None),
        "process" => {
            // `broadcast:` is the process step's own: the rest is what every function step takes.
            let mut arg = arg.clone();
            let broadcast = match &mut arg {
                Value::Mapping(m) => m.remove("broadcast"),
                _ => None,
            };
            let broadcast = broadcast.map(|b| parse_broadcast(ctx, &b, &join(key, "broadcast"))).transpose()?;
            let (f, parallelism) = parse_fn(ctx, &arg, key, plugins)?;
            (StepSpec::Process(f, broadcast), parallelism)
        }
        "partition" => {
            use crate::task::Partitioning;
            let how = ctx.string(arg, key)?;
            let partitioning = match how.as_str() {
                "rebalance" => Partitioning::Rebalance,
                "rescale" => Partitioning::Rescale { upstream: 0 },
                "shuffle" => Partitioning::Shuffle,
                "broadcast" => Partitioning::Broadcast,
                "global" => Partitioning::Global,
                other => {
                    return Err(ctx.err(
                        key,
                        format!(
                            "`{other}` is not a partitioning; expected rebalance, rescale, shuffle, broadcast or global (to partition by key, use key_by)"
                        ),
                    ));
                }
            };
            (StepSpec::Partition(partitioning), None)
        }
        other => return Err(ctx.err(key, format!("unknown step `{other}`; expected one of {STEP_KINDS}"))),
    })
}

/// A key: a field name (`user`), `{field: user}` or `{function: plugin.function}`.
pub(super) fn parse_key(ctx: &Ctx, v: &Value, key: &str, plugins: &[(String, PathBuf)]) -> Result<KeySpec, JobError> {
    match v {
        Value::String(f) => Ok(KeySpec::Field(f.clone())),
        Value::Mapping(_) => {
            let entries = ctx.map(v, key, &["field", "function"])?;
            match (get(&entries, "field"), get(&entries, "function")) {
                (Some(f), None) => Ok(KeySpec::Field(ctx.string(f, &join(key, "field"))?)),
                (None, Some(f)) => Ok(KeySpec::Function(parse_fn(ctx, f, &join(key, "function"), plugins)?.0)),
                _ => Err(ctx.err(key, "a key is either `field` or `function`")),
            }
        }
        _ => Err(ctx.err(key, "a key is a field name (`user`) or `{function: plugin.function}`")),
    }
}

/// `broadcast: {source: {...}, preload: bool}` of a process step.
fn parse_broadcast(ctx: &Ctx, v: &Value, key: &str) -> Result<BroadcastInput, JobError> {
    let entries = ctx.map(v, key, &["source", "preload"])?;
    let source = get(&entries, "source").ok_or_else(|| {
        ctx.err(
            key,
            "a broadcast input needs `source`, e.g. `source: {connector: file, path: rules.jsonl, format: json}`",
        )
    })?;
    let source = parse_source(ctx, source, &join(key, "source"))?;
    let preload = match get(&entries, "preload") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ctx.err(&join(key, "preload"), format!("expected true or false, found {}", describe(other))));
        }
    };
    Ok(BroadcastInput { source, preload })
}

/// `plugin.function` or `{function: plugin.function, parallelism: n}`.
pub(super) fn parse_fn(
    ctx: &Ctx,
    v: &Value,
    key: &str,
    plugins: &[(String, PathBuf)],
) -> Result<(FnRef, Option<usize>), JobError> {
    let (text, parallelism) = match v {
        Value::String(s) => (s.clone(), None),
        Value::Mapping(_) => {
            let entries = ctx.map(v, key, &["function", "parallelism"])?;
            let f = get(&entries, "function").ok_or_else(|| ctx.err(key, "missing `function: plugin.function`"))?;
            let p =
                get(&entries, "parallelism").map(|p| ctx.number(p, &join(key, "parallelism"), 1, 1024)).transpose()?;
            (ctx.string(f, &join(key, "function"))?, p.map(|p| p as usize))
        }
        other => return Err(ctx.err(key, format!("expected `plugin.function`, found {}", describe(other)))),
    };
    let Some((plugin, function)) = text.split_once('.') else {
        return Err(ctx.err(key, format!("`{text}` should be `plugin.function`, e.g. `upper.upper`")));
    };
    if !plugins.iter().any(|(alias, _)| alias == plugin) {
        let declared = if plugins.is_empty() {
            "none".to_string()
        } else {
            plugins.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>().join(", ")
        };
        return Err(ctx.err(key, format!("plugin `{plugin}` is not declared under `plugins` (declared: {declared})")));
    }
    Ok((FnRef { plugin: plugin.to_string(), function: function.to_string() }, parallelism))
}

impl JobSpec {
    /// The first source of the first stream (the `source:` of a one-pipeline job).
    pub fn source(&self) -> &SourceSpec {
        let first = self.streams.iter().find_map(|s| match &s.input {
            InputSpec::Sources(v) => v.first(),
            _ => None,
        });
        first.expect("a parsed job has a stream with a source")
    }

    pub(super) fn err(&self, key: &str, message: impl Into<String>) -> JobError {
        JobError { file: self.file.clone(), line: self.lines.line(key), key: key.to_string(), message: message.into() }
    }

    /// An environment with this job's settings, its plugins loaded and its pipeline built.
    /// Everything a plugin can get wrong (missing file, not a plugin, wrong ABI, unknown
    /// function, wrong kind) is reported here, before any record flows.
    pub fn build(&self) -> Result<StreamEnvironment, JobError> {
        self.build_in(StreamEnvironment::new())
    }

    /// [`JobSpec::build`] into a given environment (to set its cache directory, say).
    pub fn build_in(&self, env: StreamEnvironment) -> Result<StreamEnvironment, JobError> {
        if let Some(p) = self.parallelism {
            env.set_parallelism(p);
        }
        if let Some(p) = self.max_parallelism {
            env.set_max_parallelism(p);
        }
        if let Some(b) = self.batch_size {
            env.set_batch_size(b);
        }
        env.set_limits(self.limits);
        env.set_dead_letter(self.dead_letter.clone());
        if let Some(late) = &self.late_data {
            env.set_late_data(late.clone());
        }
        if let Some(dir) = &self.state_dir {
            env.set_state_dir(dir.clone());
        }
        env.set_rollback_policy(self.rollback_policy);
        if let Some(checkpoints) = &self.checkpoints {
            env.enable_checkpointing(checkpoints.clone());
        }

        let mut loaded: Vec<(&str, PluginRef)> = Vec::new();
        for (alias, path) in &self.plugins {
            let key = format!("plugins.{alias}");
            if !path.is_file() {
                return Err(self.err(
                    &key,
                    format!("{} not found; build it first (`weir plugin build <plugin folder>`, or `just plugins` in the Weir repository)", path.display()),
                ));
            }
            let plugin = env.load_plugin(path).map_err(|e| match e {
                EnvError::Plugin { source, .. } => self.err(&key, format!("{}: {source}", path.display())),
                other => self.err(&key, other.to_string()),
            })?;
            loaded.push((alias, plugin));
        }
        let function = |f: &FnRef, kinds: &[FunctionKind], key: &str| -> Result<crate::env::Function, JobError> {
            let plugin = loaded
                .iter()
                .find(|(a, _)| *a == f.plugin)
                .map(|(_, p)| p)
                .ok_or_else(|| self.err(key, "plugin not declared"))?;
            plugin.plugin().function(&f.function, kinds).map_err(|e| self.err(key, e.to_string()))?;
            Ok(plugin.function(&f.function))
        };

        // Each stream after those it reads; a stream read by several is one handle, cloned.
        let mut built: HashMap<&str, DataStream> = HashMap::new();
        let mut has_time: HashMap<&str, bool> = HashMap::new();
        for spec in &self.streams {
            let mut skip = 0;
            let (stream, keyed_input, time) = match &spec.input {
                InputSpec::Sources(sources) => {
                    let mut stream = env.from_source(sources[0].clone());
                    if !spec.key.is_empty() {
                        stream = stream.named(&spec.name);
                    }
                    if sources.len() > 1 {
                        stream = stream.union(sources[1..].iter().map(|s| env.from_source(s.clone())));
                    }
                    (stream, false, sources.iter().all(|s| s.has_event_time()))
                }
                InputSpec::Streams(names) => {
                    let first = built[names[0].as_str()].clone();
                    let time = names.iter().all(|n| has_time[n.as_str()]);
                    match names.len() {
                        1 => (first, super::graph::keyed(&self.streams, &names[0]), time),
                        _ => (first.union(names[1..].iter().map(|n| built[n.as_str()].clone())), false, time),
                    }
                }
                InputSpec::Connect(a, b) => {
                    let key = format!("{}[0].process", spec.pipeline_key());
                    let Some(PipelineStep { step: StepSpec::Process(f, None), parallelism, uid }) =
                        spec.pipeline.first()
                    else {
                        return Err(self.err(
                            &spec.pipeline_key(),
                            "a connected stream starts with `- process: plugin.co_process_function`",
                        ));
                    };
                    let (first, second) = (built[a.as_str()].clone(), built[b.as_str()].clone());
                    let time = has_time[a.as_str()] && has_time[b.as_str()];
                    let co = function(f, &[FunctionKind::CoProcess], &key)?;
                    let mut stream =
                        KeyedStream::from_keyed(first).connect(KeyedStream::from_keyed(second)).process(co);
                    if let Some(p) = parallelism {
                        stream = stream.set_parallelism(*p);
                    }
                    if let Some(uid) = uid {
                        stream = stream.uid(uid);
                    }
                    skip = 1;
                    (stream, false, time)
                }
                InputSpec::Join(j) => {
                    let key = format!("{}.{}", spec.key, spec.input_key());
                    let time = has_time[j.left.as_str()] && has_time[j.right.as_str()];
                    if !matches!(j.kind, JoinKind::Regular { .. }) {
                        for side in [&j.left, &j.right] {
                            if !has_time[side.as_str()] {
                                return Err(self.err(
                                    &key,
                                    format!("this join matches by event time, which stream `{side}` does not have: add `assign_timestamps` to its pipeline (or read a source with `watermarks`)"),
                                ));
                            }
                        }
                    }
                    let keyed = |name: &str, k: &Option<KeySpec>, kkey: &str| -> Result<KeyedStream, JobError> {
                        let stream = built[name].clone();
                        Ok(match k {
                            None => KeyedStream::from_keyed(stream),
                            Some(KeySpec::Field(f)) => stream.key_by(KeySelector::Field(f.clone())),
                            Some(KeySpec::Function(f)) => stream.key_by(function(
                                f,
                                &[FunctionKind::KeySelector],
                                &format!("{key}.{kkey}.function"),
                            )?),
                        })
                    };
                    let left = keyed(&j.left, &j.left_key, "where")?;
                    let right = keyed(&j.right, &j.right_key, "equal_to")?;
                    let joined = left.join(right).sides(&j.left, &j.right);
                    let stream = match &j.kind {
                        JoinKind::Window(assigner) => joined.window(*assigner),
                        JoinKind::Regular { ttl_ms } => {
                            joined.unbounded(ttl_ms.map(|ms| std::time::Duration::from_millis(ms.unsigned_abs())))
                        }
                        JoinKind::Interval { lower_ms, upper_ms } => joined.between(*lower_ms, *upper_ms),
                        JoinKind::Temporal => joined.latest(),
                    };
                    (stream, false, time)
                }
            };
            let (stream, time) = self.apply_pipeline(&env, spec, skip, stream, keyed_input, time, &function)?;
            has_time.insert(&spec.name, time);
            built.insert(&spec.name, stream);
        }
        for sink in &self.sinks {
            built[sink.input.as_str()].clone().sink_to_named(&sink.name, sink.spec.clone());
        }
        Ok(env)
    }

    /// The steps of `spec`'s pipeline from `skip` on, applied to `stream` (keyed if
    /// `keyed_input`; with event time if `time`). Returns the stream and whether its
    /// records have event time.
    #[allow(clippy::too_many_arguments)]
    fn apply_pipeline(
        &self,
        env: &StreamEnvironment,
        spec: &StreamSpec,
        skip: usize,
        mut stream: DataStream,
        keyed_input: bool,
        time: bool,
        function: &FunctionOf<'_>,
    ) -> Result<(DataStream, bool), JobError> {
        let pipeline = &spec.pipeline;
        let key_by_before = |i: usize| match i {
            0 => keyed_input,
            _ => matches!(pipeline[i - 1].step, StepSpec::KeyBy(_)),
        };
        for (i, PipelineStep { step, parallelism, uid }) in pipeline.iter().enumerate().skip(skip) {
            let key = format!("{}[{i}].{}", spec.pipeline_key(), step_kind(step));
            stream = match step {
                StepSpec::Map(f) => stream.map(function(f, &[FunctionKind::Map], &key)?),
                StepSpec::Filter(f) => stream.filter(function(f, &[FunctionKind::Filter], &key)?),
                StepSpec::FlatMap(f) => stream.flat_map(function(f, &[FunctionKind::FlatMap], &key)?),
                StepSpec::KeyBy(KeySpec::Field(field)) => {
                    stream.key_by(KeySelector::Field(field.clone())).into_stream()
                }
                StepSpec::KeyBy(KeySpec::Function(f)) => {
                    stream.key_by(function(f, &[FunctionKind::KeySelector], &format!("{key}.function"))?).into_stream()
                }
                StepSpec::Partition(partitioning) => {
                    if key_by_before(i) {
                        return Err(self.err(
                            &key,
                            "a keyed stream goes by key to the step after key_by: partition before key_by, not after",
                        ));
                    }
                    if i + 1 == pipeline.len() {
                        return Err(self.err(
                            &key,
                            "a step must follow `partition` (the sink reads every instance of the last step)",
                        ));
                    }
                    if uid.is_some() || parallelism.is_some() {
                        return Err(self.err(
                            &key,
                            "`partition` is not a step of its own: set `uid` and `parallelism` on the step after it",
                        ));
                    }
                    stream.partition(*partitioning)
                }
                StepSpec::AssignTimestamps(t) => {
                    let ms = |ms: i64| std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
                    let mut strategy =
                        crate::env::WatermarkStrategy::bounded_out_of_orderness(ms(t.max_out_of_orderness_ms));
                    if let Some(idle) = t.idleness_ms {
                        strategy = strategy.with_idleness(ms(idle));
                    }
                    stream.assign_timestamps_with(&t.field, strategy)
                }
                StepSpec::Count
                | StepSpec::Sum(_)
                | StepSpec::Min(_)
                | StepSpec::Max(_)
                | StepSpec::Window(_)
                | StepSpec::Process(..) => {
                    let after_key_by = key_by_before(i);
                    if !after_key_by {
                        return Err(self.err(
                            &key,
                            format!("{} needs a keyed stream: put `key_by` right before it", step_kind(step)),
                        ));
                    }
                    let keyed = KeyedStream::from_keyed(stream);
                    if let StepSpec::Window(w) = step {
                        let has_time =
                            time || pipeline[..i].iter().any(|s| matches!(s.step, StepSpec::AssignTimestamps(_)));
                        if !w.processing_time && !has_time {
                            return Err(self.err(
                                &key,
                                "an event-time window needs `assign_timestamps` earlier in the pipeline, a source with `watermarks`, or `time: processing`",
                            ));
                        }
                        let lateness =
                            std::time::Duration::from_millis(u64::try_from(w.allowed_lateness_ms).unwrap_or(0));
                        let mut windowed = keyed.window(w.assigner).allowed_lateness(lateness);
                        if w.processing_time {
                            windowed = windowed.processing_time();
                        }
                        stream = match &w.aggregate {
                            AggregateSpec::Builtin { kind, field } => {
                                windowed.aggregate(crate::operator::WindowAggregate::Builtin {
                                    kind: *kind,
                                    field: field.clone(),
                                })
                            }
                            AggregateSpec::Udaf { function: f, field } => windowed.aggregate_with(
                                function(f, &[FunctionKind::Aggregate], &format!("{key}.aggregate"))?,
                                field.as_deref(),
                            ),
                            AggregateSpec::Process { function: f } => windowed.process(function(
                                f,
                                &[FunctionKind::ProcessWindow],
                                &format!("{key}.process"),
                            )?),
                        };
                        if let Some(p) = parallelism {
                            stream = stream.set_parallelism(*p);
                        }
                        if let Some(uid) = uid {
                            stream = stream.uid(uid);
                        }
                        continue;
                    }
                    match step {
                        StepSpec::Process(f, None) => keyed.process(function(f, &[FunctionKind::Process], &key)?),
                        StepSpec::Process(f, Some(b)) => {
                            let mut side = env.from_source(b.source.clone()).broadcast();
                            if b.preload {
                                side = side.preload();
                            }
                            keyed.connect(side).process(function(f, &[FunctionKind::Process], &key)?)
                        }
                        StepSpec::Sum(f) => keyed.sum(f),
                        StepSpec::Min(f) => keyed.min(f),
                        StepSpec::Max(f) => keyed.max(f),
                        _ => keyed.count(),
                    }
                }
            };
            if let Some(p) = parallelism {
                stream = stream.set_parallelism(*p);
            }
            if let Some(uid) = uid {
                stream = stream.uid(uid);
            }
        }
        let time = time || pipeline.iter().any(|s| matches!(s.step, StepSpec::AssignTimestamps(_)));
        Ok((stream, time))
    }
}

/// How a job finds the plugin function a step names (checking its kind).
type FunctionOf<'a> = dyn Fn(&FnRef, &[FunctionKind], &str) -> Result<crate::env::Function, JobError> + 'a;

fn step_kind(step: &StepSpec) -> &'static str {
    match step {
        StepSpec::Map(_) => "map",
        StepSpec::Filter(_) => "filter",
        StepSpec::FlatMap(_) => "flat_map",
        StepSpec::KeyBy(_) => "key_by",
        StepSpec::Count => "count",
        StepSpec::Sum(_) => "sum",
        StepSpec::Min(_) => "min",
        StepSpec::Max(_) => "max",
        StepSpec::AssignTimestamps { .. } => "assign_timestamps",
        StepSpec::Window(_) => "window",
        StepSpec::Process(..) => "process",
        StepSpec::Partition(_) => "partition",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::expand_env;

    fn parse_str(text: &str) -> Result<JobSpec, JobError> {
        parse(text, Path::new("job.yaml"), Path::new("."))
    }

    #[test]
    fn hot_deploy_sets_the_rollback_policy_and_checks_it() {
        let spec = parse_str(&format!("{OK}hot_deploy: {{probation_records: 50, max_failure_ratio: 0.2}}\n")).unwrap();
        let want = RollbackPolicy { probation_records: 50, max_failure_ratio: 0.2, ..RollbackPolicy::default() };
        assert_eq!(spec.rollback_policy, want);
        assert_eq!(parse_str(OK).unwrap().rollback_policy, RollbackPolicy::default());
        let err = parse_str(&format!("{OK}hot_deploy: {{max_failure_ratio: 2}}\n")).unwrap_err().to_string();
        assert!(err.contains("hot_deploy.max_failure_ratio: expected a share from 0 to 1"), "{err}");
        let err = parse_str(&format!("{OK}hot_deploy: {{canary: 1}}\n")).unwrap_err().to_string();
        assert!(err.contains("hot_deploy.canary: unknown key"), "{err}");
    }

    const OK: &str = "name: t\nplugins:\n  up: up.wasm\nsource:\n  connector: collection\n  elements: [a, 1, {x: 2}]\npipeline:\n  - map: up.upper\n  - key_by: x\n  - count\n  - filter: {function: up.keep, parallelism: 2}\nsink:\n  connector: print\n";

    #[test]
    fn parses_a_full_job() {
        let spec = parse_str(OK).unwrap();
        assert_eq!(spec.name, "t");
        assert_eq!(spec.plugins, vec![("up".to_string(), PathBuf::from("./up.wasm"))]);
        let steps: Vec<_> = spec.streams[0].pipeline.iter().map(|s| (s.step.clone(), s.parallelism)).collect();
        assert!(matches!(&steps[0], (StepSpec::Map(f), None) if f.plugin == "up" && f.function == "upper"));
        assert!(matches!(&steps[1], (StepSpec::KeyBy(KeySpec::Field(x)), None) if x == "x"));
        assert!(matches!(&steps[2], (StepSpec::Count, None)));
        assert_eq!(steps[3].1, Some(2));
        let elements = &spec.source().get::<crate::connectors::CollectionSource>().expect("a collection").elements;
        assert_eq!(elements.len(), 3);
        assert_eq!(crate::record::display_value(&elements[2]), r#"{"x":2}"#);
    }

    fn error(text: &str) -> String {
        parse_str(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_file_line_and_key() {
        assert_eq!(
            error(&OK.replace("  - map: up.upper", "  - map: upp.upper")),
            "job.yaml:8: pipeline[0].map: plugin `upp` is not declared under `plugins` (declared: up)"
        );
        assert_eq!(
            error(&OK.replace("  connector: collection", "  connector: kafkaa")),
            "job.yaml:5: source.connector: unknown source connector `kafkaa`; expected collection, file, socket, datagen, nexmark or kafka"
        );
        assert_eq!(
            error(&OK.replace("  - count", "  - cont")),
            "job.yaml:10: pipeline[2].cont: unknown step `cont`; expected one of map, filter, flat_map, key_by, count, sum, min, max, assign_timestamps, window, process, partition"
        );
        assert_eq!(
            error(&OK.replace("  connector: print", "  connector: print\n  colour: red")),
            "job.yaml:14: sink.colour: unknown key; expected one of: connector, stream"
        );
        assert_eq!(error(&OK.replace("name: t\n", "")), "job.yaml: missing the required key `name`");
        assert!(error(&OK.replace("  - map: up.upper", "  - map: upper")).contains("should be `plugin.function`"));
        assert!(error("name: [\n").starts_with("job.yaml:2: not valid YAML"), "{}", error("name: [\n"));
        assert!(
            error(&OK.replace("name: t", "name: t\nparalelism: 2")).starts_with("job.yaml:2: paralelism: unknown key")
        );
        assert!(
            error(&OK.replace("parallelism: 2", "parallelism: 0"))
                .contains("pipeline[3].filter.parallelism: expected a whole number from 1 to 1024")
        );
    }

    #[test]
    fn environment_variables_expand_in_strings() {
        let var = |name: &str| (name == "HOST").then(|| "kafka:9092".to_string());
        assert_eq!(expand_env("${HOST}", var).unwrap(), "kafka:9092");
        assert_eq!(expand_env("a ${NOPE:-b:1} c", var).unwrap(), "a b:1 c");
        assert_eq!(expand_env("no vars", var).unwrap(), "no vars");
        assert!(expand_env("${NOPE}", var).unwrap_err().contains("NOPE is not set"));
        assert!(expand_env("${HOST", var).unwrap_err().contains("closing"));
    }

    #[test]
    fn a_step_takes_a_uid_beside_its_kind() {
        let text = OK.replace("  - count\n", "  - count: {}\n    uid: counts\n");
        let spec = parse_str(&text).unwrap();
        assert_eq!(spec.streams[0].pipeline[2].uid.as_deref(), Some("counts"));
        assert!(matches!(spec.streams[0].pipeline[2].step, StepSpec::Count));
        assert_eq!(spec.streams[0].pipeline[0].uid, None);
        assert_eq!(
            error(&OK.replace("  - count\n", "  - count: {}\n    uid: a/b\n")),
            "job.yaml:11: pipeline[2].uid: `/` cannot be in a uid: use letters, digits, `_`, `-`, `.` and `:`"
        );
    }

    #[test]
    fn kafka_connectors_parse_with_flink_option_names() {
        let text = "name: k\nsource:\n  connector: kafka\n  topic: [a, b]\n  properties.bootstrap.servers: h:1\n  format: text\n  metadata: [key, offset]\n  watermarks: {max_out_of_orderness: 2 s, idleness: 5 s}\nsink:\n  connector: kafka\n  topic: out\n  properties:\n    bootstrap.servers: h:1\n    linger.ms: 5\n  key.field: url\n";
        let spec = parse_str(text).unwrap();
        let source = spec.source().get::<crate::connectors::kafka::KafkaSourceSpec>().expect("a kafka source");
        assert_eq!(source.topics, ["a", "b"]);
        assert!(source.watermarks.is_some() && spec.source().has_event_time());
        let sink = spec.sinks[0].spec.get::<crate::connectors::kafka::KafkaSinkSpec>().expect("a kafka sink");
        assert_eq!(sink.properties, [("bootstrap.servers".into(), "h:1".into()), ("linger.ms".into(), "5".into())]);
        assert_eq!(sink.key_field.as_deref(), Some("url"));
        let missing = "name: k\nsource:\n  connector: kafka\n  topic: a\nsink:\n  connector: print\n";
        assert!(error(missing).contains("properties.bootstrap.servers"), "{}", error(missing));
        let eos = text.replace("  key.field: url\n", "  sink.delivery-guarantee: exactly-once\n");
        assert!(error(&eos).contains("add `checkpoints"), "{}", error(&eos));
    }

    #[test]
    fn a_missing_input_file_is_reported_at_its_key() {
        let text = "name: t\nsource:\n  connector: file\n  path: no/such/file.txt\nsink:\n  connector: print\n";
        assert_eq!(error(text), "job.yaml:4: source.path: ./no/such/file.txt does not exist");
    }
}
