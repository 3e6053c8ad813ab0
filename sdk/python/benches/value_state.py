"""Per-element cost of a keyed count in value state (get + update per element), printed as JSON.

    python sdk/python/benches/value_state.py [--elements 1024] [--keys 100] [--rounds 20]
                                             [--wasm FILE] [--wit WIT_DIR]

Two measures:

1. **Inside the component** (needs the `wasmtime` package: `pip install wasmtime`): builds
   the small app below with `python -m weir build` (or takes `--wasm`), instantiates it with
   wasmtime from Python (the host's imports written in Python), and calls its map `measure`,
   which times, *inside the guest* (CPython on Wasm, WASI clock), calls of the component's
   own `Process.process_elements` export class (the glue, the dispatch, the WIT output
   records) on batches of `--elements` elements over `--keys` keys, key-state in and
   state-writes out as the host passes them. (Timing the export from outside would measure
   wasmtime-py, which converts `list<u8>` byte by byte in Python.) The canonical-ABI lifting
   of the arguments, native code, is left out; the host's side is Rust's.
   - `count_value`: the ABI 0.2 path, value state in the call: no import call per element.
   - `count_map`: the count in map state under one map key, so per element one
     `context.select`, one `state.map-get` and one `state.map-put`: the three import calls
     the 0.1 value-state path made (select, value-get, value-set), standing in for it. The
     imports here are Python callbacks through wasmtime-py, slower than the Rust host's.
   - `bare`: yields 1, no state: the dispatch's own cost.
   - `import_call_us`: one import round trip (`timers.current-processing-time`) timed in the
     guest, to this Python host.
2. **In this CPython**, through `weir.testing.ProcessHarness` (the same dispatch, the host's
   part in Python): the dispatch without Wasm.

Times are the best of `--rounds` calls, per element, in µs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from weir import _marshal_codec as codec

REPO = Path(__file__).resolve().parents[3]

APP = '''
import time

import weir

weir.plugin(name="bench-value-state", version="0.2.0")


@weir.process
class CountValue(weir.KeyedProcessFunction):
    count = weir.ValueState(int)

    def process_element(self, value, ctx):
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        yield n


@weir.process
class CountMap(weir.KeyedProcessFunction):
    counts = weir.MapState(str, int)

    def process_element(self, value, ctx):
        n = self.counts.get("n", 0) + 1
        self.counts.put("n", n)
        yield n


@weir.process
class Bare(weir.KeyedProcessFunction):
    def process_element(self, value, ctx):
        yield 1


@weir.map
def measure(spec):
    """Inside the component: best µs per element of `rounds` process-elements calls of each
    function, through the component's own export class."""
    import marshal

    import weir_component_glue as glue
    from wit_world.exports import process as wit_process
    from wit_world.imports import timers
    from wit_world.imports import types as wit_types
    from weir import _marshal_codec as codec

    n, keys, rounds = spec["elements"], spec["keys"], spec["rounds"]
    rows = wit_types.Batch(*codec.join_rows([codec.encode_row({"id": i}) for i in range(n)]))
    key_rows = [codec.encode_row(f"k{i % keys}") for i in range(n)]
    key_batch = wit_types.Batch(*codec.join_rows(key_rows))
    slots = [i % keys for i in range(n)]
    ts = [-(2**63)] * n
    process = glue.Process()
    out = {}
    for name, width in (("count_value", 1), ("count_map", 1), ("bare", 0)):
        values = [None] * (keys * width)
        best = float("inf")
        for _ in range(rounds):
            state = wit_process.KeyState(slots=slots, values=list(values))
            started = time.perf_counter()
            result = process.process_elements(name, 1, rows, key_batch, ts, state)
            best = min(best, time.perf_counter() - started)
            for w in result.state_writes:  # the host's part: apply the writes
                values[w.slot * width + w.state] = w.op.value if isinstance(w.op, wit_process.StateOp_Set) else None
            assert not result.errors, result.errors
        last = codec.unpack(result.rows.data, result.rows.offsets)[-1]
        out[name] = {"us_per_element": round(best / n * 1e6, 2), "last_count": last}
    calls = 2000
    started = time.perf_counter()
    for _ in range(calls):
        timers.current_processing_time()
    out["import_call_us"] = round((time.perf_counter() - started) / calls * 1e6, 2)
    return out
