"""Per-record cost of `transform.apply` dispatch in this CPython, printed as JSON.

    python sdk/python/benches/dispatch.py [--rows 1024] [--batches 200]

Runs the benchmark UDF (`upper_name` of plugins/upper-python) over batches of records like
`{"id": 1, "name": "alice", "city": "paris", "score": 1.5}` through `weir._dispatch.apply`
(what the component runs) and through a naive row-by-row loop (json.loads / json.dumps
per row, try/except per row) as the baseline, and reports ns/record for both and the ratio.
Inside a component the same code runs in CPython-on-Wasm, several times slower.
"""

import argparse
import json
import timeit
from itertools import accumulate

import weir
from weir import _dispatch
from weir.testing import encode_batch


@weir.map
def upper_name(record):
    name = record["name"]
    record["name"] = name.upper()
    record["name_len"] = len(name)
    return record


def naive(fn, data, offsets):
    out, counts, errors = [], [], []
    for i in range(len(offsets) - 1):
        try:
            out.append(json.dumps(fn(json.loads(data[offsets[i] : offsets[i + 1]])), separators=(",", ":")).encode())
            counts.append(1)
        except Exception as exc:  # noqa: BLE001
            errors.append((i, f"{type(exc).__name__}: {exc}"))
            counts.append(0)
    return b"".join(out), list(accumulate(map(len, out), initial=0)), counts, errors


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()
    rows = [{"id": i, "name": "alice", "city": "paris", "score": 1.5} for i in range(args.rows)]
    data, offsets = encode_batch(rows)
    spec = upper_name.__weir__
    assert _dispatch.apply(spec, data, offsets)[:3] == naive(upper_name, data, offsets)[:3]

    def best(fn):
        per_batch = min(timeit.repeat(fn, number=max(1, args.batches // 5), repeat=5)) / max(1, args.batches // 5)
        return per_batch / args.rows * 1e9

    sdk_ns = best(lambda: _dispatch.apply(spec, data, offsets))
    naive_ns = best(lambda: naive(upper_name, data, offsets))
    udf_ns = best(lambda: [upper_name(dict(r)) for r in rows]) - best(lambda: [dict(r) for r in rows])
    print(json.dumps({
        "bench": "python_dispatch_upper_name",
        "rows_per_batch": args.rows,
        "row_bytes": len(data) // args.rows,
        "sdk_dispatch_ns_per_record": round(sdk_ns),
        "naive_per_row_ns_per_record": round(naive_ns),
        "udf_only_ns_per_record": round(udf_ns),
        "naive_over_sdk": round(naive_ns / sdk_ns, 2),
    }))


if __name__ == "__main__":
    main()
