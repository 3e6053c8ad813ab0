"""Decorators that mark user functions, and the `Plugin` that collects them from a module.

A decorator does not wrap the function: it attaches a `Function` spec as the attribute
`__weir__` and returns the very same callable, so `upper("a") == "A"` and plain pytest
tests keep working. The component glue and `weir.testing` find the functions by scanning
a module for that attribute (`Plugin.from_module`).

Aggregate functions (UDAFs) are classes, marked by `@weir.aggregate` the same way; their
base class and decorator live in `weir._udaf`, their dispatch in `weir._aggregate`. Keyed
process functions are classes too (`@weir.process`, `weir._process`), with the state they
declare (`weir._state`) in their `Function` spec.
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Tuple

#: The SDK string `describe` reports (WIT `plugin-info.sdk`).
SDK = "weir-sdk-python 0.2.0"

#: Attribute a decorator sets on the user's function.
SPEC_ATTR = "__weir__"
#: Module global `weir.plugin(...)` sets in the calling module.
PLUGIN_ATTR = "__weir_plugin__"


class Kind(str, enum.Enum):
    """A function kind (values are the WIT `function-kind` case names)."""

    MAP = "map"
    FILTER = "filter"
    FLAT_MAP = "flat-map"
    KEY_SELECTOR = "key-selector"
    TIMESTAMP_ASSIGNER = "timestamp-assigner"
    #: A UDAF, called through the `aggregate` interface (`@weir.aggregate`).
    AGGREGATE = "aggregate"
    #: A keyed process function, called through the `process` interface (`@weir.process`).
    PROCESS = "process"
    #: A keyed process function over two connected streams (`@weir.co_process`).
    CO_PROCESS = "co-process"
    #: Called with all the elements of a key's window when it fires (`@weir.process_window`).
    PROCESS_WINDOW = "process-window"

    @property
    def is_transform(self) -> bool:
        """Whether the host calls it through the `transform` interface."""
        return self in _TRANSFORM_KINDS

    @property
    def is_process(self) -> bool:
        """Whether the host calls it through the `process` interface."""
        return self in _PROCESS_KINDS

    @property
    def is_keyed_process(self) -> bool:
        """A process or co-process function: keyed state and timers, `process-elements`."""
        return self is Kind.PROCESS or self is Kind.CO_PROCESS

    def described(self) -> str:
        """`a map function`, `an aggregate function`, for messages."""
        return f"{'an' if self.value[0] in 'aeiou' else 'a'} {self.value} function"


_TRANSFORM_KINDS = frozenset({Kind.MAP, Kind.FILTER, Kind.FLAT_MAP, Kind.KEY_SELECTOR, Kind.TIMESTAMP_ASSIGNER})
_PROCESS_KINDS = frozenset({Kind.PROCESS, Kind.CO_PROCESS, Kind.PROCESS_WINDOW})

#: What to decorate with, for error messages.
DECORATORS = (
    "@weir.map, @weir.filter, @weir.flat_map, @weir.key_selector, @weir.timestamp_assigner, "
    "@weir.aggregate, @weir.process, @weir.co_process or @weir.process_window"
)


#: The one row encoding the Python SDK declares (WIT `row-encoding.python-marshal`; the
#: component glue decodes it with `weir._marshal_codec`).
ENCODING = "python-marshal"


class WeirError(Exception):
    """Base of the errors that fail a whole call or a build (never a single row)."""


class UnknownFunctionError(WeirError, KeyError):
    """The host asked for a function name the plugin does not have."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class PluginDefinitionError(WeirError):
    """The plugin module is not a valid Weir plugin (no `weir.plugin(...)`, duplicate names...)."""


@dataclass(frozen=True)
class Function:
    """One decorated user function: the name the host calls it by, its kind and the callable
    (for an aggregate, the `AggregateFunction` instance; for a process or co-process
    function, the `KeyedProcessFunction`/`KeyedCoProcessFunction` instance, with the states
    it declares; for a process-window function, the function)."""

    name: str
    kind: Kind
    fn: Callable[..., Any]
    #: The `weir._state.StateDecl`s of a process function (empty for other kinds).
    states: Tuple[Any, ...] = ()
    #: A process-window function that takes a 4th argument, the `weir.WindowContext`.
    takes_context: bool = False


@dataclass(frozen=True)
class PluginMeta:
    """What `weir.plugin(...)` declares: the plugin's name and version."""

    name: str
    version: str


def function_name(f: Callable[..., Any], name: Optional[str]) -> str:
    """The name the function decorator is marking goes by (`name=`, else its own); refuses
    a function marked already."""
    if hasattr(f, SPEC_ATTR):
        raise PluginDefinitionError(
            f"{getattr(f, '__qualname__', f)!r} is already a weir {getattr(f, SPEC_ATTR).kind.value}"
            " function; decorate it once (write a second function for another kind)"
        )
    fname = name if name is not None else getattr(f, "__name__", None)
    if not fname:
        raise PluginDefinitionError(f"cannot name {f!r}: pass name=... to the decorator")
    return fname


def _decorator(kind: Kind) -> Callable[..., Any]:
    def decorate(fn: Optional[Callable[..., Any]] = None, *, name: Optional[str] = None) -> Any:
        def mark(f: Callable[..., Any]) -> Callable[..., Any]:
            if not callable(f):
                raise TypeError(f"@weir.{kind.name.lower()} expects a function, got {type(f).__name__}")
            setattr(f, SPEC_ATTR, Function(function_name(f, name), kind, f))
            return f

        # Both `@weir.map` and `@weir.map(name="other")`.
        return mark(fn) if fn is not None else mark

    decorate.__name__ = kind.name.lower()
    decorate.__doc__ = f"Mark a function as a Weir `{kind.value}` function (kept callable as is)."
    return decorate


