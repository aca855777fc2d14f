#!/usr/bin/env bash
# The CI job (issue 20): fixtures for the firmware's tests, built from a test key with SOURCE_DATE_EPOCH,
# byte-identical across runs so that they can be committed and diffed. Only documented commands
# (fleetkey(1)) and jq. Usage: ci.sh [FLEETKEY].
set -euo pipefail
fleetkey=${1:-${FLEETKEY:-fleetkey}}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077
for v in $(env | sed -n 's/^\(FLEETKEY_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export SOURCE_DATE_EPOCH=1795305600 # 2026-11-22T00:00:00Z
seed=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
fail() { echo "ci.sh: $*" >&2; exit 1; }

# One fixture build into $1. The input file has the same path in every run: the audit trail records it.
printf 'id,model\nLOCK-1,door\nLOCK-2,door\n' > "$work/devices.csv"
build() {
  local out=$1
  mkdir -p "$out/state"
  export FLEETKEY_HOME=$out/home
  "$fleetkey" -q init --no-passphrase --test-seed "$seed"
  "$fleetkey" -q device import "$work/devices.csv" --keys-out "$out/keys.jsonl" --progress never
  "$fleetkey" -q user add alice
  "$fleetkey" -q --json user grant alice --role owner --device LOCK-1 --device LOCK-2 > "$out/alice.jsonl"
  "$fleetkey" -q token mint --sub svc --aud LOCK-2 --role service > "$out/service.token"
  "$fleetkey" -q user revoke alice --device LOCK-2 --reason fixture
  "$fleetkey" -q device state --all -o "$out/state"
  "$fleetkey" -q --json device list > "$out/devices.jsonl"
  "$fleetkey" -q --json audit list > "$out/audit.jsonl"
  # The keys a firmware test needs, as the fixtures it reads.
  jq -r '"\(.id) \(.key)"' "$out/keys.jsonl" > "$out/device-keys.txt"
  jq -r 'select(.device == "LOCK-1") | .user_key' "$out/alice.jsonl" > "$out/alice-lock1.key"
  cp "$out/home/master.key" "$out/master.key"
  rm -rf "$out/home"
}
build "$work/a"
sleep 1 # a later run: every time must still be SOURCE_DATE_EPOCH's
build "$work/b"
diff -r "$work/a" "$work/b" >&2 || fail "two runs gave different fixtures"
jq -se 'all(.[]; .at == "2026-11-22T00:00:00Z")' "$work/a/audit.jsonl" >/dev/null || fail "audit times"
jq -se 'all(.[]; .created == "2026-11-22T00:00:00Z")' "$work/a/devices.jsonl" >/dev/null || fail "device times"
jq -se 'all(.[]; .expires == "2026-12-22T00:00:00Z" and .test_key)' "$work/a/alice.jsonl" >/dev/null \
  || fail "grant times"
[ "$(find "$work/a" -type f | wc -l)" = 10 ] || fail "fixture files missing"
echo "ci.sh: two fixture builds, byte for byte the same"
