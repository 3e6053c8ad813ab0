"""UDAFs: `@weir.aggregate`, and the `aggregate` interface driven with raw bytes as the host
sends them (`weir._aggregate`), including every way a call fails."""

import marshal
import types
from collections import Counter

import pytest

import weir
from weir import AggregateError, Kind, Plugin, PluginDefinitionError, UnknownFunctionError
from weir import _aggregate
from weir._dispatch import apply_named
from weir._marshal_codec import join_rows
from weir._udaf import snake_case


@weir.aggregate
class Avg(weir.AggregateFunction):
    def create_accumulator(self):
        return [0.0, 0]

    def add(self, acc, value):
        acc[0] += value
        acc[1] += 1
        return acc

    def retract(self, acc, value):
        acc[0] -= value
        acc[1] -= 1
        return acc

    def merge(self, acc, other):
        return [acc[0] + other[0], acc[1] + other[1]]

    def get_result(self, acc):
        return acc[0] / acc[1] if acc[1] else None


@weir.aggregate("count")
class Count(weir.AggregateFunction):
    """An immutable accumulator: every method returns a new int."""

    def create_accumulator(self):
        return 0

    def add(self, acc, value):
        return acc + 1

    def merge(self, acc, other):
        return acc + other

    def get_result(self, acc):
        return acc


AVG = Avg.__weir__
COUNT = Count.__weir__


def acc_bytes(*accs):
    return join_rows([marshal.dumps(a, 2) for a in accs])


def value_bytes(*values):
    return join_rows([marshal.dumps(v, 2) for v in values])


def unpack(data, offsets):
    return [marshal.loads(data[a:b]) for a, b in zip(offsets, offsets[1:])]


def add(spec, accs, values, groups):
    return unpack(*_aggregate.add(spec, *acc_bytes(*accs), *value_bytes(*values), groups))


# --- the decorator ------------------------------------------------------------------------


def test_the_decorator_keeps_the_class_and_registers_one_instance():
    assert isinstance(Avg, type) and Avg().get_result([3.0, 2]) == 1.5
    assert (AVG.name, AVG.kind) == ("avg", Kind.AGGREGATE)
    assert isinstance(AVG.fn, Avg)
    assert (COUNT.name, Count.__weir__ is COUNT) == ("count", True)


def test_names_default_to_the_class_name_in_snake_case():
    assert [snake_case(n) for n in ("Avg", "WeightedAvg", "DistinctCount", "P95", "HTTPCount", "p99")] == [
        "avg", "weighted_avg", "distinct_count", "p95", "http_count", "p99",
    ]

    @weir.aggregate(name="mean")
    class Mean(Avg):
        pass

    assert Mean.__weir__.name == "mean" and Mean.__weir__ is not AVG


def test_an_instance_can_be_registered_for_parametrised_aggregates():
    class Percentile(weir.AggregateFunction):
        def __init__(self, q):
            self.q = q

        def create_accumulator(self):
            return []

        def add(self, acc, v):
            acc.append(v)
            return acc

        def merge(self, acc, other):
            return acc + other

        def get_result(self, acc):
            return sorted(acc)[int(self.q * (len(acc) - 1))] if acc else None

    p90 = weir.aggregate("p90")(Percentile(0.9))
    assert p90.__weir__.fn is p90 and p90.__weir__.name == "p90"
    assert weir.testing.aggregate(p90, range(11)) == 9

    with pytest.raises(PluginDefinitionError, match=r"could not create .*Percentile\(\).*decorate an instance"):
        weir.aggregate(Percentile)


def test_a_class_without_the_methods_is_refused_at_import():
    with pytest.raises(PluginDefinitionError, match="does not define merge, get_result"):

        @weir.aggregate
        class Half(weir.AggregateFunction):
            def create_accumulator(self):
                return 0

            def add(self, acc, v):
                return acc + v


