"""Keyed process functions: PyFlink's `KeyedProcessFunction` (and the broadcast side of its
`KeyedBroadcastProcessFunction`), `KeyedCoProcessFunction` and `ProcessWindowFunction`, and
the dispatch of the WIT `process` interface.

    @weir.process                                   # called "count_per_key" by the host
    class CountPerKey(weir.KeyedProcessFunction):
        count = weir.ValueState(int)

        def process_element(self, value, ctx):
            n = (self.count.value() or 0) + 1
            self.count.update(n)
            yield {"key": ctx.get_current_key(), "count": n}

`process_element(value, ctx)` handles one element of the current key, `on_timer(timestamp,
ctx)` a timer of it, `process_broadcast_element(value, ctx)` an element of the broadcast
stream. Each yields its output records (or returns an iterable of them, or None); a record
may be a `weir.Row(value, weir.RowKind...)` to give it a kind (`weir._output`). `ctx` gives
the key (`get_current_key()`), the element's event time (`timestamp()`), the timers and
clocks (`timer_service()`), in `on_timer` the clock that fired (`time_domain()`), and
`output(tag, value)` for side outputs. State is declared on the class (`weir._state`).

**Co-process functions** (`@weir.co_process` on a `weir.KeyedCoProcessFunction`) read two
connected keyed streams: `process_element1(value, ctx)` handles the first input's elements,
`process_element2(value, ctx)` the second's (the WIT `input` argument, 1 or 2, picks the
method), with the same state and timers, shared by both inputs.

**Process-window functions** (`@weir.process_window` on `def f(key, window, elements)`, or
`def f(key, window, elements, ctx)`) are called once per fired window of a key with all its
elements, in arrival order; `window` is a `weir.TimeWindow(start, end)`, `ctx` a
`WindowContext` (the elements' `timestamps()`, `output(tag, value)`). They have no state and
no timers.

The decorators instantiate a class once, with no arguments; fields of the instance are
scratch space, never state: the host batches elements as it likes and retries them one by
one after a failed call, so anything kept in fields would depend on batching.

**Failure.** An input (element, timer, window) whose method raises fails alone, into the
dead-letter output: its output and side rows are dropped and so are its state writes and
timer changes (they are buffered or logged per input and returned or handed to the host only
when it succeeded, `weir._state`). The Rust SDK keeps the writes an `Err` made before
failing; a Python exception is the closer match of a Rust panic, whose changes the host
rolls back. A problem with the call itself (an unknown function, batches that disagree) fails
the whole call, and the host retries the inputs one by one.
"""

from __future__ import annotations

import enum
import inspect
import marshal
from typing import Any, Callable, List, NamedTuple, Optional, Sequence, Tuple, Union

from . import _marshal_codec
from ._dispatch import BatchError, RowErrors, _decode, describe_exception
from ._functions import SPEC_ATTR, Function, Kind, PluginDefinitionError, WeirError, function_name
from ._output import OutputTag, RowKind, TimeWindow, output_rows, side_row
from ._state import BROADCAST, KEYED, SCOPE_ATTR, Scope, StateError, bind, declared_states, refuse_assignment

#: The event time WIT callers pass for "none".
NO_TIMESTAMP = -(2**63)


class TimeDomain(enum.Enum):
    """Which clock a timer follows (PyFlink's `TimeDomain`)."""

    EVENT_TIME = 0
    PROCESSING_TIME = 1


NO_BROADCAST_SIDE = (
    "this process function has no broadcast side (it does not define process_broadcast_element); connect a "
    "broadcast stream only to a function that does"
)


class _KeyedFunction:
    """What keyed process and co-process functions share: declared state (never assigned),
    timers, the broadcast side."""

    def __setattr__(self, name: str, value: Any) -> None:
        refuse_assignment(self, name)
        object.__setattr__(self, name, value)

    def on_timer(self, timestamp: int, ctx: "Context") -> Any:
        """A timer of the current key fired at `timestamp` (ms; `ctx.time_domain()` says which
        clock); yield output records. The default does nothing."""
        return None

    def process_broadcast_element(self, value: Any, ctx: "BroadcastContext") -> Any:
        """Handle one element of the broadcast stream: write broadcast state, yield records.
        The default refuses: the function has no broadcast side."""
        raise WeirError(NO_BROADCAST_SIDE)


