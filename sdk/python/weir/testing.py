"""Run decorated functions locally through the component's own batch path.

`apply(fn, rows)` encodes `rows` (python-marshal) into one flat buffer plus offsets (as the host
does), calls the same dispatcher the component calls, and decodes the output back::

    import weir.testing
    from app import upper

    assert weir.testing.apply(upper, ["a", "b"]) == [["A"], ["B"]]

Each input row gives a list of its output rows (`[out]` for a map, `[]` or `[row]` for a
filter, any number for a flat_map), or a `RowError` when it failed.

Aggregate functions (UDAFs) go through the component's `aggregate` path the same way
(values as python-marshal rows, accumulators as the bytes the host would store)::

    from app import Avg

    assert weir.testing.aggregate(Avg, [1, 2, 6]) == 3.0
    assert weir.testing.aggregate_merged(Avg, [[1, 2], [], [9]]) == 4.0
    acc = weir.testing.add(Avg, weir.testing.create_accumulator(Avg), [1, 2, 9])
    assert weir.testing.result(Avg, weir.testing.retract(Avg, acc, [9])) == 1.5

A failing value raises `weir.AggregateError` with the message the host would get (it names
the value: `"aggregate `avg`: value 1: TypeError: ..."`).

Process functions (`@weir.process`, `@weir.co_process`) run in a `ProcessHarness`, with
in-memory state and timers (see `weir._harness`)::

    h = weir.testing.ProcessHarness(CountPerKey)
    h.process("a", {"user": "a"}, timestamp=1_000)
    h.advance_watermark(2_000)            # fires due event-time timers
    assert h.output == [{"key": "a", "count": 1}]
    assert h.value_state("a", "count") == 1
    assert h.side_output("late") == []    # side outputs by tag (a str or weir.OutputTag)
    assert h.output_rows == [weir.Row({"key": "a", "count": 1})]   # with their row kinds

    co = weir.testing.ProcessHarness(JoinOrders)     # a co-process function
    co.process1("o-1", {"order": "o-1"})             # process_element1
    co.process2("o-1", {"payment": 9.5})             # process_element2

Process-window functions (`@weir.process_window`) fire windows::

    assert weir.testing.process_window(top_items, "u1", (0, 60_000), [{"item": "a"}]) == [...]
    h = weir.testing.ProcessHarness(top_items)
    h.fire_window("u1", (0, 60_000), [{"item": "a"}], timestamps=[5])
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate
from types import ModuleType
from typing import Any, Callable, Dict, Iterable, List, Sequence, Tuple, Union

from . import _aggregate, _codec, _dispatch, _marshal_codec
from ._functions import Function, Kind, Plugin, spec_of
from ._harness import InputFailure, ProcessHarness, ProcessHarnessError, TimerLoopError

__all__ = [
    "RowError",
    "BatchResult",
    "apply",
    "run",
    "encode_batch",
    "describe",
    "aggregate",
    "aggregate_merged",
    "create_accumulator",
    "add",
    "add_grouped",
    "retract",
    "merge",
    "result",
    "accumulator",
    "InputFailure",
    "ProcessHarness",
    "ProcessHarnessError",
    "TimerLoopError",
    "process_window",
]


@dataclass(frozen=True)
class RowError:
    """One input row failed: its index in the batch and the message the host would log."""

    index: int
    message: str


@dataclass(frozen=True)
class BatchResult:
    """What one `transform.apply` call returned, decoded."""

    #: All output rows in order, decoded from JSON.
    rows: List[Any]
    #: Output rows per input row.
    counts: List[int]
    errors: List[RowError]

    def per_row(self) -> List[Union[List[Any], RowError]]:
        """The output rows grouped by input row; a failed row is its `RowError`."""
        failed: Dict[int, RowError] = {e.index: e for e in self.errors}
        grouped: List[Union[List[Any], RowError]] = []
        pos = 0
        for i, count in enumerate(self.counts):
            grouped.append(failed[i] if i in failed else self.rows[pos : pos + count])
            pos += count
        return grouped


def encode_batch(rows: Iterable[Any]) -> tuple:
    """Rows as the host sends them to a JSON plugin: (data, offsets)."""
    encoded = [_codec.encode_row(r) for r in rows]
    data = "".join(encoded).encode("ascii")
    return data, list(accumulate(map(len, encoded), initial=0))


def run(fn: Callable[..., Any], rows: Iterable[Any]) -> BatchResult:
    """Run decorated `fn` over `rows` as one batch and return the raw decoded result."""
    spec = spec_of(fn)
    data, offsets = _marshal_codec.join_rows([_marshal_codec.encode_row(r) for r in rows])
    out = _dispatch.apply(spec, data, offsets, _marshal_codec)
    decoded = _marshal_codec.unpack(out.data, out.offsets)
    return BatchResult(decoded, out.counts, [RowError(i, m) for i, m in out.errors])


def apply(fn: Callable[..., Any], rows: Iterable[Any]) -> List[Union[List[Any], RowError]]:
    """Run decorated `fn` over `rows` as one batch; per input row, its outputs or `RowError`."""
    return run(fn, rows).per_row()


def describe(module: ModuleType) -> Dict[str, Any]:
    """What the component's `describe` returns for plugin module `module` (e.g. your `app`)."""
    return Plugin.from_module(module).describe()


