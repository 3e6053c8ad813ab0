"""`python -m weir build`: argument and plugin errors (fast), and an opt-in full build.

The full build runs componentize-py (~10-20 s); set WEIR_TEST_BUILD=1 to run it. With the
`wasmtime` package installed it also loads the component and calls its exports.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from weir import build

REPO = Path(__file__).resolve().parents[3]
WIT = REPO / "wit"


def run_build(*args):
    return subprocess.run([sys.executable, "-m", "weir", "build", *map(str, args)], capture_output=True, text=True)


def test_missing_plugin_folder_is_a_usage_error(tmp_path):
    proc = run_build(tmp_path / "nope", "--wit", WIT, "-o", tmp_path / "out.wasm")
    assert proc.returncode == 2
    assert "no such plugin folder" in proc.stderr


def test_folder_without_app_py(tmp_path):
    proc = run_build(tmp_path, "--wit", WIT, "-o", tmp_path / "out.wasm")
    assert proc.returncode == 2
    assert "no app.py" in proc.stderr


def test_missing_arguments():
    proc = run_build()
    assert proc.returncode == 2
    assert "--wit" in proc.stderr


def test_app_without_plugin_declaration_fails_before_componentize(tmp_path):
    (tmp_path / "app.py").write_text("import weir\n\n@weir.map\ndef f(x):\n    return x\n")
    proc = run_build(tmp_path, "--wit", WIT, "-o", tmp_path / "out.wasm")
    assert proc.returncode == 1
    assert "no plugin declaration" in proc.stderr and "weir.plugin(" in proc.stderr
    assert not (tmp_path / "out.wasm").exists()


def test_app_that_raises_on_import(tmp_path):
    (tmp_path / "app.py").write_text("import weir\nraise RuntimeError('boom')\n")
    proc = run_build(tmp_path, "--wit", WIT, "-o", tmp_path / "out.wasm")
    assert proc.returncode == 1
    assert "app.py: RuntimeError: boom" in proc.stderr


def test_missing_componentize_py_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(build.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(build.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(build.BuildError, match="just setup.*componentize-py==0.25.1"):
        build.componentize_py_command()


def test_staging_leaves_out_tests_and_caches(tmp_path):
    plugin = tmp_path / "p"
    (plugin / "__pycache__").mkdir(parents=True)
    (plugin / ".venv").mkdir()
    (plugin / "app.py").write_text("")
    (plugin / "helpers.py").write_text("")
    (plugin / "test_app.py").write_text("")
    (plugin / "old.wasm").write_bytes(b"")
    staged = tmp_path / "s"
    build.stage(plugin, staged)
    names = sorted(p.name for p in staged.iterdir())
    assert names == ["app.py", "helpers.py", "weir", "weir_component_glue.py"]
    assert (staged / "weir" / "_dispatch.py").is_file()


VERSION = "0.2.0"
slow = pytest.mark.skipif(os.environ.get("WEIR_TEST_BUILD") != "1", reason="slow: set WEIR_TEST_BUILD=1")


def instantiate(wasm, imports=None):
    """`export(interface, name)` over the component at `wasm` in wasmtime, with the `log`
    import and, from `imports`, {interface: {function: callable(store, *args)}}."""
    wasmtime = pytest.importorskip("wasmtime")
    from wasmtime.component import Component, Linker

    engine = wasmtime.Engine()
    linker = Linker(engine)
    linker.add_wasip2()
    with linker.root() as root:
        with root.add_instance(f"weir:plugin/log@{VERSION}") as log:
            log.add_func("log", lambda store, level, message: None)
        for interface, functions in (imports or {}).items():
            with root.add_instance(f"weir:plugin/{interface}@{VERSION}") as instance:
                for name, fn in functions.items():
                    instance.add_func(name, fn)
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    instance = linker.instantiate(store, Component.from_file(engine, str(wasm)))

    def export(interface, name):
        func = instance.get_func(
            store, instance.get_export_index(store, name, instance.get_export_index(store, f"weir:plugin/{interface}@{VERSION}"))
        )

        def call(*args):
            result = func(store, *args)
            func.post_return(store)
            return result

        return call

    return export


def marshal_batch(values):
    from wasmtime.component import Record

    from weir import _marshal_codec as codec

    batch = Record()
    batch.data, batch.offsets = codec.join_rows([codec.encode_row(v) for v in values])
    return batch


def rows_of(batch):
    from weir import _marshal_codec as codec

    return codec.unpack(bytes(batch.data), list(batch.offsets))


@slow
def test_build_upper_python(tmp_path):
    out = tmp_path / "upper.wasm"
    proc = run_build(REPO / "plugins" / "upper-python", "--wit", WIT, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == bytes.fromhex("0061736d0d000100")
    assert "built upper 0.1.0" in proc.stdout

    export = instantiate(out)
    info = export("describe", "describe")()
    assert (info.name, info.version, info.sdk) == ("upper", "0.1.0", "weir-sdk-python 0.2.0")
    assert [f.name for f in info.functions] == ["upper", "upper_name"]
    [param] = info.functions[0].signature.params
    assert (param.name, getattr(param, "type").scalar) == ("s", "string")

    result = export("transform", "apply")("upper_name", marshal_batch([{"name": "bob"}, {"id": 2}]))
    assert list(result.counts) == [1, 0]
    assert [(e.index, e.message) for e in result.errors] == [(1, "KeyError: 'name'")]
    assert rows_of(result.rows) == [{"name": "BOB", "name_len": 3}]


@slow
def test_build_process_python_and_call_it_with_key_state(tmp_path):
    """The built process-python component through the process export: value state in the
    call (no select, no state import for count_per_key), a co-process input 2, a side
    output, a process window."""
    from wasmtime.component import Record

    from weir import _marshal_codec as codec

    out = tmp_path / "process.wasm"
    proc = run_build(REPO / "plugins" / "process-python", "--wit", WIT, "-o", out)
    assert proc.returncode == 0, proc.stderr
    calls = []

    def refuse(name):
        def call(store, *args):
            calls.append(name)
            return "refused in this test"

        return call

    state = {n: refuse(n) for n in ("list-get", "list-append", "list-clear", "map-get", "map-put", "map-remove", "map-contains", "map-entries")}
    lists = {}
    state["list-get"] = lambda store, name: lists.get(name, [])
    state["list-append"] = lambda store, name, value: lists.setdefault(name, []).append(bytes(value))
    state["list-clear"] = lambda store, name: lists.pop(name, None)
    export = instantiate(
        out,
        {
            "context": {"select": lambda store, i: calls.append(f"select {i}")},
            "state": state,
            "broadcast": {n: refuse(n) for n in ("get", "put", "remove", "entries")},
            "timers": {
                "current-watermark": lambda store: None,
                "current-processing-time": lambda store: 0,
                **{n: refuse(n) for n in ("register-event-time", "register-processing-time", "delete-event-time", "delete-processing-time")},
            },
        },
    )
    info = export("describe", "describe")()
    assert info.sdk == "weir-sdk-python 0.2.0"
    kinds = {f.name: f.kind for f in info.functions}
    assert (kinds["count_per_key"], kinds["enrich_clicks"], kinds["window_summary"]) == ("process", "co-process", "process-window")

    def key_state(slots, values):
        ks = Record()
        ks.slots, ks.values = slots, values
        return ks

    process_elements = export("process", "process-elements")
    result = process_elements(
        "count_per_key", 1, marshal_batch(["x", "y", "z"]), marshal_batch(["a", "b", "a"]), [0, 0, 0],
        key_state([0, 1, 0], [codec.encode_row(4), None]),
    )
    assert rows_of(result.rows) == [{"key": "a", "count": 5}, {"key": "b", "count": 1}, {"key": "a", "count": 6}]
    writes = [(w.slot, w.state, w.op) for w in getattr(result, "state-writes")]
    assert writes == [(0, 0, codec.encode_row(6)), (1, 0, codec.encode_row(1))]
    assert calls == [], "value state needs no import call"

    result = process_elements(
        "enrich_clicks", 2, marshal_batch([{"name": "Ada"}]), marshal_batch(["u1"]), [0], key_state([0], [None, None])
    )
    assert calls == ["select 0"] and rows_of(result.rows) == []

    result = process_elements(
        "split_late", 1, marshal_batch(["e"]), marshal_batch(["a"]), [10], key_state([0], [codec.encode_row(50)])
    )
    assert [(s.tag, s.input, codec.decode_row(bytes(s.row))) for s in result.side] == [
        ("late", 0, {"key": "a", "event": "e", "lateness_ms": 40})
    ]

    window = Record()
    window.start, window.end = 0, 60_000
    result = export("process", "process-window")("window_summary", codec.encode_row("u1"), window, marshal_batch([1, 2]), [5, 9])
    assert list(result.counts) == [1]
    assert rows_of(result.rows) == [{"key": "u1", "start": 0, "end": 60_000, "count": 2, "first_at": 5, "last_at": 9}]
