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
printf '\n\033[1m$ fleetkey token mint --sub alice --role admin --aud SN-0001   # more than her grant\033[0m\n'
"$fleetkey" user grant alice --device SN-0001 --role guest --ttl 30d >/dev/null
"$fleetkey" token mint --sub alice --role admin --aud SN-0001 || echo "(exit status $?: exceeds the grant)"
step token mint --sub door-service --role service --aud SN-0002 --ttl 1h
token=$("$fleetkey" token mint --sub door-service --role service --aud SN-0002 --ttl 1h)
step token verify "$token" --aud SN-0002
step token revoke "$token" --reason "demo"
printf '\n\033[1m$ fleetkey token verify "$token" --aud SN-0002   # after the revocation\033[0m\n'
"$fleetkey" token verify "$token" --aud SN-0002 || echo "(exit status $?: revoked)"
echo
echo "An offline lock learns a revocation from its state document (here the Python lock of tests/cli/lock.py):"
step user add bob
bundle=$("$fleetkey" --json user grant bob --device SN-0001 --role guest --ttl 7d)
"$fleetkey" device key SN-0001 >"$home/k_dev"
step device state SN-0001 -o "$home/state-1"
step user revoke bob --device SN-0001 --reason "moved out"
step device state SN-0001 -o "$home/state-2"
/usr/bin/python3 - "$(dirname "$(realpath "$0")")/cli" "$home" "$bundle" <<'EOF'
import base64, json, sys, time
sys.path.insert(0, sys.argv[1])
from lock import Lock
home, token = sys.argv[2], json.loads(sys.argv[3])["token"]
def doc(name):
    text = open(f"{home}/{name}").read().strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
lock, now = Lock("SN-0001", 1, bytes.fromhex(open(f"{home}/k_dev").read())), int(time.time())
print("  lock: apply state-1 (before the revocation):", lock.apply_state(doc("state-1"), now))
print("  lock: bob's token:                          ", lock.check_token(token, now))
print("  lock: apply state-2 (after it):             ", lock.apply_state(doc("state-2"), now))
print("  lock: bob's token:                          ", lock.check_token(token, now))
print("  lock: state-1 again (a rollback):           ", lock.apply_state(doc("state-1"), now))
EOF
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
