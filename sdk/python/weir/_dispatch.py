"""Apply one function to one flat batch: the code path of `transform.apply`.

The rows are in a *codec*'s encoding: `weir._marshal_codec` (python-marshal, what the
component declares) or `weir._codec` (JSON, the default here for callers that pass none).

The component glue (`weir._component`) and the local harness (`weir.testing`) both call
`apply` here, so a test exercises exactly what runs inside the component.

Each stage (decode, call, encode) first tries the whole batch through C-level loops
(one decode of the whole batch, `list.extend(map(...))`, one encode of all outputs); when one row fails, it records a
row error and resumes after that row, and the later stages skip the failed rows. A failed
row never stops the others and never calls the user function twice.
"""

from __future__ import annotations

from itertools import chain, compress
from typing import Any, Callable, List, NamedTuple, Optional, Sequence, Tuple

from . import _codec
from ._functions import Function, Kind, Plugin, WeirError

#: Marks a row that failed in an earlier stage.
_FAILED: Any = object()

RowErrors = List[Tuple[int, str]]


class BatchError(WeirError, ValueError):
    """The batch itself is malformed (offsets); fails the whole call."""


class Output(NamedTuple):
    """The result of `apply`: a flat output batch, the output count per input row, row errors."""

    data: bytes
    offsets: List[int]
    counts: List[int]
    #: (input row index, message), sorted by index.
    errors: RowErrors


def describe_exception(exc: BaseException) -> str:
    """`Type: text`, the message a row error carries."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _map_rows(fn: Callable[[Any], Any], items: List[Any], errors: RowErrors, what: str) -> List[Any]:
    """`[fn(x) for x in items]` where a raising row becomes `_FAILED` plus a row error.

    `items[i]` belongs to input row `i`. Items already `_FAILED` stay so without a call.
    """
    if errors:  # rare: some rows failed earlier; go row by row and skip them
        out = []
        append = out.append
        for i, item in enumerate(items):
            if item is _FAILED:
                append(_FAILED)
                continue
            try:
                append(fn(item))
            except Exception as exc:  # noqa: BLE001 - any user error fails its row only
                errors.append((i, what + describe_exception(exc)))
                append(_FAILED)
        return out

    # Hot path: the loop runs in C. On an exception `out` holds the rows before the failing
    # one (list.extend keeps what it appended), so resume right after it.
    out = []
    start = 0
    n = len(items)
    while start < n:
        try:
            out.extend(map(fn, items[start:] if start else items))
            break
        except Exception as exc:  # noqa: BLE001
            i = len(out)
            errors.append((i, what + describe_exception(exc)))
            out.append(_FAILED)
            start = i + 1
    return out


def _decode(codec: Any, data: bytes, offsets: Sequence[int], errors: RowErrors) -> List[Any]:
    try:
        values = codec.decode_batch(data, offsets)
        if len(values) == len(offsets) - 1:
            return values
    except Exception:  # noqa: BLE001 - find the guilty rows one by one
        pass
    return _map_rows(codec.decode_row, codec.split_rows(data, offsets), errors, codec.DECODE_FAILED)


def _as_rows(result: Any) -> List[Any]:
    """A flat_map result as a list of rows (rejecting the iterables that are surely mistakes)."""
    if isinstance(result, (str, bytes, bytearray, dict)):
        raise TypeError(
            f"a flat_map function must return or yield an iterable of rows, got {type(result).__name__}"
            " (wrap a single row in a list)"
        )
    return list(result)


def _check_timestamp(value: Any) -> Any:
    if type(value) is not int or not -(2**63) <= value < 2**63:
        raise TypeError(
            "a timestamp_assigner must return an int of milliseconds since the epoch (i64), "
            f"got {value!r}"
        )
    return value


def _encode_all(codec: Any, values: List[Any]) -> Optional[Tuple[bytes, List[int]]]:
    """All values as one output batch, or None when any fails (encode row by row to find it)."""
    try:
        return codec.encode_batch(values)
    except Exception:  # noqa: BLE001
        return None


def apply(function: Function, data: bytes, offsets: Sequence[int], codec: Any = _codec) -> Output:
    """Apply `function` to every row of the batch (`data`, `offsets`) in `codec`'s encoding
    (`weir._codec`, JSON, or `weir._marshal_codec`); see the module doc."""
    if not function.kind.is_transform:
        how = (
            "the process interface (weir.testing.ProcessHarness in tests)"
            if function.kind.is_process
            else "the aggregate interface (weir.testing.aggregate in tests)"
        )
        raise WeirError(f"{function.name!r} is {function.kind.described()}, not a transform; call it through {how}")
    n = len(offsets) - 1
    if n < 0 or offsets[0] != 0 or offsets[-1] != len(data):
        raise BatchError(
            f"malformed batch: {len(offsets)} offsets for {len(data)} bytes; offsets must start "
            "at 0 and end at the data length (a host bug)"
        )
    errors: RowErrors = []
    values = _decode(codec, data, offsets, errors)
    fn = function.fn
    kind = function.kind

    if kind is Kind.FILTER:
        keep = _map_rows(fn, values, errors, "")
        if errors:
            keep = [k is not _FAILED and bool(k) for k in keep]
        counts = list(map(int, map(bool, keep)))
        rows = codec.split_rows(data, offsets)
        out_data, out_offsets = codec.join_raw_rows(list(compress(rows, counts)))

    elif kind is Kind.FLAT_MAP:
        results = _map_rows(lambda v: _as_rows(fn(v)), values, errors, "")
        batch = _encode_all(codec, list(chain.from_iterable(results))) if not errors else None
        if batch is not None:
            counts = list(map(len, results))
            out_data, out_offsets = batch
        else:
            encode = codec.encode_row
            encoded = _map_rows(lambda outs: list(map(encode, outs)), results, errors, codec.ENCODE_FAILED)
            if errors:
                encoded = [[] if e is _FAILED else e for e in encoded]
            counts = list(map(len, encoded))
            out_data, out_offsets = codec.join_rows(list(chain.from_iterable(encoded)))

    else:  # map, key-selector, timestamp-assigner: one output per input
        if kind is Kind.TIMESTAMP_ASSIGNER:
            call = lambda v: _check_timestamp(fn(v))  # noqa: E731
        else:
            call = fn
        results = _map_rows(call, values, errors, "")
        batch = _encode_all(codec, results) if not errors else None
        if batch is not None:
            counts = [1] * n
            out_data, out_offsets = batch
        else:
            encoded = _map_rows(codec.encode_row, results, errors, codec.ENCODE_FAILED)
            if errors:
                counts = [0 if e is _FAILED else 1 for e in encoded]
                encoded = [e for e in encoded if e is not _FAILED]
            else:
                counts = [1] * n
            out_data, out_offsets = codec.join_rows(encoded)

    if errors:
        errors.sort(key=lambda e: e[0])
    return Output(out_data, out_offsets, counts, errors)


def apply_named(plugin: Plugin, name: str, data: bytes, offsets: Sequence[int], codec: Any = _codec) -> Output:
    """`transform.apply(name, batch)`: `UnknownFunctionError` when `plugin` has no `name`."""
    return apply(plugin.transform(name), data, offsets, codec)
