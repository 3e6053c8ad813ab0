"""The `aggregate` interface over accumulator bytes: create, add, retract, merge, get-result.

The component glue (`weir._component`) and the local harness (`weir.testing`) both call
these functions, so a test runs exactly what runs inside the component.

**Accumulators** cross the boundary as CPython `marshal` bytes, format version 2, one value
each (`marshal.dumps(acc, 2)`). The host keeps them per key and window and never looks
inside. Why marshal:
- it is what rows use (`weir._marshal_codec`), in C, and version 2 writes no
  back-references, so a whole batch of accumulators decodes with ONE `marshal.loads` (a list
  header in front of the concatenated bytes), as a batch of rows does;
- the bytes are plain data (numbers, strings, lists, dicts, sets...) that any later version of
  the plugin can read and migrate.
Why not pickle for arbitrary objects: accumulators live in checkpoints across plugin
upgrades, and a pickle names the class by module and qualified name, so renaming a class or
moving it out of `app.py` would make every stored accumulator unreadable (and the same class
pickles differently under pytest, where the module may have another name, than in the
component). Pickle is also slower to write for small accumulators and cannot decode a batch
in one call. An accumulator that marshal cannot write fails with a message naming its type.

**add** (and retract) decode all accumulators once and all values once, fold value `i` into
accumulator `groups[i]` in a tight loop, and encode each accumulator once. The loop keeps no
index: when a value fails (an exception, or `add` returning None), the call is replayed
from the bytes, value by value, to name the first failing value; the call then fails as a
whole (`AggregateError`, the WIT `err`), and the host retries value by value itself, so no
partial result is ever returned.
"""

from __future__ import annotations

import marshal
from itertools import accumulate
from typing import Any, Callable, List, Optional, Sequence, Tuple

from . import _marshal_codec
from ._dispatch import describe_exception
from ._functions import Function, Kind, WeirError
from ._udaf import supports_retract

#: The marshal format version of accumulators (see the module doc: no back-references).
ACCUMULATOR_VERSION = 2

_loads = marshal.loads
_dumps = marshal.dumps

#: What marshal writes, for the message about an accumulator it cannot.
_MARSHAL_TYPES = (
    "None, bool, int, float, complex, str, bytes, tuple, list, dict, set and frozenset "
    "(exact types: no Counter, defaultdict, dataclass or other class instances)"
)


class AggregateError(WeirError, ValueError):
    """An aggregate call failed as a whole; the message is the WIT `err` string the host logs."""


def _err(function: Function, message: str) -> AggregateError:
    return AggregateError(f"aggregate `{function.name}`: {message}")


def _check_kind(function: Function) -> Any:
    if function.kind is not Kind.AGGREGATE:
        raise WeirError(f"{function.name!r} is {function.kind.described()}, not an aggregate")
    return function.fn


def _check_batch(function: Function, what: str, data: bytes, offsets: Sequence[int]) -> int:
    n = len(offsets) - 1
    if n < 0 or offsets[0] != 0 or offsets[-1] != len(data):
        raise AggregateError(
            f"malformed {what} batch for aggregate `{function.name}`: {len(offsets)} offsets for "
            f"{len(data)} bytes; offsets must start at 0 and end at the data length (a host bug)"
        )
    return n


# --- accumulator bytes --------------------------------------------------------------------


def _unmarshallable(value: Any, depth: int = 0) -> Optional[str]:
    """The type name of the first thing inside `value` that marshal cannot write."""
    t = type(value)
    if value is None or t in (bool, int, float, complex, str, bytes):
        return None
    if t in (list, tuple, set, frozenset) and depth < 100:
        for item in value:
            bad = _unmarshallable(item, depth + 1)
            if bad:
                return bad
        return None
    if t is dict and depth < 100:
        for k, v in value.items():
            bad = _unmarshallable(k, depth + 1) or _unmarshallable(v, depth + 1)
            if bad:
                return bad
        return None
    return t.__qualname__


def _encode_error(function: Function, what: str, value: Any, exc: Exception) -> AggregateError:
    bad = _unmarshallable(value)
    found = f"it holds a {bad}" if bad else describe_exception(exc)
    return _err(
        function,
        f"cannot store the {what} ({found}); an accumulator is plain data that marshal writes: {_MARSHAL_TYPES}",
    )


