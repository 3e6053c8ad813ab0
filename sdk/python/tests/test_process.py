"""Keyed process functions: declarations, state handles, timers, failures, and the harness
that runs them with the host's semantics (`weir._process`, `weir._state`, `weir.testing`)."""

from collections import OrderedDict

import pytest

import weir
from weir import _marshal_codec, _process, build
from weir._memory import MemoryHost
from weir.testing import ProcessHarness, ProcessHarnessError, TimerLoopError

EVENT, PROCESSING = weir.TimeDomain.EVENT_TIME, weir.TimeDomain.PROCESSING_TIME

weir.plugin(name="process-test", version="0.0.1")


@weir.process
class Probe(weir.KeyedProcessFunction):
    """Appends each element to `seen` (TTL 100 ms) and emits `key:element`; `later` registers
    an event-time timer at the element's time, `wall` a processing-time one 10 ms on, `loop`
    a timer that re-registers itself, `boom` raises after writing. Broadcast elements become
    the prefix of every output."""

    seen = weir.ListState(str, ttl_ms=100)
    items = weir.MapState(str, int)
    last = weir.ValueState(str)
    prefix = weir.BroadcastMapState(str, str)

    def process_element(self, value, ctx):
        self.seen.add(value)
        self.last.update(value)
        self.items.put(value, self.items.get(value, 0) + 1)
        timers = ctx.timer_service()
        if value in ("later", "loop"):
            timers.register_event_time_timer(ctx.timestamp())
        elif value == "wall":
            timers.register_processing_time_timer(timers.current_processing_time() + 10)
        elif value == "boom":
            raise ValueError("boom on purpose")
        elif value == "set":
            yield {1, 2}  # the host cannot convert a set: fails the element
            return
        yield f"{self.prefix.get('p', '')}{ctx.get_current_key()}:{value}"

    def on_timer(self, timestamp, ctx):
        seen = self.seen.get()
        if "loop" in seen:
            ctx.timer_service().register_event_time_timer(timestamp)
        yield f"{ctx.get_current_key()}@{timestamp}/{ctx.time_domain().name}:{','.join(seen)}"

    def process_broadcast_element(self, value, ctx):
        self.prefix.put("p", value)
        return None


# --- declarations -------------------------------------------------------------------------


def test_describe_lists_names_kinds_value_types_and_ttls():
    plugin = weir.Plugin.from_module(__import__(__name__))
    info = plugin.describe()["functions"][0]
    assert (info["name"], info["kind"], info["encoding"]) == ("probe", "process", "python-marshal")
    assert info["states"] == [
        {"name": "seen", "kind": "list", "value_type": "str", "ttl_ms": 100},
        {"name": "items", "kind": "map", "value_type": "str -> int", "ttl_ms": None},
        {"name": "last", "kind": "value", "value_type": "str", "ttl_ms": None},
        {"name": "prefix", "kind": "broadcast-map", "value_type": "str -> str", "ttl_ms": None},
    ]
    assert plugin.has_processes and not plugin.has_aggregates
    assert build.world_of(plugin) == "plugin"
    assert "Describe, Transform, Aggregate, Process = exports(app, aggregate=True, process=True)" in build.glue_source(
        "plugin"
    )


def test_value_types_read_like_their_annotations():
    from typing import Dict, List

    assert weir.ValueState(dict[str, float]).describe()["value_type"] == "dict[str, float]"
    assert weir.ListState(List[int]).describe()["value_type"] == "List[int]"
    assert weir.MapState(str, Dict[str, int]).describe()["value_type"] == "str -> Dict[str, int]"
    assert weir.ValueState(OrderedDict).describe()["value_type"] == "collections.OrderedDict"
    assert weir.ValueState("Rule").describe()["value_type"] == "Rule"
    assert weir.ValueState().describe()["value_type"] == "Any"


def test_bad_declarations_fail_at_import():
    with pytest.raises(weir.WeirError, match="ttl_ms must be a positive int"):
        weir.ValueState(int, ttl_ms=0)

    class Twice(weir.KeyedProcessFunction):
        a = weir.ValueState(int, name="n")
        b = weir.ListState(int, name="n")

        def process_element(self, value, ctx):
            pass

    with pytest.raises(weir.PluginDefinitionError, match="declares two states named `n`"):
        weir.process(Twice)

    class NoElement(weir.KeyedProcessFunction):
        pass

    with pytest.raises(weir.PluginDefinitionError, match="does not define process_element"):
        weir.process(NoElement)
    with pytest.raises(weir.PluginDefinitionError, match="must derive weir.KeyedProcessFunction"):
        weir.process(OrderedDict)
    with pytest.raises(TypeError, match="decorates a class"):
        weir.process(len)


