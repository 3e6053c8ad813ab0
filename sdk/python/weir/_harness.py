"""`ProcessHarness`: a keyed process function with in-memory state and timers, driven like
Flink's `KeyedOneInputStreamOperatorTestHarness` (and the Rust SDK's `ProcessHarness`); a
co-process function like `KeyedTwoInputStreamOperatorTestHarness` (`process1`/`process2`);
a process-window function by firing windows (`fire_window`).

The harness calls the same dispatcher the component calls (`weir._process`), with a
`MemoryHost` in place of the WIT imports, and plays the host's part around it: it encodes
keys and elements as the host sends them (python-marshal), reads the call's keys' value
state into `key-state` and applies the returned `state-writes`, fires due timers when the
test moves a clock, keeps the output records (with their row kinds) and side outputs, and
treats a failed call as the host does (the call's state changes are rolled back and its
inputs retried one by one)::

    from weir.testing import ProcessHarness
    from app import CountPerKey

    h = ProcessHarness(CountPerKey)
    h.process("a", {"user": "a"})
    h.process("a", {"user": "a"}, timestamp=1_000)
    assert h.output == [{"key": "a", "count": 1}, {"key": "a", "count": 2}]
    assert h.value_state("a", "count") == 2
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from . import _marshal_codec, _process
from ._functions import Function, Kind, Plugin, WeirError, spec_of
from ._memory import MemoryHost
from ._output import OutputTag, Row, RowKind, TimeWindow, tag_name
from ._process import NO_TIMESTAMP, ProcessOutput, TimeDomain

#: Rounds of timers a single clock move may fire before the harness gives up: a function
#: whose `on_timer` keeps registering due timers would otherwise never return.
MAX_TIMER_ROUNDS = 10_000


@dataclass(frozen=True)
class InputFailure:
    """One input (element, timer or broadcast element) that failed."""

    #: What the input was, e.g. `element 0` or `event-time timer at 60000`.
    input: str
    #: The error, as the dead-letter output would carry it.
    message: str

    def __str__(self) -> str:
        return f"{self.input} failed: {self.message}"


class ProcessHarnessError(AssertionError):
    """Inputs of a step failed; every other input of the step went through (its output and
    state changes are kept). `failures` lists them."""

    def __init__(self, failures: List[InputFailure]):
        super().__init__("; ".join(map(str, failures)))
        self.failures = failures


class TimerLoopError(ProcessHarnessError):
    """Timers kept registering timers that were due at once."""

    def __init__(self) -> None:
        AssertionError.__init__(
            self, f"timers still due after {MAX_TIMER_ROUNDS} rounds: does on_timer register a timer at or before the clock?"
        )
        self.failures = []


def _encode(value: Any) -> bytes:
    """A key or element as the host sends it: plain types (a tuple arrives as a list)."""
    return _marshal_codec.encode_row(_marshal_codec._plain(value))


def _join(rows: List[bytes]) -> Tuple[bytes, List[int]]:
    return _marshal_codec.join_rows(rows)


class ProcessHarness:
    """Runs one process, co-process or process-window function with in-memory state (see the
    module doc).

    `target` is the decorated class (or instance, or process-window function), or a plugin
    module with the function's `name`. Steps raise `ProcessHarnessError` when inputs fail,
    after the step is done.
    """

    def __init__(self, target: Any, name: Optional[str] = None):
        if isinstance(target, ModuleType):
            if name is None:
                raise TypeError("ProcessHarness(module, name): give the process function's name")
            spec = Plugin.from_module(target).process(name)
        else:
            spec = spec_of(target)
        if not spec.kind.is_process:
            raise TypeError(f"{spec.name!r} is {spec.kind.described()}, not a process function")
        self.function: Function = spec
        self.host = MemoryHost(spec.name, spec.states)
        self._output: List[Any] = []
        self._kinds: List[RowKind] = []
        self._side: Dict[str, List[Any]] = {}

    def _keyed(self, what: str) -> None:
        if self.function.kind is Kind.PROCESS_WINDOW:
            raise TypeError(
                f"`{self.function.name}` is a process-window function: it has no {what}; fire windows with "
                "fire_window(key, (start, end), elements)"
            )

    # --- inputs -------------------------------------------------------------------------

    def process(self, key: Any, value: Any, timestamp: Optional[int] = None) -> None:
        """One element with key `key` and event time `timestamp` (ms, or None), as one call."""
        if self.function.kind is Kind.CO_PROCESS:
            raise TypeError(
                f"`{self.function.name}` is a co-process function: send elements to its inputs with "
                "process1(key, value) and process2(key, value)"
            )
        self.process_batch([(key, value, timestamp)])

    def process1(self, key: Any, value: Any, timestamp: Optional[int] = None) -> None:
        """One element of a co-process function's first input (`process_element1`), as one call."""
        self.process_batch([(key, value, timestamp)], input=1)

    def process2(self, key: Any, value: Any, timestamp: Optional[int] = None) -> None:
        """One element of a co-process function's second input (`process_element2`), as one call."""
        self.process_batch([(key, value, timestamp)], input=2)

    def process_batch(self, elements: Iterable[Tuple[Any, Any, Optional[int]]], input: int = 1) -> None:
        """`(key, value, timestamp)` elements as one call, as the host batches elements of many
        keys; `input=2` sends them to a co-process function's second input."""
        self._keyed("keyed elements")
        items = list(elements)
        keys = [_encode(k) for k, _, _ in items]
        rows = [_encode(v) for _, v, _ in items]
        stamps = [NO_TIMESTAMP if t is None else t for _, _, t in items]

        def call(which: List[int]) -> ProcessOutput:
            call_keys = [keys[i] for i in which]
            self.host.begin_keyed(call_keys)
            slots, values, distinct = self.host.key_state(call_keys)
            data, offsets = _join([rows[i] for i in which])
            key_data, key_offsets = _join(call_keys)
            ts = [stamps[i] for i in which]
            out = _process.process_elements(
                self.function, self.host, input, data, offsets, key_data, key_offsets, ts, slots, values
            )
            self.host.apply_writes(distinct, out.state_writes)
            return out

        label = "element" if self.function.kind is Kind.PROCESS else f"input {input} element"
        self._raise(self._run(len(items), call, lambda i: f"{label} {i}"))

    def broadcast(self, value: Any, timestamp: Optional[int] = None) -> None:
        """One element of the broadcast stream, as one call."""
        self._keyed("broadcast side")
        row = _encode(value)

        def call(which: List[int]) -> ProcessOutput:
            self.host.begin_broadcast()
            data, offsets = _join([row for _ in which])
            ts = [NO_TIMESTAMP if timestamp is None else timestamp for _ in which]
            return _process.process_broadcast(self.function, self.host, data, offsets, ts)

        self._raise(self._run(1, call, lambda i: f"broadcast element {i}"))

    def fire_window(
        self,
        key: Any,
        window: Union[TimeWindow, Tuple[int, int]],
        elements: Iterable[Any],
        timestamps: Optional[Iterable[Optional[int]]] = None,
    ) -> None:
        """Fire the window `(start, end)` of `key` with `elements` (and their event times,
        default None each) through a process-window function, as one call."""
        if self.function.kind is not Kind.PROCESS_WINDOW:
            raise TypeError(f"`{self.function.name}` is {self.function.kind.described()}: fire_window is for process-window functions")
        start, end = window
        items = list(elements)
        stamps = [None] * len(items) if timestamps is None else list(timestamps)
        if len(stamps) != len(items):
            raise ValueError(f"{len(items)} elements but {len(stamps)} timestamps")
        key_bytes = _encode(key)
        data, offsets = _join([_encode(v) for v in items])
        ts = [NO_TIMESTAMP if t is None else t for t in stamps]

        def call(which: List[int]) -> ProcessOutput:
            return _process.fire_window(self.function, key_bytes, start, end, data, offsets, ts)

        self._raise(self._run(1, call, lambda i: f"window [{start}, {end}) of key {key!r}"))

    def advance_watermark(self, watermark: int) -> None:
        """Move the watermark to `watermark` (a lower one is ignored: watermarks never go back)
        and fire every event-time timer at or before it, by time then key, including timers
        that firing timers register at or before it."""
        self._keyed("timers")
        if self.host.watermark is None or watermark > self.host.watermark:
            self.host.watermark = watermark
        self._fire(True, self.host.watermark)

    def advance_processing_time(self, now: int) -> None:
        """Move processing time to `now` (ms; never back) and fire every processing-time timer
        at or before it. Processing time is also the clock of state TTL (it starts at 0)."""
        self._keyed("timers")
        self.host.processing_time = max(self.host.processing_time, now)
        self._fire(False, self.host.processing_time)

    # --- what happened ------------------------------------------------------------------

    @property
    def watermark(self) -> Optional[int]:
        return self.host.watermark

    @property
    def processing_time(self) -> int:
        return self.host.processing_time

    @property
    def output(self) -> List[Any]:
        """Every record emitted so far, in order (their values, whatever their kinds)."""
        return list(self._output)

    @property
    def output_rows(self) -> List[Row]:
        """Every record emitted so far with its kind: `weir.Row(value, kind)` each."""
        return [Row(v, k) for v, k in zip(self._output, self._kinds)]

    def take_output(self) -> List[Any]:
        """Like `output`, and forgets them: the next call returns only newer ones."""
        out, self._output, self._kinds = self._output, [], []
        return out

    def take_output_rows(self) -> List[Row]:
        """Like `output_rows`, and forgets them."""
        out = self.output_rows
        self._output, self._kinds = [], []
        return out

    def side_output(self, tag: Union[OutputTag, str]) -> List[Any]:
        """Every record sent to side output `tag` (a `weir.OutputTag` or its name) so far."""
        return list(self._side.get(tag_name(tag), []))

    def take_side_output(self, tag: Union[OutputTag, str]) -> List[Any]:
        """Like `side_output`, and forgets them."""
        return self._side.pop(tag_name(tag), [])

    @property
    def side_outputs(self) -> Dict[str, List[Any]]:
        """Every side output so far: tag name -> records, tags in order of first use."""
        return {tag: list(rows) for tag, rows in self._side.items()}

    def _decl(self, name: str, *kinds: str) -> Any:
        decl = self.host.declared.get(name)
        if decl is None or decl.kind not in kinds:
            declared = ", ".join(f"{d.name} ({d.kind})" for d in self.host.declared.values()) or "none"
            raise KeyError(f"process function `{self.function.name}` has no {kinds[0]} state `{name}` (declared: {declared})")
        return decl

    def value_state(self, key: Any, name: str) -> Any:
        """Value state `name` of `key`, or None."""
        self._decl(name, "value")
        data = self.host.inspect(_encode(key), name, "value")
        return None if data is None else _marshal_codec.decode_row(data)

    def list_state(self, key: Any, name: str) -> List[Any]:
        """List state `name` of `key`, in append order."""
        self._decl(name, "list")
        return [_marshal_codec.decode_row(b) for b in self.host.inspect(_encode(key), name, "list")]

    def map_state(self, key: Any, name: str) -> Dict[Any, Any]:
        """Map state `name` of `key` (a dict ordered by the keys' bytes; list keys come back as tuples)."""
        self._decl(name, "map")
        return _entries(self.host.inspect(_encode(key), name, "map"))

    def broadcast_state(self, name: str) -> Dict[Any, Any]:
        """Broadcast state `name`, ordered by the keys' bytes."""
        self._decl(name, "broadcast-map")
        return _entries(sorted(self.host.broadcast.get(name, {}).items()))

    def timers(self, key: Any) -> List[Tuple[TimeDomain, int]]:
        """The pending timers of `key`: event-time ones first, each by time."""
        k = _encode(key)
        return [
            (domain, at)
            for event_time, domain in ((True, TimeDomain.EVENT_TIME), (False, TimeDomain.PROCESSING_TIME))
            for at, tk in sorted(self.host.timers[event_time])
            if tk == k
        ]

    def timer_count(self, domain: Optional[TimeDomain] = None) -> int:
        """How many timers are pending, over all keys (of `domain`, or of both clocks)."""
        if domain is None:
            return len(self.host.timers[True]) + len(self.host.timers[False])
        return len(self.host.timers[domain is TimeDomain.EVENT_TIME])

    # --- the host's part ----------------------------------------------------------------

    def _fire(self, event_time: bool, up_to: int) -> None:
        failures: List[InputFailure] = []
        domain = TimeDomain.EVENT_TIME if event_time else TimeDomain.PROCESSING_TIME
        clock = "event-time" if event_time else "processing-time"
        for _ in range(MAX_TIMER_ROUNDS):
            due = self.host.pop_due(event_time, up_to)
            if not due:
                self._raise(failures)
                return

            def call(which: List[int], due: List[Tuple[int, bytes]] = due) -> ProcessOutput:
                keys = [due[i][1] for i in which]
                self.host.begin_keyed(keys)
                slots, values, distinct = self.host.key_state(keys)
                key_data, key_offsets = _join(keys)
                times = [due[i][0] for i in which]
                out = _process.on_timers(
                    self.function, self.host, key_data, key_offsets, times, [domain] * len(which), slots, values
                )
                self.host.apply_writes(distinct, out.state_writes)
                return out

            failures += self._run(len(due), call, lambda i, due=due: f"{clock} timer at {due[i][0]}")
        raise TimerLoopError()

    def _run(self, n: int, call: Callable[[List[int]], ProcessOutput], describe: Callable[[int], str]) -> List[InputFailure]:
        """One call on every input, then, if the call failed as a whole, one call per input
        (as the host retries), keeping the output of the inputs that went through."""
        failures: List[InputFailure] = []
        everything = list(range(n))
        if not everything:
            return failures
        tries = [everything]
        while tries:
            which = tries.pop(0)
            before = self.host.snapshot()
            try:
                out = call(which)
            except WeirError as exc:
                self.host.restore(before)
                if len(which) == 1:
                    failures.append(InputFailure(describe(which[0]), str(exc)))
                else:
                    tries = [[i] for i in which]
                continue
            finally:
                self.host.end_call()
            rows = _marshal_codec.unpack(out.data, out.offsets)
            if out.kinds and len(out.kinds) != len(rows):
                raise AssertionError(f"the dispatch returned {len(out.kinds)} row kinds for {len(rows)} rows (an SDK bug)")
            self._output += rows
            self._kinds += out.kinds or [RowKind.INSERT] * len(rows)
            for tag, _, row in out.side:
                self._side.setdefault(tag, []).append(_marshal_codec.decode_row(row))
            failures += [InputFailure(describe(which[i]), message) for i, message in out.errors]
        return failures

    @staticmethod
    def _raise(failures: List[InputFailure]) -> None:
        if failures:
            raise ProcessHarnessError(failures)


def _entries(entries: List[Tuple[bytes, bytes]]) -> Dict[Any, Any]:
    out: Dict[Any, Any] = {}
    for k, v in entries:
        key = _marshal_codec.decode_row(k)
        out[tuple(key) if isinstance(key, list) else key] = _marshal_codec.decode_row(v)
    return out
