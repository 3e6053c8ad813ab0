"""Tests of the process-python plugin through weir.testing.ProcessHarness: the cases of
plugins/process-rust's tests, with the same results."""

import math

import pytest

import weir
import weir.testing as t
from weir.testing import ProcessHarness, ProcessHarnessError

import app
from app import (
    LATE,
    CountPerKey,
    EnrichClicks,
    FailOnBoom,
    FraudDetector,
    ItemCounts,
    LatestPerKey,
    Sessionize,
    SplitLate,
    Undeclared,
    window_summary,
)

EVENT, PROCESSING = weir.TimeDomain.EVENT_TIME, weir.TimeDomain.PROCESSING_TIME


def test_describe_lists_every_function_with_its_states():
    functions = t.describe(app)["functions"]
    assert [(f["name"], f["kind"], f["encoding"]) for f in functions] == [
        (name, "process", "python-marshal")
        for name in ["count_per_key", "sessionize", "map_state_demo", "fraud_detector", "fail_on_boom", "undeclared"]
    ] + [
        ("enrich_clicks", "co-process", "python-marshal"),
        ("split_late", "process", "python-marshal"),
        ("latest_per_key", "process", "python-marshal"),
        ("window_summary", "process-window", "python-marshal"),
    ]
    states = [
        f"{f['name']}: {s['kind']} {s['name']} of {s['value_type']}" + (f", ttl {s['ttl_ms']} ms" if s["ttl_ms"] else "")
        for f in functions
        for s in f.get("states", [])
    ]
    assert states == [
        "count_per_key: value count of int",
        "sessionize: list events of dict",
        "sessionize: value timer of int",
        "map_state_demo: map counts of str -> int",
        "fraud_detector: value flag of float",
        "fraud_detector: value timer of dict",
        "fraud_detector: broadcast-map rules of str -> dict",
        "fail_on_boom: value count of int",
        "undeclared: value count of int",
        "enrich_clicks: value profile of dict",
        "enrich_clicks: list pending of dict",
        "split_late: value latest of int",
        "latest_per_key: value latest of Any",
    ]
    window = functions[-1]["signature"]
    assert [p["name"] for p in window["params"]] == ["key", "elements"]
    assert window["params"][1]["type"] == {"scalar": "any", "nullable": False, "is_list": True}


# --- value state --------------------------------------------------------------------------


def test_counts_each_key_apart_whatever_the_elements_are():
    h = ProcessHarness(CountPerKey)
    h.process("alice", "click")
    h.process_batch([("bob", 1, None), ("alice", {}, 5)])
    h.process(7, "an integer key")
    assert h.output == [
        {"key": "alice", "count": 1},
        {"key": "bob", "count": 1},
        {"key": "alice", "count": 2},
        {"key": 7, "count": 1},
    ]
    assert h.value_state("alice", "count") == 2
    assert h.value_state("carol", "count") is None


def test_the_harness_finds_a_function_by_module_and_name():
    h = ProcessHarness(app, "count_per_key")
    h.process("a", None)
    assert h.take_output() == [{"key": "a", "count": 1}]
    with pytest.raises(weir.UnknownFunctionError, match="has no function 'nope'"):
        ProcessHarness(app, "nope")


# --- list state and event-time timers -----------------------------------------------------


def session(key, start, end, events):
    return {"key": key, "start": start, "end": end, "events": events}


def test_a_session_closes_a_gap_after_its_latest_element():
    h = ProcessHarness(Sessionize)
    h.process("u1", "a", 1_000)
    h.process("u1", "b", 20_000)
    h.process("u1", "early", 500)  # out of order: joins, does not move the close
    h.process("u2", "x", 5_000)
    assert h.timers("u1") == [(EVENT, 50_000)]
    assert len(h.list_state("u1", "events")) == 3
    h.advance_watermark(49_999)
    assert h.take_output() == [session("u2", 5_000, 5_000, ["x"])]
    h.advance_watermark(50_000)
    assert h.take_output() == [session("u1", 500, 20_000, ["early", "a", "b"])]
    assert h.list_state("u1", "events") == []
    assert (h.value_state("u1", "timer"), h.timer_count(EVENT)) == (None, 0)
    # A later element starts a new session.
    h.process("u1", "c", 90_000)
    h.advance_watermark(120_000)
    assert h.output == [session("u1", 90_000, 90_000, ["c"])]


def test_an_element_without_event_time_fails_alone():
    h = ProcessHarness(Sessionize)
    with pytest.raises(ProcessHarnessError, match="sessionize needs event time") as failed:
        h.process_batch([("u1", "a", None), ("u1", "b", 1_000)])
    assert [f.input for f in failed.value.failures] == ["element 0"]
    assert [e["event"] for e in h.list_state("u1", "events")] == ["b"]


# --- map state ----------------------------------------------------------------------------


