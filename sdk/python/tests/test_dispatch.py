"""The batch path of `transform.apply`, driven with raw flat buffers as the host sends them."""

import json
import math

import pytest

import weir
from weir import Plugin, UnknownFunctionError
from weir._dispatch import BatchError, apply, apply_named
from weir.testing import encode_batch


def rows_of(data, offsets):
    return [json.loads(data[a:b]) for a, b in zip(offsets, offsets[1:])]


@weir.map
def upper_name(r):
    name = r["name"]
    r["name"] = name.upper()
    r["name_len"] = len(name)
    return r


@weir.filter
def is_long(s):
    return len(s) > 3


@weir.flat_map
def split(line):
    if line == "boom":
        raise ValueError("no booms")
    yield from line.split()


@weir.key_selector
def city(r):
    return r["city"]


@weir.timestamp_assigner
def event_time(r):
    return r["ts"]


def test_map_over_a_batch():
    data, offsets = encode_batch([{"id": i, "name": "alice", "score": 1.5} for i in range(100)])
    out = apply(upper_name.__weir__, data, offsets)
    assert out.counts == [1] * 100 and out.errors == []
    assert rows_of(out.data, out.offsets) == [
        {"id": i, "name": "ALICE", "score": 1.5, "name_len": 5} for i in range(100)
    ]
    assert isinstance(out.data, bytes) and out.offsets[0] == 0 and out.offsets[-1] == len(out.data)


def test_output_is_compact_ascii_json():
    data, offsets = encode_batch([{"name": "zoë"}])
    out = apply(upper_name.__weir__, data, offsets)
    assert out.data == b'{"name":"ZO\\u00cb","name_len":3}'


def test_non_ascii_utf8_input_rows():
    raw = ['{"name": "zoë"}'.encode(), '{"name":"日本"}'.encode()]
    data = b"".join(raw)
    offsets = [0, len(raw[0]), len(data)]
    out = apply(upper_name.__weir__, data, offsets)
    assert rows_of(out.data, out.offsets) == [{"name": "ZOË", "name_len": 3}, {"name": "日本", "name_len": 2}]


def test_empty_batch():
    out = apply(upper_name.__weir__, b"", [0])
    assert out == (b"", [0], [], [])


def test_an_exception_fails_its_row_only():
    rows = [{"name": "a"}, {"id": 1}, {"name": "b"}, {"name": 7}, {"name": "c"}]
    out = apply(upper_name.__weir__, *encode_batch(rows))
    assert out.counts == [1, 0, 1, 0, 1]
    assert out.errors[0] == (1, "KeyError: 'name'")
    assert out.errors[1][0] == 3 and out.errors[1][1].startswith("AttributeError: 'int' object has no attribute 'upper'")
    assert rows_of(out.data, out.offsets) == [{"name": n, "name_len": 1} for n in "ABC"]


def test_the_user_function_runs_once_per_row_even_when_rows_fail():
    calls = []

    @weir.map
    def f(x):
        calls.append(x)
        if x % 3 == 0:
            raise RuntimeError(f"bad {x}")
        return x

    out = apply(f.__weir__, *encode_batch(list(range(10))))
    assert calls == list(range(10))
    assert [i for i, _ in out.errors] == [0, 3, 6, 9]
    assert out.errors[1] == (3, "RuntimeError: bad 3")
    assert rows_of(out.data, out.offsets) == [1, 2, 4, 5, 7, 8]


def test_invalid_json_rows_fail_alone():
    raw = [b'{"name":"a"}', b'{"name":', b"\xff", b'{"name":"b"}', b"1,2"]
    data = b"".join(raw)
    offsets = [0]
    for r in raw:
        offsets.append(offsets[-1] + len(r))
    out = apply(upper_name.__weir__, data, offsets)
    assert out.counts == [1, 0, 0, 1, 0]
    assert [i for i, _ in out.errors] == [1, 2, 4]
    assert all(m.startswith("invalid JSON input row: ") for _, m in out.errors)
    assert rows_of(out.data, out.offsets) == [{"name": "A", "name_len": 1}, {"name": "B", "name_len": 1}]


def test_unencodable_outputs_fail_their_row():
    @weir.map
    def f(x):
        return {1: {1, 2}} if x == 1 else (math.nan if x == 2 else x)

    out = apply(f.__weir__, *encode_batch([0, 1, 2, 3]))
    assert out.counts == [1, 0, 0, 1]
    assert out.errors[0][0] == 1 and "not JSON serializable" in out.errors[0][1]
    assert out.errors[1][0] == 2 and "Out of range float" in out.errors[1][1]
    assert all(m.startswith("cannot encode the output as JSON: ") for _, m in out.errors)
    assert rows_of(out.data, out.offsets) == [0, 3]


