#!/usr/bin/env bash
# Latency of `device add` and `user grant` through the agent, against the same commands with an
# unencrypted key file (--no-passphrase) and with an encrypted one (the default Argon2id "moderate"
# cost, what the agent saves). Target (issue 21): through the agent within 1 ms of --no-passphrase.
#
# Alternating rounds (ROUNDS x RUNS runs of each, a new id per run) so that the VM's drifting speed
# hits every variant alike; the binary is measured as installed (see device_add.sh). Besides wall
# time, the CPU time of the fleetkey process (not the agent's, whose share of the work is one HMAC
# per key) is reported: on a loaded machine it is the steadier figure.
# Usage: bench/agent.sh [build/fleetkey]
set -euo pipefail
rounds=${ROUNDS:-5}
runs=${RUNS:-20}
work=$(mktemp -d)
agent_pid=
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
install -m 0755 "$(realpath "${1:-build/fleetkey}")" "$work/fleetkey"
fk=$work/fleetkey
export XDG_RUNTIME_DIR=$work FLEETKEY_ACTOR=bench
unset FLEETKEY_AGENT FLEETKEY_PASSPHRASE FLEETKEY_PASSPHRASE_FILE
printf 'bench passphrase\n' >"$work/pass"
chmod 600 "$work/pass"
"$fk" --home "$work/plain" init --no-passphrase >/dev/null
"$fk" --home "$work/enc" --passphrase-file "$work/pass" init >/dev/null
for h in plain enc; do
  "$fk" --home "$work/$h" user add alice >/dev/null
  "$fk" --home "$work/$h" --passphrase-file "$work/pass" device add SN-G >/dev/null
done
eval "$("$fk" --home "$work/enc" --passphrase-file "$work/pass" agent start)"
agent=$FLEETKEY_AGENT
unset FLEETKEY_AGENT # set only for the runs through the agent (measure's $3)
agent_pid=$(FLEETKEY_AGENT=$agent "$fk" --json agent status | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')

# $1 = label, $2 = round, $3 = the agent's socket or "-" for none; then the command, run RUNS times
# with {n} replaced by a new id. The environment is set by the measuring process: no env(1) in between.
measure() {
  local label=$1 round=$2 sock=$3
  shift 3
  /usr/bin/python3 - "$work/$label.times" "$runs" "$label-$round" "$sock" "$@" <<'PY'
import os, resource, subprocess, sys, time
out, runs, tag, sock, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
env = dict(os.environ)
if sock != "-":
    env["FLEETKEY_AGENT"] = sock
def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
with open(out, "a") as f:
    for n in range(runs):
        argv = [a.replace("{n}", f"{tag}-{n}") for a in cmd]
        c, t = cpu(), time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
        f.write(f"{(time.perf_counter() - t) * 1000} {(cpu() - c) * 1000}\n")
PY
}
summary() {
  /usr/bin/python3 - "$work/$1.times" "$2" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
t, c = [float(r[0]) for r in rows], [float(r[1]) for r in rows]
print(f"{sys.argv[2]:<52} wall median {statistics.median(t):8.2f} ms, min {min(t):8.2f}; "
      f"CPU (user+sys of fleetkey) median {statistics.median(c):7.2f} ms  ({len(t)} runs)")
PY
}
for r in $(seq "$rounds"); do
  measure add_plain "$r" - "$fk" --home "$work/plain" device add SN-{n}
  measure add_agent "$r" "$agent" "$fk" --home "$work/enc" device add SN-{n}
  measure grant_plain "$r" - "$fk" --home "$work/plain" user grant alice --device SN-G --role owner
  measure grant_agent "$r" "$agent" "$fk" --home "$work/enc" user grant alice --device SN-G --role owner
done
# Argon2id is slow: a few runs are enough.
runs=3 measure add_pass 1 - "$fk" --home "$work/enc" --passphrase-file "$work/pass" device add SN-{n}
runs=3 measure grant_pass 1 - "$fk" --home "$work/enc" --passphrase-file "$work/pass" user grant alice --device SN-G --role owner
summary add_plain "device add, --no-passphrase key file"
summary add_agent "device add, encrypted key file, through the agent"
summary add_pass "device add, encrypted key file (Argon2id)"
summary grant_plain "user grant, --no-passphrase key file"
summary grant_agent "user grant, encrypted key file, through the agent"
summary grant_pass "user grant, encrypted key file (Argon2id)"
FLEETKEY_AGENT=$agent "$fk" agent stop >/dev/null
agent_pid=

# `device import` of IMPORT_N devices (default 1M; 0 skips), alternating a fresh --no-passphrase
# home and a fresh encrypted home through its agent, IMPORT_RUNS times each.
n=${IMPORT_N:-1000000}
[ "$n" -gt 0 ] || exit 0
awk -v n="$n" 'BEGIN { print "id"; for (i = 0; i < n; i++) printf "SN-%08d\n", i }' >"$work/devices.csv"
for r in $(seq "${IMPORT_RUNS:-3}"); do
  rm -rf "$work/ip" "$work/ia"
  "$fk" --home "$work/ip" init --no-passphrase >/dev/null
  "$fk" --home "$work/ia" --passphrase-file "$work/pass" init --kdf interactive >/dev/null
  eval "$("$fk" --home "$work/ia" --passphrase-file "$work/pass" agent start)"
  agent=$FLEETKEY_AGENT agent_pid=$(FLEETKEY_AGENT=$agent "$fk" --json agent status | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
  unset FLEETKEY_AGENT
  runs=1 measure import_plain "$r" - "$fk" --home "$work/ip" device import "$work/devices.csv"
  runs=1 measure import_agent "$r" "$agent" "$fk" --home "$work/ia" device import "$work/devices.csv"
  FLEETKEY_AGENT=$agent "$fk" agent stop >/dev/null
  agent_pid=
done
summary import_plain "device import $n, --no-passphrase key file"
summary import_agent "device import $n, through the agent"
