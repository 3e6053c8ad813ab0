//! Weir test plugin `versioned`, version 2.0.0: the next version of `versioned-v1-rust`,
//! with another output format, for the hot-deploy tests and benchmark.
//!
//! - `tag` (map): `{"seq": n, ...}` -> `{"seq": n, "version": 2}`; an input field `t` (u64,
//!   the hot-swap bench's timestamp) is carried into the output as it is.
//! - `count` (process): the same value state `count: u64` as version 1 (so a deploy keeps
//!   the counts); emits `{"key", "count", "v": 2}`.

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
pub struct TaggedV2 {
    pub seq: u64,
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<u64>,
}

/// Marks a record as handled by version 2.
#[weir::map]
pub fn tag(record: Seq) -> TaggedV2 {
    TaggedV2 { seq: record.seq, version: 2, t: record.t }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Counted {
    pub key: Value,
    pub count: u64,
    pub v: u32,
}

/// Counts per key in value state, as version 1 does.
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
        out.collect(Counted { key: ctx.current_key()?, count: n, v: 2 });
        Ok(())
    }
}

weir::plugin! {
    name: "versioned",
    version: "2.0.0",
    functions: [tag],
    processes: [count: Count],
}
