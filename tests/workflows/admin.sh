#!/usr/bin/env bash
# The administrator (issue 20): users get and lose access to locks, and every change reaches the locks in
# their state documents. Only documented commands (fleetkey(1)) and jq. Usage: admin.sh [FLEETKEY].
set -euo pipefail
fleetkey=${1:-${FLEETKEY:-fleetkey}}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077
for v in $(env | sed -n 's/^\(FLEETKEY_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export FLEETKEY_HOME=$work/home FLEETKEY_PASSPHRASE_FILE=$work/passphrase FLEETKEY_JSON_ERRORS=1
echo "administrator passphrase" > "$FLEETKEY_PASSPHRASE_FILE"
fail() { echo "admin.sh: $*" >&2; exit 1; }

"$fleetkey" -q init --kdf interactive --if-missing
printf 'id,model\nDOOR-1,door\nDOOR-2,door\nGATE-1,gate\n' | "$fleetkey" -q device import - --format csv --progress never
printf 'DOOR-1\nDOOR-2\n# the gate too\nGATE-1\n' > "$work/alice-locks.txt"

# Every step twice: a re-run changes nothing and fails nothing.
for run in 1 2; do
  "$fleetkey" -q user add alice --if-missing
  "$fleetkey" -q user add bob --if-missing
  # alice on three locks in one transaction; a re-run keeps her grants (same epoch, same key).
  "$fleetkey" -q --json user grant alice --role owner --devices-from "$work/alice-locks.txt" --keep-epoch \
    > "$work/alice-$run.jsonl"
  jq -se 'length == 3 and all(.[]; .epoch == 1 and .role == "owner") and (map(.device) == ["DOOR-1", "DOOR-2",
    "GATE-1"])' "$work/alice-$run.jsonl" >/dev/null || fail "alice's grants (run $run)"
  "$fleetkey" -q --json user grant bob --role guest --device DOOR-1 --ttl 7d --keep-epoch > "$work/bob-$run.json"
  jq -e '.epoch == 1 and .role == "guest"' "$work/bob-$run.json" >/dev/null || fail "bob's grant (run $run)"
done
cmp -s <(jq -c 'del(.token, .token_id)' "$work/alice-1.jsonl") <(jq -c 'del(.token, .token_id)' "$work/alice-2.jsonl") \
  || fail "a re-grant with --keep-epoch changed alice's grants"

# One unknown lock fails the whole grant: nothing is granted.
before=$("$fleetkey" -q --json audit list | wc -l)
code=$("$fleetkey" -q user grant bob --role guest --device DOOR-2 --device DOOR-9 2>&1 >/dev/null \
  | jq -r .error.code) || true
[ "$code" = not_found ] || fail "a grant on an unknown lock: $code"
[ "$("$fleetkey" -q --json audit list | wc -l)" = "$before" ] || fail "a failed grant changed the registry"
"$fleetkey" -q --json user show bob | jq -e '.grants | length == 1' >/dev/null || fail "bob got a grant"

# bob leaves: revoked once, and a second revoke is fine.
"$fleetkey" -q user revoke bob --reason "left the company" --if-not-revoked
"$fleetkey" -q user revoke bob --reason "left the company" --if-not-revoked
code=$("$fleetkey" -q user revoke bob --reason again 2>&1 >/dev/null | jq -r .error.code) || true
[ "$code" = already_revoked ] || fail "a second revoke without --if-not-revoked: $code"
"$fleetkey" -q --json user show bob | jq -e '.grants[0].status == "revoked" and .grants[0].epoch == 2' >/dev/null \
  || fail "bob's grant is not revoked"

# The state documents every lock receives: DOOR-1's says bob's keys below epoch 2 are dead.
mkdir "$work/state"
"$fleetkey" -q device state --all -o "$work/state"
[ "$(find "$work/state" -name '*.state.b64' | wc -l)" = 3 ] || fail "not one state document a lock"
"$fleetkey" -q --json device state DOOR-1 | jq -e '.status == "active" and (.users | map(select(.user == "bob"))
  | .[0].min_epoch == 2)' >/dev/null || fail "DOOR-1's state document does not carry bob's revocation"
"$fleetkey" -q device revoke GATE-1 --reason "replaced" --if-not-revoked
"$fleetkey" -q --json device revoke GATE-1 --reason "replaced" --if-not-revoked | jq -e '.already_revoked' >/dev/null
"$fleetkey" -q --json device state GATE-1 | jq -e '.status == "revoked"' >/dev/null || fail "GATE-1's state"
"$fleetkey" -q audit verify >/dev/null
echo "admin.sh: grants, revocations and state documents as expected"
