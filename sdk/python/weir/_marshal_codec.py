"""`python-marshal` rows in flat batches: the encoding every Python plugin declares.

The host writes each row as one CPython `marshal` value (format version 2; subset None,
bool, int, float, str, bytes, list, tuple, dict) and converts back to MessagePack. Speed is
the point: a whole batch is decoded by ONE `marshal.loads` (the rows lie back to back, so a
list header in front makes them one marshal list) and the outputs are encoded by ONE
`marshal.dumps(rows, 2)`, sent *packed* (empty offsets; the host splits the list while
converting it). In CPython 3.14 on Wasm that is about 2.5x cheaper than the JSON path.

Version 2 matters: it writes no back-references, which the host does not read.
"""

from __future__ import annotations

import marshal
from itertools import accumulate
from typing import Any, List, Sequence, Tuple

VERSION = 2
_loads = marshal.loads
_dumps = marshal.dumps

DECODE_FAILED = "invalid python-marshal input row: "
ENCODE_FAILED = "cannot encode the output: "

#: The output `offsets` of a packed batch (`data` is one marshal list of the rows).
PACKED: List[int] = []


def decode_batch(data: bytes, offsets: Sequence[int]) -> List[Any]:
    """Every row of a flat batch with one `marshal.loads`, or raise (then decode row by row).

    The host writes exactly one value per row; the list header makes `loads` read `n` of them.
    """
    n = len(offsets) - 1
    return _loads(b"[" + n.to_bytes(4, "little") + data)


def split_rows(data: bytes, offsets: Sequence[int]) -> List[bytes]:
    """The rows of a flat batch (`data[offsets[i]:offsets[i + 1]]`), as `bytes`."""
    return [data[a:b] for a, b in zip(offsets, offsets[1:])]


def decode_row(row: bytes) -> Any:
    """Decode one row."""
    return _loads(row)


def _plain(value: Any) -> Any:
    """`value` with subclasses of the supported types turned into the types themselves.

    `marshal` takes exact types only; a row may hold an `OrderedDict`, a named tuple, an
    `IntEnum` (as JSON did). Anything else raises `TypeError`.
    """
    t = type(value)
    if value is None or t is bool or t is int or t is float or t is str or t is bytes:
        return value
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(
        f"Object of type {t.__name__} cannot be a row (use None, bool, int, float, str, bytes, "
        "list, tuple or dict)"
    )


def encode_row(value: Any) -> bytes:
    """Encode one value as a marshal row, or raise `TypeError`/`ValueError`."""
    try:
        return _dumps(value, VERSION)
    except ValueError:  # "unmarshallable object": a subclass somewhere, or a foreign type
        return _dumps(_plain(value), VERSION)


def encode_batch(values: List[Any]) -> Tuple[bytes, List[int]]:
    """All values as one packed batch `(data, PACKED)`, or raise (then encode row by row)."""
    return _dumps(values, VERSION), PACKED


def join_rows(rows: List[bytes]) -> Tuple[bytes, List[int]]:
    """A flat batch from encoded rows: (data, offsets)."""
    return b"".join(rows), list(accumulate(map(len, rows), initial=0))


join_raw_rows = join_rows


def unpack(data: bytes, offsets: Sequence[int]) -> List[Any]:
    """The rows of an output batch, packed or not (for tests and `weir.testing`)."""
    if not offsets:
        return _loads(data)
    return [_loads(r) for r in split_rows(data, offsets)]
