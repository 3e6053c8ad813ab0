"""User-defined aggregate functions (UDAFs): the `AggregateFunction` base class and the
`@weir.aggregate` decorator.

A UDAF is a class, like PyFlink's `AggregateFunction`::

    @weir.aggregate                      # called "avg" by the host (the class name in snake_case)
    class Avg(weir.AggregateFunction):
        def create_accumulator(self):
            return [0.0, 0]              # [sum, count]

        def add(self, acc, value):
            acc[0] += value
            acc[1] += 1
            return acc

        def merge(self, acc, other):
            return [acc[0] + other[0], acc[1] + other[1]]

        def get_result(self, acc):
            return acc[0] / acc[1] if acc[1] else None

**Every method returns the accumulator** (the convention of PyFlink's DataStream
`AggregateFunction.add`/`merge`): change it in place and `return acc`, or return a new one
(`return acc + 1` for a count kept in an int). Returning `None` from `add`, `retract` or
`merge` is an error that names the value, because it is almost always a forgotten `return`;
`create_accumulator` may return `None` (a "nothing yet" accumulator, e.g. for a max).
Arguments are `(accumulator, value)`, accumulator first, as in PyFlink's Table API
`accumulate(acc, *args)` (PyFlink's DataStream `add(value, accumulator)` has them the other
way round).

The accumulator is plain data that `marshal` can write: None, bool, int, float, complex,
str, bytes, tuple, list, dict, set and frozenset, nested as you like, exact types only (no
`Counter`, `defaultdict` or class instances). The host stores it as bytes per key and
window, in checkpoints, across plugin upgrades; `weir._aggregate` explains why not pickle.

The decorator does not wrap the class: it instantiates it once (no arguments) for the
plugin and returns the class itself, so tests can use `Avg()` directly. To register a
parametrised instance, decorate the instance: `p99 = weir.aggregate("p99")(Percentile(0.99))`.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Optional, Union

from ._functions import SPEC_ATTR, Function, Kind, PluginDefinitionError

#: The methods a UDAF must define (`retract` is optional).
REQUIRED = ("create_accumulator", "add", "merge", "get_result")


class AggregateFunction:
    """Base class of a UDAF; override `create_accumulator`, `add`, `merge`, `get_result`, and
    `retract` when values can be taken back out. See the module doc for the conventions."""

    def create_accumulator(self) -> Any:
        """A new, empty accumulator (plain data; see the module doc)."""
        raise NotImplementedError

    def add(self, accumulator: Any, value: Any) -> Any:
        """Fold one value in; return the accumulator (the same object changed, or a new one)."""
        raise NotImplementedError

    def merge(self, accumulator: Any, other: Any) -> Any:
        """Fold another accumulator in (session windows merging, partial aggregates); return it."""
        raise NotImplementedError

    def get_result(self, accumulator: Any) -> Any:
        """The result row for the values folded in so far."""
        raise NotImplementedError

    def retract(self, accumulator: Any, value: Any) -> Any:
        """Take one value back out; return the accumulator. Not overriding it means the
        function does not support retraction (the host gets an error per value)."""
        raise NotImplementedError


def supports_retract(instance: Any) -> bool:
    """Whether the UDAF `instance` defines its own `retract`."""
    retract = getattr(type(instance), "retract", None)
    return callable(retract) and retract is not AggregateFunction.retract


def snake_case(name: str) -> str:
    """`WeightedAvg` -> `weighted_avg`, `HTTPCount` -> `http_count`, `P95` -> `p95`."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _check_methods(cls: type) -> None:
    missing = []
    for method in REQUIRED:
        impl = getattr(cls, method, None)
        if not callable(impl) or impl is getattr(AggregateFunction, method):
            missing.append(method)
    if missing:
        raise PluginDefinitionError(
            f"aggregate {cls.__qualname__} does not define {', '.join(missing)}; a UDAF defines "
            "create_accumulator(), add(acc, value), merge(acc, other) and get_result(acc) "
            "(subclass weir.AggregateFunction)"
        )


def _mark(target: Any, name: Optional[str]) -> Any:
    if isinstance(target, type):
        cls = target
        if SPEC_ATTR in vars(cls):
            raise PluginDefinitionError(f"{cls.__qualname__} is already a weir aggregate; decorate it once")
        _check_methods(cls)
        try:
            instance = cls()
        except Exception as exc:  # noqa: BLE001 - report any constructor failure at import time
            raise PluginDefinitionError(
                f"@weir.aggregate could not create {cls.__qualname__}() ({type(exc).__name__}: {exc}); "
                "the decorator instantiates the class with no arguments: give __init__ defaults, "
                f"or decorate an instance: weir.aggregate(\"name\")({cls.__name__}(...))"
            ) from exc
    elif inspect.isroutine(target):
        raise TypeError(
            f"@weir.aggregate decorates a class (or an instance of one) with create_accumulator, add, "
            f"merge and get_result, not {getattr(target, '__qualname__', type(target).__name__)!r}"
        )
    else:
        cls, instance = type(target), target
        if SPEC_ATTR in getattr(target, "__dict__", {}):
            raise PluginDefinitionError(f"{target!r} is already a weir aggregate; decorate it once")
        _check_methods(cls)
    fname = name if name is not None else snake_case(cls.__name__)
    if not isinstance(fname, str) or not fname:
        raise PluginDefinitionError(f"cannot name aggregate {cls.__qualname__}: pass a non-empty name")
    spec = Function(fname, Kind.AGGREGATE, instance)
    try:
        setattr(target, SPEC_ATTR, spec)
    except AttributeError as exc:  # an instance with __slots__
        raise PluginDefinitionError(
            f"cannot mark {target!r} as a weir aggregate ({exc}); decorate its class instead"
        ) from exc
    return target


def aggregate(target: Union[type, Any, str, None] = None, *, name: Optional[str] = None) -> Any:
    """Mark a class (or an instance) as a Weir UDAF; see the module doc.

    `@weir.aggregate` names it after the class in snake_case (`WeightedAvg` -> `weighted_avg`);
    `@weir.aggregate("avg")` or `@weir.aggregate(name="avg")` names it explicitly.
    """
    if isinstance(target, str):
        if name is not None:
            raise TypeError("weir.aggregate: give the name once, either as the argument or as name=...")
        name, target = target, None
    if target is None:
        chosen = name

        def decorate(t: Any) -> Any:
            return _mark(t, chosen)

        return decorate
    return _mark(target, name)