class KeyedProcessFunction(_KeyedFunction):
    """Base class of a keyed process function; see the module doc."""

    def process_element(self, value: Any, ctx: "Context") -> Any:
        """Handle one element of the current key; yield (or return an iterable of) output records."""
        raise NotImplementedError


class KeyedCoProcessFunction(_KeyedFunction):
    """Base class of a keyed co-process function (PyFlink's `KeyedCoProcessFunction`): two
    connected keyed streams, one key's state and timers shared by both; see the module doc."""

    def process_element1(self, value: Any, ctx: "Context") -> Any:
        """Handle one element of the first input; yield output records."""
        raise NotImplementedError

    def process_element2(self, value: Any, ctx: "Context") -> Any:
        """Handle one element of the second input; yield output records."""
        raise NotImplementedError


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


def _output(scope: Scope, tag: Union[OutputTag, str], value: Any) -> None:
    if scope.side is None:
        raise StateError("ctx.output is only available while the function handles an input")
    scope.side_rows.append(side_row(tag, value))


class Context:
    """What `process_element` (`process_element1/2`) and `on_timer` see: the key, the time,
    timers, state and side outputs."""

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

    def output(self, tag: Union[OutputTag, str], value: Any) -> None:
        """Send `value` to the side output `tag` (a `weir.OutputTag` or its name), as Flink's
        `ctx.output(outputTag, value)`; dropped if the input fails."""
        _output(self._scope, tag, value)


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

    def output(self, tag: Union[OutputTag, str], value: Any) -> None:
        """Send `value` to the side output `tag`, as in `Context.output`."""
        _output(self._scope, tag, value)


class WindowContext:
    """The 4th argument of a process-window function that takes one (PyFlink's
    `ProcessWindowFunction.Context`): the window, the key, the elements' event times and
    side outputs."""

    __slots__ = ("_key", "_window", "_timestamps", "_side", "_open")

    def __init__(self, key: Any, window: TimeWindow, timestamps: List[Optional[int]]):
        self._key = key
        self._window = window
        self._timestamps = timestamps
        self._side: List[Tuple[str, bytes]] = []
        self._open = True

    def window(self) -> TimeWindow:
        return self._window

    def get_current_key(self) -> Any:
        return self._key

    def timestamps(self) -> List[Optional[int]]:
        """The event time (ms, or None) of each element, in the elements' order (a new list)."""
        return list(self._timestamps)

    def output(self, tag: Union[OutputTag, str], value: Any) -> None:
        """Send `value` to the side output `tag`, as in `Context.output`."""
        if not self._open:
            raise StateError("ctx.output is only available while the function handles its window")
        self._side.append(side_row(tag, value))


# --- the decorators -----------------------------------------------------------------------


