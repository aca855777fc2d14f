#!/usr/bin/env bash
# Byte-identical output of `fleetkey token verify -` from two builds (before and after a change to
# the token path): the same fleet, the same 300,000 CWTs and 300,000 JWTs (bench/gen_tokens.py),
# with invalid lines mixed in (a flipped character, a cut token, blank lines, CRLF, an unknown kid,
# a line too long to be a token, two revoked tokens), checked at a fixed --now and again with --now past every exp.
# Compares stdout, stderr and the exit status; prints the files' SHA-256 and exits 1 on any difference.
#
# usage: bench/tokens_identical.sh FLEETKEY_BEFORE FLEETKEY_AFTER
#        env: COUNT (default 300000)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: bench/tokens_identical.sh FLEETKEY_BEFORE FLEETKEY_AFTER" >&2; exit 2; }
before=$(realpath "$1")
after=$(realpath "$2")
count=${COUNT:-300000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export FLEETKEY_HOME=$work/home

"$before" init --no-passphrase >/dev/null
now=$(date +%s)
for f in cwt jwt; do
  key=$("$before" token key --for "$f")
  /usr/bin/python3 bench/gen_tokens.py "$f" "$key" v1 "$count" "$now" >"$work/$f.valid"
  # Every 97th token damaged in one of several ways; a few lines that are no tokens at all.
  /usr/bin/python3 - "$work/$f.valid" >"$work/$f.txt" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")[:-1]
out = []
for i, t in enumerate(lines):
    k = (i // 97) % 7
    if i % 97 != 0:
        out.append(t)
    elif k == 0:
        out.append(t[:20] + ("A" if t[20] != "A" else "B") + t[21:])  # a flipped character
    elif k == 1:
        out.append(t[: len(t) // 2])  # cut
    elif k == 2:
        out.append("")  # blank
    elif k == 3:
        out.append(t + "\r")  # CRLF
    elif k == 4:
        out.append(t.replace("v1", "v9", 1) if "v1" in t else t[:-3])  # unknown kid (JWT) or a short tag
    elif k == 5:
        out.append("not a token")
    else:
        out.append(t[:-2] + ("AA" if t[-2:] != "AA" else "BB"))  # a bad MAC
out.append("x" * 5_000_000)  # longer than a read chunk
out.append(lines[-1])
sys.stdout.write("\n".join(out) + "\n")
PY
  # Two revoked tokens: the revocation set is consulted too.
  sed -n '5p;500p' "$work/$f.valid" | while read -r t; do
    printf '%s\n' "$t" | "$before" token revoke --reason bench - >/dev/null
  done
done

# Each build gets its own copy of the fleet: a build with a newer registry schema migrates the
# registry when it opens it, which the older build then refuses (exit 6).
cp -a "$work/home" "$work/home.after"

status=0
for f in cwt jwt; do
  for at in "@$now" "@$((now + 2 * 86400))"; do
    for b in before after; do
      bin=$before home=$work/home
      [ "$b" = after ] && bin=$after home=$work/home.after
      rc=0
      FLEETKEY_HOME=$home "$bin" token verify --now "$at" - <"$work/$f.txt" >"$work/$f.$b" 2>"$work/$f.$b.err" || rc=$?
      echo "$rc" >"$work/$f.$b.rc"
    done
    lines=$(wc -l <"$work/$f.before")
    if cmp -s "$work/$f.before" "$work/$f.after" && cmp -s "$work/$f.before.rc" "$work/$f.after.rc" \
      && cmp -s "$work/$f.before.err" "$work/$f.after.err"; then
      echo "$f --now $at: identical ($lines lines, exit $(cat "$work/$f.before.rc"), sha256 $(sha256sum <"$work/$f.before" | cut -c1-16))"
    else
      echo "$f --now $at: DIFFERENT (exit $(cat "$work/$f.before.rc") vs $(cat "$work/$f.after.rc"))"
      cmp "$work/$f.before" "$work/$f.after" | head -3 || true
      status=1
    fi
  done
done
exit $status
