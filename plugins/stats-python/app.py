"""The "stats" plugin in Python: the same functions, with the same results, as the Rust
`stats` plugin (plugins/stats-rust).

| function | kind | input | result |
|---|---|---|---|
| `avg` | aggregate | a number | the mean, or None with no values; supports retract |
| `weighted_avg` | aggregate | `{value, weight}` | `sum(value * weight) / sum(weight)`, or None |
| `distinct_count` | aggregate | a string | how many distinct strings |
| `p95` | aggregate | a number, or a record with `latency_ms` | the exact 95th percentile (nearest rank), or None |
| `count` | aggregate | anything | how many values; supports retract |
| `latency_ms` | map | a record with `latency_ms` | the number, as a float |

Accumulators are plain lists, sets and ints (stored as marshal bytes by the SDK). `p95` is exact:
it keeps every value, sorted, so its accumulator grows with the window (fine for examples
and small windows; a production percentile would use a sketch such as t-digest or DDSketch).
"""

from bisect import bisect_left, insort
from heapq import merge as merge_sorted
from math import isnan

import weir

weir.plugin(name="stats", version="0.1.0")


def number(value):
    """`value` if it is an int or a float (not a bool, not a string), else `TypeError`, as the
    Rust plugin refuses a value that does not decode as f64."""
    if type(value) is float or type(value) is int:
        return value
    raise TypeError(f"expected a number, got {type(value).__name__} {value!r}")


@weir.map
def latency_ms(request: dict) -> float:
    """The `latency_ms` field of a record."""
    return float(number(request["latency_ms"]))


@weir.aggregate
class Avg(weir.AggregateFunction):
    """Average of numbers; the accumulator is `[sum, count]`."""

    def create_accumulator(self):
        return [0.0, 0]

    def add(self, acc, value):
        # `number(value)` inlined: this is the hot loop of a window over numbers.
        if type(value) is not float and type(value) is not int:
            number(value)
        acc[0] += value
        acc[1] += 1
        return acc

    def retract(self, acc, value):
        if acc[1] == 0:
            raise ValueError(f"cannot retract {value!r} from an empty average")
        acc[0] -= number(value)
        acc[1] -= 1
        return acc

    def merge(self, acc, other):
        return [acc[0] + other[0], acc[1] + other[1]]

    def get_result(self, acc):
        return acc[0] / acc[1] if acc[1] else None


@weir.aggregate
class WeightedAvg(weir.AggregateFunction):
    """`sum(value * weight) / sum(weight)` of `{"value": v, "weight": w}` records; the
    accumulator is `[weighted_sum, weight_sum]`."""

    def create_accumulator(self):
        return [0.0, 0.0]

    def add(self, acc, v):
        value, weight = number(v["value"]), number(v["weight"])
        acc[0] += value * weight
        acc[1] += weight
        return acc

    def retract(self, acc, v):
        value, weight = number(v["value"]), number(v["weight"])
        acc[0] -= value * weight
        acc[1] -= weight
        return acc

    def merge(self, acc, other):
        return [acc[0] + other[0], acc[1] + other[1]]

    def get_result(self, acc):
        return acc[0] / acc[1] if acc[1] != 0 else None


@weir.aggregate
class DistinctCount(weir.AggregateFunction):
    """Number of distinct strings; the accumulator is the set itself (exact). No retract: a
    set cannot tell whether another copy of a value is still in the window."""

    def create_accumulator(self):
        return set()

    def add(self, seen, value):
        if type(value) is not str:
            raise TypeError(f"expected a string, got {type(value).__name__} {value!r}")
        seen.add(value)
        return seen

    def merge(self, seen, other):
        seen |= other
        return seen

    def get_result(self, seen):
        return len(seen)


def millis(value):
    """A latency: a bare number, or a record's `latency_ms` (other fields ignored)."""
    ms = float(number(value["latency_ms"] if type(value) is dict else value))
    if isnan(ms):
        raise ValueError("a latency of NaN has no place in a percentile")
    return ms


@weir.aggregate
class P95(weir.AggregateFunction):
    """Exact 95th percentile by nearest rank; the accumulator is every value, sorted."""

    def create_accumulator(self):
        return []

    def add(self, values, value):
        insort(values, millis(value))
        return values

    def retract(self, values, value):
        ms = millis(value)
        at = bisect_left(values, ms)
        if at == len(values) or values[at] != ms:
            raise ValueError(f"cannot retract {ms}: it is not in the accumulator")
        del values[at]
        return values

    def merge(self, values, other):
        return list(merge_sorted(values, other))

    def get_result(self, values):
        # Nearest rank: the smallest value with at least 95% of the values at or below it.
        if not values:
            return None
        rank = max(1, -(-len(values) * 95 // 100))
        return values[rank - 1]


@weir.aggregate
class Count(weir.AggregateFunction):
    """Number of values, whatever they are; the accumulator is the count itself (an int),
    as the Rust plugin's is a u64."""

    def create_accumulator(self):
        return 0

    def add(self, n, value):
        return n + 1

    def retract(self, n, value):
        if n == 0:
            raise ValueError("cannot retract a value from a count of 0")
        return n - 1

    def merge(self, n, other):
        return n + other

    def get_result(self, n):
        return n
