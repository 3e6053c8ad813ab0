//! The job graph: what a job is made of, and how it becomes parallel tasks.
//!
//! A [`JobGraph`] is the logical plan, a directed acyclic graph as Flink's
//! `StreamGraph`: [`Stream`]s (a source, or steps reading other streams: one of them, a
//! union of several, or two connected for a two-input step), [`SinkNode`]s naming the
//! stream they write, and a dead-letter output; a keyed step may also have a broadcast
//! input of its own. A stream read by several streams or sinks is sent to each (fan-out).
//!
//! [`plan`] turns it into a [`Plan`] of [`Stage`]s, the physical tasks:
//! - stateless steps are **fused** into one stage (one task per parallel instance, no
//!   channel between them), as Flink chains operators; a stream read by exactly one other
//!   chains into it, so a line of streams is one chain;
//! - a step with another parallelism starts a new stage fed by **rebalance**;
//! - `key_by` ends its stage; the keyed step after it starts a new stage fed by **key
//!   group** (at the job's default parallelism unless the step sets one);
//! - a step the job partitions (`partition: rebalance | rescale | shuffle | broadcast |
//!   global` before it) starts a new stage fed that way;
//! - a stream read by several, a union and a connected pair start new stages.
//!
//! A step without its own parallelism keeps its input's, so `source -> map -> print` is one
//! ordered chain, as users of `from_elements(..).map(..).print()` expect. The graph knows
//! operators only as named factories: nothing here knows about plugins or wasmtime.

use thiserror::Error;

use crate::connectors::{SinkSpec, SourceSpec};
use crate::task::{OperatorFactory, Partitioning};

/// How a step relates to keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Works record by record (map, filter, flat_map).
    Stateless,
    /// Sets the key of every record; the stream after it is partitioned by key.
    KeyBy,
    /// Needs keyed input: must come right after `key_by`.
    Keyed,
}

/// One step of the pipeline.
#[derive(Clone)]
pub struct Step {
    /// Unique in the job, e.g. `map[0] upper@0.1.0.upper`: what logs, metrics and dead
    /// letters show.
    pub name: String,
    /// The step's stable id (Flink's operator uid): it keys the step's state in checkpoints,
    /// savepoints and the state store, so a job whose steps change keeps each step's state
    /// where the uids match. Set by `uid:` in a job file or `.uid()` in the builder; by
    /// default the step's place and function without the plugin's version (e.g.
    /// `process[2] fraud.detector`), so a new plugin version keeps its state.
    pub uid: String,
    pub kind: StepKind,
    /// Parallel instances; `None` inherits the input's (or the job default after key_by).
    pub parallelism: Option<usize>,
    pub factory: OperatorFactory,
    /// A broadcast stream connected to this step (Flink's `connect(broadcastStream)`): every
    /// parallel instance of the step gets every record of it.
    pub broadcast: Option<BroadcastInput>,
    /// How the step reads its input when the job says (`partition: rebalance` before it,
    /// Flink's `rebalance()`): the step then starts a stage of its own, at its own
    /// parallelism or the job's default. `None`: chained, or as `key_by` and parallelism say.
    pub input: Option<Partitioning>,
}

impl Step {
    /// A step whose uid is its name (for names without a plugin version).
    pub fn new(name: impl Into<String>, kind: StepKind, factory: OperatorFactory) -> Self {
        let name = name.into();
        Self { uid: name.clone(), name, kind, parallelism: None, factory, broadcast: None, input: None }
    }
}

/// The longest uid a user may give a step.
pub const MAX_UID_LENGTH: usize = 128;

/// Why `uid` cannot be a step's uid, if it cannot: uids are 1 to [`MAX_UID_LENGTH`]
/// characters of letters, digits, `_`, `-`, `.` and `:` (they name state in files and
/// metrics).
pub fn check_uid(uid: &str) -> Result<(), String> {
    if uid.is_empty() || uid.len() > MAX_UID_LENGTH {
        return Err(format!("a uid has 1 to {MAX_UID_LENGTH} characters"));
    }
    match uid.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))) {
        Some(c) => Err(format!("`{c}` cannot be in a uid: use letters, digits, `_`, `-`, `.` and `:`")),
        None => Ok(()),
    }
}

