#!/usr/bin/env bash
# Latency of one `fleetkey device add` (target: median <= 3 ms), with hyperfine.
# A registry of 1,000 devices, then RUNS more adds, each with a new id (hyperfine -L gives one
# benchmark of one run per id), as a provisioning script calls it. The key file is unencrypted
# (init --no-passphrase): with a passphrase every command also pays for Argon2id, by design; the
# script measures that case too.
set -euo pipefail
fleetkey=$(realpath "${1:-build/fleetkey}")
runs=${RUNS:-30}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

median() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, statistics, sys
times = sorted(r["times"][0] * 1000 for r in json.load(open(sys.argv[1]))["results"])
print(f"{sys.argv[2]}: median {statistics.median(times):.2f} ms, min {times[0]:.2f} ms, "
      f"max {times[-1]:.2f} ms over {len(times)} runs")
PY
}

measure() { # $1 = label, $2 = number of runs, then extra fleetkey options
  local label=$1 n=$2
  shift 2
  local ids
  ids=$(seq -s, 1 "$n" | sed 's/\([0-9]*\)/BENCH-\1/g')
  hyperfine -N --runs 1 -L id "$ids" --export-json "$work/out.json" "$fleetkey -q $* device add {id}" >/dev/null 2>&1
  median "$work/out.json" "$label"
}

export FLEETKEY_HOME="$work/plain"
"$fleetkey" -q init --no-passphrase
for i in $(seq 1 1000); do "$fleetkey" -q device add "SN-$i"; done
hyperfine -N --warmup 5 --runs 30 "$fleetkey --version" 2>/dev/null | grep -E "Time" | sed 's/^ */fleetkey --version (process start): /'
measure "device add" "$runs"

printf 'bench\n' > "$work/pass"
chmod 600 "$work/pass"
export FLEETKEY_HOME="$work/encrypted"
"$fleetkey" -q --passphrase-file "$work/pass" init --kdf moderate
measure "device add with an encrypted key file (Argon2id moderate)" 5 --passphrase-file "$work/pass"
