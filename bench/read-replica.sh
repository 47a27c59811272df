#!/usr/bin/env bash
# Stocks from a standby: LOMS's Stocks RPS with LOMS_READ_URL pointing at a
# streaming-replication standby on the same machine, against the same LOMS
# reading its primary, in interleaved rounds; prints each round and the
# medians' ratio.
#
#   bench/read-replica.sh [MINIZON_BINARY] [ROUNDS (3)] [SECONDS (10)] [CLIENTS (16)]
#
# Everything runs from the machine's own Postgres binaries in a temporary
# directory (as the postgres user when root), removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-}
rounds=${2:-3}
secs=${3:-10}
clients=${4:-16}
work=$(mktemp -d /var/tmp/minizon-read-replica.XXXXXX)
chmod 755 "$work"
if [ -z "$bin" ]; then
  go build -o "$work/minizon" ./cmd/minizon
  bin=$work/minizon
fi
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
primary_port=$(free_port)
standby_port=$(free_port)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$pgbin/pg_ctl" stop -m immediate -D "$work/standby" >/dev/null 2>&1 || true
  as_pg "$pgbin/pg_ctl" stop -m immediate -D "$work/primary" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] && chown postgres "$work"

# A durable primary (the defaults: fsync and synchronous_commit on) and an
# asynchronous hot standby copied from it.
as_pg "$pgbin/initdb" -D "$work/primary" -U postgres --auth=trust >/dev/null
as_pg "$pgbin/pg_ctl" start -w -D "$work/primary" -l "$work/primary.log" \
  -o "-p $primary_port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work -c max_connections=200" >/dev/null
as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$primary_port" -U postgres loms
as_pg "$pgbin/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres -D "$work/standby" -X stream -R
as_pg "$pgbin/pg_ctl" start -w -D "$work/standby" -l "$work/standby.log" \
  -o "-p $standby_port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work -c max_connections=200" >/dev/null

primary="postgres://postgres@127.0.0.1:$primary_port/loms?sslmode=disable"
standby="postgres://postgres@127.0.0.1:$standby_port/loms?sslmode=disable"

# run_loms READ_URL: starts LOMS (the demo stock seeded on the primary) and
# sets addr once it is healthy.
run_loms() {
  addr=127.0.0.1:$(free_port)
  DATABASE_URL=$primary LOMS_READ_URL=$1 KAFKA_BROKERS=127.0.0.1:1 MINIZON_SEED=true MINIZON_ADDR=$addr \
    MINIZON_LOG_LEVEL=warn "$bin" loms >>"$work/loms.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 240); do
    if "$bin" healthcheck "$addr" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  echo "LOMS did not start:" >&2
  tail -n 20 "$work/loms.log" >&2
  return 1
}

stocks_rps() {
  "$bin" bench -addr "http://$1" -scenario stocks -c "$clients" -d "${secs}s" -warmup 2s -json 2>/dev/null |
    python3 -c 'import json,sys; print(round(json.load(sys.stdin)["rps"]))'
}

without=()
with=()
for r in $(seq 1 "$rounds"); do
  for mode in primary standby; do
    url=
    [ "$mode" = standby ] && url=$standby
    run_loms "$url"
    rps=$(stocks_rps "$addr")
    kill "${pids[-1]}"
    wait "${pids[-1]}" 2>/dev/null || true
    if [ "$mode" = standby ]; then with+=("$rps"); else without+=("$rps"); fi
    echo "round $r: Stocks from the $mode: $rps requests/s ($clients clients, ${secs}s)"
  done
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m_without=$(median "${without[@]}")
m_with=$(median "${with[@]}")
awk -v a="$m_with" -v b="$m_without" 'BEGIN { printf "medians: %d requests/s from the standby, %d from the primary: %.2fx\n", a, b, a / b }'
