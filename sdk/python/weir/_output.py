"""What process functions emit besides plain rows: rows with a kind (`weir.Row`,
`weir.RowKind`) and rows sent to a side output (`weir.OutputTag`, `ctx.output(tag, value)`),
plus the window a process-window function sees (`weir.TimeWindow`).

**Row kinds** (Flink's `RowKind`, for updating results): a process, co-process or
process-window function yields `weir.Row(value, weir.RowKind.DELETE)` to emit `value` as a
row of that kind; a plain value is an `INSERT`. The component sends the kinds only when a
call emitted a row of another kind than `INSERT` (WIT `process-output.kinds`, empty: every
row is an insert)::

    yield weir.Row(old, weir.RowKind.UPDATE_BEFORE)
    yield weir.Row(new, weir.RowKind.UPDATE_AFTER)

**Side outputs** (Flink's `ctx.output(outputTag, value)`): `ctx.output(tag, value)` in
`process_element`, `process_element1/2`, `on_timer`, `process_broadcast_element` or a
process-window function's `ctx` sends `value` to the side output `tag`, a
`weir.OutputTag("late")` or its name as a str. Side rows go out with the input they came from
(WIT `side-row.input`), and a failed input's side rows are dropped with its output.
"""

from __future__ import annotations

import enum
import marshal
from typing import Any, List, NamedTuple, Optional, Tuple, Union

from . import _marshal_codec


class RowKind(enum.Enum):
    """What an output row does to an updating result (PyFlink's `RowKind`, the WIT `row-kind`)."""

    INSERT = 0
    #: The previous version of an updated row, withdrawn (comes before its `UPDATE_AFTER`).
    UPDATE_BEFORE = 1
    UPDATE_AFTER = 2
    DELETE = 3

    def short_string(self) -> str:
        """`+I`, `-U`, `+U`, `-D`, as Flink prints changelogs."""
        return ("+I", "-U", "+U", "-D")[self.value]


class Row:
    """An output row with a kind: `yield weir.Row(value, weir.RowKind.DELETE)` (see the
    module doc). `value` is the row (any plain data); `kind` defaults to `INSERT`."""

    __slots__ = ("value", "kind")

    def __init__(self, value: Any, kind: RowKind = RowKind.INSERT):
        if not isinstance(kind, RowKind):
            raise TypeError(f"a row's kind is a weir.RowKind (INSERT, UPDATE_BEFORE, UPDATE_AFTER, DELETE), got {kind!r}")
        self.value = value
        self.kind = kind

    def get_row_kind(self) -> RowKind:
        """PyFlink's name for `kind`."""
        return self.kind

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Row):
            return NotImplemented
        return self.kind is other.kind and self.value == other.value

    def __hash__(self) -> int:
        return hash((self.kind, repr(self.value)))

    def __repr__(self) -> str:
        return f"weir.Row({self.value!r}, weir.RowKind.{self.kind.name})"


class OutputTag:
    """The name of a side output (PyFlink's `OutputTag`): `weir.OutputTag("late")`. A second
    argument (PyFlink's type info) is accepted and only kept, for code ported from PyFlink."""

    __slots__ = ("tag_id", "type_info")

    def __init__(self, tag_id: str, type_info: Any = None):
        if not isinstance(tag_id, str) or not tag_id:
            raise ValueError(f"an output tag's name is a non-empty str, got {tag_id!r}")
        self.tag_id = tag_id
        self.type_info = type_info

    @property
    def name(self) -> str:
        return self.tag_id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OutputTag) and other.tag_id == self.tag_id

    def __hash__(self) -> int:
        return hash(self.tag_id)

    def __repr__(self) -> str:
        return f"weir.OutputTag({self.tag_id!r})"


def tag_name(tag: Union[OutputTag, str]) -> str:
    """The name of a side output given as a `weir.OutputTag` or a str, or `TypeError`."""
    if type(tag) is OutputTag:
        return tag.tag_id
    if type(tag) is str and tag:
        return tag
    raise TypeError(f"a side output is named by a weir.OutputTag or a non-empty str, got {tag!r}")


class TimeWindow(NamedTuple):
    """A window's bounds, `[start, end)` in ms (PyFlink's `TimeWindow`)."""

    start: int
    end: int

    def max_timestamp(self) -> int:
        """The last ms inside the window (`end - 1`), as Flink's `TimeWindow.maxTimestamp()`."""
        return self.end - 1


# --- rows the host can convert -----------------------------------------------------------

_ROW_SCALARS = frozenset({type(None), bool, float, str, bytes})
_INT_MIN, _INT_END = -(2**63), 2**64


def exact_row(value: Any) -> bool:
    """Whether `value` holds only the exact types the host converts, with ints in 64 bits."""
    t = type(value)
    if t is dict:
        for k, v in value.items():
            tv = type(v)
            # The common record: str keys, scalar values.
            if type(k) is str and (tv in _ROW_SCALARS or (tv is int and _INT_MIN <= v < _INT_END)):
                continue
            if not (exact_row(k) and exact_row(v)):
                return False
        return True
    if t in _ROW_SCALARS:
        return True
    if t is int:
        return _INT_MIN <= value < _INT_END
    if t is list or t is tuple:
        for v in value:
            if not exact_row(v):
                return False
        return True
    return False


def plain_row(value: Any) -> Any:
    """`value` as a row the host converts (subclasses to plain types), or `TypeError`."""
    if exact_row(value):
        return value
    if type(value) is Row:
        raise TypeError("a weir.Row (a row with a kind) cannot be nested in a row or sent to a side output")
    row = _marshal_codec._plain(value)  # TypeError for other types
    if not exact_row(row):
        raise TypeError("the row holds an int beyond 64 bits")
    return row


def output_rows(result: Any, method: str) -> Tuple[List[Any], Optional[List[RowKind]]]:
    """A method's outputs as rows the host can convert and their kinds (None when every row
    is a plain insert), or raise (fails the input)."""
    if result is None:
        return [], None
    if isinstance(result, (str, bytes, bytearray, dict, Row)):
        raise TypeError(
            f"{method} must yield its output records (or return an iterable of them, or None), got "
            f"{type(result).__name__}: yield a single record, or wrap it in a list"
        )
    rows = list(result)
    kinds: Optional[List[RowKind]] = None
    for i, row in enumerate(rows):
        if exact_row(row):
            continue
        if type(row) is Row:
            if kinds is None:
                kinds = [RowKind.INSERT] * len(rows)
            kinds[i] = row.kind
            row = row.value
            if exact_row(row):
                rows[i] = row
                continue
        row = _marshal_codec._plain(row)  # subclasses to plain types; TypeError for others
        if not exact_row(row):
            raise TypeError(f"output record {i} holds an int beyond 64 bits")
        rows[i] = row
    return rows, kinds


def side_row(tag: Union[OutputTag, str], value: Any) -> Tuple[str, bytes]:
    """`(tag name, row bytes)` of `ctx.output(tag, value)`, or raise (fails the input)."""
    name = tag_name(tag)
    return name, marshal.dumps(plain_row(value), 2)
