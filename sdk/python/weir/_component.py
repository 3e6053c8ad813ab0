"""The glue between componentize-py's bindings and the SDK dispatchers.

Importable only inside a component build (it imports `wit_world`, which componentize-py
generates for the world `weir.build` picks: `transform-plugin`, or
`transform-aggregate-plugin` when the app has aggregates). `python -m weir build` writes a
small module::

    import app
    from weir._component import exports
    Describe, Transform = exports(app)                          # transform-plugin
    Describe, Transform, Aggregate = exports(app, aggregate=True)  # transform-aggregate-plugin

componentize-py finds the classes named after the exported interfaces (`Describe`,
`Transform`, `Aggregate`) in that module. All the logic lives in `weir._dispatch` and
`weir._aggregate`, shared with `weir.testing`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Tuple, TypeVar

from componentize_py_types import Err
from wit_world.exports import transform as wit_transform
from wit_world.imports import log as wit_log
from wit_world.imports import types as wit_types

from . import _aggregate, _dispatch, _marshal_codec, log
from ._functions import Plugin, WeirError

_KINDS = {
    "map": wit_types.FunctionKind.MAP,
    "filter": wit_types.FunctionKind.FILTER,
    "flat-map": wit_types.FunctionKind.FLAT_MAP,
    "key-selector": wit_types.FunctionKind.KEY_SELECTOR,
    "timestamp-assigner": wit_types.FunctionKind.TIMESTAMP_ASSIGNER,
    "aggregate": wit_types.FunctionKind.AGGREGATE,
}
_ENCODINGS = {
    "json": wit_types.RowEncoding.JSON,
    "python-marshal": wit_types.RowEncoding.PYTHON_MARSHAL,
}
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


def exports(module: ModuleType, aggregate: bool = False) -> Tuple[type, ...]:
    """The export classes for plugin module `module`: `Describe` and `Transform`, plus
    `Aggregate` when `aggregate` (the world exports the `aggregate` interface).

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
                name=f["name"], kind=_KINDS[f["kind"]], encoding=_ENCODINGS[f["encoding"]], states=[]
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

    return Describe, Transform, Aggregate
