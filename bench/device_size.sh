#!/usr/bin/env bash
# The device library's budgets, measured on the target: flash of the lock side at -Os -mthumb on
# Cortex-M3 and M4 (a firmware skeleton, device/examples/lock_fw.c, linked with --gc-sections:
# only what a lock calls), per part; the stack of each entry point, painted and measured on an
# emulated Cortex-M3 (device/tests/m3); -fstack-usage's largest frames; the persistent state.
#   bench/device_size.sh [BUILD_DIR] [--check]   (BUILD_DIR/device/generated holds the test vectors)
# --check: exit 1 when a budget is exceeded (8 KiB flash on Cortex-M3, 1 KiB stack, 64 bytes kept).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
check=${2:-}
over=0
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
part() {
  case "$1" in
    fk_sha256.o) echo "SHA-256, HMAC, HKDF";;
    fk_cbor.o) echo "CBOR reader, COSE_Mac0";;
    fk_token.o) echo "token decoding";;
    fk_state.o) echo "state document decoding";;
    fk_lock.o) echo "lock rules (state apply, token check)";;
    fk_keys.o) echo "key derivation";;
    fk_session.o) echo "handshake and channel";;
    fk_aead.o) echo "ChaCha20-Poly1305";;
    lock_fw.o) echo "(firmware skeleton: main loop, board stubs)";;
    lib_a-mem*|libc_a-mem*) echo "(libc: $1)";;
    *) echo "($1)";;
  esac
}
for cpu in cortex-m3 cortex-m4; do
  mkdir -p "$out/$cpu"
  for f in device/src/*.c device/examples/lock_fw.c; do
    arm-none-eabi-gcc -std=c99 -Os -mthumb -mcpu=$cpu -ffunction-sections -fdata-sections -fstack-usage \
      -Idevice/include -c "$f" -o "$out/$cpu/$(basename "${f%.c}").o"
  done
  arm-none-eabi-gcc -mthumb -mcpu=$cpu -nostartfiles -specs=nano.specs -T device/tests/m3/link.ld \
    -Wl,--gc-sections -Wl,--entry=fw_reset -Wl,-Map="$out/$cpu/lock.map" "$out/$cpu"/*.o -o "$out/$cpu/lock.elf"
  echo "== lock side on $cpu, -Os -mthumb, linked with --gc-sections (bytes)"
  total=0
  while read -r obj flash ram; do
    printf '  %-44s %6d flash %5d RAM\n' "$(part "$obj")" "$flash" "$ram"
    case "$obj" in fk_*.o) total=$((total + flash));; esac
  done < <(/usr/bin/python3 bench/device_size.py "$out/$cpu/lock.map")
  printf '  %-44s %6d flash (budget 8192)\n' "library total" "$total"
  [ "$cpu" != cortex-m3 ] || [ "$total" -le 8192 ] || over=1
  arm-none-eabi-size "$out/$cpu/lock.elf" | sed 's/^/  /'
done
echo "== largest stack frames (-fstack-usage, cortex-m3)"
cat "$out/cortex-m3"/fk_*.su | sort -t$'\t' -k2 -n -r | head -8 | sed 's/^.*://; s/^/  /'
echo "== stack of each entry point, measured on an emulated Cortex-M3 (budget 1024 on the deepest path)"
if [ -f "$build/device/generated/fk_vectors.h" ] && command -v qemu-system-arm >/dev/null; then
  device/tests/m3/run.sh "$build/device/generated" "$out/m3" >"$out/m3.log"
  sed -n 's/^stack /  /p' "$out/m3.log"
  deepest=$(sed -n 's/^stack [a-z_]* \([0-9]*\).*/\1/p' "$out/m3.log" | sort -n | tail -1)
  echo "  deepest: $deepest"
  [ "$deepest" -le 1024 ] || over=1
else
  [ -z "$check" ] || over=1
  echo "  (needs $build/device/generated/fk_vectors.h from a build, and qemu-system-arm)"
fi
echo "== persistent state the caller keeps"
persist=$(sed -n 's/^#define FK_PERSIST_SIZE \([0-9]*\).*/\1/p' device/include/fleetkey_device.h)
echo "  $persist bytes (budget 64): \"FKD\" 01, seq, iat of the document, clock high-water mark"
[ "$persist" -le 64 ] || over=1
if [ "$check" = --check ] && [ "$over" -ne 0 ]; then
  echo "device_size: a budget is exceeded" >&2
  exit 1
fi
