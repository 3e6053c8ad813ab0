"""The component glue (`weir._component` and the module `weir.build` generates) against the
real bindings componentize-py generates for each world, outside a component.

`componentize-py bindings` writes the pure-Python `wit_world` package the component imports
(~0.1 s), so these tests check the export classes' names and methods and the
`Err` conversion without building a component.
"""

import importlib
import inspect
import subprocess
import sys
import types
from pathlib import Path

import pytest

import weir
from weir import build

REPO = Path(__file__).resolve().parents[3]
WIT = REPO / "wit"

APP = '''
import weir
weir.plugin(name="app", version="0.2.0")

@weir.map
def up(s):
    return s.upper()

@weir.aggregate
class Total(weir.AggregateFunction):
    def create_accumulator(self):
        return 0

    def add(self, acc, value):
        return acc + value

    def merge(self, acc, other):
        return acc + other

    def get_result(self, acc):
        return acc
'''


@pytest.fixture
def world(tmp_path, monkeypatch):
    """`load(world)`: the bindings of `world` importable, and a fresh `weir._component`."""
    try:
        command = build.componentize_py_command()
    except build.BuildError as exc:
        pytest.skip(str(exc))
    cached = [m for m in sys.modules if m.split(".")[0] in ("wit_world", "componentize_py_types", "app")]
    saved = {m: sys.modules.pop(m) for m in cached + ["weir._component"] if m in sys.modules}
    monkeypatch.setattr(weir.log, "_sink", weir.log._sink)  # `exports` points it at the host

    def load(name, app_source=APP):
        out = tmp_path / name
        subprocess.run(
            command + ["--wit-path", str(WIT), "--world", name, "bindings", str(out)],
            check=True,
            capture_output=True,
        )
        (out / "app.py").write_text(app_source)
        monkeypatch.syspath_prepend(str(out))
        return importlib.import_module("weir._component"), importlib.import_module("app")

    yield load
    for m in [m for m in sys.modules if m.split(".")[0] in ("wit_world", "componentize_py_types", "app")]:
        del sys.modules[m]
    sys.modules.pop("weir._component", None)
    sys.modules.update(saved)


