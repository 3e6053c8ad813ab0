"""Weir SDK for Python: stream functions that run as WebAssembly components.

    import weir

    weir.plugin(name="upper", version="0.1.0")

    @weir.map
    def upper(s: str) -> str:
        return s.upper()

Decorators (`map`, `filter`, `flat_map`, `key_selector`, `timestamp_assigner`) mark a
function and return it unchanged, so it stays a plain callable for tests. Rows are
plain values (dicts, lists, str, bytes, numbers, bools, None). `@weir.aggregate` marks an
`AggregateFunction` class, a UDAF (see `weir._udaf`). `@weir.process` marks a
`KeyedProcessFunction` class with declared state (`weir.ValueState`, `ListState`,
`MapState`, `BroadcastMapState`) and timers (see `weir._process`). `weir.testing` runs
functions through the component's batch path locally (`weir.testing.ProcessHarness` for
process functions); `python -m weir build DIR` builds `DIR/app.py` into a component.
"""

from . import log, testing
from ._aggregate import AggregateError
from ._functions import (
    SDK,
    Function,
    Kind,
    Plugin,
    PluginDefinitionError,
    PluginMeta,
    UnknownFunctionError,
    WeirError,
    filter,
    flat_map,
    key_selector,
    map,
    plugin,
    timestamp_assigner,
)
from ._process import BroadcastContext, Context, KeyedProcessFunction, TimeDomain, TimerService, process
from ._state import BroadcastMapState, ListState, MapState, StateError, ValueState
from ._udaf import AggregateFunction, aggregate

__version__ = "0.1.0"

__all__ = [
    "SDK",
    "AggregateError",
    "AggregateFunction",
    "BroadcastContext",
    "BroadcastMapState",
    "Context",
    "KeyedProcessFunction",
    "ListState",
    "MapState",
    "StateError",
    "TimeDomain",
    "TimerService",
    "ValueState",
    "process",
    "Function",
    "Kind",
    "Plugin",
    "PluginDefinitionError",
    "PluginMeta",
    "UnknownFunctionError",
    "WeirError",
    "aggregate",
    "filter",
    "flat_map",
    "key_selector",
    "log",
    "map",
    "plugin",
    "testing",
    "timestamp_assigner",
]
