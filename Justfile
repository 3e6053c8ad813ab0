# Weir tasks. On a fresh machine: `cargo install just`, then `just demo` or `just test`.
# Every recipe installs what it needs (Rust wasm target, the Python SDK venv) by itself.

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := justfile_directory() / ".venv"
# One build of the whole workspace (all targets) for everything: building `-p weir` alone
# would unify features differently and compile wasmtime a second time.
target_dir := env_var_or_default("CARGO_TARGET_DIR", justfile_directory() / "target")
weir := target_dir / "release" / "weir"
componentize_py := "componentize-py==0.25.1"
# PyFlink for the benches that run Flink beside Weir (gitignored, as .venv).
flink_venv := justfile_directory() / ".anchors" / "flink"

# List the recipes.
default:
    @just --list

# Install the tool chain: the wasm32-wasip2 target, the Python SDK venv and the PostgreSQL
# server binaries for the postgres sink's tests (idempotent).
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
    # The PostgreSQL server binaries: tests/postgres.rs and the postgres bench start private clusters.
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
    fi
    stamp="{{venv}}/.weir-setup"
    want="{{componentize_py}} pytest sdk/python"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        python3 -m venv "{{venv}}"
        "{{venv}}/bin/pip" install --quiet --disable-pip-version-check "{{componentize_py}}" pytest
        "{{venv}}/bin/pip" install --quiet --disable-pip-version-check -e sdk/python
        echo "$want" > "$stamp"
    fi

# Build the workspace: the weir binary, the libraries, tests, examples and benches.
build:
    cargo build --release --workspace --all-targets

# Build every plugin under plugins/ into plugins/<dir>/<dir>.wasm with `weir plugin build`.
plugins: setup build
    #!/usr/bin/env bash
    set -euo pipefail
    for dir in plugins/*/; do
        dir=${dir%/}; name=$(basename "$dir"); out="$dir/$name.wasm"
        if [ -f "$dir/app.py" ]; then
            # componentize-py takes seconds: rebuild only when the plugin or the SDK changed.
            newer=$(find "$dir" sdk/python/weir wit -name '*.py' -newer "$out" -o -name '*.wit' -newer "$out" 2>/dev/null | head -1 || true)
            if [ -f "$out" ] && [ -z "$newer" ]; then continue; fi
        fi
        {{weir}} plugin build "$dir"
    done

# The first program (Flink's classic), with a Rust and with a Python map plugin.
demo: plugins
    @echo "== first program, map in Rust (examples/first-program/job.yaml)"
    @{{weir}} run examples/first-program/job.yaml
    @echo "== first program, map in Python (examples/first-program/job-python.yaml)"
    @{{weir}} run examples/first-program/job-python.yaml

# The access-log job reading Kafka (`weir dev kafka`) and upserting per-URL minute counts into
# a private PostgreSQL server (examples/access-log-kafka).
access-log-kafka: plugins
    examples/access-log-kafka/run.sh {{weir}}

# Every test: Rust unit and integration tests, the Python SDK's and the Python plugins' tests
# (one pytest per plugin folder but the first: each plugin's module is `app`, and the first import wins).
test: plugins
    cargo test --release --workspace
    {{venv}}/bin/python -m pytest -q sdk/python plugins/upper-python
    {{venv}}/bin/python -m pytest -q plugins/stats-python
    {{venv}}/bin/python -m pytest -q plugins/process-python

# Throughput and latency figures (JSON on stdout): the map pipeline, the state backend, the
# keyed window count (built in, Rust UDAF, Python UDAF) and the keyed count in value state
# (Rust process plugin vs native operator), and the pause a hot deploy causes (p50/p99 added
# latency around swaps of a running map, records/s before/during/after), and checkpoints:
# the keyed window job's events/s with checkpoints every 1 s vs off (goal: at most 5 % loss),
# checkpoint duration and size and state on disk for 1 M keys in a process plugin's value
# state, and recovery time from SIGKILL of `weir run` to first output after the restart;
# Kafka -> Wasm map -> Kafka records/s against librdkafka's mock cluster, at-least-once and
# exactly-once; WEIR_BENCH_EVENTS sets the events, default 10 M (checkpoints: 20 M, 3
# interleaved runs each; kafka: 1 M). Apart, as they take longer or need a peer:
# `just bench-nexmark` (Nexmark q0..q8) and `just bench-joins` (the joins beside Flink 2.3).
bench: plugins
    cargo bench --workspace --bench pipeline
    cargo bench --workspace --bench state
    cargo bench --workspace --bench windows
    cargo bench --workspace --bench keyed_count
    cargo bench --workspace --bench hot_swap
    cargo bench --workspace --bench checkpoints
    cargo bench --workspace --bench kafka
    cargo bench --workspace --bench postgres

# The exactly-once soak: the kill -9 test with 100 kills (CI runs 20); WEIR_KILL_SEED
# replays a schedule.
soak: plugins
    WEIR_KILLS=${WEIR_KILLS:-100} cargo test --release --workspace --test checkpoints killed_at_random_moments -- --nocapture

# The Nexmark suite (benches/nexmark/q0..q8.yaml): events/s, per core, p99 latency and peak
# RSS per query, and the plugin/native ratio of q0..q2; a table on stderr, JSON on stdout.
# WEIR_NEXMARK_EVENTS sets the events per query (default 800 k, about a minute on 2 cores);
# WEIR_NEXMARK_QUERIES=q1,q5 runs a subset.
bench-nexmark: plugins
    cargo bench --workspace --bench nexmark

# Weir's window join (10 s tumbling) and interval join (-5 s..+10 s) beside Flink 2.3's SQL
# joins of the same rows in the same run (benches/peers/flink_joins.py, in a PyFlink venv made
# under .anchors/ if missing; needs Java 17): events/s, per CPU-second, p99 latency, state
# held and the matches, checked against the answer worked out from the rows; JSON on stdout.
# WEIR_BENCH_JOIN_ROWS (per stream, default 10 M) and WEIR_BENCH_JOIN_KEYS (default 1 M) set
# the sizes; WEIR_BENCH_NO_PEERS=1 leaves Flink out.
bench-joins:
    #!/usr/bin/env bash
    set -euo pipefail
    export WEIR_FLINK_VENV="${WEIR_FLINK_VENV:-{{flink_venv}}}"
    if [ "${WEIR_BENCH_NO_PEERS:-0}" = 0 ] && ! "$WEIR_FLINK_VENV/bin/python" -c 'import pyflink' 2>/dev/null; then
        python3 -m venv "$WEIR_FLINK_VENV"
        "$WEIR_FLINK_VENV/bin/pip" install --quiet --disable-pip-version-check apache-flink==2.3.0
    fi
    cargo bench --workspace --bench joins

# Format and lint, and check that the host's modules import only downward (decision 0011).
lint:
    cargo fmt --all --check
    cargo clippy --release --workspace --all-targets -- -D warnings
    cargo test --release -p weir-tests --test layers