def test_map_state_counts_items_per_key_and_a_bad_removal_fails_alone():
    h = ProcessHarness(ItemCounts)
    for item in ["pear", "apple", "pear"]:
        h.process("a", {"item": item})
    h.process("b", {"item": "pear"})
    with pytest.raises(ProcessHarnessError, match="cannot remove item `fig`: this key has not counted it"):
        h.process("a", {"item": "fig", "remove": True})
    h.process("a", {"item": "apple", "remove": True})
    assert [r["counts"] for r in h.output] == [
        {"pear": 1},
        {"pear": 1, "apple": 1},
        {"pear": 2, "apple": 1},
        {"pear": 1},
        {"pear": 2},
    ]
    assert h.map_state("a", "counts") == {"pear": 2}
    assert h.map_state("b", "counts") == {"pear": 1}


# --- the fraud detector (value state, timers, broadcast state) ----------------------------


def tx(account, amount):
    return {"account": account, "amount": amount}


def alert(account, small, large):
    return {"account": account, "small": small, "large": large}


def test_a_small_then_a_large_transaction_within_a_minute_alerts():
    h = ProcessHarness(FraudDetector)
    h.process("acc-1", tx("acc-1", 0.50), 1_000)
    h.process("acc-2", tx("acc-2", 0.10), 1_000)
    h.process("acc-2", tx("acc-2", 20.00), 2_000)  # not large: clears acc-2's flag
    h.process("acc-2", tx("acc-2", 900.00), 3_000)
    h.process("acc-1", tx("acc-1", 600.00), 60_999)
    assert h.output == [alert("acc-1", 0.50, 600.00)]
    assert h.value_state("acc-1", "flag") is None
    assert h.timer_count(EVENT) == 0, "both flags cleared with their timers"


def test_a_large_transaction_a_minute_or_more_later_does_not_alert():
    h = ProcessHarness(FraudDetector)
    h.process("acc-1", tx("acc-1", 0.50), 1_000)
    assert h.timers("acc-1") == [(EVENT, 61_000)]
    h.process("acc-1", tx("acc-1", 600.00), 61_000)  # the watermark has not passed yet
    h.process("acc-2", tx("acc-2", 0.50), 1_000)
    h.advance_watermark(61_000)  # acc-2's timer clears its flag
    assert h.value_state("acc-2", "flag") is None
    h.process("acc-2", tx("acc-2", 600.00), 61_500)
    assert h.output == []


def test_without_event_time_the_minute_is_processing_time():
    h = ProcessHarness(FraudDetector)
    h.advance_processing_time(10_000)
    h.process("acc-1", tx("acc-1", 0.50))
    assert h.timers("acc-1") == [(PROCESSING, 70_000)]
    h.process("acc-1", tx("acc-1", 501.00))
    h.process("acc-1", tx("acc-1", 0.75))
    h.advance_processing_time(70_000)
    h.process("acc-1", tx("acc-1", 501.00))
    assert h.output == [alert("acc-1", 0.50, 501.00)]


def test_broadcast_rules_set_the_thresholds_of_one_account_or_of_all():
    h = ProcessHarness(FraudDetector)
    h.broadcast({"name": "default", "small": 10.0, "large": 100.0})
    h.broadcast({"name": "vip", "small": 1.0, "large": 10_000.0})
    for account in ["acc-1", "vip"]:
        h.process(account, tx(account, 5.00), 0)
        h.process(account, tx(account, 150.00), 1)
    assert h.take_output() == [alert("acc-1", 5.00, 150.00)], "vip: 5.00 is not small"
    h.broadcast({"name": "default", "small": 10.0, "large": 1_000.0})
    h.process("acc-1", tx("acc-1", 5.00), 2)
    h.process("acc-1", tx("acc-1", 150.00), 3)
    assert h.output == [], "the new default rule replaced the old one"
    assert h.broadcast_state("rules") == {
        "default": {"small": 10.0, "large": 1_000.0},
        "vip": {"small": 1.0, "large": 10_000.0},
    }


def test_an_inverted_rule_is_refused():
    h = ProcessHarness(FraudDetector)
    with pytest.raises(ProcessHarnessError, match=r"rule `bad`: small \(9.0\) must be a number not above large \(1.0\)"):
        h.broadcast({"name": "bad", "small": 9.0, "large": 1.0})
    with pytest.raises(ProcessHarnessError, match=r"small \(nan\) must be a number"):
        h.broadcast({"name": "nan", "small": math.nan, "large": 1.0})
    assert h.broadcast_state("rules") == {}


def test_the_keyed_side_cannot_write_rules_and_the_broadcast_side_has_no_key():
    h = ProcessHarness(FraudDetector)
    with pytest.raises(ProcessHarnessError, match="amount must be a number"):
        h.process(5, tx(5, "lots"), 0)
    assert h.value_state(5, "flag") is None
    other = ProcessHarness(CountPerKey)
    with pytest.raises(ProcessHarnessError, match="no broadcast side"):
        other.broadcast({"name": "x"})


# --- failures -----------------------------------------------------------------------------


