"""Keyed process functions: PyFlink's `KeyedProcessFunction` (and the broadcast side of its
`KeyedBroadcastProcessFunction`) as a class marked `@weir.process`, and the dispatch of the
WIT `process` interface.

    @weir.process                                   # called "count_per_key" by the host
    class CountPerKey(weir.KeyedProcessFunction):
        count = weir.ValueState(int)

        def process_element(self, value, ctx):
            n = (self.count.value() or 0) + 1
            self.count.update(n)
            yield {"key": ctx.get_current_key(), "count": n}

`process_element(value, ctx)` handles one element of the current key, `on_timer(timestamp,
ctx)` a timer of it, `process_broadcast_element(value, ctx)` an element of the broadcast
stream. Each yields its output records (or returns an iterable of them, or None). `ctx`
gives the key (`get_current_key()`), the element's event time (`timestamp()`), the timers
and clocks (`timer_service()`), and in `on_timer` the clock that fired (`time_domain()`).
State is declared on the class (`weir._state`).

The decorator instantiates the class once, with no arguments; fields of the instance are
scratch space, never state: the host batches elements as it likes and retries them one by
one after a failed call, so anything kept in fields would depend on batching.

**Failure.** An input (element or timer) whose method raises fails alone, into the
dead-letter output: its output is dropped and so are its state writes and timer changes
(they are buffered per input and reach the host only when it succeeded, `weir._state`). The
Rust SDK keeps the writes an `Err` made before failing; a Python exception is the closer
match of a Rust panic, whose changes the host rolls back. A problem with the call itself
(an unknown function, batches that disagree) fails the whole call, and the host retries
the inputs one by one.
"""

from __future__ import annotations

import enum
import inspect
import marshal
from typing import Any, Callable, List, Optional, Sequence, Union

from . import _marshal_codec
from ._dispatch import BatchError, Output, RowErrors, _decode, describe_exception
from ._functions import SPEC_ATTR, Function, Kind, PluginDefinitionError, WeirError
from ._state import BROADCAST, KEYED, SCOPE_ATTR, Scope, StateError, bind, declared_states, refuse_assignment

#: The event time WIT callers pass for "none".
NO_TIMESTAMP = -(2**63)

_FAILED: Any = object()


class TimeDomain(enum.Enum):
    """Which clock a timer follows (PyFlink's `TimeDomain`)."""

    EVENT_TIME = 0
    PROCESSING_TIME = 1


NO_BROADCAST_SIDE = (
    "this process function has no broadcast side (it does not define process_broadcast_element); connect a "
    "broadcast stream only to a function that does"
)


class KeyedProcessFunction:
    """Base class of a keyed process function; see the module doc."""

    def __setattr__(self, name: str, value: Any) -> None:
        refuse_assignment(self, name)
        object.__setattr__(self, name, value)

    def process_element(self, value: Any, ctx: "Context") -> Any:
        """Handle one element of the current key; yield (or return an iterable of) output records."""
        raise NotImplementedError

    def on_timer(self, timestamp: int, ctx: "Context") -> Any:
        """A timer of the current key fired at `timestamp` (ms; `ctx.time_domain()` says which
        clock); yield output records. The default does nothing."""
        return None

    def process_broadcast_element(self, value: Any, ctx: "BroadcastContext") -> Any:
        """Handle one element of the broadcast stream: write broadcast state, yield records.
        The default refuses: the function has no broadcast side."""
        raise WeirError(NO_BROADCAST_SIDE)


def _check_time(at: Any) -> int:
    if type(at) is not int or not NO_TIMESTAMP <= at < 2**63:
        raise TypeError(f"a timer's time is an int of milliseconds since the epoch (i64), got {at!r}")
    return at


