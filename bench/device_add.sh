#!/usr/bin/env bash
# Latency of one `fleetkey device add` (target: median <= 3 ms), with hyperfine.
# Each timed run registers the same id into a registry of constant size: --prepare deletes it
# again between runs. The key file is unencrypted (init --no-passphrase): with a passphrase,
# every command also pays for Argon2id, which is the point of it (see the note printed below).
set -euo pipefail
fleetkey=$(realpath "${1:-build/fleetkey}")
runs=${RUNS:-30}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export FLEETKEY_HOME="$work/home"
"$fleetkey" -q init --no-passphrase
for i in $(seq 1 1000); do echo "SN-$i"; done > "$work/ids"
while read -r id; do "$fleetkey" -q device add "$id"; done < "$work/ids"   # a registry with 1,000 devices
reg="$FLEETKEY_HOME/registry.db"
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/add.json" \
  --prepare "sqlite3 $reg \"DELETE FROM devices WHERE id = 'BENCH-1'\"" \
  "$fleetkey -q device add BENCH-1"
python3 - "$work/add.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"device add: median {r['median'] * 1000:.2f} ms, mean {r['mean'] * 1000:.2f} ms, "
      f"min {r['min'] * 1000:.2f} ms, max {r['max'] * 1000:.2f} ms over {len(r['times'])} runs")
PY
pf="$work/pass"; printf 'bench\n' > "$pf"; chmod 600 "$pf"
export FLEETKEY_HOME="$work/enc"
"$fleetkey" -q --passphrase-file "$pf" init --kdf moderate
hyperfine -N --warmup 1 --runs 5 --export-json "$work/enc.json" \
  --prepare "sqlite3 $FLEETKEY_HOME/registry.db \"DELETE FROM devices WHERE id = 'BENCH-1'\"" \
  "$fleetkey -q --passphrase-file $pf device add BENCH-1" >/dev/null
python3 - "$work/enc.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"device add with an encrypted key file (Argon2id moderate): median {r['median'] * 1000:.0f} ms")
PY
