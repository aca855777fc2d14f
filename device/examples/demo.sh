#!/usr/bin/env bash
# The lock and the phone of device/examples, with a fleet made by fleetkey: pair, open with a
# granted user, a replayed handshake refused, the user revoked, the new state document
# delivered, the old phone refused.
#   device/examples/demo.sh FLEETKEY_BIN EXAMPLES_DIR
# The state documents are issued by `fleetkey device state` (fleetkey-state(5)).
set -euo pipefail
fk_bin=$(realpath "$1")
ex=$(realpath "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unset FLEETKEY_PASSPHRASE_FILE
export FLEETKEY_HOME=$work/home FLEETKEY_ACTOR=demo
fk() { echo "\$ fleetkey $*" >&2; "$fk_bin" "$@"; }
mkdir -p "$work/lock"
umask 077

fk init --no-passphrase >/dev/null 2>&1
fk device add LOCK-1 >&2
fk device key LOCK-1 >"$work/k_dev"           # flashed into the lock at the factory
fk user add alice >&2
grant=$(fk --json user grant alice --device LOCK-1 --role owner --ttl 30d)
token=$(printf '%s' "$grant" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
printf '%s' "$grant" | /usr/bin/python3 -c \
  'import json,sys,base64; print(base64.b64decode(json.load(sys.stdin)["user_key"]).hex())' >"$work/k_user"
fk device state LOCK-1 --format raw -o "$work/state1" >&2   # alice at epoch 1

lock=("$ex/fk_lock_example" "$work/k_dev" LOCK-1 1 "$work/lock")
phone() { "$ex/fk_phone_example" --id LOCK-1 "$@" -- "${lock[@]}"; }

echo "== pair: the code fleetkey prints and the one the lock derives from K_dev"
fk pair LOCK-1 --json | /usr/bin/python3 -c 'import json,sys; print("fleetkey: pairing code:", json.load(sys.stdin)["pin"])'
phone --pin
echo "== alice opens the lock"
phone --token "$token" --user-key-file "$work/k_user" --deliver "$work/state1" --record "$work/recorded" --open
echo "== someone replays the handshake they recorded over the air"
if phone --replay "$work/recorded"; then echo "demo: FAILED: replay accepted"; exit 1; fi
echo "== alice's phone is lost: her grant is revoked; the next state document says so"
fk user revoke alice --device LOCK-1 --reason "phone lost" >&2
fk device state LOCK-1 --format raw -o "$work/state2" >&2   # alice's minimum epoch is now 2
phone --deliver "$work/state2"
echo "== the old phone tries again"
if phone --token "$token" --user-key-file "$work/k_user" --open; then echo "demo: FAILED: old phone opened"; exit 1; fi
echo "== an old state document is refused (anti-rollback)"
if phone --deliver "$work/state1"; then echo "demo: FAILED: rollback accepted"; exit 1; fi
echo "demo: ok"
