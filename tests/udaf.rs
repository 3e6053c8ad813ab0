//! UDAFs (Wasm aggregate functions) through the host's plugin API, against real components:
//! `plugins/stats-rust` (avg, weighted_avg, distinct_count, p95 and a map) and the hostile
//! aggregates of `plugins/hostile-rust`. These drive `weir::plugin::Aggregator` directly, as
//! the window operator does; `tests/windows.rs` runs UDAFs in windowed jobs.
//!
//! The failure cases check the contract the window operator relies on: a value that traps,
//! times out or does not decode fails alone (its index comes back for the dead-letter
//! output), and every other value of the batch is in the accumulator exactly once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use weir::plugin::{Aggregator, FailureKind, FunctionKind, Plugin, PluginError, PluginRuntime, SandboxLimits};
use weir::record::{self, Batch};

fn runtime() -> Arc<PluginRuntime> {
    PluginRuntime::new(common::shared_cache_dir()).expect("plugin runtime")
}

fn load(dir: &str, limits: SandboxLimits) -> Plugin {
    runtime().load(&common::plugin(dir), limits).unwrap_or_else(|e| panic!("cannot load {dir}: {e}"))
}

fn stats() -> Plugin {
    load("stats-rust", SandboxLimits::default())
}

/// JSON values as a batch of MessagePack rows, as the window operator will pass them.
fn batch(values: &[Value]) -> Batch {
    let mut batch = Batch::new();
    for v in values {
        let json = serde_json::to_vec(v).expect("JSON");
        batch.push_with(|out| record::json_to_msgpack(&json, out)).expect("JSON converts to MessagePack");
    }
    batch
}

/// `n` copies of `empty`, as the accumulators argument of a grouped call.
fn accumulators(empty: &[u8], n: usize) -> Batch {
    let mut accs = Batch::new();
    for _ in 0..n {
        accs.push(empty);
    }
    accs
}

fn result(agg: &mut Aggregator, acc: &[u8]) -> Value {
    let row = agg.get_result(acc).unwrap_or_else(|e| panic!("get_result: {e}"));
    record::json_of(&row)
}

/// create + add (one batch, expecting no failures) + get_result.
fn aggregate(agg: &mut Aggregator, values: &[Value]) -> Value {
    let acc = agg.create().expect("create");
    let out = agg.add(&acc, &batch(values)).expect("add");
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    result(agg, &out.accumulator)
}

#[test]
fn describe_lists_aggregates_beside_the_map() {
    let plugin = stats();
    let kinds: Vec<(&str, FunctionKind)> = plugin.info().functions.iter().map(|f| (f.name.as_str(), f.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("latency_ms", FunctionKind::Map),
            ("avg", FunctionKind::Aggregate),
            ("weighted_avg", FunctionKind::Aggregate),
            ("distinct_count", FunctionKind::Aggregate),
            ("p95", FunctionKind::Aggregate),
            ("count", FunctionKind::Aggregate),
        ]
    );
    assert!(plugin.exports().aggregate && plugin.exports().transform);
}

#[test]
fn each_stats_aggregate_computes_its_result() {
    let plugin = stats();
    let mut avg = plugin.aggregator("avg").expect("avg");
    assert_eq!(aggregate(&mut avg, &[json!(1), json!(2.5), json!(5.5)]), json!(3.0));
    assert_eq!(aggregate(&mut avg, &[]), Value::Null, "no values: no average");

    let mut weighted = plugin.aggregator("weighted_avg").expect("weighted_avg");
    let values = [json!({"value": 10.0, "weight": 1.0}), json!({"value": 20.0, "weight": 3.0})];
    assert_eq!(aggregate(&mut weighted, &values), json!(17.5), "(10 * 1 + 20 * 3) / 4");

    let mut distinct = plugin.aggregator("distinct_count").expect("distinct_count");
    let urls = ["/a", "/b", "/a", "/c", "/b"].map(|u| json!(u));
    assert_eq!(aggregate(&mut distinct, &urls), json!(3));

    let mut p95 = plugin.aggregator("p95").expect("p95");
    // Whole access-log records; 1..=40 ms: the nearest rank is ceil(0.95 * 40) = 38.
    let lines: Vec<Value> = (1..=40).rev().map(|ms| json!({"url": "/", "latency_ms": ms})).collect();
    assert_eq!(aggregate(&mut p95, &lines), json!(38.0));
}