def encode_accumulator(function: Function, accumulator: Any, what: str = "accumulator") -> bytes:
    """One accumulator as bytes, or `AggregateError` naming what marshal cannot write."""
    try:
        return _dumps(accumulator, ACCUMULATOR_VERSION)
    except Exception as exc:  # noqa: BLE001 - ValueError (unmarshallable), RecursionError...
        raise _encode_error(function, what, accumulator, exc) from None


def _bad_accumulator(function: Function, what: str, exc: Exception) -> AggregateError:
    return _err(
        function,
        f"{what} does not decode ({describe_exception(exc)}); accumulators are the marshal bytes "
        "this plugin's create_accumulator/add wrote: was this state written by another plugin, "
        "or by a version that stored accumulators differently?",
    )


def decode_accumulator(function: Function, data: bytes, what: str = "the accumulator") -> Any:
    """One accumulator from its bytes, or `AggregateError`."""
    try:
        return _loads(data)
    except Exception as exc:  # noqa: BLE001 - EOFError, ValueError, TypeError from bad bytes
        raise _bad_accumulator(function, what, exc) from None


def _decode_accumulators(function: Function, data: bytes, offsets: Sequence[int]) -> List[Any]:
    n = len(offsets) - 1
    try:
        accs = _loads(b"[" + n.to_bytes(4, "little") + data)
        if len(accs) == n:
            return accs
    except Exception:  # noqa: BLE001 - find the guilty one below
        pass
    accs = []
    for i, (a, b) in enumerate(zip(offsets, offsets[1:])):
        accs.append(decode_accumulator(function, data[a:b], f"accumulator {i} of {n}"))
    return accs


def _encode_accumulators(function: Function, accs: List[Any]) -> Tuple[bytes, List[int]]:
    try:
        parts = [_dumps(a, ACCUMULATOR_VERSION) for a in accs]
    except Exception:  # noqa: BLE001 - name the accumulator
        for i, acc in enumerate(accs):
            encode_accumulator(function, acc, f"accumulator {i} of {len(accs)}")
        raise
    return b"".join(parts), list(accumulate(map(len, parts), initial=0))


# --- the interface ------------------------------------------------------------------------


def create_accumulator(function: Function) -> bytes:
    """`create-accumulator`: a new, empty accumulator."""
    udaf = _check_kind(function)
    try:
        acc = udaf.create_accumulator()
    except Exception as exc:  # noqa: BLE001
        raise _err(function, f"create_accumulator failed: {describe_exception(exc)}") from None
    return encode_accumulator(function, acc)


def add(
    function: Function,
    acc_data: bytes,
    acc_offsets: Sequence[int],
    data: bytes,
    offsets: Sequence[int],
    groups: Sequence[int],
) -> Tuple[bytes, List[int]]:
    """`add`: value `i` of (`data`, `offsets`) into accumulator `groups[i]` of
    (`acc_data`, `acc_offsets`); returns every accumulator, updated, as (data, offsets)."""
    udaf = _check_kind(function)
    return _fold(function, udaf.add, "add", acc_data, acc_offsets, data, offsets, groups)


def retract(
    function: Function,
    acc_data: bytes,
    acc_offsets: Sequence[int],
    data: bytes,
    offsets: Sequence[int],
    groups: Sequence[int],
) -> Tuple[bytes, List[int]]:
    """`retract`: like `add`, taking the values back out (an error without `retract`)."""
    udaf = _check_kind(function)
    if not supports_retract(udaf) and len(offsets) > 1:
        raise _err(
            function,
            f"value 0: this aggregate function does not support retract "
            f"(define retract(acc, value) in {type(udaf).__qualname__} to support it)",
        )
    return _fold(function, udaf.retract, "retract", acc_data, acc_offsets, data, offsets, groups)


def merge(function: Function, a: bytes, b: bytes) -> bytes:
    """`merge`: one accumulator holding what `a` and `b` hold."""
    udaf = _check_kind(function)
    acc = decode_accumulator(function, a, "accumulator a")
    other = decode_accumulator(function, b, "accumulator b")
    try:
        merged = udaf.merge(acc, other)
    except Exception as exc:  # noqa: BLE001
        raise _err(function, f"merge failed: {describe_exception(exc)}") from None
    if merged is None:
        raise _err(function, f"{_method(udaf, 'merge')} returned None; {_RETURN_IT}")
    return encode_accumulator(function, merged)


