# Flink SQL (Java runtime, no Python UDF) window join and interval join of two generated
# streams, parallelism 1, HashMap state backend: the same-run peer of host/benches/joins.rs.
#
# usage: python flink_joins.py ROWS KEYS window|interval
#        (PyFlink needs its venv's bin on PATH; `just bench-joins` sets it up)
#
# Both tables hold rows seq = 0..ROWS-1 with event time seq ms (1 ms per row, in order) and
# a key k in 0..KEYS-1 worked out from seq by the integer hash below, with other constants
# per table. host/benches/joins.rs generates the very same rows, so both engines join the
# same data and their matches can be compared pair for pair (count and checksum).
#
# - window: 10 s tumbling windows, a and b rows of one key in one window (SQL window join);
# - interval: b.ts - a.ts within -5 s..+10 s, both ends inclusive (Weir's
#   `between: {lower: -5 s, upper: 10 s}` with a on the left).
#
# Prints one JSON line: rows (per table), events (both tables), net_runtime_s (the job's own
# time from Flink's JobExecutionResult: JVM start and SQL planning excluded), wall_s (around
# the statement, planning included, as the anchors measure), rate (events / net runtime),
# cpu_s (user + system time of the JVM from the job's submission to its end: planning
# excluded, code generation in the tasks included), matches and checksum.
#
# The matches go to a `print` sink whose lines this script counts: the JVM inherits a file as
# its stdout. Each pair is also folded into an order-independent checksum (a sum of
# splitmix64 finalizers of (a.seq << 32 | b.seq)) that the Weir side computes the same way.
import json
import os
import re
import sys
import tempfile
import time

P = 2147483647  # 2^31 - 1: a prime whose square fits in a signed 64-bit integer
SIDES = {"a": (48271, 11), "b": (16807, 7)}  # per table: multiplier and addend
MASK = (1 << 64) - 1


def key_sql(multiplier, addend, keys):
    """k = x3 mod KEYS, with x1 = (seq * multiplier + addend) mod P and x_{n+1} = (x_n^2 + 1)
    mod P: every literal is a BIGINT so no product is computed in 32 bits."""
    big = lambda n: f"CAST({n} AS BIGINT)"
    mod = lambda e: f"MOD({e}, {big(P)})"
    x1 = mod(f"seq * {big(multiplier)} + {big(addend)}")
    x2 = mod(f"{x1} * {x1} + {big(1)}")
    x3 = mod(f"{x2} * {x2} + {big(1)}")
    return f"MOD({x3}, {big(keys)})"


def pair_hash(a_seq, b_seq):
    z = ((a_seq << 32) | b_seq) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def process_tree_cpu_s(root):
    """User + system seconds of `root`'s live descendants (the PyFlink gateway JVM)."""
    children = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append((int(pid), int(fields[11]) + int(fields[12])))
    ticks, todo = 0, [root]
    while todo:
        for pid, t in children.get(todo.pop(), []):
            ticks += t
            todo.append(pid)
    return ticks / os.sysconf("SC_CLK_TCK")


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in ("window", "interval"):
        sys.exit("usage: flink_joins.py ROWS KEYS window|interval")
    rows, keys, join = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

    # The JVM starts with the table environment and inherits fd 1: make that a file for the
    # print sink, and keep the real stdout for the figures.
    out = os.fdopen(os.dup(1), "w")
    printed = tempfile.NamedTemporaryFile(prefix="flink-joins-", suffix=".txt", delete=False)
    os.dup2(printed.fileno(), 1)

    from pyflink.table import EnvironmentSettings, TableEnvironment

    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    c = t_env.get_config()
    c.set("parallelism.default", "1")
    c.set("state.backend.type", "hashmap")
    c.set("table.local-time-zone", "UTC")
    for name, (multiplier, addend) in SIDES.items():
        t_env.execute_sql(f"""
CREATE TABLE {name} (
  seq BIGINT,
  k AS {key_sql(multiplier, addend, keys)},
  ts AS TO_TIMESTAMP_LTZ(seq, 3),
  WATERMARK FOR ts AS ts
) WITH ('connector'='datagen', 'rows-per-second'='1000000000',
  'fields.seq.kind'='sequence', 'fields.seq.start'='0', 'fields.seq.end'='{rows - 1}')""")
    t_env.execute_sql("""CREATE TABLE pairs (a_seq BIGINT, b_seq BIGINT)
  WITH ('connector'='print', 'print-identifier'='m')""")
    if join == "window":
        query = """INSERT INTO pairs SELECT l.seq, r.seq
  FROM (SELECT * FROM TABLE(TUMBLE(TABLE a, DESCRIPTOR(ts), INTERVAL '10' SECOND))) l
  JOIN (SELECT * FROM TABLE(TUMBLE(TABLE b, DESCRIPTOR(ts), INTERVAL '10' SECOND))) r
  ON l.k = r.k AND l.window_start = r.window_start AND l.window_end = r.window_end"""
    else:
        # a.ts in [b.ts - 10 s, b.ts + 5 s]  <=>  b.ts - a.ts in [-5 s, +10 s]
        query = """INSERT INTO pairs SELECT a.seq, b.seq FROM a, b
  WHERE a.k = b.k AND a.ts BETWEEN b.ts - INTERVAL '10' SECOND AND b.ts + INTERVAL '5' SECOND"""

    t = time.time()
    result = t_env.execute_sql(query)  # returns once the job is submitted
    cpu_submitted = process_tree_cpu_s(os.getpid())
    result.wait()
    wall = time.time() - t
    cpu = process_tree_cpu_s(os.getpid()) - cpu_submitted
    net_ms = result.get_job_client().get_job_execution_result().result().get_net_runtime()

    sys.stdout.flush()
    line = re.compile(r"^m> \+I\[(-?\d+), (-?\d+)\]$")
    matches, checksum, other = 0, 0, 0
    with open(printed.name) as f:
        for text in f:
            m = line.match(text.rstrip("\n"))
            if m:
                matches += 1
                checksum = (checksum + pair_hash(int(m.group(1)), int(m.group(2)))) & MASK
            elif text.startswith("m> "):
                other += 1  # a retraction or update: an inner join of appends makes none
    os.unlink(printed.name)
    if other:
        sys.exit(f"the print sink got {other} rows that are not inserts")
    events = 2 * rows
    net = net_ms / 1e3
    print(json.dumps({
        "engine": "flink", "join": join, "rows": rows, "keys": keys, "events": events,
        "net_runtime_s": round(net, 3), "wall_s": round(wall, 3), "rate": round(events / net),
        "cpu_s": round(cpu, 2), "matches": matches, "checksum": checksum,
    }), file=out, flush=True)


if __name__ == "__main__":
    main()
