#!/usr/bin/env bash
# The factory line (issue 20): a station imports a batch of 10,000 serials, keeps their keys for flashing,
# prints their pairing labels, and can be re-run after a crash without harm. Only documented commands
# (fleetkey(1)) and jq. Usage: factory.sh [FLEETKEY]; N=COUNT for another batch size.
set -euo pipefail
fleetkey=${1:-${FLEETKEY:-fleetkey}}
n=${N:-10000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077
for v in $(env | sed -n 's/^\(FLEETKEY_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export FLEETKEY_HOME=$work/home FLEETKEY_PASSPHRASE_FILE=$work/passphrase FLEETKEY_JSON_ERRORS=1
echo "factory line passphrase" > "$FLEETKEY_PASSPHRASE_FILE"
fail() { echo "factory.sh: $*" >&2; exit 1; }

# Once per station; safe to repeat.
"$fleetkey" -q --json init --kdf interactive --if-missing | jq -e '.created == true' >/dev/null
"$fleetkey" -q --json init --kdf interactive --if-missing | jq -e '.created == false' >/dev/null

# The batch from the ERP: serial and model.
{ echo id,model; seq -f "SN-%06g" 1 "$n" | sed 's/$/,lock-v2/'; } > "$work/batch.csv"
"$fleetkey" -q --json device import "$work/batch.csv" --keys-out "$work/keys.jsonl" --skip-existing --progress never \
  > "$work/import.json"
jq -e --argjson n "$n" '.rows == $n and .imported == $n and .skipped == 0 and .key_version == 1' "$work/import.json" \
  >/dev/null || fail "import: $(cat "$work/import.json")"
[ "$(stat -c %a "$work/keys.jsonl")" = 600 ] || fail "the keys file is not 0600"
[ "$(wc -l < "$work/keys.jsonl")" -eq "$n" ] || fail "the keys file does not have $n lines"
jq -se --argjson n "$n" 'length == $n and all(.[]; (.key | length) == 44 and .key_version == 1)' "$work/keys.jsonl" \
  >/dev/null || fail "the keys file is malformed"

# A re-run (the station crashed after the commit): nothing new, every key written again.
"$fleetkey" -q --json device import "$work/batch.csv" --keys-out "$work/keys-again.jsonl" --skip-existing \
  --progress never | jq -e --argjson n "$n" '.imported == 0 and .skipped == $n' >/dev/null || fail "re-import"
cmp -s "$work/keys.jsonl" "$work/keys-again.jsonl" || fail "the re-run's keys differ"

# Labels for the printer: one PNG a device and the manifest.
"$fleetkey" -q --json pair --all -o "$work/labels" | jq -e --argjson n "$n" '.count == $n' >/dev/null \
  || fail "pair --all"
[ "$(find "$work/labels" -name 'SN-*.png' | wc -l)" -eq "$n" ] || fail "not $n label files"
[ "$(wc -l < "$work/labels/manifest.csv")" -eq $((n + 1)) ] || fail "the manifest lacks devices"
head -1 "$work/labels/manifest.csv" | grep -qx 'device,pin,manual_code,payload,file' || fail "manifest header"
# The printer ran out of paper: finish the run without --force; kept labels are untouched.
rm "$work/labels/SN-000002.png"
touch -d @0 "$work/labels/SN-000001.png"
"$fleetkey" -q --json pair --all -o "$work/labels" --resume | jq -e --argjson n "$n" '.count == $n' >/dev/null \
  || fail "pair --all --resume"
[ -f "$work/labels/SN-000002.png" ] || fail "the missing label was not written"
[ "$(stat -c %Y "$work/labels/SN-000001.png")" = 0 ] || fail "a complete label was rewritten"
# A label's code is the one the registry gives for the device.
pin=$("$fleetkey" -q --json pair SN-000001 --qr none | jq -r .pin)
grep -q "^SN-000001,$pin," "$work/labels/manifest.csv" || fail "the manifest's PIN is not the device's"

# An id already registered is told apart by its error code, not by parsing the message.
code=$("$fleetkey" -q device add SN-000001 2>&1 >/dev/null | jq -r .error.code) || true
[ "$code" = exists ] || fail "device add of a registered id: $code"
"$fleetkey" -q --json device add SN-000001 --if-missing | jq -e '.added == false' >/dev/null || fail "--if-missing"
echo "factory.sh: $n devices imported, keys and labels written"