/// The broadcast side of a connected stream: a source whose records reach every parallel
/// instance of the step, in the same order, through `Operator::process_broadcast`.
#[derive(Debug, Clone)]
pub struct BroadcastInput {
    pub source: SourceSpec,
    /// Hold the keyed input back until the broadcast source ends: for a bounded reference
    /// table (users, rules) that must be complete before the first keyed record. Without
    /// it the two inputs interleave, broadcast records first when both are waiting.
    pub preload: bool,
}

/// Job-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobConfig {
    /// Parallelism of keyed steps that do not set their own (default: the number of cores).
    pub default_parallelism: usize,
    /// Number of key groups (the most instances a keyed step can have).
    pub max_parallelism: u16,
    /// Records per batch the sources emit.
    pub batch_size: usize,
    /// Batches a channel holds before its sender blocks (backpressure).
    pub channel_capacity: usize,
    /// Where keyed state lives (`None`: a temporary directory, gone after the job; with
    /// checkpoints, `state` in the checkpoint directory).
    pub state_dir: Option<std::path::PathBuf>,
    /// Periodic checkpoints, and resuming from the latest one (`None`: off).
    pub checkpoints: Option<crate::checkpoint::CheckpointConfig>,
    /// Resume even if the checkpoint holds state of steps the job no longer has (Flink's
    /// `--allowNonRestoredState`): that state is dropped.
    pub allow_non_restored_state: bool,
}

impl Default for JobConfig {
    fn default() -> Self {
        Self {
            default_parallelism: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_parallelism: crate::state::DEFAULT_MAX_PARALLELISM,
            batch_size: 1024,
            channel_capacity: 16,
            state_dir: None,
            checkpoints: None,
            allow_non_restored_state: false,
        }
    }
}

/// Where a [`Stream`]'s records come from.
#[derive(Clone)]
pub enum StreamInput {
    /// A source connector.
    Source(SourceSpec),
    /// The records of these streams (indices into [`JobGraph::streams`], each before this
    /// one): one stream read on, or a union (Flink's `union`: event time is the least of
    /// the inputs', and an input that ends holds nothing back).
    Streams(Vec<usize>),
    /// Two keyed streams into one two-input step, the stream's first (Flink's
    /// `connect(...).process(...)` and joins): the first stream's records reach it through
    /// `Operator::process`, the second's through `Operator::process_second`.
    Connect(usize, usize),
}

/// A stream of the job: its input and the steps applied to it.
#[derive(Clone)]
pub struct Stream {
    /// As the job file names it (`clicks`); empty for a stream the builder made.
    pub name: String,
    pub input: StreamInput,
    pub steps: Vec<Step>,
}

/// A sink and the stream it writes.
#[derive(Clone)]
pub struct SinkNode {
    /// As the job file names it (`counts`), or the connector's name.
    pub name: String,
    /// The stream it writes (an index into [`JobGraph::streams`]).
    pub input: usize,
    pub spec: SinkSpec,
}

/// The logical plan of a job.
#[derive(Clone)]
pub struct JobGraph {
    pub name: String,
    /// Every stream after the streams it reads.
    pub streams: Vec<Stream>,
    pub sinks: Vec<SinkNode>,
    pub dead_letter: SinkSpec,
    /// Where records too late for their windows go (Flink's late-data side output);
    /// without one they are dead letters of kind `late`.
    pub late_data: Option<SinkSpec>,
    pub config: JobConfig,
}

impl JobGraph {
    /// A job that is one line: `source`, the `union` sources' records joined to it, then
    /// `steps`, into `sink`.
    pub fn line(
        name: impl Into<String>,
        source: SourceSpec,
        union: Vec<SourceSpec>,
        steps: Vec<Step>,
        sink: SinkSpec,
    ) -> Self {
        let mut streams = vec![Stream { name: String::new(), input: StreamInput::Source(source), steps: Vec::new() }];
        for spec in union {
            streams.push(Stream { name: String::new(), input: StreamInput::Source(spec), steps: Vec::new() });
        }
        let inputs = (0..streams.len()).collect();
        streams.push(Stream { name: String::new(), input: StreamInput::Streams(inputs), steps });
        let sink = SinkNode { name: "sink".into(), input: streams.len() - 1, spec: sink };
        Self {
            name: name.into(),
            streams,
            sinks: vec![sink],
            dead_letter: SinkSpec::stderr(),
            late_data: None,
            config: JobConfig::default(),
        }
    }

