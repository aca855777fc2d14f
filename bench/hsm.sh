#!/usr/bin/env bash
# The master key in a PKCS#11 token (SoftHSM2), against an unencrypted key file: `device import` of
# IMPORT_N generated ids (default 1,000,000) and the latency of `device add` and `user grant`; then
# where the import's time goes (perf, if installed and allowed: PERF=0 skips it).
#
# The SoftHSM2 token lives in the work directory (SOFTHSM2_CONF), never in /var/lib/softhsm. As in
# agent.sh, the CPU time of the fleetkey process (user + sys of the child) is reported beside wall time:
# SoftHSM2 runs inside fleetkey, so here it includes the token's work.
# Usage: bench/hsm.sh [build/fleetkey]
set -euo pipefail
import_n=${IMPORT_N:-1000000}
import_runs=${IMPORT_RUNS:-2}
runs=${RUNS:-20}
module=${FLEETKEY_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
install -m 0755 "$(realpath "${1:-build/fleetkey}")" "$work/fleetkey"
fk=$work/fleetkey
export FLEETKEY_ACTOR=bench FLEETKEY_PKCS11_PIN=1234 SOFTHSM2_CONF=$work/softhsm2.conf
unset FLEETKEY_AGENT FLEETKEY_PASSPHRASE FLEETKEY_PASSPHRASE_FILE FLEETKEY_PKCS11_PIN_FILE
mkdir "$work/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$work/tokens" >"$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label bench --pin 1234 --so-pin 87654321 >/dev/null
uri="pkcs11:token=bench?module-path=$module"
echo "fleetkey $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo '?'), $(softhsm2-util --version 2>/dev/null | head -1 | sed 's/^/SoftHSM2 /'), load $(cut -d' ' -f1-3 /proc/loadavg)"

/usr/bin/python3 - "$work/ids.csv" "$import_n" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("id\n")
    f.writelines(f"SN-{i:08d}\n" for i in range(int(sys.argv[2])))
PY

# $1 = label; then the command. Appends "wall_ms cpu_ms" to $work/$label.times, RUNS times with {n}
# replaced by a new id (or once, with RUNS=1).
measure() {
  local label=$1
  shift
  /usr/bin/python3 - "$work/$label.times" "$runs" "$label" "$@" <<'PY'
import os, resource, subprocess, sys, time
out, runs, tag, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
with open(out, "a") as f:
    for n in range(runs):
        argv = [a.replace("{n}", f"{tag}-{time.monotonic_ns()}-{n}") for a in cmd]
        c, t = cpu(), time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        f.write(f"{(time.perf_counter() - t) * 1000} {(cpu() - c) * 1000}\n")
PY
}
summary() {
  /usr/bin/python3 - "$work/$1.times" "$2" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
t, c = [float(r[0]) for r in rows], [float(r[1]) for r in rows]
print(f"{sys.argv[2]:<48} wall median {statistics.median(t):9.2f} ms, min {min(t):9.2f}; "
      f"CPU median {statistics.median(c):9.2f} ms  ({len(t)} runs)")
PY
}

# Import: fresh homes each run, alternating.
for r in $(seq "$import_runs"); do
  rm -rf "$work/if" "$work/ih"
  "$fk" --home "$work/if" init --no-passphrase >/dev/null
  "$fk" --home "$work/ih" init --pkcs11 "${uri/token=bench/token=bench;object=imp$r}" >/dev/null
  runs=1 measure import_file "$fk" -q --home "$work/if" device import "$work/ids.csv"
  runs=1 measure import_hsm "$fk" -q --home "$work/ih" device import "$work/ids.csv"
done

# Latency: one home each, alternating rounds.
"$fk" --home "$work/lf" init --no-passphrase >/dev/null
"$fk" --home "$work/lh" init --pkcs11 "${uri/token=bench/token=bench;object=lat}" >/dev/null
for h in lf lh; do
  "$fk" --home "$work/$h" user add alice >/dev/null
  "$fk" --home "$work/$h" device add SN-G >/dev/null
done
rounds=${ROUNDS:-4}
for r in $(seq "$rounds"); do
  measure add_file "$fk" --home "$work/lf" device add SN-{n}
  measure add_hsm "$fk" --home "$work/lh" device add SN-{n}
  measure grant_file "$fk" --home "$work/lf" user grant alice --device SN-G --role owner
  measure grant_hsm "$fk" --home "$work/lh" user grant alice --device SN-G --role owner
done
summary import_file "device import of $import_n ids, key file"
summary import_hsm "device import of $import_n ids, SoftHSM2"
summary add_file "device add, --no-passphrase key file"
summary add_hsm "device add, SoftHSM2"
summary grant_file "user grant, --no-passphrase key file"
summary grant_hsm "user grant, SoftHSM2"

# Where the time goes: a profile of an import through the token (head closes its pipe early).
set +o pipefail
if [ "${PERF:-1}" = 1 ] && command -v perf >/dev/null; then
  n=$((import_n < 200000 ? import_n : 200000))
  head -n $((n + 1)) "$work/ids.csv" >"$work/ids_small.csv"
  rm -rf "$work/ip"
  "$fk" --home "$work/ip" init --pkcs11 "${uri/token=bench/token=bench;object=perf}" >/dev/null
  if perf record -q -g -o "$work/perf.data" "$fk" -q --home "$work/ip" device import "$work/ids_small.csv" 2>/dev/null; then
    echo "perf: top symbols (children included) of an import of $n ids through SoftHSM2"
    perf report -i "$work/perf.data" --stdio --children --sort dso,symbol 2>/dev/null | grep -E "^ +[0-9]" | grep -v "\[k\]\|\[unknown\]" | head -25
    echo "perf: by shared object (self)"
    perf report -i "$work/perf.data" --stdio --no-children --sort dso 2>/dev/null | grep -E '^ +[0-9]' | head -12
  fi
  # And of 20 `device add` through the token: what a one-device command pays besides its C_Sign.
  if perf record -q -F 20000 -g -o "$work/perf_add.data" -- bash -c \
    "for i in \$(seq 20); do '$fk' -q --home '$work/ip' device add SN-perf-\$i >/dev/null; done" 2>/dev/null; then
    echo "perf: 20 device add through SoftHSM2, by shared object (self)"
    perf report -i "$work/perf_add.data" --stdio --no-children --comm fleetkey --sort dso 2>/dev/null \
      | grep -E '^ +[0-9]' | head -12
    echo "perf: the same, top symbols (children included)"
    perf report -i "$work/perf_add.data" --stdio --children --comm fleetkey --sort dso,symbol 2>/dev/null \
      | grep -E '^ +[0-9]' | head -30
  fi
fi