#[test]
fn merge_combines_partial_accumulators_like_session_windows() {
    let plugin = stats();
    let mut distinct = plugin.aggregator("distinct_count").expect("distinct_count");
    let empty = distinct.create().expect("create");
    let a = distinct.add(&empty, &batch(&[json!("x"), json!("y")])).expect("add").accumulator;
    let b = distinct.add(&empty, &batch(&[json!("y"), json!("z")])).expect("add").accumulator;
    let merged = distinct.merge(&a, &b).expect("merge");
    assert_eq!(result(&mut distinct, &merged), json!(3));
    // The inputs are untouched bytes: the host may keep using them.
    assert_eq!(result(&mut distinct, &a), json!(2));

    let mut avg = plugin.aggregator("avg").expect("avg");
    let empty = avg.create().expect("create");
    let a = avg.add(&empty, &batch(&[json!(1), json!(2)])).expect("add").accumulator;
    let b = avg.add(&empty, &batch(&[json!(9)])).expect("add").accumulator;
    let merged = avg.merge(&a, &b).expect("merge");
    assert_eq!(result(&mut avg, &merged), json!(4.0));
}

/// `avg` retracts exactly; `distinct_count` cannot, and fails each value with an error (not
/// a trap) and leaves the accumulator as it was. Both stats plugins must behave so.
fn check_retract(plugin: &Plugin) {
    let mut avg = plugin.aggregator("avg").expect("avg");
    let acc = avg.create().expect("create");
    let acc = avg.add(&acc, &batch(&[json!(1), json!(2), json!(9)])).expect("add").accumulator;
    let out = avg.retract(&acc, &batch(&[json!(9)])).expect("retract");
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    assert_eq!(result(&mut avg, &out.accumulator), json!(1.5));

    let mut distinct = plugin.aggregator("distinct_count").expect("distinct_count");
    let acc = distinct.create().expect("create");
    let acc = distinct.add(&acc, &batch(&[json!("a")])).expect("add").accumulator;
    let out = distinct.retract(&acc, &batch(&[json!("a"), json!("b")])).expect("retract");
    assert_eq!(
        out.failures.iter().map(|f| (f.index, f.kind)).collect::<Vec<_>>(),
        [(0, FailureKind::Error), (1, FailureKind::Error)]
    );
    assert!(out.failures[0].message.contains("does not support retract"), "{}", out.failures[0].message);
    assert_eq!(out.accumulator, acc, "nothing retracted");
    assert_eq!(out.instances_rebuilt, 0, "an error is not a trap");
}

#[test]
fn retract_where_supported_and_per_value_errors_where_not() {
    check_retract(&stats());
}

#[test]
fn a_value_that_does_not_decode_fails_alone() {
    let plugin = stats();
    let mut avg = plugin.aggregator("avg").expect("avg");
    let acc = avg.create().expect("create");
    let out = avg.add(&acc, &batch(&[json!(1), json!("two"), json!(3), json!({"x": 1})])).expect("add");
    let failed: Vec<(usize, FailureKind)> = out.failures.iter().map(|f| (f.index, f.kind)).collect();
    assert_eq!(failed, [(1, FailureKind::Error), (3, FailureKind::Error)]);
    assert!(out.failures[0].message.contains("f64"), "{}", out.failures[0].message);
    assert_eq!(result(&mut avg, &out.accumulator), json!(2.0), "the mean of 1 and 3 only");
}

#[test]
fn a_trapping_value_fails_alone_and_every_other_value_is_added_once() {
    let plugin = load("hostile-rust", SandboxLimits::default());
    let mut agg = plugin.aggregator("agg_trap").expect("agg_trap");
    let acc = agg.create().expect("create");
    let acc = agg.add(&acc, &batch(&[json!("before")])).expect("add").accumulator;
    let values = ["a", "boom", "b", "c", "boom again", "d"].map(|v| json!(v));
    let out = agg.add(&acc, &batch(&values)).expect("add");
    let failed: Vec<(usize, FailureKind)> = out.failures.iter().map(|f| (f.index, f.kind)).collect();
    assert_eq!(failed, [(1, FailureKind::Trap), (4, FailureKind::Trap)]);
    assert!(out.failures[0].message.contains("aggregate trap on purpose"), "{}", out.failures[0].message);
    assert_eq!(out.instances_rebuilt, 3, "the batch call and the two guilty values each poisoned an instance");
    assert_eq!(result(&mut agg, &out.accumulator), json!(["before", "a", "b", "c", "d"]));

    // The aggregator goes on with a fresh instance.
    let out = agg.add(&out.accumulator, &batch(&[json!("e")])).expect("add");
    assert!(out.failures.is_empty());
    assert_eq!(result(&mut agg, &out.accumulator), json!(["before", "a", "b", "c", "d", "e"]));
}

