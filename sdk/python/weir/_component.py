"""The glue between componentize-py's bindings and the SDK dispatcher.

Importable only inside a component build (it imports `wit_world`, which componentize-py
generates for world `transform-plugin`). `python -m weir build` writes a small module::

    import app
    from weir._component import exports
    Describe, Transform = exports(app)

componentize-py finds the classes named after the exported interfaces (`Describe`,
`Transform`) in that module. All the logic lives in `weir._dispatch`, shared with
`weir.testing`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Tuple

from componentize_py_types import Err
from wit_world.exports import transform as wit_transform
from wit_world.imports import log as wit_log
from wit_world.imports import types as wit_types

from . import _dispatch, _marshal_codec, log
from ._functions import Plugin, WeirError

_KINDS = {
    "map": wit_types.FunctionKind.MAP,
    "filter": wit_types.FunctionKind.FILTER,
    "flat-map": wit_types.FunctionKind.FLAT_MAP,
    "key-selector": wit_types.FunctionKind.KEY_SELECTOR,
    "timestamp-assigner": wit_types.FunctionKind.TIMESTAMP_ASSIGNER,
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


def exports(module: ModuleType) -> Tuple[type, type]:
    """The `Describe` and `Transform` export classes for plugin module `module`.

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
            wit_types.FunctionInfo(name=f["name"], kind=_KINDS[f["kind"]], encoding=_ENCODINGS[f["encoding"]])
            for f in info["functions"]
        ],
    )
    log.set_sink(_log_to_host)

    class Describe:
        def describe(self) -> Any:
            return plugin_info

    class Transform:
        def apply(self, name: str, input: Any) -> Any:
            try:
                out = _dispatch.apply_named(plugin, name, input.data, input.offsets, _marshal_codec)
            except WeirError as exc:
                raise Err(str(exc)) from None
            except Exception as exc:  # noqa: BLE001 - never trap: let the host retry row by row
                raise Err(
                    f"weir-sdk-python failed in apply({name!r}) outside any row: "
                    f"{_dispatch.describe_exception(exc)}"
                ) from None
            return wit_transform.TransformOutput(
                rows=wit_types.Batch(data=out.data, offsets=out.offsets),
                counts=out.counts,
                errors=[wit_types.RowError(index=i, message=m) for i, m in out.errors],
            )

    return Describe, Transform