def test_decorating_a_function_or_twice_is_an_error():
    with pytest.raises(TypeError, match="decorates a class"):

        @weir.aggregate
        def total(acc, v):
            return acc + v

    with pytest.raises(PluginDefinitionError, match="already a weir aggregate"):
        weir.aggregate(Avg)
    with pytest.raises(TypeError, match="give the name once"):
        weir.aggregate("a", name="b")


def test_plugin_lists_aggregates_and_keeps_them_apart_from_transforms():
    module = types.ModuleType("m")
    module.__dict__.update(Avg=Avg, avg_instance=Avg(), Count=Count)
    exec("import weir\nweir.plugin(name='m', version='1.0.0')\n@weir.map\ndef up(s):\n    return s.upper()\n", module.__dict__)
    plugin = Plugin.from_module(module)
    assert [(f["name"], f["kind"]) for f in plugin.describe()["functions"]] == [
        ("avg", "aggregate"), ("count", "aggregate"), ("up", "map"),
    ]
    assert plugin.has_aggregates and plugin.aggregate("avg") is AVG
    with pytest.raises(UnknownFunctionError, match=r"has no aggregate function 'up' \(it has: avg, count, up; 'up' is a map"):
        plugin.aggregate("up")
    with pytest.raises(UnknownFunctionError, match="has no function 'median'"):
        plugin.aggregate("median")
    with pytest.raises(UnknownFunctionError, match="has no transform function 'avg'.*'avg' is an aggregate function"):
        apply_named(plugin, "avg", b"", [0])


# --- add ----------------------------------------------------------------------------------


def test_add_folds_each_value_into_its_group_and_returns_every_accumulator():
    out = add(AVG, [[0.0, 0], [100.0, 1], [0.0, 0]], [1.0, 10.0, 3.0, 5.0], [0, 1, 0, 0])
    assert out == [[9.0, 3], [110.0, 2], [0.0, 0]], "the third is untouched but comes back"


def test_immutable_accumulators_work_because_add_returns_the_accumulator():
    assert add(COUNT, [0, 5], ["a", "b", "c"], [1, 0, 1]) == [1, 7]


def test_an_empty_batch_gives_the_accumulators_back():
    data, offsets = acc_bytes([1.0, 1])
    assert _aggregate.add(AVG, data, offsets, b"", [0], []) == (data, offsets)


def test_accumulators_round_trip_exactly_as_marshal_writes_them():
    @weir.aggregate
    class Shapes(weir.AggregateFunction):
        def create_accumulator(self):
            return {"set": set(), "tuple": (1, 2), "big": 2**80, "bytes": b"\x00", "frozen": frozenset([1])}

        def add(self, acc, v):
            acc["set"].add(v)
            return acc

        def merge(self, acc, other):
            return acc

        def get_result(self, acc):
            return sorted(acc["set"])

    acc = weir.testing.add(Shapes, weir.testing.create_accumulator(Shapes), ["x", "y", "x"])
    assert weir.testing.accumulator(Shapes, acc) == {
        "set": {"x", "y"}, "tuple": (1, 2), "big": 2**80, "bytes": b"\x00", "frozen": frozenset([1]),
    }
    assert weir.testing.result(Shapes, acc) == ["x", "y"]


# --- add: failures ------------------------------------------------------------------------


def test_a_failing_value_fails_the_whole_call_naming_the_first_one():
    with pytest.raises(AggregateError) as info:
        add(AVG, [[0.0, 0], [0.0, 0]], [1.0, "two", 3.0, None], [0, 1, 0, 1])
    assert str(info.value).startswith("aggregate `avg`: value 1: TypeError: unsupported operand")