def _mark(target: Any, name: Optional[str], kind: Kind) -> Any:
    from ._udaf import snake_case

    decorator, base = ("process", KeyedProcessFunction) if kind is Kind.PROCESS else ("co_process", KeyedCoProcessFunction)
    required = ("process_element",) if kind is Kind.PROCESS else ("process_element1", "process_element2")
    if isinstance(target, type):
        cls = target
        if SPEC_ATTR in vars(cls):
            raise PluginDefinitionError(f"{cls.__qualname__} is already a weir process function; decorate it once")
        instance = None
    elif inspect.isroutine(target):
        hint = " (a process-window function is a function: @weir.process_window)" if kind is Kind.PROCESS else ""
        raise TypeError(
            f"@weir.{decorator} decorates a class deriving weir.{base.__name__} (or an instance of one), not "
            f"{getattr(target, '__qualname__', type(target).__name__)!r}{hint}"
        )
    else:
        cls, instance = type(target), target
    if not issubclass(cls, base):
        other = "co_process" if issubclass(cls, KeyedCoProcessFunction) else "process"
        hint = f"; decorate it with @weir.{other}" if issubclass(cls, _KeyedFunction) else ""
        raise PluginDefinitionError(f"@weir.{decorator}: {cls.__qualname__} must derive weir.{base.__name__}{hint}")
    for method in required:
        if getattr(cls, method) is getattr(base, method):
            raise PluginDefinitionError(f"{cls.__qualname__} does not define {method}(self, value, ctx)")
    try:
        states = declared_states(cls)
    except WeirError as exc:
        raise PluginDefinitionError(str(exc)) from None
    if instance is None:
        try:
            instance = cls()
        except Exception as exc:  # noqa: BLE001 - report any constructor failure at import time
            raise PluginDefinitionError(
                f"@weir.{decorator} could not create {cls.__qualname__}() ({type(exc).__name__}: {exc}); give "
                f"__init__ defaults, or decorate an instance: weir.{decorator}(\"name\")({cls.__name__}(...))"
            ) from exc
    fname = name if name is not None else snake_case(cls.__name__)
    if not isinstance(fname, str) or not fname:
        raise PluginDefinitionError(f"cannot name process function {cls.__qualname__}: pass a non-empty name")
    if SCOPE_ATTR in vars(instance):
        raise PluginDefinitionError(f"{instance!r} is already a weir process function; decorate it once")
    bind(instance, Scope(fname, states), states)
    spec = Function(fname, kind, instance, tuple(states))
    setattr(target, SPEC_ATTR, spec)
    return target


def _class_decorator(kind: Kind, decorator: str) -> Callable[..., Any]:
    def decorate(target: Union[type, Any, str, None] = None, *, name: Optional[str] = None) -> Any:
        if isinstance(target, str):
            if name is not None:
                raise TypeError(f"weir.{decorator}: give the name once, either as the argument or as name=...")
            name, target = target, None
        if target is None:
            chosen = name
            return lambda t: _mark(t, chosen, kind)
        return _mark(target, name, kind)

    decorate.__name__ = decorator
    return decorate


process = _class_decorator(Kind.PROCESS, "process")
process.__doc__ = """Mark a `KeyedProcessFunction` class (or instance) as a Weir process function.

`@weir.process` names it after the class in snake_case (`CountPerKey` -> `count_per_key`);
`@weir.process("counts")` or `@weir.process(name="counts")` names it explicitly.
"""

co_process = _class_decorator(Kind.CO_PROCESS, "co_process")
co_process.__doc__ = """Mark a `KeyedCoProcessFunction` class (or instance) as a Weir co-process
function (kind `co-process`): named as `@weir.process` names its functions."""


