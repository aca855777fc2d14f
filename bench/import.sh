#!/usr/bin/env bash
# Benchmarks `fleetkey device import` on 1,000,000 generated serials against (a) the Python
# reference (bench/import_reference.py) and (b) a shell loop over `openssl kdf` per device
# (timed on 1,000, extrapolated), plus peak RSS, `device list` of the million, and a single
# `device add`. Run by hand: bench/import.sh [path/to/fleetkey]. Numbers go in bench/import.md.
set -euo pipefail
cd "$(dirname "$0")/.."
FK=$(realpath "${1:-build/fleetkey}")
N=${N:-1000000}
RUNS=${RUNS:-5}
W=$(mktemp -d /tmp/fleetkey-bench-import.XXXXXX)
trap 'rm -rf "$W"' EXIT
export FLEETKEY_HOME=$W/home FLEETKEY_ACTOR=bench

echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "# generating $N serials"
awk -v n="$N" 'BEGIN { print "id"; for (i = 0; i < n; i++) printf "SN-%08d\n", i }' > "$W/devices.csv"
awk -v n="$N" 'BEGIN { print "id,model"; for (i = 0; i < n; i++) printf "SN-%08d,lock-v2\n", (i * 7919) % n }' \
  > "$W/shuffled.csv"
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) printf "{\"id\":\"SN-%08d\"}\n", i }' > "$W/devices.jsonl"
fresh="rm -rf $W/home $W/keys.jsonl && $FK init --no-passphrase >/dev/null"

echo "## fleetkey device import, $N sorted rows"
hyperfine --runs "$RUNS" --prepare "$fresh" --export-json "$W/import.json" "$FK device import $W/devices.csv"
echo "## ... with --keys-out"
hyperfine --runs "$RUNS" --prepare "$fresh" "$FK device import $W/devices.csv --keys-out $W/keys.jsonl"
echo "## ... unsorted input with a model column"
hyperfine --runs 2 --prepare "$fresh" "$FK device import $W/shuffled.csv"
echo "## ... JSON Lines"
hyperfine --runs 2 --prepare "$fresh" "$FK device import $W/devices.jsonl"

echo "## phases and peak RSS (one run each)"
eval "$fresh"
/usr/bin/time -f "import: %e s wall, %U s user, %S s sys, peak RSS %M KiB" "$FK" -v device import "$W/devices.csv"
eval "$fresh"
/usr/bin/time -f "import --keys-out: %e s wall, %U s user, %S s sys, peak RSS %M KiB" \
  "$FK" -v device import "$W/devices.csv" --keys-out "$W/keys.jsonl"
/usr/bin/time -f "device list --json of $N: %e s wall, peak RSS %M KiB" "$FK" --json device list | wc -l

echo "## Python reference (csv + hmac + sqlite3 executemany, one transaction)"
mk=$(openssl rand -hex 32)
hyperfine --runs 3 --prepare "$fresh" \
  "/usr/bin/python3 bench/import_reference.py $W/devices.csv $W/home/registry.db $mk"
eval "$fresh"
/usr/bin/time -f "reference: %e s wall, peak RSS %M KiB" \
  /usr/bin/python3 bench/import_reference.py "$W/devices.csv" "$W/home/registry.db" "$mk"

echo "## shell loop, openssl kdf + openssl dgst per device, 1,000 devices (x1000 for 1M)"
prk=$(printf '%s' "$mk" | xxd -r -p | openssl dgst -sha256 -mac HMAC -macopt key:fleetkey/v1 -binary | xxd -p -c 64)
cat > "$W/loop.sh" <<LOOP
set -e
for i in \$(seq -f '%08g' 0 999); do
  id="SN-\$i"
  info="000664657669636500\$(printf '%02x' \${#id})\$(printf '%s' "\$id" | xxd -p)"
  key=\$(openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt mode:EXPAND_ONLY -kdfopt hexkey:$prk \
        -kdfopt hexinfo:\$info HKDF | tr -d ':')
  fp=\$( (printf 'fleetkey/v1 fingerprint'; printf '%s' "\$key" | xxd -r -p) | openssl dgst -sha256 -r | cut -c1-32)
  echo "INSERT INTO devices (id, key_version, fingerprint, created) VALUES ('\$id', 1, '\$fp', '2026-01-01T00:00:00Z');"
done > $W/loop.sql
(echo 'BEGIN;'; cat $W/loop.sql; echo 'COMMIT;') | sqlite3 $W/home/registry.db
LOOP
hyperfine --runs 1 --prepare "$fresh" "bash $W/loop.sh"

echo "## single device add (unencrypted key): 30 runs, each a new id, on the empty registry and on the million"
# hyperfine's parameter scan gives every run its own id (D-1 ... D-30); the median is over the runs.
median() {
  python3 -c "import json, statistics, sys
t = [x * 1e3 for r in json.load(open(sys.argv[1]))['results'] for x in r['times']]
print(f'{sys.argv[2]}: median {statistics.median(t):.1f} ms, min {min(t):.1f} ms, max {max(t):.1f} ms over {len(t)} runs')" "$@"
}
eval "$fresh"
"$FK" device add warm-up >/dev/null
hyperfine -N --runs 1 --parameter-scan n 1 30 --export-json "$W/add.json" "$FK device add D-{n}" >/dev/null 2>&1
median "$W/add.json" "device add"
hyperfine -N --runs 30 --warmup 3 --export-json "$W/version.json" "$FK --version" >/dev/null 2>&1
median "$W/version.json" "fleetkey --version (process start, the floor)"
"$FK" device import "$W/devices.csv" >/dev/null
hyperfine -N --runs 1 --parameter-scan n 31 60 --export-json "$W/add1m.json" "$FK device add D-{n}" >/dev/null 2>&1
median "$W/add1m.json" "device add, registry of 1M"
