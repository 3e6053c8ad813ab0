//! Functions that misbehave on purpose, for the host's failure paths.

use rmpv::Value;
use weir::process::{Collector, Context, KeyedProcessFunction, NoBroadcast, ProcessResult, StateDecl};

use crate::counts::{KeyCount, count_one};

/// Counts like `count_per_key` (writes `count`, emits `{key, count}`), then panics on an
/// element containing `boom` anywhere (a string with it, or a record with such a string).
/// The host must roll the write back, so every other element counts exactly once.
#[derive(Debug, Default)]
pub struct TrapAfterWrite;

impl KeyedProcessFunction for TrapAfterWrite {
    type Input = Value;
    type Output = KeyCount;
    type Broadcast = NoBroadcast;
    const STATES: &'static [StateDecl] = &[StateDecl::value::<u64>("count")];

    fn process_element(&mut self, value: Value, ctx: &Context<'_>, out: &mut Collector<'_, KeyCount>) -> ProcessResult {
        let n = count_one(ctx, out)?;
        if contains_boom(&value) {
            panic!("trap_after_write: trap on purpose after writing count {n} for {value}");
        }
        Ok(())
    }
}

fn contains_boom(value: &Value) -> bool {
    match value {
        Value::String(s) => s.as_str().is_some_and(|s| s.contains("boom")),
        Value::Array(items) => items.iter().any(contains_boom),
        Value::Map(entries) => entries.iter().any(|(k, v)| contains_boom(k) || contains_boom(v)),
        _ => false,
    }
}

/// Declares `count` but reads `not_declared`: every element fails with the host's refusal.
#[derive(Debug, Default)]
pub struct Undeclared;

impl KeyedProcessFunction for Undeclared {
    type Input = Value;
    type Output = Value;
    type Broadcast = NoBroadcast;
    const STATES: &'static [StateDecl] = &[StateDecl::value::<u64>("count")];

    fn process_element(&mut self, value: Value, ctx: &Context<'_>, out: &mut Collector<'_, Value>) -> ProcessResult {
        ctx.value::<u64>("not_declared")?.get()?;
        out.collect(value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use weir::testing::ProcessHarness;

    use super::*;
    use crate::PLUGIN;

    #[test]
    fn finds_boom_anywhere_in_an_element() {
        assert!(contains_boom(&Value::from("kaboom")));
        let record = Value::Map(vec![(Value::from("msg"), Value::Array(vec![Value::from(1), Value::from("boom")]))]);
        assert!(contains_boom(&record));
        assert!(!contains_boom(&Value::Map(vec![(Value::from("msg"), Value::from("fine"))])));
    }

    #[test]
    fn a_trap_after_writing_is_rolled_back_and_the_rest_count_once() {
        let mut h = ProcessHarness::new(&PLUGIN, "trap_after_write");
        h.process("a", "one", None).expect("no boom");
        let error =
            h.process_batch([("a", "two", None), ("a", "boom", None), ("b", "three", None)]).expect_err("traps");
        assert_eq!(error.failures().len(), 1);
        assert!(error.failures()[0].trapped);
        assert!(error.failures()[0].message.contains("after writing count 3"), "{error}");
        assert_eq!(h.value_state::<u64>("a", "count"), Some(2));
        assert_eq!(h.value_state::<u64>("b", "count"), Some(1));
        let counts: Vec<u64> = h.output::<KeyCount>().iter().map(|c| c.count).collect();
        assert_eq!(counts, [1, 2, 1]);
    }

    #[test]
    fn an_undeclared_state_fails_each_element_with_the_declared_names() {
        let mut h = ProcessHarness::new(&PLUGIN, "undeclared");
        let error = h.process("a", "x", None).expect_err("not declared");
        assert_eq!(error.failures().len(), 1);
        let message = &error.failures()[0].message;
        assert!(message.contains("used state `not_declared`, which it did not declare (declared: count)"), "{message}");
        assert!(h.output::<Value>().is_empty());
    }
}
