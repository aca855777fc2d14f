#!/usr/bin/env bash
# Latency of one `fleetkey device add` (target: median <= 3 ms), with hyperfine.
#
# A registry of 1,000 devices, then ROUNDS x RUNS more adds, each with a new id (hyperfine -L gives
# one benchmark of one run per id), as a provisioning script calls it. The key file is unencrypted
# (init --no-passphrase): with a passphrase every command also pays for Argon2id, by design; the
# script measures that case too.
#
# This VM's host runs at different speeds from one minute to the next (the same binary's median has
# moved by 2x within an hour), so two baselines are measured in the same rounds, alternating with
# fleetkey:
#   /bin/true       starting a process at all;
#   sqlite_floor    the same SQLite transaction as `device add` in a minimal C program linked
#                   against the same static SQLite (bench/sqlite_floor.c), on a copy of the registry.
#                   It links libc dynamically, as C programs usually do; fleetkey is a static PIE
#                   (session 8), so it skips the dynamic loader the floor still runs.
# fleetkey's own cost is its median minus sqlite_floor's.
#
# Both binaries are measured as installed, copied into place with install(1): a file the linker has
# just written stays in the page cache as the linker wrote it, and every process started from it
# paid 0.28-0.40 ms more in this VM than one started from a byte-identical copy, or from the same
# file once the kernel had dropped and re-read it (bench/README.md, session 6). Users run installed
# copies; a freshly linked build/fleetkey measures the linker's write pattern.
set -euo pipefail
rounds=${ROUNDS:-5}
runs=${RUNS:-10}
here=$(dirname "$(realpath "$0")")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

install -m 0755 "$(realpath "${1:-build/fleetkey}")" "$work/fleetkey"
fleetkey=$work/fleetkey
cc -O2 -o "$work/sqlite_floor.linked" "$here/sqlite_floor.c" -l:libsqlite3.a -lm
install -m 0755 "$work/sqlite_floor.linked" "$work/sqlite_floor"

ids() { # $1 = prefix: RUNS ids, comma-separated
  seq -s, 1 "$runs" | sed "s/\([0-9]*\)/$1-\1/g"
}

# One round of one command: RUNS runs, appended (in ms) to $work/$label.times.
measure() { # $1 = label, then the command with {id}
  local label=$1 round=$2
  shift 2
  hyperfine -N --runs 1 -L id "$(ids "$label-$round")" --export-json "$work/out.json" "$*" >/dev/null 2>&1
  /usr/bin/python3 -c '
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(r["times"][0] * 1000)' "$work/out.json" >>"$work/$label.times"
}

summary() { # $1 = label, $2 = what
  /usr/bin/python3 - "$work/$1.times" "$2" "$runs" <<'PY'
import statistics, sys
t = [float(x) for x in open(sys.argv[1])]
n = int(sys.argv[3])
rounds = " ".join(f"{statistics.median(t[i:i + n]):.2f}" for i in range(0, len(t), n))
print(f"{sys.argv[2]}: median {statistics.median(t):.2f} ms, min {min(t):.2f}, max {max(t):.2f} "
      f"over {len(t)} runs; median of each round: {rounds}")
PY
}

export FLEETKEY_HOME="$work/plain"
"$fleetkey" -q init --no-passphrase
for i in $(seq 1 1000); do "$fleetkey" -q device add "SN-$i"; done
cp -a "$work/plain" "$work/floor"

for round in $(seq 1 "$rounds"); do
  hyperfine -N --runs "$runs" --export-json "$work/out.json" /bin/true >/dev/null 2>&1
  /usr/bin/python3 -c 'import json, sys; [print(t * 1000) for t in json.load(open(sys.argv[1]))["results"][0]["times"]]' \
    "$work/out.json" >>"$work/true.times"
  measure floor "$round" "$work/sqlite_floor" "$work/floor/registry.db" "{id}"
  measure add "$round" "$fleetkey" -q device add "{id}"
done
summary true "/bin/true (process start)"
summary floor "sqlite_floor (the same transaction in C)"
summary add "fleetkey device add"

printf 'bench\n' >"$work/pass"
chmod 600 "$work/pass"
export FLEETKEY_HOME="$work/encrypted"
"$fleetkey" -q --passphrase-file "$work/pass" init --kdf moderate
runs=5
measure encrypted 1 "$fleetkey" -q --passphrase-file "$work/pass" device add "{id}"
summary encrypted "device add with an encrypted key file (Argon2id moderate)"