def test_add_returning_none_names_the_value_and_says_what_to_do():
    @weir.aggregate
    class Forgetful(weir.AggregateFunction):
        def create_accumulator(self):
            return []

        def add(self, acc, v):
            if v == "forget":
                acc.append(v)  # and no return
            else:
                acc.append(v)
                return acc

        def merge(self, acc, other):
            return acc + other

        def get_result(self, acc):
            return acc

    spec = Forgetful.__weir__
    with pytest.raises(AggregateError, match=r"value 2: .*Forgetful.add returned None; return the accumulator"):
        add(spec, [[], []], ["a", "b", "forget", "c"], [0, 1, 0, 1])
    # Returning None as the *last* step of an accumulator is caught too (no later add trips on it).
    with pytest.raises(AggregateError, match="value 1: .*returned None"):
        add(spec, [[], []], ["a", "forget"], [0, 1])


def test_create_accumulator_may_return_none_for_nothing_yet():
    @weir.aggregate
    class Max(weir.AggregateFunction):
        def create_accumulator(self):
            return None

        def add(self, acc, v):
            return v if acc is None else max(acc, v)

        def merge(self, acc, other):
            return other if acc is None else acc if other is None else max(acc, other)

        def get_result(self, acc):
            return acc

    assert add(Max.__weir__, [None, None, None], [3, 9, 4], [0, 0, 2]) == [9, None, 4]
    assert weir.testing.aggregate(Max, []) is None
    assert weir.testing.aggregate_merged(Max, [[1, 5], [], [2]]) == 5


def test_a_value_that_is_not_python_marshal_names_its_index():
    data, offsets = join_rows([marshal.dumps(1.0, 2), b"\xff\xff", marshal.dumps(2.0, 2)])
    with pytest.raises(AggregateError, match="aggregate `avg`: value 1: invalid python-marshal input row: "):
        _aggregate.add(AVG, *acc_bytes([0.0, 0]), data, offsets, [0, 0, 0])


def test_an_accumulator_that_does_not_decode_names_its_index_and_the_likely_cause():
    data, offsets = join_rows([marshal.dumps([0.0, 0], 2), b"\x82\xa3sum"])  # MessagePack, not marshal
    with pytest.raises(AggregateError, match=r"accumulator 1 of 2 does not decode \(.*\); .*another plugin"):
        _aggregate.add(AVG, data, offsets, *value_bytes(1.0), [0])


def test_bad_groups_and_malformed_batches_fail_the_call():
    accs, values = acc_bytes([0.0, 0], [0.0, 0]), value_bytes(1.0, 2.0)
    with pytest.raises(AggregateError, match="bad groups: 1 groups for 2 values"):
        _aggregate.add(AVG, *accs, *values, [0])
    with pytest.raises(AggregateError, match="bad groups: value 1 goes to accumulator 2 of 2"):
        _aggregate.add(AVG, *accs, *values, [0, 2])
    empty = weir.testing.create_accumulator(Avg)
    with pytest.raises(ValueError, match="value 0 goes to accumulator -1: groups are indexes from 0"):
        weir.testing.add_grouped(Avg, [empty, empty], [(-1, 1.0)])
    with pytest.raises(AggregateError, match="bad groups: value 1 goes to accumulator 5 of 2"):
        weir.testing.add_grouped(Avg, [empty, empty], [(0, 1.0), (5, 1.0)])
    with pytest.raises(AggregateError, match="malformed values batch"):
        _aggregate.add(AVG, *accs, values[0], [0, 1, 99], [0, 0])
    with pytest.raises(AggregateError, match="malformed accumulators batch"):
        _aggregate.add(AVG, accs[0], [], *values, [0, 0])


def test_an_accumulator_marshal_cannot_write_is_named_with_its_type():
    @weir.aggregate
    class Counts(weir.AggregateFunction):
        def create_accumulator(self):
            return Counter()

        def add(self, acc, v):
            acc[v] += 1
            return acc

        def merge(self, acc, other):
            return acc + other

        def get_result(self, acc):
            return dict(acc)

    with pytest.raises(AggregateError, match=r"cannot store the accumulator \(it holds a Counter\); .*plain data"):
        weir.testing.create_accumulator(Counts)

    class Point:
        pass

    @weir.aggregate
    class Points(weir.AggregateFunction):
        def create_accumulator(self):
            return []

        def add(self, acc, v):
            acc.append(Point())
            return acc

        def merge(self, acc, other):
            return acc + other

        def get_result(self, acc):
            return len(acc)

    with pytest.raises(AggregateError, match=r"cannot store the accumulator 1 of 2 \(it holds a .*Point\)"):
        add(Points.__weir__, [[], []], [1], [1])