def test_an_exception_after_a_write_drops_the_write_and_the_rest_count_once():
    h = ProcessHarness(FailOnBoom)
    h.process("a", "one")
    with pytest.raises(ProcessHarnessError) as failed:
        h.process_batch([("a", "two", None), ("a", {"msg": ["kaboom"]}, None), ("b", "three", None)])
    [failure] = failed.value.failures
    assert failure.input == "element 1"
    assert "RuntimeError: fail_on_boom: failing on purpose after writing count 3" in failure.message
    assert (h.value_state("a", "count"), h.value_state("b", "count")) == (2, 1)
    assert h.output == [{"key": "a", "count": 1}, {"key": "a", "count": 2}, {"key": "b", "count": 1}]


def test_an_undeclared_state_fails_each_element_naming_the_declared_ones():
    h = ProcessHarness(Undeclared)
    with pytest.raises(ProcessHarnessError) as failed:
        h.process_batch([("a", 1, None), ("b", 2, None)])
    assert len(failed.value.failures) == 2
    message = failed.value.failures[0].message
    assert "used state `not_declared`, which it does not declare (declared: count)" in message
    assert h.output == []


# --- ABI 0.2: co-process, side outputs, row kinds, process windows -------------------------


def test_clicks_wait_for_their_profile_then_go_out_enriched():
    h = ProcessHarness(EnrichClicks)
    h.process1("u1", {"page": "/a"})
    h.process1("u1", {"page": "/b"})
    h.process1("u2", {"page": "/x"})
    assert h.output == [] and len(h.list_state("u1", "pending")) == 2
    h.process2("u1", {"name": "Ada"})
    assert h.take_output() == [
        {"key": "u1", "click": {"page": "/a"}, "profile": {"name": "Ada"}},
        {"key": "u1", "click": {"page": "/b"}, "profile": {"name": "Ada"}},
    ]
    assert h.list_state("u1", "pending") == []
    h.process_batch([("u1", {"page": "/c"}, None), ("u2", {"page": "/y"}, None)], input=1)
    h.process2("u1", {"name": "Ada L."})
    h.process1("u1", {"page": "/d"})
    assert h.take_output() == [
        {"key": "u1", "click": {"page": "/c"}, "profile": {"name": "Ada"}},
        {"key": "u1", "click": {"page": "/d"}, "profile": {"name": "Ada L."}},
    ]
    assert h.list_state("u2", "pending") == [{"click": {"page": "/x"}}, {"click": {"page": "/y"}}]
    with pytest.raises(ProcessHarnessError, match="a profile is a record, got str"):
        h.process2("u2", "Bob")
    assert (h.value_state("u2", "profile"), len(h.list_state("u2", "pending"))) == (None, 2)


def test_late_elements_go_to_the_side_output():
    h = ProcessHarness(SplitLate)
    h.process_batch([("a", "e1", 1_000), ("a", "e2", 5_000), ("a", "e3", 4_000), ("b", "f1", 100), ("a", "e4", 5_000)])
    assert h.output == [
        {"key": "a", "event": "e1"},
        {"key": "a", "event": "e2"},
        {"key": "b", "event": "f1"},
        {"key": "a", "event": "e4"},
    ]
    assert h.side_output(LATE) == [{"key": "a", "event": "e3", "lateness_ms": 1_000}]
    assert h.side_output("late") == h.side_output(LATE)
    assert h.value_state("a", "latest") == 5_000
    with pytest.raises(ProcessHarnessError, match="split_late needs event time"):
        h.process("a", "no time")


def test_the_latest_per_key_is_an_upsert_changelog():
    h = ProcessHarness(LatestPerKey)
    h.process_batch([("a", 1, None), ("b", "x", None), ("a", 2, None), ("a", 2, None)])
    I, UB, UA = weir.RowKind.INSERT, weir.RowKind.UPDATE_BEFORE, weir.RowKind.UPDATE_AFTER
    assert h.output_rows == [
        weir.Row({"key": "a", "value": 1}, I),
        weir.Row({"key": "b", "value": "x"}, I),
        weir.Row({"key": "a", "value": 1}, UB),
        weir.Row({"key": "a", "value": 2}, UA),
    ]
    assert h.value_state("a", "latest") == 2


def test_a_window_summary_counts_its_elements_and_their_times():
    h = ProcessHarness(window_summary)
    h.fire_window("u1", (0, 60_000), ["a", "b", "c"], timestamps=[5_000, None, 1_000])
    h.fire_window(7, weir.TimeWindow(60_000, 120_000), [], [])
    assert h.output == [
        {"key": "u1", "start": 0, "end": 60_000, "count": 3, "first_at": 1_000, "last_at": 5_000},
        {"key": 7, "start": 60_000, "end": 120_000, "count": 0, "first_at": None, "last_at": None},
    ]
    assert t.process_window(window_summary, "k", (0, 10), [1]) == [
        {"key": "k", "start": 0, "end": 10, "count": 1, "first_at": None, "last_at": None}
    ]