def test_state_is_reachable_only_during_an_input_and_never_assigned():
    with pytest.raises(weir.StateError, match="only available while the function handles an element or a timer"):
        Probe.__weir__.fn.last.value()
    with pytest.raises(weir.StateError, match="only available while the function handles"):
        Probe().last  # an instance the plugin does not run
    with pytest.raises(AttributeError, match=r"e.g. self.last.update\(value\)"):
        Probe.__weir__.fn.last = "x"


# --- state, timers and the harness ---------------------------------------------------------


def test_every_kind_of_state_and_the_outputs_per_key():
    h = ProcessHarness(Probe)
    h.process_batch([("a", "x", None), ("b", "y", None), ("a", "x", None)])
    assert h.output == ["a:x", "b:y", "a:x"]
    assert h.list_state("a", "seen") == ["x", "x"]
    assert h.map_state("a", "items") == {"x": 2}
    assert h.value_state("b", "last") == "y"
    with pytest.raises(KeyError, match="has no value state `seen`"):
        h.value_state("a", "seen")


def test_reads_see_the_writes_of_the_same_element():
    weir.plugin(name="rw", version="0.0.1")

    @weir.process
    class ReadYourWrites(weir.KeyedProcessFunction):
        v = weir.ValueState(int)
        l = weir.ListState(int)  # noqa: E741
        m = weir.MapState(str, int)

        def process_element(self, value, ctx):
            self.v.update(1)
            self.l.update([1, 2])
            self.l.add(3)
            self.m.put_all({"b": 2, "a": 1})
            self.m.remove("b")
            first = (self.v.value(), self.l.get(), self.m.items(), "a" in self.m, self.m.contains("b"))
            self.v.update(None)  # clears, as Flink's update(null)
            self.l.clear()
            self.m.clear()
            yield [first, (self.v.value(), self.l.get(), self.m.is_empty())]

    h = ProcessHarness(ReadYourWrites)
    h.process("k", None)
    assert h.output == [[(1, [1, 2, 3], [("a", 1)], True, False), (None, [], True)]]
    assert (h.value_state("k", "v"), h.list_state("k", "l"), h.map_state("k", "m")) == (None, [], {})


def test_values_of_another_type_than_declared_are_refused():
    h = ProcessHarness(Probe)
    with pytest.raises(ProcessHarnessError, match=r"list state `seen` is declared with values of type str, got int 5"):
        h.process("a", 5)
    assert h.list_state("a", "seen") == []


def test_event_time_timers_fire_once_in_time_then_key_order():
    h = ProcessHarness(Probe)
    h.process_batch([("b", "later", 20), ("a", "later", 20), ("a", "later", 10)])
    h.process("a", "later", 20)  # registered again: still one timer
    assert h.timers("a") == [(EVENT, 10), (EVENT, 20)]
    h.take_output()
    h.advance_watermark(9)
    assert h.output == []
    h.advance_watermark(20)
    assert h.take_output() == [
        "a@10/EVENT_TIME:later,later,later",
        "a@20/EVENT_TIME:later,later,later",
        "b@20/EVENT_TIME:later",
    ]
    h.advance_watermark(5)  # a lower watermark is ignored
    assert (h.watermark, h.timer_count(EVENT), h.timer_count()) == (20, 0, 0)


def test_processing_time_fires_its_timers_and_expires_state():
    h = ProcessHarness(Probe)
    h.advance_processing_time(50)
    h.process("a", "wall")
    assert h.timers("a") == [(PROCESSING, 60)]
    h.advance_processing_time(59)
    assert h.take_output() == ["a:wall"]
    h.advance_processing_time(60)
    assert h.take_output() == ["a@60/PROCESSING_TIME:wall"]
    assert h.list_state("a", "seen") == ["wall"]
    h.advance_processing_time(150)
    assert h.list_state("a", "seen") == [], "written at 50, TTL 100"
    assert h.value_state("a", "last") == "wall", "no TTL"


def test_a_timer_that_keeps_registering_itself_is_stopped():
    h = ProcessHarness(Probe)
    h.process("a", "loop", 1)
    with pytest.raises(TimerLoopError, match="timers still due after"):
        h.advance_watermark(1)


def test_broadcast_state_is_written_by_the_broadcast_side_and_read_by_every_key():
    h = ProcessHarness(Probe)
    h.broadcast("!")
    h.process_batch([("a", "x", None), ("b", "y", None)])
    assert h.output == ["!a:x", "!b:y"]
    assert h.broadcast_state("prefix") == {"p": "!"}


def test_each_side_keeps_to_its_own_state():
    weir.plugin(name="sides", version="0.0.1")

    @weir.process
    class Sides(weir.KeyedProcessFunction):
        v = weir.ValueState(int)
        b = weir.BroadcastMapState(str, int)

        def process_element(self, value, ctx):
            self.b.put("x", 1)

        def process_broadcast_element(self, value, ctx):
            if value == "timer":
                ctx.state("v").value()
            self.v.update(1)

    h = ProcessHarness(Sides)
    with pytest.raises(ProcessHarnessError, match="broadcast state `b` is read-only here"):
        h.process("a", 1)
    with pytest.raises(ProcessHarnessError, match="value state `v` is keyed state: process_broadcast_element has no key"):
        h.broadcast("timer")
    assert h.broadcast_state("b") == {}


