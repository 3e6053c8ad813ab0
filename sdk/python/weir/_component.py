"""The glue between componentize-py's bindings and the SDK dispatchers.

Importable only inside a component build (it imports `wit_world`, which componentize-py
generates for the world `weir.build` picks: `transform-plugin`,
`transform-aggregate-plugin` when the app has aggregates, `plugin` when it has process,
co-process or process-window functions). `python -m weir build` writes a small module::

    import app
    from weir._component import exports
    Describe, Transform = exports(app)                          # transform-plugin
    Describe, Transform, Aggregate = exports(app, aggregate=True)  # transform-aggregate-plugin
    Describe, Transform, Aggregate, Process = exports(app, aggregate=True, process=True)  # plugin

componentize-py finds the classes named after the exported interfaces (`Describe`,
`Transform`, `Aggregate`, `Process`) in that module. All the logic lives in
`weir._dispatch`, `weir._aggregate` and `weir._process`, shared with `weir.testing`; the
process functions get their value state with each call (`key-state`, returned as
`state-writes`) and reach the host's list, map and broadcast state and timers through
`WitProcessHost`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, List, Optional, Tuple, TypeVar

from componentize_py_types import Err
from wit_world.exports import transform as wit_transform
from wit_world.imports import log as wit_log
from wit_world.imports import types as wit_types

from . import _aggregate, _dispatch, _marshal_codec, _process, log
from ._functions import Plugin, WeirError
from ._state import StateError

_KINDS = {
    "map": wit_types.FunctionKind.MAP,
    "filter": wit_types.FunctionKind.FILTER,
    "flat-map": wit_types.FunctionKind.FLAT_MAP,
    "key-selector": wit_types.FunctionKind.KEY_SELECTOR,
    "timestamp-assigner": wit_types.FunctionKind.TIMESTAMP_ASSIGNER,
    "aggregate": wit_types.FunctionKind.AGGREGATE,
    "process": wit_types.FunctionKind.PROCESS,
    "co-process": wit_types.FunctionKind.CO_PROCESS,
    "process-window": wit_types.FunctionKind.PROCESS_WINDOW,
}
_STATE_KINDS = {
    "value": wit_types.StateKind.VALUE,
    "list": wit_types.StateKind.LIST,
    "map": wit_types.StateKind.MAP,
    "broadcast-map": wit_types.StateKind.BROADCAST_MAP,
}
_ENCODINGS = {
    "json": wit_types.RowEncoding.JSON,
    "python-marshal": wit_types.RowEncoding.PYTHON_MARSHAL,
}
_SCALARS = {
    "any": wit_types.ScalarType.ANY,
    "bool": wit_types.ScalarType.BOOL,
    "int": wit_types.ScalarType.INT,
    "float": wit_types.ScalarType.FLOAT,
    "string": wit_types.ScalarType.STRING,
    "bytes": wit_types.ScalarType.BYTES,
    "timestamp": wit_types.ScalarType.TIMESTAMP,
}
#: `weir.RowKind` -> WIT `row-kind`, by the enum's value.
_ROW_KINDS = (
    wit_types.RowKind.INSERT,
    wit_types.RowKind.UPDATE_BEFORE,
    wit_types.RowKind.UPDATE_AFTER,
    wit_types.RowKind.DELETE,
)
_LEVELS = {
    "trace": wit_log.Level.TRACE,
    "debug": wit_log.Level.DEBUG,
    "info": wit_log.Level.INFO,
    "warn": wit_log.Level.WARN,
    "error": wit_log.Level.ERROR,
}


def _log_to_host(level: str, message: str) -> None:
    wit_log.log(_LEVELS[level], message)


T = TypeVar("T")


def _call(operation: str, name: str, call: Callable[[], T]) -> T:
    """`call()`, with every failure turned into the WIT `err` (an exception must never trap
    the instance: the host retries value by value on an `err`)."""
    try:
        return call()
    except WeirError as exc:
        raise Err(str(exc)) from None
    except Exception as exc:  # noqa: BLE001
        raise Err(
            f"weir-sdk-python failed in {operation}({name!r}) outside any row: {_dispatch.describe_exception(exc)}"
        ) from None


def _states(f: Any) -> List[Any]:
    return [
        wit_types.StateDecl(name=s["name"], kind=_STATE_KINDS[s["kind"]], value_type=s["value_type"], ttl_ms=s["ttl_ms"])
        for s in f.get("states", [])
    ]


def _value_type(t: Any) -> Any:
    return wit_types.ValueType(scalar=_SCALARS[t["scalar"]], nullable=t["nullable"], is_list=t["is_list"])


def _signature(f: Any) -> Any:
    sig = f.get("signature")
    if sig is None:
        return None
    return wit_types.Signature(
        params=[wit_types.Field(name=p["name"], type=_value_type(p["type"])) for p in sig["params"]],
        result=_value_type(sig["result"]),
    )


def exports(module: ModuleType, aggregate: bool = False, process: bool = False) -> Tuple[type, ...]:
    """The export classes for plugin module `module`: `Describe` and `Transform`, plus
    `Aggregate` when `aggregate` (the world exports the `aggregate` interface), plus
    `Process` when `process` (world `plugin`, which exports every interface).

    Runs while componentize-py pre-initializes the component, so a plugin error (no
    `weir.plugin(...)`, duplicate names) fails the build, not the first call.
    """
    plugin = Plugin.from_module(module)
    info = plugin.describe()
    plugin_info = wit_types.PluginInfo(
        name=info["name"],
        version=info["version"],
        sdk=info["sdk"],
        functions=[
            wit_types.FunctionInfo(
                name=f["name"],
                kind=_KINDS[f["kind"]],
                encoding=_ENCODINGS[f["encoding"]],
                states=_states(f),
                signature=_signature(f),
            )
            for f in info["functions"]
        ],
    )
    log.set_sink(_log_to_host)

    class Describe:
        def describe(self) -> Any:
            return plugin_info

    class Transform:
        def apply(self, name: str, input: Any) -> Any:
            out = _call(
                "apply", name, lambda: _dispatch.apply_named(plugin, name, input.data, input.offsets, _marshal_codec)
            )
            return wit_transform.TransformOutput(
                rows=wit_types.Batch(data=out.data, offsets=out.offsets),
                counts=out.counts,
                errors=[wit_types.RowError(index=i, message=m) for i, m in out.errors],
            )

    if not aggregate:
        return Describe, Transform

    class Aggregate:
        def create_accumulator(self, name: str) -> bytes:
            return _call("create_accumulator", name, lambda: _aggregate.create_accumulator(plugin.aggregate(name)))

        def add(self, name: str, accumulators: Any, values: Any, groups: Any) -> Any:
            return self._fold(_aggregate.add, "add", name, accumulators, values, groups)

        def retract(self, name: str, accumulators: Any, values: Any, groups: Any) -> Any:
            return self._fold(_aggregate.retract, "retract", name, accumulators, values, groups)

        def merge(self, name: str, a: bytes, b: bytes) -> bytes:
            return _call("merge", name, lambda: _aggregate.merge(plugin.aggregate(name), a, b))

        def get_result(self, name: str, accumulator: bytes) -> bytes:
            return _call("get_result", name, lambda: _aggregate.get_result(plugin.aggregate(name), accumulator))

        @staticmethod
        def _fold(op: Any, operation: str, name: str, accumulators: Any, values: Any, groups: Any) -> Any:
            data, offsets = _call(
                operation,
                name,
                lambda: op(
                    plugin.aggregate(name),
                    accumulators.data,
                    accumulators.offsets,
                    values.data,
                    values.offsets,
                    groups,
                ),
            )
            return wit_types.Batch(data=data, offsets=offsets)

    if not process:
        return Describe, Transform, Aggregate

    from wit_world.exports import process as wit_process

    host = WitProcessHost()
    domains_of = {
        wit_process.TimeDomain.EVENT_TIME: _process.TimeDomain.EVENT_TIME,
        wit_process.TimeDomain.PROCESSING_TIME: _process.TimeDomain.PROCESSING_TIME,
    }
    Set, Clear = wit_process.StateOp_Set, wit_process.StateOp_Clear
    StateWrite, SideRow = wit_process.StateWrite, wit_types.SideRow

    def output(out: _process.ProcessOutput) -> Any:
        return wit_process.ProcessOutput(
            rows=wit_types.Batch(data=out.data, offsets=out.offsets),
            counts=out.counts,
            errors=[wit_types.RowError(index=i, message=m) for i, m in out.errors],
            kinds=[_ROW_KINDS[k.value] for k in out.kinds],
            side=[SideRow(tag=tag, input=i, row=row) for tag, i, row in out.side],
            state_writes=[
                StateWrite(slot=slot, state=state, op=Clear() if value is None else Set(value))
                for slot, state, value in out.state_writes
            ],
        )

    class Process:
        def process_elements(
            self, name: str, input: int, elements: Any, keys: Any, timestamps: List[int], state: Any
        ) -> Any:
            host.begin_call()
            return output(
                _call(
                    "process_elements",
                    name,
                    lambda: _process.process_elements(
                        plugin.process(name),
                        host,
                        input,
                        elements.data,
                        elements.offsets,
                        keys.data,
                        keys.offsets,
                        timestamps,
                        state.slots,
                        state.values,
                    ),
                )
            )

        def on_timers(self, name: str, keys: Any, times: List[int], domains: List[Any], state: Any) -> Any:
            host.begin_call()
            ours = [domains_of[d] for d in domains]
            return output(
                _call(
                    "on_timers",
                    name,
                    lambda: _process.on_timers(
                        plugin.process(name), host, keys.data, keys.offsets, times, ours, state.slots, state.values
                    ),
                )
            )

        def process_broadcast(self, name: str, elements: Any, timestamps: List[int]) -> Any:
            host.begin_call()
            return output(
                _call(
                    "process_broadcast",
                    name,
                    lambda: _process.process_broadcast(
                        plugin.process(name), host, elements.data, elements.offsets, timestamps
                    ),
                )
            )

        def process_window(self, name: str, key: bytes, window: Any, elements: Any, timestamps: List[int]) -> Any:
            return output(
                _call(
                    "process_window",
                    name,
                    lambda: _process.fire_window(
                        plugin.process(name), key, window.start, window.end, elements.data, elements.offsets, timestamps
                    ),
                )
            )

    return Describe, Transform, Aggregate, Process


class WitProcessHost:
    """The `ProcessHost` of `weir._process` over the WIT imports `context`, `state`,
    `broadcast` and `timers`; the host's refusals (`Err`) become `weir.StateError`.

    Selection is lazy: `select(i)` only notes the input, and `context.select` is called
    before the first import call that needs it (list, map or broadcast state, timer
    changes). A function over value state alone so makes no import call per element."""

    def __init__(self) -> None:
        from wit_world.imports import broadcast, context, state, timers

        self._state, self._broadcast, self._timers = state, broadcast, timers
        self._context_select = context.select
        self.current_watermark = timers.current_watermark
        self.current_processing_time = timers.current_processing_time
        #: The input the dispatcher handles (None on the broadcast side, which has no key),
        #: and the one the host has selected in this call.
        self._wanted: Optional[int] = None
        self._selected: Optional[int] = None

    def begin_call(self) -> None:
        """A new call: nothing selected on either side yet."""
        self._wanted = self._selected = None

    def select(self, index: int) -> None:
        self._wanted = index

    def _sync(self) -> None:
        if self._selected != self._wanted:
            self._context_select(self._wanted)
            self._selected = self._wanted

    def _host(self, call: Callable[..., T], *args: Any) -> T:
        if self._selected != self._wanted:
            self._sync()
        try:
            return call(*args)
        except Err as exc:
            raise StateError(str(exc.value)) from None

    def list_get(self, name: str) -> List[bytes]:
        return self._host(self._state.list_get, name)

    def list_append(self, name: str, value: bytes) -> None:
        self._host(self._state.list_append, name, value)

    def list_clear(self, name: str) -> None:
        self._host(self._state.list_clear, name)

    def map_get(self, name: str, key: bytes) -> Optional[bytes]:
        return self._host(self._state.map_get, name, key)

    def map_put(self, name: str, key: bytes, value: bytes) -> None:
        self._host(self._state.map_put, name, key, value)

    def map_remove(self, name: str, key: bytes) -> None:
        self._host(self._state.map_remove, name, key)

    def map_contains(self, name: str, key: bytes) -> bool:
        return self._host(self._state.map_contains, name, key)

    def map_entries(self, name: str) -> List[Tuple[bytes, bytes]]:
        return self._host(self._state.map_entries, name)

    def broadcast_get(self, name: str, key: bytes) -> Optional[bytes]:
        return self._host(self._broadcast.get, name, key)

    def broadcast_put(self, name: str, key: bytes, value: bytes) -> None:
        self._host(self._broadcast.put, name, key, value)

    def broadcast_remove(self, name: str, key: bytes) -> None:
        self._host(self._broadcast.remove, name, key)

    def broadcast_entries(self, name: str) -> List[Tuple[bytes, bytes]]:
        return self._host(self._broadcast.entries, name)

    def register_timer(self, event_time: bool, at: int) -> None:
        self._sync()
        (self._timers.register_event_time if event_time else self._timers.register_processing_time)(at)

    def delete_timer(self, event_time: bool, at: int) -> None:
        self._sync()
        (self._timers.delete_event_time if event_time else self._timers.delete_processing_time)(at)
