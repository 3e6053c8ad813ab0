//! Weir test plugin `versioned`, version 1.0.0: one version of a plugin that the hot-deploy
//! tests and benchmark swap in and out of running jobs (`versioned-v2-rust` is the next).
//!
//! - `tag` (map): `{"seq": n, ...}` -> `{"seq": n, "v1": true}`; an input field `t` (u64, the
//!   hot-swap bench's timestamp) is carried into the output as it is.
//! - `count` (process): value state `count: u64` per key; emits `{"key", "count", "v": 1}`.

use rmpv::Value;
use serde::{Deserialize, Serialize};
use weir::process::{Collector, Context, KeyedProcessFunction, NoBroadcast, ProcessResult, StateDecl};

#[derive(Debug, Deserialize)]
pub struct Seq {
    pub seq: u64,
    /// Passed through untouched (the bench measures per-record latency with it).
    #[serde(default)]
    pub t: Option<u64>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct TaggedV1 {
    pub seq: u64,
    pub v1: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<u64>,
}

/// Marks a record as handled by version 1.
#[weir::map]
pub fn tag(record: Seq) -> TaggedV1 {
    TaggedV1 { seq: record.seq, v1: true, t: record.t }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Counted {
    pub key: Value,
    pub count: u64,
    pub v: u32,
}

/// Counts per key in value state.
#[derive(Debug, Default)]
pub struct Count;

impl KeyedProcessFunction for Count {
    type Input = serde::de::IgnoredAny;
    type Output = Counted;
    type Broadcast = NoBroadcast;
    const STATES: &'static [StateDecl] = &[StateDecl::value::<u64>("count")];

    fn process_element(
        &mut self,
        _: serde::de::IgnoredAny,
        ctx: &Context<'_>,
        out: &mut Collector<'_, Counted>,
    ) -> ProcessResult {
        let count = ctx.value::<u64>("count")?;
        let n = count.get()?.unwrap_or(0) + 1;
        count.set(&n)?;
        out.collect(Counted { key: ctx.current_key()?, count: n, v: 1 });
        Ok(())
    }
}

weir::plugin! {
    name: "versioned",
    version: "1.0.0",
    functions: [tag],
    processes: [count: Count],
}
