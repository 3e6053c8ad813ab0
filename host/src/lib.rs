//! Weir: a stream processor whose user functions are WebAssembly components.
//!
//! The host owns everything stateful (sources, sinks, the operator graph, keyed state);
//! user code runs as sandboxed Wasm components against the `weir:plugin` WIT package and can
//! be replaced while a job runs.
//!
//! Modules form layers and import only downward (decision 0011; `tests/layers.rs` checks it),
//! listed here bottom up:
//!
//! - [`record`]: records and flat batches of MessagePack values.
//! - [`time`]: event time from records, watermark generation and combination.
//! - [`window`]: window assignment, session merging, firing and lateness, built-in aggregates.
//! - [`state`]: keyed state on sled (value, list, map, broadcast), timers, TTL, key groups.
//! - [`plugin`]: the wasmtime engine, component cache, sandbox and plugin calls.
//! - [`checkpoint`]: checkpoint and savepoint files, source positions.
//! - [`deploy`]: hot deploy of a plugin into a running step, with canary and rollback.
//! - [`task`]: what every task speaks: messages and outputs, dead letters, the operator
//!   trait and the stage run loop, source context and sink writer, checkpoint acks and
//!   committers, job control, connector health.
//! - [`operator`]: map/filter/flat_map over plugins, key_by, rolling aggregations, windows,
//!   process functions, timestamp assigners.
//! - [`connectors`]: sources and sinks (collection, file, socket, datagen, nexmark, kafka;
//!   print, file, collect, discard, kafka, postgres).
//! - [`graph`]: the logical job graph and its physical plan.
//! - [`runtime`]: wiring a planned job's tasks, the checkpoint coordinator, recovery and
//!   the restart strategy.
//! - [`env`]: the builder API (`StreamEnvironment`, `DataStream`), like Flink's DataStream API.
//! - [`job`]: job files (YAML), validated with errors that name file, line and key.
//! - [`control`]: a running job's HTTP control API, the CLI commands using it, a watched
//!   plugin folder.

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod connectors;
pub mod control;
pub mod deploy;
pub mod env;
pub mod graph;
pub mod job;
pub mod operator;
pub mod plugin;
pub mod record;
pub mod runtime;
pub mod state;
pub mod task;
pub mod time;
pub mod window;