class TimerService:
    """Timers of the current key, and the clocks (PyFlink's `TimerService`).

    A timer fires once per key and time, however often it was registered, and calls
    `on_timer` with that key's context: event-time timers when the watermark reaches their
    time, processing-time timers when the wall clock does. Timers are state: they survive a
    restart.
    """

    __slots__ = ("_scope",)

    def __init__(self, scope: Scope):
        self._scope = scope

    def current_watermark(self) -> Optional[int]:
        """The operator's watermark (ms), or None before the first one."""
        return self._scope.host.current_watermark()

    def current_processing_time(self) -> int:
        """The wall clock (epoch ms), as processing-time timers see it."""
        return self._scope.host.current_processing_time()

    def _change(self, register: bool, event_time: bool, at: Any) -> None:
        scope = self._scope
        if scope.side is not KEYED:
            raise StateError("timers belong to a key: use them while handling an element or a timer")
        scope.timers.append((register, event_time, _check_time(at)))

    def register_event_time_timer(self, timestamp: int) -> None:
        self._change(True, True, timestamp)

    def register_processing_time_timer(self, timestamp: int) -> None:
        self._change(True, False, timestamp)

    def delete_event_time_timer(self, timestamp: int) -> None:
        """Deleting a timer that does not exist is a no-op."""
        self._change(False, True, timestamp)

    def delete_processing_time_timer(self, timestamp: int) -> None:
        self._change(False, False, timestamp)


class Context:
    """What `process_element` and `on_timer` see: the key, the time, timers and state."""

    __slots__ = ("_scope", "_key", "_timestamp", "_domain", "_timers")

    def __init__(self, scope: Scope):
        self._scope = scope
        self._key: Any = None
        self._timestamp: Optional[int] = None
        self._domain: Optional[TimeDomain] = None
        self._timers = TimerService(scope)

    def get_current_key(self) -> Any:
        """The key of the element or timer, as the job keyed by it (a string field gives a str)."""
        return self._key

    def timestamp(self) -> Optional[int]:
        """The element's event time (ms), or None when it has none; in `on_timer`, the timer's time."""
        return self._timestamp

    def time_domain(self) -> Optional[TimeDomain]:
        """In `on_timer`: which clock the timer followed; None while handling an element."""
        return self._domain

    def timer_service(self) -> TimerService:
        return self._timers

    def state(self, name: str) -> Any:
        """The handle of declared state `name` (what `self.<name>` gives), for code that takes
        state names; `weir.StateError` for a name the function does not declare."""
        return self._scope.handle(name)


class BroadcastContext:
    """What `process_broadcast_element` sees: no key, so no keyed state and no timers;
    broadcast state is writable."""

    __slots__ = ("_scope", "_timestamp")

    def __init__(self, scope: Scope):
        self._scope = scope
        self._timestamp: Optional[int] = None

    def timestamp(self) -> Optional[int]:
        return self._timestamp

    def current_watermark(self) -> Optional[int]:
        return self._scope.host.current_watermark()

    def current_processing_time(self) -> int:
        return self._scope.host.current_processing_time()

    def state(self, name: str) -> Any:
        return self._scope.handle(name)


# --- the decorator ------------------------------------------------------------------------


def _mark(target: Any, name: Optional[str]) -> Any:
    from ._udaf import snake_case

    if isinstance(target, type):
        cls = target
        if SPEC_ATTR in vars(cls):
            raise PluginDefinitionError(f"{cls.__qualname__} is already a weir process function; decorate it once")
        instance = None
    elif inspect.isroutine(target):
        raise TypeError(
            "@weir.process decorates a class deriving weir.KeyedProcessFunction (or an instance of one), not "
            f"{getattr(target, '__qualname__', type(target).__name__)!r}"
        )
    else:
        cls, instance = type(target), target
    if not issubclass(cls, KeyedProcessFunction):
        raise PluginDefinitionError(f"@weir.process: {cls.__qualname__} must derive weir.KeyedProcessFunction")
    if cls.process_element is KeyedProcessFunction.process_element:
        raise PluginDefinitionError(f"{cls.__qualname__} does not define process_element(self, value, ctx)")
    try:
        states = declared_states(cls)
    except WeirError as exc:
        raise PluginDefinitionError(str(exc)) from None
    if instance is None:
        try:
            instance = cls()
        except Exception as exc:  # noqa: BLE001 - report any constructor failure at import time
            raise PluginDefinitionError(
                f"@weir.process could not create {cls.__qualname__}() ({type(exc).__name__}: {exc}); give __init__ "
                f"defaults, or decorate an instance: weir.process(\"name\")({cls.__name__}(...))"
            ) from exc
    fname = name if name is not None else snake_case(cls.__name__)
    if not isinstance(fname, str) or not fname:
        raise PluginDefinitionError(f"cannot name process function {cls.__qualname__}: pass a non-empty name")
    if SCOPE_ATTR in vars(instance):
        raise PluginDefinitionError(f"{instance!r} is already a weir process function; decorate it once")
    bind(instance, Scope(fname, states), states)
    spec = Function(fname, Kind.PROCESS, instance, tuple(states))
    setattr(target, SPEC_ATTR, spec)
    return target