def test_filter_keeps_input_rows_byte_for_byte():
    raw = [b'"abcd"', b'"ab"', b'"a\\u00e9cd"']
    data = b"".join(raw)
    out = apply(is_long.__weir__, data, [0, 6, 10, len(data)])
    assert out.counts == [1, 0, 1] and out.errors == []
    assert out.data == b'"abcd""a\\u00e9cd"' and out.offsets == [0, 6, 17]


def test_filter_errors():
    out = apply(is_long.__weir__, *encode_batch(["abcd", 5, "xyzzy"]))
    assert out.counts == [1, 0, 1]
    assert out.errors == [(1, "TypeError: object of type 'int' has no len()")]


def test_flat_map_counts_and_errors():
    out = apply(split.__weir__, *encode_batch(["a b c", "", "boom", "d", 3]))
    assert out.counts == [3, 0, 0, 1, 0]
    assert rows_of(out.data, out.offsets) == ["a", "b", "c", "d"]
    assert out.errors[0] == (2, "ValueError: no booms")
    assert out.errors[1][0] == 4


def test_flat_map_rejects_a_string_result():
    @weir.flat_map
    def oops(x):
        return x

    out = apply(oops.__weir__, *encode_batch(["abc"]))
    assert out.counts == [0]
    assert "must return or yield an iterable of rows, got str" in out.errors[0][1]


def test_key_selector():
    out = apply(city.__weir__, *encode_batch([{"city": "paris"}, {"city": "oslo"}]))
    assert rows_of(out.data, out.offsets) == ["paris", "oslo"]


def test_timestamp_assigner_requires_an_int():
    out = apply(event_time.__weir__, *encode_batch([{"ts": 1700000000000}, {"ts": 1.5}, {"ts": True}]))
    assert rows_of(out.data, out.offsets) == [1700000000000]
    assert out.counts == [1, 0, 0]
    assert "must return an int of milliseconds" in out.errors[0][1]


def test_unknown_function_fails_the_whole_call():
    plugin = Plugin(weir.PluginMeta("p", "1.0.0"), [upper_name.__weir__])
    with pytest.raises(UnknownFunctionError, match="plugin p 1.0.0 has no function 'nope'"):
        apply_named(plugin, "nope", *encode_batch(["a"]))
    out = apply_named(plugin, "upper_name", *encode_batch([{"name": "x"}]))
    assert out.counts == [1]


@pytest.mark.parametrize("data,offsets", [(b"12", []), (b"12", [1, 2]), (b"12", [0, 1]), (b"12", [0, 1, 3])])
def test_malformed_batches_fail_the_whole_call(data, offsets):
    with pytest.raises(BatchError, match="malformed batch"):
        apply(upper_name.__weir__, data, offsets)


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, -5, 2**62, 1.5, -0.25, 1e300, "", "é\u2028\"\\", [], [1, [2, {}]], {"a": {"b": [None]}}],
)
def test_json_round_trip(value):
    @weir.map
    def identity(x):
        return x

    out = apply(identity.__weir__, *encode_batch([value, value]))
    assert rows_of(out.data, out.offsets) == [value, value]
    assert out.data.isascii()


MARKER = "\x00\x01weir-row\x02"  # the row separator of weir._codec.encode_rows


@pytest.mark.parametrize(
    "values",
    [
        [MARKER],
        [MARKER, MARKER, "a"],
        ["a", [MARKER], {"k": MARKER}, {MARKER: 1}],
        [["x", MARKER, "y"], 1, 2],
        [[1, MARKER], [MARKER, 2]],
        ["," + MARKER + ",", '",' + MARKER],
    ],
)
def test_outputs_that_contain_the_row_separator_still_split_exactly(values):
    @weir.map
    def identity(x):
        return x

    out = apply(identity.__weir__, *encode_batch(values))
    assert out.errors == [] and out.counts == [1] * len(values)
    assert rows_of(out.data, out.offsets) == values


def test_batch_encoding_matches_row_encoding():
    from weir import _codec

    values = [{"id": i, "s": "é" * (i % 3), "l": [i, 1.5, None, MARKER if i % 7 == 0 else "x"]} for i in range(300)]
    try:
        batch = _codec.encode_rows(values)
    except ValueError:
        batch = None  # a marker inside a row: the dispatcher then encodes row by row
    if batch is not None:
        assert batch == [_codec.encode_row(v) for v in values]
    plain = [v for v in values if v["l"][3] != MARKER]
    assert _codec.encode_rows(plain) == [_codec.encode_row(v) for v in plain]
