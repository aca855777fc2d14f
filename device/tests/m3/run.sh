#!/bin/sh
# Cross-compiles the device test suite for Cortex-M3 (-Os -mthumb) and runs it under
# qemu-system-arm -M mps2-an385 with semihosting.   run.sh VECTORS_DIR OUT_DIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
mkdir -p "$2"
arm-none-eabi-gcc -std=c99 -Os -mthumb -mcpu=cortex-m3 -ffunction-sections -fdata-sections -Wall -Wextra -Werror \
  -nostartfiles -specs=nano.specs -T "$here/link.ld" -Wl,--gc-sections \
  -I"$src/include" -I"$src/tests" -I"$1" "$src"/src/*.c "$src/tests/test_device.c" "$here/m3_main.c" \
  -o "$2/device_tests_m3.elf"
# Semihosting writes to QEMU's stderr; SYS_EXIT gives its exit status (0 only for a pass).
rc=0
timeout 240 qemu-system-arm -M mps2-an385 -cpu cortex-m3 -nographic -monitor none -serial none \
  -semihosting-config enable=on,target=native -kernel "$2/device_tests_m3.elf" >"$2/qemu.log" 2>&1 || rc=$?
cat "$2/qemu.log"
[ "$rc" -eq 0 ] && grep -q '^PASS$' "$2/qemu.log"