    /// Every step of the job, stream by stream.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.streams.iter().flat_map(|s| &s.steps)
    }

    /// Every step of the job, to change in place.
    pub fn steps_mut(&mut self) -> impl Iterator<Item = &mut Step> {
        self.streams.iter_mut().flat_map(|s| &mut s.steps)
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum GraphError {
    #[error("`{step}` needs a keyed stream: put `key_by` right before it")]
    NotKeyed { step: String },
    #[error(
        "`{step}` cannot take a broadcast input: only keyed `process` steps can be connected to a broadcast stream"
    )]
    BroadcastNotKeyed { step: String },
    #[error("`{step}` has parallelism {parallelism}; it must be between 1 and {max} (the job's max_parallelism)")]
    Parallelism { step: String, parallelism: usize, max: usize },
    #[error("steps `{first}` and `{second}` both have uid `{uid}`; a uid names one step's state: give each its own")]
    DuplicateUid { uid: String, first: String, second: String },
    #[error(
        "`{step}` comes right after key_by, whose records go by key to it: a `partition` cannot come between them (partition before key_by)"
    )]
    PartitionAfterKeyBy { step: String },
    #[error("stream {stream} reads stream {input}, which does not come before it; a job's streams cannot form a cycle")]
    Order { stream: String, input: String },
    #[error(
        "the union {stream} takes keyed stream {input}: a union is not keyed; key_by after the union instead (or union before key_by)"
    )]
    UnionOfKeyed { stream: String, input: String },
    #[error(
        "{stream} connects {first} and {second}, but {unkeyed} is not keyed: a join or co-process needs both inputs keyed (key_by at the end of each)"
    )]
    ConnectUnkeyed { stream: String, first: String, second: String, unkeyed: String },
    #[error("{stream} connects two streams but has no step to read them: a join or co-process comes first")]
    ConnectWithoutStep { stream: String },
    #[error("the job has no sink: every job writes at least one stream")]
    NoSink,
}

/// What sends into a stage or a sink: a source task, or a stage's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Producer {
    /// A source (an index into [`Plan::sources`]): one task.
    Source(usize),
    /// A stage (an index into [`Plan::stages`]): its parallel instances.
    Stage(usize),
}

/// A physical stage: fused operators run by `parallelism` tasks.
#[derive(Clone)]
pub struct Stage {
    pub steps: Vec<Step>,
    pub parallelism: usize,
    /// How its inputs' records are spread over its instances.
    pub input: Partitioning,
    /// What sends into it, in order: the instances of `inputs[0]` are its senders `0..`,
    /// those of `inputs[1]` come after them, and so on.
    pub inputs: Vec<Producer>,
    /// For a two-input step: its senders from this one on bring the second input.
    pub second: Option<usize>,
}

impl Stage {
    /// The broadcast input of the stage's first step, the only one that can have one.
    pub fn broadcast(&self) -> Option<&BroadcastInput> {
        self.steps.first().and_then(|s| s.broadcast.as_ref())
    }
}

/// A sink, and what sends into it.
#[derive(Clone)]
pub struct PlannedSink {
    pub name: String,
    pub spec: SinkSpec,
    pub inputs: Vec<Producer>,
}

/// The physical plan: the job's sources, stages and sinks, and which feeds which.
#[derive(Clone)]
pub struct Plan {
    /// The sources read into the job's streams (broadcast inputs are their steps').
    pub sources: Vec<SourceSpec>,
    /// The name of the stream each source starts (empty for a stream the builder made).
    pub source_streams: Vec<String>,
    pub stages: Vec<Stage>,
    pub sinks: Vec<PlannedSink>,
}

impl Plan {
    /// How many parallel instances `producer` has.
    pub fn parallelism(&self, producer: Producer) -> usize {
        match producer {
            Producer::Source(_) => 1,
            Producer::Stage(k) => self.stages[k].parallelism,
        }
    }

