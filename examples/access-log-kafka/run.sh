#!/usr/bin/env bash
# The access-log-kafka example end to end on this machine: a private PostgreSQL server in a
# temporary folder, `weir dev kafka` with the sample log loaded, the job (bounded), and the
# table it filled. Usage: run.sh WEIR_BINARY   (`just access-log-kafka` passes it).
set -euo pipefail
weir=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pg_bin/initdb" ] || { echo "PostgreSQL server binaries not found: run \`just setup\`" >&2; exit 1; }
tmp=$(mktemp -d)
as_pg=()
if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); chown postgres "$tmp"; fi
cleanup() {
    [ -n "${kafka_pid:-}" ] && kill "$kafka_pid" 2>/dev/null || true
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$tmp/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${as_pg[@]}" "$pg_bin/initdb" -D "$tmp/pg" -U postgres -A trust >/dev/null
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$tmp/pg" -l "$tmp/pg.log" -o "-p $port -k $tmp -c listen_addresses=127.0.0.1" -w start >/dev/null
export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
psql -q "$DATABASE_URL" -f "$here/schema.sql"
"$weir" dev kafka --topic access-log:2 --load "access-log=$here/../access-log/access.log" \
    --bootstrap-file "$tmp/bootstrap" >/dev/null &
kafka_pid=$!
for _ in $(seq 100); do [ -s "$tmp/bootstrap" ] && break; sleep 0.1; done
export KAFKA_BOOTSTRAP=$(cat "$tmp/bootstrap") KAFKA_BOUNDED=latest-offset
echo "== Kafka (weir dev kafka) at $KAFKA_BOOTSTRAP, PostgreSQL at $DATABASE_URL"
(cd "$tmp" && "$weir" run "$here/job.yaml" --summary --no-api)
echo "== url_counts"
psql "$DATABASE_URL" -c 'SELECT key AS url, to_timestamp(window_start / 1000) AT TIME ZONE '"'UTC'"' AS minute, count FROM url_counts ORDER BY window_start, key'
