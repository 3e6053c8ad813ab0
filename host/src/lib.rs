//! Weir: a stream processor whose user functions are WebAssembly components.
//!
//! The host owns everything stateful (sources, sinks, the operator graph, keyed state);
//! user code runs as sandboxed Wasm components against the `weir:plugin` WIT package and can
//! be replaced while a job runs.
//!
//! - [`record`]: records and flat batches of MessagePack values.
//! - [`plugin`]: the wasmtime engine, component cache, sandbox and plugin calls.
//! - [`operator`]: map/filter/flat_map over plugins, key_by, rolling aggregations.
//! - [`graph`]: the logical job graph and its physical plan.
//! - [`runtime`]: tasks, channels, partitioning, dead letters.
//! - [`connectors`]: sources and sinks.
//! - [`time`]: event time from records, watermark generation and combination.
//! - [`state`]: keyed state on sled (value, list, map, broadcast), timers, TTL.
//! - [`window`]: window assignment, session merging, firing and lateness, built-in aggregates.
//! - [`env`]: the builder API (`StreamEnvironment`, `DataStream`), like Flink's DataStream API.
//! - [`job`]: job files (YAML), validated with errors that name file, line and key.
//! - [`control`]: a running job's HTTP control API, the CLI commands using it, a watched
//!   plugin folder.

pub mod checkpoint;
pub mod cli;
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
pub mod time;
pub mod window;