    /// The plan as `weir check` and `weir run --summary` print it: sources, stages (their
    /// parallelism, what feeds them and how, their steps) and sinks, one per line.
    pub fn describe(&self) -> Vec<String> {
        let name = |p: &Producer| match p {
            Producer::Source(j) => format!("source {}", j + 1),
            Producer::Stage(k) => format!("stage {}", k + 1),
        };
        let list = |inputs: &[Producer]| match inputs {
            [] => "nothing".to_string(),
            [one] => name(one),
            [first @ .., last] => {
                format!("{} and {}", first.iter().map(name).collect::<Vec<_>>().join(", "), name(last))
            }
        };
        let connector = |name: &'static str| name.trim_start_matches("source ").trim_start_matches("sink ");
        let mut lines: Vec<String> = Vec::new();
        for (j, (source, stream)) in self.sources.iter().zip(&self.source_streams).enumerate() {
            let of = if stream.is_empty() { String::new() } else { format!(" (stream `{stream}`)") };
            lines.push(format!("source {}{of}: {}", j + 1, connector(source.name())));
        }
        for (k, stage) in self.stages.iter().enumerate() {
            let from = match stage.second {
                Some(second) => {
                    // The inputs whose senders come before `second` are the first input.
                    let mut senders = 0;
                    let split = stage
                        .inputs
                        .iter()
                        .position(|p| {
                            let at = senders;
                            senders += self.parallelism(*p);
                            at >= second
                        })
                        .unwrap_or(stage.inputs.len());
                    let (a, b) = stage.inputs.split_at(split);
                    format!("from {} (first input) and {} (second input)", list(a), list(b))
                }
                None => format!("from {}", list(&stage.inputs)),
            };
            let how = match stage.input {
                Partitioning::Forward => "in order".to_string(),
                other => other.name().to_string(),
            };
            let steps: Vec<&str> = stage.steps.iter().map(|s| s.name.as_str()).collect();
            let broadcast = match stage.broadcast() {
                Some(b) => format!(" (broadcast input: {})", connector(b.source.name())),
                None => String::new(),
            };
            lines.push(format!(
                "stage {}: parallelism {}, {from}, {how}: {}{broadcast}",
                k + 1,
                stage.parallelism,
                steps.join(" -> ")
            ));
        }
        for sink in &self.sinks {
            lines.push(format!("sink {}: {}, from {}", sink.name, connector(sink.spec.name()), list(&sink.inputs)));
        }
        lines
    }

    /// The senders of a task reading `inputs`.
    pub fn senders(&self, inputs: &[Producer]) -> usize {
        inputs.iter().map(|p| self.parallelism(*p)).sum()
    }
}

/// Where a stream's records are, once planned.
#[derive(Clone)]
struct Tail {
    producers: Vec<Producer>,
    /// The stream's last step is `key_by`.
    keyed: bool,
}

