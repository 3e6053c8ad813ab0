"""JSON rows in flat batches: the encoding every Python plugin declares.

Speed is the point of this module: a Python component spends most of its time here, so
the hot paths run whole batches through C code (one `json.loads` and one C-encoder call
per batch) and do per-row Python work only when a row has failed.

Invariants:
- Output rows are ASCII (`ensure_ascii`), so a row's `str` length is its byte length and
  offsets come from `len` without encoding rows one by one.
- `encode_row` rejects NaN and infinities (not JSON; the host could not convert them back).
"""

from __future__ import annotations

import json
from itertools import accumulate
from typing import Any, Callable, List, Optional, Sequence, Tuple

_loads = json.loads


def _make_encoders() -> Tuple[Callable[[Any], str], Optional[Callable[[List[Any]], List[str]]]]:
    """`(encode_row, encode_rows)`: compact, ASCII, NaN-rejecting JSON encoders.

    `json.dumps(..., separators=...)` builds a new `JSONEncoder` per call and
    `JSONEncoder.encode` a new C encoder per call; reusing one C encoder halves the cost.
    `encode_rows` is None without the (private, long-stable) C encoder.
    """
    reference = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    slow = reference.encode
    try:
        from json.encoder import c_make_encoder, encode_basestring_ascii

        if c_make_encoder is None:
            return slow, None
        c_encoder = c_make_encoder(
            None,  # markers: no circular-reference check (a cycle ends in RecursionError, per row)
            reference.default,  # raises "Object of type X is not JSON serializable"
            encode_basestring_ascii,
            None,  # indent
            ":",
            ",",
            False,  # sort_keys
            False,  # skipkeys
            False,  # allow_nan
        )
        join = "".join

        def encode_row(value: Any) -> str:
            return join(c_encoder(value, 0))

        # One encoder call for a whole batch is ~25% cheaper (CPython 3.14 on Wasm: 2.4 vs
        # 3.2 us/record) than one call per row. Rows are told apart by a marker string
        # between them: `[r0,"M",r1,"M",r2]` split on `,"M",` gives r0, r1, r2. The split is
        # exact when it yields n parts: `"M"` is always a whole JSON string (so the pattern
        # cannot start inside a row's string and overlap ours), and any other occurrence of
        # the pattern, inside a row, adds a part (the caller then encodes row by row).
        marker = "\x00\x01weir-row\x02"
        separator = "," + encode_basestring_ascii(marker) + ","

        def encode_rows(values: List[Any]) -> List[str]:
            n = len(values)
            if n == 0:
                return []
            items = [marker] * (2 * n - 1)
            items[::2] = values
            parts = join(c_encoder(items, 0))[1:-1].split(separator)
            if len(parts) != n:
                raise ValueError("a row contains the row separator")
            return parts

        sample = {"a": [1, 2.5, "\u00e9", None, True], "b": {"c": -3}}
        if encode_row(sample) != slow(sample) or encode_rows([sample, 1]) != [slow(sample), "1"]:
            return slow, None  # a CPython whose private C encoder differs
        return encode_row, encode_rows
    except Exception:  # noqa: BLE001 - any doubt about the private API: use the public one
        return slow, None


#: Encode one value as a compact ASCII JSON `str`.
encode_row: Callable[[Any], str]
_encode_rows: Optional[Callable[[List[Any]], List[str]]]
encode_row, _encode_rows = _make_encoders()


def encode_rows(values: List[Any]) -> List[str]:
    """Encode every value (`[encode_row(v) for v in values]`), or raise on any failure.

    The caller falls back to `encode_row` per row to find the guilty rows.
    """
    if _encode_rows is None:
        return list(map(encode_row, values))
    return _encode_rows(values)


def decode_row(row: bytes) -> Any:
    """Decode one JSON row (UTF-8 bytes)."""
    return _loads(row)


def split_rows(data: bytes, offsets: Sequence[int]) -> List[bytes]:
    """The rows of a flat batch (`data[offsets[i]:offsets[i + 1]]`), as `bytes`."""
    return [data[a:b] for a, b in zip(offsets, offsets[1:])]


def decode_all(rows: List[bytes]) -> List[Any]:
    """Decode every row with one `json.loads` of a JSON array, or raise `ValueError`.

    The caller falls back to row-by-row decoding on error. The length check catches most
    malformed rows that would still parse as an array; the host writes each row as exactly
    one JSON value, and a row-by-row fallback names any row that is not.
    """
    values = _loads(b"[" + b",".join(rows) + b"]")
    if len(values) != len(rows):
        raise ValueError("rows are not one JSON value each")
    return values


def join_rows(rows: List[str]) -> Tuple[bytes, List[int]]:
    """A flat batch from encoded ASCII rows: (data, offsets)."""
    return "".join(rows).encode("ascii"), list(accumulate(map(len, rows), initial=0))


def join_raw_rows(rows: List[bytes]) -> Tuple[bytes, List[int]]:
    """A flat batch from rows that are already bytes (a filter's kept input rows)."""
    return b"".join(rows), list(accumulate(map(len, rows), initial=0))


# The codec interface `weir._dispatch` drives (shared with `weir._marshal_codec`).
DECODE_FAILED = "invalid JSON input row: "
ENCODE_FAILED = "cannot encode the output as JSON: "


def decode_batch(data: bytes, offsets: Sequence[int]) -> List[Any]:
    """Every row of a flat batch (see `decode_all`), or raise."""
    return decode_all(split_rows(data, offsets))


def encode_batch(values: List[Any]) -> Tuple[bytes, List[int]]:
    """All values as a flat batch `(data, offsets)`, or raise (then encode row by row)."""
    return join_rows(encode_rows(values))
