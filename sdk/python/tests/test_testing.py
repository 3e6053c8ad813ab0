import types

import weir
import weir.testing
from weir.testing import RowError


@weir.map
def upper(s):
    return s.upper()


@weir.filter
def is_long(s):
    return len(s) > 3


@weir.flat_map
def split(line):
    yield from line.split()


def test_apply_groups_outputs_per_input_row():
    assert weir.testing.apply(upper, ["a", "b"]) == [["A"], ["B"]]
    assert weir.testing.apply(is_long, ["abcd", "ab"]) == [["abcd"], []]
    assert weir.testing.apply(split, ["a b", "", "c"]) == [["a", "b"], [], ["c"]]


def test_apply_reports_row_errors_in_place():
    out = weir.testing.apply(upper, ["a", 1, "c"])
    assert out == [["A"], RowError(1, "AttributeError: 'int' object has no attribute 'upper'"), ["C"]]


def test_run_returns_the_raw_result():
    result = weir.testing.run(split, ["a b", 5])
    assert result.rows == ["a", "b"]
    assert result.counts == [2, 0]
    assert result.errors[0].index == 1 and result.errors[0].message.startswith("AttributeError")


def test_apply_needs_a_decorated_function():
    import pytest

    with pytest.raises(TypeError, match="not a weir function"):
        weir.testing.apply(str.upper, ["a"])


def test_describe_of_a_module():
    module = types.ModuleType("m")
    exec("import weir\nweir.plugin(name='m', version='0.0.1')\n@weir.map\ndef f(x):\n    return x\n", module.__dict__)
    any_type = {"scalar": "any", "nullable": False, "is_list": False}
    assert weir.testing.describe(module)["functions"] == [
        {
            "name": "f",
            "kind": "map",
            "encoding": "python-marshal",
            "signature": {"params": [{"name": "x", "type": any_type}], "result": any_type},
        }
    ]