def process(target: Union[type, Any, str, None] = None, *, name: Optional[str] = None) -> Any:
    """Mark a `KeyedProcessFunction` class (or instance) as a Weir process function.

    `@weir.process` names it after the class in snake_case (`CountPerKey` -> `count_per_key`);
    `@weir.process("counts")` or `@weir.process(name="counts")` names it explicitly.
    """
    if isinstance(target, str):
        if name is not None:
            raise TypeError("weir.process: give the name once, either as the argument or as name=...")
        name, target = target, None
    if target is None:
        chosen = name
        return lambda t: _mark(t, chosen)
    return _mark(target, name)


# --- dispatch -----------------------------------------------------------------------------

_ROW_SCALARS = frozenset({type(None), bool, float, str, bytes})
_INT_MIN, _INT_END = -(2**63), 2**64


def _exact_row(value: Any) -> bool:
    """Whether `value` holds only the exact types the host converts, with ints in 64 bits."""
    t = type(value)
    if t is dict:
        for k, v in value.items():
            tv = type(v)
            # The common record: str keys, scalar values.
            if type(k) is str and (tv in _ROW_SCALARS or (tv is int and _INT_MIN <= v < _INT_END)):
                continue
            if not (_exact_row(k) and _exact_row(v)):
                return False
        return True
    if t in _ROW_SCALARS:
        return True
    if t is int:
        return _INT_MIN <= value < _INT_END
    if t is list or t is tuple:
        for v in value:
            if not _exact_row(v):
                return False
        return True
    return False


def _output_rows(result: Any, method: str) -> List[Any]:
    """A method's outputs as a list of rows the host can convert, or raise (fails the input)."""
    if result is None:
        return []
    if isinstance(result, (str, bytes, bytearray, dict)):
        raise TypeError(
            f"{method} must yield its output records (or return an iterable of them, or None), got "
            f"{type(result).__name__}: yield a single record, or wrap it in a list"
        )
    rows = list(result)
    for i, row in enumerate(rows):
        if not _exact_row(row):
            row = _marshal_codec._plain(row)  # subclasses to plain types; TypeError for others
            if not _exact_row(row):
                raise TypeError(f"output record {i} holds an int beyond 64 bits")
            rows[i] = row
    return rows


class _Call:
    """The outputs, counts and errors of one call, built input by input."""

    def __init__(self, function: Function, host: Any, side: str):
        self.function = function
        self.fn = function.fn
        self.scope: Scope = vars(function.fn)[SCOPE_ATTR]
        self.host = host
        self.side = side
        self.bodies: List[bytes] = []
        self.total = 0
        self.counts: List[int] = []
        self.errors: RowErrors = []

    def run(self, index: int, method: Callable[[Any, Any], Any], first: Any, ctx: Any) -> None:
        """Handle input `index` with `method(first, ctx)` in a fresh scope; keep its output
        and writes only if it succeeds."""
        scope = self.scope
        scope.host = self.host
        scope.side = self.side
        try:
            rows = _output_rows(method(first, ctx), method.__name__)
            body = marshal.dumps(rows, 2)[5:] if rows else b""  # the list's items, without its header
        except Exception as exc:  # noqa: BLE001 - any user error fails its input only
            scope.discard()
            self.fail(index, describe_exception(exc))
            return
        try:
            scope.commit()
        except Exception as exc:  # noqa: BLE001
            raise WeirError(
                f"process function `{self.function.name}`: the host refused a state change of input {index} "
                f"({describe_exception(exc)}); the call is rolled back"
            ) from None
        self.bodies.append(body)
        self.total += len(rows)
        self.counts.append(len(rows))

    def fail(self, index: int, message: str) -> None:
        self.errors.append((index, f"process function `{self.function.name}`: {message}"))
        self.counts.append(0)

    def output(self) -> Output:
        if not self.total:
            return Output(b"", [0], self.counts, self.errors)
        # One packed python-marshal list (see weir._marshal_codec): header, then every item.
        data = b"[" + self.total.to_bytes(4, "little") + b"".join(self.bodies)
        return Output(data, _marshal_codec.PACKED, self.counts, self.errors)


