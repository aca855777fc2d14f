#!/usr/bin/env bash
# Matter production runs: `fleetkey pair --all --scheme matter` writing N PNG labels (default
# 10,000) with their SPAKE2+ verifiers at 1,000 PBKDF2 iterations, on every core and with --jobs 1,
# and at the default 10,000 iterations; beside the same run of a fleetkey without verifiers
# (FLEETKEY_BASE_BIN, e.g. a build of the commit before them), which writes labels and manifest only.
#   bench/pair_matter.sh [N]     FLEETKEY_BIN=path/to/fleetkey FLEETKEY_BASE_BIN=path/to/old/fleetkey
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
bin=$(realpath "${FLEETKEY_BIN:-build/fleetkey}")
base=${FLEETKEY_BASE_BIN:+$(realpath "$FLEETKEY_BASE_BIN")}
work=$(mktemp -d "${TMPDIR:-/tmp}/fleetkey-bench-matter.XXXXXX")
trap 'rm -rf "$work"' EXIT
export FLEETKEY_HOME=$work/home FLEETKEY_ACTOR=bench
"$bin" -q init --no-passphrase --test-seed 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f 2>/dev/null

echo "bench: registering $n devices" >&2
{ echo id; seq -f "LBL-%06g" 1 "$n"; } > "$work/ids.csv"
"$bin" -q device import "$work/ids.csv" --input-format csv 2>/dev/null >/dev/null

matter="--scheme matter --vendor-id 0xFFF1 --product-id 0x8000"
commands=()
if [ -n "$base" ]; then
  commands+=("'$base' -q pair --all -o '$work/labels' $matter 2>/dev/null")
fi
commands+=(
  "'$bin' -q pair --all -o '$work/labels' $matter --iterations 1000 2>/dev/null"
  "'$bin' -q pair --all -o '$work/labels' $matter --iterations 1000 --jobs 1 2>/dev/null"
)
echo "bench: $n Matter labels, $(nproc) cores" >&2
hyperfine --runs 3 --warmup 1 --export-markdown "$work/matter.md" --prepare "rm -rf '$work/labels'" "${commands[@]}"
echo "bench: the default iteration count (10,000), one run" >&2
hyperfine --runs 1 --export-markdown "$work/default.md" --prepare "rm -rf '$work/labels'" \
  "'$bin' -q pair --all -o '$work/labels' $matter 2>/dev/null"
wc -l < "$work/labels/spake2p.csv" | sed 's/^/bench: spake2p.csv lines (header included): /' >&2
cat "$work/matter.md" "$work/default.md"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), cores: $(nproc), labels dir on: $(df --output=fstype "$work" | tail -1)"
