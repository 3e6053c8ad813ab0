//! What every version of the test plugin `versioned` shares: its input, and its counting
//! process function, which tags its output with the crate's `VERSION`. Versions 2 and on
//! include this file from here (`#[path]`), so the versions differ only where they should.

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
pub struct Counted {
    pub key: Value,
    pub count: u64,
    pub v: u32,
}

/// Counts per key in value state (the same state in every version, so a deploy keeps the
/// counts) and emits the count with [`crate::VERSION`].
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
        out.collect(Counted { key: ctx.current_key()?, count: n, v: crate::VERSION });
        Ok(())
    }
}
