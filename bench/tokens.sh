#!/usr/bin/env bash
# Bulk token verification: 1,000,000 distinct valid CWTs and JWTs through `fleetkey token verify -`,
# end to end (process start, registry and key loading, reading, verifying, writing JSON lines),
# compared with PyJWT decoding the same JWTs in one Python process. Results go in bench/tokens.md.
#
# usage: bench/tokens.sh [--no-sha-ext] [--no-fast-json] [--cwt-only] [BUILD_DIR]
#        env: COUNT (default 1000000), PYJWT_COUNT (default COUNT), RUNS (3)
# Each --no-* switch turns one claimed fast path off, so that its gain is measured, not asserted:
#   --no-sha-ext    SHA-256 on libsodium instead of the x86 SHA extensions (FLEETKEY_NO_SHA_EXT=1)
#   --no-fast-json  each verdict's JSON appended piece by piece, every piece checking the string's
#                   capacity, instead of written once into space reserved from its upper bound
#                   (FLEETKEY_NO_FAST_JSON=1); the output is the same bytes
set -euo pipefail
cd "$(dirname "$0")/.."
cwt_only=
while [ $# -gt 0 ]; do
  case $1 in
  --no-sha-ext) export FLEETKEY_NO_SHA_EXT=1 ;;
  --no-fast-json) export FLEETKEY_NO_FAST_JSON=1 ;;
  --cwt-only) cwt_only=1 ;;
  -*) echo "usage: bench/tokens.sh [--no-sha-ext] [--no-fast-json] [--cwt-only] [BUILD_DIR]" >&2; exit 2 ;;
  *) break ;;
  esac
  shift
done
echo "fast paths off: ${FLEETKEY_NO_SHA_EXT:+sha-ext }${FLEETKEY_NO_FAST_JSON:+fast-json}"
build=${1:-build}
fk=$(realpath "$build/fleetkey")
count=${COUNT:-1000000}
pyjwt_count=${PYJWT_COUNT:-$count}
runs=${RUNS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export FLEETKEY_HOME=$work/home

"$fk" init --no-passphrase >/dev/null
now=$(date +%s)
cwt_key=$("$fk" token key --for cwt)
jwt_key=$("$fk" token key --for jwt)
echo "generating $count CWTs and $count JWTs (bench/gen_tokens.py)..."
/usr/bin/python3 bench/gen_tokens.py cwt "$cwt_key" v1 "$count" "$now" >"$work/cwt.txt"
formats="cwt jwt"
if [ -n "$cwt_only" ]; then
  formats=cwt
else
  /usr/bin/python3 bench/gen_tokens.py jwt "$jwt_key" v1 "$count" "$now" >"$work/jwt.txt"
fi
ls -l "$work"/*.txt | awk '{print $5, $9}'

# Every token must verify: exit 0 and one "valid":true line per token.
for f in $formats; do
  "$fk" token verify - <"$work/$f.txt" >"$work/$f.out"
  valid=$(grep -c '"valid":true' "$work/$f.out")
  [ "$valid" -eq "$count" ] || { echo "$f: only $valid of $count valid" >&2; exit 1; }
done
echo "all $count tokens of each of: $formats verified"
echo "cores: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg)"

for f in $formats; do
  # The file is removed before each run (--prepare, untimed): otherwise the shell's truncation of
  # the previous run's 270 MB of output would be timed as part of fleetkey's run.
  hyperfine --runs "$runs" --warmup 1 --prepare "rm -f $work/$f.out2" --export-json "$work/$f.json" \
    -n "$f to /dev/null" "$fk token verify - < $work/$f.txt > /dev/null" \
    -n "$f to a file" "$fk token verify - < $work/$f.txt > $work/$f.out2"
  # Wall-clock rates depend on what else the machine runs; CPU time per token does not, so the
  # rate two idle cores would give is reported too.
  /usr/bin/python3 - "$work/$f.json" "$count" "$(nproc)" <<'PY'
import json, sys
n, cores = int(sys.argv[2]), int(sys.argv[3])
for r in json.load(open(sys.argv[1]))["results"]:
    cpu = r["user"] + r["system"]
    print(f"{r['command']}: mean {r['mean']:.3f} s, min {r['min']:.3f} s -> {n / r['mean']:,.0f} tokens/s "
          f"(best {n / r['min']:,.0f}); CPU {cpu:.2f} s = {cpu / n * 1e6:.2f} us/token -> "
          f"{n / (cpu / cores):,.0f} tokens/s on {cores} idle cores")
PY
done

[ -n "$cwt_only" ] && exit 0
echo "PyJWT 2.6 (jwt.decode, HS256, one process) on $pyjwt_count of the same JWTs:"
/usr/bin/python3 bench/pyjwt_decode.py "$jwt_key" "$work/jwt.txt" "$pyjwt_count"