#[test]
fn one_grouped_call_folds_a_batch_into_many_accumulators_and_a_trap_fails_only_its_value() {
    let plugin = load("hostile-rust", SandboxLimits::default());
    let mut agg = plugin.aggregator("agg_trap").expect("agg_trap");
    let empty = agg.create().expect("create");
    let accs = accumulators(&empty, 3);
    // Values for three keys interleaved, as a batch spread over keys arrives; "boom" traps.
    let values = ["a1", "b1", "boom", "a2", "c1", "b2"].map(|v| json!(v));
    let groups = [0, 1, 2, 0, 2, 1];
    let out = agg.add_grouped(&accs, &batch(&values), &groups).expect("add_grouped");
    let failed: Vec<(usize, FailureKind)> = out.failures.iter().map(|f| (f.index, f.kind)).collect();
    assert_eq!(failed, [(2, FailureKind::Trap)]);
    assert_eq!(out.accumulators.len(), 3);
    let results: Vec<Value> = (0..3).map(|g| result(&mut agg, out.accumulators.value(g))).collect();
    assert_eq!(results, [json!(["a1", "a2"]), json!(["b1", "b2"]), json!(["c1"])]);

    // Without failures it is one call: the stats avg over two groups.
    let mut avg = stats().aggregator("avg").expect("avg");
    let empty = avg.create().expect("create");
    let accs = accumulators(&empty, 2);
    let out = avg.add_grouped(&accs, &batch(&[json!(1), json!(10), json!(3)]), &[0, 1, 0]).expect("add_grouped");
    assert!(out.failures.is_empty());
    assert_eq!(result(&mut avg, out.accumulators.value(0)), json!(2.0));
    assert_eq!(result(&mut avg, out.accumulators.value(1)), json!(10.0));
}

#[test]
fn a_value_that_runs_too_long_times_out_alone() {
    let limits = SandboxLimits { call_timeout: Duration::from_millis(200), ..SandboxLimits::default() };
    let plugin = load("hostile-rust", limits);
    let mut agg = plugin.aggregator("agg_spin").expect("agg_spin");
    let acc = agg.create().expect("create");
    let out = agg.add(&acc, &batch(&["x", "loop", "y"].map(|v| json!(v)))).expect("add");
    let failed: Vec<(usize, FailureKind)> = out.failures.iter().map(|f| (f.index, f.kind)).collect();
    assert_eq!(failed, [(1, FailureKind::Timeout)]);
    assert!(out.failures[0].message.contains("200 ms"), "{}", out.failures[0].message);
    assert_eq!(result(&mut agg, &out.accumulator), json!(["x", "y"]));
}

#[test]
fn recycling_between_batches_keeps_the_accumulator_exact() {
    let limits = SandboxLimits { recycle_after_records: 3, ..SandboxLimits::default() };
    let plugin = load("stats-rust", limits);
    let mut distinct = plugin.aggregator("distinct_count").expect("distinct_count");
    let mut acc = distinct.create().expect("create");
    for i in 0..50 {
        let values: Vec<Value> = (0..4).map(|j| json!(format!("v{}", (i * 4 + j) % 120))).collect();
        let out = distinct.add(&acc, &batch(&values)).expect("add");
        assert!(out.failures.is_empty());
        acc = out.accumulator;
    }
    assert_eq!(result(&mut distinct, &acc), json!(120));
}

