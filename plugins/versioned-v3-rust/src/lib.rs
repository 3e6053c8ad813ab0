//! Weir test plugin `versioned`, version 3.0.0: a broken release of `versioned-v1-rust`
//! whose `tag` traps on every record, for the rollback tests; and a `count` whose state
//! `count` holds another type, which a deploy must refuse.

use serde::Deserialize;
use weir::process::{Collector, Context, KeyedProcessFunction, NoBroadcast, ProcessResult, StateDecl};

#[derive(Debug, Deserialize)]
pub struct Seq {
    pub seq: u64,
}

/// Traps (panics, which aborts the Wasm instance) on every record.
#[weir::map]
pub fn tag(record: Seq) -> u64 {
    panic!("versioned 3.0.0 is broken (record {})", record.seq)
}

/// Declares `count` as a string: incompatible with the counts versions 1 and 2 stored.
#[derive(Debug, Default)]
pub struct Count;

impl KeyedProcessFunction for Count {
    type Input = serde::de::IgnoredAny;
    type Output = String;
    type Broadcast = NoBroadcast;
    const STATES: &'static [StateDecl] = &[StateDecl::value::<String>("count")];

    fn process_element(
        &mut self,
        _: serde::de::IgnoredAny,
        _: &Context<'_>,
        _: &mut Collector<'_, String>,
    ) -> ProcessResult {
        Err("versioned 3.0.0 counts nothing".into())
    }
}

weir::plugin! {
    name: "versioned",
    version: "3.0.0",
    functions: [tag],
    processes: [count: Count],
}
