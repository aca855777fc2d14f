#!/usr/bin/env bash
# `make run`: a real end-to-end session in a temporary home, printed as it goes.
set -euo pipefail
fleetkey=$(realpath "${1:-build/fleetkey}")
home=$(mktemp -d "${TMPDIR:-/tmp}/fleetkey-demo.XXXXXX")
trap 'rm -rf "$home"' EXIT
export FLEETKEY_HOME="$home/fleet"
export FLEETKEY_ACTOR=demo
umask 077
printf 'demo passphrase, do not reuse\n' > "$home/passphrase"
export FLEETKEY_PASSPHRASE_FILE="$home/passphrase"

step() { printf '\n\033[1m$ fleetkey'; printf ' %q' "$@"; printf '\033[0m\n'; "$fleetkey" "$@"; }

echo "fleetkey demo in a temporary home: $FLEETKEY_HOME"
step init --kdf interactive
step master list
step device add SN-0001 --model lock-v2 --label line=3
step device add SN-0002 --model lock-v2
step device list
step device show SN-0001
step device key SN-0001
step device key SN-0001 --format c --purpose enc
step user add alice --label team=facilities
step user grant alice --device SN-0001 --role owner --ttl 30d
step user key alice --device SN-0001
step user revoke alice --device SN-0001 --reason "phone lost"
printf '\n\033[1m$ fleetkey user key alice --device SN-0001   # after the revocation\033[0m\n'
"$fleetkey" user key alice --device SN-0001 || echo "(exit status $?: the old key is gone)"
step token mint --sub alice --role guest --aud SN-0002 --ttl 1h
token=$("$fleetkey" token mint --sub alice --role guest --aud SN-0002 --ttl 1h)
step token verify "$token" --aud SN-0002
step token revoke "$token" --reason "demo"
printf '\n\033[1m$ fleetkey token verify "$token" --aud SN-0002   # after the revocation\033[0m\n'
"$fleetkey" token verify "$token" --aud SN-0002 || echo "(exit status $?: revoked)"
step pair SN-0001 --qr utf8
step pair SN-0001 --scheme matter --vendor-id 0xFFF1 --product-id 0x8000 --qr none
printf 'id,model,line\nSN-1000,lock-v2,3\nSN-1001,lock-v2,3\nSN-1002,lock-v3,4\n' > "$home/batch.csv"
step device import "$home/batch.csv" --keys-out "$home/keys.jsonl"
step master rotate
step device add SN-0003
step --json device list
step device revoke SN-0002 --reason "returned to factory"
echo
echo "The registry holds fingerprints, never keys:"
sqlite3 "$FLEETKEY_HOME/registry.db" "SELECT id, key_version, fingerprint, status FROM devices;" 2>/dev/null \
  || echo "(install sqlite3 to look inside the registry)"
echo
step audit list --last 8

# The lock's side (device/, fleetkey-device(7)): pair, open, a replayed handshake, a revocation.
examples="$(dirname "$fleetkey")/device"
if [ -x "$examples/fk_lock_example" ]; then
  printf '\n\033[1m== a lock running the device library, driven by a phone through a pipe\033[0m\n'
  "$(dirname "$0")/../device/examples/demo.sh" "$fleetkey" "$examples" 2>&1
fi
