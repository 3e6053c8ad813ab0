"""Tests of the upper plugin: plain calls, and the component's batch path via weir.testing."""

import weir.testing

import app
from app import upper, upper_name


def test_plain_calls():
    assert upper("abc") == "ABC"
    assert upper_name({"id": 1, "name": "alice"}) == {"id": 1, "name": "ALICE", "name_len": 5}


def test_upper_through_the_batch_path():
    assert weir.testing.apply(upper, ["a", "b", "héllo"]) == [["A"], ["B"], ["HÉLLO"]]


def test_upper_name_through_the_batch_path():
    rows = [{"id": i, "name": "alice", "city": "paris", "score": 1.5} for i in range(3)]
    out = weir.testing.apply(upper_name, rows)
    assert out == [[{"id": i, "name": "ALICE", "city": "paris", "score": 1.5, "name_len": 5}] for i in range(3)]


def test_a_bad_record_fails_alone():
    out = weir.testing.apply(upper_name, [{"name": "bob"}, {"id": 2}, {"name": 3}, {"name": "eve"}])
    assert out[0] == [{"name": "BOB", "name_len": 3}]
    assert out[1] == weir.testing.RowError(1, "KeyError: 'name'")
    assert isinstance(out[2], weir.testing.RowError) and out[2].message.startswith("AttributeError:")
    assert out[3] == [{"name": "EVE", "name_len": 3}]


def test_describe():
    assert weir.testing.describe(app) == {
        "name": "upper",
        "version": "0.1.0",
        "sdk": "weir-sdk-python 0.2.0",
        "functions": [
            {"name": "upper", "kind": "map", "encoding": "python-marshal", "signature": signature("s", "string", "string")},
            {"name": "upper_name", "kind": "map", "encoding": "python-marshal", "signature": signature("record", "any", "any")},
        ],
    }


def signature(param, scalar, result):
    """A one-parameter signature of non-null scalars, as `describe` reports it."""

    def t(s):
        return {"scalar": s, "nullable": False, "is_list": False}

    return {"params": [{"name": param, "type": t(scalar)}], "result": t(result)}
