//! Weir test plugin `process`: keyed process functions (Flink's `KeyedProcessFunction`) over
//! every kind of host-owned state, for the host's integration tests and as examples.
//!
//! Keys are whatever the job keys by (a string, a number), passed back as they came.
//!
//! | function | input | output | state |
//! |---|---|---|---|
//! | `count_per_key` | any element | `{key, count}` per element | value `count: u64` |
//! | `ttl_count` | any element | `{key, count}` per element | value `count: u64`, TTL 1 s |
//! | `sessionize` | any element with event time | `{key, start, end, events}` when the session closes | list `events`, value `timer: i64` |
//! | `map_state_demo` | `{item, remove?}` | `{key, counts: {item: n}}` per element | map `counts: String -> u64` |
//! | `fraud_detector` | `{account, amount}`; broadcast `{name, small, large}` | `{account, small, large}` alerts | value `flag: f64`, value `timer`, broadcast map `rules` |
//! | `trap_after_write` | any element | `{key, count}`, then a trap on an element containing `boom` | value `count: u64` |
//! | `undeclared` | any element | fails: uses state `not_declared` | value `count: u64` |
//! | `match_payments` (co-process) | 1: `{id, amount}` orders, 2: `{id, paid}` payments | `{id, amount, paid}`; side output `duplicate` | value `order`, `payment`, `done` |
//! | `latest_amount` | `{amount}` | `{key, amount}` as insert, then update-before/update-after | value `last: f64` |
//! | `window_stats` (process-window) | `{amount}` | `{key, start, end, count, max}` per window | none |

mod abi02;
mod counts;
mod fraud;
mod hostile;
mod items;
mod sessions;

pub use abi02::{Amount, Latest, LatestAmount, MatchPayments, Order, Paid, Payment, WindowStats, WindowStatsFn};
pub use counts::{CountPerKey, KeyCount, TtlCount};
pub use fraud::{
    Alert, FraudDetector, LARGE_AMOUNT, ONE_MINUTE_MS, PendingTimer, Rule, SMALL_AMOUNT, Thresholds, Transaction,
};
pub use hostile::{TrapAfterWrite, Undeclared};
pub use items::{ItemCounts, ItemEvent, MapStateDemo};
pub use sessions::{SESSION_GAP_MS, Session, Sessionize, Stamped};

weir::plugin! {
    name: "process",
    version: "0.1.0",
    processes: [
        count_per_key: CountPerKey,
        ttl_count: TtlCount,
        sessionize: Sessionize,
        map_state_demo: MapStateDemo,
        fraud_detector: FraudDetector,
        trap_after_write: TrapAfterWrite,
        undeclared: Undeclared,
        latest_amount: LatestAmount,
    ],
    co_processes: [match_payments: MatchPayments],
    process_windows: [window_stats: WindowStatsFn],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_lists_every_function_with_its_states() {
        let names: Vec<&str> = PLUGIN.processes().iter().map(|f| f.name()).collect();
        assert_eq!(
            names,
            [
                "count_per_key",
                "ttl_count",
                "sessionize",
                "map_state_demo",
                "fraud_detector",
                "trap_after_write",
                "undeclared",
                "latest_amount",
                "match_payments",
                "window_stats"
            ]
        );
        let states: Vec<String> = PLUGIN
            .processes()
            .iter()
            .flat_map(|f| {
                f.states().iter().map(move |s| {
                    let ttl = s.ttl_ms().map(|ms| format!(", ttl {ms} ms")).unwrap_or_default();
                    format!("{}: {} {} of {}{ttl}", f.name(), s.kind(), s.name(), s.value_type())
                })
            })
            .collect();
        assert_eq!(
            states,
            [
                "count_per_key: value count of u64",
                "ttl_count: value count of u64, ttl 1000 ms",
                "sessionize: list events of process_rust::sessions::Stamped",
                "sessionize: value timer of i64",
                "map_state_demo: map counts of alloc::string::String -> u64",
                "fraud_detector: value flag of f64",
                "fraud_detector: value timer of process_rust::fraud::PendingTimer",
                "fraud_detector: broadcast-map rules of alloc::string::String -> process_rust::fraud::Thresholds",
                "trap_after_write: value count of u64",
                "undeclared: value count of u64",
                "latest_amount: value last of f64",
                "match_payments: value order of process_rust::abi02::Order",
                "match_payments: value payment of process_rust::abi02::Payment",
                "match_payments: value done of bool",
            ]
        );
        assert!(PLUGIN.functions().is_empty() && PLUGIN.aggregates().is_empty());
    }
}
