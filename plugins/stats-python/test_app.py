"""Tests of the stats plugin: the same cases, and results, as plugins/stats-rust's, through
the component's aggregate path (weir.testing)."""

import pytest

import weir
import weir.testing as t

import app
from app import Avg, Count, DistinctCount, P95, WeightedAvg, latency_ms


def test_describe_lists_the_map_and_the_aggregates():
    functions = t.describe(app)["functions"]
    assert [(f["name"], f["kind"]) for f in functions] == [
        ("latency_ms", "map"),
        ("avg", "aggregate"),
        ("weighted_avg", "aggregate"),
        ("distinct_count", "aggregate"),
        ("p95", "aggregate"),
        ("count", "aggregate"),
    ]


def test_avg_of_numbers_and_of_nothing():
    assert t.aggregate(Avg, [1.0, 2.0, 6.0]) == 3.0
    assert t.aggregate(Avg, []) is None
    assert t.aggregate(Avg, [1, 2]) == 1.5


def test_avg_merges_and_retracts():
    assert t.aggregate_merged(Avg, [[1.0, 2.0], [], [9.0]]) == 4.0
    acc = t.add(Avg, t.create_accumulator(Avg), [1.0, 2.0, 9.0])
    assert t.result(Avg, t.retract(Avg, acc, [9.0])) == 1.5
    with pytest.raises(weir.AggregateError, match="value 0: ValueError: cannot retract 1 from an empty average"):
        t.retract(Avg, t.create_accumulator(Avg), [1])


def test_a_value_that_is_not_a_number_fails_the_batch_naming_it():
    with pytest.raises(weir.AggregateError, match=r"aggregate `avg`: value 0: TypeError: expected a number, got str"):
        t.add(Avg, t.create_accumulator(Avg), ["1", "x"])
    with pytest.raises(weir.AggregateError, match="value 1: .*got bool"):
        t.aggregate(Avg, [1, True])


def test_one_add_call_folds_values_into_several_accumulators():
    empty = t.create_accumulator(Avg)
    accs = t.add_grouped(Avg, [empty, empty], [(0, 1.0), (1, 10.0), (0, 3.0)])
    assert [t.result(Avg, a) for a in accs] == [2.0, 10.0]
    with pytest.raises(weir.AggregateError, match="accumulator 2 of 2"):
        t.add_grouped(Avg, accs, [(2, 1.0)])


def test_weighted_avg_weighs():
    values = [{"value": 10.0, "weight": 1.0}, {"value": 20.0, "weight": 3.0}]
    assert t.aggregate(WeightedAvg, values) == 17.5
    assert t.aggregate(WeightedAvg, [{"value": 10.0, "weight": 0.0}]) is None
    acc = t.add(WeightedAvg, t.create_accumulator(WeightedAvg), values)
    assert t.result(WeightedAvg, t.retract(WeightedAvg, acc, values[1:])) == 10.0
    with pytest.raises(weir.AggregateError, match="value 0: KeyError: 'weight'"):
        t.aggregate(WeightedAvg, [{"value": 1.0}])


def test_distinct_count_counts_each_string_once_across_merges():
    assert t.aggregate(DistinctCount, ["a", "b", "a"]) == 2
    assert t.aggregate_merged(DistinctCount, [["a", "b"], ["b", "c"]]) == 3
    with pytest.raises(weir.AggregateError, match="does not support retract"):
        t.retract(DistinctCount, t.create_accumulator(DistinctCount), ["a"])
    with pytest.raises(weir.AggregateError, match="value 0: TypeError: expected a string, got int"):
        t.aggregate(DistinctCount, [1])


def test_p95_by_nearest_rank():
    assert t.aggregate(P95, [float(i) for i in range(100, 0, -1)]) == 95.0
    assert t.aggregate(P95, [5.0, 1.0, 3.0]) == 5.0
    assert t.aggregate(P95, []) is None
    # Nearest rank at the edges: 20 values -> rank 19, 21 values -> rank ceil(19.95) = 20.
    assert t.aggregate(P95, range(1, 21)) == 19.0
    assert t.aggregate(P95, range(1, 22)) == 20.0


def test_p95_reads_records_merges_and_retracts():
    lines = [{"url": "/", "latency_ms": i} for i in range(1, 21)]
    acc = t.add(P95, t.create_accumulator(P95), lines)
    assert t.result(P95, acc) == 19.0
    acc = t.retract(P95, acc, [19.0, 20])
    assert t.result(P95, acc) == 18.0
    with pytest.raises(weir.AggregateError, match="cannot retract 42.0: it is not in the accumulator"):
        t.retract(P95, acc, [42.0])
    assert t.aggregate_merged(P95, [[1.0, 7.0, 3.0], [2.0, 10.0], [4.0]]) == 10.0
    assert t.accumulator(P95, t.add(P95, t.create_accumulator(P95), [3, 1, 2])) == [1.0, 2.0, 3.0]
    with pytest.raises(weir.AggregateError, match="value 0: ValueError: a latency of NaN"):
        t.aggregate(P95, [float("nan")])


def test_latency_ms_extracts_the_field():
    assert latency_ms({"url": "/a", "latency_ms": 12}) == 12.0
    assert t.apply(latency_ms, [{"url": "/a", "latency_ms": 12}, {"url": "/b"}]) == [
        [12.0],
        t.RowError(1, "KeyError: 'latency_ms'"),
    ]


def test_count_counts_any_values_merges_and_retracts():
    clicks = [{"url": "/a", "ts": 1}, {"url": "/b", "ts": 2}, {"url": "/a", "ts": 3}]
    assert t.aggregate(Count, clicks) == 3
    assert t.aggregate(Count, []) == 0
    assert t.aggregate_merged(Count, [["x", 1.5], [], [None]]) == 3
    acc = t.add(Count, t.create_accumulator(Count), [1, 2])
    assert t.accumulator(Count, acc) == 2
    acc = t.retract(Count, acc, [1])
    assert t.result(Count, acc) == 1
    acc = t.retract(Count, acc, [2])
    with pytest.raises(weir.AggregateError, match="value 0: ValueError: cannot retract a value from a count of 0"):
        t.retract(Count, acc, [3])


def test_count_folds_into_several_accumulators_in_one_call():
    empty = t.create_accumulator(Count)
    accs = t.add_grouped(Count, [empty, empty], [(0, "a"), (1, "b"), (0, "c"), (0, "d")])
    assert [t.result(Count, a) for a in accs] == [3, 1]
