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
import weir
weir.plugin(name="keyed", version="0.1.0")

@weir.process
class CountPerKey(weir.KeyedProcessFunction):
    count = weir.ValueState(int, ttl_ms=1000)
    rules = weir.BroadcastMapState(str, float)

    def process_element(self, value, ctx):
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        ctx.timer_service().register_event_time_timer(ctx.timestamp() + 10)
        yield {"key": ctx.get_current_key(), "count": n}

    def on_timer(self, timestamp, ctx):
        yield [ctx.get_current_key(), timestamp, ctx.time_domain().name]
'''


def test_process_export_over_the_wit_imports(world, monkeypatch):
    component, app = world("plugin", PROCESS_APP)
    from componentize_py_types import Err
    from wit_world.exports import process as wit_process
    from wit_world.imports import context, state, timers
    from wit_world.imports import types as wit_types

    calls = []
    stored = {}
    monkeypatch.setattr(context, "select", lambda i: calls.append(f"select {i}"))
    monkeypatch.setattr(state, "value_get", lambda name: stored.get(name))
    monkeypatch.setattr(state, "value_set", lambda name, value: (calls.append(f"set {name}"), stored.update({name: value})))
    monkeypatch.setattr(timers, "register_event_time", lambda at: calls.append(f"timer {at}"))

    def refuse(name):
        raise Err(f"operator `p` used state `{name}`, which it did not declare")

    exported = component.exports(app, aggregate=True, process=True)
    assert [c.__name__ for c in exported] == ["Describe", "Transform", "Aggregate", "Process"]
    Describe, _, _, Process = exported
    [info] = Describe().describe().functions
    assert (info.name, info.kind) == ("count_per_key", wit_types.FunctionKind.PROCESS)
    assert [(s.name, s.kind, s.value_type, s.ttl_ms) for s in info.states] == [
        ("count", wit_types.StateKind.VALUE, "int", 1000),
        ("rules", wit_types.StateKind.BROADCAST_MAP, "str -> float", None),
    ]

    codec = weir._marshal_codec
    rows = wit_types.Batch(*codec.join_rows([codec.encode_row(v) for v in ({"x": 1}, {"x": 2})]))
    keys = wit_types.Batch(*codec.join_rows([codec.encode_row("a"), codec.encode_row("a")]))
    out = Process().process_elements("count_per_key", rows, keys, [5, 7])
    assert isinstance(out, wit_process.ProcessOutput)
    assert (out.counts, out.errors) == ([1, 1], [])
    assert codec.unpack(out.rows.data, out.rows.offsets) == [{"key": "a", "count": 1}, {"key": "a", "count": 2}]
    assert calls == ["select 0", "set count", "timer 15", "select 1", "set count", "timer 17"]

    one = wit_types.Batch(*codec.join_rows([codec.encode_row("a")]))
    out = Process().on_timers("count_per_key", one, [15], [wit_process.TimeDomain.PROCESSING_TIME])
    assert codec.unpack(out.rows.data, out.rows.offsets) == [["a", 15, "PROCESSING_TIME"]]

    monkeypatch.setattr(state, "value_get", refuse)
    out = Process().process_elements("count_per_key", wit_types.Batch(rows.data[:0], [0]), wit_types.Batch(b"", [0]), [])
    assert out.counts == []
    out = Process().process_elements("count_per_key", one, one, [0])
    assert out.errors[0].message == (
        "process function `count_per_key`: StateError: operator `p` used state `count`, which it did not declare"
    )
    with pytest.raises(Err) as failed:
        Process().process_broadcast("nope", one, [0])
    assert failed.value.value.startswith("plugin keyed 0.1.0 has no function 'nope'")