def test_a_value_that_fails_only_once_still_fails_the_call_and_says_so():
    calls = []

    @weir.aggregate
    class Flaky(weir.AggregateFunction):
        def create_accumulator(self):
            return 0

        def add(self, acc, v):
            calls.append(v)
            if len(calls) == 2:
                raise RuntimeError("flake")
            return acc + v

        def merge(self, acc, other):
            return acc + other

        def get_result(self, acc):
            return acc

    with pytest.raises(AggregateError, match="add failed: RuntimeError: flake .*did not fail again"):
        add(Flaky.__weir__, [0], [1, 2, 3], [0, 0, 0])


# --- retract, merge, get_result, create ---------------------------------------------------


def test_retract_where_defined_and_a_clear_error_where_not():
    assert add(AVG, [[10.0, 3]], [], []) == [[10.0, 3]]
    out = unpack(*_aggregate.retract(AVG, *acc_bytes([10.0, 3], [4.0, 1]), *value_bytes(4.0, 4.0), [0, 1]))
    assert out == [[6.0, 2], [0.0, 0]]
    with pytest.raises(AggregateError, match="`count`: value 0: this aggregate function does not support retract"):
        _aggregate.retract(COUNT, *acc_bytes(3), *value_bytes("a"), [0])


def test_merge_and_its_failures():
    a, b = marshal.dumps([3.0, 1], 2), marshal.dumps([5.0, 3], 2)
    assert marshal.loads(_aggregate.merge(AVG, a, b)) == [8.0, 4]
    with pytest.raises(AggregateError, match="accumulator b does not decode"):
        _aggregate.merge(AVG, a, b"")
    with pytest.raises(AggregateError, match="merge failed: TypeError"):
        _aggregate.merge(AVG, a, marshal.dumps("x", 2))


def test_get_result_is_a_python_marshal_row_the_host_can_convert():
    assert marshal.loads(_aggregate.get_result(AVG, marshal.dumps([3.0, 2], 2))) == 1.5

    @weir.aggregate
    class Distinct(weir.AggregateFunction):
        def create_accumulator(self):
            return set()

        def add(self, acc, v):
            acc.add(v)
            return acc

        def merge(self, acc, other):
            return acc | other

        def get_result(self, acc):
            return acc  # a set: not a row

    acc = weir.testing.add(Distinct, weir.testing.create_accumulator(Distinct), ["a"])
    with pytest.raises(AggregateError, match="cannot encode the result: TypeError: Object of type set cannot be a row"):
        weir.testing.result(Distinct, acc)

    @weir.aggregate
    class Ratio(Avg):
        def get_result(self, acc):
            return acc[0] / acc[1]

    with pytest.raises(AggregateError, match=r"aggregate `ratio`: get_result failed: ZeroDivisionError"):
        _aggregate.get_result(Ratio.__weir__, marshal.dumps([1.0, 0], 2))


def test_create_accumulator_failure_is_reported():
    @weir.aggregate
    class Broken(Count):
        def create_accumulator(self):
            raise KeyError("config")

    with pytest.raises(AggregateError, match=r"aggregate `broken`: create_accumulator failed: KeyError: 'config'"):
        weir.testing.create_accumulator(Broken)


def test_a_transform_is_not_an_aggregate():
    @weir.map
    def up(s):
        return s.upper()

    with pytest.raises(weir.WeirError, match="is a map function, not an aggregate"):
        _aggregate.create_accumulator(up.__weir__)
    with pytest.raises(TypeError, match="not an aggregate: use weir.testing.apply"):
        weir.testing.aggregate(up, ["a"])