#[test]
fn functions_are_checked_for_their_kind() {
    let plugin = stats();
    let err = plugin.aggregator("latency_ms").err().expect("a map is not an aggregate");
    assert!(matches!(err, PluginError::WrongKind { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "`stats.latency_ms` is a map function, but this step needs a function of kind aggregate"
    );
    let err = plugin.transformer("avg", &[FunctionKind::Map]).err().expect("an aggregate is not a map");
    assert!(matches!(err, PluginError::WrongKind { .. }), "{err}");
    let err = plugin.aggregator("median").err().expect("no such function");
    assert!(err.to_string().contains("avg (aggregate)"), "{err}");

    // The map beside the aggregates works as a transform.
    let mut map = plugin.transformer("latency_ms", &[FunctionKind::Map]).expect("map");
    let out = map.apply(&batch(&[json!({"url": "/", "latency_ms": 7})])).expect("apply");
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    assert_eq!(record::json_of(out.rows.value(0)), json!(7.0));

    // A plugin without aggregates.
    let upper = load("upper-rust", SandboxLimits::default());
    let name = upper.info().functions[0].name.clone();
    assert!(matches!(upper.aggregator(&name), Err(PluginError::WrongKind { .. })));
}

// --- The Python stats plugin (plugins/stats-python): the same functions through the Python
// SDK's aggregate path (python-marshal values and results, marshal accumulators), checked
// against the Rust plugin's results.

fn python_stats() -> Plugin {
    load("stats-python", SandboxLimits::default())
}

/// The result of `function` of `plugin` over `values` in one add call.
fn aggregate_with(plugin: &Plugin, function: &str, values: &[Value]) -> Value {
    let mut agg = plugin.aggregator(function).unwrap_or_else(|e| panic!("{function}: {e}"));
    aggregate(&mut agg, values)
}

/// The inputs of every stats aggregate that the Python and the Rust plugins must agree on.
fn stats_cases() -> Vec<(&'static str, Vec<Value>)> {
    let latencies: Vec<Value> = (1..=40).rev().map(|ms| json!({"url": "/", "latency_ms": ms})).collect();
    vec![
        ("avg", vec![json!(1), json!(2.5), json!(5.5)]),
        ("avg", vec![]),
        ("avg", (0..1000).map(|i| json!(i * 7 % 101)).collect()),
        ("weighted_avg", vec![json!({"value": 10.0, "weight": 1.0}), json!({"value": 20, "weight": 3})]),
        ("weighted_avg", vec![json!({"value": 10.0, "weight": 0.0})]),
        ("distinct_count", ["/a", "/b", "/a", "/c", "/b"].map(|u| json!(u)).to_vec()),
        ("distinct_count", vec![]),
        ("p95", latencies),
        ("p95", (1..=100).rev().map(|v| json!(v)).collect()),
        ("p95", vec![json!(5.0), json!(1), json!(3.0)]),
        ("p95", vec![]),
    ]
}

#[test]
fn python_stats_describes_the_same_functions_as_the_rust_plugin() {
    let python = python_stats();
    let rust = stats();
    let kinds = |p: &Plugin| p.info().functions.iter().map(|f| (f.name.clone(), f.kind)).collect::<Vec<_>>();
    assert_eq!(kinds(&python), kinds(&rust));
    assert!(python.info().functions.iter().all(|f| f.encoding == weir::plugin::RowEncoding::PythonMarshal));
    assert!(python.info().sdk.starts_with("weir-sdk-python"), "{}", python.info().sdk);
    assert!(python.exports().aggregate && python.exports().transform);
}

#[test]
fn python_stats_aggregates_give_the_rust_plugins_results() {
    let (python, rust) = (python_stats(), stats());
    for (function, values) in stats_cases() {
        let expected = aggregate_with(&rust, function, &values);
        assert_eq!(aggregate_with(&python, function, &values), expected, "{function} over {} values", values.len());
    }
    // Spot checks that the cases mean something.
    assert_eq!(aggregate_with(&python, "avg", &[json!(1), json!(2.5), json!(5.5)]), json!(3.0));
    let weighted = [json!({"value": 10.0, "weight": 1.0}), json!({"value": 20.0, "weight": 3.0})];
    assert_eq!(aggregate_with(&python, "weighted_avg", &weighted), json!(17.5));
    let lines: Vec<Value> = (1..=40).map(|ms| json!({"url": "/", "latency_ms": ms})).collect();
    assert_eq!(aggregate_with(&python, "p95", &lines), json!(38.0));
}

#[test]
fn python_stats_grouped_add_gives_each_key_the_rust_result() {
    let (python, rust) = (python_stats(), stats());
    // 600 latencies spread over 7 keys in one call.
    let values: Vec<Value> = (0..600).map(|i| json!({"latency_ms": (i * 37) % 250})).collect();
    let groups: Vec<u32> = (0..600).map(|i| (i * 13 % 7) as u32).collect();
    let per_key = |plugin: &Plugin| -> Vec<Value> {
        let mut p95 = plugin.aggregator("p95").expect("p95");
        let empty = p95.create().expect("create");
        let accs = accumulators(&empty, 7);
        let out = p95.add_grouped(&accs, &batch(&values), &groups).expect("add_grouped");
        assert!(out.failures.is_empty(), "{:?}", out.failures);
        (0..7).map(|g| result(&mut p95, out.accumulators.value(g))).collect()
    };
    let expected = per_key(&rust);
    assert_eq!(per_key(&python), expected);
    // Key by key in separate calls: the same.
    let mut p95 = python.aggregator("p95").expect("p95");
    for (g, want) in expected.iter().enumerate() {
        let mine: Vec<Value> =
            values.iter().zip(&groups).filter(|(_, k)| **k as usize == g).map(|(v, _)| v.clone()).collect();
        assert_eq!(&aggregate(&mut p95, &mine), want, "key {g}");
    }
}

#[test]
fn python_stats_merges_partial_accumulators_like_the_rust_plugin() {
    let (python, rust) = (python_stats(), stats());
    let parts = |function: &str| -> Vec<Vec<Value>> {
        match function {
            "distinct_count" => vec![vec![json!("x"), json!("y")], vec![json!("y"), json!("z")], vec![]],
            "weighted_avg" => vec![vec![json!({"value": 1, "weight": 2})], vec![json!({"value": 4, "weight": 1})]],
            _ => vec![vec![json!(1.0), json!(7.0), json!(3.0)], vec![json!(2), json!(10)], vec![json!(4.0)]],
        }
    };
    let merged = |plugin: &Plugin, function: &str| -> Value {
        let mut agg = plugin.aggregator(function).expect("aggregator");
        let empty = agg.create().expect("create");
        let accs: Vec<Vec<u8>> =
            parts(function).iter().map(|vs| agg.add(&empty, &batch(vs)).expect("add").accumulator).collect();
        let all = accs[1..].iter().fold(accs[0].clone(), |a, b| agg.merge(&a, b).expect("merge"));
        result(&mut agg, &all)
    };
    for function in ["avg", "weighted_avg", "distinct_count", "p95"] {
        assert_eq!(merged(&python, function), merged(&rust, function), "{function}");
    }
    assert_eq!(merged(&python, "distinct_count"), json!(3));
    assert_eq!(merged(&python, "p95"), json!(10.0));
}

#[test]
fn python_stats_retracts_where_supported_and_fails_each_value_where_not() {
    check_retract(&python_stats());
}

#[test]
fn python_stats_a_bad_value_fails_alone() {
    let python = python_stats();
    let mut avg = python.aggregator("avg").expect("avg");
    let acc = avg.create().expect("create");
    let out = avg.add(&acc, &batch(&[json!(1), json!("two"), json!(3), json!({"x": 1})])).expect("add");
    let failed: Vec<(usize, FailureKind)> = out.failures.iter().map(|f| (f.index, f.kind)).collect();
    assert_eq!(failed, [(1, FailureKind::Error), (3, FailureKind::Error)]);
    assert!(out.failures[0].message.contains("expected a number, got str"), "{}", out.failures[0].message);
    assert_eq!(out.instances_rebuilt, 0, "a Python exception is an error, not a trap");
    assert_eq!(result(&mut avg, &out.accumulator), json!(2.0), "the mean of 1 and 3 only");

    // In a grouped call the bad value fails alone too, and the other keys get all their values.
    let mut distinct = python.aggregator("distinct_count").expect("distinct_count");
    let empty = distinct.create().expect("create");
    let accs = accumulators(&empty, 2);
    let values = [json!("a"), json!("b"), json!(7), json!("c"), json!("a")];
    let out = distinct.add_grouped(&accs, &batch(&values), &[0, 1, 0, 1, 1]).expect("add_grouped");
    assert_eq!(out.failures.iter().map(|f| f.index).collect::<Vec<_>>(), [2]);
    assert!(out.failures[0].message.contains("expected a string"), "{}", out.failures[0].message);
    let counts: Vec<Value> = (0..2).map(|g| result(&mut distinct, out.accumulators.value(g))).collect();
    assert_eq!(counts, [json!(1), json!(3)]);
}