def _check_batch(function: Function, what: str, data: bytes, offsets: Sequence[int]) -> int:
    n = len(offsets) - 1
    if n < 0 or offsets[0] != 0 or offsets[-1] != len(data):
        raise BatchError(
            f"malformed {what} batch for process function `{function.name}`: {len(offsets)} offsets for "
            f"{len(data)} bytes; offsets must start at 0 and end at the data length (a host bug)"
        )
    return n


def _same_length(function: Function, **lengths: int) -> int:
    values = list(lengths.values())
    if any(v != values[0] for v in values):
        listed = ", ".join(f"{n} {what}" for what, n in lengths.items())
        raise BatchError(f"malformed input of process function `{function.name}`: the inputs disagree in length: {listed}")
    return values[0]


def _decode_all(function: Function, what: str, data: bytes, offsets: Sequence[int], errors: RowErrors) -> List[Any]:
    _check_batch(function, what, data, offsets)
    return _decode(_marshal_codec, data, offsets, errors)


def _check_kind(function: Function) -> None:
    if function.kind is not Kind.PROCESS:
        raise WeirError(f"{function.name!r} is {function.kind.described()}, not a process function")


def _event_time(timestamp: int) -> Optional[int]:
    return None if timestamp == NO_TIMESTAMP else timestamp


def process_elements(
    function: Function,
    host: Any,
    data: bytes,
    offsets: Sequence[int],
    key_data: bytes,
    key_offsets: Sequence[int],
    timestamps: Sequence[int],
) -> Output:
    """`process-elements`: element `i` has key `i` of (`key_data`, `key_offsets`) and event time
    `timestamps[i]`; rows and keys in python-marshal. `host` is the `ProcessHost`."""
    _check_kind(function)
    decode_errors: RowErrors = []
    values = _decode_all(function, "elements", data, offsets, decode_errors)
    keys = _decode_all(function, "keys", key_data, key_offsets, decode_errors)
    n = _same_length(function, elements=len(values), keys=len(keys), timestamps=len(timestamps))
    bad = dict(decode_errors)
    call = _Call(function, host, KEYED)
    ctx = Context(call.scope)
    process_element = call.fn.process_element
    for i in range(n):
        if i in bad:
            call.fail(i, bad[i])
            continue
        host.select(i)
        ctx._key, ctx._timestamp = keys[i], _event_time(timestamps[i])
        call.run(i, process_element, values[i], ctx)
    return call.output()


def on_timers(
    function: Function,
    host: Any,
    key_data: bytes,
    key_offsets: Sequence[int],
    times: Sequence[int],
    domains: Sequence[TimeDomain],
) -> Output:
    """`on-timers`: timer `i` is for key `i` of (`key_data`, `key_offsets`) at `times[i]` in `domains[i]`."""
    _check_kind(function)
    decode_errors: RowErrors = []
    keys = _decode_all(function, "keys", key_data, key_offsets, decode_errors)
    n = _same_length(function, keys=len(keys), times=len(times), domains=len(domains))
    bad = dict(decode_errors)
    call = _Call(function, host, KEYED)
    ctx = Context(call.scope)
    on_timer = call.fn.on_timer
    for i in range(n):
        if i in bad:
            call.fail(i, bad[i])
            continue
        host.select(i)
        at = times[i]
        ctx._key, ctx._timestamp, ctx._domain = keys[i], at, domains[i]
        call.run(i, on_timer, at, ctx)
    return call.output()


def process_broadcast(
    function: Function, host: Any, data: bytes, offsets: Sequence[int], timestamps: Sequence[int]
) -> Output:
    """`process-broadcast`: elements of the broadcast stream; they have no key, so nothing is selected."""
    _check_kind(function)
    decode_errors: RowErrors = []
    values = _decode_all(function, "elements", data, offsets, decode_errors)
    n = _same_length(function, elements=len(values), timestamps=len(timestamps))
    bad = dict(decode_errors)
    call = _Call(function, host, BROADCAST)
    ctx = BroadcastContext(call.scope)
    process_broadcast_element = call.fn.process_broadcast_element
    for i in range(n):
        if i in bad:
            call.fail(i, bad[i])
            continue
        ctx._timestamp = _event_time(timestamps[i])
        call.run(i, process_broadcast_element, values[i], ctx)
    return call.output()
