//! Value state: a running count per key, with and without TTL.

use std::time::Duration;

use rmpv::Value;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use weir::process::{Collector, Context, KeyedProcessFunction, NoBroadcast, ProcessResult, StateDecl};

/// The output of the counting functions: the key, as the job keyed by it, and its count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyCount {
    pub key: Value,
    pub count: u64,
}

/// Adds one to the key's value state `count` and emits the new count.
pub(crate) fn count_one(ctx: &Context<'_>, out: &mut Collector<'_, KeyCount>) -> ProcessResult<u64> {
    let count = ctx.value::<u64>("count")?;
    let n = count.get()?.unwrap_or(0) + 1;
    count.set(&n)?;
    out.collect(KeyCount { key: ctx.current_key()?, count: n });
    Ok(n)
}

/// Counts the elements of each key (any element) and emits `{key, count}` for each.
#[derive(Debug, Default)]
pub struct CountPerKey;

impl KeyedProcessFunction for CountPerKey {
    type Input = IgnoredAny;
    type Output = KeyCount;
    type Broadcast = NoBroadcast;
    const STATES: &'static [StateDecl] = &[StateDecl::value::<u64>("count")];

    fn process_element(
        &mut self,
        _: IgnoredAny,
        ctx: &Context<'_>,
        out: &mut Collector<'_, KeyCount>,
    ) -> ProcessResult {
        count_one(ctx, out).map(drop)
    }
}

/// Like [`CountPerKey`], but a count not written for a second (processing time) expires: the
/// key starts again from 1.
#[derive(Debug, Default)]
pub struct TtlCount;

impl KeyedProcessFunction for TtlCount {
    type Input = IgnoredAny;
    type Output = KeyCount;
    type Broadcast = NoBroadcast;
    const STATES: &'static [StateDecl] = &[StateDecl::value::<u64>("count").with_ttl(Duration::from_secs(1))];

    fn process_element(
        &mut self,
        _: IgnoredAny,
        ctx: &Context<'_>,
        out: &mut Collector<'_, KeyCount>,
    ) -> ProcessResult {
        count_one(ctx, out).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use weir::testing::ProcessHarness;

    use super::*;
    use crate::PLUGIN;

    fn key_count(key: impl Into<Value>, count: u64) -> KeyCount {
        KeyCount { key: key.into(), count }
    }

    #[test]
    fn counts_each_key_apart_whatever_the_elements_are() -> Result<(), Box<dyn std::error::Error>> {
        let mut h = ProcessHarness::new(&PLUGIN, "count_per_key");
        h.process("alice", "click", None)?;
        h.process_batch([("bob", Value::from(1), None), ("alice", Value::Map(vec![]), Some(5))])?;
        h.process(7, "an integer key", None)?;
        assert_eq!(
            h.output::<KeyCount>(),
            [key_count("alice", 1), key_count("bob", 1), key_count("alice", 2), key_count(7, 1)]
        );
        assert_eq!(h.value_state::<u64>("alice", "count"), Some(2));
        assert_eq!(h.value_state::<u64>("carol", "count"), None);
        Ok(())
    }

    #[test]
    fn a_count_expires_a_second_after_its_last_write() -> Result<(), Box<dyn std::error::Error>> {
        let mut h = ProcessHarness::new(&PLUGIN, "ttl_count");
        h.process("a", (), None)?;
        h.advance_processing_time(999)?;
        h.process("a", (), None)?; // written again at 999: lives until 1999
        h.advance_processing_time(1998)?;
        assert_eq!(h.value_state::<u64>("a", "count"), Some(2));
        h.advance_processing_time(1999)?;
        assert_eq!(h.value_state::<u64>("a", "count"), None);
        h.process("a", (), None)?;
        assert_eq!(h.take_output::<KeyCount>().last(), Some(&key_count("a", 1)));
        Ok(())
    }
}
