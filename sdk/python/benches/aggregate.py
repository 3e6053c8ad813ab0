"""Throughput of `aggregate.add` dispatch in this CPython, printed as JSON.

    python sdk/python/benches/aggregate.py [--values 1024] [--accumulators 100] [--batches 200]

Folds batches of numbers into accumulators (value `i` into a random one of
`--accumulators`, as a window operator's batch spread over keys) with an `avg` UDAF
(`[sum, count]` accumulator, a type check per value, like plugins/stats-python's) through
`weir._aggregate.add`: decode all accumulators and values once, fold, encode each
accumulator once. Two baselines in the same run:
- `fold_only`: the same fold over already-decoded Python objects, no bytes at all (the
  floor: what the user's `add` and the loop cost);
- `naive_per_value`: marshal load, add, dump of the accumulator for every value (what one
  call per value would cost inside the component, before the call itself).
Inside a component the same code runs in CPython-on-Wasm, several times slower.
"""

import argparse
import json
import marshal
import random
import timeit

import weir
from weir import _aggregate
from weir._marshal_codec import join_rows


@weir.aggregate
class Avg(weir.AggregateFunction):
    def create_accumulator(self):
        return [0.0, 0]

    def add(self, acc, value):
        if type(value) is not float and type(value) is not int:
            raise TypeError(f"expected a number, got {type(value).__name__}")
        acc[0] += value
        acc[1] += 1
        return acc

    def merge(self, acc, other):
        return [acc[0] + other[0], acc[1] + other[1]]

    def get_result(self, acc):
        return acc[0] / acc[1] if acc[1] else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--values", type=int, default=1024)
    parser.add_argument("--accumulators", type=int, default=100)
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(7)
    values = [rng.uniform(0, 500) for _ in range(args.values)]
    groups = [rng.randrange(args.accumulators) for _ in range(args.values)]
    accs = [[rng.uniform(0, 1e4), rng.randrange(100)] for _ in range(args.accumulators)]
    acc_data, acc_offsets = join_rows([marshal.dumps(a, 2) for a in accs])
    data, offsets = join_rows([marshal.dumps(v, 2) for v in values])
    spec = Avg.__weir__
    udaf = spec.fn

    def sdk():
        return _aggregate.add(spec, acc_data, acc_offsets, data, offsets, groups)

    def fold_only():
        fresh = [list(a) for a in accs]
        add = udaf.add
        for g, v in zip(groups, values):
            fresh[g] = add(fresh[g], v)
        return fresh

    def naive_per_value():
        stored = [marshal.dumps(a, 2) for a in accs]
        for g, v in zip(groups, values):
            stored[g] = marshal.dumps(udaf.add(marshal.loads(stored[g]), v), 2)
        return stored

    out_data, out_offsets = sdk()
    got = [marshal.loads(out_data[a:b]) for a, b in zip(out_offsets, out_offsets[1:])]
    assert got == fold_only() == [marshal.loads(s) for s in naive_per_value()]

    def best(fn):
        number = max(1, args.batches // 5)
        return min(timeit.repeat(fn, number=number, repeat=5)) / number

    sdk_s, floor_s, naive_s = best(sdk), best(fold_only), best(naive_per_value)
    n = args.values
    print(json.dumps({
        "bench": "python_aggregate_add_avg",
        "values_per_batch": n,
        "accumulators": args.accumulators,
        "sdk_values_per_s": round(n / sdk_s),
        "sdk_ns_per_value": round(sdk_s / n * 1e9),
        "fold_only_ns_per_value": round(floor_s / n * 1e9),
        "naive_per_value_ns_per_value": round(naive_s / n * 1e9),
        "sdk_over_fold_only": round(sdk_s / floor_s, 2),
        "naive_over_sdk": round(naive_s / sdk_s, 2),
    }))


if __name__ == "__main__":
    main()