# --- aggregate functions (UDAFs) ----------------------------------------------------------


def _aggregate_spec(fn: Any) -> Function:
    spec = spec_of(fn)
    if spec.kind is not Kind.AGGREGATE:
        raise TypeError(f"{spec.name!r} is {spec.kind.described()}, not an aggregate: use weir.testing.apply")
    return spec


def _value_batch(values: Iterable[Any]) -> Tuple[bytes, List[int]]:
    """Values as the host sends them: python-marshal rows of plain types (a tuple arrives as
    a list, an `OrderedDict` as a dict: the host's rows are MessagePack underneath)."""
    return _marshal_codec.join_rows([_marshal_codec.encode_row(_marshal_codec._plain(v)) for v in values])


def create_accumulator(fn: Any) -> bytes:
    """A new accumulator of UDAF `fn` (the class or instance you decorated), as bytes."""
    return _aggregate.create_accumulator(_aggregate_spec(fn))


def add_grouped(fn: Any, accumulators: Sequence[bytes], values: Iterable[Tuple[int, Any]]) -> List[bytes]:
    """Each `(group, value)` folded into `accumulators[group]` in one call, as the host folds
    a batch that touches several keys or windows; returns every accumulator."""
    return _fold(_aggregate.add, fn, accumulators, values)


def add(fn: Any, accumulator: bytes, values: Iterable[Any]) -> bytes:
    """`values` folded into `accumulator` in one call; the new accumulator."""
    return _fold(_aggregate.add, fn, [accumulator], ((0, v) for v in values))[0]


def retract(fn: Any, accumulator: bytes, values: Iterable[Any]) -> bytes:
    """`values` taken back out of `accumulator` in one call (an error unless `fn` defines retract)."""
    return _fold(_aggregate.retract, fn, [accumulator], ((0, v) for v in values))[0]


def _fold(op: Callable[..., Any], fn: Any, accumulators: Sequence[bytes], values: Iterable[Tuple[int, Any]]) -> List[bytes]:
    spec = _aggregate_spec(fn)
    pairs = list(values)
    # Groups are WIT u32s: the dispatch names a group past the end, as the host would see it,
    # but a negative one is only possible here (and Python would count it from the end).
    bad = next((i for i, (g, _) in enumerate(pairs) if type(g) is not int or g < 0), None)
    if bad is not None:
        raise ValueError(f"value {bad} goes to accumulator {pairs[bad][0]!r}: groups are indexes from 0")
    acc_data, acc_offsets = _marshal_codec.join_rows(list(accumulators))
    data, offsets = _value_batch(v for _, v in pairs)
    out, out_offsets = op(spec, acc_data, acc_offsets, data, offsets, [g for g, _ in pairs])
    return [out[a:b] for a, b in zip(out_offsets, out_offsets[1:])]


def merge(fn: Any, a: bytes, b: bytes) -> bytes:
    """Two accumulators merged into one."""
    return _aggregate.merge(_aggregate_spec(fn), a, b)


def result(fn: Any, accumulator: bytes) -> Any:
    """The result of `accumulator`, decoded from the row the host would get."""
    return _marshal_codec.decode_row(_aggregate.get_result(_aggregate_spec(fn), accumulator))


def accumulator(fn: Any, accumulator: bytes) -> Any:
    """The accumulator bytes decoded, to look inside in a test."""
    return _aggregate.decode_accumulator(_aggregate_spec(fn), accumulator)


def aggregate(fn: Any, values: Iterable[Any]) -> Any:
    """The result of UDAF `fn` over `values`: create, add them in one call, get the result."""
    return result(fn, add(fn, create_accumulator(fn), values))


def aggregate_merged(fn: Any, partitions: Iterable[Iterable[Any]]) -> Any:
    """Each partition added to its own accumulator, the accumulators merged left to right (as
    session windows merge, or partial aggregates combine), and the result of the merge."""
    accs = [add(fn, create_accumulator(fn), values) for values in partitions]
    if not accs:
        return result(fn, create_accumulator(fn))
    merged = accs[0]
    for acc in accs[1:]:
        merged = merge(fn, merged, acc)
    return result(fn, merged)


def process_window(fn: Any, key: Any, window: Any, elements: Iterable[Any], timestamps: Any = None) -> List[Any]:
    """The records process-window function `fn` emits for the window `(start, end)` of `key`
    with `elements` (and their event times), through the component's dispatch; a failure
    raises `ProcessHarnessError`. `ProcessHarness(fn).fire_window(...)` also shows side
    outputs and row kinds."""
    h = ProcessHarness(fn)
    h.fire_window(key, window, elements, timestamps)
    return h.output
