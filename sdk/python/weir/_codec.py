"""JSON rows in flat batches: the encoding every Python plugin declares.

Speed is the point of this module: a Python component spends most of its time here, so
the hot paths run whole batches through C code (`json.loads` once per batch, `map` over
a prebuilt C encoder) and do per-row Python work only when a row has failed.

Invariants:
- Output rows are ASCII (`ensure_ascii`), so a row's `str` length is its byte length and
  offsets come from `len` without encoding rows one by one.
- `encode_row` rejects NaN and infinities (not JSON; the host could not convert them back).
"""

from __future__ import annotations

import json
from itertools import accumulate
from typing import Any, Callable, List, Sequence, Tuple

_loads = json.loads


def _make_encoder() -> Callable[[Any], str]:
    """A compact, ASCII, NaN-rejecting encoder of one value; the C encoder when it is there.

    `json.dumps(..., separators=...)` builds a new `JSONEncoder` per call and
    `JSONEncoder.encode` a new C encoder per call; reusing one C encoder halves the cost.
    """
    reference = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    slow = reference.encode
    try:
        from json.encoder import c_make_encoder, encode_basestring_ascii

        if c_make_encoder is None:
            return slow
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

        def fast(value: Any) -> str:
            return join(c_encoder(value, 0))

        sample = {"a": [1, 2.5, "é", None, True], "b": {"c": -3}}
        if fast(sample) != slow(sample):  # a CPython whose private C encoder differs
            return slow
        return fast
    except Exception:  # noqa: BLE001 - any doubt about the private API: use the public one
        return slow


#: Encode one value as a compact ASCII JSON `str`.
encode_row: Callable[[Any], str] = _make_encoder()


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