/// Split a job's streams into stages.
pub fn plan(graph: &JobGraph) -> Result<Plan, GraphError> {
    check_uids(graph)?;
    if graph.sinks.is_empty() {
        return Err(GraphError::NoSink);
    }
    let name = |i: usize| match graph.streams.get(i).map(|s| s.name.as_str()) {
        Some("") | None => format!("#{i}"),
        Some(n) => format!("`{n}`"),
    };
    let inputs_of = |s: &Stream| -> Vec<usize> {
        match &s.input {
            StreamInput::Source(_) => Vec::new(),
            StreamInput::Streams(v) => v.clone(),
            StreamInput::Connect(a, b) => vec![*a, *b],
        }
    };
    for (i, s) in graph.streams.iter().enumerate() {
        if let Some(&input) = inputs_of(s).iter().find(|&&j| j >= i) {
            return Err(GraphError::Order { stream: name(i), input: name(input) });
        }
    }
    // Streams no sink reads (through others) are left out, as Flink leaves out
    // transformations that reach no sink.
    let mut used = vec![false; graph.streams.len()];
    for sink in &graph.sinks {
        used[sink.input] = true;
    }
    for i in (0..graph.streams.len()).rev() {
        if used[i] {
            for j in inputs_of(&graph.streams[i]) {
                used[j] = true;
            }
        }
    }
    let mut readers = vec![0usize; graph.streams.len()];
    for (s, _) in graph.streams.iter().zip(&used).filter(|(_, used)| **used) {
        for j in inputs_of(s) {
            readers[j] += 1;
        }
    }
    for sink in &graph.sinks {
        readers[sink.input] += 1;
    }

    let cfg = &graph.config;
    let max = usize::from(cfg.max_parallelism);
    let default_p = cfg.default_parallelism.clamp(1, max);
    let mut plan = Plan { sources: Vec::new(), source_streams: Vec::new(), stages: Vec::new(), sinks: Vec::new() };
    let mut tails: Vec<Option<Tail>> = vec![None; graph.streams.len()];
    for (i, stream) in graph.streams.iter().enumerate() {
        if !used[i] {
            continue;
        }
        let tail = |j: usize| tails[j].clone().expect("inputs come first and are used");
        // The stage this stream's steps go on filling (a chain), if any.
        let mut open: Option<usize> = None;
        let mut second = None;
        let mut input = match &stream.input {
            StreamInput::Source(spec) => {
                plan.sources.push(spec.clone());
                plan.source_streams.push(stream.name.clone());
                Tail { producers: vec![Producer::Source(plan.sources.len() - 1)], keyed: false }
            }
            StreamInput::Streams(v) if v.len() == 1 => {
                let t = tail(v[0]);
                // Read by this stream alone: its steps chain on.
                if readers[v[0]] == 1
                    && let [Producer::Stage(k)] = t.producers[..]
                {
                    open = Some(k);
                }
                t
            }
            StreamInput::Streams(v) => {
                let mut producers = Vec::new();
                for &j in v {
                    let t = tail(j);
                    if t.keyed {
                        return Err(GraphError::UnionOfKeyed { stream: name(i), input: name(j) });
                    }
                    producers.extend(t.producers);
                }
                Tail { producers, keyed: false }
            }
            StreamInput::Connect(a, b) => {
                let (ta, tb) = (tail(*a), tail(*b));
                if let Some(unkeyed) = [(*a, &ta), (*b, &tb)].iter().find(|(_, t)| !t.keyed).map(|(j, _)| *j) {
                    return Err(GraphError::ConnectUnkeyed {
                        stream: name(i),
                        first: name(*a),
                        second: name(*b),
                        unkeyed: name(unkeyed),
                    });
                }
                if stream.steps.is_empty() {
                    return Err(GraphError::ConnectWithoutStep { stream: name(i) });
                }
                second = Some(plan.senders(&ta.producers));
                Tail { producers: ta.producers.into_iter().chain(tb.producers).collect(), keyed: true }
            }
        };
        for step in &stream.steps {
            if let Some(p) = step.parallelism
                && (p == 0 || p > max)
            {
                return Err(GraphError::Parallelism { step: step.name.clone(), parallelism: p, max });
            }
            if step.kind == StepKind::Keyed && !input.keyed {
                return Err(GraphError::NotKeyed { step: step.name.clone() });
            }
            // A keyed step starts its stage, so its broadcast input feeds that stage's instances.
            if step.broadcast.is_some() && step.kind != StepKind::Keyed {
                return Err(GraphError::BroadcastNotKeyed { step: step.name.clone() });
            }
            if step.input.is_some() && input.keyed {
                return Err(GraphError::PartitionAfterKeyBy { step: step.name.clone() });
            }
            let upstream = plan.senders(&input.producers);
            // Whether the step goes on in the open stage, or starts one fed as `how`.
            let start: Option<(usize, Partitioning)> = if let Some(how) = step.input {
                let how = match how {
                    Partitioning::Rescale { .. } => Partitioning::Rescale { upstream },
                    other => other,
                };
                Some((step.parallelism.unwrap_or(default_p), how))
            } else if input.keyed {
                let how = Partitioning::KeyGroups { max_parallelism: cfg.max_parallelism };
                Some((step.parallelism.unwrap_or(default_p), how))
            } else if let Some(k) = open {
                match step.parallelism {
                    Some(p) if p != plan.stages[k].parallelism => Some((p, Partitioning::Rebalance)),
                    _ => None,
                }
            } else {
                // A new stage reading sources, a stage read by several, or a union: one
                // producer's parallelism by default; sources are single tasks.
                let from_sources = input.producers.iter().all(|p| matches!(p, Producer::Source(_)));
                let inherited = match input.producers[..] {
                    [one] => plan.parallelism(one),
                    _ if from_sources => 1,
                    _ => default_p,
                };
                let p = step.parallelism.unwrap_or(inherited);
                let how = match input.producers[..] {
                    [one] if plan.parallelism(one) == p => Partitioning::Forward,
                    _ if p == 1 => Partitioning::Forward,
                    _ => Partitioning::Rebalance,
                };
                Some((p, how))
            };
            if let Some((parallelism, how)) = start {
                plan.stages.push(Stage {
                    steps: Vec::new(),
                    parallelism,
                    input: how,
                    inputs: std::mem::take(&mut input.producers),
                    second: second.take(),
                });
                open = Some(plan.stages.len() - 1);
            }
            let k = open.expect("a step is in a stage");
            plan.stages[k].steps.push(step.clone());
            input = Tail { producers: vec![Producer::Stage(k)], keyed: step.kind == StepKind::KeyBy };
        }
        tails[i] = Some(input);
    }
    for sink in &graph.sinks {
        let t = tails[sink.input].clone().expect("a sink's stream is used");
        plan.sinks.push(PlannedSink { name: sink.name.clone(), spec: sink.spec.clone(), inputs: t.producers });
    }
    Ok(plan)
}

