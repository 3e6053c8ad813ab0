"""Run decorated functions locally through the component's own batch path.

`apply(fn, rows)` encodes `rows` (python-marshal) into one flat buffer plus offsets (as the host
does), calls the same dispatcher the component calls, and decodes the output back::

    import weir.testing
    from app import upper

    assert weir.testing.apply(upper, ["a", "b"]) == [["A"], ["B"]]

Each input row gives a list of its output rows (`[out]` for a map, `[]` or `[row]` for a
filter, any number for a flat_map), or a `RowError` when it failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate
from types import ModuleType
from typing import Any, Callable, Dict, Iterable, List, Union

from . import _codec, _dispatch, _marshal_codec
from ._functions import Plugin, spec_of

__all__ = ["RowError", "BatchResult", "apply", "run", "encode_batch", "describe"]


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
