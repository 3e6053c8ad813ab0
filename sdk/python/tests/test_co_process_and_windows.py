"""Co-process functions (`@weir.co_process`, two inputs) and process-window functions
(`@weir.process_window`), through the dispatcher and the harness."""

from typing import Iterator

import pytest

import weir
import weir.testing
from weir import Kind, _marshal_codec as codec, _process, build
from weir.testing import ProcessHarness, ProcessHarnessError

EVENT = weir.TimeDomain.EVENT_TIME


@weir.co_process
class OrderPayments(weir.KeyedCoProcessFunction):
    """Input 1: orders `{id, total}`; input 2: payments `{amount}`, of the order's key. Emits
    `{order, paid}` once the payments cover the order; a payment before its order waits in
    `paid`. An event-time timer an hour after the order sends unpaid orders to `unpaid`."""

    order = weir.ValueState(dict)
    paid = weir.ValueState(float)

    def process_element1(self, order: dict, ctx) -> Iterator[dict]:
        self.order.update(order)
        if ctx.timestamp() is not None:
            ctx.timer_service().register_event_time_timer(ctx.timestamp() + 3_600_000)
        yield from self.settle(ctx)

    def process_element2(self, payment: dict, ctx) -> Iterator[dict]:
        if payment["amount"] <= 0:
            raise ValueError(f"a payment is positive, got {payment['amount']}")
        self.paid.update((self.paid.value() or 0.0) + payment["amount"])
        yield from self.settle(ctx)

    def settle(self, ctx):
        order, paid = self.order.value(), self.paid.value() or 0.0
        if order is not None and paid >= order["total"]:
            yield {"order": order["id"], "paid": paid}
            self.order.clear()
            self.paid.clear()

    def on_timer(self, timestamp, ctx):
        order = self.order.value()
        if order is not None:
            ctx.output("unpaid", order["id"])


def test_each_input_goes_to_its_method_and_both_share_the_keys_state():
    h = ProcessHarness(OrderPayments)
    h.process2("k1", {"amount": 5.0})  # before its order
    h.process1("k1", {"id": "o-1", "total": 8.0})
    assert h.output == [] and h.value_state("k1", "paid") == 5.0
    h.process2("k1", {"amount": 3.0})
    assert h.take_output() == [{"order": "o-1", "paid": 8.0}]
    assert (h.value_state("k1", "order"), h.value_state("k1", "paid")) == (None, None)
    h.process_batch([("k2", {"amount": 1.0}, None), ("k2", {"amount": 2.0}, None)], input=2)
    h.process_batch([("k2", {"id": "o-2", "total": 3.0}, None)], input=1)
    assert h.take_output() == [{"order": "o-2", "paid": 3.0}]


def test_timers_and_failures_of_a_co_process_function():
    h = ProcessHarness(OrderPayments)
    h.process1("k", {"id": "o-9", "total": 10.0}, timestamp=0)
    assert h.timers("k") == [(EVENT, 3_600_000)]
    with pytest.raises(ProcessHarnessError) as failed:
        h.process_batch([("k", {"amount": -1.0}, None), ("k", {"amount": 1.0}, None)], input=2)
    assert [(f.input, f.message) for f in failed.value.failures] == [
        ("input 2 element 0", "process function `order_payments`: ValueError: a payment is positive, got -1.0")
    ]
    h.advance_watermark(3_600_000)
    assert h.side_output("unpaid") == ["o-9"]
    with pytest.raises(TypeError, match="process1"):
        h.process("k", {})


def test_the_dispatch_picks_the_method_by_input():
    host = weir._memory.MemoryHost("order_payments", OrderPayments.__weir__.states)
    data, offsets = codec.join_rows([codec.encode_row({"amount": 2.0})])
    key = codec.encode_row("k")
    host.begin_keyed([key])
    out = _process.process_elements(OrderPayments.__weir__, host, 2, data, offsets, key, [0, len(key)], [0], [0], [None, None])
    assert out.state_writes == [(0, 1, codec.encode_row(2.0))]
    with pytest.raises(weir.WeirError, match="its inputs are 1 and 2, not 0"):
        _process.process_elements(OrderPayments.__weir__, host, 0, data, offsets, key, [0, len(key)], [0], [0], [None, None])


def test_co_process_declarations():
    assert OrderPayments.__weir__.kind is Kind.CO_PROCESS
    module = type(weir)("m")
    module.__weir_plugin__ = weir.PluginMeta("m", "1")
    module.OrderPayments = OrderPayments
    plugin = weir.Plugin.from_module(module)
    [info] = plugin.describe()["functions"]
    assert (info["kind"], [s["name"] for s in info["states"]]) == ("co-process", ["order", "paid"])
    assert build.world_of(plugin) == "plugin"

    class OneSided(weir.KeyedCoProcessFunction):
        def process_element1(self, value, ctx):
            pass

    with pytest.raises(weir.PluginDefinitionError, match="does not define process_element2"):
        weir.co_process(OneSided)

    class Plain(weir.KeyedProcessFunction):
        def process_element(self, value, ctx):
            pass

    with pytest.raises(weir.PluginDefinitionError, match="must derive weir.KeyedCoProcessFunction; decorate it with @weir.process"):
        weir.co_process(Plain)

    class Co(weir.KeyedCoProcessFunction):
        def process_element1(self, value, ctx):
            pass

        def process_element2(self, value, ctx):
            pass

    with pytest.raises(weir.PluginDefinitionError, match="decorate it with @weir.co_process"):
        weir.process(Co)
    assert weir.co_process("joined")(Co).__weir__.name == "joined"


