"""The `signature` `describe` reports for each function (WIT `types.signature`), derived from
its annotations, so that SQL can type-check a call.

A value type is a scalar (`any`, `bool`, `int`, `float`, `string`, `bytes`, `timestamp`),
whether it may be null, and whether it is a list of that scalar (one level: WIT types
cannot recurse). From an annotation:

| annotation | value type |
|---|---|
| `int`, `float`, `str`, `bytes`, `bool` | `int`, `float`, `string`, `bytes`, `bool` |
| `weir.Timestamp` (a `NewType` of int: ms since the epoch) | `timestamp` |
| `T \\| None`, `Optional[T]` | `T`, nullable |
| `list[T]`, `List[T]` | `T`, is-list (a nested list or union inside is `any`) |
| missing, `Any`, `dict`, a class, anything else | `any` |

What each kind reports (`params` is a list of named fields, `result` one value type):

- map, key selector: the row parameter (the first positional one: the host calls the
  function with one row) and the return annotation;
- filter: the row parameter, and the same type as result: a filter's output row is its
  input row, kept or not (as the Rust SDK reports it; the `bool` it returns is not a row);
- flat map: the row parameter, and as result the element type of the return annotation
  (`Iterable[T]`, `Iterator[T]`, `Generator[T, ...]`, `list[T]`);
- timestamp assigner: the row parameter, and `timestamp` as result (the dispatch enforces
  an int of ms);
- aggregate: the value parameter of `add(acc, value)`, and `get_result`'s return annotation;
- process: the element parameter of `process_element(value, ctx)`, and as result the
  element type of what `process_element` yields (`Iterator[T]`...), or of `on_timer`'s when
  `process_element` yields nothing it names; `any` when they disagree;
- co-process: the element parameters of `process_element1` and `process_element2` (as named;
  `name1`/`name2` when both have the same name), and the result as for process;
- process window: `key` and `elements` as annotated (the `window` bounds and the 4th `ctx`
  are no values of the call, as in the Rust SDK), and the element type of the return
  annotation.

A function without annotations still gets a signature, of `any`s; None only when the
callable cannot be inspected at all.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from typing import Any, Callable, Dict, List, NewType, Optional

from ._functions import Function, Kind

#: Milliseconds since the epoch: annotate a parameter or result with it to report the WIT
#: scalar `timestamp` (it is an `int` at run time).
Timestamp = NewType("Timestamp", int)

ANY = "any"
_SCALARS: Dict[Any, str] = {
    bool: "bool",
    int: "int",
    float: "float",
    str: "string",
    bytes: "bytes",
    bytearray: "bytes",
    Timestamp: "timestamp",
}
_SCALAR_NAMES = {"bool": bool, "int": int, "float": float, "str": str, "bytes": bytes, "bytearray": bytearray}
_LISTS = (list, typing.List)
_ITERABLES = (
    collections.abc.Iterable,
    collections.abc.Iterator,
    collections.abc.Generator,
    collections.abc.Collection,
    collections.abc.Sequence,
    list,
    tuple,
)
_MISSING = inspect.Parameter.empty
_UNION_TYPES: tuple = (typing.Union,) + ((types.UnionType,) if hasattr(types, "UnionType") else ())


def value_type(scalar: str = ANY, nullable: bool = False, is_list: bool = False) -> Dict[str, Any]:
    """A WIT `value-type` as plain data."""
    return {"scalar": scalar, "nullable": nullable, "is_list": is_list}


def _strip(t: Any) -> Any:
    while typing.get_origin(t) is typing.Annotated:
        t = typing.get_args(t)[0]
    return t


def _split_optional(t: Any) -> "tuple[Any, bool]":
    """`(T, True)` for `T | None`; `(Any, nullable)` for a union of several types."""
    t = _strip(t)
    if t is None or t is type(None):
        return Any, True
    if typing.get_origin(t) in _UNION_TYPES:
        args = typing.get_args(t)
        rest = [a for a in args if a is not type(None)]
        nullable = len(rest) < len(args)
        return (_strip(rest[0]) if len(rest) == 1 else Any), nullable
    return t, False


def _scalar(t: Any) -> str:
    try:
        return _SCALARS.get(t, ANY)
    except TypeError:  # an unhashable annotation
        return ANY


def of_annotation(t: Any) -> Dict[str, Any]:
    """The value type of annotation `t` (see the module doc)."""
    if t is _MISSING:
        return value_type()
    inner, nullable = _split_optional(t)
    if inner is list or typing.get_origin(inner) in _LISTS or inner is typing.List:
        args = typing.get_args(inner)
        element = _strip(args[0]) if args else Any
        return value_type(_scalar(element), nullable, True)
    return value_type(_scalar(inner), nullable, False)


def element_of(t: Any) -> Dict[str, Any]:
    """The value type of one item of an iterable annotation (a flat map's or a process
    function's output), `any` for anything else."""
    t, _ = _split_optional(t)
    if t in _ITERABLES:
        return value_type()
    origin = typing.get_origin(t)
    if origin in _ITERABLES or origin is typing.List:
        args = typing.get_args(t)
        return of_annotation(args[0]) if args else value_type()
    return value_type()


def _hints(fn: Callable[..., Any]) -> Dict[str, Any]:
    """`fn`'s annotations, evaluated (string annotations too, best effort: one that does not
    evaluate counts as missing)."""
    target = getattr(fn, "__func__", fn)
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        call = getattr(type(fn), "__call__", None)
        target = getattr(call, "__func__", call) if call is not None else target
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:  # noqa: BLE001 - an annotation naming something not importable
        pass
    raw = getattr(target, "__annotations__", None) or {}
    namespace = getattr(target, "__globals__", {})
    hints: Dict[str, Any] = {}
    for name, a in raw.items():
        for _ in range(2):  # a quoted annotation under `from __future__ import annotations` is quoted twice
            if not isinstance(a, str):
                break
            try:
                a = eval(a, dict(namespace))  # noqa: S307 - the plugin's own annotation text
            except Exception:  # noqa: BLE001
                a = _SCALAR_NAMES.get(a, _MISSING)
        hints[name] = _MISSING if isinstance(a, str) else a
    return hints


def _positional(fn: Callable[..., Any]) -> List[inspect.Parameter]:
    params = inspect.signature(fn).parameters.values()
    return [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _field(param: inspect.Parameter, hints: Dict[str, Any], name: Optional[str] = None) -> Dict[str, Any]:
    return {"name": name or param.name, "type": of_annotation(hints.get(param.name, _MISSING))}


def _params(fn: Callable[..., Any], count: int) -> List[Dict[str, Any]]:
    """The first `count` positional parameters of `fn` as fields."""
    hints = _hints(fn)
    return [_field(p, hints) for p in _positional(fn)[:count]]


def _returns(fn: Callable[..., Any]) -> Any:
    return _hints(fn).get("return", _MISSING)


def _yields(*methods: Optional[Callable[..., Any]]) -> Dict[str, Any]:
    """The element type the methods yield: the first that names one (not `any`), unless
    another names a different one."""
    named = []
    for m in methods:
        if m is None:
            continue
        t = element_of(_returns(m))
        if t["scalar"] != ANY or t["is_list"]:
            named.append(t)
    if not named or any(t != named[0] for t in named):
        return value_type()
    return named[0]


def _overridden(instance: Any, method: str, base: type) -> Optional[Callable[..., Any]]:
    impl = getattr(type(instance), method, None)
    if impl is None or impl is getattr(base, method, None):
        return None
    return getattr(instance, method)


def _derive(f: Function) -> Dict[str, Any]:
    kind, fn = f.kind, f.fn
    if kind.is_transform:
        params = _params(fn, 1)
        if kind is Kind.FLAT_MAP:
            result = element_of(_returns(fn))
        elif kind is Kind.FILTER:
            result = params[0]["type"] if params else value_type()
        elif kind is Kind.TIMESTAMP_ASSIGNER:
            result = value_type("timestamp")
        else:
            result = of_annotation(_returns(fn))
        return {"params": params, "result": result}
    if kind is Kind.AGGREGATE:
        return {"params": _params(fn.add, 2)[1:], "result": of_annotation(_returns(fn.get_result))}
    if kind is Kind.PROCESS:
        from ._process import KeyedProcessFunction

        timer = _overridden(fn, "on_timer", KeyedProcessFunction)
        return {"params": _params(fn.process_element, 1), "result": _yields(fn.process_element, timer)}
    if kind is Kind.CO_PROCESS:
        from ._process import KeyedCoProcessFunction

        params = []
        for n, method in (("1", fn.process_element1), ("2", fn.process_element2)):
            found = _params(method, 1)
            params.append(found[0] if found else {"name": f"value{n}", "type": value_type()})
        if params[0]["name"] == params[1]["name"]:
            params = [{"name": p["name"] + n, "type": p["type"]} for p, n in zip(params, "12")]
        timer = _overridden(fn, "on_timer", KeyedCoProcessFunction)
        return {"params": params, "result": _yields(fn.process_element1, fn.process_element2, timer)}
    # process window: key, window, elements (, ctx): the window is no value
    params = _params(fn, 3)
    return {"params": [p for i, p in enumerate(params) if i != 1], "result": element_of(_returns(fn))}


def signature_of(f: Function) -> Optional[Dict[str, Any]]:
    """The WIT `signature` of `f` as plain data (see the module doc), or None when its
    callable cannot be inspected."""
    try:
        return _derive(f)
    except Exception:  # noqa: BLE001 - never fail a build over annotations
        return None