/// Two steps of the job cannot share a uid: it names one step's state.
fn check_uids(graph: &JobGraph) -> Result<(), GraphError> {
    let mut seen: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for step in graph.steps() {
        if let Some(first) = seen.insert(&step.uid, &step.name) {
            return Err(GraphError::DuplicateUid {
                uid: step.uid.clone(),
                first: first.to_string(),
                second: step.name.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::task::OperatorError;

    fn step(name: &str, kind: StepKind, parallelism: Option<usize>) -> Step {
        let factory: OperatorFactory = Arc::new(|_: &crate::task::InstanceContext| {
            Err(OperatorError::Failed { operator: "test".into(), message: "unused".into() })
        });
        Step { parallelism, ..Step::new(name, kind, factory) }
    }

    fn graph(steps: Vec<Step>) -> JobGraph {
        let mut g = JobGraph::line("t", SourceSpec::collection(vec![]), Vec::new(), steps, SinkSpec::discard());
        g.config.default_parallelism = 4;
        g
    }

    fn shape(stages: &[Stage]) -> Vec<(Vec<String>, usize, Partitioning)> {
        stages.iter().map(|s| (s.steps.iter().map(|x| x.name.clone()).collect(), s.parallelism, s.input)).collect()
    }

    #[test]
    fn two_steps_cannot_share_a_uid() {
        let mut b = step("b", StepKind::Stateless, None);
        b.uid = "a".into();
        let err = plan(&graph(vec![step("a", StepKind::Stateless, None), b])).err().unwrap();
        assert_eq!(err, GraphError::DuplicateUid { uid: "a".into(), first: "a".into(), second: "b".into() });
    }

    #[test]
    fn uids_are_plain_names() {
        assert!(check_uid("fraud-detector_v2.1:x").is_ok());
        assert!(check_uid("").is_err());
        assert!(check_uid("a/b").unwrap_err().contains("`/`"));
        assert!(check_uid(&"x".repeat(MAX_UID_LENGTH + 1)).is_err());
    }

    #[test]
    fn stateless_steps_fuse_into_one_ordered_stage() {
        let g = graph(vec![step("map", StepKind::Stateless, None), step("filter", StepKind::Stateless, None)]);
        assert_eq!(
            shape(&plan(&g).unwrap().stages),
            vec![(vec!["map".into(), "filter".into()], 1, Partitioning::Forward)]
        );
    }

    #[test]
    fn key_by_splits_and_the_keyed_stage_takes_the_default_parallelism() {
        let g = graph(vec![
            step("map", StepKind::Stateless, None),
            step("key_by", StepKind::KeyBy, None),
            step("count", StepKind::Keyed, None),
            step("map2", StepKind::Stateless, None),
        ]);
        let kg = Partitioning::KeyGroups { max_parallelism: 128 };
        assert_eq!(
            shape(&plan(&g).unwrap().stages),
            vec![
                (vec!["map".into(), "key_by".into()], 1, Partitioning::Forward),
                (vec!["count".into(), "map2".into()], 4, kg),
            ]
        );
    }

    #[test]
    fn another_parallelism_starts_a_rebalanced_stage() {
        let g = graph(vec![
            step("a", StepKind::Stateless, Some(2)),
            step("b", StepKind::Stateless, None),
            step("c", StepKind::Stateless, Some(3)),
        ]);
        assert_eq!(
            shape(&plan(&g).unwrap().stages),
            vec![
                (vec!["a".into(), "b".into()], 2, Partitioning::Rebalance),
                (vec!["c".into()], 3, Partitioning::Rebalance)
            ]
        );
    }

    #[test]
    fn a_partitioned_step_starts_a_stage_read_as_the_job_says() {
        let mut shuffled = step("b", StepKind::Stateless, None);
        shuffled.input = Some(Partitioning::Shuffle);
        let mut rescaled = step("c", StepKind::Stateless, Some(2));
        rescaled.input = Some(Partitioning::Rescale { upstream: 0 });
        let g = graph(vec![step("a", StepKind::Stateless, None), shuffled, rescaled]);
        assert_eq!(
            shape(&plan(&g).unwrap().stages),
            vec![
                (vec!["a".into()], 1, Partitioning::Forward),
                (vec!["b".into()], 4, Partitioning::Shuffle),
                (vec!["c".into()], 2, Partitioning::Rescale { upstream: 4 }),
            ]
        );
        let mut after_key_by = step("m", StepKind::Stateless, None);
        after_key_by.input = Some(Partitioning::Rebalance);
        let g = graph(vec![step("key_by", StepKind::KeyBy, None), after_key_by]);
        assert!(matches!(plan(&g), Err(GraphError::PartitionAfterKeyBy { .. })));
    }

    #[test]
    fn keyed_steps_need_key_by_right_before() {
        let g = graph(vec![step("count", StepKind::Keyed, None)]);
        assert!(matches!(plan(&g), Err(GraphError::NotKeyed { .. })));
        let g = graph(vec![
            step("key_by", StepKind::KeyBy, None),
            step("m", StepKind::Stateless, None),
            step("count", StepKind::Keyed, None),
        ]);
        assert!(matches!(plan(&g), Err(GraphError::NotKeyed { .. })));
        let g = graph(vec![step("m", StepKind::Stateless, Some(0))]);
        assert!(matches!(plan(&g), Err(GraphError::Parallelism { .. })));
    }

    #[test]
    fn a_broadcast_input_belongs_to_the_keyed_step_that_starts_a_stage() {
        let rules = BroadcastInput { source: SourceSpec::collection(vec![]), preload: false };
        let mut process = step("process", StepKind::Keyed, None);
        process.broadcast = Some(rules.clone());
        let g = graph(vec![step("key_by", StepKind::KeyBy, None), process, step("m", StepKind::Stateless, None)]);
        let stages = plan(&g).unwrap().stages;
        assert!(stages[0].broadcast().is_none());
        assert!(stages[1].broadcast().is_some());
        let mut map = step("m", StepKind::Stateless, None);
        map.broadcast = Some(rules);
        assert!(matches!(plan(&graph(vec![map])), Err(GraphError::BroadcastNotKeyed { .. })));
    }

    fn stream(name: &str, input: StreamInput, steps: Vec<Step>) -> Stream {
        Stream { name: name.into(), input, steps }
    }

    fn dag(streams: Vec<Stream>, sinks: &[usize]) -> JobGraph {
        let mut g = graph(Vec::new());
        g.streams = streams;
        g.sinks =
            sinks.iter().map(|&input| SinkNode { name: "out".into(), input, spec: SinkSpec::discard() }).collect();
        g
    }

    fn src() -> StreamInput {
        StreamInput::Source(SourceSpec::collection(vec![]))
    }

    #[test]
    fn a_stream_read_twice_feeds_both_and_a_line_of_streams_is_one_chain() {
        // parsed -> (alerts -> sink 0), (counts -> sink 1); parsed also to sink 2.
        let g = dag(
            vec![
                stream("raw", src(), vec![]),
                stream("parsed", StreamInput::Streams(vec![0]), vec![step("parse", StepKind::Stateless, None)]),
                stream("alerts", StreamInput::Streams(vec![1]), vec![step("alert", StepKind::Stateless, None)]),
                stream(
                    "counts",
                    StreamInput::Streams(vec![1]),
                    vec![step("key_by", StepKind::KeyBy, None), step("count", StepKind::Keyed, None)],
                ),
            ],
            &[2, 3, 1],
        );
        let p = plan(&g).unwrap();
        assert_eq!(p.sources.len(), 1);
        let names: Vec<Vec<String>> =
            p.stages.iter().map(|s| s.steps.iter().map(|x| x.name.clone()).collect()).collect();
        assert_eq!(names, [vec!["parse"], vec!["alert"], vec!["key_by"], vec!["count"]]);
        assert_eq!(p.stages[0].inputs, [Producer::Source(0)]);
        assert_eq!(p.stages[1].inputs, [Producer::Stage(0)]);
        assert_eq!(p.stages[1].input, Partitioning::Forward);
        assert_eq!(p.stages[2].inputs, [Producer::Stage(0)]);
        assert_eq!(p.stages[3].input, Partitioning::KeyGroups { max_parallelism: 128 });
        let sinks: Vec<_> = p.sinks.iter().map(|s| s.inputs.clone()).collect();
        assert_eq!(sinks, [vec![Producer::Stage(1)], vec![Producer::Stage(3)], vec![Producer::Stage(0)]]);
        // Read by one stream only, a stream chains on.
        let g = dag(
            vec![
                stream("raw", src(), vec![step("a", StepKind::Stateless, None)]),
                stream("b", StreamInput::Streams(vec![0]), vec![step("b", StepKind::Stateless, None)]),
            ],
            &[1],
        );
        assert_eq!(shape(&plan(&g).unwrap().stages), vec![(vec!["a".into(), "b".into()], 1, Partitioning::Forward)]);
    }

    #[test]
    fn a_union_of_transformed_streams_reads_every_instance_and_refuses_keyed_inputs() {
        let g = dag(
            vec![
                stream("a", src(), vec![step("ma", StepKind::Stateless, Some(2))]),
                stream("b", src(), vec![step("mb", StepKind::Stateless, None)]),
                stream("u", StreamInput::Streams(vec![0, 1]), vec![step("m", StepKind::Stateless, None)]),
            ],
            &[2],
        );
        let p = plan(&g).unwrap();
        let u = &p.stages[2];
        assert_eq!(u.inputs, [Producer::Stage(0), Producer::Stage(1)]);
        assert_eq!((p.senders(&u.inputs), u.parallelism, u.input), (3, 4, Partitioning::Rebalance));
        let g = dag(
            vec![
                stream("a", src(), vec![step("k", StepKind::KeyBy, None)]),
                stream("b", src(), vec![]),
                stream("u", StreamInput::Streams(vec![0, 1]), vec![]),
            ],
            &[2],
        );
        assert!(matches!(plan(&g), Err(GraphError::UnionOfKeyed { .. })), "{:?}", plan(&g).err());
    }

    #[test]
    fn a_connected_pair_needs_both_keyed_and_marks_where_the_second_input_starts() {
        let keyed =
            |n: &str, p| vec![step(n, StepKind::Stateless, Some(p)), step(&format!("{n}-key"), StepKind::KeyBy, None)];
        let g = dag(
            vec![
                stream("a", src(), keyed("a", 2)),
                stream("b", src(), keyed("b", 3)),
                stream("j", StreamInput::Connect(0, 1), vec![step("join", StepKind::Keyed, None)]),
            ],
            &[2],
        );
        let p = plan(&g).unwrap();
        let j = &p.stages[2];
        assert_eq!(
            (j.inputs.clone(), j.second, j.parallelism),
            (vec![Producer::Stage(0), Producer::Stage(1)], Some(2), 4)
        );
        let g = dag(
            vec![
                stream("a", src(), keyed("a", 1)),
                stream("b", src(), vec![]),
                stream("j", StreamInput::Connect(0, 1), vec![step("join", StepKind::Keyed, None)]),
            ],
            &[2],
        );
        let err = plan(&g).err().unwrap().to_string();
        assert!(err.contains("`j` connects `a` and `b`, but `b` is not keyed"), "{err}");
    }

    #[test]
    fn streams_come_after_their_inputs_and_unread_ones_are_left_out() {
        let g = dag(vec![stream("a", StreamInput::Streams(vec![1]), vec![]), stream("b", src(), vec![])], &[0]);
        assert!(matches!(plan(&g), Err(GraphError::Order { .. })));
        let g = dag(
            vec![stream("a", src(), vec![]), stream("unread", src(), vec![step("x", StepKind::Stateless, None)])],
            &[0],
        );
        let p = plan(&g).unwrap();
        assert_eq!((p.sources.len(), p.stages.len()), (1, 0));
        assert_eq!(p.sinks[0].inputs, [Producer::Source(0)]);
    }
}