def get_result(function: Function, accumulator: bytes) -> bytes:
    """`get-result`: the result row (python-marshal) of `accumulator`."""
    udaf = _check_kind(function)
    acc = decode_accumulator(function, accumulator)
    try:
        result = udaf.get_result(acc)
    except Exception as exc:  # noqa: BLE001
        raise _err(function, f"get_result failed: {describe_exception(exc)}") from None
    try:
        # `_plain` rejects what the host cannot convert (a set, an object) here, with a
        # message, instead of at the host's conversion.
        return _marshal_codec.encode_row(_marshal_codec._plain(result))
    except Exception as exc:  # noqa: BLE001
        raise _err(function, f"cannot encode the result: {describe_exception(exc)}") from None


# --- folding ------------------------------------------------------------------------------

_RETURN_IT = "return the accumulator (after changing it in place, `return acc`)"


def _method(udaf: Any, name: str) -> str:
    return f"{type(udaf).__qualname__}.{name}"


def _fold(
    function: Function,
    step: Callable[[Any, Any], Any],
    operation: str,
    acc_data: bytes,
    acc_offsets: Sequence[int],
    data: bytes,
    offsets: Sequence[int],
    groups: Sequence[int],
) -> Tuple[bytes, List[int]]:
    _check_batch(function, "accumulators", acc_data, acc_offsets)
    n = _check_batch(function, "values", data, offsets)
    if len(groups) != n:
        raise _err(function, f"bad groups: {len(groups)} groups for {n} values")
    if n == 0:
        return bytes(acc_data), list(acc_offsets)
    # A group past the end raises IndexError in the loop and the replay names it; checking
    # every group up front would cost a fifth of the call. Groups are WIT u32s: a negative
    # one (which Python would take as counting from the end) can only come from a Python
    # caller, and `weir.testing` checks its own.
    accs = _decode_accumulators(function, acc_data, acc_offsets)
    values = _decode_values(function, data, offsets)

    failure: Optional[Exception] = None
    try:
        # The hot loop: no index, no checks (see the module doc).
        for g, v in zip(groups, values):
            accs[g] = step(accs[g], v)
    except Exception as exc:  # noqa: BLE001 - replayed below to name the value
        failure = exc
    if failure is not None or (None in accs and any(accs[g] is None for g in set(groups))):
        _replay(function, step, operation, acc_data, acc_offsets, data, offsets, groups)
        if failure is not None:
            raise _err(
                function,
                f"{operation} failed: {describe_exception(failure)} (it did not fail again when "
                f"replayed to find the value: does {_method(function.fn, operation)} depend on "
                "something besides the accumulator and the value?)",
            )
    return _encode_accumulators(function, accs)


def _replay(
    function: Function,
    step: Callable[[Any, Any], Any],
    operation: str,
    acc_data: bytes,
    acc_offsets: Sequence[int],
    data: bytes,
    offsets: Sequence[int],
    groups: Sequence[int],
) -> None:
    """The fold again from the bytes, checking each step: raise for the first failing value."""
    accs = _decode_accumulators(function, acc_data, acc_offsets)
    values = _decode_values(function, data, offsets)
    m = len(accs)
    for i, (g, v) in enumerate(zip(groups, values)):
        if not 0 <= g < m:
            raise _err(function, f"bad groups: value {i} goes to accumulator {g} of {m}")
        try:
            acc = step(accs[g], v)
        except Exception as exc:  # noqa: BLE001
            raise _err(function, f"value {i}: {describe_exception(exc)}") from None
        if acc is None:
            raise _err(function, f"value {i}: {_method(function.fn, operation)} returned None; {_RETURN_IT}")
        accs[g] = acc


def _decode_values(function: Function, data: bytes, offsets: Sequence[int]) -> List[Any]:
    try:
        values = _marshal_codec.decode_batch(data, offsets)
        if len(values) == len(offsets) - 1:
            return values
    except Exception:  # noqa: BLE001 - find the guilty value below
        pass
    values = []
    for i, row in enumerate(_marshal_codec.split_rows(data, offsets)):
        try:
            values.append(_marshal_codec.decode_row(row))
        except Exception as exc:  # noqa: BLE001
            raise _err(function, f"value {i}: {_marshal_codec.DECODE_FAILED}{describe_exception(exc)}") from None
    return values