def _takes_context(fn: Callable[..., Any]) -> bool:
    """Whether a process-window function takes a 4th positional argument (the context)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    return len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]) >= 4


def process_window(fn: Optional[Callable[..., Any]] = None, *, name: Optional[str] = None) -> Any:
    """Mark `def f(key, window, elements)` (or `(key, window, elements, ctx)`) as a Weir
    process-window function (kind `process-window`): called with all the elements of a key's
    window when it fires; yields its output records. Kept callable as is; `name=` names it."""

    def mark(f: Callable[..., Any]) -> Callable[..., Any]:
        if isinstance(f, type) or not callable(f):
            raise TypeError(
                f"@weir.process_window decorates a function f(key, window, elements), got {getattr(f, '__qualname__', f)!r}"
            )
        fname = function_name(f, name)
        setattr(f, SPEC_ATTR, Function(fname, Kind.PROCESS_WINDOW, f, (), _takes_context(f)))
        return f

    return mark(fn) if fn is not None else mark


# --- dispatch -----------------------------------------------------------------------------


class ProcessOutput(NamedTuple):
    """What a `process` call returns (WIT `process-output`), as plain data."""

    data: bytes
    offsets: List[int]
    counts: List[int]
    #: (input index, message), by index.
    errors: RowErrors
    #: The kind of every output row; empty when every row is an insert.
    kinds: List[RowKind]
    #: Side-output rows: (tag, input index, row bytes).
    side: List[Tuple[str, int, bytes]]
    #: Value-state writes: (key slot, state index, value bytes or None to clear).
    state_writes: List[Tuple[int, int, Optional[bytes]]]


class _Outputs:
    """The outputs, counts, errors, kinds and side rows of one call, built input by input."""

    def __init__(self, label: str):
        self.label = label
        self.bodies: List[bytes] = []
        self.total = 0
        self.counts: List[int] = []
        self.errors: RowErrors = []
        self.kinds: Optional[List[RowKind]] = None
        self.side: List[Tuple[str, int, bytes]] = []

    def add(self, index: int, rows: List[Any], kinds: Optional[List[RowKind]], side: List[Tuple[str, bytes]]) -> None:
        n = len(rows)
        if n:
            self.bodies.append(marshal.dumps(rows, 2)[5:])  # the list's items, without its header
            if kinds is not None or self.kinds is not None:
                if self.kinds is None:
                    self.kinds = [RowKind.INSERT] * self.total
                self.kinds.extend(kinds if kinds is not None else [RowKind.INSERT] * n)
            self.total += n
        if side:
            self.side.extend((tag, index, row) for tag, row in side)
        self.counts.append(n)

    def fail(self, index: int, message: str) -> None:
        self.errors.append((index, f"{self.label}: {message}"))
        self.counts.append(0)

    def output(self, state_writes: List[Tuple[int, int, Optional[bytes]]]) -> ProcessOutput:
        kinds = self.kinds if self.kinds is not None and any(k is not RowKind.INSERT for k in self.kinds) else []
        if not self.total:
            return ProcessOutput(b"", [0], self.counts, self.errors, kinds, self.side, state_writes)
        # One packed python-marshal list (see weir._marshal_codec): header, then every item.
        data = b"[" + self.total.to_bytes(4, "little") + b"".join(self.bodies)
        return ProcessOutput(data, _marshal_codec.PACKED, self.counts, self.errors, kinds, self.side, state_writes)


class _Call(_Outputs):
    """One call of a keyed (or broadcast) process function: each input in its scope."""

    def __init__(self, function: Function, host: Any, side: str, cells: List[Optional[bytes]]):
        super().__init__(f"process function `{function.name}`")
        self.function = function
        self.fn = function.fn
        self.scope: Scope = vars(function.fn)[SCOPE_ATTR]
        self.scope.begin_call(host, cells)
        self.side_name = side

    def run(self, index: int, method: Callable[[Any, Any], Any], first: Any, ctx: Any) -> None:
        """Handle input `index` with `method(first, ctx)` in a fresh scope; keep its output,
        side rows and writes only if it succeeds."""
        scope = self.scope
        scope.side = self.side_name
        try:
            rows, kinds = output_rows(method(first, ctx), method.__name__)
        except Exception as exc:  # noqa: BLE001 - any user error fails its input only
            scope.discard()
            self.fail(index, describe_exception(exc))
            return
        side = scope.side_rows
        if side:
            scope.side_rows = []
        try:
            scope.commit()
        except Exception as exc:  # noqa: BLE001
            raise WeirError(
                f"process function `{self.function.name}`: the host refused a state change of input {index} "
                f"({describe_exception(exc)}); the call is rolled back"
            ) from None
        self.add(index, rows, kinds, side)

    def finish(self) -> ProcessOutput:
        return self.output(self.scope.end_call())


def _check_batch(label: str, what: str, data: bytes, offsets: Sequence[int]) -> int:
    n = len(offsets) - 1
    if n < 0 or offsets[0] != 0 or offsets[-1] != len(data):
        raise BatchError(
            f"malformed {what} batch for {label}: {len(offsets)} offsets for "
            f"{len(data)} bytes; offsets must start at 0 and end at the data length (a host bug)"
        )
    return n


def _same_length(label: str, **lengths: int) -> int:
    values = list(lengths.values())
    if any(v != values[0] for v in values):
        listed = ", ".join(f"{n} {what}" for what, n in lengths.items())
        raise BatchError(f"malformed input of {label}: the inputs disagree in length: {listed}")
    return values[0]


def _label(function: Function) -> str:
    return f"process function `{function.name}`"


def _decode_all(function: Function, what: str, data: bytes, offsets: Sequence[int], errors: RowErrors) -> List[Any]:
    _check_batch(_label(function), what, data, offsets)
    return _decode(_marshal_codec, data, offsets, errors)


def _check_keyed(function: Function) -> None:
    if not function.kind.is_keyed_process:
        how = " (it is called through process-window)" if function.kind is Kind.PROCESS_WINDOW else ""
        raise WeirError(f"{function.name!r} is {function.kind.described()}, not a keyed process function{how}")


def _cells(function: Function, slots: Sequence[int], values: Sequence[Optional[bytes]]) -> List[Optional[bytes]]:
    """The key-state values as the list the handles write in place, or `BatchError` when a
    slot names no values."""
    width = len(function.states)
    keys = len(values) // width if width else 0
    if (width and len(values) % width) or (not width and values):
        raise BatchError(
            f"malformed key state for {_label(function)}: {len(values)} values for {width} declared states "
            "(values hold every declared state of every key slot; a host bug)"
        )
    if width and slots and not 0 <= min(slots) <= max(slots) < keys:
        raise BatchError(
            f"malformed key state for {_label(function)}: key slots up to {max(slots)} for {keys} slots of values "
            "(a host bug)"
        )
    return values if type(values) is list else list(values)


def _event_time(timestamp: int) -> Optional[int]:
    return None if timestamp == NO_TIMESTAMP else timestamp


def _element_method(function: Function, input: int) -> Callable[[Any, Any], Any]:
    fn = function.fn
    if function.kind is Kind.CO_PROCESS:
        if input == 1:
            return fn.process_element1
        if input == 2:
            return fn.process_element2
        raise BatchError(f"{_label(function)} is a co-process function: its inputs are 1 and 2, not {input}")
    if input != 1:
        raise WeirError(
            f"{_label(function)} has one input (a process function); input {input} is for co-process functions "
            "(weir.KeyedCoProcessFunction, @weir.co_process)"
        )
    return fn.process_element


def process_elements(
    function: Function,
    host: Any,
    input: int,
    data: bytes,
    offsets: Sequence[int],
    key_data: bytes,
    key_offsets: Sequence[int],
    timestamps: Sequence[int],
    slots: Sequence[int],
    values: Sequence[Optional[bytes]],
) -> ProcessOutput:
    """`process-elements`: element `i` of input `input` (1, or 2 for a co-process function's
    second) has key `i` of (`key_data`, `key_offsets`), event time `timestamps[i]` and key
    slot `slots[i]` of the key state `values`; rows and keys in python-marshal. `host` is the
    `ProcessHost` (list, map and broadcast state, timers)."""
    _check_keyed(function)
    method = _element_method(function, input)
    decode_errors: RowErrors = []
    elements = _decode_all(function, "elements", data, offsets, decode_errors)
    keys = _decode_all(function, "keys", key_data, key_offsets, decode_errors)
    n = _same_length(
        _label(function), elements=len(elements), keys=len(keys), timestamps=len(timestamps), slots=len(slots)
    )
    cells = _cells(function, slots, values)
    bad = dict(decode_errors)
    call = _Call(function, host, KEYED, cells)
    scope = call.scope
    width = scope.width
    ctx = Context(scope)
    select = host.select
    for i in range(n):
        if i in bad:
            call.fail(i, bad[i])
            continue
        select(i)
        scope.base = slots[i] * width
        ctx._key, ctx._timestamp = keys[i], _event_time(timestamps[i])
        call.run(i, method, elements[i], ctx)
    return call.finish()


def on_timers(
    function: Function,
    host: Any,
    key_data: bytes,
    key_offsets: Sequence[int],
    times: Sequence[int],
    domains: Sequence[TimeDomain],
    slots: Sequence[int],
    values: Sequence[Optional[bytes]],
) -> ProcessOutput:
    """`on-timers`: timer `i` is for key `i` of (`key_data`, `key_offsets`) at `times[i]` in
    `domains[i]`, with key slot `slots[i]` of the key state `values`."""
    _check_keyed(function)
    decode_errors: RowErrors = []
    keys = _decode_all(function, "keys", key_data, key_offsets, decode_errors)
    n = _same_length(_label(function), keys=len(keys), times=len(times), domains=len(domains), slots=len(slots))
    cells = _cells(function, slots, values)
    bad = dict(decode_errors)
    call = _Call(function, host, KEYED, cells)
    scope = call.scope
    width = scope.width
    ctx = Context(scope)
    on_timer = call.fn.on_timer
    for i in range(n):
        if i in bad:
            call.fail(i, bad[i])
            continue
        host.select(i)
        scope.base = slots[i] * width
        at = times[i]
        ctx._key, ctx._timestamp, ctx._domain = keys[i], at, domains[i]
        call.run(i, on_timer, at, ctx)
    return call.finish()


def process_broadcast(
    function: Function, host: Any, data: bytes, offsets: Sequence[int], timestamps: Sequence[int]
) -> ProcessOutput:
    """`process-broadcast`: elements of the broadcast stream; they have no key, so nothing is
    selected and no value state is reachable."""
    _check_keyed(function)
    decode_errors: RowErrors = []
    elements = _decode_all(function, "elements", data, offsets, decode_errors)
    n = _same_length(_label(function), elements=len(elements), timestamps=len(timestamps))
    bad = dict(decode_errors)
    call = _Call(function, host, BROADCAST, [])
    ctx = BroadcastContext(call.scope)
    process_broadcast_element = call.fn.process_broadcast_element
    for i in range(n):
        if i in bad:
            call.fail(i, bad[i])
            continue
        ctx._timestamp = _event_time(timestamps[i])
        call.run(i, process_broadcast_element, elements[i], ctx)
    return call.finish()


def fire_window(
    function: Function,
    key: bytes,
    start: int,
    end: int,
    data: bytes,
    offsets: Sequence[int],
    timestamps: Sequence[int],
) -> ProcessOutput:
    """`process-window` (named apart from the decorator `process_window`): the window
    `[start, end)` of key `key` (python-marshal) fired with
    these elements. One input, the window: counts has one entry, and a failure (of the
    function, or an element or the key that does not decode) is row error 0."""
    if function.kind is not Kind.PROCESS_WINDOW:
        raise WeirError(f"{function.name!r} is {function.kind.described()}, not a process-window function")
    label = f"process-window function `{function.name}`"
    _check_batch(label, "elements", data, offsets)
    _same_length(label, elements=len(offsets) - 1, timestamps=len(timestamps))
    out = _Outputs(label)
    decode_errors: RowErrors = []
    elements = _decode(_marshal_codec, data, offsets, decode_errors)
    if decode_errors:
        i, message = decode_errors[0]
        out.fail(0, f"element {i} of the window: {message}")
        return out.output([])
    try:
        key_value = _marshal_codec.decode_row(key)
    except Exception as exc:  # noqa: BLE001
        out.fail(0, f"{_marshal_codec.DECODE_FAILED.replace('row', 'key')}{describe_exception(exc)}")
        return out.output([])
    window = TimeWindow(start, end)
    fn = function.fn
    ctx = WindowContext(key_value, window, [_event_time(t) for t in timestamps])
    try:
        result = fn(key_value, window, elements, ctx) if function.takes_context else fn(key_value, window, elements)
        rows, kinds = output_rows(result, getattr(fn, "__name__", function.name))
    except Exception as exc:  # noqa: BLE001 - any user error fails the window only
        out.fail(0, describe_exception(exc))
        return out.output([])
    finally:
        ctx._open = False
    out.add(0, rows, kinds, ctx._side)
    return out.output([])
