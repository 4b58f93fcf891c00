#!/usr/bin/env bash
# Starts the two-shard ClickHouse layout on this machine (HTTP 8123/8124, native TCP 9000/9001,
# loopback only) with its data under $1 (default ./clickhouse-data); stops both on Ctrl-C.
# Needs clickhouse-server (Debian: apt-get install clickhouse-server).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="$(mkdir -p "${1:-clickhouse-data}" && cd "${1:-clickhouse-data}" && pwd)"
sed "s|@DATA@|$data|g" "$here/users.xml" > "$data/users.xml"
pids=()
for n in 1 2; do
  mkdir -p "$data/shard$n"
  sed "s|@DATA@|$data|g" "$here/shard$n.xml" > "$data/shard$n.xml"
  clickhouse-server --config-file="$data/shard$n.xml" &
  pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null; wait' INT TERM EXIT
for port in 8123 8124; do
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/ping" >/dev/null && break
    sleep 0.2
  done
done
echo "two shards up: http://127.0.0.1:8123 (with the Distributed tables), http://127.0.0.1:8124"
echo "collectors: headlight serve --config $here/headlight.toml"
wait
