#!/usr/bin/env bash
# Production-run labels: `fleetkey pair --all` writing N PNG labels (default 10,000) against a
# shell loop over the qrencode command on the same payloads (timed on a sample, extrapolated).
#   bench/pair_labels.sh [N] [SAMPLE]       FLEETKEY_BIN=path/to/fleetkey to choose the binary
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
sample=${2:-500}
bin=$(realpath "${FLEETKEY_BIN:-build/fleetkey}")
work=$(mktemp -d "${TMPDIR:-/tmp}/fleetkey-bench-pair.XXXXXX")
trap 'rm -rf "$work"' EXIT
export FLEETKEY_HOME=$work/home FLEETKEY_ACTOR=bench
seed=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
"$bin" -q init --no-passphrase --test-seed "$seed" 2>/dev/null

echo "bench: registering $n devices" >&2
seq -f "LBL-%06g" 1 "$n" > "$work/ids"
if "$bin" device --help 2>/dev/null | grep -qE "^ +import( |$)"; then
  { echo id; cat "$work/ids"; } > "$work/ids.csv"
  "$bin" -q device import "$work/ids.csv" --input-format csv 2>/dev/null >/dev/null
else
  # No bulk import in this build: insert the rows fleetkey-formats(5) specifies, fingerprints included.
  /usr/bin/python3 - "$work/home/registry.db" "$seed" "$work/ids" <<'PY'
import hashlib, hmac, sqlite3, struct, sys
def field(b): return struct.pack(">H", len(b)) + b
def expand(prk, info, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest(); out += t; i += 1
    return out[:n]
seed = bytes.fromhex(sys.argv[2])
mk = expand(hmac.new(b"fleetkey/v1 test-seed", seed, hashlib.sha256).digest(),
            field(b"master") + field(struct.pack(">Q", 1)), 32)
prk = hmac.new(b"fleetkey/v1", mk, hashlib.sha256).digest()
rows = []
for d in open(sys.argv[3]).read().split():
    k = expand(prk, field(b"device") + field(d.encode()), 32)
    rows.append((d, hashlib.sha256(b"fleetkey/v1 fingerprint" + k).digest()[:16].hex()))
con = sqlite3.connect(sys.argv[1])
con.executemany("INSERT INTO devices (id, key_version, fingerprint, created) VALUES (?, 1, ?, '2026-11-22T00:00:00Z')", rows)
con.commit()
PY
fi

echo "bench: fleetkey pair --all, $n PNG labels" >&2
hyperfine --runs 3 --warmup 1 --export-markdown "$work/fleetkey.md" \
  --prepare "rm -rf '$work/labels'" \
  "'$bin' -q pair --all -o '$work/labels' 2>/dev/null" \
  "'$bin' -q pair --all -o '$work/labels' --jobs 1 2>/dev/null"
ls "$work/labels" | grep -c '\.png$' | sed 's/^/bench: labels written: /' >&2

# The same payloads through the qrencode CLI, one process per label.
head -n "$((sample + 1))" "$work/labels/manifest.csv" | tail -n "$sample" | cut -d, -f4 > "$work/payloads"
echo "bench: qrencode loop, $sample labels (extrapolated to $n)" >&2
hyperfine --runs 3 --export-json "$work/qrencode.json" --prepare "rm -rf '$work/q'; mkdir '$work/q'" \
  "i=0; while read -r p; do i=\$((i+1)); qrencode -l M -s 8 -m 4 -o '$work/q/'\$i.png \"\$p\"; done < '$work/payloads'"
mean=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['results'][0]['mean'])" "$work/qrencode.json")
/usr/bin/python3 -c "import sys; m,s,n=map(float,sys.argv[1:]); print(f'qrencode loop: {m:.3f} s for {s:.0f} labels, {m/s*1000:.2f} ms a label, {m/s*n:.1f} s extrapolated to {n:.0f}')" "$mean" "$sample" "$n"
cat "$work/fleetkey.md"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), cores: $(nproc), labels dir on: $(df --output=fstype "$work" | tail -1)"
