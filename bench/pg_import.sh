#!/usr/bin/env bash
# The PostgreSQL registry (issue 19): `fleetkey device import` of 1,000,000 devices into PostgreSQL
# on this machine (target <= 5 s wall), four stations importing 250,000 each at once (<= 8 s), the
# same two on SQLite in the same run, and `token verify -` against PostgreSQL (>= 500,000 tokens/s).
# The server is a throwaway cluster on a UNIX socket in a temporary directory
# (tests/cli/pg_cluster.py --durable: PostgreSQL's default fsync and synchronous_commit).
# Run by hand: bench/pg_import.sh [path/to/fleetkey]. Numbers go in bench/pg.md.
set -euo pipefail
cd "$(dirname "$0")/.."
FK=$(realpath "${1:-build/fleetkey}")
N=${N:-1000000}
TOKENS=${TOKENS:-1000000}
W=$(mktemp -d /tmp/fleetkey-bench-pg.XXXXXX)
chmod 755 "$W"
STATE=$W/cluster.json
cleanup() { /usr/bin/python3 tests/cli/pg_cluster.py stop "$STATE" || true; rm -rf "$W"; }
trap cleanup EXIT
export FLEETKEY_ACTOR=bench
/usr/bin/python3 tests/cli/pg_cluster.py start "$STATE" --durable
SOCK=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["socket"])' "$STATE")
BIN=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["bin"])' "$STATE")
psql() { "$BIN/psql" -qAt -h "$SOCK" -U postgres "$@"; }

echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "# $("$BIN/postgres" --version), server and client on this machine"
awk -v n="$N" 'BEGIN { print "id"; for (i = 0; i < n; i++) printf "SN-%08d\n", i }' > "$W/devices.csv"
q=$((N / 4))
for s in 0 1 2 3; do
  awk -v n="$q" -v s="$s" 'BEGIN { print "id"; for (i = 0; i < n; i++) printf "ST%d-%08d\n", s, i }' > "$W/station$s.csv"
done

n=0
fresh() { # fresh BACKEND: a new home and an empty registry, initialised; sets FLEETKEY_REGISTRY
  n=$((n + 1))
  export FLEETKEY_HOME=$W/home$n
  if [ "$1" = postgresql ]; then
    psql -d postgres -c "CREATE DATABASE bench$n"
    export FLEETKEY_REGISTRY="postgresql:///bench$n?host=$SOCK&user=postgres"
  else
    export FLEETKEY_REGISTRY=$FLEETKEY_HOME/registry.db
  fi
  "$FK" init --no-passphrase >/dev/null
}
DATA=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["data"])' "$STATE")
# CPU time (clock ticks) of the server: the postmaster's reaped children and its live ones. The
# machine is shared, so the wall time alone does not tell the server's work from the wait for a core.
server_ticks() {
  local pm t p
  pm=$(head -1 "$DATA/postmaster.pid")
  t=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat")
  for p in $(pgrep -P "$pm"); do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}
TICK=$(getconf CLK_TCK)
wall() { # wall LABEL COMMAND...: runs it once (its output discarded), prints wall, client and server CPU time
  local t0 t1 s0 s1 c
  sleep 0.5 # the previous command's backend reaped
  s0=$(server_ticks)
  t0=$(date +%s.%N)
  c=$( { /usr/bin/time -f '%U %S' "${@:2}" >/dev/null; } 2>&1 | tail -1)
  t1=$(date +%s.%N)
  sleep 0.5
  s1=$(server_ticks)
  awk -v l="$1" -v a="$t0" -v b="$t1" -v c="$c" -v s=$((s1 - s0)) -v hz="$TICK" -v pg="${FLEETKEY_REGISTRY%%:*}" \
    -v load="$(cut -d' ' -f1 /proc/loadavg)" \
    'BEGIN { split(c, u, " "); printf "%s: %.2f s wall (client CPU %.2f s", l, b - a, u[1] + u[2];
             if (pg == "postgresql") printf ", server CPU %.2f s", s / hz; printf ", load %s)\n", load }'
}
# Four stations at once, each its own process; fails when one of them fails.
FOUR='pids=(); for s in 0 1 2 3; do "$0" device import "$1/station$s.csv" >/dev/null & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || exit 1; done'

for backend in postgresql sqlite; do
  for run in 1 2 3; do
    fresh $backend
    wall "$backend: device import of $N devices (run $run)" "$FK" device import "$W/devices.csv"
  done
  [ "$backend" = postgresql ] && echo "  rows: $(psql -d "bench$n" -c 'SELECT count(*) FROM devices')"
  for run in 1 2 3; do
    fresh $backend
    wall "$backend: four stations of $q at once (run $run)" bash -c "$FOUR" "$FK" "$W"
  done
done

echo "## token verify - against PostgreSQL ($TOKENS CWTs, 1,000 revoked tokens in the registry)"
fresh postgresql
"$FK" device add LOCK-1 >/dev/null
"$FK" user add alice >/dev/null
"$FK" user grant alice --device LOCK-1 --role owner >/dev/null
psql -d "bench$n" -c "INSERT INTO revocations (id, kind, token_id, reason, created)
  SELECT 1000 + g, 'token', lpad(to_hex(g), 32, '0'), 'bench', '2026-01-01T00:00:00Z' FROM generate_series(1, 1000) AS g"
key=$("$FK" token key --for cwt)
/usr/bin/python3 bench/gen_tokens.py cwt "$key" v1 "$TOKENS" "$(date +%s)" > "$W/cwt.txt"
"$FK" token verify - < "$W/cwt.txt" > "$W/cwt.out" || true
echo "  valid: $(grep -c '"valid":true' "$W/cwt.out") of $TOKENS"
for run in 1 2 3; do
  t0=$(date +%s.%N)
  "$FK" token verify - < "$W/cwt.txt" > /dev/null || true
  t1=$(date +%s.%N)
  awk -v r="$run" -v n="$TOKENS" -v a="$t0" -v b="$t1" \
    'BEGIN { printf "token verify - (PostgreSQL, run %d): %.2f s wall, %.0f tokens/s\n", r, b - a, n / (b - a) }'
done
