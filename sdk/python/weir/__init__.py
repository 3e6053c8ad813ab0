"""Weir SDK for Python: stream functions that run as WebAssembly components (ABI
`weir:plugin@0.2.0`).

    import weir

    weir.plugin(name="upper", version="0.1.0")

    @weir.map
    def upper(s: str) -> str:
        return s.upper()

Decorators (`map`, `filter`, `flat_map`, `key_selector`, `timestamp_assigner`) mark a
function and return it unchanged, so it stays a plain callable for tests; its annotations
become the signature `describe` reports (`weir._signature`; `weir.Timestamp` names ms since
the epoch). Rows are plain values (dicts, lists, str, bytes, numbers, bools, None).
`@weir.aggregate` marks an `AggregateFunction` class, a UDAF (see `weir._udaf`).
`@weir.process` marks a `KeyedProcessFunction` class with declared state (`weir.ValueState`,
`ListState`, `MapState`, `BroadcastMapState`) and timers, `@weir.co_process` a
`KeyedCoProcessFunction` over two connected streams, `@weir.process_window` a function
called with a fired window's elements (see `weir._process`); they emit rows with a kind
(`weir.Row`, `weir.RowKind`) and side outputs (`ctx.output(weir.OutputTag(...), value)`, see
`weir._output`). `weir.testing` runs functions through the component's batch path locally
(`weir.testing.ProcessHarness` for the process kinds); `python -m weir build DIR` builds
`DIR/app.py` into a component.
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
from ._output import OutputTag, Row, RowKind, TimeWindow
from ._process import (
    BroadcastContext,
    Context,
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    TimeDomain,
    TimerService,
    WindowContext,
    co_process,
    process,
    process_window,
)
from ._signature import Timestamp
from ._state import BroadcastMapState, ListState, MapState, StateError, ValueState
from ._udaf import AggregateFunction, aggregate

__version__ = "0.2.0"

__all__ = [
    "SDK",
    "AggregateError",
    "AggregateFunction",
    "BroadcastContext",
    "BroadcastMapState",
    "Context",
    "KeyedCoProcessFunction",
    "KeyedProcessFunction",
    "ListState",
    "MapState",
    "OutputTag",
    "Row",
    "RowKind",
    "StateError",
    "TimeDomain",
    "TimeWindow",
    "TimerService",
    "Timestamp",
    "ValueState",
    "WindowContext",
    "co_process",
    "process",
    "process_window",
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