def test_the_world_follows_what_the_app_declares(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    assert build.world_of(build.check_app(tmp_path)) == "transform-aggregate-plugin"
    (tmp_path / "app.py").write_text(APP.split("@weir.aggregate")[0])
    assert build.world_of(build.check_app(tmp_path)) == "transform-plugin"
    windows_only = "import weir\nweir.plugin(name='w', version='1')\n@weir.process_window\ndef w(k, win, es):\n    return es\n"
    (tmp_path / "app.py").write_text(windows_only)
    assert build.world_of(build.check_app(tmp_path)) == "plugin"


def test_generated_glue_exposes_the_classes_componentize_py_looks_for(world):
    component, app = world("transform-aggregate-plugin")
    glue = types.ModuleType("glue")
    exec(build.glue_source("transform-aggregate-plugin"), glue.__dict__)
    assert [glue.Describe.__name__, glue.Transform.__name__, glue.Aggregate.__name__] == [
        "Describe", "Transform", "Aggregate",
    ]
    plain = types.ModuleType("glue_plain")
    exec(build.glue_source("transform-plugin"), plain.__dict__)
    assert not hasattr(plain, "Aggregate")


def test_aggregate_export_implements_every_method_of_the_interface(world):
    component, app = world("transform-aggregate-plugin")
    from wit_world import exports as wit_exports

    _, _, Aggregate = component.exports(app, aggregate=True)
    methods = [(n, f) for n, f in vars(wit_exports.Aggregate).items() if inspect.isfunction(f) and not n.startswith("_")]
    assert [n for n, _ in methods] == ["create_accumulator", "add", "retract", "merge", "get_result"]
    for name, proto in methods:
        ours = getattr(Aggregate, name)
        assert list(inspect.signature(ours).parameters) == list(inspect.signature(proto).parameters), name


def test_aggregate_export_round_trip_and_errors(world):
    component, app = world("transform-aggregate-plugin")
    from componentize_py_types import Err
    from wit_world.imports import types as wit_types

    Describe, Transform, Aggregate = component.exports(app, aggregate=True)
    info = Describe().describe()
    assert [(f.name, f.kind) for f in info.functions] == [
        ("up", wit_types.FunctionKind.MAP), ("total", wit_types.FunctionKind.AGGREGATE),
    ]
    assert {f.encoding for f in info.functions} == {wit_types.RowEncoding.PYTHON_MARSHAL}

    agg = Aggregate()
    empty = agg.create_accumulator("total")
    accs = wit_types.Batch(data=empty + empty, offsets=[0, len(empty), 2 * len(empty)])
    values = wit_types.Batch(*weir._marshal_codec.join_rows([weir._marshal_codec.encode_row(v) for v in (1, 2, 40)]))
    out = agg.add("total", accs, values, [1, 0, 1])
    assert isinstance(out, wit_types.Batch) and len(out.offsets) == 3
    first, second = (out.data[a:b] for a, b in zip(out.offsets, out.offsets[1:]))
    assert weir._marshal_codec.decode_row(agg.get_result("total", agg.merge("total", first, second))) == 43

    with pytest.raises(Err) as info:
        agg.retract("total", out, wit_types.Batch(values.data[:5], [0, 5]), [0])
    assert "does not support retract" in info.value.value
    with pytest.raises(Err) as info:
        agg.add("nope", accs, values, [0, 0, 0])
    assert info.value.value.startswith("plugin app 0.2.0 has no function 'nope'")
    with pytest.raises(Err) as info:
        agg.add("total", accs, values, None)  # not a list: a bug outside any value, still an err
    assert info.value.value.startswith("weir-sdk-python failed in add('total') outside any row: TypeError")
    with pytest.raises(Err) as info:
        Transform().apply("total", values)
    assert "has no transform function 'total'" in info.value.value


def test_transform_only_world_still_builds_its_exports(world):
    component, app = world("transform-plugin")
    exported = component.exports(app)
    assert [c.__name__ for c in exported] == ["Describe", "Transform"]


PROCESS_APP = '''
from typing import Iterator, Optional
import weir
weir.plugin(name="keyed", version="0.1.0")

LATE = weir.OutputTag("late")


@weir.process
class CountPerKey(weir.KeyedProcessFunction):
    count = weir.ValueState(int, ttl_ms=1000)
    rules = weir.BroadcastMapState(str, float)

    def process_element(self, value: dict, ctx) -> Iterator[dict]:
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        if value.get("timer"):
            ctx.timer_service().register_event_time_timer(ctx.timestamp() + 10)
        if value.get("late"):
            ctx.output(LATE, value)
        if n > 2:
            yield weir.Row({"key": ctx.get_current_key(), "count": n - 1}, weir.RowKind.UPDATE_BEFORE)
            yield weir.Row({"key": ctx.get_current_key(), "count": n}, weir.RowKind.UPDATE_AFTER)
        else:
            yield {"key": ctx.get_current_key(), "count": n}

    def on_timer(self, timestamp, ctx):
        self.count.clear()
        yield [ctx.get_current_key(), timestamp, ctx.time_domain().name]


@weir.co_process
class Pair(weir.KeyedCoProcessFunction):
    left = weir.ValueState(str)

    def process_element1(self, value: str, ctx) -> Iterator[str]:
        self.left.update(value)
        return []

    def process_element2(self, value: str, ctx) -> Iterator[str]:
        yield f"{self.left.value()}+{value}"


@weir.process_window
def window_sum(key: str, window, elements: list[int], ctx) -> Iterator[Optional[int]]:
    if sum(elements) < 0:
        ctx.output("negative", [key, window.start])
    yield sum(elements)
'''


def test_process_export_over_the_wit_imports(world, monkeypatch):
    component, app = world("plugin", PROCESS_APP)
    from componentize_py_types import Err
    from wit_world.exports import process as wit_process
    from wit_world.imports import context, state, timers
    from wit_world.imports import types as wit_types

    calls = []
    monkeypatch.setattr(context, "select", lambda i: calls.append(f"select {i}"))
    monkeypatch.setattr(timers, "register_event_time", lambda at: calls.append(f"timer {at}"))
    assert not hasattr(state, "value_get"), "value state travels with the call in 0.2"

    exported = component.exports(app, aggregate=True, process=True)
    assert [c.__name__ for c in exported] == ["Describe", "Transform", "Aggregate", "Process"]
    Describe, _, _, Process = exported
    info = Describe().describe().functions
    assert [(f.name, f.kind) for f in info] == [
        ("count_per_key", wit_types.FunctionKind.PROCESS),
        ("pair", wit_types.FunctionKind.CO_PROCESS),
        ("window_sum", wit_types.FunctionKind.PROCESS_WINDOW),
    ]
    assert [(s.name, s.kind, s.value_type, s.ttl_ms) for s in info[0].states] == [
        ("count", wit_types.StateKind.VALUE, "int", 1000),
        ("rules", wit_types.StateKind.BROADCAST_MAP, "str -> float", None),
    ]
    T, S = wit_types.ValueType, wit_types.ScalarType
    assert info[0].signature == wit_types.Signature(
        params=[wit_types.Field(name="value", type=T(S.ANY, False, False))], result=T(S.ANY, False, False)
    )
    assert info[1].signature.params == [
        wit_types.Field(name="value1", type=T(S.STRING, False, False)),
        wit_types.Field(name="value2", type=T(S.STRING, False, False)),
    ]
    assert info[2].signature == wit_types.Signature(
        params=[
            wit_types.Field(name="key", type=T(S.STRING, False, False)),
            wit_types.Field(name="elements", type=T(S.INT, False, True)),
        ],
        result=T(S.INT, True, False),
    )

    codec = weir._marshal_codec

    def batch(*values):
        return wit_types.Batch(*codec.join_rows([codec.encode_row(v) for v in values]))

    # Keys a, b, a: two slots; a's count starts at 1 (from the key state), b's is unset.
    rows = batch({"x": 1}, {"timer": True}, {"late": True})
    keys = batch("a", "b", "a")
    key_state = wit_process.KeyState(slots=[0, 1, 0], values=[codec.encode_row(1), None, None, None])
    out = Process().process_elements("count_per_key", 1, rows, keys, [5, 7, 9], key_state)
    assert isinstance(out, wit_process.ProcessOutput)
    assert (out.counts, out.errors) == ([1, 1, 2], [])
    assert codec.unpack(out.rows.data, out.rows.offsets) == [
        {"key": "a", "count": 2}, {"key": "b", "count": 1}, {"key": "a", "count": 2}, {"key": "a", "count": 3},
    ]
    K = wit_types.RowKind
    assert out.kinds == [K.INSERT, K.INSERT, K.UPDATE_BEFORE, K.UPDATE_AFTER]
    assert out.side == [wit_types.SideRow(tag="late", input=2, row=codec.encode_row({"late": True}))]
    # One write per slot and state, the last value; no import call but for the timer.
    assert out.state_writes == [
        wit_process.StateWrite(slot=0, state=0, op=wit_process.StateOp_Set(codec.encode_row(3))),
        wit_process.StateWrite(slot=1, state=0, op=wit_process.StateOp_Set(codec.encode_row(1))),
    ]
    assert calls == ["select 1", "timer 17"]

    calls.clear()
    one = batch("a")
    out = Process().on_timers(
        "count_per_key", one, [15], [wit_process.TimeDomain.PROCESSING_TIME], wit_process.KeyState([0], [b"i\x03\x00\x00\x00", None])
    )
    assert codec.unpack(out.rows.data, out.rows.offsets) == [["a", 15, "PROCESSING_TIME"]]
    assert (out.kinds, out.side, calls) == ([], [], [])
    assert out.state_writes == [wit_process.StateWrite(slot=0, state=0, op=wit_process.StateOp_Clear())]

    out = Process().process_elements("count_per_key", 1, wit_types.Batch(b"", [0]), wit_types.Batch(b"", [0]), [], wit_process.KeyState([], []))
    assert (out.counts, out.state_writes) == ([], [])

    # A co-process function: input 1 writes the key's value, input 2 in a later call reads it.
    out = Process().process_elements("pair", 1, batch("L"), one, [0], wit_process.KeyState([0], [None]))
    assert (out.counts, out.state_writes[0].op) == ([0], wit_process.StateOp_Set(codec.encode_row("L")))
    out = Process().process_elements("pair", 2, batch("R"), one, [0], wit_process.KeyState([0], [codec.encode_row("L")]))
    assert codec.unpack(out.rows.data, out.rows.offsets) == ["L+R"]
    with pytest.raises(Err) as failed:
        Process().process_elements("pair", 3, batch("R"), one, [0], wit_process.KeyState([0], [None]))
    assert "its inputs are 1 and 2, not 3" in failed.value.value

    # A process-window function: one input, the window.
    window = wit_process.WindowBounds(start=0, end=60_000)
    out = Process().process_window("window_sum", codec.encode_row("u1"), window, batch(1, -5), [1, 2])
    assert (out.counts, out.errors, out.state_writes) == ([1], [], [])
    assert codec.unpack(out.rows.data, out.rows.offsets) == [-4]
    assert out.side == [wit_types.SideRow(tag="negative", input=0, row=codec.encode_row(["u1", 0]))]
    out = Process().process_window("window_sum", codec.encode_row("u1"), window, batch(1, "x"), [1, 2])
    assert out.counts == [0] and out.errors[0].message.startswith("process-window function `window_sum`: TypeError")

    with pytest.raises(Err) as failed:
        Process().process_broadcast("nope", one, [0])
    assert failed.value.value.startswith("plugin keyed 0.1.0 has no function 'nope'")
    with pytest.raises(Err) as failed:
        Process().process_window("count_per_key", b"", window, one, [0])
    assert "not a process-window function" in failed.value.value


def test_list_state_and_host_refusals_select_the_element_first(world, monkeypatch):
    component, app = world("plugin", '''
import weir
weir.plugin(name="lists", version="0.1.0")

@weir.process
class Seen(weir.KeyedProcessFunction):
    seen = weir.ListState(str)

    def process_element(self, value, ctx):
        self.seen.add(value)
        yield len(self.seen.get())
''')
    from componentize_py_types import Err
    from wit_world.exports import process as wit_process
    from wit_world.imports import context, state
    from wit_world.imports import types as wit_types

    calls, stored = [], []
    monkeypatch.setattr(context, "select", lambda i: calls.append(f"select {i}"))
    monkeypatch.setattr(state, "list_get", lambda name: (calls.append(f"get {name}"), list(stored))[1])

    def append(name, value):
        if value == weir._marshal_codec.encode_row("refused"):
            raise Err("operator `p`: disk full")
        calls.append(f"append {name}")
        stored.append(value)

    monkeypatch.setattr(state, "list_append", append)
    _, _, _, Process = component.exports(app, aggregate=True, process=True)
    codec = weir._marshal_codec
    rows = wit_types.Batch(*codec.join_rows([codec.encode_row(v) for v in ("x", "y")]))
    keys = wit_types.Batch(*codec.join_rows([codec.encode_row(k) for k in ("a", "b")]))
    out = Process().process_elements("seen", 1, rows, keys, [0, 0], wit_process.KeyState([0, 1], [None, None]))
    assert codec.unpack(out.rows.data, out.rows.offsets) == [1, 2]
    assert calls == ["select 0", "get seen", "append seen", "select 1", "get seen", "append seen"]
    calls.clear()
    # A new call selects again, even the same index.
    refused = wit_types.Batch(*codec.join_rows([codec.encode_row("refused")]))
    one_key = wit_types.Batch(*codec.join_rows([codec.encode_row("a")]))
    with pytest.raises(Err) as failed:
        Process().process_elements("seen", 1, refused, one_key, [0], wit_process.KeyState([0], [None]))
    assert calls == ["select 0", "get seen"]
    assert "the host refused a state change of input 0 (StateError: operator `p`: disk full)" in failed.value.value