map = _decorator(Kind.MAP)
filter = _decorator(Kind.FILTER)
flat_map = _decorator(Kind.FLAT_MAP)
key_selector = _decorator(Kind.KEY_SELECTOR)
timestamp_assigner = _decorator(Kind.TIMESTAMP_ASSIGNER)


def plugin(name: str, version: str) -> PluginMeta:
    """Declare the plugin's name and version; call it once at the top level of `app.py`.

    The declaration is stored in the calling module (as `__weir_plugin__`), so the module
    that holds the functions also holds their plugin's identity.
    """
    if not isinstance(name, str) or not name:
        raise PluginDefinitionError("weir.plugin(name=...) must be a non-empty string")
    if not isinstance(version, str) or not version:
        raise PluginDefinitionError("weir.plugin(version=...) must be a non-empty string, e.g. '0.1.0'")
    meta = PluginMeta(name, version)
    sys._getframe(1).f_globals[PLUGIN_ATTR] = meta
    return meta


def spec_of(fn: Any) -> Function:
    """The `Function` spec of a decorated callable, or a `TypeError` that says what to do."""
    spec = getattr(fn, SPEC_ATTR, None)
    if not isinstance(spec, Function):
        raise TypeError(
            f"{getattr(fn, '__qualname__', fn)!r} is not a weir function: decorate it with {DECORATORS}"
        )
    return spec


class Plugin:
    """The functions of one plugin module, by name, plus its name and version."""

    def __init__(self, meta: PluginMeta, functions: List[Function]):
        self.meta = meta
        self.functions: Dict[str, Function] = {}
        for f in functions:
            if f.name in self.functions:
                raise PluginDefinitionError(
                    f"two functions are named {f.name!r}; names must be unique in a plugin "
                    "(rename one or pass name=... to its decorator)"
                )
            self.functions[f.name] = f

    @classmethod
    def from_module(cls, module: ModuleType) -> "Plugin":
        """Collect every decorated function reachable from `module`'s globals, in definition order."""
        where = getattr(module, "__file__", None) or module.__name__
        meta = getattr(module, PLUGIN_ATTR, None)
        if not isinstance(meta, PluginMeta):
            raise PluginDefinitionError(
                f"{where}: no plugin declaration; add `weir.plugin(name=\"...\", version=\"0.1.0\")` "
                "at the top level of the module"
            )
        seen = set()
        functions = []
        for value in vars(module).values():
            spec = getattr(value, SPEC_ATTR, None)
            if isinstance(spec, Function) and id(spec) not in seen:
                seen.add(id(spec))
                functions.append(spec)
        if not functions:
            raise PluginDefinitionError(f"{where}: no functions; decorate at least one with {DECORATORS}")
        return cls(meta, functions)

    def function(self, name: str) -> Function:
        """The function the host calls `name`, or `UnknownFunctionError` (fails the whole call)."""
        try:
            return self.functions[name]
        except KeyError:
            raise UnknownFunctionError(self._unknown("function", name)) from None

    def transform(self, name: str) -> Function:
        """The transform function `name` (map, filter...), or `UnknownFunctionError`."""
        f = self.functions.get(name)
        if f is None or not f.kind.is_transform:
            raise UnknownFunctionError(self._unknown("transform function", name))
        return f

    def aggregate(self, name: str) -> Function:
        """The aggregate function `name`, or `UnknownFunctionError`."""
        f = self.functions.get(name)
        if f is None or f.kind is not Kind.AGGREGATE:
            raise UnknownFunctionError(self._unknown("aggregate function", name))
        return f

    def process(self, name: str) -> Function:
        """The function `name` of the `process` interface (a process, co-process or
        process-window function), or `UnknownFunctionError`."""
        f = self.functions.get(name)
        if f is None or not f.kind.is_process:
            raise UnknownFunctionError(self._unknown("process function", name))
        return f

    @property
    def has_aggregates(self) -> bool:
        """Whether the component must export the `aggregate` interface."""
        return any(f.kind is Kind.AGGREGATE for f in self.functions.values())

    @property
    def has_processes(self) -> bool:
        """Whether the component must export the `process` interface (and import state and
        timers): any process, co-process or process-window function."""
        return any(f.kind.is_process for f in self.functions.values())

    def _unknown(self, what: str, name: str) -> str:
        """`what` is the kind looked for ("transform function"); said only when `name` is
        there with another kind."""
        known = ", ".join(sorted(self.functions)) or "none"
        other = self.functions.get(name)
        if other is None:
            what, kind = "function", ""
        else:
            kind = f"; {name!r} is {other.kind.described()}"
        return (
            f"plugin {self.meta.name} {self.meta.version} has no {what} {name!r} (it has: {known}{kind}); "
            "check the function name in the job file"
        )

    def describe(self) -> Dict[str, Any]:
        """What the WIT `describe` returns, as plain data (the component glue converts it).
        A process or co-process function also lists its `states` (name, kind, value type,
        TTL); every function has its `signature` (`weir._signature`), None when it cannot be
        derived."""
        from ._signature import signature_of

        functions = []
        for f in self.functions.values():
            info: Dict[str, Any] = {"name": f.name, "kind": f.kind.value, "encoding": ENCODING}
            if f.kind.is_keyed_process:
                info["states"] = [s.describe() for s in f.states]
            info["signature"] = signature_of(f)
            functions.append(info)
        return {"name": self.meta.name, "version": self.meta.version, "sdk": SDK, "functions": functions}