# --- failures -----------------------------------------------------------------------------


def test_an_exception_drops_the_elements_output_state_writes_and_timers():
    h = ProcessHarness(Probe)
    h.process("a", "x")
    with pytest.raises(ProcessHarnessError) as failed:
        h.process_batch([("a", "y", None), ("a", "boom", 5), ("b", "z", None)])
    [failure] = failed.value.failures
    assert (failure.input, failure.message) == ("element 1", "process function `probe`: ValueError: boom on purpose")
    assert h.list_state("a", "seen") == ["x", "y"]
    assert h.map_state("a", "items") == {"x": 1, "y": 1}
    assert h.output == ["a:x", "a:y", "b:z"]


def test_an_output_the_host_cannot_convert_fails_its_element_before_any_write():
    h = ProcessHarness(Probe)
    with pytest.raises(ProcessHarnessError, match="TypeError: Object of type set cannot be a row"):
        h.process("a", "set")
    assert h.list_state("a", "seen") == []
    with pytest.raises(ProcessHarnessError, match="must yield its output records"):
        weir.plugin(name="one", version="0.0.1")

        @weir.process
        class ReturnsOne(weir.KeyedProcessFunction):
            def process_element(self, value, ctx):
                return {"a": 1}

        ProcessHarness(ReturnsOne).process("a", 1)


def test_a_host_refusal_while_committing_fails_the_call_and_the_host_retries_one_by_one():
    h = ProcessHarness(Probe)
    refuse = {"y"}
    original = h.host.list_append

    def list_append(name, value):
        if _marshal_codec.decode_row(value) in refuse:
            raise weir.StateError("disk full")
        original(name, value)

    h.host.list_append = list_append
    with pytest.raises(ProcessHarnessError) as failed:
        h.process_batch([("a", "x", None), ("a", "y", None), ("b", "z", None)])
    [failure] = failed.value.failures
    assert failure.input == "element 1"
    assert "the host refused a state change of input 0 (StateError: disk full); the call is rolled back" in failure.message
    assert (h.list_state("a", "seen"), h.list_state("b", "seen")) == (["x"], ["z"])
    assert h.output == ["a:x", "b:z"]


#: Key state of one key slot for Probe's four states, all unset.
ONE_SLOT = [None] * 4


def test_malformed_calls_fail_whole():
    host = MemoryHost("probe", Probe.__weir__.states)
    data, offsets = _marshal_codec.join_rows([_marshal_codec.encode_row("x")])
    with pytest.raises(weir.WeirError, match="the inputs disagree in length: 1 elements, 1 keys, 2 timestamps, 1 slots"):
        _process.process_elements(Probe.__weir__, host, 1, data, offsets, data, offsets, [0, 1], [0], ONE_SLOT)
    with pytest.raises(weir.WeirError, match="the inputs disagree in length: 1 elements, 1 keys, 1 timestamps, 2 slots"):
        _process.process_elements(Probe.__weir__, host, 1, data, offsets, data, offsets, [0], [0, 0], ONE_SLOT)
    with pytest.raises(weir.WeirError, match="malformed keys batch"):
        _process.on_timers(Probe.__weir__, host, data, [1, 2], [0], [EVENT], [0], ONE_SLOT)
    with pytest.raises(weir.WeirError, match="malformed key state .* 3 values for 4 declared states"):
        _process.process_elements(Probe.__weir__, host, 1, data, offsets, data, offsets, [0], [0], [None] * 3)
    with pytest.raises(weir.WeirError, match="malformed key state .* key slots up to 1 for 1 slots"):
        _process.process_elements(Probe.__weir__, host, 1, data, offsets, data, offsets, [0], [1], ONE_SLOT)
    with pytest.raises(weir.WeirError, match="input 2 is for co-process functions"):
        _process.process_elements(Probe.__weir__, host, 2, data, offsets, data, offsets, [0], [0], ONE_SLOT)


def test_a_key_or_element_that_does_not_decode_fails_alone():
    host = MemoryHost("probe", Probe.__weir__.states)
    good = _marshal_codec.encode_row("x")
    data, offsets = _marshal_codec.join_rows([b"\xff", good])
    host.begin_keyed([good, good])
    out = _process.process_elements(
        Probe.__weir__, host, 1, data, offsets, data[1:] + good, [0, len(good), 2 * len(good)], [0, 0], [0, 0], ONE_SLOT
    )
    assert out.counts == [0, 1]
    assert out.errors[0][0] == 0 and "invalid python-marshal input row" in out.errors[0][1]
    assert _marshal_codec.unpack(out.data, out.offsets) == ["x:x"]
