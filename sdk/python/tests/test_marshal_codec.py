"""The python-marshal batch path (what the component runs), driven with raw flat buffers."""

import collections
import enum
import marshal

import pytest

import weir
from weir import _marshal_codec as codec
from weir._dispatch import apply


def batch(rows):
    """Rows as the host writes them: marshal v2 values back to back, plus offsets."""
    return codec.join_rows([marshal.dumps(r, 2) for r in rows])


def out_rows(out):
    return codec.unpack(out.data, out.offsets)


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


@weir.map
def odd(x):
    return {
        "od": collections.OrderedDict(a=1),
        "nt": collections.namedtuple("P", "x y")(1, 2),
        "e": Color.RED,
    }


class Color(enum.IntEnum):
    RED = 1


@weir.map
def unencodable(x):
    if x == 1:
        return object()
    return x


def test_map_outputs_one_packed_marshal_v2_list():
    rows = [{"id": i, "name": "zoë", "score": 1.5, "big": 2**40, "raw": b"\x00"} for i in range(100)]
    out = apply(upper_name.__weir__, *batch(rows), codec)
    assert out.counts == [1] * 100 and out.errors == []
    assert out.offsets == [] and out.data[:1] == b"["
    assert out.data == marshal.dumps(out_rows(out), 2)
    assert out_rows(out) == [
        {"id": i, "name": "ZOË", "score": 1.5, "big": 2**40, "raw": b"\x00", "name_len": 3} for i in range(100)
    ]


def test_version_2_writes_no_back_references():
    # Version 3+ would write the repeated (interned) keys as back-references; v2 repeats them
    # in full, every str as TYPE_UNICODE ('u'), which is what the host reads.
    out = apply(upper_name.__weir__, *batch([{"name": "a"}, {"name": "b"}]), codec)
    assert out.data.count(b"u\x04\x00\x00\x00name") == 2
    assert out.data.count(b"u\x08\x00\x00\x00name_len") == 2


def test_an_exception_fails_its_row_only():
    rows = [{"name": "a"}, {"id": 1}, {"name": "b"}, {"name": 7}, {"name": "c"}]
    out = apply(upper_name.__weir__, *batch(rows), codec)
    assert out.counts == [1, 0, 1, 0, 1]
    assert [i for i, _ in out.errors] == [1, 3]
    assert out.errors[0][1] == "KeyError: 'name'"
    assert [r["name"] for r in out_rows(out)] == ["A", "B", "C"]


def test_an_unencodable_output_fails_its_row_only():
    out = apply(unencodable.__weir__, *batch([0, 1, 2]), codec)
    assert out.counts == [1, 0, 1]
    assert out.errors[0][0] == 1 and out.errors[0][1].startswith("cannot encode the output: TypeError: Object of type object")
    assert out_rows(out) == [0, 2]


def test_subclasses_of_the_supported_types_are_encoded_as_the_types():
    out = apply(odd.__weir__, *batch([None]), codec)
    assert out.errors == []
    assert out_rows(out) == [{"od": {"a": 1}, "nt": [1, 2], "e": 1}]


def test_filter_returns_the_input_rows_unpacked():
    data, offsets = batch(["abcd", "ab", "xyzzy"])
    out = apply(is_long.__weir__, data, offsets, codec)
    assert out.counts == [1, 0, 1]
    assert out.offsets != [] and out_rows(out) == ["abcd", "xyzzy"]


def test_flat_map_with_a_failing_row():
    out = apply(split.__weir__, *batch(["a b", "boom", "c"]), codec)
    assert out.counts == [2, 0, 1]
    assert out.errors == [(1, "ValueError: no booms")]
    assert out_rows(out) == ["a", "b", "c"]


def test_a_malformed_input_row_fails_alone():
    good = marshal.dumps("a", 2)
    data = good + b"\xff" + good
    out = apply(split.__weir__, data, [0, len(good), len(good) + 1, len(data)], codec)
    assert out.counts == [1, 0, 1]
    assert out.errors[0][0] == 1 and out.errors[0][1].startswith("invalid python-marshal input row: ")


def test_empty_batch():
    out = apply(upper_name.__weir__, b"", [0], codec)
    assert out.counts == [] and out.errors == [] and out_rows(out) == []


def test_testing_helpers_use_the_marshal_path():
    assert weir.testing.apply(upper_name, [{"name": "ab"}]) == [[{"name": "AB", "name_len": 2}]]
    assert weir.testing.apply(split, ["a b"]) == [["a", "b"]]


@pytest.mark.parametrize("value", [None, True, False, 0, -1, 2**31, -(2**63), 2**64 - 1, 0.25, "", "日本", b"", [], {}, (1, "a")])
def test_row_round_trip(value):
    assert codec.decode_row(codec.encode_row(value)) == value