'''


def build_component(wit: Path, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="weir-bench-") as tmp:
        (Path(tmp) / "app.py").write_text(APP)
        subprocess.run(
            [sys.executable, "-m", "weir", "build", tmp, "--wit", str(wit), "-o", str(out), "-q"], check=True
        )


class Component:
    """The built component in wasmtime, with the host's imports in Python: map state in a dict
    per selected key, every other state call an error."""

    def __init__(self, wasm: Path, keys: int = 1):
        import wasmtime
        from wasmtime.component import Component as WasmComponent
        from wasmtime.component import Linker

        engine = wasmtime.Engine()
        linker = Linker(engine)
        linker.add_wasip2()
        self.counts = {"select": 0, "map-get": 0, "map-put": 0}
        self.selected = None
        self.maps: dict = {}
        version = "0.2.0"

        def select(store, index):
            self.counts["select"] += 1
            self.selected = index % keys  # the key of element `index` in `measure`'s batches

        def map_get(store, name, key):
            self.counts["map-get"] += 1
            return self.maps.get((self.selected, name, bytes(key)))

        def map_put(store, name, key, value):
            self.counts["map-put"] += 1
            self.maps[(self.selected, name, bytes(key))] = bytes(value)
            return None

        def refuse(*_):
            return "not in this bench"

        with linker.root() as root:
            with root.add_instance(f"weir:plugin/log@{version}") as log:
                log.add_func("log", lambda store, level, message: None)
            with root.add_instance(f"weir:plugin/context@{version}") as context:
                context.add_func("select", select)
            with root.add_instance(f"weir:plugin/state@{version}") as state:
                for name in ("list-get", "list-append", "list-clear", "map-remove", "map-contains", "map-entries"):
                    state.add_func(name, refuse)
                state.add_func("map-get", map_get)
                state.add_func("map-put", map_put)
            with root.add_instance(f"weir:plugin/broadcast@{version}") as broadcast:
                for name in ("get", "put", "remove", "entries"):
                    broadcast.add_func(name, refuse)
            with root.add_instance(f"weir:plugin/timers@{version}") as timers:
                timers.add_func("current-watermark", lambda store: None)
                timers.add_func("current-processing-time", lambda store: 0)
                for name in ("register-event-time", "register-processing-time", "delete-event-time", "delete-processing-time"):
                    timers.add_func(name, lambda store, at: None)
        self.store = wasmtime.Store(engine)
        self.store.set_wasi(wasmtime.WasiConfig())
        instance = linker.instantiate(self.store, WasmComponent.from_file(engine, str(wasm)))
        transform = instance.get_export_index(self.store, f"weir:plugin/transform@{version}")
        self.apply = instance.get_func(self.store, instance.get_export_index(self.store, "apply", transform))

    def map(self, name, value):
        """One row through transform.apply; its output row, or the call's error."""
        from wasmtime.component import Record

        batch = Record()
        batch.data, batch.offsets = codec.join_rows([codec.encode_row(value)])
        result = self.apply(self.store, name, batch)
        self.apply.post_return(self.store)
        if isinstance(result, str):
            raise RuntimeError(result)
        if result.errors:
            raise RuntimeError(result.errors[0].message)
        return codec.unpack(bytes(result.rows.data), list(result.rows.offsets))[0]


def in_component(args, wasm: Path) -> dict:
    component = Component(wasm, args.keys)
    spec = {"elements": args.elements, "keys": args.keys, "rounds": args.rounds}
    figures = component.map("measure", spec)
    calls = args.elements * args.rounds
    expected = args.rounds * sum(1 for i in range(args.elements) if i % args.keys == (args.elements - 1) % args.keys)
    for name in ("count_value", "count_map"):
        assert figures[name].pop("last_count") == expected, figures
    figures["bare"].pop("last_count")
    figures["note"] = (
        "count_map's imports are Python callbacks through wasmtime-py (which converts list<u8> byte by byte): "
        "far slower than the Rust host's; count_value makes none"
    )
    figures["import_calls_per_element"] = {
        "count_value": 0,
        "count_map": {k: round(v / calls, 2) for k, v in component.counts.items()},
    }
    return figures


def in_cpython(args) -> dict:
    import types

    module = types.ModuleType("bench_app")
    exec(APP, module.__dict__)
    from weir.testing import ProcessHarness

    h = ProcessHarness(module.CountValue)
    batch = [(f"k{i % args.keys}", {"id": i}, None) for i in range(args.elements)]
    best = float("inf")
    for _ in range(args.rounds):
        started = time.perf_counter()
        h.process_batch(batch)
        best = min(best, time.perf_counter() - started)
        h.take_output()
    return {"harness_count_value_us_per_element": round(best / args.elements * 1e6, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--elements", type=int, default=1024)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--wasm", type=Path, help="a component built from this bench's app (default: build one)")
    parser.add_argument("--wit", type=Path, default=REPO / "wit")
    args = parser.parse_args()
    report = {"bench": "python_value_state_count", "elements_per_call": args.elements, "keys": args.keys}
    report.update(in_cpython(args))
    try:
        import wasmtime  # noqa: F401
    except ImportError:
        report["component"] = "skipped: pip install wasmtime to measure inside the component"
    else:
        with tempfile.TemporaryDirectory(prefix="weir-bench-") as tmp:
            wasm = args.wasm or Path(tmp) / "bench.wasm"
            if args.wasm is None:
                build_component(args.wit, wasm)
            report["component"] = in_component(args, wasm)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