# --- process windows ----------------------------------------------------------------------


@weir.process_window
def top_items(key: str, window: weir.TimeWindow, elements: list, ctx) -> Iterator[dict]:
    """The most frequent item of the window, and its count; items without event time go to
    side output `no_time`. A window with an item `boom` fails."""
    counts = {}
    for element, at in zip(elements, ctx.timestamps()):
        if element["item"] == "boom":
            raise ValueError("boom in the window")
        if at is None:
            ctx.output("no_time", element["item"])
        counts[element["item"]] = counts.get(element["item"], 0) + 1
    item = max(sorted(counts), key=counts.get)
    yield {"user": key, "start": window.start, "end": window.end, "last": window.max_timestamp(), "item": item, "n": counts[item]}
    if ctx.get_current_key() == "retract":
        yield weir.Row({"user": key}, weir.RowKind.DELETE)


@weir.process_window(name="sizes")
def window_sizes(key, window, elements):
    return [len(elements)]


def test_a_window_fires_with_all_its_elements():
    h = ProcessHarness(top_items)
    h.fire_window("u1", (0, 60_000), [{"item": "a"}, {"item": "b"}, {"item": "b"}], timestamps=[1, None, 3])
    assert h.output == [{"user": "u1", "start": 0, "end": 60_000, "last": 59_999, "item": "b", "n": 2}]
    assert h.side_output("no_time") == ["b"]
    h.fire_window("retract", weir.TimeWindow(60_000, 120_000), [{"item": "c"}])
    assert h.output_rows[-1] == weir.Row({"user": "retract"}, weir.RowKind.DELETE)
    with pytest.raises(ProcessHarnessError) as failed:
        h.fire_window("u2", (0, 10), [{"item": "boom"}])
    assert [(f.input, f.message) for f in failed.value.failures] == [
        ("window [0, 10) of key 'u2'", "process-window function `top_items`: ValueError: boom in the window")
    ]
    assert weir.testing.process_window(window_sizes, 1, (0, 5), ["x", "y"]) == [2]
    assert window_sizes.__weir__.name == "sizes" and window_sizes(1, None, [1]) == [1]


def test_the_window_dispatch_has_one_input():
    data, offsets = codec.join_rows([codec.encode_row(v) for v in ("x", "y")])
    out = _process.fire_window(window_sizes.__weir__, codec.encode_row("k"), 0, 10, data, offsets, [0, 0])
    assert (out.counts, out.errors, codec.unpack(out.data, out.offsets)) == ([1], [], [2])
    bad = _process.fire_window(window_sizes.__weir__, codec.encode_row("k"), 0, 10, b"\xff" + data, [0, 1] + [o + 1 for o in offsets[1:]], [0, 0, 0])
    assert bad.counts == [0] and bad.errors[0][1].startswith("process-window function `sizes`: element 0 of the window: invalid python-marshal")
    bad_key = _process.fire_window(window_sizes.__weir__, b"\xff", 0, 10, data, offsets, [0, 0])
    assert bad_key.errors[0][1].startswith("process-window function `sizes`: invalid python-marshal input key")
    with pytest.raises(weir.WeirError, match="the inputs disagree in length: 2 elements, 1 timestamps"):
        _process.fire_window(window_sizes.__weir__, b"", 0, 10, data, offsets, [0])
    with pytest.raises(weir.WeirError, match="not a process-window function"):
        _process.fire_window(OrderPayments.__weir__, b"", 0, 10, data, offsets, [0, 0])
    with pytest.raises(weir.WeirError, match="not a keyed process function"):
        _process.on_timers(window_sizes.__weir__, None, b"", [0], [], [], [], [])


def test_process_window_declarations_and_harness_misuse():
    with pytest.raises(TypeError, match="decorates a function"):
        weir.process_window(OrderPayments)
    with pytest.raises(weir.PluginDefinitionError, match="already a weir process-window function"):
        weir.process_window(top_items)
    with pytest.raises(TypeError, match="decorates a class deriving weir.KeyedProcessFunction.*@weir.process_window"):
        weir.process(lambda key, window, elements: [])
    h = ProcessHarness(window_sizes)
    with pytest.raises(TypeError, match="fire_window"):
        h.process("k", 1)
    with pytest.raises(TypeError, match="fire_window"):
        h.advance_watermark(5)
    with pytest.raises(TypeError, match="fire_window is for process-window functions"):
        ProcessHarness(OrderPayments).fire_window("k", (0, 1), [])
    with pytest.raises(ValueError, match="2 elements but 1 timestamps"):
        h.fire_window("k", (0, 1), [1, 2], timestamps=[0])
